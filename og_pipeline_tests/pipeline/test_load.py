"""What the raw tables store for a record: the instant Ordergroove meant, across DST changes too."""

from __future__ import annotations

from datetime import datetime

import pytest

from og_pipeline.db.connection import connect
from og_pipeline.ordergroove.client import parse_og_timestamp
from og_pipeline.ordergroove.load import normalise, upsert

# Naive Chicago stamps: an ordinary one, the repeated hour of the fall-back night, the hour
# skipped in spring, and one written with an offset of its own.
STAMPS = [
    "2026-07-01 12:00:00",
    "2026-11-01 01:30:00",
    "2026-11-01 02:00:00",
    "2026-03-08 02:30:00",
    "2026-03-08 03:00:00",
    "2026-07-01T12:00:00+02:00",
]


@pytest.mark.parametrize("zone", ["America/Chicago", "Asia/Kolkata", "UTC"])
def test_stored_instants_are_those_of_parse_og_timestamp(db_url: str, zone: str) -> None:
    records = [
        {"public_id": f"s{i}", "customer": "c1", "product": "p1", "live": True,
         "created": stamp, "updated": stamp, "cancelled": None}
        for i, stamp in enumerate(STAMPS)
    ]
    with connect(db_url) as conn:
        upsert(conn, "subscriptions", normalise("subscriptions", records, zone))
        stored = dict(conn.execute("SELECT public_id, updated_at FROM og.subscriptions").fetchall())
    assert stored == {f"s{i}": parse_og_timestamp(stamp, zone) for i, stamp in enumerate(STAMPS)}


def test_a_batch_repeating_a_record_keeps_the_later_instant_whatever_the_offsets(db_url: str) -> None:
    # 10:00 UTC written with an offset, and 06:00 Chicago (11:00 UTC) written naive: as text the
    # first looks later; as instants the second is.
    earlier, later = "2026-07-01T12:00:00+02:00", "2026-07-01 06:00:00"
    records = [
        {"public_id": "s1", "customer": "c1", "live": True, "created": earlier, "updated": later},
        {"public_id": "s1", "customer": "c1", "live": False, "created": earlier, "updated": earlier},
    ]
    with connect(db_url) as conn:
        upsert(conn, "subscriptions", normalise("subscriptions", records, "America/Chicago"))
        live, updated = conn.execute("SELECT live, updated_at FROM og.subscriptions").fetchone()
    assert live is True
    assert updated == datetime.fromisoformat("2026-07-01T11:00:00+00:00")
