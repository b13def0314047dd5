"""Bad keys and hostile APIs: a clear failure or a clean completion, never a half-written push."""

from __future__ import annotations

from datetime import timedelta

from og_pipeline.sandbox import FaultSpec
from og_pipeline_tests.pipeline.conftest import NOW, START, Pipeline, failure_message, metadata


def test_wrong_ordergroove_key_fails_naming_the_variable_and_writes_nothing(
    pipeline: Pipeline,
) -> None:
    pipeline.use_keys(ordergroove="not-the-key")
    result = pipeline.sync(START, START + timedelta(hours=6))
    assert not result.success
    message = failure_message(result)
    assert "ORDERGROOVE_API_KEY" in message and "not-the-key" not in message
    assert pipeline.query("SELECT count(*) FROM og.subscriptions") == [(0,)]
    assert pipeline.ometria_contacts() == {}


def test_key_without_bulk_operations_says_so(pipeline: Pipeline) -> None:
    pipeline.use_keys(ordergroove="sandbox-og-limited-key")
    result = pipeline.sync(START, START + timedelta(hours=6))
    assert not result.success
    assert "Bulk Operations" in failure_message(result)
    assert pipeline.ometria_contacts() == {}


def test_wrong_ometria_key_fails_the_push_and_a_later_run_pushes_everything(
    pipeline: Pipeline,
) -> None:
    pipeline.use_keys(ometria="wrong-ometria-key")
    failed = pipeline.sync(START, NOW)
    assert not failed.success
    message = failure_message(failed)
    assert "OMETRIA_API_KEY" in message and "wrong-ometria-key" not in message
    # Nothing is recorded as accepted, so nothing is lost: the next run pushes every contact.
    assert pipeline.query("SELECT count(*) FROM og.ometria_contacts") == [(0,)]

    pipeline.use_keys(ometria="sandbox-ometria-key")
    fixed = pipeline.sync(START, NOW)
    assert fixed.success
    truth = pipeline.sandbox.merchant.ground_truth()
    assert len(pipeline.ometria_contacts()) == sum(1 for t in truth.values() if t["email"])


def test_ometria_429_storm_completes_cleanly(pipeline: Pipeline) -> None:
    pipeline.sandbox.set_faults("ometria", FaultSpec(burst=(429, 6)))
    result = pipeline.sync(START, NOW)
    assert result.success
    push = metadata(result, "ometria_contact_fields")
    assert push["throttled"] >= 6 and push["contacts_rejected"] == 0
    truth = pipeline.sandbox.merchant.ground_truth()
    assert len(pipeline.ometria_contacts()) == sum(1 for t in truth.values() if t["email"])


def test_ordergroove_5xx_burst_is_retried_to_a_complete_walk(pipeline: Pipeline) -> None:
    pipeline.sandbox.set_faults("ordergroove", FaultSpec(burst=(503, 4)))
    result = pipeline.sync(START, NOW)
    assert result.success
    raw = metadata(result, "ordergroove_raw_records")
    assert raw["retries"] >= 4
    truth = pipeline.sandbox.merchant.ground_truth()
    assert raw["subscriptions_fetched"] == sum(t["total"] for t in truth.values())


def test_push_respects_the_rate_limit_and_batch_rules(pipeline: Pipeline) -> None:
    assert pipeline.sync(START, NOW).success
    log = [r for r in pipeline.sandbox.ometria.request_log() if r["type"] is not None]
    assert len(log) > 8, "enough batches to exercise the limit"
    assert all(r["status"] == 200 for r in log), "no 429 in a clean run"
    assert all(1 <= r["count"] <= 100 and r["type"] == "contact" for r in log)
    # As the sandbox's limiter saw them (its own arrival stamps): never more than 8 in a second.
    times = sorted(r["monotonic"] for r in log)
    busiest = max(sum(1 for t in times if first <= t < first + 1.0) for first in times)
    assert busiest <= 8


def test_rows_the_database_refuses_are_set_aside_and_so_many_block_the_push(
    pipeline: Pipeline,
) -> None:
    # Orders are walked after customers and subscriptions; a constraint refuses every order.
    pipeline.query_commit(
        "ALTER TABLE og.orders ADD CONSTRAINT test_refuses_orders CHECK (false) NOT VALID"
    )
    result = pipeline.sync(START, NOW)
    # Far more than 1% of the window unreadable: the check fails the run before any push.
    assert not result.success
    assert "records_readable" in failure_message(result)
    truth = pipeline.sandbox.merchant.ground_truth()
    stored = pipeline.query("SELECT count(*) FROM og.subscriptions")[0][0]
    assert stored == sum(t["total"] for t in truth.values()) > 0
    assert pipeline.query("SELECT count(*) FROM og.orders") == [(0,)]
    reasons = pipeline.query("SELECT DISTINCT resource, reason FROM og.rejected_records")
    assert reasons == [("orders", "Postgres refused it (CheckViolation)")]
    assert pipeline.ometria_contacts() == {}
