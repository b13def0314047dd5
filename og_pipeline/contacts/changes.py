"""What the next push would send: each contact whose fields differ from what Ometria last accepted,
by kind of change. Read-only SQL, no Dagster: the dry run, the mass-drop check and the CLI share it.

    og.contact_stats (what the fields should say)
        vs og.ometria_contacts.fields (what Ometria last accepted, keyed by the field IDs)
    -> new contact | changed counts | changed status | changed next order date | cleared fields

The candidates are exactly the push's (og_pipeline/ometria/contacts.py): the fields' hash differs
from the accepted one and from the one Ometria last refused. A contact may have several kinds.
Contacts without an e-mail are counted apart: the push skips them. No e-mail is ever returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import psycopg

# Ometria's contact id is this prefix and the Ordergroove customer id (design: "og-" + id).
CONTACT_ID_PREFIX = "og-"
KINDS = (
    "new_contact",
    "changed_counts",
    "changed_status",
    "changed_next_order_date",
    "cleared_fields",
)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A sample of at most this many contacts comes with the counts.
MAX_SAMPLE = 20


class FieldNames(Protocol):
    """The Ometria field IDs under which og.ometria_contacts.fields stores each value (the
    Ometria side's FieldIds, which this folder, upstream of it, does not import)."""

    @property
    def active_subscriptions(self) -> str: ...
    @property
    def total_subscriptions(self) -> str: ...
    @property
    def subscription_status(self) -> str: ...
    @property
    def next_order_date(self) -> str: ...


@dataclass
class PendingChanges:
    """Counts by kind of change, and a sample of the contacts (no e-mails)."""

    contacts: int = 0  # contacts the push would send
    without_email: int = 0  # changed, but not pushed: no e-mail
    by_kind: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    sample: list[dict[str, Any]] = field(default_factory=list)

    def as_metadata(self) -> dict[str, int]:
        return {
            "would_push": self.contacts,
            "would_skip_without_email": self.without_email,
            **{f"would_push_{kind}": count for kind, count in self.by_kind.items()},
        }


# The accepted values come from the fields under their IDs; the status also has a column of its
# own (migration 0004), which is what a caller without the field IDs compares. A value Ometria
# accepted that no longer reads as its type counts as changed, never as an error: the date is
# read in Python, since SQL has no cast that fails soft ('2026-02-30' passes any pattern).
_CHANGED = """
SELECT s.customer_id, s.email IS NOT NULL AND s.email <> '' AS has_email,
       o.fields IS NULL AS new_contact,
       s.active_subscriptions, s.total_subscriptions, s.status, s.next_order_date,
       CASE WHEN o.fields ->> %(active)s ~ '^[0-9]{1,9}$'
            THEN (o.fields ->> %(active)s)::integer END,
       CASE WHEN o.fields ->> %(total)s ~ '^[0-9]{1,9}$'
            THEN (o.fields ->> %(total)s)::integer END,
       coalesce(o.fields ->> %(status)s, o.status),
       o.fields ->> %(next)s
FROM og.contact_stats s
LEFT JOIN og.ometria_contacts o ON o.customer_id = s.customer_id
WHERE s.fields_hash IS DISTINCT FROM o.fields_hash
  AND s.fields_hash IS DISTINCT FROM o.rejected_hash
ORDER BY s.customer_id
"""


def _kinds(row: tuple[Any, ...]) -> list[str]:
    _, _, new, active, total, status, next_order, was_active, was_total, was_status, was_next = row
    if new:
        return ["new_contact"]
    kinds = []
    if (active, total) != (was_active, was_total):
        kinds.append("changed_counts")
    if status != was_status:
        kinds.append("changed_status")
    if next_order is not None and next_order != was_next:
        kinds.append("changed_next_order_date")
    if next_order is None and was_next is not None:
        kinds.append("cleared_fields")
    return kinds


def _status_kinds(row: tuple[Any, ...]) -> list[str]:
    if row[2]:
        return ["new_contact"]
    return ["changed_status"] if row[5] != row[9] else []


def _date(text: str | None) -> date | None:
    """A date as the push sends it (YYYY-MM-DD), or None for anything else."""
    if text is None or not _ISO_DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:  # 2026-02-30
        return None


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value else None


def pending_changes(
    conn: psycopg.Connection, names: FieldNames | None, *, sample_size: int = MAX_SAMPLE
) -> PendingChanges:
    """What a push now would send (reads only; the caller's transaction).

    Without ``names`` (a caller that does not know the field IDs) only the status is compared,
    from its own column: the counts and dates of contacts already in Ometria read as unknown.
    """
    found = PendingChanges()
    # A key no field ID can be (they are never empty): its lookups find nothing.
    unknown = ""
    params = {
        "active": names.active_subscriptions if names else unknown,
        "total": names.total_subscriptions if names else unknown,
        "status": names.subscription_status if names else unknown,
        "next": names.next_order_date if names else unknown,
    }
    with conn.cursor(name="pending_changes") as cur:  # server-side: a first push is every contact
        cur.itersize = 5_000
        cur.execute(_CHANGED, params)
        for read in cur:
            row = (*read[:10], _date(read[10]))
            if not row[1]:
                found.without_email += 1
                continue
            kinds = _kinds(row) if names else _status_kinds(row)
            found.contacts += 1
            for kind in kinds:
                found.by_kind[kind] += 1
            if len(found.sample) < sample_size:
                customer_id, _, new, active, total, status, next_order = row[:7]
                found.sample.append(
                    {
                        "contact_id": CONTACT_ID_PREFIX + customer_id,
                        "change": ", ".join(kinds) or "fields",
                        "active": active,
                        "was_active": None if new else row[7],
                        "total": total,
                        "was_total": None if new else row[8],
                        "status": status,
                        "was_status": None if new else row[9],
                        "next_order_date": _iso(next_order),
                        "was_next_order_date": None if new else _iso(row[10]),
                    }
                )
    return found
