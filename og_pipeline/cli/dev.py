"""``og-pipeline dev``: the whole system on one machine.

    embedded Postgres (unless OG_DATABASE_URL)  ->  migrations      open_databases
    the children's environment, sandbox URLs for APIs without keys      _plan
    webhook receiver (og-pipeline webhooks serve)                       _start_receiver
    sandbox APIs, streaming signed webhooks to the receiver             _start_sandbox
    dagster dev: webserver + daemon (schedules and sensors on)          _start_dagster
    first start only: the start-date backfill, as one run; then wait    _supervise

Ctrl-C stops every process started here; the data stays in .og/ for the next start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import click

from og_pipeline.cli.processes import spawn, stop, wait_until_up
from og_pipeline.cli.run_report import RunReporter
from og_pipeline.cli.runs import instance_on
from og_pipeline.runtime import (
    Databases,
    dagster_environment,
    open_databases,
    project_root,
    state_dir,
)
from og_pipeline.settings import Settings, load_settings, require_start_date

# The sandbox's fixed keys: they only open the local stand-ins.
SANDBOX_ORDERGROOVE_KEY = "sandbox-og-key"
SANDBOX_OMETRIA_KEY = "sandbox-ometria-key"
SANDBOX_WEBHOOK_KEY = "sandbox-webhook-key"
# Written once the start-date backfill succeeded, so later starts leave it to the schedule.
BACKFILL_MARKER = "dev-backfill.done"
# The backfill's output, kept (it also goes to the console) for when it fails or hangs.
BACKFILL_LOG = "dev-backfill.log"
# How often the console says which runs started and ended.
RUN_REPORT_SECONDS = 3.0


def _dev_sandbox_spec(state: Path, start_date: date | None) -> dict[str, str | int]:
    """The sandbox merchant of this dev folder, fixed at first start.

    The sandbox keeps its data in memory and regenerates it from this spec at every start; keeping
    the seed, start and "now" makes it the same merchant each time, so the tables kept in Postgres
    stay consistent with it.
    """
    path = state / "dev-sandbox.json"
    if path.is_file():
        spec = json.loads(path.read_text())
        if start_date is None or spec.get("start_date") == start_date.isoformat():
            return spec
    today = datetime.now(UTC).date()
    spec = {
        "seed": 1,
        "subscriptions": 2000,
        "start_date": (start_date or today - timedelta(days=7)).isoformat(),
        "now": datetime.now(UTC).replace(microsecond=0).isoformat(),
    }
    path.write_text(json.dumps(spec, indent=2) + "\n")
    return spec


def _start_first_backfill(
    state: Path, env: Mapping[str, str], root: Path
) -> subprocess.Popen | None:
    """On first start, sync from OG_SYNC_START_DATE to the last complete hour, as one run.

    The hourly schedule takes over from there. The run shows in the UI like any other.
    """
    if (state / BACKFILL_MARKER).exists():
        return None
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = env["OG_SYNC_START_DATE"]
    click.echo(
        f"first start: backfilling from {start} to {end:%Y-%m-%dT%H:%M} UTC (one run; see the UI; "
        f"output also in {state / BACKFILL_LOG})"
    )
    proc = spawn(
        [
            sys.executable,
            "-m",
            "og_pipeline",
            "sync",
            "--start",
            start,
            "--end",
            end.strftime("%Y-%m-%dT%H:%M"),
        ],
        env,
        root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    threading.Thread(
        target=_relay, args=(proc, state / BACKFILL_LOG), name="backfill-output", daemon=True
    ).start()
    return proc


def _relay(proc: subprocess.Popen, log: Path) -> None:
    """Copy the backfill's output to the console and to its log, line by line."""
    assert proc.stdout is not None
    with log.open("w", encoding="utf-8") as out:
        for line in proc.stdout:
            out.write(line)
            out.flush()
            sys.stdout.write(line)
            sys.stdout.flush()


