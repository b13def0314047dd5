"""Poison custom events: one webhook event that cannot become a custom event never holds up the
others, and one that was never sent in time ends `expired`, counted and checked.

The webhook events are staged as the webhook step leaves them (processed), so each case reaches
the custom-events step whatever the webhook step makes of it.
"""

from __future__ import annotations

import json
from typing import Any

import dagster as dg

from og_pipeline.sandbox import WebhookSender
from og_pipeline_tests.pipeline.conftest import Pipeline, check_evaluations, metadata

Envelope = dict[str, Any]


def _sender(pipeline: Pipeline) -> WebhookSender:
    return WebhookSender(pipeline.sandbox.merchant, "http://127.0.0.1:9/unused", ["unused"], seed=8)


def _processed(pipeline: Pipeline, envelope: Envelope, *, processed_ago: str = "1 minute") -> None:
    # Infinity goes in as the JSON number 1e400, as Ordergroove could send it (jsonb keeps it as
    # a 401-digit integer).
    text = json.dumps(envelope).replace("Infinity", "1e400")
    pipeline.query_commit(
        "INSERT INTO og.webhook_events "
        "(event_id, event_type, og_created_at, status, attempts, processed_at, body, payload) "
        "VALUES (%s, %s, now() - interval '1 hour', 'processed', 1, now() - %s::interval, %s, "
        "%s::jsonb)",
        envelope["id"],
        envelope["type"],
        processed_ago,
        text.encode(),
        text,
    )


def test_poison_events_do_not_block_custom_events_and_expired_ones_are_counted(
    pipeline: Pipeline,
) -> None:
    merchant, sender = pipeline.sandbox.merchant, _sender(pipeline)
    subs = merchant.subscription_ids(live=True)
    far_future = sender.event_for("subscription.create", subscription_id=subs[0])
    far_future["created"] = 1e20
    endless = sender.event_for("subscription.create", subscription_id=subs[1])
    endless["data"]["object"]["every"] = float("inf")
    customer_list = sender.event_for("subscription.create", subscription_id=subs[2])
    customer_list["snapshot"]["customer"] = [customer_list["snapshot"]["customer"]]
    oversized = sender.event_for("subscription.cancel", subscription_id=subs[3])
    oversized["data"]["object"]["cancel_reason"] = (
        "4|" + "overstocked " * 6000
    )  # over Ometria's 60 KiB
    good = [sender.event_for("subscription.create", subscription_id=s) for s in subs[4:6]]
    stale = sender.event_for("subscription.create", subscription_id=subs[6])
    for envelope in (far_future, endless, customer_list, oversized, *good):  # the poison ones first
        _processed(pipeline, envelope)
    _processed(pipeline, stale, processed_ago="4 days")

    result = pipeline.process_webhooks()

    assert result.success
    sent = pipeline.sandbox.ometria.snapshot()["events"]
    readable = (far_future, endless, customer_list, *good)
    assert set(sent) == {f"og-{e['id']}" for e in readable}
    # What could be read of each is sent: a time of now (as if it had none), the e-mail looked up.
    assert sent[f"og-{far_future['id']}"]["timestamp"] >= "2026"
    assert (
        sent[f"og-{customer_list['id']}"]["identity_email"]
        == (merchant.ground_truth()[customer_list["data"]["object"]["customer"]]["email"])
    )
    outcomes = {
        event_id: (outcome, error)
        for event_id, outcome, error in pipeline.query(
            "SELECT webhook_event_id, outcome, last_error FROM og.ometria_events"
        )
    }
    assert outcomes[stale["id"]][0] == "expired"
    outcome, error = outcomes[oversized["id"]]
    assert outcome == "failed" and "bytes" in error and "overstocked" not in error
    assert {o for o, _ in outcomes.values()} == {"accepted", "failed", "expired"}
    meta = metadata(result, "ometria_custom_events")
    assert (meta["events_accepted"], meta["events_failed"], meta["events_expired"]) == (5, 1, 1)
    check = check_evaluations(result)["no_expired_or_failed_custom_events"]
    assert check.passed is False and check.severity == dg.AssetCheckSeverity.WARN

    # Marked once: the next run sends nothing, re-marks nothing, and its check passes.
    again = pipeline.process_webhooks()
    assert again.success
    assert pipeline.sandbox.ometria.snapshot()["event_push_counts"] == {
        f"og-{e['id']}": 1 for e in readable
    }
    meta = metadata(again, "ometria_custom_events")
    assert (meta["events_due"], meta["events_failed"], meta["events_expired"]) == (0, 0, 0)
    assert check_evaluations(again)["no_expired_or_failed_custom_events"].passed is True
