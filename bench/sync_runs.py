"""``og-pipeline sync`` as a measured subprocess, and what its runs' Dagster event logs say.

A sync over more than a day is two runs (``ordergroove_raw_sync``, then ``contacts_push``); the
event logs are read with a DagsterInstance on the same Postgres, not from log lines, whose
format the console logger owns.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common import ROOT, TreeRun, clean_env, run_tree, sandbox_env

if TYPE_CHECKING:
    import dagster as dg

RAW, STATS, PUSH = "ordergroove_raw_records", "contact_subscription_stats", "ometria_contact_fields"


@dataclass
class SyncRun:
    """One ``og-pipeline sync``: its process, its run ids and its closing summary."""

    process: TreeRun
    stdout: str
    run_ids: list[str]
    summary: dict[str, str]


def sync_range(start: date, days: int) -> tuple[datetime, datetime]:
    """The sync's range: ``days`` from ``start`` 00:00 UTC."""
    first = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    return first, first + timedelta(days=days)


def sync_env(
    base: str,
    start: date,
    work: Path,
    og_url: str,
    dagster_url: str,
    *,
    requests_per_minute: float | None = None,
    more_prefixes: tuple[str, ...] = (),
) -> dict[str, str]:
    """The sync's environment: the sandbox at ``base``, the two databases, OG_HOME in ``work``;
    nothing of this process's og-pipeline, Dagster (or ``more_prefixes``) variables."""
    env = clean_env(*more_prefixes)
    env.update(sandbox_env(base, start, work / "og_home"))
    env.update({"OG_DATABASE_URL": og_url, "OG_DAGSTER_DATABASE_URL": dagster_url})
    if requests_per_minute is not None:
        env["OG_ORDERGROOVE_REQUESTS_PER_MINUTE"] = str(requests_per_minute)
    return env


