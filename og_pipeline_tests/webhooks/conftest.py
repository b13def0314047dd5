"""Fixtures for the webhook receiver: the real app served by uvicorn on 127.0.0.1, a sandbox
merchant whose WebhookSender signs the deliveries, and a helper to read the staging table.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import uvicorn

from og_pipeline.db.connection import connect
from og_pipeline.sandbox import Merchant, MerchantSpec, WebhookSender
from og_pipeline.webhooks.receiver import HEALTH_PATH, WEBHOOK_PATH, create_app

KEY = "test-webhook-key"


@dataclass
class Receiver:
    base_url: str
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def url(self) -> str:
        return self.base_url + WEBHOOK_PATH

    @property
    def health_url(self) -> str:
        return self.base_url + HEALTH_PATH


def _serve(app: Any, timeout: float = 30.0) -> tuple[Receiver, socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="on", access_log=False, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    receiver = Receiver(f"http://127.0.0.1:{port}", server, thread)
    # Poll until the server answers at all (200 or 503: the database is not the point here).
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(receiver.health_url, timeout=5)
            return receiver, sock
        except requests.ConnectionError:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the receiver did not start") from None
            threading.Event().wait(0.02)  # between polls only; readiness is the answer above


@pytest.fixture
def start_receiver(db_url: str) -> Iterator[Callable[..., Receiver]]:
    """``start_receiver(keys=..., max_body_bytes=..., ...)``: the app on a random port."""
    running: list[tuple[Receiver, socket.socket]] = []

    def start(
        keys: Sequence[str] = (KEY,),
        *,
        database_url: str | None = None,
        max_body_bytes: int = 1024 * 1024,
        max_age_seconds: int | None = None,
        **options: Any,
    ) -> Receiver:
        app = create_app(
            database_url or db_url,
            list(keys),
            max_body_bytes=max_body_bytes,
            max_age_seconds=max_age_seconds,
            **options,
        )
        pair = _serve(app)
        running.append(pair)
        return pair[0]

    yield start
    for receiver, sock in running:
        receiver.server.should_exit = True
        receiver.thread.join(timeout=15)
        sock.close()


@pytest.fixture
def receiver(start_receiver: Callable[..., Receiver]) -> Receiver:
    return start_receiver()


@pytest.fixture(scope="session")
def merchant() -> Merchant:
    spec = MerchantSpec(
        subscriptions=120,
        seed=5,
        start=datetime(2026, 11, 1, tzinfo=UTC),
        now=datetime(2026, 11, 8, tzinfo=UTC),
    )
    return Merchant(spec)


@pytest.fixture
def sender(merchant: Merchant, receiver: Receiver) -> Iterator[WebhookSender]:
    with requests.Session() as session:
        yield WebhookSender(merchant, receiver.url, [KEY], seed=1, session=session)


@pytest.fixture
def staged_rows(db_url: str) -> Callable[..., list[dict[str, Any]]]:
    """The staging table's rows, in arrival order (optionally of another database)."""

    def read(url: str | None = None) -> list[dict[str, Any]]:
        with connect(url or db_url) as conn:
            cur = conn.execute(
                "SELECT seq, event_id, event_type, og_created_at, status, last_error, body, payload"
                " FROM og.webhook_events ORDER BY seq"
            )
            names = [column.name for column in cur.description or []]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    return read
