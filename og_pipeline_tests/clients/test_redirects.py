"""Neither client lets its API key leave the configured origin through a redirect.

requests follows redirects by itself and keeps custom headers (``x-api-key``,
``X-Ometria-Auth``) on the way to another host; only ``Authorization`` is stripped. These tests
run both clients against real HTTP servers on 127.0.0.1: server A answers a redirect to another
origin (server B on another port, another host name, another scheme), and B records every
request it gets. The call must fail with the client's own error before anything reaches B;
same-origin redirects must still work.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from og_pipeline.ometria.client import OmetriaAPIError, OmetriaClient
from og_pipeline.ordergroove.client import OrdergrooveAPIError, OrdergrooveClient

OG_KEY = "og-key-that-must-stay-home"
OMETRIA_KEY = "ometria-key-that-must-stay-home"
REDIRECTS = [301, 302, 303, 307, 308]
FAST = {"backoff_factor": 0.01, "backoff_max": 0.05, "backoff_jitter": 0.01}


@dataclass(frozen=True)
class Seen:
    method: str
    target: str  # path and query as sent
    headers: dict[str, str]  # lower-cased names
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def json_answer(payload: object) -> Answer:
    return Answer(200, {"Content-Type": "application/json"}, json.dumps(payload).encode())


def redirect(status: int, location: str) -> Answer:
    return Answer(status, {"Location": location})


class Recorder(ThreadingHTTPServer):
    """A real HTTP server on 127.0.0.1 that records each request before answering it from
    ``routes`` (by path; 404 otherwise). Recording comes first, so once a client call has
    returned or raised, every request it sent is already in ``seen``."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Answer] = {}
        self._seen: list[Seen] = []
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def seen(self) -> list[Seen]:
        with self._lock:
            return list(self._seen)

    def record(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()
        self.routes.clear()


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.record(Seen(self.command, self.path, headers, body))
        answer = self.server.routes.get(urlsplit(self.path).path, Answer(404))
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Recorder, Recorder]]:
    pair = (Recorder(), Recorder())
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in pair]
    for thread in threads:
        thread.start()
    yield pair
    for server, thread in zip(pair, threads, strict=True):
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def a(servers: tuple[Recorder, Recorder]) -> Recorder:
    """The configured API host: its routes say how it answers."""
    servers[0].reset()
    return servers[0]


@pytest.fixture
def b(servers: tuple[Recorder, Recorder]) -> Recorder:
    """Another origin (same host, other port): it must never hear from either client."""
    servers[1].reset()
    return servers[1]


def og_client(a: Recorder, **kwargs: Any) -> OrdergrooveClient:
    return OrdergrooveClient(a.origin + "/v1", OG_KEY, **FAST, **kwargs)


def ometria_client(a: Recorder, **kwargs: Any) -> OmetriaClient:
    return OmetriaClient(a.origin, OMETRIA_KEY, requests_per_second=100, **FAST, **kwargs)


CONTACT = {"@type": "contact", "id": "og-1", "customer_id": "1"}
PUSH_OK = json_answer({"status": "OK", "accepted": 1, "rejected": 0, "request_id": "r-1"})


def assert_refused(
    message: str, *, method: str, path: str, status: int, other: str, key: str
) -> None:
    """The message says what happened and where, and gives away neither key nor query."""
    assert f"{method} {path} answered {status}" in message
    assert f"another origin ({other})" in message
    assert "key was not sent" in message
    assert key not in message
    assert "?" not in message and "cursor" not in message and "page_size" not in message


# Where the redirect points, given A and B: (Location, the origin the message must name).
Target = Callable[[Recorder, Recorder], tuple[str, str]]
TARGETS: dict[str, Target] = {
    "other-port": lambda a, b: (
        f"{b.origin}/v1/elsewhere/?cursor=c-123",
        f"http://127.0.0.1:{b.port}",
    ),
    "scheme-relative": lambda a, b: (
        f"//127.0.0.1:{b.port}/v1/elsewhere/?cursor=c-123",
        f"http://127.0.0.1:{b.port}",
    ),
    # Same socket as A, other host name: an origin is its name, not where it resolves.
    "other-host": lambda a, b: (
        f"http://localhost:{a.port}/v1/elsewhere/?cursor=c-123",
        f"http://localhost:{a.port}",
    ),
    "other-scheme": lambda a, b: (
        f"https://127.0.0.1:{a.port}/v1/elsewhere/?cursor=c-123",
        f"https://127.0.0.1:{a.port}",
    ),
}


# -- Ordergroove --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", REDIRECTS)
def test_ordergroove_refuses_a_redirect_to_another_port_and_b_hears_nothing(
    a: Recorder, b: Recorder, status: int
) -> None:
    location, other = TARGETS["other-port"](a, b)
    a.routes["/v1/subscriptions/"] = redirect(status, location)
    with og_client(a) as client, pytest.raises(OrdergrooveAPIError) as caught:
        next(client.iter_pages("subscriptions", {"updated_start": "2026-11-01T00:00:00"}))
    assert_refused(
        str(caught.value),
        method="GET",
        path="/v1/subscriptions/",
        status=status,
        other=other,
        key=OG_KEY,
    )
    assert caught.value.status == status and caught.value.path == "/v1/subscriptions/"
    assert b.seen == []
    assert len(a.seen) == 1  # not retried: the same redirect would come back


