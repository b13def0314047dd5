"""The checks in order, each run once, whatever the ones before it found.

The order is the order of dependence: the configuration first, then the databases that Dagster's
storage lives beside, then the keys and the receiver, then the pools read through the instance
that the storage check opened. A check that cannot run because an earlier one failed raises
``Skip`` and is reported ``skipped`` with the reason; an exception inside a check fails that
check only, so one broken check never hides the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from datetime import timedelta

from og_pipeline.doctor import apis, database, pools
from og_pipeline.doctor.context import Context
from og_pipeline.doctor.model import (
    CONFIGURATION,
    DAGSTER_STORAGE,
    MIGRATIONS,
    OMETRIA_KEY,
    ORDERGROOVE_KEY,
    POOL_LIMITS,
    POSTGRES,
    RECEIVER,
    SLOT_HOLDS,
    WEBHOOK_KEY,
    Check,
    Skip,
    Verdict,
    secrets_in,
)

STEPS: tuple[tuple[str, Callable[[Context], Check]], ...] = (
    (CONFIGURATION, database.configuration),
    (POSTGRES, database.postgres),
    (MIGRATIONS, database.migrations),
    (DAGSTER_STORAGE, database.dagster_storage),
    (ORDERGROOVE_KEY, apis.ordergroove),
    (OMETRIA_KEY, apis.ometria),
    (WEBHOOK_KEY, apis.webhook_key),
    (RECEIVER, apis.receiver),
    (POOL_LIMITS, pools.pools),
    (SLOT_HOLDS, pools.slot_holds),
)


def run_checks(
    receiver_url: str | None,
    max_slot_hold: timedelta,
    environ: Mapping[str, str] | None = None,
) -> list[Check]:
    """Every check, in order; the environment is only read (``os.environ`` by default)."""
    env = os.environ if environ is None else environ
    # What the checks open (the embedded server, Dagster's instance) stays open until the last
    # check has run: the pool checks read through the instance the storage check opened.
    with ExitStack() as stack:
        ctx = Context(env, receiver_url, max_slot_hold, stack, secrets_in(env, receiver_url))
        results = []
        for name, step in STEPS:
            try:
                result = step(ctx)
            except Skip as skip:
                result = Check(name, Verdict.SKIPPED, str(skip))
            except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
                result = Check(name, Verdict.FAIL, f"the check failed: {ctx.describe(exc)}")
            results.append(result)
        return results
