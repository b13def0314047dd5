"""The code location loads, and the instance in dagster.yaml (Postgres storage) is valid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

from og_pipeline.db.urls import for_dagster, with_database
from og_pipeline.definitions import defs

ROOT = Path(__file__).resolve().parents[2]


def _instance_env(pg_server_url: str, tmp_path: Path) -> dict[str, str]:
    from og_pipeline.db.connection import ensure_database

    ensure_database(pg_server_url, "og_dagster_test")
    return {
        "DAGSTER_HOME": str(ROOT),
        "OG_DAGSTER_DATABASE_URL": for_dagster(with_database(pg_server_url, "og_dagster_test")),
        "OG_DAGSTER_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "OG_DAGSTER_COMPUTE_LOGS_DIR": str(tmp_path / "compute_logs"),
    }


def test_definitions_load_with_assets_in_their_groups_and_automation_on() -> None:
    definitions = defs()
    dg.Definitions.validate_loadable(definitions)
    graph = definitions.resolve_asset_graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups == {
        "ordergroove_raw_records": "ordergroove",
        "ordergroove_products": "ordergroove",
        "contact_subscription_stats": "contacts",
        "ometria_contact_fields": "ometria",
        "ordergroove_webhook_events": "webhooks",
        "ometria_custom_events": "ometria",
    }
    # Kinds (the icons in the UI) name the system each asset reads or writes, beside Postgres.
    kinds = {key.to_user_string(): set(graph.get(key).kinds) for key in graph.get_all_asset_keys()}
    assert kinds["ordergroove_raw_records"] == {"ordergroove", "postgres"}
    assert kinds["ometria_contact_fields"] == {"ometria", "postgres"}
    assert all(graph.get(key).owners for key in graph.get_all_asset_keys())
    schedule = definitions.resolve_schedule_def("ordergroove_sync_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.cron_schedule == "5 * * * *"
    products = definitions.resolve_schedule_def("ordergroove_products_refresh_schedule")
    assert products.default_status == dg.DefaultScheduleStatus.RUNNING
    for name in (
        "webhook_events_sensor",
        "push_after_backfill",
        "alert_on_run_failure",
        "alert_recovery_on_run_success",
        "alert_conditions",
    ):
        assert definitions.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
    for job in ("ordergroove_sync", "ordergroove_raw_sync", "contacts_push", "health_checks"):
        assert definitions.resolve_job_def(job).name == job


def test_every_job_runs_its_steps_in_the_run_process_the_ui_asset_job_too() -> None:
    # A UI backfill of the raw asset runs Dagster's implicit asset job: with the multiprocess
    # default, each of its steps would start (and import the project in) a process of its own.
    definitions = defs()
    jobs = [definitions.resolve_implicit_global_asset_job_def()]
    jobs += [definitions.resolve_job_def(job.name) for job in definitions.jobs or []]
    assert {job.name: job.executor_def.name for job in jobs} == {
        job.name: dg.in_process_executor.name for job in jobs
    }


def test_dagster_definitions_validate_passes_with_the_project_instance(
    pg_server_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, **_instance_env(pg_server_url, tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_instance_stores_runs_and_events_in_postgres(
    pg_server_url: str, tmp_path: Path, monkeypatch
) -> None:
    for key, value in _instance_env(pg_server_url, tmp_path).items():
        monkeypatch.setenv(key, value)
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2


def test_every_run_config_field_shows_its_description_in_the_ui() -> None:
    import og_pipeline.contacts.assets
    import og_pipeline.webhooks.assets  # noqa: F401

    configs = dg.Config.__subclasses__()
    assert configs
    for config in configs:
        fields = config.to_config_schema().as_field().config_type.fields
        missing = [name for name, field in fields.items() if not field.description]
        assert not missing, f"{config.__name__}: {missing} have no description in the UI"


def test_the_partitions_start_on_the_start_date_read_when_the_definitions_load(
    monkeypatch,
) -> None:
    monkeypatch.setenv("OG_SYNC_START_DATE", "2026-10-15")
    graph = defs().resolve_asset_graph()
    partitions = graph.get(dg.AssetKey("ordergroove_raw_records")).partitions_def
    assert partitions is not None
    assert partitions.get_first_partition_key() == "2026-10-15-00:00"


def test_the_modules_import_without_any_setting() -> None:
    """Settings are read where the definitions load (defs()), never when a module is imported."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OG_", "ORDERGROOVE_", "OMETRIA_"))
    }
    code = "import og_pipeline.definitions, og_pipeline.jobs, og_pipeline.ordergroove.assets"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
