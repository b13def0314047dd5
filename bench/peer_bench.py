"""Against the peer at a month's size (issue 11): og-pipeline's sync beside dlt and a bare walk.

One invocation, one sandbox process (seed 1, no latency, a merchant of ``--subscriptions``,
default 151,000, whose history is the 30 days from ``--start``, default 2026-10-01), one
embedded Postgres with a fresh database for each loader. Over the same window (the sync's
``[start - 5 min, end - 1 s]``, as naive America/Chicago stamps from ``og_window_params``), in
this order:

1. **the bare walk**: the four cursor walks (customers, subscriptions, orders, items) one after
   another in this process (``OrdergrooveClient``, page size 100, nothing done with the pages);
   walked again at the end, and the mean of the two used, as this machine's speed drifts;
2. **dlt's ``rest_api`` source** (``dlt.sources.rest_api`` of ``dlt[postgres]``) loading the
   same four resources into a fresh Postgres database: ``x-api-key`` and ``X-OG-API-VERSION: 2``
   headers (without the version header the sandbox, as Ordergroove, serves page numbers), a
   ``json_link`` paginator on ``next`` with ``results`` as data selector, page size 100, the
   window's filters, each record's key as primary key (``merchant_user_id`` for customers,
   ``public_id`` for the others) and ``write_disposition`` ``merge``, once per strategy of
   ``--dlt-strategies``: ``upsert`` first (a MERGE on the key, updating in place: the like of
   og-pipeline's ``INSERT ... ON CONFLICT (key) DO UPDATE``; the ratio is read against it), then
   ``delete-insert`` (dlt's default merge), each into its own fresh database. The whole
   ``pipeline.run(source)`` is timed in an interpreter of its own that imports dlt and nothing
   of og-pipeline's, with the peak PSS of its process tree (psutil, every 0.2 s) and the rows
   loaded per table (dlt's normalize counts and ``count(*)`` in the database);
3. **``og-pipeline sync --start D --end D+30d``** as a subprocess against a fresh database pair:
   wall time, peak PSS, and its split from the two runs' event logs as first_sync_bench reads it
   (Dagster before the walk, walk + write, stats, push, Dagster after).

The push floor is the contacts with an e-mail (the sandbox's ground truth) at Ometria's 8
requests/s of 100 records (800/s). It prints the issue's ratios, (og-pipeline total - push
floor) / dlt (target <= 0.5x) and / bare walk (target <= 2x), og-pipeline's peak memory (target
<= 300 MiB) and its time net of the push floor, as Markdown tables (and, with ``--json PATH``,
the raw figures). No rate limit by default: the sandbox enforces none and the sync's own
limiter is lifted to its maximum (60,000/min), as the other two have none;
``--requests-per-minute R`` enforces R in the sandbox and gives the sync and the bare walk that
limiter (dlt has none of its own: it meets the 429s and waits out their Retry-After).

Run: ``python bench/peer_bench.py [--subscriptions 151000] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
import requests
from first_sync_bench import (
    PUSH_BATCH,
    PUSH_RATE,
    code_version,
    contacts_with_email,
    detail_table,
    kill_group,
    read_timeline,
    run_sync,
)
from first_sync_bench import Result as SyncResult
from sync_bench import free_port, machine, push_rate, stop

from og_pipeline.db.connection import ensure_database
from og_pipeline.db.embedded import EmbeddedPostgres
from og_pipeline.db.urls import for_dagster, for_psycopg
from og_pipeline.http_common import RateLimiter
from og_pipeline.ordergroove.client import OrdergrooveClient, og_window_params
from og_pipeline.ordergroove.sync import RESOURCES

ROOT = Path(__file__).resolve().parents[1]
OVERLAP = timedelta(minutes=5)  # the sync's default (OG_SYNC_OVERLAP_MINUTES)
PAGE_SIZE = 100  # OrdergrooveResource's default
OG_KEY, OMETRIA_KEY = "sandbox-og-key", "sandbox-ometria-key"
# The records' keys: og.* tables' primary keys (db/migrations/0001_initial.sql).
PRIMARY_KEYS = {
    "customers": "merchant_user_id",
    "subscriptions": "public_id",
    "orders": "public_id",
    "items": "public_id",
}
NO_LIMIT = 60_000.0  # OG_ORDERGROOVE_REQUESTS_PER_MINUTE's maximum: 1,000/s, never reached here
DLT_TARGET, WALK_TARGET, MEMORY_TARGET = 0.5, 2.0, 300 * 2**20
DATASET = "ordergroove"  # dlt's schema in its database
POLL = 0.2  # seconds between memory readings
MIB = 2**20


@dataclass
class Walk:
    """The four bare walks one after another: seconds, records and pages per object type."""

    seconds: float = 0.0
    resources: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return int(sum(r["records"] for r in self.resources.values()))


@dataclass
class Measured:
    """A subprocess's wall time and the peak PSS of its process tree."""

    wall_s: float = 0.0
    peak: int = 0
    peak_main: int = 0
    peak_children: int = 0
    cpu_busy: float = 0.0
    load_before: float = 0.0


