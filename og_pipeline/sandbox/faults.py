"""Seeded fault injection for the stand-in APIs.

Every request to a faulted API asks its `FaultInjector.decide()` first, before auth or any side
effect, so a faulted request changes nothing. A burst answers the next `count` requests with one
status; otherwise one RNG draw decides an error status (with `rate`) and a second a delay (with
`slow_rate`). Both draws happen on every request, so the same seed always yields the same
sequence of decisions however the outcomes interleave.

`requests_per_minute` (None: no limit) is the API's own rate limit, checked before all of that:
a request arriving when that many were let through in the last 60 s (a sliding window) is
answered 429 with a Retry-After of the seconds until the oldest leaves the window; a refused
request is not counted and draws nothing, so the seeded sequence of the others is unchanged.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_STATUSES: tuple[int, ...] = (429, 423, 500, 502, 503)


@dataclass(frozen=True)
class FaultSpec:
    rate: float = 0.0
    statuses: tuple[int, ...] = DEFAULT_STATUSES
    slow_rate: float = 0.0
    slow_seconds: float = 1.0
    seed: int = 0
    burst: tuple[int, int] | None = None  # (status, count)
    retry_after: int | None = 1  # seconds sent with a 429; None = no header
    requests_per_minute: float | None = None  # the API's limit over any 60 s; None = none

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(data: dict[str, Any]) -> FaultSpec:
        known = {k: v for k, v in data.items() if k in FaultSpec.__dataclass_fields__}
        if "statuses" in known:
            known["statuses"] = tuple(int(s) for s in known["statuses"])
        if known.get("burst") is not None:
            status, count = known["burst"]
            known["burst"] = (int(status), int(count))
        return FaultSpec(**known)


@dataclass(frozen=True)
class Decision:
    status: int | None = None  # an error status to answer with, or None to serve normally
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


PASS = Decision()


LIMIT_WINDOW = 60.0  # seconds: `requests_per_minute` counts over any window this long


class FaultInjector:
    """Thread-safe; `set()` resets the RNG (so a seed replays its sequence from the start) and
    the rate limit's window. `limited` counts the requests the rate limit refused."""

    def __init__(
        self, spec: FaultSpec | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.set(spec or FaultSpec())

    def set(self, spec: FaultSpec) -> None:
        with self._lock:
            self.spec = spec
            self._rng = random.Random(spec.seed)
            self._burst_left = spec.burst[1] if spec.burst else 0
            self.decisions: list[Decision] = []
            self._let_through: deque[float] = deque()
            self.limited = 0

    def clear(self) -> None:
        self.set(FaultSpec())

    def _error(self, status: int) -> Decision:
        headers = {}
        if status == 429 and self.spec.retry_after is not None:
            headers["Retry-After"] = str(self.spec.retry_after)
        return Decision(status=status, headers=headers)

    def _over_limit(self, limit: float) -> Decision | None:
        """A 429 if ``limit`` requests were let through in the last minute; else counts this one
        in. Called under the lock."""
        now = self._clock()
        window = self._let_through
        while window and window[0] <= now - LIMIT_WINDOW:
            window.popleft()
        if len(window) >= limit:
            self.limited += 1
            wait = max(1, math.ceil(window[0] + LIMIT_WINDOW - now))
            return Decision(status=429, headers={"Retry-After": str(wait)})
        window.append(now)
        return None

    def decide(self) -> Decision:
        with self._lock:
            spec = self.spec
            limited = (
                self._over_limit(spec.requests_per_minute)
                if spec.requests_per_minute is not None
                else None
            )
            if limited is not None:
                decision = limited
            elif self._burst_left > 0 and spec.burst is not None:
                self._burst_left -= 1
                decision = self._error(spec.burst[0])
            elif spec.rate <= 0 and spec.slow_rate <= 0:
                decision = PASS
            else:
                fail_draw, status_draw, slow_draw = (
                    self._rng.random(),
                    self._rng.random(),
                    self._rng.random(),
                )
                if fail_draw < spec.rate and spec.statuses:
                    decision = self._error(spec.statuses[int(status_draw * len(spec.statuses))])
                elif slow_draw < spec.slow_rate:
                    decision = Decision(delay=spec.slow_seconds)
                else:
                    decision = PASS
            self.decisions.append(decision)
            # The log is for tests and inspection; keep it bounded on long runs.
            if len(self.decisions) > 10_000:
                del self.decisions[:5_000]
            return decision


class CursorGuard:
    """Ordergroove's rule for paginating clients, watched: never two cursors over one object
    type's list at once, at most ``max_total`` list requests in flight in all. Each request that
    breaks it is counted in ``violations`` (the tests assert none); with ``strict`` it is also
    refused (409 for a second cursor, 429 over the total).

    Not strict by default, because in-flight requests are only a proxy for open cursors: a
    client whose read timed out retries and moves on while the server still answers the
    abandoned request, which is no second cursor. A request for the same page as one in flight
    (that retry) never counts. ``most_at_once`` keeps the most list requests seen in flight."""

    def __init__(self, max_total: int = 5, *, strict: bool = False) -> None:
        self.max_total = max_total
        self.strict = strict
        self._lock = threading.Lock()
        self._inflight: dict[str, dict[str, int]] = {}
        self.most_at_once = 0
        self.violations = 0

    def enter(self, resource: str, page: str) -> int | None:
        """Count a request for ``page`` (its URL) in; with ``strict``, the status to refuse a
        violation with. Unless refused, the caller ``leave``s it."""
        with self._lock:
            pages = self._inflight.setdefault(resource, {})
            total = sum(sum(p.values()) for p in self._inflight.values())
            status = None
            if any(other != page for other in pages):
                status = 409
            elif total >= self.max_total:
                status = 429
            if status is not None:
                self.violations += 1
                if self.strict:
                    return status
            pages[page] = pages.get(page, 0) + 1
            self.most_at_once = max(self.most_at_once, total + 1)
            return None

    def leave(self, resource: str, page: str) -> None:
        with self._lock:
            pages = self._inflight.get(resource, {})
            pages[page] -= 1
            if not pages[page]:
                del pages[page]
