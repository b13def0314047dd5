"""Sync benchmark (issue 3): `og-pipeline sync` against a bare API walk, at two sizes.

For each size (the smaller ``--also`` first, then ``--subscriptions``), in one invocation:

1. a fresh pair of databases (pipeline, Dagster) on one embedded Postgres in a temp dir;
2. the sandbox as its own process, with a fixed seed, start date and "now" (14 days later);
3. the floor: a bare cursor walk of customers, subscriptions, orders and items over the sync's
   window ([start - 5 min, end - 1 s], as ``sync_window`` computes it), in this process, no DB;
   walked again after the sync, and the mean of the two used, as the machine's speed drifts;
4. ``og-pipeline sync --start D --end D+14d`` as a subprocess: wall time, peak memory (PSS of
   it and its children, psutil, every 0.1 s), and each step's time from the run's
   STEP_START/STEP_SUCCESS events, read from the Dagster event log in Postgres (log-line
   timestamps would depend on the console format);
5. the push rate, from the sandbox's ``/_sandbox/ometria/requests`` log.

Then the latency curve: the same at one size (``--curve``, default 50,000) with every sandbox
answer delayed by each of ``--latencies``, as a remote API's round trip would be. It prints
Markdown tables and writes them into bench/README.md between the results markers
(the rest of the README is left alone). Run: ``python bench/sync_bench.py [--subscriptions N]
[--also M]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import requests

from og_pipeline.db.connection import ensure_database
from og_pipeline.db.embedded import EmbeddedPostgres
from og_pipeline.db.urls import for_dagster
from og_pipeline.ordergroove.client import OrdergrooveClient
from og_pipeline.ordergroove.sync import RESOURCES

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "bench" / "README.md"
START = date(2026, 10, 1)
DAYS = 14
OVERLAP = timedelta(minutes=5)  # the sync's default (OG_SYNC_OVERLAP_MINUTES)
PAGE_SIZE = 100  # OrdergrooveResource's default
RATE_LIMIT = 8.0
OG_KEY, OMETRIA_KEY = "sandbox-og-key", "sandbox-ometria-key"
TARGET = 1.3
MARKERS = ("<!-- sync-bench:start -->", "<!-- sync-bench:end -->")
STEPS = ("ordergroove_raw_records", "contact_subscription_stats", "ometria_contact_fields")


@dataclass
class Result:
    subscriptions: int
    latency: float = 0.0  # seconds the sandbox waits before each answer
    sandbox: dict[str, int] = field(default_factory=dict)
    floors: list[float] = field(default_factory=list)  # the walk before and after the sync
    floor_records: int = 0
    wall_s: float = 0.0
    steps: dict[str, float] = field(default_factory=dict)
    summary: dict[str, str] = field(default_factory=dict)
    peak_memory: int = 0
    sync_cpu_s: float = 0.0
    busy: dict[str, float] = field(default_factory=dict)  # machine-wide CPU %, per phase
    push: dict[str, float] = field(default_factory=dict)

    @property
    def floor_s(self) -> float:
        """The floor: the mean of the walks before and after the sync, since this machine's
        speed drifts by ±20% over minutes and the sync runs between them."""
        return sum(self.floors) / len(self.floors) if self.floors else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sandbox(n: int, port: int, log: Path, latency: float = 0.0) -> subprocess.Popen[bytes]:
    now = datetime.combine(START + timedelta(days=DAYS), datetime.min.time())
    cmd = [
        sys.executable,
        "-m",
        "og_pipeline",
        "sandbox",
        "--port",
        str(port),
        "--subscriptions",
        str(n),
        "--seed",
        "1",
        "--start-date",
        START.isoformat(),
        "--now",
        now.isoformat(),
        "--ometria-rate-limit",
        str(RATE_LIMIT),
    ]
    if latency > 0:
        # Every answer (both APIs) waits this long: a remote API's round trip instead of a
        # co-located sandbox competing for the same CPUs as the sync.
        cmd += ["--slow-rate", "1", "--slow-seconds", str(latency)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sandbox exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=1).ok:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop(proc)
    raise RuntimeError("sandbox did not answer within 600 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def window() -> tuple[datetime, datetime]:
    start = datetime.combine(START, datetime.min.time(), tzinfo=UTC)
    return start, start + timedelta(days=DAYS)


def floor_walk(api_url: str) -> tuple[float, int]:
    """The four cursor walks of sync_window, sequential, with nothing done to the pages."""
    start, end = window()
    records = 0
    began = time.perf_counter()
    with OrdergrooveClient(api_url, OG_KEY, page_size=PAGE_SIZE) as client:
        for resource in RESOURCES:
            for page in client.iter_updated(resource, start - OVERLAP, end - timedelta(seconds=1)):
                records += len(page)
    return time.perf_counter() - began, records


def run_sync(env: dict[str, str], work: Path) -> tuple[float, int, float, str]:
    """Runs the command: wall seconds, peak PSS bytes (with its children), CPU seconds, stdout."""
    start, end = window()
    cmd = [
        sys.executable,
        "-m",
        "og_pipeline",
        "sync",
        "--start",
        start.strftime("%Y-%m-%d"),
        "--end",
        end.strftime("%Y-%m-%d"),
    ]
    out_path, err_path = work / "sync.out", work / "sync.err"
    peak, cpu = 0, 0.0
    with out_path.open("wb") as out, err_path.open("wb") as err:
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=err)
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                # PSS, not RSS: a child between fork and exec (Dagster's log tailers, the
                # writer's spawn) would count the parent's shared pages twice.
                used = watched.memory_full_info().pss
                used += sum(c.memory_full_info().pss for c in watched.children(recursive=True))
                peak = max(peak, used)
                times = watched.cpu_times()
                cpu = times.user + times.system
            except psutil.Error:
                pass  # exiting between poll() and memory_info()
            time.sleep(0.1)
        wall = time.perf_counter() - began
    stdout = out_path.read_text()
    if proc.returncode != 0:
        raise RuntimeError(
            f"sync exited {proc.returncode}:\n{stdout}\n{err_path.read_text()[-4000:]}"
        )
    return wall, peak, cpu, stdout


def step_times(dagster_url: str, run_id: str, home: Path) -> dict[str, float]:
    """STEP_START -> STEP_SUCCESS seconds per step, from the run's event log in Postgres."""
    import dagster as dg

    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {json.dumps(dagster_url)}\n"
        "telemetry:\n  enabled: false\n"
    )
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}
    begun: dict[str, float] = {}
    took: dict[str, float] = {}
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for entry in instance.all_logs(run_id, of_type=kinds):
            if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
                begun[entry.step_key] = entry.timestamp
            else:
                took[entry.step_key] = entry.timestamp - begun[entry.step_key]
    return took


