"""The webhook receiver: a Starlette app, served by uvicorn (``og-pipeline webhooks serve``).

``POST /webhooks/ordergroove`` answers as the design's endpoint table says:

    no or malformed signature header                      401 before the body is read
    body over the limit                                   413, nothing stored
    body not sent within the body timeout                 408, nothing stored
    more requests in flight than the limit                503 at once (Ordergroove retries)
    wrong signature (or older than max age)               401, nothing stored
    authentic, stored (or already stored: a duplicate)    200, after the row is committed
    authentic but not JSON / no id / no type              200, after storing it as invalid
    database unavailable                                  503, so that Ordergroove retries

``GET /healthz`` answers 200 only when the database answers ``SELECT 1``, else 503.

Database access goes through one ``psycopg_pool.AsyncConnectionPool`` per server process: the app
is async end to end, so a request waiting on Postgres costs a coroutine rather than a thread, and
no threadpool hop sits on the hot path. Connections are in autocommit mode, so the event's single
INSERT is committed (durably, with the server's ``synchronous_commit``) by the time its answer
arrives: one round trip per event. Every wait on the database is bounded (``db_timeout``, 2 s by
default) so that a dead database costs a fast 503, well inside Ordergroove's 5-second timeout.

Hostile or broken clients cannot hold the receiver: a request without a well-formed signature
header is refused before its body is read, a body must arrive within ``body_timeout`` (10 s by
default; Ordergroove itself gives up after 5), and at most ``max_in_flight`` requests are
served at once per process; beyond that the answer is an immediate 503.

One log line per request: status, outcome, event type and id, duration. Never the body, an
e-mail, a key or a signature: the reason for a refusal is our own fixed wording.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
import uvicorn
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from og_pipeline.db.urls import for_psycopg
from og_pipeline.webhooks import staging
from og_pipeline.webhooks.signature import SIGNATURE_HEADER, Failure, parse_header, verify

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/ordergroove"
HEALTH_PATH = "/healthz"

# Ordergroove gives up on a delivery after 5 s; everything we wait on must end well before.
DEFAULT_DB_TIMEOUT = 2.0
# A body still arriving after this long is a slow client holding a slot, not Ordergroove.
DEFAULT_BODY_TIMEOUT = 10.0
# Requests served at once per process: enough for Ordergroove's bursts, too few for a slow-client
# flood to exhaust memory (each may hold up to max_body_bytes) or the database pool's queue.
DEFAULT_MAX_IN_FLIGHT = 256
# After a failed connection attempt the pool retries with a growing delay; a short give-up time
# keeps that delay small, so the receiver is serving again a few seconds after Postgres is back.
POOL_RECONNECT_TIMEOUT = 5.0
# The environment variable through which `run` hands its settings to uvicorn's worker processes.
_CONFIG_ENV = "_OG_WEBHOOK_RECEIVER_CONFIG"
# Event ids and types are logged only as these characters, cut short: an authentic body is still
# data from outside, and this keeps a line on one line and any e-mail address unrecognisable.
_UNSAFE = re.compile(r"[^A-Za-z0-9._:\-]")

T = TypeVar("T")


def _safe(value: str | None, limit: int = 80) -> str:
    if value is None:
        return "-"
    return _UNSAFE.sub("?", value[:limit])


def _first_line(exc: BaseException) -> str:
    # psycopg's connection errors name the server and database (never the password); the first
    # line is enough to tell "refused" from "not accepting connections".
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


class _TooLarge(Exception):
    """The body is over the limit (by its Content-Length, or by the bytes actually sent)."""


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    # uvicorn has already refused a Content-Length that is not a number, with a 400.
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _TooLarge
    # Count while reading, so a lying Content-Length or a chunked body cannot go past the limit;
    # uvicorn pauses the socket while a chunk waits, so memory stays bounded as well.
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            raise _TooLarge
        body += chunk
    return bytes(body)


class _Database:
    """The pool and the rules for using it: bounded waits, one retry for a stale connection."""

    def __init__(self, database_url: str, timeout: float, min_size: int, max_size: int) -> None:
        self.timeout = timeout
        self.pool = AsyncConnectionPool(
            for_psycopg(database_url),
            min_size=min_size,
            max_size=max_size,
            open=False,
            timeout=timeout,
            reconnect_timeout=POOL_RECONNECT_TIMEOUT,
            name="og-webhooks",
            kwargs={
                "autocommit": True,
                # libpq counts whole seconds, and at least 2.
                "connect_timeout": max(2, math.ceil(timeout)),
                "application_name": "og-pipeline-webhooks",
                # No statement_timeout startup option: PgBouncer refuses unknown startup
                # parameters. A statement that hangs is cut by the timer in `run` instead.
            },
        )

    async def open(self) -> None:
        # wait=False: the receiver starts (and answers 503) even when Postgres is down.
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def run(self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """Runs ``work`` on a pooled connection within ``timeout`` (plus a second for the query).

        Raises psycopg.Error, PoolTimeout or TimeoutError when the database is not answering.
        """
        deadline = time.monotonic() + self.timeout
        async with asyncio.timeout(self.timeout + 1.0):
            for attempt in (1, 2):
                try:
                    wait = max(deadline - time.monotonic(), 0.001)
                    async with self.pool.connection(timeout=wait) as conn:
                        return await work(conn)
                except psycopg.OperationalError:
                    # A connection that sat idle in the pool may have died (server restart,
                    # terminated backend); the pool discards it on return. One more try with
                    # another connection; a second failure means the database itself is down.
                    # The retry cannot store twice: the event id is unique, and a statement
                    # whose connection failed did not run (or, in autocommit, ran whole).
                    if attempt == 2 or time.monotonic() >= deadline:
                        raise
        raise AssertionError("unreachable")


def _answer(
    request: Request,
    started: float,
    status: int,
    outcome: str,
    *,
    event_type: str | None = None,
    event_id: str | None = None,
    reason: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    elapsed_ms = (time.perf_counter() - started) * 1000
    level = logging.INFO if status < 500 and status != 401 else logging.WARNING
    client = request.client.host if request.client else "-"
    log.log(
        level,
        "webhook %d %s type=%s id=%s%s client=%s %.1fms",
        status,
        outcome,
        _safe(event_type),
        _safe(event_id),
        f" reason={reason!r}" if reason else "",
        client,
        elapsed_ms,
    )
    content: dict[str, Any] = {"status": outcome} if status < 400 else {"error": outcome}
    if event_id is not None and status < 400:
        content["id"] = event_id
    return JSONResponse(content, status_code=status, headers=headers)


def create_app(
    database_url: str,
    keys: Sequence[str],
    *,
    max_body_bytes: int,
    max_age_seconds: int | None = None,
    db_timeout: float = DEFAULT_DB_TIMEOUT,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    pool_min_size: int = 2,
    pool_max_size: int = 16,
) -> Starlette:
    """The receiver app. Its pool opens when the server starts (lifespan) and closes with it."""
    keys = [key for key in keys if key]
    if not keys:
        raise ValueError("ORDERGROOVE_WEBHOOK_KEY is not set: the receiver cannot verify anything")
    if max_body_bytes < 1:
        raise ValueError("max_body_bytes must be positive")
    db = _Database(database_url, db_timeout, pool_min_size, pool_max_size)
    # One event loop per process: a plain counter is safe between awaits.
    in_flight = 0
    # Connection: close wherever the rest of the body is left unread on the socket.
    close = {"Connection": "close"}

    async def receive(request: Request) -> JSONResponse:
        nonlocal in_flight
        started = time.perf_counter()
        if in_flight >= max_in_flight:
            return _answer(
                request,
                started,
                503,
                "busy",
                reason=f"{max_in_flight} requests in flight",
                headers={"Retry-After": "5", **close},
            )
        in_flight += 1
        try:
            return await _receive(request, started)
        finally:
            in_flight -= 1

    async def _receive(request: Request, started: float) -> JSONResponse:
        # The header alone can be refused before any of the body is read.
        header = request.headers.get(SIGNATURE_HEADER)
        if header is None or not header.strip() or parse_header(header) is None:
            failure = Failure.MISSING if header is None or not header.strip() else Failure.MALFORMED
            return _answer(
                request, started, 401, "invalid signature", reason=failure.value, headers=close
            )
        try:
            async with asyncio.timeout(body_timeout):
                body = await _read_body(request, max_body_bytes)
        except _TooLarge:
            return _answer(
                request,
                started,
                413,
                "body too large",
                reason=f"over {max_body_bytes} bytes",
                headers=close,
            )
        except TimeoutError:
            return _answer(
                request,
                started,
                408,
                "body timeout",
                reason=f"body not received within {body_timeout:g} s",
                headers=close,
            )
        check = verify(
            request.headers.get(SIGNATURE_HEADER), body, keys, max_age_seconds=max_age_seconds
        )
        if not check.ok:
            # The caller learns only that it was refused; the log line says why.
            return _answer(request, started, 401, "invalid signature", reason=check.reason)
        delivery = staging.classify(body)
        try:
            stored = await db.run(
                lambda conn: staging.store_event_async(conn, body, delivery=delivery)
            )
        except (psycopg.OperationalError, PoolTimeout, TimeoutError) as exc:
            return _answer(
                request,
                started,
                503,
                "database unavailable",
                event_type=delivery.event_type,
                event_id=delivery.event_id,
                reason=_first_line(exc),
                headers={"Retry-After": "30"},
            )
        except psycopg.Error as exc:
            # Not a connection problem (a missing table, a permission): still a 503 so that
            # Ordergroove retries once it is fixed, and the SQLSTATE only, since some errors'
            # messages quote the values (the body) they refused.
            return _answer(
                request,
                started,
                503,
                "database error",
                event_type=delivery.event_type,
                event_id=delivery.event_id,
                reason=f"{type(exc).__name__} SQLSTATE {exc.sqlstate}",
            )
        if stored.status == staging.INVALID:
            outcome = "duplicate invalid" if stored.duplicate else "invalid"
        else:
            outcome = "duplicate" if stored.duplicate else "stored"
        return _answer(
            request,
            started,
            200,
            outcome,
            event_type=stored.event_type,
            event_id=stored.event_id,
            reason=stored.reason,
        )

    async def healthz(request: Request) -> JSONResponse:
        async def select_one(conn: psycopg.AsyncConnection[Any]) -> None:
            await conn.execute("SELECT 1")

        try:
            await db.run(select_one)
        except (psycopg.Error, PoolTimeout, TimeoutError) as exc:
            log.warning("healthz 503: %s", _first_line(exc))
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await db.open()
        try:
            yield
        finally:
            await db.close()

    return Starlette(
        routes=[
            Route(WEBHOOK_PATH, receive, methods=["POST"]),
            Route(HEALTH_PATH, healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


def _configure_logging(level: str) -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    # The pool logs every checkout at INFO: a line per request we do not need twice.
    logging.getLogger("psycopg.pool").setLevel(logging.WARNING)


def app_from_environment() -> Starlette:
    """The app for one of uvicorn's workers, built from what `run` put in the environment."""
    config = json.loads(os.environ[_CONFIG_ENV])
    _configure_logging(config.pop("log_level"))
    return create_app(
        config.pop("database_url"),
        config.pop("keys"),
        max_body_bytes=config.pop("max_body_bytes"),
        max_age_seconds=config.pop("max_age_seconds"),
        **config,
    )


