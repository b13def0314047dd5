"""Opening connections to og-pipeline's database, with errors that say what to check."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from og_pipeline.db.urls import for_psycopg, redact


class DatabaseUnavailable(RuntimeError):
    """The database did not answer; the message names the URL (password masked) and the variable."""


def connect(url: str, *, autocommit: bool = False, connect_timeout: int = 10) -> psycopg.Connection:
    try:
        return psycopg.connect(
            for_psycopg(url),
            autocommit=autocommit,
            connect_timeout=connect_timeout,
            application_name="og-pipeline",
        )
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(
            f"cannot connect to Postgres at {redact(url)} (OG_DATABASE_URL): "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
        ) from exc


def ensure_database(server_url: str, database: str) -> None:
    """Create ``database`` on the server of ``server_url`` unless it exists (needs CREATEDB)."""
    with connect(server_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            # CREATE DATABASE takes no parameters; the identifier is quoted by psycopg.
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))


def one(cursor: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    """The row of a query that always returns one (an aggregate, a RETURNING of an insert)."""
    row = cursor.fetchone()
    if row is None:
        raise LookupError("the query returned no row")
    return row
