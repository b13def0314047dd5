"""deploy/ read offline, as Kubernetes, Helm, Docker Compose and Dagster read it.

The Kubernetes manifests validate against the API's schemas (kubernetes-validate, strict: no
unknown field) and hold together (selectors, targets, one secret name); the Helm values name what
the chart needs and yield an instance Dagster accepts; the compose file runs the expected
services on one image; deploy/dagster.yaml and deploy/workspace.yaml load as Dagster loads them.
The image itself is built only where a Docker daemon answers (test_image_builds).
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import kubernetes_validate
import pytest
import yaml
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from dagster._core.workspace.load import location_origins_from_config
from psycopg import sql

from og_pipeline.db.connection import connect, ensure_database
from og_pipeline.db.urls import for_dagster, with_database
from og_pipeline.pools import POOLS
from og_pipeline.settings import load_settings
from og_pipeline_tests.deploy.files import (
    DEPLOY,
    IMAGE_DAGSTER_HOME,
    ROOT,
    compose,
    dockerfile_env,
    dockerfile_exec_form,
    dockerfile_instructions,
    load_yaml,
    load_yaml_documents,
)

KUBERNETES_VERSION = "1.30"
RECEIVER_PORT = 8701
K8S_FILES = sorted(path.name for path in (DEPLOY / "k8s").glob("*.yaml"))


def _by_kind(kind: str) -> dict[str, Any]:
    (doc,) = [doc for doc in load_yaml_documents("k8s/receiver.yaml") if doc["kind"] == kind]
    return doc


def _env_secret_names() -> set[str]:
    return {
        doc["metadata"]["name"]
        for doc in load_yaml_documents("k8s/secret.example.yaml")
        if "OG_DATABASE_URL" in doc.get("stringData", {})
    }


# ---------------------------------------------------------------------------- Kubernetes


@pytest.mark.parametrize("name", K8S_FILES)
def test_every_manifest_validates_against_the_kubernetes_schema(name: str) -> None:
    docs = load_yaml_documents(f"k8s/{name}")
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        assert doc["metadata"].get("namespace") == "og-pipeline", doc["metadata"]["name"]


def test_the_receiver_runs_two_replicas_or_more_probed_on_healthz() -> None:
    deployment = _by_kind("Deployment")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["command"][:3] == ["og-pipeline", "webhooks", "serve"]
    args = container["command"]
    assert args[args.index("--port") + 1] == str(RECEIVER_PORT)
    assert args[args.index("--host") + 1] == "0.0.0.0"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": RECEIVER_PORT}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        http = container[probe]["httpGet"]
        assert http["path"] == "/healthz" and ports[http["port"]] == RECEIVER_PORT, probe
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    (source,) = container["envFrom"]
    assert source["secretRef"]["name"] in _env_secret_names()


def test_service_ingress_pdb_and_hpa_find_the_receiver() -> None:
    deployment = _by_kind("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()

    service = _by_kind("Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "http"

    ingress = _by_kind("Ingress")
    assert ingress["spec"]["tls"] and "cert-manager.io/cluster-issuer" in ingress["metadata"].get(
        "annotations", {}
    )
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] in ingress["spec"]["tls"][0]["hosts"]
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/webhooks/ordergroove"
    assert path["backend"]["service"] == {
        "name": service["metadata"]["name"],
        "port": {"name": port["name"]},
    }

    pdb = _by_kind("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    hpa = _by_kind("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert (
        hpa["spec"]["minReplicas"] >= 2 and hpa["spec"]["maxReplicas"] >= hpa["spec"]["minReplicas"]
    )
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"


def test_the_example_secrets_are_placeholders_og_pipeline_accepts() -> None:
    docs = {doc["metadata"]["name"]: doc for doc in load_yaml_documents("k8s/secret.example.yaml")}
    (name,) = _env_secret_names()
    env = docs[name]["stringData"]
    required = {
        "OG_DATABASE_URL",
        "OG_DAGSTER_DATABASE_URL",
        "ORDERGROOVE_API_KEY",
        "OMETRIA_API_KEY",
        "ORDERGROOVE_WEBHOOK_KEY",
        "OG_SYNC_START_DATE",
    }
    assert required <= set(env)
    assert env["OG_DAGSTER_DATABASE_URL"].startswith("postgresql+psycopg2://")
    for key in required - {"OG_SYNC_START_DATE"}:
        assert "CHANGE-ME" in env[key], f"{key} must be an obvious placeholder"
    load_settings(env)  # every value reads as og-pipeline reads it

    values = load_yaml("helm/values.yaml")
    password_secret = docs[values["global"]["postgresqlSecretName"]]
    assert set(password_secret["stringData"]) == {"postgresql-password"}


# ---------------------------------------------------------------------------- Helm


def _user_deployment(values: dict[str, Any]) -> dict[str, Any]:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return deployment


def test_the_helm_values_run_our_code_server_image_with_k8s_run_launcher() -> None:
    text = (DEPLOY / "helm/values.yaml").read_text()
    assert "1.13.27" in text and "https://dagster-io.github.io/helm" in text
    values = yaml.safe_load(text)
    deployment = _user_deployment(values)
    assert deployment["image"]["repository"].endswith("/og-pipeline")
    assert deployment["image"]["tag"] not in ("", "latest")
    cmd = dockerfile_exec_form("CMD")
    assert deployment["port"] == int(cmd[cmd.index("-p") + 1])
    assert "dagsterApiGrpcArgs" not in deployment  # one of the two, the chart's 1.13 choice
    args = deployment["codeServerArgs"]
    assert args[args.index("-m") + 1] == cmd[cmd.index("-m") + 1] == "og_pipeline.definitions"
    assert args[args.index("--location-name") + 1] == "og_pipeline"

    secrets = _env_secret_names()
    assert {s["name"] for s in deployment["envSecrets"]} == secrets
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    assert {s["name"] for s in launcher["config"]["k8sRunLauncher"]["envSecrets"]} == secrets
    assert values["postgresql"]["enabled"] is False
    assert values["generatePostgresqlPasswordSecret"] is False
    for pool in POOLS:
        assert pool in text


def _compact_empty(config: dict[str, Any]) -> bool:
    """Helm's `empty (compact (values config))`: every value null, false, 0, "" or empty."""
    return not any(value for value in config.values())


