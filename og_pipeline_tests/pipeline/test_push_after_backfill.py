"""A backfill of ordergroove_raw_records launched from the UI (one run of the raw asset alone, in
Dagster's implicit asset job) is followed by one run of the stats and the push, so its contacts
reach Ometria without waiting for the next hourly run."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from og_pipeline.jobs import push_after_backfill
from og_pipeline.run_tags import PUSH_BY_COMMAND, PUSH_TAG
from og_pipeline_tests.pipeline.conftest import (
    NOW,
    PARTITION_FORMAT,
    START,
    Pipeline,
    expected_fields,
)

RAW = dg.AssetKey("ordergroove_raw_records")


def _evaluate(
    pipeline: Pipeline, result: dg.ExecuteInProcessResult
) -> dg.RunRequest | dg.SkipReason:
    context = dg.build_run_status_sensor_context(
        sensor_name="push_after_backfill",
        dagster_instance=pipeline.instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_success_event(),
    )
    return push_after_backfill(context)


def _ui_backfill(pipeline: Pipeline) -> dg.ExecuteInProcessResult:
    """What the UI launches for a range of the raw asset's partitions: one run, raw asset only."""
    from og_pipeline.definitions import defs

    job = defs().resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        instance=pipeline.instance,
        asset_selection=[RAW],
        tags={
            "dagster/asset_partition_range_start": START.strftime(PARTITION_FORMAT),
            "dagster/asset_partition_range_end": (NOW - timedelta(hours=1)).strftime(
                PARTITION_FORMAT
            ),
            "dagster/backfill": "ui-backfill-1",
        },
        raise_on_error=False,
    )


def test_a_ui_backfill_of_the_raw_records_is_followed_by_one_push(pipeline: Pipeline) -> None:
    backfill = _ui_backfill(pipeline)
    assert backfill.success
    assert pipeline.ometria_contacts() == {}, "the backfill run itself pushes nothing"

    request = _evaluate(pipeline, backfill)
    again = _evaluate(pipeline, backfill)  # the sensor meeting the run twice: the same key

    assert isinstance(request, dg.RunRequest) and isinstance(again, dg.RunRequest)
    assert request.run_key == again.run_key == f"push-after-{backfill.run_id}"
    follow_up = pipeline.run_job("contacts_push")
    assert follow_up.success
    truth = pipeline.sandbox.merchant.ground_truth()
    contacts = pipeline.ometria_contacts()
    assert {cid for cid, t in truth.items() if t["email"]} == {c[3:] for c in contacts}
    assert all(
        contacts[f"og-{cid}"]["properties"] == expected_fields(t)
        for cid, t in truth.items()
        if t["email"]
    )


def test_a_run_that_pushed_already_needs_no_follow_up(pipeline: Pipeline) -> None:
    hourly = pipeline.sync(START, NOW)
    assert hourly.success
    assert isinstance(_evaluate(pipeline, hourly), dg.SkipReason)


def _raw_job_run(pipeline: Pipeline, **tags: str) -> dg.ExecuteInProcessResult:
    from og_pipeline.definitions import defs

    return (
        defs()
        .resolve_job_def("ordergroove_raw_sync")
        .execute_in_process(
            instance=pipeline.instance,
            tags={
                "dagster/asset_partition_range_start": START.strftime(PARTITION_FORMAT),
                "dagster/asset_partition_range_end": START.strftime(PARTITION_FORMAT),
                **tags,
            },
        )
    )


def test_a_backfill_of_the_raw_job_is_followed_but_a_command_run_pushes_itself(
    pipeline: Pipeline,
) -> None:
    ui = _raw_job_run(pipeline)
    assert isinstance(_evaluate(pipeline, ui), dg.RunRequest)
    # `og-pipeline sync` over a long range runs the raw job, then its own push.
    command = _raw_job_run(pipeline, **{PUSH_TAG: PUSH_BY_COMMAND})
    assert isinstance(_evaluate(pipeline, command), dg.SkipReason)
