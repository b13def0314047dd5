"""Renders stored rows as Ordergroove REST dicts and as Webhooks 2.0 objects.

Each record type has one builder taking a `Form`: REST (naive local `"YYYY-MM-DD HH:MM:SS"`
times, `extra_data` as a JSON string, then the row's seeded flaw if it is a bad record, see
flaws.py) or WEBHOOK (unix times, `extra_data` as an object, never flawed). The REST shapes are
exactly those of shared/docs/ordergroove-api.md, "Record shapes (REST)", and no more: the contract
test validates every answer against og_pipeline_tests/contract/ordergroove/*.schema.json.

Rendering happens only for the rows a page or an event needs, so the store can stay columnar.
Callers hold the merchant lock.
"""

from __future__ import annotations

import json
from typing import Any

from . import ids
from .clock import format_day, format_local
from .flaws import spoil
from .model import (
    CANCEL_REASONS,
    FREQUENCIES,
    ORDER_CANCELLED,
    ORDER_PLACED,
    ORDER_UNSENT,
    frequency_days,
)
from .store import MerchantStore

_SOURCES = ("pdp", "cart", "checkout", "post_purchase", "email")
REST, WEBHOOK = "rest", "webhook"
_PLACE_TIME = "06:00:00"  # placements run early in the local morning (generate.PLACE_SECONDS)


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


class Form:
    """How one rendering writes times and `extra_data`."""

    def __init__(self, m: MerchantStore, kind: str) -> None:
        self.m = m
        self.rest = kind == REST

    def time(self, ts: int) -> str | int | None:
        """An instant (0 = none) as REST's naive local string or a webhook's unix int."""
        if not ts:
            return None
        return format_local(self.m.clock.local(ts)) if self.rest else ts

    def extra(self, data: dict[str, Any]) -> str | dict[str, Any]:
        return json.dumps(data) if self.rest else data


def customer_email(m: MerchantStore, cust: int) -> str | None:
    if cust in m.email_override:
        return m.email_override[cust]
    h = ids.row_hash(m.seed, ids.KIND_CUSTOMER, cust)
    if ids.share_hit(h, 40, m.spec.missing_email_share):
        return None
    first, last = _names(h)
    return f"{first}.{last}.{ids.customer_id(cust)}@example.com".lower()


def _names(h: int) -> tuple[str, str]:
    return ids.FIRST_NAMES[h % len(ids.FIRST_NAMES)], ids.LAST_NAMES[(h >> 8) % len(ids.LAST_NAMES)]


def _payment(m: MerchantStore, cust: int) -> str:
    return ids.public_id(m.seed, ids.KIND_PAYMENT, cust)


def _address(m: MerchantStore, cust: int) -> str:
    return ids.public_id(m.seed, ids.KIND_ADDRESS, cust)


# ---------------------------------------------------------------- subscriptions


def _components(m: MerchantStore, row: int, h: int) -> str | list[dict[str, Any]]:
    # The doc: a comma-separated string in old records, a list of objects in new ones. "Old" is
    # the first half of the generated history; about 5% of subscriptions are bundles.
    c = m.cols
    products = c.products
    parts = []
    if ids.share_hit(h, 32, 0.05):
        parts = [products[(c.s_product[row] + k) % len(products)] for k in (1, 2)]
    if c.s_created[row] < (m.start_ts + m.now_ts) // 2:
        return ",".join(p["external_product_id"] for p in parts)
    return [
        {
            "public_id": ids.public_id(m.seed, ids.KIND_COMPONENT, 2 * row + k),
            "product": p["external_product_id"],
            "quantity": 1,
        }
        for k, p in enumerate(parts)
    ]


