"""One sync of a time window: a cursor walk per object type, upserted in batches of pages.

    customers | subscriptions | orders | items     # at once, a thread and a cursor each (walks)
        -> ~1,000 records -> bounded queue -> this thread -> writer process: parse, upsert, commit
    then: customers that subscriptions name and og.customers lacks, fetched by id

The walks never wait for the writing of earlier pages, and the writing does not compete with them
for the interpreter (see ``writer``). An item may be stored before its order: its customer is
marked for the stats by the order's own upsert (a line's change bumps its order's ``updated``, so
the order is in the same window).

A range longer than ``RESUMABLE_AFTER`` (a first sync, a long backfill) records after each
window how far each walk is (og.sync_checkpoints); a rerun of the same range starts each walk
there, and the checkpoints go when the sync ends.

The window is the partition's (an hour, or a whole backfill range as one walk) widened by a small
overlap before its start, since Ordergroove's clock and zone are not ours; upserts make re-reading
harmless. Memory holds a few batches at most, whatever the window's size. Each batch commits
on its own, so a failure keeps what was loaded (a rerun re-reads it as "unchanged").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from og_pipeline.db.connection import connect
from og_pipeline.ordergroove.client import OrdergrooveClient
from og_pipeline.ordergroove.load import UpsertCounts, store
from og_pipeline.ordergroove.records import ParseContext
from og_pipeline.ordergroove.walks import Progress, WalkProgress, run_walks
from og_pipeline.ordergroove.writer import BatchWriter

RESOURCES = ("customers", "subscriptions", "orders", "items")
# A range longer than this keeps checkpoints: a rerun of it resumes instead of starting over.
RESUMABLE_AFTER = timedelta(days=7)


@dataclass
class SyncReport:
    start: datetime
    end: datetime
    counts: dict[str, UpsertCounts] = field(default_factory=dict)
    pages: dict[str, int] = field(default_factory=dict)
    customers_looked_up: int = 0
    customers_not_found: int = 0
    # Walks a rerun started from a checkpoint, and from where.
    resumed: dict[str, datetime] = field(default_factory=dict)
    windows_halved: int = 0

    @property
    def records(self) -> int:
        """Records read correctly."""
        return sum(c.received for c in self.counts.values())

    @property
    def rejected(self) -> int:
        """Records set aside."""
        return sum(c.rejected for c in self.counts.values())

    @property
    def rejected_share(self) -> float:
        """The share of the window's records that could not be read."""
        seen = self.records + self.rejected
        return self.rejected / seen if seen else 0.0

    def as_metadata(self) -> dict[str, int]:
        flat: dict[str, int] = {}
        for resource, counts in self.counts.items():
            flat[f"{resource}_fetched"] = counts.received
            flat[f"{resource}_inserted"] = counts.inserted
            flat[f"{resource}_updated"] = counts.updated
            flat[f"{resource}_set_aside"] = counts.rejected
            flat[f"{resource}_pages"] = self.pages.get(resource, 0)
        flat["customers_looked_up"] = self.customers_looked_up
        flat["customers_not_found"] = self.customers_not_found
        flat["walks_resumed"] = len(self.resumed)
        flat["windows_halved"] = self.windows_halved
        return flat


def sync_window(
    client: OrdergrooveClient,
    database_url: str,
    start: datetime,
    end: datetime,
    *,
    overlap: timedelta = timedelta(minutes=5),
    resources: tuple[str, ...] = RESOURCES,
    on_page: Callable[[str, UpsertCounts], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    window: timedelta = timedelta(days=31),
    slow_page_seconds: float = 20.0,
) -> SyncReport:
    """Walk and upsert every record updated in ``[start - overlap, end)``."""
    # The API's filter is inclusive at both ends and has whole seconds.
    window_start, window_end = start - overlap, end - timedelta(seconds=1)
    report = SyncReport(start=window_start, end=window_end)
    resumable = end - start > RESUMABLE_AFTER
    done: dict[str, datetime] = {}
    if resumable:
        with connect(database_url) as conn:
            done = _checkpoints(conn, window_start, window_end)
    plans = [
        WalkProgress(resource, window_start, window_end, done.get(resource, window_start))
        for resource in resources
    ]
    report.resumed = {r: t for r, t in done.items() if t > window_start}
    writer = BatchWriter(database_url, client.zone, on_page)
    report.counts = writer.counts

    def handle(item: tuple[Any, ...]) -> None:
        kind, resource = item[0], item[1]
        if kind == "write":
            writer.submit(resource, item[2], item[3])
        elif kind == "done_until" and resumable:
            writer.checkpoint(resource, window_start, window_end, item[2] + timedelta(seconds=1))
        elif kind == "end":
            writer.end_of(resource)

    with writer:
        for resource in resources:
            writer.counts.setdefault(resource, UpsertCounts())
        progress = run_walks(
            client,
            [plan for plan in plans if plan.done_until <= window_end],
            window=window,
            slow_page_seconds=slow_page_seconds,
            handle=handle,
            on_progress=on_progress,
        )
    for plan in plans:
        report.pages[plan.resource] = plan.pages
    report.windows_halved = sum(w.windows_halved for w in progress.walks.values())
    with connect(database_url) as conn:
        if "customers" in resources:
            _fetch_missing_customers(client, conn, report)
        if resumable:
            conn.execute(
                "DELETE FROM og.sync_checkpoints WHERE range_start = %s AND range_end = %s",
                (window_start, window_end),
            )
            conn.commit()
    return report


def _checkpoints(conn: psycopg.Connection, start: datetime, end: datetime) -> dict[str, datetime]:
    rows = conn.execute(
        "SELECT resource, done_until FROM og.sync_checkpoints "
        "WHERE range_start = %s AND range_end = %s",
        (start, end),
    ).fetchall()
    return {resource: done_until for resource, done_until in rows}


# Customers that subscriptions name and og.customers lacks: the customers walk brings only those
# updated in the window, so an old account that subscribed now is fetched by id (without it, no
# e-mail). Found from the data, not from og.dirty_contacts: a stats step running meanwhile (a
# webhook run's) consumes those markers, and with them the customers to fetch. Subscriptions
# only: stats exist only for customers with a subscription, so one known from orders alone would
# be fetched for nothing. Paged by key, walking subscriptions_customer_idx against the customers'
# primary key; each page starts after the last id asked, so an id Ordergroove answered 404 for
# is not asked again in this run (the next run asks again: the account may exist by then).
_MISSING_CUSTOMERS = """
SELECT DISTINCT s.customer_id FROM og.subscriptions s
WHERE s.customer_id > %(after)s
  AND NOT EXISTS (SELECT 1 FROM og.customers c WHERE c.merchant_user_id = s.customer_id)
ORDER BY s.customer_id
LIMIT %(limit)s
"""
_MISSING_PAGE = 500


def _fetch_missing_customers(
    client: OrdergrooveClient, conn: psycopg.Connection, report: SyncReport
) -> None:
    counts = report.counts.setdefault("customers", UpsertCounts())
    after = ""  # sorts before every id
    while missing := [
        row[0]
        for row in conn.execute(
            _MISSING_CUSTOMERS, {"after": after, "limit": _MISSING_PAGE}
        ).fetchall()
    ]:
        after = missing[-1]
        for customer_id in missing:
            record = client.get_customer(customer_id)
            report.customers_looked_up += 1
            if record is None:
                report.customers_not_found += 1
                continue
            counts.add(
                store(conn, "customers", [record], ParseContext(client.zone, datetime.now(UTC)))
            )
            conn.commit()
