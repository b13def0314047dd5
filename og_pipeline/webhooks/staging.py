"""Storing an authentic webhook delivery in ``og.webhook_events``, the staging table.

Every authentic body gets a row, so nothing Ordergroove sent is lost:

- a JSON object with an ``id`` (string or number) and a string ``type`` is stored ``pending``,
  with ``og_created_at`` from its ``created`` (unix seconds) when that is a usable number;
- anything else (not UTF-8, not JSON, not an object, no usable ``id`` or ``type``) is stored
  ``invalid`` with the reason in ``last_error``: a retry cannot fix it, and the row lets someone
  look at it later. Its ``event_id`` is the id when there is one, so a retried invalid delivery
  is not stored twice.

``event_id`` is UNIQUE and the insert is ``ON CONFLICT DO NOTHING``: a duplicate delivery (which
Ordergroove does send) leaves the first row alone and is reported as such, so the receiver can
still answer 2xx. E-mail addresses and other personal data live only in ``body`` and ``payload``;
``last_error`` holds our own fixed wording, never text from the body.

No web framework here. ``store_event`` serves sync psycopg connections (the tests stage events
with it); ``store_event_async`` is the same statement for the receiver's async pool.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import errors

PENDING = "pending"
INVALID = "invalid"

# event_id has a btree index, whose entries cannot exceed ~2.7 kB; Ordergroove's ids are short.
MAX_ID_CHARS = 255

# One statement, one round trip: in autocommit mode it is committed when the answer arrives,
# which is what lets the receiver answer 2xx right after it. The payload goes as JSON text cast
# by Postgres, which saves re-serialising a parsed object in Python on the hot path.
INSERT_SQL = """
INSERT INTO og.webhook_events
    (event_id, event_type, og_created_at, status, last_error, body, payload)
VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)
ON CONFLICT (event_id) DO NOTHING
RETURNING seq
"""


@dataclass(frozen=True)
class Delivery:
    """What an authentic body is, before it is stored."""

    status: str  # PENDING or INVALID
    event_id: str | None
    event_type: str | None
    created: datetime | None
    reason: str | None  # why it is invalid; None when pending
    payload_json: str | None  # the JSON text for the jsonb column, when it parsed


@dataclass(frozen=True)
class Stored:
    """The outcome of storing one delivery."""

    status: str  # PENDING or INVALID: how this delivery was classified
    duplicate: bool  # a row with this event_id was already there; nothing was written
    seq: int | None  # the new row's seq; None for a duplicate
    event_id: str | None
    event_type: str | None
    reason: str | None


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (and Postgres' jsonb) does not.
    raise ValueError(f"not JSON: {name} is not a JSON value")


def _event_id(value: object) -> str | None:
    if isinstance(value, bool):  # bool is an int in Python, but `true` is no id
        return None
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else str(value)
    return None


def _created(value: object) -> datetime | None:
    """Ordergroove's ``created`` (unix seconds) as a UTC time; None if absent or unusable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None  # a NaN or a year beyond 9999: keep the event, without a created time


def classify(body: bytes) -> Delivery:
    """Parses an authentic body and decides how it is stored (no database access)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Delivery(INVALID, None, None, None, "body is not UTF-8 text", None)
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        return Delivery(INVALID, None, None, None, "not JSON: nested too deeply", None)
    except ValueError as exc:
        # JSONDecodeError's message names a line and column, never the text around it.
        reason = str(exc) if str(exc).startswith("not JSON") else f"not JSON: {exc}"
        return Delivery(INVALID, None, None, None, reason, None)
    if not isinstance(document, dict):
        kind = type(document).__name__.replace("dict", "object").replace("list", "array")
        return Delivery(INVALID, None, None, None, f"not a JSON object (a {kind})", text)

    event_id = _event_id(document.get("id"))
    raw_type = document.get("type")
    event_type = raw_type if isinstance(raw_type, str) and raw_type.strip() else None
    created = _created(document.get("created"))
    problems = []
    if event_id is None:
        problems.append("missing id" if "id" not in document else "id is not a string or number")
    elif len(event_id) > MAX_ID_CHARS:
        problems.append(f"id longer than {MAX_ID_CHARS} characters")
        event_id = None
    if event_type is None:
        problems.append("missing type" if "type" not in document else "type is not a string")
    if problems:
        return Delivery(INVALID, event_id, event_type, created, "; ".join(problems), text)
    return Delivery(PENDING, event_id, event_type, created, None, text)


def _params(delivery: Delivery, body: bytes) -> tuple[Any, ...]:
    return (
        delivery.event_id,
        delivery.event_type,
        delivery.created,
        delivery.status,
        delivery.reason,
        body,
        delivery.payload_json,
    )


def _unstorable(delivery: Delivery, exc: errors.DataError) -> Delivery:
    """The same delivery without its payload, for JSON that Postgres' jsonb refuses.

    Python's json accepts a few things jsonb does not (``\\u0000`` in a string, a lone surrogate);
    the body is still kept, as invalid, with the SQLSTATE only (the error's context quotes the
    body).
    """
    reason = f"JSON not storable as jsonb (SQLSTATE {exc.sqlstate})"
    return Delivery(INVALID, delivery.event_id, delivery.event_type, delivery.created, reason, None)


def _outcome(delivery: Delivery, row: tuple[Any, ...] | None) -> Stored:
    seq = row[0] if row else None
    return Stored(
        delivery.status, row is None, seq, delivery.event_id, delivery.event_type, delivery.reason
    )


def store_event(
    conn_or_cursor: psycopg.Connection[Any] | psycopg.Cursor[Any],
    body: bytes,
    *,
    delivery: Delivery | None = None,
) -> Stored:
    """Stores one authentic delivery (sync psycopg).

    On an autocommit connection the row is committed when this returns. On a connection in
    transaction mode the insert runs in a ``transaction()`` block: committed on return when no
    transaction was open, or a savepoint inside the caller's transaction (then the caller commits).
    """
    if isinstance(conn_or_cursor, psycopg.Cursor):
        conn, cur = conn_or_cursor.connection, conn_or_cursor
    else:
        conn, cur = conn_or_cursor, conn_or_cursor.cursor()
    delivery = delivery or classify(body)

    def attempt(d: Delivery) -> Stored:
        if conn.autocommit:
            cur.execute(INSERT_SQL, _params(d, body))
        else:
            # A savepoint, so that a refused payload does not abort the caller's transaction.
            with conn.transaction():
                cur.execute(INSERT_SQL, _params(d, body))
        return _outcome(d, cur.fetchone())

    try:
        return attempt(delivery)
    except errors.DataError as exc:
        return attempt(_unstorable(delivery, exc))


async def store_event_async(
    conn_or_cursor: psycopg.AsyncConnection[Any] | psycopg.AsyncCursor[Any],
    body: bytes,
    *,
    delivery: Delivery | None = None,
) -> Stored:
    """``store_event`` for async psycopg (the receiver's pool); same transaction rules."""
    if isinstance(conn_or_cursor, psycopg.AsyncCursor):
        conn, cur = conn_or_cursor.connection, conn_or_cursor
    else:
        conn, cur = conn_or_cursor, conn_or_cursor.cursor()
    delivery = delivery or classify(body)

    async def attempt(d: Delivery) -> Stored:
        if conn.autocommit:
            await cur.execute(INSERT_SQL, _params(d, body))
        else:
            async with conn.transaction():
                await cur.execute(INSERT_SQL, _params(d, body))
        return _outcome(d, await cur.fetchone())

    try:
        return await attempt(delivery)
    except errors.DataError as exc:
        return await attempt(_unstorable(delivery, exc))
