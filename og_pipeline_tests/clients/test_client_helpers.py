"""The clients' pure helpers: time-window conversion, the
rate limiter's arithmetic (on an injected clock, so no real sleeps) and batch validation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from og_pipeline.ometria.client import OmetriaClient, RateLimiter
from og_pipeline.ordergroove.client import og_window_params, redact


def test_window_params_convert_utc_to_naive_chicago() -> None:
    params = og_window_params(
        "subscriptions",
        datetime(2026, 11, 3, 15, 0, tzinfo=UTC),
        datetime(2026, 11, 3, 16, 0, 0, 999999, tzinfo=UTC),
    )
    assert params == {"updated_start": "2026-11-03T09:00:00", "updated_end": "2026-11-03T10:00:00"}


def test_window_params_for_items_use_order_updated() -> None:
    params = og_window_params(
        "items", datetime(2026, 7, 1, 5, tzinfo=UTC), datetime(2026, 7, 1, 6, tzinfo=UTC)
    )
    assert params == {
        "order_updated_start": "2026-07-01T00:00:00",
        "order_updated_end": "2026-07-01T01:00:00",
    }


def test_window_over_fall_back_covers_the_repeated_hour() -> None:
    # 06:30Z is 01:30 CDT, 07:30Z is 01:30 CST: the naive window must hold both 01:xx hours.
    params = og_window_params(
        "subscriptions",
        datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
        datetime(2026, 11, 1, 7, 30, tzinfo=UTC),
    )
    assert params["updated_start"] <= "2026-11-01T01:00:00"
    assert params["updated_end"] >= "2026-11-01T01:59:59"


def test_window_over_spring_forward_covers_both_sides() -> None:
    params = og_window_params(
        "subscriptions",
        datetime(2026, 3, 8, 7, 30, tzinfo=UTC),
        datetime(2026, 3, 8, 8, 30, tzinfo=UTC),
    )
    assert params["updated_start"] <= "2026-03-08T01:30:00"
    assert params["updated_end"] >= "2026-03-08T03:30:00"


def test_window_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="aware"):
        og_window_params("subscriptions", datetime(2026, 1, 1), datetime(2026, 1, 2))


def test_redact_removes_secrets_and_emails() -> None:
    text = redact('{"detail": "bad key s3cret for jane.doe+x@example.co.uk"}', "s3cret")
    assert "s3cret" not in text and "jane.doe" not in text and "example" not in text


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize("rate", [8.0, 3.0, 2.5, 0.5])
def test_rate_limiter_never_exceeds_the_rate_in_any_window(rate: float) -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate, margin=0.0, clock=clock, sleep=clock.sleep)
    starts = []
    for _ in range(60):
        limiter.acquire()
        starts.append(clock.now)
    span = max(1.0, 1.0 / rate)
    allowed = max(1, int(rate * span))
    for i, t in enumerate(starts):
        # Half-open windows [t, t + span): a request exactly one window later is the next one's.
        assert sum(1 for u in starts[i:] if u < t + span) <= allowed
    # ...and it is not needlessly slow: the whole run takes about what the rate implies.
    assert starts[-1] - starts[0] <= (len(starts) / allowed) * span


def test_rate_limiter_counts_a_late_wake_from_when_it_started() -> None:
    # Every third sleep overruns by 30 ms, three times the margin: a limiter that counted from
    # the reserved slots would let the server see 9 requests in one of its 1-s windows.
    clock = FakeClock()
    sleeps = 0

    def oversleep(seconds: float) -> None:
        nonlocal sleeps
        sleeps += 1
        clock.sleep(seconds + (0.03 if sleeps % 3 == 0 else 0.0))

    limiter = RateLimiter(8.0, margin=0.01, clock=clock, sleep=oversleep)
    starts = []
    for _ in range(80):
        limiter.acquire()
        starts.append(clock.now)
    for i, t in enumerate(starts):
        assert sum(1 for u in starts[i:] if u < t + 1.0) <= 8


def test_push_refuses_bad_batches_before_sending() -> None:
    client = OmetriaClient("http://127.0.0.1:9", "k")  # nothing listens: nothing may be sent
    contact = {"@type": "contact", "id": "og-1"}
    with pytest.raises(ValueError, match="at most 100"):
        client.push([{**contact, "id": f"og-{i}"} for i in range(101)])
    with pytest.raises(ValueError, match="one @type"):
        client.push([contact, {"@type": "custom_event", "id": "og-e1"}])
    with pytest.raises(ValueError, match="no 'id'"):
        client.push([{"@type": "contact"}])
    with pytest.raises(ValueError, match="bytes"):
        client.push([{**contact, "properties": {"x": "a" * 70_000}}])
    with pytest.raises(ValueError):
        client.push([])
    with pytest.raises(ValueError, match="max_batch"):
        OmetriaClient("http://127.0.0.1:9", "k", max_batch=101)
    assert client.stats.requests == 0
