"""Signed Ordergroove Webhooks 2.0 sender.

`sign_webhook` / `signature_header` implement Ordergroove's scheme: hex HMAC-SHA256 keyed with the
route's Verification Key over `f"{ts}."` + the raw body, sent as `OrderGroove-Signature:
ts=<ts>,sig=<hex>` (one `sig=` per key during a rotation). `WebhookSender.stream` picks seeded
actions, applies each to the merchant store first (so REST agrees with what the event says), then
builds the envelope from the store's current state and POSTs it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from collections.abc import Sequence
from typing import Any

import requests

from . import ids, render
from .merchant import Merchant
from .model import CANCEL_REASONS

SIGNATURE_HEADER = "OrderGroove-Signature"


def sign_webhook(body: bytes, key: str, ts: int) -> str:
    return hmac.new(key.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(body: bytes, keys: Sequence[str], ts: int) -> str:
    return ",".join([f"ts={ts}"] + [f"sig={sign_webhook(body, k, ts)}" for k in keys])


class WebhookSender:
    """Builds and sends envelopes for one merchant store to one receiver URL."""

    def __init__(
        self,
        merchant: Merchant,
        url: str,
        keys: Sequence[str] | str,
        seed: int = 0,
        snapshot: str | None = "top",  # "top", "data" or None (no snapshot)
        timeout: float = 10.0,
        session: requests.Session | None = None,
    ) -> None:
        self.merchant = merchant
        self.url = url
        self.keys = [keys] if isinstance(keys, str) else list(keys)
        self.rng = random.Random(seed)
        self.snapshot = snapshot
        self.timeout = timeout
        self.session = session or requests.Session()

    # ------------------------------------------------------------------ envelopes

    def event_for(
        self,
        type: str,
        *,
        subscription_id: str | None = None,
        order_id: str | None = None,
        customer_id: str | None = None,
        created: int | None = None,
        event_id: str | None = None,
        snapshot: str | None | bool = True,
    ) -> dict[str, Any]:
        """An envelope for the store's current state of the named record."""
        m = self.merchant
        with m.lock:
            if subscription_id is not None:
                row = m.sub_row(subscription_id)
                obj = render.webhook_subscription(m, row)
                cust = m.cols.s_customer[row]
                kind = "subscription"
            elif order_id is not None:
                row = m.order_row(order_id)
                obj = render.webhook_order(m, row)
                cust = m.cols.o_customer[row]
                kind = "order"
            elif customer_id is not None:
                cust = m.customer_row(customer_id)
                obj = render.webhook_customer(m, cust)
                kind = "customer"
            else:
                raise ValueError("name a subscription, an order or a customer")
            # Ordergroove writes the object type both ways; receivers must accept either.
            obj["type"] = kind if self.rng.random() < 0.5 else kind.capitalize()
            snap = render.snapshot(m, cust)
        stamp = obj.get("updated") or obj.get("last_updated") or int(time.time())
        envelope: dict[str, Any] = {
            "id": event_id or f"{self.rng.getrandbits(128):032x}",
            "type": type,
            "created": int(created if created is not None else stamp),
            "data": {"object": obj},
        }
        context = {"merchant": "sandbox-merchant", "source": "og-pipeline-sandbox"}
        where = self.snapshot if snapshot is True else (snapshot or None)
        if where == "data":
            envelope["data"]["snapshot"] = snap
            envelope["data"]["context"] = context
        else:
            envelope["context"] = context
            if where == "top":
                envelope["snapshot"] = snap
        return envelope

    def send(
        self,
        envelope: dict[str, Any] | None,
        *,
        keys: Sequence[str] | None = None,
        ts: int | None = None,
        raw_body: bytes | None = None,
    ) -> requests.Response:
        body = raw_body if raw_body is not None else json.dumps(envelope).encode()
        stamp = int(time.time()) if ts is None else ts
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(body, list(keys) if keys else self.keys, stamp),
        }
        return self.session.post(self.url, data=body, headers=headers, timeout=self.timeout)

    # ------------------------------------------------------------------ actions

    def _random_live_sub(self, need_upcoming: bool) -> str | None:
        m = self.merchant
        with m.lock:
            c = m.cols
            n = len(c.s_customer)
            for _ in range(64):
                row = self.rng.randrange(n) if n else -1
                if row >= 0 and c.s_live[row] and (not need_upcoming or c.s_upcoming[row] >= 0):
                    return m.sub_id(row)
        return None

    def apply_random_action(self, weights: dict[str, float] | None = None) -> dict[str, Any]:
        """Mutates the store with one seeded action and returns its envelope (not sent)."""
        weights = weights or {
            "subscription.create": 0.4,
            "subscription.cancel": 0.3,
            "order.reminder": 0.3,
        }
        kinds = list(weights)
        action = self.rng.choices(kinds, [weights[k] for k in kinds])[0]
        m = self.merchant
        if action == "subscription.cancel":
            pid = self._random_live_sub(need_upcoming=False)
            if pid is not None:
                code = 1 + self.rng.randrange(len(CANCEL_REASONS))
                m.cancel_subscription(pid, reason=f"{code}|{CANCEL_REASONS[code]}")
                return self.event_for(action, subscription_id=pid)
            action = "subscription.create"
        if action == "order.reminder":
            pid = self._random_live_sub(need_upcoming=True)
            if pid is not None:
                order = m.upcoming_order_id(pid)
                assert order is not None
                return self.event_for(action, order_id=order, created=int(time.time()))
            action = "subscription.create"
        if action == "subscription.reactivate":
            with m.lock:
                dead = [r for r in range(min(len(m.cols.s_live), 5000)) if not m.cols.s_live[r]]
            if dead:
                pid = m.sub_id(self.rng.choice(dead))
                m.reactivate_subscription(pid)
                return self.event_for(action, subscription_id=pid)
            action = "subscription.create"
        with m.lock:
            n_customers = len(m.cols.c_created)
            products = m.product_ids()
        if n_customers:
            customer = ids.customer_id(self.rng.randrange(n_customers))
        else:
            customer = m.create_customer()
        pid = m.create_subscription(
            customer, self.rng.choice(products), frequency=self.rng.randrange(7)
        )
        return self.event_for("subscription.create", subscription_id=pid)

    def stream(
        self,
        count: int | None,
        rate: float | None = None,
        stop: threading.Event | None = None,
        weights: dict[str, float] | None = None,
    ) -> list[tuple[dict[str, Any], requests.Response | Exception]]:
        """Applies and sends `count` seeded actions (None = until `stop`), `rate` per second."""
        sent: list[tuple[dict[str, Any], requests.Response | Exception]] = []
        stop = stop or threading.Event()
        began = time.monotonic()
        i = 0
        while (count is None or i < count) and not stop.is_set():
            if rate:
                # Pace against the start time so slow sends do not lower the long-run rate.
                wait = began + i / rate - time.monotonic()
                if wait > 0 and stop.wait(wait):
                    break
            envelope = self.apply_random_action(weights)
            try:
                outcome: requests.Response | Exception = self.send(envelope)
            except requests.RequestException as exc:
                outcome = exc
            sent.append((envelope, outcome))
            if count is None and len(sent) > 1000:
                del sent[:500]
            i += 1
        return sent
