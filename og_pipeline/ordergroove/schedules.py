"""The hourly sync: each hour's partition, a few minutes after the hour closes."""

from __future__ import annotations

import dagster as dg

from og_pipeline.contacts.assets import contact_subscription_stats
from og_pipeline.ometria.assets import ometria_contact_fields
from og_pipeline.ordergroove.assets import ordergroove_products, ordergroove_raw_records

# Raw records for the hour (or a backfill range, as one run), then the stats and the push of
# whatever changed. The unpartitioned steps run once per run, whatever its range.
ordergroove_sync_job = dg.define_asset_job(
    "ordergroove_sync",
    selection=[ordergroove_raw_records, contact_subscription_stats, ometria_contact_fields],
    description="Sync Ordergroove records for the hours of the run, then push changed contacts.",
    # The steps run in sequence; one process keeps the run light on a small machine.
    executor_def=dg.in_process_executor,
)

# Minute 5: records updated in the last seconds of the hour are committed on Ordergroove's side
# by then (the next run's overlap catches any straggler anyway).
ordergroove_hourly_sync = dg.build_schedule_from_partitioned_job(
    ordergroove_sync_job,
    minute_of_hour=5,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

# Products change rarely and are read in full: once a day, off the hour's busy minutes.
ordergroove_products_job = dg.define_asset_job(
    "ordergroove_products_refresh",
    selection=[ordergroove_products],
    description="Refresh the Ordergroove product catalogue (full read).",
)
ordergroove_daily_products = dg.ScheduleDefinition(
    job=ordergroove_products_job,
    cron_schedule="35 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
