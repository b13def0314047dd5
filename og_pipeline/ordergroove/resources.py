"""The Ordergroove REST API as a Dagster resource (the key comes from ORDERGROOVE_API_KEY)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from og_pipeline import defaults
from og_pipeline.ordergroove.client import OrdergrooveClient


class OrdergrooveResource(dg.ConfigurableResource):
    """Ordergroove REST API: key with Bulk Operations, base URL, zone of its naive timestamps."""

    api_key: str
    api_url: str = defaults.ORDERGROOVE_API_URL
    timezone: str = defaults.ORDERGROOVE_TIMEZONE
    page_size: int = 100
    overlap_minutes: int = defaults.SYNC_OVERLAP_MINUTES
    max_retries: int = 8
    max_rejected_share: float = Field(
        default=defaults.SYNC_MAX_REJECTED_SHARE,
        ge=0,
        le=1,
        description="Largest share of a window's records that may be set aside as unreadable "
        "before the push is blocked (OG_SYNC_MAX_REJECTED_SHARE).",
    )

    def client(self) -> OrdergrooveClient:
        return OrdergrooveClient(
            self.api_url,
            self.api_key,
            page_size=self.page_size,
            zone=self.timezone,
            max_retries=self.max_retries,
        )
