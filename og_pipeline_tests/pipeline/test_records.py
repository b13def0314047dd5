"""Any record Ordergroove (or anything posing as it) sends ends stored or set aside with a reason:
never an exception out of the walk, never an id "None", never personal data in what is kept aside.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from og_pipeline.db.connection import connect
from og_pipeline.ordergroove.load import TABLES, store
from og_pipeline.ordergroove.records import SHAPES, ParseContext, Rejected, parse

CONTEXT = ParseContext("America/Chicago", datetime(2026, 11, 3, tzinfo=UTC))
EMAIL = "jane.doe@example.com"

# One documented, valid record per type: the starting point each example breaks.
VALID: dict[str, dict[str, Any]] = {
    "subscriptions": {
        "public_id": "a" * 32,
        "customer": "c1",
        "product": "p1",
        "live": "True",
        "cancelled": None,
        "created": "2026-11-01 10:00:00",
        "updated": "2026-11-02 10:00:00",
        "quantity": 1,
        "price": "12.50",
        "extra_data": '{"source": "pdp"}',
        "every": 2,
        "every_period": 2,
        "cancel_reason_code": "4",
        "components": "x,y",
    },
    "customers": {
        "merchant_user_id": 1234,
        "email": EMAIL,
        "first_name": "Jane",
        "last_name": "Doe",
        "phone_number": "+13125550000",
        "live": True,
        "locale": 1,
        "phone_type": 2,
        "created": "2026-11-01 10:00:00",
        "last_updated": "2026-11-02 10:00:00",
        "extra_data": "{}",
    },
    "orders": {
        "public_id": "o1",
        "customer": "c1",
        "status": 1,
        "place": "2026-11-20 00:00:00",
        "total": "25.10",
        "sub_total": "25.00",
        "created": "2026-11-01 10:00:00",
        "updated": "2026-11-02 10:00:00",
        "extra_data": "{}",
        "locked": False,
    },
    "items": {
        "public_id": "i1",
        "order": "o1",
        "subscription": "a" * 32,
        "product": "p1",
        "quantity": 2,
        "price": "12.50",
        "total_price": "25.00",
        "one_time": False,
        "order_updated": "2026-11-02 10:00:00",
    },
    "products": {
        "external_product_id": "p1",
        "name": "Coffee",
        "image_url": "https://x/i.png",
        "detail_url": "https://x/p",
        "live": "False",
        "price": "9.99",
    },
}

_any_text = st.text(st.characters(codec=None, categories=None), max_size=30)  # surrogates, NUL too
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | _any_text
    | st.sampled_from(
        [
            "",
            "None",
            "True",
            "false",
            "2026-11-01 01:30:00",
            "2026-13-45 25:61:00",
            "1e400",
            "NaN",
            EMAIL,
            "12.5",
            "-0",
        ]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_any_text, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def records(draw: st.DrawFn, resource: str) -> Any:
    """A documented record with some fields replaced by any JSON value, removed, or added."""
    if draw(st.integers(0, 20)) == 0:
        return draw(json_values)  # not even an object
    record = dict(VALID[resource])
    for name in draw(st.lists(st.sampled_from(sorted(record)), max_size=4, unique=True)):
        if draw(st.booleans()):
            record[name] = draw(json_values)
        else:
            del record[name]
    record.update(draw(st.dictionaries(_any_text, json_values, max_size=2)))
    return record


resources = st.sampled_from(sorted(SHAPES))


@given(data=st.data(), resource=resources)
@settings(max_examples=400, deadline=None)
def test_parse_never_raises_and_says_why(data: st.DataObject, resource: str) -> None:
    record = data.draw(records(resource))
    result = parse(resource, record, CONTEXT)
    if isinstance(result, Rejected):
        assert result.reason and EMAIL not in result.reason
        assert result.record_id != "None" or (
            isinstance(record, dict) and record.get(SHAPES[resource].key) == "None"
        )
        assert EMAIL not in repr(result.record)
    else:
        key = SHAPES[resource].key
        assert isinstance(result[key], str) and result[key].strip()
        assert result["record"] is record


def test_a_null_or_missing_id_is_set_aside_without_an_id_never_as_none() -> None:
    for broken in (
        {**VALID["orders"], "public_id": None},
        {k: v for k, v in VALID["orders"].items() if k != "public_id"},
    ):
        result = parse("orders", broken, CONTEXT)
        assert isinstance(result, Rejected)
        assert result.record_id is None
        assert "public_id" in result.reason


@pytest.mark.parametrize(
    ("resource", "change", "reason"),
    [
        (
            "items",
            {"updated": "2026-11-02 10:00:00", "order_updated": None},
            "order_updated: is missing",
        ),
        (
            "customers",
            {"updated": "2026-11-02 10:00:00", "last_updated": None},
            "last_updated: is missing",
        ),
        ("subscriptions", {"live": "maybe"}, "live: must be a boolean"),
        ("subscriptions", {"customer": None}, "customer: must be a string or an integer, not null"),
        ("orders", {"status": "sent"}, "status: must be an integer"),
        ("orders", {"updated": "2026-13-45 25:61:00"}, "updated: is not a timestamp"),
        ("orders", {"total": "1e400"}, "total: is not a finite amount"),
        ("items", {"quantity": "lots"}, "quantity: must be an integer"),
    ],
)
def test_each_kind_of_bad_record_names_the_field(
    resource: str, change: dict[str, Any], reason: str
) -> None:
    result = parse(resource, {**VALID[resource], **change}, CONTEXT)
    assert isinstance(result, Rejected)
    assert reason in result.reason


def test_the_documented_variants_read() -> None:
    variants = {
        "subscriptions": {"live": False, "customer": 42, "public_id": 7},
        "customers": {"live": None, "email": None, "merchant_user_id": "m-1"},
        "orders": {"status": "5", "total": None, "place": None},
        "items": {"subscription": None, "quantity": None, "order_updated": 1_793_518_200},
    }
    for resource, change in variants.items():
        assert not isinstance(parse(resource, {**VALID[resource], **change}, CONTEXT), Rejected)


@pytest.fixture
def conn(db_url: str) -> psycopg.Connection:
    with connect(db_url) as connection:
        yield connection


@given(data=st.data(), resource=resources)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_record_of_a_batch_ends_stored_or_set_aside(
    conn: psycopg.Connection, data: st.DataObject, resource: str
) -> None:
    batch = data.draw(st.lists(records(resource), min_size=1, max_size=6))
    conn.execute("SELECT 1")  # open the transaction that the example rolls back
    try:
        counts = store(conn, resource, batch, CONTEXT)
        table = "og.products" if resource == "products" else TABLES[resource].table
        key = SHAPES[resource].key if resource == "products" else TABLES[resource].key
        stored = {row[0] for row in conn.execute(f"SELECT {key} FROM {table}")}
        aside = conn.execute(
            "SELECT record_id, reason, record::text FROM og.rejected_records WHERE resource = %s",
            (resource,),
        ).fetchall()
        # An id "None" is stored only when Ordergroove sent that very string, never for a null.
        sent_none = any(
            isinstance(r, dict) and str(r.get(key)).strip() == "None" and r.get(key) is not None
            for r in batch
        )
        assert "None" not in stored or sent_none
        assert all(
            reason and EMAIL not in reason and EMAIL not in record for _, reason, record in aside
        )
        for record in batch:
            result = parse(resource, record, CONTEXT)
            if isinstance(result, Rejected):
                assert result.record_id in {r for r, _, _ in aside} | stored
            else:
                # Stored, or set aside by Postgres' refusal of the row.
                assert result[key] in stored | {r for r, _, _ in aside}
        assert counts.received + counts.rejected >= 1
    finally:
        conn.rollback()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("True", True),
        ("False", False),
        ("true", True),
        (1, True),
        (0, False),
    ],
)
def test_live_reads_as_a_bool_or_its_string_forms(value: object, expected: bool) -> None:
    row = parse("subscriptions", {**VALID["subscriptions"], "live": value}, CONTEXT)
    assert not isinstance(row, Rejected) and row["live"] is expected


@pytest.mark.parametrize("value", [None, "yes", "", 2, 1.5])
def test_live_that_is_no_bool_sets_the_subscription_aside_rather_than_counting_it_inactive(
    value: object,
) -> None:
    result = parse("subscriptions", {**VALID["subscriptions"], "live": value}, CONTEXT)
    assert isinstance(result, Rejected) and result.reason.startswith("live:")
