"""Child processes of ``og-pipeline dev``: started in groups of their own, waited for, stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import requests


def wait_until_up(url: str, what: str, processes: list[subprocess.Popen], timeout: float) -> None:
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


def stop(processes: list[subprocess.Popen], grace: float = 30.0) -> None:
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


def spawn(args: list[str], env: Mapping[str, str], cwd: Path, **popen: Any) -> subprocess.Popen:
    # Each child leads its own process group: a terminal's Ctrl-C reaches only us, and we stop
    # the children in order (see stop) instead of racing them.
    return subprocess.Popen(args, env=dict(env), cwd=cwd, process_group=0, **popen)
