"""What both API clients share: failure types, run counters, redaction for messages, and the
session that never follows a redirect to another origin (the API key would go along).

No Dagster and no API specifics here; each client subclasses these for its own names.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Self
from urllib.parse import urljoin, urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from requests.utils import requote_uri
from urllib3.exceptions import InvalidHeader
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

# A run of 19 digits may be an integer beyond 64 bits, which orjson reads as a float.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_EMAIL_RE = re.compile(r"[^\s\"'<>@,;:]+@[^\s\"'<>@,;:]+\.[A-Za-z]{2,}")
_DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int | None]


def json_body(response: requests.Response) -> Any:
    """``response.json()``, with orjson where it reads the body exactly as ``json`` does.

    A long walk decodes hundreds of MB of pages, and the standard library's decoder is then a
    large share of the sync's own CPU. orjson refuses what ``json`` accepts beyond strict JSON
    (NaN, Infinity, 1e400, lone surrogates, a byte-order mark) and reads integers beyond 64 bits
    as floats; those bodies go to ``response.json()``, which raises ``ValueError`` as before,
    and so do bodies declared in another charset than UTF-8, which orjson cannot read.
    """
    body = response.content
    charset = (response.encoding or "utf-8").lower().replace("-", "")
    if charset == "utf8" and not _LONG_DIGITS.search(body):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return response.json()


class APIError(Exception):
    """A request failed for good: a non-retryable status, or retries exhausted."""

    def __init__(self, message: str, *, status: int | None = None, path: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.path = path


@dataclass
class Counters:
    """Thread-safe counters for a run's metadata; subclasses declare the int fields."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            # Not asdict(): it would try to deep-copy the lock.
            return {
                f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")
            }


def redact(text: str, *secrets: str) -> str:
    """Drop secrets and e-mail addresses from text that may end up in a log or an exception."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _EMAIL_RE.sub("[email]", text)


# The longest a Retry-After may make a client wait: the API's pool slot is held meanwhile.
DEFAULT_MAX_RETRY_AFTER = 60


class BoundedRetry(Retry):
    """urllib3's ``Retry``, reading ``Retry-After`` defensively: an unparsable value falls back
    to the exponential backoff (urllib3 would raise ``InvalidHeader`` out of the sleep), and a
    long one is capped by ``retry_after_max``."""

    def get_retry_after(self, response: BaseHTTPResponse) -> float | None:
        try:
            return super().get_retry_after(response)
        except InvalidHeader:
            return None


def origin_of(url: str) -> Origin:
    """``(scheme, host, port)`` with the scheme's default port filled in, so that
    ``https://h`` and ``https://h:443`` are one origin; raises ValueError on a bad port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, parts.hostname or "", parts.port or _DEFAULT_PORTS.get(scheme)


def format_origin(origin: Origin) -> str:
    scheme, host, port = origin
    host = f"[{host}]" if ":" in host else host  # IPv6 literal
    return f"{scheme}://{host}:{port}" if port is not None else f"{scheme}://{host}"


def redirect_target(session: requests.Session, response: requests.Response) -> str | None:
    """The URL requests would request next for this response, or None if it is no redirect.

    Computed as ``Session.resolve_redirects`` computes it (the session's own
    ``get_redirect_target``, then scheme-relative and relative ``Location`` values resolved
    against the response's URL), so the origin checked is the origin requests would connect to.
    """
    location = session.get_redirect_target(response)
    if not location:
        return None
    if location.startswith("//"):
        location = f"{urlsplit(response.url).scheme}:{location}"
    if not urlsplit(location).netloc:
        return urljoin(response.url, requote_uri(location))
    return requote_uri(location)


class SessionClient:
    """A client on one ``requests.Session``: its adapter on both schemes, its headers, and
    ``close()`` / ``with`` to release the connections.

    The session's headers carry the API key to every request, and requests keeps custom
    headers on a redirect to another host (it strips only ``Authorization``). So the session
    also gets a ``response`` hook that refuses any redirect leaving the request's origin: a
    session hook runs on every response, each redirect hop included, before requests follows
    it, and it reaches a session the caller passed in too, which a ``Session`` subclass would
    not. Same-origin redirects are still followed.
    """

    _session: requests.Session

    def _open_session(
        self,
        session: requests.Session | None,
        adapter: HTTPAdapter,
        headers: Mapping[str, str],
        *,
        error: type[APIError],
        secret: str,
    ) -> None:
        self._session = session or requests.Session()
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update(headers)
        self._redirect_error = error
        self._redirect_secret = secret
        self._session.hooks.setdefault("response", []).append(self._refuse_cross_origin_redirect)

    def _refuse_cross_origin_redirect(self, response: requests.Response, **_: Any) -> None:
        """Raise the client's own error before requests follows a redirect to another origin.

        The error is not a ``requests.RequestException``, so neither client's retry handling
        catches it: another attempt would meet the same redirect.
        """
        target = redirect_target(self._session, response)
        if target is None:
            return
        request_url = response.request.url or response.url
        method = response.request.method or "GET"
        # Only the path: a query string may hold a cursor, and the key never goes in a message.
        path = urlsplit(request_url).path or "/"
        try:
            target_origin = origin_of(target)
        except ValueError:
            where = "a Location requests cannot parse"
        else:
            if target_origin == origin_of(request_url):
                return
            where = format_origin(target_origin)
        response.close()  # nothing will read this body; let the connection go
        raise self._redirect_error(
            redact(
                f"{method} {path} answered {response.status_code}, a redirect to another "
                f"origin ({where}); refused to follow it, so the API key was not sent there",
                self._redirect_secret,
            ),
            status=response.status_code,
            path=path,
        )

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class RateLimiter:
    """Sliding-window limiter: at most ``capacity`` acquisitions in any ``window`` seconds.

    A token bucket would allow a refill-boundary burst that a server counting per 1-s window
    sees as over the limit; a log of the last ``capacity`` start times cannot. Each caller
    reserves the earliest free slot under the lock and sleeps outside it, so threads queue in
    order and nobody holds the lock while waiting. ``margin`` pads the window so that network
    jitter between our clock and the server's arrival times cannot squeeze two windows' worth
    of requests into one of the server's.
    """

    def __init__(
        self,
        requests_per_second: float,
        *,
        margin: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        if requests_per_second >= 1:
            # "8/s" means no 1-s window holds more than 8; a fractional rate rounds down.
            self.capacity, window = int(requests_per_second), 1.0
        else:
            self.capacity, window = 1, 1.0 / requests_per_second
        self.window = window + margin
        self._clock = clock
        self._sleep = sleep
        # One-element lists, so that a caller can move its own entry to when it really woke.
        self._starts: deque[list[float]] = deque(maxlen=self.capacity)
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until a request may start; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            slot = now
            if len(self._starts) == self.capacity:
                slot = max(now, self._starts[0][0] + self.window)
            entry = [slot]
            self._starts.append(entry)  # evicts the oldest: it is now outside the window
        wait = slot - now
        if wait > 0:
            self._sleep(wait)
            # A thread woken late (a busy machine, the GIL) starts late: later slots count
            # from that, or the margin would be spent on our own scheduling.
            with self._lock:
                entry[0] = max(slot, self._clock())
        return wait
