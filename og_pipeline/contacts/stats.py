"""Per-contact subscription stats, computed inside Postgres for the contacts that changed.

    og.dirty_contacts --(claimed in this transaction)--> recompute from og.subscriptions,
    og.orders, og.items, og.customers --> upsert og.contact_stats (with a hash of the fields)

Set-based SQL over the whole history: no rows travel to the worker, so a million subscriptions
cost one query, not a million objects. The dirty set is claimed and cleared in the same
transaction as the upsert: a failure leaves it for the next run.

Next order date: the earliest ``place`` of the customer's upcoming (status 1) orders that still
have a line of a live subscription. Ordergroove hard-deletes the upcoming order of a cancelled
subscription without a tombstone, so the REST sync never sees it go; the live-subscription test
keeps such a stale order from counting.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

# The Ometria fields are derived from these columns; the hash covers the e-mail too, because a
# changed address must reach Ometria as well.
_RECOMPUTE = """
WITH claimed AS (
    DELETE FROM og.dirty_contacts RETURNING customer_id
), counts AS (
    SELECT s.customer_id,
           count(*) FILTER (WHERE s.live) AS active,
           count(*) AS total
    FROM og.subscriptions s
    WHERE s.customer_id IN (SELECT customer_id FROM claimed)
    GROUP BY s.customer_id
), next_orders AS (
    SELECT o.customer_id, min(o.place) AS next_order_date
    FROM og.orders o
    WHERE o.customer_id IN (SELECT customer_id FROM claimed)
      AND o.status = 1 AND o.deleted_at IS NULL
      AND EXISTS (
          SELECT 1 FROM og.items i JOIN og.subscriptions s ON s.public_id = i.subscription_id
          WHERE i.order_id = o.public_id AND i.deleted_at IS NULL AND s.live
      )
    GROUP BY o.customer_id
), computed AS (
    SELECT c.customer_id, cu.email, c.active, c.total,
           CASE WHEN c.active > 0 THEN 'active' ELSE 'inactive' END AS status,
           n.next_order_date
    FROM counts c
    LEFT JOIN og.customers cu ON cu.merchant_user_id = c.customer_id
    LEFT JOIN next_orders n ON n.customer_id = c.customer_id
), upserted AS (
    INSERT INTO og.contact_stats AS t (customer_id, email, active_subscriptions,
        total_subscriptions, status, next_order_date, fields_hash, computed_at)
    SELECT customer_id, email, active, total, status, next_order_date,
           md5(concat_ws('|', email, active, total, status, next_order_date)), now()
    FROM computed
    ON CONFLICT (customer_id) DO UPDATE SET
        email = EXCLUDED.email,
        active_subscriptions = EXCLUDED.active_subscriptions,
        total_subscriptions = EXCLUDED.total_subscriptions,
        status = EXCLUDED.status,
        next_order_date = EXCLUDED.next_order_date,
        fields_hash = EXCLUDED.fields_hash,
        computed_at = EXCLUDED.computed_at
    WHERE t.fields_hash IS DISTINCT FROM EXCLUDED.fields_hash
    RETURNING 1
)
SELECT (SELECT count(*) FROM claimed), (SELECT count(*) FROM upserted)
"""

_SUMMARY = """
SELECT count(*),
       count(*) FILTER (WHERE status = 'active'),
       count(*) FILTER (WHERE email IS NULL),
       coalesce(sum(active_subscriptions), 0),
       coalesce(sum(total_subscriptions), 0)
FROM og.contact_stats
"""


@dataclass(frozen=True)
class StatsSummary:
    contacts: int
    active_contacts: int
    contacts_without_email: int
    active_subscriptions: int
    total_subscriptions: int


def recompute_dirty(conn: psycopg.Connection) -> tuple[int, int]:
    """Recompute the dirty contacts; returns (contacts recomputed, contacts whose fields changed)."""
    with conn.transaction():
        claimed, changed = conn.execute(_RECOMPUTE).fetchone()
    return claimed, changed


def summary(conn: psycopg.Connection) -> StatsSummary:
    return StatsSummary(*conn.execute(_SUMMARY).fetchone())


# Each query returns the number of violating rows; the asset's checks block the push on any.
INTEGRITY_QUERIES: dict[str, str] = {
    "subscription_ids_unique": (
        "SELECT count(*) - count(DISTINCT public_id) FROM og.subscriptions"
    ),
    "counts_non_negative": (
        "SELECT count(*) FROM og.contact_stats "
        "WHERE active_subscriptions < 0 OR total_subscriptions < 0"
    ),
    "active_not_above_total": (
        "SELECT count(*) FROM og.contact_stats WHERE active_subscriptions > total_subscriptions"
    ),
    "status_matches_counts": (
        "SELECT count(*) FROM og.contact_stats "
        "WHERE (status = 'active') <> (active_subscriptions > 0)"
    ),
}


def integrity_violations(conn: psycopg.Connection) -> dict[str, int]:
    return {name: conn.execute(sql).fetchone()[0] for name, sql in INTEGRITY_QUERIES.items()}


def active_contacts_in_ometria(conn: psycopg.Connection) -> int:
    """Contacts whose last accepted status in Ometria is active: the mass-drop baseline."""
    return conn.execute(
        "SELECT count(*) FROM og.ometria_contacts WHERE status = 'active'"
    ).fetchone()[0]
