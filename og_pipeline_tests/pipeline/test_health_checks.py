"""The checks that watch what can really go wrong after the stats, each seen failing and passing:
a push backlog, the share of contacts Ometria refused, webhook events left unprocessed, and the
freshness of the hour's records and of the push."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from og_pipeline_tests.pipeline.conftest import NOW, START, Pipeline, check_evaluations


def test_push_backlog_warns_of_contacts_changed_long_ago_and_still_not_accepted(
    pipeline: Pipeline,
) -> None:
    first = pipeline.sync(START, NOW)
    assert first.success and check_evaluations(first)["push_backlog"].passed
    # A contact whose fields changed three hours ago and that no push has taken since (as when the
    # push failed run after run).
    pipeline.query_commit(
        "UPDATE og.contact_stats "
        "SET fields_hash = 'changed', computed_at = now() - interval '3 hours' "
        "WHERE customer_id = "
        "(SELECT min(customer_id) FROM og.contact_stats WHERE email IS NOT NULL)"
    )
    checks = check_evaluations(pipeline.run_job("health_checks"))
    assert not checks["push_backlog"].passed
    assert checks["push_backlog"].metadata["contacts_waiting"].value == 1
    assert checks["push_backlog"].severity == dg.AssetCheckSeverity.WARN


def test_rejected_share_warns_above_its_limit(pipeline: Pipeline) -> None:
    truth = pipeline.sandbox.merchant.ground_truth()
    refused = [f"og-{cid}" for cid, t in sorted(truth.items()) if t["email"]]
    pipeline.sandbox.ometria.reject_ids.update(refused[:1])
    few = pipeline.sync(START, NOW)
    assert (
        few.success and check_evaluations(few)["rejected_contacts_share"].passed
    )  # 1 of ~2,000: under 1%
    pipeline.sandbox.ometria.reject_ids.update(refused[: len(refused) // 20])
    pipeline.query_commit("DELETE FROM og.ometria_contacts")  # everything is pushed again
    many = pipeline.sync(START, NOW)
    share = check_evaluations(many)["rejected_contacts_share"]
    assert not share.passed and share.metadata["share"].value > 0.01


def test_staged_events_left_unprocessed_warn(pipeline: Pipeline) -> None:
    assert check_evaluations(pipeline.run_job("health_checks"))[
        "staged_events_processed_in_time"
    ].passed
    pipeline.query_commit(
        "INSERT INTO og.webhook_events (event_id, event_type, received_at, body, payload) "
        "VALUES ('late-1', 'subscription.create', now() - interval '20 minutes', '{}', '{}')"
    )
    stale = check_evaluations(pipeline.run_job("health_checks"))["staged_events_processed_in_time"]
    assert not stale.passed and stale.metadata["events_waiting"].value == 1


def _freshness(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """Each freshness check's verdict in the run, by the asset it watches."""
    return {
        e.asset_key.to_user_string(): e.passed
        for e in result.get_asset_check_evaluations()
        if e.check_name == "freshness_check"
    }


def test_freshness_warns_until_the_last_closed_hour_is_synced_and_pushed(
    pipeline: Pipeline,
) -> None:
    """Nothing synced: both stale. The last hours synced (as the schedule does): both fresh."""
    # The tests share one Dagster database: forget what earlier tests materialized.
    pipeline.instance.wipe_assets(
        [dg.AssetKey("ordergroove_raw_records"), dg.AssetKey("ometria_contact_fields")]
    )
    assert _freshness(pipeline.run_job("health_checks")) == {
        "ordergroove_raw_records": False,
        "ometria_contact_fields": False,
    }
    # The three hours before the current one: whatever minute it is, they hold the hour the check
    # expects (the one that closed before the last minute 30).
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    assert pipeline.sync(hour - timedelta(hours=3), hour).success

    assert _freshness(pipeline.run_job("health_checks")) == {
        "ordergroove_raw_records": True,
        "ometria_contact_fields": True,
    }