def _finish_first_backfill(state: Path, backfill: subprocess.Popen) -> None:
    if backfill.returncode == 0:
        (state / BACKFILL_MARKER).write_text(datetime.now(UTC).isoformat() + "\n")
        click.echo("start-date backfill done; the hourly schedule keeps contacts current")
    else:
        click.echo(
            f"start-date backfill failed (exit {backfill.returncode}); its output is in "
            f"{state / BACKFILL_LOG} and its run (if it got that far) in the UI. "
            "It runs again at the next start.",
            err=True,
        )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@click.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Interface for the UI and services."
)
@click.option("--port", default=3000, show_default=True, help="Port of the Dagster UI.")
@click.option("--sandbox-port", default=8700, show_default=True, help="Port of the sandbox APIs.")
@click.option(
    "--webhook-port", default=8701, show_default=True, help="Port of the webhook receiver."
)
@click.option(
    "--webhook-rate",
    default=0.1,
    show_default=True,
    help="Signed webhooks per second the sandbox sends to the receiver (0: none).",
)
@click.option(
    "--bad-record-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Share of the sandbox's REST records served malformed (see og-pipeline sandbox --help).",
)
def dev(
    host: str,
    port: int,
    sandbox_port: int,
    webhook_port: int,
    webhook_rate: float,
    bad_record_rate: float,
) -> None:
    """Run the whole system locally: Postgres, sandbox APIs, Dagster UI and daemon.

    Uses an embedded Postgres (data in .og/postgres) unless OG_DATABASE_URL is set, and the sandbox
    stand-in of each API whose key (ORDERGROOVE_API_KEY, OMETRIA_API_KEY) is not set; with the
    sandbox Ordergroove, it streams signed webhooks to the receiver. Ctrl-C stops everything; the
    data is kept for the next start.
    """
    settings = load_settings()
    root = project_root()
    state = state_dir(root)
    click.echo(f"og-pipeline dev: state in {state}")
    databases = open_databases(settings, state)
    processes: list[subprocess.Popen] = []
    # Ctrl-C and SIGTERM (a supervisor, a test) both stop everything in order, even when this
    # process was started with SIGINT ignored (a background job of a script). A handled signal
    # is reset to its default in each child at exec, so the children honour our SIGINT too.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        click.echo(
            "Postgres: "
            + (
                "embedded, data in " + str(state / "postgres")
                if databases.embedded
                else "OG_DATABASE_URL"
            )
        )
        plan = _plan(settings, root, state, databases, f"http://{host}:{sandbox_port}")
        receiver = _start_receiver(plan, host, webhook_port, processes)
        if plan.fake_ordergroove or plan.fake_ometria:
            _start_sandbox(
                plan, host, sandbox_port, receiver, webhook_rate, bad_record_rate, processes
            )
        _start_dagster(plan, databases, host, port, processes)
        with instance_on(plan.root, plan.state, databases) as instance:
            _supervise(plan, processes, RunReporter(instance, f"http://{host}:{port}"))
    except KeyboardInterrupt:
        click.echo("stopping...")
    finally:
        stop(processes)
        databases.close()
        click.echo("stopped; data kept in " + str(state))


@dataclass(frozen=True)
class _Plan:
    """What `dev` runs: the children's environment and which APIs are the sandbox's."""

    root: Path
    state: Path
    env: dict[str, str]
    fake_ordergroove: bool
    fake_ometria: bool
    sandbox_url: str
    spec: dict[str, str | int]
    webhook_keys: bool


def _plan(
    settings: Settings, root: Path, state: Path, databases: Databases, sandbox_url: str
) -> _Plan:
    """The children's environment: the databases, and the sandbox for each API without a key."""
    env = dict(os.environ)
    env.update(dagster_environment(root, state, databases))
    fake_og = settings.ordergroove_api_key is None
    fake_ometria = settings.ometria_api_key is None
    if not fake_og:
        require_start_date(settings)
    spec = (
        _dev_sandbox_spec(state, settings.sync_start_date if fake_og else None)
        if fake_og or fake_ometria
        else {}
    )
    if fake_og:
        env.update(
            ORDERGROOVE_API_URL=sandbox_url + "/ordergroove",
            ORDERGROOVE_API_KEY=SANDBOX_ORDERGROOVE_KEY,
            ORDERGROOVE_WEBHOOK_KEY=SANDBOX_WEBHOOK_KEY,
            OG_SYNC_START_DATE=str(spec["start_date"]),
        )
    if fake_ometria:
        env.update(OMETRIA_API_URL=sandbox_url + "/ometria", OMETRIA_API_KEY=SANDBOX_OMETRIA_KEY)
    # Validate what the children will see, so a bad value fails here with its name.
    child_settings = load_settings(env)
    return _Plan(
        root,
        state,
        env,
        fake_og,
        fake_ometria,
        sandbox_url,
        spec,
        bool(child_settings.webhook_keys),
    )


