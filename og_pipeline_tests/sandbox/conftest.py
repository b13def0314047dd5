"""Fixtures: small seeded merchants served over real HTTP on 127.0.0.1.

`sandbox` is shared by read-only tests; tests that mutate state or depend on rate-limit windows
get their own `fresh_sandbox` so they cannot disturb each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from og_pipeline.sandbox import MerchantSpec, SandboxServer

START = datetime(2026, 11, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 8, tzinfo=UTC)
OG_KEY = "sandbox-og-key"
V2 = {"x-api-key": OG_KEY, "X-OG-API-VERSION": "2"}


def small_spec(subscriptions: int = 600, seed: int = 7) -> MerchantSpec:
    return MerchantSpec(subscriptions=subscriptions, seed=seed, start=START, now=NOW)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(small_spec(), port=0) as sb:
        yield sb


@pytest.fixture
def fresh_sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(small_spec(300, seed=11), port=0) as sb:
        yield sb


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A session per test: the sandbox closes a connection idle for 5 s (uvicorn's keep-alive),
    as real servers do, and a session kept across tests would reuse one it is closing at that
    moment (CI met 'Connection reset by peer' that way); this bare client has no retries."""
    with requests.Session() as session:
        yield session


def walk(
    session: requests.Session, url: str, params: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Follows `next` until null; returns every record and the number of pages."""
    records: list[dict[str, Any]] = []
    pages = 0
    next_url: str | None = url
    first = True
    while next_url:
        response = session.get(next_url, headers=V2, params=params if first else None)
        first = False
        assert response.status_code == 200, response.text
        body = response.json()
        assert "count" not in body
        records.extend(body["results"])
        pages += 1
        next_url = body["next"]
        assert pages < 10_000, "cursor walk does not terminate"
    return records, pages
