"""The og_pipeline code location.

Ordergroove REST -> raw tables (hourly partitions) -> per-contact stats -> Ometria custom fields;
Ordergroove webhooks -> staging table -> sensor -> event processing -> Ometria custom events.
Each folder (ordergroove, contacts, ometria, webhooks) contributes its assets, checks, schedules
and sensors. Secrets come from environment variables at run time (dg.EnvVar); the rest is
validated when the location loads, so a bad value fails here with its variable's name.
"""

from __future__ import annotations

import dagster as dg

from og_pipeline import pool_wait
from og_pipeline.alerts import ALERT_SENSORS, AlertsResource
from og_pipeline.contacts.assets import contact_subscription_stats
from og_pipeline.jobs import (
    HEALTH_CHECKS,
    contacts_push_job,
    health_checks_job,
    health_checks_schedule,
    ordergroove_daily_products,
    ordergroove_hourly_sync,
    ordergroove_products_job,
    ordergroove_raw_job,
    ordergroove_sync_job,
    push_after_backfill,
    webhook_events_job,
    webhook_events_sensor,
)
from og_pipeline.ometria.assets import ometria_contact_fields, ometria_custom_events
from og_pipeline.ometria.resources import OmetriaResource
from og_pipeline.ordergroove.assets import build_raw_records, ordergroove_products
from og_pipeline.ordergroove.resources import OrdergrooveResource
from og_pipeline.resources import PostgresResource
from og_pipeline.settings import load_settings, require_start_date
from og_pipeline.webhooks.assets import ordergroove_webhook_events
from og_pipeline.webhooks.resources import WebhookStagingResource


@dg.definitions
def defs() -> dg.Definitions:
    settings = load_settings()
    # Every run worker loads the location: its waits for pool slots sleep (see the module).
    pool_wait.install()
    return dg.Definitions(
        assets=[
            build_raw_records(require_start_date(settings)),
            ordergroove_products,
            ordergroove_webhook_events,
            contact_subscription_stats,
            ometria_contact_fields,
            ometria_custom_events,
        ],
        asset_checks=HEALTH_CHECKS,
        # Every job's steps in the run's own process, the implicit asset job's too (a UI backfill
        # of the raw asset, a click on Materialize): they run one after another anyway, and
        # Dagster's default starts a process per step, 2-3 s each on 2 cores, on every webhook
        # batch's way to Ometria and before every walk.
        executor=dg.in_process_executor,
        jobs=[
            health_checks_job,
            contacts_push_job,
            ordergroove_sync_job,
            ordergroove_raw_job,
            ordergroove_products_job,
            webhook_events_job,
        ],
        schedules=[health_checks_schedule, ordergroove_hourly_sync, ordergroove_daily_products],
        sensors=[webhook_events_sensor, push_after_backfill, *ALERT_SENSORS],
        resources={
            "postgres": PostgresResource(database_url=dg.EnvVar("OG_DATABASE_URL")),
            "ordergroove": OrdergrooveResource(
                api_key=dg.EnvVar("ORDERGROOVE_API_KEY"),
                api_url=settings.ordergroove_api_url,
                timezone=settings.ordergroove_timezone,
                overlap_minutes=settings.sync_overlap_minutes,
                max_rejected_share=settings.sync_max_rejected_share,
                requests_per_minute=settings.ordergroove_requests_per_minute,
                window_days=settings.sync_window_days,
                slow_page_seconds=settings.sync_slow_page_seconds,
            ),
            "webhook_staging": WebhookStagingResource(
                retention_days=settings.webhook_retention_days
            ),
            "alerts": AlertsResource(
                # EnvVar only when set: the URL holds a token, and the UI shows plain values.
                webhook_url=dg.EnvVar("OG_ALERT_WEBHOOK_URL") if settings.alert_webhook_url else "",
                email_to=settings.alert_email_to,
                email_from=settings.alert_email_from,
                smtp_host=settings.alert_smtp_host,
                smtp_port=settings.alert_smtp_port,
                ui_url=settings.dagster_ui_url,
            ),
            "ometria": OmetriaResource(
                api_key=dg.EnvVar("OMETRIA_API_KEY"),
                api_url=settings.ometria_api_url,
                requests_per_second=settings.ometria_requests_per_second,
                rate_margin_seconds=settings.ometria_rate_margin_seconds,
                field_active_subscriptions=settings.ometria_field_active_subscriptions,
                field_total_subscriptions=settings.ometria_field_total_subscriptions,
                field_subscription_status=settings.ometria_field_subscription_status,
                field_next_order_date=settings.ometria_field_next_order_date,
            ),
        },
    )
