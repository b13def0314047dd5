"""A sync killed mid-walk, or waiting behind a held pool slot, never stalls the syncs after it.

Real processes: `python -m og_pipeline sync` against the sandbox, on a Dagster database of the
test's own. Every wait is a poll with a deadline; the one fixed interval (the CPU measurement)
measures, it does not synchronise.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from og_pipeline.pools import ORDERGROOVE_POOL
from og_pipeline.sandbox import FaultSpec, MerchantSpec, SandboxServer
from og_pipeline_tests.pipeline.conftest import NOW, START

ROOT = Path(__file__).resolve().parents[2]
SYNC_RANGE = ("--start", "2026-11-01", "--end", "2026-11-02")
# og_pipeline.cli.runs.INTERRUPTED_EXIT_CODE, as a literal: the file also runs on the code
# before it.
INTERRUPTED_EXIT_CODE = 130


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(
        MerchantSpec(subscriptions=400, seed=5, start=START, now=NOW), port=0
    ) as server:
        yield server


@pytest.fixture
def env(sandbox: SandboxServer, db_url: str, dagster_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "OG_DATABASE_URL": db_url,
        "OG_DAGSTER_DATABASE_URL": dagster_url,
        "OG_HOME": str(tmp_path),
        "ORDERGROOVE_API_URL": sandbox.ordergroove_url,
        "OMETRIA_API_URL": sandbox.ometria_url,
        "ORDERGROOVE_API_KEY": "sandbox-og-key",
        "OMETRIA_API_KEY": "sandbox-ometria-key",
    }


class Sync:
    """`og-pipeline sync` in a process group of its own (it spawns a writer process)."""

    def __init__(self, env: dict[str, str], folder: Path, name: str) -> None:
        self.out, self.err = folder / f"{name}.out", folder / f"{name}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "og_pipeline", "sync", *SYNC_RANGE],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=err,
                text=True,
                process_group=0,
            )

    def output(self) -> str:
        return self.out.read_text() + self.err.read_text()

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            pytest.fail(f"sync did not finish within {timeout:.0f} s; its output:\n{self.output()}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the sync's own process (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def syncs(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[str], Sync]]:
    started: list[Sync] = []

    def start(name: str) -> Sync:
        started.append(Sync(env, tmp_path, name))
        return started[-1]

    yield start
    for sync in started:  # nothing outlives the test, whatever failed
        sync.kill_group()


def _poll(condition: Callable[[], Any], timeout: float, what: str, sync: Sync | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if sync is not None and sync.proc.poll() is not None:
            pytest.fail(f"sync exited ({sync.proc.returncode}) before {what}:\n{sync.output()}")
        time.sleep(0.2)
    pytest.fail(
        f"timed out after {timeout:.0f} s waiting until {what}"
        + (f"; sync output:\n{sync.output()}" if sync else "")
    )


def _slot_holders(instance: Any) -> set[str]:
    return instance.event_log_storage.get_concurrency_info(ORDERGROOVE_POOL).active_run_ids


def _pending_runs(instance: Any) -> set[str]:
    info = instance.event_log_storage.get_concurrency_info(ORDERGROOVE_POOL)
    return {step.run_id for step in info.pending_steps}


def _cli_runs(instance: Any) -> list[Any]:
    return list(instance.get_runs(filters=dg.RunsFilter(tags={"og-pipeline/trigger": "cli-sync"})))


def test_a_sync_killed_mid_walk_frees_its_slot_and_the_next_sync_succeeds(
    sandbox: SandboxServer, instance: Any, syncs: Callable[[str], Sync]
) -> None:
    # Every Ordergroove request slow: the walk is still going when the kill comes.
    sandbox.set_faults("ordergroove", FaultSpec(slow_rate=1.0, slow_seconds=0.5))
    first = syncs("first")
    holders = _poll(
        lambda: _slot_holders(instance), 120, "the first sync holds the ordergroove_api slot", first
    )
    first.kill_group()  # an OOM kill or a lost node: no cleanup runs
    assert _slot_holders(instance) == holders, "the killed run still holds its slot (today's stall)"

    sandbox.clear_faults()
    second = syncs("second")
    assert second.wait(timeout=120) == 0, second.output()
    assert "succeeded" in second.out.read_text()
    (killed,) = holders
    assert instance.get_run_by_id(killed).status == dg.DagsterRunStatus.FAILURE
    assert killed not in _slot_holders(instance) | _pending_runs(instance)
    assert "marked failed" in second.output() and killed in second.output()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads CPU time from /proc")
def test_a_sync_behind_a_held_slot_says_what_it_waits_for_idles_and_stops_on_sigterm(
    instance: Any, syncs: Callable[[str], Sync]
) -> None:
    # A live holder: a slot claimed for a run that is not og-pipeline's (the daemon's, say), so
    # nothing may take it from it.
    holder = "f" * 8 + "-held-by-another-process"
    instance.event_log_storage.initialize_concurrency_limit_to_default(ORDERGROOVE_POOL)
    assert instance.event_log_storage.claim_concurrency_slot(
        ORDERGROOVE_POOL, holder, "step"
    ).is_claimed

    waiting = syncs("waiting")
    _poll(
        lambda: (
            "waiting" in waiting.out.read_text() and ORDERGROOVE_POOL in waiting.out.read_text()
        ),
        90,
        "the sync says it waits for the ordergroove_api pool",
        waiting,
    )
    line = next(line for line in waiting.out.read_text().splitlines() if "waiting" in line)
    assert holder[:8] in line, f"the message names the holding run: {line!r}"

    # Waiting must not burn a CPU: measured over a few seconds of wall time.
    cpu_before, wall_before = waiting.cpu_seconds(), time.monotonic()
    _poll(lambda: time.monotonic() - wall_before >= 4, 10, "4 s of waiting", waiting)
    cpu_share = (waiting.cpu_seconds() - cpu_before) / (time.monotonic() - wall_before)
    assert cpu_share < 0.25, f"the waiting sync used {cpu_share:.0%} of a CPU"

    (run,) = _cli_runs(instance)
    assert any(
        "waiting" in (entry.message or "") and ORDERGROOVE_POOL in (entry.message or "")
        for entry in instance.all_logs(run.run_id)
    ), "the wait is in the run's own log"

    waiting.proc.send_signal(signal.SIGTERM)  # what `timeout`, systemd and Kubernetes send
    assert waiting.wait(timeout=30) == INTERRUPTED_EXIT_CODE, waiting.output()
    assert (
        "sync interrupted while waiting for a slot in pool ordergroove_api"
        in waiting.err.read_text()
    )
    assert _slot_holders(instance) == {holder}
    assert run.run_id not in _pending_runs(instance)
    assert instance.get_run_by_id(run.run_id).status in (
        dg.DagsterRunStatus.FAILURE,
        dg.DagsterRunStatus.CANCELED,
    )


def test_a_sync_stopped_by_sigterm_mid_walk_exits_non_zero_and_frees_its_slot(
    sandbox: SandboxServer, instance: Any, syncs: Callable[[str], Sync]
) -> None:
    sandbox.set_faults("ordergroove", FaultSpec(slow_rate=1.0, slow_seconds=0.5))
    sync = syncs("stopped")
    (run_id,) = _poll(
        lambda: _slot_holders(instance), 120, "the sync holds the ordergroove_api slot", sync
    )
    sync.proc.send_signal(signal.SIGTERM)
    # Told apart from a failed run (exit 1): a wrapper such as `timeout` or systemd sees the stop.
    assert sync.wait(timeout=60) == INTERRUPTED_EXIT_CODE, sync.output()
    assert "sync interrupted" in sync.err.read_text(), sync.output()
    assert run_id not in _slot_holders(instance) | _pending_runs(instance)
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
