"""The API pools exist before any run claims them, however many processes make sure at once.

Dagster 1.13 creates a pool's row on the first claim and fails one of two runs that make that
first claim at the same moment; og-pipeline creates the rows up front (og_pipeline.pools)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dagster as dg
import pytest

from og_pipeline.db.connection import ensure_database
from og_pipeline.db.urls import for_dagster, with_database
from og_pipeline.pools import POOLS, ensure_pools


@pytest.fixture
def fresh_dagster_url(pg_server_url: str) -> str:
    name = "og_test_pools_" + uuid.uuid4().hex[:10]
    ensure_database(pg_server_url, name)
    return for_dagster(with_database(pg_server_url, name))


def _instance(url: str) -> Any:
    return dg.instance_for_test(
        overrides={
            "storage": {"postgres": {"postgres_url": url}},
            "concurrency": {"pools": {"default_limit": 1}},
        }
    )


@pytest.fixture
def instances(fresh_dagster_url: str) -> Iterator[list[Any]]:
    with (
        _instance(fresh_dagster_url) as first,
        _instance(fresh_dagster_url) as second,
        _instance(fresh_dagster_url) as third,
        _instance(fresh_dagster_url) as fourth,
    ):
        yield [first, second, third, fourth]


def test_concurrent_callers_all_succeed_and_each_pool_gets_the_default_limit(
    instances: list[Any],
) -> None:
    with ThreadPoolExecutor(max_workers=len(instances)) as pool:
        list(pool.map(ensure_pools, instances))  # raises if any caller failed
    storage = instances[0].event_log_storage
    assert set(POOLS) <= storage.get_concurrency_keys()
    assert [storage.get_concurrency_info(p).slot_count for p in POOLS] == [1, 1]
    ensure_pools(instances[0])  # and again, when they exist: nothing to do
