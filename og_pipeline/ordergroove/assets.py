"""Ordergroove raw records: hourly partitions from OG_SYNC_START_DATE, one walk per run.

A run over one hour or over a whole backfill range executes the same code: it reads its
``partition_time_window`` and walks that window once per object type (BackfillPolicy.single_run),
so a year of history is one run, not 8,760. One hourly asset holds all four object types: every
hourly partition costs Dagster bookkeeping, so the partitioned assets are kept few.

The partitions start on OG_SYNC_START_DATE, so the asset is built by ``build_raw_records`` when
the definitions load (``defs()``), not when this module is imported.
"""

from datetime import UTC, date, datetime, time, timedelta

import dagster as dg

from og_pipeline.db.connection import one
from og_pipeline.ordergroove.load import UpsertCounts, store
from og_pipeline.ordergroove.records import ParseContext
from og_pipeline.ordergroove.rejected import counts as set_aside_counts
from og_pipeline.ordergroove.resources import OrdergrooveResource
from og_pipeline.ordergroove.sync import sync_window
from og_pipeline.pools import ORDERGROOVE_POOL
from og_pipeline.resources import OWNERS, PostgresResource

RAW_RECORDS = "ordergroove_raw_records"
READABLE_CHECK = "records_readable"
# Ranges longer than this (a first sync, a long backfill) give the per-object-type breakdown on
# the check's result rather than on each hour's materialization.
BREAKDOWN_ON_CHECK_AFTER = timedelta(days=7)


def hourly_partitions(start: date) -> dg.HourlyPartitionsDefinition:
    """An hour per partition (UTC) from midnight of ``start`` (OG_SYNC_START_DATE)."""
    first = datetime.combine(start, time(0), tzinfo=UTC)
    return dg.HourlyPartitionsDefinition(
        start_date=first.strftime("%Y-%m-%d-%H:%M"), timezone="UTC"
    )


def build_raw_records(start: date) -> dg.AssetsDefinition:
    """The ``ordergroove_raw_records`` asset, its partitions starting on ``start``."""
    return dg.asset(
        name=RAW_RECORDS,
        group_name="ordergroove",
        partitions_def=hourly_partitions(start),
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=ORDERGROOVE_POOL,
        kinds={"ordergroove", "postgres"},
        owners=OWNERS,
        tags={"source": "ordergroove"},
        check_specs=[
            dg.AssetCheckSpec(
                READABLE_CHECK,
                asset=RAW_RECORDS,
                blocking=True,
                description="Warns while any record is set aside as unreadable; blocks the push "
                "when more than max_rejected_share of a window's records are (a changed API, "
                "not a bad record).",
            )
        ],
    )(ordergroove_raw_records)