def push_rate(base: str) -> dict[str, float]:
    log = requests.get(f"{base}/_sandbox/ometria/requests", timeout=60).json()
    if len(log) < 2:
        return {"requests": len(log)}
    stamps = [r["monotonic"] for r in log]
    span = max(stamps) - min(stamps)
    ok = [r for r in log if r["status"] == 200]
    return {
        "requests": len(log),
        "ok": len(ok),
        "throttled": sum(r["status"] == 429 for r in log),
        "span": span,
        "req_per_s": (len(log) - 1) / span,
        "ok_per_s": (len(ok) - 1) / span,
        "records_per_s": sum(r["count"] for r in ok) / span,
    }


def bench(n: int, server: EmbeddedPostgres, work: Path, latency: float = 0.0) -> Result:
    result = Result(n, latency=latency)
    work.mkdir(parents=True)
    tag = f"{n}_{round(latency * 1000)}ms"
    og_db, dagster_db = f"og_pipeline_{tag}", f"og_dagster_{tag}"
    for name in (og_db, dagster_db):
        ensure_database(server.url(), name)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    print(f"[{n}] starting the sandbox on port {port}", flush=True)
    sandbox = start_sandbox(n, port, work / "sandbox.log", latency)
    try:
        result.sandbox = requests.get(f"{base}/_sandbox/info", timeout=30).json()["counts"]
        print(f"[{n}] sandbox: {result.sandbox}; walking the floor", flush=True)
        psutil.cpu_percent()
        floor, result.floor_records = floor_walk(f"{base}/ordergroove")
        result.floors.append(floor)
        result.busy["floor"] = psutil.cpu_percent()
        print(f"[{n}] floor: {result.floor_records} records in {floor:.1f} s", flush=True)
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OG_", "ORDERGROOVE_", "OMETRIA_", "DAGSTER_"))
        }
        env.update(
            {
                "ORDERGROOVE_API_URL": f"{base}/ordergroove",
                "ORDERGROOVE_API_KEY": OG_KEY,
                "OMETRIA_API_URL": f"{base}/ometria",
                "OMETRIA_API_KEY": OMETRIA_KEY,
                "OG_SYNC_START_DATE": START.isoformat(),
                "OG_HOME": str(work / "og_home"),
                "OG_DATABASE_URL": server.url(og_db),
                "OG_DAGSTER_DATABASE_URL": for_dagster(server.url(dagster_db)),
            }
        )
        print(
            f"[{n}] og-pipeline sync (the push phase is bound by {RATE_LIMIT:g} req/s)", flush=True
        )
        psutil.cpu_percent()
        result.wall_s, result.peak_memory, result.sync_cpu_s, stdout = run_sync(env, work)
        result.busy["sync"] = psutil.cpu_percent()
        result.summary = dict(
            line.strip().split(": ", 1)
            for line in stdout.splitlines()
            if line.startswith("  ") and ": " in line
        )
        run_id = re.search(r"^run (\S+) succeeded", stdout, re.MULTILINE)
        if run_id is None:
            raise RuntimeError(f"no run id in the sync's output:\n{stdout}")
        result.steps = step_times(env["OG_DAGSTER_DATABASE_URL"], run_id.group(1), work / "dagster")
        result.push = push_rate(base)
        result.floors.append(floor_walk(f"{base}/ordergroove")[0])
        print(f"[{n}] floor again after the sync: {result.floors[-1]:.1f} s", flush=True)
        print(f"[{n}] sync {result.wall_s:.1f} s, steps {result.steps}", flush=True)
    finally:
        stop(sandbox)
    return result


