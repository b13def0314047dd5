"""``og-pipeline dev``: the whole system on one machine.

    embedded Postgres (unless OG_DATABASE_URL)  ->  migrations
    webhook receiver (og-pipeline webhooks serve)
    sandbox APIs (for each API without a real key), streaming signed webhooks to the receiver
    dagster dev: webserver + daemon (schedules and sensors on by default)
    first start only: the start-date backfill, as one run

Ctrl-C stops every process started here; the data stays in .og/ for the next start.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import requests

from og_pipeline.cli.runs import instance_on
from og_pipeline.runtime import dagster_environment, open_databases, project_root, state_dir
from og_pipeline.settings import load_settings, require_start_date

# The sandbox's fixed keys: they only open the local stand-ins.
SANDBOX_ORDERGROOVE_KEY = "sandbox-og-key"
SANDBOX_OMETRIA_KEY = "sandbox-ometria-key"
SANDBOX_WEBHOOK_KEY = "sandbox-webhook-key"
# Written once the start-date backfill succeeded, so later starts leave it to the schedule.
BACKFILL_MARKER = "dev-backfill.done"
# The backfill's output, kept (it also goes to the console) for when it fails or hangs.
BACKFILL_LOG = "dev-backfill.log"


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


def _wait_until_up(url: str, what: str, processes: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in processes:
            if proc.poll() is not None:
                raise click.ClickException(
                    f"{what} did not start: a process exited with {proc.returncode}"
                )
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise click.ClickException(f"{what} did not answer at {url} within {timeout:.0f} s")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(processes: list[subprocess.Popen], grace: float = 30.0) -> None:
    """Interrupt each child's process group (Dagster's webserver, daemon and code servers
    included), wait, and kill whatever of a group is still running after the grace period."""
    for proc in processes:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    for proc in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        # A grandchild (a code server, a run worker) may outlive its parent: wait for the group.
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _spawn(args: list[str], env: Mapping[str, str], cwd: Path, **popen: Any) -> subprocess.Popen:
    # Each child leads its own process group: a terminal's Ctrl-C reaches only us, and we stop
    # the children in order (see _stop) instead of racing them.
    return subprocess.Popen(args, env=dict(env), cwd=cwd, process_group=0, **popen)


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
    proc = _spawn(
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
        env = dict(os.environ)
        env.update(dagster_environment(root, state, databases))
        click.echo(
            "Postgres: "
            + (
                "embedded, data in " + str(state / "postgres")
                if databases.embedded
                else "OG_DATABASE_URL"
            )
        )

        fake_og = settings.ordergroove_api_key is None
        fake_ometria = settings.ometria_api_key is None
        if not fake_og:
            require_start_date(settings)
        sandbox = f"http://{host}:{sandbox_port}"
        spec = (
            _dev_sandbox_spec(state, settings.sync_start_date if fake_og else None)
            if fake_og or fake_ometria
            else {}
        )
        if fake_og:
            env.update(
                ORDERGROOVE_API_URL=sandbox + "/ordergroove",
                ORDERGROOVE_API_KEY=SANDBOX_ORDERGROOVE_KEY,
                ORDERGROOVE_WEBHOOK_KEY=SANDBOX_WEBHOOK_KEY,
                OG_SYNC_START_DATE=str(spec["start_date"]),
            )
        if fake_ometria:
            env.update(OMETRIA_API_URL=sandbox + "/ometria", OMETRIA_API_KEY=SANDBOX_OMETRIA_KEY)
        # Validate what the children will see, so a bad value fails here with its name.
        child_settings = load_settings(env)

        receiver = f"http://{host}:{webhook_port}/webhooks/ordergroove"
        if child_settings.webhook_keys:
            processes.append(
                _spawn(
                    [
                        sys.executable,
                        "-m",
                        "og_pipeline",
                        "webhooks",
                        "serve",
                        "--host",
                        host,
                        "--port",
                        str(webhook_port),
                    ],
                    env,
                    root,
                )
            )
            _wait_until_up(
                f"http://{host}:{webhook_port}/healthz", "the webhook receiver", processes, 60
            )
            click.echo(f"Webhook receiver: {receiver}")
        else:
            receiver = ""
            click.echo("Webhook receiver not started: ORDERGROOVE_WEBHOOK_KEY is not set", err=True)

        if fake_og or fake_ometria:
            stream = (
                ["--webhook-url", receiver, "--webhook-rate", str(webhook_rate)]
                if fake_og and receiver and webhook_rate > 0
                else []
            )
            processes.append(
                _spawn(
                    [
                        sys.executable,
                        "-m",
                        "og_pipeline",
                        "sandbox",
                        "--host",
                        host,
                        "--port",
                        str(sandbox_port),
                        "--seed",
                        str(spec["seed"]),
                        "--subscriptions",
                        str(spec["subscriptions"]),
                        "--start-date",
                        str(spec["start_date"]),
                        "--now",
                        str(spec["now"]),
                        "--bad-record-rate",
                        str(bad_record_rate),
                        *stream,
                    ],
                    env,
                    root,
                )
            )
            _wait_until_up(sandbox + "/_sandbox/health", "the sandbox", processes, 120)
            click.echo(
                f"Sandbox APIs: {sandbox} (Ordergroove: {'sandbox' if fake_og else 'real'}, "
                f"Ometria: {'sandbox' if fake_ometria else 'real'})"
                + (
                    f"; sending {webhook_rate:g} signed webhooks/s to the receiver"
                    if stream
                    else ""
                )
            )

        # Dagster's tables and the API pools exist before the daemon can start a run: two runs
        # making a pool's first claim at once fail one of them (see og_pipeline.pools).
        with instance_on(root, state, databases):
            pass
        processes.append(
            _spawn(
                [
                    sys.executable,
                    "-m",
                    "dagster",
                    "dev",
                    "-w",
                    str(root / "workspace.yaml"),
                    "-h",
                    host,
                    "-p",
                    str(port),
                ],
                env,
                root,
            )
        )
        _wait_until_up(f"http://{host}:{port}/server_info", "the Dagster UI", processes, 180)
        click.echo(f"Dagster UI: http://{host}:{port}  (Ctrl-C stops everything)")
        backfill = _start_first_backfill(state, env, root)
        if backfill is not None:
            processes.append(backfill)
        while all(proc.poll() is None for proc in processes if proc is not backfill):
            if backfill is not None and backfill.poll() is not None:
                _finish_first_backfill(state, backfill)
                processes.remove(backfill)
                backfill = None
            time.sleep(1)
        raise click.ClickException("a process of og-pipeline dev exited; stopping the others")
    except KeyboardInterrupt:
        click.echo("stopping...")
    finally:
        _stop(processes)
        databases.close()
        click.echo("stopped; data kept in " + str(state))
