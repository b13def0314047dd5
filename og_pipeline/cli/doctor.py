"""``og-pipeline doctor``: is this deployment ready? One line per check, nothing changed.

The checks are in og_pipeline.doctor (plain modules, no click); this module parses the
options, prints each result (or JSON) and sets the exit status.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import timedelta

import click

from og_pipeline.doctor import Check, Verdict, run_checks, scrub, secrets_in

DEFAULT_MAX_SLOT_HOLD_HOURS = 6.0
# Summary order: what needs doing first.
_ORDER = (Verdict.FAIL, Verdict.WARN, Verdict.SKIPPED, Verdict.OK)


def _line(check: Check) -> str:
    text = f"{check.verdict.value:<8}{check.name}: {check.detail}"
    return text + (f" -> {check.todo}" if check.todo else "")


@click.command()
@click.option(
    "--receiver-url",
    metavar="URL",
    help="Also check that the webhook receiver at URL (e.g. http://127.0.0.1:8701) answers "
    "GET /healthz with 200.",
)
@click.option(
    "--max-slot-hold-hours",
    type=click.FloatRange(min=0),
    default=DEFAULT_MAX_SLOT_HOLD_HOURS,
    show_default=True,
    help="Longest a run may hold a pool slot; a run holding one longer fails the check.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def doctor(receiver_url: str | None, max_slot_hold_hours: float, as_json: bool) -> None:
    """Check that og-pipeline can run here, changing nothing.

    One line per check, each ok, warn, FAIL or skipped (with the reason and what to do): the
    configuration; Postgres (OG_DATABASE_URL, else the embedded server) and its migrations;
    Dagster's storage; the Ordergroove key (one GET of one subscription) and the Ometria key
    (GET /v2/push/_errors, which writes nothing); ORDERGROOVE_WEBHOOK_KEY; with --receiver-url,
    the receiver's GET /healthz; the API pools and their limits; and no run holding a pool slot
    longer than --max-slot-hold-hours. Applies no migration and creates no database or pool
    (the other commands do at start). Exits 1 when any check fails. Never prints a secret.
    """
    checks = run_checks(receiver_url, timedelta(hours=max_slot_hold_hours))
    secrets = secrets_in(os.environ, receiver_url)
    checks = [scrub(check, secrets) for check in checks]
    counts = Counter(check.verdict for check in checks)
    failed = counts[Verdict.FAIL] > 0
    if as_json:
        document = {
            "ok": not failed,
            "counts": {verdict.value: counts[verdict] for verdict in _ORDER},
            "checks": [
                {
                    "check": check.name,
                    "verdict": check.verdict.value,
                    "detail": check.detail,
                    "todo": check.todo,
                    "facts": check.facts,
                }
                for check in checks
            ],
        }
        click.echo(json.dumps(document, indent=2, default=str))
    else:
        for check in checks:
            click.echo(_line(check))
        summary = ", ".join(f"{counts[v]} {v.value}" for v in _ORDER if counts[v])
        click.echo(f"doctor: {summary}")
    if failed:
        raise click.exceptions.Exit(1)
