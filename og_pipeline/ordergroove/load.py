r"""Upserting Ordergroove records into the raw tables, a batch per statement.

    records --records.parse--> rows ---------jsonb_to_recordset--> INSERT ... ON CONFLICT
                          \--> Rejected --rejected.set_aside--> og.rejected_records

A row replaces the stored one only when it is not an older version and something we keep
actually differs, so re-running an old hour (or a webhook arriving late) can never regress a
record; every row that changed marks its customer in ``og.dirty_contacts`` for the stats step.
A batch is one statement and one round trip: the set-based work stays inside Postgres. A record
that cannot be read, or that Postgres refuses, is set aside with its reason; the rest is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from og_pipeline.db.connection import one
from og_pipeline.ordergroove.records import SHAPES, ParseContext, Rejected, clean_copy, parse
from og_pipeline.ordergroove.rejected import set_aside

Row = dict[str, Any]


@dataclass(frozen=True)
class RawTable:
    """How one Ordergroove object type lands in its table."""

    resource: str
    table: str
    key: str
    # (column, Postgres type); the key first. ``record`` (jsonb) and ``source`` are implicit,
    # and so are the version columns ``updated_at`` and ``updated_at_latest``.
    columns: tuple[tuple[str, str], ...]
    # SQL over the CTE ``changed`` yielding the customer ids to mark dirty, and the one column
    # it reads from ``changed`` (returning whole rows would ship every record back for nothing).
    dirty_customers: str
    returning: str


TABLES: dict[str, RawTable] = {
    t.resource: t
    for t in (
        RawTable(
            "customers",
            "og.customers",
            "merchant_user_id",
            (
                ("merchant_user_id", "text"),
                ("email", "text"),
                ("live", "boolean"),
                ("created_at", "timestamptz"),
            ),
            "SELECT merchant_user_id FROM changed",
            "t.merchant_user_id",
        ),
        RawTable(
            "subscriptions",
            "og.subscriptions",
            "public_id",
            (
                ("public_id", "text"),
                ("customer_id", "text"),
                ("product_id", "text"),
                ("live", "boolean"),
                ("cancelled_at", "timestamptz"),
                ("created_at", "timestamptz"),
            ),
            "SELECT customer_id FROM changed",
            "t.customer_id",
        ),
        RawTable(
            "orders",
            "og.orders",
            "public_id",
            (
                ("public_id", "text"),
                ("customer_id", "text"),
                ("status", "smallint"),
                ("place", "date"),
                ("total", "numeric"),
                ("created_at", "timestamptz"),
            ),
            "SELECT customer_id FROM changed",
            "t.customer_id",
        ),
        RawTable(
            "items",
            "og.items",
            "public_id",
            (
                ("public_id", "text"),
                ("order_id", "text"),
                ("subscription_id", "text"),
                ("product_id", "text"),
                ("quantity", "integer"),
            ),
            "SELECT o.customer_id FROM changed c JOIN og.orders o ON o.public_id = c.order_id",
            "t.order_id",
        ),
    )
}


_VERSION_COLUMNS = (("updated_at", "timestamptz"), ("updated_at_latest", "timestamptz"))


def _upsert_sql(t: RawTable) -> str:
    columns = t.columns + _VERSION_COLUMNS
    names = [name for name, _ in columns]
    kept = [name for name in names if name != t.key]
    recordset = ", ".join(f"{name} {kind}" for name, kind in columns) + ", record jsonb"
    updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in kept)
    # Only a version that may be at least as new, and only when a kept column differs: an
    # unchanged record (the overlap re-read, a duplicate webhook) writes nothing and marks no
    # one dirty. The latest reading of an ambiguous stamp is not a change of its own.
    compared = [n for n in kept if n != "updated_at_latest"]
    differs = (
        f"({', '.join('t.' + n for n in compared)}) IS DISTINCT FROM "
        f"({', '.join('EXCLUDED.' + n for n in compared)})"
    )
    # Identifiers come from the constant table specs above, never from input.
    return f"""