def run(
    host: str,
    port: int,
    *,
    database_url: str,
    keys: Sequence[str],
    max_body_bytes: int,
    max_age_seconds: int | None = None,
    workers: int = 1,
    log_level: str = "info",
    pool_max_size: int = 16,
) -> None:
    """Serves the receiver with uvicorn until Ctrl-C (blocking).

    uvloop and httptools are used when installed (uvicorn's ``auto``); ``workers`` > 1 runs
    that many processes on one socket, each with its own pool of up to ``pool_max_size``.
    """
    _configure_logging(log_level)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "workers": workers,
        "lifespan": "on",
        # Our own line per request replaces the access log (which would also log query strings).
        "access_log": False,
        "log_level": log_level,
        "server_header": False,
        # Longer than the usual load balancer idle timeout (60 s), so the balancer closes first.
        "timeout_keep_alive": 65,
        "timeout_graceful_shutdown": 10,
    }
    if workers > 1:
        # uvicorn's workers import the app by name; they inherit the environment, so the settings
        # travel there (the key is in the environment already as ORDERGROOVE_WEBHOOK_KEY).
        os.environ[_CONFIG_ENV] = json.dumps(
            {
                "database_url": database_url,
                "keys": list(keys),
                "max_body_bytes": max_body_bytes,
                "max_age_seconds": max_age_seconds,
                "pool_max_size": pool_max_size,
                "log_level": log_level,
            }
        )
        uvicorn.run(f"{__name__}:app_from_environment", factory=True, **options)
        return
    app = create_app(
        database_url,
        keys,
        max_body_bytes=max_body_bytes,
        max_age_seconds=max_age_seconds,
        pool_max_size=pool_max_size,
    )
    uvicorn.run(app, **options)
