"""Signed webhooks: signatures verify with plain hmac; the sender applies actions to the store."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace

import requests

from og_pipeline.sandbox import (
    Merchant,
    SandboxServer,
    WebhookSender,
    sign_webhook,
    signature_header,
)

from .conftest import small_spec, walk


def _verify(body: bytes, header: str, key: str) -> bool:
    parts = [p.split("=", 1) for p in header.split(",")]
    ts = next(v for k, v in parts if k == "ts")
    expected = hmac.new(key.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, v) for k, v in parts if k == "sig")


def test_signature_one_key() -> None:
    body = b'{"id":"e1","type":"subscription.create"}'
    assert (
        sign_webhook(body, "k1", 1700000000)
        == hmac.new(b"k1", b"1700000000." + body, hashlib.sha256).hexdigest()
    )
    header = signature_header(body, ["k1"], 1700000000)
    assert header.startswith("ts=1700000000,sig=") and header.count("sig=") == 1
    assert _verify(body, header, "k1")
    assert not _verify(body, header, "k2")
    assert not _verify(body + b" ", header, "k1")


def test_signature_two_keys_during_rotation() -> None:
    body = b'{"id":"e2"}'
    header = signature_header(body, ["old", "new"], 1700000001)
    assert header.count("sig=") == 2
    assert _verify(body, header, "old") and _verify(body, header, "new")
    assert not _verify(body, header, "other")


def test_send_posts_signed_envelope(fresh_sandbox: SandboxServer) -> None:
    sink = fresh_sandbox.url + "/_sandbox/webhook_sink"
    sender = fresh_sandbox.webhook_sender(sink, seed=1)
    sub = fresh_sandbox.merchant.subscription_ids(live=True)[0]
    envelope = sender.event_for("subscription.create", subscription_id=sub)
    assert sender.send(envelope, ts=1700000002).status_code == 200
    sender.send(envelope, keys=["sandbox-webhook-key", "next-key"])
    received = requests.get(sink).json()
    assert len(received) == 2
    for item, keys in zip(
        received, (["sandbox-webhook-key"], ["sandbox-webhook-key", "next-key"]), strict=True
    ):
        body = item["body"].encode()
        header = item["headers"]["ordergroove-signature"]
        assert all(_verify(body, header, k) for k in keys)
    first = json.loads(received[0]["body"])
    assert first["id"] == envelope["id"] and first["type"] == "subscription.create"
    obj = first["data"]["object"]
    assert obj["public_id"] == sub and isinstance(obj["extra_data"], dict)
    assert isinstance(obj["created"], int) and isinstance(obj["updated"], int)
    assert obj["type"] in ("subscription", "Subscription")
    snap = first["snapshot"]
    assert snap["customer"]["merchant_user_id"] == obj["customer"]
    assert sub in {s["public_id"] for s in snap["subscriptions"]}
    assert obj["product"] in {p["external_product_id"] for p in snap["products"]}


def test_snapshot_placement_inside_data(fresh_sandbox: SandboxServer) -> None:
    sender = WebhookSender(fresh_sandbox.merchant, "http://unused", ["k"], snapshot="data")
    sub = fresh_sandbox.merchant.subscription_ids()[0]
    envelope = sender.event_for("subscription.cancel", subscription_id=sub)
    assert "snapshot" in envelope["data"] and "snapshot" not in envelope


def test_stream_applies_to_store_first_so_rest_agrees(
    fresh_sandbox: SandboxServer, http: requests.Session
) -> None:
    sink = fresh_sandbox.url + "/_sandbox/webhook_sink"
    sender = fresh_sandbox.webhook_sender(sink, seed=5)
    before = fresh_sandbox.merchant.counts()["subscriptions"]
    sent = sender.stream(30, rate=None)
    assert len(sent) == 30 and all(r.status_code == 200 for _, r in sent)  # type: ignore[union-attr]
    types = {env["type"] for env, _ in sent}
    assert types <= {"subscription.create", "subscription.cancel", "order.reminder"}
    assert len(types) == 3
    subs, _ = walk(http, fresh_sandbox.ordergroove_url + "/subscriptions/", {"page_size": 100})
    by_id = {s["public_id"]: s for s in subs}
    created = [env for env, _ in sent if env["type"] == "subscription.create"]
    assert len(by_id) == before + len(created)
    for env, _ in sent:
        obj = env["data"]["object"]
        if env["type"] == "subscription.cancel":
            assert by_id[obj["public_id"]]["live"] in (False, "False")
            assert obj["live"] is False and obj["cancelled"]
        if env["type"] == "order.reminder":
            assert obj["status"] == 1
    ids = [env["id"] for env, _ in sent]
    assert len(set(ids)) == len(ids)


def test_stream_actions_are_seeded() -> None:
    def actions(seed: int) -> list[tuple[str, str, str]]:
        sender = WebhookSender(Merchant(small_spec(100, seed=3)), "http://unused", ["k"], seed)
        out = []
        for _ in range(25):
            env = sender.apply_random_action()
            obj = env["data"]["object"]
            out.append((env["type"], env["id"], obj["public_id"]))
        return out

    assert actions(8) == actions(8)
    assert actions(8) != actions(9)


def test_webhook_objects_stay_well_formed_and_items_carry_no_timestamp() -> None:
    m = Merchant(replace(small_spec(300, seed=11), bad_record_share=0.5))
    sender = WebhookSender(m, "http://unused", ["k"], seed=2)
    bad_subs = [b.id for b in m.bad_records() if b.resource == "subscriptions"]
    assert bad_subs
    for sub in bad_subs[:20]:
        obj = sender.event_for("subscription.cancel", subscription_id=sub)["data"]["object"]
        assert obj["public_id"] == sub and isinstance(obj["updated"], int)
        assert obj["customer"] and isinstance(obj["quantity"], int)
        assert obj["live"] in (True, False) and isinstance(obj["extra_data"], dict)
    live = m.subscription_ids(live=True)[0]
    order = m.upcoming_order_id(live)
    assert order is not None
    snap = sender.event_for("order.reminder", order_id=order)["snapshot"]
    assert snap["items"]
    for item in snap["items"]:
        assert item["public_id"] and item["order"]
        assert not {"updated", "created", "order_updated", "first_placed"} & set(item)