def subscription_record(m: MerchantStore, row: int, form: Form) -> dict[str, Any]:
    c = m.cols
    every, period = FREQUENCIES[c.s_freq[row]]
    product = c.products[c.s_product[row]]
    cust = c.s_customer[row]
    code = c.s_cancel_code[row]
    reason = None
    if code:
        reason = f"{code}|{m.cancel_text.get(row, CANCEL_REASONS.get(code, 'Other'))}"
    h = ids.row_hash(m.seed, ids.KIND_SUBSCRIPTION, row)
    live: bool | str = bool(c.s_live[row])
    if form.rest and ids.share_hit(h, 24, m.spec.live_string_share):
        # Real quirk: some accounts serialise the flag as a Python-style string.
        live = "True" if live else "False"
    return {
        "public_id": m.sub_id(row),
        "customer": ids.customer_id(cust),
        "product": product["external_product_id"],
        "quantity": c.s_quantity[row],
        "price": money(product["price_cents"]),
        "frequency_days": frequency_days(c.s_freq[row]),
        "every": every,
        "every_period": period,
        "start_date": format_day(m.clock.local_day(c.s_created[row])),
        "reminder_days": 3,
        "live": live,
        "cancelled": form.time(c.s_cancelled[row]),
        "cancel_reason": reason,
        "cancel_reason_code": str(code) if code else None,
        "currency_code": "USD",
        "subscription_type": "replenishment",
        "offer": f"offer-{(c.s_freq[row] % 3) + 1}",
        "payment": _payment(m, cust),
        "shipping_address": _address(m, cust),
        # The storefront order that opened the subscription: one per subscription here.
        "merchant_order_id": f"CHK-{row + 100000}",
        "components": _components(m, row, h),
        "extra_data": form.extra(
            {"source": _SOURCES[(h >> 5) % len(_SOURCES)], "ab_bucket": (h >> 13) % 4}
        ),
        "created": form.time(c.s_created[row]),
        "updated": form.time(c.s_updated[row]),
    }


def render_subscription(m: MerchantStore, row: int) -> dict[str, Any]:
    return spoil(m, "subscriptions", row, subscription_record(m, row, Form(m, REST)))


def webhook_subscription(m: MerchantStore, row: int) -> dict[str, Any]:
    return subscription_record(m, row, Form(m, WEBHOOK))


# ---------------------------------------------------------------- customers


def customer_record(m: MerchantStore, row: int, form: Form) -> dict[str, Any]:
    c = m.cols
    h = ids.row_hash(m.seed, ids.KIND_CUSTOMER, row)
    first, last = _names(h)
    subs = c.c_subs[row]
    # Shoppers log in to subscribe: the latest subscription's creation, else the signup.
    last_login = max((c.s_created[s] for s in subs), default=c.c_created[row])
    return {
        "merchant_user_id": ids.customer_id(row),
        "email": customer_email(m, row),
        "first_name": first,
        "last_name": last,
        "phone_number": f"+1312555{row % 10000:04d}",
        "phone_type": 1 + (h >> 20) % 2,
        "live": c.c_live_count[row] > 0,
        "locale": 1 + (h >> 22) % 3,
        "price_code": "VIP" if ids.share_hit(h, 48, 0.1) else None,
        "extra_data": form.extra({"signup_source": _SOURCES[(h >> 26) % len(_SOURCES)]}),
        "created": form.time(c.c_created[row]),
        "last_updated": form.time(c.c_updated[row]),
        "last_login": form.time(last_login),
    }


def render_customer(m: MerchantStore, row: int) -> dict[str, Any]:
    return spoil(m, "customers", row, customer_record(m, row, Form(m, REST)))


def webhook_customer(m: MerchantStore, row: int) -> dict[str, Any]:
    return customer_record(m, row, Form(m, WEBHOOK))


# ---------------------------------------------------------------- orders and items


def _order_amounts(m: MerchantStore, row: int) -> dict[str, int]:
    c = m.cols
    sub = c.o_sub[row]
    price = c.products[c.s_product[sub]]["price_cents"]
    sub_total = price * c.s_quantity[sub]
    discount = round(sub_total * 0.10)
    tax = round((sub_total - discount) * 0.08)
    shipping = 0 if sub_total >= 3500 else 499
    return {
        "sub_total": sub_total,
        "tax_total": tax,
        "shipping_total": shipping,
        "discount_total": discount,
        "total": sub_total - discount + tax + shipping,
    }


