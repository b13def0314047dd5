"""The webhook receiver over real HTTP (uvicorn on 127.0.0.1) against a real Postgres.

Each case follows the design's endpoint table: what the answer is, and what the staging table
holds afterwards (one row, no row, an invalid row with its reason).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from psycopg import sql

from og_pipeline.db.connection import connect
from og_pipeline.db.urls import database_name
from og_pipeline.sandbox import Merchant, WebhookSender, signature_header
from og_pipeline.settings import load_settings
from og_pipeline.webhooks.signature import Failure, parse_header, verify

from .conftest import KEY, Receiver

Rows = Callable[..., list[dict[str, Any]]]


def _envelope(sender: WebhookSender, merchant: Merchant, **kwargs: Any) -> dict[str, Any]:
    sub = merchant.subscription_ids(live=True)[0]
    return sender.event_for("subscription.create", subscription_id=sub, **kwargs)


def _post(
    url: str, body: bytes, keys: list[str] | None = None, ts: int | None = None, **kwargs: Any
) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if keys is not None:
        headers["OrderGroove-Signature"] = signature_header(body, keys, ts or int(time.time()))
    return requests.post(url, data=body, headers=headers, timeout=10, **kwargs)


# ---------------------------------------------------------------- signature (no server)


def test_parse_header_tolerates_spaces_order_and_case() -> None:
    assert parse_header(" sig = AB12 , ts = 17 ") == (17, ["ab12"])
    assert parse_header("ts=1,sig=aa,sig=bb,") == (1, ["aa", "bb"])
    for bad in ("", "ts=1", "sig=aa", "ts=x,sig=aa", "ts=1,sig=zz", "ts=1,ts=2,sig=aa", "junk"):
        assert parse_header(bad) is None, bad


def test_verify_reasons() -> None:
    body, now = b'{"id":"e","type":"t"}', 1_800_000_000
    header = signature_header(body, ["k"], now)
    assert verify(header, body, ["k"]).ok
    assert verify(None, body, ["k"]).failure is Failure.MISSING
    assert verify("ts=1", body, ["k"]).failure is Failure.MALFORMED
    assert verify(header, body + b" ", ["k"]).failure is Failure.NO_MATCH
    assert verify(header, body, ["other"]).failure is Failure.NO_MATCH
    assert verify(header, body, ["k"], max_age_seconds=60, now=now + 61).failure is Failure.TOO_OLD
    assert verify(header, body, ["k"], max_age_seconds=60, now=now + 59).ok


# ---------------------------------------------------------------- accepted deliveries


def test_valid_signature_is_stored_once(
    sender: WebhookSender, merchant: Merchant, staged_rows: Rows
) -> None:
    envelope = _envelope(sender, merchant)
    response = sender.send(envelope)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "stored", "id": envelope["id"]}
    [row] = staged_rows()
    assert row["event_id"] == envelope["id"]
    assert row["event_type"] == "subscription.create"
    assert row["status"] == "pending" and row["last_error"] is None
    assert row["og_created_at"] == datetime.fromtimestamp(envelope["created"], UTC)
    assert bytes(row["body"]) == json.dumps(envelope).encode()  # the raw bytes, as sent
    assert row["payload"] == envelope


def test_header_name_is_case_insensitive(receiver: Receiver, staged_rows: Rows) -> None:
    body = b'{"id": 42, "type": "order.reminder", "created": 1800000000}'
    header = signature_header(body, [KEY], int(time.time()))
    response = requests.post(receiver.url, data=body, headers={"ordergroove-signature": header})
    assert response.status_code == 200, response.text
    [row] = staged_rows()
    assert (row["event_id"], row["status"]) == ("42", "pending")  # a numeric id, as text


def test_duplicate_event_id_answers_2xx_with_one_row(
    sender: WebhookSender, merchant: Merchant, staged_rows: Rows
) -> None:
    envelope = _envelope(sender, merchant)
    first = sender.send(envelope)
    again = sender.send(envelope, ts=int(time.time()) + 1)  # a retry: new ts, same event
    assert (first.status_code, again.status_code) == (200, 200)
    assert again.json()["status"] == "duplicate"
    assert len(staged_rows()) == 1


def test_two_signatures_during_rotation(
    start_receiver: Callable[..., Receiver], staged_rows: Rows
) -> None:
    # Ordergroove signs with the old and the new key for a day: a receiver holding either accepts.
    for i, receiver_key in enumerate(("old-key", "new-key")):
        receiver = start_receiver([receiver_key])
        body = json.dumps({"id": f"rot-{i}", "type": "subscription.cancel"}).encode()
        response = _post(receiver.url, body, keys=["old-key", "new-key"])
        assert response.status_code == 200, response.text
        assert _post(receiver.url, body, keys=["other-key", "third-key"]).status_code == 401
    assert [row["event_id"] for row in staged_rows()] == ["rot-0", "rot-1"]


def test_second_key_of_the_configured_list_is_valid(
    start_receiver: Callable[..., Receiver], staged_rows: Rows
) -> None:
    keys = load_settings({"ORDERGROOVE_WEBHOOK_KEY": "current-key, next-key"}).webhook_keys
    receiver = start_receiver(keys)
    body = b'{"id": "k2", "type": "subscription.create"}'
    assert _post(receiver.url, body, keys=["next-key"]).status_code == 200
    assert _post(receiver.url, body.replace(b"k2", b"k1"), keys=["current-key"]).status_code == 200
    assert {row["event_id"] for row in staged_rows()} == {"k1", "k2"}


# ---------------------------------------------------------------- refused: 401, nothing stored


def test_forged_signature_is_refused_and_nothing_stored(
    sender: WebhookSender, merchant: Merchant, staged_rows: Rows
) -> None:
    envelope = _envelope(sender, merchant)
    assert sender.send(envelope, keys=["not-the-key"]).status_code == 401
    # Signed with the right key, but over other bytes than those sent.
    body = json.dumps(envelope).encode()
    forged = sender.session.post(
        sender.url,
        data=body.replace(b"subscription.create", b"subscription.cancel"),
        headers={"OrderGroove-Signature": signature_header(body, [KEY], int(time.time()))},
    )
    assert forged.status_code == 401
    assert staged_rows() == []


@pytest.mark.parametrize("header", [None, "", "ts=1700000000", "sig=abc", "garbage"])
def test_missing_or_malformed_header_is_refused(
    receiver: Receiver, staged_rows: Rows, header: str | None
) -> None:
    headers = {} if header is None else {"OrderGroove-Signature": header}
    response = requests.post(receiver.url, data=b'{"id":"m","type":"t"}', headers=headers)
    assert response.status_code == 401
    assert staged_rows() == []


def test_max_age_refuses_old_ts_and_accepts_fresh(
    start_receiver: Callable[..., Receiver], staged_rows: Rows
) -> None:
    receiver = start_receiver(max_age_seconds=300)
    body = b'{"id": "aged", "type": "subscription.create"}'
    assert _post(receiver.url, body, keys=[KEY], ts=int(time.time()) - 3600).status_code == 401
    assert staged_rows() == []
    assert _post(receiver.url, body, keys=[KEY], ts=int(time.time())).status_code == 200
    assert len(staged_rows()) == 1


def test_max_age_is_off_by_default(receiver: Receiver, staged_rows: Rows) -> None:
    body = b'{"id": "old-retry", "type": "subscription.create"}'
    assert _post(receiver.url, body, keys=[KEY], ts=int(time.time()) - 86400).status_code == 200


# ---------------------------------------------------------------- authentic but invalid


@pytest.mark.parametrize(
    ("body", "event_id", "reason"),
    [
        (b'{"id": "x1", "type": ', None, "not JSON"),
        (b"\xff\xfe not utf-8", None, "body is not UTF-8 text"),
        (b'[{"id": "x2", "type": "t"}]', None, "not a JSON object (a array)"),
        (b'{"type": "subscription.create"}', None, "missing id"),
        (b'{"id": "x3"}', "x3", "missing type"),
        (b'{"id": true, "type": 7}', None, "id is not a string or number; type is not a string"),
        (b'{"id": "x4", "type": "t", "v": NaN}', None, "not JSON: NaN is not a JSON value"),
        (b'{"id": "x5", "type": "t", "v": "nul \\u0000"}', "x5", "JSON not storable as jsonb"),
    ],
)
def test_authentic_but_invalid_is_stored_with_its_reason(
    receiver: Receiver, staged_rows: Rows, body: bytes, event_id: str | None, reason: str
) -> None:
    response = _post(receiver.url, body, keys=[KEY])
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "invalid"
    [row] = staged_rows()
    assert row["status"] == "invalid"
    assert row["event_id"] == event_id
    assert row["last_error"].startswith(reason)
    assert bytes(row["body"]) == body


def test_retried_invalid_delivery_with_an_id_is_stored_once(
    receiver: Receiver, staged_rows: Rows
) -> None:
    body = b'{"id": "no-type"}'
    assert _post(receiver.url, body, keys=[KEY]).json()["status"] == "invalid"
    assert _post(receiver.url, body, keys=[KEY]).json()["status"] == "duplicate invalid"
    [row] = staged_rows()
    assert row["payload"] == {"id": "no-type"}


# ---------------------------------------------------------------- size limit


def test_oversized_body_is_refused_and_nothing_stored(
    start_receiver: Callable[..., Receiver], staged_rows: Rows
) -> None:
    limit = 4096
    receiver = start_receiver(max_body_bytes=limit)
    padding = "x" * (limit + 10)
    big = json.dumps({"id": "big", "type": "t", "pad": padding}).encode()
    assert _post(receiver.url, big, keys=[KEY]).status_code == 413  # by Content-Length

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    response = requests.post(
        receiver.url,
        data=chunks(),
        headers={"OrderGroove-Signature": signature_header(big, [KEY], int(time.time()))},
        timeout=10,
    )
    assert response.status_code == 413
    assert staged_rows() == []
    exact = json.dumps({"id": "fits", "type": "t", "pad": ""}).encode()
    exact = exact.replace(b'""', b'"' + b"y" * (limit - len(exact)) + b'"')
    assert len(exact) == limit
    assert _post(receiver.url, exact, keys=[KEY]).status_code == 200
    assert [row["event_id"] for row in staged_rows()] == ["fits"]


def test_a_megabyte_over_the_default_limit_is_answered_413(
    receiver: Receiver, staged_rows: Rows
) -> None:
    # Large enough that the client is still sending when the answer comes: it must still read
    # a 413, not a reset connection.
    big = b'{"id": "huge", "type": "t", "pad": "' + b"z" * (2 * 1024 * 1024) + b'"}'
    assert _post(receiver.url, big, keys=[KEY]).status_code == 413
    assert staged_rows() == []


# ---------------------------------------------------------------- database down and back


def _set_connections(pg_server_url: str, database: str, allow: bool) -> None:
    with connect(pg_server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                sql.Identifier(database), sql.Literal(allow)
            )
        )
        if not allow:
            # The pool's open connections die too, as in a server restart.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )


def test_database_down_answers_503_then_the_same_deliveries_land(
    receiver: Receiver, db_url: str, pg_server_url: str, staged_rows: Rows
) -> None:
    database = database_name(db_url)
    session = requests.Session()
    first = json.dumps({"id": "before", "type": "subscription.create"}).encode()
    assert _post(receiver.url, first, keys=[KEY]).status_code == 200
    assert session.get(receiver.health_url).status_code == 200

    _set_connections(pg_server_url, database, allow=False)
    try:
        bodies = [
            json.dumps({"id": f"during-{i}", "type": "subscription.cancel"}).encode()
            for i in range(3)
        ]
        for body in bodies:
            started = time.monotonic()
            response = _post(receiver.url, body, keys=[KEY])
            assert response.status_code == 503, response.text
            assert time.monotonic() - started < 4.0  # well inside Ordergroove's 5 s
        health = session.get(receiver.health_url)
        assert health.status_code == 503 and health.json() == {"status": "unavailable"}
    finally:
        _set_connections(pg_server_url, database, allow=True)

    # Ordergroove retries; each delivery lands once the pool has reconnected.
    deadline = time.monotonic() + 30
    pending = list(bodies)
    while pending and time.monotonic() < deadline:
        if _post(receiver.url, pending[0], keys=[KEY]).status_code == 200:
            pending.pop(0)
        else:
            time.sleep(0.2)  # Ordergroove's backoff, much shortened
    assert pending == []
    assert session.get(receiver.health_url).status_code == 200
    ids = [row["event_id"] for row in staged_rows()]
    assert ids == ["before"] + [f"during-{i}" for i in range(3)]


def test_a_hanging_database_answers_503_in_time(receiver: Receiver, db_url: str) -> None:
    # Another transaction holds the event id's unique-index entry: our INSERT waits on its lock,
    # as it would on a database that stopped answering. The answer must still come in time.
    body = b'{"id": "locked", "type": "subscription.create"}'
    with connect(db_url) as blocker:
        blocker.execute(
            "INSERT INTO og.webhook_events (event_id, event_type, body) VALUES ('locked', 't', '')"
        )
        started = time.monotonic()
        response = _post(receiver.url, body, keys=[KEY])
        assert response.status_code == 503
        assert time.monotonic() - started < 4.5
        blocker.rollback()
    assert _post(receiver.url, body, keys=[KEY]).json()["status"] == "stored"


def test_healthz_when_database_is_unreachable_from_the_start(
    start_receiver: Callable[..., Receiver], db_url: str, pg_server_url: str
) -> None:
    receiver = start_receiver(database_url=db_url.rsplit("/", 1)[0] + "/no_such_database")
    started = time.monotonic()
    assert requests.get(receiver.health_url, timeout=10).status_code == 503
    body = b'{"id": "lost?", "type": "t"}'
    assert _post(receiver.url, body, keys=[KEY]).status_code == 503
    assert time.monotonic() - started < 8.0


def test_healthz_ok(receiver: Receiver) -> None:
    response = requests.get(receiver.health_url, timeout=10)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


# ---------------------------------------------------------------- logs


def test_logs_name_status_type_and_id_but_never_body_email_key_or_signature(
    merchant: Merchant, sender: WebhookSender, caplog: pytest.LogCaptureFixture
) -> None:
    email = "logged.never@example.com"
    customer = merchant.create_customer(email=email)
    envelope = sender.event_for("subscription.create", customer_id=customer)
    envelope["data"]["object"]["email"] = email
    body = json.dumps(envelope).encode()
    ts = int(time.time())
    caplog.set_level(logging.DEBUG)
    assert sender.send(None, raw_body=body, ts=ts).status_code == 200
    assert sender.send(None, raw_body=body, ts=ts, keys=["wrong-key-q7"]).status_code == 401
    text = caplog.text
    assert "webhook 200 stored type=subscription.create id=" + envelope["id"] in text
    assert "webhook 401 invalid signature" in text and "no signature matches a key" in text
    assert email not in text and "logged.never" not in text
    assert KEY not in text and "wrong-key-q7" not in text
    assert signature_header(body, [KEY], ts).split("sig=")[1] not in text
    assert json.dumps(envelope["data"])[:40] not in text
