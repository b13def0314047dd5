"""The webhook sensor's batches: first events, nothing new, an event that commits late, and a
batch whose run died (claimed again at once) beside one whose run lives (left alone)."""

from __future__ import annotations

import json

import dagster as dg
import pytest
from dagster._core.storage.dagster_run import DagsterRun
from dagster._core.utils import make_new_run_id

from og_pipeline.db.connection import connect
from og_pipeline.jobs import webhook_events_sensor
from og_pipeline.pools import ORDERGROOVE_POOL, hold_run_liveness
from og_pipeline.resources import PostgresResource
from og_pipeline.sandbox import WebhookSender
from og_pipeline.webhooks.batches import claim_batch, start_batch
from og_pipeline.webhooks.staging import store_event
from og_pipeline_tests.pipeline.conftest import Pipeline


@pytest.fixture
def tick(pipeline: Pipeline):
    def evaluate() -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=pipeline.instance,
            resources={"postgres": PostgresResource(database_url=pipeline.db_url)},
        )
        return webhook_events_sensor(context)

    return evaluate


def _envelope(pipeline: Pipeline, n: int) -> dict:
    merchant = pipeline.sandbox.merchant
    sender = WebhookSender(merchant, "http://127.0.0.1:9/unused", ["unused"], seed=n)
    return sender.event_for("subscription.create", subscription_id=merchant.subscription_ids()[n])


def _batch_ids(result: dg.SensorResult) -> list[int]:
    return [
        r.run_config["ops"]["ordergroove_webhook_events"]["config"]["batch_id"]
        for r in result.run_requests
    ]


def test_first_events_become_one_batch_run(pipeline: Pipeline, tick) -> None:
    pipeline.stage(_envelope(pipeline, 0))
    pipeline.stage(_envelope(pipeline, 1))
    result = tick()
    assert len(result.run_requests) == 1
    (batch,) = _batch_ids(result)
    assert result.run_requests[0].run_key == f"webhook-batch-{batch}"
    assert pipeline.query("SELECT count(*) FROM og.webhook_events WHERE batch_id = %s", batch) == [
        (2,)
    ]


def test_nothing_new_skips_and_an_unfinished_batch_is_offered_again_under_its_key(
    pipeline: Pipeline, tick
) -> None:
    assert tick().skip_reason.skip_message == "no new webhook events"
    pipeline.stage(_envelope(pipeline, 0))
    first = tick()
    again = tick()  # the batch's run has not processed it yet: same key, which Dagster dedupes
    assert [r.run_key for r in again.run_requests] == [r.run_key for r in first.run_requests]
    assert pipeline.process_webhooks(batch_id=_batch_ids(first)[0]).success
    assert tick().skip_reason.skip_message == "no new webhook events"


def test_an_event_that_commits_late_is_taken_by_a_later_tick(pipeline: Pipeline, tick) -> None:
    late = _envelope(pipeline, 1)
    with connect(pipeline.db_url) as slow:
        # The receiver's transaction for `late` is open: it has its sequence number already.
        slow.execute("SELECT 1")  # opens the transaction the event is stored in, uncommitted
        store_event(slow, json.dumps(late).encode())
        pipeline.stage(_envelope(pipeline, 2))  # commits first, with a higher sequence number
        first = tick()
        assert len(_batch_ids(first)) == 1
        slow.commit()
    second = tick()
    new_batches = set(_batch_ids(second)) - set(_batch_ids(first))
    assert len(new_batches) == 1
    (batch,) = new_batches
    assert pipeline.query("SELECT event_id FROM og.webhook_events WHERE batch_id = %s", batch) == [
        (late["id"],)
    ]


def _batch_of(pipeline: Pipeline, event_id: str) -> int:
    return pipeline.query("SELECT batch_id FROM og.webhook_events WHERE event_id = %s", event_id)[
        0
    ][0]


def test_a_batch_whose_run_died_is_claimed_again_at_once_and_a_live_one_is_not(
    pipeline: Pipeline, tick
) -> None:
    dying, living = _envelope(pipeline, 0), _envelope(pipeline, 1)
    pipeline.stage(dying)
    dead_batch = _batch_ids(tick())[0]
    pipeline.stage(living)
    live_batch = (set(_batch_ids(tick())) - {dead_batch}).pop()
    run_that_dies = connect(pipeline.db_url)
    start_batch(run_that_dies, dead_batch)
    with connect(pipeline.db_url) as run_that_lives:
        start_batch(run_that_lives, live_batch)
        with connect(pipeline.db_url) as conn:
            assert claim_batch(conn) is None  # both runs hold their batches

        run_that_dies.close()  # a SIGKILL closes the session just the same
        with connect(pipeline.db_url) as conn:
            reclaimed = claim_batch(conn)

        assert reclaimed is not None and reclaimed not in (dead_batch, live_batch)
        assert _batch_of(pipeline, dying["id"]) == reclaimed
        assert _batch_of(pipeline, living["id"]) == live_batch


def test_a_claimed_batch_no_run_started_waits_its_stale_delay_before_another_claim(
    pipeline: Pipeline, tick
) -> None:
    """A launched run may still be queued: its batch stays its own until STALE_BATCH."""
    event = _envelope(pipeline, 0)
    pipeline.stage(event)
    batch = _batch_ids(tick())[0]
    with connect(pipeline.db_url) as conn:
        assert claim_batch(conn) is None
    pipeline.query_commit(
        "UPDATE og.webhook_batches SET claimed_at = now() - interval '16 minutes' WHERE id = %s",
        batch,
    )
    with connect(pipeline.db_url) as conn:
        again = claim_batch(conn)
    assert again is not None and _batch_of(pipeline, event["id"]) == again


def test_each_tick_frees_the_slot_of_a_command_run_whose_process_died(
    pipeline: Pipeline, tick
) -> None:
    """With the daemon running, a killed `og-pipeline sync` stalls nothing for long: the next
    tick (every 15 s), with or without events, marks its run failed and frees its slot."""
    instance, storage = pipeline.instance, pipeline.instance.event_log_storage
    storage.set_concurrency_slots(ORDERGROOVE_POOL, 1)
    run_id = make_new_run_id()
    with hold_run_liveness(instance, run_id) as tags:  # the command's process, alive
        instance.add_run(
            DagsterRun(job_name="ordergroove_sync", run_id=run_id, tags=tags).with_status(
                dg.DagsterRunStatus.STARTED
            )
        )
        assert storage.claim_concurrency_slot(ORDERGROOVE_POOL, run_id, "walk").is_claimed
        tick()
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED

    # The process is gone (its session with it), without ending its run.
    assert tick().skip_reason.skip_message == "no new webhook events"
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
    assert run_id not in storage.get_concurrency_info(ORDERGROOVE_POOL).active_run_ids
