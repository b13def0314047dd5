"""One sync of a time window: a cursor walk per object type, upserted in batches of pages.

    for resource in customers, subscriptions, orders, items:      # sequential: one cursor at a time
        this process:   client.iter_updated(resource, start, end) -> ~1,000 records -> bounded queue
        writer process: parse, upsert, set aside, commit          # one batch at a time, in order

The walk never waits for the writing of earlier pages, and the writing does not compete with it
for the interpreter (see ``writer``). Batches are written in the order walked, so orders are
stored before their items.

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
from og_pipeline.ordergroove.writer import BatchWriter

# Items come after orders: a line's customer is found through its order.
RESOURCES = ("customers", "subscriptions", "orders", "items")
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
) -> SyncReport:
    """Walk and upsert every record updated in ``[start - overlap, end)``."""
    # The API's filter is inclusive at both ends and has whole seconds.
    window_start, window_end = start - overlap, end - timedelta(seconds=1)
    report = SyncReport(start=window_start, end=window_end)
    writer = BatchWriter(database_url, client.zone, on_page)
    report.counts = writer.counts
    with writer:
        for resource in resources:
            writer.counts.setdefault(resource, UpsertCounts())
            report.pages[resource] = 0
            pending: list[Any] = []
            fetched_at = datetime.now(UTC)
            for page in client.iter_updated(resource, window_start, window_end):
                if not pending:
                    fetched_at = datetime.now(UTC)
                pending.extend(page)
                report.pages[resource] += 1
                if len(pending) >= WRITE_BATCH:
                    writer.submit(resource, pending, fetched_at)
                    pending = []
            if pending:
                writer.submit(resource, pending, fetched_at)
            writer.end_of(resource)
    if "customers" in resources:
        with connect(database_url) as conn:
            _fetch_missing_customers(client, conn, report)
    return report


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