@dataclass
class DltRun:
    strategy: str
    process: Measured = field(default_factory=Measured)
    child: dict[str, Any] = field(default_factory=dict)  # what the child reported
    table_rows: dict[str, int] = field(default_factory=dict)  # count(*) after the load

    @property
    def run_s(self) -> float:
        return float(self.child["run_s"])


@dataclass
class Result:
    subscriptions: int
    start: str
    days: int
    requests_per_minute: float | None
    sandbox: dict[str, int] = field(default_factory=dict)
    walks: list[Walk] = field(default_factory=list)  # before and after
    dlt: list[DltRun] = field(default_factory=list)
    sync: SyncResult | None = None
    sync_busy: float = 0.0
    sync_load_before: float = 0.0
    sync_tables: dict[str, int] = field(default_factory=dict)

    @property
    def walk_s(self) -> float:
        return sum(w.seconds for w in self.walks) / len(self.walks)

    @property
    def net(self) -> float:
        """og-pipeline's total less the push floor, the time the issue compares."""
        assert self.sync is not None
        return self.sync.total - self.sync.push_floor


def sync_range(args: argparse.Namespace) -> tuple[datetime, datetime]:
    start = datetime.combine(args.start, datetime.min.time(), tzinfo=UTC)
    return start, start + timedelta(days=args.days)


def walk_window(args: argparse.Namespace) -> tuple[datetime, datetime]:
    """The window the sync walks for the range (``sync_window``): overlap before, -1 s at end."""
    start, end = sync_range(args)
    return start - OVERLAP, end - timedelta(seconds=1)


