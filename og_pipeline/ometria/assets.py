"""Ometria: contact custom fields (changed contacts) and custom events (live webhooks)."""

from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from og_pipeline.contacts.changes import pending_changes
from og_pipeline.ometria.contacts import push_changed_contacts
from og_pipeline.ometria.custom_events import Lookups, send_due_events
from og_pipeline.ometria.resources import OmetriaResource
from og_pipeline.ordergroove.resources import OrdergrooveResource
from og_pipeline.pools import OMETRIA_POOL
from og_pipeline.resources import OWNERS, PostgresResource


class ContactFieldsConfig(dg.Config):
    dry_run: bool = Field(
        default=False,
        description="Compute what would be pushed (counts by kind of change and a sample of "
        "contacts, no e-mails) and push nothing: no request to Ometria, no push state changed.",
    )


def _dry_run(
    context: dg.AssetExecutionContext, ometria: OmetriaResource, postgres: PostgresResource
) -> dg.MaterializeResult:
    with postgres.connection() as conn:
        plan = pending_changes(conn, ometria.field_ids)
    kinds = ", ".join(f"{count} {kind}" for kind, count in plan.by_kind.items() if count)
    context.log.info(
        "dry run: would push %d contacts (%s); %d changed without an e-mail would be skipped; "
        "nothing sent",
        plan.contacts,
        kinds or "none",
        plan.without_email,
    )
    metadata: dict[str, Any] = {"dry_run": True, **plan.as_metadata()}
    if plan.sample:
        metadata["would_push_sample"] = sample_table(plan.sample)
    return dg.MaterializeResult(metadata=metadata)


def sample_table(sample: list[dict[str, Any]]) -> dg.TableMetadataValue:
    """The dry run's sample as a table in the UI (columns in the sample's order)."""
    names = list(sample[0])
    types = {
        name: "int" if all(isinstance(row[name], int | None) for row in sample) else "string"
        for name in names
    }
    return dg.MetadataValue.table(
        records=[dg.TableRecord(row) for row in sample],
        schema=dg.TableSchema(columns=[dg.TableColumn(name, types[name]) for name in names]),
    )


@dg.asset(
    group_name="ometria",
    deps=["contact_subscription_stats"],
    pool=OMETRIA_POOL,
    kinds={"ometria", "postgres"},
    owners=OWNERS,
    tags={"destination": "ometria"},
)
def ometria_contact_fields(
    context: dg.AssetExecutionContext,
    config: ContactFieldsConfig,
    ometria: OmetriaResource,
    postgres: PostgresResource,
) -> dg.MaterializeResult:
    """The Ordergroove custom fields of each Ometria contact, as Ometria last accepted them.

    Pushes only contacts whose fields differ from what Ometria last accepted, in batches of at
    most 100 within the rate limit. Every push leaves an audit row per contact
    (og.ometria_push_audit); contacts without an e-mail are counted and not pushed; rejected
    records and asynchronous errors are recorded against the contact and reported here.
    No custom events: those come only from live webhooks. With `dry_run`, nothing is sent and
    no push state changes: the metadata says what would be pushed, by kind of change.
    """
    if config.dry_run:
        return _dry_run(context, ometria, postgres)
    with ometria.client() as client, postgres.connection() as conn:
        report = push_changed_contacts(
            conn,
            client,
            field_ids=ometria.field_ids,
            collection=ometria.collection,
            run_id=context.run.run_id,
            in_flight=ometria.pushes_in_flight,
            on_batch=lambda r: (
                context.log.info("pushed %d contacts so far", r.pushed)
                if r.batches % 20 == 0
                else None
            ),
        )
        stats = client.stats
    context.log.info(
        "pushed %d contacts (%d accepted, %d rejected, %d without e-mail)",
        report.pushed,
        report.accepted,
        report.rejected,
        report.without_email,
    )
    if report.rejected or report.new_async_errors:
        context.log.warning(
            "Ometria refused %d contacts and reported %d new errors; "
            "see og.ometria_contacts.last_error",
            report.rejected,
            report.new_async_errors,
        )
    metadata: dict[str, Any] = {
        **report.as_metadata(),
        "requests": stats.requests,
        "retries": stats.retries,
        "throttled": stats.throttled,
    }
    if report.preview:
        metadata["preview"] = dg.MetadataValue.md(
            pd.DataFrame(report.preview).to_markdown(index=False)
        )
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name="ometria",
    deps=["ordergroove_webhook_events", ometria_contact_fields],
    pool=OMETRIA_POOL,
    kinds={"ometria", "postgres"},
    owners=OWNERS,
    tags={"destination": "ometria"},
    check_specs=[
        dg.AssetCheckSpec("no_expired_or_failed_custom_events", asset="ometria_custom_events")
    ],
)
def ometria_custom_events(
    context: dg.AssetExecutionContext,
    ometria: OmetriaResource,
    ordergroove: OrdergrooveResource,
    postgres: PostgresResource,
) -> dg.MaterializeResult:
    """Ometria custom events that start automated campaigns: Ordergroove_subscription_event
    (subscription created or cancelled) and Ordergroove_order_reminder (upcoming order).

    Sent at most once per Ordergroove webhook event (id og-<event id>): each batch is recorded
    as sending before its push, so neither a duplicate delivery nor a crash between sending and
    recording can start a campaign twice, and one sender runs at a time. Sent after the
    contact's fields, so a campaign sees the current status. An event that cannot be built is
    recorded failed, one not sent within the send window expired, one Ometria may or may not
    have (a crash mid-send, a batch it refused in part) unconfirmed (og.ometria_events); all
    are counted here and warned of by the check.
    """
    with ometria.client() as client, ordergroove.client() as og, postgres.connection() as conn:
        lookups = Lookups(conn, fetch_customer=og.get_customer, fetch_product=og.get_product)
        report = send_due_events(conn, client, lookups, run_id=context.run.run_id)
        stats = client.stats
    context.log.info(
        "sent %d custom events (%d rejected, %d unconfirmed, %d failed, %d expired)",
        report.accepted,
        report.rejected,
        report.unconfirmed,
        report.failed,
        report.expired,
    )
    if report.failed or report.expired or report.unconfirmed:
        context.log.warning(
            "%d custom events could not be built, %d expired unsent and %d are unconfirmed; "
            "see og.ometria_events (outcome, last_error)",
            report.failed,
            report.expired,
            report.unconfirmed,
        )
    return dg.MaterializeResult(
        metadata={**report.as_metadata(), "requests": stats.requests, "retries": stats.retries},
        check_results=[
            dg.AssetCheckResult(
                check_name="no_expired_or_failed_custom_events",
                passed=not (report.failed or report.expired or report.unconfirmed),
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "failed": report.failed,
                    "expired": report.expired,
                    "unconfirmed": report.unconfirmed,
                },
                # Per run: each such event is counted once, when it is marked; the rows stay.
                description="Custom events marked in this run: failed (could not be built; "
                "deleting its og.ometria_events row within the send window retries it) or "
                "expired (not sent within the send window, so never sent) or unconfirmed "
                "(Ometria may have it: a crash between the push and its record, or a batch "
                "Ometria refused in part; never sent again).",
            )
        ],
    )
