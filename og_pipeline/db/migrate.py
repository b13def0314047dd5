"""Versioned, idempotent schema migrations, applied at start.

Each ``migrations/NNNN_name.sql`` runs once, in order, and is recorded in
``og.schema_migrations``; pending files apply in one transaction, all or none. A transaction-level
advisory lock serialises concurrent starts (the receiver, the Dagster run workers and the CLI may
all start at once), so a file never runs twice.
A later issue adds a table by adding a file; files already applied are never edited.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from og_pipeline.db.connection import connect

# An arbitrary constant shared by every og-pipeline process: the key of the migration lock.
_LOCK_KEY = 0x06_0E_7A_11


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str


def available() -> list[Migration]:
    folder = resources.files("og_pipeline.db") / "migrations"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [Migration(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


def migrate(url: str) -> list[str]:
    """Apply the migrations the database lacks; returns the versions applied now."""
    applied_now: list[str] = []
    with connect(url) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute("CREATE SCHEMA IF NOT EXISTS og")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS og.schema_migrations ("
            " version text PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM og.schema_migrations")}
        for migration in available():
            if migration.version in done:
                continue
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO og.schema_migrations (version) VALUES (%s)", (migration.version,)
            )
            applied_now.append(migration.version)
    return applied_now
