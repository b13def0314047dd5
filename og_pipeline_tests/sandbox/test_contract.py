"""The sandbox serves exactly the documented REST record shapes, and its bad records are the only
records that break them.

Flow: walk every list endpoint over real HTTP with cursor pagination (X-OG-API-VERSION: 2,
page_size 100) over the whole data, validate each page against page.schema.json and each record
against its record schema (og_pipeline_tests/contract/ordergroove), and GET the detail endpoint of
a sample. With bad_record_share=0 nothing fails; with 0.05 the failing records are exactly those
`Merchant.bad_records()` names.

Naming a failing record: its key may be null or missing, so records are matched by position. An
unfiltered walk serves records in (true local version, row) order, and `Merchant.record_ids`
lists the ids in that order; a flaw changes only the rendered dict, never the index, so position
i of the walk is `record_ids(resource)[i]`. The test checks that this holds for every record
whose key is rendered, and for items also the `order` they render (an item shares its order's row).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator

from og_pipeline.sandbox import Merchant, SandboxServer
from og_pipeline_tests.contract import RECORDS, SCHEMA_OF_RESOURCE, load, validator

from .conftest import V2, small_spec, walk

WALKED = ("subscriptions", "customers", "orders", "items")
KEYS = {"subscriptions": "public_id", "customers": "merchant_user_id", "orders": "public_id"}
KEYS |= {"items": "public_id", "products": "external_product_id"}
GENERIC_FLAWS = {"key_null", "key_missing", "version_missing", "version_unparseable"}


@pytest.fixture(scope="module")
def flawed() -> Iterator[SandboxServer]:
    with SandboxServer(replace(small_spec(), bad_record_share=0.05), port=0) as sb:
        yield sb


def _walk_pages(session: requests.Session, url: str) -> list[dict[str, Any]]:
    """Every record of an unfiltered v2 cursor walk; each page must match the envelope schema."""
    page_schema = validator("page")
    records: list[dict[str, Any]] = []
    next_url: str | None = url
    params: dict[str, Any] | None = {"page_size": 100}
    while next_url:
        response = session.get(next_url, headers=V2, params=params)
        params = None  # `next` is a full URL with the query kept
        assert response.status_code == 200, response.text
        body = response.json()
        assert not list(page_schema.iter_errors(body)), body.keys()
        records.extend(body["results"])
        next_url = body["next"]
        assert len(records) < 1_000_000, "cursor walk does not terminate"
    return records


def _errors(resource: str, record: dict[str, Any]) -> list[str]:
    return [e.message for e in validator(SCHEMA_OF_RESOURCE[resource]).iter_errors(record)]


def _walk_with_ids(
    sb: SandboxServer, session: requests.Session, resource: str
) -> list[tuple[str, dict[str, Any]]]:
    """(real id, record) for a whole walk, the id taken by position (see the module doc)."""
    records = _walk_pages(session, f"{sb.ordergroove_url}/{resource}/")
    expected = sb.merchant.record_ids(resource)
    assert len(records) == len(expected)
    return list(zip(expected, records, strict=True))


def test_schemas_are_valid_draft_2020_12() -> None:
    for name in (*RECORDS, "page", "defs"):
        Draft202012Validator.check_schema(load(name))
    for name in RECORDS:
        assert load(name)["additionalProperties"] is False


def test_clean_sandbox_serves_only_documented_shapes(
    sandbox: SandboxServer, http: requests.Session
) -> None:
    assert sandbox.merchant.spec.bad_record_share == 0
    for resource in WALKED:
        pairs = _walk_with_ids(sandbox, http, resource)
        for real_id, record in pairs:
            assert _errors(resource, record) == [], (resource, record)
            assert record[KEYS[resource]] == real_id
        for real_id, record in pairs[::40]:
            detail = http.get(f"{sandbox.ordergroove_url}/{resource}/{real_id}/", headers=V2)
            assert detail.status_code == 200 and detail.json() == record
    products = _walk_pages(http, sandbox.ordergroove_url + "/products/")
    assert products and all(_errors("products", p) == [] for p in products)
    one = products[0]["external_product_id"]
    detail = http.get(f"{sandbox.ordergroove_url}/products/{one}/", headers=V2).json()
    assert _errors("products", detail) == []


def test_invalid_records_are_exactly_the_bad_records(
    flawed: SandboxServer, http: requests.Session
) -> None:
    m = flawed.merchant
    bad = {(b.resource, b.id): b.flaw for b in m.bad_records()}
    invalid: set[tuple[str, str]] = set()
    for resource in WALKED:
        for real_id, record in _walk_with_ids(flawed, http, resource):
            if _errors(resource, record):
                invalid.add((resource, real_id))
            flaw = bad.get((resource, real_id))
            key = KEYS[resource]
            if flaw not in ("key_null", "key_missing"):
                assert record[key] == real_id, "position no longer names the record"
            if resource == "items" and flaw != "order_null":
                assert record["order"] == m.order_id(m.row_of("items", real_id))
    assert invalid == set(bad)
    # The seed gives every resource some bad records and every generic flaw at least once.
    assert {resource for resource, _ in bad} == set(WALKED)
    assert GENERIC_FLAWS <= set(bad.values())
    assert len(bad) > len(GENERIC_FLAWS) + 4
    # Detail answers carry the same flaw; the control plane lists the same records.
    for resource, real_id in sorted(bad)[::5]:
        detail = http.get(f"{flawed.ordergroove_url}/{resource}/{real_id}/", headers=V2)
        assert detail.status_code == 200 and _errors(resource, detail.json())
    listed = http.get(flawed.url + "/_sandbox/bad_records").json()
    assert {(b["resource"], b["id"]): b["flaw"] for b in listed} == bad


def test_ground_truth_holds_for_customers_without_bad_records(
    flawed: SandboxServer, http: requests.Session
) -> None:
    m = flawed.merchant
    skip = m.bad_customers()
    assert skip and skip < set(m.customer_ids())
    active: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for _, s in _walk_with_ids(flawed, http, "subscriptions"):
        if not _errors("subscriptions", s):
            total[s["customer"]] += 1
            active[s["customer"]] += s["live"] in (True, "True")
    truth = m.ground_truth()
    for cid, row in truth.items():
        if cid not in skip:
            assert (row["total"], row["active"]) == (total[cid], active[cid]), cid
    # Each bad record's customer is among the skipped ones.
    c = m.cols
    for b in m.bad_records():
        row = m.row_of(b.resource, b.id)
        cust = {"customers": row, "subscriptions": c.s_customer[row]}.get(b.resource)
        assert m.customer_ids()[c.o_customer[row] if cust is None else cust] in skip


@pytest.mark.parametrize(
    ("schema", "change"),
    [
        ("item", {"updated": "2026-11-01 10:00:00"}),
        ("item", {"created": "2026-11-01 10:00:00"}),
        ("item", {"order": None}),
        ("item", {"quantity": "lots"}),
        ("customer", {"updated": "2026-11-01 10:00:00"}),
        ("customer", {"locale": "en_US"}),
        ("customer", {"last_updated": "2026-13-45 25:61:00"}),
        ("subscription", {"live": "maybe"}),
        ("subscription", {"extra_data": {"source": "cart"}}),
        ("subscription", {"public_id": None}),
        ("order", {"status": "sent"}),
        ("order", {"total": 12.5}),
        ("order", {"items": []}),
    ],
)
def test_schema_rejects_what_the_doc_does_not_allow(
    sandbox: SandboxServer, schema: str, change: dict[str, Any]
) -> None:
    # Start from a record the sandbox really serves, so the change alone makes it fail.
    m = sandbox.merchant
    sub = m.subscription_ids(live=True)[0]
    order = m.upcoming_order_id(sub)
    assert order is not None
    base = {
        "item": lambda: m.item(m.item_id(m.row_of("orders", order))),
        "customer": lambda: m.customer(m.customer_ids()[0]),
        "subscription": lambda: m.subscription(sub),
        "order": lambda: m.order(order),
    }[schema]()
    assert not list(validator(schema).iter_errors(base))
    assert list(validator(schema).iter_errors({**base, **change}))


def test_schema_accepts_the_documented_variants(sandbox: SandboxServer) -> None:
    m = sandbox.merchant
    sub = m.subscription(m.subscription_ids()[0])
    for variant in (
        {"live": "False"},
        {"live": None},
        {"components": "SKU-00001,SKU-00002"},
        {"components": [{"product": "SKU-00001", "quantity": 1}]},
        {"price": None, "cancelled": None},
    ):
        assert not list(validator("subscription").iter_errors({**sub, **variant})), variant
    page = {"next": None, "previous": None, "results": []}
    assert not list(validator("page").iter_errors(page))
    assert list(validator("page").iter_errors({**page, "count": 0}))


def test_repair_renders_correctly_and_bumps_the_version() -> None:
    m = Merchant(replace(small_spec(300, seed=11), bad_record_share=0.05))
    by_resource = {b.resource: b for b in reversed(m.bad_records())}
    at = datetime(2026, 11, 9, 12, 0, tzinfo=UTC)  # 06:00 in Chicago
    fetch = {
        "subscriptions": m.subscription,
        "customers": m.customer,
        "orders": m.order,
        "items": m.item,
    }
    version = {"subscriptions": "updated", "customers": "last_updated"}
    version |= {"orders": "updated", "items": "order_updated"}
    for resource, record in by_resource.items():
        assert _errors(resource, fetch[resource](record.id))
        m.repair(resource, record.id, at=at)
        fixed = fetch[resource](record.id)
        assert _errors(resource, fixed) == []
        assert fixed[version[resource]] == "2026-11-09 06:00:00"
        assert (resource, record.id) not in {(b.resource, b.id) for b in m.bad_records()}
        with pytest.raises(ValueError, match="not a bad record"):
            m.repair(resource, record.id)
    item = by_resource["items"].id
    order = m.order_id(m.row_of("items", item))
    assert m.item(item)["order_updated"] == m.order(order)["updated"]


def test_repair_over_the_control_plane(http: requests.Session) -> None:
    with SandboxServer(replace(small_spec(100, seed=5), bad_record_share=0.2), port=0) as sb:
        url = sb.url + "/_sandbox/bad_records"
        listed = http.get(url).json()
        one = next(b for b in listed if b["resource"] == "orders")
        detail = f"{sb.ordergroove_url}/orders/{one['id']}/"
        assert _errors("orders", http.get(detail, headers=V2).json())
        repaired = http.post(
            f"{url}/orders/{one['id']}/repair", json={"at": "2026-11-09T12:00:00+00:00"}
        )
        assert repaired.status_code == 200, repaired.text
        fixed = http.get(detail, headers=V2).json()
        assert _errors("orders", fixed) == [] and fixed["updated"] == "2026-11-09 06:00:00"
        assert one not in http.get(url).json()
        # An incremental walk from the repair time re-reads it.
        window, _ = walk(
            http, sb.ordergroove_url + "/orders/", {"updated_start": "2026-11-09T06:00:00"}
        )
        assert fixed in window
        assert http.post(f"{url}/orders/{one['id']}/repair").status_code == 409
        assert http.post(f"{url}/orders/{'0' * 32}/repair").status_code == 404
        assert http.post(f"{url}/widgets/x/repair").status_code == 404
