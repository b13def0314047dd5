"""Shared fixtures: a real Postgres for the whole session, a fresh migrated database per test.

The server is the embedded one, started here in a temporary folder and deleted at the end, unless
OG_TEST_DATABASE_URL names a server to use instead (it must allow CREATE DATABASE). Each test gets
its own database cloned from a migrated template, so tests never see each other's rows.
"""

from __future__ import annotations

import os

# The hourly partitions start here (read when the definitions load, in defs()); the
# sandbox merchants of the tests start on the same day.
os.environ.setdefault("OG_SYNC_START_DATE", "2026-11-01")

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings
from psycopg import sql

from og_pipeline.db.connection import connect, ensure_database
from og_pipeline.db.embedded import EmbeddedPostgres
from og_pipeline.db.migrate import migrate
from og_pipeline.db.urls import with_database

TEMPLATE = "og_test_template"

# Property tests assert behaviour, not speed: no deadline and no too-slow health check, which
# time each example on whatever else the machine runs. On a fresh checkout the first text
# strategy builds Hypothesis's character table, and CI once failed a settings test on that alone
# ("only generated 1 valid inputs after 1.42 seconds").
settings.register_profile(
    "og-pipeline", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("og-pipeline")


def drop_database(pg_server_url: str, name: str) -> None:
    with connect(pg_server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the maintenance database of a running Postgres server."""
    external = os.environ.get("OG_TEST_DATABASE_URL", "").strip()
    if external:
        yield external
        return
    with EmbeddedPostgres(tmp_path_factory.mktemp("postgres") / "data", delete=True) as server:
        yield server.url()


@pytest.fixture(scope="session")
def _template(pg_server_url: str) -> str:
    drop_database(pg_server_url, TEMPLATE)
    ensure_database(pg_server_url, TEMPLATE)
    migrate(with_database(pg_server_url, TEMPLATE))
    return TEMPLATE


@pytest.fixture
def db_url(pg_server_url: str, _template: str) -> Iterator[str]:
    """A fresh database with og-pipeline's schema applied; dropped after the test."""
    name = "og_test_" + uuid.uuid4().hex[:12]
    with connect(pg_server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(_template)
            )
        )
    yield with_database(pg_server_url, name)
    drop_database(pg_server_url, name)


@pytest.fixture
def empty_db_url(pg_server_url: str) -> Iterator[str]:
    """A fresh database with no schema at all (for migration tests)."""
    name = "og_test_empty_" + uuid.uuid4().hex[:12]
    ensure_database(pg_server_url, name)
    yield with_database(pg_server_url, name)
    drop_database(pg_server_url, name)
