"""Long-running processes of a test topology, as the images run them.

Each process leads a process group of its own (its children, such as a code server's gRPC server
and the run workers it launches, stay in it), writes its output to a file of its own, and is
stopped with its whole group at teardown, whatever happened. Every wait is a poll with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self, tail: int = 60) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no output)"
        return "\n".join(lines[-tail:])


class Services:
    """Starts, watches and stops the processes of one topology."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[Service] = []

    def start(self, name: str, args: Sequence[str], env: Mapping[str, str], cwd: Path) -> Service:
        log = self.folder / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                list(args),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
        service = Service(name, proc, log)
        self.started.append(service)
        return service

    def by_name(self, name: str) -> Service:
        return next(service for service in self.started if service.name == name)

    def pids(self) -> set[int]:
        return {service.pid for service in self.started}

    def logs(self) -> str:
        return "\n".join(
            f"----- {service.name} (pid {service.pid}, exit {service.proc.poll()}) -----\n"
            + service.output()
            for service in self.started
        )

    def fail(self, message: str) -> None:
        pytest.fail(f"{message}\n{self.logs()}", pytrace=False)

    def check_running(self) -> None:
        for service in self.started:
            if service.proc.poll() is not None:
                self.fail(f"{service.name} exited with {service.proc.returncode}")

    def wait_for(
        self, condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5
    ) -> T:
        """Polls ``condition`` until it returns a truthy value, every service still running."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            self.check_running()
            if time.monotonic() > deadline:
                self.fail(f"timed out after {timeout:.0f} s waiting until {what}")
            time.sleep(interval)  # between polls only; the deadline bounds the wait

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM each group (newest first), then SIGKILL whatever is left after ``grace``."""
        for service in reversed(self.started):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(service.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for service in reversed(self.started):
            while _group_alive(service.pid) and time.monotonic() < deadline:
                service.proc.poll()  # reaps the leader, so that only live members remain
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(service.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                service.proc.wait(timeout=10)

    def survivors(self) -> list[str]:
        """Command lines of processes still running in the groups started here."""
        groups = self.pids()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                pid = int(entry.name)
                if os.getpgid(pid) in groups and process_state(pid) not in (None, "Z"):
                    found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except (OSError, ProcessLookupError):
                continue
        return found


def command_succeeds(args: Sequence[str], env: Mapping[str, str], timeout: float = 30) -> bool:
    try:
        return (
            subprocess.run(
                list(args), env=dict(env), capture_output=True, timeout=timeout, check=False
            ).returncode
            == 0
        )
    except subprocess.TimeoutExpired:
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_state(pid: int) -> str | None:
    """The process's state letter (R, S, Z...), or None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None
