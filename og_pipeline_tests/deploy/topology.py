"""The production topology of deploy/ started as separate local processes, for test_topology.py.

Each process runs the command its image or compose service runs (read from deploy/Dockerfile and
deploy/docker-compose.yaml), with 127.0.0.1 and free ports instead of 0.0.0.0 and the fixed ones:
the code server, the webserver, the daemon and the receiver, on a DAGSTER_HOME holding copies of
deploy/dagster.yaml and deploy/workspace.yaml. Postgres is the tests' server (databases of this
topology's own), the sandbox APIs run in the test process.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import requests
from dagster_graphql import DagsterGraphQLClient
from psycopg import sql

from og_pipeline.db.connection import connect, ensure_database
from og_pipeline.db.urls import for_dagster, with_database
from og_pipeline.sandbox import WEBHOOK_KEY, MerchantSpec, SandboxServer
from og_pipeline_tests.deploy.files import (
    DEPLOY,
    IMAGE_DAGSTER_HOME,
    compose,
    dockerfile_exec_form,
)
from og_pipeline_tests.deploy.services import Service, Services, command_succeeds, free_port
from og_pipeline_tests.pipeline.conftest import NOW, PARTITION_FORMAT, START

# The processes' executables: this virtualenv's, or those of another install of og-pipeline (for
# example a plain `pip install .` like the image's) named by OG_DEPLOY_TEST_BIN.
BIN = Path(os.environ.get("OG_DEPLOY_TEST_BIN") or Path(sys.executable).parent)
LOCATION = "og_pipeline"
REPOSITORY = "__repository__"  # the repository of a @dg.definitions location
STARTED_PID = re.compile(r"Started process for run \(pid: (\d+)\)")


@dataclass
class Topology:
    services: Services
    code_server: Service
    code_port: int
    sandbox: SandboxServer
    instance: dg.DagsterInstance
    graphql: DagsterGraphQLClient
    og_url: str
    receiver_url: str
    busiest_hours: list[str]

    def submit_sync(self, partition: str) -> str:
        """As the hourly schedule does: a run of ordergroove_sync for one partition, queued."""
        return self.graphql.submit_job_execution(
            "ordergroove_sync",
            repository_location_name=LOCATION,
            repository_name=REPOSITORY,
            tags={"dagster/partition": partition},
        )

    def run(self, run_id: str) -> dg.DagsterRun:
        run = self.instance.get_run_by_id(run_id)
        assert run is not None, run_id
        return run

    def messages(self, run_id: str) -> list[str]:
        return [entry.message or "" for entry in self.instance.all_logs(run_id)]

    def worker_pid(self, run_id: str) -> int | None:
        """The run worker's pid, from the code server's "Started process for run" event."""
        for message in self.messages(run_id):
            if found := STARTED_PID.search(message):
                return int(found.group(1))
        return None

    def wait_until_finished(self, run_id: str, timeout: float) -> dg.DagsterRun:
        run = self.services.wait_for(
            lambda: (run := self.run(run_id)).is_finished and run,
            timeout,
            f"run {run_id} finished",
        )
        if run.status != dg.DagsterRunStatus.SUCCESS:
            self.services.fail(
                f"run {run_id} ended {run.status}:\n" + "\n".join(self.messages(run_id)[-40:])
            )
        return run

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        with connect(self.og_url) as conn:
            return conn.execute(statement).fetchall()


def _drop(server_url: str, name: str) -> None:
    with connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _busiest_hours(sandbox: SandboxServer) -> list[str]:
    """Partition keys of the hours with the most subscription updates: each syncs some contacts."""
    hours = Counter(
        datetime.fromtimestamp(ts, UTC).replace(minute=0, second=0).strftime(PARTITION_FORMAT)
        for ts in sandbox.merchant.cols.s_updated
    )
    return [hour for hour, _ in hours.most_common(2)]


def _location_loaded(port: int) -> bool:
    query = (
        "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
        "locationOrLoadError { __typename } } } } }"
    )
    try:
        body = requests.post(
            f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=10
        ).json()
    except (requests.RequestException, ValueError):
        return False
    entries = body.get("data", {}).get("workspaceOrError", {}).get("locationEntries", [])
    return any(
        entry["name"] == LOCATION
        and entry["loadStatus"] == "LOADED"
        and entry["locationOrLoadError"]["__typename"] == "RepositoryLocation"
        for entry in entries
    )


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _local(command: Sequence[str], replacements: dict[str, str]) -> list[str]:
    """An image's command for this machine: executables from this virtualenv, the container's
    addresses and paths replaced."""
    program, *args = command
    executable = str(BIN / program)
    return [executable, *(replacements.get(arg, arg) for arg in args)]


@contextmanager
def running_topology(pg_server_url: str, template: str, folder: Path) -> Iterator[Topology]:
    """Everything up and ready; every process stopped and the databases dropped afterwards."""
    home = folder / "dagster_home"
    home.mkdir()
    for name in ("dagster.yaml", "workspace.yaml"):
        shutil.copy(DEPLOY / name, home / name)
    suffix = uuid.uuid4().hex[:10]
    og_db, dagster_db = f"og_test_topo_{suffix}", f"og_test_topo_{suffix}_dagster"
    with connect(pg_server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(og_db), sql.Identifier(template)
            )
        )
    ensure_database(pg_server_url, dagster_db)
    og_url = with_database(pg_server_url, og_db)
    code_port, web_port, receiver_port = free_port(), free_port(), free_port()
    local = {
        "0.0.0.0": "127.0.0.1",
        "4000": str(code_port),
        "3000": str(web_port),
        "8701": str(receiver_port),
        f"{IMAGE_DAGSTER_HOME}/workspace.yaml": str(home / "workspace.yaml"),
    }
    spec = MerchantSpec(subscriptions=300, seed=7, start=START, now=NOW)
    services = Services(folder)
    try:
        with SandboxServer(spec, port=0) as sandbox:
            env = {
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "DAGSTER_HOME": str(home),
                "OG_HOME": str(folder / "og"),
                "OG_DATABASE_URL": og_url,
                "OG_DAGSTER_DATABASE_URL": for_dagster(with_database(pg_server_url, dagster_db)),
                "OG_DAGSTER_ARTIFACTS_DIR": str(folder / "artifacts"),
                "OG_DAGSTER_COMPUTE_LOGS_DIR": str(folder / "artifacts" / "compute_logs"),
                "OG_CODE_SERVER_HOST": "127.0.0.1",
                "OG_CODE_SERVER_PORT": str(code_port),
                "ORDERGROOVE_API_URL": sandbox.ordergroove_url,
                "OMETRIA_API_URL": sandbox.ometria_url,
                "ORDERGROOVE_API_KEY": sandbox.keys["ordergroove"],
                "OMETRIA_API_KEY": sandbox.keys["ometria"],
                "ORDERGROOVE_WEBHOOK_KEY": WEBHOOK_KEY,
                "OG_SYNC_START_DATE": START.date().isoformat(),
            }
            with _instance(home, env) as instance:
                try:
                    yield _start(services, sandbox, instance, env, home, local, og_url)
                finally:
                    services.stop()  # before the sandbox and the instance go
    finally:
        services.stop()
        left = services.survivors()
        _drop(pg_server_url, og_db)
        _drop(pg_server_url, dagster_db)
    assert not left, f"processes left running after teardown: {left}"


@contextmanager
def _instance(home: Path, env: dict[str, str]) -> Iterator[dg.DagsterInstance]:
    """The instance of deploy/dagster.yaml, opened in this process (it reads the environment)."""
    names = ("OG_DAGSTER_DATABASE_URL", "OG_DAGSTER_ARTIFACTS_DIR", "OG_DAGSTER_COMPUTE_LOGS_DIR")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: env[name] for name in names})
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        yield instance
    finally:
        instance.dispose()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _start(
    services: Services,
    sandbox: SandboxServer,
    instance: dg.DagsterInstance,
    env: dict[str, str],
    home: Path,
    local: dict[str, str],
    og_url: str,
) -> Topology:
    commands = {name: spec.get("command") for name, spec in compose()["services"].items()}
    # The compose file's one-off init service first: Dagster's tables and the API pools.
    assert command_succeeds(_local(commands["init"], local), env, timeout=120)
    # The code server: the image's default command; up when the image's HEALTHCHECK passes.
    assert commands["code-server"] is None, "the code server runs the image's default command"
    code_server = services.start(
        "code-server", _local(dockerfile_exec_form("CMD"), local), env, home
    )
    health = _local(dockerfile_exec_form("HEALTHCHECK"), local)
    services.wait_for(lambda: command_succeeds(health, env), 120, "the code server is healthy")
    for name in ("webserver", "daemon", "receiver"):
        services.start(name, _local(commands[name], local), env, home)

    web_port, receiver_port = int(local["3000"]), int(local["8701"])
    services.wait_for(lambda: _location_loaded(web_port), 120, "the UI loaded og_pipeline")
    receiver = f"http://127.0.0.1:{receiver_port}"
    services.wait_for(lambda: _answers(receiver + "/healthz"), 60, "the receiver is ready")
    required = set(instance.get_required_daemon_types())
    services.wait_for(
        lambda: required <= set(instance.get_daemon_heartbeats()),
        90,
        f"the daemon runs {sorted(required)}",
    )
    return Topology(
        services=services,
        code_server=code_server,
        code_port=int(local["4000"]),
        sandbox=sandbox,
        instance=instance,
        graphql=DagsterGraphQLClient("127.0.0.1", port_number=web_port),
        og_url=og_url,
        receiver_url=receiver + "/webhooks/ordergroove",
        busiest_hours=_busiest_hours(sandbox),
    )
