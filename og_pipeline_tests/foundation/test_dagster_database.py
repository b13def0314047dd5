"""Each deployment gets a Dagster database of its own: `<OG_DATABASE_URL's name>_dagster` on the
same server unless OG_DAGSTER_DATABASE_URL names one, so a crash in one deployment cannot stall
another on the same Postgres server (they used to share `og_dagster`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg import sql

from og_pipeline.db.connection import connect
from og_pipeline.db.urls import database_name, with_database
from og_pipeline.runtime import open_databases
from og_pipeline.settings import load_settings


def _exists(server_url: str, name: str) -> bool:
    with connect(server_url) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            is not None
        )


@pytest.fixture
def _drop_derived(db_url: str, empty_db_url: str, pg_server_url: str) -> Iterator[None]:
    """The Dagster databases the test creates go with the test's own (an external test server)."""
    yield
    with connect(pg_server_url, autocommit=True) as conn:
        for url in (db_url, empty_db_url):
            name = database_name(url) + "_dagster"
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.mark.usefixtures("_drop_derived")
def test_two_deployments_on_one_server_get_dagster_databases_of_their_own(
    db_url: str, empty_db_url: str, pg_server_url: str, tmp_path: Path
) -> None:
    urls = []
    for og_url in (db_url, empty_db_url):
        with open_databases(load_settings({"OG_DATABASE_URL": og_url}), tmp_path) as databases:
            urls.append(databases.dagster_url)
        assert database_name(databases.dagster_url) == database_name(og_url) + "_dagster"
        assert databases.dagster_url.startswith("postgresql+psycopg2://")
        assert _exists(pg_server_url, database_name(og_url) + "_dagster"), (
            "created, as og_dagster was"
        )
    assert urls[0] != urls[1]


def test_og_dagster_database_url_wins(db_url: str, pg_server_url: str, tmp_path: Path) -> None:
    chosen = with_database(pg_server_url, "postgres")
    settings = load_settings({"OG_DATABASE_URL": db_url, "OG_DAGSTER_DATABASE_URL": chosen})
    with open_databases(settings, tmp_path) as databases:
        assert database_name(databases.dagster_url) == "postgres"


def test_a_long_database_name_still_gives_a_valid_distinct_dagster_name() -> None:
    from og_pipeline.db.urls import dagster_database_url

    base = "postgresql://u:p@db.example:5432/"
    long_a, long_b = "a" * 60 + "_one", "a" * 60 + "_two"
    names = {database_name(dagster_database_url(base + name)) for name in (long_a, long_b)}
    assert len(names) == 2
    assert all(len(name.encode()) <= 63 and name.endswith("_dagster") for name in names)
    assert database_name(dagster_database_url(base + "shop")) == "shop_dagster"
    assert dagster_database_url(base + "shop").startswith("postgresql://u:p@db.example:5432/")
