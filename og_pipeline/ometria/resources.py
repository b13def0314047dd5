"""The Ometria push API as a Dagster resource (the key comes from OMETRIA_API_KEY)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from og_pipeline import defaults
from og_pipeline.ometria.client import OmetriaClient
from og_pipeline.ometria.contacts import PUSHES_IN_FLIGHT, FieldIds


class OmetriaResource(dg.ConfigurableResource):
    """Ometria push API: key, base URL, client-side rate limit, custom field IDs."""

    api_key: str
    api_url: str = defaults.OMETRIA_API_URL
    requests_per_second: float = defaults.OMETRIA_REQUESTS_PER_SECOND
    rate_margin_seconds: float = Field(
        default=defaults.OMETRIA_RATE_MARGIN_SECONDS,
        ge=0,
        le=1,
        description="Seconds added to each 1-s window of requests_per_second for jitter "
        "between our clock and Ometria's: 0.02 holds 98 % of the rate.",
    )
    max_retries: int = 8
    collection: str = "ordergroove"
    field_active_subscriptions: str = FieldIds.active_subscriptions
    field_total_subscriptions: str = FieldIds.total_subscriptions
    field_subscription_status: str = FieldIds.subscription_status
    field_next_order_date: str = FieldIds.next_order_date
    backlog_hours: float = Field(
        default=2,
        gt=0,
        description="Contacts whose fields changed longer ago than this and are still not "
        "accepted by Ometria make push_backlog warn.",
    )
    max_rejected_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description=(
            "Above this share of contacts refused by Ometria, rejected_contacts_share warns."
        ),
    )

    pushes_in_flight: int = Field(
        default=PUSHES_IN_FLIGHT,
        ge=1,
        le=16,
        description="Contact push requests on the wire at once, within requests_per_second: "
        "a remote round trip then does not hold the push under Ometria's rate.",
    )

    def client(self) -> OmetriaClient:
        return OmetriaClient(
            self.api_url,
            self.api_key,
            requests_per_second=self.requests_per_second,
            rate_margin=self.rate_margin_seconds,
            max_retries=self.max_retries,
        )

    @property
    def field_ids(self) -> FieldIds:
        return FieldIds(
            active_subscriptions=self.field_active_subscriptions,
            total_subscriptions=self.field_total_subscriptions,
            subscription_status=self.field_subscription_status,
            next_order_date=self.field_next_order_date,
        )
