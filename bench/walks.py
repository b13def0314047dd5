"""The floor: bare cursor walks over a sync's window, in the benchmark's process, no database."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from common import OG_KEY, OVERLAP, PAGE_SIZE

from og_pipeline.http_common import RateLimiter
from og_pipeline.ordergroove.client import OrdergrooveClient


@dataclass
class Walk:
    """Walks one after another: their seconds, and seconds, records, pages, requests and
    retries per object type."""

    seconds: float = 0.0
    resources: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return int(sum(r["records"] for r in self.resources.values()))


def walk_window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The window a sync walks for the range (``sync_window``): overlap before, -1 s at end."""
    return start - OVERLAP, end - timedelta(seconds=1)


def bare_walk(
    api_url: str,
    resources: Iterable[str],
    start: datetime,
    end: datetime,
    requests_per_minute: float | None = None,
) -> Walk:
    """The cursor walks of a sync over the range [start, end), one after another, with nothing
    done to the pages; under the sync's request limiter if ``requests_per_minute`` is given."""
    since, until = walk_window(start, end)
    limiter = RateLimiter(requests_per_minute / 60) if requests_per_minute else None
    walk = Walk()
    with OrdergrooveClient(api_url, OG_KEY, page_size=PAGE_SIZE, limiter=limiter) as client:
        stats = client.stats
        began = time.perf_counter()
        for resource in resources:
            before = (stats.records, stats.pages, stats.requests, stats.retries)
            at = time.perf_counter()
            for _ in client.iter_updated(resource, since, until):
                pass
            walk.resources[resource] = {
                "seconds": time.perf_counter() - at,
                "records": stats.records - before[0],
                "pages": stats.pages - before[1],
                "requests": stats.requests - before[2],
                "retries": stats.retries - before[3],
            }
        walk.seconds = time.perf_counter() - began
    return walk
