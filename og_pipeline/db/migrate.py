"""Versioned, idempotent schema migrations, applied at start.

Each ``migrations/NNNN_name.sql`` runs once, in order, and is recorded in
``og.schema_migrations``; pending files apply in one transaction, all or none. A transaction-level
advisory lock serialises concurrent starts (the receiver, the Dagster run workers and the CLI may
all start at once), so a file never runs twice. Every run starts with a migrate: when nothing is
pending (nearly always) it is one read, with no lock and no DDL, so it never queues behind
another process; a lock wait beyond ``LOCK_TIMEOUT`` fails with a message instead of hanging.
A later issue adds a table by adding a file; files already applied are never edited.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import psycopg

from og_pipeline.db.connection import connect, one

# An arbitrary constant shared by every og-pipeline process: the key of the migration lock.
_LOCK_KEY = 0x06_0E_7A_11
# A migration waits this long for the lock (or for a table's lock, behind a long query) at most.
LOCK_TIMEOUT = "120s"


class MigrationLockTimeout(RuntimeError):
    """Another process held a lock the migration needs for longer than LOCK_TIMEOUT."""


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str


def available() -> list[Migration]:
    folder = resources.files("og_pipeline.db") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [Migration(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def _applied(conn: psycopg.Connection) -> set[str] | None:
    """Versions recorded so far; None on a database never migrated."""
    if one(conn.execute("SELECT to_regclass('og.schema_migrations')"))[0] is None:
        return None
    return {row[0] for row in conn.execute("SELECT version FROM og.schema_migrations")}


def migrate(url: str, *, lock_timeout: str = LOCK_TIMEOUT) -> list[str]:
    """Apply the migrations the database lacks; returns the versions applied now."""
    applied_now: list[str] = []
    with connect(url) as conn:
        with conn.transaction():
            done = _applied(conn)
        if done is not None and {m.version for m in available()} <= done:
            return applied_now
        try:
            with conn.transaction():
                conn.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                conn.execute("CREATE SCHEMA IF NOT EXISTS og")
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS og.schema_migrations ("
                    " version text PRIMARY KEY,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                done = (
                    _applied(conn) or set()
                )  # again, under the lock: another process may have run
                for migration in available():
                    if migration.version in done:
                        continue
                    conn.execute(migration.sql)
                    conn.execute(
                        "INSERT INTO og.schema_migrations (version) VALUES (%s)",
                        (migration.version,),
                    )
                    applied_now.append(migration.version)
        except psycopg.errors.LockNotAvailable as exc:
            raise MigrationLockTimeout(
                f"schema migration waited {lock_timeout} for a lock and gave up: another "
                "process is migrating or holds a table the migration alters (see pg_stat_activity; "
                "og-pipeline's connections are named og-pipeline*); nothing was changed"
            ) from exc
    return applied_now
