"""What the dry run and the mass-drop check read: whatever og.ometria_contacts holds as accepted
fields (values of any JSON type, dates that are not dates, keys of other fields), a changed
contact is counted once, by the kinds of change that really differ, and nothing fails."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from og_pipeline.contacts.changes import KINDS, pending_changes
from og_pipeline.db.connection import connect
from og_pipeline.ometria.contacts import FieldIds

IDS = FieldIds()
# Any JSON a jsonb column can hold: Postgres refuses NUL, lone surrogates and non-finite numbers,
# so og.ometria_contacts never holds them (CI drew a NUL in a key: the INSERT failed, not the SQL).
storable_text = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(storable_text, max_size=12),
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(storable_text, max_size=5), inner)
    ),
    max_leaves=4,
)
# Values that look like what was sent, and the near misses: digits as text, dates that are not.
lookalikes = (
    st.integers(0, 6)
    | st.integers(0, 6).map(str)
    | st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
    | st.dates(date(2026, 1, 1), date(2026, 12, 31)).map(date.isoformat)
    | st.sampled_from(["active", "inactive", "Active"])
)
accepted_fields = st.dictionaries(
    st.sampled_from(
        [
            IDS.active_subscriptions,
            IDS.total_subscriptions,
            IDS.subscription_status,
            IDS.next_order_date,
            "other_field",
        ]
    ),
    lookalikes | json_values,
    max_size=5,
)


@pytest.fixture
def conn(db_url: str) -> Iterator[Any]:
    with connect(db_url) as connection:
        yield connection


def _as_count(value: object) -> int | None:
    """What the SQL reads back as a count: digits (1 to 9), as a JSON number or text."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    return int(text) if isinstance(text, str) and re.fullmatch(r"[0-9]{1,9}", text) else None


def _as_date(value: object) -> date | None:
    """What the push would have sent for a date: YYYY-MM-DD text of a real date."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


@settings(
    max_examples=60,
    deadline=None,
    # One database for all examples: each starts by emptying the two tables.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    accepted=accepted_fields,
    active=st.integers(0, 6),
    extra=st.integers(0, 3),
    status=st.sampled_from(["active", "inactive"]),
    next_order=st.none() | st.dates(date(2026, 1, 1), date(2026, 12, 31)),
)
def test_any_accepted_fields_give_one_changed_contact_with_the_kinds_that_differ(
    conn: Any,
    accepted: dict[str, Any],
    active: int,
    extra: int,
    status: str,
    next_order: date | None,
) -> None:
    conn.execute("TRUNCATE og.contact_stats, og.ometria_contacts")
    conn.execute(
        "INSERT INTO og.contact_stats (customer_id, email, active_subscriptions,"
        " total_subscriptions, status, next_order_date, fields_hash)"
        " VALUES ('c1', 'c1@example.com', %s, %s, %s, %s, 'now')",
        (active, active + extra, status, next_order),
    )
    conn.execute(
        "INSERT INTO og.ometria_contacts (customer_id, contact_id, fields, fields_hash)"
        " VALUES ('c1', 'og-c1', %s, 'before')",
        (Jsonb(accepted),),
    )
    try:
        found = pending_changes(conn, IDS)
    finally:
        conn.rollback()

    assert found.contacts == 1 and found.without_email == 0
    kinds = {kind for kind, count in found.by_kind.items() if count}
    assert all(found.by_kind[kind] == 1 for kind in kinds) and kinds <= set(KINDS)
    was = (
        _as_count(accepted.get(IDS.active_subscriptions)),
        _as_count(accepted.get(IDS.total_subscriptions)),
    )
    assert ("changed_counts" in kinds) == (was != (active, active + extra))
    assert ("changed_status" in kinds) == (accepted.get(IDS.subscription_status) != status)
    sent_next = _as_date(accepted.get(IDS.next_order_date))
    changed_next = next_order is not None and next_order != sent_next
    assert ("changed_next_order_date" in kinds) == changed_next
    assert ("cleared_fields" in kinds) == (next_order is None and sent_next is not None)
    assert "new_contact" not in kinds
    (row,) = found.sample
    # The sample goes into Dagster metadata: never the contact's e-mail. (Not "no '@' at all":
    # the fields Ometria accepted are hostile input and may hold one, echoed as they were sent.)
    assert row["contact_id"] == "og-c1" and "email" not in row
    assert "c1@example.com" not in repr(row)
