"""Ordergroove webhook events: a claimed batch applied to the raw tables.

The sensor claims committed events into a batch and starts a run for it; `og-pipeline webhooks
process` runs the same job with no batch, claiming everything ready. Each event applies in its
own savepoint: a bad one is retried with backoff (then marked failed), the rest go through.
"""

import dagster as dg
import psycopg

from og_pipeline.ordergroove.resources import OrdergrooveResource
from og_pipeline.resources import PostgresResource
from og_pipeline.webhooks.apply import EventError, apply_event
from og_pipeline.webhooks.batches import batch_events, claim_batch, mark, mark_retry, status_counts

# Event families whose records we apply; any other type is kept and marked ignored.
APPLIED_FAMILIES = ("subscription.", "subscriber.", "order.", "item.", "customer.")


class WebhookBatchConfig(dg.Config):
    batch_id: int | None = None
    """The batch the sensor claimed; empty: claim every ready event now."""
    max_attempts: int = 5
    """Attempts before an event that keeps failing is marked failed."""


@dg.asset(
    group_name="webhooks",
    kinds={"postgres"},
    check_specs=[dg.AssetCheckSpec("no_failed_or_invalid_events", asset="ordergroove_webhook_events")],
)
def ordergroove_webhook_events(
    context: dg.AssetExecutionContext,
    config: WebhookBatchConfig,
    postgres: PostgresResource,
    ordergroove: OrdergrooveResource,
) -> dg.MaterializeResult:
    """Ordergroove webhook events (og.webhook_events), applied to the raw tables as they arrive.

    Each event's subscription, order or customer (and its snapshot, if any) is upserted with the
    same newest-wins rule as the hourly sync, so duplicates and out-of-order deliveries end in
    the right state. Events of types we do not act on are kept and marked ignored; an event that
    keeps failing is marked failed with its reason and can be replayed from the CLI.
    """
    processed: list[int] = []
    ignored: list[int] = []
    outcomes = {"retry": 0, "failed": 0}
    with postgres.connection() as conn:
        batch = config.batch_id or claim_batch(conn, limit=100_000)
        events = batch_events(conn, batch) if batch else []
        for event in events:
            if not event.event_type.startswith(APPLIED_FAMILIES):
                ignored.append(event.seq)
                continue
            try:
                with conn.transaction():  # a savepoint: a bad event leaves the others intact
                    apply_event(conn, event.event_type, event.payload, ordergroove.timezone)
            except (EventError, psycopg.DataError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
                outcome = mark_retry(conn, event, reason, max_attempts=config.max_attempts)
                outcomes[outcome] += 1
                context.log.warning("event %s (%s) not applied: %s", event.event_id, event.event_type, outcome)
                continue
            processed.append(event.seq)
        mark(conn, processed, "processed")
        mark(conn, ignored, "ignored")
        conn.commit()
        totals = status_counts(conn)
    problems = totals.get("failed", 0) + totals.get("invalid", 0)
    context.log.info("batch %s: %d applied, %d ignored, %d to retry, %d failed",
                     batch, len(processed), len(ignored), outcomes["retry"], outcomes["failed"])
    return dg.MaterializeResult(
        metadata={
            "batch_id": batch or 0,
            "events_applied": len(processed),
            "events_ignored": len(ignored),
            "events_to_retry": outcomes["retry"],
            "events_failed_now": outcomes["failed"],
            **{f"staged_{status}": count for status, count in sorted(totals.items())},
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_failed_or_invalid_events",
                passed=problems == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"failed": totals.get("failed", 0), "invalid": totals.get("invalid", 0)},
                description="Failed and invalid events wait in og.webhook_events with their reason; "
                "`og-pipeline webhooks replay` puts failed ones back once the cause is fixed.",
            )
        ],
    )
