"""Pushing changed contact custom fields to Ometria, with state and an audit trail.

    og.contact_stats  vs  og.ometria_contacts (what Ometria last accepted)
      -> changed contacts, keyset-paged 100 at a time (memory flat)
      -> contact records (design: id og-<customer>, customer_id, email, @collection, @merge)
      -> OmetriaClient.push (rate-limited, retried)
      -> accepted: state + audit row; rejected: found one by one, kept with the refused hash
    then /v2/push/_errors: new asynchronous errors are recorded (against the contact when the
    path names it) and reported.

Contacts without an e-mail are counted and not pushed. The audit keeps fields and hashes,
never e-mail addresses. ``marketing_optin`` is never sent: a subscription feed must not touch
consent.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from og_pipeline import defaults
from og_pipeline.contacts.changes import CONTACT_ID_PREFIX
from og_pipeline.ometria.client import OmetriaClient, PushResult

_RECORD_ID_IN_PATH = re.compile(r"\[(og-[^\]]+)\]")


@dataclass(frozen=True)
class FieldIds:
    """Ometria custom field IDs (created in Ometria first; IDs cannot be renamed there)."""

    active_subscriptions: str = defaults.FIELD_ACTIVE_SUBSCRIPTIONS
    total_subscriptions: str = defaults.FIELD_TOTAL_SUBSCRIPTIONS
    subscription_status: str = defaults.FIELD_SUBSCRIPTION_STATUS
    next_order_date: str = defaults.FIELD_NEXT_ORDER_DATE


@dataclass
class PushReport:
    changed: int = 0
    pushed: int = 0
    accepted: int = 0
    rejected: int = 0
    without_email: int = 0
    batches: int = 0
    new_async_errors: int = 0
    preview: list[dict[str, Any]] = field(default_factory=list)

    def as_metadata(self) -> dict[str, int]:
        return {
            "contacts_changed": self.changed,
            "contacts_pushed": self.pushed,
            "contacts_accepted": self.accepted,
            "contacts_rejected": self.rejected,
            "contacts_without_email": self.without_email,
            "batches": self.batches,
            "new_async_errors": self.new_async_errors,
        }


# The changed contacts are collected once per push into a temporary table and then paged by key:
# re-running the anti-join for every batch would cost O(contacts) per batch, O(n^2) per push.
_COLLECT_CHANGED = """
CREATE TEMPORARY TABLE push_candidates ON COMMIT PRESERVE ROWS AS
SELECT s.customer_id, s.email, s.active_subscriptions, s.total_subscriptions, s.status,
       s.next_order_date, s.fields_hash
FROM og.contact_stats s
LEFT JOIN og.ometria_contacts o ON o.customer_id = s.customer_id
WHERE s.fields_hash IS DISTINCT FROM o.fields_hash
  AND s.fields_hash IS DISTINCT FROM o.rejected_hash
"""

# Push requests on the wire at once: at Ometria's 8/s, a round trip over 125 ms would otherwise
# hold the rate below the limit.
PUSHES_IN_FLIGHT = 4

_NEXT_BATCH = """
SELECT customer_id, email, active_subscriptions, total_subscriptions, status, next_order_date,
       fields_hash
FROM push_candidates WHERE customer_id > %(after)s ORDER BY customer_id LIMIT %(limit)s
"""

_ACCEPTED = """
INSERT INTO og.ometria_contacts AS t
    (customer_id, contact_id, fields, fields_hash, status, request_id, accepted_at)
VALUES (%(customer_id)s, %(contact_id)s, %(fields)s, %(hash)s, %(status)s, %(request_id)s, now())
ON CONFLICT (customer_id) DO UPDATE SET fields = EXCLUDED.fields,
    fields_hash = EXCLUDED.fields_hash,
    status = EXCLUDED.status,
    request_id = EXCLUDED.request_id, accepted_at = EXCLUDED.accepted_at,
    rejected_hash = NULL, rejected_at = NULL, last_error = NULL
"""

_REJECTED = """
INSERT INTO og.ometria_contacts AS t
    (customer_id, contact_id, rejected_hash, rejected_at, last_error)
VALUES (%(customer_id)s, %(contact_id)s, %(hash)s, now(), %(error)s)
ON CONFLICT (customer_id) DO UPDATE SET rejected_hash = EXCLUDED.rejected_hash,
    rejected_at = EXCLUDED.rejected_at, last_error = EXCLUDED.last_error
"""

_AUDIT = """
INSERT INTO og.ometria_push_audit (record_type, record_id, customer_id, fields, fields_hash,
    request_id, outcome, error, run_id)
VALUES ('contact', %(contact_id)s, %(customer_id)s, %(fields)s, %(hash)s, %(request_id)s,
    %(outcome)s, %(error)s, %(run_id)s)
