"""Where og-pipeline's state lives and how its processes find it.

One Postgres server holds two databases: og-pipeline's (raw, staging, derived and push tables)
and Dagster's (runs, event logs, schedules, pool slots), unless ``OG_DAGSTER_DATABASE_URL`` names
another. With ``OG_DATABASE_URL`` set, its server is used, nothing is started, and Dagster's
database is ``<its database>_dagster``: one per deployment, so deployments sharing a server never
share runs or pool slots. With it unset, the server is the embedded one, with its data in
``<project>/.og/postgres`` and the databases ``og_pipeline`` and ``og_dagster`` (that server
belongs to one checkout, and the names are the ones earlier versions created there). Every child
process (Dagster webserver, daemon, run workers, the sandbox, the webhook receiver) gets the
resolved URLs in its environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from og_pipeline.db.connection import ensure_database
from og_pipeline.db.embedded import EmbeddedPostgres
from og_pipeline.db.migrate import migrate
from og_pipeline.db.urls import dagster_database_url, database_name, for_dagster, with_database
from og_pipeline.settings import ConfigError, Settings

OG_DATABASE = "og_pipeline"
DAGSTER_DATABASE = "og_dagster"  # on the embedded server only (see the module's docstring)


def project_root() -> Path:
    """The folder with dagster.yaml and workspace.yaml: the current one, else the checkout."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parent.parent):
        if (candidate / "dagster.yaml").is_file() and (candidate / "workspace.yaml").is_file():
            return candidate
    raise ConfigError(
        "cannot find dagster.yaml and workspace.yaml: run og-pipeline from the og-pipeline checkout"
    )


def state_dir(root: Path) -> Path:
    """Local state (embedded Postgres data, Dagster files): OG_HOME, default <project>/.og."""
    configured = os.environ.get("OG_HOME", "").strip()
    path = Path(configured).expanduser() if configured else root / ".og"
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


@dataclass
class Databases:
    """The two databases, ready (created and migrated); ``close()`` stops an embedded server."""

    og_url: str
    dagster_url: str
    embedded: EmbeddedPostgres | None = field(default=None, repr=False)

    def close(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_databases(settings: Settings, state: Path, *, create_dagster: bool = True) -> Databases:
    """og-pipeline's database (the embedded server's unless OG_DATABASE_URL), migrated, and the
    URL of Dagster's. ``create_dagster``: create Dagster's database when derived and missing
    (the receiver never uses it, so it needs no CREATEDB privilege for it)."""
    embedded: EmbeddedPostgres | None = None
    if settings.database_url:
        og_url = settings.database_url
    else:
        embedded = EmbeddedPostgres(state / "postgres")
        og_url = embedded.url(OG_DATABASE)
    try:
        if embedded is not None:
            ensure_database(embedded.url(), OG_DATABASE)
        if settings.dagster_database_url:
            dagster_url = settings.dagster_database_url
        else:
            # Same server, a database of Dagster's own next to ours.
            dagster_url = (
                with_database(og_url, DAGSTER_DATABASE)
                if embedded is not None
                else dagster_database_url(og_url)
            )
            if create_dagster:
                ensure_database(og_url, database_name(dagster_url))
        migrate(og_url)
    except Exception:
        if embedded is not None:
            embedded.stop()
        raise
    return Databases(og_url=og_url, dagster_url=for_dagster(dagster_url), embedded=embedded)


PLANNED_EVENTS_VARIABLE = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


def dagster_environment(root: Path, state: Path, databases: Databases) -> dict[str, str]:
    """The variables dagster.yaml and the code location read."""
    artifacts = state / "dagster"
    (artifacts / "compute_logs").mkdir(parents=True, exist_ok=True)
    return {
        "DAGSTER_HOME": str(root),
        "OG_DATABASE_URL": databases.og_url,
        "OG_DAGSTER_DATABASE_URL": databases.dagster_url,
        "OG_DAGSTER_ARTIFACTS_DIR": str(artifacts),
        "OG_DAGSTER_COMPUTE_LOGS_DIR": str(artifacts / "compute_logs"),
        # A range run writes one event per asset per hour; batched writes halve a long
        # backfill's bookkeeping (only events Dagster marks as batchable are affected).
        "DAGSTER_EVENT_BATCH_SIZE": os.environ.get("DAGSTER_EVENT_BATCH_SIZE", "1000"),
        # A range run plans one event for the range instead of one per hour: 8,760 planned events
        # took 108 s before a year's first sync could start, one takes a fraction of a second.
        # Dagster's trade-off: the hours of a range run that failed show as missing in the UI,
        # not as failed (the run itself shows failed, and alerts say so).
        PLANNED_EVENTS_VARIABLE: os.environ.get(PLANNED_EVENTS_VARIABLE, "true"),
    }
