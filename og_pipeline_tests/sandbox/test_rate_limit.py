"""The sandbox's Ordergroove limit (`--requests-per-minute`): over the limit in any 60 s, a 429
with the seconds until a slot frees; refused requests do not count; under it, requests pass."""

from __future__ import annotations

from og_pipeline.sandbox.faults import FaultInjector, FaultSpec


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_requests_over_the_limit_in_a_sliding_minute_get_429_with_retry_after() -> None:
    clock = Clock()
    injector = FaultInjector(FaultSpec(requests_per_minute=3), clock=clock)
    assert [injector.decide().status for _ in range(3)] == [None, None, None]
    clock.now += 20
    refused = injector.decide()
    assert refused.status == 429 and refused.headers["Retry-After"] == "40"
    assert injector.limited == 1
    clock.now += 40  # the first three leave the window together
    assert [injector.decide().status for _ in range(3)] == [None, None, None]
    assert injector.decide().status == 429


def test_without_a_limit_nothing_is_refused() -> None:
    injector = FaultInjector(FaultSpec())
    assert all(injector.decide().status is None for _ in range(10_000))
    assert injector.limited == 0


def test_a_second_cursor_over_a_type_is_counted_and_with_strict_refused() -> None:
    from og_pipeline.sandbox.faults import CursorGuard

    guard = CursorGuard()
    assert guard.enter("orders", "/orders/?cursor=a") is None
    assert guard.enter("orders", "/orders/?cursor=a") is None  # a retry of the same page
    assert guard.enter("items", "/items/") is None  # another type: allowed
    assert guard.violations == 0 and guard.most_at_once == 3
    assert guard.enter("orders", "/orders/?cursor=b") is None  # counted, not refused
    assert guard.violations == 1

    strict = CursorGuard(max_total=2, strict=True)
    assert strict.enter("orders", "/orders/?cursor=a") is None
    assert strict.enter("orders", "/orders/?cursor=b") == 409
    assert strict.enter("items", "/items/") is None
    assert strict.enter("customers", "/customers/") == 429
    strict.leave("orders", "/orders/?cursor=a")
    assert strict.enter("orders", "/orders/?cursor=b") is None
