"""The contact push keeps several requests on the wire (a remote round trip would otherwise hold
it under Ometria's 8/s), records every batch in order, and when one batch fails, records the
others Ometria accepted before raising: nothing accepted goes unrecorded."""

from __future__ import annotations

from og_pipeline.sandbox import FaultSpec
from og_pipeline_tests.pipeline.conftest import NOW, START, Pipeline, expected_fields, metadata


def _recorded(pipeline: Pipeline) -> set[str]:
    rows = pipeline.query("SELECT contact_id FROM og.ometria_contacts WHERE fields IS NOT NULL")
    return {contact_id for (contact_id,) in rows}


def test_pushes_overlap_and_every_contact_is_recorded_once(pipeline: Pipeline) -> None:
    # Each answer takes 0.3 s, as a remote API's may.
    pipeline.sandbox.state.faults["ometria"].set(FaultSpec(slow_rate=1.0, slow_seconds=0.3))
    result = pipeline.sync(START, NOW)
    assert result.success
    assert pipeline.sandbox.state.most_pushes_in_flight >= 2
    truth = pipeline.sandbox.merchant.ground_truth()
    contacts = pipeline.ometria_contacts()
    with_email = {f"og-{cid}": t for cid, t in truth.items() if t["email"]}
    assert set(contacts) == set(with_email) == _recorded(pipeline)
    assert all(contacts[c]["properties"] == expected_fields(t) for c, t in with_email.items())
    audit = pipeline.query(
        "SELECT count(*), count(DISTINCT record_id) FROM og.ometria_push_audit "
        "WHERE record_type = 'contact'"
    )
    assert audit == [(len(with_email), len(with_email))]
    assert metadata(result, "ometria_contact_fields")["contacts_pushed"] == len(with_email)


def test_a_failing_batch_leaves_every_batch_ometria_accepted_recorded(pipeline: Pipeline) -> None:
    # A share of pushes refused for good (400: not retried), the others slow enough to overlap.
    pipeline.sandbox.state.faults["ometria"].set(
        FaultSpec(rate=0.2, statuses=(400,), slow_rate=1.0, slow_seconds=0.2, seed=3)
    )
    assert not pipeline.sync(START, NOW).success
    accepted = set(pipeline.ometria_contacts())
    assert accepted, "some batches went through before the failure"
    assert _recorded(pipeline) == accepted
