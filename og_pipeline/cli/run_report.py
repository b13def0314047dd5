"""One line per run on `dev`'s console: when it starts, and when it ends, with its summary.

Dagster logs a run's start and end at DEBUG, which the console (at INFO) leaves out; the run's own
lines say what each step did. `dev` polls the instance every few seconds for runs that changed
and prints, for each, a line when it starts and one when it ends: succeeded (with what it
synced, pushed and sent), or failed (with the reason and where to look).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dagster as dg

# What a run's summary line names, from its materializations' metadata, in this order.
SUMMARY_KEYS = (
    "records_fetched",
    "records_set_aside",
    "events_applied",
    "contacts_changed",
    "contacts_pushed",
    "contacts_rejected",
    "events_accepted",
    "would_push",
)


class RunReporter:
    """Remembers each run's last status seen; ``poll()`` returns the lines for what changed."""

    def __init__(self, instance: dg.DagsterInstance, ui_url: str) -> None:
        self.instance = instance
        self.ui_url = ui_url.rstrip("/")
        self.since = datetime.now(UTC)
        self.seen: dict[str, str] = {}

    def poll(self) -> list[str]:
        import dagster as dg

        records = self.instance.get_run_records(
            filters=dg.RunsFilter(updated_after=self.since), limit=100, ascending=True
        )
        lines = []
        for record in records:
            run = record.dagster_run
            status = run.status.value
            if self.seen.get(run.run_id) == status:
                continue
            self.seen[run.run_id] = status
            line = self._line(run, record)
            if line:
                lines.append(line)
        return lines

    def _line(self, run: dg.DagsterRun, record: Any) -> str | None:
        name = f"run {run.run_id[:8]} {run.job_name}"
        status = run.status.value
        took = ""
        if record.start_time and record.end_time:
            took = f" in {record.end_time - record.start_time:.0f} s"
        if status == "STARTED":
            return f"{name} started"
        if status == "SUCCESS":
            summary = self._summary(run.run_id)
            return f"{name} succeeded{took}" + (f": {summary}" if summary else "")
        if status in ("FAILURE", "CANCELED"):
            verdict = "failed" if status == "FAILURE" else "was canceled"
            return f"{name} {verdict}{took}; its logs: {self.ui_url}/runs/{run.run_id}"
        return None

    def _summary(self, run_id: str) -> str:
        import dagster as dg

        found: dict[str, Any] = {}
        for entry in self.instance.all_logs(
            run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ):
            event = entry.dagster_event
            if event is None:
                continue
            for key, value in event.step_materialization_data.materialization.metadata.items():
                if key in SUMMARY_KEYS:
                    found[key] = value.value
        return ", ".join(f"{key} {found[key]:,}" for key in SUMMARY_KEYS if key in found)
