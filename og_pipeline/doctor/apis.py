"""The keys and the webhook receiver: each check makes at most one request that writes nothing.

- ordergroove key: ORDERGROOVE_API_KEY is accepted, with the Bulk Operations permission (one
  page of one subscription).
- ometria key: OMETRIA_API_KEY is accepted (GET /v2/push/_errors, the one documented request
  that writes nothing; whether the key may push cannot be seen without a push).
- webhook key: ORDERGROOVE_WEBHOOK_KEY holds at least one key when a real Ordergroove is
  configured (without one the receiver refuses to start).
- receiver: with --receiver-url, the receiver answers GET /healthz with 200.

A key that is not set is ``skipped``, not a failure: `og-pipeline dev` runs on the sandbox.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import requests

from og_pipeline.doctor.context import Context
from og_pipeline.doctor.model import (
    OMETRIA_KEY,
    ORDERGROOVE_KEY,
    RECEIVER,
    WEBHOOK_KEY,
    Check,
    Verdict,
    public_url,
)


def ordergroove(ctx: Context) -> Check:
    settings = ctx.need_settings()
    # Imported when the check runs, not when the command loads (as the Ometria client below).
    from og_pipeline.ordergroove.client import (
        OrdergrooveAPIError,
        OrdergrooveAuthError,
        OrdergrooveClient,
    )

    key = settings.ordergroove_api_key
    if key is None:
        return Check(
            ORDERGROOVE_KEY,
            Verdict.SKIPPED,
            "ORDERGROOVE_API_KEY is not set: `og-pipeline dev` uses its sandbox Ordergroove; "
            "`sync` and production need a key with the Bulk Operations permission",
        )
    where = public_url(settings.ordergroove_api_url)
    try:
        with OrdergrooveClient(
            settings.ordergroove_api_url,
            key.get_secret_value(),
            page_size=1,
            read_timeout=20,
            max_retries=2,
            max_retry_after=10,
            zone=settings.ordergroove_timezone,
        ) as client:
            # One page of one record of a list endpoint: the cheapest request that needs
            # the Bulk Operations permission, as the sync's walks do.
            next(iter(client.iter_pages("subscriptions")), None)
    except OrdergrooveAuthError as exc:
        # The client's message names the variable and says what to do (401 vs 403).
        return Check(
            ORDERGROOVE_KEY, Verdict.FAIL, f"at {where}: {exc}", facts={"status": exc.status}
        )
    except OrdergrooveAPIError as exc:
        return Check(
            ORDERGROOVE_KEY,
            Verdict.FAIL,
            f"at {where}: {exc}",
            "check ORDERGROOVE_API_URL and the network",
            {"status": exc.status},
        )
    return Check(
        ORDERGROOVE_KEY,
        Verdict.OK,
        f"GET /subscriptions/ answered at {where}: the key is accepted, with the Bulk "
        "Operations permission",
    )


def ometria(ctx: Context) -> Check:
    settings = ctx.need_settings()
    from og_pipeline.ometria.client import OmetriaAPIError, OmetriaAuthError, OmetriaClient

    key = settings.ometria_api_key
    if key is None:
        return Check(
            OMETRIA_KEY,
            Verdict.SKIPPED,
            "OMETRIA_API_KEY is not set: `og-pipeline dev` uses its sandbox Ometria; `sync` "
            "and production need the key",
        )
    where = public_url(settings.ometria_api_url)
    try:
        with OmetriaClient(
            settings.ometria_api_url,
            key.get_secret_value(),
            requests_per_second=settings.ometria_requests_per_second,
            rate_margin=settings.ometria_rate_margin_seconds,
            read_timeout=20,
            max_retries=2,
            max_retry_after=10,
        ) as client:
            # The one documented request that writes nothing (ometria-api.md).
            errors = client.errors()
    except OmetriaAuthError as exc:
        # The client's message names the variable and says what to check.
        return Check(OMETRIA_KEY, Verdict.FAIL, f"at {where}: {exc}", facts={"status": exc.status})
    except OmetriaAPIError as exc:
        return Check(
            OMETRIA_KEY,
            Verdict.FAIL,
            f"at {where}: {exc}",
            "check OMETRIA_API_URL and the network",
            {"status": exc.status},
        )
    return Check(
        OMETRIA_KEY,
        Verdict.OK,
        f"GET /v2/push/_errors answered at {where}: the key is accepted ({len(errors)} "
        "recent asynchronous push errors); not verifiable without a push: that the key may "
        "push, and that the custom fields and event types exist in the account",
        facts={"recent_push_errors": len(errors)},
    )


def webhook_key(ctx: Context) -> Check:
    settings = ctx.need_settings()
    keys = settings.webhook_keys
    if keys:
        count = f"{len(keys)} keys, a rotation" if len(keys) > 1 else "1 key"
        return Check(WEBHOOK_KEY, Verdict.OK, f"ORDERGROOVE_WEBHOOK_KEY is set ({count})")
    what = (
        "ORDERGROOVE_WEBHOOK_KEY holds no key (only commas)"
        if settings.ordergroove_webhook_key is not None
        else "ORDERGROOVE_WEBHOOK_KEY is not set"
    )
    if settings.ordergroove_api_key is None:
        # No real Ordergroove sends webhooks here; `dev`'s receiver gets the sandbox's key.
        return Check(
            WEBHOOK_KEY,
            Verdict.SKIPPED,
            f"{what}: with the sandbox Ordergroove, `dev` gives the receiver the sandbox's key",
        )
    return Check(
        WEBHOOK_KEY,
        Verdict.WARN,
        f"{what}: the receiver refuses to start (`dev` starts none), so no webhook arrives",
        "set it to the Verification Key of the webhook route in Ordergroove",
    )


def receiver(ctx: Context) -> Check:
    if ctx.receiver_url is None:
        return Check(
            RECEIVER,
            Verdict.SKIPPED,
            "no --receiver-url given",
            "pass --receiver-url http://HOST:8701 to check a running receiver",
        )
    try:
        url = _health_url(ctx.receiver_url)
    except ValueError as exc:
        return Check(RECEIVER, Verdict.FAIL, f"--receiver-url: {exc}")
    shown = public_url(url)
    try:
        response = requests.get(url, timeout=(5, 10), allow_redirects=False)
    except requests.RequestException as exc:
        # Only the class: the exception's text repeats the URL and urllib3's internals.
        return Check(
            RECEIVER,
            Verdict.FAIL,
            f"GET {shown} got no answer ({type(exc).__name__})",
            "is the receiver running (og-pipeline webhooks serve), on that host and port?",
        )
    status = response.status_code
    response.close()
    if status == 200:
        return Check(RECEIVER, Verdict.OK, f"GET {shown} answered 200", facts={"status": 200})
    todo = (
        "the receiver is up but its database does not answer: check its OG_DATABASE_URL and its log"
        if status == 503
        else "is this og-pipeline's receiver? It answers GET /healthz"
    )
    return Check(RECEIVER, Verdict.FAIL, f"GET {shown} answered {status}", todo, {"status": status})


def _health_url(url: str) -> str:
    """GET /healthz of the receiver at ``url``: its base, its webhook URL or its health URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http(s):// URL of the receiver, e.g. http://127.0.0.1:8701")
    _ = parts.port  # raises ValueError on a bad port, before any request
    path = parts.path.rstrip("/")
    for suffix in ("/webhooks/ordergroove", "/healthz"):
        path = path.removesuffix(suffix)
    return urlunsplit((parts.scheme, parts.netloc, path + "/healthz", "", ""))
