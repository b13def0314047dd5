"""First-sync benchmark (issue 11): a year's first sync against its floor, at several sizes.

For each size (``--sizes``, smallest first), in one invocation:

1. the sandbox as its own process: a merchant of N subscriptions whose history spans
   ``--days`` from ``--start`` (seed 1), every answer delayed by ``--latency`` seconds (a remote
   API's round trip) and Ordergroove's request limit enforced (``--requests-per-minute``, 6,000:
   429 with Retry-After over it, in any 60 s);
2. the floor, in this process, no database: each object type's bare cursor walk
   (``OrdergrooveClient.iter_updated`` over the sync's whole window, page size 100, the same
   6,000/min limiter) alone, one after another: the longest of them is what a sync walking the
   four at once cannot beat, their sum what a sequential design pays; and the push floor, the
   contacts with an e-mail (the sandbox's ground truth) at 8 requests/s of 100 records;
3. ``og-pipeline sync --start D --end D+days`` as a subprocess against a fresh pair of
   databases on one embedded Postgres: a run of ``ordergroove_raw_sync`` over the range, then one
   of ``contacts_push``. Its time is split with the two runs' event logs (a DagsterInstance on
   the same Postgres): Dagster's bookkeeping before the walk (process start to the raw step's
   STEP_START, with the run's ASSET_MATERIALIZATION_PLANNED events counted), the walk and write
   (raw step), stats, push (the contacts_push steps), and Dagster's bookkeeping after (the rest,
   with the raw step's per-partition ASSET_MATERIALIZATION events counted); peak memory (PSS of
   the process tree, psutil); requests per minute reached (the client's ``requests`` over the
   walk's time); push requests per second (the sandbox's ``/_sandbox/ometria/requests``);
4. after the sync, the longest walk alone again (the machine's speed drifts; ``--no-floor-after``
   skips it), and the mean of the two is the floor used.

It prints Markdown tables (and, with ``--json PATH``, the raw figures). Run:
``python bench/first_sync_bench.py [--sizes 20000,100000] [--days 365] [--latency 0.05]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import requests
from sync_bench import free_port, machine, push_rate, stop

from og_pipeline.db.connection import ensure_database
from og_pipeline.db.embedded import EmbeddedPostgres
from og_pipeline.db.urls import for_dagster
from og_pipeline.http_common import RateLimiter
from og_pipeline.ordergroove.client import OrdergrooveClient
from og_pipeline.ordergroove.sync import RESOURCES

ROOT = Path(__file__).resolve().parents[1]
OVERLAP = timedelta(minutes=5)  # the sync's default (OG_SYNC_OVERLAP_MINUTES)
PAGE_SIZE = 100  # OrdergrooveResource's default
PUSH_RATE, PUSH_BATCH = 8.0, 100  # Ometria: requests/s, records per request
OG_KEY, OMETRIA_KEY = "sandbox-og-key", "sandbox-ometria-key"
TARGET, MEMORY_TARGET = 1.25, 300 * 2**20
RAW, STATS, PUSH = "ordergroove_raw_records", "contact_subscription_stats", "ometria_contact_fields"
POLL = 0.2  # seconds between memory readings


@dataclass
class Timeline:
    """Wall-clock stamps (time.time()) of one sync, from its process and its runs' events."""

    process_start: float = 0.0
    process_end: float = 0.0
    raw_first_event: float = 0.0
    raw_run_start: float = 0.0
    raw_step_start: float = 0.0
    walk_done: float = 0.0  # the step's "synced N records" line
    first_materialization: float = 0.0
    last_materialization: float = 0.0
    raw_step_success: float = 0.0
    raw_run_end: float = 0.0
    push_first_event: float = 0.0
    stats_start: float = 0.0
    stats_end: float = 0.0
    push_start: float = 0.0
    push_end: float = 0.0
    push_run_end: float = 0.0
    planned: int = 0  # ASSET_MATERIALIZATION_PLANNED events of the raw run
    planned_push: int = 0  # ... and of the push run
    checks_planned: int = 0  # ASSET_CHECK_EVALUATION_PLANNED events of the raw run
    materializations: int = 0  # ASSET_MATERIALIZATION events of the raw run
    raw_events: int = 0  # all events of the raw run
    push_events: int = 0
    walk_finished: dict[str, float] = field(default_factory=dict)  # from the progress lines
    # Each run's events, consecutive ones of a kind folded: [kind, count, first, last] (--json).
    folded: dict[str, list[list[Any]]] = field(default_factory=dict)

    def span(self, a: str, b: str) -> float:
        return float(getattr(self, b) - getattr(self, a))