def run_sync(
    start: datetime,
    end: datetime,
    env: dict[str, str],
    work: Path,
    *,
    poll: float,
    timeout: float | None = None,
) -> SyncRun:
    """``og-pipeline sync --start D --end E``, with the PSS of its tree read every ``poll`` s."""
    cmd = [
        sys.executable,
        *("-m", "og_pipeline", "sync"),
        *("--start", start.strftime("%Y-%m-%d"), "--end", end.strftime("%Y-%m-%d")),
    ]
    process = run_tree(
        cmd,
        env,
        ROOT,
        work / "sync.out",
        work / "sync.err",
        name="sync",
        poll=poll,
        timeout=timeout,
    )
    stdout = (work / "sync.out").read_text()
    found = re.search(r"^run (\S+(?: and \S+)*) succeeded", stdout, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no run ids in the sync's output:\n{stdout}")
    summary = dict(
        line.strip().split(": ", 1)
        for line in stdout.splitlines()
        if line.startswith("  ") and ": " in line
    )
    return SyncRun(process, stdout, found.group(1).split(" and "), summary)


@contextmanager
def dagster_instance(dagster_url: str, home: Path) -> Iterator[dg.DagsterInstance]:
    """A DagsterInstance on the sync's Dagster database (its dagster.yaml in ``home``)."""
    import dagster as dg

    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(
        f"storage:\n  postgres:\n    postgres_url: {json.dumps(dagster_url)}\n"
        "telemetry:\n  enabled: false\n"
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance


def step_times(dagster_url: str, run_ids: list[str], home: Path) -> dict[str, float]:
    """STEP_START -> STEP_SUCCESS seconds per step of the runs, from their event logs."""
    import dagster as dg

    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS}
    begun: dict[str, float] = {}
    took: dict[str, float] = {}
    with dagster_instance(dagster_url, home) as instance:
        for run_id in run_ids:
            for entry in instance.all_logs(run_id, of_type=kinds):
                step = entry.step_key or ""
                if entry.get_dagster_event().event_type == dg.DagsterEventType.STEP_START:
                    begun[step] = entry.timestamp
                else:
                    took[step] = entry.timestamp - begun[step]
    return took


@dataclass
class Timeline:
    """Wall-clock stamps (time.time()) of one sync, from its process and its runs' events."""

    process_start: float = 0.0
    process_end: float = 0.0
    raw_first_event: float = 0.0
    raw_run_start: float = 0.0
    raw_step_start: float = 0.0
    walk_done: float = 0.0  # the step's "synced N records" line
    first_materialization: float = 0.0
    last_materialization: float = 0.0
    raw_step_success: float = 0.0
    raw_run_end: float = 0.0
    push_first_event: float = 0.0
    stats_start: float = 0.0
    stats_end: float = 0.0
    push_start: float = 0.0
    push_end: float = 0.0
    push_run_end: float = 0.0
    planned: int = 0  # ASSET_MATERIALIZATION_PLANNED events of the raw run
    planned_push: int = 0  # ... and of the push run
    checks_planned: int = 0  # ASSET_CHECK_EVALUATION_PLANNED events of the raw run
    materializations: int = 0  # ASSET_MATERIALIZATION events of the raw run
    raw_events: int = 0  # all events of the raw run
    push_events: int = 0
    walk_finished: dict[str, float] = field(default_factory=dict)  # from the progress lines
    # Each run's events, consecutive ones of a kind folded: [kind, count, first, last] (--json).
    folded: dict[str, list[list[Any]]] = field(default_factory=dict)

    def span(self, a: str, b: str) -> float:
        return float(getattr(self, b) - getattr(self, a))


def read_timeline(dagster_url: str, run_ids: list[str], home: Path, t: Timeline) -> None:
    """Fills the stamps and event counts of a two-run sync (the raw run, then the push run)
    from the Dagster event log in Postgres."""
    import dagster as dg

    kind = dg.DagsterEventType
    raw_id, push_id = run_ids
    walk_line = re.compile(r"^walks: (.*)$")
    with dagster_instance(dagster_url, home) as instance:
        raw = instance.all_logs(raw_id)
        push = instance.all_logs(push_id)
    t.raw_events, t.push_events = len(raw), len(push)
    t.raw_first_event, t.raw_run_end = raw[0].timestamp, raw[-1].timestamp
    t.push_first_event, t.push_run_end = push[0].timestamp, push[-1].timestamp
    t.folded = {"raw": fold(raw), "push": fold(push)}
    for entry in raw:
        event = entry.dagster_event
        if event is None:
            message = entry.user_message or ""
            if walk_done_line(message):
                t.walk_done = entry.timestamp
            progress = walk_line.match(message)
            if progress:
                for part in progress.group(1).split("; "):
                    resource = part.split(":", 1)[0]
                    if part.endswith(", done") and resource not in t.walk_finished:
                        t.walk_finished[resource] = entry.timestamp
            continue
        if event.event_type == kind.ASSET_MATERIALIZATION_PLANNED:
            t.planned += 1
        elif event.event_type == kind.ASSET_CHECK_EVALUATION_PLANNED:
            t.checks_planned += 1
        elif event.event_type == kind.RUN_START:
            t.raw_run_start = entry.timestamp
        elif event.event_type == kind.STEP_START and entry.step_key == RAW:
            t.raw_step_start = entry.timestamp
        elif event.event_type == kind.STEP_SUCCESS and entry.step_key == RAW:
            t.raw_step_success = entry.timestamp
        elif event.event_type == kind.ASSET_MATERIALIZATION:
            t.materializations += 1
            t.first_materialization = t.first_materialization or entry.timestamp
            t.last_materialization = entry.timestamp
    for entry in push:
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == kind.ASSET_MATERIALIZATION_PLANNED:
            t.planned_push += 1
        elif event.event_type in (kind.STEP_START, kind.STEP_SUCCESS):
            which = {STATS: "stats", PUSH: "push"}.get(entry.step_key or "")
            if which:
                edge = "start" if event.event_type == kind.STEP_START else "end"
                setattr(t, f"{which}_{edge}", entry.timestamp)
    missing = [
        name
        for name in ("raw_step_start", "walk_done", "raw_step_success", "stats_end", "push_end")
        if not getattr(t, name)
    ]
    if missing:
        raise RuntimeError(f"the runs' event logs lack {missing}")


def walk_done_line(message: str) -> bool:
    """The raw step's closing line: 'synced N records in M requests (...)'."""
    return message.startswith("synced ") and " requests (" in message


def fold(entries: Sequence[Any]) -> list[list[Any]]:
    """Consecutive events of one kind as one row: kind, count, first and last stamp."""
    rows: list[list[Any]] = []
    for entry in entries:
        event = entry.dagster_event
        kind = event.event_type.value if event is not None else "log: " + entry.user_message[:40]
        if rows and rows[-1][0] == kind:
            rows[-1][1] += 1
            rows[-1][3] = entry.timestamp
        else:
            rows.append([kind, 1, entry.timestamp, entry.timestamp])
    return rows
