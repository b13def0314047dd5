"""Claiming committed webhook events into batches, and recording what became of each event.

    receiver: INSERT event (pending)                       -- committed before the 2xx
    sensor:   claim_batch() -> batch id -> RunRequest(run_key=batch id)
    run:      start_batch(batch) -> batch_events(batch) -> apply -> mark / mark_retry

A run holds its batch's advisory lock (``start_batch``) until its connection closes, however its
process ends. So a started batch whose lock is free while its events are still pending belongs to
a run that died (SIGKILL, a lost node): ``claim_batch`` takes those events again at once. Only a
batch that no run ever started waits ``STALE_BATCH``: a launched run may still be on its way.

An event whose processing failed goes back to the pool with an exponential backoff, up to
``max_attempts``; then it is marked failed with its reason, and ``replay`` puts it back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from og_pipeline.db.connection import one
from og_pipeline.reasons import MAX_REASON
from og_pipeline.webhooks.staging import PENDING, classify

# A batch that no run started (a launch that failed, a run still queued) is claimed again after
# this long; processing is idempotent, so a rare overlap with a late run costs a repeat, never a
# loss. A started batch whose run died is claimed again at once (see the module docstring).
STALE_BATCH = "15 minutes"
# First key of a batch's two-key advisory lock, og-pipeline's namespace ("ob"); the second is the
# batch id folded into an int4: a collision only makes a dead batch look alive until the other
# batch's run ends, never the reverse.
_BATCH_LOCK = 0x6F62


def _lock_key(batch_id: int) -> int:
    return batch_id % 2_147_483_647


@dataclass(frozen=True)
class StagedEvent:
    seq: int
    event_id: str
    event_type: str
    created: datetime | None
    attempts: int
    payload: dict[str, Any]


def start_batch(conn: psycopg.Connection, batch_id: int) -> None:
    """Take batch ``batch_id`` for this connection's session and record that a run started it.

    Commits. Waits while another live session holds the batch (a claim that is moving it
    elsewhere, or a second run of the same batch): afterwards, its pending events are this
    run's to apply, or gone to another batch.
    """
    conn.execute("SELECT pg_advisory_lock(%s, %s)", (_BATCH_LOCK, _lock_key(batch_id)))
    conn.execute(
        "UPDATE og.webhook_batches SET started_at = coalesce(started_at, now()) WHERE id = %s",
        (batch_id,),
    )
    conn.commit()


def _dead_batches(conn: psycopg.Connection) -> list[int]:
    """Started batches still holding pending events whose run's lock is free: their run died.
    Each is locked for the caller's transaction, so no late run starts it meanwhile."""
    started = conn.execute(
        "SELECT DISTINCT b.id FROM og.webhook_events e "
        "JOIN og.webhook_batches b ON b.id = e.batch_id "
        "WHERE e.status = 'pending' AND b.started_at IS NOT NULL ORDER BY b.id"
    ).fetchall()
    dead = []
    for (batch_id,) in started:
        (free,) = one(
            conn.execute(
                "SELECT pg_try_advisory_xact_lock(%s, %s)", (_BATCH_LOCK, _lock_key(batch_id))
            )
        )
        if free:
            dead.append(batch_id)
    return dead


def claim_batch(conn: psycopg.Connection, limit: int = 500, *, start: bool = False) -> int | None:
    """Claim up to ``limit`` ready pending events into a new batch; None when there are none.

    Ready: in no batch, in a batch no run started for ``STALE_BATCH``, or in a batch whose run
    died. With ``start``, the new batch is also started by this session (``start_batch``) in the
    same transaction, so no moment exists at which a kill leaves it claimed and unstarted.
    """
    with conn.transaction():
        dead = _dead_batches(conn)
        rows = conn.execute(
            f"""
            SELECT e.seq FROM og.webhook_events e
            LEFT JOIN og.webhook_batches b ON b.id = e.batch_id
            WHERE e.status = 'pending'
              AND (e.batch_id IS NULL OR e.batch_id = ANY(%s)
                   OR (b.started_at IS NULL AND b.claimed_at < now() - interval '{STALE_BATCH}'))
              AND (e.next_attempt_at IS NULL OR e.next_attempt_at <= now())
            ORDER BY e.seq
            LIMIT %s
            FOR UPDATE OF e SKIP LOCKED
            """,
            (dead, limit),
        ).fetchall()
        if not rows:
            return None
        batch_id = one(
            conn.execute(
                "INSERT INTO og.webhook_batches (events, started_at) "
                "VALUES (%s, CASE WHEN %s THEN now() END) RETURNING id",
                (len(rows), start),
            )
        )[0]
        if start:
            conn.execute("SELECT pg_advisory_lock(%s, %s)", (_BATCH_LOCK, _lock_key(batch_id)))
        conn.execute(
            "UPDATE og.webhook_events SET batch_id = %s WHERE seq = ANY(%s)",
            (batch_id, [row[0] for row in rows]),
        )
    return batch_id


def open_batches(conn: psycopg.Connection) -> list[int]:
    """Batches that still hold pending events (their run has not finished them yet)."""
    rows = conn.execute(
        "SELECT DISTINCT batch_id FROM og.webhook_events "
        "WHERE status = 'pending' AND batch_id IS NOT NULL ORDER BY batch_id"
    ).fetchall()
    return [row[0] for row in rows]


