"""Ometria custom events from processed Ordergroove webhooks.

    processed webhook events of the mapped types, not yet in og.ometria_events
      -> custom_event records (design's mapping; id og-<Ordergroove event id>)
      -> og.ometria_events outcome 'sending', committed
      -> OmetriaClient.push in batches of at most 100
      -> og.ometria_events outcome (accepted, or unconfirmed) + og.ometria_push_audit

Sent at most once, without relying on Ometria to de-duplicate ids (it does not say it does):
each batch is recorded 'sending' before its push, so a sender killed between the push and the
outcome leaves rows that the next sender marks 'unconfirmed' instead of sending them again; a
push that failed for good (no 2xx) is taken back and sent later. Ometria's answer counts refused
records without naming them, so a batch with any refusal is recorded unconfirmed as a whole, not
re-sent record by record (which would send the accepted ones twice). One sender at a time: a
session advisory lock, whatever the pool's limit.

Each event is built in a savepoint of its own: one that cannot be built (or would not encode as
Ometria takes it) is recorded `failed` with its reason and the others go on. A processed event
not sent within the send window is recorded `expired`. Every due event thus ends with a row in
og.ometria_events, so an oldest-first batch never meets the same poison event twice.

E-mail, product and order-line details come from the event's snapshot, else the raw tables, else
the Ordergroove REST API (each looked up once per run). Only live webhooks produce events; the
REST sync and its backfills never do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from og_pipeline.envelopes import EventError, created_at, snapshot_of
from og_pipeline.http_common import APIError
from og_pipeline.ometria.client import MAX_RECORD_BYTES, OmetriaClient
from og_pipeline.reasons import safe_reason

SUBSCRIPTION_EVENT = "Ordergroove_subscription_event"
ORDER_REMINDER = "Ordergroove_order_reminder"
SUBSCRIPTION_CHANGES = {
    "subscription.create": "created",
    "subscription.created": "created",
    "subscription.cancel": "cancelled",
}
MAPPED_TYPES = (*SUBSCRIPTION_CHANGES, "order.reminder")
_PERIODS = {1: "day", 2: "week", 3: "month"}

Record = dict[str, Any]


class Lookups:
    """Details an event may lack, from the raw tables first and the REST API last, cached."""

    def __init__(
        self,
        conn: psycopg.Connection,
        fetch_customer: Callable[[str], Record | None] | None = None,
        fetch_product: Callable[[str], Record | None] | None = None,
    ) -> None:
        self.conn = conn
        self._fetch_customer = fetch_customer
        self._fetch_product = fetch_product
        self._emails: dict[str, str | None] = {}
        self._products: dict[str, Record] = {}

    def email(self, customer_id: str) -> str | None:
        if customer_id not in self._emails:
            row = self.conn.execute(
                "SELECT email FROM og.customers WHERE merchant_user_id = %s", (customer_id,)
            ).fetchone()
            email = row[0] if row else None
            if email is None and self._fetch_customer is not None:
                email = (self._fetch_customer(customer_id) or {}).get("email")
            self._emails[customer_id] = email
        return self._emails[customer_id]

    def product(self, product_id: str) -> Record:
        if product_id not in self._products:
            row = self.conn.execute(
                "SELECT image_url, detail_url FROM og.products WHERE external_product_id = %s",
                (product_id,),
            ).fetchone()
            product = {"image_url": row[0], "detail_url": row[1]} if row else None
            if product is None and self._fetch_product is not None:
                product = self._fetch_product(product_id)
            self._products[product_id] = product or {}
        return self._products[product_id]

    def order_products(self, order_id: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT product_id FROM og.items WHERE order_id = %s AND deleted_at IS NULL "
            "AND product_id IS NOT NULL ORDER BY public_id",
            (order_id,),
        ).fetchall()
        return [row[0] for row in rows]


def _frequency(sub: Record) -> str | None:
    try:
        every, period = int(sub["every"]), _PERIODS[int(sub["every_period"])]
    except (
        KeyError,
        TypeError,
        ValueError,
        OverflowError,
    ):  # OverflowError: `every` of 1e400 (inf)
        days = sub.get("frequency_days")
        return f"every {days} days" if days else None
    return f"every {every} {period}{'s' if every != 1 else ''}"


def _whole(value: Any) -> int | None:
    try:
        return int(Decimal(str(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except (InvalidOperation, ValueError):
        return None


def _mapping(value: Any) -> Record:
    # Any JSON value may stand where an object belongs (a list for the customer, say).
    return value if isinstance(value, dict) else {}


def build_event(event_id: str, event_type: str, payload: Record, lookups: Lookups) -> Record:
    """The Ometria custom_event record for one Ordergroove webhook event."""
    obj = _mapping(_mapping(payload.get("data")).get("object"))
    snapshot = snapshot_of(payload)
    customer = _mapping(snapshot.get("customer"))
    customer_id = str(obj.get("customer") or customer.get("merchant_user_id") or "")
    snapshot_email = customer.get("email") if isinstance(customer.get("email"), str) else None
    snapshot_products = {
        str(p.get("external_product_id")): p
        for p in snapshot.get("products") or []
        if isinstance(p, dict)
    }
    if event_type in SUBSCRIPTION_CHANGES:
        product_id = str(obj.get("product") or "")
        product = snapshot_products.get(product_id) or (
            lookups.product(product_id) if product_id else {}
        )
        reason = obj.get("cancel_reason")
        properties = {
            "subscription_event": SUBSCRIPTION_CHANGES[event_type],
            "subscription_id": str(obj.get("public_id") or ""),
            # "4|Overstocked": Ordergroove's code and text; campaigns want the text.
            "cancellation_reason": str(reason).split("|", 1)[-1] if reason else None,
            "delivery_frequency": _frequency(obj),
            "detail_url": product.get("detail_url"),
            "image_url": product.get("image_url"),
            "product_set": [product_id] if product_id else [],
        }
        name = SUBSCRIPTION_EVENT
    else:
        order_id = str(obj.get("public_id") or "")
        lines = [
            i
            for i in snapshot.get("items") or []
            if isinstance(i, dict) and str(i.get("order")) == order_id
        ]
        products = [str(i["product"]) for i in lines if i.get("product")] or lookups.order_products(
            order_id
        )
        properties = {
            "order_id": order_id,
            "product_set": products,
            "total_value": _whole(obj.get("total")),
        }
        name = ORDER_REMINDER
    moment = created_at(payload) or datetime.now(UTC)
    return {
        "@type": "custom_event",
        "id": f"og-{event_id}",
        "event_type": name,
        "timestamp": moment.isoformat(),
        "identity_email": snapshot_email or (lookups.email(customer_id) if customer_id else None),
        "identity_account_id": customer_id or None,
        "properties": {k: v for k, v in properties.items() if v is not None},
    }


def _check_encodable(record: Record) -> None:
    """Raise what the push would raise for this record alone, so it fails alone: the client
    refuses a whole batch holding one record over Ometria's size limit, and a non-finite number
    (a snapshot value of 1e400) would make the whole body invalid JSON."""
    size = len(json.dumps(record, separators=(",", ":"), allow_nan=False).encode())
    if size > MAX_RECORD_BYTES:
        # EventError: our own wording, which safe_reason keeps (it has a size, no contents).
        raise EventError(f"the custom event is {size} bytes, over Ometria's {MAX_RECORD_BYTES}")


@dataclass
class EventsReport:
    due: int = 0
    accepted: int = 0
    rejected: int = 0
    unconfirmed: int = 0
    failed: int = 0
    expired: int = 0
    without_email: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def as_metadata(self) -> dict[str, int]:
        return {
            "events_due": self.due,
            "events_accepted": self.accepted,
            "events_rejected": self.rejected,
            "events_unconfirmed": self.unconfirmed,
            "events_failed": self.failed,
            "events_expired": self.expired,
            "events_without_email": self.without_email,
            **{f"sent_{name}": count for name, count in self.by_type.items()},
        }


# Only recently processed events: the index keeps the look-up small as the table grows, and an
# event that could not reach Ometria for days would start a stale campaign anyway.
SEND_WINDOW = "3 days"
# Expiry looks this far behind the window: a range of the processed index rather than every
# processed event ever. An event is missed only if no custom-events step ran for that long.
EXPIRY_LOOKBACK = "30 days"

_DUE = f"""
SELECT e.event_id, e.event_type, e.payload FROM og.webhook_events e
WHERE e.status = 'processed' AND e.processed_at > now() - interval '{SEND_WINDOW}'
  AND e.event_type = ANY(%(types)s)
  AND NOT EXISTS (SELECT 1 FROM og.ometria_events o WHERE o.event_id = 'og-' || e.event_id)