WITH incoming AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS r({recordset})
), changed AS (
    INSERT INTO {t.table} AS t ({", ".join(names)}, record, source)
    -- In key order: two writers upserting overlapping rows lock them in one order.
    SELECT {", ".join(names)}, record, %(source)s FROM incoming ORDER BY {t.key}
    ON CONFLICT ({t.key}) DO UPDATE SET {updates}, record = EXCLUDED.record,
        source = EXCLUDED.source, loaded_at = now()
    WHERE t.updated_at <= coalesce(EXCLUDED.updated_at_latest, EXCLUDED.updated_at) AND {differs}
    RETURNING {t.returning}, (xmax = 0) AS inserted
), dirty AS (
    INSERT INTO og.dirty_contacts (customer_id)
    SELECT DISTINCT customer_id FROM ({t.dirty_customers}) AS d(customer_id)
    WHERE customer_id IS NOT NULL
    -- A re-mark gets a new version: the stats step keeps a marker re-marked after its snapshot.
    -- In key order: two statements marking the same contacts lock their markers in one order.
    ORDER BY customer_id
    ON CONFLICT (customer_id) DO UPDATE SET version = EXCLUDED.version
), resolved AS (
    -- Read correctly now: no longer set aside (an index scan per row of a small table).
    DELETE FROM og.rejected_records x USING incoming i
    WHERE x.resource = '{t.resource}' AND x.record_id = i.{t.key}
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM changed
"""


_SQL = {resource: _upsert_sql(t) for resource, t in TABLES.items()}


@dataclass
class UpsertCounts:
    received: int = 0  # records read correctly
    inserted: int = 0
    updated: int = 0
    rejected: int = 0  # records set aside

    @property
    def unchanged(self) -> int:
        return self.received - self.inserted - self.updated

    def add(self, other: UpsertCounts) -> None:
        self.received += other.received
        self.inserted += other.inserted
        self.updated += other.updated
        self.rejected += other.rejected


def normalise(
    resource: str, records: Iterable[Any], context: ParseContext
) -> tuple[list[Row], list[Rejected]]:
    """Rows for ``resource``, one per key (the newest version when a batch repeats a key), and
    the records that could not be read. A key read correctly in the batch is not set aside."""
    key = "external_product_id" if resource == "products" else TABLES[resource].key
    newest: dict[str, Row] = {}
    rejected: list[Rejected] = []
    for record in records:
        row = parse(resource, record, context)
        if isinstance(row, Rejected):
            rejected.append(row)
            continue
        previous = newest.get(row[key])
        # Products have no version: the later one in the catalogue's walk stands.
        if previous is None or resource == "products" or _latest(previous) <= _latest(row):
            newest[row[key]] = row
    return list(newest.values()), [r for r in rejected if r.record_id not in newest]


def _latest(row: Row) -> datetime:
    # Stamps carry their own offsets, which differ across a DST change: compare instants.
    return datetime.fromisoformat(row.get("updated_at_latest") or row["updated_at"])


def serialise(rows: list[Row]) -> Jsonb:
    """Rows as one jsonb parameter, serialised with orjson: a backfill's hot path."""
    try:
        data = orjson.dumps(rows, default=str)
    except orjson.JSONEncodeError:
        # What orjson refuses (an integer beyond 64 bits in a webhook's payload) json takes.
        data = json.dumps(rows, default=str).encode()
    return Jsonb(data, dumps=_already_serialised)


def _already_serialised(data: bytes) -> bytes:
    return data


def upsert(
    conn: psycopg.Connection, resource: str, rows: list[Row], *, source: str = "rest"
) -> UpsertCounts:
    """Upsert parsed rows (same transaction as the caller's; the caller commits)."""
    if not rows:
        return UpsertCounts()
    inserted, updated = one(
        conn.execute(_SQL[resource], {"rows": serialise(rows), "source": source})
    )
    return UpsertCounts(received=len(rows), inserted=inserted, updated=updated)


# What Postgres may refuse in a row that parsed (a value out of a column's range that the parser
# did not foresee): that row is set aside, never the batch. Connection failures still fail.
_ROW_ERRORS = (psycopg.errors.DataError, psycopg.errors.IntegrityError)
# A deadlock with another writer (a webhook batch locking the same rows and markers in its own
# order): Postgres aborts one side, whose work is undone; it is done again, a few times.
CONFLICTS = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)
CONFLICT_ATTEMPTS = 3


