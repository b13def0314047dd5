"""What can really go wrong between the stats and Ometria, as counts from Postgres (no Dagster
here: ometria.checks wraps them).

- Push backlog: contacts with an e-mail whose fields changed more than N hours ago and that
  Ometria has neither accepted nor refused since (a push failing run after run, or skipping them).
- Rejected share: of the contacts with an e-mail, those whose current fields Ometria refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from og_pipeline.db.connection import one

_BACKLOG = """
SELECT count(*) FROM og.contact_stats s
LEFT JOIN og.ometria_contacts o ON o.customer_id = s.customer_id
WHERE s.email IS NOT NULL
  AND s.fields_hash IS DISTINCT FROM o.fields_hash
  AND s.fields_hash IS DISTINCT FROM o.rejected_hash
  AND s.computed_at < now() - make_interval(hours => %(hours)s)
"""

_REJECTED = """
SELECT count(*) FILTER (WHERE o.rejected_hash = s.fields_hash), count(*)
FROM og.contact_stats s
LEFT JOIN og.ometria_contacts o ON o.customer_id = s.customer_id
WHERE s.email IS NOT NULL
"""


def push_backlog(conn: psycopg.Connection, hours: float) -> int:
    return one(conn.execute(_BACKLOG, {"hours": hours}))[0]


@dataclass(frozen=True)
class Rejections:
    rejected: int
    contacts: int

    @property
    def share(self) -> float:
        return self.rejected / self.contacts if self.contacts else 0.0


def rejections(conn: psycopg.Connection) -> Rejections:
    return Rejections(*one(conn.execute(_REJECTED)))
