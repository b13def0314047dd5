"""State never regresses: late versions, reruns of old hours, and the product catalogue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from og_pipeline.db.connection import connect
from og_pipeline.ordergroove.load import store
from og_pipeline.ordergroove.records import ParseContext
from og_pipeline_tests.pipeline.conftest import (
    NOW,
    START,
    Pipeline,
    check_evaluations,
    expected_fields,
    metadata,
)
from og_pipeline_tests.stamps import utc_of


def _hour_of(timestamp: str) -> datetime:
    moment = utc_of(timestamp)
    assert moment is not None
    return moment.replace(minute=0, second=0, microsecond=0)


def test_a_cancellation_survives_rerunning_the_hour_that_loaded_the_subscription(
    pipeline: Pipeline,
) -> None:
    merchant = pipeline.sandbox.merchant
    assert pipeline.sync(START, NOW).success
    truth = merchant.ground_truth()
    subscription_id = next(
        sid
        for sid in merchant.subscription_ids(live=True)
        if _hour_of(merchant.subscription(sid)["updated"]) >= START
        and truth[merchant.subscription(sid)["customer"]]["email"]
    )
    loaded_hour = _hour_of(merchant.subscription(subscription_id)["updated"])
    customer = merchant.subscription(subscription_id)["customer"]

    merchant.cancel_subscription(subscription_id, at=NOW - timedelta(minutes=30))
    assert pipeline.sync(NOW - timedelta(hours=1), NOW).success
    assert pipeline.query(
        "SELECT live FROM og.subscriptions WHERE public_id = %s", subscription_id
    ) == [(False,)]

    rerun = pipeline.sync(loaded_hour, loaded_hour + timedelta(hours=1))
    assert rerun.success
    assert pipeline.query(
        "SELECT live FROM og.subscriptions WHERE public_id = %s", subscription_id
    ) == [(False,)]
    assert pipeline.ometria_contacts()[f"og-{customer}"]["properties"] == expected_fields(
        merchant.ground_truth()[customer]
    )
    assert metadata(rerun, "ometria_contact_fields")["contacts_pushed"] == 0


def _subscription(updated: str, live: bool) -> dict[str, object]:
    return {
        "public_id": "sub-1",
        "customer": "cust-1",
        "product": "SKU-1",
        "live": live,
        "cancelled": None if live else updated,
        "created": "2026-11-01 08:00:00",
        "updated": updated,
    }


def test_an_older_version_never_replaces_a_newer_one(db_url: str) -> None:
    with connect(db_url) as conn:
        chicago = ParseContext("America/Chicago", NOW)
        newer = [_subscription("2026-11-02 09:00:00", live=False)]
        assert store(conn, "subscriptions", newer, chicago, source="webhook").inserted == 1
        conn.execute("DELETE FROM og.dirty_contacts")
        counts = store(
            conn, "subscriptions", [_subscription("2026-11-01 08:00:00", live=True)], chicago
        )
        assert (counts.inserted, counts.updated, counts.unchanged) == (0, 0, 1)
        row = conn.execute("SELECT live, source, updated_at FROM og.subscriptions").fetchone()
        assert row == (False, "webhook", datetime(2026, 11, 2, 15, 0, tzinfo=UTC))
        # Nothing changed, so nobody is marked for a recompute or a push.
        assert conn.execute("SELECT count(*) FROM og.dirty_contacts").fetchone() == (0,)


def test_a_newer_version_replaces_and_marks_its_contact(db_url: str) -> None:
    with connect(db_url) as conn:
        utc = ParseContext("UTC", NOW)
        store(conn, "subscriptions", [_subscription("2026-11-01 08:00:00", True)], utc)
        conn.execute("DELETE FROM og.dirty_contacts")
        counts = store(conn, "subscriptions", [_subscription("2026-11-03 08:00:00", False)], utc)
        assert counts.updated == 1
        assert conn.execute("SELECT live FROM og.subscriptions").fetchone() == (False,)
        assert conn.execute("SELECT customer_id FROM og.dirty_contacts").fetchall() == [("cust-1",)]


def test_products_refresh_reads_the_catalogue_and_rewrites_only_changes(pipeline: Pipeline) -> None:
    first = pipeline.run_job("ordergroove_products_refresh")
    assert first.success
    products = pipeline.sandbox.merchant.counts()["products"]
    assert metadata(first, "ordergroove_products")["products_inserted"] == products
    assert pipeline.query("SELECT count(*) FROM og.products WHERE image_url IS NOT NULL") == [
        (products,)
    ]
    again = pipeline.run_job("ordergroove_products_refresh")
    assert metadata(again, "ordergroove_products")["products_updated"] == 0


def test_a_mass_drop_in_active_contacts_blocks_the_push_until_allowed(pipeline: Pipeline) -> None:
    merchant = pipeline.sandbox.merchant
    assert pipeline.sync(START, NOW).success
    before = pipeline.ometria_contacts()
    live = merchant.subscription_ids(live=True)
    active_customers = sorted({merchant.subscription(sid)["customer"] for sid in live})
    doomed = set(active_customers[: len(active_customers) * 3 // 10])
    for sid in live:
        if merchant.subscription(sid)["customer"] in doomed:
            merchant.cancel_subscription(sid, at=NOW - timedelta(minutes=20))

    blocked = pipeline.sync(NOW - timedelta(hours=1), NOW)
    assert not blocked.success
    checks = check_evaluations(blocked)
    assert checks["no_mass_drop_in_active_contacts"].passed is False
    # The block says what a dry run would have pushed: at least every doomed contact that has
    # an e-mail, each changing status.
    doomed_with_email = sum(1 for c in doomed if merchant.ground_truth()[c]["email"])
    said = checks["no_mass_drop_in_active_contacts"].metadata
    assert said["would_push_changed_status"].value == doomed_with_email
    assert said["would_push"].value >= doomed_with_email
    assert pipeline.ometria_contacts() == before, (
        "nothing may be pushed past a failed blocking check"
    )

    allowed = pipeline.sync(
        NOW - timedelta(hours=1),
        NOW,
        run_config={
            "ops": {"contact_subscription_stats": {"config": {"max_active_drop_share": 1.0}}}
        },
    )
    assert allowed.success
    for customer in doomed:
        if merchant.ground_truth()[customer]["email"]:
            assert (
                pipeline.ometria_contacts()[f"og-{customer}"]["properties"][
                    "ordergroove_subscription_status"
                ]
                == "inactive"
            )
