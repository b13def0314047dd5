"""Reading a REST stamp in a test as the pipeline stores it (its earliest instant)."""

from __future__ import annotations

from datetime import UTC, datetime

from og_pipeline.ordergroove.fields import instants


def utc_of(stamp: object, zone: str = "America/Chicago") -> datetime:
    moment = instants(stamp, zone)
    assert moment is not None, "a stamp, not null"
    return datetime.fromisoformat(moment.earliest).astimezone(UTC)
