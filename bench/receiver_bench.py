"""Load test of the webhook receiver on 127.0.0.1, with durable commits; prints a Markdown table.

    python bench/receiver_bench.py [--events 20000] [--concurrency 32] [--workers 2] [--rate 1000]

Three processes, all on this machine: an embedded Postgres (a fresh temporary cluster with the
default fsync=on and synchronous_commit=on, deleted at the end), the receiver (`receiver.run`,
uvicorn with `--workers` processes) and a client process. The client builds and signs every
request before the clock starts (realistic sandbox envelopes, each with its own event id), then
keeps `--concurrency` keep-alive connections busy, in two phases:

- closed loop: each connection sends its next event as soon as the previous answer arrives
  (the receiver's maximum throughput at that concurrency);
- open loop at `--rate` events/s (skipped with --rate 0): sends are scheduled on the clock and the
  latency counts from the scheduled time, so queueing behind a slow answer is not hidden.

Every event must be answered 200 and the staging table must end with exactly one row per event
sent. Bounded: fixed event counts, a timeout on every wait, and it stops what it started.
Target (issue 4): at least 1,000 events/s on 2 cores with p99 under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import requests

KEY = "bench-webhook-key"
HOST = "127.0.0.1"
PATH = "/webhooks/ordergroove"


# ------------------------------------------------------------------ client (its own process)


def build_requests(count: int, port: int, prefix: str, seed: int) -> list[bytes]:
    """`count` signed HTTP/1.1 requests, each a sandbox envelope with a unique event id."""
    from datetime import UTC, datetime, timedelta

    from og_pipeline.sandbox import Merchant, MerchantSpec, WebhookSender, signature_header

    now = datetime.now(UTC)
    merchant = Merchant(
        MerchantSpec(subscriptions=2000, seed=seed, start=now - timedelta(days=7), now=now)
    )
    sender = WebhookSender(merchant, "http://unused", [KEY], seed=seed)
    live = merchant.subscription_ids(live=True)[:100]
    kinds = ["subscription.create", "subscription.cancel", "subscription.change_frequency"]
    templates = [sender.event_for(kinds[i % 3], subscription_id=sub) for i, sub in enumerate(live)]
    ts = int(time.time())
    out = []
    for i in range(count):
        envelope = dict(templates[i % len(templates)], id=f"{prefix}-{i:08d}")
        body = json.dumps(envelope).encode()
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            f"OrderGroove-Signature: {signature_header(body, [KEY], ts)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bool]:
    """Sends one request, reads one response; (status, server wants the connection closed)."""
    writer.write(request)
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed by the receiver")
    status = int(status_line.split()[1])
    length, close = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "connection" and value.strip().lower() == "close":
            close = True
    await reader.readexactly(length)
    return status, close


async def run_phase(
    port: int, reqs: list[bytes], concurrency: int, rate: float | None, timeout: float
) -> dict[str, Any]:
    latencies: list[float] = [0.0] * len(reqs)
    statuses: dict[int, int] = {}
    next_index = iter(range(len(reqs)))
    began = time.perf_counter()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        for i in next_index:
            scheduled = began + i / rate if rate else time.perf_counter()
            if rate and (delay := scheduled - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            status, close = await _exchange(reader, writer, reqs[i])
            latencies[i] = time.perf_counter() - scheduled
            statuses[status] = statuses.get(status, 0) + 1
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection(HOST, port)
        writer.close()

    await asyncio.wait_for(asyncio.gather(*(connection() for _ in range(concurrency))), timeout)
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return {
        "events": len(reqs),
        "seconds": elapsed,
        "rate": len(reqs) / elapsed,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "max_ms": ordered[-1] * 1000,
        "statuses": statuses,
    }


def client_main(args: argparse.Namespace) -> None:
    warmup = build_requests(args.warmup, args.port, "warm", 1)
    closed = build_requests(args.events, args.port, "closed", 2)
    paced = build_requests(args.events, args.port, "paced", 3) if args.rate else []
    runner: Callable[[Coroutine[Any, Any, dict[str, Any]]], dict[str, Any]]
    try:
        import uvloop  # the client is as light as it can be, leaving the CPU to the receiver

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    results: dict[str, Any] = {}
    results["warmup"] = runner(run_phase(args.port, warmup, args.concurrency, None, args.timeout))
    results["closed"] = runner(run_phase(args.port, closed, args.concurrency, None, args.timeout))
    if paced:
        results["paced"] = runner(
            run_phase(args.port, paced, args.concurrency, args.rate, args.timeout)
        )
    print(json.dumps(results))


# ------------------------------------------------------------------ orchestration


def _wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the receiver exited with {process.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the receiver did not become healthy")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per measured phase")
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--concurrency", type=int, default=16, help="client connections")
    parser.add_argument("--workers", type=int, default=2, help="receiver processes")
    parser.add_argument("--pool-size", type=int, default=16, help="connections per receiver")
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop rate; 0 skips")
    parser.add_argument("--timeout", type=float, default=600.0, help="per phase, seconds")
    parser.add_argument(
        "--role", choices=["bench", "client"], default="bench", help=argparse.SUPPRESS
    )
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "client":
        client_main(args)
        return 0

    from common import free_port  # here: the client process imports only what it needs

    from og_pipeline.db.connection import connect, ensure_database, one
    from og_pipeline.db.embedded import EmbeddedPostgres
    from og_pipeline.db.migrate import migrate
    from og_pipeline.db.urls import with_database

    with (
        tempfile.TemporaryDirectory(prefix="og-receiver-bench-") as tmp,
        EmbeddedPostgres(Path(tmp) / "pg", delete=True) as pg,
    ):
        ensure_database(pg.url(), "og_bench")
        url = with_database(pg.url(), "og_bench")
        migrate(url)
        with connect(url) as conn:
            settings = {
                name: one(conn.execute(f"SHOW {name}"))[0]
                for name in ("fsync", "synchronous_commit", "wal_sync_method", "server_version")
            }
        port = free_port()
        serve = (
            "from og_pipeline.webhooks.receiver import run; "
            f"run({HOST!r}, {port}, database_url={url!r}, keys=[{KEY!r}], "
            f"max_body_bytes=1048576, workers={args.workers}, pool_max_size={args.pool_size})"
        )
        log_path = Path(tmp) / "receiver.log"
        with open(log_path, "wb") as log_file:
            # Its own process group, so that stopping it stops its uvicorn workers too.
            receiver = subprocess.Popen(
                [sys.executable, "-c", serve],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                _wait_healthy(f"http://{HOST}:{port}/healthz", receiver, 60)
                client = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--role",
                        "client",
                        "--port",
                        str(port),
                        "--events",
                        str(args.events),
                        "--warmup",
                        str(args.warmup),
                        "--concurrency",
                        str(args.concurrency),
                        "--rate",
                        str(args.rate),
                        "--timeout",
                        str(args.timeout),
                    ],
                    capture_output=True,
                    timeout=args.timeout * 3 + 300,
                    check=False,
                )
            finally:
                os.killpg(receiver.pid, signal.SIGINT)
                try:
                    receiver.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(receiver.pid, signal.SIGKILL)
                    receiver.wait()
        if client.returncode != 0:
            sys.stderr.write(client.stderr.decode())
            return 1
        results = json.loads(client.stdout)
        with connect(url) as conn:
            rows = one(conn.execute("SELECT count(*) FROM og.webhook_events"))[0]
        log_lines = sum(1 for line in log_path.read_text().splitlines() if "webhook 200" in line)

    sent = sum(r["events"] for r in results.values())
    ok = sum(r["statuses"].get("200", 0) for r in results.values())  # JSON keys are strings
    results.pop("warmup")
    cpus = len(os.sched_getaffinity(0))
    print(
        f"Receiver benchmark: {args.workers} uvicorn worker(s), pool {args.pool_size} per "
        f"worker, {args.concurrency} client connections, {cpus} CPU(s) shared by Postgres, "
        f"receiver and client; Postgres {settings['server_version']}, fsync={settings['fsync']},"
        f" synchronous_commit={settings['synchronous_commit']}, "
        f"wal_sync_method={settings['wal_sync_method']}.\n"
    )
    print("| phase | events | events/s | p50 ms | p90 ms | p99 ms | max ms | answers |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, r in results.items():
        label = "closed loop (max)" if name == "closed" else f"open loop at {args.rate:g}/s"
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items()))
        print(
            f"| {label} | {r['events']} | {r['rate']:.0f} | {r['p50_ms']:.1f} | "
            f"{r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | {answers} |"
        )
    print(
        f"\nRows in og.webhook_events: {rows} for {sent} events sent (warm-up {args.warmup} "
        f"included); receiver log lines for 200s: {log_lines}."
    )
    if rows != sent or ok != sent:
        print("FAILED: not every event was answered 200 and stored exactly once")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
