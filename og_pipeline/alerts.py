"""Alerts: what a data engineer must hear about without watching the UI, once per change of state.

    alert_on_run_failure            a run of the location failed      -> "run:<job>" failing
    alert_recovery_on_run_success   the next run of that job succeeds -> "run:<job>" recovered
    alert_conditions (every 60 s)   a blocking check failed (records_readable over its share,
                                    no_mass_drop_in_active_contacts), webhook events failed or
                                    invalid, the share of contacts Ometria refused above its limit

Dagster's own run status sensors watch the runs; the conditions are read from the checks'
latest evaluations and from Postgres. og_pipeline.notify sends (a Slack-compatible incoming
webhook, OG_ALERT_WEBHOOK_URL, and/or e-mail, OG_ALERT_EMAIL_TO) and keeps each condition's
state, so a job failing every hour alerts once and its recovery is said once. Every message
links to the run, or to the asset, in the Dagster UI (OG_DAGSTER_UI_URL).
"""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecord
from pydantic import Field

from og_pipeline.contacts.assets import MASS_DROP_CHECK
from og_pipeline.notify import Alert, Notifier, NotifyError, transition
from og_pipeline.ometria.health import rejections
from og_pipeline.ometria.resources import OmetriaResource
from og_pipeline.ordergroove.assets import RAW_RECORDS, READABLE_CHECK
from og_pipeline.reasons import root_cause
from og_pipeline.resources import PostgresResource
from og_pipeline.webhooks.batches import status_counts

# The checks whose failure stops the push: an ERROR-severity failure of one is an alert.
BLOCKING_CHECKS = (
    dg.AssetCheckKey(dg.AssetKey(RAW_RECORDS), READABLE_CHECK),
    dg.AssetCheckKey(dg.AssetKey("contact_subscription_stats"), MASS_DROP_CHECK),
)
# A run's failure text in a message: its first lines, enough to know where to look.
MAX_DETAIL = 500


class AlertsResource(dg.ConfigurableResource):
    """Where alerts go. Empty: nowhere (each change is still logged and its state kept)."""

    webhook_url: str = Field(
        default="", description="A Slack-compatible incoming webhook URL (OG_ALERT_WEBHOOK_URL)."
    )
    email_to: str = Field(default="", description="Comma-separated recipients (OG_ALERT_EMAIL_TO).")
    email_from: str = Field(default="og-pipeline@localhost", description="OG_ALERT_EMAIL_FROM.")
    smtp_host: str = Field(default="localhost", description="OG_ALERT_SMTP_HOST.")
    smtp_port: int = Field(default=25, description="OG_ALERT_SMTP_PORT.")
    ui_url: str = Field(
        default="http://127.0.0.1:3000",
        description="The Dagster UI's address, for the links in alerts (OG_DAGSTER_UI_URL).",
    )

    def notifier(self) -> Notifier:
        recipients = tuple(r.strip() for r in self.email_to.split(",") if r.strip())
        return Notifier(
            self.webhook_url, recipients, self.email_from, self.smtp_host, self.smtp_port
        )

    def run_link(self, run_id: str) -> str:
        return f"{self.ui_url.rstrip('/')}/runs/{run_id}"

    def asset_link(self, asset: str) -> str:
        return f"{self.ui_url.rstrip('/')}/assets/{asset}"


def _say(postgres: PostgresResource, alerts: AlertsResource, alert: Alert) -> bool:
    with postgres.connection() as conn:
        return transition(conn, alert, alerts.notifier())


def _root_causes(context: dg.RunFailureSensorContext) -> str:
    causes = []
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error
        if error is not None:
            causes.append(f"{event.step_key}: {root_cause(error)}")
    return "\n".join(causes) or (context.failure_event.message or "")


