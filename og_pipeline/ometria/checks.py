"""Checks on what reached Ometria, run after each push and on demand from the UI ("Execute"):
a push backlog (contacts changed long ago and still not accepted) and the share of contacts
Ometria refused. Warnings: the push itself is guarded by the stats' blocking checks."""

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