def table(results: list[Result]) -> str:
    def row(label: str, fmt: Any) -> str:
        return f"| {label} | " + " | ".join(fmt(r) for r in results) + " |"

    def raw(r: Result) -> float:
        return r.steps.get(STEPS[0], float("nan"))

    mib = 1024 * 1024
    lines = [
        "| | " + " | ".join(f"{r.subscriptions:,} subscriptions" for r in results) + " |",
        "| --- |" + " --- |" * len(results),
        row(
            "sandbox customers / orders",
            lambda r: f"{r.sandbox.get('customers', 0):,} / {r.sandbox.get('orders', 0):,}",
        ),
        row("records walked (4 resources)", lambda r: f"{r.floor_records:,}"),
        row(
            "**floor**: bare API walk, before / after the sync",
            lambda r: " / ".join(f"{f:.1f} s" for f in r.floors),
        ),
        row(
            "floor used (mean of the two)",
            lambda r: f"{r.floor_s:.1f} s ({r.floor_records / r.floor_s:,.0f} rec/s)",
        ),
        row(
            "**raw step** (`ordergroove_raw_records`)",
            lambda r: (
                f"{raw(r):.1f} s ({int(r.summary.get('records_fetched', 0)) / raw(r):,.0f} rec/s)"
            ),
        ),
        row(
            f"**raw step / floor** (target ≤ {TARGET}x)", lambda r: f"**{raw(r) / r.floor_s:.2f}x**"
        ),
        row(
            "stats step (`contact_subscription_stats`)",
            lambda r: f"{r.steps.get(STEPS[1], 0):.1f} s",
        ),
        row("push step (`ometria_contact_fields`)", lambda r: f"{r.steps.get(STEPS[2], 0):.1f} s"),
        row("sync total wall time", lambda r: f"{r.wall_s:.1f} s"),
        row("sync total / floor", lambda r: f"{r.wall_s / r.floor_s:.1f}x"),
        row(
            "sync total − push step, / floor",
            lambda r: f"{(r.wall_s - r.steps.get(STEPS[2], 0)) / r.floor_s:.2f}x",
        ),
        row(
            "sync records/s (records fetched / total)",
            lambda r: f"{int(r.summary.get('records_fetched', 0)) / r.wall_s:,.0f}",
        ),
        row(
            "**peak memory** (PSS) of the sync process and its children",
            lambda r: f"**{r.peak_memory / mib:,.0f} MiB**",
        ),
        row("sync process CPU time (user + sys)", lambda r: f"{r.sync_cpu_s:.0f} s"),
        row(
            f"machine CPU busy, floor / sync ({os.cpu_count()} CPUs, all processes)",
            lambda r: f"{r.busy.get('floor', 0):.0f}% / {r.busy.get('sync', 0):.0f}%",
        ),
        row(
            "contacts pushed / accepted",
            lambda r: f"{r.summary.get('contacts_pushed')} / {r.summary.get('contacts_accepted')}",
        ),
        row(
            "push requests (200 / 429)",
            lambda r: (
                f"{r.push.get('requests', 0):,.0f} ({r.push.get('ok', 0):,.0f} / "
                f"{r.push.get('throttled', 0):,.0f})"
            ),
        ),
        row(
            f"push requests/s (sandbox limit {RATE_LIMIT:g}/s)",
            lambda r: (
                f"{r.push.get('req_per_s', 0):.2f} (accepted {r.push.get('ok_per_s', 0):.2f})"
            ),
        ),
        row("push records/s", lambda r: f"{r.push.get('records_per_s', 0):,.0f}"),
    ]
    return "\n".join(lines)


