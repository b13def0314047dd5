"""`og-pipeline doctor` from a shell, against real servers: the sandbox on a random port, a
Postgres database and a Dagster database of each test's own, the real webhook receiver (or a
tiny HTTP server answering /healthz as told).

Doctor runs as a process, as the user runs it; until the command is registered in
og_pipeline.cli it is started through its click object (`python -c`). Every wait is a poll with
a deadline.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import uvicorn

from og_pipeline.db.connection import connect, ensure_database
from og_pipeline.db.migrate import available
from og_pipeline.db.urls import database_name, with_database
from og_pipeline.pools import OMETRIA_POOL, ORDERGROOVE_POOL, POOLS, ensure_pools
from og_pipeline.runtime import open_databases
from og_pipeline.sandbox import OG_LIMITED_KEY, MerchantSpec, SandboxServer
from og_pipeline.settings import load_settings
from og_pipeline.webhooks.receiver import create_app
from og_pipeline_tests.conftest import drop_database

ROOT = Path(__file__).resolve().parents[2]
DOCTOR = "from og_pipeline.cli.doctor import doctor; doctor(prog_name='og-pipeline doctor')"
START = datetime(2026, 11, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 4, tzinfo=UTC)
CHECKS = [
    "configuration",
    "postgres",
    "migrations",
    "dagster storage",
    "ordergroove key",
    "ometria key",
    "webhook key",
    "receiver",
    "pools",
    "slot holds",
]
# Distinctive values: if any of them shows anywhere in the output, a secret leaked.
OG_SECRET = "og-key-Zq81XvT0pN4w"
OMETRIA_SECRET = "ometria-key-Hk27LmQ9sR3b"
WEBHOOK_SECRET = "webhook-key-Wc55JyD6uE1a"
DB_PASSWORD = "db-pw-Nf39GtK7oY2e"


# -- running doctor ----------------------------------------------------------------------------


class Doctor:
    def __init__(self, result: subprocess.CompletedProcess[str]) -> None:
        self.code = result.returncode
        self.out, self.err = result.stdout, result.stderr

    @property
    def output(self) -> str:
        return self.out + self.err

    def lines(self) -> dict[str, str]:
        """Each check's line of the text output, by check name."""
        found = {}
        for line in self.out.splitlines():
            verdict, _, rest = line.partition(" ")
            name = rest.strip().split(":", 1)[0]
            if verdict in ("ok", "warn", "FAIL", "skipped") and name in CHECKS:
                found[name] = line
        assert list(found) == CHECKS, self.output
        return found

    def verdicts(self) -> dict[str, str]:
        return {name: line.split()[0] for name, line in self.lines().items()}

    def document(self) -> dict[str, Any]:
        return json.loads(self.out)

    def checks(self) -> dict[str, dict[str, Any]]:
        checks = {check["check"]: check for check in self.document()["checks"]}
        assert list(checks) == CHECKS, self.output
        return checks


