"""The webhook sensor: committed events -> a claimed batch -> one run per batch.

Claiming (not a sequence cursor) is what makes late commits safe: an event whose transaction
commits after a tick is still pending and unclaimed, so the next tick takes it. The run key is
the batch id, so a batch never runs twice; a batch whose run never finished is re-offered (same
key: Dagster skips it if its run exists) and, once stale, its events are claimed again.
"""

import dagster as dg

from og_pipeline.contacts.assets import contact_subscription_stats
from og_pipeline.ometria.assets import ometria_contact_fields, ometria_custom_events
from og_pipeline.pools import ensure_pools
from og_pipeline.resources import PostgresResource
from og_pipeline.webhooks.assets import ordergroove_webhook_events
from og_pipeline.webhooks.batches import claim_batch, open_batches

BATCH_SIZE = 500

webhook_events_job = dg.define_asset_job(
    "process_webhook_events",
    selection=[ordergroove_webhook_events, contact_subscription_stats, ometria_contact_fields,
               ometria_custom_events],
    description="Apply a batch of webhook events, update the affected contacts, send custom events.",
    # One process for the whole batch: the steps run in sequence anyway, and a process per step
    # would add seconds to every webhook's way to Ometria.
    executor_def=dg.in_process_executor,
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
def webhook_events_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult:
    with postgres.connection() as conn:
        claimed = claim_batch(conn, limit=BATCH_SIZE)
        batches = open_batches(conn)
    if not batches:
        return dg.SensorResult(skip_reason="no new webhook events")
    ensure_pools(context.instance)  # before the runs: see og_pipeline.pools
    if claimed is not None:
        context.log.info("claimed batch %s", claimed)
    return dg.SensorResult(
        run_requests=[batch_run_request(batch) for batch in batches],
        cursor=str(max(batches)),
    )
