"""The first-sync benchmark's report: its Markdown tables, and the estimate for a larger size."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sync_runs import Timeline
from tables import Row, by_column, fmt_s, verdict

from og_pipeline.ordergroove.sync import RESOURCES

if TYPE_CHECKING:
    from first_sync_bench import Result

TARGET, MEMORY_TARGET = 1.25, 300 * 2**20


def main_table(results: list[Result]) -> str:
    def share(r: Result, seconds: float) -> str:
        return f"{fmt_s(seconds)} ({seconds / r.total:.0%})"

    def walk_cell(resource: str) -> Callable[[Result], str]:
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
    rows: list[Row[Result]] = [
        (
            "sandbox customers / orders (= items)",
            lambda r: f"{r.sandbox.get('customers', 0):,} / {r.sandbox.get('orders', 0):,}",
        ),
        ("records walked (4 object types)", lambda r: f"{r.records:,}"),
        *((f"floor: {res} walk alone", walk_cell(res)) for res in RESOURCES),
        ("**(a) longest walk alone** (mean of before/after)", longest),
        ("(b) the four walks one after another", lambda r: fmt_s(r.sequential)),
        (
            "push floor (contacts with an e-mail / 800 per s)",
            lambda r: f"{fmt_s(r.push_floor)} ({r.contacts_with_email:,} contacts)",
        ),
        ("**floor: (a) + push floor**", lambda r: f"**{fmt_s(r.floor)}**"),
        (
            "sync: Dagster before the walk (process start → raw STEP_START)",
            lambda r: share(r, r.buckets()["before"]),
        ),
        (
            "sync: walk + write (raw STEP_START → 'synced N records')",
            lambda r: share(r, r.buckets()["walk"]),
        ),
        ("sync: stats step", lambda r: share(r, r.buckets()["stats"])),
        ("sync: push step", lambda r: share(r, r.buckets()["push"])),
        ("sync: Dagster after (the rest)", lambda r: share(r, r.buckets()["after"])),
        ("**sync total** (process wall time)", lambda r: f"**{fmt_s(r.total)}**"),
        (
            f"**total / ((a) + push floor)** (target ≤ {TARGET}x)",
            lambda r: f"**{r.total / r.floor:.2f}x** ({verdict(r.total / r.floor, TARGET)})",
        ),
        (
            "total / ((b) + push floor)",
            lambda r: f"{r.total / (r.sequential + r.push_floor):.2f}x",
        ),
        ("walk + write / (a)", lambda r: f"{r.buckets()['walk'] / r.longest:.2f}x"),
        ("push step / push floor", lambda r: f"{r.buckets()['push'] / r.push_floor:.2f}x"),
        (
            f"**peak memory** (PSS, sync process tree; target ≤ {MEMORY_TARGET // mib} MiB)",
            lambda r: (
                f"**{r.peak_memory / mib:,.0f} MiB** ({r.peak_phase()}; peaks apart: "
                f"main process {r.peak_memory_main / mib:,.0f}, its children "
                f"{r.peak_memory_children / mib:,.0f})"
            ),
        ),
        (
            "Ordergroove requests / retries (client counters)",
            lambda r: f"{int(r.summary.get('requests', 0)):,} / {r.summary.get('retries')}",
        ),
        ("Ordergroove requests/min reached (requests / walk time)", rpm),
        (
            "push requests (200 / 429), requests/s",
            lambda r: (
                f"{r.push.get('requests', 0):,.0f} ({r.push.get('ok', 0):,.0f} / "
                f"{r.push.get('throttled', 0):,.0f}), {r.push.get('req_per_s', 0):.2f}/s"
            ),
        ),
        (
            "contacts pushed / accepted",
            lambda r: f"{r.summary.get('contacts_pushed')} / {r.summary.get('contacts_accepted')}",
        ),
        (
            "machine: load before / CPU busy during the sync",
            lambda r: f"{r.load_before:.2f} / {r.cpu_busy:.0f}%",
        ),
    ]
    return by_column([f"{r.subscriptions:,} subscriptions" for r in results], rows, results)


def detail_table(results: list[Result]) -> str:
    """Where the time outside the walk and the push goes, from the runs' event logs."""

    def span(a: str, b: str) -> Callable[[Timeline], str]:
        return lambda t: fmt_s(t.span(a, b))

    def walk_ends(t: Timeline) -> str:
        walk = t.walk_done - t.raw_step_start
        return ", ".join(
            f"{res} {t.walk_finished[res] - t.raw_step_start:.0f}"
            if res in t.walk_finished
            else f"{res} ≤ {walk:.0f}"  # ended after the last progress line
            for res in RESOURCES
        )

    rows: list[Row[Timeline]] = [
        (
            "process start → raw run's first event (imports, definitions, instance)",
            span("process_start", "raw_first_event"),
        ),
        (
            "raw run's first event → RUN_START (run creation, planned events)",
            span("raw_first_event", "raw_run_start"),
        ),
        (
            "ASSET_MATERIALIZATION_PLANNED events, raw run / push run",
            lambda t: f"{t.planned:,} / {t.planned_push:,}",
        ),
        (
            "ASSET_CHECK_EVALUATION_PLANNED events of the raw run (a row per hour each)",
            lambda t: f"{t.checks_planned:,}",
        ),
        ("RUN_START → raw STEP_START", span("raw_run_start", "raw_step_start")),
        (
            "walks done after (s from STEP_START, progress lines, ±5 s)",
            walk_ends,
        ),
        (
            "'synced N records' → first ASSET_MATERIALIZATION",
            span("walk_done", "first_materialization"),
        ),
        (
            "first → last ASSET_MATERIALIZATION of the raw step",
            span("first_materialization", "last_materialization"),
        ),
        (
            "ASSET_MATERIALIZATION events of the raw run",
            lambda t: f"{t.materializations:,}",
        ),
        (
            "last ASSET_MATERIALIZATION → raw STEP_SUCCESS",
            span("last_materialization", "raw_step_success"),
        ),
        ("raw STEP_SUCCESS → raw run's last event", span("raw_step_success", "raw_run_end")),
        ("raw run's last event → push run's first event", span("raw_run_end", "push_first_event")),
        ("push run's first event → stats STEP_START", span("push_first_event", "stats_start")),
        ("stats STEP_SUCCESS → push STEP_START", span("stats_end", "push_start")),
        ("push STEP_SUCCESS → push run's last event", span("push_end", "push_run_end")),
        ("push run's last event → process exit", span("push_run_end", "process_end")),
        (
            "events in the raw run / push run",
            lambda t: f"{t.raw_events:,} / {t.push_events:,}",
        ),
    ]
    heads = [f"{r.subscriptions:,}" for r in results]
    return by_column(heads, rows, [r.timeline for r in results])


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
