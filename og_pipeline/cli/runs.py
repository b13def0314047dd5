"""Running a job of the code location in this process, recorded in the Dagster instance.

Used by the commands that must work without the daemon (`sync`, `webhooks process`): the run
shows in the UI like any other, with its logs and metadata; the command prints a summary from
the materializations and exits non-zero with the failure's root cause.

Two things Dagster 1.13 does not do for an in-process run, done here:

- Liveness. The run holds a lock while its process lives (og_pipeline.pools), and the pools are
  made usable before each run, so a run whose process was killed is marked failed and its slots
  freed by the next command instead of stalling every later run on the instance.
- Waiting for a pool slot asleep, stoppable by SIGTERM or Ctrl-C, and reported on the console
  (og_pipeline.pool_wait, which every run of the location shares).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from og_pipeline import pool_wait
from og_pipeline.pools import ensure_pools, hold_run_liveness
from og_pipeline.reasons import root_cause
from og_pipeline.runtime import (
    Databases,
    dagster_environment,
    open_databases,
    project_root,
    state_dir,
)
from og_pipeline.settings import Settings

if TYPE_CHECKING:
    # Dagster is imported where it is used: `og-pipeline --help` and the sandbox need none of it.
    import dagster as dg


@contextmanager
def dagster_instance(settings: Settings) -> Iterator[dg.DagsterInstance]:
    """The project's Dagster instance, with og-pipeline's databases resolved (and the embedded
    server started if needed, or reused when `dev` runs it)."""
    root = project_root()
    state = state_dir(root)
    with (
        open_databases(settings, state) as databases,
        instance_on(root, state, databases) as instance,
    ):
        yield instance


@contextmanager
def instance_on(root: Path, state: Path, databases: Databases) -> Iterator[dg.DagsterInstance]:
    """The Dagster instance on ``databases``, its API pools created (see og_pipeline.pools)."""
    os.environ.update(dagster_environment(root, state, databases))
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        for run_id in ensure_pools(instance):
            click.echo(
                f"run {run_id} marked failed: its process is gone (killed or crashed); "
                "its pool slots are free again"
            )
        yield instance


# Exit status of a run stopped by SIGINT or SIGTERM (Dagster cannot tell the two apart).
INTERRUPTED_EXIT_CODE = 130


class RunInterrupted(click.ClickException):
    exit_code = INTERRUPTED_EXIT_CODE


def run_job(
    instance: dg.DagsterInstance,
    job_name: str,
    label: str,
    *,
    tags: dict[str, str] | None = None,
    run_config: dict[str, Any] | None = None,
) -> dg.ExecuteInProcessResult:
    from dagster._core.utils import make_new_run_id

    from og_pipeline.definitions import defs

    job = defs().resolve_job_def(job_name)
    # The console at INFO: dagster.yaml's python_log_level (the same for daemon-launched runs).
    config = run_config or {}
    run_id = make_new_run_id()
    storage = instance.event_log_storage
    # The lock before the run exists, until its slots are freed: see og_pipeline.pools.
    with (
        hold_run_liveness(instance, run_id) as liveness_tags,
        pool_wait.watch(run_id, click.echo) as wait,
    ):
        try:
            result = job.execute_in_process(
                instance=instance,
                run_id=run_id,
                tags={**(tags or {}), **liveness_tags},
                run_config=config,
                raise_on_error=False,
            )
        finally:
            # The run has ended, however: nothing of it may keep a slot or a place in a queue.
            if storage.supports_global_concurrency_limits:
                storage.free_concurrency_slots_for_run(run_id)
    if wait.interrupted or _interrupted(result):
        where = (
            f"while waiting for a slot in pool {', '.join(sorted(wait.pools))}"
            if wait.interrupted and wait.pools
            else "by a signal"
        )
        raise RunInterrupted(
            f"{label} interrupted {where} (run {run_id}): the run is marked failed and "
            "holds no pool slot"
        )
    if not result.success:
        raise click.ClickException(
            f"{label} failed (run {result.run_id}): {failure_reason(result)}"
        )
    return result


def _interrupted(result: dg.ExecuteInProcessResult) -> bool:
    """Whether a step was stopped by SIGINT or SIGTERM (Dagster's error source INTERRUPT)."""
    for event in result.get_step_failure_events():
        source = event.step_failure_data.error_source
        if getattr(source, "value", source) == "INTERRUPT":
            return True
    return False


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    """Each asset's metadata, from its last materialization in the run."""
    found: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        found[materialization.asset_key.to_user_string()] = {
            k: v.value for k, v in materialization.metadata.items()
        }
    return found


def failure_reason(result: dg.ExecuteInProcessResult) -> str:
    """The root cause of the first step failure, else of the run's failure."""
    for event in result.get_step_failure_events():
        if event.step_failure_data.error is not None:
            return f"{event.step_key}: {root_cause(event.step_failure_data.error)}"
    if not result.success:
        failure = result.get_run_failure_event()
        data = failure.job_failure_data
        if data is not None and data.error is not None:
            return f"run: {root_cause(data.error)}"
        if failure.message:
            return failure.message
    return "the run failed (see its logs in the Dagster UI)"


def echo_summary(title: str, values: dict[str, Any]) -> None:
    click.echo(title)
    for key, value in values.items():
        click.echo(f"  {key}: {value}")
