"""The jobs of the og_pipeline location, with the schedules and the sensor that start them.

They span the folders (Ordergroove -> contacts -> Ometria, webhooks -> contacts -> Ometria), so
they live here, above every folder, and no folder imports one downstream of it:

    ordergroove_sync               hourly schedule (minute 5), `sync` up to a day, backfills
        ordergroove_raw_records -> contact_subscription_stats -> ometria_contact_fields
    ordergroove_raw_sync           `sync` over more than a day (then contacts_push), backfills
        ordergroove_raw_records
    ordergroove_products_refresh   daily schedule (03:35 UTC)
    process_webhook_events         webhook sensor, one run per claimed batch of events
        ordergroove_webhook_events -> contact_subscription_stats -> ometria_contact_fields
                                   -> ometria_custom_events
    contacts_push                  after `sync`'s raw run, and (sensor push_after_backfill) once
        contact_subscription_stats -> ometria_contact_fields    after a raw-only backfill run
    health_checks                  every 15 minutes: the checks that must speak even when the
                                   runs they watch fail (push backlog, refused contacts, webhook
                                   events left unprocessed, freshness of the hour's records and
                                   of the push), and only those

The webhook sensor claims committed events into a batch (not a sequence cursor), which is what
makes late commits safe: an event whose transaction commits after a tick is still pending and
unclaimed, so the next tick takes it. The run key is the batch id, so a batch never runs twice;
a batch whose run never finished is re-offered (same key: Dagster skips it if its run exists).
Its events are claimed into a new batch at once if its run started and died, or after
STALE_BATCH if no run ever started it (og_pipeline/webhooks/batches.py).
"""

from __future__ import annotations

import dagster as dg

from og_pipeline.contacts.assets import contact_subscription_stats
from og_pipeline.ometria.assets import ometria_contact_fields, ometria_custom_events
from og_pipeline.ometria.checks import (
    contact_fields_freshness_checks,
    push_backlog_check,
    rejected_share_check,
)
from og_pipeline.ordergroove.assets import RAW_RECORDS, ordergroove_products
from og_pipeline.ordergroove.checks import raw_records_freshness_checks
from og_pipeline.pools import ensure_pools
from og_pipeline.resources import PostgresResource
from og_pipeline.run_tags import PUSH_BY_COMMAND, PUSH_TAG
from og_pipeline.webhooks.assets import ordergroove_webhook_events
from og_pipeline.webhooks.batches import claim_batch, open_batches
from og_pipeline.webhooks.checks import staged_events_in_time_check

# Raw records for the hour (or a backfill range, as one run), then the stats and the push of
# whatever changed. The unpartitioned steps run once per run, whatever its range.
ordergroove_sync_job = dg.define_asset_job(
    "ordergroove_sync",
    # By key: the raw asset is built when the definitions load (its partitions need settings).
    selection=dg.AssetSelection.assets(
        RAW_RECORDS, contact_subscription_stats, ometria_contact_fields
    ),
    description="Sync Ordergroove records for the hours of the run, then push changed contacts.",
)

# The raw records alone, for long ranges (`og-pipeline sync` over more than a day, or a backfill
# of this job): Dagster plans an event per hour of a range run for every asset in the run, the
# unpartitioned ones included, so a year with the stats and the push in the same run would plan
# three times 8,760 events before any data moves. The push follows as a run of its own.
# Without the freshness check, which `health_checks` runs every 15 minutes anyway: in a range run
# it would be planned once per hour of the range (8,760 rows for a year, ~3 s) and run as a step.
ordergroove_raw_job = dg.define_asset_job(
    "ordergroove_raw_sync",
    selection=dg.AssetSelection.assets(RAW_RECORDS)
    - dg.AssetSelection.checks(*raw_records_freshness_checks),
    description="Sync Ordergroove records for the hours of the run (the push follows on its own).",
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


BATCH_SIZE = 500

webhook_events_job = dg.define_asset_job(
    "process_webhook_events",
    selection=[
        ordergroove_webhook_events,
        contact_subscription_stats,
        ometria_contact_fields,
        ometria_custom_events,
    ],
    description="Apply a batch of webhook events, update the affected contacts, "
    "send custom events.",
)


def batch_run_request(batch_id: int) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"webhook-batch-{batch_id}",
        run_config={"ops": {"ordergroove_webhook_events": {"config": {"batch_id": batch_id}}}},
        tags={"og-pipeline/webhook-batch": str(batch_id)},
    )


@dg.sensor(
    job=webhook_events_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts a run for each batch of newly committed Ordergroove webhook events.",
)
def webhook_events_sensor(
    context: dg.SensorEvaluationContext, postgres: PostgresResource
) -> dg.SensorResult:
    # Every tick, events or not: the pools exist before the runs, and a command's run whose
    # process died is marked failed and its slots freed within a tick (og_pipeline.pools).
    for run_id in ensure_pools(context.instance):
        context.log.warning("run %s marked failed: its process is gone; its slots are free", run_id)
    with postgres.connection() as conn:
        claimed = claim_batch(conn, limit=BATCH_SIZE)
        batches = open_batches(conn)
    if not batches:
        return dg.SensorResult(skip_reason="no new webhook events")
    if claimed is not None:
        context.log.info("claimed batch %s", claimed)
    # No cursor: the claim in Postgres is the state (see the module docstring).
    return dg.SensorResult(run_requests=[batch_run_request(batch) for batch in batches])


# A UI backfill of ordergroove_raw_records is one run (single-run policy) of the raw asset alone;
# without this, its contacts would reach Ometria only with the next hourly run.
contacts_push_job = dg.define_asset_job(
    "contacts_push",
    selection=[contact_subscription_stats, ometria_contact_fields],
    description="The stats and the push after a run that synced raw records without them.",
)

STATS_KEY = dg.AssetKey("contact_subscription_stats")


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="push_after_backfill",
    request_job=contacts_push_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    # Its wait is the backfill's contacts' wait for Ometria; the daemon's sensor loop is 5 s.
    minimum_interval_seconds=10,
    description="After a run that synced Ordergroove records but not the contacts (a backfill "
    "launched from the UI), runs the stats and the push once.",
)
def push_after_backfill(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    run = context.dagster_run
    selected = run.asset_selection or set()
    raw_only = run.job_name == ordergroove_raw_job.name or (
        dg.AssetKey(RAW_RECORDS) in selected and STATS_KEY not in selected
    )
    # `og-pipeline sync` runs its own push right after its raw run.
    if not raw_only or run.tags.get(PUSH_TAG) == PUSH_BY_COMMAND:
        return dg.SkipReason(f"run {run.run_id} needs no follow-up push")
    # Keyed by the run: however often this run is seen, one follow-up.
    return dg.RunRequest(
        run_key=f"push-after-{run.run_id}",
        tags={"og-pipeline/after-run": run.run_id},
    )


HEALTH_CHECKS = [
    push_backlog_check,
    rejected_share_check,
    staged_events_in_time_check,
    *raw_records_freshness_checks,
    *contact_fields_freshness_checks,
]

# Checks only, nothing materialized: a push failing run after run, or a sensor that stopped,
# shows up here even though the runs that would evaluate these checks never get that far.
health_checks_job = dg.define_asset_job(
    "health_checks",
    selection=dg.AssetSelection.checks(*HEALTH_CHECKS),
    description="Push backlog, contacts Ometria refused, webhook events left unprocessed, and "
    "whether the hour's records and the push are fresh.",
)
health_checks_schedule = dg.ScheduleDefinition(
    job=health_checks_job,
    cron_schedule="*/15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
