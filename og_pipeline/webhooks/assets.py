"""Ordergroove webhook events: a claimed batch applied to the raw tables.

The sensor claims committed events into a batch and starts a run for it; `og-pipeline webhooks
process` runs the same job with no batch, claiming everything ready. Each event applies in its
own savepoint: a bad one is retried with backoff (then marked failed), the rest go through.
"""

import logging
from dataclasses import dataclass, field

import dagster as dg
import psycopg
from pydantic import Field

from og_pipeline.ordergroove.load import CONFLICT_ATTEMPTS, CONFLICTS
from og_pipeline.ordergroove.resources import OrdergrooveResource
from og_pipeline.reasons import safe_reason
from og_pipeline.resources import OWNERS, PostgresResource
from og_pipeline.webhooks.apply import apply_event
from og_pipeline.webhooks.batches import (
    StagedEvent,
    batch_events,
    claim_batch,
    mark,
    mark_retry,
    prune_bodies,
    start_batch,
    status_counts,
)
from og_pipeline.webhooks.resources import WebhookStagingResource

# Event families whose records we apply; any other type is kept and marked ignored.
APPLIED_FAMILIES = ("subscription.", "subscriber.", "order.", "item.", "customer.")


@dataclass
class BatchOutcome:
    processed: list[int] = field(default_factory=list)
    ignored: list[int] = field(default_factory=list)
    retry: int = 0
    failed: int = 0


def process_events(
    conn: psycopg.Connection,
    events: list[StagedEvent],
    zone: str,
    *,
    max_attempts: int,
    log: logging.Logger | dg.DagsterLogManager | None = None,
) -> BatchOutcome:
    """Apply each event of a claimed batch in a savepoint of its own, then mark them all.

    Whatever one event raises (a value of a shape nothing expected, a constraint, a bug) undoes
    that event only and counts an attempt against it, so it ends failed after ``max_attempts``
    instead of rolling the batch back forever. Only a failing connection stops the batch: then
    nothing more can be written, and the run must fail so the batch is claimed again.
    The caller commits.
    """
    outcome = BatchOutcome()
    for event in events:
        if not event.event_type.startswith(APPLIED_FAMILIES):
            outcome.ignored.append(event.seq)
            continue
        try:
            with conn.transaction():  # a savepoint: a bad event leaves the others intact
                apply_event(conn, event.event_type, event.payload, zone)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of one event is that event's alone
            reason = safe_reason(exc)
            result = mark_retry(conn, event, reason, max_attempts=max_attempts)
            if result == "failed":
                outcome.failed += 1
            else:
                outcome.retry += 1
            if log is not None:
                # The reason names the error and where it arose, never the event's contents.
                log.warning(
                    "event %s (%s) not applied (%s): %s",
                    event.event_id,
                    event.event_type,
                    result,
                    reason,
                )
            continue
        outcome.processed.append(event.seq)
    mark(conn, outcome.processed, "processed")
    mark(conn, outcome.ignored, "ignored")
    return outcome


class WebhookBatchConfig(dg.Config):
    # Descriptions through Field: a docstring under a field never reaches Dagster's UI.
    batch_id: int | None = Field(
        default=None,
        description="The batch the sensor claimed; empty: claim every ready event now.",
    )
    max_attempts: int = Field(
        default=5, ge=1, description="Attempts before an event that keeps failing is marked failed."
    )


@dg.asset(
    group_name="webhooks",
    kinds={"ordergroove", "postgres"},
    owners=OWNERS,
    check_specs=[
        dg.AssetCheckSpec("no_failed_or_invalid_events", asset="ordergroove_webhook_events")
    ],
)
def ordergroove_webhook_events(
    context: dg.AssetExecutionContext,
    config: WebhookBatchConfig,
    postgres: PostgresResource,
    ordergroove: OrdergrooveResource,
    webhook_staging: WebhookStagingResource,
) -> dg.MaterializeResult:
    """Ordergroove webhook events (og.webhook_events), applied to the raw tables as they arrive.

    Each event's subscription, order or customer (and its snapshot, if any) is upserted with the
    same newest-wins rule as the hourly sync, so duplicates and out-of-order deliveries end in
    the right state. Events of types we do not act on are kept and marked ignored; an event that
    keeps failing is marked failed with its reason and can be replayed from the CLI. Bodies of
    events processed more than OG_WEBHOOK_RETENTION_DAYS (30) ago are removed, their ids kept.
    """
    with postgres.connection() as conn:
        if config.batch_id:
            start_batch(conn, config.batch_id)
        batch = config.batch_id or claim_batch(conn, limit=100_000, start=True)
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            events = batch_events(conn, batch) if batch else []
            try:
                outcome = process_events(
                    conn,
                    events,
                    ordergroove.timezone,
                    max_attempts=config.max_attempts,
                    log=context.log,
                )
                conn.commit()
                break
            except CONFLICTS:
                # A deadlock with the sync's writer over the same rows: Postgres undid one
                # side; this batch is applied again from the start (it holds its lock still).
                conn.rollback()
                if attempt == CONFLICT_ATTEMPTS:
                    raise
                context.log.warning("batch %s met a deadlock; applying it again", batch)
        pruned = prune_bodies(conn, webhook_staging.retention_days)
        totals = status_counts(conn)
    processed, ignored = outcome.processed, outcome.ignored
    problems = totals.get("failed", 0) + totals.get("invalid", 0)
    context.log.info(
        "batch %s: %d applied, %d ignored, %d to retry, %d failed",
        batch,
        len(processed),
        len(ignored),
        outcome.retry,
        outcome.failed,
    )
    return dg.MaterializeResult(
        metadata={
            "batch_id": batch or 0,
            "events_applied": len(processed),
            "events_ignored": len(ignored),
            "events_to_retry": outcome.retry,
            "events_failed_now": outcome.failed,
            "bodies_pruned": pruned,
            **{f"staged_{status}": count for status, count in sorted(totals.items())},
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_failed_or_invalid_events",
                passed=problems == 0,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"failed": totals.get("failed", 0), "invalid": totals.get("invalid", 0)},
                description=(
                    "Failed and invalid events wait in og.webhook_events with their reason; "
                    "`og-pipeline webhooks replay` puts failed ones back once the cause is "
                    "fixed."
                ),
            )
        ],
    )
