"""The checks behind ``og-pipeline doctor``: each answers one question about a deployment
without changing it.

Nothing here writes what the other commands write at start: no migration is applied, no
database, Dagster table or pool is created, no dead run is marked failed, no contact is pushed.
Where those commands would fix something by themselves, the check says so. Each check returns a
``Check``; one that cannot run because an earlier one failed is ``skipped`` with the reason, and
an exception inside a check fails that check only.

No secret reaches a message: the API clients redact their own errors, URLs are shown without
their password, exception texts pass through ``http_common.redact``, and ``scrub`` drops every
configured secret from what the command prints, as a last guard.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
import requests

from og_pipeline.db.migrate import available
from og_pipeline.db.urls import (
    dagster_database_url,
    database_name,
    for_dagster,
    for_psycopg,
    with_database,
)
from og_pipeline.db.urls import redact as redact_url
from og_pipeline.http_common import redact
from og_pipeline.pools import LIVENESS_TAG, POOLS
from og_pipeline.runtime import (
    DAGSTER_DATABASE,
    OG_DATABASE,
    Databases,
    dagster_environment,
    project_root,
)
from og_pipeline.settings import ConfigError, Settings, load_settings


class Verdict(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    todo: str = ""
    facts: dict[str, Any] = field(default_factory=dict)


CONFIGURATION = "configuration"
POSTGRES = "postgres"
MIGRATIONS = "migrations"
DAGSTER_STORAGE = "dagster storage"
ORDERGROOVE_KEY = "ordergroove key"
OMETRIA_KEY = "ometria key"
WEBHOOK_KEY = "webhook key"
RECEIVER = "receiver"
POOL_LIMITS = "pools"
SLOT_HOLDS = "slot holds"

APPLY_MIGRATIONS = (
    "every og-pipeline command applies them at start, e.g. `og-pipeline records rejected "
    "--limit 1`; then restart the receiver and Dagster so they run the same code"
)
FIRST_COMMAND = "the first og-pipeline command (dev, sync, webhooks process) creates"
FREE_IN_UI = (
    "free its slots in the Dagster UI (the run's menu, or the pool under Deployment > Concurrency)"
)
_SECRET_VARIABLES = ("ORDERGROOVE_API_KEY", "OMETRIA_API_KEY", "ORDERGROOVE_WEBHOOK_KEY")
_URL_VARIABLES = ("OG_DATABASE_URL", "OG_DAGSTER_DATABASE_URL")
# Below this length a "secret" would match ordinary words of the output; URLs and keys are
# already kept out of every message, the scrub only guards against what slipped through.
_MIN_SCRUBBED = 4
_CONNECT_TIMEOUT = 5
_UNFINISHED = frozenset({"NOT_STARTED", "STARTING", "STARTED", "CANCELING", "QUEUED"})


def run_checks(
    receiver_url: str | None,
    max_slot_hold: timedelta,
    environ: Mapping[str, str] | None = None,
) -> list[Check]:
    """Every check, in order; the environment is only read (``os.environ`` by default)."""
    env = os.environ if environ is None else environ
    with ExitStack() as stack:
        return _Doctor(env, receiver_url, max_slot_hold, stack).run()


def secrets_in(environ: Mapping[str, str], receiver_url: str | None = None) -> list[str]:
    """The secret values of the configuration, read from the raw variables so that they are
    known even when the configuration does not parse."""
    found: list[str] = []
    for name in _SECRET_VARIABLES:
        value = environ.get(name, "")
        found += [value, value.strip(), *(part.strip() for part in value.split(","))]
    for url in [*(environ.get(name, "") for name in _URL_VARIABLES), receiver_url or ""]:
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password:
            found += [password, unquote(password)]
    # Longest first, so that a secret holding another is replaced whole.
    return sorted({s for s in found if len(s) >= _MIN_SCRUBBED}, key=len, reverse=True)


def scrub(check: Check, secrets: list[str]) -> Check:
    def clean(value: Any) -> Any:
        if isinstance(value, str):
            for secret in secrets:
                value = value.replace(secret, "[redacted]")
            return value
        if isinstance(value, dict):
            return {clean(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    return replace(
        check, detail=clean(check.detail), todo=clean(check.todo), facts=clean(check.facts)
    )


def public_url(url: str) -> str:
    """An API or receiver URL as shown: no user, password, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _Skip(Exception):
    """A check that cannot run: an earlier one failed (the message says which)."""


