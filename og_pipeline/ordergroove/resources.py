"""The Ordergroove REST API as a Dagster resource (the key comes from ORDERGROOVE_API_KEY)."""

from __future__ import annotations

import dagster as dg

from og_pipeline.ordergroove.client import OrdergrooveClient


class OrdergrooveResource(dg.ConfigurableResource):
    """Ordergroove REST API: key with Bulk Operations, base URL, zone of its naive timestamps."""

    api_key: str
    api_url: str = "https://restapi.ordergroove.com"
    timezone: str = "America/Chicago"
    page_size: int = 100
    overlap_minutes: int = 5
    max_retries: int = 8

    def client(self) -> OrdergrooveClient:
        return OrdergrooveClient(
            self.api_url, self.api_key, page_size=self.page_size, zone=self.timezone,
            max_retries=self.max_retries,
        )