def start_sandbox(args: argparse.Namespace, port: int, log: Path) -> subprocess.Popen[bytes]:
    _, end = sync_range(args)
    cmd = [
        sys.executable,
        "-m",
        "og_pipeline",
        "sandbox",
        "--port",
        str(port),
        "--subscriptions",
        str(args.subscriptions),
        "--seed",
        "1",
        "--start-date",
        args.start.isoformat(),
        "--now",
        end.replace(tzinfo=None).isoformat(),
        "--ometria-rate-limit",
        str(PUSH_RATE),
    ]
    if args.requests_per_minute:
        cmd += ["--requests-per-minute", str(args.requests_per_minute)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
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
        raise RuntimeError("sandbox did not answer within 600 s")
    except BaseException:
        stop(proc)
        raise


def bare_walk(api_url: str, args: argparse.Namespace) -> Walk:
    """The four cursor walks of a sync, one after another, nothing done with the pages."""
    start, end = walk_window(args)
    limiter = RateLimiter(args.requests_per_minute / 60) if args.requests_per_minute else None
    walk = Walk()
    with OrdergrooveClient(api_url, OG_KEY, page_size=PAGE_SIZE, limiter=limiter) as client:
        began = time.perf_counter()
        for resource in RESOURCES:
            pages, records = client.stats.pages, client.stats.records
            requests_before = client.stats.requests
            at = time.perf_counter()
            for _ in client.iter_updated(resource, start, end):
                pass
            walk.resources[resource] = {
                "seconds": time.perf_counter() - at,
                "records": client.stats.records - records,
                "pages": client.stats.pages - pages,
                "requests": client.stats.requests - requests_before,
            }
        walk.seconds = time.perf_counter() - began
    return walk


def dlt_config(api_url: str, args: argparse.Namespace, strategy: str) -> dict[str, Any]:
    """The rest_api source's configuration: the sandbox's auth, pages, filters and keys."""
    start, end = walk_window(args)
    return {
        "client": {
            "base_url": api_url.rstrip("/") + "/",
            # Without the version header the sandbox (as Ordergroove) serves page numbers.
            "headers": {"X-OG-API-VERSION": "2", "Accept": "application/json"},
            "auth": {
                "type": "api_key",
                "name": "x-api-key",
                "api_key": OG_KEY,
                "location": "header",
            },
            # {"next": url | null, "previous": url | null, "results": [...]}
            "paginator": {"type": "json_link", "next_url_path": "next"},
        },
        "resource_defaults": {
            "write_disposition": {"disposition": "merge", "strategy": strategy},
            **({"parallelized": True} if args.dlt_parallelized else {}),
        },
        "resources": [
            {
                "name": resource,
                "primary_key": PRIMARY_KEYS[resource],
                "endpoint": {
                    "path": f"{resource}/",
                    "params": {
                        "page_size": PAGE_SIZE,
                        **og_window_params(resource, start, end),
                    },
                    "data_selector": "results",
                },
            }
            for resource in RESOURCES
        ],
    }


def dlt_child() -> None:
    """The dlt load, in its own interpreter (``python -c`` with this function's source), so that
    its process imports dlt and nothing of og-pipeline's: ``argv[1]`` is a JSON spec."""
    import json
    import sys
    import time

    with open(sys.argv[1]) as fh:
        spec = json.load(fh)
    began = time.perf_counter()
    import dlt
    from dlt.sources.rest_api import rest_api_source

    imported = time.perf_counter()
    pipeline = dlt.pipeline(
        pipeline_name=spec["pipeline"],
        destination=dlt.destinations.postgres(credentials=spec["credentials"]),
        dataset_name=spec["dataset"],
        pipelines_dir=spec["pipelines_dir"],
    )
    source = rest_api_source(spec["config"], name="ordergroove")
    run_began = time.perf_counter()
    info = pipeline.run(source)
    run_s = time.perf_counter() - run_began
    info.raise_on_failed_jobs()
    trace = pipeline.last_trace
    steps = {
        s.step: (s.finished_at - s.started_at).total_seconds()
        for s in trace.steps
        if s.started_at and s.finished_at
    }
    normalize = trace.last_normalize_info
    rows = dict(normalize.row_counts) if normalize is not None else {}
    out = {
        "dlt_version": dlt.__version__,
        "import_s": imported - began,
        "run_s": run_s,
        "steps": steps,
        "rows": rows,
    }
    with open(spec["out"], "w") as fh:
        json.dump(out, fh)


def run_measured(
    cmd: list[str], env: dict[str, str], cwd: Path, work: Path, name: str, timeout: float
) -> Measured:
    """Runs ``cmd`` in its own session, sampling the PSS of its process tree; kills the whole
    group on a timeout or an error."""
    measured = Measured(load_before=os.getloadavg()[0])
    out_path, err_path = work / f"{name}.out", work / f"{name}.err"
    psutil.cpu_percent()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        began = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        try:
            watched = psutil.Process(proc.pid)
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} still running after {timeout:.0f} s")
                try:
                    # PSS, not RSS: shared pages counted once (see sync_bench).
                    main = watched.memory_full_info().pss
                    children = sum(
                        c.memory_full_info().pss for c in watched.children(recursive=True)
                    )
                    measured.peak = max(measured.peak, main + children)
                    measured.peak_main = max(measured.peak_main, main)
                    measured.peak_children = max(measured.peak_children, children)
                except psutil.Error:
                    pass  # a process exiting between the listing and the reading
                time.sleep(POLL)
            measured.wall_s = time.perf_counter() - began
        finally:
            if proc.poll() is None:
                kill_group(proc)
    measured.cpu_busy = psutil.cpu_percent()
    if proc.returncode != 0:
        raise RuntimeError(
            f"{name} exited {proc.returncode}:\n{out_path.read_text()[-4000:]}\n"
            f"{err_path.read_text()[-4000:]}"
        )
    return measured


