"""``og-pipeline sync --start T --end T``: a range of hours as one run, through Dagster.

The run is recorded in the Dagster instance (visible in the UI, with its logs and metadata) and
executes in this process, so it needs no daemon: the same job the hourly schedule runs, over the
partition range [start, end) as one walk (single-run backfill policy).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from og_pipeline.cli.progress_bars import walk_bars
from og_pipeline.cli.runs import dagster_instance, echo_summary, materializations, run_job
from og_pipeline.run_tags import PUSH_BY_COMMAND, PUSH_TAG
from og_pipeline.settings import ConfigError, load_settings, require_start_date

if TYPE_CHECKING:
    import dagster as dg

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


_SUMMARY_KEYS = {
    "ordergroove_raw_records": (
        "records_fetched",
        "records_inserted",
        "records_updated",
        "requests",
        "retries",
    ),
    "contact_subscription_stats": ("contacts_changed",),
    "ometria_contact_fields": (
        "contacts_pushed",
        "contacts_accepted",
        "contacts_rejected",
        "contacts_without_email",
        "new_async_errors",
    ),
}


def _summary(results: list[dg.ExecuteInProcessResult]) -> dict[str, Any]:
    found = {k: v for result in results for k, v in materializations(result).items()}
    summary = {
        key: found.get(asset, {}).get(key) for asset, keys in _SUMMARY_KEYS.items() for key in keys
    }
    summary["ometria_retries"] = found.get("ometria_contact_fields", {}).get("retries")
    return summary


@click.command()
@click.option(
    "--start",
    "start_text",
    required=True,
    help="First hour (UTC), e.g. 2026-11-01 or 2026-11-01T05:00.",
)
@click.option(
    "--end",
    "end_text",
    required=True,
    help="End (UTC, exclusive): --start 2026-11-01 --end 2026-11-02 is 24 hours.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Sync the records and compute the stats, then show what would be pushed to Ometria "
    "(counts by kind of change, a sample of contacts) and push nothing.",
)
def sync(start_text: str, end_text: str, dry_run: bool) -> None:
    """Sync a range of hours from Ordergroove and push changed contacts to Ometria.

    Runs the ordergroove_sync job over the hourly partitions [START, END) as one run (one walk
    per object type), recorded in the Dagster instance. Needs ORDERGROOVE_API_KEY and
    OMETRIA_API_KEY (and their URLs for other hosts, such as the sandbox). Exits non-zero with
    the reason if the run fails. A backfill sets fields and sends no custom events. With
    --dry-run, Ometria receives nothing and the push state is left as it was (the raw records
    and the stats are still updated: they are what the next push compares against).
    """
    start, end = parse_hour(start_text, "--start"), parse_hour(end_text, "--end")
    if end <= start:
        raise click.BadParameter("must be after --start", param_hint="--end")
    settings = load_settings()
    first_hour = datetime.combine(require_start_date(settings), datetime.min.time(), tzinfo=UTC)
    if start < first_hour:
        raise ConfigError(
            f"--start {start:%Y-%m-%dT%H:%M} is before OG_SYNC_START_DATE ({first_hour:%Y-%m-%d})"
        )
    last_complete = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    if end > last_complete:
        raise click.BadParameter(
            f"must not be after the last complete hour ({last_complete:%Y-%m-%dT%H:%M})",
            param_hint="--end",
        )
    for variable, value in (
        ("ORDERGROOVE_API_KEY", settings.ordergroove_api_key),
        ("OMETRIA_API_KEY", settings.ometria_api_key),
    ):
        if value is None:
            raise ConfigError(
                f"{variable} is not set: sync talks to the real API (or the sandbox's URL and key)"
            )

    hours = int((end - start) / timedelta(hours=1))
    tags = {
        "dagster/asset_partition_range_start": start.strftime(PARTITION_FORMAT),
        "dagster/asset_partition_range_end": (end - timedelta(hours=1)).strftime(PARTITION_FORMAT),
        "og-pipeline/trigger": "cli-sync",
        **({"og-pipeline/dry-run": "true"} if dry_run else {}),
    }
    # On a terminal, a bar per walk below the run's log lines.
    with dagster_instance(settings) as instance, walk_bars():
        click.echo(f"syncing {hours} hours from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")
        if end - start <= ONE_RUN_UP_TO:
            results = [
                run_job(
                    instance,
                    "ordergroove_sync",
                    "sync",
                    tags=tags,
                    run_config=DRY_RUN_CONFIG if dry_run else None,
                )
            ]
        else:
            # Long: the raw records alone over the range, then the push as a run of its own, so
            # Dagster plans per-hour events for one asset, not three (og_pipeline/jobs.py).
            raw = run_job(
                instance, "ordergroove_raw_sync", "sync", tags={**tags, PUSH_TAG: PUSH_BY_COMMAND}
            )
            click.echo(f"run {raw.run_id} synced the records; now the stats and the push")
            push = run_job(
                instance,
                "contacts_push",
                "sync",
                tags={"og-pipeline/after-run": raw.run_id, "og-pipeline/trigger": "cli-sync"},
                run_config=DRY_RUN_CONFIG if dry_run else None,
            )
            results = [raw, push]
    if dry_run:
        echo_dry_run(results)
        return
    runs = " and ".join(result.run_id for result in results)
    echo_summary(f"run {runs} succeeded", {"hours": hours, **_summary(results)})


# Up to a day, one run of the whole job; longer, the records and the push in two runs.
ONE_RUN_UP_TO = timedelta(days=1)


DRY_RUN_CONFIG = {"ops": {"ometria_contact_fields": {"config": {"dry_run": True}}}}


def echo_dry_run(results: list[dg.ExecuteInProcessResult]) -> None:
    """What the dry run found, on the terminal: counts by kind, then the sample as a table."""
    found = materializations(results[-1]).get("ometria_contact_fields", {})
    counts = {key: value for key, value in found.items() if key.startswith("would_")}
    runs = " and ".join(result.run_id for result in results)
    echo_summary(f"run {runs} succeeded (dry run: nothing sent to Ometria)", counts)
    sample = found.get("would_push_sample")
    if sample is not None:
        import pandas as pd  # here: the other commands start without it

        frame = pd.DataFrame([record.data for record in sample.records])
        click.echo(f"sample of {len(frame)} contacts that would be pushed:")
        click.echo(frame.to_string(index=False, na_rep="-"))