class _Doctor:
    def __init__(
        self,
        environ: Mapping[str, str],
        receiver_url: str | None,
        max_slot_hold: timedelta,
        stack: ExitStack,
    ) -> None:
        self.environ = environ
        self.receiver_url = receiver_url
        self.max_slot_hold = max_slot_hold
        self.stack = stack
        self.secrets = secrets_in(environ, receiver_url)
        self.settings: Settings | None = None
        self.root: Path | None = None
        self.state: Path | None = None
        # What the database checks learnt for the later ones (None: not available, and why).
        self.server_url: str | None = None  # a database of og-pipeline's Postgres server
        self.server_skip = "the configuration does not parse"
        self.embedded = False
        self.og_url: str | None = None
        self.og_missing = False  # the embedded server is up but has no og_pipeline database
        self.dagster_url: str | None = None
        self.instance: Any = None
        self.instance_skip = "the configuration does not parse"

    def run(self) -> list[Check]:
        steps: list[tuple[str, Callable[[], Check]]] = [
            (CONFIGURATION, self.configuration),
            (POSTGRES, self.postgres),
            (MIGRATIONS, self.migrations),
            (DAGSTER_STORAGE, self.dagster_storage),
            (ORDERGROOVE_KEY, self.ordergroove),
            (OMETRIA_KEY, self.ometria),
            (WEBHOOK_KEY, self.webhook_key),
            (RECEIVER, self.receiver),
            (POOL_LIMITS, self.pools),
            (SLOT_HOLDS, self.slot_holds),
        ]
        results = []
        for name, step in steps:
            try:
                result = step()
            except _Skip as skip:
                result = Check(name, Verdict.SKIPPED, str(skip))
            except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
                result = Check(name, Verdict.FAIL, f"the check failed: {self.describe(exc)}")
            results.append(result)
        return results

    # -- helpers ---------------------------------------------------------------------------

    def describe(self, exc: BaseException) -> str:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return redact(f"{type(exc).__name__}" + (f": {text}" if text else ""), *self.secrets)

    def need_settings(self) -> Settings:
        if self.settings is None:
            raise _Skip("the configuration does not parse")
        return self.settings

    def connect(self, url: str) -> psycopg.Connection:
        return psycopg.connect(
            for_psycopg(url),
            autocommit=True,
            connect_timeout=_CONNECT_TIMEOUT,
            application_name="og-pipeline doctor",
        )

    # -- 1. configuration ------------------------------------------------------------------

    def configuration(self) -> Check:
        try:
            settings = load_settings(self.environ)
            self.root = project_root()
            self.state = _state_folder(self.root, self.environ)
        except ConfigError as exc:
            return Check(
                CONFIGURATION, Verdict.FAIL, str(exc), "fix the variable named, then run again"
            )
        self.settings = settings
        self.server_skip = self.instance_skip = ""
        where = f"project {self.root}, state in {self.state}"
        if settings.ordergroove_api_key is not None and settings.sync_start_date is None:
            return Check(
                CONFIGURATION,
                Verdict.WARN,
                f"parsed ({where}), but OG_SYNC_START_DATE is not set: `sync` and `dev` with "
                "a real Ordergroove need it",
                "set OG_SYNC_START_DATE to the first day to sync (YYYY-MM-DD)",
            )
        return Check(CONFIGURATION, Verdict.OK, f"parsed ({where})")

    # -- 2. Postgres and migrations ----------------------------------------------------------

    def postgres(self) -> Check:
        settings = self.need_settings()
        assert self.state is not None
        if settings.database_url:
            url = settings.database_url
            where = f"{redact_url(url)} (OG_DATABASE_URL)"
            try:
                with self.connect(url) as conn:
                    version = _one(conn, "SHOW server_version")
            except psycopg.Error as exc:
                self.server_skip = "Postgres did not answer"
                return Check(
                    POSTGRES,
                    Verdict.FAIL,
                    f"cannot connect to {where}: {self.describe(exc)}",
                    "check OG_DATABASE_URL (host, port, user, password, database) and that "
                    "the server runs and lets this host in",
                )
            self.server_url = self.og_url = url
            return Check(POSTGRES, Verdict.OK, f"PostgreSQL {version} answers at {where}")

        data = self.state / "postgres"
        if not (data / "PG_VERSION").is_file():
            # Starting the embedded server would create its data folder: say so instead.
            self.server_skip = "the embedded Postgres has no data folder yet"
            self.og_missing = True
            return Check(
                POSTGRES,
                Verdict.WARN,
                f"OG_DATABASE_URL is not set and the embedded server has no data in {data} yet",
                f"{FIRST_COMMAND} it (or set OG_DATABASE_URL to a Postgres of yours)",
            )
        from og_pipeline.db.embedded import EmbeddedPostgres

        try:
            # Starts the server, or shares it with the `dev` already running on this folder.
            server = self.stack.enter_context(EmbeddedPostgres(data))
            server_url = server.url()
            with self.connect(server_url) as conn:
                version = _one(conn, "SHOW server_version")
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (OG_DATABASE,)
                ).fetchone()
        except Exception as exc:  # noqa: BLE001 - however it fails to start, say so and go on
            self.server_skip = "the embedded Postgres did not start"
            return Check(
                POSTGRES,
                Verdict.FAIL,
                f"the embedded server (data in {data}) did not start: {self.describe(exc)}",
                f"see {data / 'log'} if any, or set OG_DATABASE_URL to a Postgres of yours",
            )
        self.embedded = True
        self.server_url = server_url
        if exists:
            self.og_url = server.url(OG_DATABASE)
        else:
            self.og_missing = True
        return Check(
            POSTGRES,
            Verdict.OK,
            f"PostgreSQL {version}: the embedded server (data in {data}; OG_DATABASE_URL is "
            "not set)",
        )

    def migrations(self) -> Check:
        self.need_settings()
        files = [migration.version for migration in available()]
        if self.og_url is None:
            if not self.og_missing:
                raise _Skip(self.server_skip)
            return Check(
                MIGRATIONS,
                Verdict.FAIL,
                f"database {OG_DATABASE} does not exist yet: all {len(files)} migrations pending",
                f"{FIRST_COMMAND} and migrates it",
                {"pending": files},
            )
        with self.connect(self.og_url) as conn:
            table = _one(conn, "SELECT to_regclass('og.schema_migrations')")
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

    # -- 3. Dagster's storage ----------------------------------------------------------------

    def dagster_storage(self) -> Check:
        settings = self.need_settings()
        assert self.root is not None and self.state is not None
        self.instance_skip = "Dagster's storage is not available"
        if settings.dagster_database_url:
            url, variable = settings.dagster_database_url, "OG_DAGSTER_DATABASE_URL"
        elif self.server_url is None:
            raise _Skip(f"it is on og-pipeline's Postgres server: {self.server_skip}")
        else:
            # Resolved as og_pipeline.runtime.open_databases does, without creating anything.
            if self.embedded:
                url, variable = (
                    with_database(self.server_url, DAGSTER_DATABASE),
                    "the embedded server",
                )
            else:
                url = dagster_database_url(settings.database_url or "")
                variable = "OG_DATABASE_URL's server; OG_DAGSTER_DATABASE_URL is not set"
            name = database_name(url)
            with self.connect(self.server_url) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                ).fetchone()
            if not exists:
                self.instance_skip = "Dagster's database does not exist yet"
                return Check(
                    DAGSTER_STORAGE,
                    Verdict.WARN,
                    f"database {name} ({variable}) does not exist yet",
                    f"{FIRST_COMMAND} it",
                )
        where = f"{redact_url(url)} ({variable})"
        fix = "OG_DAGSTER_DATABASE_URL" if settings.dagster_database_url else "OG_DATABASE_URL"
        try:
            with self.connect(url) as conn:
                runs, event_logs = conn.execute(
                    "SELECT to_regclass('runs'), to_regclass('event_logs')"
                ).fetchone() or (None, None)
        except psycopg.Error as exc:
            return Check(
                DAGSTER_STORAGE,
                Verdict.FAIL,
                f"cannot connect to Dagster's database at {where}: {self.describe(exc)}",
                f"check {fix} and that the server runs",
            )
        if runs is None or event_logs is None:
            # Opening the instance would create them (dagster-postgres does on first use).
            self.instance_skip = "Dagster's tables do not exist yet"
            return Check(
                DAGSTER_STORAGE,
                Verdict.WARN,
                f"{where} answers, but Dagster's tables do not exist yet",
                f"{FIRST_COMMAND} them",
            )
        self.dagster_url = url
        instance = self._open_instance(url)
        import dagster as dg

        in_progress = instance.get_runs_count(
            filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])
        )
        self.instance = instance
        self.instance_skip = ""
        return Check(
            DAGSTER_STORAGE,
            Verdict.OK,
            f"reachable at {where}; {in_progress} run(s) in progress",
            facts={"runs_in_progress": in_progress},
        )

    def _open_instance(self, url: str) -> Any:
        """The project's instance (dagster.yaml) on ``url``, without ``cli.runs.instance_on``:
        that one also creates the pools and marks dead runs failed, which doctor only reports."""
        assert self.root is not None and self.state is not None
        databases = Databases(og_url=self.og_url or "", dagster_url=for_dagster(url))
        env = {k: v for k, v in dagster_environment(self.root, self.state, databases).items() if v}
        self.stack.enter_context(_environment(env))
        import dagster as dg

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # beta and deprecation notices are not findings
            instance = dg.DagsterInstance.from_config(str(self.root))
        return self.stack.enter_context(instance)

    # -- 4, 5. the API keys -----------------------------------------------------------------

    def ordergroove(self) -> Check:
        settings = self.need_settings()
        from og_pipeline.ordergroove.client import (
            OrdergrooveAPIError,
            OrdergrooveAuthError,
            OrdergrooveClient,
        )

        key = settings.ordergroove_api_key
        if key is None:
            return Check(
                ORDERGROOVE_KEY,
                Verdict.SKIPPED,
                "ORDERGROOVE_API_KEY is not set: `og-pipeline dev` uses its sandbox Ordergroove; "
                "`sync` and production need a key with the Bulk Operations permission",
            )
        where = public_url(settings.ordergroove_api_url)
        try:
            with OrdergrooveClient(
                settings.ordergroove_api_url,
                key.get_secret_value(),
                page_size=1,
                read_timeout=20,
                max_retries=2,
                max_retry_after=10,
                zone=settings.ordergroove_timezone,
            ) as client:
                # One page of one record of a list endpoint: the cheapest request that needs
                # the Bulk Operations permission, as the sync's walks do.
                next(iter(client.iter_pages("subscriptions")), None)
        except OrdergrooveAuthError as exc:
            # The client's message names the variable and says what to do (401 vs 403).
            return Check(
                ORDERGROOVE_KEY, Verdict.FAIL, f"at {where}: {exc}", facts={"status": exc.status}
            )
        except OrdergrooveAPIError as exc:
            return Check(
                ORDERGROOVE_KEY,
                Verdict.FAIL,
                f"at {where}: {exc}",
                "check ORDERGROOVE_API_URL and the network",
                {"status": exc.status},
            )
        return Check(
            ORDERGROOVE_KEY,
            Verdict.OK,
            f"GET /subscriptions/ answered at {where}: the key is accepted, with the Bulk "
            "Operations permission",
        )

    def ometria(self) -> Check:
        settings = self.need_settings()
        from og_pipeline.ometria.client import OmetriaAPIError, OmetriaAuthError, OmetriaClient

        key = settings.ometria_api_key
        if key is None:
            return Check(
                OMETRIA_KEY,
                Verdict.SKIPPED,
                "OMETRIA_API_KEY is not set: `og-pipeline dev` uses its sandbox Ometria; `sync` "
                "and production need the key",
            )
        where = public_url(settings.ometria_api_url)
        try:
            with OmetriaClient(
                settings.ometria_api_url,
                key.get_secret_value(),
                requests_per_second=settings.ometria_requests_per_second,
                read_timeout=20,
                max_retries=2,
                max_retry_after=10,
            ) as client:
                # The one documented request that writes nothing (ometria-api.md).
                errors = client.errors()
        except OmetriaAuthError as exc:
            # The client's message names the variable and says what to check.
            return Check(
                OMETRIA_KEY, Verdict.FAIL, f"at {where}: {exc}", facts={"status": exc.status}
            )
        except OmetriaAPIError as exc:
            return Check(
                OMETRIA_KEY,
                Verdict.FAIL,
                f"at {where}: {exc}",
                "check OMETRIA_API_URL and the network",
                {"status": exc.status},
            )
        return Check(
            OMETRIA_KEY,
            Verdict.OK,
            f"GET /v2/push/_errors answered at {where}: the key is accepted ({len(errors)} "
            "recent asynchronous push errors); not verifiable without a push: that the key may "
            "push, and that the custom fields and event types exist in the account",
            facts={"recent_push_errors": len(errors)},
        )

    # -- 6, 7. webhooks ----------------------------------------------------------------------

    def webhook_key(self) -> Check:
        settings = self.need_settings()
        keys = settings.webhook_keys
        if keys:
            count = f"{len(keys)} keys, a rotation" if len(keys) > 1 else "1 key"
            return Check(WEBHOOK_KEY, Verdict.OK, f"ORDERGROOVE_WEBHOOK_KEY is set ({count})")
        what = (
            "ORDERGROOVE_WEBHOOK_KEY holds no key (only commas)"
            if settings.ordergroove_webhook_key is not None
            else "ORDERGROOVE_WEBHOOK_KEY is not set"
        )
        if settings.ordergroove_api_key is None:
            # No real Ordergroove sends webhooks here; `dev`'s receiver gets the sandbox's key.
            return Check(
                WEBHOOK_KEY,
                Verdict.SKIPPED,
                f"{what}: with the sandbox Ordergroove, `dev` gives the receiver the sandbox's key",
            )
        return Check(
            WEBHOOK_KEY,
            Verdict.WARN,
            f"{what}: the receiver refuses to start (`dev` starts none), so no webhook arrives",
            "set it to the Verification Key of the webhook route in Ordergroove",
        )

    def receiver(self) -> Check:
        if self.receiver_url is None:
            return Check(
                RECEIVER,
                Verdict.SKIPPED,
                "no --receiver-url given",
                "pass --receiver-url http://HOST:8701 to check a running receiver",
            )
        try:
            url = _health_url(self.receiver_url)
        except ValueError as exc:
            return Check(RECEIVER, Verdict.FAIL, f"--receiver-url: {exc}")
        shown = public_url(url)
        try:
            response = requests.get(url, timeout=(5, 10), allow_redirects=False)
        except requests.RequestException as exc:
            # Only the class: the exception's text repeats the URL and urllib3's internals.
            return Check(
                RECEIVER,
                Verdict.FAIL,
                f"GET {shown} got no answer ({type(exc).__name__})",
                "is the receiver running (og-pipeline webhooks serve), on that host and port?",
            )
        status = response.status_code
        response.close()
        if status == 200:
            return Check(RECEIVER, Verdict.OK, f"GET {shown} answered 200", facts={"status": 200})
        todo = (
            "the receiver is up but its database does not answer: check its OG_DATABASE_URL "
            "and its log"
            if status == 503
            else "is this og-pipeline's receiver? It answers GET /healthz"
        )
        return Check(
            RECEIVER, Verdict.FAIL, f"GET {shown} answered {status}", todo, {"status": status}
        )

    # -- 8, 9. pools -------------------------------------------------------------------------

    def pools(self) -> Check:
        storage = self._storage()
        existing = storage.get_concurrency_keys()
        infos = storage.get_concurrency_infos([pool for pool in POOLS if pool in existing])
        default = self.instance.global_op_concurrency_default_limit
        limits = {pool: info.limit for pool, info in infos.items()}
        missing = [pool for pool in POOLS if pool not in existing]
        shown = ", ".join(f"{pool} limit {limit}" for pool, limit in limits.items())
        facts: dict[str, Any] = {"limits": limits, "missing": missing, "default_limit": default}
        blocked = [pool for pool, limit in limits.items() if not limit]
        if blocked:
            return Check(
                POOL_LIMITS,
                Verdict.FAIL,
                f"{shown}: no step that calls the API of {', '.join(blocked)} can run",
                f"`dagster instance concurrency set {blocked[0]} 1` (DAGSTER_HOME: the project)",
                facts,
            )
        if missing:
            return Check(
                POOL_LIMITS,
                Verdict.WARN,
                ", ".join([*(f"{p} missing" for p in missing), *([shown] if shown else [])]),
                f"{FIRST_COMMAND} them with dagster.yaml's default limit ({default})",
                facts,
            )
        wide = [pool for pool, limit in limits.items() if limit is not None and limit > 1]
        if wide:
            return Check(
                POOL_LIMITS,
                Verdict.WARN,
                f"{shown}: steps of {', '.join(wide)} would call the API at once (Ordergroove "
                "allows one cursor per object type; Ometria limits requests per account)",
                f"`dagster instance concurrency set {wide[0]} 1` (DAGSTER_HOME: the project)",
                facts,
            )
        return Check(POOL_LIMITS, Verdict.OK, shown, facts=facts)

    def slot_holds(self) -> Check:
        storage = self._storage()
        assert self.dagster_url is not None
        infos = storage.get_concurrency_infos(sorted(storage.get_concurrency_keys()))
        # Dagster stores claim times as Postgres' now() in a column without time zone; the
        # database's own clock, read the same way, compares like with like (zone, skew).
        with self.connect(self.dagster_url) as conn:
            now: datetime = _one(conn, "SELECT LOCALTIMESTAMP")
        ages: dict[tuple[str, str], list[timedelta | None]] = defaultdict(list)
        for pool, info in infos.items():
            # A claimed slot's step also has its queue row, assigned just before the claim.
            assigned = {
                (step.run_id, step.step_key): step.assigned_timestamp
                for step in info.pending_steps
                if step.assigned_timestamp is not None
            }
            for slot in info.claimed_slots:
                since = assigned.get((slot.run_id, slot.step_key))
                age = now - since.replace(tzinfo=None) if since else self._run_age(slot.run_id)
                ages[(slot.run_id, pool)].append(age)
        held = {
            key: max((a for a in found if a is not None), default=None)
            for key, found in ages.items()
        }
        hours = self.max_slot_hold / timedelta(hours=1)
        over = sorted(
            (run_id, pool, age)
            for (run_id, pool), age in held.items()
            if age is not None and age > self.max_slot_hold
        )
        unknown = sorted(key for key, age in held.items() if age is None)
        facts: dict[str, Any] = {
            "max_hours": hours,
            "held": [
                {"run_id": run_id, "pool": pool, "hours": _hours(age)}
                for (run_id, pool), age in sorted(held.items())
            ],
        }
        if over:
            lines, todos = [], []
            for run_id, pool, age in over:
                what, todo = self._holder(run_id)
                lines.append(f"run {run_id} ({what}) has held {pool} for {_age_text(age)}")
                todos.append(todo)
            return Check(
                SLOT_HOLDS,
                Verdict.FAIL,
                f"held longer than {hours:g} h: " + "; ".join(lines),
                "; ".join(dict.fromkeys(todos)),
                facts,
            )
        if unknown:
            return Check(
                SLOT_HOLDS,
                Verdict.WARN,
                "held since a time Dagster does not record: "
                + "; ".join(f"run {run_id} in {pool}" for run_id, pool in unknown),
                f"if the run has ended, {FREE_IN_UI}",
                facts,
            )
        known = [age for age in held.values() if age is not None]
        longest = f", the longest for {_age_text(max(known))}" if known else ""
        return Check(
            SLOT_HOLDS,
            Verdict.OK,
            f"none held longer than {hours:g} h ({len(held)} held now{longest})",
            facts=facts,
        )

    def _storage(self) -> Any:
        self.need_settings()
        if self.instance is None:
            raise _Skip(self.instance_skip or "Dagster's storage is not available")
        storage = self.instance.event_log_storage
        if not storage.supports_global_concurrency_limits:
            raise _Skip("this Dagster storage has no pools (run `dagster instance migrate`)")
        return storage

    def _run_age(self, run_id: str) -> timedelta | None:
        """Since the run started: for a slot whose claim time Dagster no longer has."""
        record = self.instance.get_run_record_by_id(run_id)
        if record is None or record.start_time is None:
            return None
        return timedelta(seconds=max(0.0, time.time() - record.start_time))

    def _holder(self, run_id: str) -> tuple[str, str]:
        """What the run holding a slot is, and what frees its slots."""
        run = self.instance.get_run_by_id(run_id)
        if run is None:
            return "not in Dagster's run storage", FREE_IN_UI
        status = str(run.status.value)
        if status not in _UNFINISHED:
            return f"{status}, ended", FREE_IN_UI
        if run.tags.get(LIVENESS_TAG):
            return (
                f"{status}, an og-pipeline command's run",
                (
                    "if that command's process is gone, the next og-pipeline command marks its "
                    "run failed and frees its slots; if it still runs, stop it"
                ),
            )
        return f"{status}, still going", "terminate it in the Dagster UI: its slots go with it"


