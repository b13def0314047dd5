"""The checks behind ``og-pipeline doctor``: each answers one question about a deployment
without changing it.

Nothing here writes what the other commands write at start: no migration is applied, no
database, Dagster table or pool is created, no dead run is marked failed, no contact is pushed.
Where those commands would fix something by themselves, the check says so.

- ``model``: ``Check``, ``Verdict``, the check names, and the guards that keep secrets out of
  the output (``secrets_in``, ``scrub``).
- ``context``: what one run shares between its checks (inputs, resolved URLs, the instance).
- ``database``: the configuration, Postgres, the migrations and Dagster's storage.
- ``apis``: the Ordergroove and Ometria keys, the webhook key and the receiver.
- ``pools``: the API pools' limits and the runs holding their slots.
- ``run``: ``run_checks``, the checks in order, skipping those whose dependency failed.
"""

from og_pipeline.doctor.model import (
    APPLY_MIGRATIONS,
    CONFIGURATION,
    DAGSTER_STORAGE,
    FIRST_COMMAND,
    FREE_IN_UI,
    MIGRATIONS,
    OMETRIA_KEY,
    ORDERGROOVE_KEY,
    POOL_LIMITS,
    POSTGRES,
    RECEIVER,
    SLOT_HOLDS,
    WEBHOOK_KEY,
    Check,
    Verdict,
    public_url,
    scrub,
    secrets_in,
)
from og_pipeline.doctor.run import run_checks

__all__ = [
    "APPLY_MIGRATIONS",
    "CONFIGURATION",
    "DAGSTER_STORAGE",
    "FIRST_COMMAND",
    "FREE_IN_UI",
    "MIGRATIONS",
    "OMETRIA_KEY",
    "ORDERGROOVE_KEY",
    "POOL_LIMITS",
    "POSTGRES",
    "RECEIVER",
    "SLOT_HOLDS",
    "WEBHOOK_KEY",
    "Check",
    "Verdict",
    "public_url",
    "run_checks",
    "scrub",
    "secrets_in",
]
