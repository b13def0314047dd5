"""Fixtures for the client tests: one sandbox (real HTTP on a free port) per test module, with its
faults and its Ometria state cleared before each test, so nothing leaks into the next test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from og_pipeline.sandbox import MerchantSpec, SandboxServer

OG_KEY = "sandbox-og-key"
OG_LIMITED_KEY = "sandbox-og-limited-key"
OMETRIA_KEY = "sandbox-ometria-key"
SPEC = MerchantSpec(
    subscriptions=500,
    seed=7,
    start=datetime(2026, 11, 1, tzinfo=UTC),
    now=datetime(2026, 11, 8, tzinfo=UTC),
)


@pytest.fixture(scope="module")
def sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer(SPEC, port=0) as sb:
        yield sb


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> Iterator[SandboxServer]:
    sandbox_server.clear_faults()
    sandbox_server.ometria.reset()
    yield sandbox_server
    sandbox_server.clear_faults()
