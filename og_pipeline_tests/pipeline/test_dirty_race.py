"""Dirty markers under concurrency: a change committed while the stats are recomputed is not
lost, a stats step that runs during a sync does not keep the sync from fetching customers, and
a batch that deadlocks with another writer is upserted again.

The interleavings are forced, not hoped for: a third connection holds row locks that stop the
recompute after it took its snapshot, or a writer's transaction is left open across a whole
recompute. Waits poll Postgres' lock table (pg_blocking_pids) up to a deadline; nothing sleeps
to let the other side get somewhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
import pytest

from og_pipeline.contacts.stats import recompute_dirty
from og_pipeline.db.connection import connect
from og_pipeline.ordergroove import sync
from og_pipeline.ordergroove.client import OrdergrooveClient
from og_pipeline.ordergroove.load import store
from og_pipeline.ordergroove.records import ParseContext

ZONE = "UTC"
DEADLINE = 30.0  # seconds any forced wait may take before the test fails instead of hanging


def _subscription(
    public_id: str, customer: str, *, live: bool = True, updated: str = "2026-11-02 10:00:00"
) -> dict[str, Any]:
    return {
        "public_id": public_id,
        "customer": customer,
        "product": "SKU-1",
        "live": live,
        "created": "2026-11-01 08:00:00",
        "updated": updated,
    }


def _write(conn: psycopg.Connection, *records: dict[str, Any]) -> None:
    """Upsert subscriptions as the sync and the webhooks do (the caller commits)."""
    store(conn, "subscriptions", list(records), ParseContext(ZONE, datetime.now(UTC)))


def _counts(conn: psycopg.Connection, customer: str) -> tuple[int, int]:
    row = conn.execute(
        "SELECT active_subscriptions, total_subscriptions FROM og.contact_stats "
        "WHERE customer_id = %s",
        (customer,),
    ).fetchone()
    assert row is not None, f"no stats for {customer}"
    return row


def _wait_for(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE:.0f} s: {what}")
        time.sleep(0.01)  # polling interval only; the condition is the synchronisation


def _blocked(monitor: psycopg.Connection, pid: int) -> bool:
    """Whether backend ``pid`` is waiting for a lock another backend holds."""
    return bool(monitor.execute("SELECT pg_blocking_pids(%s)", (pid,)).fetchone()[0])


@pytest.fixture
def monitor(db_url: str) -> Iterator[psycopg.Connection]:
    with connect(db_url, autocommit=True) as conn:
        yield conn


def test_a_change_committed_while_the_recompute_runs_is_recomputed_by_the_next_run(
    db_url: str, monitor: psycopg.Connection
) -> None:
    with connect(db_url) as conn:
        _write(conn, _subscription("s-y1", "cust-y"), _subscription("s-x1", "cust-x"))
        conn.commit()
        recompute_dirty(conn)
        # Both contacts change again: both dirty, cust-y's marker first in the table.
        _write(conn, _subscription("s-y2", "cust-y"))
        conn.commit()
        _write(conn, _subscription("s-x2", "cust-x"))
        conn.commit()
        assert conn.execute(
            "SELECT customer_id FROM og.dirty_contacts ORDER BY ctid"
        ).fetchall() == [("cust-y",), ("cust-x",)]
        conn.commit()

    with (
        connect(db_url) as holder,
        connect(db_url) as stats_conn,
        connect(db_url) as writer,
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        # The holder stops the recompute once it has its snapshot and before it reaches
        # cust-x's marker, wherever the code blocks first: on cust-y's marker (a DELETE scanning
        # the table) or on cust-y's stats row (the upsert).
        holder.execute("SELECT 1 FROM og.dirty_contacts WHERE customer_id = 'cust-y' FOR UPDATE")
        holder.execute("SELECT 1 FROM og.contact_stats WHERE customer_id = 'cust-y' FOR UPDATE")
        stats_pid, writer_pid = stats_conn.info.backend_pid, writer.info.backend_pid
        try:
            recompute: Future[tuple[int, int]] = pool.submit(recompute_dirty, stats_conn)
            _wait_for("the recompute waits for the holder", lambda: _blocked(monitor, stats_pid))

            # A writer cancels one of cust-x's subscriptions: a change the recompute's snapshot
            # does not have. It commits now, or (if the recompute holds cust-x's marker) right
            # after the recompute commits; either way it must leave a marker behind.
            def cancel() -> None:
                _write(
                    writer,
                    _subscription("s-x1", "cust-x", live=False, updated="2026-11-02 11:00:00"),
                )
                writer.commit()

            cancelled = pool.submit(cancel)
            _wait_for(
                "the writer committed or waits for the recompute",
                lambda: cancelled.done() or _blocked(monitor, writer_pid),
            )
        finally:
            holder.commit()
        recompute.result(timeout=DEADLINE)
        cancelled.result(timeout=DEADLINE)

    with connect(db_url) as conn:
        recompute_dirty(conn)
        assert _counts(conn, "cust-x") == (1, 2)
        assert _counts(conn, "cust-y") == (2, 2)
        assert conn.execute("SELECT count(*) FROM og.dirty_contacts").fetchone() == (0,)


def test_a_writer_open_across_a_recompute_keeps_its_marker_and_the_recompute_does_not_wait(
    db_url: str,
) -> None:
    with connect(db_url) as conn:
        _write(conn, _subscription("s-x1", "cust-x"), _subscription("s-x2", "cust-x"))
        conn.commit()
        recompute_dirty(conn)
        _write(conn, _subscription("s-x3", "cust-x"))  # already dirty when the writer comes
        conn.commit()

    with connect(db_url) as writer, connect(db_url) as stats_conn:
        # The writer's transaction stays open (a webhook batch is one transaction; the statement
        # before the write opens it, so the write's own transaction block is a savepoint): the
        # recompute neither sees its change nor waits for it (lock_timeout turns a wait into an
        # error).
        writer.execute("SELECT 1")
        _write(writer, _subscription("s-x1", "cust-x", live=False, updated="2026-11-02 11:00:00"))
        stats_conn.execute("SET lock_timeout = '5s'")
        stats_conn.commit()
        recompute_dirty(stats_conn)
        assert _counts(stats_conn, "cust-x") == (3, 3)
        stats_conn.commit()
        writer.commit()
        recompute_dirty(stats_conn)
        assert _counts(stats_conn, "cust-x") == (2, 3)


class _Ordergroove:
    """What sync_window uses of the client: pages per resource, and customers by id."""

    zone = ZONE
    last_request_seconds = 0.0

    def __init__(
        self, pages: dict[str, list[list[dict[str, Any]]]], customers: dict[str, dict[str, Any]]
    ) -> None:
        self.pages = pages
        self.customers = customers
        self.asked: list[str] = []

    def sibling(self) -> _Ordergroove:
        return self  # each walk's client: this one serves them all

    def close(self) -> None:
        pass

    def iter_updated(
        self, resource: str, start: datetime, end: datetime
    ) -> Iterator[list[dict[str, Any]]]:
        yield from self.pages.get(resource, [])

    def get_customer(self, merchant_user_id: str) -> dict[str, Any] | None:
        self.asked.append(merchant_user_id)
        return self.customers.get(merchant_user_id)


def test_a_stats_step_between_the_walk_and_the_customer_lookup_leaves_the_customer_fetched(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Old accounts that subscribed in the window: the customers walk does not bring them.
    # cust-gone is one Ordergroove answers 404 for; cust-known is already stored.
    with connect(db_url) as conn:
        store(
            conn,
            "customers",
            [
                {
                    "merchant_user_id": "cust-known",
                    "email": "k@example.com",
                    "live": True,
                    "last_updated": "2026-10-01 09:00:00",
                }
            ],
            ParseContext(ZONE, datetime.now(UTC)),
        )
        conn.commit()
    client = _Ordergroove(
        pages={
            "subscriptions": [
                [
                    _subscription("s-1", "cust-old"),
                    _subscription("s-2", "cust-gone"),
                    _subscription("s-3", "cust-known"),
                    _subscription("s-4", "cust-old"),
                ]
            ]
        },
        customers={
            "cust-old": {
                "merchant_user_id": "cust-old",
                "email": "old@example.com",
                "live": True,
                "last_updated": "2025-06-01 09:00:00",
            }
        },
    )
    real_connect = sync.connect
    steps: list[tuple[int, int]] = []

    def connect_after_a_stats_step(url: str, **kwargs: Any) -> psycopg.Connection:
        # sync_window connects here once the walk is written, for the lookup: a webhook run's
        # stats step runs first, as it may in production, and consumes the markers.
        with real_connect(url) as other:
            steps.append(recompute_dirty(other))
        return real_connect(url, **kwargs)

    monkeypatch.setattr(sync, "connect", connect_after_a_stats_step)
    monkeypatch.setattr(sync, "_MISSING_PAGE", 1)  # one id a page: the 404 is not asked twice
    report = sync.sync_window(
        cast(OrdergrooveClient, client),
        db_url,
        datetime(2026, 11, 2, 10, tzinfo=UTC),
        datetime(2026, 11, 2, 11, tzinfo=UTC),
    )

    assert steps == [(3, 3)]  # the stats step did run in between, over all three contacts
    assert client.asked == ["cust-gone", "cust-old"]
    assert (report.customers_looked_up, report.customers_not_found) == (2, 1)
    with connect(db_url) as conn:
        recompute_dirty(conn)
        assert conn.execute(
            "SELECT customer_id, email FROM og.contact_stats ORDER BY customer_id"
        ).fetchall() == [
            ("cust-gone", None),
            ("cust-known", "k@example.com"),
            ("cust-old", "old@example.com"),
        ]


def test_a_batch_that_deadlocks_with_another_writer_is_upserted_again_not_lost(
    db_url: str, monitor: psycopg.Connection
) -> None:
    """A webhook batch holds one subscription and wants another that the sync's batch holds:
    Postgres aborts the sync's side, which upserts its batch again once the way is clear."""
    with connect(db_url) as seed:
        _write(seed, _subscription("s1", "c1"), _subscription("s2", "c2"))
        seed.commit()
    with connect(db_url) as writer, connect(db_url) as other, ThreadPoolExecutor(1) as pool:
        try:
            # The writer is the side Postgres aborts: its deadlock check runs first.
            writer.execute("SET deadlock_timeout = '1s'")
            other.execute("SET deadlock_timeout = '60s'")
        except psycopg.errors.InsufficientPrivilege:
            pytest.skip("setting deadlock_timeout needs a superuser on this server")
        writer.commit()
        other.commit()
        writer_pid = writer.info.backend_pid
        other.execute("SELECT 1 FROM og.subscriptions WHERE public_id = 's2' FOR UPDATE")
        changed = "2026-11-02 11:00:00"
        upserting: Future[None] = pool.submit(
            _write,
            writer,
            _subscription("s1", "c1", live=False, updated=changed),
            _subscription("s2", "c2", live=False, updated=changed),
        )
        _wait_for("the writer waits for s2", lambda: _blocked(monitor, writer_pid))
        # The cycle: the writer holds s1 and waits for s2; this waits for s1.
        other.execute("SELECT 1 FROM og.subscriptions WHERE public_id = 's1' FOR UPDATE")
        other.commit()
        upserting.result(timeout=DEADLINE)
        writer.commit()
    lives = dict(monitor.execute("SELECT public_id, live FROM og.subscriptions").fetchall())
    assert lives == {"s1": False, "s2": False}
