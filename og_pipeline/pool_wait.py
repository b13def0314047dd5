"""How every run of the location waits for a pool slot: asleep, stoppable, and saying so.

A step of a pool (ordergroove_api, ometria_api) whose slots are taken waits in the executor's loop,
in ``ActiveExecution.sleep_til_ready``. In Dagster 1.13 that wait is broken three ways, whether the
run executes in a command's process (`sync`, `webhooks process`) or in a run worker the daemon
launched (the schedule, a sensor, a UI backfill):

- it asks ``InstanceConcurrencyContext.interval_to_next_pending_claim_check`` how long to sleep,
  which returns ``min([0, ...])``, never more than 0: a busy loop at 100 % of a CPU for as long as
  the slot stays taken (dagster-io/dagster#20367 proposed the fix, never merged);
- Dagster captures SIGINT and SIGTERM for the whole run and acts on them only inside a step, so a
  waiting run ignores both (a run terminated from the UI, `timeout`, Ctrl-C, a pod's shutdown);
- its "Step blocked by limit for pool" event is at DEBUG, below the console's INFO.

``install`` replaces that one method, once per process, when the location loads (so in each run
worker too). The replacement sleeps, raises Dagster's own interrupt on a captured signal (the run
is then marked failed and its pending claim removed on Dagster's usual path), and reports what the
run waits for, and for how long, in the run's log (and to a command's console through
``watch``). No dagster.yaml setting changes any of the three. Pool granularity ``run`` would move
the wait into the run queue, but in-process runs of the commands would then take no slot at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# While waiting for a slot: how often the executor loop runs again (Dagster itself asks the
# database only on its own back-off, 1 s growing to 15 s), how often a signal is looked for, and
# how often the wait is reported.
POOL_WAIT_POLL_SECONDS = 1.0
INTERRUPT_CHECK_SECONDS = 0.2
POOL_WAIT_REPORT_SECONDS = 30.0


@dataclass
class RunWait:
    """What one run's waits for pool slots came to."""

    run_id: str
    on_report: Callable[[str], None] | None = None
    interrupted: bool = False
    pools: set[str] = field(default_factory=set)
    next_report: float = 0.0


_lock = threading.Lock()
_waits: dict[str, RunWait] = {}
_installed = False


def install() -> None:
    """Replace ``ActiveExecution.sleep_til_ready`` in this process (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        from dagster._core.execution.plan.active import ActiveExecution

        ActiveExecution.sleep_til_ready = _sleep_til_ready  # type: ignore[method-assign,assignment]
        _installed = True


@contextmanager
def watch(run_id: str, on_report: Callable[[str], None]) -> Iterator[RunWait]:
    """Follow run ``run_id``'s waits from the process executing it: each report also goes to
    ``on_report``, and the yielded record says whether a signal stopped a wait."""
    install()
    wait = RunWait(run_id, on_report)
    with _lock:
        _waits[run_id] = wait
    try:
        yield wait
    finally:
        with _lock:
            _waits.pop(run_id, None)


def _wait_of(run_id: str) -> RunWait:
    with _lock:
        return _waits.setdefault(run_id, RunWait(run_id))


def _sleep_til_ready(active: Any) -> None:
    """Stands in for ``ActiveExecution.sleep_til_ready`` (called when no step can run)."""
    from dagster._core.errors import DagsterExecutionInterruptedError
    from dagster._utils.interrupts import check_captured_interrupt

    concurrency: Any = getattr(active, "_instance_concurrency_context", None)
    wait = None
    if concurrency is not None and concurrency.has_pending_claims():
        wait = _wait_of(concurrency._run_id)
        if time.monotonic() >= wait.next_report:
            wait.next_report = time.monotonic() + POOL_WAIT_REPORT_SECONDS
            _report(concurrency._instance, wait)
    # Without a pending claim, Dagster's own interval is right (step retries wait on it).
    seconds = POOL_WAIT_POLL_SECONDS if wait is not None else max(0.0, active.sleep_interval())
    deadline = time.monotonic() + seconds
    while True:
        if check_captured_interrupt():
            if wait is not None:
                wait.interrupted = True
            raise DagsterExecutionInterruptedError("interrupted while waiting for a pool slot")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        time.sleep(min(remaining, INTERRUPT_CHECK_SECONDS))


def _report(instance: Any, wait: RunWait) -> None:
    storage = instance.event_log_storage
    now = datetime.now(UTC)
    for pool in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(pool)
        for step in info.pending_steps:
            if step.run_id != wait.run_id or step.assigned_timestamp is not None:
                continue
            wait.pools.add(pool)
            enqueued = step.enqueued_timestamp
            if enqueued.tzinfo is None:
                enqueued = enqueued.replace(tzinfo=UTC)  # Dagster stores UTC without a zone
            holders = ", ".join(sorted(slot.run_id[:8] for slot in info.claimed_slots)) or "none"
            message = (
                f"waiting for a slot in pool {pool} for {(now - enqueued).total_seconds():.0f} s "
                f"(step {step.step_key}; limit {info.slot_count}, held by run {holders}); "
                "Ctrl-C or SIGTERM stops this run"
            )
            if wait.on_report is not None:
                wait.on_report(message)
            run = instance.get_run_by_id(wait.run_id)
            if run is not None:
                instance.report_engine_event(message, run)
