"""The og-pipeline CLI: help for each command, bad configuration named before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "og_pipeline", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_help_lists_the_commands() -> None:
    result = _run("--help")
    assert result.returncode == 0
    for command in ("dev", "sync", "webhooks", "records", "doctor", "sandbox"):
        assert command in result.stdout


def test_dev_help_explains_postgres_and_sandbox() -> None:
    result = _run("dev", "--help")
    assert result.returncode == 0
    assert "OG_DATABASE_URL" in result.stdout and "sandbox" in result.stdout


def test_dev_with_an_invalid_variable_fails_at_once_naming_it(tmp_path) -> None:
    result = _run("dev", env={"OG_SYNC_START_DATE": "yesterday", "OG_HOME": str(tmp_path)})
    assert result.returncode != 0
    assert "OG_SYNC_START_DATE: must be a date as YYYY-MM-DD" in result.stderr
    assert "Traceback" not in result.stderr
    # Nothing was started: no embedded Postgres data folder was created.
    assert not (tmp_path / "postgres").exists()


def test_dev_with_an_unreachable_database_names_the_variable_and_hides_the_password(
    tmp_path,
) -> None:
    url = "postgresql://og:s3cret-pw@127.0.0.1:1/og"
    result = _run("dev", env={"OG_DATABASE_URL": url, "OG_HOME": str(tmp_path)})
    assert result.returncode != 0
    assert "OG_DATABASE_URL" in result.stderr
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
