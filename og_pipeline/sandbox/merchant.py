"""The merchant store: a seeded, mutable, thread-safe stand-in for one Ordergroove merchant.

Layers, each importing only those below it: columns.py (`MerchantSpec`, `Columns`: one list per
field, indexed by row) <- generate.py (seeded `populate`) <- store.py (`MerchantStore`: state,
clock, lock and one `SortedKeys` index per object type on (local updated, row)) <- render.py /
flaws.py (rows -> dicts) <- reads.py (`MerchantReads`: accessors) <- this module (`Merchant`:
mutations). The REST app reads pages through the index under the lock and renders dicts only for
the rows it serves. Mutations (cancel, reactivate, create) update columns, move `updated`, re-key
the index and hard-delete upcoming orders exactly as Ordergroove does.

Items are 1:1 with orders (each order carries its subscription's single line), so an item shares
its order's row and index; it has no timestamp of its own, only its order's `updated`.

Bad records (`MerchantSpec.bad_record_share`, flaws.py) are a rendering concern: the columns stay
correct, so ground truth is unaffected; `repair` makes one render correctly and bumps its version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import flaws, ids
from .clock import to_utc_ts, wall_clock
from .model import CANCEL_REASONS, FREQUENCIES, ORDER_UNSENT, frequency_days
from .reads import MerchantReads
from .sortedkeys import make_key


class Merchant(MerchantReads):
    """Thread-safe store. Read records with the accessors; change them with the mutations.

    `Merchant(spec)` generates the merchant (see `store.MerchantStore`).
    """

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

    def _add_upcoming(self, sub: int, ts: int) -> None:
        place = self.clock.local_day(ts) + frequency_days(self.cols.s_freq[sub])
        row = self.cols.add_order(sub, ORDER_UNSENT, place, ts, ts)
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
