"""Running a job of the code location in this process, recorded in the Dagster instance.

Used by the commands that must work without the daemon (`sync`, `webhooks process`): the run
shows in the UI like any other, with its logs and metadata; the command prints a summary from
the materializations and exits non-zero with the failure's root cause.

Two things Dagster 1.13 does not do for an in-process run, done here:

- Liveness. The run holds a lock while its process lives (og_pipeline.pools), and the pools are
  made usable before each run, so a run whose process was killed is marked failed and its slots
  freed by the next command instead of stalling every later run on the instance.
- Waiting for a pool slot. The in-process executor waits in ``ActiveExecution.sleep_til_ready``,
  which asks ``InstanceConcurrencyContext.interval_to_next_pending_claim_check`` how long to
  sleep; that returns ``min([0, ...])``, never more than 0, so the wait is a busy loop at 100 % of
  a CPU (dagster-io/dagster#20367 proposed the fix, never merged). Dagster also captures SIGINT and
  SIGTERM for the whole run and acts on them only inside a step, so a waiting run ignores both;
  and its "Step blocked by limit for pool" event is at DEBUG, below the console's INFO. For the
  length of the run, ``_PoolWait`` replaces that one method: it sleeps, raises Dagster's own
  interrupt on a captured signal (the run is then marked failed and its pending claim removed by
  Dagster's usual path), and reports what it waits for, and for how long, on the console and in
  the run's log. No dagster.yaml setting changes any of the three.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from og_pipeline.pools import ensure_pools, hold_run_liveness
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
    with (
        open_databases(settings, state) as databases,
        instance_on(root, state, databases) as instance,
    ):
        yield instance


@contextmanager
def instance_on(root: Path, state: Path, databases: Databases) -> Iterator[Any]:
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


# While waiting for a slot: how often the executor loop runs again (Dagster itself asks the
# database only on its own back-off, 1 s growing to 15 s), how often a signal is looked for, and
# how often the wait is reported.
POOL_WAIT_POLL_SECONDS = 1.0
INTERRUPT_CHECK_SECONDS = 0.2
POOL_WAIT_REPORT_SECONDS = 30.0
# Exit status of a run stopped by SIGINT or SIGTERM (Dagster cannot tell the two apart).
INTERRUPTED_EXIT_CODE = 130


class RunInterrupted(click.ClickException):
    exit_code = INTERRUPTED_EXIT_CODE


class _PoolWait:
    """The wait of one in-process run for pool slots (see the module docstring)."""

    def __init__(self, instance: Any, run_id: str) -> None:
        self.instance = instance
        self.run_id = run_id
        self.interrupted = False
        self.pools: set[str] = set()
        self._next_report = 0.0

    def sleep_til_ready(self, active: Any) -> None:
        """Stands in for ``ActiveExecution.sleep_til_ready`` (called when no step can run)."""
        from dagster._core.errors import DagsterExecutionInterruptedError
        from dagster._utils.interrupts import check_captured_interrupt

        concurrency = getattr(active, "_instance_concurrency_context", None)
        waiting = concurrency is not None and concurrency.has_pending_claims()
        # Without a pending claim, Dagster's own interval is right (step retries wait on it).
        seconds = POOL_WAIT_POLL_SECONDS if waiting else max(0.0, active.sleep_interval())
        if waiting and time.monotonic() >= self._next_report:
            self._next_report = time.monotonic() + POOL_WAIT_REPORT_SECONDS
            self._report()
        deadline = time.monotonic() + seconds
        while True:
            if check_captured_interrupt():
                self.interrupted = True
                raise DagsterExecutionInterruptedError("interrupted while waiting for a pool slot")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(remaining, INTERRUPT_CHECK_SECONDS))

    def _report(self) -> None:
        storage = self.instance.event_log_storage
        now = datetime.now(UTC)
        for pool in sorted(storage.get_concurrency_keys()):
            info = storage.get_concurrency_info(pool)
            for step in info.pending_steps:
                if step.run_id != self.run_id or step.assigned_timestamp is not None:
                    continue
                self.pools.add(pool)
                enqueued = step.enqueued_timestamp
                if enqueued.tzinfo is None:
                    enqueued = enqueued.replace(tzinfo=UTC)  # Dagster stores UTC without a zone
                holders = (
                    ", ".join(sorted(slot.run_id[:8] for slot in info.claimed_slots)) or "none"
                )
                message = (
                    f"waiting for a slot in pool {pool} for {(now - enqueued).total_seconds():.0f} s "
                    f"(step {step.step_key}; limit {info.slot_count}, held by run {holders}); "
                    "Ctrl-C or SIGTERM stops this run"
                )
                click.echo(message)
                run = self.instance.get_run_by_id(self.run_id)
                if run is not None:
                    self.instance.report_engine_event(message, run)


@contextmanager
def _waiting_for_pools(instance: Any, run_id: str) -> Iterator[_PoolWait]:
    from dagster._core.execution.plan.active import ActiveExecution

    wait = _PoolWait(instance, run_id)
    original = ActiveExecution.sleep_til_ready

    def sleep_til_ready(active: Any) -> None:
        wait.sleep_til_ready(active)

    ActiveExecution.sleep_til_ready = sleep_til_ready  # type: ignore[method-assign,assignment]
    try:
        yield wait
    finally:
        ActiveExecution.sleep_til_ready = original  # type: ignore[method-assign]


def run_job(
    instance: Any,
    job_name: str,
    label: str,
    *,
    tags: dict[str, str] | None = None,
    run_config: dict[str, Any] | None = None,
) -> Any:
    from dagster._core.utils import make_new_run_id

    from og_pipeline.definitions import defs

    job = defs().resolve_job_def(job_name)
    config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}, **(run_config or {})}
    run_id = make_new_run_id()
    storage = instance.event_log_storage
    # The lock before the run exists, until its slots are freed: see og_pipeline.pools.
    with (
        hold_run_liveness(instance, run_id) as liveness_tags,
        _waiting_for_pools(instance, run_id) as wait,
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


def _interrupted(result: Any) -> bool:
    """Whether a step was stopped by SIGINT or SIGTERM (Dagster's error source INTERRUPT)."""
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            source = getattr(event.event_specific_data, "error_source", None)
            if getattr(source, "value", source) == "INTERRUPT":
                return True
    return False


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
