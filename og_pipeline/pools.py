"""The Dagster pools of og-pipeline's API steps, created before any run can claim them.

Steps that call an API share its pool, whose limit is dagster.yaml's
``concurrency.pools.default_limit``. Dagster creates a pool's row on the first claim; when two
runs make that first claim at the same moment (``dev``'s first backfill and a webhook batch, say),
Dagster 1.13 fails one of them: on Postgres its retry after the duplicate insert runs in an
aborted transaction. So what starts runs (``dev``, the commands, the webhook sensor) creates the
rows first, and tolerates the same race among its own callers.

It also frees the slots of og-pipeline's in-process runs (``sync``, ``webhooks process``) whose
process is gone. Dagster frees a step's slot when the step ends, and a finished run's leftover
slots through the daemon (``run_monitoring.free_slots_after_run_end_seconds``); but a run
executing in a process that was SIGKILLed never ends: it stays STARTED and keeps its slot, and no
daemon watches an in-process run (run monitoring checks a run's worker only through a run
launcher, and these runs were not launched). So each such run holds, for as long as its process
lives, a Postgres advisory lock on Dagster's database (``hold_run_liveness``): Postgres releases
it when the process's connection closes, however the process died, and on any host. Whoever
starts runs next (``release_dead_runs``) finds a STARTED run of this kind whose lock it can take,
marks it failed through Dagster (``report_run_failed``) and frees its slots. A pid would need
the same host and cannot tell a reused pid from the run's process; the lock needs neither.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from og_pipeline.db.urls import for_psycopg

ORDERGROOVE_POOL = "ordergroove_api"
OMETRIA_POOL = "ometria_api"
POOLS = (ORDERGROOVE_POOL, OMETRIA_POOL)

# Run tags of an in-process run whose process holds its liveness lock (see the module docstring).
LIVENESS_TAG = "og-pipeline/liveness"
LIVENESS_ADVISORY_LOCK = "advisory-lock"
PID_TAG = "og-pipeline/pid"
HOST_TAG = "og-pipeline/host"
# First key of the two-key advisory lock: a namespace of og-pipeline's ("og"), so the run locks
# cannot meet another advisory lock of Dagster's database. The second key is the run id's hash: a
# collision only makes a dead run look alive (it stays until the other run ends), never the reverse.
_LOCK_NAMESPACE = 0x6F67
# Server-side TCP keepalive of the lock's connection: a holder on a lost node (no FIN, no RST)
# loses its lock after about idle + interval * count = 60 s, not the kernel's default two hours.
_KEEPALIVE = {"tcp_keepalives_idle": 30, "tcp_keepalives_interval": 10, "tcp_keepalives_count": 3}
_UNFINISHED = ("NOT_STARTED", "STARTING", "STARTED", "CANCELING")


def ensure_pools(instance: Any) -> list[str]:
    """Make the pools usable before a run starts: create their rows with the instance's default
    limit unless they exist, and free the slots of dead in-process runs (``release_dead_runs``,
    whose run ids it returns)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    existing = storage.get_concurrency_keys()
    for pool in POOLS:
        if pool in existing:
            continue
        try:
            storage.initialize_concurrency_limit_to_default(pool)
        except Exception:
            # Another process created it at the same moment (the race described above).
            if pool not in storage.get_concurrency_keys():
                raise
    return release_dead_runs(instance)


def _postgres_url(instance: Any) -> str | None:
    """The libpq URL of the instance's Dagster database (dagster-postgres storage), else None."""
    url = getattr(instance.event_log_storage, "postgres_url", None)
    return for_psycopg(url) if isinstance(url, str) else None


def _connect(url: str, purpose: str) -> Any:
    import psycopg

    return psycopg.connect(url, connect_timeout=10, application_name=f"og-pipeline {purpose}"[:63])


@contextmanager
def hold_run_liveness(instance: Any, run_id: str) -> Iterator[dict[str, str]]:
    """Hold run ``run_id``'s liveness lock while the block runs; yields the run tags that say so
    (none without Postgres storage). Enter it before the run is created and leave it after the
    run ended and its slots were freed, so the lock is held whenever the run may hold a slot."""
    url = _postgres_url(instance)
    if url is None:
        yield {}
        return
    conn = _connect(url, f"run {run_id}")
    try:
        conn.autocommit = True  # a session lock, with no transaction left open for the run's length
        for setting, value in _KEEPALIVE.items():
            conn.execute(f"SET {setting} = {int(value)}")
        conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (_LOCK_NAMESPACE, run_id))
        yield {
            LIVENESS_TAG: LIVENESS_ADVISORY_LOCK,
            PID_TAG: str(os.getpid()),
            HOST_TAG: socket.gethostname(),
        }
    finally:
        conn.close()  # ends the session, which releases the lock


def release_dead_runs(instance: Any) -> list[str]:
    """Mark failed, and free the slots of, every unfinished run holding a liveness lock no more.

    Returns their run ids. A run whose process lives keeps its lock, so it is never touched; one
    that finished between the listing and the lock is left as it ended.
    """
    import dagster as dg

    url = _postgres_url(instance)
    if url is None:
        return []
    statuses = [dg.DagsterRunStatus(status) for status in _UNFINISHED]
    runs = instance.get_runs(
        filters=dg.RunsFilter(statuses=statuses, tags={LIVENESS_TAG: LIVENESS_ADVISORY_LOCK})
    )
    if not runs:
        return []
    released = []
    with _connect(url, "release dead runs") as conn:
        for run in runs:
            # A transaction lock: held while the run is marked, released at commit.
            with conn.transaction():
                (owner_gone,) = conn.execute(
                    "SELECT pg_try_advisory_xact_lock(%s, hashtext(%s))",
                    (_LOCK_NAMESPACE, run.run_id),
                ).fetchone()
                if not owner_gone:
                    continue
                current = instance.get_run_by_id(run.run_id)
                if current is None or current.status.value not in _UNFINISHED:
                    continue
                where = f"pid {run.tags.get(PID_TAG, '?')} on {run.tags.get(HOST_TAG, '?')}"
                instance.report_run_failed(
                    current,
                    (
                        f"The process running this run ({where}) is gone: killed or crashed "
                        "without ending the run. Marked failed by og-pipeline, and its pool slots "
                        "freed."
                    ),
                )
                instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
                released.append(run.run_id)
    return released
