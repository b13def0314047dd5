"""The walks of a sync: the four object types at once, never two cursors over one type (the
sandbox counts any, as Ordergroove's docs forbid them), all under one request limiter; a slow
page halves the rest of its walk's windows; a long sync that dies resumes each walk where it was.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from og_pipeline.http_common import RateLimiter
from og_pipeline.ordergroove.client import OrdergrooveClient
from og_pipeline.ordergroove.load import UpsertCounts
from og_pipeline.ordergroove.sync import RESOURCES, sync_window
from og_pipeline.ordergroove.walks import Progress, WalkProgress, watching
from og_pipeline.sandbox import FaultSpec
from og_pipeline_tests.pipeline.conftest import NOW, START, Pipeline, expected_fields

ZONE = "America/Chicago"


class CountingLimiter(RateLimiter):
    def __init__(self) -> None:
        super().__init__(1000)
        self.acquired = 0

    def acquire(self) -> float:
        self.acquired += 1  # the GIL makes += on an attribute of one object safe enough here
        return super().acquire()


def _client(pipeline: Pipeline, limiter: RateLimiter | None = None) -> OrdergrooveClient:
    return OrdergrooveClient(
        pipeline.sandbox.ordergroove_url, "sandbox-og-key", zone=ZONE, limiter=limiter
    )


def _stored(pipeline: Pipeline) -> dict[str, int]:
    return {
        table: pipeline.query(f"SELECT count(*) FROM og.{table}")[0][0]
        for table in ("subscriptions", "customers", "orders", "items")
    }


def test_the_four_walks_go_at_once_one_cursor_per_type_through_one_limiter(
    pipeline: Pipeline,
) -> None:
    # Each answer takes 0.1 s, as a remote API's would: walks that overlap are seen overlapping.
    pipeline.sandbox.state.faults["ordergroove"].set(FaultSpec(slow_rate=1.0, slow_seconds=0.1))
    limiter = CountingLimiter()
    with _client(pipeline, limiter) as client:
        report = sync_window(client, pipeline.db_url, START, NOW)
        requests = client.stats.requests
    cursors = pipeline.sandbox.state.cursors
    assert cursors.violations == 0, "never two cursors over one object type at once"
    assert cursors.most_at_once >= 3, "the walks of different types overlap"
    assert limiter.acquired == requests, "every request of every walk went through the limiter"
    counts, stored = pipeline.sandbox.merchant.counts(), _stored(pipeline)
    for table in ("subscriptions", "customers", "orders"):
        assert stored[table] == counts[table], table
    assert stored["items"] > 0
    assert set(report.pages) == set(RESOURCES)


def test_a_slow_page_halves_the_windows_of_the_rest_of_its_walk(pipeline: Pipeline) -> None:
    pipeline.sandbox.state.faults["ordergroove"].set(FaultSpec(slow_rate=1.0, slow_seconds=0.3))
    with _client(pipeline) as client:
        report = sync_window(
            client, pipeline.db_url, START, NOW, window=timedelta(days=1), slow_page_seconds=0.2
        )
    assert report.windows_halved >= len(RESOURCES), "each walk met a slow page"
    counts = pipeline.sandbox.merchant.counts()
    assert _stored(pipeline)["subscriptions"] == counts["subscriptions"]


def test_progress_moves_within_a_window_and_ends_done_with_every_record(
    pipeline: Pipeline,
) -> None:
    """What the bars and the progress lines read: each walk's share of the range moves with the
    records read (not only when a window ends), never backwards, and ends at 100% and done."""
    pipeline.sandbox.state.faults["ordergroove"].set(FaultSpec(slow_rate=1.0, slow_seconds=0.25))
    seen: list[dict[str, tuple[float, int, bool]]] = []

    def snapshot(progress: Progress) -> None:
        seen.append(
            {w.resource: (w.fraction, w.records, w.finished) for w in progress.walks.values()}
        )

    with _client(pipeline) as client, watching(snapshot):
        # One window: the range is shorter than a month.
        report = sync_window(client, pipeline.db_url, START, NOW)
    assert len(seen) >= 3
    for resource in RESOURCES:
        fractions = [s[resource][0] for s in seen]
        assert fractions == sorted(fractions), resource
        # The sync also fetches customers missing from the window: the walk did not read those.
        looked_up = report.customers_looked_up if resource == "customers" else 0
        assert seen[-1][resource] == (1.0, report.counts[resource].received - looked_up, True)
    assert any(0 < s[r][0] < 1 for s in seen for r in RESOURCES), "moved within the window"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=15), inner),
    max_leaves=8,
)
stamps = st.sampled_from(["updated", "order_updated"]).flatmap(
    lambda key: st.fixed_dictionaries(
        {key: st.datetimes().map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")) | json_values}
    )
)


@given(pages=st.lists(st.lists(stamps | json_values, max_size=4), max_size=6))
def test_a_page_of_anything_moves_progress_within_the_range_or_leaves_it(
    pages: list[list[Any]],
) -> None:
    """A walk reads hostile pages: whatever a record holds, counting it never fails and the
    share of the range stays between 0 and 1."""
    walk = WalkProgress("items", START, NOW, START)
    for page in pages:
        walk.note_page(page, ZONE)
        assert 0.0 <= walk.fraction <= 1.0
    assert walk.pages == len(pages) and walk.records == sum(map(len, pages))


class Dies(Exception):
    pass


def test_a_long_sync_that_dies_resumes_each_walk_where_it_was(pipeline: Pipeline) -> None:
    """Ten days in windows of a day: killed after a few batches, the rerun of the same range
    starts each walk at its checkpoint and ends with every record, and no checkpoint is left."""
    end = START + timedelta(days=10)
    written = {"batches": 0}

    def dying(resource: str, counts: UpsertCounts) -> None:
        written["batches"] += 1
        if written["batches"] == 6:
            raise Dies

    with _client(pipeline) as client, pytest.raises(Dies):
        sync_window(client, pipeline.db_url, START, end, window=timedelta(days=1), on_page=dying)
    saved: list[Any] = pipeline.query("SELECT resource, done_until FROM og.sync_checkpoints")
    assert saved, "the walks recorded how far they got"
    assert all(START < done_until <= end for _, done_until in saved)

    with _client(pipeline) as client:
        again = sync_window(client, pipeline.db_url, START, end, window=timedelta(days=1))
    assert again.resumed and set(again.resumed) <= {resource for resource, _ in saved}
    assert pipeline.query("SELECT count(*) FROM og.sync_checkpoints") == [(0,)]
    counts = pipeline.sandbox.merchant.counts()
    assert _stored(pipeline)["subscriptions"] == counts["subscriptions"]
    assert _stored(pipeline)["orders"] == counts["orders"]


def test_a_ten_day_range_walked_in_windows_through_dagster_pushes_every_contact_right(
    pipeline: Pipeline,
) -> None:
    """Through Dagster: a range longer than a window, with checkpoints, ends right."""
    assert pipeline.sync(START, START + timedelta(days=10)).success
    truth = pipeline.sandbox.merchant.ground_truth()
    contacts = pipeline.ometria_contacts()
    assert all(
        contacts[f"og-{cid}"]["properties"] == expected_fields(t)
        for cid, t in truth.items()
        if t["email"]
    )
