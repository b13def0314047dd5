"""The hourly sync end to end: sandbox APIs over HTTP, real Postgres, the Dagster job."""

from __future__ import annotations

from datetime import timedelta

import pytest

from og_pipeline.sandbox import FaultSpec
from og_pipeline_tests.pipeline.conftest import (
    NOW,
    START,
    Pipeline,
    expected_fields,
    failure_message,
    metadata,
)


def _assert_ometria_matches_ground_truth(pipeline: Pipeline) -> None:
    truth = pipeline.sandbox.merchant.ground_truth()
    contacts = pipeline.ometria_contacts()
    with_email = {cid: t for cid, t in truth.items() if t["email"]}
    assert set(contacts) == {f"og-{cid}" for cid in with_email}
    for cid, t in with_email.items():
        contact = contacts[f"og-{cid}"]
        assert contact["properties"] == expected_fields(t), cid
        assert contact["customer_id"] == cid and contact["email"] == t["email"]
        assert contact["@collection"] == "ordergroove"
        assert "marketing_optin" not in contact


def test_backfill_with_faults_on_both_apis_converges_and_a_rerun_pushes_nothing(
    pipeline: Pipeline,
) -> None:
    pipeline.sandbox.set_faults("ordergroove", FaultSpec(rate=0.1, seed=3))
    pipeline.sandbox.set_faults(
        "ometria", FaultSpec(rate=0.15, seed=4, statuses=(429, 500, 502, 503))
    )

    result = pipeline.sync(START, NOW)

    assert result.success
    raw = metadata(result, "ordergroove_raw_records")
    assert raw["retries"] > 0
    assert metadata(result, "ometria_contact_fields")["retries"] > 0
    _assert_ometria_matches_ground_truth(pipeline)
    # No e-mail address in any metadata the UI shows (previews included).
    shown = [
        str(v)
        for e in result.get_asset_materialization_events()
        for v in e.step_materialization_data.materialization.metadata.values()
    ]
    assert shown and not any("@" in text for text in shown)

    pipeline.sandbox.clear_faults()
    posts_before = len(pipeline.sandbox.ometria.request_log())
    again = pipeline.sync(START, NOW)
    assert again.success
    assert metadata(again, "ometria_contact_fields")["contacts_pushed"] == 0
    assert metadata(again, "ordergroove_raw_records")["records_inserted"] == 0
    assert len(pipeline.sandbox.ometria.request_log()) == posts_before


TWO_DAYS = START + timedelta(days=2)


@pytest.mark.parametrize("merchant_spec", [{"now": TWO_DAYS}], indirect=True)
def test_a_two_day_window_through_8_percent_faults_and_slow_pages_lands_every_contact(
    pipeline: Pipeline,
) -> None:
    pipeline.sandbox.set_faults(
        "ordergroove",
        FaultSpec(rate=0.08, statuses=(429, 423, 500), slow_rate=0.05, slow_seconds=0.5, seed=8),
    )
    result = pipeline.sync(START, TWO_DAYS)

    assert result.success, failure_message(result)
    assert metadata(result, "ordergroove_raw_records")["retries"] > 0
    _assert_ometria_matches_ground_truth(pipeline)
    posts = len(pipeline.sandbox.ometria.request_log())
    again = pipeline.sync(START, TWO_DAYS)
    assert again.success
    assert metadata(again, "ometria_contact_fields")["contacts_pushed"] == 0
    assert len(pipeline.sandbox.ometria.request_log()) == posts


def test_a_backfill_is_one_run_that_materializes_every_hour(pipeline: Pipeline) -> None:
    result = pipeline.sync(START, START + timedelta(days=1))
    assert result.success
    hours = {m.partition for m in result.asset_materializations_for_node("ordergroove_raw_records")}
    assert len(hours) == 24
    # One walk per object type for the whole range, not one per hour.
    raw = metadata(result, "ordergroove_raw_records")
    assert raw["pages"] < 24 * 4


def test_contacts_without_email_are_reported_and_not_pushed(pipeline: Pipeline) -> None:
    result = pipeline.sync(START, NOW)
    assert result.success
    truth = pipeline.sandbox.merchant.ground_truth()
    without = [cid for cid, t in truth.items() if not t["email"]]
    assert without, "the sandbox merchant should include customers without an e-mail"
    assert metadata(result, "ometria_contact_fields")["contacts_without_email"] == len(without)
    assert not {f"og-{cid}" for cid in without} & set(pipeline.ometria_contacts())


def test_every_push_leaves_an_audit_row_per_contact_without_email_addresses(
    pipeline: Pipeline,
) -> None:
    assert pipeline.sync(START, NOW).success
    pushed = len(pipeline.ometria_contacts())
    rows = pipeline.query(
        "SELECT record_id, outcome, request_id, fields::text FROM og.ometria_push_audit"
    )
    assert len(rows) == pushed
    assert all(outcome == "accepted" and request_id for _, outcome, request_id, _ in rows)
    assert not any("@" in fields for *_, fields in rows)