def _doctor(env: dict[str, str], *args: str) -> Doctor:
    return Doctor(
        subprocess.run(
            [sys.executable, "-c", DOCTOR, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    )


def _base_env() -> dict[str, str]:
    """This process's environment without any og-pipeline, API or Dagster setting of its own."""
    prefixes = ("OG_", "ORDERGROOVE_", "OMETRIA_", "DAGSTER_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["OG_SYNC_START_DATE"] = START.date().isoformat()
    return env


def _with_password(url: str, password: str) -> tuple[str, str]:
    """``url`` with ``password``, and the password that must not show: the embedded test server
    trusts local users, so any password connects; an external one keeps its own."""
    parts = urlsplit(url)
    if parts.password:
        return url, parts.password
    netloc = f"{parts.username or 'postgres'}:{password}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc)), password


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _poll(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting until {what}")
        threading.Event().wait(0.02)  # between polls only: readiness is the condition


# -- servers and databases ---------------------------------------------------------------------


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(
        MerchantSpec(subscriptions=40, seed=3, start=START, now=NOW), port=0
    ) as server:
        yield server


@pytest.fixture
def env(sandbox: SandboxServer, db_url: str, dagster_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment `dev` gives its children with the sandbox: both APIs and their keys."""
    return {
        **_base_env(),
        "OG_DATABASE_URL": db_url,
        "OG_DAGSTER_DATABASE_URL": dagster_url,
        "OG_HOME": str(tmp_path / "og-home"),
        "ORDERGROOVE_API_URL": sandbox.ordergroove_url,
        "OMETRIA_API_URL": sandbox.ometria_url,
        "ORDERGROOVE_API_KEY": sandbox.keys["ordergroove"],
        "OMETRIA_API_KEY": sandbox.keys["ometria"],
        "ORDERGROOVE_WEBHOOK_KEY": sandbox.keys["webhook"],
    }


@pytest.fixture
def receiver(db_url: str) -> Iterator[str]:
    """The real receiver app on a random port; yields its base URL."""
    app = create_app(db_url, ["receiver-key"], max_body_bytes=1024 * 1024)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="on", access_log=False, log_level="warning")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    _poll(lambda: server.started or not thread.is_alive(), 30, "the receiver started")
    assert thread.is_alive(), "the receiver did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=15)
    sock.close()


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = self.server.status if self.path == "/healthz" else 404  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass  # quiet


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    """A tiny server whose GET /healthz answers ``server.status``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    server.status = 503  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


# -- the tests ---------------------------------------------------------------------------------


def test_every_check_is_ok_against_the_sandbox_a_fresh_database_and_a_running_receiver(
    env: dict[str, str], instance: Any, sandbox: SandboxServer, receiver: str
) -> None:
    ensure_pools(instance)  # what the first command does
    result = _doctor(env, "--receiver-url", receiver + "/webhooks/ordergroove")
    assert result.code == 0, result.output
    assert set(result.verdicts().values()) == {"ok"}, result.output
    lines = result.lines()
    assert "Bulk Operations" in lines["ordergroove key"]
    assert "/v2/push/_errors" in lines["ometria key"] and "not verifiable" in lines["ometria key"]
    assert f"{ORDERGROOVE_POOL} limit 1, {OMETRIA_POOL} limit 1" in lines["pools"]
    assert "/healthz answered 200" in lines["receiver"]
    assert result.out.splitlines()[-1] == "doctor: 10 ok"
    # It wrote nothing to "Ometria": the one request it made there reads.
    assert sandbox.ometria.request_log() == []
    assert sandbox.ometria.snapshot()["contacts"] == {}


def test_with_no_api_keys_the_dev_sandbox_setup_passes_and_says_so(
    env: dict[str, str], instance: Any
) -> None:
    ensure_pools(instance)
    for name in ("ORDERGROOVE_API_KEY", "OMETRIA_API_KEY", "ORDERGROOVE_WEBHOOK_KEY"):
        env.pop(name)
    result = _doctor(env)
    assert result.code == 0, result.output
    verdicts = result.verdicts()
    for name in ("ordergroove key", "ometria key", "webhook key", "receiver"):
        assert verdicts[name] == "skipped", result.output
    lines = result.lines()
    assert "ORDERGROOVE_API_KEY is not set" in lines["ordergroove key"]
    assert "sandbox" in lines["ordergroove key"] and "sandbox" in lines["ometria key"]
    assert verdicts["postgres"] == verdicts["pools"] == verdicts["slot holds"] == "ok"


def test_a_wrong_ordergroove_key_fails_naming_the_variable_and_never_shows_the_key(
    env: dict[str, str], instance: Any
) -> None:
    ensure_pools(instance)
    env["ORDERGROOVE_API_KEY"] = OG_SECRET
    result = _doctor(env)
    assert result.code == 1, result.output
    line = result.lines()["ordergroove key"]
    assert line.startswith("FAIL") and "401" in line and "ORDERGROOVE_API_KEY" in line
    assert OG_SECRET not in result.output
    assert result.verdicts()["ometria key"] == "ok", "the other checks still ran"


def test_a_key_without_the_bulk_operations_permission_is_named_as_such(
    env: dict[str, str], instance: Any
) -> None:
    ensure_pools(instance)
    env["ORDERGROOVE_API_KEY"] = OG_LIMITED_KEY  # the sandbox answers it 403 on list endpoints
    result = _doctor(env)
    assert result.code == 1, result.output
    line = result.lines()["ordergroove key"]
    assert line.startswith("FAIL") and "403" in line and "Bulk Operations" in line


def test_a_wrong_ometria_key_fails_naming_the_variable_and_never_shows_the_key(
    env: dict[str, str], instance: Any
) -> None:
    ensure_pools(instance)
    env["OMETRIA_API_KEY"] = OMETRIA_SECRET
    result = _doctor(env, "--json")
    assert result.code == 1, result.output
    check = result.checks()["ometria key"]
    assert check["verdict"] == "FAIL" and "OMETRIA_API_KEY" in check["detail"]
    assert check["facts"] == {"status": 401}
    assert result.document()["ok"] is False
    assert OMETRIA_SECRET not in result.output


@pytest.mark.parametrize("mode", [(), ("--json",)], ids=["text", "json"])
def test_no_secret_is_ever_printed(
    env: dict[str, str],
    instance: Any,
    health_server: ThreadingHTTPServer,
    mode: tuple[str, ...],
) -> None:
    ensure_pools(instance)
    # Every secret distinctive, the keys wrong (their errors are where a key could leak) and
    # the database password in both URLs (the test server trusts local users, so it connects).
    secrets = [OG_SECRET, OMETRIA_SECRET, WEBHOOK_SECRET, DB_PASSWORD]
    for variable in ("OG_DATABASE_URL", "OG_DAGSTER_DATABASE_URL"):
        env[variable], password = _with_password(env[variable], DB_PASSWORD)
        secrets.append(password)
    env |= {
        "ORDERGROOVE_API_KEY": OG_SECRET,
        "OMETRIA_API_KEY": OMETRIA_SECRET,
        "ORDERGROOVE_WEBHOOK_KEY": f"{WEBHOOK_SECRET},{WEBHOOK_SECRET}-next",
    }
    url = f"http://doctor:{DB_PASSWORD}@127.0.0.1:{health_server.server_address[1]}"
    result = _doctor(env, "--receiver-url", url, *mode)
    assert result.code == 1, result.output
    for secret in secrets:
        assert secret not in result.output, f"{secret} printed:\n{result.output}"
    assert "@example." not in result.output, "no e-mail address either"
    text = result.output
    assert "***" in text, "the URLs are shown, without their password"
    assert "2 keys, a rotation" in text


def test_an_unreachable_postgres_fails_naming_the_variable_without_the_password(
    env: dict[str, str],
) -> None:
    url = f"postgresql://og:{DB_PASSWORD}@127.0.0.1:{_closed_port()}/og"
    env["OG_DATABASE_URL"] = url
    env.pop("OG_DAGSTER_DATABASE_URL")  # derived: on the same server
    result = _doctor(env)
    assert result.code == 1, result.output
    lines = result.lines()
    assert lines["postgres"].startswith("FAIL") and "OG_DATABASE_URL" in lines["postgres"]
    assert "og:***@127.0.0.1" in lines["postgres"]
    for name in ("migrations", "dagster storage", "pools", "slot holds"):
        assert lines[name].startswith("skipped"), result.output
    assert DB_PASSWORD not in result.output


def test_pending_migrations_fail_and_doctor_applies_none(
    env: dict[str, str], instance: Any, db_url: str, empty_db_url: str
) -> None:
    ensure_pools(instance)
    last = available()[-1].version
    with connect(db_url) as conn:  # as if this checkout were newer than the database
        conn.execute("DELETE FROM og.schema_migrations WHERE version = %s", (last,))
    result = _doctor(env, "--json")
    assert result.code == 1, result.output
    check = result.checks()["migrations"]
    assert check["verdict"] == "FAIL" and last in check["detail"]
    assert check["facts"]["pending"] == [last]
    with connect(db_url) as conn:
        assert not conn.execute(
            "SELECT 1 FROM og.schema_migrations WHERE version = %s", (last,)
        ).fetchone(), "doctor applied the migration"

    env["OG_DATABASE_URL"] = empty_db_url  # never migrated
    result = _doctor(env, "--json")
    assert result.code == 1, result.output
    check = result.checks()["migrations"]
    assert check["verdict"] == "FAIL" and "never migrated" in check["detail"]
    assert len(check["facts"]["pending"]) == len(available())
    with connect(empty_db_url) as conn:
        assert conn.execute("SELECT to_regnamespace('og')").fetchone() == (None,)


def test_a_slot_held_longer_than_a_run_may_last_fails_naming_the_run(
    env: dict[str, str], instance: Any, dagster_url: str
) -> None:
    ensure_pools(instance)
    run_id = "doctor-" + uuid.uuid4().hex[:8]
    storage = instance.event_log_storage
    assert storage.claim_concurrency_slot(ORDERGROOVE_POOL, run_id, "step").is_claimed

    held_briefly = _doctor(env)
    assert held_briefly.code == 0, held_briefly.output
    assert "1 held now" in held_briefly.lines()["slot holds"]

    strict = _doctor(env, "--max-slot-hold-hours", "0")
    assert strict.code == 1, strict.output
    line = strict.lines()["slot holds"]
    assert line.startswith("FAIL") and run_id in line and ORDERGROOVE_POOL in line

    # Seven hours ago, in the database's own clock (where Dagster records the claim).
    with connect(dagster_url) as conn:
        conn.execute(
            "UPDATE pending_steps SET assigned_timestamp = assigned_timestamp - interval '7 hours'"
            " WHERE run_id = %s",
            (run_id,),
        )
    aged = _doctor(env, "--json")
    assert aged.code == 1, aged.output
    check = aged.checks()["slot holds"]
    assert check["verdict"] == "FAIL"
    assert run_id in check["detail"] and "not in Dagster's run storage" in check["detail"]
    assert check["facts"]["held"] == [{"run_id": run_id, "pool": ORDERGROOVE_POOL, "hours": 7.0}]
    assert storage.get_concurrency_info(ORDERGROOVE_POOL).active_run_ids == {run_id}, (
        "doctor freed nothing"
    )


def test_missing_pools_and_an_unset_webhook_key_warn_and_doctor_creates_no_pool(
    env: dict[str, str], instance: Any
) -> None:
    env.pop("ORDERGROOVE_WEBHOOK_KEY")  # with a (sandbox) Ordergroove key: a receiver is due
    result = _doctor(env)
    assert result.code == 0, "warnings do not fail:\n" + result.output
    lines = result.lines()
    assert lines["pools"].startswith("warn") and "first og-pipeline command" in lines["pools"]
    for pool in POOLS:
        assert f"{pool} missing" in lines["pools"]
    assert lines["webhook key"].startswith("warn")
    assert "ORDERGROOVE_WEBHOOK_KEY is not set" in lines["webhook key"]
    assert not set(POOLS) & instance.event_log_storage.get_concurrency_keys()


def test_a_pool_with_limit_0_fails_as_it_blocks_every_run_of_its_api(
    env: dict[str, str], instance: Any
) -> None:
    ensure_pools(instance)
    instance.event_log_storage.set_concurrency_slots(OMETRIA_POOL, 0)
    result = _doctor(env)
    assert result.code == 1, result.output
    line = result.lines()["pools"]
    assert line.startswith("FAIL") and f"{OMETRIA_POOL} limit 0" in line
    assert f"dagster instance concurrency set {OMETRIA_POOL} 1" in line


def test_a_receiver_answering_503_or_nothing_fails(
    env: dict[str, str], instance: Any, health_server: ThreadingHTTPServer
) -> None:
    ensure_pools(instance)
    result = _doctor(env, "--receiver-url", f"http://127.0.0.1:{health_server.server_address[1]}")
    assert result.code == 1, result.output
    line = result.lines()["receiver"]
    assert line.startswith("FAIL") and "503" in line and "database" in line

    result = _doctor(env, "--receiver-url", f"http://127.0.0.1:{_closed_port()}")
    assert result.code == 1, result.output
    line = result.lines()["receiver"]
    assert line.startswith("FAIL") and "no answer" in line and "ConnectionError" in line


def test_an_invalid_variable_fails_the_configuration_and_skips_the_rest(tmp_path: Path) -> None:
    env = {**_base_env(), "OG_SYNC_START_DATE": "yesterday", "OG_HOME": str(tmp_path)}
    result = _doctor(env)
    assert result.code == 1, result.output
    verdicts = result.verdicts()
    assert verdicts.pop("configuration") == "FAIL"
    assert set(verdicts.values()) == {"skipped"}
    assert "OG_SYNC_START_DATE: must be a date as YYYY-MM-DD" in result.lines()["configuration"]
    assert "Traceback" not in result.err


def test_before_the_first_command_nothing_is_created_only_reported(
    env: dict[str, str], db_url: str, pg_server_url: str, tmp_path: Path
) -> None:
    # No OG_DAGSTER_DATABASE_URL: Dagster's database would be <name>_dagster, not made yet.
    env.pop("OG_DAGSTER_DATABASE_URL")
    dagster_name = database_name(db_url) + "_dagster"
    result = _doctor(env)
    assert result.code == 0, result.output
    lines = result.lines()
    assert lines["dagster storage"].startswith("warn") and dagster_name in lines["dagster storage"]
    assert lines["pools"].startswith("skipped") and lines["slot holds"].startswith("skipped")
    with connect(pg_server_url) as conn:
        assert not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (dagster_name,)
        ).fetchone(), "doctor created Dagster's database"

    # The database exists, without Dagster's tables: opening the instance would create them.
    ensure_database(pg_server_url, dagster_name)
    try:
        result = _doctor(env)
        assert result.code == 0, result.output
        assert "tables do not exist yet" in result.lines()["dagster storage"]
        with connect(with_database(pg_server_url, dagster_name)) as conn:
            assert conn.execute("SELECT to_regclass('runs')").fetchone() == (None,)
    finally:
        drop_database(pg_server_url, dagster_name)

    # No OG_DATABASE_URL and no embedded data yet (a fresh checkout): no server is initialised.
    home = tmp_path / "fresh-home"
    env = {**_base_env(), "OG_HOME": str(home)}
    result = _doctor(env)
    assert result.code == 1, result.output
    lines = result.lines()
    assert lines["postgres"].startswith("warn") and "no data" in lines["postgres"]
    assert lines["migrations"].startswith("FAIL") and "does not exist yet" in lines["migrations"]
    assert not home.exists()


def test_the_embedded_server_is_checked_where_the_other_commands_keep_it(tmp_path: Path) -> None:
    home = tmp_path / "og-home"
    env = {**_base_env(), "OG_HOME": str(home)}
    with open_databases(load_settings(env), home):  # what the first command does, then stops
        pass
    result = _doctor(env)
    assert result.code == 0, result.output
    lines = result.lines()
    assert lines["postgres"].startswith("ok") and "the embedded server" in lines["postgres"]
    assert lines["migrations"].startswith("ok")
    assert lines["dagster storage"].startswith("warn") and "og_dagster" in lines["dagster storage"]
    # Doctor started the server for itself, and stopped it (no `dev` shares it).
    pid_file = home / "postgres" / "postmaster.pid"
    _poll(lambda: not pid_file.exists(), 30, "the embedded server stopped")


def test_receiver_url_must_be_http(env: dict[str, str], instance: Any) -> None:
    ensure_pools(instance)
    result = _doctor(env, "--receiver-url", "ftp://127.0.0.1/")
    assert result.code == 1
    assert "--receiver-url: expected an http(s):// URL" in result.lines()["receiver"]


def test_the_help_explains_the_options() -> None:
    result = _doctor(_base_env(), "--help")
    assert result.code == 0
    for option in ("--receiver-url", "--max-slot-hold-hours", "--json"):
        assert option in result.out
    result = _doctor(_base_env(), "--max-slot-hold-hours", "-1")
    assert result.code == 2 and "--max-slot-hold-hours" in result.err
