"""Webhooks end to end: signed deliveries -> `og-pipeline webhooks serve` -> staging -> the
processing job -> Ometria custom events and contact fields, converging to Ordergroove's state."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from og_pipeline.sandbox import WebhookSender
from og_pipeline_tests.pipeline.conftest import NOW, START, Pipeline, expected_fields

ROOT = Path(__file__).resolve().parents[2]
KEY = "e2e-webhook-key"


@pytest.fixture
def receiver_url(pipeline: Pipeline) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "OG_DATABASE_URL": pipeline.db_url,
        "ORDERGROOVE_WEBHOOK_KEY": f"old-key,{KEY}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "og_pipeline", "webhooks", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:  # ready when it answers; polling readiness, not sleeping for it
        try:
            if requests.get(base + "/healthz", timeout=5).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, "the receiver did not start"
        threading.Event().wait(0.1)
    yield base + "/webhooks/ordergroove"
    proc.terminate()
    proc.wait(timeout=30)


def test_a_stream_of_live_changes_reaches_ometria_once_each(
    pipeline: Pipeline, receiver_url: str
) -> None:
    assert pipeline.sync(START, NOW).success  # the REST state first, as in production
    merchant = pipeline.sandbox.merchant
    sender = WebhookSender(merchant, receiver_url, [KEY], seed=21)
    sent = sender.stream(40)
    assert all(getattr(response, "status_code", None) == 200 for _, response in sent)
    # Ordergroove retries: deliver a few again; they must not count twice.
    for envelope, _ in sent[:5]:
        assert sender.send(envelope).status_code == 200

    result = pipeline.process_webhooks()
    assert result.success

    ometria = pipeline.sandbox.ometria.snapshot()
    mapped = {
        f"og-{e['id']}"
        for e, _ in sent
        if e["type"] in ("subscription.create", "subscription.cancel", "order.reminder")
    }
    assert set(ometria["events"]) == mapped
    assert set(ometria["event_push_counts"].values()) == {1}
    truth = merchant.ground_truth()
    touched = {e["data"]["object"].get("customer") for e, _ in sent}
    for customer in touched:
        if truth[customer]["email"]:
            assert ometria["contacts"][f"og-{customer}"]["properties"] == expected_fields(
                truth[customer]
            )
    assert pipeline.query("SELECT status, count(*) FROM og.webhook_events GROUP BY status") == [
        ("processed", 40)
    ]
