"""The receiver under hostile or broken clients: a request without a signature header is refused
before its body is read, a body that never finishes is cut off, and slow clients holding
requests open cannot take every slot for good. Raw sockets play the clients; every wait is a
poll or a read with a deadline."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from urllib.parse import urlsplit

import pytest
import requests

from og_pipeline.sandbox import signature_header
from og_pipeline_tests.webhooks.conftest import KEY, Receiver

DEADLINE = 20.0


def _open(receiver: Receiver, headers: dict[str, str], body_part: bytes = b"") -> socket.socket:
    """A POST whose headers promise 1,000 bytes of body, of which only ``body_part`` is sent."""
    url = urlsplit(receiver.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=DEADLINE)
    lines = [
        f"POST {url.path} HTTP/1.1",
        f"Host: {url.netloc}",
        "Content-Type: application/json",
        "Content-Length: 1000",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body_part)
    return sock


def _status(sock: socket.socket) -> int:
    """The status of the answer, read within the deadline (socket.timeout fails the test)."""
    first = sock.recv(4096).split(b"\r\n", 1)[0]
    return int(first.split()[1])


@pytest.fixture
def sockets() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def _signed(event_id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {"id": event_id, "type": "subscription.create", "created": 1, "data": {}}
    ).encode()
    return body, {"OrderGroove-Signature": signature_header(body, [KEY], int(time.time()))}


def test_no_signature_header_is_refused_before_the_body_arrives(
    start_receiver: Callable[..., Receiver], sockets: ExitStack
) -> None:
    # The body would take a minute to be cut off: the answer comes from the header alone.
    receiver = start_receiver(body_timeout=60)
    for headers in ({}, {"OrderGroove-Signature": "ts=oops"}):
        sock = sockets.enter_context(_open(receiver, headers))
        assert _status(sock) == 401


def test_a_body_that_never_finishes_is_cut_off_and_nothing_is_stored(
    start_receiver: Callable[..., Receiver], sockets: ExitStack, staged_rows: Callable[..., list]
) -> None:
    receiver = start_receiver(body_timeout=1)
    body, headers = _signed("slow-1")
    sock = sockets.enter_context(_open(receiver, headers, body[:10]))
    assert _status(sock) == 408
    assert staged_rows() == []


def test_slow_clients_cannot_hold_every_slot(
    start_receiver: Callable[..., Receiver], sockets: ExitStack, staged_rows: Callable[..., list]
) -> None:
    receiver = start_receiver(max_in_flight=2, body_timeout=3)
    _, headers = _signed("held")
    slow = [sockets.enter_context(_open(receiver, headers, b"{")) for _ in range(2)]

    # While the two slow requests hold both slots, others are refused at once, with a 503 that
    # Ordergroove retries; none is stored.
    deadline, refused = time.monotonic() + DEADLINE, False
    while not refused and time.monotonic() < deadline:
        body, signed = _signed(f"try-{time.monotonic_ns()}")
        answer = requests.post(receiver.url, data=body, headers=signed, timeout=DEADLINE)
        refused = answer.status_code == 503
    assert refused, "a third request was never refused while two held their slots"

    # The slow clients are cut off by the body timeout, and their slots serve again.
    assert [_status(sock) for sock in slow] == [408, 408]
    body, signed = _signed("after")
    assert (
        requests.post(receiver.url, data=body, headers=signed, timeout=DEADLINE).status_code == 200
    )
    assert "after" in {row["event_id"] for row in staged_rows()}
