"""Dagster's bookkeeping of a year-long range run stays small in the environment og-pipeline
gives Dagster (og_pipeline.runtime.dagster_environment, the image's ENV, the chart's env): the
run plans one event for its range, not one per hour (8,760 events took 108 s here), and the
hours it materializes still show as materialized, partition by partition, each hour's event
carrying the run's totals and the breakdown by object type given once, on the check's result."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg

from og_pipeline.db.connection import connect
from og_pipeline.runtime import PLANNED_EVENTS_VARIABLE, Databases, dagster_environment
from og_pipeline_tests.pipeline.conftest import (
    NOW,
    PARTITION_FORMAT,
    Pipeline,
    check_evaluations,
)

RAW = dg.AssetKey("ordergroove_raw_records")


def test_a_year_long_range_run_plans_one_event_and_its_hours_show_materialized_and_slim(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    from og_pipeline.definitions import defs

    env = dagster_environment(tmp_path, tmp_path, Databases(pipeline.db_url, "unused"))
    assert env[PLANNED_EVENTS_VARIABLE] == "true"
    pipeline.monkeypatch.setenv(PLANNED_EVENTS_VARIABLE, env[PLANNED_EVENTS_VARIABLE])
    pipeline.monkeypatch.setenv("OG_SYNC_START_DATE", "2025-11-01")
    year = ("2025-11-01-00:00", "2026-10-31-23:00")
    job = defs().resolve_job_def("ordergroove_raw_sync")

    planned_run = pipeline.instance.create_run_for_job(
        job,
        tags={
            "dagster/asset_partition_range_start": year[0],
            "dagster/asset_partition_range_end": year[1],
        },
    )
    planned = pipeline.instance.get_records_for_run(
        planned_run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED, limit=10
    ).records
    assert len(planned) == 1, "one planned event for the range"
    # Each check planned in a range run writes a row per hour; the freshness check is left to
    # `health_checks`, so only the check of what the run read is planned.
    checks = pipeline.instance.get_records_for_run(
        planned_run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED, limit=10
    ).records
    assert [r.event_log_entry.dagster_event.event_specific_data.check_name for r in checks] == [
        "records_readable"
    ]

    # A range run of 8 days in the same environment: its hours show as materialized.
    first = NOW - timedelta(days=8)
    hours = [first + timedelta(hours=h) for h in range(8 * 24)]
    result = job.execute_in_process(
        instance=pipeline.instance,
        tags={
            "dagster/asset_partition_range_start": hours[0].strftime(PARTITION_FORMAT),
            "dagster/asset_partition_range_end": hours[-1].strftime(PARTITION_FORMAT),
        },
    )
    assert result.success
    done = pipeline.instance.get_materialized_partitions(RAW)
    assert {h.strftime(PARTITION_FORMAT) for h in hours} <= done
    # Every hour carries the run's totals, and only those: the breakdown by object type would
    # be copied 8,760 times in a year's run; it is on the check's one result instead.
    events = result.get_asset_materialization_events()
    assert len(events) == len(hours)
    keys = {frozenset(e.materialization.metadata) for e in events}
    assert len(keys) == 1 and "records_fetched" in next(iter(keys))
    assert not any(k.startswith("subscriptions_") for k in next(iter(keys)))
    fetched = events[0].materialization.metadata["records_fetched"].value
    breakdown = check_evaluations(result)["records_readable"].metadata
    per_type = [breakdown[f"{r}_fetched"].value for r in ("customers", "subscriptions", "orders")]
    assert all(isinstance(n, int) and n > 0 for n in per_type)
    assert sum(per_type) + breakdown["items_fetched"].value == fetched
    with connect(pipeline.db_url) as conn:
        assert conn.execute("SELECT count(*) FROM og.subscriptions").fetchone()[0] > 0
