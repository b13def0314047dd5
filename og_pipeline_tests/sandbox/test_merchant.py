"""Merchant store: determinism, ground truth against REST, and mutations seen over REST."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from og_pipeline.sandbox import Merchant, MerchantSpec, SandboxServer

from .conftest import V2, small_spec, walk


def _live(value: Any) -> bool:
    return value is True or value == "True"


def test_generation_is_deterministic_by_seed() -> None:
    a, b = Merchant(small_spec(400, seed=3)), Merchant(small_spec(400, seed=3))
    other = Merchant(small_spec(400, seed=4))
    ids = a.subscription_ids()
    assert ids == b.subscription_ids()
    assert [a.subscription(i) for i in ids] == [b.subscription(i) for i in ids]
    assert a.ground_truth() == b.ground_truth()
    assert a.ground_truth() != other.ground_truth()


def test_bad_records_are_seeded_and_change_nothing_else() -> None:
    def spec(seed: int, share: float) -> MerchantSpec:
        return replace(small_spec(400, seed=seed), bad_record_share=share)

    flawed = Merchant(spec(3, 0.05))
    bad = flawed.bad_records()
    assert bad and bad == Merchant(spec(3, 0.05)).bad_records()
    assert bad != Merchant(spec(4, 0.05)).bad_records()
    # Only the bad records render differently; every other record and the truth are untouched.
    clean = Merchant(spec(3, 0.0))
    assert clean.bad_records() == [] and clean.bad_customers() == set()
    bad_subs = {b.id for b in bad if b.resource == "subscriptions"}
    for sub in clean.subscription_ids():
        same = clean.subscription(sub) == flawed.subscription(sub)
        assert same != (sub in bad_subs)
    assert clean.ground_truth() == flawed.ground_truth()


def test_generated_shape() -> None:
    m = Merchant(small_spec(2000, seed=5))
    counts = m.counts()
    live = len(m.subscription_ids(live=True))
    assert 0.7 < live / counts["subscriptions"] < 0.9
    assert 0.6 < counts["customers"] / counts["subscriptions"] < 0.8
    start = "2026-10-31 19:00:00"  # 2026-11-01T00:00Z in Chicago
    subs = [m.subscription(i) for i in m.subscription_ids()]
    assert all(start <= s["created"] <= s["updated"] <= "2026-11-07 18:00:00" for s in subs)
    assert all(s["extra_data"].startswith("{") for s in subs)


def test_ground_truth_agrees_with_rest(sandbox: SandboxServer, http: requests.Session) -> None:
    base = sandbox.ordergroove_url
    subs, _ = walk(http, base + "/subscriptions/", {"page_size": 100})
    customers, _ = walk(http, base + "/customers/", {"page_size": 100})
    upcoming, _ = walk(http, base + "/orders/", {"status": "1", "page_size": 100})
    active: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for s in subs:
        total[s["customer"]] += 1
        active[s["customer"]] += _live(s["live"])
    next_date: dict[str, str] = {}
    for o in upcoming:
        # `place` is a REST timestamp; the next order date is its day.
        next_date[o["customer"]] = min(o["place"][:10], next_date.get(o["customer"], "9999"))

    truth = http.get(sandbox.url + "/_sandbox/ground_truth").json()
    assert set(truth) == {c["merchant_user_id"] for c in customers}
    for c in customers:
        cid = c["merchant_user_id"]
        row = truth[cid]
        assert row["email"] == c["email"]
        assert row["total"] == total[cid]
        assert row["active"] == active[cid]
        assert row["status"] == ("active" if active[cid] else "inactive")
        assert c["live"] == (active[cid] > 0)
        assert row["next_order_date"] == next_date.get(cid)


def test_cancel_moves_updated_and_hard_deletes_upcoming_order(
    fresh_sandbox: SandboxServer, http: requests.Session
) -> None:
    sb = fresh_sandbox
    m = sb.merchant
    sub = m.subscription_ids(live=True)[0]
    before = m.subscription(sub)
    order = m.upcoming_order_id(sub)
    assert order is not None
    at = datetime(2026, 11, 9, 15, 30, tzinfo=UTC)
    response = http.post(
        sb.url + f"/_sandbox/ordergroove/subscriptions/{sub}/cancel",
        json={"at": at.isoformat(), "reason": "2|Have too much"},
    )
    assert response.status_code == 200, response.text
    after, _ = walk(
        http,
        sb.ordergroove_url + "/subscriptions/",
        {"updated_start": "2026-11-09T09:30:00", "updated_end": "2026-11-09T09:30:00"},
    )
    assert [s["public_id"] for s in after] == [sub]
    assert after[0]["updated"] == "2026-11-09 09:30:00" != before["updated"]
    assert not _live(after[0]["live"]) and after[0]["cancel_reason"] == "2|Have too much"
    assert after[0]["cancelled"] == "2026-11-09 09:30:00"
    orders, _ = walk(http, sb.ordergroove_url + "/orders/", {"subscription": sub, "status": "1"})
    assert orders == []
    assert walk(http, sb.ordergroove_url + "/items/", {"order": order})[0] == []
    all_orders, _ = walk(http, sb.ordergroove_url + "/orders/", {"page_size": 100})
    assert order not in {o["public_id"] for o in all_orders}
    # Cancelling twice is a conflict, not a silent no-op.
    again = http.post(sb.url + f"/_sandbox/ordergroove/subscriptions/{sub}/cancel")
    assert again.status_code == 409


def test_default_mutation_time_always_moves_updated(fresh_sandbox: SandboxServer) -> None:
    m = fresh_sandbox.merchant
    sub = m.subscription_ids(live=True)[1]
    future = datetime(2030, 1, 1, tzinfo=UTC)
    m.cancel_subscription(sub, at=future)
    reactivated = m.reactivate_subscription(sub)  # wall clock is earlier than `future`
    assert reactivated["updated"] > "2029-12-31 18:00:00"
    assert _live(reactivated["live"]) and reactivated["cancelled"] is None
    assert m.upcoming_order_id(sub) is not None


def test_create_and_reactivate_show_up_in_rest_and_ground_truth(
    fresh_sandbox: SandboxServer, http: requests.Session
) -> None:
    sb = fresh_sandbox
    m = sb.merchant
    customer = m.customer_ids()[5]
    before = http.get(sb.url + "/_sandbox/ground_truth").json()[customer]
    created = http.post(
        sb.url + "/_sandbox/ordergroove/subscriptions",
        json={"customer": customer, "product": "SKU-00002", "at": "2026-11-10T12:00:00+00:00"},
    )
    assert created.status_code == 201, created.text
    sub = created.json()
    assert sub["created"] == sub["updated"] == "2026-11-10 06:00:00"
    after = http.get(sb.url + "/_sandbox/ground_truth").json()[customer]
    assert after["total"] == before["total"] + 1 and after["active"] == before["active"] + 1
    assert after["status"] == "active"
    orders, _ = walk(
        http, sb.ordergroove_url + "/orders/", {"subscription": sub["public_id"], "status": "1"}
    )
    assert len(orders) == 1 and orders[0]["place"] == "2026-12-10 00:00:00"

    cancelled = next(i for i in m.subscription_ids() if not _live(m.subscription(i)["live"]))
    reactivated = http.post(
        sb.url + f"/_sandbox/ordergroove/subscriptions/{cancelled}/reactivate",
        json={"at": "2026-11-11T00:00:00+00:00"},
    )
    assert reactivated.status_code == 200 and _live(reactivated.json()["live"])
    assert m.upcoming_order_id(cancelled) is not None


def test_index_stays_correct_under_many_mutations(
    fresh_sandbox: SandboxServer, http: requests.Session
) -> None:
    m = fresh_sandbox.merchant
    t0 = datetime(2026, 11, 8, tzinfo=UTC)
    live = m.subscription_ids(live=True)
    for i, sub in enumerate(live[:60]):
        m.cancel_subscription(sub, at=t0 + timedelta(minutes=i))
    for i, sub in enumerate(live[:20]):
        m.reactivate_subscription(sub, at=t0 + timedelta(hours=2, minutes=i))
    customers = m.customer_ids()
    for i in range(30):
        m.create_subscription(customers[i], "SKU-00001", at=t0 + timedelta(hours=3, minutes=i))
    records, _ = walk(http, fresh_sandbox.ordergroove_url + "/subscriptions/", {"page_size": 100})
    ids = [r["public_id"] for r in records]
    assert len(ids) == len(set(ids)) == m.counts()["subscriptions"]
    assert [(r["updated"], r["public_id"]) for r in records] == sorted(
        (r["updated"], r["public_id"]) for r in records
    )
    upcoming, _ = walk(http, fresh_sandbox.ordergroove_url + "/orders/", {"status": "1"})
    assert len(upcoming) == len(m.subscription_ids(live=True))


def test_dst_fall_back_orders_by_naive_local_time(
    fresh_sandbox: SandboxServer, http: requests.Session
) -> None:
    # 2026-11-01 is when Chicago falls back: 06:30Z is 01:30 CDT, 07:10Z is 01:10 CST.
    m = fresh_sandbox.merchant
    customer = m.customer_ids()[0]
    first = m.create_subscription(
        customer, "SKU-00003", at=datetime(2026, 11, 1, 6, 30, tzinfo=UTC)
    )
    second = m.create_subscription(
        customer, "SKU-00003", at=datetime(2026, 11, 1, 7, 10, tzinfo=UTC)
    )
    window, _ = walk(
        http,
        fresh_sandbox.ordergroove_url + "/subscriptions/",
        {"updated_start": "2026-11-01T01:00:00", "updated_end": "2026-11-01T01:59:59"},
    )
    ids = [r["public_id"] for r in window]
    assert ids.index(second) < ids.index(first)
    assert {r["updated"] for r in window if r["public_id"] in (first, second)} == {
        "2026-11-01 01:30:00",
        "2026-11-01 01:10:00",
    }


def test_cursor_walk_survives_mutation_of_seen_records(
    fresh_sandbox: SandboxServer, http: requests.Session
) -> None:
    # Records moved after the walk passed them show up again at the end; nothing is skipped.
    sb = fresh_sandbox
    url = sb.ordergroove_url + "/subscriptions/"
    page = http.get(url, headers=V2, params={"page_size": 50}).json()
    seen = [r["public_id"] for r in page["results"]]
    moved = next(r["public_id"] for r in page["results"] if _live(r["live"]))
    sb.merchant.cancel_subscription(moved, at=datetime(2026, 11, 20, tzinfo=UTC))
    rest, _ = walk(http, page["next"])
    rest_ids = [r["public_id"] for r in rest]
    assert set(seen) | set(rest_ids) == set(sb.merchant.subscription_ids())
    assert rest_ids[-1] == moved