def count_rows(url: str, schema: str) -> dict[str, int]:
    """Rows per table of ``schema`` (dlt's own ``_dlt_*`` tables left out)."""
    with psycopg.connect(for_psycopg(url), autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                "AND table_type = 'BASE TABLE' ORDER BY table_name",
                (schema,),
            )
        ]
        counts: dict[str, int] = {}
        for name in names:
            if name.startswith("_dlt_"):
                continue
            query = f'SELECT count(*) FROM "{schema}"."{name}"'  # names from the catalogue
            counts[name] = int(conn.execute(query).fetchone()[0])  # type: ignore[index]
        return counts


def dlt_credentials(url: str) -> str:
    """The database's URL as dlt takes it: dlt insists on a host, and the embedded server has a
    Unix socket only, named in ``?host=``; libpq lets the query's host override the URL's."""
    parts = urlsplit(for_psycopg(url))
    if parts.hostname:
        return urlunsplit(parts)
    user = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{user}@localhost" if user else "localhost"))


def clean_env() -> dict[str, str]:
    prefixes = ("OG_", "ORDERGROOVE_", "OMETRIA_", "DAGSTER_", "DLT_", "RUNTIME__", "DESTINATION")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def run_dlt(
    args: argparse.Namespace, server: EmbeddedPostgres, base: str, work: Path, strategy: str
) -> DltRun:
    run = DltRun(strategy)
    tag = strategy.replace("-", "_")
    database = f"dlt_peer_{tag}"
    ensure_database(server.url(), database)
    home = work / f"dlt-{tag}"
    home.mkdir()
    spec = {
        "pipeline": f"og_peer_{tag}",
        "credentials": dlt_credentials(server.url(database)),
        "dataset": DATASET,
        "pipelines_dir": str(home / "pipelines"),
        "config": dlt_config(f"{base}/ordergroove", args, strategy),
        "out": str(home / "result.json"),
    }
    (home / "spec.json").write_text(json.dumps(spec, indent=1))
    env = clean_env()
    env.update(
        {
            "RUNTIME__DLTHUB_TELEMETRY": "false",  # no traffic off this machine
            "DLT_DATA_DIR": str(home / "data"),
            "DLT_PROJECT_DIR": str(home),  # no .dlt/ config from anywhere else
        }
    )
    code = inspect.getsource(dlt_child) + "\ndlt_child()\n"
    cmd = [sys.executable, "-c", code, str(home / "spec.json")]
    run.process = run_measured(cmd, env, home, home, "dlt", args.timeout)
    run.child = json.loads((home / "result.json").read_text())
    run.table_rows = count_rows(server.url(database), DATASET)
    return run