@dataclass
class Result:
    subscriptions: int
    latency: float
    sandbox: dict[str, int] = field(default_factory=dict)
    contacts_with_email: int = 0
    walks: dict[str, dict[str, float]] = field(default_factory=dict)  # resource -> s, records...
    longest_again: float | None = None
    summary: dict[str, str] = field(default_factory=dict)
    timeline: Timeline = field(default_factory=Timeline)
    peak_memory: int = 0
    peak_memory_main: int = 0
    peak_memory_children: int = 0  # the writer process, Dagster's helpers (their sum)
    peak_memory_at: float = 0.0  # time.time() of the tree's peak
    cpu_busy: float = 0.0
    load_before: float = 0.0
    push: dict[str, float] = field(default_factory=dict)

    @property
    def longest_resource(self) -> str:
        """The longest of the walks measured (``--floor-walks`` may estimate the others)."""
        walked = [r for r, w in self.walks.items() if not w.get("estimated")]
        return max(walked, key=lambda r: self.walks[r]["seconds"])

    @property
    def longest(self) -> float:
        """The longest walk alone: the mean of before and after the sync if both were walked."""
        first = self.walks[self.longest_resource]["seconds"]
        return first if self.longest_again is None else (first + self.longest_again) / 2

    @property
    def sequential(self) -> float:
        return sum(w["seconds"] for w in self.walks.values())

    @property
    def push_floor(self) -> float:
        return self.contacts_with_email / (PUSH_RATE * PUSH_BATCH)

    @property
    def floor(self) -> float:
        return self.longest + self.push_floor

    @property
    def total(self) -> float:
        return self.timeline.span("process_start", "process_end")

    @property
    def records(self) -> int:
        return int(sum(w["records"] for w in self.walks.values()))

    def peak_phase(self) -> str:
        """Where the sync was when its process tree peaked."""
        t, at = self.timeline, self.peak_memory_at
        for phase, end in (
            ("before the walk", t.raw_step_start),
            ("walk", t.walk_done),
            ("raw step's materializations", t.raw_run_end),
            ("push run", t.push_run_end),
        ):
            if at <= end:
                return phase
        return "exit"

    def buckets(self) -> dict[str, float]:
        t = self.timeline
        before = t.span("process_start", "raw_step_start")
        walk = t.span("raw_step_start", "walk_done")
        stats = t.span("stats_start", "stats_end")
        push = t.span("push_start", "push_end")
        return {
            "before": before,
            "walk": walk,
            "stats": stats,
            "push": push,
            "after": self.total - before - walk - stats - push,
        }


def start_sandbox(
    args: argparse.Namespace, n: int, port: int, log: Path
) -> subprocess.Popen[bytes]:
    end = datetime.combine(args.start + timedelta(days=args.days), datetime.min.time())
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
        args.start.isoformat(),
        "--now",
        end.isoformat(),
        "--ometria-rate-limit",
        str(PUSH_RATE),
        "--requests-per-minute",
        str(args.requests_per_minute),
    ]
    if args.latency > 0:
        cmd += ["--slow-rate", "1", "--slow-seconds", str(args.latency)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sandbox exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=5).ok:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop(proc)
    raise RuntimeError("sandbox did not answer within 600 s")


def sync_range(args: argparse.Namespace) -> tuple[datetime, datetime]:
    start = datetime.combine(args.start, datetime.min.time(), tzinfo=UTC)
    return start, start + timedelta(days=args.days)


def walk_alone(api_url: str, resource: str, start: datetime, end: datetime, rpm: float) -> dict:
    """One bare cursor walk over the sync's window, under the sync's request limiter."""
    with OrdergrooveClient(
        api_url, OG_KEY, page_size=PAGE_SIZE, limiter=RateLimiter(rpm / 60)
    ) as client:
        began = time.perf_counter()
        for _ in client.iter_updated(resource, start - OVERLAP, end - timedelta(seconds=1)):
            pass
        seconds = time.perf_counter() - began
        return {
            "seconds": seconds,
            "records": client.stats.records,
            "pages": client.stats.pages,
            "requests": client.stats.requests,
            "retries": client.stats.retries,
        }


