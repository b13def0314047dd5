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
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from common import (
    PAGE_SIZE,
    PUSH_RATE,
    TreeRun,
    code_version,
    contacts_with_email,
    database_pair,
    embedded_postgres,
    machine,
    push_floor,
    push_rate,
    sandbox,
    sandbox_counts,
)
from first_sync_tables import detail_table, estimate, main_table
from sync_runs import Timeline, read_timeline, run_sync, sync_env, sync_range
from walks import bare_walk

from og_pipeline.db.embedded import EmbeddedPostgres
from og_pipeline.ordergroove.sync import RESOURCES

POLL = 0.2  # seconds between memory readings


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

    def measure_sync(
        self, base: str, env: dict[str, str], work: Path, start: date, days: int, timeout: float
    ) -> TreeRun:
        """``og-pipeline sync`` over the ``days`` from ``start`` against the sandbox at ``base``:
        its process's figures, its runs' timeline, the push's rate."""
        sync = run_sync(*sync_range(start, days), env, work, poll=POLL, timeout=timeout)
        t, process = self.timeline, sync.process
        t.process_start, t.process_end = process.started, process.ended
        self.peak_memory, self.peak_memory_at = process.peak, process.peak_at
        self.peak_memory_main, self.peak_memory_children = process.peak_main, process.peak_children
        self.cpu_busy, self.load_before = process.cpu_busy, process.load_before
        self.summary = sync.summary
        read_timeline(env["OG_DAGSTER_DATABASE_URL"], sync.run_ids, work / "dagster", t)
        self.push = push_rate(base)
        return process

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
        return push_floor(self.contacts_with_email)

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
            ("during the walk", t.walk_done),
            ("during the raw step's materializations", t.raw_run_end),
            ("during the push run", t.push_run_end),
        ):
            if at <= end:
                return phase
        return "at exit"

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


def walk_alone(args: argparse.Namespace, api_url: str, resource: str) -> dict[str, float]:
    """One bare cursor walk over the sync's window, under the sync's request limiter."""
    return bare_walk(
        api_url, [resource], *sync_range(args.start, args.days), args.requests_per_minute
    ).resources[resource]


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
    og_url, dagster_url = database_pair(server, f"og_pipeline_first_{n}", f"og_dagster_first_{n}")
    with sandbox(
        f"[{n:,}]",
        work / "sandbox.log",
        n,
        args.start,
        args.days,
        latency=args.latency,
        requests_per_minute=args.requests_per_minute,
    ) as base:
        result.sandbox = sandbox_counts(base)
        result.contacts_with_email = contacts_with_email(base)
        print(f"[{n:,}] sandbox: {result.sandbox}; the floor walks", flush=True)
        for resource in args.floor_walks:
            walk = result.walks[resource] = walk_alone(args, f"{base}/ordergroove", resource)
            print(
                f"[{n:,}]   {resource}: {walk['records']:,.0f} records, {walk['pages']:,.0f} "
                f"pages in {walk['seconds']:.1f} s",
                flush=True,
            )
        estimate_unwalked(result)
        env = sync_env(
            base,
            args.start,
            work,
            og_url,
            dagster_url,
            requests_per_minute=args.requests_per_minute,
        )
        print(f"[{n:,}] og-pipeline sync over {args.days} days", flush=True)
        result.measure_sync(base, env, work, args.start, args.days, args.sync_timeout)
        print(f"[{n:,}] sync {result.total:.1f} s: {result.buckets()}", flush=True)
        if not args.no_floor_after:
            again = walk_alone(args, f"{base}/ordergroove", result.longest_resource)
            result.longest_again = again["seconds"]
            print(
                f"[{n:,}] {result.longest_resource} alone again: {again['seconds']:.1f} s",
                flush=True,
            )
    return result


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
    _, end = sync_range(args.start, args.days)
    if end > datetime.now(UTC) - timedelta(hours=1):
        parser.error("--start + --days must be before the last complete hour")
    version = code_version()
    results: list[Result] = []
    with embedded_postgres("og-first-sync-bench-") as (tmp, server):
        for n in sizes:
            results.append(bench(args, n, server, tmp / str(n)))
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
