"""Migrations: applied once, in order, idempotent, safe when several processes start at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from og_pipeline.db.connection import connect
from og_pipeline.db.migrate import _LOCK_KEY, MigrationLockTimeout, available, migrate

EXPECTED_TABLES = {
    "subscriptions",
    "customers",
    "orders",
    "items",
    "products",
    "webhook_events",
    "contact_stats",
    "ometria_contacts",
    "ometria_push_audit",
    "schema_migrations",
}


def _tables(url: str) -> set[str]:
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'og'"
        )
        return {row[0] for row in rows}


def test_fresh_database_gets_every_table_and_a_second_run_is_a_no_op(empty_db_url: str) -> None:
    versions = [m.version for m in available()]
    assert migrate(empty_db_url) == versions
    assert EXPECTED_TABLES <= _tables(empty_db_url)
    assert migrate(empty_db_url) == []


def test_concurrent_starts_apply_each_migration_once(empty_db_url: str) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: migrate(empty_db_url), range(4)))
    applied = [version for result in results for version in result]
    assert sorted(applied) == [m.version for m in available()]
    with connect(empty_db_url) as conn:
        count = conn.execute("SELECT count(*) FROM og.schema_migrations").fetchone()
    assert count == (len(available()),)


def test_an_up_to_date_database_is_not_held_up_by_a_lock_holder(empty_db_url: str) -> None:
    # Every run starts with a migrate: with nothing pending it must not queue behind another
    # process (a stuck deploy, a long migration elsewhere) that holds the migration lock.
    migrate(empty_db_url)
    with connect(empty_db_url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        assert migrate(empty_db_url, lock_timeout="1s") == []


def test_a_pending_migration_behind_a_held_lock_fails_with_a_reason_and_changes_nothing(
    empty_db_url: str,
) -> None:
    with connect(empty_db_url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        with pytest.raises(MigrationLockTimeout, match="waited 1s for a lock.*nothing was changed"):
            migrate(empty_db_url, lock_timeout="1s")
    assert _tables(empty_db_url) == set()
    assert migrate(empty_db_url) == [m.version for m in available()]
