"""Webhook events through the processing job: state, contact fields and custom events."""

from __future__ import annotations

import json
from datetime import timedelta

from og_pipeline.sandbox import WebhookSender
from og_pipeline_tests.pipeline.conftest import NOW, START, Pipeline, expected_fields, metadata


def _sender(pipeline: Pipeline) -> WebhookSender:
    # Envelopes only: these tests stage them directly, as the receiver would have committed them.
    return WebhookSender(pipeline.sandbox.merchant, "http://127.0.0.1:9/unused", ["unused"], seed=3)


def _customer_with_email(pipeline: Pipeline) -> str:
    truth = pipeline.sandbox.merchant.ground_truth()
    return next(cid for cid, t in sorted(truth.items()) if t["email"] and t["active"] >= 1)


def _events(pipeline: Pipeline) -> dict[str, dict]:
    return pipeline.sandbox.ometria.snapshot()["events"]


def test_cancel_delivered_before_create_ends_cancelled_with_both_events(pipeline: Pipeline) -> None:
    assert pipeline.sync(START, NOW).success
    merchant, sender = pipeline.sandbox.merchant, _sender(pipeline)
    customer = _customer_with_email(pipeline)
    product = merchant.product_ids()[0]
    sub = merchant.create_subscription(customer, product, at=NOW + timedelta(minutes=1))
    create = sender.event_for("subscription.create", subscription_id=sub)
    merchant.cancel_subscription(sub, at=NOW + timedelta(minutes=2), reason="4|Overstocked")
    cancel = sender.event_for("subscription.cancel", subscription_id=sub)

    pipeline.stage(cancel)
    pipeline.stage(create)
    result = pipeline.process_webhooks()

    assert result.success
    assert pipeline.query("SELECT live FROM og.subscriptions WHERE public_id = %s", sub) == [
        (False,)
    ]
    assert pipeline.ometria_contacts()[f"og-{customer}"]["properties"] == expected_fields(
        merchant.ground_truth()[customer]
    )
    events = _events(pipeline)
    created, cancelled = events[f"og-{create['id']}"], events[f"og-{cancel['id']}"]
    assert created["event_type"] == cancelled["event_type"] == "Ordergroove_subscription_event"
    assert created["properties"]["subscription_event"] == "created"
    assert cancelled["properties"]["subscription_event"] == "cancelled"
    assert cancelled["properties"]["cancellation_reason"] == "Overstocked"
    assert cancelled["properties"]["product_set"] == [product]
    assert cancelled["properties"]["subscription_id"] == sub
    assert cancelled["identity_account_id"] == customer
    assert cancelled["identity_email"] == merchant.ground_truth()[customer]["email"]
    assert cancelled["timestamp"].endswith("+00:00")
    assert metadata(result, "ometria_custom_events")["events_accepted"] == 2


def test_order_reminder_sends_the_order_total_as_a_whole_number(pipeline: Pipeline) -> None:
    assert pipeline.sync(START, NOW).success
    merchant, sender = pipeline.sandbox.merchant, _sender(pipeline)
    sub = next(s for s in merchant.subscription_ids(live=True) if merchant.upcoming_order_id(s))
    order = merchant.upcoming_order_id(sub)
    envelope = sender.event_for("order.reminder", order_id=order, created=int(NOW.timestamp()))
    pipeline.stage(envelope)
    assert pipeline.process_webhooks().success
    event = _events(pipeline)[f"og-{envelope['id']}"]
    assert event["event_type"] == "Ordergroove_order_reminder"
    total = float(merchant.order(order)["total"])
    assert event["properties"] == {
        "order_id": order,
        "product_set": [merchant.subscription(sub)["product"]],
        "total_value": int(total + 0.5),
    }