@dg.run_failure_sensor(
    name="alert_on_run_failure",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Alerts when a run of the location fails (once, until a run of its job succeeds).",
)
def alert_on_run_failure(
    context: dg.RunFailureSensorContext, postgres: PostgresResource, alerts: AlertsResource
) -> None:
    run = context.dagster_run
    alert = Alert(
        key=f"run:{run.job_name}",
        failing=True,
        title=f"a run of {run.job_name} failed",
        detail=_root_causes(context)[:MAX_DETAIL],
        link=alerts.run_link(run.run_id),
    )
    if _say(postgres, alerts, alert):
        context.log.info("alert sent: %s", alert.title)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="alert_recovery_on_run_success",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Says a job recovered when it succeeds after an alerted failure.",
)
def alert_recovery_on_run_success(
    context: dg.RunStatusSensorContext, postgres: PostgresResource, alerts: AlertsResource
) -> None:
    run = context.dagster_run
    alert = Alert(
        key=f"run:{run.job_name}",
        failing=False,
        title=f"{run.job_name} succeeded again",
        detail="",
        link=alerts.run_link(run.run_id),
    )
    if _say(postgres, alerts, alert):
        context.log.info("recovery sent: %s", alert.title)


def _evaluation(record: AssetCheckExecutionRecord | None) -> dg.AssetCheckEvaluation | None:
    """The evaluation a check execution record holds (none while it is only planned)."""
    event = record.event if record is not None else None
    data = event.dagster_event.event_specific_data if event and event.dagster_event else None
    return data if isinstance(data, dg.AssetCheckEvaluation) else None


def _blocking_check_alerts(instance: dg.DagsterInstance, alerts: AlertsResource) -> list[Alert]:
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        list(BLOCKING_CHECKS)
    )
    found = []
    for key in BLOCKING_CHECKS:
        record = latest.get(key)
        evaluation = _evaluation(record)
        failing = (
            evaluation is not None
            and not evaluation.passed
            and evaluation.severity == dg.AssetCheckSeverity.ERROR
        )
        asset = key.asset_key.to_user_string()
        found.append(
            Alert(
                key=f"check:{asset}:{key.name}",
                failing=failing,
                title=f"blocking check {key.name} on {asset} "
                + ("failed: the push is stopped" if failing else "passes again"),
                detail=(evaluation.description or "") if evaluation and failing else "",
                link=alerts.run_link(record.run_id) if record is not None else None,
            )
        )
    return found


@dg.sensor(
    name="alert_conditions",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts on blocking checks that failed, failed or invalid webhook events, and a "
    "share of contacts refused by Ometria above its limit; says when each clears.",
)
def alert_conditions(
    context: dg.SensorEvaluationContext,
    postgres: PostgresResource,
    alerts: AlertsResource,
    ometria: OmetriaResource,
) -> dg.SkipReason:
    with postgres.connection() as conn:
        counts = status_counts(conn)
        refused = rejections(conn)
    stuck = counts.get("failed", 0) + counts.get("invalid", 0)
    limit = ometria.max_rejected_share
    conditions = [
        *_blocking_check_alerts(context.instance, alerts),
        Alert(
            key="webhook_events",
            failing=stuck > 0,
            title=f"{counts.get('failed', 0)} failed and {counts.get('invalid', 0)} invalid "
            "webhook events"
            if stuck
            else "no failed or invalid webhook events any more",
            detail="See og.webhook_events (status, last_error); `og-pipeline webhooks replay` "
            "once the cause is fixed."
            if stuck
            else "",
            link=alerts.asset_link("ordergroove_webhook_events"),
        ),
        Alert(
            key="ometria_rejected_share",
            failing=refused.share > limit,
            title=f"Ometria refused {refused.share:.1%} of contacts (limit {limit:.1%})"
            if refused.share > limit
            else f"Ometria's refusals back under {limit:.1%}",
            detail=f"{refused.rejected} of {refused.contacts} contacts; "
            "og.ometria_contacts.last_error says why."
            if refused.share > limit
            else "",
            link=alerts.asset_link("ometria_contact_fields"),
        ),
    ]
    said, undelivered = [], []
    for alert in conditions:
        try:
            if _say(postgres, alerts, alert):
                said.append(alert.title)
        except NotifyError as exc:
            undelivered.append(f"{alert.key}: {exc}")
    for line in undelivered:
        context.log.warning("%s (tried again at the next evaluation)", line)
    return dg.SkipReason(
        "; ".join(said)
        if said
        else "no change" + (f"; {len(undelivered)} not delivered" if undelivered else "")
    )


ALERT_SENSORS = [alert_on_run_failure, alert_recovery_on_run_success, alert_conditions]