def run_sync(
    args: argparse.Namespace, env: dict[str, str], work: Path, result: Result
) -> tuple[str, float]:
    """Runs the command, sampling the PSS of its process tree; its stdout and the CPU busy %."""
    start, end = sync_range(args)
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
    psutil.cpu_percent()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        result.timeline.process_start = time.time()
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True
        )
        deadline = time.monotonic() + args.sync_timeout
        try:
            watched = psutil.Process(proc.pid)
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"sync still running after {args.sync_timeout:.0f} s")
                try:
                    # PSS, not RSS: a child between fork and exec would count the parent's
                    # shared pages twice (see sync_bench).
                    main = watched.memory_full_info().pss
                    children = sum(
                        c.memory_full_info().pss for c in watched.children(recursive=True)
                    )
                    if main + children > result.peak_memory:
                        result.peak_memory, result.peak_memory_at = main + children, time.time()
                    result.peak_memory_main = max(result.peak_memory_main, main)
                    result.peak_memory_children = max(result.peak_memory_children, children)
                except psutil.Error:
                    pass  # a process exiting between the listing and the reading
                time.sleep(POLL)
            result.timeline.process_end = time.time()
        finally:
            if proc.poll() is None:
                kill_group(proc)
    busy = psutil.cpu_percent()
    stdout = out_path.read_text()
    if proc.returncode != 0:
        raise RuntimeError(
            f"sync exited {proc.returncode}:\n{stdout[-4000:]}\n{err_path.read_text()[-4000:]}"
        )
    return stdout, busy


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """The sync and every process it started (its writer, Dagster's helpers)."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def read_timeline(dagster_url: str, raw_id: str, push_id: str, home: Path, t: Timeline) -> None:
    """Fills the run stamps and event counts from the Dagster event log in Postgres."""
    import dagster as dg

    kind = dg.DagsterEventType
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {json.dumps(dagster_url)}\n"
        "telemetry:\n  enabled: false\n"
    )
    walk_line = re.compile(r"^walks: (.*)$")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        raw = instance.all_logs(raw_id)
        push = instance.all_logs(push_id)
    t.raw_events, t.push_events = len(raw), len(push)
    t.raw_first_event, t.raw_run_end = raw[0].timestamp, raw[-1].timestamp
    t.push_first_event, t.push_run_end = push[0].timestamp, push[-1].timestamp
    t.folded = {"raw": fold(raw), "push": fold(push)}
    for entry in raw:
        event = entry.dagster_event
        if event is None:
            message = entry.user_message or ""
            if message.startswith("synced ") and " requests (" in message:
                t.walk_done = entry.timestamp
            progress = walk_line.match(message)
            if progress:
                for part in progress.group(1).split("; "):
                    resource = part.split(":", 1)[0]
                    if part.endswith(", done") and resource not in t.walk_finished:
                        t.walk_finished[resource] = entry.timestamp
            continue
        if event.event_type == kind.ASSET_MATERIALIZATION_PLANNED:
            t.planned += 1
        elif event.event_type == kind.ASSET_CHECK_EVALUATION_PLANNED:
            t.checks_planned += 1
        elif event.event_type == kind.RUN_START:
            t.raw_run_start = entry.timestamp
        elif event.event_type == kind.STEP_START and entry.step_key == RAW:
            t.raw_step_start = entry.timestamp
        elif event.event_type == kind.STEP_SUCCESS and entry.step_key == RAW:
            t.raw_step_success = entry.timestamp
        elif event.event_type == kind.ASSET_MATERIALIZATION:
            t.materializations += 1
            t.first_materialization = t.first_materialization or entry.timestamp
            t.last_materialization = entry.timestamp
    for entry in push:
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == kind.ASSET_MATERIALIZATION_PLANNED:
            t.planned_push += 1
        elif event.event_type in (kind.STEP_START, kind.STEP_SUCCESS):
            which = {STATS: "stats", PUSH: "push"}.get(entry.step_key or "")
            if which:
                edge = "start" if event.event_type == kind.STEP_START else "end"
                setattr(t, f"{which}_{edge}", entry.timestamp)
    missing = [
        name
        for name in ("raw_step_start", "walk_done", "raw_step_success", "stats_end", "push_end")
        if not getattr(t, name)
    ]
    if missing:
        raise RuntimeError(f"the runs' event logs lack {missing}")


def fold(entries: list[Any]) -> list[list[Any]]:
    """Consecutive events of one kind as one row: kind, count, first and last stamp."""
    rows: list[list[Any]] = []
    for entry in entries:
        event = entry.dagster_event
        kind = event.event_type.value if event is not None else "log: " + entry.user_message[:40]
        if rows and rows[-1][0] == kind:
            rows[-1][1] += 1
            rows[-1][3] = entry.timestamp
        else:
            rows.append([kind, 1, entry.timestamp, entry.timestamp])
    return rows


def contacts_with_email(base: str) -> int:
    truth = requests.get(f"{base}/_sandbox/ground_truth", timeout=300).json()
    return sum(1 for contact in truth.values() if contact.get("email"))


def estimate_unwalked(result: Result) -> None:
    """Walks left out by ``--floor-walks``: their pages (the sandbox's counts, 100 a page) at
    the walked ones' mean seconds per page, marked estimated. Only (b) uses them."""
    walked = list(result.walks.values())
    per_page = sum(w["seconds"] for w in walked) / sum(w["pages"] for w in walked)
    for resource in RESOURCES:
        if resource not in result.walks:
            # One line per order in the sandbox: its counts name no items.
            records = result.sandbox.get(resource, result.sandbox.get("orders", 0))
            pages = -(-records // PAGE_SIZE)
            result.walks[resource] = {
                "seconds": pages * per_page,
                "records": records,
                "pages": pages,
                "requests": pages,
                "retries": 0,
                "estimated": 1,
            }


def bench(args: argparse.Namespace, n: int, server: EmbeddedPostgres, work: Path) -> Result:
    result = Result(n, args.latency)
    work.mkdir(parents=True)
    og_db, dagster_db = f"og_pipeline_first_{n}", f"og_dagster_first_{n}"
    for name in (og_db, dagster_db):
        ensure_database(server.url(), name)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    start, end = sync_range(args)
    print(f"[{n:,}] starting the sandbox on port {port}", flush=True)
    sandbox = start_sandbox(args, n, port, work / "sandbox.log")
    try:
        result.sandbox = requests.get(f"{base}/_sandbox/info", timeout=60).json()["counts"]
        result.contacts_with_email = contacts_with_email(base)
        print(f"[{n:,}] sandbox: {result.sandbox}; the floor walks", flush=True)
        for resource in args.floor_walks:
            result.walks[resource] = walk_alone(
                f"{base}/ordergroove", resource, start, end, args.requests_per_minute
            )
            walk = result.walks[resource]
            print(
                f"[{n:,}]   {resource}: {walk['records']:,.0f} records, {walk['pages']:,.0f} "
                f"pages in {walk['seconds']:.1f} s",
                flush=True,
            )
        estimate_unwalked(result)
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
                "OG_SYNC_START_DATE": args.start.isoformat(),
                "OG_ORDERGROOVE_REQUESTS_PER_MINUTE": str(args.requests_per_minute),
                "OG_HOME": str(work / "og_home"),
                "OG_DATABASE_URL": server.url(og_db),
                "OG_DAGSTER_DATABASE_URL": for_dagster(server.url(dagster_db)),
            }
        )
        result.load_before = os.getloadavg()[0]
        print(f"[{n:,}] og-pipeline sync over {args.days} days", flush=True)
        stdout, result.cpu_busy = run_sync(args, env, work, result)
        result.summary = dict(
            line.strip().split(": ", 1)
            for line in stdout.splitlines()
            if line.startswith("  ") and ": " in line
        )
        runs = re.search(r"^run (\S+) and (\S+) succeeded", stdout, re.MULTILINE)
        if runs is None:
            raise RuntimeError(f"no run ids in the sync's output:\n{stdout}")
        read_timeline(
            env["OG_DAGSTER_DATABASE_URL"],
            runs.group(1),
            runs.group(2),
            work / "dagster",
            result.timeline,
        )
        result.push = push_rate(base)
        print(f"[{n:,}] sync {result.total:.1f} s: {result.buckets()}", flush=True)
        if not args.no_floor_after:
            again = walk_alone(
                f"{base}/ordergroove",
                result.longest_resource,
                start,
                end,
                args.requests_per_minute,
            )
            result.longest_again = again["seconds"]
            print(
                f"[{n:,}] {result.longest_resource} alone again: {again['seconds']:.1f} s",
                flush=True,
            )
    finally:
        stop(sandbox)
    return result


