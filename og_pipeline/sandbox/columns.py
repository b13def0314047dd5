"""What a merchant is generated from (`MerchantSpec`) and where its records live (`Columns`).

The bottom of the store's layering, importing only clock.py: generate.py fills a `Columns`,
store.py holds it with the indexes, and render.py, flaws.py, reads.py and merchant.py read and
change it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .clock import to_utc_ts, wall_clock


@dataclass(frozen=True)
class MerchantSpec:
    """What to generate. Deterministic by `seed`: same spec, same merchant."""

    subscriptions: int = 1000
    seed: int = 0
    start: datetime | None = None  # default: now - 30 days
    now: datetime | None = None  # default: the wall clock at construction
    customers_per_subscription: float = 0.7
    live_share: float = 0.8
    products: int = 25
    zone: str = "America/Chicago"
    max_past_orders: int = 2
    skipped_order_share: float = 0.1
    live_string_share: float = 0.02
    missing_email_share: float = 0.01
    # Share of each REST record type rendered malformed (flaws.py); webhooks stay well-formed.
    bad_record_share: float = 0.0

    def window(self) -> tuple[int, int]:
        now_ts = to_utc_ts(self.now) if self.now is not None else wall_clock()
        assert now_ts is not None
        start_ts = to_utc_ts(self.start) if self.start is not None else now_ts - 30 * 86400
        assert start_ts is not None
        if start_ts >= now_ts:
            raise ValueError("MerchantSpec.start must be before now")
        return start_ts, now_ts


@dataclass
class Columns:
    """Column storage; row i of every list in a group describes the same record."""

    # subscriptions
    s_customer: list[int] = field(default_factory=list)
    s_product: list[int] = field(default_factory=list)
    s_quantity: list[int] = field(default_factory=list)
    s_freq: list[int] = field(default_factory=list)
    s_created: list[int] = field(default_factory=list)
    s_updated: list[int] = field(default_factory=list)
    s_live: bytearray = field(default_factory=bytearray)
    s_cancelled: list[int] = field(default_factory=list)  # 0 = not cancelled
    s_cancel_code: list[int] = field(default_factory=list)  # 0 = none
    s_upcoming: list[int] = field(default_factory=list)  # order row, -1 = none
    # customers
    c_created: list[int] = field(default_factory=list)
    c_updated: list[int] = field(default_factory=list)
    c_live_count: list[int] = field(default_factory=list)
    c_subs: list[list[int]] = field(default_factory=list)
    c_orders: list[list[int]] = field(default_factory=list)
    # orders (and their 1:1 items)
    o_customer: list[int] = field(default_factory=list)
    o_sub: list[int] = field(default_factory=list)
    o_status: list[int] = field(default_factory=list)
    o_place: list[int] = field(default_factory=list)  # local day number
    o_created: list[int] = field(default_factory=list)
    o_updated: list[int] = field(default_factory=list)
    o_deleted: bytearray = field(default_factory=bytearray)
    # products: few, so plain dicts
    products: list[dict[str, Any]] = field(default_factory=list)

    def add_order(self, sub: int, status: int, place: int, created: int, updated: int) -> int:
        """Appends an order (and its item); the caller holds the lock or is generating."""
        row = len(self.o_sub)
        cust = self.s_customer[sub]
        self.o_customer.append(cust)
        self.o_sub.append(sub)
        self.o_status.append(status)
        self.o_place.append(place)
        self.o_created.append(created)
        self.o_updated.append(updated)
        self.o_deleted.append(0)
        self.c_orders[cust].append(row)
        return row
