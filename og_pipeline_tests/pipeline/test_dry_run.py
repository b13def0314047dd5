"""A dry run shows what the push would send, by kind of change, and sends nothing: Ometria
receives no request and og-pipeline's push state stays as it was. The real push that follows
sends exactly what the dry run announced."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import dagster as dg

from og_pipeline_tests.pipeline.conftest import NOW, START, Pipeline, metadata

DRY_RUN = {"ops": {"ometria_contact_fields": {"config": {"dry_run": True}}}}


def _push_state(pipeline: Pipeline) -> list[tuple[Any, ...]]:
    return pipeline.query(
        "SELECT (SELECT count(*) FROM og.ometria_contacts), "
        "(SELECT count(*) FROM og.ometria_push_audit), (SELECT count(*) FROM og.ometria_errors)"
    )


def _sample(result: dg.ExecuteInProcessResult) -> list[dict[str, Any]]:
    (event,) = [
        m
        for m in result.asset_materializations_for_node("ometria_contact_fields")
        if "would_push_sample" in m.metadata
    ]
    table = event.metadata["would_push_sample"]
    assert isinstance(table, dg.TableMetadataValue)
    return [record.data for record in table.records]


def test_a_first_dry_run_announces_every_contact_as_new_and_sends_nothing(
    pipeline: Pipeline,
) -> None:
    before = _push_state(pipeline)
    dry = pipeline.sync(START, NOW, run_config=DRY_RUN)
    assert dry.success
    said = metadata(dry, "ometria_contact_fields")
    with_email = sum(1 for t in pipeline.sandbox.merchant.ground_truth().values() if t["email"])
    assert said["dry_run"] is True
    assert said["would_push"] == said["would_push_new_contact"] == with_email
    assert pipeline.ometria_contacts() == {}, "Ometria received nothing"
    assert _push_state(pipeline) == before, "no push state changed"
    sample = _sample(dry)
    assert 0 < len(sample) <= 20
    assert all(row["change"] == "new_contact" for row in sample)
    assert "@" not in repr(sample), "no e-mail address in the preview"

    pushed = pipeline.sync(START, NOW)
    assert metadata(pushed, "ometria_contact_fields")["contacts_pushed"] == with_email


def test_a_dry_run_after_cancellations_names_the_status_and_count_changes(
    pipeline: Pipeline,
) -> None:
    merchant = pipeline.sandbox.merchant
    assert pipeline.sync(START, NOW).success
    live = merchant.subscription_ids(live=True)
    truth = merchant.ground_truth()
    # A customer with an e-mail and exactly one live subscription: cancelling it turns the
    # contact inactive and lowers its active count.
    by_customer: dict[str, list[str]] = {}
    for sid in live:
        by_customer.setdefault(merchant.subscription(sid)["customer"], []).append(sid)
    customer, (sid,) = next(
        (c, subs) for c, subs in sorted(by_customer.items()) if len(subs) == 1 and truth[c]["email"]
    )
    merchant.cancel_subscription(sid, at=NOW - timedelta(minutes=20))
    before = (pipeline.ometria_contacts(), _push_state(pipeline))

    dry = pipeline.sync(NOW - timedelta(hours=1), NOW, run_config=DRY_RUN)

    assert dry.success
    said = metadata(dry, "ometria_contact_fields")
    assert said["would_push"] >= 1
    assert said["would_push_changed_status"] >= 1 and said["would_push_changed_counts"] >= 1
    assert said["would_push_new_contact"] == 0
    (row,) = [r for r in _sample(dry) if r["contact_id"] == f"og-{customer}"]
    assert (row["was_status"], row["status"]) == ("active", "inactive")
    assert row["active"] == row["was_active"] - 1
    assert (pipeline.ometria_contacts(), _push_state(pipeline)) == before

    pushed = pipeline.sync(NOW - timedelta(hours=1), NOW)
    assert metadata(pushed, "ometria_contact_fields")["contacts_pushed"] == said["would_push"]
    fields = pipeline.ometria_contacts()[f"og-{customer}"]["properties"]
    assert fields["ordergroove_subscription_status"] == "inactive"
