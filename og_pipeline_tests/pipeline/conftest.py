"""A whole pipeline for a test: the sandbox on a random port, a fresh database, a Dagster
instance on Postgres, and the environment the code location reads. ``Pipeline.sync`` runs the
ordergroove_sync job over a range of hours as one run, as the schedule or the CLI would."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest

from og_pipeline.cli.runs import materializations
from og_pipeline.db.connection import connect, ensure_database
from og_pipeline.db.urls import for_dagster, with_database
from og_pipeline.sandbox import MerchantSpec, SandboxServer
from og_pipeline.webhooks.staging import store_event

START = datetime(2026, 11, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 4, tzinfo=UTC)
PARTITION_FORMAT = "%Y-%m-%d-%H:%M"

warnings.filterwarnings("ignore", category=dg.BetaWarning)


@dataclass
class Pipeline:
    sandbox: SandboxServer
    db_url: str
    instance: dg.DagsterInstance
    monkeypatch: pytest.MonkeyPatch

    def sync(
        self,
        start: datetime = START,
        end: datetime = NOW,
        *,
        run_config: dict[str, Any] | None = None,
    ) -> dg.ExecuteInProcessResult:
        from og_pipeline.definitions import defs

        job = defs().resolve_job_def("ordergroove_sync")
        return job.execute_in_process(
            instance=self.instance,
            tags={
                "dagster/asset_partition_range_start": start.strftime(PARTITION_FORMAT),
                "dagster/asset_partition_range_end": (end - timedelta(hours=1)).strftime(
                    PARTITION_FORMAT
                ),
            },
            run_config=run_config,
            raise_on_error=False,
        )

    def run_job(self, name: str) -> dg.ExecuteInProcessResult:
        from og_pipeline.definitions import defs

        return (
            defs()
            .resolve_job_def(name)
            .execute_in_process(instance=self.instance, raise_on_error=False)
        )

    def process_webhooks(self, **config: Any) -> dg.ExecuteInProcessResult:
        """What `og-pipeline webhooks process` and the sensor's runs execute."""
        from og_pipeline.definitions import defs

        run_config = {"ops": {"ordergroove_webhook_events": {"config": config}}} if config else None
        return (
            defs()
            .resolve_job_def("process_webhook_events")
            .execute_in_process(instance=self.instance, run_config=run_config, raise_on_error=False)
        )

    def stage(self, envelope: dict[str, Any]) -> None:
        """Commit an event to the staging table as the receiver does."""
        with connect(self.db_url) as conn:
            store_event(conn, json.dumps(envelope).encode())

    def use_keys(self, *, ordergroove: str | None = None, ometria: str | None = None) -> None:
        if ordergroove is not None:
            self.monkeypatch.setenv("ORDERGROOVE_API_KEY", ordergroove)
        if ometria is not None:
            self.monkeypatch.setenv("OMETRIA_API_KEY", ometria)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with connect(self.db_url) as conn:
            return conn.execute(sql, params).fetchall()

    def query_commit(self, sql: str, *params: Any) -> None:
        with connect(self.db_url) as conn:
            conn.execute(sql, params)

    def ometria_contacts(self) -> dict[str, dict[str, Any]]:
        return self.sandbox.ometria.snapshot()["contacts"]


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    """The metadata of the asset's last materialization in the run."""
    return materializations(result).get(asset, {})


def check_evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    """Each asset check's last evaluation in the run, by check name."""
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    messages = []
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error
        while error is not None:
            messages.append(error.message)
            error = error.cause
    return "\n".join(messages)


def expected_fields(truth: dict[str, Any]) -> dict[str, Any]:
    return {
        "ordergroove_active_subscriptions": truth["active"],
        "ordergroove_total_subscriptions": truth["total"],
        "ordergroove_subscription_status": truth["status"],
        "ordergroove_next_order_date": truth["next_order_date"].isoformat()
        if truth["next_order_date"]
        else None,
    }


@pytest.fixture(scope="session")
def dagster_db_url(pg_server_url: str) -> str:
    ensure_database(pg_server_url, "og_test_dagster")
    return for_dagster(with_database(pg_server_url, "og_test_dagster"))


@pytest.fixture
def merchant_spec(request: pytest.FixtureRequest) -> MerchantSpec:
    """The sandbox merchant; a test changes fields with indirect parametrization:
    ``@pytest.mark.parametrize("merchant_spec", [{"bad_record_share": 0.05}], indirect=True)``."""
    return replace(
        MerchantSpec(subscriptions=3000, seed=11, start=START, now=NOW),
        **getattr(request, "param", {}),
    )


@pytest.fixture
def pipeline(
    merchant_spec: MerchantSpec, db_url: str, dagster_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Pipeline]:
    with (
        SandboxServer(merchant_spec, port=0) as sandbox,
        dg.instance_for_test(
            overrides={"storage": {"postgres": {"postgres_url": dagster_db_url}}}
        ) as instance,
    ):
        monkeypatch.setenv("OG_DATABASE_URL", db_url)
        monkeypatch.setenv("ORDERGROOVE_API_URL", sandbox.ordergroove_url)
        monkeypatch.setenv("OMETRIA_API_URL", sandbox.ometria_url)
        monkeypatch.setenv("ORDERGROOVE_API_KEY", "sandbox-og-key")
        monkeypatch.setenv("OMETRIA_API_KEY", "sandbox-ometria-key")
        yield Pipeline(sandbox, db_url, instance, monkeypatch)
