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
import os
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import psutil
from common import (
    PUSH_RATE,
    ROOT,
    database_pair,
    embedded_postgres,
    machine,
    push_rate,
    sandbox,
    sandbox_counts,
)
from sync_runs import PUSH, RAW, STATS, run_sync, step_times, sync_env, sync_range
from tables import Row, by_column, line
from walks import bare_walk

from og_pipeline.db.embedded import EmbeddedPostgres
from og_pipeline.ordergroove.sync import RESOURCES

README = ROOT / "bench" / "README.md"
START = date(2026, 10, 1)
DAYS = 14
TARGET = 1.3
MARKERS = ("<!-- sync-bench:start -->", "<!-- sync-bench:end -->")


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

    @property
    def raw_s(self) -> float:
        return self.steps.get(RAW, float("nan"))


def floor_walk(api_url: str) -> tuple[float, int]:
    """The four cursor walks of sync_window, sequential, with nothing done to the pages."""
    walk = bare_walk(api_url, RESOURCES, *sync_range(START, DAYS))
    return walk.seconds, walk.records


def bench(n: int, server: EmbeddedPostgres, work: Path, latency: float = 0.0) -> Result:
    result = Result(n, latency=latency)
    work.mkdir(parents=True)
    tag = f"{n}_{round(latency * 1000)}ms"
    og_url, dagster_url = database_pair(server, f"og_pipeline_{tag}", f"og_dagster_{tag}")
    with sandbox(f"[{n}]", work / "sandbox.log", n, START, DAYS, latency=latency) as base:
        result.sandbox = sandbox_counts(base)
        print(f"[{n}] sandbox: {result.sandbox}; walking the floor", flush=True)
        psutil.cpu_percent()
        floor, result.floor_records = floor_walk(f"{base}/ordergroove")
        result.floors.append(floor)
        result.busy["floor"] = psutil.cpu_percent()
        print(f"[{n}] floor: {result.floor_records} records in {floor:.1f} s", flush=True)
        env = sync_env(base, START, work, og_url, dagster_url)
        print(
            f"[{n}] og-pipeline sync (the push phase is bound by {PUSH_RATE:g} req/s)", flush=True
        )
        sync = run_sync(*sync_range(START, DAYS), env, work, poll=0.1)
        result.wall_s, result.peak_memory = sync.process.wall_s, sync.process.peak
        result.sync_cpu_s, result.busy["sync"] = sync.process.cpu_s, sync.process.cpu_busy
        result.summary = sync.summary
        result.steps = step_times(dagster_url, sync.run_ids, work / "dagster")
        result.push = push_rate(base)
        result.floors.append(floor_walk(f"{base}/ordergroove")[0])
        print(f"[{n}] floor again after the sync: {result.floors[-1]:.1f} s", flush=True)
        print(f"[{n}] sync {result.wall_s:.1f} s, steps {result.steps}", flush=True)
    return result


def table(results: list[Result]) -> str:
    def fetched_per_s(r: Result, seconds: float) -> str:
        return f"{int(r.summary.get('records_fetched', 0)) / seconds:,.0f}"

    def without_push(r: Result) -> float:
        return (r.wall_s - r.steps.get(PUSH, 0)) / r.floor_s

    rows: list[Row[Result]] = [
        (
            "sandbox customers / orders",
            lambda r: f"{r.sandbox.get('customers', 0):,} / {r.sandbox.get('orders', 0):,}",
        ),
        ("records walked (4 resources)", lambda r: f"{r.floor_records:,}"),
        (
            "**floor**: bare API walk, before / after the sync",
            lambda r: " / ".join(f"{f:.1f} s" for f in r.floors),
        ),
        (
            "floor used (mean of the two)",
            lambda r: f"{r.floor_s:.1f} s ({r.floor_records / r.floor_s:,.0f} rec/s)",
        ),
        (
            "**raw step** (`ordergroove_raw_records`)",
            lambda r: f"{r.raw_s:.1f} s ({fetched_per_s(r, r.raw_s)} rec/s)",
        ),
        (f"**raw step / floor** (target ≤ {TARGET}x)", lambda r: f"**{r.raw_s / r.floor_s:.2f}x**"),
        ("stats step (`contact_subscription_stats`)", lambda r: f"{r.steps.get(STATS, 0):.1f} s"),
        ("push step (`ometria_contact_fields`)", lambda r: f"{r.steps.get(PUSH, 0):.1f} s"),
        ("sync total wall time", lambda r: f"{r.wall_s:.1f} s"),
        ("sync total / floor", lambda r: f"{r.wall_s / r.floor_s:.1f}x"),
        ("sync total − push step, / floor", lambda r: f"{without_push(r):.2f}x"),
        ("sync records/s (records fetched / total)", lambda r: fetched_per_s(r, r.wall_s)),
        (
            "**peak memory** (PSS) of the sync process and its children",
            lambda r: f"**{r.peak_memory / 2**20:,.0f} MiB**",
        ),
        ("sync process CPU time (user + sys)", lambda r: f"{r.sync_cpu_s:.0f} s"),
        (
            f"machine CPU busy, floor / sync ({os.cpu_count()} CPUs, all processes)",
            lambda r: f"{r.busy.get('floor', 0):.0f}% / {r.busy.get('sync', 0):.0f}%",
        ),
        (
            "contacts pushed / accepted",
            lambda r: f"{r.summary.get('contacts_pushed')} / {r.summary.get('contacts_accepted')}",
        ),
        (
            "push requests (200 / 429)",
            lambda r: (
                f"{r.push.get('requests', 0):,.0f} ({r.push.get('ok', 0):,.0f} / "
                f"{r.push.get('throttled', 0):,.0f})"
            ),
        ),
        (
            f"push requests/s (sandbox limit {PUSH_RATE:g}/s)",
            lambda r: (
                f"{r.push.get('req_per_s', 0):.2f} (accepted {r.push.get('ok_per_s', 0):.2f})"
            ),
        ),
        ("push records/s", lambda r: f"{r.push.get('records_per_s', 0):,.0f}"),
    ]
    return by_column([f"{r.subscriptions:,} subscriptions" for r in results], rows, results)


def curve_table(results: list[Result]) -> str:
    """Raw step against the floor as the API's round trip grows (one size)."""
    lines = [
        line(
            [
                "sandbox delay per answer",
                "floor",
                "raw step",
                "**raw step / floor**",
                "sync total − push step, / floor",
                "peak memory (PSS)",
            ]
        ),
        line(["---:"] * 6),
    ]
    for r in results:
        lines.append(
            line(
                [
                    f"{r.latency * 1000:g} ms",
                    f"{r.floor_s:.1f} s",
                    f"{r.raw_s:.1f} s",
                    f"**{r.raw_s / r.floor_s:.2f}x**",
                    f"{(r.wall_s - r.steps.get(PUSH, 0)) / r.floor_s:.2f}x",
                    f"{r.peak_memory / 2**20:,.0f} MiB",
                ]
            )
        )
    return "\n".join(lines)


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
    with embedded_postgres("og-sync-bench-") as (tmp, server):
        for n in sizes:
            results.append(bench(n, server, tmp / str(n), args.page_latency))
        for latency in latencies:
            curve.append(bench(args.curve, server, tmp / f"curve-{latency}", latency))
    command = "python bench/sync_bench.py " + " ".join(sys.argv[1:])
    section = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.\n\n"
        f"Command: `{command.strip()}` (sandbox seed 1, window {START} + {DAYS} days, "
        f"Ometria rate limit {PUSH_RATE:g}/s).\n\n{table(results)}\n"
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
