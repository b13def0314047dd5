"""What the checks share: the inputs of one doctor run and what the earlier checks learnt.

The checks run in order (``run.STEPS``) and each later one builds on the earlier ones: the
database checks resolve the URLs and open Dagster's instance that the pool checks read, and say
in the ``*_skip`` fields why not when they could not. ``Context`` holds all of it, plus the
``ExitStack`` that closes what a check opened (the embedded server, the instance, the borrowed
environment) once every check has run.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from og_pipeline.db.urls import for_psycopg
from og_pipeline.doctor.model import Skip, describe
from og_pipeline.settings import Settings

if TYPE_CHECKING:
    # Only for the annotation: dagster is imported when the instance is opened (it takes most
    # of a second, and a run without Dagster's storage never needs it).
    from dagster import DagsterInstance

# Seconds: a server that does not answer fails its check soon, not at the OS's TCP timeout.
_CONNECT_TIMEOUT = 5


@dataclass
class Context:
    environ: Mapping[str, str]
    receiver_url: str | None
    max_slot_hold: timedelta
    stack: ExitStack
    # The configured secrets (``secrets_in``), redacted from every exception text shown.
    secrets: list[str]
    # Set by the configuration check once the configuration parses.
    settings: Settings | None = None
    root: Path | None = None
    state: Path | None = None
    # What the database checks learnt for the later ones (None: not available, and why).
    server_url: str | None = None  # a database of og-pipeline's Postgres server
    server_skip: str = "the configuration does not parse"
    embedded: bool = False
    og_url: str | None = None
    og_missing: bool = False  # the embedded server is up but has no og_pipeline database
    dagster_url: str | None = None
    instance: DagsterInstance | None = None
    instance_skip: str = "the configuration does not parse"

    def describe(self, exc: BaseException) -> str:
        return describe(exc, self.secrets)

    def need_settings(self) -> Settings:
        if self.settings is None:
            raise Skip("the configuration does not parse")
        return self.settings

    def connect(self, url: str) -> psycopg.Connection:
        return psycopg.connect(
            for_psycopg(url),
            autocommit=True,
            connect_timeout=_CONNECT_TIMEOUT,
            application_name="og-pipeline doctor",
        )


def one(conn: psycopg.Connection, query: str) -> Any:
    """The first column of the first row of ``query`` (None without a row)."""
    row = conn.execute(query).fetchone()
    return row[0] if row else None
