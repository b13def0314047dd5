"""Run tags og-pipeline sets and reads, as plain constants: the commands (which load Dagster only
when they run a job) and the jobs' sensors share them."""

from __future__ import annotations

# The tag of a raw-records run whose push its command starts itself: the sensor that follows a
# backfill's raw run with a push (push_after_backfill) leaves such a run alone.
PUSH_TAG = "og-pipeline/push"
PUSH_BY_COMMAND = "by-command"
