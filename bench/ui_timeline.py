"""Where a UI backfill's time goes, from the Dagster instance: the backfill's run, the
contacts_push run the sensor starts after it, and the daemon's loops between them.

Read after the backfill with a DagsterInstance on its Postgres (not from log lines): each run's
creation stamp (its record), its queue and launch events, its steps, and the raw step's
"synced N records" line, which ends the walk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sync_runs import PUSH, RAW, STATS, dagster_instance, fold, walk_done_line

AFTER_RUN_TAG = "og-pipeline/after-run"  # push_after_backfill's tag on the push run


@dataclass
class RunStamps:
    """time.time() stamps of one run: created, handed to the launcher, started, its steps, ended."""

    run_id: str = ""
    created: float = 0.0
    starting: float = 0.0  # RUN_STARTING: the queue handed it to the run launcher
    started: float = 0.0  # RUN_START: the run worker is up and its code loaded
    steps: dict[str, tuple[float, float]] = field(default_factory=dict)  # START, SUCCESS
    walk_done: float = 0.0  # the raw step's "synced N records" line
    ended: float = 0.0  # RUN_SUCCESS (or the last event)
    planned: int = 0  # ASSET_MATERIALIZATION_PLANNED events
    folded: list[list[Any]] = field(default_factory=list)  # sync_runs.fold of its events


@dataclass
class UiTimeline:
    launched: float = 0.0  # time.time() just before launchPartitionBackfill
    backfill_ended: float = 0.0
    raw: RunStamps = field(default_factory=RunStamps)
    push: RunStamps = field(default_factory=RunStamps)

    @property
    def total(self) -> float:
        """Launch to the push run's end: the backfill's contacts are in Ometria then."""
        return self.push.ended - self.launched

    def rows(self) -> list[tuple[str, float]]:
        """(what, seconds) along the backfill's critical path, launch to the push run's end."""
        raw, push = self.raw, self.push
        raw_step, stats_step, push_step = raw.steps[RAW], push.steps[STATS], push.steps[PUSH]
        return [
            (
                "launch → the raw run created (backfill daemon's loop, planned events)",
                raw.created - self.launched,
            ),
            ("→ RUN_STARTING (the run queue's loop)", raw.starting - raw.created),
            ("→ RUN_START (the run worker's process, code loaded)", raw.started - raw.starting),
            ("→ raw STEP_START", raw_step[0] - raw.started),
            ("→ walk done ('synced N records')", raw.walk_done - raw_step[0]),
            ("→ raw STEP_SUCCESS (the hours' materializations)", raw_step[1] - raw.walk_done),
            ("→ raw run's end", raw.ended - raw_step[1]),
            ("→ the push run created (push_after_backfill's tick)", push.created - raw.ended),
            ("→ RUN_STARTING (the run queue's loop)", push.starting - push.created),
            ("→ RUN_START (the run worker's process, code loaded)", push.started - push.starting),
            ("→ stats STEP_START", stats_step[0] - push.started),
            ("stats step", stats_step[1] - stats_step[0]),
            ("→ push STEP_START", push_step[0] - stats_step[1]),
            ("push step", push_step[1] - push_step[0]),
            ("→ push run's end", push.ended - push_step[1]),
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows(),
            "total": self.total,
            "backfill_ended_after_launch": self.backfill_ended - self.launched,
            "planned": {"raw": self.raw.planned, "push": self.push.planned},
            "folded": {"raw": self.raw.folded, "push": self.push.folded},
        }


def read_run(instance: Any, run_id: str) -> RunStamps:
    import dagster as dg

    kind = dg.DagsterEventType
    stamps = RunStamps(run_id=run_id)
    record = instance.get_run_record_by_id(run_id)
    stamps.created = record.create_timestamp.timestamp()
    begun: dict[str, float] = {}
    entries = instance.all_logs(run_id)
    stamps.ended = entries[-1].timestamp
    stamps.folded = fold(entries)
    for entry in entries:
        event = entry.dagster_event
        if event is None:
            if walk_done_line(entry.user_message or ""):
                stamps.walk_done = entry.timestamp
            continue
        step = entry.step_key or ""
        if event.event_type == kind.ASSET_MATERIALIZATION_PLANNED:
            stamps.planned += 1
        elif event.event_type == kind.RUN_STARTING:
            stamps.starting = entry.timestamp
        elif event.event_type == kind.RUN_START:
            stamps.started = entry.timestamp
        elif event.event_type == kind.STEP_START:
            begun[step] = entry.timestamp
        elif event.event_type == kind.STEP_SUCCESS:
            stamps.steps[step] = (begun[step], entry.timestamp)
        elif event.event_type == kind.RUN_SUCCESS:
            stamps.ended = entry.timestamp
    return stamps


def read_ui_timeline(dagster_url: str, home: Path, backfill_id: str, launched: float) -> UiTimeline:
    """The stamps of backfill ``backfill_id`` (launched at ``launched``) and of its push run."""
    import dagster as dg

    timeline = UiTimeline(launched=launched)
    with dagster_instance(dagster_url, home) as instance:
        backfill = instance.get_backfill(backfill_id)
        if backfill is None:
            raise RuntimeError(f"no backfill {backfill_id} in the instance")
        timeline.backfill_ended = backfill.backfill_end_timestamp or 0.0
        (raw,) = instance.get_run_ids(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        timeline.raw = read_run(instance, raw)
        (push,) = instance.get_run_ids(dg.RunsFilter(tags={AFTER_RUN_TAG: raw}))
        timeline.push = read_run(instance, push)
    return timeline


def timeline_table(timeline: UiTimeline) -> str:
    lines = [f"| {what} | {seconds:.1f} s |" for what, seconds in timeline.rows()]
    lines.append(f"| **launch → the push run's end** | **{timeline.total:.1f} s** |")
    if timeline.backfill_ended:
        lines.append(
            "| (beside it) launch → the backfill marked COMPLETED_SUCCESS | "
            f"{timeline.backfill_ended - timeline.launched:.1f} s |"
        )
    return "| | |\n| --- | ---: |\n" + "\n".join(lines) + "\n\n"
