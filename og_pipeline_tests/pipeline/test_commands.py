"""The commands from a shell: `sync` (one run over a range) and `webhooks process` / `replay`."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from og_pipeline.db.connection import connect
from og_pipeline.sandbox import MerchantSpec, SandboxServer, WebhookSender
from og_pipeline.webhooks.staging import store_event
from og_pipeline_tests.pipeline.conftest import NOW, START

ROOT = Path(__file__).resolve().parents[2]


def _sync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return _og(env, "sync", *args)


def _og(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "og_pipeline", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _summary(stdout: str) -> dict[str, str]:
    """The "  key: value" lines a command prints after its runs."""
    return dict(
        line.strip().split(": ", 1)
        for line in stdout.splitlines()
        if line.startswith("  ") and ": " in line
    )


@pytest.fixture
def sandbox() -> SandboxServer:
    with SandboxServer(
        MerchantSpec(subscriptions=400, seed=5, start=START, now=NOW), port=0
    ) as server:
        yield server


def _env(
    sandbox: SandboxServer, db_url: str, dagster_db_url: str, tmp_path: Path, **extra: str
) -> dict[str, str]:
    return {
        "OG_DATABASE_URL": db_url,
        "OG_DAGSTER_DATABASE_URL": dagster_db_url,
        "OG_HOME": str(tmp_path),
        "ORDERGROOVE_API_URL": sandbox.ordergroove_url,
        "OMETRIA_API_URL": sandbox.ometria_url,
        "ORDERGROOVE_API_KEY": "sandbox-og-key",
        "OMETRIA_API_KEY": "sandbox-ometria-key",
        **extra,
    }


def test_sync_prints_a_summary_and_pushes_the_range(
    sandbox, db_url, dagster_db_url, tmp_path
) -> None:
    result = _sync(
        _env(sandbox, db_url, dagster_db_url, tmp_path),
        "--start",
        "2026-11-01",
        "--end",
        "2026-11-04",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "syncing 72 hours" in result.stdout
    summary = _summary(result.stdout)
    truth = sandbox.merchant.ground_truth()
    assert int(summary["contacts_pushed"]) == sum(1 for t in truth.values() if t["email"])
    assert int(summary["records_fetched"]) > 0 and summary["contacts_rejected"] == "0"
    assert "@example.com" not in result.stdout + result.stderr, "no e-mail address in the output"
    assert BAR not in result.stdout + result.stderr, "no progress bars drawn into a pipe"


BAR = "\u2501"  # rich's bar character


def test_sync_on_a_terminal_draws_a_bar_per_walk(sandbox, db_url, dagster_db_url, tmp_path) -> None:
    """On a terminal, `sync` draws a bar per object type (records, pages, rate, share of the
    range, time left) below the run's log lines, and still prints its summary."""
    main, terminal = pty.openpty()
    env = {**os.environ, **_env(sandbox, db_url, dagster_db_url, tmp_path)}
    env.update({"TERM": "xterm-256color", "COLUMNS": "200"})
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "og_pipeline",
            "sync",
            "--start",
            "2026-11-01",
            "--end",
            "2026-11-04",
        ],
        cwd=ROOT,
        env=env,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    output = bytearray()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal closed: the command has exited
                break
            if not chunk:
                break
            output += chunk
        elif proc.poll() is not None:
            break
    os.close(main)
    assert proc.wait(timeout=30) == 0, output.decode(errors="replace")[-3000:]
    text = output.decode(errors="replace")
    for resource in ("customers", "subscriptions", "orders", "items"):
        bar_lines = [line for line in text.splitlines() if resource in line and BAR in line]
        assert bar_lines, f"no bar for {resource}"
        assert "records" in bar_lines[-1] and "pages/min" in bar_lines[-1]
    assert "100% of the range, done" in text
    assert "contacts_pushed: " in text, "the summary follows the bars"