def verdict(ratio: float) -> str:
    return "under" if ratio <= TARGET else "over"


def fmt_s(seconds: float) -> str:
    return f"{seconds:,.1f} s"


def main_table(results: list[Result]) -> str:
    def row(label: str, cell: Any) -> str:
        return f"| {label} | " + " | ".join(cell(r) for r in results) + " |"

    def share(r: Result, seconds: float) -> str:
        return f"{fmt_s(seconds)} ({seconds / r.total:.0%})"

    def walk_cell(resource: str) -> Any:
        def cell(r: Result) -> str:
            walk = r.walks[resource]
            text = f"{fmt_s(walk['seconds'])} ({walk['pages']:,.0f} pages)"
            return f"≈ {text}, estimated, not walked" if walk.get("estimated") else text

        return cell

    def rpm(r: Result) -> str:
        walk = r.buckets()["walk"]
        return f"{int(r.summary.get('requests', 0)) / walk * 60:,.0f}"

    def longest(r: Result) -> str:
        text = f"{fmt_s(r.longest)} ({r.longest_resource})"
        if r.longest_again is not None:
            before = r.walks[r.longest_resource]["seconds"]
            text += f": {before:.1f} s before, {r.longest_again:.1f} s after the sync"
        return text

    mib = 2**20
    lines = [
        "| | " + " | ".join(f"{r.subscriptions:,} subscriptions" for r in results) + " |",
        "| --- |" + " --- |" * len(results),
        row(
            "sandbox customers / orders (= items)",
            lambda r: f"{r.sandbox.get('customers', 0):,} / {r.sandbox.get('orders', 0):,}",
        ),
        row("records walked (4 object types)", lambda r: f"{r.records:,}"),
        *(row(f"floor: {res} walk alone", walk_cell(res)) for res in RESOURCES),
        row("**(a) longest walk alone** (mean of before/after)", longest),
        row("(b) the four walks one after another", lambda r: fmt_s(r.sequential)),
        row(
            "push floor (contacts with an e-mail / 800 per s)",
            lambda r: f"{fmt_s(r.push_floor)} ({r.contacts_with_email:,} contacts)",
        ),
        row("**floor: (a) + push floor**", lambda r: f"**{fmt_s(r.floor)}**"),
        row(
            "sync: Dagster before the walk (process start → raw STEP_START)",
            lambda r: share(r, r.buckets()["before"]),
        ),
        row(
            "sync: walk + write (raw STEP_START → 'synced N records')",
            lambda r: share(r, r.buckets()["walk"]),
        ),
        row("sync: stats step", lambda r: share(r, r.buckets()["stats"])),
        row("sync: push step", lambda r: share(r, r.buckets()["push"])),
        row("sync: Dagster after (the rest)", lambda r: share(r, r.buckets()["after"])),
        row("**sync total** (process wall time)", lambda r: f"**{fmt_s(r.total)}**"),
        row(
            f"**total / ((a) + push floor)** (target ≤ {TARGET}x)",
            lambda r: f"**{r.total / r.floor:.2f}x** ({verdict(r.total / r.floor)})",
        ),
        row(
            "total / ((b) + push floor)",
            lambda r: f"{r.total / (r.sequential + r.push_floor):.2f}x",
        ),
        row("walk + write / (a)", lambda r: f"{r.buckets()['walk'] / r.longest:.2f}x"),
        row("push step / push floor", lambda r: f"{r.buckets()['push'] / r.push_floor:.2f}x"),
        row(
            f"**peak memory** (PSS, sync process tree; target ≤ {MEMORY_TARGET // mib} MiB)",
            lambda r: (
                f"**{r.peak_memory / mib:,.0f} MiB** (during the {r.peak_phase()}; peaks apart: "
                f"main process {r.peak_memory_main / mib:,.0f}, its children "
                f"{r.peak_memory_children / mib:,.0f})"
            ),
        ),
        row(
            "Ordergroove requests / retries (client counters)",
            lambda r: f"{int(r.summary.get('requests', 0)):,} / {r.summary.get('retries')}",
        ),
        row("Ordergroove requests/min reached (requests / walk time)", rpm),
        row(
            "push requests (200 / 429), requests/s",
            lambda r: (
                f"{r.push.get('requests', 0):,.0f} ({r.push.get('ok', 0):,.0f} / "
                f"{r.push.get('throttled', 0):,.0f}), {r.push.get('req_per_s', 0):.2f}/s"
            ),
        ),
        row(
            "contacts pushed / accepted",
            lambda r: f"{r.summary.get('contacts_pushed')} / {r.summary.get('contacts_accepted')}",
        ),
        row(
            "machine: load before / CPU busy during the sync",
            lambda r: f"{r.load_before:.2f} / {r.cpu_busy:.0f}%",
        ),
    ]
    return "\n".join(lines)


