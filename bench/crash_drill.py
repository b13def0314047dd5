"""Crash drill (issue 9): SIGKILL `og-pipeline sync` at chosen moments, rerun it, check Ometria.

For each kill point, in one invocation: a fresh og-pipeline database (one embedded Postgres and
one Dagster database for the whole drill, as one deployment would have), a sandbox in this
process with ``--subscriptions`` subscriptions, `python -m og_pipeline sync` over the sandbox's
three days killed (its whole process group, SIGKILL) at the moment, then the same sync again
with the faults cleared. It prints what the kill hit, how long the rerun took (a rerun that
waited on the dead run's pool slot would show here, or time out), and whether Ometria then holds
exactly the ground truth of every customer with an e-mail.

Kill points (og_pipeline_tests/pipeline/test_crash_convergence.py, whose helpers this uses):
mid-walk, mid-write, mid-push, push-bookkeeping (between Ometria's acceptance of a batch of
contacts and its record in og.ometria_contacts), and webhook-events (`webhooks process` killed
between a custom-event push and its record: no event may then be sent twice).

Run: ``.venv/bin/python bench/crash_drill.py [--subscriptions 2000] [--kills mid-walk,mid-push]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OG_SYNC_START_DATE", "2026-11-01")  # the sandbox merchant's first day

import pytest  # noqa: E402 - pytest.fail's exception is what a missed moment raises

from og_pipeline.db.connection import ensure_database  # noqa: E402
from og_pipeline.db.embedded import EmbeddedPostgres  # noqa: E402
from og_pipeline.db.migrate import migrate  # noqa: E402
from og_pipeline.db.urls import for_dagster, with_database  # noqa: E402
from og_pipeline.sandbox import MerchantSpec, SandboxServer  # noqa: E402
from og_pipeline_tests.pipeline.conftest import NOW, START  # noqa: E402
from og_pipeline_tests.pipeline.test_crash_convergence import (  # noqa: E402
    KILL_POINTS,
    Drill,
    Probe,
    command_env,
    kill_webhook_run_between_event_push_and_record,
    mismatches,
    run_to_end,
    webhook_problems,
)

WEBHOOK_POINT = "webhook-events"
ALL_POINTS = (*KILL_POINTS, WEBHOOK_POINT)


def drill_one(
    point: str, server_url: str, dagster_url: str, subscriptions: int, home: Path
) -> bool:
    name = "og_drill_" + uuid.uuid4().hex[:8]
    ensure_database(server_url, name)
    db_url = with_database(server_url, name)
    migrate(db_url)
    spec = MerchantSpec(subscriptions=subscriptions, seed=9, start=START, now=NOW)
    with SandboxServer(spec, port=0) as sandbox:
        probe = Probe(sandbox, db_url)
        drill = Drill(
            sandbox, db_url, command_env(sandbox, db_url, dagster_url, home), home / "logs", probe
        )
        try:
            if point == WEBHOOK_POINT:
                kill = kill_webhook_run_between_event_push_and_record(drill)
                info = kill.info
                sandbox.clear_faults()
                seconds, _ = run_to_end(drill.env, ("webhooks", "process"), drill.logs)
                problems = webhook_problems(drill, kill) + mismatches(sandbox)
            else:
                info = KILL_POINTS[point](drill)
                seconds, _ = drill.rerun()
                problems = mismatches(sandbox)
                if probe.pending_pushes():
                    problems.append(f"{probe.pending_pushes()} contacts not recorded as accepted")
        except (Exception, pytest.fail.Exception) as exc:  # noqa: BLE001 - a drill reports and goes on
            print(
                f"{point:17} FAILED: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            )
            return False
        finally:
            probe.close()
    contacts = len(sandbox.ometria.contacts)
    verdict = "converged" if not problems else f"NOT converged ({len(problems)}: {problems[0]})"
    print(
        f"{point:17} {info}\n{'':17} rerun {seconds:.1f} s: {verdict}, "
        f"{contacts} contacts in Ometria"
    )
    return not problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--subscriptions", type=int, default=2000, help="the sandbox merchant's size"
    )
    parser.add_argument(
        "--kills",
        default=",".join(ALL_POINTS),
        help=f"comma-separated kill points, in order (default: all of {', '.join(ALL_POINTS)})",
    )
    args = parser.parse_args()
    points = [p.strip() for p in args.kills.split(",") if p.strip()]
    unknown = [p for p in points if p not in ALL_POINTS]
    if unknown:
        parser.error(f"unknown kill point(s): {', '.join(unknown)}; known: {', '.join(ALL_POINTS)}")
    began = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="og-crash-drill-") as tmp,
        EmbeddedPostgres(Path(tmp) / "pg", delete=True) as server,
    ):
        server_url = server.url()
        ensure_database(server_url, "og_drill_dagster")
        dagster_url = for_dagster(with_database(server_url, "og_drill_dagster"))
        print(
            f"crash drill: {args.subscriptions} subscriptions, {START:%Y-%m-%d} to {NOW:%Y-%m-%d}, "
            f"kills: {', '.join(points)}"
        )
        results = [
            drill_one(p, server_url, dagster_url, args.subscriptions, Path(tmp) / p) for p in points
        ]
    print(f"{sum(results)} of {len(results)} converged in {time.monotonic() - began:.0f} s")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
