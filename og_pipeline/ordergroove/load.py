"""Upserting Ordergroove records into the raw tables, one page per statement.

    REST page (list of dicts) --normalise--> rows --jsonb_to_recordset--> INSERT ... ON CONFLICT

A row replaces the stored one only when its ``updated_at`` is not older and something we keep
actually differs, so re-running an old hour (or a webhook arriving late) can never regress a
record; every row that changed marks its customer in ``og.dirty_contacts`` for the stats step.
A page is one statement and one round trip: the set-based work stays inside Postgres.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import psycopg
from psycopg.types.json import Jsonb

from og_pipeline.ordergroove.client import coerce_live, parse_og_timestamp

Row = dict[str, Any]


@dataclass(frozen=True)
class RawTable:
    """How one Ordergroove object type lands in its table."""

    resource: str
    table: str
    key: str
    # (column, Postgres type); the key first. ``record`` (jsonb) and ``source`` are implicit.
    columns: tuple[tuple[str, str], ...]
    # SQL over the CTE ``changed`` yielding the customer ids to mark dirty, and the one column
    # it reads from ``changed`` (returning whole rows would ship every record back for nothing).
    dirty_customers: str
    returning: str
    normalise: Callable[[Row, str], Row]


def _ts(value: Any, zone: str) -> str | None:
    """An Ordergroove timestamp as text Postgres reads as timestamptz (the same instant
    ``parse_og_timestamp`` gives)."""
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)):  # webhook objects carry unix seconds
        return datetime.fromtimestamp(value, tz=UTC).isoformat()
    text = str(value).strip()
    # The REST form "YYYY-MM-DD HH:MM:SS": a backfill converts hundreds of thousands of these,
    # so the zone's offset is looked up once per local minute instead of once per stamp.
    if len(text) == 19 and text[10] in " T":
        offset = _local_offset(text[:16], zone)
        if offset is not None:
            return f"{text[:10]}T{text[11:]}{offset}"
    parsed = parse_og_timestamp(text, zone)
    return parsed.isoformat() if parsed else None


@functools.lru_cache(maxsize=65_536)
def _local_offset(minute: str, zone: str) -> str | None:
    """The UTC offset ("-05:00") of a naive local minute, read as ``parse_og_timestamp`` reads
    it (first reading of a repeated hour); None if it is not a valid minute or has seconds."""
    try:
        offset = datetime.fromisoformat(minute).replace(tzinfo=ZoneInfo(zone)).utcoffset()
    except ValueError:
        return None
    if offset is None or offset % timedelta(minutes=1):
        return None
    minutes = offset // timedelta(minutes=1)
    return f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _date(value: Any) -> str | None:
    if value in (None, ""):
        return None
    return str(value)[:10]


def _decimal(value: Any) -> str | None:
    if value in (None, ""):
        return None
    try:
        return str(Decimal(str(value)))
    except InvalidOperation:
        return None


def _int(value: Any) -> int | None:
    if value in (None, ""):
        return None
    return int(value)


def _subscription(r: Row, zone: str) -> Row:
    return {
        "public_id": str(r["public_id"]),
        "customer_id": str(r["customer"]),
        "product_id": None if r.get("product") is None else str(r["product"]),
        "live": coerce_live(r.get("live")),
        "cancelled_at": _ts(r.get("cancelled"), zone),
        "created_at": _ts(r.get("created"), zone),
        "updated_at": _ts(r.get("updated"), zone),
    }


def _customer(r: Row, zone: str) -> Row:
    live = r.get("live")
    return {
        "merchant_user_id": str(r["merchant_user_id"]),
        "email": (r.get("email") or None),
        "live": None if live is None else coerce_live(live),
        "created_at": _ts(r.get("created"), zone),
        "updated_at": _ts(r.get("last_updated") or r.get("updated"), zone),
    }


def _order(r: Row, zone: str) -> Row:
    return {
        "public_id": str(r["public_id"]),
        "customer_id": str(r["customer"]),
        "status": _int(r.get("status")),
        "place": _date(r.get("place")),
        "total": _decimal(r.get("total")),
        "created_at": _ts(r.get("created"), zone),
        "updated_at": _ts(r.get("updated"), zone),
    }


def _item(r: Row, zone: str) -> Row:
    return {
        "public_id": str(r["public_id"]),
        "order_id": str(r["order"]),
        "subscription_id": None if r.get("subscription") is None else str(r["subscription"]),
        "product_id": None if r.get("product") is None else str(r["product"]),
        "quantity": _int(r.get("quantity")),
        # Items may carry no timestamp of their own; then the line is as new as its creation.
        "updated_at": _ts(r.get("updated") or r.get("created"), zone),
    }


TABLES: dict[str, RawTable] = {
    t.resource: t
    for t in (
        RawTable(
            "customers", "og.customers", "merchant_user_id",
            (("merchant_user_id", "text"), ("email", "text"), ("live", "boolean"),
             ("created_at", "timestamptz"), ("updated_at", "timestamptz")),
            "SELECT merchant_user_id FROM changed", "t.merchant_user_id",
            _customer,
        ),
        RawTable(
            "subscriptions", "og.subscriptions", "public_id",
            (("public_id", "text"), ("customer_id", "text"), ("product_id", "text"),
             ("live", "boolean"), ("cancelled_at", "timestamptz"), ("created_at", "timestamptz"),
             ("updated_at", "timestamptz")),
            "SELECT customer_id FROM changed", "t.customer_id",
            _subscription,
        ),
        RawTable(
            "orders", "og.orders", "public_id",
            (("public_id", "text"), ("customer_id", "text"), ("status", "smallint"),
             ("place", "date"), ("total", "numeric"), ("created_at", "timestamptz"),
             ("updated_at", "timestamptz")),
            "SELECT customer_id FROM changed", "t.customer_id",
            _order,
        ),
        RawTable(
            "items", "og.items", "public_id",
            (("public_id", "text"), ("order_id", "text"), ("subscription_id", "text"),
             ("product_id", "text"), ("quantity", "integer"), ("updated_at", "timestamptz")),
            "SELECT o.customer_id FROM changed c JOIN og.orders o ON o.public_id = c.order_id",
            "t.order_id",
            _item,
        ),
    )
}


def _upsert_sql(t: RawTable) -> str:
    names = [name for name, _ in t.columns]
    kept = [name for name in names if name != t.key]
    recordset = ", ".join(f"{name} {kind}" for name, kind in t.columns) + ", record jsonb"
    updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in kept)
    # Only a version at least as new, and only when a kept column differs: an unchanged record
    # (the overlap re-read, a duplicate webhook) writes nothing and marks no one dirty.
    differs = f"({', '.join('t.' + n for n in kept)}) IS DISTINCT FROM ({', '.join('EXCLUDED.' + n for n in kept)})"
    # Identifiers come from the constant table specs above, never from input.
    return f"""
