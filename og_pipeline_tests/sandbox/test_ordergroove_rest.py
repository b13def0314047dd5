"""The Ordergroove REST stand-in keeps the documented contract, checked over real HTTP."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import requests

from og_pipeline.sandbox import SandboxServer

from .conftest import OG_KEY, V2, walk

CHICAGO = ZoneInfo("America/Chicago")


def _as_filter(rendered: str) -> str:
    return rendered.replace(" ", "T")


def test_cursor_walk_sees_every_record_once_and_matches_store(
    sandbox: SandboxServer, http: requests.Session
) -> None:
    records, pages = walk(http, sandbox.ordergroove_url + "/subscriptions/", {"page_size": 37})
    ids = [r["public_id"] for r in records]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(sandbox.merchant.subscription_ids())
    assert pages == -(-len(ids) // 37)
    # Ordered by (updated, primary key) on the naive local value.
    assert [(r["updated"], r["public_id"]) for r in records] == sorted(
        (r["updated"], r["public_id"]) for r in records
    )
    for record in records[::50]:
        assert record == sandbox.merchant.subscription(record["public_id"])


def test_every_object_type_walks_completely(sandbox: SandboxServer, http: requests.Session) -> None:
    counts = sandbox.merchant.counts()
    customers, _ = walk(http, sandbox.ordergroove_url + "/customers/", {"page_size": 100})
    orders, _ = walk(http, sandbox.ordergroove_url + "/orders/", {"page_size": 100})
    items, _ = walk(http, sandbox.ordergroove_url + "/items/", {"page_size": 100})
    products, _ = walk(http, sandbox.ordergroove_url + "/products/", {"page_size": 7})
    assert len({c["merchant_user_id"] for c in customers}) == counts["customers"]
    assert len({o["public_id"] for o in orders}) == counts["orders"]
    assert {i["order"] for i in items} == {o["public_id"] for o in orders}
    assert len(products) == counts["products"]
    assert [p["external_product_id"] for p in products] == sorted(sandbox.merchant.product_ids())
    missing_email = sum(1 for c in customers if c["email"] is None)
    assert missing_email < len(customers) * 0.05


def test_updated_window_is_inclusive_in_chicago_local_time(
    sandbox: SandboxServer, http: requests.Session
) -> None:
    records, _ = walk(http, sandbox.ordergroove_url + "/subscriptions/", {"page_size": 100})
    target = records[len(records) // 2]
    stamp = target["updated"]
    # The rendered value is the record's UTC instant on Chicago's wall clock.
    row = sandbox.merchant.sub_row(target["public_id"])
    utc = sandbox.merchant.cols.s_updated[row]
    assert datetime.fromtimestamp(utc, CHICAGO).strftime("%Y-%m-%d %H:%M:%S") == stamp

    exact, _ = walk(
        http,
        sandbox.ordergroove_url + "/subscriptions/",
        {"updated_start": _as_filter(stamp), "updated_end": _as_filter(stamp)},
    )
    assert target["public_id"] in {r["public_id"] for r in exact}
    assert {r["updated"] for r in exact} == {stamp}

    # A window ending one second earlier, or starting one second later, excludes it.
    t = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S")
    end_before = (t - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
    start_after = (t + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
    low, _ = walk(http, sandbox.ordergroove_url + "/subscriptions/", {"updated_end": end_before})
    high, _ = walk(
        http, sandbox.ordergroove_url + "/subscriptions/", {"updated_start": start_after}
    )
    assert target["public_id"] not in {r["public_id"] for r in low + high}
    assert len(low) + len(high) + len(exact) == len(records)


def test_window_walk_equals_filtering_the_full_walk(
    sandbox: SandboxServer, http: requests.Session
) -> None:
    records, _ = walk(http, sandbox.ordergroove_url + "/subscriptions/", {"page_size": 100})
    lo, hi = "2026-11-03 00:00:00", "2026-11-04 23:59:59"
    expected = {r["public_id"] for r in records if lo <= r["updated"] <= hi}
    window, _ = walk(
        http,
        sandbox.ordergroove_url + "/subscriptions/",
        {"updated_start": _as_filter(lo), "updated_end": _as_filter(hi), "page_size": 13},
    )
    assert [r["public_id"] for r in window] and {r["public_id"] for r in window} == expected
    assert len(window) == len(expected)


def test_page_size_default_and_clamp(sandbox: SandboxServer, http: requests.Session) -> None:
    url = sandbox.ordergroove_url + "/subscriptions/"
    assert len(http.get(url, headers=V2).json()["results"]) == 10
    assert len(http.get(url, headers=V2, params={"page_size": 500}).json()["results"]) == 100


def test_next_url_keeps_filters_and_previous_goes_back(
    sandbox: SandboxServer, http: requests.Session
) -> None:
    url = sandbox.ordergroove_url + "/orders/"
    params = {"status": "1", "page_size": 5, "updated_start": "2026-11-02T00:00:00"}
    first = http.get(url, headers=V2, params=params).json()
    assert first["previous"] is None
    assert "status=1" in first["next"] and "updated_start=" in first["next"]
    assert "cursor=" in first["next"]
    second = http.get(first["next"], headers=V2).json()
    assert second["previous"] is not None
    back = http.get(second["previous"], headers=V2).json()
    assert back["results"] == first["results"]


def test_v1_pagination_without_header_has_count(
    sandbox: SandboxServer, http: requests.Session
) -> None:
    url = sandbox.ordergroove_url + "/subscriptions/"
    headers = {"x-api-key": OG_KEY}
    page1 = http.get(url, headers=headers, params={"page_size": 100}).json()
    assert page1["count"] == sandbox.merchant.counts()["subscriptions"]
    assert page1["next"].endswith("page=2") and page1["previous"] is None
    page2 = http.get(page1["next"], headers=headers).json()
    assert page2["count"] == page1["count"] and page2["previous"] is not None
    assert not {r["public_id"] for r in page1["results"]} & {
        r["public_id"] for r in page2["results"]
    }
    assert http.get(url, headers=headers, params={"page": 999}).status_code == 404


def test_auth_401_and_403(sandbox: SandboxServer, http: requests.Session) -> None:
    url = sandbox.ordergroove_url + "/subscriptions/"
    assert http.get(url).status_code == 401
    assert http.get(url, headers={"x-api-key": "nope"}).status_code == 401
    limited = http.get(url, headers={"x-api-key": "sandbox-og-limited-key"})
    assert limited.status_code == 403
    assert "Bulk Operations" in limited.json()["detail"]


def test_bad_filter_and_cursor(sandbox: SandboxServer, http: requests.Session) -> None:
    url = sandbox.ordergroove_url + "/subscriptions/"
    assert http.get(url, headers=V2, params={"updated_start": "yesterday"}).status_code == 400
    assert http.get(url, headers=V2, params={"cursor": "garbage!"}).status_code == 404


def test_orders_filters_and_items(sandbox: SandboxServer, http: requests.Session) -> None:
    m = sandbox.merchant
    base = sandbox.ordergroove_url
    upcoming, _ = walk(http, base + "/orders/", {"status": "1", "page_size": 100})
    assert {o["status"] for o in upcoming} == {1}
    assert len(upcoming) == len(m.subscription_ids(live=True))
    assert all(o["place"] > "2026-11-07" for o in upcoming)
    for key in ("sub_total", "tax_total", "shipping_total", "discount_total", "total"):
        assert isinstance(upcoming[0][key], str) and "." in upcoming[0][key]

    sub = m.subscription_ids(live=True)[3]
    order_id = m.upcoming_order_id(sub)
    by_sub, _ = walk(http, base + "/orders/", {"subscription": sub, "status": "1"})
    assert [o["public_id"] for o in by_sub] == [order_id]
    customer = m.subscription(sub)["customer"]
    by_customer, _ = walk(http, base + "/orders/", {"customer": customer})
    assert order_id in {o["public_id"] for o in by_customer}
    assert {o["customer"] for o in by_customer} == {customer}
    items, _ = walk(http, base + "/items/", {"order": order_id})
    assert len(items) == 1 and items[0]["subscription"] == sub

    place = by_sub[0]["place"]
    placed, _ = walk(http, base + "/orders/", {"place_start": place, "place_end": place})
    assert {o["place"] for o in placed} == {place}

    product = http.get(base + f"/products/{items[0]['product']}/", headers=V2).json()
    assert product["external_product_id"] == items[0]["product"]
    assert http.get(base + "/products/NOPE/", headers=V2).status_code == 404


def test_live_quirk_strings_appear(sandbox: SandboxServer, http: requests.Session) -> None:
    records, _ = walk(http, sandbox.ordergroove_url + "/subscriptions/", {"page_size": 100})
    kinds = Counter(type(r["live"]).__name__ for r in records)
    assert kinds["bool"] > kinds["str"] > 0
    assert all(r["live"] in (True, False, "True", "False") for r in records)
    cancelled = [r for r in records if r["cancelled"]]
    assert cancelled and all("|" in r["cancel_reason"] for r in cancelled)


def test_items_filter_by_order_updated_only(sandbox: SandboxServer, http: requests.Session) -> None:
    base = sandbox.ordergroove_url
    items, _ = walk(http, base + "/items/", {"page_size": 100})
    assert items and all("updated" not in i and "created" not in i for i in items)
    orders = {o["public_id"]: o for o in walk(http, base + "/orders/", {"page_size": 100})[0]}
    assert all(i["order_updated"] == orders[i["order"]]["updated"] for i in items)
    stamp = items[len(items) // 2]["order_updated"]
    window = {"order_updated_start": _as_filter(stamp), "order_updated_end": _as_filter(stamp)}
    exact, _ = walk(http, base + "/items/", window)
    assert exact and {i["order_updated"] for i in exact} == {stamp}
    # `updated_*` (and `created_*`) are not item filters: ignored, as Django-filter ignores
    # unknown parameters, so the answer is every item, not an error and not a window.
    for name in ("updated", "created"):
        params = {f"{name}_start": _as_filter(stamp), f"{name}_end": _as_filter(stamp)}
        ignored, _ = walk(http, base + "/items/", {**params, "page_size": 100})
        assert [i["public_id"] for i in ignored] == [i["public_id"] for i in items]


def test_customers_filter_updated_over_last_updated(
    sandbox: SandboxServer, http: requests.Session
) -> None:
    url = sandbox.ordergroove_url + "/customers/"
    customers, _ = walk(http, url, {"page_size": 100})
    assert all("updated" not in c and c["last_updated"] for c in customers)
    lo, hi = "2026-11-02 00:00:00", "2026-11-05 23:59:59"
    window, _ = walk(http, url, {"updated_start": _as_filter(lo), "updated_end": _as_filter(hi)})
    expected = {c["merchant_user_id"] for c in customers if lo <= c["last_updated"] <= hi}
    assert window and {c["merchant_user_id"] for c in window} == expected