@pytest.mark.parametrize("target", ["scheme-relative", "other-host", "other-scheme"])
def test_ordergroove_refuses_every_kind_of_other_origin(
    a: Recorder, b: Recorder, target: str
) -> None:
    location, other = TARGETS[target](a, b)
    a.routes["/v1/subscriptions/"] = redirect(307, location)
    with og_client(a) as client, pytest.raises(OrdergrooveAPIError) as caught:
        next(client.iter_pages("subscriptions"))
    assert_refused(
        str(caught.value),
        method="GET",
        path="/v1/subscriptions/",
        status=307,
        other=other,
        key=OG_KEY,
    )
    assert b.seen == []
    assert [s.target for s in a.seen] == ["/v1/subscriptions/?page_size=100"]


def test_ordergroove_refuses_a_cross_origin_hop_after_a_same_origin_one(
    a: Recorder, b: Recorder
) -> None:
    a.routes["/v1/subscriptions/"] = redirect(307, "/v1/hop/")
    a.routes["/v1/hop/"] = redirect(302, f"{b.origin}/v1/subscriptions/")
    with og_client(a) as client, pytest.raises(OrdergrooveAPIError) as caught:
        next(client.iter_pages("subscriptions"))
    assert_refused(
        str(caught.value), method="GET", path="/v1/hop/", status=302, other=b.origin, key=OG_KEY
    )
    assert b.seen == []
    assert [urlsplit(s.target).path for s in a.seen] == ["/v1/subscriptions/", "/v1/hop/"]


def test_ordergroove_protects_a_session_the_caller_passed_in(a: Recorder, b: Recorder) -> None:
    a.routes["/v1/customers/c-1/"] = redirect(307, f"{b.origin}/v1/customers/c-1/")
    session = requests.Session()
    with (
        og_client(a, session=session) as client,
        pytest.raises(OrdergrooveAPIError, match="key was not sent"),
    ):
        client.get_customer("c-1")
    assert b.seen == []


@pytest.mark.parametrize("relative", [True, False], ids=["relative", "absolute"])
def test_ordergroove_follows_a_same_origin_redirect(
    a: Recorder, b: Recorder, relative: bool
) -> None:
    moved = "/v1/moved/subscriptions/?page_size=100"
    a.routes["/v1/subscriptions/"] = redirect(307, moved if relative else a.origin + moved)
    a.routes["/v1/moved/subscriptions/"] = json_answer({"results": [{"id": 1}], "next": None})
    with og_client(a) as client:
        assert list(client.iter_pages("subscriptions")) == [[{"id": 1}]]
    assert [s.target for s in a.seen] == ["/v1/subscriptions/?page_size=100", moved]
    assert a.seen[1].headers["x-api-key"] == OG_KEY  # same origin: the key may go
    assert b.seen == []


def test_ordergroove_refuses_a_next_url_on_another_origin(a: Recorder, b: Recorder) -> None:
    a.routes["/v1/subscriptions/"] = json_answer(
        {"results": [{"id": 1}], "next": f"{b.origin}/v1/subscriptions/?cursor=c-2"}
    )
    with og_client(a) as client:
        pages = client.iter_pages("subscriptions")
        assert next(pages) == [{"id": 1}]
        with pytest.raises(OrdergrooveAPIError, match="refusing to send the API key") as caught:
            next(pages)
    assert OG_KEY not in str(caught.value)
    assert b.seen == []


# -- Ometria ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", REDIRECTS)
def test_ometria_refuses_a_redirect_to_another_port_and_b_hears_nothing(
    a: Recorder, b: Recorder, status: int
) -> None:
    location, other = TARGETS["other-port"](a, b)
    a.routes["/v2/push"] = redirect(status, location)
    with ometria_client(a) as client, pytest.raises(OmetriaAPIError) as caught:
        client.push([CONTACT])
    assert_refused(
        str(caught.value),
        method="POST",
        path="/v2/push",
        status=status,
        other=other,
        key=OMETRIA_KEY,
    )
    assert caught.value.status == status and caught.value.path == "/v2/push"
    assert b.seen == []
    assert len(a.seen) == 1  # not retried
    assert client.stats.retries == 0


@pytest.mark.parametrize("target", ["scheme-relative", "other-host", "other-scheme"])
def test_ometria_refuses_every_kind_of_other_origin(a: Recorder, b: Recorder, target: str) -> None:
    location, other = TARGETS[target](a, b)
    a.routes["/v2/push/_errors"] = redirect(307, location)
    with ometria_client(a) as client, pytest.raises(OmetriaAPIError) as caught:
        client.errors()
    assert_refused(
        str(caught.value),
        method="GET",
        path="/v2/push/_errors",
        status=307,
        other=other,
        key=OMETRIA_KEY,
    )
    assert b.seen == []
    assert [s.target for s in a.seen] == ["/v2/push/_errors"]


def test_ometria_protects_a_session_the_caller_passed_in(a: Recorder, b: Recorder) -> None:
    a.routes["/v2/push"] = redirect(308, f"{b.origin}/v2/push")
    session = requests.Session()
    with (
        ometria_client(a, session=session) as client,
        pytest.raises(OmetriaAPIError, match="key was not sent"),
    ):
        client.push([CONTACT])
    assert b.seen == []


def test_ometria_follows_a_same_origin_307_with_the_same_body(a: Recorder, b: Recorder) -> None:
    a.routes["/v2/push"] = redirect(307, "/v2/push-moved")
    a.routes["/v2/push-moved"] = PUSH_OK
    with ometria_client(a) as client:
        result = client.push([CONTACT])
    assert (result.accepted, result.rejected, result.request_id) == (1, 0, "r-1")
    first, moved = a.seen
    assert (moved.method, moved.target) == ("POST", "/v2/push-moved")
    assert moved.body == first.body and json.loads(moved.body) == [CONTACT]
    assert moved.headers["x-ometria-auth"] == OMETRIA_KEY  # same origin: the key may go
    assert b.seen == []
