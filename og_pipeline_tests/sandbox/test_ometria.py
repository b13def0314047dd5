"""The Ometria push stand-in: limits, auth, rate limit, upsert semantics, async errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from og_pipeline.sandbox import SandboxServer

from .conftest import small_spec

KEY = {"X-Ometria-Auth": "sandbox-ometria-key"}


@pytest.fixture(scope="module")
def roomy() -> Iterator[SandboxServer]:
    # A generous rate limit so these tests never meet the limiter by accident.
    with SandboxServer(small_spec(50, seed=2), port=0, ometria_rate_limit=10_000) as sb:
        yield sb


def contact(n: int, **props: Any) -> dict[str, Any]:
    return {
        "@type": "contact",
        "id": f"og-{n}",
        "customer_id": str(n),
        "email": f"c{n}@example.com",
        "@collection": "ordergroove",
        "@merge": True,
        "properties": props,
    }


def event(eid: str, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "@type": "custom_event",
        "id": eid,
        "event_type": "Ordergroove_order_reminder",
        "timestamp": "2026-11-08T10:00:00+00:00",
        "identity_email": "c1@example.com",
        "identity_account_id": "1",
        "properties": {"order_id": "o1", "product_set": ["SKU-00001"], "total_value": 25},
    }
    record.update(overrides)
    return record


def push(sb: SandboxServer, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(
        sb.ometria_url + "/v2/push", json=body, headers=KEY if headers is None else headers
    )


def errors(sb: SandboxServer) -> list[dict[str, str]]:
    response = requests.get(sb.ometria_url + "/v2/push/_errors", headers=KEY)
    assert response.status_code == 200
    return response.json()


def test_push_accepts_and_answers_counts(roomy: SandboxServer) -> None:
    response = push(roomy, [contact(1, ordergroove_active_subscriptions=2)])
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "OK" and body["accepted"] == 1 and body["rejected"] == 0
    assert body["request_id"]


def test_structural_errors_are_400(roomy: SandboxServer) -> None:
    assert push(roomy, [contact(i) for i in range(101)]).status_code == 400
    mixed = push(roomy, [contact(1), event("e-mixed")])
    assert mixed.status_code == 400 and "same @type" in mixed.json()["message"]
    assert push(roomy, contact(1)).status_code == 400  # an object, not an array
    assert push(roomy, []).status_code == 400
    assert "e-mixed" not in roomy.ometria.events


def test_auth(roomy: SandboxServer) -> None:
    assert push(roomy, [contact(1)], headers={"X-Ometria-Auth": "wrong"}).status_code == 401
    assert push(roomy, [contact(1)], headers={}).status_code == 401


def test_record_too_large_is_rejected(roomy: SandboxServer) -> None:
    big = contact(9)
    big["padding"] = "x" * (61 * 1024)
    body = push(roomy, [big, contact(10)]).json()
    assert body["accepted"] == 1 and body["rejected"] == 1
    assert "og-9" not in roomy.ometria.contacts
    assert any(e["error_message"] == "Record is too large" for e in errors(roomy))


def test_merge_keeps_fields_not_sent(roomy: SandboxServer) -> None:
    push(
        roomy,
        [
            contact(
                20,
                ordergroove_active_subscriptions=1,
                ordergroove_total_subscriptions=3,
            )
        ],
    )
    update = contact(20, ordergroove_active_subscriptions=0)
    del update["email"]
    push(roomy, [update])
    stored = requests.get(roomy.url + "/_sandbox/ometria/contacts").json()["og-20"]
    assert stored["email"] == "c20@example.com"
    assert stored["properties"] == {
        "ordergroove_active_subscriptions": 0,
        "ordergroove_total_subscriptions": 3,
    }
    # Without @merge the record is replaced.
    replace = contact(20, ordergroove_subscription_status="inactive")
    replace["@merge"] = False
    push(roomy, [replace])
    assert roomy.ometria.contacts["og-20"]["properties"] == {
        "ordergroove_subscription_status": "inactive"
    }


def test_semantic_errors_surface_in_errors_endpoint(roomy: SandboxServer) -> None:
    push(roomy, [contact(30, ordergroove_bogus_field=1, ordergroove_total_subscriptions=1)])
    assert roomy.ometria.contacts["og-30"]["properties"] == {"ordergroove_total_subscriptions": 1}
    push(roomy, [contact(31) | {"id": "someone@example.com"}])
    push(roomy, [event("bad-type", event_type="Not_a_known_event")])
    push(roomy, [event("long-type", event_type="Ordergroove_" + "x" * 30)])
    push(roomy, [event("naive-ts", timestamp="2026-11-08T10:00:00")])
    push(roomy, [event("long-prop", properties={"order_id": "x" * 513})])
    messages = [e["error_message"] for e in errors(roomy)]
    paths = [e["error_path"] for e in errors(roomy)]
    assert any("Unknown custom field: ordergroove_bogus_field" in m for m in messages)
    assert any("someone@example.com" in p for p in paths)
    assert any("Unknown event_type" in m for m in messages)
    assert any("under 32 characters" in m for m in messages)
    assert any("no UTC offset" in m for m in messages)
    assert any("512" in m for m in messages)
    for eid in ("bad-type", "long-type", "naive-ts"):
        assert eid not in roomy.ometria.events
    assert len(errors(roomy)) <= 100


def test_event_push_counts(roomy: SandboxServer) -> None:
    push(roomy, [event("og-evt-1"), event("og-evt-2")])
    push(roomy, [event("og-evt-1", properties={"order_id": "o1", "total_value": 26})])
    body = requests.get(roomy.url + "/_sandbox/ometria/events").json()
    assert body["push_counts"]["og-evt-1"] == 2
    assert body["push_counts"]["og-evt-2"] == 1
    assert body["events"]["og-evt-1"]["properties"]["total_value"] == 26


def test_rate_limit_refuses_beyond_eight_per_second(fresh_sandbox: SandboxServer) -> None:
    session = requests.Session()
    statuses = [
        session.post(
            fresh_sandbox.ometria_url + "/v2/push", json=[contact(i)], headers=KEY
        ).status_code
        for i in range(20)
    ]
    assert set(statuses) <= {200, 429}
    assert 429 in statuses
    ok_times = [r["monotonic"] for r in fresh_sandbox.ometria.request_log() if r["status"] == 200]
    # No sliding 1-second window ever admitted more than 8 requests.
    for i, t in enumerate(ok_times):
        assert sum(1 for u in ok_times[i:] if u - t < 1.0) <= 8
    log = requests.get(fresh_sandbox.url + "/_sandbox/ometria/requests").json()
    assert len(log) == 20 and {r["type"] for r in log if r["status"] == 200} == {"contact"}


def test_rate_limit_retry_after_is_configurable(fresh_sandbox: SandboxServer) -> None:
    session = requests.Session()
    url = fresh_sandbox.ometria_url + "/v2/push"

    def first_429() -> requests.Response:
        for i in range(40):
            response = session.post(url, json=[contact(i)], headers=KEY)
            if response.status_code == 429:
                return response
        raise AssertionError("the limiter never refused a request")

    assert first_429().headers.get("Retry-After") == "1"
    fresh_sandbox.ometria.rate_limit_retry_after = None
    assert "Retry-After" not in first_429().headers