def curve_table(results: list[Result]) -> str:
    """Raw step against the floor as the API's round trip grows (one size)."""

    def raw(r: Result) -> float:
        return r.steps.get(STEPS[0], float("nan"))

    lines = [
        (
            "| sandbox delay per answer | floor | raw step | **raw step / floor** "
            "| sync total − push step, / floor | peak memory (PSS) |"
        ),
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.latency * 1000:g} ms | {r.floor_s:.1f} s | {raw(r):.1f} s | "
            f"**{raw(r) / r.floor_s:.2f}x** | "
            f"{(r.wall_s - r.steps.get(STEPS[2], 0)) / r.floor_s:.2f}x | "
            f"{r.peak_memory / 2**20:,.0f} MiB |"
        )
    return "\n".join(lines)


def machine() -> str:
    model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else ""
    )
    return (
        f"{os.cpu_count()} CPUs ({model}), {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def write_readme(section: str) -> None:
    text = (
        README.read_text() if README.exists() else f"# Benchmarks\n\n{MARKERS[0]}\n{MARKERS[1]}\n"
    )
    head, rest = text.split(MARKERS[0], 1)
    tail = rest.split(MARKERS[1], 1)[1]
    README.write_text(f"{head}{MARKERS[0]}\n{section}\n{MARKERS[1]}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscriptions", type=int, default=200_000)
    parser.add_argument("--also", type=int, default=50_000, help="a second, smaller size (0: none)")
    parser.add_argument(
        "--no-readme", action="store_true", help="print only; leave README.md alone"
    )
    parser.add_argument(
        "--page-latency",
        type=float,
        default=0.0,
        help="seconds the sandbox waits before every answer, as a remote API would",
    )
    parser.add_argument(
        "--curve", type=int, default=50_000, help="size for the latency curve (0: no curve)"
    )
    parser.add_argument(
        "--latencies",
        default="0.002,0.005,0.02,0.05",
        help="comma-separated sandbox delays per answer (seconds) for the curve",
    )
    args = parser.parse_args()
    sizes = sorted({args.subscriptions, args.also} - {0})
    latencies = [float(x) for x in args.latencies.split(",") if x.strip()] if args.curve else []
    results: list[Result] = []
    curve: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="og-sync-bench-") as tmp:
        os.chmod(tmp, 0o755)  # as root, the embedded server runs as its own user
        with EmbeddedPostgres(Path(tmp) / "postgres", delete=True) as server:
            for n in sizes:
                results.append(bench(n, server, Path(tmp) / str(n), args.page_latency))
            for latency in latencies:
                curve.append(bench(args.curve, server, Path(tmp) / f"curve-{latency}", latency))
    command = "python bench/sync_bench.py " + " ".join(sys.argv[1:])
    section = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.\n\n"
        f"Command: `{command.strip()}` (sandbox seed 1, window {START} + {DAYS} days, "
        f"Ometria rate limit {RATE_LIMIT:g}/s).\n\n{table(results)}\n"
    )
    if curve:
        section += (
            f"\nThe same at {args.curve:,} subscriptions with every sandbox answer delayed, "
            f"as a remote API's round trip would (same run, same machine):\n\n"
            f"{curve_table(curve)}\n"
        )
    print("\n" + section)
    if not args.no_readme:
        write_readme(section)
        print(f"written to {README.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
