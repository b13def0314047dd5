"""The Dagster pools of og-pipeline's API steps, created before any run can claim them.

Steps that call an API share its pool, whose limit is dagster.yaml's
``concurrency.pools.default_limit``. Dagster creates a pool's row on the first claim; when two
runs make that first claim at the same moment (``dev``'s first backfill and a webhook batch, say),
Dagster 1.13 fails one of them: on Postgres its retry after the duplicate insert runs in an
aborted transaction. So what starts runs (``dev``, the commands, the webhook sensor) creates the
rows first, and tolerates the same race among its own callers.
"""

from __future__ import annotations

from typing import Any

ORDERGROOVE_POOL = "ordergroove_api"
OMETRIA_POOL = "ometria_api"
POOLS = (ORDERGROOVE_POOL, OMETRIA_POOL)


def ensure_pools(instance: Any) -> None:
    """Create the pools' rows with the instance's default limit, unless they exist."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return
    existing = storage.get_concurrency_keys()
    for pool in POOLS:
        if pool in existing:
            continue
        try:
            storage.initialize_concurrency_limit_to_default(pool)
        except Exception:
            # Another process created it at the same moment (the race described above).
            if pool not in storage.get_concurrency_keys():
                raise
