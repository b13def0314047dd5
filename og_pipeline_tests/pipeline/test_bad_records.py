"""A window with malformed records, end to end: the sandbox serves a seeded share of them, the
sync lands every good contact, and the bad ones are shown with reasons in the set-aside table,
the run's metadata, the check and `og-pipeline records rejected`; a changed API blocks the push."""

from __future__ import annotations

import json
from datetime import timedelta

import dagster as dg
import pytest
from click.testing import CliRunner

from og_pipeline.cli import main
from og_pipeline_tests.pipeline.conftest import (
    NOW,
    START,
    Pipeline,
    check_evaluations,
    expected_fields,
    metadata,
)

# Under 1% of 3,000 subscriptions' records: a few bad records, not a changed API.
FEW = 0.004


@pytest.mark.parametrize("merchant_spec", [{"bad_record_share": FEW}], indirect=True)
def test_bad_records_are_set_aside_and_every_good_contact_lands(pipeline: Pipeline) -> None:
    merchant = pipeline.sandbox.merchant
    bad = merchant.bad_records()
    assert bad, "the sandbox should serve some malformed records"

    result = pipeline.sync(START, NOW)

    assert result.success
    # Every contact untouched by a bad record has exactly the right fields in Ometria.
    spoiled = merchant.bad_customers()
    contacts = pipeline.ometria_contacts()
    good = {
        cid: t for cid, t in merchant.ground_truth().items() if t["email"] and cid not in spoiled
    }
    assert good and all(
        contacts[f"og-{cid}"]["properties"] == expected_fields(t) for cid, t in good.items()
    )
    # Every bad record is set aside once, with a reason, and nothing of it became a row.
    aside = pipeline.query("SELECT resource, record_id, reason FROM og.rejected_records")
    assert len(aside) == len(bad)
    keyed = {(b.resource, b.id) for b in bad if b.flaw not in ("key_null", "key_missing")}
    assert {(r, i) for r, i, _ in aside if i is not None} == keyed
    assert all(reason for *_, reason in aside)
    assert pipeline.query("SELECT count(*) FROM og.subscriptions WHERE public_id = 'None'") == [
        (0,)
    ]
    # The run's metadata counts them per resource; the check warns without blocking.
    # (Sightings: a bad customer record is met in the walk and again in the lookup by id.)
    raw = metadata(result, "ordergroove_raw_records")
    for resource in ("subscriptions", "orders", "items"):
        assert raw[f"{resource}_set_aside"] == sum(1 for b in bad if b.resource == resource)
    assert raw["customers_set_aside"] >= sum(1 for b in bad if b.resource == "customers")
    assert raw["records_set_aside"] == sum(
        raw[f"{r}_set_aside"] for r in ("subscriptions", "customers", "orders", "items")
    )
    check = check_evaluations(result)["records_readable"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["set_aside_in_table"].value == len(bad)

    # Listed for an operator, without personal data.
    listed = CliRunner().invoke(
        main, ["records", "rejected", "--json", "--show-record", "--limit", "1000"]
    )
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert len(rows) == len(bad) and "@" not in listed.output
    assert {row["resource"] for row in rows} <= {"subscriptions", "customers", "orders", "items"}

    # Fixed in Ordergroove: the next sync reads them and they leave the table by themselves.
    # A record without an id cannot be matched to its fixed version and stays listed.
    fixed_at = NOW - timedelta(minutes=30)
    for b in bad:
        merchant.repair(b.resource, b.id, at=fixed_at)
    again = pipeline.sync(NOW - timedelta(hours=1), NOW)
    assert again.success
    left = pipeline.query("SELECT record_id FROM og.rejected_records")
    assert left == [(None,)] * sum(1 for b in bad if b.flaw in ("key_null", "key_missing"))


@pytest.mark.parametrize("merchant_spec", [{"bad_record_share": 0.05}], indirect=True)
def test_more_than_the_allowed_share_of_bad_records_blocks_the_push(pipeline: Pipeline) -> None:
    result = pipeline.sync(START, NOW)

    assert not result.success
    check = check_evaluations(result)["records_readable"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["share_of_window"].value > 0.01
    assert pipeline.ometria_contacts() == {}
    # The good records are stored all the same: only the push waits.
    assert pipeline.query("SELECT count(*) FROM og.subscriptions")[0][0] > 0

    # A share judged acceptable (configured) lets it through, still warning.
    pipeline.monkeypatch.setenv("OG_SYNC_MAX_REJECTED_SHARE", "0.2")
    allowed = pipeline.sync(START, NOW)
    assert allowed.success
    assert check_evaluations(allowed)["records_readable"].severity == dg.AssetCheckSeverity.WARN
    assert pipeline.ometria_contacts()
