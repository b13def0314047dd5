"""Renders stored rows as Ordergroove REST dicts (naive local times, `extra_data` as a JSON
string, decimal strings) and as Webhooks 2.0 objects (unix times, `extra_data` as an object).

Rendering happens only for the rows a page or an event needs, so the store can stay columnar.
Callers hold the merchant lock.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from . import ids
from .clock import format_day, format_local
from .merchant import CANCEL_REASONS, FREQUENCIES, ORDER_UNSENT, frequency_days

if TYPE_CHECKING:
    from .merchant import Merchant

_SOURCES = ("pdp", "cart", "checkout", "post_purchase", "email")


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _ts(m: Merchant, ts: int) -> str:
    return format_local(m.clock.local(ts))


def customer_email(m: Merchant, cust: int) -> str | None:
    if cust in m.email_override:
        return m.email_override[cust]
    h = ids.row_hash(m.seed, ids.KIND_CUSTOMER, cust)
    if ids.share_hit(h, 40, m.spec.missing_email_share):
        return None
    first, last = _names(h)
    return f"{first}.{last}.{ids.customer_id(cust)}@example.com".lower()


def _names(h: int) -> tuple[str, str]:
    return ids.FIRST_NAMES[h % len(ids.FIRST_NAMES)], ids.LAST_NAMES[(h >> 8) % len(ids.LAST_NAMES)]


def _extra_data(m: Merchant, row: int) -> dict[str, Any]:
    h = ids.row_hash(m.seed, ids.KIND_SUBSCRIPTION, row)
    return {"source": _SOURCES[(h >> 5) % len(_SOURCES)], "ab_bucket": (h >> 13) % 4}


def _order_amounts(m: Merchant, row: int) -> dict[str, int]:
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


def _sub_fields(m: Merchant, row: int) -> dict[str, Any]:
    c = m.cols
    every, period = FREQUENCIES[c.s_freq[row]]
    product = c.products[c.s_product[row]]
    code = c.s_cancel_code[row]
    reason = None
    if code:
        reason = f"{code}|{m.cancel_text.get(row, CANCEL_REASONS.get(code, 'Other'))}"
    return {
        "public_id": m.sub_id(row),
        "customer": ids.customer_id(c.s_customer[row]),
        "product": product["external_product_id"],
        "quantity": c.s_quantity[row],
        "price": money(product["price_cents"]),
        "frequency_days": frequency_days(c.s_freq[row]),
        "every": every,
        "every_period": period,
        "start_date": format_day(m.clock.local_day(c.s_created[row])),
        "live": bool(c.s_live[row]),
        "cancel_reason": reason,
        "cancel_reason_code": code or None,
        "currency_code": "USD",
        "subscription_type": "replenishment",
        "offer": f"offer-{(c.s_freq[row] % 3) + 1}",
    }


def render_subscription(m: Merchant, row: int) -> dict[str, Any]:
    c = m.cols
    out = _sub_fields(m, row)
    h = ids.row_hash(m.seed, ids.KIND_SUBSCRIPTION, row)
    if ids.share_hit(h, 24, m.spec.live_string_share):
        # Real quirk: some accounts serialise the flag as a Python-style string.
        out["live"] = "True" if c.s_live[row] else "False"
    out["cancelled"] = _ts(m, c.s_cancelled[row]) if c.s_cancelled[row] else None
    out["extra_data"] = json.dumps(_extra_data(m, row))
    out["created"] = _ts(m, c.s_created[row])
    out["updated"] = _ts(m, c.s_updated[row])
    return out


def webhook_subscription(m: Merchant, row: int) -> dict[str, Any]:
    c = m.cols
    out = _sub_fields(m, row)
    out["cancelled"] = c.s_cancelled[row] or None
    out["extra_data"] = _extra_data(m, row)
    out["created"] = c.s_created[row]
    out["updated"] = c.s_updated[row]
    return out


def _customer_fields(m: Merchant, row: int) -> dict[str, Any]:
    c = m.cols
    h = ids.row_hash(m.seed, ids.KIND_CUSTOMER, row)
    first, last = _names(h)
    return {
        "merchant_user_id": ids.customer_id(row),
        "email": customer_email(m, row),
        "first_name": first,
        "last_name": last,
        "phone_number": f"+1312555{row % 10000:04d}",
        "live": c.c_live_count[row] > 0,
        "locale": "en_US",
    }


def render_customer(m: Merchant, row: int) -> dict[str, Any]:
    c = m.cols
    out = _customer_fields(m, row)
    out["created"] = _ts(m, c.c_created[row])
    out["last_updated"] = _ts(m, c.c_updated[row])
    return out


def webhook_customer(m: Merchant, row: int) -> dict[str, Any]:
    c = m.cols
    out = _customer_fields(m, row)
    out["created"] = c.c_created[row]
    out["last_updated"] = c.c_updated[row]
    return out


def _order_fields(m: Merchant, row: int) -> dict[str, Any]:
    c = m.cols
    status = c.o_status[row]
    return {
        "public_id": m.order_id(row),
        "customer": ids.customer_id(c.o_customer[row]),
        "status": status,
        "place": format_day(c.o_place[row]),
        "currency_code": "USD",
        "order_merchant_id": None if status == ORDER_UNSENT else f"SHOP-{row + 100000}",
    }


def render_order(m: Merchant, row: int) -> dict[str, Any]:
    c = m.cols
    out = _order_fields(m, row)
    out.update({k: money(v) for k, v in _order_amounts(m, row).items()})
    out["created"] = _ts(m, c.o_created[row])
    out["updated"] = _ts(m, c.o_updated[row])
    return out


def webhook_order(m: Merchant, row: int) -> dict[str, Any]:
    c = m.cols
    out = _order_fields(m, row)
    out.update({k: money(v) for k, v in _order_amounts(m, row).items()})
    out["created"] = c.o_created[row]
    out["updated"] = c.o_updated[row]
    return out


def _item_fields(m: Merchant, row: int) -> dict[str, Any]:
    c = m.cols
    sub = c.o_sub[row]
    product = c.products[c.s_product[sub]]
    qty = c.s_quantity[sub]
    return {
        "public_id": m.item_id(row),
        "order": m.order_id(row),
        "subscription": m.sub_id(sub),
        "product": product["external_product_id"],
        "quantity": qty,
        "price": money(product["price_cents"]),
        "total_price": money(product["price_cents"] * qty),
        "one_time": False,
    }


def render_item(m: Merchant, row: int) -> dict[str, Any]:
    c = m.cols
    out = _item_fields(m, row)
    out["created"] = _ts(m, c.o_created[row])
    out["updated"] = _ts(m, c.o_updated[row])
    return out


def webhook_item(m: Merchant, row: int) -> dict[str, Any]:
    c = m.cols
    out = _item_fields(m, row)
    out["created"] = c.o_created[row]
    out["updated"] = c.o_updated[row]
    return out


def render_product(m: Merchant, row: int, unix: bool = False) -> dict[str, Any]:
    p = m.cols.products[row]
    return {
        "external_product_id": p["external_product_id"],
        "sku": p["external_product_id"],
        "name": p["name"],
        "price": money(p["price_cents"]),
        "image_url": p["image_url"],
        "detail_url": p["detail_url"],
        "live": p["live"],
        "autoship_enabled": True,
        "created": p["created"] if unix else _ts(m, p["created"]),
    }


def snapshot(m: Merchant, cust: int) -> dict[str, Any]:
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
