"""Poison webhook events: one event that cannot be applied never holds up the others.

Each poison envelope is authentic (it passes the receiver) but carries a value the pipeline
cannot use where it expects another shape. It must end `failed` with a reason that quotes none
of its contents, while the good events around it are applied and their custom events sent.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import dagster as dg
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from og_pipeline.db.connection import connect
from og_pipeline.reasons import safe_reason
from og_pipeline.sandbox import WebhookSender
from og_pipeline.webhooks.batches import batch_events, claim_batch
from og_pipeline.webhooks.staging import store_event
from og_pipeline_tests.pipeline.conftest import Pipeline, metadata

Envelope = dict[str, Any]


def _sender(pipeline: Pipeline) -> WebhookSender:
    return WebhookSender(pipeline.sandbox.merchant, "http://127.0.0.1:9/unused", ["unused"], seed=5)


# Ids are free of personal data by design, and a reason may name the record it is about.
_ID_KEYS = {
    "id",
    "public_id",
    "merchant_user_id",
    "external_product_id",
    "order",
    "subscription",
    "customer",
    "product",
    "type",
    "offer",
}


def _strings(value: Any) -> set[str]:
    """Every string of a JSON value but ids: what a reason must never quote."""
    if isinstance(value, dict):
        return {s for k, v in value.items() if k not in _ID_KEYS for s in _strings(v)}
    if isinstance(value, list):
        return {s for v in value for s in _strings(v)}
    if isinstance(value, str) and len(value) >= 6:
        return {value}
    return set()


def _created_far_future(pipeline: Pipeline, sender: WebhookSender) -> Envelope:
    # An order deletion reads the event's own time, which 1e20 seconds cannot be; without a
    # snapshot no order line borrows it either. The order itself reads fine: it is applied, as
    # if the event had no time (the receiver stores it so), rather than failed.
    sub = next(
        s
        for s in pipeline.sandbox.merchant.subscription_ids(live=True)
        if pipeline.sandbox.merchant.upcoming_order_id(s)
    )
    envelope = sender.event_for(
        "order.delete", order_id=pipeline.sandbox.merchant.upcoming_order_id(sub), snapshot=False
    )
    envelope["created"] = 1e20
    return envelope


def _data_a_string(pipeline: Pipeline, sender: WebhookSender) -> Envelope:
    envelope = sender.event_for(
        "subscription.cancel", subscription_id=pipeline.sandbox.merchant.subscription_ids()[5]
    )
    envelope["data"] = "jane.doe@example.com cancelled"
    return envelope


def _subscriptions_a_number(pipeline: Pipeline, sender: WebhookSender) -> Envelope:
    envelope = sender.event_for(
        "subscription.cancel", subscription_id=pipeline.sandbox.merchant.subscription_ids()[6]
    )
    envelope["snapshot"]["subscriptions"] = 7
    return envelope


def _order_without_status(pipeline: Pipeline, sender: WebhookSender) -> Envelope:
    sub = next(
        s
        for s in pipeline.sandbox.merchant.subscription_ids(live=True)
        if pipeline.sandbox.merchant.upcoming_order_id(s)
    )
    envelope = sender.event_for(
        "order.reminder", order_id=pipeline.sandbox.merchant.upcoming_order_id(sub)
    )
    envelope["data"]["object"].pop("status")
    envelope.pop("snapshot", None)
    return envelope


# The envelope, and how it must end.
POISONS: dict[str, tuple[Callable[[Pipeline, WebhookSender], Envelope], str]] = {
    "created_1e20": (_created_far_future, "processed"),
    "data_a_string": (_data_a_string, "failed"),
    "snapshot_subscriptions_a_number": (_subscriptions_a_number, "failed"),
    "order_without_status": (_order_without_status, "failed"),
}


def _log_text(result: dg.ExecuteInProcessResult) -> str:
    return (
        "\n".join(str(e.message or "") for e in result.all_events)
        + "\n"
        + "\n".join(
            str(e.event_specific_data.error.to_string())
            for e in result.all_events
            if e.event_type_value == "STEP_FAILURE"
        )
    )


@pytest.mark.parametrize("poison", sorted(POISONS))
def test_a_poison_event_fails_alone_and_the_good_ones_go_through(
    pipeline: Pipeline, poison: str
) -> None:
    merchant, sender = pipeline.sandbox.merchant, _sender(pipeline)
    subs = merchant.subscription_ids(live=True)
    good = [
        sender.event_for("subscription.create", subscription_id=subs[0]),
        sender.event_for("subscription.create", subscription_id=subs[1]),
    ]
    make, expected = POISONS[poison]
    bad = make(pipeline, sender)
    for envelope in (good[0], bad, good[1]):
        pipeline.stage(envelope)

    result = pipeline.process_webhooks(max_attempts=1)

    assert result.success
    statuses = dict(pipeline.query("SELECT event_id, status FROM og.webhook_events"))
    assert statuses == {good[0]["id"]: "processed", good[1]["id"]: "processed", bad["id"]: expected}
    sent = pipeline.sandbox.ometria.snapshot()["events"]
    assert {f"og-{g['id']}" for g in good} <= set(sent)
    if expected == "processed":
        assert pipeline.query("SELECT count(*) FROM og.orders WHERE deleted_at IS NOT NULL") == [
            (1,)
        ]
        return
    [(attempts, error)] = pipeline.query(
        "SELECT attempts, last_error FROM og.webhook_events WHERE event_id = %s", bad["id"]
    )
    assert attempts == 1 and error
    forbidden = _strings(bad)
    assert "Failing row" not in error and "@" not in error
    assert not [s for s in forbidden if s in error]
    log = _log_text(result)
    assert "Failing row" not in log
    assert not [s for s in forbidden if s in log]
    assert f"og-{bad['id']}" not in sent
    assert metadata(result, "ordergroove_webhook_events")["events_failed_now"] == 1


def test_a_poison_event_is_retried_then_failed_without_holding_back_later_events(
    pipeline: Pipeline,
) -> None:
    sender = _sender(pipeline)
    bad = _subscriptions_a_number(pipeline, sender)
    pipeline.stage(bad)
    assert pipeline.process_webhooks(max_attempts=2).success
    assert pipeline.query("SELECT status, attempts FROM og.webhook_events") == [("pending", 1)]
    # Back off over: due again now.
    pipeline.query_commit("UPDATE og.webhook_events SET next_attempt_at = now()")
    later = sender.event_for(
        "subscription.create", subscription_id=pipeline.sandbox.merchant.subscription_ids()[2]
    )
    pipeline.stage(later)
    assert pipeline.process_webhooks(max_attempts=2).success
    assert dict(pipeline.query("SELECT event_id, status FROM og.webhook_events")) == {
        bad["id"]: "failed",
        later["id"]: "processed",
    }
    assert list(pipeline.sandbox.ometria.snapshot()["events"]) == [f"og-{later['id']}"]


# Any JSON value, the awkward numbers included: 1e20 (past year 9999), infinity (staged as the
# JSON number 1e400, which jsonb keeps and Python reads back as inf), negative times.
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
    | st.sampled_from([1e20, float("inf"), -1e20, 0, -1, "", "1e20", []]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_DELETE = object()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in an envelope a value sits (the envelope itself excluded)."""
    children: list[tuple[Any, Any]] = (
        list(value.items())
        if isinstance(value, dict)
        else list(enumerate(value))
        if isinstance(value, list)
        else []
    )
    return [p for key, child in children for p in [(*prefix, key), *_paths(child, (*prefix, key))]]


