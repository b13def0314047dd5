"""The set-aside table over time: a bad record is kept once with its reason and sightings, leaves
by itself once it reads correctly, and a row Postgres refuses costs that row, not its batch."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from og_pipeline.db.connection import connect
from og_pipeline.ordergroove.load import store
from og_pipeline.ordergroove.records import ParseContext
from og_pipeline.ordergroove.rejected import counts, listing

CONTEXT = ParseContext("America/Chicago", datetime(2026, 11, 3, tzinfo=UTC))


def sub(public_id: str, **change: object) -> dict[str, object]:
    return {
        "public_id": public_id,
        "customer": "c1",
        "live": True,
        "updated": "2026-11-02 10:00:00",
        "email": "someone@example.com",
        **change,
    }


@pytest.fixture
def conn(db_url: str) -> psycopg.Connection:
    with connect(db_url) as connection:
        yield connection


def test_a_bad_record_is_kept_once_with_its_sightings_and_leaves_when_it_reads(
    conn: psycopg.Connection,
) -> None:
    store(conn, "subscriptions", [sub("s1", live="maybe"), sub("s2")], CONTEXT)
    conn.commit()
    store(conn, "subscriptions", [sub("s1", live="perhaps")], CONTEXT)
    conn.commit()
    [kept] = listing(conn)
    assert (kept.resource, kept.record_id, kept.times_seen, kept.source) == (
        "subscriptions",
        "s1",
        2,
        "rest",
    )
    assert kept.reason.startswith("live: must be a boolean")
    assert kept.first_seen <= kept.last_seen
    assert kept.record["email"] == "[removed]"  # personal data never kept aside
    assert counts(conn) == {"subscriptions": 1}

    # Fixed at the source: the next read stores it and the set-aside row is gone.
    result = store(
        conn, "subscriptions", [sub("s1", live=False, updated="2026-11-02 11:00:00")], CONTEXT
    )
    conn.commit()
    assert (result.received, result.rejected) == (1, 0)
    assert listing(conn) == []
    assert conn.execute("SELECT live FROM og.subscriptions WHERE public_id = 's1'").fetchone() == (
        False,
    )


def test_records_without_an_id_are_kept_by_their_content_never_as_none(
    conn: psycopg.Connection,
) -> None:
    keyless = {**sub("x"), "public_id": None}
    store(conn, "subscriptions", [keyless, dict(keyless), {**sub("x"), "public_id": ""}], CONTEXT)
    conn.commit()
    rows = listing(conn)
    assert [row.record_id for row in rows] == [None, None]  # two distinct records, one seen twice
    assert conn.execute(
        "SELECT count(*) FROM og.subscriptions WHERE public_id IN ('None', '')"
    ).fetchone() == (0,)


def test_a_row_postgres_refuses_is_set_aside_and_the_rest_of_the_batch_stored(
    conn: psycopg.Connection,
) -> None:
    # A constraint the parser knows nothing of stands for whatever Postgres may refuse one day.
    conn.execute("ALTER TABLE og.subscriptions ADD CONSTRAINT refuse_p9 CHECK (product_id <> 'p9')")
    result = store(
        conn,
        "subscriptions",
        [sub("s1", product="p1"), sub("s2", product="p9"), sub("s3", product="p3")],
        CONTEXT,
    )
    assert (result.received, result.inserted, result.rejected) == (2, 2, 1)
    stored = conn.execute("SELECT public_id FROM og.subscriptions ORDER BY 1").fetchall()
    assert stored == [("s1",), ("s3",)]
    [kept] = listing(conn)
    assert (kept.record_id, kept.reason) == ("s2", "Postgres refused it (CheckViolation)")
    conn.rollback()
