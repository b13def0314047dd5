"""The API pools in Dagster's storage, read through the instance the database checks opened.

- pools: every pool of ``og_pipeline.pools.POOLS`` exists with limit 1: limit 0 lets no step
  of that API run (a failure); a missing pool (the first command creates it) or a limit over 1
  (steps would call the API at once) is a warning.
- slot holds: no run has held a pool slot longer than --max-slot-hold-hours; for each that
  has, what the run is and what frees its slots (nothing is freed here).

Both are skipped when Dagster's storage is not available, or has no pools.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from og_pipeline.doctor.context import Context, one
from og_pipeline.doctor.model import (
    FIRST_COMMAND,
    FREE_IN_UI,
    POOL_LIMITS,
    SLOT_HOLDS,
    Check,
    Skip,
    Verdict,
)
from og_pipeline.pools import LIVENESS_TAG, POOLS

if TYPE_CHECKING:
    from dagster import DagsterInstance

# Statuses of a run that has not ended: its slots may still be in use.
_UNFINISHED = frozenset({"NOT_STARTED", "STARTING", "STARTED", "CANCELING", "QUEUED"})


def pools(ctx: Context) -> Check:
    instance, storage = _storage(ctx)
    existing = storage.get_concurrency_keys()
    infos = storage.get_concurrency_infos([pool for pool in POOLS if pool in existing])
    default = instance.global_op_concurrency_default_limit
    limits = {pool: info.limit for pool, info in infos.items()}
    missing = [pool for pool in POOLS if pool not in existing]
    shown = ", ".join(f"{pool} limit {limit}" for pool, limit in limits.items())
    facts: dict[str, Any] = {"limits": limits, "missing": missing, "default_limit": default}
    blocked = [pool for pool, limit in limits.items() if not limit]
    if blocked:
        return Check(
            POOL_LIMITS,
            Verdict.FAIL,
            f"{shown}: no step that calls the API of {', '.join(blocked)} can run",
            f"`dagster instance concurrency set {blocked[0]} 1` (DAGSTER_HOME: the project)",
            facts,
        )
    if missing:
        return Check(
            POOL_LIMITS,
            Verdict.WARN,
            ", ".join([*(f"{p} missing" for p in missing), *([shown] if shown else [])]),
            f"{FIRST_COMMAND} them with dagster.yaml's default limit ({default})",
            facts,
        )
    wide = [pool for pool, limit in limits.items() if limit is not None and limit > 1]
    if wide:
        return Check(
            POOL_LIMITS,
            Verdict.WARN,
            f"{shown}: steps of {', '.join(wide)} would call the API at once (Ordergroove "
            "allows one cursor per object type; Ometria limits requests per account)",
            f"`dagster instance concurrency set {wide[0]} 1` (DAGSTER_HOME: the project)",
            facts,
        )
    return Check(POOL_LIMITS, Verdict.OK, shown, facts=facts)


def slot_holds(ctx: Context) -> Check:
    instance, storage = _storage(ctx)
    assert ctx.dagster_url is not None
    infos = storage.get_concurrency_infos(sorted(storage.get_concurrency_keys()))
    # Dagster stores claim times as Postgres' now() in a column without time zone; the
    # database's own clock, read the same way, compares like with like (zone, skew).
    with ctx.connect(ctx.dagster_url) as conn:
        now: datetime = one(conn, "SELECT LOCALTIMESTAMP")
    ages: dict[tuple[str, str], list[timedelta | None]] = defaultdict(list)
    for pool, info in infos.items():
        # A claimed slot's step also has its queue row, assigned just before the claim.
        assigned = {
            (step.run_id, step.step_key): step.assigned_timestamp
            for step in info.pending_steps
            if step.assigned_timestamp is not None
        }
        for slot in info.claimed_slots:
            since = assigned.get((slot.run_id, slot.step_key))
            age = now - since.replace(tzinfo=None) if since else _run_age(instance, slot.run_id)
            ages[(slot.run_id, pool)].append(age)
    held = {
        key: max((a for a in found if a is not None), default=None) for key, found in ages.items()
    }
    hours = ctx.max_slot_hold / timedelta(hours=1)
    over = sorted(
        (run_id, pool, age)
        for (run_id, pool), age in held.items()
        if age is not None and age > ctx.max_slot_hold
    )
    unknown = sorted(key for key, age in held.items() if age is None)
    facts: dict[str, Any] = {
        "max_hours": hours,
        "held": [
            {"run_id": run_id, "pool": pool, "hours": _hours(age)}
            for (run_id, pool), age in sorted(held.items())
        ],
    }
    if over:
        lines, todos = [], []
        for run_id, pool, age in over:
            what, todo = _holder(instance, run_id)
            lines.append(f"run {run_id} ({what}) has held {pool} for {_age_text(age)}")
            todos.append(todo)
        return Check(
            SLOT_HOLDS,
            Verdict.FAIL,
            f"held longer than {hours:g} h: " + "; ".join(lines),
            "; ".join(dict.fromkeys(todos)),
            facts,
        )
    if unknown:
        return Check(
            SLOT_HOLDS,
            Verdict.WARN,
            "held since a time Dagster does not record: "
            + "; ".join(f"run {run_id} in {pool}" for run_id, pool in unknown),
            f"if the run has ended, {FREE_IN_UI}",
            facts,
        )
    known = [age for age in held.values() if age is not None]
    longest = f", the longest for {_age_text(max(known))}" if known else ""
    return Check(
        SLOT_HOLDS,
        Verdict.OK,
        f"none held longer than {hours:g} h ({len(held)} held now{longest})",
        facts=facts,
    )


def _storage(ctx: Context) -> tuple[DagsterInstance, Any]:
    """The instance the Dagster storage check opened, and its event log storage (where the
    pools are); ``Skip`` when there is none, or it has no pools."""
    ctx.need_settings()
    if ctx.instance is None:
        raise Skip(ctx.instance_skip or "Dagster's storage is not available")
    storage = ctx.instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        raise Skip("this Dagster storage has no pools (run `dagster instance migrate`)")
    return ctx.instance, storage


def _run_age(instance: DagsterInstance, run_id: str) -> timedelta | None:
    """Since the run started: for a slot whose claim time Dagster no longer has."""
    record = instance.get_run_record_by_id(run_id)
    if record is None or record.start_time is None:
        return None
    return timedelta(seconds=max(0.0, time.time() - record.start_time))


def _holder(instance: DagsterInstance, run_id: str) -> tuple[str, str]:
    """What the run holding a slot is, and what frees its slots."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return "not in Dagster's run storage", FREE_IN_UI
    status = str(run.status.value)
    if status not in _UNFINISHED:
        return f"{status}, ended", FREE_IN_UI
    if run.tags.get(LIVENESS_TAG):
        return (
            f"{status}, an og-pipeline command's run",
            (
                "if that command's process is gone, the next og-pipeline command marks its "
                "run failed and frees its slots; if it still runs, stop it"
            ),
        )
    return f"{status}, still going", "terminate it in the Dagster UI: its slots go with it"


def _hours(age: timedelta | None) -> float | None:
    return None if age is None else round(age / timedelta(hours=1), 1)


def _age_text(age: timedelta) -> str:
    if age < timedelta(hours=1):
        return f"{int(age.total_seconds() // 60)} min"
    return f"{age / timedelta(hours=1):.1f} h"
