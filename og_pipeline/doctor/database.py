"""The configuration and the databases: the checks the others build on.

- configuration: the variables parse (``settings.load_settings``), the project and the state
  folder are found; a warning when a real Ordergroove key comes without OG_SYNC_START_DATE.
- postgres: OG_DATABASE_URL answers, else the embedded server of the state folder starts (or
  is shared with the `dev` running on it); no data folder yet is a warning, not a start.
- migrations: og_pipeline's database has every migration of this checkout applied, and none
  that a newer og-pipeline added.
- dagster storage: Dagster's database (OG_DAGSTER_DATABASE_URL, else one beside og_pipeline's)
  exists, answers and has Dagster's tables; then the project's instance is opened on it for the
  pool checks.

Each records in the ``Context`` what it found (URLs, the instance) or why the later checks must
be skipped. None creates anything: no data folder, database, table or pool.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from og_pipeline.db.migrate import available
from og_pipeline.db.urls import dagster_database_url, database_name, for_dagster, with_database
from og_pipeline.db.urls import redact as redact_url
from og_pipeline.doctor.context import Context, one
from og_pipeline.doctor.model import (
    APPLY_MIGRATIONS,
    CONFIGURATION,
    DAGSTER_STORAGE,
    FIRST_COMMAND,
    MIGRATIONS,
    POSTGRES,
    Check,
    Skip,
    Verdict,
)
from og_pipeline.runtime import (
    DAGSTER_DATABASE,
    OG_DATABASE,
    Databases,
    dagster_environment,
    project_root,
)
from og_pipeline.settings import ConfigError, load_settings

if TYPE_CHECKING:
    from dagster import DagsterInstance


def configuration(ctx: Context) -> Check:
    try:
        settings = load_settings(ctx.environ)
        ctx.root = project_root()
        ctx.state = _state_folder(ctx.root, ctx.environ)
    except ConfigError as exc:
        return Check(
            CONFIGURATION, Verdict.FAIL, str(exc), "fix the variable named, then run again"
        )
    ctx.settings = settings
    ctx.server_skip = ctx.instance_skip = ""
    where = f"project {ctx.root}, state in {ctx.state}"
    if settings.ordergroove_api_key is not None and settings.sync_start_date is None:
        return Check(
            CONFIGURATION,
            Verdict.WARN,
            f"parsed ({where}), but OG_SYNC_START_DATE is not set: `sync` and `dev` with "
            "a real Ordergroove need it",
            "set OG_SYNC_START_DATE to the first day to sync (YYYY-MM-DD)",
        )
    return Check(CONFIGURATION, Verdict.OK, f"parsed ({where})")


def postgres(ctx: Context) -> Check:
    settings = ctx.need_settings()
    assert ctx.state is not None
    if settings.database_url:
        url = settings.database_url
        where = f"{redact_url(url)} (OG_DATABASE_URL)"
        try:
            with ctx.connect(url) as conn:
                version = one(conn, "SHOW server_version")
        except psycopg.Error as exc:
            ctx.server_skip = "Postgres did not answer"
            return Check(
                POSTGRES,
                Verdict.FAIL,
                f"cannot connect to {where}: {ctx.describe(exc)}",
                "check OG_DATABASE_URL (host, port, user, password, database) and that "
                "the server runs and lets this host in",
            )
        ctx.server_url = ctx.og_url = url
        return Check(POSTGRES, Verdict.OK, f"PostgreSQL {version} answers at {where}")

    data = ctx.state / "postgres"
    if not (data / "PG_VERSION").is_file():
        # Starting the embedded server would create its data folder: say so instead.
        ctx.server_skip = "the embedded Postgres has no data folder yet"
        ctx.og_missing = True
        return Check(
            POSTGRES,
            Verdict.WARN,
            f"OG_DATABASE_URL is not set and the embedded server has no data in {data} yet",
            f"{FIRST_COMMAND} it (or set OG_DATABASE_URL to a Postgres of yours)",
        )
    # Imported here: only a run on the embedded server needs it.
    from og_pipeline.db.embedded import EmbeddedPostgres

    try:
        # Starts the server, or shares it with the `dev` already running on this folder.
        server = ctx.stack.enter_context(EmbeddedPostgres(data))
        server_url = server.url()
        with ctx.connect(server_url) as conn:
            version = one(conn, "SHOW server_version")
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (OG_DATABASE,)
            ).fetchone()
    except Exception as exc:  # noqa: BLE001 - however it fails to start, say so and go on
        ctx.server_skip = "the embedded Postgres did not start"
        return Check(
            POSTGRES,
            Verdict.FAIL,
            f"the embedded server (data in {data}) did not start: {ctx.describe(exc)}",
            f"see {data / 'log'} if any, or set OG_DATABASE_URL to a Postgres of yours",
        )
    ctx.embedded = True
    ctx.server_url = server_url
    if exists:
        ctx.og_url = server.url(OG_DATABASE)
    else:
        ctx.og_missing = True
    return Check(
        POSTGRES,
        Verdict.OK,
        f"PostgreSQL {version}: the embedded server (data in {data}; OG_DATABASE_URL is not set)",
    )


def migrations(ctx: Context) -> Check:
    ctx.need_settings()
    files = [migration.version for migration in available()]
    if ctx.og_url is None:
        if not ctx.og_missing:
            raise Skip(ctx.server_skip)
        return Check(
            MIGRATIONS,
            Verdict.FAIL,
            f"database {OG_DATABASE} does not exist yet: all {len(files)} migrations pending",
            f"{FIRST_COMMAND} and migrates it",
            {"pending": files},
        )
    with ctx.connect(ctx.og_url) as conn:
        table = one(conn, "SELECT to_regclass('og.schema_migrations')")
        applied = (
            set()
            if table is None
            else {row[0] for row in conn.execute("SELECT version FROM og.schema_migrations")}
        )
    pending = [version for version in files if version not in applied]
    unknown = sorted(applied - set(files))
    facts: dict[str, Any] = {"applied": len(applied), "pending": pending, "unknown": unknown}
    if pending:
        what = "never migrated" if table is None else f"{len(pending)} of {len(files)} pending"
        return Check(
            MIGRATIONS, Verdict.FAIL, f"{what}: {', '.join(pending)}", APPLY_MIGRATIONS, facts
        )
    if unknown:
        return Check(
            MIGRATIONS,
            Verdict.WARN,
            f"all {len(files)} applied, and {len(unknown)} this checkout does not have "
            f"({', '.join(unknown)}): a newer og-pipeline migrated this database",
            "run the same og-pipeline version everywhere",
            facts,
        )
    return Check(
        MIGRATIONS,
        Verdict.OK,
        f"current: {len(files)} applied, the last {files[-1]}",
        facts=facts,
    )


def dagster_storage(ctx: Context) -> Check:
    settings = ctx.need_settings()
    assert ctx.root is not None and ctx.state is not None
    ctx.instance_skip = "Dagster's storage is not available"
    if settings.dagster_database_url:
        url, variable = settings.dagster_database_url, "OG_DAGSTER_DATABASE_URL"
    elif ctx.server_url is None:
        raise Skip(f"it is on og-pipeline's Postgres server: {ctx.server_skip}")
    else:
        # Resolved as og_pipeline.runtime.open_databases does, without creating anything.
        if ctx.embedded:
            url, variable = (
                with_database(ctx.server_url, DAGSTER_DATABASE),
                "the embedded server",
            )
        else:
            url = dagster_database_url(settings.database_url or "")
            variable = "OG_DATABASE_URL's server; OG_DAGSTER_DATABASE_URL is not set"
        name = database_name(url)
        with ctx.connect(ctx.server_url) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
        if not exists:
            ctx.instance_skip = "Dagster's database does not exist yet"
            return Check(
                DAGSTER_STORAGE,
                Verdict.WARN,
                f"database {name} ({variable}) does not exist yet",
                f"{FIRST_COMMAND} it",
            )
    where = f"{redact_url(url)} ({variable})"
    fix = "OG_DAGSTER_DATABASE_URL" if settings.dagster_database_url else "OG_DATABASE_URL"
    try:
        with ctx.connect(url) as conn:
            runs, event_logs = conn.execute(
                "SELECT to_regclass('runs'), to_regclass('event_logs')"
            ).fetchone() or (None, None)
    except psycopg.Error as exc:
        return Check(
            DAGSTER_STORAGE,
            Verdict.FAIL,
            f"cannot connect to Dagster's database at {where}: {ctx.describe(exc)}",
            f"check {fix} and that the server runs",
        )
    if runs is None or event_logs is None:
        # Opening the instance would create them (dagster-postgres does on first use).
        ctx.instance_skip = "Dagster's tables do not exist yet"
        return Check(
            DAGSTER_STORAGE,
            Verdict.WARN,
            f"{where} answers, but Dagster's tables do not exist yet",
            f"{FIRST_COMMAND} them",
        )
    ctx.dagster_url = url
    instance = _open_instance(ctx, url)
    # Imported here, not at the top: dagster takes most of a second to import, and a run
    # that stops before Dagster's storage never needs it.
    import dagster as dg

    in_progress = instance.get_runs_count(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
    )
    ctx.instance = instance
    ctx.instance_skip = ""
    return Check(
        DAGSTER_STORAGE,
        Verdict.OK,
        f"reachable at {where}; {in_progress} run(s) in progress",
        facts={"runs_in_progress": in_progress},
    )


def _open_instance(ctx: Context, url: str) -> DagsterInstance:
    """The project's instance (dagster.yaml) on ``url``, without ``cli.runs.instance_on``:
    that one also creates the pools and marks dead runs failed, which doctor only reports."""
    assert ctx.root is not None and ctx.state is not None
    databases = Databases(og_url=ctx.og_url or "", dagster_url=for_dagster(url))
    env = {k: v for k, v in dagster_environment(ctx.root, ctx.state, databases).items() if v}
    ctx.stack.enter_context(_environment(env))
    import dagster as dg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # beta and deprecation notices are not findings
        instance = dg.DagsterInstance.from_config(str(ctx.root))
    return ctx.stack.enter_context(instance)


def _state_folder(root: Path, environ: Mapping[str, str]) -> Path:
    """The state folder as ``runtime.state_dir`` resolves it (OG_HOME, default <project>/.og),
    read from ``environ`` and without creating it."""
    configured = environ.get("OG_HOME", "").strip()
    return (Path(configured).expanduser() if configured else root / ".og").resolve()


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in os.environ while the block runs (dagster.yaml reads its URL from there),
    restored after, so a caller in the same process keeps its own environment."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