def detail_table(results: list[Result]) -> str:
    """Where the time outside the walk and the push goes, from the runs' event logs."""

    def row(label: str, cell: Any) -> str:
        return f"| {label} | " + " | ".join(cell(r) for r in results) + " |"

    def span(a: str, b: str) -> Any:
        return lambda r: fmt_s(r.timeline.span(a, b))

    def walk_ends(r: Result) -> str:
        t = r.timeline
        walk = t.walk_done - t.raw_step_start
        return ", ".join(
            f"{res} {t.walk_finished[res] - t.raw_step_start:.0f}"
            if res in t.walk_finished
            else f"{res} ≤ {walk:.0f}"  # ended after the last progress line
            for res in RESOURCES
        )

    lines = [
        "| | " + " | ".join(f"{r.subscriptions:,}" for r in results) + " |",
        "| --- |" + " --- |" * len(results),
        row(
            "process start → raw run's first event (imports, definitions, instance)",
            span("process_start", "raw_first_event"),
        ),
        row(
            "raw run's first event → RUN_START (run creation, planned events)",
            span("raw_first_event", "raw_run_start"),
        ),
        row(
            "ASSET_MATERIALIZATION_PLANNED events, raw run / push run",
            lambda r: f"{r.timeline.planned:,} / {r.timeline.planned_push:,}",
        ),
        row(
            "ASSET_CHECK_EVALUATION_PLANNED events of the raw run (a row per hour each)",
            lambda r: f"{r.timeline.checks_planned:,}",
        ),
        row("RUN_START → raw STEP_START", span("raw_run_start", "raw_step_start")),
        row(
            "walks done after (s from STEP_START, progress lines, ±5 s)",
            walk_ends,
        ),
        row(
            "'synced N records' → first ASSET_MATERIALIZATION",
            span("walk_done", "first_materialization"),
        ),
        row(
            "first → last ASSET_MATERIALIZATION of the raw step",
            span("first_materialization", "last_materialization"),
        ),
        row(
            "ASSET_MATERIALIZATION events of the raw run",
            lambda r: f"{r.timeline.materializations:,}",
        ),
        row(
            "last ASSET_MATERIALIZATION → raw STEP_SUCCESS",
            span("last_materialization", "raw_step_success"),
        ),
        row("raw STEP_SUCCESS → raw run's last event", span("raw_step_success", "raw_run_end")),
        row(
            "raw run's last event → push run's first event", span("raw_run_end", "push_first_event")
        ),
        row("push run's first event → stats STEP_START", span("push_first_event", "stats_start")),
        row("stats STEP_SUCCESS → push STEP_START", span("stats_end", "push_start")),
        row("push STEP_SUCCESS → push run's last event", span("push_end", "push_run_end")),
        row("push run's last event → process exit", span("push_run_end", "process_end")),
        row(
            "events in the raw run / push run",
            lambda r: f"{r.timeline.raw_events:,} / {r.timeline.push_events:,}",
        ),
    ]
    return "\n".join(lines)