def batch_events(conn: psycopg.Connection, batch_id: int) -> list[StagedEvent]:
    """The batch's pending events in Ordergroove's order (created, then arrival)."""
    rows = conn.execute(
        "SELECT seq, event_id, event_type, og_created_at, attempts, payload FROM og.webhook_events "
        "WHERE batch_id = %s AND status = 'pending' ORDER BY og_created_at NULLS LAST, seq",
        (batch_id,),
    ).fetchall()
    return [
        StagedEvent(
            seq,
            event_id,
            event_type,
            created,
            attempts,
            payload if isinstance(payload, dict) else json.loads(payload),
        )
        for seq, event_id, event_type, created, attempts, payload in rows
    ]


def mark(conn: psycopg.Connection, seqs: list[int], status: str) -> None:
    if seqs:
        conn.execute(
            "UPDATE og.webhook_events SET status = %s, processed_at = now(), "
            "attempts = attempts + 1, last_error = NULL WHERE seq = ANY(%s)",
            (status, seqs),
        )


def mark_retry(
    conn: psycopg.Connection,
    event: StagedEvent,
    error: str,
    *,
    max_attempts: int,
    base_delay_seconds: float = 30.0,
) -> str:
    """Back to the pool with exponential backoff, or failed after ``max_attempts``."""
    attempts = event.attempts + 1
    if attempts >= max_attempts:
        conn.execute(
            "UPDATE og.webhook_events SET status = 'failed', attempts = %s, last_error = %s, "
            "batch_id = NULL WHERE seq = %s",
            (attempts, error[:MAX_REASON], event.seq),
        )
        return "failed"
    conn.execute(
        "UPDATE og.webhook_events SET attempts = %s, last_error = %s, batch_id = NULL, "
        "next_attempt_at = now() + make_interval(secs => %s) WHERE seq = %s",
        (attempts, error[:MAX_REASON], base_delay_seconds * 2 ** (attempts - 1), event.seq),
    )
    return "retry"


# A batch of rows per statement: pruning a month of events at once would hold their row locks
# through one long statement.
_PRUNE = """
UPDATE og.webhook_events SET body = ''::bytea, payload = NULL
WHERE seq IN (
    SELECT seq FROM og.webhook_events
    WHERE processed_at < now() - make_interval(days => %(days)s)
      AND status IN ('processed', 'ignored') AND payload IS NOT NULL
    LIMIT 10000
)
"""


def prune_bodies(conn: psycopg.Connection, retention_days: int) -> int:
    """Remove the bodies and payloads (personal data) of events processed or ignored more than
    ``retention_days`` ago; their ids, types and times stay for de-duplication and the record.
    Failed and invalid events keep theirs: replay needs them. Commits each batch."""
    pruned = 0
    while count := conn.execute(_PRUNE, {"days": retention_days}).rowcount:
        conn.commit()
        pruned += count
    conn.commit()
    return pruned


def stale_pending(conn: psycopg.Connection, minutes: float) -> int:
    """Pending events received more than ``minutes`` ago and due (not waiting for a retry):
    the sensor or its runs are not keeping up, or not running."""
    return one(
        conn.execute(
            "SELECT count(*) FROM og.webhook_events WHERE status = 'pending' "
            "AND received_at < now() - make_interval(mins => %(m)s) "
            "AND (next_attempt_at IS NULL "
            "OR next_attempt_at < now() - make_interval(mins => %(m)s))",
            {"m": minutes},
        )
    )[0]


def status_counts(conn: psycopg.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT status, count(*) FROM og.webhook_events GROUP BY status").fetchall()
    return {status: count for status, count in rows}


def replay(conn: psycopg.Connection, *, event_ids: list[str] | None = None) -> tuple[int, int]:
    """Put failed events back to pending (attempts reset), and re-validate invalid ones with the
    receiver's rules: one that now reads as an event is queued too, the rest stay invalid.

    Returns (failed events queued, invalid events queued).
    """
    only = " AND event_id = ANY(%(ids)s)" if event_ids else ""
    params: dict[str, Any] = {"ids": event_ids}
    failed = conn.execute(
        "UPDATE og.webhook_events SET status = 'pending', attempts = 0, next_attempt_at = NULL, "
        "batch_id = NULL, last_error = NULL WHERE status = 'failed'" + only,
        params,
    ).rowcount
    revived = 0
    for seq, body in conn.execute(
        "SELECT seq, body FROM og.webhook_events WHERE status = 'invalid'" + only, params
    ).fetchall():
        delivery = classify(bytes(body))
        if delivery.status != PENDING:
            continue
        try:
            with conn.transaction():
                conn.execute(
                    "UPDATE og.webhook_events SET status = 'pending', event_id = %s, "
                    "event_type = %s, og_created_at = %s, payload = %s::jsonb, attempts = 0, "
                    "last_error = NULL, batch_id = NULL, next_attempt_at = NULL WHERE seq = %s",
                    (
                        delivery.event_id,
                        delivery.event_type,
                        delivery.created,
                        delivery.payload_json,
                        seq,
                    ),
                )
        except psycopg.errors.UniqueViolation:
            continue  # the same event also arrived valid: that copy is the one to process
        revived += 1
    conn.commit()
    return failed, revived