def _chart_instance(values: dict[str, Any]) -> dict[str, Any]:
    """What chart 1.13's templates (helpers/instance/*.tpl) write into dagster.yaml from these
    values, for the keys we set (storage and run launcher left out: they need the cluster)."""
    daemon = values["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    run_coordinator: dict[str, Any] = {
        "module": "dagster._core.run_coordinator",
        "class": daemon["runCoordinator"]["type"],
    }
    if not _compact_empty(queued):
        max_runs = queued.get("maxConcurrentRuns")
        run_coordinator["config"] = {"max_concurrent_runs": -1 if max_runs is None else max_runs}
    concurrency = values["concurrency"]
    monitoring, retries = daemon["runMonitoring"], daemon["runRetries"]
    return {
        "run_coordinator": run_coordinator,
        "concurrency": {
            "pools": {"default_limit": concurrency["pools"]["defaultLimit"]},
            "runs": {
                "max_concurrent_runs": concurrency["runs"]["maxConcurrentRuns"],
                "tag_concurrency_limits": concurrency["runs"]["tagConcurrencyLimits"],
            },
        },
        "run_monitoring": {
            "enabled": monitoring["enabled"],
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "max_resume_run_attempts": monitoring["maxResumeRunAttempts"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
            "free_slots_after_run_end_seconds": monitoring["freeSlotsAfterRunEndSeconds"],
        },
        "run_retries": {
            "enabled": retries["enabled"],
            "max_retries": retries["maxRetries"],
            "retry_on_asset_or_op_failure": retries["retryOnAssetOrOpFailure"],
        },
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
    }


def _load_instance_config(config: dict[str, Any], folder: Path) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dagster.yaml").write_text(yaml.safe_dump(config))
    loaded, _ = dagster_instance_config(str(folder))
    return dict(loaded)


def test_the_helm_values_give_an_instance_dagster_accepts(tmp_path: Path) -> None:
    values = load_yaml("helm/values.yaml")
    daemon = values["dagsterDaemon"]
    assert daemon["enabled"] and daemon["runCoordinator"]["enabled"]
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert daemon["runMonitoring"]["enabled"]
    assert daemon["runMonitoring"]["freeSlotsAfterRunEndSeconds"] > 0
    assert daemon["runRetries"]["enabled"]
    assert values["concurrency"]["enabled"]

    instance = _load_instance_config(_chart_instance(values), tmp_path / "chart")
    assert instance["concurrency"]["pools"] == {"default_limit": 1}
    assert {"key": "dagster/backfill", "limit": 1} in instance["concurrency"]["runs"][
        "tag_concurrency_limits"
    ]
    assert instance["run_monitoring"]["free_slots_after_run_end_seconds"] > 0
    assert "config" not in instance["run_coordinator"]

    # Why the run coordinator's config stays empty: one value there and the chart writes
    # max_concurrent_runs: -1 next to concurrency.pools, which Dagster refuses.
    daemon["runCoordinator"]["config"]["queuedRunCoordinator"]["dequeueNumWorkers"] = 4
    with pytest.raises(DagsterInvalidConfigError, match="max_concurrent_runs"):
        _load_instance_config(_chart_instance(values), tmp_path / "refused")


# ---------------------------------------------------------------------------- Docker


def test_the_image_serves_the_code_location_by_default_and_checks_its_health() -> None:
    cmd = dockerfile_exec_form("CMD")
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert cmd[cmd.index("-h") + 1] == "0.0.0.0" and cmd[cmd.index("-p") + 1] == "4000"
    assert cmd[cmd.index("-m") + 1] == "og_pipeline.definitions"
    assert dockerfile_exec_form("HEALTHCHECK") == [
        "dagster",
        "api",
        "grpc-health-check",
        "-p",
        "4000",
    ]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile and "pip install ." in dockerfile
    # No ENTRYPOINT: the Helm chart sets the container's args to its own command.
    assert "ENTRYPOINT" not in {name for name, _ in dockerfile_instructions()}
    env = dockerfile_env()
    assert env["DAGSTER_HOME"] == IMAGE_DAGSTER_HOME
    ignored = set((DEPLOY / "Dockerfile.dockerignore").read_text().split())
    assert {".venv", ".og", ".git"} <= ignored


def test_compose_runs_the_expected_services_on_one_image() -> None:
    spec = compose()
    services = spec["services"]
    assert set(services) == {"postgres", "init", "code-server", "webserver", "daemon", "receiver"}
    assert services["postgres"]["image"].split(":")[0] == "postgres"
    ours = {name: service for name, service in services.items() if name != "postgres"}
    assert len({service["image"] for service in ours.values()}) == 1
    for name, service in ours.items():
        build = service["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
        mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}
        assert mounts[f"{IMAGE_DAGSTER_HOME}/dagster.yaml"] == "./dagster.yaml", name
        assert mounts[f"{IMAGE_DAGSTER_HOME}/workspace.yaml"] == "./workspace.yaml", name
        if name != "code-server":  # the image's HEALTHCHECK is the code server's
            assert "healthcheck" in service, name
        assert "deploy" not in service and "scale" not in service, name

    assert "command" not in services["code-server"]  # the image's default: the code server
    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]
    assert services["receiver"]["command"][:3] == ["og-pipeline", "webhooks", "serve"]
    workspace = f"{IMAGE_DAGSTER_HOME}/workspace.yaml"
    for name in ("webserver", "daemon"):
        command = services[name]["command"]
        assert command[command.index("-w") + 1] == workspace
        assert services[name]["depends_on"]["init"]["condition"] == "service_completed_successfully"

    env = services["code-server"]["environment"]
    assert env["OG_CODE_SERVER_HOST"] == "code-server"
    assert env["OG_CODE_SERVER_PORT"] == "4000"
    assert env["OG_DAGSTER_DATABASE_URL"].startswith("postgresql+psycopg2://")
    dagster_db = env["OG_DAGSTER_DATABASE_URL"].rsplit("/", 1)[1]
    assert f"CREATE DATABASE {dagster_db};" in (DEPLOY / "postgres-init.sql").read_text()


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_image_builds() -> None:
    """`docker build` of the image (minutes: it installs og-pipeline and Dagster from PyPI)."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker CLI on this machine: the image was not built")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        said = (info.stderr or info.stdout).strip().splitlines()
        pytest.skip(
            "the Docker daemon does not answer (`docker info` failed), so the image was not "
            "built" + (f": {said[-1]}" if said else "")
        )
    tag = f"og-pipeline:test-{uuid.uuid4().hex[:8]}"
    build = [docker, "build", "-f", "deploy/Dockerfile", "-t", tag, "."]
    subprocess.run(build, cwd=ROOT, check=True, timeout=3000)
    try:
        for check in (["og-pipeline", "--help"], ["python", "-c", "import dagster_k8s"]):
            subprocess.run([docker, "run", "--rm", tag, *check], check=True, timeout=300)
    finally:
        subprocess.run([docker, "rmi", "-f", tag], check=False, timeout=300)


# ---------------------------------------------------------------------------- Dagster


def _image_env(monkeypatch: pytest.MonkeyPatch, dagster_url: str, folder: Path) -> None:
    monkeypatch.setenv("OG_DAGSTER_DATABASE_URL", dagster_url)
    monkeypatch.setenv("OG_DAGSTER_ARTIFACTS_DIR", str(folder / "artifacts"))
    monkeypatch.setenv("OG_DAGSTER_COMPUTE_LOGS_DIR", str(folder / "artifacts" / "logs"))


def test_the_production_instance_loads_with_its_queue_pools_and_monitoring(
    pg_server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "og_test_instance_" + uuid.uuid4().hex[:10]
    ensure_database(pg_server_url, name)
    _image_env(monkeypatch, for_dagster(with_database(pg_server_url, name)), tmp_path)
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))  # Dagster's own schema and rules
    assert config["telemetry"] == {"enabled": False}
    try:
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
            assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
            concurrency = instance.get_concurrency_config()
            assert concurrency.pool_config.default_pool_limit == 1
            queue = concurrency.run_queue_config
            assert queue is not None and queue.max_concurrent_runs > 1
            assert {"key": "dagster/backfill", "limit": 1} in queue.tag_concurrency_limits
            assert instance.run_monitoring_enabled
            settings = instance.run_monitoring_settings
            assert settings["free_slots_after_run_end_seconds"] > 0
            assert settings["start_timeout_seconds"] > 0 and settings["poll_interval_seconds"] > 0
            assert instance.run_retries_enabled and instance.run_retries_max_retries >= 1
            assert not instance.run_retries_retry_on_asset_or_op_failure
    finally:
        with connect(pg_server_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_the_production_workspace_points_at_the_code_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = dockerfile_env()  # the image's defaults, the compose service's name and port
    monkeypatch.setenv("OG_CODE_SERVER_HOST", env["OG_CODE_SERVER_HOST"])
    monkeypatch.setenv("OG_CODE_SERVER_PORT", env["OG_CODE_SERVER_PORT"])
    path = DEPLOY / "workspace.yaml"
    (origin,) = location_origins_from_config(yaml.safe_load(path.read_text()), str(path)).values()
    assert (origin.host, origin.port, origin.location_name) == ("code-server", 4000, "og_pipeline")
    assert "code-server" in compose()["services"]
    cmd = dockerfile_exec_form("CMD")
    assert cmd[cmd.index("--location-name") + 1] == origin.location_name
