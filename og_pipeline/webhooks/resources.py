"""Settings of the webhook staging table as a Dagster resource."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from og_pipeline import defaults

# Custom events read processed payloads for up to 3 days (ometria.custom_events.SEND_WINDOW).
MIN_RETENTION_DAYS = 4


class WebhookStagingResource(dg.ConfigurableResource):
    """How long processed webhook bodies (personal data) are kept (OG_WEBHOOK_RETENTION_DAYS)."""

    retention_days: int = Field(
        default=defaults.WEBHOOK_RETENTION_DAYS,
        ge=MIN_RETENTION_DAYS,
        description="Days after processing before a processed or ignored event's body and payload "
        "are removed; its id stays, so a late redelivery is still recognised as a duplicate.",
    )
    stale_minutes: float = Field(
        default=15,
        gt=0,
        description="A committed event still unprocessed after this long makes "
        "staged_events_processed_in_time warn.",
    )
