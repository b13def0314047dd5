"""Fixtures of the foundation tests: a Dagster database of a test's own (so the pool slots a test
holds or frees cannot reach another test), and an instance on it with the pools' default limit."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest

from og_pipeline.db.connection import ensure_database
from og_pipeline.db.urls import for_dagster, with_database
from og_pipeline_tests.conftest import drop_database


@pytest.fixture
def dagster_url(pg_server_url: str) -> Iterator[str]:
    """A Dagster database of this test's own (no tables until an instance opens it)."""
    name = "og_test_dagster_" + uuid.uuid4().hex[:10]
    ensure_database(pg_server_url, name)
    yield for_dagster(with_database(pg_server_url, name))
    drop_database(pg_server_url, name)


@pytest.fixture
def instance(dagster_url: str) -> Iterator[Any]:
    """Dagster's tables in the test's database (created on opening), and no pools yet."""
    with dg.instance_for_test(
        overrides={
            "storage": {"postgres": {"postgres_url": dagster_url}},
            "concurrency": {"pools": {"default_limit": 1}},
        }
    ) as inst:
        yield inst
