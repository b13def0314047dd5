"""Checks on what reached Ometria, run after each push and on demand from the UI ("Execute"):
a push backlog (contacts changed long ago and still not accepted), the share of contacts
Ometria refused, and the freshness of the push (no push for too long: the hourly job and the
webhook runs both push). Warnings: the push itself is guarded by the stats' blocking checks."""

import warnings
from datetime import timedelta

import dagster as dg

from og_pipeline.ometria.health import push_backlog, rejections
from og_pipeline.ometria.resources import OmetriaResource
from og_pipeline.resources import PostgresResource


@dg.asset_check(
    asset="ometria_contact_fields",
    name="push_backlog",
    description="Contacts with an e-mail whose fields changed more than backlog_hours ago "
    "and that Ometria has neither accepted nor refused since.",
)
def push_backlog_check(ometria: OmetriaResource, postgres: PostgresResource) -> dg.AssetCheckResult:
    with postgres.connection() as conn:
        waiting = push_backlog(conn, ometria.backlog_hours)
    return dg.AssetCheckResult(
        passed=waiting == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"contacts_waiting": waiting, "backlog_hours": ometria.backlog_hours},
    )


@dg.asset_check(
    asset="ometria_contact_fields",
    name="rejected_contacts_share",
    description="The share of contacts with an e-mail whose current fields Ometria refused "
    "(og.ometria_contacts.last_error says why).",
)
def rejected_share_check(
    ometria: OmetriaResource, postgres: PostgresResource
) -> dg.AssetCheckResult:
    with postgres.connection() as conn:
        found = rejections(conn)
    return dg.AssetCheckResult(
        passed=found.share <= ometria.max_rejected_share,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rejected": found.rejected,
            "contacts": found.contacts,
            "share": round(found.share, 6),
            "max_share": ometria.max_rejected_share,
        },
    )


# The push runs after every hourly sync and every webhook batch, so two hours without one means
# neither happens (a stopped schedule and sensor, or runs failing before the push).
CONTACT_FIELDS_MAX_AGE = timedelta(hours=2)

# Checks rather than a FreshnessPolicy: see og_pipeline/ordergroove/checks.py.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", dg.SupersessionWarning)
    contact_fields_freshness_checks = dg.build_last_update_freshness_checks(
        assets=["ometria_contact_fields"],
        lower_bound_delta=CONTACT_FIELDS_MAX_AGE,
        severity=dg.AssetCheckSeverity.WARN,
    )
