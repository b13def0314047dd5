"""Running a job of the code location in this process, recorded in the Dagster instance.

Used by the commands that must work without the daemon (`sync`, `webhooks process`): the run
shows in the UI like any other, with its logs and metadata; the command prints a summary from
the materializations and exits non-zero with the failure's root cause.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from og_pipeline.pools import ensure_pools
from og_pipeline.runtime import (
    Databases,
    dagster_environment,
    open_databases,
    project_root,
    state_dir,
)
from og_pipeline.settings import Settings


@contextmanager
def dagster_instance(settings: Settings) -> Iterator[Any]:
    """The project's Dagster instance, with og-pipeline's databases resolved (and the embedded
    server started if needed, or reused when `dev` runs it)."""
    root = project_root()
    state = state_dir(root)
    with open_databases(settings, state) as databases, instance_on(root, state, databases) as instance:
        yield instance


@contextmanager
def instance_on(root: Path, state: Path, databases: Databases) -> Iterator[Any]:
    """The Dagster instance on ``databases``, its API pools created (see og_pipeline.pools)."""
    os.environ.update(dagster_environment(root, state, databases))
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        ensure_pools(instance)
        yield instance


def run_job(instance: Any, job_name: str, label: str, *, tags: dict[str, str] | None = None,
            run_config: dict[str, Any] | None = None) -> Any:
    from og_pipeline.definitions import defs

    job = defs().resolve_job_def(job_name)
    config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}, **(run_config or {})}
    result = job.execute_in_process(instance=instance, tags=tags, run_config=config, raise_on_error=False)
    if not result.success:
        raise click.ClickException(f"{label} failed (run {result.run_id}): {failure_reason(result)}")
    return result


def materializations(result: Any) -> dict[str, dict[str, Any]]:
    """Each asset's metadata, from its last materialization in the run."""
    found: dict[str, dict[str, Any]] = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            found[materialization.asset_key.to_user_string()] = {
                k: v.value for k, v in materialization.metadata.items()
            }
    return found


def failure_reason(result: Any) -> str:
    for event in result.all_events:
        if event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE"):
            error = getattr(event.event_specific_data, "error", None)
            if error is not None:
                while getattr(error, "cause", None) is not None:
                    error = error.cause
                return f"{event.step_key or 'run'}: {error.message.strip()}"
            if event.message:
                return event.message
    return "the run failed (see its logs in the Dagster UI)"


def echo_summary(title: str, values: dict[str, Any]) -> None:
    click.echo(title)
    for key, value in values.items():
        click.echo(f"  {key}: {value}")
