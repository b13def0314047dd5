"""The files in deploy/, read as the tools that use them read them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# The image's DAGSTER_HOME and working directory (deploy/Dockerfile).
IMAGE_DAGSTER_HOME = "/opt/dagster/dagster_home"


def load_yaml(relative: str) -> Any:
    return yaml.safe_load((DEPLOY / relative).read_text())


def load_yaml_documents(relative: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / relative).read_text()) if doc]


def compose() -> dict[str, Any]:
    return load_yaml("docker-compose.yaml")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of deploy/Dockerfile, continuation lines joined."""
    instructions, current = [], ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        part = stripped.removesuffix("\\").strip()
        current = f"{current} {part}" if current else part
        if not stripped.endswith("\\"):
            name, _, arguments = current.partition(" ")
            instructions.append((name.upper(), arguments.strip()))
            current = ""
    return instructions


def dockerfile_exec_form(instruction: str) -> list[str]:
    """The JSON (exec form) arguments of the Dockerfile's last ``instruction``, e.g. CMD."""
    arguments = [args for name, args in dockerfile_instructions() if name == instruction][-1]
    if instruction == "HEALTHCHECK":
        arguments = arguments[arguments.index("CMD") + len("CMD") :].strip()
    return json.loads(arguments)


def dockerfile_env() -> dict[str, str]:
    """The image's ENV defaults (key=value form)."""
    env: dict[str, str] = {}
    for name, arguments in dockerfile_instructions():
        if name == "ENV":
            for pair in arguments.split():
                key, _, value = pair.partition("=")
                env[key] = value
    return env