def test_sync_dry_run_prints_what_would_be_pushed_and_sends_nothing(
    sandbox, db_url, dagster_db_url, tmp_path
) -> None:
    result = _sync(
        _env(sandbox, db_url, dagster_db_url, tmp_path),
        *("--start", "2026-11-01", "--end", "2026-11-04", "--dry-run"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dry run: nothing sent to Ometria" in result.stdout
    summary = _summary(result.stdout)
    with_email = sum(1 for t in sandbox.merchant.ground_truth().values() if t["email"])
    assert int(summary["would_push"]) == int(summary["would_push_new_contact"]) == with_email
    assert "sample of 20 contacts that would be pushed:" in result.stdout
    assert "new_contact" in result.stdout
    assert sandbox.ometria.snapshot()["contacts"] == {}
    assert "@example.com" not in result.stdout + result.stderr, "no e-mail address in the output"


def test_sync_failure_exits_non_zero_with_the_reason(
    sandbox, db_url, dagster_db_url, tmp_path
) -> None:
    env = _env(
        sandbox, db_url, dagster_db_url, tmp_path, ORDERGROOVE_API_KEY="sandbox-og-limited-key"
    )
    result = _sync(env, "--start", "2026-11-01", "--end", "2026-11-02")
    assert result.returncode == 1
    assert "sync failed" in result.stderr and "Bulk Operations" in result.stderr


# Exit 2 is click's usage error (a bad option); 1 a configuration conflict.
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--start", "2026-11-02", "--end", "2026-11-01"), 2, "must be after --start"),
        (("--start", "2026-10-01", "--end", "2026-10-02"), 1, "before OG_SYNC_START_DATE"),
        (("--start", "2026-11-01T05:30", "--end", "2026-11-02"), 2, "must be on the hour"),
    ],
)
def test_sync_refuses_a_bad_range_before_starting(
    sandbox, db_url, dagster_db_url, tmp_path, args, code, message
) -> None:
    result = _sync(_env(sandbox, db_url, dagster_db_url, tmp_path), *args)
    assert result.returncode == code
    assert message in result.stderr
    assert sandbox.ometria.request_log() == []


def _stage(db_url: str, envelope: dict) -> None:
    with connect(db_url) as conn:
        store_event(conn, json.dumps(envelope).encode())


def test_webhooks_process_handles_the_queue_once_and_replay_requeues_failed(
    sandbox, db_url, dagster_db_url, tmp_path
) -> None:
    env = _env(sandbox, db_url, dagster_db_url, tmp_path)
    merchant = sandbox.merchant
    sender = WebhookSender(merchant, "http://127.0.0.1:9/unused", ["unused"], seed=1)
    sub = merchant.subscription_ids(live=True)[0]
    merchant.cancel_subscription(sub, at=NOW)
    cancel = sender.event_for("subscription.cancel", subscription_id=sub)
    _stage(db_url, cancel)
    broken = sender.event_for("subscription.create", subscription_id=merchant.subscription_ids()[1])
    broken["data"]["object"].pop("customer")
    broken.pop("snapshot", None)
    _stage(db_url, broken)

    result = _og(env, "webhooks", "process")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "events_applied: 1" in result.stdout and "custom_events_sent: 1" in result.stdout
    assert list(sandbox.ometria.snapshot()["events"]) == [f"og-{cancel['id']}"]

    with connect(db_url) as conn:
        conn.execute(
            "UPDATE og.webhook_events SET status = 'failed' WHERE event_id = %s", (broken["id"],)
        )
    replayed = _og(env, "webhooks", "replay")
    assert (
        replayed.returncode == 0 and "1 failed event(s) queued again; 0 invalid" in replayed.stdout
    )
    with connect(db_url) as conn:
        assert conn.execute(
            "SELECT status FROM og.webhook_events WHERE event_id = %s", (broken["id"],)
        ).fetchone() == ("pending",)
