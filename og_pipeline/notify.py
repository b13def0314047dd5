"""Telling people: alerts and recoveries to a Slack-compatible incoming webhook and/or by e-mail,
once per change of state. No Dagster here: og_pipeline/alerts.py decides what to say and when.

    condition (a run failed, a check failing, ...) -> transition() -> changed? -> Notifier.send()

``og.alert_state`` keeps each condition's last state, so a job failing every hour alerts once,
and a recovery is said once when it clears. The state is written only after the message went
out (or there is nowhere to send it), so a message that could not be sent is tried again at the
next evaluation rather than lost; a crash between the two may repeat one message, never drop one.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage

import psycopg
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

log = logging.getLogger(__name__)

# Short: a sensor evaluation must end well inside Dagster's sensor timeout (60 s by default).
WEBHOOK_TIMEOUT = 10.0
SMTP_TIMEOUT = 10.0


@dataclass(frozen=True)
class Alert:
    key: str  # the condition: "run:<job>", "check:<asset>:<check>", "webhook_events", ...
    failing: bool  # False: the recovery message
    title: str
    detail: str  # what and why, never an e-mail address or a secret
    link: str | None = None  # the run or asset in the Dagster UI

    def text(self) -> str:
        mark = "FAILING" if self.failing else "RECOVERED"
        lines = [f"[og-pipeline] {mark}: {self.title}", self.detail]
        if self.link:
            lines.append(self.link)
        return "\n".join(line for line in lines if line)


class NotifyError(RuntimeError):
    """A channel did not take the message; says which channel, never its URL or password."""


@dataclass(frozen=True)
class Notifier:
    webhook_url: str = ""  # a Slack incoming webhook's URL holds its token: never logged
    email_to: Sequence[str] = ()
    email_from: str = "og-pipeline@localhost"
    smtp_host: str = "localhost"
    smtp_port: int = 25

    @property
    def configured(self) -> bool:
        return bool(self.webhook_url or self.email_to)

    def send(self, alert: Alert) -> None:
        """Send to every configured channel; raises NotifyError naming the channels that failed
        after trying them all."""
        failed = []
        if self.webhook_url:
            try:
                self._post(alert)
            except (requests.RequestException, NotifyError) as exc:
                failed.append(f"webhook ({type(exc).__name__})")
        if self.email_to:
            try:
                self._mail(alert)
            except (OSError, smtplib.SMTPException) as exc:
                failed.append(f"e-mail ({type(exc).__name__})")
        if failed:
            raise NotifyError("alert not delivered by " + ", ".join(failed))

    def _post(self, alert: Alert) -> None:
        with requests.Session() as session:
            # Backoff on 429 and 5xx, as Slack asks; a few tries only (the next evaluation retries).
            retry = Retry(total=3, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504))
            session.mount("https://", HTTPAdapter(max_retries=retry))
            session.mount("http://", HTTPAdapter(max_retries=retry))
            # Slack's incoming webhooks (and Mattermost's, Rocket.Chat's) read "text".
            response = session.post(
                self.webhook_url,
                json={"text": alert.text()},
                timeout=WEBHOOK_TIMEOUT,
                allow_redirects=False,
            )
        if response.status_code >= 300:
            raise NotifyError(f"the webhook answered {response.status_code}")

    def _mail(self, alert: Alert) -> None:
        message = EmailMessage()
        message["Subject"] = alert.text().splitlines()[0]
        message["From"] = self.email_from
        message["To"] = ", ".join(self.email_to)
        message.set_content(alert.text())
        with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=SMTP_TIMEOUT) as smtp:
            smtp.send_message(message)


def transition(conn: psycopg.Connection, alert: Alert, notifier: Notifier) -> bool:
    """Say ``alert`` if its condition changed state since last said; True if it was said.

    A condition never seen before that is not failing says nothing (no "recovered" out of the
    blue). Commits.
    """
    row = conn.execute(
        "SELECT failing FROM og.alert_state WHERE key = %s FOR UPDATE", (alert.key,)
    ).fetchone()
    before = row[0] if row else False
    if before == alert.failing:
        conn.commit()
        return False
    if notifier.configured:
        notifier.send(alert)  # raises: the state stays, and the next evaluation tries again
    else:
        log.info("alert %s (no channel configured): %s", alert.key, alert.title)
    conn.execute(
        "INSERT INTO og.alert_state (key, failing, title, changed_at) VALUES (%s, %s, %s, now()) "
        "ON CONFLICT (key) DO UPDATE SET failing = EXCLUDED.failing, title = EXCLUDED.title, "
        "changed_at = EXCLUDED.changed_at",
        (alert.key, alert.failing, alert.title),
    )
    conn.commit()
    return True