# Dagster's bookkeeping depends on the number of hours, not of records: held at their mean.
FIXED = ("before", "after")


def estimate(results: list[Result], n: int) -> str:
    """The walk, stats and push along the line through the two largest sizes, extended to ``n``;
    the bookkeeping before and after at its mean (it depends on the hours, not the records)."""
    if len(results) < 2:
        return ""
    a, b = results[-2], results[-1]
    scale = (n - b.subscriptions) / (b.subscriptions - a.subscriptions)

    def extend(x: float, y: float) -> float:
        return y + (y - x) * scale

    longest = extend(a.longest, b.longest)
    push_floor = extend(a.push_floor, b.push_floor)
    parts = {
        k: (a.buckets()[k] + b.buckets()[k]) / 2
        if k in FIXED
        else extend(a.buckets()[k], b.buckets()[k])
        for k in a.buckets()
    }
    total = sum(parts.values())
    return (
        f"Extended to {n:,} subscriptions (an estimate, not a measurement: walk, stats and push "
        f"along the line through {a.subscriptions:,} and {b.subscriptions:,}, Dagster's "
        f"bookkeeping at its mean): longest walk ≈ {longest:,.0f} s, push floor ≈ "
        f"{push_floor:,.0f} s, sync total ≈ {total:,.0f} s ("
        + ", ".join(f"{k} {v:,.0f} s" for k, v in parts.items())
        + f"), ratio ≈ {total / (longest + push_floor):.2f}x; with the floor walks, a run of "
        f"about {(total + (b.sequential + b.longest) / b.subscriptions * n) / 60:,.0f} min."
    )


