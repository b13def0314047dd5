"""End-to-end webhook latency: receiver 200 -> custom event in the sandbox Ometria; Markdown table.

    python bench/webhook_latency_bench.py [--rate 0.5] [--duration 180] [--timeout 180]

Starts the whole system as `og-pipeline dev` would run it on first start (embedded Postgres in a
temporary OG_HOME, sandbox Ordergroove and Ometria, receiver, Dagster UI + daemon with the
default 15 s `webhook_events_sensor`), with the sandbox's own webhook stream off. Once the
start-date backfill is done, it sends signed Webhooks 2.0 envelopes at a steady rate, each
describing a real change made first through the sandbox control plane (a new subscription, a
reminder for its upcoming order, its cancellation: the three types that become Ometria custom
events), and records when each POST answered 200. A poller reads /_sandbox/ometria/events every
`--poll` seconds and records when `og-<event id>` first appears; latency is the difference
(so it includes up to one poll interval). Events not seen `--timeout` s after the last send are
counted as missing. Bounded: 127.0.0.1 only, fixed counts, every wait has a timeout, and it stops
`dev` (SIGINT to its process group) and deletes the temporary OG_HOME at the end.
Target (issue 4): p95 under 60 s with the default sensor interval.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests
from common import free_port

from og_pipeline.sandbox import SIGNATURE_HEADER, signature_header

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
UNSET = (
    "ORDERGROOVE_API_KEY",
    "OMETRIA_API_KEY",
    "OG_DATABASE_URL",
    "OG_SYNC_START_DATE",
    "OG_DAGSTER_DATABASE_URL",
    "ORDERGROOVE_API_URL",
    "OMETRIA_API_URL",
    "ORDERGROOVE_WEBHOOK_KEY",
)


class Dev:
    """`og-pipeline dev` in its own process group; its output is read by a thread."""

    def __init__(self, home: Path, ports: dict[str, int], echo: bool) -> None:
        env = {k: v for k, v in os.environ.items() if k not in UNSET}
        env.update(OG_HOME=str(home), PYTHONUNBUFFERED="1")
        self.lines: deque[str] = deque(maxlen=200)
        self.seen = threading.Condition()
        self.echo = echo
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "og_pipeline",
                "dev",
                "--host",
                HOST,
                "--port",
                str(ports["ui"]),
                "--sandbox-port",
                str(ports["sandbox"]),
                "--webhook-port",
                str(ports["webhook"]),
                "--webhook-rate",
                "0",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if self.echo:
                sys.stderr.write("[dev] " + line)
            with self.seen:
                self.lines.append(line.rstrip())
                self.seen.notify_all()
        with self.seen:
            self.seen.notify_all()

    def wait_for(self, text: str, timeout: float, fail: str | None = None) -> None:
        deadline = time.monotonic() + timeout
        checked = 0
        with self.seen:
            while True:
                found = list(self.lines)[checked:] if checked < len(self.lines) else []
                checked = len(self.lines)
                if fail and any(fail in line for line in found):
                    raise RuntimeError(f"dev said: {next(x for x in found if fail in x)}")
                if any(text in line for line in found):
                    return
                if self.proc.poll() is not None:
                    raise RuntimeError(f"dev exited with {self.proc.returncode} before {text!r}")
                if (left := deadline - time.monotonic()) <= 0:
                    raise RuntimeError(f"no {text!r} from dev within {timeout:.0f} s")
                self.seen.wait(min(left, 1.0))

    def stop(self, grace: float = 120.0) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait()


def envelope(
    event_id: str, kind: str, created: Any, obj: dict[str, Any], **more: Any
) -> dict[str, Any]:
    """A Webhooks 2.0 envelope around the changed object (with ``more`` keys after it)."""
    return {"id": event_id, "type": kind, "created": created, "data": {"object": obj}, **more}


class Merchant:
    """Real changes through the sandbox control plane, and the webhook envelopes describing them."""

    def __init__(self, sandbox: str, seed: int) -> None:
        self.base = sandbox
        self.http = requests.Session()
        info = self.http.get(f"{sandbox}/_sandbox/info", timeout=30).json()
        self.zone = ZoneInfo(info["zone"])
        self.og = {"x-api-key": info["keys"]["ordergroove"]}
        truth = self.http.get(f"{sandbox}/_sandbox/ground_truth", timeout=60).json()
        self.customers = sorted(c for c, v in truth.items() if v.get("email"))
        products = self._rest("products", page_size=100)
        self.products = [p["external_product_id"] for p in products if p.get("live", True)]
        self.rng = random.Random(seed)
        self.created: deque[str] = deque()  # subscriptions made here, still live
        self.reminded: deque[str] = deque()

    def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        r = self.http.request(method, url, timeout=30, **kwargs)
        r.raise_for_status()
        return r.json()

    def _rest(self, resource: str, **params: Any) -> list[dict[str, Any]]:
        url = f"{self.base}/ordergroove/{resource}/"
        return self._json("GET", url, params=params, headers=self.og)["results"]

    def _unix(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return int(datetime.fromisoformat(value).replace(tzinfo=self.zone).timestamp())

    def _webhook_object(self, record: dict[str, Any], kind: str) -> dict[str, Any]:
        obj = {
            k: self._unix(v) if k in ("created", "updated", "cancelled") else v
            for k, v in record.items()
        }
        if isinstance(obj.get("live"), str):
            obj["live"] = obj["live"] == "True"
        if isinstance(obj.get("extra_data"), str):
            obj["extra_data"] = json.loads(obj["extra_data"])
        return {**obj, "type": kind}

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base}/_sandbox/ordergroove/subscriptions{path}"
        return self._json("POST", url, json=body)

    def next_event(self, i: int, event_id: str) -> dict[str, Any]:
        """Create, remind, cancel in turn (a create when there is nothing to remind or cancel)."""
        step = i % 3
        if step == 1 and self.created:
            sub = self.created[0]
            orders = [
                o
                for o in self._rest("orders", subscription=sub)
                if o.get("order_merchant_id") is None
            ]
            if orders:
                self.reminded.append(self.created.popleft())
                order = self._webhook_object(orders[0], "order")
                items = [
                    self._webhook_object(x, "item")
                    for x in self._rest("items", order=order["public_id"])
                ]
                return envelope(
                    event_id, "order.reminder", int(time.time()), order, snapshot={"items": items}
                )
        if step == 2 and self.reminded:
            sub = self.reminded.popleft()
            record = self._post(f"/{sub}/cancel", {"reason": "4|Overstocked"})
            obj = self._webhook_object(record, "subscription")
            return envelope(event_id, "subscription.cancel", obj["updated"], obj)
        record = self._post(
            "",
            {
                "customer": self.rng.choice(self.customers),
                "product": self.rng.choice(self.products),
                "frequency": self.rng.randrange(7),
            },
        )
        self.created.append(record["public_id"])
        obj = self._webhook_object(record, "subscription")
        return envelope(event_id, "subscription.create", obj["created"], obj)


def poll_ometria(sandbox: str, every: float, seen: dict[str, float], stop: threading.Event) -> None:
    http = requests.Session()
    while not stop.wait(every):
        try:
            events = http.get(f"{sandbox}/_sandbox/ometria/events", timeout=10).json()["events"]
        except requests.RequestException:
            continue
        now = time.monotonic()
        for event_id in events:
            seen.setdefault(event_id, now)


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=0.5, help="webhooks per second")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of sending")
    parser.add_argument("--timeout", type=float, default=180.0, help="wait after the last send")
    parser.add_argument("--poll", type=float, default=0.5, help="Ometria poll interval, seconds")
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=1800.0,
        help="for the UI and the start-date backfill",
    )
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--echo", action="store_true", help="copy dev's output to stderr")
    args = parser.parse_args()
    ports = {"ui": free_port(), "sandbox": free_port(), "webhook": free_port()}
    sandbox, receiver = f"http://{HOST}:{ports['sandbox']}", f"http://{HOST}:{ports['webhook']}"
    count = max(1, int(args.rate * args.duration))
    sent: dict[str, tuple[str, float]] = {}  # og-<event id> -> (type, monotonic time of the 200)
    refused: list[str] = []
    seen: dict[str, float] = {}
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="og-latency-bench-") as home:
        t0 = time.monotonic()
        dev = Dev(Path(home), ports, args.echo)
        poller = threading.Thread(
            target=poll_ometria, args=(sandbox, args.poll, seen, stop), daemon=True
        )
        try:
            dev.wait_for("Dagster UI:", args.startup_timeout)
            ui_up = time.monotonic() - t0
            dev.wait_for("start-date backfill done", args.startup_timeout, fail="backfill failed")
            print(
                f"dev up in {ui_up:.0f} s, backfill done after {time.monotonic() - t0:.0f} s; "
                f"sending {count} webhooks at {args.rate:g}/s",
                file=sys.stderr,
            )
            merchant = Merchant(sandbox, args.seed)
            key = "sandbox-webhook-key"  # what dev gives the receiver with the sandbox
            poller.start()
            http = requests.Session()
            began, prefix = time.monotonic(), f"bench{int(time.time())}"
            for i in range(count):
                if (wait := began + i / args.rate - time.monotonic()) > 0:
                    time.sleep(wait)
                envelope = merchant.next_event(i, f"{prefix}-{i:05d}")
                body = json.dumps(envelope).encode()
                answer = http.post(
                    f"{receiver}/webhooks/ordergroove",
                    data=body,
                    timeout=30,
                    headers={
                        "Content-Type": "application/json",
                        SIGNATURE_HEADER: signature_header(body, [key], int(time.time())),
                    },
                )
                if answer.status_code == 200:
                    sent["og-" + envelope["id"]] = (envelope["type"], time.monotonic())
                else:
                    refused.append(f"{envelope['id']}: {answer.status_code} {answer.text[:100]}")
            send_seconds = time.monotonic() - began
            deadline = time.monotonic() + args.timeout
            while time.monotonic() < deadline and not all(e in seen for e in sent):
                if dev.proc.poll() is not None:
                    raise RuntimeError(f"dev exited with {dev.proc.returncode} during the run")
                time.sleep(args.poll)
            time.sleep(args.poll * 2)  # let a final poll land
        except Exception:
            sys.stderr.write("last lines of dev:\n" + "\n".join(list(dev.lines)[-40:]) + "\n")
            raise
        finally:
            stop.set()
            load = os.getloadavg()
            code = dev.stop()
            print(f"dev stopped (exit {code})", file=sys.stderr)

    latencies = {e: seen[e] - at for e, (_, at) in sent.items() if e in seen}
    missing = [e for e in sent if e not in seen]
    rows: list[tuple[str, list[float], int]] = [("all", list(latencies.values()), len(sent))]
    for kind in sorted({k for k, _ in sent.values()}):
        ids = [e for e, (k, _) in sent.items() if k == kind]
        rows.append((kind, [latencies[e] for e in ids if e in latencies], len(ids)))
    print(
        f"Webhook end-to-end latency: {len(sent)} signed webhooks answered 200 over "
        f"{send_seconds:.0f} s ({args.rate:g}/s target), default 15 s sensor, Ometria polled "
        f"every {args.poll:g} s; {len(os.sched_getaffinity(0))} CPU(s); load average at the "
        f"end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min).\n"
    )
    print(
        "| events | sent (200) | arrived | p50 s | p95 s | max s | missing after "
        f"{args.timeout:g} s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, values, total in rows:
        stats = (
            f"{pct(values, 0.5):.1f} | {pct(values, 0.95):.1f} | {max(values):.1f}"
            if values
            else "- | - | -"
        )
        print(f"| {name} | {total} | {len(values)} | {stats} | {total - len(values)} |")
    if refused:
        print(f"\nNot answered 200: {len(refused)}; first: {refused[0]}")
    all_values = rows[0][1]
    ok = not missing and not refused and bool(all_values) and pct(all_values, 0.95) < 60
    print("\nTarget p95 < 60 s: " + ("met" if ok else "NOT met") + ".")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