def _in_savepoint(conn: psycopg.Connection, work: Callable[[], UpsertCounts]) -> UpsertCounts:
    """``work`` in a savepoint (or the transaction, when none is open), again after a conflict."""
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            with conn.transaction():
                return work()
        except CONFLICTS:
            if attempt == CONFLICT_ATTEMPTS:
                raise
    raise AssertionError("unreachable")


def store(
    conn: psycopg.Connection,
    resource: str,
    records: Iterable[Any],
    context: ParseContext,
    *,
    source: str = "rest",
) -> UpsertCounts:
    """Parse, upsert and set aside: every record ends stored or set aside with its reason.

    In the caller's transaction (the caller commits). Should Postgres refuse the batch for one
    row's data, the rows are upserted one by one, each in a savepoint, and the refused set aside.
    A deadlock with another writer undoes the batch and upserts it again.
    """
    rows, rejected = normalise(resource, records, context)
    return store_rows(conn, resource, rows, rejected, source=source)


def store_rows(
    conn: psycopg.Connection,
    resource: str,
    rows: list[Row],
    rejected: list[Rejected],
    *,
    source: str = "rest",
) -> UpsertCounts:
    """``store`` after ``normalise``: the sync's writer parses the next batch meanwhile."""
    upserting = upsert_products if resource == "products" else upsert
    try:
        counts = _in_savepoint(conn, lambda: upserting(conn, resource, rows, source=source))
    except _ROW_ERRORS:
        counts = UpsertCounts()
        for row in rows:

            def one_row(row: Row = row) -> UpsertCounts:
                return upserting(conn, resource, [row], source=source)

            try:
                counts.add(_in_savepoint(conn, one_row))
            except _ROW_ERRORS as exc:
                # The error's class only: its message and DETAIL quote the row, e-mails included.
                rejected.append(_refused(resource, row, exc))
    counts.rejected = set_aside(conn, rejected, source=source)
    return counts


def _refused(resource: str, row: Row, exc: Exception) -> Rejected:
    record_id = row[SHAPES[resource].key if resource == "products" else TABLES[resource].key]
    return Rejected(
        resource,
        record_id,
        f"Postgres refused it ({type(exc).__name__})",
        clean_copy(row["record"]),
    )


# Products have no incremental filter: each refresh reads the whole catalogue and rewrites only
# products whose record changed.
_PRODUCTS_SQL = """
WITH incoming AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
        AS r(external_product_id text, name text, image_url text, detail_url text, live boolean,
             record jsonb)
), changed AS (
    INSERT INTO og.products AS t (external_product_id, name, image_url, detail_url, live, record)
    SELECT external_product_id, name, image_url, detail_url, live, record FROM incoming
    ON CONFLICT (external_product_id) DO UPDATE SET name = EXCLUDED.name,
        image_url = EXCLUDED.image_url, detail_url = EXCLUDED.detail_url, live = EXCLUDED.live,
        record = EXCLUDED.record, refreshed_at = now()
    WHERE t.record IS DISTINCT FROM EXCLUDED.record
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM changed
"""


def upsert_products(
    conn: psycopg.Connection, resource: str, rows: list[Row], *, source: str = "rest"
) -> UpsertCounts:
    """Upsert parsed product rows (``store(conn, "products", ...)`` parses them)."""
    if not rows:
        return UpsertCounts()
    inserted, updated = one(conn.execute(_PRODUCTS_SQL, {"rows": serialise(rows)}))
    return UpsertCounts(received=len(rows), inserted=inserted, updated=updated)
