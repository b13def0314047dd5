"""A Retry-After that cannot be read, or that asks for hours, never stalls a client: the first
falls back to the backoff, the second is capped (the API's pool slot is held while waiting).

Real HTTP servers on 127.0.0.1 answer a scripted sequence: a 429 with the header, then success.
A wait that was not capped would outlast the test's timeout instead of passing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from og_pipeline.ometria.client import OmetriaClient
from og_pipeline.ordergroove.client import OrdergrooveClient

FAST = {"backoff_factor": 0.01, "backoff_max": 0.05, "backoff_jitter": 0.01}


class Scripted(ThreadingHTTPServer):
    """Answers each request with the next (status, Retry-After) of ``script``, then 200s."""

    daemon_threads = True

    def __init__(self, script: list[tuple[int, str]], body: object) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = list(script)
        self.body = json.dumps(body).encode()
        self.requests = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Scripted

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        with self.server.lock:
            self.server.requests += 1
            step = self.server.script.pop(0) if self.server.script else None
        if step is None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(self.server.body)))
            self.end_headers()
            self.wfile.write(self.server.body)
            return
        status, retry_after = step
        self.send_response(status)
        self.send_header("Retry-After", retry_after)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[list[Scripted]]:
    servers: list[Scripted] = []
    yield servers
    for server in servers:
        server.shutdown()
        server.server_close()


def _start(servers: list[Scripted], script: list[tuple[int, str]], body: object) -> Scripted:
    server = Scripted(script, body)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    servers.append(server)
    return server


@pytest.mark.timeout(60)
@pytest.mark.parametrize("retry_after", ["soon", "86400", "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_ordergroove_retries_through_an_unreadable_or_huge_retry_after(
    serve: list[Scripted], retry_after: str
) -> None:
    server = _start(
        serve, [(429, retry_after)], {"next": None, "previous": None, "results": [{"id": 1}]}
    )
    with OrdergrooveClient(server.url, "key", max_retry_after=1, **FAST) as client:
        assert list(client.iter_pages("subscriptions")) == [[{"id": 1}]]
        assert client.stats.retries == 1
    assert server.requests == 2


@pytest.mark.timeout(60)
@pytest.mark.parametrize("retry_after", ["soon", "86400"])
def test_ometria_retries_through_an_unreadable_or_huge_retry_after(
    serve: list[Scripted], retry_after: str
) -> None:
    server = _start(
        serve, [(429, retry_after)], {"status": "OK", "accepted": 1, "request_id": "r1"}
    )
    with OmetriaClient(server.url, "key", max_retry_after=1, **FAST) as client:
        result = client.push([{"@type": "contact", "id": "og-1", "email": "a@example.com"}])
        assert (result.accepted, client.stats.retries) == (1, 1)
    assert server.requests == 2