def ordergroove_raw_records(
    context: dg.AssetExecutionContext,
    ordergroove: OrdergrooveResource,
    postgres: PostgresResource,
) -> dg.MaterializeResult:
    """Ordergroove subscriptions, customers, orders and order items updated in the hour.

    Each partition is an hour (UTC) of changes, read from the Ordergroove REST API with one
    cursor walk per object type and upserted into og.subscriptions, og.customers, og.orders and
    og.items. A record is replaced only by a newer version, so re-running an old hour or a whole
    backfill never regresses anything. Every changed record marks its customer for the stats.
    A record that cannot be read is set aside in og.rejected_records with its reason (see
    `og-pipeline records rejected`); the walk goes on without it.
    """
    window = context.partition_time_window
    context.log.info("syncing Ordergroove records updated from %s to %s", window.start, window.end)

    with ordergroove.client() as client:
        report = sync_window(
            client,
            postgres.database_url,
            window.start,
            window.end,
            overlap=timedelta(minutes=ordergroove.overlap_minutes),
            # A line every few seconds while the walks go: a year's first sync shows it moving.
            on_progress=lambda walks: context.log.info("walks: " + "; ".join(walks.lines())),
            window=timedelta(days=ordergroove.window_days),
            slow_page_seconds=ordergroove.slow_page_seconds,
        )
        stats = client.stats
    context.log.info(
        "synced %d records in %d requests (%d retries)",
        report.records,
        stats.requests,
        stats.retries,
    )
    if report.rejected:
        context.log.warning(
            "set aside %d unreadable records (%.2f%% of the window): "
            "`og-pipeline records rejected` lists them with their reasons",
            report.rejected,
            100 * report.rejected_share,
        )
    with postgres.connection() as conn:
        waiting = set_aside_counts(conn)
    totals: dict[str, dg.RawMetadataValue] = {
        "window_start": dg.MetadataValue.timestamp(report.start),
        "window_end": dg.MetadataValue.timestamp(report.end),
        "records_fetched": report.records,
        "records_inserted": sum(c.inserted for c in report.counts.values()),
        "records_updated": sum(c.updated for c in report.counts.values()),
        "records_set_aside": report.rejected,
        "requests": stats.requests,
        "pages": stats.pages,
        "retries": stats.retries,
    }
    # A range run copies the materialization's metadata into the event of every hour it
    # covers: a year's 8,760 events with the per-object-type breakdown took ~4 s more to write.
    # Long ranges keep the totals there and give the breakdown once, on the check's result.
    breakdown = report.as_metadata()
    long_range = window.end - window.start > BREAKDOWN_ON_CHECK_AFTER
    return dg.MaterializeResult(
        metadata=totals if long_range else {**totals, **breakdown},
        check_results=[
            _readable_check(
                report.rejected,
                report.rejected_share,
                waiting,
                ordergroove.max_rejected_share,
                breakdown if long_range else {},
            )
        ],
    )


def _readable_check(
    rejected: int,
    share: float,
    waiting: dict[str, int],
    max_share: float,
    breakdown: dict[str, int],
) -> dg.AssetCheckResult:
    total = sum(waiting.values())
    blocking = share > max_share
    return dg.AssetCheckResult(
        check_name=READABLE_CHECK,
        passed=total == 0 and rejected == 0,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        metadata={
            "set_aside_in_window": rejected,
            "share_of_window": round(share, 6),
            "max_share": max_share,
            "set_aside_in_table": total,
            **{f"set_aside_{resource}": count for resource, count in waiting.items()},
            **breakdown,
        },
        description=(
            f"{share:.2%} of the window's records could not be read (over {max_share:.2%}): "
            "the push is blocked; check what changed with `og-pipeline records rejected`"
            if blocking
            else f"{total} records set aside as unreadable: `og-pipeline records rejected`"
            if total
            else "every record read"
        ),
    )


@dg.asset(
    group_name="ordergroove",
    pool=ORDERGROOVE_POOL,
    kinds={"ordergroove", "postgres"},
    owners=OWNERS,
    tags={"source": "ordergroove"},
)
def ordergroove_products(
    context: dg.AssetExecutionContext,
    ordergroove: OrdergrooveResource,
    postgres: PostgresResource,
) -> dg.MaterializeResult:
    """The Ordergroove product catalogue (name, image and detail URLs) in og.products.

    Custom events carry product details; the API offers no incremental filter for products, so
    this is a full refresh on its own daily schedule rather than part of every hour.
    """
    totals = UpsertCounts()
    with ordergroove.client() as client, postgres.connection() as conn:
        for page in client.iter_products():
            totals.add(store(conn, "products", page, ParseContext(client.zone)))
            conn.commit()
        requests, retries = client.stats.requests, client.stats.retries
        count = one(conn.execute("SELECT count(*) FROM og.products"))[0]
    context.log.info(
        "refreshed %d products (%d new, %d changed)",
        totals.received,
        totals.inserted,
        totals.updated,
    )
    return dg.MaterializeResult(
        metadata={
            "products_fetched": totals.received,
            "products_inserted": totals.inserted,
            "products_updated": totals.updated,
            "products_set_aside": totals.rejected,
            "requests": requests,
            "retries": retries,
            "dagster/row_count": count,
        }
    )
