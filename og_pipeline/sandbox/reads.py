"""Read accessors of the merchant store: REST dicts, webhook objects, ids and ground truth.

`MerchantReads` extends the shared state (`store.MerchantStore`) with the reads; merchant.py's
`Merchant` adds the mutations on top, so the store's mutation logic stays on its own. Every
accessor takes the store lock, renders only the rows it returns (render.py), and raises KeyError
for unknown ids.
"""

from __future__ import annotations

from typing import Any

from . import ids, render
from .clock import day_to_date
from .flaws import record_id
from .model import ORDER_UNSENT
from .sortedkeys import key_row
from .store import MerchantStore


class MerchantReads(MerchantStore):
    def sub_row(self, public_id: str) -> int:
        row = ids.row_of_public_id(self.seed, ids.KIND_SUBSCRIPTION, public_id)
        if row is None or row >= len(self.cols.s_customer):
            raise KeyError(f"unknown subscription {public_id!r}")
        return row

    def customer_row(self, customer_id: str) -> int:
        row = ids.row_of_customer_id(customer_id)
        if row is None or not 0 <= row < len(self.cols.c_created):
            raise KeyError(f"unknown customer {customer_id!r}")
        return row

    def order_row(self, public_id: str, kind: int = ids.KIND_ORDER) -> int:
        row = ids.row_of_public_id(self.seed, kind, public_id)
        if row is None or row >= len(self.cols.o_sub) or self.cols.o_deleted[row]:
            raise KeyError(f"unknown order {public_id!r}")
        return row

    def product_row(self, external_product_id: str) -> int:
        try:
            return self.product_rows[external_product_id]
        except KeyError:
            raise KeyError(f"unknown product {external_product_id!r}") from None

    def row_of(self, resource: str, record_id: str) -> int:
        """The row of a record named by its API path ("subscriptions", ...) and its id."""
        if resource == "subscriptions":
            return self.sub_row(record_id)
        if resource == "customers":
            return self.customer_row(record_id)
        if resource == "orders":
            return self.order_row(record_id)
        if resource == "items":
            return self.order_row(record_id, ids.KIND_ITEM)
        raise KeyError(f"unknown resource {resource!r}")

    # ---------------------------------------------------------------- records

    def subscription(self, public_id: str) -> dict[str, Any]:
        with self.lock:
            return render.render_subscription(self, self.sub_row(public_id))

    def customer(self, customer_id: str) -> dict[str, Any]:
        with self.lock:
            return render.render_customer(self, self.customer_row(customer_id))

    def order(self, public_id: str) -> dict[str, Any]:
        with self.lock:
            return render.render_order(self, self.order_row(public_id))

    def item(self, public_id: str) -> dict[str, Any]:
        with self.lock:
            return render.render_item(self, self.order_row(public_id, ids.KIND_ITEM))

    def product(self, external_product_id: str) -> dict[str, Any]:
        return render.render_product(self, self.product_row(external_product_id))

    def upcoming_order_id(self, public_id: str) -> str | None:
        with self.lock:
            row = self.cols.s_upcoming[self.sub_row(public_id)]
            return self.order_id(row) if row >= 0 else None

    def subscription_ids(self, live: bool | None = None) -> list[str]:
        with self.lock:
            c = self.cols
            return [
                self.sub_id(r)
                for r in range(len(c.s_customer))
                if live is None or bool(c.s_live[r]) == live
            ]

    def customer_ids(self) -> list[str]:
        with self.lock:
            return [ids.customer_id(r) for r in range(len(self.cols.c_created))]

    def product_ids(self) -> list[str]:
        return [p["external_product_id"] for p in self.cols.products]

    def record_ids(self, resource: str) -> list[str]:
        """Ids in the order an unfiltered list walk serves them: (local version, primary key).

        Lets a test name a record whose key the sandbox rendered null or left out, by position.
        """
        with self.lock:
            index = {
                "subscriptions": self.idx_subs,
                "customers": self.idx_customers,
                "orders": self.idx_orders,
                "items": self.idx_orders,
            }[resource]
            return [record_id(self, resource, key_row(k)) for k in index]

    def counts(self) -> dict[str, int]:
        with self.lock:
            return {
                "subscriptions": len(self.cols.s_customer),
                "customers": len(self.cols.c_created),
                "orders": len(self.idx_orders),
                "products": len(self.cols.products),
            }

    def ground_truth(self) -> dict[str, dict[str, Any]]:
        """Per customer id: email, active, total, status, next_order_date, from current state."""
        with self.lock:
            c = self.cols
            out: dict[str, dict[str, Any]] = {}
            for cust in range(len(c.c_created)):
                subs = c.c_subs[cust]
                active = sum(c.s_live[s] for s in subs)
                places = [c.o_place[o] for o in c.c_orders[cust] if c.o_status[o] == ORDER_UNSENT]
                out[ids.customer_id(cust)] = {
                    "email": render.customer_email(self, cust),
                    "active": active,
                    "total": len(subs),
                    "status": "active" if active else "inactive",
                    "next_order_date": day_to_date(min(places)) if places else None,
                }
            return out

    def webhook_object(self, kind: str, key: str) -> dict[str, Any]:
        """A record as Webhooks 2.0 renders it (unix times, `extra_data` as an object).

        `kind` is "subscription", "customer", "order" or "item", with that record's id.
        """
        with self.lock:
            if kind == "subscription":
                return render.webhook_subscription(self, self.sub_row(key))
            if kind == "customer":
                return render.webhook_customer(self, self.customer_row(key))
            if kind == "order":
                return render.webhook_order(self, self.order_row(key))
            if kind == "item":
                return render.webhook_item(self, self.order_row(key, ids.KIND_ITEM))
        raise ValueError(f"unknown kind {kind!r}")
