"""Applying a webhook event's records to the raw tables, newest version wins.

An event carries its object (``data.object``) and, optionally, a snapshot of the customer's
state (``snapshot`` at the top level or inside ``data``: Ordergroove's docs disagree, both are
accepted). Every record goes through the same upsert as the REST sync, so an event delivered
late or twice never regresses a newer row, and either path alone converges to the same state.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg

from og_pipeline.envelopes import (
    EventError,
    Record,
    created_at,
    object_of,
    resource_of,
    snapshot_of,
)
from og_pipeline.http_common import redact
from og_pipeline.ordergroove.load import normalise, upsert, upsert_products
from og_pipeline.ordergroove.records import ParseContext

_SNAPSHOT_RESOURCES = (
    ("customer", "customers"),
    ("subscriptions", "subscriptions"),
    ("orders", "orders"),
    ("items", "items"),
)


def _records(payload: Record, event_type: str) -> Iterator[tuple[str, list[Record]]]:
    snapshot = snapshot_of(payload)
    for key, resource in _SNAPSHOT_RESOURCES:
        value = snapshot.get(key)
        items = (
            [value] if isinstance(value, dict) else [r for r in value or [] if isinstance(r, dict)]
        )
        if items:
            yield resource, items
    obj = object_of(payload)
    own = resource_of(event_type, obj)
    if own is not None:
        yield own, [{k: v for k, v in obj.items() if k != "type"}]


def _with_timestamp(resource: str, record: Record, fallback: float | None) -> Record:
    # Order lines carry no time of their own in webhooks (nor `updated` anywhere): then the
    # event's time stands for their order's `order_updated`.
    if resource == "items" and record.get("order_updated") in (None, "") and fallback is not None:
        return {**record, "order_updated": fallback}
    return record


def apply_event(conn: psycopg.Connection, event_type: str, payload: Record, zone: str) -> None:
    """Upsert every record of the event (snapshot first, then the object itself)."""
    created = payload.get("created")
    fallback = (
        created if isinstance(created, int | float) and not isinstance(created, bool) else None
    )
    context = ParseContext(zone, datetime.now(UTC))
    for resource, records in _records(payload, event_type):
        rows, rejected = normalise(
            resource, [_with_timestamp(resource, r, fallback) for r in records], context
        )
        if rejected:
            # The event is kept with the reason (failed after its attempts): one unreadable record
            # makes the event's picture of the customer incomplete.
            first = rejected[0]
            raise EventError(
                f"{resource} record {redact(first.record_id or '(without an id)')} "
                f"cannot be read: {first.reason}"
            )
        upsert(conn, resource, rows, source="webhook")
    # Product details are extras for custom events; the daily refresh reads the catalogue again,
    # so a product that cannot be read is left out rather than failing the event.
    products, _ = normalise("products", snapshot_of(payload).get("products") or [], context)
    upsert_products(conn, "products", products)
    kind = resource_of(event_type, object_of(payload))
    if event_type == "order.delete" and kind == "orders":
        _mark_order_deleted(conn, object_of(payload), payload)
    if event_type == "item.remove" and kind == "items":
        _mark_item_removed(conn, object_of(payload), payload)


def _mark_order_deleted(conn: psycopg.Connection, order: Record, payload: Record) -> None:
    """Ordergroove hard-deletes future orders; only this webhook tells us."""
    when = created_at(payload) or datetime.now(UTC)
    conn.execute(
        "WITH gone AS (UPDATE og.orders SET deleted_at = %s "
        "WHERE public_id = %s AND deleted_at IS NULL RETURNING customer_id) "
        # A re-mark gets a new version, so a stats step running now keeps the marker.
        "INSERT INTO og.dirty_contacts (customer_id) SELECT customer_id FROM gone "
        "ON CONFLICT (customer_id) DO UPDATE SET version = EXCLUDED.version",
        (when, str(order.get("public_id"))),
    )
    conn.execute(
        "UPDATE og.items SET deleted_at = %s WHERE order_id = %s AND deleted_at IS NULL",
        (when, str(order.get("public_id"))),
    )


def _mark_item_removed(conn: psycopg.Connection, item: Record, payload: Record) -> None:
    """A line removed from an upcoming order is hard-deleted too: it no longer counts toward
    the next order date or a product_set. Only this webhook tells us."""
    when = created_at(payload) or datetime.now(UTC)
    conn.execute(
        "WITH gone AS (UPDATE og.items SET deleted_at = %s "
        "WHERE public_id = %s AND deleted_at IS NULL RETURNING order_id) "
        # A re-mark gets a new version, so a stats step running now keeps the marker.
        "INSERT INTO og.dirty_contacts (customer_id) SELECT DISTINCT o.customer_id FROM gone "
        "JOIN og.orders o ON o.public_id = gone.order_id "
        "ON CONFLICT (customer_id) DO UPDATE SET version = EXCLUDED.version",
        (when, str(item.get("public_id"))),
    )