def test_reprocessing_and_a_crash_before_recording_never_send_a_second_event_id(
    pipeline: Pipeline,
) -> None:
    merchant, sender = pipeline.sandbox.merchant, _sender(pipeline)
    sub = merchant.subscription_ids(live=True)[0]
    merchant.cancel_subscription(sub, at=NOW + timedelta(minutes=1))
    envelope = sender.event_for("subscription.cancel", subscription_id=sub)
    pipeline.stage(envelope)
    assert pipeline.process_webhooks().success
    assert pipeline.process_webhooks().success  # nothing pending: nothing sent
    assert pipeline.sandbox.ometria.snapshot()["event_push_counts"] == {f"og-{envelope['id']}": 1}

    # A crash after Ometria accepted the event but before we recorded it leaves the row as the
    # sender wrote it before pushing: the next run does not send it again (Ometria's de-duplication
    # by id is not documented), it marks it unconfirmed.
    pipeline.query_commit("UPDATE og.ometria_events SET outcome = 'sending', request_id = NULL")
    assert pipeline.process_webhooks().success
    assert pipeline.sandbox.ometria.snapshot()["event_push_counts"] == {f"og-{envelope['id']}": 1}
    assert pipeline.query("SELECT outcome FROM og.ometria_events") == [("unconfirmed",)]


def test_unknown_types_are_kept_and_marked_ignored(pipeline: Pipeline) -> None:
    envelope = _sender(pipeline).event_for(
        "subscription.create", subscription_id=pipeline.sandbox.merchant.subscription_ids()[0]
    )
    envelope["type"] = "loyalty.points_awarded"
    pipeline.stage(envelope)
    result = pipeline.process_webhooks()
    assert result.success
    assert pipeline.query("SELECT status FROM og.webhook_events") == [("ignored",)]
    assert metadata(result, "ordergroove_webhook_events")["events_ignored"] == 1
    assert _events(pipeline) == {}


