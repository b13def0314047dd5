"""The blocking `serve()` used by the CLI and `og-pipeline dev`, and the click command."""

from __future__ import annotations

import threading

import requests
from click.testing import CliRunner

from og_pipeline.sandbox import SandboxState, serve
from og_pipeline.sandbox.cli import sandbox as sandbox_command

from .conftest import V2, small_spec


def test_serve_in_a_thread_until_stopped() -> None:
    ready = threading.Event()
    stop = threading.Event()
    found: dict[str, str] = {}

    def on_ready(state: SandboxState, base: str) -> None:
        found["base"] = base
        ready.set()

    thread = threading.Thread(
        target=serve,
        kwargs={"spec": small_spec(40), "port": 0, "on_ready": on_ready, "stop": stop},
        daemon=True,
    )
    thread.start()
    assert ready.wait(30)
    base = found["base"]
    response = requests.get(base + "/ordergroove/subscriptions/", headers=V2)
    assert response.status_code == 200 and response.json()["results"]
    assert requests.get(base + "/_sandbox/health").status_code == 200
    info = requests.get(base + "/_sandbox/info").json()
    assert info["counts"]["subscriptions"] == 40
    assert info["keys"]["ometria"] == "sandbox-ometria-key"
    stop.set()
    thread.join(15)
    assert not thread.is_alive()


def test_cli_help_lists_options() -> None:
    result = CliRunner().invoke(sandbox_command, ["--help"])
    assert result.exit_code == 0
    options = ("--port", "--seed", "--subscriptions", "--start-date", "--now", "--fault-rate")
    more = ("--og-fault-rate", "--webhook-url", "--webhook-rate", "--bad-record-rate")
    for option in (*options, *more):
        assert option in result.output
