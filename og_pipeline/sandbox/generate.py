"""Seeded generation of a merchant's history into a `Columns` (store.py calls `populate`).

Flow: draw subscription creation instants uniformly over [start, now] and sort them, so rows are
in creation order; each subscription either opens a new customer (with probability
customers_per_subscription) or joins an existing one; a (1 - live_share) share is cancelled at a
uniform instant after creation; past placements (at most max_past_orders, the latest ones) become
placed or skipped orders; every live subscription gets one upcoming (status 1) order whose
`place` is the first placement date after `now`. One `random.Random(seed)` drives it all, so the
result is a pure function of the spec.
"""

from __future__ import annotations

import random

from .clock import LocalClock
from .columns import Columns, MerchantSpec
from .model import FREQUENCIES, ORDER_CANCELLED, ORDER_PLACED, ORDER_UNSENT, frequency_days

# fmt: off
PRODUCT_WORDS = (
    "Coffee Beans", "Dog Food", "Vitamins", "Razor Blades", "Green Tea", "Protein Powder",
    "Cat Litter", "Face Serum", "Oat Milk", "Toothpaste", "Shampoo", "Dish Soap",
)
# fmt: on
# Placements happen early in the merchant's local morning.
PLACE_SECONDS = 6 * 3600


def _products(spec: MerchantSpec, c: Columns, start: int, rng: random.Random) -> None:
    for i in range(max(1, spec.products)):
        sku = f"SKU-{i + 1:05d}"
        price_cents = rng.randrange(499, 8999)
        c.products.append(
            {
                "external_product_id": sku,
                "name": f"{PRODUCT_WORDS[i % len(PRODUCT_WORDS)]} #{i // len(PRODUCT_WORDS) + 1}",
                "price_cents": price_cents,
                "image_url": f"https://cdn.example.com/products/{sku}.jpg",
                "detail_url": f"https://shop.example.com/products/{sku.lower()}",
                "live": rng.random() > 0.05,
                "created": start,
            }
        )


def populate(spec: MerchantSpec, c: Columns, clock: LocalClock, start: int, now: int) -> None:
    """Fills the empty columns `c` with the history of `spec` over [start, now] (UTC seconds)."""
    rng = random.Random(spec.seed)
    _products(spec, c, start, rng)
    n = max(0, spec.subscriptions)
    n_products = len(c.products)
    n_freq = len(FREQUENCIES)
    now_day = clock.local_day(now)
    new_customer_p = min(1.0, max(0.0, spec.customers_per_subscription))
    rand = rng.random
    randrange = rng.randrange

    created_all = sorted(randrange(start, now + 1) for _ in range(n))

    s_customer, s_product, s_quantity, s_freq = c.s_customer, c.s_product, c.s_quantity, c.s_freq
    s_created, s_updated, s_live = c.s_created, c.s_updated, c.s_live
    s_cancelled, s_cancel_code, s_upcoming = c.s_cancelled, c.s_cancel_code, c.s_upcoming
    c_created, c_updated, c_live_count = c.c_created, c.c_updated, c.c_live_count
    c_subs, c_orders = c.c_subs, c.c_orders

    for row, created in enumerate(created_all):
        if not c_created or rand() < new_customer_p:
            cust = len(c_created)
            # The shopper's account predates the first subscription by up to an hour.
            c_created.append(max(start - 86400, created - randrange(0, 3600)))
            c_updated.append(c_created[-1])
            c_live_count.append(0)
            c_subs.append([])
            c_orders.append([])
        else:
            cust = randrange(len(c_created))
        freq = randrange(n_freq)
        s_customer.append(cust)
        s_product.append(randrange(n_products))
        s_quantity.append(1 + (randrange(10) == 0) + (randrange(20) == 0))
        s_freq.append(freq)
        s_created.append(created)
        c_subs[cust].append(row)
        s_upcoming.append(-1)

        live = rand() < spec.live_share
        end = now
        if live:
            s_live.append(1)
            s_cancelled.append(0)
            s_cancel_code.append(0)
            s_updated.append(created)
            c_live_count[cust] += 1
        else:
            cancelled = randrange(created, now + 1)
            end = cancelled
            s_live.append(0)
            s_cancelled.append(cancelled)
            s_cancel_code.append(1 + randrange(6))
            s_updated.append(cancelled)
            # The customer record moves when its last live subscription goes away; the final
            # live count is only known at the end, so note the latest cancellation for now.
            c_updated[cust] = max(c_updated[cust], cancelled)

        period = frequency_days(freq)
        first_day = clock.local_day(created)
        end_day = clock.local_day(end)
        placements = (end_day - first_day) // period
        k0 = max(1, placements - spec.max_past_orders + 1)
        for k in range(k0, placements + 1):
            day = first_day + k * period
            placed_at = min(end, clock.utc_at_local_time(day, PLACE_SECONDS))
            status = ORDER_CANCELLED if rand() < spec.skipped_order_share else ORDER_PLACED
            opened = max(created, placed_at - period * 86400)
            c.add_order(row, status, day, opened, placed_at)
        if live:
            next_day = first_day + (max(0, (now_day - first_day)) // period + 1) * period
            opened = created
            if placements >= 1:
                opened = min(now, clock.utc_at_local_time(next_day - period, PLACE_SECONDS))
                opened = max(opened, created)
            s_upcoming[row] = c.add_order(row, ORDER_UNSENT, next_day, opened, opened)

    # A customer still live keeps its own last_updated; only inactive ones moved at cancellation.
    for cust in range(len(c_created)):
        if c_live_count[cust] > 0:
            c_updated[cust] = c_created[cust]
