"""The Ordergroove REST API as a Dagster resource (the key comes from ORDERGROOVE_API_KEY)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from og_pipeline import defaults
from og_pipeline.http_common import RateLimiter
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

    requests_per_minute: float = Field(
        default=defaults.ORDERGROOVE_REQUESTS_PER_MINUTE,
        gt=0,
        description="Requests per minute for all of a sync's walks together "
        "(OG_ORDERGROOVE_REQUESTS_PER_MINUTE; Ordergroove allows 6,000 per IP).",
    )
    window_days: int = Field(
        default=defaults.SYNC_WINDOW_DAYS,
        ge=1,
        description="A long range is walked in windows of this many days (OG_SYNC_WINDOW_DAYS).",
    )
    slow_page_seconds: float = Field(
        default=defaults.SYNC_SLOW_PAGE_SECONDS,
        gt=0,
        description="A page slower than this halves the windows of the rest of its walk "
        "(OG_SYNC_SLOW_PAGE_SECONDS).",
    )

    def client(self) -> OrdergrooveClient:
        return OrdergrooveClient(
            self.api_url,
            self.api_key,
            page_size=self.page_size,
            zone=self.timezone,
            max_retries=self.max_retries,
            limiter=RateLimiter(self.requests_per_minute / 60),
        )
