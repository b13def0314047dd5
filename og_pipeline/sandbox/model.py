"""Ordergroove's enumerations as the sandbox uses them: frequencies, cancel reasons, statuses."""

from __future__ import annotations

# (every, every_period) with period codes 1 days, 2 weeks, 3 months, as Ordergroove encodes them.
FREQUENCIES: tuple[tuple[int, int], ...] = ((30, 1), (2, 2), (4, 2), (6, 2), (1, 3), (2, 3), (3, 3))
PERIOD_DAYS = {1: 1, 2: 7, 3: 30}
PERIOD_NAMES = {1: "days", 2: "weeks", 3: "months"}
CANCEL_REASONS = {
    1: "Too expensive",
    2: "Don't need it anymore",
    3: "Didn't like the product",
    4: "Overstocked",
    5: "Moving",
    6: "Other",
}
ORDER_UNSENT, ORDER_REJECTED, ORDER_CANCELLED, ORDER_PLACED = 1, 3, 4, 5


def frequency_days(freq: int) -> int:
    every, period = FREQUENCIES[freq]
    return every * PERIOD_DAYS[period]
