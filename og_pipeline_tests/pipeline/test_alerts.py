"""Alerts reach a Slack-compatible webhook and e-mail once per change of state, with a link to the
run, and a recovery when the condition clears. Real servers on 127.0.0.1 record what they got:
an HTTP server for the webhook, an SMTP server (aiosmtpd) for the e-mail."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dagster as dg
import pytest
from aiosmtpd.controller import Controller

from og_pipeline.alerts import (
    AlertsResource,
    alert_conditions,
    alert_on_run_failure,
    alert_recovery_on_run_success,
)
from og_pipeline.ometria.resources import OmetriaResource
from og_pipeline.resources import PostgresResource
from og_pipeline_tests.pipeline.conftest import NOW, START, Pipeline

UI = "http://dagster.example:3000"


class Hook:
    """An incoming-webhook stand-in: records each JSON body; answers ``status``."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hook.status == 200:
                    hook.texts.append(json.loads(body)["text"])
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/secret-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """aiosmtpd's handler protocol: keeps every message delivered."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture
def resources(pipeline: Pipeline, hook: Hook, mailbox: tuple[Mailbox, int]) -> dict[str, Any]:
    return {
        "postgres": PostgresResource(database_url=pipeline.db_url),
        "alerts": AlertsResource(
            webhook_url=hook.url,
            email_to="oncall@example.org",
            smtp_host="127.0.0.1",
            smtp_port=mailbox[1],
            ui_url=UI,
        ),
        "ometria": OmetriaResource(api_key="unused"),
    }


def _on_failure(pipeline: Pipeline, result: dg.ExecuteInProcessResult, resources: Any) -> None:
    context = dg.build_run_status_sensor_context(
        sensor_name="alert_on_run_failure",
        dagster_instance=pipeline.instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_failure_event(),
        resources=resources,
    ).for_run_failure()
    alert_on_run_failure(context)


def _on_success(pipeline: Pipeline, result: dg.ExecuteInProcessResult, resources: Any) -> None:
    context = dg.build_run_status_sensor_context(
        sensor_name="alert_recovery_on_run_success",
        dagster_instance=pipeline.instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_success_event(),
        resources=resources,
    )
    alert_recovery_on_run_success(context)


def _conditions(pipeline: Pipeline, resources: Any) -> str:
    context = dg.build_sensor_context(instance=pipeline.instance, resources=resources)
    return alert_conditions(context).skip_message or ""


def test_a_failing_job_alerts_once_with_a_link_and_its_recovery_is_said_once(
    pipeline: Pipeline, hook: Hook, mailbox: tuple[Mailbox, int], resources: dict[str, Any]
) -> None:
    pipeline.use_keys(ordergroove="a-wrong-ordergroove-key")
    first = pipeline.sync(START, START + timedelta(hours=1))
    again = pipeline.sync(START, START + timedelta(hours=1))
    assert not first.success and not again.success

    _on_failure(pipeline, first, resources)
    _on_failure(pipeline, again, resources)  # still failing: nothing new to say

    (text,) = hook.texts
    assert text.startswith("[og-pipeline] FAILING: a run of ordergroove_sync failed")
    assert f"{UI}/runs/{first.run_id}" in text
    assert "ORDERGROOVE_API_KEY" in text and "a-wrong-ordergroove-key" not in text
    (mail,) = mailbox[0].messages
    assert mail["Subject"] == text.splitlines()[0] and mail["To"] == "oncall@example.org"

    pipeline.use_keys(ordergroove="sandbox-og-key")
    fixed = pipeline.sync(START, START + timedelta(hours=1))
    assert fixed.success
    _on_success(pipeline, fixed, resources)
    _on_success(pipeline, fixed, resources)
    assert len(hook.texts) == 2
    assert hook.texts[1].startswith("[og-pipeline] RECOVERED: ordergroove_sync succeeded again")


def test_a_success_without_an_earlier_alert_says_nothing(
    pipeline: Pipeline, hook: Hook, resources: dict[str, Any]
) -> None:
    ok = pipeline.sync(START, START + timedelta(hours=1))
    _on_success(pipeline, ok, resources)
    assert hook.texts == []


def test_failed_webhook_events_alert_once_and_clear_with_a_recovery(
    pipeline: Pipeline, hook: Hook, resources: dict[str, Any]
) -> None:
    assert _conditions(pipeline, resources) == "no change"
    pipeline.query_commit(
        "INSERT INTO og.webhook_events (event_id, event_type, status, last_error, body, payload) "
        "VALUES ('bad-1', 'subscription.create', 'failed', 'KeyError', '{}', '{}')"
    )
    _conditions(pipeline, resources)
    _conditions(pipeline, resources)
    assert len(hook.texts) == 1 and "1 failed and 0 invalid webhook events" in hook.texts[0]

    pipeline.query_commit("UPDATE og.webhook_events SET status = 'processed'")
    _conditions(pipeline, resources)
    assert len(hook.texts) == 2 and hook.texts[1].startswith("[og-pipeline] RECOVERED")


def test_an_alert_the_webhook_refused_is_sent_at_the_next_evaluation(
    pipeline: Pipeline, hook: Hook, resources: dict[str, Any]
) -> None:
    pipeline.query_commit(
        "INSERT INTO og.webhook_events (event_id, event_type, status, body) "
        "VALUES ('bad-2', 'x', 'invalid', '{}')"
    )
    hook.status = 500  # Slack down: after its retries the message is not marked as said
    assert "not delivered" in _conditions(pipeline, resources)
    hook.status = 200
    _conditions(pipeline, resources)
    assert len(hook.texts) == 1 and "0 failed and 1 invalid" in hook.texts[0]


def test_a_share_of_refused_contacts_above_the_limit_alerts(
    pipeline: Pipeline, hook: Hook, resources: dict[str, Any]
) -> None:
    pipeline.query_commit(
        "INSERT INTO og.contact_stats (customer_id, email, active_subscriptions, "
        "total_subscriptions, status, fields_hash) VALUES ('c1', 'x', 1, 1, 'active', 'h1')"
    )
    pipeline.query_commit(
        "INSERT INTO og.ometria_contacts (customer_id, contact_id, rejected_hash) "
        "VALUES ('c1', 'og-c1', 'h1')"
    )
    _conditions(pipeline, resources)
    assert len(hook.texts) == 1 and "Ometria refused 100.0% of contacts" in hook.texts[0]


@pytest.mark.parametrize("merchant_spec", [{"bad_record_share": 0.05}], indirect=True)
def test_a_blocking_check_failure_alerts_with_its_run(
    pipeline: Pipeline, hook: Hook, resources: dict[str, Any]
) -> None:
    blocked = pipeline.sync(START, NOW)
    assert not blocked.success
    _conditions(pipeline, resources)
    (text,) = [t for t in hook.texts if "records_readable" in t]
    assert "FAILING: blocking check records_readable on ordergroove_raw_records failed" in text
    assert f"{UI}/runs/{blocked.run_id}" in text
