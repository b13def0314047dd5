"""OmetriaClient against the sandbox's Ometria push API over real HTTP: batching, the client-side
rate limit as the sandbox's request log measures it, 429 storms, retries and auth errors."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from og_pipeline.ometria.client import OmetriaAPIError, OmetriaAuthError, OmetriaClient, PushResult
from og_pipeline.sandbox import FaultSpec, SandboxServer

from .conftest import OMETRIA_KEY


def make_client(sb: SandboxServer, key: str = OMETRIA_KEY, **kwargs: Any) -> OmetriaClient:
    options: dict[str, Any] = {"backoff_factor": 0.01, "backoff_max": 0.05, "backoff_jitter": 0.01}
    options.update(kwargs)
    return OmetriaClient(sb.ometria_url, key, **options)


def contact(n: int) -> dict[str, Any]:
    return {
        "@type": "contact",
        "id": f"og-{n}",
        "customer_id": str(n),
        "email": f"person{n}@example.com",
        "@collection": "ordergroove",
        "@merge": True,
        "properties": {"ordergroove_active_subscriptions": n % 3},
    }


def push_in_batches(client: OmetriaClient, records: list[dict[str, Any]]) -> dict[str, PushResult]:
    """Push as the contacts step does: pages of ``client.max_batch`` records, one ``push_batch``
    each; the answers per record id."""
    results: dict[str, PushResult] = {}
    for start in range(0, len(records), client.max_batch):
        results.update(client.push_batch(records[start : start + client.max_batch]))
    return results


def max_in_any_second(times: list[float]) -> int:
    """The most requests in any closed 1-s window (stricter than the sandbox's own half-open)."""
    times = sorted(times)
    return max((sum(1 for u in times[i:] if u <= t + 1.0) for i, t in enumerate(times)), default=0)


def test_each_batch_of_at_most_100_is_one_request(sandbox: SandboxServer) -> None:
    records = [contact(n) for n in range(250)]
    with make_client(sandbox) as client:
        results = push_in_batches(client, records)
        stats = client.stats.as_dict()
    log = sandbox.ometria.request_log()
    assert [entry["count"] for entry in log] == [100, 100, 50]
    assert {entry["status"] for entry in log} == {200}
    assert set(results) == {f"og-{n}" for n in range(250)}
    batches = set(results.values())  # a batch's records share its answer
    assert sorted(r.accepted for r in batches) == [50, 100, 100]
    assert all(r.rejected == 0 and r.request_id for r in batches)
    assert len({r.request_id for r in batches}) == 3
    assert set(sandbox.ometria.snapshot()["contacts"]) == {f"og-{n}" for n in range(250)}
    assert stats == {
        "requests": 3,
        "batches": 3,
        "records": 250,
        "retries": 0,
        "rejected": 0,
        "throttled": 0,
    }


def test_smaller_max_batch(sandbox: SandboxServer) -> None:
    with make_client(sandbox, max_batch=40) as client:
        with pytest.raises(ValueError, match="at most 40"):
            client.push_batch([contact(n) for n in range(41)])
        push_in_batches(client, [contact(n) for n in range(90)])
    assert [entry["count"] for entry in sandbox.ometria.request_log()] == [40, 40, 10]


def test_mixed_and_wrong_types_are_refused_before_sending(sandbox: SandboxServer) -> None:
    event = {"@type": "custom_event", "id": "og-e1", "event_type": "Ordergroove_order_reminder"}
    with make_client(sandbox) as client:
        with pytest.raises(ValueError, match="one @type"):
            client.push([contact(1), event])
        with pytest.raises(ValueError, match="custom_event"):
            client.push_batch([contact(1), event])
        with pytest.raises(ValueError, match="at most 100"):
            client.push([contact(n) for n in range(101)])
        assert client.stats.requests == 0
    assert sandbox.ometria.request_log() == []


def test_rate_limit_holds_across_threads_with_no_429(sandbox: SandboxServer) -> None:
    # Four threads share one client: 40 requests that, unthrottled, would take a few ms.
    with make_client(sandbox, requests_per_second=8.0) as client:

        def worker(offset: int) -> None:
            for batch in range(10):
                client.push([contact(offset + batch * 5 + i) for i in range(5)])

        threads = [threading.Thread(target=worker, args=(k * 1000,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = client.stats.as_dict()
    log = sandbox.ometria.request_log()
    assert len(log) == 40
    assert {entry["status"] for entry in log} == {200}
    assert max_in_any_second([entry["monotonic"] for entry in log]) <= 8
    assert stats["throttled"] == 0 and stats["retries"] == 0 and stats["batches"] == 40
    assert len(sandbox.ometria.snapshot()["contacts"]) == 200


def test_a_429_burst_still_completes_and_retries_pass_the_limiter(
    sandbox: SandboxServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox.set_faults("ometria", FaultSpec(burst=(429, 4)))  # each with Retry-After: 1
    records = [contact(n) for n in range(300)]
    with (
        caplog.at_level(logging.DEBUG, logger="og_pipeline.ometria"),
        make_client(sandbox) as client,
    ):
        slots: list[int] = []
        acquire = client.limiter.acquire

        def counting_acquire() -> float:
            slots.append(1)
            return acquire()

        monkeypatch.setattr(client.limiter, "acquire", counting_acquire)
        results = push_in_batches(client, records)
        stats = client.stats.as_dict()
    acquired = len(slots)
    assert set(results) == {f"og-{n}" for n in range(300)}
    assert all(r.rejected == 0 for r in results.values())
    assert len(sandbox.ometria.snapshot()["contacts"]) == 300
    assert stats["throttled"] == 4 and stats["retries"] == 4
    assert stats["requests"] == 3 + 4 == acquired  # every attempt, retries too, took a slot
    retry_logs = [r.getMessage() for r in caplog.records if "retry" in r.getMessage()]
    assert len(retry_logs) == 4 and all("status 429" in m for m in retry_logs)
    assert not any(OMETRIA_KEY in m or "@example.com" in m for m in caplog.messages)


def test_a_429_storm_from_the_account_limit_still_completes(sandbox: SandboxServer) -> None:
    # A client configured far above the account's 8/s: the sandbox throttles, the client waits
    # out Retry-After and gets every batch through.
    with make_client(sandbox, requests_per_second=100.0, max_batch=10) as client:
        push_in_batches(client, [contact(n) for n in range(200)])
        stats = client.stats.as_dict()
    log = sandbox.ometria.request_log()
    assert stats["throttled"] > 0 and stats["throttled"] == stats["retries"]
    assert sum(1 for entry in log if entry["status"] == 429) == stats["throttled"]
    assert sum(entry["accepted"] for entry in log if entry["status"] == 200) == 200
    assert len(sandbox.ometria.snapshot()["contacts"]) == 200


def test_5xx_and_timeouts_are_retried(sandbox: SandboxServer) -> None:
    sandbox.set_faults(
        "ometria",
        FaultSpec(rate=0.25, statuses=(500, 502, 503), slow_rate=0.2, slow_seconds=1.0, seed=11),
    )
    with make_client(sandbox, max_batch=20, read_timeout=0.25) as client:
        results = push_in_batches(client, [contact(n) for n in range(200)])
        stats = client.stats.as_dict()
    assert len(results) == 200 and len({r.request_id for r in results.values()}) == 10
    assert len(sandbox.ometria.snapshot()["contacts"]) == 200
    assert stats["retries"] > 0 and stats["requests"] == 10 + stats["retries"]


def test_exhausted_retries_name_the_attempts(sandbox: SandboxServer) -> None:
    sandbox.set_faults("ometria", FaultSpec(burst=(503, 10)))
    with (
        make_client(sandbox, max_retries=2) as client,
        pytest.raises(OmetriaAPIError, match="after 3 attempts") as info,
    ):
        client.push([contact(1)])
    assert info.value.status == 503
    assert OMETRIA_KEY not in str(info.value)


def test_other_client_errors_are_not_retried(sandbox: SandboxServer) -> None:
    with make_client(sandbox) as client, pytest.raises(OmetriaAPIError) as info:
        client.push([{"@type": "shoe", "id": "og-1", "email": "someone@example.com"}])
    assert info.value.status == 400
    assert client.stats.requests == 1 and client.stats.retries == 0
    assert "example.com" not in str(info.value)


@pytest.mark.parametrize("call", ["push", "errors"])
def test_wrong_key_names_the_variable_never_the_key(sandbox: SandboxServer, call: str) -> None:
    wrong = "wrong-ometria-key-0123456789"
    with make_client(sandbox, key=wrong) as client, pytest.raises(OmetriaAuthError) as info:
        client.push([contact(1)]) if call == "push" else client.errors()
    message = str(info.value)
    assert info.value.status == 401
    assert "OMETRIA_API_KEY" in message
    assert wrong not in message and wrong not in repr(info.value)
    assert "person1@example.com" not in message


def test_errors_lists_async_validation_errors(sandbox: SandboxServer) -> None:
    record = {**contact(1), "properties": {"no_such_field": 1}}
    with make_client(sandbox) as client:
        result = client.push([record])
        errors = client.errors()
    assert result.accepted == 1
    assert any("no_such_field" in e["error_message"] for e in errors)
