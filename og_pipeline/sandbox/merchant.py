"""The merchant store: a seeded, mutable, thread-safe stand-in for one Ordergroove merchant.

Flow: `Merchant(spec)` calls `generate.populate` to fill compact column lists (one list per
field, indexed by row) and builds one `SortedKeys` index per object type on (local updated, row).
The REST app reads pages through the index under the lock and renders dicts only for the rows it
serves (`render.py`). Mutations (cancel, reactivate, create) update columns, move `updated`,
re-key the index and hard-delete upcoming orders exactly as Ordergroove does.

Items are 1:1 with orders (each order carries its subscription's single line), so an item shares
its order's row and index; it has no timestamp of its own, only its order's `updated`.

Bad records (`MerchantSpec.bad_record_share`, flaws.py) are a rendering concern: the columns stay
correct, so ground truth is unaffected; `repair` makes one render correctly and bumps its version.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import flaws, ids
from .clock import LocalClock, to_utc_ts, wall_clock
from .model import (  # noqa: F401 - re-exported for callers
    CANCEL_REASONS,
    FREQUENCIES,
    ORDER_CANCELLED,
    ORDER_PLACED,
    ORDER_REJECTED,
    ORDER_UNSENT,
    PERIOD_DAYS,
    PERIOD_NAMES,
    frequency_days,
)
from .reads import MerchantReads
from .sortedkeys import SortedKeys, make_key


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
        start_ts = to_utc_ts(self.start) if self.start is not None else now_ts - 30 * 86400
        assert now_ts is not None and start_ts is not None
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


class Merchant(MerchantReads):
    """Thread-safe store. Read records with the accessors; change them with the mutations."""

    def __init__(self, spec: MerchantSpec) -> None:
        from .generate import populate

        self.spec = spec
        self.seed = spec.seed
        self.clock = LocalClock(spec.zone)
        self.start_ts, self.now_ts = spec.window()
        self.lock = threading.RLock()
        self.cols = Columns()
        # Overrides for the rare values that are not derivable from the row hash.
        self.cancel_text: dict[int, str] = {}
        self.email_override: dict[int, str | None] = {}
        # (resource, row) of bad records repaired since: they render well-formed from then on.
        self.repaired: set[tuple[str, int]] = set()
        populate(self)
        c = self.cols
        self.idx_subs = SortedKeys(
            make_key(self.clock.local(u), r) for r, u in enumerate(c.s_updated)
        )
        self.idx_customers = SortedKeys(
            make_key(self.clock.local(u), r) for r, u in enumerate(c.c_updated)
        )
        self.idx_orders = SortedKeys(
            make_key(self.clock.local(u), r)
            for r, u in enumerate(c.o_updated)
            if not c.o_deleted[r]
        )
        self.product_rows = {p["external_product_id"]: i for i, p in enumerate(c.products)}

    # ---------------------------------------------------------------- low-level writes

    def _touch_sub(self, row: int, ts: int) -> None:
        c = self.cols
        self.idx_subs.remove(make_key(self.clock.local(c.s_updated[row]), row))
        c.s_updated[row] = ts
        self.idx_subs.add(make_key(self.clock.local(ts), row))

    def _touch_customer(self, row: int, ts: int) -> None:
        c = self.cols
        self.idx_customers.remove(make_key(self.clock.local(c.c_updated[row]), row))
        c.c_updated[row] = ts
        self.idx_customers.add(make_key(self.clock.local(ts), row))

    def _touch_order(self, row: int, ts: int) -> None:
        c = self.cols
        self.idx_orders.remove(make_key(self.clock.local(c.o_updated[row]), row))
        c.o_updated[row] = ts
        self.idx_orders.add(make_key(self.clock.local(ts), row))

    def _delete_order(self, row: int) -> None:
        c = self.cols
        self.idx_orders.remove(make_key(self.clock.local(c.o_updated[row]), row))
        c.o_deleted[row] = 1
        c.c_orders[c.o_customer[row]].remove(row)

    def add_order(self, sub: int, status: int, place: int, created: int, updated: int) -> int:
        """Appends an order (and its item); the caller holds the lock or is generating."""
        c = self.cols
        row = len(c.o_sub)
        cust = c.s_customer[sub]
        c.o_customer.append(cust)
        c.o_sub.append(sub)
        c.o_status.append(status)
        c.o_place.append(place)
        c.o_created.append(created)
        c.o_updated.append(updated)
        c.o_deleted.append(0)
        c.c_orders[cust].append(row)
        return row

    def _add_upcoming(self, sub: int, ts: int) -> None:
        place = self.clock.local_day(ts) + frequency_days(self.cols.s_freq[sub])
        row = self.add_order(sub, ORDER_UNSENT, place, ts, ts)
        self.cols.s_upcoming[sub] = row
        self.idx_orders.add(make_key(self.clock.local(ts), row))

    def _set_customer_live(self, cust: int, delta: int, ts: int) -> None:
        c = self.cols
        before = c.c_live_count[cust] > 0
        c.c_live_count[cust] += delta
        if (c.c_live_count[cust] > 0) != before:
            self._touch_customer(cust, max(ts, c.c_updated[cust]))

    @staticmethod
    def _when(at: datetime | int | None, previous: int) -> int:
        # Strictly after the previous version, as in Ordergroove: `updated` never moves back,
        # even when a caller asks for an earlier time.
        ts = wall_clock() if at is None else to_utc_ts(at)
        assert ts is not None
        return max(ts, previous + 1)

    # ---------------------------------------------------------------- mutations

    def cancel_subscription(
        self, public_id: str, at: datetime | int | None = None, reason: str | int = "4|Overstocked"
    ) -> dict[str, Any]:
        with self.lock:
            c = self.cols
            row = self.sub_row(public_id)
            if not c.s_live[row]:
                raise ValueError(f"subscription {public_id} is already cancelled")
            ts = self._when(at, c.s_updated[row])
            code, text = _parse_reason(reason)
            c.s_live[row] = 0
            c.s_cancelled[row] = ts
            c.s_cancel_code[row] = code
            if CANCEL_REASONS.get(code) != text:
                self.cancel_text[row] = text
            self._touch_sub(row, ts)
            upcoming = c.s_upcoming[row]
            if upcoming >= 0:
                # Ordergroove hard-deletes future orders and their items: no tombstone.
                self._delete_order(upcoming)
                c.s_upcoming[row] = -1
            self._set_customer_live(c.s_customer[row], -1, ts)
            return self.subscription(public_id)

    def reactivate_subscription(
        self, public_id: str, at: datetime | int | None = None
    ) -> dict[str, Any]:
        with self.lock:
            c = self.cols
            row = self.sub_row(public_id)
            if c.s_live[row]:
                raise ValueError(f"subscription {public_id} is already live")
            ts = self._when(at, c.s_updated[row])
            c.s_live[row] = 1
            c.s_cancelled[row] = 0
            c.s_cancel_code[row] = 0
            self.cancel_text.pop(row, None)
            self._touch_sub(row, ts)
            self._add_upcoming(row, ts)
            self._set_customer_live(c.s_customer[row], +1, ts)
            return self.subscription(public_id)

    def create_subscription(
        self,
        customer_id: str,
        product_id: str,
        at: datetime | int | None = None,
        quantity: int = 1,
        frequency: int = 0,
    ) -> str:
        """A new live subscription with its upcoming order; `frequency` indexes FREQUENCIES."""
        with self.lock:
            c = self.cols
            cust = self.customer_row(customer_id)
            prod = self.product_row(product_id)
            ts = self._when(at, 0) if at is not None else wall_clock()
            row = len(c.s_customer)
            c.s_customer.append(cust)
            c.s_product.append(prod)
            c.s_quantity.append(quantity)
            c.s_freq.append(frequency % len(FREQUENCIES))
            c.s_created.append(ts)
            c.s_updated.append(ts)
            c.s_live.append(1)
            c.s_cancelled.append(0)
            c.s_cancel_code.append(0)
            c.s_upcoming.append(-1)
            c.c_subs[cust].append(row)
            self.idx_subs.add(make_key(self.clock.local(ts), row))
            self._add_upcoming(row, ts)
            self._set_customer_live(cust, +1, ts)
            return self.sub_id(row)

    def create_customer(self, at: datetime | int | None = None, email: str | None = None) -> str:
        """A new customer without subscriptions; `email` overrides the generated address."""
        with self.lock:
            c = self.cols
            ts = self._when(at, 0) if at is not None else wall_clock()
            row = len(c.c_created)
            c.c_created.append(ts)
            c.c_updated.append(ts)
            c.c_live_count.append(0)
            c.c_subs.append([])
            c.c_orders.append([])
            if email is not None:
                self.email_override[row] = email
            self.idx_customers.add(make_key(self.clock.local(ts), row))
            return ids.customer_id(row)

    def repair(self, resource: str, record_id: str, at: datetime | int | None = None) -> None:
        """Makes a bad record render correctly from now on, as a fix on Ordergroove's side would.

        Bumps its version timestamp (an item's: its order's `updated`) to `at`, by default the
        wall clock as for every mutation, and never back: an incremental sync re-reads it.
        Raises KeyError for an unknown record, ValueError for one that is not malformed.
        """
        with self.lock:
            c = self.cols
            row = self.row_of(resource, record_id)
            if flaws.flaw_of(self, resource, row) is None:
                raise ValueError(f"{resource} {record_id} is not a bad record")
            self.repaired.add((resource, row))
            if resource == "subscriptions":
                self._touch_sub(row, self._when(at, c.s_updated[row]))
            elif resource == "customers":
                self._touch_customer(row, self._when(at, c.c_updated[row]))
            else:
                self._touch_order(row, self._when(at, c.o_updated[row]))

    def bad_records(self) -> list[flaws.BadRecord]:
        """Every REST record served malformed now: resource (API path), real id, flaw."""
        return flaws.bad_records(self)

    def bad_customers(self) -> set[str]:
        """Customer ids any of whose REST records is malformed: compare ground truth on others."""
        return flaws.bad_customers(self)


def _parse_reason(reason: str | int) -> tuple[int, str]:
    if isinstance(reason, int):
        return reason, CANCEL_REASONS.get(reason, "Other")
    code, _, text = reason.partition("|")
    if code.strip().isdigit():
        return int(code), text.strip() or CANCEL_REASONS.get(int(code), "Other")
    return 6, reason
