"""UI benchmark (issue 11): the raw asset's pages and its backfill's page, a year in.

Do the Dagster UI's asset page and backfill page for ``ordergroove_raw_records`` open in under
5 s with a year of hourly partitions (8,760) materialized? In one invocation:

1. an embedded Postgres in a temp dir: og-pipeline's database (migrated) and Dagster's, its
   tables and API pools created as ``og-pipeline dev`` does before it starts Dagster;
2. the sandbox as its own process: a small merchant (``--subscriptions``, default 1,000, seed 1)
   whose history spans the ``--days`` (365) before today 00:00 UTC; no latency and no
   Ordergroove limit unless ``--latency S`` (every answer waits S s, a remote round trip) and
   ``--requests-per-minute R`` (429 with Retry-After over R in any 60 s) are given; with
   ``--floor-walks orders`` (comma-separated object types), those walks alone over the year
   first, in this process, as ``first_sync_bench.py`` measures its floor, and the backfill (launch
   to no run left, the push run included) is reported against the longest of them plus the push
   floor (contacts with an e-mail / 800 per s);
3. ``dagster-webserver`` and ``dagster-daemon run`` on the project's workspace.yaml, with the
   environment ``dev`` gives Dagster (og_pipeline.runtime.dagster_environment:
   DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS=true, DAGSTER_EVENT_BATCH_SIZE=1000) and
   OG_SYNC_START_DATE on the first day; schedules and sensors on, as in ``dev``;
4. the year materialized by the pipeline itself, as a UI backfill: ``launchPartitionBackfill``
   through the webserver's GraphQL, the raw asset over the year's hours (a ``partitionsByAssets``
   range), run by the daemon (one run: the asset's single-run backfill policy), polled until the
   backfill is COMPLETED_SUCCESS, the ``contacts_push`` run that ``push_after_backfill`` starts
   after it has ended, and no run is queued or in progress;
5. headless Chromium (Playwright driving /usr/bin/chromium, 1440x900) opens three pages, in this
   order: the asset's partitions tab (``/assets/ordergroove_raw_records?view=partitions``), its
   overview tab (``/assets/ordergroove_raw_records``) and the backfill (``/runs/b/<id>``). A
   load's time is from navigation start (``performance.timeOrigin``) to the first animation
   frame at which the page's content is rendered (the partitions tab: "N Partitions Selected",
   shown once the partition health and the definition have loaded, with the status bar and the
   partition list; the overview: its status section, "Latest materialization"; the backfill: the
   asset's row with its "N% completed" bar) and no Dagster loading placeholder is on the page (a
   spinner, ``.spinnerGlobal``, or a skeleton); then the page must stay so for 2 s (a placeholder
   coming back is reported, with where it is). Per page: the first load after the backfill (in
   a new browser; the first page also meets the server's caches cold), ``--reps`` cold loads (a
   new browser context each: no HTTP cache, no IndexedDB) and ``--reps`` warm loads (the same
   URL again in the context of the last cold load). Each load lists the GraphQL requests it made
   before its content showed (``/graphql?op=<name>``, request start to response end), and how
   long the app took to send its first one (HTML, scripts, styles);
6. every GraphQL query the pages made is then replayed against the webserver (``--replays``
   times, one at a time, plain HTTP): the server's wall time per query. The CPU seconds of the
   machine, the webserver (with its code server) and Chromium during the loads are reported.

It prints Markdown tables (and, with ``--json PATH``, the raw figures); ``--screenshots DIR``
keeps a PNG of each page at the moment it counted as open. Needs Chromium
(``apt-get install chromium``) and Playwright for Python (``pip install -e '.[bench]'``; no
``playwright install``: the system Chromium is used). Takes about 5 minutes. Run:
``python bench/ui_bench.py [--subscriptions 1000] [--days 365] [--reps 3] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import requests
from common import (
    ROOT,
    clean_env,
    code_version,
    contacts_with_email,
    database_pair,
    embedded_postgres,
    free_port,
    machine,
    machine_busy,
    push_floor,
    sandbox_counts,
    sandbox_env,
    sandbox_limits,
    tree_cpu,
)
from playwright.sync_api import sync_playwright
from ui_backfill import RAW, backfill_facts, backfill_year, wait_for, wait_for_location, year_range
from ui_pages import CHROMIUM, Load, PageSpec, Replay, measure_pages, replay
from ui_report import report
from ui_timeline import read_ui_timeline, timeline_table
from walks import bare_walk

from og_pipeline.cli.processes import spawn, stop
from og_pipeline.cli.runs import instance_on
from og_pipeline.db.embedded import EmbeddedPostgres
from og_pipeline.db.migrate import migrate
from og_pipeline.runtime import Databases, dagster_environment


@dataclass
class Result:
    subscriptions: int
    days: int
    partitions: int
    backfill_id: str = ""
    backfill_status: str = ""
    backfill_seconds: float = 0.0  # launch -> COMPLETED_SUCCESS
    backfill_runs: list[dict[str, Any]] = field(default_factory=list)
    push_status: str = ""  # of the contacts_push run push_after_backfill started after it
    quiet_seconds: float = 0.0  # COMPLETED_SUCCESS -> that run done, no run queued or running
    materialized: dict[str, Any] = field(default_factory=dict)  # the asset's partitionStats
    backfill_counts: dict[str, Any] = field(default_factory=dict)
    sandbox: dict[str, int] = field(default_factory=dict)
    loads: list[Load] = field(default_factory=list)
    replays: list[Replay] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    machine: str = ""
    load_before: float = 0.0
    cpu_busy: float = 0.0  # % of the machine during the page loads
    # CPU seconds during the page loads: the machine, the webserver (with its code server),
    # Chromium (all its processes), and the rest (Postgres, daemon, sandbox, anyone else's work).
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    pages_window: tuple[float, float] = (0.0, 0.0)  # time.time() of the first and last load
    runs_during_pages: list[dict[str, Any]] = field(default_factory=list)  # schedules, sensors
    measured_at: str = ""
    # With --floor-walks: each walk alone over the backfill's range (seconds), and the push floor.
    floor: dict[str, float] = field(default_factory=dict)
    push_floor: float = 0.0
    contacts: int = 0
    launched_at: float = 0.0  # time.time() just before launchPartitionBackfill
    timeline: dict[str, Any] = field(default_factory=dict)  # ui_timeline.UiTimeline.as_json
    timeline_table: str = ""
    # Each run worker's tree (the backfill's run with its writer, then the push run): peak PSS.
    run_memory: list[dict[str, float]] = field(default_factory=list)


@contextmanager
def started(processes: list[subprocess.Popen[Any]]) -> Iterator[list[subprocess.Popen[Any]]]:
    """Every process appended to the list is stopped (its whole process group) on leaving."""
    try:
        yield processes
    finally:
        stop(processes)


def start_process(
    processes: list[subprocess.Popen[Any]],
    args: list[str],
    env: dict[str, str],
    log: Path,
    ready_url: str,
    timeout: float,
) -> None:
    """A child in its own process group (stopped with the others), up once ``ready_url`` answers."""
    with log.open("wb") as out:
        proc = spawn(args, env, ROOT, stdout=out, stderr=subprocess.STDOUT)
    processes.append(proc)

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"{args[0]} exited with {proc.returncode}:\n{log.read_text()}")
        try:
            return requests.get(ready_url, timeout=5).status_code < 500
        except requests.RequestException:
            return False

    if ready_url:
        wait_for(f"{' '.join(args[:3])} answering at {ready_url}", timeout, up)


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {
        name: version(name) for name in ("dagster", "dagster-webserver", "dagster-postgres")
    } | {"playwright": version("playwright")}


def run(args: argparse.Namespace, tmp: Path, server: EmbeddedPostgres, result: Result) -> None:
    first, end = year_range(args.days)
    try:
        og_url, dagster_url = database_pair(server, "og_pipeline_ui", "og_dagster_ui")
        migrate(og_url)
        databases = Databases(og_url=og_url, dagster_url=dagster_url)
        state = tmp / "og_home"
        state.mkdir()
        sandbox_port, web_port = free_port(), free_port()
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        base = f"http://127.0.0.1:{web_port}"
        env = clean_env()
        env.update(dagster_environment(ROOT, state, databases))
        env.update(sandbox_env(sandbox, first.date(), state))
        # Dagster's tables and the API pools before the daemon can start a run (as `dev` does).
        saved = dict(os.environ)
        try:
            with instance_on(ROOT, state, databases):
                pass
        finally:
            os.environ.clear()
            os.environ.update(saved)
        bin_dir = Path(sys.executable).parent
        workspace = str(ROOT / "workspace.yaml")
        with started([]) as processes:
            print(
                f"sandbox: {args.subscriptions:,} subscriptions, history {first:%Y-%m-%d} to "
                f"{end:%Y-%m-%d}",
                flush=True,
            )
            start_process(
                processes,
                [
                    sys.executable,
                    *("-m", "og_pipeline", "sandbox", "--port", str(sandbox_port)),
                    *("--subscriptions", str(args.subscriptions), "--seed", "1"),
                    *("--start-date", first.date().isoformat(), "--now", end.isoformat()),
                    *sandbox_limits(args.latency, args.requests_per_minute),
                ],
                env,
                tmp / "sandbox.log",
                f"{sandbox}/_sandbox/health",
                600,
            )
            result.sandbox = sandbox_counts(sandbox)
            if args.floor_walks:
                measure_floor(args, sandbox, first, end, result)
            print(
                f"sandbox: {result.sandbox}; starting the Dagster webserver and daemon", flush=True
            )
            start_process(
                processes,
                [str(bin_dir / "dagster-daemon"), "run", "-w", workspace],
                env,
                tmp / "daemon.log",
                "",
                0,
            )
            start_process(
                processes,
                [
                    str(bin_dir / "dagster-webserver"),
                    *("-w", workspace, "-h", "127.0.0.1", "-p", str(web_port)),
                ],
                env,
                tmp / "webserver.log",
                f"{base}/server_info",
                300,
            )
            webserver = processes[-1]
            wait_for_location(base)
            backfill_year(base, first, end, args.backfill_timeout, args.push_timeout, result)
            print(
                f"backfill {result.backfill_status} after {result.backfill_seconds:.0f} s; "
                f"contacts_push {result.push_status}, no run left {result.quiet_seconds:.0f} s "
                "later; the pages",
                flush=True,
            )
            pages = [
                # "N Partitions Selected" shows once the partition health and the definition
                # have loaded; the list of partitions beside it, at the same time.
                PageSpec(
                    "asset-partitions", f"/assets/{RAW}?view=partitions", "Partitions Selected"
                ),
                # The asset's default tab; its status section replaces skeletons when loaded.
                PageSpec("asset-overview", f"/assets/{RAW}", "Latest materialization"),
                # The asset's row, with its "N% completed" bar, once the backfill has loaded.
                PageSpec("backfill", f"/runs/b/{result.backfill_id}", "% completed"),
            ]
            shots = args.screenshots
            if shots is not None:
                shots.mkdir(parents=True, exist_ok=True)
            result.load_before = os.getloadavg()[0]
            psutil.cpu_percent()
            began, busy, web = time.time(), machine_busy(), tree_cpu(webserver.pid)
            with sync_playwright() as pw:
                bodies = measure_pages(pw, base, pages, args.reps, shots, result)
            result.cpu_busy = psutil.cpu_percent()
            result.pages_window = (began, time.time())
            cpu = result.cpu_seconds
            cpu["webserver"] = tree_cpu(webserver.pid) - web
            cpu["machine"] = machine_busy() - busy
            cpu["rest"] = cpu["machine"] - cpu["webserver"] - cpu["chromium"]
            print(f"replaying the pages' {len(bodies)} GraphQL queries", flush=True)
            result.replays = replay(base, bodies, args.replays)
            backfill_facts(base, result)
            # Last: it reads the instance's Postgres, whose caches the pages met cold.
            timeline = read_ui_timeline(
                dagster_url, tmp / "bench_home", result.backfill_id, result.launched_at
            )
            result.timeline = timeline.as_json()
            result.timeline_table = timeline_table(timeline)
    except BaseException:
        for log in sorted(tmp.glob("*.log")):  # gone with the temp dir: their ends, to see why
            print(f"--- the end of {log.name}:\n{log.read_text(errors='replace')[-3000:]}")
        raise


def measure_floor(
    args: argparse.Namespace, sandbox: str, first: datetime, end: datetime, result: Result
) -> None:
    """first_sync_bench's floor, before the daemon starts: each walk alone, and the push's."""
    for resource in args.floor_walks.split(","):
        print(f"floor: the {resource} walk alone", flush=True)
        walk = bare_walk(f"{sandbox}/ordergroove", [resource], first, end, args.requests_per_minute)
        result.floor[resource] = walk.seconds
    result.contacts = contacts_with_email(sandbox)
    result.push_floor = push_floor(result.contacts)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--subscriptions", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365, help="hourly partitions: days x 24")
    parser.add_argument("--reps", type=int, default=3, help="cold and warm loads per page")
    parser.add_argument("--replays", type=int, default=3, help="replays of each GraphQL query")
    parser.add_argument(
        "--backfill-timeout", type=float, default=1800.0, help="seconds before giving up"
    )
    parser.add_argument(
        "--push-timeout",
        type=float,
        default=300.0,
        help="seconds to wait for the contacts_push run after the backfill",
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds the sandbox waits before each answer"
    )
    parser.add_argument(
        "--requests-per-minute",
        type=float,
        default=None,
        help="Ordergroove's limit, enforced by the sandbox and given to the floor walks",
    )
    parser.add_argument(
        "--floor-walks",
        default="",
        help="walk these object types alone first (e.g. orders) and report the backfill "
        "against the longest plus the push floor, as first_sync_bench does",
    )
    parser.add_argument("--screenshots", type=Path, default=None, help="keep PNGs here")
    parser.add_argument("--json", type=Path, default=None, help="write the raw figures here")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        parser.error(f"{CHROMIUM} is missing: apt-get install chromium")
    version = code_version()
    result = Result(args.subscriptions, args.days, args.days * 24, machine=machine())
    result.versions = versions()
    with embedded_postgres("og-ui-bench-") as (tmp, server):
        run(args, tmp, server, result)
    result.measured_at = f"{datetime.now(UTC):%Y-%m-%d %H:%M}"
    text = report(args, result, version)
    print("\n" + text)
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=1))


if __name__ == "__main__":
    main()
