"""ui_bench's report: how it was measured, then its Markdown tables."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from typing import TYPE_CHECKING

from ui_backfill import RAW
from ui_pages import VIEWPORT

if TYPE_CHECKING:
    from ui_bench import Result

TARGET = 5.0  # seconds: issue 11's bar for opening either page


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


def floor_table(result: Result) -> str:
    """The UI backfill against first_sync_bench's floor: longest walk alone + push floor."""
    if not result.floor:
        return ""
    longest = max(result.floor, key=lambda r: result.floor[r])
    floor = result.floor[longest] + result.push_floor
    # To the push run's end (from its event log): the wait for no run left can include a run
    # of a schedule that came due meanwhile.
    total = result.timeline.get("total") or result.backfill_seconds + result.quiet_seconds
    rows = [
        *(f"| floor: {r} walk alone | {s:.1f} s |" for r, s in result.floor.items()),
        (
            f"| push floor (contacts with an e-mail / 800 per s) | {result.push_floor:.1f} s "
            f"({result.contacts:,} contacts) |"
        ),
        f"| **floor: longest walk ({longest}) + push floor** | **{floor:.1f} s** |",
        (
            "| backfill launched → COMPLETED_SUCCESS (the raw run, the daemon's loops) | "
            f"{result.backfill_seconds:.1f} s |"
        ),
        f"| → contacts_push run done, no run left | {result.quiet_seconds:.1f} s |",
        f"| **UI backfill total** (launch → the contacts_push run's end) | **{total:.1f} s** |",
        f"| **UI backfill total / floor** (target ≤ 1.25x) | **{total / floor:.2f}x** |",
    ]
    return "| | |\n| --- | --- |\n" + "\n".join(rows) + "\n\n"


def memory_line(result: Result) -> str:
    if not result.run_memory:
        return ""
    peaks = ", ".join(f"{w['peak_mib']:.0f} MiB" for w in result.run_memory)
    return (
        "Peak memory (PSS) of each run worker's process tree, in the order the runs started "
        f"(the backfill's run with its writer, then contacts_push; target ≤ 300 MiB): {peaks}.\n\n"
    )


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
        f"{floor_table(result)}{memory_line(result)}"
        + (
            f"Where the UI backfill's time went (the runs' event logs):\n\n{result.timeline_table}"
            if result.timeline_table
            else ""
        )
        + f"{loads_table(result)}\n\n"
        "What the first load of each page waited for:\n\n"
        f"{requests_table(result)}\n\nThe same queries replayed over plain HTTP:\n\n"
        f"{replay_table(result, args.replays)}\n"
    )
