"""What both API clients share: failure types, run counters, and redaction for messages.

No Dagster and no API specifics here; each client subclasses these for its own names.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Self

import requests
from requests.adapters import HTTPAdapter

_EMAIL_RE = re.compile(r"[^\s\"'<>@,;:]+@[^\s\"'<>@,;:]+\.[A-Za-z]{2,}")


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
            return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


def redact(text: str, *secrets: str) -> str:
    """Drop secrets and e-mail addresses from text that may end up in a log or an exception."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _EMAIL_RE.sub("[email]", text)


class SessionClient:
    """A client on one ``requests.Session``: its adapter on both schemes, its headers, and
    ``close()`` / ``with`` to release the connections."""

    _session: requests.Session

    def _open_session(self, session: requests.Session | None, adapter: HTTPAdapter,
                      headers: Mapping[str, str]) -> None:
        self._session = session or requests.Session()
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update(headers)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
