"""A custom event reaches Ometria at most once, without counting on Ometria to de-duplicate ids:
not after a batch it refused in part, not after a sender died between the push and its record,
and not from two senders at once. A push that failed for good is sent again later."""

from __future__ import annotations

import threading
import time

from og_pipeline.db.connection import connect
from og_pipeline.ometria.client import OmetriaClient
from og_pipeline.ometria.custom_events import Lookups, send_due_events
from og_pipeline.sandbox import FaultSpec
from og_pipeline_tests.pipeline.conftest import Pipeline, metadata
from og_pipeline_tests.pipeline.test_poison_custom_events import _processed, _sender

DEADLINE = 30.0


def _stage(pipeline: Pipeline, count: int) -> list[str]:
    sender = _sender(pipeline)
    envelopes = [
        sender.event_for("subscription.create", subscription_id=s)
        for s in pipeline.sandbox.merchant.subscription_ids(live=True)[:count]
    ]
    for envelope in envelopes:
        _processed(pipeline, envelope)
    return [f"og-{e['id']}" for e in envelopes]


def _outcomes(pipeline: Pipeline) -> dict[str, str]:
    return dict(pipeline.query("SELECT event_id, outcome FROM og.ometria_events"))


def test_a_batch_ometria_refused_in_part_is_not_sent_again_record_by_record(
    pipeline: Pipeline,
) -> None:
    ids = _stage(pipeline, 5)
    pipeline.sandbox.ometria.reject_ids.add(ids[2])

    first = pipeline.process_webhooks()
    again = pipeline.process_webhooks()

    assert first.success and again.success
    counts = pipeline.sandbox.ometria.event_push_counts
    # Each accepted one reached Ometria exactly once (the sandbox counts what it stored; the
    # refused one it did not store).
    assert {i: counts.get(i, 0) for i in ids} == {i: 0 if i == ids[2] else 1 for i in ids}
    pushes = [
        r["count"] for r in pipeline.sandbox.ometria.request_log() if r["type"] == "custom_event"
    ]
    assert pushes == [5], "one push of the batch, no record-by-record re-send"
    assert _outcomes(pipeline) == dict.fromkeys(ids, "unconfirmed")
    assert metadata(first, "ometria_custom_events")["events_unconfirmed"] == 5
    assert metadata(again, "ometria_custom_events")["events_due"] == 0


def test_events_a_dead_sender_left_sending_are_never_sent_again(pipeline: Pipeline) -> None:
    ids = _stage(pipeline, 3)
    # What a sender killed between its push and its record leaves behind.
    pipeline.query_commit(
        "INSERT INTO og.ometria_events "
        "(event_id, webhook_event_id, event_type, properties, outcome) "
        "SELECT %s, substr(%s, 4), 'Ordergroove_subscription_event', '{}', 'sending'",
        ids[0],
        ids[0],
    )

    result = pipeline.process_webhooks()

    assert result.success
    assert ids[0] not in pipeline.sandbox.ometria.event_push_counts
    assert _outcomes(pipeline) == {ids[0]: "unconfirmed", ids[1]: "accepted", ids[2]: "accepted"}
    assert metadata(result, "ometria_custom_events")["events_unconfirmed"] == 1


def test_a_push_that_failed_for_good_is_taken_back_and_sent_later(pipeline: Pipeline) -> None:
    ids = _stage(pipeline, 2)
    pipeline.sandbox.set_faults("ometria", FaultSpec(rate=1.0, statuses=(400,), seed=1))
    assert not pipeline.process_webhooks().success
    assert _outcomes(pipeline) == {}

    pipeline.sandbox.clear_faults()
    assert pipeline.process_webhooks().success
    assert _outcomes(pipeline) == dict.fromkeys(ids, "accepted")
    assert {i: pipeline.sandbox.ometria.event_push_counts[i] for i in ids} == dict.fromkeys(ids, 1)


def test_one_sender_at_a_time_whatever_the_pool_allows(pipeline: Pipeline) -> None:
    ids = _stage(pipeline, 2)
    with connect(pipeline.db_url) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (0x06_0E_C5_E7,))  # a sender at work
        holder.commit()
        done = threading.Event()

        def send() -> None:
            with (
                connect(pipeline.db_url) as conn,
                OmetriaClient(pipeline.sandbox.ometria_url, "sandbox-ometria-key") as client,
            ):
                send_due_events(conn, client, Lookups(conn))
            done.set()

        worker = threading.Thread(target=send, daemon=True)
        worker.start()
        deadline = time.monotonic() + DEADLINE
        while not _waits_on_advisory_lock(pipeline) and time.monotonic() < deadline:
            time.sleep(0.05)  # polling pg_stat_activity, with a deadline
        assert _waits_on_advisory_lock(pipeline), "the second sender did not wait for the first"
        assert not done.is_set() and pipeline.sandbox.ometria.event_push_counts == {}
        holder.execute("SELECT pg_advisory_unlock(%s)", (0x06_0E_C5_E7,))
        holder.commit()
        assert done.wait(DEADLINE)
    assert _outcomes(pipeline) == dict.fromkeys(ids, "accepted")


def _waits_on_advisory_lock(pipeline: Pipeline) -> bool:
    return bool(
        pipeline.query(
            "SELECT 1 FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND wait_event = 'advisory' "
            "AND datname = current_database()"
        )
    )