ORDER BY e.og_created_at NULLS LAST, e.seq
LIMIT %(limit)s
"""

_SENDING = """
INSERT INTO og.ometria_events
    (event_id, webhook_event_id, event_type, customer_id, properties, outcome)
VALUES (%(id)s, %(webhook_event_id)s, %(event_type)s, %(customer_id)s, %(properties)s, 'sending')
ON CONFLICT (event_id) DO NOTHING
"""

_OUTCOME = """
UPDATE og.ometria_events SET outcome = %(outcome)s, request_id = %(request_id)s,
    last_error = %(error)s, sent_at = now()
WHERE event_id = %(id)s AND outcome = 'sending'
"""

# Rows a dead sender left 'sending' (the lock is ours, so no live sender owns them).
_ORPHANED = """
UPDATE og.ometria_events SET outcome = 'unconfirmed',
    last_error = 'the sender stopped between the push and its record: '
        || 'Ometria may have it; not sent again'
WHERE outcome = 'sending'
"""

# A constant key of og-pipeline's: one custom-events sender at a time per database.
_SENDER_LOCK = 0x06_0E_C5_E7

_NOT_SENT = """
INSERT INTO og.ometria_events
    (event_id, webhook_event_id, event_type, properties, outcome, last_error)
VALUES (%(id)s, %(webhook_event_id)s, %(event_type)s, '{}', %(outcome)s, %(error)s)
ON CONFLICT (event_id) DO NOTHING
"""

_EXPIRE = f"""
INSERT INTO og.ometria_events
    (event_id, webhook_event_id, event_type, properties, outcome, last_error)
