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
import json
import os
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from common import (
    PUSH_BATCH,
    PUSH_RATE,
    code_version,
    contacts_with_email,
    database_pair,
    embedded_postgres,
    machine,
    sandbox,
    sandbox_counts,
)
from first_sync_bench import Result as SyncResult
from first_sync_tables import detail_table
from peer_dlt import DLT_PREFIXES, DltRun, count_rows, run_dlt
from sync_runs import sync_env, sync_range
from tables import fmt_s, labelled, line, verdict
from walks import Walk, bare_walk

from og_pipeline.db.embedded import EmbeddedPostgres
from og_pipeline.ordergroove.sync import RESOURCES

NO_LIMIT = 60_000.0  # OG_ORDERGROOVE_REQUESTS_PER_MINUTE's maximum: 1,000/s, never reached here
DLT_TARGET, WALK_TARGET, MEMORY_TARGET = 0.5, 2.0, 300 * 2**20
MIB = 2**20


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


def walk(args: argparse.Namespace, base: str) -> Walk:
    """The four cursor walks of a sync, one after another, nothing done with the pages."""
    return bare_walk(
        f"{base}/ordergroove",
        RESOURCES,
        *sync_range(args.start, args.days),
        args.requests_per_minute,
    )


def run_og_sync(
    args: argparse.Namespace, server: EmbeddedPostgres, base: str, work: Path, result: Result
) -> SyncResult:
    sync = SyncResult(args.subscriptions, 0.0)
    og_url, dagster_url = database_pair(server, "og_peer", "og_peer_dagster")
    rpm = args.requests_per_minute or NO_LIMIT
    env = sync_env(
        base,
        args.start,
        work,
        og_url,
        dagster_url,
        requests_per_minute=rpm,
        more_prefixes=DLT_PREFIXES,
    )
    process = sync.measure_sync(base, env, work, args.start, args.days, args.timeout)
    result.sync_load_before, result.sync_busy = process.load_before, process.cpu_busy
    result.sync_tables = count_rows(og_url, "og")
    return sync


def bench(args: argparse.Namespace, server: EmbeddedPostgres, work: Path) -> Result:
    n = args.subscriptions
    result = Result(n, args.start.isoformat(), args.days, args.requests_per_minute)
    with sandbox(
        f"[{n:,}]",
        work / "sandbox.log",
        n,
        args.start,
        args.days,
        requests_per_minute=args.requests_per_minute,
    ) as base:
        result.sandbox = sandbox_counts(base)
        with_email = contacts_with_email(base)
        print(f"[{n:,}] sandbox: {result.sandbox}; {with_email:,} contacts with an e-mail")
        print(f"[{n:,}] bare walk", flush=True)
        result.walks.append(walk(args, base))
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
        result.walks.append(walk(args, base))
        print(f"[{n:,}]   {result.walks[-1].seconds:.1f} s", flush=True)
    return result


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
                f"{s.peak_phase()}; peaks apart: main process "
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
    head = f"{r.subscriptions:,} subscriptions, {r.days} days"
    return labelled([head], ((label, [value]) for label, value in rows))


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
    against = [("/ bare walk", r.walk_s)] + ([("/ dlt", first.run_s)] if first else [])
    lines = [
        line(["part of (total − push floor)", "seconds", "share", *(head for head, _ in against)]),
        line(["---", "---:", "---:", *("---:" for _ in against)]),
    ]
    for label, seconds in [*parts, ("**total − push floor**", r.net)]:
        ratios = (f"{seconds / base:.2f}x" for _, base in against)
        lines.append(line([label, f"{seconds:,.1f}", f"{seconds / r.net:.0%}", *ratios]))
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
    _, end = sync_range(args.start, args.days)
    if end > datetime.now(UTC) - timedelta(hours=1):
        parser.error("--start + --days must be before the last complete hour")
    version = code_version()
    with embedded_postgres("og-peer-bench-") as (tmp, server):
        result = bench(args, server, tmp)
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
