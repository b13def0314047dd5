"""The sync's writer: parses, upserts and commits batches of records in a process of its own.

    walk (calling process)                           writer process (one per sync)
    ~1,000 records -> orjson bytes -> bounded queue -> parse (a thread) -> upsert, set aside,
                                                       commit (another thread, overlapping)
    end of a resource                              -> ANALYZE its table after a large load
    counts per batch (on_write)   <- results queue  <- counts, or the error that stopped it

Why a process and not a thread: normalising and serialising are Python work, and in a thread
they hold the interpreter lock the walk needs to read each page, so a fast API walk slowed by a
third or more (bench/README.md). In its own process that work, and the wait for Postgres, runs
beside the walk instead. Batches are written in the order submitted (orders before their items),
each in its own commit, so a failure keeps what was written before it.

The process is started with "spawn": forking Dagster's run process, which has threads of its
own, is not safe. Spawn re-imports the caller's main script, so a script that syncs directly
(not through Dagster or og-pipeline's commands, whose entry points are guarded) needs an
``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Self

import orjson
import psycopg

from og_pipeline.db.connection import connect, one
from og_pipeline.ordergroove.load import TABLES, UpsertCounts, normalise, store_rows
from og_pipeline.ordergroove.records import ParseContext, storable_batch
from og_pipeline.reasons import safe_reason

QUEUE_BATCHES = 2  # batches waiting for the writer: the walk runs ahead by ~3,000 records at most
_POLL = 0.5  # seconds between checks that the writer is still alive while waiting on it
_START_TIMEOUT = 60.0  # a spawned interpreter imports psycopg and friends: seconds, not minutes
# A table that grew by this many rows, and by a tenth or more, gets fresh planner statistics
# right away: a first backfill fills empty tables faster than autovacuum notices, and without
# statistics the stats query plans for a few hundred rows and runs 60x slower. Done as each
# table's walk ends, so it runs while the walk goes on.
ANALYZE_MIN_INSERTS = 1_000
ANALYZE_GROWTH = 0.1


class WriterError(RuntimeError):
    """The writer process stopped: its error (type and message), or how it exited."""


class BatchWriter:
    """``with BatchWriter(url, zone) as writer: writer.submit(resource, records, fetched_at)``.

    Leaving the block waits until every batch submitted is written (even when the walk failed,
    so what was fetched is kept) and raises the writer's error, if any. ``counts`` holds the
    upsert counts per resource; ``on_write`` is called on the submitting thread per batch.
    """

    def __init__(
        self,
        database_url: str,
        zone: str,
        on_write: Callable[[str, UpsertCounts], None] | None = None,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.counts: dict[str, UpsertCounts] = {}
        self._on_write = on_write
        self._batches: Any = context.Queue(maxsize=QUEUE_BATCHES)
        self._results: Any = context.Queue()
        self._process = context.Process(
            target=_serve,
            args=(database_url, zone, self._batches, self._results, os.getpid()),
            name="og-sync-writer",
            daemon=True,
        )
        self._finished = False

    def __enter__(self) -> Self:
        self._process.start()
        self._expect("ready", timeout=_START_TIMEOUT)
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def submit(self, resource: str, records: list[Any], fetched_at: datetime) -> None:
        """Queue a batch read at ``fetched_at`` (the first of its pages: no record in it can
        have changed after that moment)."""
        self._drain()
        try:
            payload: bytes | list[Any] = orjson.dumps(records)
        except orjson.JSONEncodeError:
            # Text orjson refuses (a lone surrogate) or a huge integer: pickled as it is, for the
            # writer to set aside or store.
            payload = records
        self._put(("write", resource, payload, fetched_at.timestamp()))

    def end_of(self, resource: str) -> None:
        """The walk of ``resource`` is over (its table may be analysed now)."""
        self._put(("end", resource, b"", 0.0))

    def checkpoint(
        self, resource: str, range_start: datetime, range_end: datetime, done_until: datetime
    ) -> None:
        """Record, after every batch submitted before it is committed, that ``resource``'s walk
        of the range is done up to ``done_until`` (og.sync_checkpoints)."""
        payload = orjson.dumps(
            [range_start.isoformat(), range_end.isoformat(), done_until.isoformat()]
        )
        self._put(("checkpoint", resource, payload, 0.0))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        try:
            if not self._finished:
                self._put(None)
                self._expect("done", timeout=None)
        except WriterError:
            if exc is None:
                raise
            # The walk's own error is the one to report; the writer's was a consequence.
        finally:
            # Batches the writer will never read must not hold this process at exit.
            self._batches.cancel_join_thread()
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()
                self._process.join()

    # -- internals ---------------------------------------------------------------------------

    def _put(self, item: object) -> None:
        while True:
            try:
                self._batches.put(item, timeout=_POLL)
                return
            except queue.Full:
                self._drain()  # raises if the writer stopped
                self._check_alive()

    def _drain(self) -> None:
        while True:
            try:
                message = self._results.get_nowait()
            except queue.Empty:
                return
            self._handle(message)

    def _expect(self, kind: str, timeout: float | None) -> None:
        """Handle results until ``kind`` arrives (raising the writer's error if that comes)."""
        waited = 0.0
        while True:
            try:
                message = self._results.get(timeout=_POLL)
            except queue.Empty:
                self._check_alive()
                waited += _POLL
                if timeout is not None and waited >= timeout:
                    raise WriterError(
                        f"the sync's writer process did not get {kind} within {timeout:.0f} s"
                    ) from None
                continue
            if self._handle(message) == kind:
                return

    def _handle(self, message: tuple[Any, ...]) -> str:
        kind = message[0]
        if kind == "written":
            _, resource, received, inserted, updated, rejected = message
            counts = UpsertCounts(
                received=received, inserted=inserted, updated=updated, rejected=rejected
            )
            self.counts.setdefault(resource, UpsertCounts()).add(counts)
            if self._on_write is not None:
                self._on_write(resource, counts)
        elif kind == "error":
            self._finished = True
            raise WriterError(message[1])
        elif kind == "done":
            self._finished = True
        return kind

    def _check_alive(self) -> None:
        if not self._process.is_alive():
            self._finished = True
            self._drain()  # its last words (an error) may be queued
            raise WriterError(
                "the sync's writer process exited unexpectedly "
                f"(exit code {self._process.exitcode})"
            )


class _Orphaned(Exception):
    """The sync that started this writer is gone (killed: a daemon child is not, then)."""


def _next(batches: Any, parent: int) -> Any:
    # A SIGKILLed or OOM-killed sync cannot stop its writer, which would wait on the queue for
    # ever, holding a database connection: so the wait looks for its parent now and then.
    while True:
        try:
            return batches.get(timeout=_POLL)
        except queue.Empty:
            if os.getppid() != parent:
                raise _Orphaned from None


def _watch_parent(parent: int) -> None:
    """Exit the writer process as soon as the sync that started it is gone.

    Checking between batches is not enough: a sync killed in the middle of putting a batch
    leaves half a message in the queue's pipe, and the writer, reading it, would wait for the
    rest for ever. This thread ends the process whatever the main thread is waiting on; the
    server rolls back the open transaction when the connection drops.
    """
    while os.getppid() == parent:
        time.sleep(_POLL)
    os._exit(3)


def _parse_ahead(batches: Any, parent: int, zone: str, parsed: queue.Queue[Any]) -> None:
    """The writer's second thread: reads and parses the next batch while the first waits on
    Postgres for the one before, so parsing (Python) and upserting (the server) overlap."""
    try:
        while (item := _next(batches, parent)) is not None:
            action, resource, payload, fetched_at = item
            if action == "write":
                records = orjson.loads(payload) if isinstance(payload, bytes) else payload
                context = ParseContext(
                    zone,
                    datetime.fromtimestamp(fetched_at, tz=UTC),
                    storable=isinstance(payload, bytes) and storable_batch(payload),
                )
                payload = normalise(resource, records, context)
            parsed.put((action, resource, payload))
        parsed.put(None)
    except BaseException as exc:  # noqa: BLE001 - raised by the writer's main thread
        parsed.put(("failed", "", exc))


def _serve(database_url: str, zone: str, batches: Any, results: Any, parent: int) -> None:
    """The writer process: one connection, batches in order, a commit per batch."""
    threading.Thread(
        target=_watch_parent, args=(parent,), name="og-writer-watch", daemon=True
    ).start()
    try:
        with connect(database_url) as conn:
            # A crash loses at most the last few commits, which the rerun of the unfinished
            # partition reads again (the partition is only marked done at the end): no need to
            # wait for each commit's flush to disk, which would dominate a long walk.
            conn.execute("SET synchronous_commit = off")
            conn.commit()
            results.put(("ready",))
            # One batch parsed ahead at most: memory stays a few batches whatever the walk.
            parsed: queue.Queue[Any] = queue.Queue(maxsize=1)
            threading.Thread(
                target=_parse_ahead,
                args=(batches, parent, zone, parsed),
                name="og-writer-parse",
                daemon=True,
            ).start()
            inserted: dict[str, int] = {}
            while (item := parsed.get()) is not None:
                action, resource, payload = item
                if action == "failed":
                    raise payload
                if action == "end":
                    _analyze_if_grown(conn, TABLES[resource].table, inserted.get(resource, 0))
                    continue
                if action == "checkpoint":
                    save_checkpoint(conn, resource, *orjson.loads(payload))
                    conn.commit()
                    continue
                rows, rejected = payload
                counts = store_rows(conn, resource, rows, rejected)
                conn.commit()
                inserted[resource] = inserted.get(resource, 0) + counts.inserted
                results.put(
                    (
                        "written",
                        resource,
                        counts.received,
                        counts.inserted,
                        counts.updated,
                        counts.rejected,
                    )
                )
            _analyze_if_grown(conn, "og.dirty_contacts", sum(inserted.values()))
        results.put(("done",))
    except _Orphaned:
        results.cancel_join_thread()  # nobody reads the results any more; the rollback is the point
    except BaseException as exc:  # noqa: BLE001 - reported to the walk, which raises it
        results.put(("error", safe_reason(exc)))


_CHECKPOINT = """
INSERT INTO og.sync_checkpoints (range_start, range_end, resource, done_until)
VALUES (%s, %s, %s, %s)
ON CONFLICT (range_start, range_end, resource)
DO UPDATE SET done_until = EXCLUDED.done_until, updated_at = now()
"""


def save_checkpoint(
    conn: psycopg.Connection, resource: str, range_start: str, range_end: str, done_until: str
) -> None:
    conn.execute(_CHECKPOINT, (range_start, range_end, resource, done_until))


def _analyze_if_grown(conn: psycopg.Connection, table: str, inserted: int) -> None:
    if inserted < ANALYZE_MIN_INSERTS:
        return
    # reltuples is the planner's row estimate; -1 until the table is first analysed.
    estimate = one(
        conn.execute("SELECT reltuples FROM pg_class WHERE oid = %s::regclass", (table,))
    )[0]
    if estimate < 0 or inserted >= ANALYZE_GROWTH * estimate:
        # Identifiers from the constant table specs, never from input.
        conn.execute(f"ANALYZE {table}")
    conn.commit()
