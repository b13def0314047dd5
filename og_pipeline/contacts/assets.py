"""Per-contact subscription stats: what each contact's Ometria custom fields should say.

Unpartitioned on purpose: it is one table over the whole history, recomputed in Postgres for
the contacts whose raw records changed. Its checks are blocking: a failure stops the push.
"""

import dagster as dg
from pydantic import Field

from og_pipeline.contacts.changes import pending_changes
from og_pipeline.contacts.stats import active_contacts_in_ometria, recompute_dirty, summary
from og_pipeline.resources import OWNERS, PostgresResource

MASS_DROP_CHECK = "no_mass_drop_in_active_contacts"
# What the blocked push would have sent that this folder can tell without the field IDs.
STATUS_ONLY_KEYS = (
    "would_push",
    "would_skip_without_email",
    "would_push_new_contact",
    "would_push_changed_status",
)


class StatsConfig(dg.Config):
    # Descriptions through Field: a docstring under a field never reaches Dagster's UI.
    max_active_drop_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description=(
            "Largest share of contacts active in Ometria that may turn inactive in one run."
        ),
    )
    mass_drop_min_contacts: int = Field(
        default=50,
        ge=0,
        description=(
            "Below this many active contacts in Ometria, the mass-drop check does not apply."
        ),
    )


@dg.asset(
    group_name="contacts",
    # Keys, not the asset objects: a folder imports none of its upstream siblings' assets.
    deps=["ordergroove_raw_records", "ordergroove_webhook_events"],
    kinds={"postgres"},
    owners=OWNERS,
    check_specs=[
        dg.AssetCheckSpec(MASS_DROP_CHECK, asset="contact_subscription_stats", blocking=True)
    ],
)
def contact_subscription_stats(
    context: dg.AssetExecutionContext, config: StatsConfig, postgres: PostgresResource
) -> dg.MaterializeResult:
    """One row per Ordergroove customer: active subscriptions (live), total subscriptions,
    status (active if any is live) and next order date (earliest upcoming order).

    These are the values of the contact's Ometria custom fields. Recomputed inside Postgres
    (og.contact_stats) for exactly the contacts whose subscriptions, orders or customer record
    changed since the last run.
    """
    with postgres.connection() as conn:
        recomputed, changed = recompute_dirty(conn)
        totals = summary(conn)
        baseline = active_contacts_in_ometria(conn)
        drop = max(0, baseline - totals.active_contacts)
        share = drop / baseline if baseline else 0.0
        passed = baseline < config.mass_drop_min_contacts or share <= config.max_active_drop_share
        # Blocked: say what the push would have sent, as a dry run would (status is compared
        # from its own column: this folder does not know the Ometria field IDs).
        blocked = {} if passed else pending_changes(conn, None).as_metadata()
    check = dg.AssetCheckResult(
        check_name=MASS_DROP_CHECK,
        passed=passed,
        metadata={
            "active_in_ometria": baseline,
            "active_now": totals.active_contacts,
            "drop_share": round(share, 4),
            "max_drop_share": config.max_active_drop_share,
            **{key: blocked[key] for key in STATUS_ONLY_KEYS if key in blocked},
        },
        description="Active contacts now vs. what Ometria last accepted; raise "
        "max_active_drop_share in the run config to push a real mass cancellation."
        + (
            f" Blocked: the push would have sent {blocked['would_push']} contacts, "
            f"{blocked['would_push_changed_status']} of them changing status."
            if blocked
            else ""
        ),
    )
    context.log.info("recomputed %d contacts, %d changed", recomputed, changed)
    return dg.MaterializeResult(
        metadata={
            "contacts_recomputed": recomputed,
            "contacts_changed": changed,
            "contacts": totals.contacts,
            "active_contacts": totals.active_contacts,
            "contacts_without_email": totals.contacts_without_email,
            "active_subscriptions": totals.active_subscriptions,
            "total_subscriptions": totals.total_subscriptions,
            "dagster/row_count": totals.contacts,
        },
        check_results=[check],
    )
