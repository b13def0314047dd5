"""OrdergrooveClient against the sandbox's Ordergroove API over real HTTP: cursor walks, window
filters, retries through fault bursts, and the auth errors' wording."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from og_pipeline.ordergroove.client import (
    OrdergrooveAPIError,
    OrdergrooveAuthError,
    OrdergrooveClient,
)
from og_pipeline.ordergroove.records import ParseContext, Rejected, parse
from og_pipeline.sandbox import FaultSpec, SandboxServer
from og_pipeline_tests.stamps import utc_of

from .conftest import OG_KEY, OG_LIMITED_KEY


def make_client(sb: SandboxServer, key: str = OG_KEY, **kwargs: Any) -> OrdergrooveClient:
    # Tiny backoff: the tests check that retries happen, not how long they wait.
    options: dict[str, Any] = {"backoff_factor": 0.01, "backoff_max": 0.05, "backoff_jitter": 0.01}
    options.update(kwargs)
    return OrdergrooveClient(sb.ordergroove_url, key, **options)


def walk(
    client: OrdergrooveClient, resource: str = "subscriptions", **params: Any
) -> list[dict[str, Any]]:
    return [record for page in client.iter_pages(resource, params) for record in page]


def store_subscriptions(sb: SandboxServer) -> dict[str, dict[str, Any]]:
    return {sid: sb.merchant.subscription(sid) for sid in sb.merchant.subscription_ids()}


def assert_complete(records: list[dict[str, Any]], sb: SandboxServer) -> None:
    counts = Counter(r["public_id"] for r in records)
    assert [pid for pid, n in counts.items() if n > 1] == []
    expected = store_subscriptions(sb)
    assert set(counts) == set(expected)
    assert {r["public_id"]: r for r in records} == expected


def test_full_walk_returns_every_subscription_once(sandbox: SandboxServer) -> None:
    with make_client(sandbox, page_size=50) as client:
        pages = list(client.iter_pages("subscriptions", {}))
        records = [r for page in pages for r in page]
        assert_complete(records, sandbox)
        assert all(len(page) <= 50 for page in pages)
        assert client.stats.as_dict() == {
            "requests": len(pages),
            "pages": len(pages),
            "records": len(records),
            "retries": 0,
        }
    assert len(records) == 500
    # `live` comes as a bool or as "True"/"False": every record reads.
    assert {type(r["live"]) for r in records} == {bool, str}
    context = ParseContext("America/Chicago")
    assert not [r for r in records if isinstance(parse("subscriptions", r, context), Rejected)]


def test_window_walk_is_inclusive_at_both_ends(sandbox: SandboxServer) -> None:
    store = store_subscriptions(sandbox)
    # Stay clear of the fall-back night (2026-11-01), where naive local stamps are ambiguous.
    stamps = sorted(
        {
            utc_of(r["updated"])
            for r in store.values()
            if utc_of(r["updated"]) >= datetime(2026, 11, 2, tzinfo=UTC)
        }
    )
    assert len(stamps) > 40
    start, end = stamps[10], stamps[-10]
    expected = {pid for pid, r in store.items() if start <= utc_of(r["updated"]) <= end}

    with make_client(sandbox) as client:
        records = [r for page in client.iter_updated("subscriptions", start, end) for r in page]
    got = Counter(r["public_id"] for r in records)
    assert max(got.values()) == 1
    assert set(got) == expected
    # The records stamped exactly at the bounds are in: the filters are inclusive.
    assert {utc_of(r["updated"]) for r in records} >= {start, end}


def test_get_product_and_product_walk(sandbox: SandboxServer) -> None:
    with make_client(sandbox) as client:
        products = [p for page in client.iter_products() for p in page]
        assert sorted(p["external_product_id"] for p in products) == sorted(
            sandbox.merchant.product_ids()
        )
        first = products[0]["external_product_id"]
        assert client.get_product(first) == sandbox.merchant.product(first)
        assert client.get_product("no-such-product") is None


@pytest.mark.parametrize("status", [503, 500, 502, 429, 423])
def test_a_burst_of_retryable_answers_ends_in_a_complete_walk(
    sandbox: SandboxServer, status: int
) -> None:
    # The sandbox sends Retry-After: 1 with its 429s; the client waits it out each time.
    sandbox.set_faults("ordergroove", FaultSpec(burst=(status, 3)))
    with make_client(sandbox, page_size=100) as client:
        records = walk(client)
        stats = client.stats.as_dict()
    assert_complete(records, sandbox)
    assert stats["retries"] == 3
    assert stats["requests"] == stats["pages"] + 3


def test_random_faults_end_in_a_complete_walk(
    sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.set_faults(
        "ordergroove",
        FaultSpec(rate=0.3, statuses=(429, 423, 500, 502, 503), seed=3, retry_after=None),
    )
    with (
        caplog.at_level(logging.DEBUG, logger="og_pipeline.ordergroove"),
        make_client(sandbox, page_size=20) as client,
    ):
        records = walk(client)
        stats = client.stats.as_dict()
    assert_complete(records, sandbox)
    assert stats["retries"] > 0
    assert stats["requests"] == stats["pages"] + stats["retries"]
    retry_logs = [m for m in caplog.messages if "retry" in m]
    assert len(retry_logs) == stats["retries"]
    assert not any(OG_KEY in m or "@example.com" in m for m in caplog.messages)


def test_read_timeouts_are_retried(sandbox: SandboxServer) -> None:
    # A slow answer outlasts the read timeout; the client gives up on it and asks again.
    sandbox.set_faults("ordergroove", FaultSpec(slow_rate=0.3, slow_seconds=1.0, seed=5))
    with make_client(sandbox, page_size=50, read_timeout=0.25) as client:
        records = walk(client)
        stats = client.stats.as_dict()
    assert_complete(records, sandbox)
    assert stats["retries"] > 0
    assert stats["requests"] == stats["pages"] + stats["retries"]


def test_exhausted_retries_name_the_attempts(sandbox: SandboxServer) -> None:
    sandbox.set_faults("ordergroove", FaultSpec(burst=(502, 10)))
    with (
        make_client(sandbox, max_retries=2) as client,
        pytest.raises(OrdergrooveAPIError, match="after 3 attempts") as info,
    ):
        walk(client)
    assert info.value.status == 502
    assert client.stats.retries == 2


def test_other_client_errors_are_not_retried(sandbox: SandboxServer) -> None:
    with make_client(sandbox) as client, pytest.raises(OrdergrooveAPIError) as info:
        walk(client, resource="no-such-resource")
    assert info.value.status == 404
    assert "/no-such-resource/" in str(info.value)
    assert client.stats.retries == 0 and client.stats.requests == 1


def test_wrong_key_names_the_variable_never_the_key(sandbox: SandboxServer) -> None:
    wrong = "wrong-key-0123456789abcdef"
    with make_client(sandbox, key=wrong) as client, pytest.raises(OrdergrooveAuthError) as info:
        walk(client)
    message = str(info.value)
    assert info.value.status == 401
    assert "ORDERGROOVE_API_KEY" in message and "revoked" in message
    assert wrong not in message and wrong not in repr(info.value)
    assert client.stats.retries == 0


def test_limited_key_asks_for_bulk_operations(sandbox: SandboxServer) -> None:
    with (
        make_client(sandbox, key=OG_LIMITED_KEY) as client,
        pytest.raises(OrdergrooveAuthError) as info,
    ):
        walk(client)
    message = str(info.value)
    assert info.value.status == 403
    assert "ORDERGROOVE_API_KEY" in message and "Bulk Operations" in message
    assert OG_LIMITED_KEY not in message