def _put(envelope: Envelope, path: tuple[Any, ...], value: Any) -> None:
    *parents, last = path
    target: Any = envelope
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_json_value_in_any_field_ends_the_event_and_never_the_batch(
    pipeline: Pipeline, data: st.DataObject
) -> None:
    from og_pipeline.webhooks.assets import process_events

    merchant = pipeline.sandbox.merchant
    sender = WebhookSender(
        merchant,
        "http://127.0.0.1:9/unused",
        ["unused"],
        seed=data.draw(st.integers(0, 2**32)),
        snapshot=data.draw(st.sampled_from(["top", "data"])),
    )
    sub = merchant.subscription_ids(live=True)[data.draw(st.integers(0, 20))]
    kind = data.draw(
        st.sampled_from(
            [
                "subscription.create",
                "subscription.cancel",
                "order.reminder",
                "order.delete",
                "customer.update",
                "item.remove",
            ]
        )
    )
    if kind.startswith("order."):
        envelope = sender.event_for(
            kind,
            order_id=merchant.upcoming_order_id(sub)
            or merchant.upcoming_order_id(
                next(
                    s for s in merchant.subscription_ids(live=True) if merchant.upcoming_order_id(s)
                )
            ),
        )
    elif kind.startswith("customer."):
        envelope = sender.event_for(kind, customer_id=merchant.subscription(sub)["customer"])
    else:
        envelope = sender.event_for(kind, subscription_id=sub)
    envelope["id"] = (
        uuid.uuid4().hex
    )  # hypothesis repeats seeds; each example is an event of its own
    for _ in range(data.draw(st.integers(1, 2))):
        paths = _paths(envelope)
        # Most draws near the top (envelope, data, object, snapshot), where the shapes are read.
        path = data.draw(
            st.sampled_from([p for p in paths if len(p) <= 2])
            | st.sampled_from([p for p in paths if len(p) <= 3])
            | st.sampled_from(paths)
        )
        _put(envelope, path, data.draw(_JSON | st.just(_DELETE)))
    body = json.dumps(envelope).replace("Infinity", "1e400").encode()

    with connect(pipeline.db_url) as conn:
        seq = store_event(conn, body).seq
        conn.commit()
        batch = claim_batch(conn)
        process_events(
            conn, batch_events(conn, batch) if batch else [], "America/Chicago", max_attempts=2
        )
        conn.commit()
        if seq is None:  # the draw repeated an earlier event's id: that one stands
            return
        [(status, attempts, error, retry_at)] = conn.execute(
            "SELECT status, attempts, last_error, next_attempt_at FROM og.webhook_events "
            "WHERE seq = %s",
            (seq,),
        ).fetchall()
    assert status in {"processed", "ignored", "failed", "invalid", "pending"}
    if status == "pending":  # back in the pool for its second attempt, with its reason
        assert attempts == 1 and error and retry_at is not None
    if status in {"failed", "pending"}:
        assert "Failing row" not in error and "DETAIL" not in error


def test_reasons_name_the_error_never_the_values(db_url: str) -> None:
    with connect(db_url) as conn:
        conn.execute("CREATE TEMP TABLE t (email text, status integer NOT NULL)")
        with pytest.raises(psycopg.errors.NotNullViolation) as null:
            conn.execute("INSERT INTO t VALUES ('jane.doe@example.com', NULL)")
        assert "jane.doe@example.com" in str(null.value)  # psycopg's own text quotes the row
        conn.rollback()
        with pytest.raises(psycopg.DataError) as bad:
            conn.execute("SELECT 'secret-value-42'::integer")
        conn.rollback()
    reason = safe_reason(null.value)
    assert reason.startswith("NotNullViolation: SQLSTATE 23502") and "column status" in reason
    assert "jane" not in reason and "Failing row" not in reason
    assert "secret-value-42" not in safe_reason(bad.value)
    try:
        int("jane.doe@example.com")
    except ValueError as exc:
        reason = safe_reason(exc)
    assert reason.startswith("ValueError: raised") and "jane" not in reason
