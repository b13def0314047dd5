"""What a run prints to its console (`dev`'s terminal, a run worker's output): INFO and above,
the assets' own lines (what each step does and its summary, under the run's id), not Dagster's
DEBUG engine events. The
level is the instance's (dagster.yaml's python_log_level), so it holds for daemon-launched runs,
which no run config of ours reaches."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml

from og_pipeline_tests.pipeline.conftest import PARTITION_FORMAT, START, Pipeline

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("instance_file", ["dagster.yaml", "deploy/dagster.yaml"])
def test_a_run_without_logger_config_logs_info_and_above_to_its_console(
    pipeline: Pipeline, capfd: pytest.CaptureFixture[str], instance_file: str
) -> None:
    from og_pipeline.definitions import defs

    logs = yaml.safe_load((ROOT / instance_file).read_text())["python_logs"]
    with dg.instance_for_test(
        overrides={
            "storage": {"postgres": {"postgres_url": pipeline.instance.run_storage.postgres_url}},
            "python_logs": logs,
        }
    ) as instance:
        result = (
            defs()
            .resolve_job_def("ordergroove_sync")
            .execute_in_process(
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": START.strftime(PARTITION_FORMAT),
                    "dagster/asset_partition_range_end": (START + timedelta(hours=1)).strftime(
                        PARTITION_FORMAT
                    ),
                },
            )
        )
    assert result.success
    printed = capfd.readouterr().err
    assert " - INFO - " in printed
    assert "syncing Ordergroove records updated from" in printed, "the assets' own summaries"
    assert result.run_id in printed and "pushed " in printed, "the run's id and its summary"
    assert " - DEBUG - " not in printed


def test_dev_says_each_run_once_when_it_ends_with_its_summary_or_where_its_logs_are(
    pipeline: Pipeline,
) -> None:
    from og_pipeline.cli.run_report import RunReporter

    reporter = RunReporter(pipeline.instance, "http://127.0.0.1:3000")
    ok = pipeline.sync(START, START + timedelta(hours=2))
    pipeline.use_keys(ordergroove="a-wrong-key")
    failed = pipeline.sync(START, START + timedelta(hours=2))

    lines = reporter.poll()

    assert reporter.poll() == [], "each change is said once"
    (done,) = [line for line in lines if ok.run_id[:8] in line]
    assert "ordergroove_sync succeeded in " in done and "contacts_pushed " in done
    (broke,) = [line for line in lines if failed.run_id[:8] in line]
    assert "ordergroove_sync failed in " in broke
    assert broke.endswith(f"its logs: http://127.0.0.1:3000/runs/{failed.run_id}")