def run_og_sync(
    args: argparse.Namespace, server: EmbeddedPostgres, base: str, work: Path, result: Result
) -> SyncResult:
    sync = SyncResult(args.subscriptions, 0.0)
    og_db, dagster_db = "og_peer", "og_peer_dagster"
    for name in (og_db, dagster_db):
        ensure_database(server.url(), name)
    env = clean_env()
    env.update(
        {
            "ORDERGROOVE_API_URL": f"{base}/ordergroove",
            "ORDERGROOVE_API_KEY": OG_KEY,
            "OMETRIA_API_URL": f"{base}/ometria",
            "OMETRIA_API_KEY": OMETRIA_KEY,
            "OG_SYNC_START_DATE": args.start.isoformat(),
            "OG_ORDERGROOVE_REQUESTS_PER_MINUTE": str(args.requests_per_minute or NO_LIMIT),
            "OG_HOME": str(work / "og_home"),
            "OG_DATABASE_URL": server.url(og_db),
            "OG_DAGSTER_DATABASE_URL": for_dagster(server.url(dagster_db)),
        }
    )
    sync_args = argparse.Namespace(start=args.start, days=args.days, sync_timeout=args.timeout)
    result.sync_load_before = os.getloadavg()[0]
    stdout, result.sync_busy = run_sync(sync_args, env, work, sync)
    sync.summary = dict(
        line.strip().split(": ", 1)
        for line in stdout.splitlines()
        if line.startswith("  ") and ": " in line
    )
    found = re.search(r"^run (\S+) and (\S+) succeeded", stdout, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no run ids in the sync's output:\n{stdout}")
    read_timeline(
        env["OG_DAGSTER_DATABASE_URL"],
        found.group(1),
        found.group(2),
        work / "dagster",
        sync.timeline,
    )
    sync.push = push_rate(base)
    result.sync_tables = count_rows(server.url(og_db), "og")
    return sync


def bench(args: argparse.Namespace, server: EmbeddedPostgres, work: Path) -> Result:
    n = args.subscriptions
    result = Result(n, args.start.isoformat(), args.days, args.requests_per_minute)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    print(f"[{n:,}] starting the sandbox on port {port}", flush=True)
    sandbox = start_sandbox(args, port, work / "sandbox.log")
    try:
        result.sandbox = requests.get(f"{base}/_sandbox/info", timeout=60).json()["counts"]
        with_email = contacts_with_email(base)
        print(f"[{n:,}] sandbox: {result.sandbox}; {with_email:,} contacts with an e-mail")
        print(f"[{n:,}] bare walk", flush=True)
        result.walks.append(bare_walk(f"{base}/ordergroove", args))
        print(f"[{n:,}]   {result.walks[-1].records:,} records in {result.walks[-1].seconds:.1f} s")
        for strategy in args.dlt_strategies:
            print(f"[{n:,}] dlt rest_api, merge ({strategy})", flush=True)
            result.dlt.append(run_dlt(args, server, base, work, strategy))
            print(f"[{n:,}]   pipeline.run {result.dlt[-1].run_s:.1f} s", flush=True)
        print(f"[{n:,}] og-pipeline sync over {args.days} days", flush=True)
        result.sync = run_og_sync(args, server, base, work, result)
        result.sync.contacts_with_email = with_email
        print(f"[{n:,}]   {result.sync.total:.1f} s: {result.sync.buckets()}", flush=True)
        print(f"[{n:,}] bare walk again", flush=True)
        result.walks.append(bare_walk(f"{base}/ordergroove", args))
        print(f"[{n:,}]   {result.walks[-1].seconds:.1f} s", flush=True)
    finally:
        stop(sandbox)
    return result


def fmt_s(seconds: float) -> str:
    return f"{seconds:,.1f} s"


def verdict(value: float, target: float) -> str:
    return "under" if value <= target else "over"


def main_table(r: Result) -> str:
    assert r.sync is not None
    s = r.sync
    rows: list[tuple[str, str]] = [
        (
            "sandbox customers / subscriptions / orders (= items)",
            (
                f"{r.sandbox.get('customers', 0):,} / {r.sandbox.get('subscriptions', 0):,} / "
                f"{r.sandbox.get('orders', 0):,}"
            ),
        ),
        ("records walked (4 object types)", f"{r.walks[0].records:,}"),
    ]
    for resource in RESOURCES:
        w = r.walks[0].resources[resource]
        rows.append(
            (
                f"bare walk: {resource} (first walk)",
                f"{fmt_s(w['seconds'])} ({w['records']:,.0f} records, {w['pages']:,.0f} pages)",
            )
        )
    rows += [
        (
            "**bare walk**: the four one after another, before / after (mean used)",
            " / ".join(fmt_s(w.seconds) for w in r.walks) + f" (**{fmt_s(r.walk_s)}**)",
        )
    ]
    for d in r.dlt:
        steps = d.child.get("steps", {})
        rows += [
            (
                f"**dlt `pipeline.run`** (merge, {d.strategy})",
                (
                    f"**{fmt_s(d.run_s)}** (extract {steps.get('extract', 0):.1f}, normalize "
                    f"{steps.get('normalize', 0):.1f}, load {steps.get('load', 0):.1f})"
                ),
            ),
            (
                f"dlt process wall time (with importing dlt, {d.child['import_s']:.1f} s)",
                fmt_s(d.process.wall_s),
            ),
            (
                f"dlt rows loaded per table ({d.strategy}): normalized / in the table",
                ", ".join(
                    f"{t} {d.child['rows'].get(t, 0):,} / {d.table_rows.get(t, 0):,}"
                    for t in sorted(set(d.child["rows"]) | set(d.table_rows))
                    if not t.startswith("_dlt_")
                ),
            ),
            (
                f"dlt peak memory (PSS, process tree; {d.strategy})",
                f"{d.process.peak / MIB:,.0f} MiB",
            ),
        ]
    rows += [
        ("**og-pipeline sync total** (process wall time)", f"**{fmt_s(s.total)}**"),
        (
            "push floor (contacts with an e-mail / 800 per s)",
            f"{fmt_s(s.push_floor)} ({s.contacts_with_email:,} contacts)",
        ),
        ("**og-pipeline total − push floor**", f"**{fmt_s(r.net)}**"),
    ]
    for i, d in enumerate(r.dlt):
        ratio = r.net / d.run_s
        rows.append(
            (
                f"**(total − push floor) / dlt** ({d.strategy}; target ≤ {DLT_TARGET}x)"
                if i == 0
                else f"(total − push floor) / dlt ({d.strategy}, for reference)",
                (
                    f"**{ratio:.2f}x** ({verdict(ratio, DLT_TARGET)}; against dlt's process "
                    f"wall time {r.net / d.process.wall_s:.2f}x)"
                ),
            )
        )
    ratio = r.net / r.walk_s
    rows += [
        (
            f"**(total − push floor) / bare walk** (target ≤ {WALK_TARGET:g}x)",
            f"**{ratio:.2f}x** ({verdict(ratio, WALK_TARGET)})",
        ),
        (
            (
                f"**og-pipeline peak memory** (PSS, sync process tree; target ≤ "
                f"{MEMORY_TARGET // MIB} MiB)"
            ),
            (
                f"**{s.peak_memory / MIB:,.0f} MiB** ({verdict(s.peak_memory, MEMORY_TARGET)}; "
                f"during the {s.peak_phase()}; peaks apart: main process "
                f"{s.peak_memory_main / MIB:,.0f}, its children "
                f"{s.peak_memory_children / MIB:,.0f})"
            ),
        ),
        (
            "og-pipeline records fetched / rows in og.* (customers, subscriptions, orders, items)",
            f"{int(s.summary.get('records_fetched', 0)):,} / "
            + ", ".join(f"{r.sync_tables.get(t, 0):,}" for t in RESOURCES),
        ),
        (
            "og-pipeline Ordergroove requests / retries",
            f"{int(s.summary.get('requests', 0)):,} / {s.summary.get('retries')}",
        ),
        (
            "push requests (200 / 429), requests/s",
            (
                f"{s.push.get('requests', 0):,.0f} ({s.push.get('ok', 0):,.0f} / "
                f"{s.push.get('throttled', 0):,.0f}), {s.push.get('req_per_s', 0):.2f}/s"
            ),
        ),
        (
            "contacts pushed / accepted",
            f"{s.summary.get('contacts_pushed')} / {s.summary.get('contacts_accepted')}",
        ),
        (
            f"machine: load before / CPU busy during ({os.cpu_count()} CPUs, all processes)",
            ", ".join(
                f"dlt {d.strategy} {d.process.load_before:.2f} / {d.process.cpu_busy:.0f}%"
                for d in r.dlt
            )
            + f", og-pipeline {r.sync_load_before:.2f} / {r.sync_busy:.0f}%",
        ),
    ]
    header = [f"| | {r.subscriptions:,} subscriptions, {r.days} days |", "| --- | --- |"]
    return "\n".join(header + [f"| {label} | {value} |" for label, value in rows])


def net_table(r: Result) -> str:
    """og-pipeline's time net of the push floor: where (total - push floor) goes."""
    assert r.sync is not None
    b = r.sync.buckets()
    parts = [
        ("Dagster before the walk (process start → raw STEP_START)", b["before"]),
        ("walk + write (raw STEP_START → 'synced N records')", b["walk"]),
        ("stats step", b["stats"]),
        ("push step above its floor (push step − push floor)", b["push"] - r.sync.push_floor),
        ("Dagster after (the rest)", b["after"]),
    ]
    first = r.dlt[0] if r.dlt else None
    lines = [
        "| part of (total − push floor) | seconds | share | / bare walk |"
        + (" / dlt |" if first else ""),
        "| --- | ---: | ---: | ---: |" + (" ---: |" if first else ""),
    ]
    for label, seconds in [*parts, ("**total − push floor**", r.net)]:
        line = f"| {label} | {seconds:,.1f} | {seconds / r.net:.0%} | {seconds / r.walk_s:.2f}x |"
        if first:
            line += f" {seconds / first.run_s:.2f}x |"
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscriptions", type=int, default=151_000)
    parser.add_argument(
        "--start",
        type=date.fromisoformat,
        default=date(2026, 10, 1),
        help="first day of the merchant's history and of the sync (UTC)",
    )
    parser.add_argument("--days", type=int, default=30, help="the history and the sync's range")
    parser.add_argument(
        "--dlt-strategies",
        default="upsert,delete-insert",
        help="comma-separated dlt merge strategies, each run into a fresh database; the ratio "
        "to read is against the first (upsert: a MERGE on the key, og-pipeline's kind of "
        "write; delete-insert: dlt's default merge)",
    )
    parser.add_argument(
        "--dlt-parallelized", action="store_true", help="dlt extracts the four in threads"
    )
    parser.add_argument(
        "--requests-per-minute",
        type=float,
        default=None,
        help="Ordergroove's limit, enforced by the sandbox and kept by the sync and the bare "
        "walk (default: none anywhere)",
    )
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds before dlt or the sync is killed"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the raw figures here")
    args = parser.parse_args()
    args.dlt_strategies = [s.strip() for s in args.dlt_strategies.split(",") if s.strip()]
    if set(args.dlt_strategies) - {"delete-insert", "upsert"}:
        parser.error("--dlt-strategies takes delete-insert and/or upsert")
    if args.requests_per_minute is not None and not 1 <= args.requests_per_minute <= NO_LIMIT:
        parser.error(f"--requests-per-minute takes 1 to {NO_LIMIT:,.0f} (the sync's range)")
    _, end = sync_range(args)
    if end > datetime.now(UTC) - timedelta(hours=1):
        parser.error("--start + --days must be before the last complete hour")
    version = code_version()
    with tempfile.TemporaryDirectory(prefix="og-peer-bench-") as tmp:
        os.chmod(tmp, 0o755)  # as root, the embedded server runs as its own user
        with EmbeddedPostgres(Path(tmp) / "postgres", delete=True) as server:
            result = bench(args, server, Path(tmp))
    assert result.sync is not None
    command = "python bench/peer_bench.py " + " ".join(sys.argv[1:])
    limit = (
        f"Ordergroove limit {args.requests_per_minute:,.0f}/min enforced"
        if args.requests_per_minute
        else "no Ordergroove limit (the sync's limiter at its 60,000/min maximum)"
    )
    dlt_version = result.dlt[0].child.get("dlt_version") if result.dlt else "-"
    text = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}, code at {version} "
        f"(at the start; {code_version()} at the end), dlt {dlt_version}.\n\n"
        f"Command: `{command.strip()}` (sandbox seed 1, history and sync {args.start} + "
        f"{args.days} days, no latency, {limit}, Ometria {PUSH_RATE:g} requests/s of "
        f"{PUSH_BATCH}).\n\n{main_table(result)}\n\n"
        f"og-pipeline's time net of the push floor:\n\n{net_table(result)}\n\n"
        f"Where the rest goes (from the runs' event logs):\n\n{detail_table([result.sync])}\n"
    )
    print("\n" + text)
    if args.json:
        raw = asdict(result)
        raw["sync"] = {
            **asdict(result.sync),
            "buckets": result.sync.buckets(),
            "push_floor": result.sync.push_floor,
            "total": result.sync.total,
        }
        raw.update({"walk_s": result.walk_s, "net": result.net})
        args.json.write_text(json.dumps(raw, indent=1, default=str))


if __name__ == "__main__":
    main()
