"""What the raw tables keep for a record: the instants Ordergroove can have meant, and a REST read
(the current state) never refused because a DST change's ambiguous hour compared the wrong way.

America/Chicago in 2026: the fall-back night repeats 01:00-02:00 local (06:00-07:00 UTC in CDT,
then 07:00-08:00 UTC in CST) on 1 November; spring-forward skips 02:00-03:00 local on 8 March.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from og_pipeline.db.connection import connect
from og_pipeline.ordergroove.load import store
from og_pipeline.ordergroove.records import ParseContext

ZONE = "America/Chicago"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def sub(updated: object, live: bool, public_id: str = "s1") -> dict[str, Any]:
    return {
        "public_id": public_id,
        "customer": "c1",
        "product": "p1",
        "live": live,
        "updated": updated,
    }


def rest(conn: psycopg.Connection, fetched_at: datetime, *records: dict[str, Any]) -> None:
    store(conn, "subscriptions", list(records), ParseContext(ZONE, fetched_at))
    conn.commit()


def webhook(conn: psycopg.Connection, *records: dict[str, Any]) -> None:
    store(
        conn,
        "subscriptions",
        list(records),
        ParseContext(ZONE, datetime.now(UTC)),
        source="webhook",
    )
    conn.commit()


def live(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT live FROM og.subscriptions WHERE public_id = 's1'").fetchone()[0]


@pytest.mark.parametrize(
    ("stamp", "earliest", "latest"),
    [
        ("2026-07-01 12:00:00", "2026-07-01 17:00", None),  # an ordinary summer stamp
        ("2026-11-01 01:30:00", "2026-11-01 06:30", "2026-11-01 07:30"),  # the repeated hour
        ("2026-11-01 02:00:00", "2026-11-01 08:00", None),  # just after it
        ("2026-03-08 02:30:00", "2026-03-08 07:30", "2026-03-08 08:30"),  # the skipped hour
        ("2026-03-08 03:00:00", "2026-03-08 08:00", None),
        ("2026-07-01T12:00:00+02:00", "2026-07-01 10:00", None),  # an offset of its own
        (1_793_518_200, "2026-11-01 07:30", None),  # a webhook's unix seconds are exact
    ],
)
def test_a_stamp_is_stored_as_the_instants_it_can_mean(
    db_url: str, stamp: object, earliest: str, latest: str | None
) -> None:
    with connect(db_url) as conn:
        rest(conn, utc("2026-12-01 00:00"), sub(stamp, True))
        stored = conn.execute(
            "SELECT updated_at, updated_at_latest FROM og.subscriptions"
        ).fetchone()
    assert stored == (utc(earliest), utc(latest) if latest else None)


def test_the_later_reading_of_a_repeated_hour_is_not_taken_before_it_happened(db_url: str) -> None:
    # Read at 07:10 UTC, "01:30" can only be the first 01:30 (06:30 UTC): the second is 07:30.
    with connect(db_url) as conn:
        rest(conn, utc("2026-11-01 07:10"), sub("2026-11-01 01:30:00", True))
        stored = conn.execute(
            "SELECT updated_at, updated_at_latest FROM og.subscriptions"
        ).fetchone()
    assert stored == (utc("2026-11-01 06:30"), None)


def test_fall_back_rest_after_rest_the_current_state_wins_across_the_repeated_hour(
    db_url: str,
) -> None:
    with connect(db_url) as conn:
        # 01:50 CDT (06:50 UTC), read at 06:55: live.
        rest(conn, utc("2026-11-01 06:55"), sub("2026-11-01 01:50:00", True))
        # Cancelled at 01:10 CST (07:10 UTC), read at 07:15. As naive text 01:10 < 01:50, and its
        # first reading (06:10 UTC) is older than what is stored: it must still win.
        rest(conn, utc("2026-11-01 07:15"), sub("2026-11-01 01:10:00", False))
        assert live(conn) is False
        # The hourly overlap re-reads the cancelled version: nothing changes back.
        rest(conn, utc("2026-11-01 08:05"), sub("2026-11-01 01:10:00", False))
        assert live(conn) is False


def test_fall_back_a_stale_rest_read_does_not_undo_a_newer_webhook(db_url: str) -> None:
    with connect(db_url) as conn:
        # The webhook of the cancellation, exact: 07:10 UTC.
        webhook(conn, sub(1_793_517_000, False))  # 2026-11-01 07:10 UTC
        # A page read at 06:55 UTC (before the cancellation) still shows it live at 01:50 CDT.
        rest(conn, utc("2026-11-01 06:55"), sub("2026-11-01 01:50:00", True))
        assert live(conn) is False


def test_fall_back_rest_after_webhook_the_current_state_wins(db_url: str) -> None:
    with connect(db_url) as conn:
        webhook(conn, sub(1_793_515_800, True))  # 2026-11-01 06:50 UTC (01:50 CDT): live
        # Cancelled at 01:10 CST (07:10 UTC), read from REST at 09:00.
        rest(conn, utc("2026-11-01 09:00"), sub("2026-11-01 01:10:00", False))
        assert live(conn) is False


def test_fall_back_a_webhook_after_an_ambiguous_rest_read_is_not_refused(db_url: str) -> None:
    with connect(db_url) as conn:
        # "01:50" read at 09:00 could be 06:50 or 07:50 UTC; it was 06:50.
        rest(conn, utc("2026-11-01 09:00"), sub("2026-11-01 01:50:00", True))
        webhook(conn, sub(1_793_517_600, False))  # cancelled at 07:20 UTC
        assert live(conn) is False
        # And the next REST read of the cancellation (01:20 CST, ambiguous too) keeps it.
        rest(conn, utc("2026-11-01 10:00"), sub("2026-11-01 01:20:00", False))
        assert live(conn) is False


def test_spring_forward_rest_after_rest_orders_versions_across_the_skipped_hour(
    db_url: str,
) -> None:
    with connect(db_url) as conn:
        rest(conn, utc("2026-03-08 07:55"), sub("2026-03-08 01:50:00", True))  # 07:50 UTC
        rest(conn, utc("2026-03-08 08:15"), sub("2026-03-08 03:10:00", False))  # 08:10 UTC
        assert live(conn) is False
        # The older version read again (a rerun of the earlier hour) does not regress it.
        rest(conn, utc("2026-03-08 09:00"), sub("2026-03-08 01:50:00", True))
        assert live(conn) is False


def test_spring_forward_rest_against_webhook(db_url: str) -> None:
    with connect(db_url) as conn:
        webhook(conn, sub(1_772_957_400, True))  # 2026-03-08 08:10 UTC (03:10 CDT): live
        rest(conn, utc("2026-03-08 09:00"), sub("2026-03-08 01:50:00", False))  # older: 07:50 UTC
        assert live(conn) is True
        rest(conn, utc("2026-03-08 09:00"), sub("2026-03-08 03:20:00", False))  # newer: 08:20 UTC
        assert live(conn) is False


def test_a_batch_repeating_a_record_keeps_the_later_instant_whatever_the_offsets(
    db_url: str,
) -> None:
    # 10:00 UTC written with an offset, and 06:00 Chicago (11:00 UTC) written naive: as text the
    # first looks later; as instants the second is.
    with connect(db_url) as conn:
        rest(
            conn,
            utc("2026-12-01 00:00"),
            sub("2026-07-01 06:00:00", True),
            sub("2026-07-01T12:00:00+02:00", False),
        )
        assert live(conn) is True
        assert conn.execute("SELECT updated_at FROM og.subscriptions").fetchone()[0] == utc(
            "2026-07-01 11:00"
        )