def test_an_event_that_keeps_failing_is_marked_failed_then_replayed(pipeline: Pipeline) -> None:
    from og_pipeline.db.connection import connect
    from og_pipeline.webhooks.batches import replay

    merchant = pipeline.sandbox.merchant
    envelope = _sender(pipeline).event_for(
        "subscription.cancel", subscription_id=merchant.subscription_ids()[0]
    )
    envelope["data"]["object"]["live"] = "perhaps"  # a value the pipeline cannot read
    envelope.pop("snapshot", None)
    pipeline.stage(envelope)

    result = pipeline.process_webhooks(max_attempts=1)
    assert result.success
    status, attempts, error = pipeline.query(
        "SELECT status, attempts, last_error FROM og.webhook_events"
    )[0]
    assert (status, attempts) == ("failed", 1) and "live" in error
    checks = {
        e.event_specific_data.check_name: e.event_specific_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert checks["no_failed_or_invalid_events"] is False

    # The cause is fixed (here: the stored payload), then the event is replayed.
    pipeline.query_commit(
        "UPDATE og.webhook_events SET payload = jsonb_set(payload, '{data,object,live}', 'false')"
    )
    with connect(pipeline.db_url) as conn:
        assert replay(conn) == (1, 0)
    assert pipeline.process_webhooks().success
    assert pipeline.query("SELECT status FROM og.webhook_events") == [("processed",)]


def test_replay_revalidates_invalid_events_and_queues_those_that_now_read(
    pipeline: Pipeline,
) -> None:
    from og_pipeline.db.connection import connect
    from og_pipeline.webhooks.batches import replay

    envelope = _sender(pipeline).event_for(
        "subscription.create", subscription_id=pipeline.sandbox.merchant.subscription_ids()[0]
    )
    body = json.dumps(envelope).encode()
    # Stored invalid earlier (say, by a receiver with a stricter rule than today's).
    pipeline.query_commit(
        "INSERT INTO og.webhook_events (status, last_error, body) "
        "VALUES ('invalid', 'old rule', %s)",
        body,
    )
    pipeline.query_commit(
        "INSERT INTO og.webhook_events (status, last_error, body) "
        "VALUES ('invalid', 'not JSON', %s)",
        b"{oops",
    )
    with connect(pipeline.db_url) as conn:
        assert replay(conn) == (0, 1)
    assert sorted(pipeline.query("SELECT status, event_id FROM og.webhook_events")) == [
        ("invalid", None),
        ("pending", envelope["id"]),
    ]
    assert pipeline.process_webhooks().success
    assert list(pipeline.sandbox.ometria.snapshot()["events"]) == [f"og-{envelope['id']}"]


def test_item_remove_takes_the_line_out_of_the_next_order_date_and_the_product_set(
    pipeline: Pipeline,
) -> None:
    assert pipeline.sync(START, NOW).success
    merchant, sender = pipeline.sandbox.merchant, _sender(pipeline)
    truth = merchant.ground_truth()
    # A customer whose only upcoming order carries the one line of their one live subscription.
    customer, order = next(
        (cid, orders[0])
        for cid, t in sorted(truth.items())
        if t["email"]
        and t["active"] == 1
        and t["next_order_date"]
        and len(
            orders := [
                o
                for (o,) in pipeline.query(
                    "SELECT public_id FROM og.orders WHERE customer_id = %s AND status = 1", cid
                )
            ]
        )
        == 1
    )
    [(item_id,)] = pipeline.query("SELECT public_id FROM og.items WHERE order_id = %s", order)
    assert pipeline.ometria_contacts()[f"og-{customer}"]["properties"][
        "ordergroove_next_order_date"
    ]
    removal = {
        "id": "remove-1",
        "type": "item.remove",
        "created": int((NOW + timedelta(minutes=5)).timestamp()),
        "data": {"object": {**merchant.webhook_object("item", item_id), "type": "item"}},
    }
    pipeline.stage(removal)
    assert pipeline.process_webhooks().success

    assert pipeline.query(
        "SELECT deleted_at IS NOT NULL FROM og.items WHERE public_id = %s", item_id
    ) == [(True,)]
    assert (
        pipeline.ometria_contacts()[f"og-{customer}"]["properties"]["ordergroove_next_order_date"]
        is None
    )
    # A reminder for that order without a snapshot (its lines then come from our tables) names
    # no product of the removed line.
    reminder = sender.event_for(
        "order.reminder", order_id=order, created=int(NOW.timestamp()) + 600, snapshot=False
    )
    pipeline.stage(reminder)
    assert pipeline.process_webhooks().success
    assert _events(pipeline)[f"og-{reminder['id']}"]["properties"]["product_set"] == []


def test_processed_bodies_are_pruned_after_the_retention_and_their_ids_still_deduplicate(
    pipeline: Pipeline,
) -> None:
    from og_pipeline.db.connection import connect
    from og_pipeline.webhooks.staging import store_event

    sender = _sender(pipeline)
    subs = pipeline.sandbox.merchant.subscription_ids()
    old, recent, failed = (
        sender.event_for("subscription.create", subscription_id=s) for s in subs[:3]
    )
    for envelope in (old, recent, failed):
        pipeline.stage(envelope)
    assert pipeline.process_webhooks().success
    pipeline.query_commit(
        "UPDATE og.webhook_events SET processed_at = now() - interval '31 days' "
        "WHERE event_id = %s",
        old["id"],
    )
    pipeline.query_commit(
        "UPDATE og.webhook_events SET status = 'failed', processed_at = now() - interval '31 days' "
        "WHERE event_id = %s",
        failed["id"],
    )

    result = pipeline.process_webhooks()

    assert result.success and metadata(result, "ordergroove_webhook_events")["bodies_pruned"] == 1
    kept = {
        event_id: (len(bytes(body)), payload is not None)
        for event_id, body, payload in pipeline.query(
            "SELECT event_id, body, payload FROM og.webhook_events"
        )
    }
    assert kept[old["id"]] == (0, False)
    assert kept[recent["id"]][0] > 0 and kept[recent["id"]][1]
    assert kept[failed["id"]][0] > 0, "a failed event keeps its body for replay"
    # A late redelivery of the pruned event is still a duplicate.
    with connect(pipeline.db_url) as conn:
        assert store_event(conn, json.dumps(old).encode()).duplicate
