"""UI benchmark (issue 11): the raw asset's pages and its backfill's page, a year in.

Do the Dagster UI's asset page and backfill page for ``ordergroove_raw_records`` open in under
5 s with a year of hourly partitions (8,760) materialized? In one invocation:

1. an embedded Postgres in a temp dir: og-pipeline's database (migrated) and Dagster's, its
   tables and API pools created as ``og-pipeline dev`` does before it starts Dagster;
2. the sandbox as its own process: a small merchant (``--subscriptions``, default 1,000, seed 1)
   whose history spans the ``--days`` (365) before today 00:00 UTC, no latency;
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
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from pathlib import Path
from typing import Any

import psutil
import requests
from playwright.sync_api import BrowserContext, Page, Playwright, ViewportSize, sync_playwright
from playwright.sync_api import Request as BrowserRequest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from og_pipeline.cli.processes import spawn, stop
from og_pipeline.cli.runs import instance_on
from og_pipeline.db.connection import ensure_database
from og_pipeline.db.embedded import EmbeddedPostgres
from og_pipeline.db.migrate import migrate
from og_pipeline.db.urls import for_dagster
from og_pipeline.runtime import Databases, dagster_environment

ROOT = Path(__file__).resolve().parents[1]
RAW = "ordergroove_raw_records"
OG_KEY, OMETRIA_KEY = "sandbox-og-key", "sandbox-ometria-key"
TARGET = 5.0  # seconds: issue 11's bar for opening either page
CHROMIUM = "/usr/bin/chromium"
# The network is closed: nothing in the background may try to reach it.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
PAGE_TIMEOUT = 120.0  # seconds a load may take before it counts as failed
SETTLE = 2.0  # seconds the content must stay without a loading placeholder after it showed
POLL = 2.0  # seconds between polls of the backfill and the runs
ACTIVE_RUN_STATUSES = "[QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING]"
DONE_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}

# Dagster's loading placeholders: its spinners and its skeletons (CSS-module class names).
LOADING = ".spinnerGlobal, [class*='Skeleton_skeleton']"
# True once the page shows `needle` and no loading placeholder is on it: then the time since
# navigation start, in ms.
READY_JS = """([needle, loading]) => {
  if (!document.body || document.querySelector(loading)) return false;
  if (!document.body.innerText.includes(needle)) return false;
  return performance.now() || 0.001;
}"""
# A loading placeholder back on the page: what it sits in (the nearest text around it).
RELAPSE_JS = """(loading) => {
  const found = document.querySelector(loading);
  if (!found) return false;
  let node = found;
  while (node.parentElement && !(node.innerText || '').trim()) node = node.parentElement;
  const text = (node.innerText || '').trim().replace(/\\s+/g, ' ').slice(0, 120);
  return `${found.className.toString().split(' ')[0]} in "${text}"`;
}"""


@dataclass(frozen=True)
class PageSpec:
    name: str
    path: str
    needle: str  # text on the page once its content has loaded


@dataclass
class Request:
    op: str
    start_ms: float  # from navigation start
    end_ms: float  # response end, from navigation start
    status: int
    bytes: int

    @property
    def ms(self) -> float:
        return self.end_ms - self.start_ms


@dataclass
class Load:
    page: str
    kind: str  # first, cold, warm
    rep: int
    ms: float  # navigation start -> content shown, no spinner
    dom_content_loaded_ms: float
    relapsed: str  # the loading placeholder that came back within SETTLE seconds, if any
    graphql: list[Request] = field(default_factory=list)  # started before the content showed
    text: str = ""  # the first lines of the page's main text, to see what was measured


@dataclass
class Replay:
    op: str
    page: str
    ms: list[float]
    bytes: int


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine() -> str:
    """As bench/sync_bench.py says it (not imported: that module does not pass mypy)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    model = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
        platform.processor(),
    )
    return (
        f"{os.cpu_count()} CPUs ({model}), {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its live descendants, with the children they reaped."""
    try:
        top = psutil.Process(pid)
        procs = [top, *top.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass  # exited between the listing and the reading
    return total


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores), since boot."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


def chromium_pid() -> int | None:
    """The browser process Playwright started (a descendant of this process)."""
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.exe() == CHROMIUM or "chromium" in proc.name():
                parent = proc.parent()
                if parent is None or "chromium" not in parent.name():
                    return proc.pid
        except psutil.Error:
            continue
    return None


def graphql(base: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = requests.post(
        f"{base}/graphql", json={"query": query, "variables": variables or {}}, timeout=300
    )
    if not answer.ok:
        raise RuntimeError(f"GraphQL answered {answer.status_code}: {answer.text[:3000]}")
    body = answer.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    data: dict[str, Any] = body["data"]
    return data


def wait_for(what: str, timeout: float, check: Callable[[], Any]) -> Any:
    """Polls ``check`` every POLL seconds until it returns something true, or fails after
    ``timeout`` seconds with ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(POLL)


def year_range(days: int) -> tuple[datetime, datetime]:
    """The ``days`` before today 00:00 UTC: [first hour, end)."""
    end = datetime.combine(datetime.now(UTC).date(), day_time(0), tzinfo=UTC)
    return end - timedelta(days=days), end


def partition_key(at: datetime) -> str:
    return at.strftime("%Y-%m-%d-%H:%M")  # HourlyPartitionsDefinition's format


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


def wait_for_location(base: str) -> None:
    query = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
        name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""

    def loaded() -> bool:
        data = graphql(base, query)["workspaceOrError"]
        entries = data.get("locationEntries") or []
        for entry in entries:
            error = entry.get("locationOrLoadError") or {}
            if error.get("__typename") == "PythonError":
                raise RuntimeError(f"code location {entry['name']}: {error['message']}")
        return bool(entries) and all(
            entry["loadStatus"] == "LOADED"
            and (entry.get("locationOrLoadError") or {}).get("__typename") == "RepositoryLocation"
            for entry in entries
        )

    wait_for("the code location loaded in the webserver", 300, loaded)


LAUNCH_BACKFILL = """mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}"""
BACKFILL_STATUS = """query BenchBackfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status error { message } }
    ... on Error { message }
  }
}"""
BACKFILL_DETAIL = """query BenchBackfillDetail($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill {
      status numPartitions timestamp endTimestamp
      runs { runId jobName status startTime endTime }
      assetBackfillData { assetBackfillStatuses { ... on AssetPartitionsStatusCounts {
        numPartitionsTargeted numPartitionsInProgress numPartitionsMaterialized
        numPartitionsFailed } } }
    }
  }
}"""
ACTIVE_RUNS = (
    "{ runsOrError(filter: {statuses: " + ACTIVE_RUN_STATUSES + "}) { __typename "
    "... on Runs { results { runId jobName status } } } }"
)
PUSH_RUNS = """query BenchPushRuns($after: Float!) {
  runsOrError(filter: {pipelineName: "contacts_push", createdAfter: $after}) {
    __typename ... on Runs { results { runId status } }
  }
}"""
DONE_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
RECENT_RUNS = (
    "{ runsOrError(limit: 50) { __typename "
    "... on Runs { results { runId jobName status startTime endTime } } } }"
)
PARTITION_STATS = """query BenchPartitionStats($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) { ... on AssetNode { partitionStats {
    numMaterialized numPartitions numFailed numMaterializing } } }
}"""


def backfill_year(
    base: str, first: datetime, end: datetime, timeout: float, push_timeout: float, result: Result
) -> None:
    """The raw asset's backfill over the hours [first, end), as the UI launches one; waits for
    it, for the contacts_push run after it, and for no run to be left."""
    params = {
        # Not with assetSelection: Dagster refuses the two together.
        "partitionsByAssets": [
            {
                "assetKey": {"path": [RAW]},
                "partitions": {
                    "range": {
                        "start": partition_key(first),
                        "end": partition_key(end - timedelta(hours=1)),
                    }
                },
            }
        ],
        "tags": [{"key": "og/bench", "value": "ui_bench"}],
        "title": f"ui_bench: {RAW} over {(end - first) // timedelta(hours=1):,} hours",
    }
    began, launched_at = time.monotonic(), time.time()
    launched = graphql(base, LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
    if launched["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"launchPartitionBackfill: {launched}")
    result.backfill_id = launched["backfillId"]
    print(f"backfill {result.backfill_id} launched; waiting for the daemon to run it", flush=True)
    last = [""]

    def done() -> str:
        data = graphql(base, BACKFILL_STATUS, {"id": result.backfill_id})
        backfill = data["partitionBackfillOrError"]
        status = str(backfill.get("status", backfill["__typename"]))
        if status != last[0]:
            print(f"  {time.monotonic() - began:6.1f} s: backfill {status}", flush=True)
            last[0] = status
        return status if status in DONE_BACKFILL else ""

    result.backfill_status = wait_for("the backfill completed", timeout, done)
    result.backfill_seconds = time.monotonic() - began
    if result.backfill_status != "COMPLETED_SUCCESS":
        raise RuntimeError(f"backfill {result.backfill_id} ended {result.backfill_status}")
    quiet_from = time.monotonic()

    def pushed() -> str:
        data = graphql(base, PUSH_RUNS, {"after": launched_at})["runsOrError"]
        done = [r["status"] for r in data.get("results") or [] if r["status"] in DONE_RUN]
        return done[0] if done else ""

    # push_after_backfill starts contacts_push once the backfill's run succeeded, at its next
    # evaluation: the pages are measured after that run, not beside it.
    try:
        result.push_status = wait_for("the contacts_push run after it", push_timeout, pushed)
    except TimeoutError as missing:
        result.push_status = f"none ({missing})"

    def quiet() -> bool:
        runs = graphql(base, ACTIVE_RUNS)["runsOrError"]
        return not runs.get("results")

    wait_for("no run queued or in progress", timeout, quiet)
    result.quiet_seconds = time.monotonic() - quiet_from


def backfill_facts(base: str, result: Result) -> None:
    """After the page loads (these queries would warm the caches the first load meets)."""
    detail = graphql(base, BACKFILL_DETAIL, {"id": result.backfill_id})["partitionBackfillOrError"]
    result.backfill_runs = detail.get("runs") or []
    statuses = (detail.get("assetBackfillData") or {}).get("assetBackfillStatuses") or [{}]
    result.backfill_counts = {"numPartitions": detail.get("numPartitions"), **statuses[0]}
    node = graphql(base, PARTITION_STATS, {"key": {"path": [RAW]}})["assetNodeOrError"]
    result.materialized = node.get("partitionStats") or {}
    began, ended = result.pages_window
    result.runs_during_pages = [
        r
        for r in graphql(base, RECENT_RUNS)["runsOrError"].get("results") or []
        if (r["startTime"] or ended) < ended and (r["endTime"] or ended) > began
    ]


# --- the browser ----------------------------------------------------------------------------


class Recorder:
    """The GraphQL requests a page makes, with their timing (Playwright's request timing)."""

    def __init__(self) -> None:
        self.finished: list[tuple[BrowserRequest, str]] = []
        self.bodies: dict[str, str] = {}  # op -> the request's JSON body, for the replays

    def attach(self, page: Page) -> None:
        page.on("requestfinished", self._finished)

    def _finished(self, request: BrowserRequest) -> None:
        if "/graphql" not in request.url:
            return
        op = request.url.split("op=", 1)[1].split("&", 1)[0] if "op=" in request.url else "?"
        self.finished.append((request, op))
        body = request.post_data
        if body and op not in self.bodies:
            self.bodies[op] = body

    def since(self, origin_ms: float, until_ms: float) -> list[Request]:
        """The requests of the load whose navigation started at ``origin_ms`` (epoch ms) that
        started before ``until_ms`` (ms from that navigation start)."""
        out: list[Request] = []
        for request, op in self.finished:
            timing = request.timing
            start = timing["startTime"] - origin_ms
            if start < 0 or start > until_ms:
                continue
            end = start + max(timing["responseEnd"], 0.0)
            response = request.response()
            sizes = request.sizes()
            out.append(
                Request(
                    op,
                    round(start, 1),
                    round(end, 1),
                    response.status if response else 0,
                    int(sizes.get("responseBodySize", 0)),
                )
            )
        return sorted(out, key=lambda r: r.start_ms)


def open_page(
    page: Page,
    recorder: Recorder,
    base: str,
    spec: PageSpec,
    kind: str,
    rep: int,
    screenshot: Path | None,
) -> Load:
    page.goto(base + spec.path, wait_until="commit", timeout=PAGE_TIMEOUT * 1000)
    handle = page.wait_for_function(
        READY_JS,
        arg=[spec.needle, LOADING],
        polling="raf",
        timeout=PAGE_TIMEOUT * 1000,
    )
    ready = float(handle.json_value())
    if screenshot is not None:
        page.screenshot(path=str(screenshot))
    try:
        relapsed = str(
            page.wait_for_function(
                RELAPSE_JS, arg=LOADING, polling="raf", timeout=SETTLE * 1000
            ).json_value()
        )
    except PlaywrightTimeout:  # nothing came back
        relapsed = ""
    origin = float(page.evaluate("performance.timeOrigin"))
    dcl = float(
        page.evaluate(
            "(performance.getEntriesByType('navigation')[0] || {}).domContentLoadedEventEnd || 0"
        )
    )
    text = page.evaluate("(document.querySelector('main') || document.body).innerText")
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    load = Load(
        spec.name,
        kind,
        rep,
        round(ready, 1),
        round(dcl, 1),
        relapsed,
        recorder.since(origin, ready),
        " | ".join(lines[:40])[:600],
    )
    slowest = max(load.graphql, key=lambda r: r.ms, default=None)
    print(
        f"  {spec.name} {kind} #{rep}: {ready / 1000:.2f} s"
        + (f" (slowest query {slowest.op} {slowest.ms / 1000:.2f} s)" if slowest else "")
        + (f" - then loading again: {relapsed}" if relapsed else ""),
        flush=True,
    )
    return load


def measure_pages(
    pw: Playwright,
    base: str,
    pages: list[PageSpec],
    reps: int,
    shots: Path | None,
    result: Result,
) -> dict[str, tuple[str, str]]:
    """First, cold and warm loads of each page; returns the GraphQL bodies seen, by op."""
    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    result.versions["chromium"] = browser.version
    bodies: dict[str, tuple[str, str]] = {}

    def context() -> tuple[BrowserContext, Page, Recorder]:
        ctx = browser.new_context(viewport=VIEWPORT)
        page = ctx.new_page()
        recorder = Recorder()
        recorder.attach(page)
        return ctx, page, recorder

    def shot(name: str) -> Path | None:
        return shots / f"{name}.png" if shots is not None else None

    try:
        # The first load of each page after the backfill: nothing cached anywhere.
        for spec in pages:
            ctx, page, recorder = context()
            result.loads.append(
                open_page(page, recorder, base, spec, "first", 1, shot(f"{spec.name}-first"))
            )
            for op, body in recorder.bodies.items():
                bodies.setdefault(op, (spec.name, body))
            ctx.close()
        for spec in pages:
            for rep in range(1, reps + 1):
                ctx, page, recorder = context()
                result.loads.append(open_page(page, recorder, base, spec, "cold", rep, None))
                last = rep == reps
                for warm in range(1, reps + 1) if last else ():
                    shot_path = shot(f"{spec.name}-warm") if warm == reps else None
                    result.loads.append(
                        open_page(page, recorder, base, spec, "warm", warm, shot_path)
                    )
                for op, body in recorder.bodies.items():
                    bodies.setdefault(op, (spec.name, body))
                ctx.close()
    finally:
        pid = chromium_pid()
        result.cpu_seconds["chromium"] = tree_cpu(pid) if pid else 0.0
        browser.close()
    return bodies


def replay(base: str, bodies: dict[str, tuple[str, str]], times: int) -> list[Replay]:
    """Each query the pages sent, again over plain HTTP: the server's wall time."""
    out: list[Replay] = []
    with requests.Session() as session:
        for op, (page, body) in sorted(bodies.items()):
            if json.loads(body).get("query", "").lstrip().startswith(("mutation", "subscription")):
                continue
            seconds: list[float] = []
            size = 0
            for _ in range(times):
                began = time.perf_counter()
                answer = session.post(
                    f"{base}/graphql?op={op}",
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=300,
                )
                seconds.append(round((time.perf_counter() - began) * 1000, 1))
                size = len(answer.content)
            out.append(Replay(op, page, seconds, size))
    return sorted(out, key=lambda r: -statistics.median(r.ms))


# --- setup ------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {
        name: version(name) for name in ("dagster", "dagster-webserver", "dagster-postgres")
    } | {"playwright": version("playwright")}