def order_record(m: MerchantStore, row: int, form: Form) -> dict[str, Any]:
    c = m.cols
    status = c.o_status[row]
    cust = c.o_customer[row]
    day = format_day(c.o_place[row])
    out: dict[str, Any] = {
        "public_id": m.order_id(row),
        "customer": ids.customer_id(cust),
        "status": status,
        # REST: a timestamp like every other; webhooks keep the date they have always sent.
        "place": f"{day} 00:00:00" if form.rest else day,
    }
    out.update({k: money(v) for k, v in _order_amounts(m, row).items()})
    out.update(
        {
            "cancelled": form.time(c.o_updated[row]) if status == ORDER_CANCELLED else None,
            "tries": 1 if status == ORDER_PLACED else 0,
            "type": 1,
            "order_merchant_id": None if status == ORDER_UNSENT else f"SHOP-{row + 100000}",
            "rejected_message": None,
            "locked": False,
            "extra_data": form.extra({}),
            "payment": _payment(m, cust),
            "shipping_address": _address(m, cust),
            "currency_code": "USD",
            "created": form.time(c.o_created[row]),
            "updated": form.time(c.o_updated[row]),
        }
    )
    return out


def render_order(m: MerchantStore, row: int) -> dict[str, Any]:
    return spoil(m, "orders", row, order_record(m, row, Form(m, REST)))


def webhook_order(m: MerchantStore, row: int) -> dict[str, Any]:
    return order_record(m, row, Form(m, WEBHOOK))


def _item_fields(m: MerchantStore, row: int) -> dict[str, Any]:
    c = m.cols
    sub = c.o_sub[row]
    product = c.products[c.s_product[sub]]
    qty = c.s_quantity[sub]
    return {
        "public_id": m.item_id(row),
        "order": m.order_id(row),
        "subscription": m.sub_id(sub),
        "product": product["external_product_id"],
        "offer": f"offer-{(c.s_freq[sub] % 3) + 1}",
        "quantity": qty,
        "price": money(product["price_cents"]),
        "extra_cost": "0.00",
        "total_price": money(product["price_cents"] * qty),
        "one_time": False,
        "frozen": False,
        "components": [],
        "subscription_component": None,
    }


def render_item(m: MerchantStore, row: int) -> dict[str, Any]:
    # No `updated`/`created`: an item's only version is its order's `updated`.
    c = m.cols
    out = _item_fields(m, row)
    placed = c.o_status[row] == ORDER_PLACED
    out["first_placed"] = f"{format_day(c.o_place[row])} {_PLACE_TIME}" if placed else None
    out["order_updated"] = format_local(m.clock.local(c.o_updated[row]))
    return spoil(m, "items", row, out)


def webhook_item(m: MerchantStore, row: int) -> dict[str, Any]:
    # The docs give webhook items no timestamp; carrying none, the receiver has to fall back to
    # the event's `created`, as it would with Ordergroove.
    return _item_fields(m, row)


def render_product(m: MerchantStore, row: int, unix: bool = False) -> dict[str, Any]:
    p = m.cols.products[row]
    out = {
        "external_product_id": p["external_product_id"],
        "sku": p["external_product_id"],
        "name": p["name"],
        "price": money(p["price_cents"]),
        "image_url": p["image_url"],
        "detail_url": p["detail_url"],
        "live": p["live"],
        "discontinued": False,
        "autoship_enabled": True,
    }
    if unix:
        # Webhook snapshots have always carried it; the REST product documents no timestamp.
        out["created"] = p["created"]
    return out


def snapshot(m: MerchantStore, cust: int) -> dict[str, Any]:
    """The optional Webhooks 2.0 snapshot: the customer's current state, unix times."""
    c = m.cols
    orders = [o for o in c.c_orders[cust] if c.o_status[o] == ORDER_UNSENT]
    product_rows = sorted({c.s_product[s] for s in c.c_subs[cust]})
    return {
        "customer": webhook_customer(m, cust),
        "subscriptions": [webhook_subscription(m, s) for s in c.c_subs[cust]],
        "orders": [webhook_order(m, o) for o in orders],
        "items": [webhook_item(m, o) for o in orders],
        "products": [render_product(m, p, unix=True) for p in product_rows],
    }