WITH incoming AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS r({recordset})
), changed AS (
    INSERT INTO {t.table} AS t ({', '.join(names)}, record, source)
    SELECT {', '.join(names)}, record, %(source)s FROM incoming
    ON CONFLICT ({t.key}) DO UPDATE SET {updates}, record = EXCLUDED.record,
        source = EXCLUDED.source, loaded_at = now()
    WHERE t.updated_at <= EXCLUDED.updated_at AND {differs}
    RETURNING {t.returning}, (xmax = 0) AS inserted
), dirty AS (
    INSERT INTO og.dirty_contacts (customer_id)
    SELECT DISTINCT customer_id FROM ({t.dirty_customers}) AS d(customer_id)
    WHERE customer_id IS NOT NULL
    ON CONFLICT (customer_id) DO NOTHING
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM changed
"""


_SQL = {resource: _upsert_sql(t) for resource, t in TABLES.items()}


@dataclass
class UpsertCounts:
    received: int = 0
    inserted: int = 0
    updated: int = 0

    @property
    def unchanged(self) -> int:
        return self.received - self.inserted - self.updated

    def add(self, other: UpsertCounts) -> None:
        self.received += other.received
        self.inserted += other.inserted
        self.updated += other.updated


def normalise(resource: str, records: Iterable[Row], zone: str) -> list[Row]:
    """Rows for ``resource``, one per key (the newest version when a page repeats a key)."""
    t = TABLES[resource]
    newest: dict[str, Row] = {}
    for record in records:
        row = t.normalise(record, zone)
        if row["updated_at"] is None:
            raise ValueError(f"{resource} record {row[t.key]} has no updated timestamp")
        row["record"] = record
        previous = newest.get(row[t.key])
        if previous is None or _instant(previous["updated_at"]) <= _instant(row["updated_at"]):
            newest[row[t.key]] = row
    return list(newest.values())


def _instant(text: str) -> datetime:
    # Stamps carry their own offsets, which differ across a DST change: compare instants.
    return datetime.fromisoformat(text)


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


def upsert(conn: psycopg.Connection, resource: str, rows: list[Row], *, source: str = "rest") -> UpsertCounts:
    """Upsert normalised rows (same transaction as the caller's; the caller commits)."""
    if not rows:
        return UpsertCounts()
    inserted, updated = conn.execute(_SQL[resource], {"rows": serialise(rows), "source": source}).fetchone()
    return UpsertCounts(received=len(rows), inserted=inserted, updated=updated)


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


def upsert_products(conn: psycopg.Connection, records: list[Row]) -> UpsertCounts:
    rows = {
        str(r["external_product_id"]): {
            "external_product_id": str(r["external_product_id"]),
            "name": r.get("name"),
            "image_url": r.get("image_url"),
            "detail_url": r.get("detail_url"),
            "live": None if r.get("live") is None else coerce_live(r.get("live")),
            "record": r,
        }
        for r in records
    }
    if not rows:
        return UpsertCounts()
    inserted, updated = conn.execute(_PRODUCTS_SQL, {"rows": serialise(list(rows.values()))}).fetchone()
    return UpsertCounts(received=len(rows), inserted=inserted, updated=updated)
