"""Per-contact subscription stats, computed inside Postgres for the contacts that changed.

    og.dirty_contacts (customer, version) --read in one snapshot--> recompute from
    og.subscriptions, og.orders, og.items, og.customers --> upsert og.contact_stats (with a hash
    of the fields); delete the markers whose version is still the one read

Set-based SQL over the whole history: no rows travel to the worker, so a million subscriptions
cost one query, not a million objects. The markers are cleared in the same transaction as the
upsert (a failure leaves them for the next run), and only those no write has re-marked since
the snapshot: a change committed while the recompute runs keeps its marker for the next run.

Next order date: the earliest ``place`` of the customer's upcoming (status 1) orders that still
have a line of a live subscription. Ordergroove hard-deletes the upcoming order of a cancelled
subscription without a tombstone, so the REST sync never sees it go; the live-subscription test
keeps such a stale order from counting.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from og_pipeline.db.connection import one

# The key of the advisory lock that serialises recomputes (any constant no other lock uses).
_RECOMPUTE_LOCK_KEY = 0x06_0E_57_A7

# Claiming the markers (READ COMMITTED; one statement, so every CTE reads the same snapshot):
#   seen     the (customer, version) pairs in the snapshot: the contacts recomputed, from data
#            that includes every change behind those versions (a marker commits with its change).
#   locked   the same rows locked, FOR UPDATE SKIP LOCKED. In READ COMMITTED a row updated and
#            committed since the snapshot is locked in its latest version, and that version is
#            what it returns; a row a writer is re-marking now (locked, uncommitted) is skipped.
#   cleared  deletes a marker only where the two versions agree: nobody re-marked it since the
#            snapshot, and nobody can until we commit (we hold its lock). A writer's re-mark
#            after our snapshot has a new version (unique, from the sequence), so its marker is
#            kept; a re-mark that comes after our lock waits for our commit, then finds the row
#            gone and inserts a new one. Either way the change we did not see keeps a marker.
# Why not a plain DELETE ... WHERE version = the version seen: it would wait for a writer that
# holds the row and re-check (EvalPlanQual), which is correct too, but writers hold markers for
# a whole batch (a webhook batch is one transaction), and a recompute waiting on a writer that
# waits on a marker the recompute deleted is a deadlock. SKIP LOCKED means the recompute never
# waits on a writer; a skipped marker just stays for the next run, which is always safe.
#
# The Ometria fields are derived from these columns; the hash covers the e-mail too, because a
# changed address must reach Ometria as well.
_RECOMPUTE = """
WITH seen AS MATERIALIZED (
    SELECT customer_id, version FROM og.dirty_contacts
), locked AS MATERIALIZED (
    SELECT customer_id, version FROM og.dirty_contacts FOR UPDATE SKIP LOCKED
), cleared AS (
    DELETE FROM og.dirty_contacts d
    USING seen s JOIN locked l ON l.customer_id = s.customer_id AND l.version = s.version
    WHERE d.customer_id = s.customer_id
), counts AS (
    SELECT s.customer_id,
           count(*) FILTER (WHERE s.live) AS active,
           count(*) AS total
    FROM og.subscriptions s
    WHERE s.customer_id IN (SELECT customer_id FROM seen)
    GROUP BY s.customer_id
), next_orders AS (
    SELECT o.customer_id, min(o.place) AS next_order_date
    FROM og.orders o
    WHERE o.customer_id IN (SELECT customer_id FROM seen)
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
SELECT (SELECT count(*) FROM seen), (SELECT count(*) FROM upserted)
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
    """Recompute dirty contacts; returns (contacts recomputed, contacts whose fields changed)."""
    with conn.transaction():
        # One recompute at a time (a webhook run's and a sync's may overlap). Two at once would
        # both recompute a contact, and the one with the older snapshot, committing second,
        # would overwrite the newer stats (ON CONFLICT DO UPDATE writes over the latest row)
        # after the newer one had cleared the marker. Taken before the recompute's statement,
        # so under READ COMMITTED its snapshot sees everything the previous recompute wrote.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_RECOMPUTE_LOCK_KEY,))
        claimed, changed = one(conn.execute(_RECOMPUTE))
    return claimed, changed


def summary(conn: psycopg.Connection) -> StatsSummary:
    return StatsSummary(*one(conn.execute(_SUMMARY)))


def active_contacts_in_ometria(conn: psycopg.Connection) -> int:
    """Contacts whose last accepted status in Ometria is active: the mass-drop baseline."""
    return one(conn.execute("SELECT count(*) FROM og.ometria_contacts WHERE status = 'active'"))[0]
