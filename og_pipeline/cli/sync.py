"""``og-pipeline sync --start T --end T``: a range of hours as one run, through Dagster.

The run is recorded in the Dagster instance (visible in the UI, with its logs and metadata) and
executes in this process, so it needs no daemon: the same job the hourly schedule runs, over the
partition range [start, end) as one walk (single-run backfill policy).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from og_pipeline.runtime import dagster_environment, open_databases, project_root, state_dir
from og_pipeline.settings import ConfigError, load_settings, require_start_date

PARTITION_FORMAT = "%Y-%m-%d-%H:%M"


def parse_hour(value: str, option: str) -> datetime:
    """An hour in UTC: YYYY-MM-DD, YYYY-MM-DDTHH[:MM] or Dagster's YYYY-MM-DD-HH:MM."""
    text = value.strip().replace(" ", "T")
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", PARTITION_FORMAT):
        try:
            moment = datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
        if moment.minute or moment.second:
            raise click.BadParameter("must be on the hour", param_hint=option)
        return moment
    raise click.BadParameter("expected YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)", param_hint=option)


def _summary(result: Any) -> dict[str, Any]:
    totals: dict[str, Any] = {}
    for event in result.all_events:
        if event.event_type_value != "ASSET_MATERIALIZATION":
            continue
        materialization = event.event_specific_data.materialization
        values = {k: v.value for k, v in materialization.metadata.items()}
        name = materialization.asset_key.to_user_string()
        if name == "ordergroove_raw_records":
            # One event per hour of the range, each with the run's totals.
            totals.update({k: values.get(k) for k in
                           ("records_fetched", "records_inserted", "records_updated", "requests", "retries")})
        elif name == "ometria_contact_fields":
            totals.update({k: values.get(k) for k in
                           ("contacts_pushed", "contacts_accepted", "contacts_rejected",
                            "contacts_without_email", "new_async_errors")})
            totals["ometria_retries"] = values.get("retries")
        elif name == "contact_subscription_stats":
            totals["contacts_changed"] = values.get("contacts_changed")
    return totals


def _failure(result: Any) -> str:
    for event in result.all_events:
        if event.event_type_value in ("STEP_FAILURE", "PIPELINE_FAILURE", "RUN_FAILURE"):
            error = getattr(event.event_specific_data, "error", None)
            if error is not None:
                cause = error
                while getattr(cause, "cause", None) is not None:
                    cause = cause.cause
                return f"{event.step_key or 'run'}: {cause.message.strip()}"
            if event.message:
                return event.message
    return "the run failed (see its logs in the Dagster UI)"


@click.command()
@click.option("--start", "start_text", required=True, help="First hour (UTC), e.g. 2026-11-01 or 2026-11-01T05:00.")
@click.option("--end", "end_text", required=True, help="End (UTC, exclusive): --start 2026-11-01 --end 2026-11-02 is 24 hours.")
def sync(start_text: str, end_text: str) -> None:
    """Sync a range of hours from Ordergroove and push changed contacts to Ometria.

    Runs the ordergroove_sync job over the hourly partitions [START, END) as one run (one walk
    per object type), recorded in the Dagster instance. Needs ORDERGROOVE_API_KEY and
    OMETRIA_API_KEY (and their URLs for other hosts, such as the sandbox). Exits non-zero with
    the reason if the run fails. A backfill sets fields and sends no custom events.
    """
    start, end = parse_hour(start_text, "--start"), parse_hour(end_text, "--end")
    if end <= start:
        raise click.BadParameter("must be after --start", param_hint="--end")
    settings = load_settings()
    first_hour = datetime.combine(require_start_date(settings), datetime.min.time(), tzinfo=UTC)
    if start < first_hour:
        raise ConfigError(f"--start {start:%Y-%m-%dT%H:%M} is before OG_SYNC_START_DATE ({first_hour:%Y-%m-%d})")
    last_complete = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    if end > last_complete:
        raise click.BadParameter(f"must not be after the last complete hour ({last_complete:%Y-%m-%dT%H:%M})",
                                 param_hint="--end")
    for variable, value in (("ORDERGROOVE_API_KEY", settings.ordergroove_api_key),
                            ("OMETRIA_API_KEY", settings.ometria_api_key)):
        if value is None:
            raise ConfigError(f"{variable} is not set: sync talks to the real API (or the sandbox's URL and key)")

    root = project_root()
    state = state_dir(root)
    databases = open_databases(settings, state)
    try:
        os.environ.update(dagster_environment(root, state, databases))
        # Fewer, larger event-log writes: a long range writes one event per hour per asset.
        os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")
        import dagster as dg

        from og_pipeline.definitions import defs

        job = defs().resolve_job_def("ordergroove_sync")
        hours = int((end - start) / timedelta(hours=1))
        click.echo(f"syncing {hours} hours from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")
        with dg.DagsterInstance.get() as instance:
            result = job.execute_in_process(
                instance=instance,
                tags={
                    "dagster/asset_partition_range_start": start.strftime(PARTITION_FORMAT),
                    "dagster/asset_partition_range_end": (end - timedelta(hours=1)).strftime(PARTITION_FORMAT),
                    "og-pipeline/trigger": "cli-sync",
                },
                run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
                raise_on_error=False,
            )
        if not result.success:
            raise click.ClickException(f"sync failed (run {result.run_id}): {_failure(result)}")
        click.echo(f"run {result.run_id} succeeded")
        click.echo(f"  hours: {hours}")
        for key, value in _summary(result).items():
            click.echo(f"  {key}: {value}")
    finally:
        databases.close()