def code_version() -> str:
    """The commit the sync ran (read only), and whether the work tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            check=False,
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        # diff-index reads the index without refreshing it (git status may write it).
        dirty = subprocess.run(
            ["git", "diff-index", "--name-only", "HEAD", "--"],
            check=False,
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}{' with local changes' if dirty else ''}" if head else "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="20000,100000", help="comma-separated subscriptions")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument(
        "--start",
        type=date.fromisoformat,
        default=date(2025, 11, 1),
        help="first day of the merchant's history and of the sync (UTC)",
    )
    parser.add_argument(
        "--latency", type=float, default=0.05, help="seconds the sandbox waits before each answer"
    )
    parser.add_argument("--requests-per-minute", type=float, default=6000.0)
    parser.add_argument(
        "--sync-timeout", type=float, default=3600.0, help="seconds before the sync is killed"
    )
    parser.add_argument("--no-floor-after", action="store_true")
    parser.add_argument(
        "--floor-walks",
        default=",".join(RESOURCES),
        help="object types to walk alone for the floor (others: pages x the walked s/page)",
    )
    parser.add_argument("--estimate", type=int, default=1_000_000, help="size to extend to")
    parser.add_argument("--json", type=Path, default=None, help="write the raw figures here")
    args = parser.parse_args()
    sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    args.floor_walks = [r.strip() for r in args.floor_walks.split(",") if r.strip()]
    if not args.floor_walks or set(args.floor_walks) - set(RESOURCES):
        parser.error(f"--floor-walks takes some of {', '.join(RESOURCES)}")
    _, end = sync_range(args)
    if end > datetime.now(UTC) - timedelta(hours=1):
        parser.error("--start + --days must be before the last complete hour")
    version = code_version()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="og-first-sync-bench-") as tmp:
        os.chmod(tmp, 0o755)  # as root, the embedded server runs as its own user
        with EmbeddedPostgres(Path(tmp) / "postgres", delete=True) as server:
            for n in sizes:
                results.append(bench(args, n, server, Path(tmp) / str(n)))
    command = "python bench/first_sync_bench.py " + " ".join(sys.argv[1:])
    text = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}, code at {version} "
        f"(at the start; {code_version()} at the end).\n\n"
        f"Command: `{command.strip()}` (sandbox seed 1, history and sync {args.start} + "
        f"{args.days} days, {args.latency * 1000:g} ms per answer, Ordergroove limit "
        f"{args.requests_per_minute:,.0f}/min enforced, Ometria {PUSH_RATE:g} requests/s).\n\n"
        f"{main_table(results)}\n\nWhere the rest goes (from the runs' event logs):\n\n"
        f"{detail_table(results)}\n"
    )
    if args.estimate and args.estimate not in sizes:
        text += "\n" + estimate(results, args.estimate) + "\n"
    print("\n" + text)
    if args.json:
        args.json.write_text(
            json.dumps(
                [{**asdict(r), "buckets": r.buckets(), "floor": r.floor} for r in results],
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
