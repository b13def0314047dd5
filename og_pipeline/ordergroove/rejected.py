"""The set-aside table: records the sync or a webhook could not read, with their reasons.

    parse() -> Rejected --set_aside--> og.rejected_records (one row per record: first and
    last seen, times seen, the reason, a copy without personal data)
    load.upsert of the same id, read correctly later --> its row is deleted

Listing never shows personal data: the copies are stripped before they are stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from og_pipeline.ordergroove.records import Rejected

_SET_ASIDE = """
INSERT INTO og.rejected_records AS t (resource, identity, record_id, source, reason, record)
SELECT resource, identity, record_id, %(source)s, reason, record
FROM jsonb_to_recordset(%(rows)s::jsonb)
    AS r(resource text, identity text, record_id text, reason text, record jsonb)
ON CONFLICT (resource, identity) DO UPDATE SET
    reason = EXCLUDED.reason, record = EXCLUDED.record, source = EXCLUDED.source,
    last_seen = now(), times_seen = t.times_seen + 1
"""


def set_aside(
    conn: psycopg.Connection, rejected: Iterable[Rejected], *, source: str = "rest"
) -> int:
    """Record (or refresh) each rejected record; in the caller's transaction."""
    # One row per identity: ON CONFLICT cannot touch a row twice in one statement.
    rows = {
        (r.resource, r.identity): {
            "resource": r.resource,
            "identity": r.identity,
            "record_id": r.record_id,
            "reason": r.reason,
            "record": r.record,
        }
        for r in rejected
    }
    if rows:
        # Few rows, already cleaned by records.clean_copy: the standard json serialiser will do.
        conn.execute(_SET_ASIDE, {"rows": Jsonb(list(rows.values())), "source": source})
    return len(rows)


@dataclass(frozen=True)
class SetAside:
    resource: str
    record_id: str | None
    reason: str
    source: str
    first_seen: datetime
    last_seen: datetime
    times_seen: int
    record: Any


def listing(
    conn: psycopg.Connection, *, resource: str | None = None, limit: int = 100
) -> list[SetAside]:
    """The set-aside records, most recently seen first."""
    rows = conn.execute(
        "SELECT resource, record_id, reason, source, first_seen, last_seen, times_seen, record "
        "FROM og.rejected_records WHERE %(resource)s::text IS NULL OR resource = %(resource)s "
        "ORDER BY last_seen DESC, resource, identity LIMIT %(limit)s",
        {"resource": resource, "limit": limit},
    ).fetchall()
    return [SetAside(*row) for row in rows]


def counts(conn: psycopg.Connection) -> dict[str, int]:
    """Set-aside records per resource."""
    return dict(
        conn.execute(
            "SELECT resource, count(*) FROM og.rejected_records GROUP BY resource ORDER BY resource"
        ).fetchall()
    )
