"""The merchant store's state: spec, clock, generated columns, sorted indexes and overrides.

`MerchantStore(spec)` generates the columns (`generate.populate`) and builds one `SortedKeys`
index per object type on (local updated, row). It is what render.py and flaws.py read, so they
depend on this module and not on the `Merchant` built on top of it: reads.py adds the read
accessors (`MerchantReads`), merchant.py the mutations (`Merchant`).
"""

from __future__ import annotations

import threading

from . import ids
from .clock import LocalClock
from .columns import Columns, MerchantSpec
from .generate import populate
from .sortedkeys import SortedKeys, make_key


class MerchantStore:
    """The state every layer of the store shares; readers and writers hold `lock`."""

    def __init__(self, spec: MerchantSpec) -> None:
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
        populate(spec, self.cols, self.clock, self.start_ts, self.now_ts)
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

    def sub_id(self, row: int) -> str:
        return ids.public_id(self.seed, ids.KIND_SUBSCRIPTION, row)

    def order_id(self, row: int) -> str:
        return ids.public_id(self.seed, ids.KIND_ORDER, row)

    def item_id(self, row: int) -> str:
        return ids.public_id(self.seed, ids.KIND_ITEM, row)
