"""One sync of a time window: a cursor walk per object type, upserted in batches of pages.

    for resource in customers, subscriptions, orders, items:      # sequential: one cursor at a time
        this thread:   client.iter_updated(resource, start, end) -> ~1,000 records -> bounded queue
        writer thread: normalise, serialise, upsert, commit          # one batch at a time, in order

The walk never waits for the writing of earlier pages, and the writing is one thread doing one
thing at a time: on a machine where the API, this process and Postgres share few CPUs, the walk
keeps a CPU of its own instead of competing with normalising and a running statement at once
(bench/README.md). Batches are written in the order walked, so orders are stored before their
items.

The window is the partition's (an hour, or a whole backfill range as one walk) widened by a small
overlap before its start, since Ordergroove's clock and zone are not ours; upserts make re-reading
harmless. Memory holds a few batches at most, whatever the window's size. Each batch commits
on its own, so a failure keeps what was loaded (a rerun re-reads it as "unchanged").
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Self

import psycopg

from og_pipeline.ordergroove.client import OrdergrooveClient
from og_pipeline.ordergroove.load import (
    UpsertCounts,
    normalise,
    serialise,
    upsert,
    upsert_serialised,
)

# Items come after orders: a line's customer is found through its order.
RESOURCES = ("customers", "subscriptions", "orders", "items")
WRITE_QUEUE = 2  # batches waiting for the writer: the walk runs ahead by up to ~3,000 records
# Inserts after which the walk refreshes the planner's statistics itself.
ANALYZE_AFTER_INSERTS = 10_000
# Records per statement and commit: pages of 100 are too small a unit of work for Postgres.
WRITE_BATCH = 1000


@dataclass
class SyncReport:
    start: datetime
    end: datetime
    counts: dict[str, UpsertCounts] = field(default_factory=dict)
    pages: dict[str, int] = field(default_factory=dict)
    customers_looked_up: int = 0
    customers_not_found: int = 0

    @property
    def records(self) -> int:
        return sum(c.received for c in self.counts.values())

    def as_metadata(self) -> dict[str, int]:
        flat: dict[str, int] = {}
        for resource, counts in self.counts.items():
            flat[f"{resource}_fetched"] = counts.received
            flat[f"{resource}_inserted"] = counts.inserted
            flat[f"{resource}_updated"] = counts.updated
            flat[f"{resource}_pages"] = self.pages.get(resource, 0)
        flat["customers_looked_up"] = self.customers_looked_up
        flat["customers_not_found"] = self.customers_not_found
        return flat


_DONE = object()


def sync_window(
    client: OrdergrooveClient,
    conn: psycopg.Connection,
    start: datetime,
    end: datetime,
    *,
    overlap: timedelta = timedelta(minutes=5),
    resources: tuple[str, ...] = RESOURCES,
    on_page: Callable[[str, UpsertCounts], None] | None = None,
) -> SyncReport:
    """Walk and upsert every record updated in ``[start - overlap, end)``."""
    # The API's filter is inclusive at both ends and has whole seconds.
    window_start, window_end = start - overlap, end - timedelta(seconds=1)
    report = SyncReport(start=window_start, end=window_end)
    # A crash loses at most the last few commits, which the rerun of the unfinished partition
    # reads again (the partition is only marked done at the end): no need to wait for each
    # commit's flush to disk, which would dominate a long walk.
    conn.execute("SET synchronous_commit = off")
    with _Writer(conn, report, on_page) as writer:
        for resource in resources:
            report.counts.setdefault(resource, UpsertCounts())
            report.pages[resource] = 0
            pending: list[dict[str, Any]] = []
            for page in client.iter_updated(resource, window_start, window_end):
                pending.extend(page)
                report.pages[resource] += 1
                if len(pending) >= WRITE_BATCH:
                    writer.submit(resource, pending, client.zone)
                    pending = []
            if pending:
                writer.submit(resource, pending, client.zone)
    if "customers" in resources:
        _fetch_missing_customers(client, conn, report)
    if sum(c.inserted for c in report.counts.values()) >= ANALYZE_AFTER_INSERTS:
        # A first backfill fills empty tables faster than autovacuum notices: without fresh
        # statistics the stats query plans for a few hundred rows and runs 60x slower.
        conn.execute("ANALYZE og.customers, og.subscriptions, og.orders, og.items, og.dirty_contacts")
        conn.commit()
    return report


class _Writer:
    """Normalises, upserts and commits batches on a thread of its own, in the order submitted.

    Results come back to the submitting thread (counts, ``on_write``), so callbacks such as
    Dagster's logger never run on the writer thread. Leaving the ``with`` block waits for every
    batch submitted (what was fetched is kept, even when the walk failed) and re-raises the
    writer's error, if any.
    """

    def __init__(self, conn: psycopg.Connection, report: SyncReport,
                 on_write: Callable[[str, UpsertCounts], None] | None) -> None:
        self._conn = conn
        self._report = report
        self._on_write = on_write
        self._batches: queue.Queue[Any] = queue.Queue(maxsize=WRITE_QUEUE)
        self._results: queue.Queue[tuple[str, UpsertCounts]] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="og-writer", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def submit(self, resource: str, records: list[dict[str, Any]], zone: str) -> None:
        self._collect()
        while self._thread.is_alive():
            try:
                self._batches.put((resource, records, zone), timeout=0.5)
                return
            except queue.Full:
                continue
        self._collect()  # the writer stopped: raise its error

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        while self._thread.is_alive():
            try:
                self._batches.put(_DONE, timeout=0.5)
                break
            except queue.Full:
                continue
        self._thread.join()
        if exc is None:
            self._collect()
        else:  # the walk's own error wins; still count what was stored
            with contextlib.suppress(Exception):
                self._collect()

    def _run(self) -> None:
        try:
            while (batch := self._batches.get()) is not _DONE:
                resource, records, zone = batch
                rows = normalise(resource, records, zone)
                counts = upsert_serialised(self._conn, resource, serialise(rows), len(rows))
                self._conn.commit()
                self._results.put((resource, counts))
        except BaseException as exc:  # noqa: BLE001 - re-raised on the submitting thread
            self._error = exc

    def _collect(self) -> None:
        while True:
            try:
                resource, counts = self._results.get_nowait()
            except queue.Empty:
                break
            self._report.counts.setdefault(resource, UpsertCounts()).add(counts)
            if self._on_write is not None:
                self._on_write(resource, counts)
        if self._error is not None:
            raise self._error


# Customers of changed subscriptions that the customers walk did not bring: their record was last
# updated before the window (an old account that subscribed now). Without it, no e-mail.
_MISSING_CUSTOMERS = """
SELECT d.customer_id FROM og.dirty_contacts d
WHERE NOT EXISTS (SELECT 1 FROM og.customers c WHERE c.merchant_user_id = d.customer_id)
ORDER BY d.customer_id
"""


def _fetch_missing_customers(client: OrdergrooveClient, conn: psycopg.Connection, report: SyncReport) -> None:
    missing = [row[0] for row in conn.execute(_MISSING_CUSTOMERS).fetchall()]
    counts = report.counts.setdefault("customers", UpsertCounts())
    for customer_id in missing:
        record = client.get_customer(customer_id)
        report.customers_looked_up += 1
        if record is None:
            report.customers_not_found += 1
            continue
        counts.add(upsert(conn, "customers", normalise("customers", [record], client.zone)))
        conn.commit()