"""


@dataclass(frozen=True)
class _Contact:
    customer_id: str
    email: str
    status: str
    fields: dict[str, Any]
    hash: str

    @property
    def contact_id(self) -> str:
        return CONTACT_ID_PREFIX + self.customer_id


def contact_record(contact: _Contact, collection: str) -> dict[str, Any]:
    return {
        "@type": "contact",
        "id": contact.contact_id,
        "customer_id": contact.customer_id,
        "email": contact.email,
        "@collection": collection,
        "@merge": True,
        "properties": contact.fields,
    }


def _fields(row: tuple[Any, ...], ids: FieldIds) -> dict[str, Any]:
    _, _, active, total, status, next_order, _ = row
    return {
        ids.active_subscriptions: active,
        ids.total_subscriptions: total,
        ids.subscription_status: status,
        ids.next_order_date: next_order.isoformat() if next_order else None,
    }


def _record(
    conn: psycopg.Connection,
    sql: str,
    contacts: list[_Contact],
    request_ids: dict[str, str | None],
    **values: Any,
) -> None:
    if not contacts:
        return
    with conn.cursor() as cur:
        cur.executemany(
            sql,
            [
                {
                    "customer_id": c.customer_id,
                    "contact_id": c.contact_id,
                    "fields": Jsonb(c.fields),
                    "hash": c.hash,
                    "status": c.status,
                    "request_id": request_ids.get(c.customer_id),
                    **values,
                }
                for c in contacts
            ],
        )


def push_changed_contacts(
    conn: psycopg.Connection,
    client: OmetriaClient,
    *,
    field_ids: FieldIds = FieldIds(),
    collection: str = "ordergroove",
    run_id: str | None = None,
    preview_size: int = 5,
    on_batch: Callable[[PushReport], None] | None = None,
    in_flight: int = PUSHES_IN_FLIGHT,
) -> PushReport:
    """Push every contact whose fields differ from what Ometria last accepted.

    Up to ``in_flight`` batches are on the wire at once (the client's limiter keeps the account's
    rate), so a remote round trip does not hold the rate under Ometria's; each batch's outcome is
    recorded and committed in the order read. A failing batch stops the reading; the batches
    already sent are recorded before the error is raised.
    """
    report = PushReport()
    conn.execute("DROP TABLE IF EXISTS push_candidates")
    conn.execute(_COLLECT_CHANGED)
    conn.execute("CREATE UNIQUE INDEX ON push_candidates (customer_id)")
    conn.commit()
    sent: deque[tuple[list[_Contact], Future[dict[str, PushResult]]]] = deque()
    failure: BaseException | None = None

    def settle_oldest() -> None:
        nonlocal failure
        batch, future = sent.popleft()
        try:
            results = future.result()
        except Exception as exc:  # noqa: BLE001 - the first one is raised once all are settled
            failure = failure or exc
            return
        _record_batch(conn, report, batch, results, run_id, preview_size)
        if on_batch is not None:
            on_batch(report)

    with ThreadPoolExecutor(max_workers=max(1, in_flight), thread_name_prefix="og-push") as pool:
        for batch in _changed_batches(conn, report, field_ids, client.max_batch):
            if failure is not None:
                break
            records = [contact_record(c, collection) for c in batch]
            sent.append((batch, pool.submit(client.push_batch, records)))
            while len(sent) >= max(1, in_flight) or (sent and sent[0][1].done()):
                settle_oldest()
        while sent:
            settle_oldest()
    if failure is not None:
        raise failure
    conn.execute("DROP TABLE push_candidates")
    conn.commit()
    report.new_async_errors = record_async_errors(conn, client)
    return report


def _changed_batches(
    conn: psycopg.Connection, report: PushReport, field_ids: FieldIds, size: int
) -> Iterator[list[_Contact]]:
    """The changed contacts with an e-mail, a batch at a time, in key order (one pass over the
    candidates collected once); those without an e-mail are counted and skipped."""
    after = ""
    while rows := conn.execute(_NEXT_BATCH, {"after": after, "limit": size}).fetchall():
        after = rows[-1][0]
        report.changed += len(rows)
        batch = []
        for row in rows:
            if not row[1]:
                report.without_email += 1
                continue
            batch.append(_Contact(row[0], row[1], row[4], _fields(row, field_ids), row[6]))
        if batch:
            yield batch


def _record_batch(
    conn: psycopg.Connection,
    report: PushReport,
    batch: list[_Contact],
    results: dict[str, PushResult],
    run_id: str | None,
    preview_size: int,
) -> None:
    report.batches += 1
    report.pushed += len(batch)
    accepted = [c for c in batch if not results[c.contact_id].rejected]
    rejected = [c for c in batch if results[c.contact_id].rejected]
    request_ids = {c.customer_id: results[c.contact_id].request_id for c in batch}
    _record(conn, _ACCEPTED, accepted, request_ids)
    _record(conn, _AUDIT, accepted, request_ids, outcome="accepted", error=None, run_id=run_id)
    _record(conn, _REJECTED, rejected, request_ids, error="rejected by Ometria")
    _record(
        conn,
        _AUDIT,
        rejected,
        request_ids,
        outcome="rejected",
        error="rejected by Ometria",
        run_id=run_id,
    )
    conn.commit()
    report.accepted += len(accepted)
    report.rejected += len(rejected)
    if len(report.preview) < preview_size:
        report.preview.extend(
            {"contact_id": c.contact_id, **c.fields}
            for c in accepted[: preview_size - len(report.preview)]
        )


def record_async_errors(conn: psycopg.Connection, client: OmetriaClient) -> int:
    """Store errors not seen before; an error naming a contact is set on that contact."""
    new = 0
    for error in client.errors():
        message = str(error.get("error_message", ""))
        path = str(error.get("error_path", "") or "")
        digest = hashlib.sha256(json.dumps([message, path]).encode()).hexdigest()
        match = _RECORD_ID_IN_PATH.search(path)
        record_id = match.group(1) if match else None
        inserted = conn.execute(
            "INSERT INTO og.ometria_errors (error_hash, error_message, error_path, record_id) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            (digest, message, path, record_id),
        ).fetchone()
        if inserted:
            new += 1
            if record_id:
                conn.execute(
                    "UPDATE og.ometria_contacts SET last_error = %s WHERE contact_id = %s",
                    (message, record_id),
                )
    conn.commit()
    return new
