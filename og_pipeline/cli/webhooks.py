"""``og-pipeline webhooks``: the receiver, one-off processing, and replay of failed events."""

from __future__ import annotations

import click

from og_pipeline.cli.runs import dagster_instance, echo_summary, materializations, run_job
from og_pipeline.settings import ConfigError, load_settings


@click.group()
def webhooks() -> None:
    """Ordergroove webhooks: receive, process, replay."""


@webhooks.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8701, show_default=True, help="Port to listen on.")
@click.option("--workers", default=1, show_default=True, help="Server processes.")
def serve(host: str, port: int, workers: int) -> None:
    """Receive Ordergroove webhooks at POST /webhooks/ordergroove (GET /healthz).

    Verifies the OrderGroove-Signature with ORDERGROOVE_WEBHOOK_KEY (a comma-separated list during
    a key rotation) and commits each event to og.webhook_events before answering. Limits:
    OG_WEBHOOK_MAX_BODY_BYTES (default 1 MiB), OG_WEBHOOK_MAX_AGE_SECONDS (default off).
    """
    from og_pipeline.runtime import open_databases, project_root, state_dir
    from og_pipeline.webhooks.receiver import run

    settings = load_settings()
    if not settings.webhook_keys:
        raise ConfigError(
            "ORDERGROOVE_WEBHOOK_KEY is not set: copy the Verification Key of the webhook route"
        )
    # The receiver never touches Dagster's database: it needs no right to create it.
    with open_databases(settings, state_dir(project_root()), create_dagster=False) as databases:
        click.echo(f"receiving Ordergroove webhooks on http://{host}:{port}/webhooks/ordergroove")
        run(
            host,
            port,
            database_url=databases.og_url,
            keys=settings.webhook_keys,
            max_body_bytes=settings.webhook_max_body_bytes,
            max_age_seconds=settings.webhook_max_age_seconds,
            workers=workers,
        )


@webhooks.command()
def process() -> None:
    """Process the committed, unprocessed webhook events once, then exit.

    The same job the sensor's runs execute (process_webhook_events), over every ready event:
    raw tables, contact fields, custom events. Recorded in the Dagster instance.
    """
    settings = load_settings()
    with dagster_instance(settings) as instance:
        result = run_job(
            instance,
            "process_webhook_events",
            "webhook processing",
            tags={"og-pipeline/trigger": "cli-webhooks-process"},
        )
    found = materializations(result)
    events = found.get("ordergroove_webhook_events", {})
    echo_summary(
        f"run {result.run_id} succeeded",
        {
            "events_applied": events.get("events_applied"),
            "events_ignored": events.get("events_ignored"),
            "events_to_retry": events.get("events_to_retry"),
            "events_failed": events.get("staged_failed", 0),
            "events_invalid": events.get("staged_invalid", 0),
            "contacts_pushed": found.get("ometria_contact_fields", {}).get("contacts_pushed"),
            "custom_events_sent": found.get("ometria_custom_events", {}).get("events_accepted"),
        },
    )


@webhooks.command()
@click.option(
    "--event-id", "event_ids", multiple=True, help="Only these Ordergroove event ids (repeatable)."
)
def replay(event_ids: tuple[str, ...]) -> None:
    """Put failed webhook events back in the queue, once their cause is fixed.

    Invalid events are validated again (the receiver's rules may have been fixed): those that
    now read as events are queued too. The sensor (or `og-pipeline webhooks process`) then
    processes them; their attempts start over.
    """
    from og_pipeline.db.connection import connect
    from og_pipeline.runtime import open_databases, project_root, state_dir
    from og_pipeline.webhooks.batches import replay as replay_events

    with (
        open_databases(load_settings(), state_dir(project_root())) as databases,
        connect(databases.og_url) as conn,
    ):
        failed, invalid = replay_events(conn, event_ids=list(event_ids) or None)
    click.echo(
        f"{failed} failed event(s) queued again; {invalid} invalid event(s) now valid and queued"
    )
