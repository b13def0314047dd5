"""`og-pipeline dev` as a newcomer runs it: everything comes up, Ctrl-C stops every process it
started, and a second start keeps the data."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 180.0
PUSH_TIMEOUT = 180.0  # seconds for webhook runs still pushing when the backfill ends


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _processes_under(home: Path) -> list[str]:
    """Command lines of running processes started for this OG_HOME (children inherit it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if f"OG_HOME={home}".encode() in environ and "State:\tZ" not in status:
            found.append(cmdline)
    return found


class Dev:
    """A running `og-pipeline dev`, its output read line by line in a thread."""

    def __init__(self, home: Path, ui_port: int, sandbox_port: int) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in (
                "ORDERGROOVE_API_KEY",
                "OMETRIA_API_KEY",
                "OG_DATABASE_URL",
                "OG_SYNC_START_DATE",
                "ORDERGROOVE_API_URL",
                "OMETRIA_API_URL",
            )
        }
        env.update(OG_HOME=str(home), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "og_pipeline",
                "dev",
                "--port",
                str(ui_port),
                "--sandbox-port",
                str(sandbox_port),
                "--webhook-port",
                str(_free_port()),
                # As a newcomer starts it: the sandbox streams webhooks, so webhook runs start
                # while the first backfill runs.
                "--webhook-rate",
                "1",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.ended = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, text: str, timeout: float = STARTUP_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no {text!r} within {timeout:.0f} s:\n" + "\n".join(self.seen[-60:])
                ) from None
            if line is None:
                self.ended = True
                raise AssertionError(f"dev exited before {text!r}:\n" + "\n".join(self.seen[-40:]))
            self.seen.append(line)
            if text in line:
                return line

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=90)
        while not self.ended:
            line = self.lines.get(timeout=10)
            if line is None:
                self.ended = True
            else:
                self.seen.append(line)
        return code


@pytest.fixture
def ports() -> Iterator[tuple[int, int]]:
    yield _free_port(), _free_port()


def _walk_subscriptions(sandbox: str) -> int:
    url: str | None = f"{sandbox}/ordergroove/subscriptions/?page_size=100"
    headers = {"x-api-key": "sandbox-og-key", "X-OG-API-VERSION": "2"}
    seen = 0
    while url:
        body = requests.get(url, headers=headers, timeout=10).json()
        seen += len(body["results"])
        url = body["next"]
    return seen


def _query(home: Path, sql: str) -> list[tuple[Any, ...]]:
    # postmaster.pid's fifth line is the socket directory of the embedded server.
    socket_dir = (home / "postgres" / "postmaster.pid").read_text().splitlines()[4]
    with psycopg.connect(f"postgresql://postgres@/og_pipeline?host={socket_dir}") as conn:
        return conn.execute(sql).fetchall()


def _contacts_in_database(home: Path) -> int:
    return _query(home, "SELECT count(*) FROM og.ometria_contacts")[0][0]


def _wait_until_in_ometria(
    sandbox: str, contact_ids: set[str], timeout: float = PUSH_TIMEOUT
) -> None:
    """Poll the sandbox Ometria until it holds every one of ``contact_ids``."""
    deadline = time.monotonic() + timeout
    while True:
        missing = contact_ids - set(
            requests.get(f"{sandbox}/_sandbox/ometria/contacts", timeout=10).json()
        )
        if not missing:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(missing)} of {len(contact_ids)} contacts with an e-mail not in "
                f"Ometria within {timeout:.0f} s, e.g. {sorted(missing)[:5]}"
            )
        time.sleep(1.0)  # polling interval; the deadline bounds the wait


@pytest.mark.timeout(900)
def test_dev_runs_everything_stops_on_ctrl_c_and_keeps_data(
    tmp_path: Path, ports: tuple[int, int]
) -> None:
    ui_port, sandbox_port = ports
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    dev = Dev(tmp_path, ui_port, sandbox_port)
    try:
        dev.wait_for("Dagster UI:")
        workspace = requests.post(
            f"http://127.0.0.1:{ui_port}/graphql",
            json={
                "query": (
                    "{ workspaceOrError { ... on Workspace "
                    "{ locationEntries { name loadStatus } } } }"
                )
            },
            timeout=30,
        ).json()
        assert workspace["data"]["workspaceOrError"]["locationEntries"] == [
            {"name": "og_pipeline", "loadStatus": "LOADED"}
        ]
        # The webhook stream creates subscriptions meanwhile: the walk sees at least those there
        # before it began and at most those there after it ended.
        before = requests.get(f"{sandbox}/_sandbox/info", timeout=10).json()["counts"][
            "subscriptions"
        ]
        walked = _walk_subscriptions(sandbox)
        after = requests.get(f"{sandbox}/_sandbox/info", timeout=10).json()["counts"][
            "subscriptions"
        ]
        assert 0 < before <= walked <= after

        dev.wait_for("start-date backfill done")
        # The backfill's output is kept (for when it fails): its summary is there. Webhook runs
        # started meanwhile may have pushed contacts first, so the backfill's own count may be
        # anything; what users rely on is that once it is done, every contact with an e-mail
        # reaches Ometria (a webhook run still pushing may finish it: polled, with a deadline).
        summary = re.search(r"contacts_pushed: (\d+)", (tmp_path / "dev-backfill.log").read_text())
        assert summary is not None
        backfill_pushed = int(summary.group(1))
        with_email = {
            f"og-{row[0]}"
            for row in _query(
                tmp_path, "SELECT customer_id FROM og.contact_stats WHERE email IS NOT NULL"
            )
        }
        assert with_email
        _wait_until_in_ometria(sandbox, with_email)
        assert (
            len(requests.get(f"{sandbox}/_sandbox/ometria/contacts", timeout=10).json())
            >= backfill_pushed
        )
        stored = _contacts_in_database(tmp_path)
        assert stored >= backfill_pushed
    finally:
        code = dev.interrupt()
    assert code == 0, "\n".join(dev.seen[-40:])
    assert any("stopped; data kept" in line for line in dev.seen)
    assert not _port_open(ui_port) and not _port_open(sandbox_port)
    assert not (tmp_path / "postgres" / "postmaster.pid").exists(), (
        "embedded Postgres still running"
    )
    assert _processes_under(tmp_path) == [], "every process dev started has stopped"

    again = Dev(tmp_path, ui_port, sandbox_port)
    try:
        again.wait_for("Dagster UI:")
        assert not any("first start: backfilling" in line for line in again.seen)
        assert _contacts_in_database(tmp_path) >= stored
    finally:
        assert again.interrupt() == 0, "\n".join(again.seen[-40:])