def code_version() -> str:
    """The commit measured (read only), and whether the work tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            check=False,
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
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


def run(args: argparse.Namespace, tmp: Path, result: Result) -> None:
    first, end = year_range(args.days)
    server = EmbeddedPostgres(tmp / "postgres", delete=True)
    try:
        og_db, dagster_db = "og_pipeline_ui", "og_dagster_ui"
        for name in (og_db, dagster_db):
            ensure_database(server.url(), name)
        migrate(server.url(og_db))
        databases = Databases(
            og_url=server.url(og_db), dagster_url=for_dagster(server.url(dagster_db))
        )
        state = tmp / "og_home"
        state.mkdir()
        sandbox_port, web_port = free_port(), free_port()
        sandbox = f"http://127.0.0.1:{sandbox_port}"
        base = f"http://127.0.0.1:{web_port}"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OG_", "ORDERGROOVE_", "OMETRIA_", "DAGSTER_"))
        }
        env.update(dagster_environment(ROOT, state, databases))
        env.update(
            {
                "OG_HOME": str(state),
                "ORDERGROOVE_API_URL": f"{sandbox}/ordergroove",
                "ORDERGROOVE_API_KEY": OG_KEY,
                "OMETRIA_API_URL": f"{sandbox}/ometria",
                "OMETRIA_API_KEY": OMETRIA_KEY,
                "OG_SYNC_START_DATE": first.date().isoformat(),
            }
        )
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
                ],
                env,
                tmp / "sandbox.log",
                f"{sandbox}/_sandbox/health",
                600,
            )
            result.sandbox = requests.get(f"{sandbox}/_sandbox/info", timeout=60).json()["counts"]
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
    except BaseException:
        for log in sorted(tmp.glob("*.log")):  # gone with the temp dir: their ends, to see why
            print(f"--- the end of {log.name}:\n{log.read_text(errors='replace')[-3000:]}")
        raise
    finally:
        server.stop()


# --- the report -------------------------------------------------------------------------------


def fmt(ms: float) -> str:
    return f"{ms / 1000:.2f} s"


def loads_table(result: Result) -> str:
    """Per page and kind of load: the time to content, how much of it the app's start took
    (navigation start -> its first GraphQL request: HTML, JS, styles), the slowest query."""
    lines = [
        (
            "| page | load | n | open: median / max | app start (to its first GraphQL request), "
            f"median | slowest GraphQL query of the load, median | under {TARGET:g} s? |"
        ),
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    labels = {
        "first": "first after the backfill",
        "cold": "cold (new browser context)",
        "warm": "warm (same context, again)",
    }
    for page in dict.fromkeys(load.page for load in result.loads):
        for kind, label in labels.items():
            mine = [load for load in result.loads if load.page == page and load.kind == kind]
            if not mine:
                continue
            times = [load.ms for load in mine]
            boot = [min((r.start_ms for r in load.graphql), default=load.ms) for load in mine]
            slow: dict[str, list[float]] = {}  # op -> its longest request in each load
            for load in mine:
                longest: dict[str, float] = {}
                for request in load.graphql:
                    longest[request.op] = max(longest.get(request.op, 0.0), request.ms)
                for name, ms in longest.items():
                    slow.setdefault(name, []).append(ms)
            op = max(slow, key=lambda o: statistics.median(slow[o]), default="")
            relapses = sum(bool(load.relapsed) for load in mine)
            lines.append(
                f"| {page} | {label} | {len(mine)} "
                f"| {fmt(statistics.median(times))} / {fmt(max(times))} "
                f"| {fmt(statistics.median(boot))} "
                f"| {op} {fmt(statistics.median(slow[op])) if op else ''} "
                f"| {'yes' if max(times) < TARGET * 1000 else '**NO**'}"
                + (f" (loading again after {relapses})" if relapses else "")
                + " |"
            )
    return "\n".join(lines)


def requests_table(result: Result) -> str:
    """The first load of each page, request by request (ms from navigation start)."""
    lines = [
        "| page (first load) | GraphQL query | start | end | took | response |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for load in result.loads:
        if load.kind != "first":
            continue
        for request in load.graphql:
            lines.append(
                f"| {load.page} | {request.op} | {fmt(request.start_ms)} | {fmt(request.end_ms)} "
                f"| {fmt(request.ms)} | {request.bytes / 1024:,.0f} KiB |"
            )
        lines.append(f"| {load.page} | *(content shown, no spinner)* | | {fmt(load.ms)} | | |")
    return "\n".join(lines)


def replay_table(result: Result, times: int) -> str:
    lines = [
        f"| GraphQL query (page) | server wall time, median / max of {times} | response |",
        "| --- | ---: | ---: |",
    ]
    for r in result.replays:
        lines.append(
            f"| {r.op} ({r.page}) | {fmt(statistics.median(r.ms))} / {fmt(max(r.ms))} "
            f"| {r.bytes / 1024:,.0f} KiB |"
        )
    return "\n".join(lines)


def report(args: argparse.Namespace, result: Result, version: str) -> str:
    stats = result.materialized
    counts = result.backfill_counts
    runs = ", ".join(
        f"{r['jobName']} {r['status']} in {(r['endTime'] or 0) - (r['startTime'] or 0):.0f} s"
        for r in result.backfill_runs
    )
    others = ", ".join(f"{r['jobName']} ({r['status']})" for r in result.runs_during_pages)
    cpu = result.cpu_seconds
    wall = result.pages_window[1] - result.pages_window[0]
    v = result.versions
    return (
        f"Measured {result.measured_at} UTC on {result.machine}, code at {version}; Dagster "
        f"{v.get('dagster')}, Chromium {v.get('chromium')} headless (Playwright "
        f"{v.get('playwright')}), viewport {VIEWPORT['width']}x{VIEWPORT['height']}.\n\n"
        f"Command: `python bench/ui_bench.py {' '.join(sys.argv[1:])}`.\n\n"
        f"Data: sandbox of {args.subscriptions:,} subscriptions ({result.sandbox}); backfill "
        f"{result.backfill_id} of `{RAW}` over {result.partitions:,} hours, launched through "
        f"GraphQL, {result.backfill_status} after {result.backfill_seconds:.0f} s (runs: {runs}), "
        f"then contacts_push {result.push_status}, measured {result.quiet_seconds:.0f} s later; "
        f"the backfill page's counts: {counts.get('numPartitionsTargeted')} targeted, "
        f"{counts.get('numPartitionsMaterialized')} materialized, "
        f"{counts.get('numPartitionsFailed')} failed; the asset: "
        f"{stats.get('numMaterialized')} of {stats.get('numPartitions')} partitions "
        f"materialized, {stats.get('numFailed')} failed. Machine load before the pages "
        f"{result.load_before:.2f}; during them ({wall:.0f} s, {os.cpu_count()} cores) the "
        f"machine was {result.cpu_busy:.0f}% busy: {cpu.get('machine', 0):.0f} CPU s, of "
        f"which the webserver and its code server {cpu.get('webserver', 0):.0f} s, Chromium "
        f"{cpu.get('chromium', 0):.0f} s, the rest {cpu.get('rest', 0):.0f} s (Postgres, "
        f"daemon, sandbox, other work on the machine); Dagster runs during them: "
        f"{others or 'none'}.\n\n"
        f"{loads_table(result)}\n\nWhat the first load of each page waited for:\n\n"
        f"{requests_table(result)}\n\nThe same queries replayed over plain HTTP:\n\n"
        f"{replay_table(result, args.replays)}\n"
    )


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
    parser.add_argument("--screenshots", type=Path, default=None, help="keep PNGs here")
    parser.add_argument("--json", type=Path, default=None, help="write the raw figures here")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        parser.error(f"{CHROMIUM} is missing: apt-get install chromium")
    version = code_version()
    result = Result(args.subscriptions, args.days, args.days * 24, machine=machine())
    result.versions = versions()
    with tempfile.TemporaryDirectory(prefix="og-ui-bench-") as tmp:
        os.chmod(tmp, 0o755)  # as root, the embedded server runs as its own user
        run(args, Path(tmp), result)
    result.measured_at = f"{datetime.now(UTC):%Y-%m-%d %H:%M}"
    text = report(args, result, version)
    print("\n" + text)
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=1))


if __name__ == "__main__":
    main()
