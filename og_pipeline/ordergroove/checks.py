"""Freshness of the raw records: the hour that closed is synced soon after, or someone hears.

``records_readable`` (in assets.py) judges what a sync read; this judges whether syncs happen
at all. It runs in the ``health_checks`` job every 15 minutes, so a schedule that stopped, a run
queue that is stuck or a sync failing hour after hour shows here even though no sync evaluates it.
"""

import warnings

import dagster as dg

from og_pipeline.ordergroove.assets import RAW_RECORDS

# Minute of each hour by which the hour that closed must be synced: the schedule starts it at
# minute 5, and an hour's sync takes seconds to a few minutes.
RAW_RECORDS_DEADLINE_CRON = "30 * * * *"

# Checks, not Dagster 1.13's FreshnessPolicy, which supersedes them: policies are a preview that
# needs `freshness: enabled` on the instance and yield no check result a run or a test can read.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.SupersessionWarning)
    raw_records_freshness_checks = dg.build_time_partition_freshness_checks(
        assets=[RAW_RECORDS],
        deadline_cron=RAW_RECORDS_DEADLINE_CRON,
        timezone="UTC",
        severity=dg.AssetCheckSeverity.WARN,
    )