def _one(conn: psycopg.Connection, query: str) -> Any:
    row = conn.execute(query).fetchone()
    return row[0] if row else None


def _hours(age: timedelta | None) -> float | None:
    return None if age is None else round(age / timedelta(hours=1), 1)


def _age_text(age: timedelta) -> str:
    if age < timedelta(hours=1):
        return f"{int(age.total_seconds() // 60)} min"
    return f"{age / timedelta(hours=1):.1f} h"


def _state_folder(root: Path, environ: Mapping[str, str]) -> Path:
    """The state folder as ``runtime.state_dir`` resolves it (OG_HOME, default <project>/.og),
    read from ``environ`` and without creating it."""
    configured = environ.get("OG_HOME", "").strip()
    return (Path(configured).expanduser() if configured else root / ".og").resolve()


def _health_url(url: str) -> str:
    """GET /healthz of the receiver at ``url``: its base, its webhook URL or its health URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http(s):// URL of the receiver, e.g. http://127.0.0.1:8701")
    _ = parts.port  # raises ValueError on a bad port, before any request
    path = parts.path.rstrip("/")
    for suffix in ("/webhooks/ordergroove", "/healthz"):
        path = path.removesuffix(suffix)
    return urlunsplit((parts.scheme, parts.netloc, path + "/healthz", "", ""))


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