def _start_receiver(
    plan: _Plan, host: str, webhook_port: int, processes: list[subprocess.Popen]
) -> str:
    """The webhook receiver, when a webhook key is set; returns its URL ("" when not started)."""
    if not plan.webhook_keys:
        click.echo("Webhook receiver not started: ORDERGROOVE_WEBHOOK_KEY is not set", err=True)
        return ""
    command = ["webhooks", "serve", "--host", host, "--port", str(webhook_port)]
    processes.append(spawn([sys.executable, "-m", "og_pipeline", *command], plan.env, plan.root))
    wait_until_up(f"http://{host}:{webhook_port}/healthz", "the webhook receiver", processes, 60)
    receiver = f"http://{host}:{webhook_port}/webhooks/ordergroove"
    click.echo(f"Webhook receiver: {receiver}")
    return receiver


def _start_sandbox(
    plan: _Plan,
    host: str,
    sandbox_port: int,
    receiver: str,
    webhook_rate: float,
    bad_record_rate: float,
    processes: list[subprocess.Popen],
) -> None:
    """The sandbox APIs, streaming signed webhooks to the receiver with the sandbox Ordergroove."""
    stream = (
        ["--webhook-url", receiver, "--webhook-rate", str(webhook_rate)]
        if plan.fake_ordergroove and receiver and webhook_rate > 0
        else []
    )
    spec = plan.spec
    command = [
        *("sandbox", "--host", host, "--port", str(sandbox_port)),
        *("--seed", str(spec["seed"]), "--subscriptions", str(spec["subscriptions"])),
        *("--start-date", str(spec["start_date"]), "--now", str(spec["now"])),
        *("--bad-record-rate", str(bad_record_rate), *stream),
    ]
    processes.append(spawn([sys.executable, "-m", "og_pipeline", *command], plan.env, plan.root))
    wait_until_up(plan.sandbox_url + "/_sandbox/health", "the sandbox", processes, 120)
    kinds = (
        f"Ordergroove: {'sandbox' if plan.fake_ordergroove else 'real'}, "
        f"Ometria: {'sandbox' if plan.fake_ometria else 'real'}"
    )
    sending = f"; sending {webhook_rate:g} signed webhooks/s to the receiver" if stream else ""
    click.echo(f"Sandbox APIs: {plan.sandbox_url} ({kinds}){sending}")


def _start_dagster(
    plan: _Plan, databases: Databases, host: str, port: int, processes: list[subprocess.Popen]
) -> None:
    """`dagster dev` (webserver and daemon) on the project's workspace."""
    # Dagster's tables and the API pools exist before the daemon can start a run: two runs
    # making a pool's first claim at once fail one of them (see og_pipeline.pools).
    with instance_on(plan.root, plan.state, databases):
        pass
    workspace = str(plan.root / "workspace.yaml")
    command = ["dagster", "dev", "-w", workspace, "-h", host, "-p", str(port)]
    processes.append(spawn([sys.executable, "-m", *command], plan.env, plan.root))
    wait_until_up(f"http://{host}:{port}/server_info", "the Dagster UI", processes, 180)
    click.echo(f"Dagster UI: http://{host}:{port}  (Ctrl-C stops everything)")
    click.echo(
        "Runs log here at INFO (dagster.yaml, python_logs); every event of a run is in the UI "
        f"(Runs), its raw output in {plan.state / 'dagster' / 'compute_logs'}"
    )


def _supervise(plan: _Plan, processes: list[subprocess.Popen], runs: RunReporter) -> None:
    """The first start's backfill, then wait, saying each run's start and end: any child that
    exits stops them all."""
    backfill = _start_first_backfill(plan.state, plan.env, plan.root)
    if backfill is not None:
        processes.append(backfill)
    next_report = 0.0
    while all(proc.poll() is None for proc in processes if proc is not backfill):
        if backfill is not None and backfill.poll() is not None:
            _finish_first_backfill(plan.state, backfill)
            processes.remove(backfill)
            backfill = None
        if time.monotonic() >= next_report:
            next_report = time.monotonic() + RUN_REPORT_SECONDS
            for line in runs.poll():
                click.echo(line)
        time.sleep(1)
    raise click.ClickException("a process of og-pipeline dev exited; stopping the others")
