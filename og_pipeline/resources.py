"""Dagster resources shared across og-pipeline's folders."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg

from og_pipeline.db.connection import connect
from og_pipeline.db.migrate import migrate

# Who answers for the assets in the UI (Dagster's owners): the team that runs og-pipeline.
OWNERS = ["team:og-pipeline"]


class PostgresResource(dg.ConfigurableResource):
    """og-pipeline's own database (raw, staging, derived and push tables)."""

    database_url: str

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Cheap when up to date (one locked read); makes every run safe on a fresh database.
        migrate(self.database_url)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with connect(self.database_url) as conn:
            yield conn
