"""What Ometria refuses is recorded against the contact, reported, and not silently dropped."""

from __future__ import annotations

from og_pipeline_tests.pipeline.conftest import NOW, START, Pipeline, metadata


def test_a_refused_contact_is_recorded_and_not_resent_until_it_changes(pipeline: Pipeline) -> None:
    truth = pipeline.sandbox.merchant.ground_truth()
    refused = next(cid for cid, t in sorted(truth.items()) if t["email"])
    pipeline.sandbox.ometria.reject_ids.add(f"og-{refused}")

    first = pipeline.sync(START, NOW)
    assert first.success
    push = metadata(first, "ometria_contact_fields")
    assert push["contacts_rejected"] == 1
    assert push["contacts_accepted"] == sum(1 for t in truth.values() if t["email"]) - 1
    assert f"og-{refused}" not in pipeline.ometria_contacts()
    assert pipeline.query(
        "SELECT fields_hash IS NULL, rejected_hash IS NOT NULL, last_error "
        "FROM og.ometria_contacts WHERE customer_id = %s",
        refused,
    ) == [(True, True, "Record refused")]  # Ometria's own reason
    assert pipeline.query(
        "SELECT outcome FROM og.ometria_push_audit WHERE customer_id = %s", refused
    ) == [("rejected",)]

    again = pipeline.sync(START, NOW)
    assert metadata(again, "ometria_contact_fields")["contacts_pushed"] == 0, (
        "the same refused fields are not resent"
    )


def test_asynchronous_errors_are_stored_once_and_set_on_the_contact(pipeline: Pipeline) -> None:
    # An account where the next-order-date field was never created: Ometria accepts the push
    # and reports the unknown field later, at /v2/push/_errors.
    ometria = pipeline.sandbox.ometria
    ometria.contact_fields = ometria.contact_fields - {"ordergroove_next_order_date"}
    first = pipeline.sync(START, NOW)
    assert first.success
    new_errors = metadata(first, "ometria_contact_fields")["new_async_errors"]
    assert 0 < new_errors <= 100  # the endpoint keeps the latest 100
    stored = pipeline.query("SELECT count(*), count(record_id) FROM og.ometria_errors")
    assert stored == [(new_errors, new_errors)]
    flagged = pipeline.query(
        "SELECT count(*) FROM og.ometria_contacts WHERE last_error LIKE 'Unknown custom field%%'"
    )
    assert flagged == [(new_errors,)]

    again = pipeline.sync(START, NOW)
    assert metadata(again, "ometria_contact_fields")["new_async_errors"] == 0, (
        "each error counts once"
    )
