"""Checks on the webhook staging table, run after each webhook batch and on demand from the UI."""

import dagster as dg

from og_pipeline.resources import PostgresResource
from og_pipeline.webhooks.batches import stale_pending
from og_pipeline.webhooks.resources import WebhookStagingResource


@dg.asset_check(
    asset="ordergroove_webhook_events",
    name="staged_events_processed_in_time",
    description="Committed webhook events still unprocessed after stale_minutes: the sensor "
    "or its runs are not keeping up, or not running.",
)
def staged_events_in_time_check(
    webhook_staging: WebhookStagingResource, postgres: PostgresResource
) -> dg.AssetCheckResult:
    with postgres.connection() as conn:
        stale = stale_pending(conn, webhook_staging.stale_minutes)
    return dg.AssetCheckResult(
        passed=stale == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"events_waiting": stale, "stale_minutes": webhook_staging.stale_minutes},
    )