SELECT 'og-' || e.event_id, e.event_id,
       CASE WHEN e.event_type = 'order.reminder' THEN %(reminder)s ELSE %(subscription)s END,
       '{{}}', 'expired', 'not sent within {SEND_WINDOW} of processing'
FROM og.webhook_events e
WHERE e.status = 'processed' AND e.event_type = ANY(%(types)s)
  AND e.processed_at <= now() - interval '{SEND_WINDOW}'
  AND e.processed_at > now() - interval '{SEND_WINDOW}' - interval '{EXPIRY_LOOKBACK}'
  AND NOT EXISTS (SELECT 1 FROM og.ometria_events o WHERE o.event_id = 'og-' || e.event_id)
ON CONFLICT (event_id) DO NOTHING
"""

_AUDIT = """
INSERT INTO og.ometria_push_audit
    (record_type, record_id, customer_id, fields, request_id, outcome, run_id)
VALUES
    ('custom_event', %(id)s, %(customer_id)s, %(properties)s, %(request_id)s, %(outcome)s,
     %(run_id)s)
"""


def send_due_events(
    conn: psycopg.Connection, client: OmetriaClient, lookups: Lookups, *, run_id: str | None = None
) -> EventsReport:
    """Send every processed, mapped webhook event that has no Ometria outcome yet; mark those
    past the send window expired, and those that cannot be built failed."""
    report = EventsReport()
    conn.execute(
        "SELECT pg_advisory_lock(%s)", (_SENDER_LOCK,)
    )  # released at the end or with the session
    try:
        _send_due(conn, client, lookups, report, run_id)
    finally:
        if not conn.closed:
            conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(%s)", (_SENDER_LOCK,))
            conn.commit()
    return report


def _send_due(
    conn: psycopg.Connection,
    client: OmetriaClient,
    lookups: Lookups,
    report: EventsReport,
    run_id: str | None,
) -> None:
    report.unconfirmed = conn.execute(_ORPHANED).rowcount
    report.expired = conn.execute(
        _EXPIRE,
        {
            "types": list(MAPPED_TYPES),
            "reminder": ORDER_REMINDER,
            "subscription": SUBSCRIPTION_EVENT,
        },
    ).rowcount
    conn.commit()
    while True:
        rows = conn.execute(
            _DUE, {"types": list(MAPPED_TYPES), "limit": client.max_batch}
        ).fetchall()
        if not rows:
            break
        report.due += len(rows)
        built: list[tuple[str, Record]] = []
        for event_id, event_type, payload in rows:
            record = _build_alone(conn, event_id, event_type, payload, lookups)
            if record is None:
                report.failed += 1
            else:
                built.append((event_id, record))
        if not built:
            conn.commit()  # the failed rows: the next batch starts past them
            continue
        params = [
            {
                "id": record["id"],
                "webhook_event_id": event_id,
                "event_type": record["event_type"],
                "customer_id": record["identity_account_id"],
                "properties": Jsonb(record["properties"]),
                "run_id": run_id,
            }
            for event_id, record in built
        ]
        with conn.cursor() as cur:
            cur.executemany(_SENDING, params)
        conn.commit()  # before the push: a crash from here on can never send these again
        try:
            result = client.push([record for _, record in built])
        except BaseException:
            # No 2xx for good (or interrupted before the request left): not accepted, so taken
            # back and sent by a later run.
            conn.rollback()
            conn.execute(
                "DELETE FROM og.ometria_events WHERE event_id = ANY(%s) AND outcome = 'sending'",
                ([p["id"] for p in params],),
            )
            conn.commit()
            raise
        if result.rejected:
            outcome, error = (
                "unconfirmed",
                (
                    f"Ometria refused {result.rejected} of the {len(built)} events of request "
                    f"{result.request_id} without naming them; not sent again"
                ),
            )
            report.unconfirmed += len(built)
            report.rejected += result.rejected
        else:
            outcome, error = "accepted", None
            report.accepted += len(built)
            for _, record in built:
                report.by_type[record["event_type"]] = (
                    report.by_type.get(record["event_type"], 0) + 1
                )
        report.without_email += sum(1 for _, record in built if not record["identity_email"])
        for p in params:
            p.update(outcome=outcome, request_id=result.request_id, error=error)
        with conn.cursor() as cur:
            cur.executemany(_OUTCOME, params)
            cur.executemany(_AUDIT, params)
        conn.commit()


def _build_alone(
    conn: psycopg.Connection, event_id: str, event_type: str, payload: Record, lookups: Lookups
) -> Record | None:
    """The event's record, or None once it is recorded failed with a reason that quotes none
    of its contents. A failing database connection or API (Ordergroove's, for a look-up) is
    no fault of the event: that still fails the run, and the event is built again next run."""
    try:
        with (
            conn.transaction()
        ):  # a savepoint: a look-up that failed in SQL leaves the batch usable
            record = build_event(event_id, event_type, payload, lookups)
            _check_encodable(record)
        return record
    except (psycopg.OperationalError, psycopg.InterfaceError, APIError):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever one event raises is that event's alone
        name = ORDER_REMINDER if event_type == "order.reminder" else SUBSCRIPTION_EVENT
        conn.execute(
            _NOT_SENT,
            {
                "id": f"og-{event_id}",
                "webhook_event_id": event_id,
                "event_type": name,
                "outcome": "failed",
                "error": safe_reason(exc),
            },
        )
        return None
