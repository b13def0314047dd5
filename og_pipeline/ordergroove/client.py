"""Plain-Python client for Ordergroove's REST API (no Dagster here: assets wrap it).

Flow of a sync walk::

    client = OrdergrooveClient(url, key)
    for page in client.iter_updated("subscriptions", start_utc, end_utc):   # one cursor walk
        upsert(page)                                                          # a page at a time
    metadata = client.stats.as_dict()

- ``iter_pages`` GETs ``{base_url}/{resource}/?page_size=N&...`` and then each ``next`` URL as
  given (cursor pagination, ``X-OG-API-VERSION: 2``) until it is null, yielding one page at a
  time so memory stays flat however many records the walk covers.
- Retries live in the session's ``HTTPAdapter``: a urllib3 ``Retry`` with exponential backoff,
  jitter and ``Retry-After`` for 429/423/5xx, timeouts and dropped connections. A ``Retry``
  subclass reports each retry back to ``stats``.
- Failures surface as ``OrdergrooveAuthError`` (401/403: what to check about
  ``ORDERGROOVE_API_KEY``) or ``OrdergrooveAPIError`` (status, path, attempts). Neither the key
  nor an e-mail address ever appears in a message.
- The key never leaves the configured origin: a ``next`` URL elsewhere is refused
  (``_checked_next``), and so is a redirect elsewhere, before it is followed
  (``http_common.SessionClient``); same-origin redirects are followed.
- REST timestamps are naive local time in the account's zone (``America/Chicago`` by default):
  ``og_window_params`` turns a UTC window into the ``updated_start``/``updated_end`` filters;
  reading the records' own stamps is ``records``' job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ProtocolError, ReadTimeoutError
from urllib3.util.retry import Retry

from og_pipeline import defaults
from og_pipeline.http_common import (
    DEFAULT_MAX_RETRY_AFTER,
    APIError,
    BoundedRetry,
    Counters,
    RateLimiter,
    SessionClient,
    json_body,
    redact,
)

log = logging.getLogger(__name__)

API_KEY_VARIABLE = "ORDERGROOVE_API_KEY"
DEFAULT_ZONE = defaults.ORDERGROOVE_TIMEZONE
RETRY_STATUSES = frozenset({423, 429, 500, 502, 503, 504})
MAX_PAGE_SIZE = 100
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S"

# The stamp each object type's incremental filter reads (``<field>_start``/``_end``), which its
# cursor is sorted by: items have no `updated` of their own.
_VERSION_FIELDS: dict[str, str] = {"items": "order_updated"}


def version_field(resource: str) -> str:
    """The field a resource's records are versioned, filtered and sorted by."""
    return _VERSION_FIELDS.get(resource, "updated")


class OrdergrooveError(Exception):
    """Base class of this client's errors."""


class OrdergrooveAPIError(APIError, OrdergrooveError):
    """A request failed for good: a non-retryable status, or retries exhausted."""


class OrdergrooveAuthError(OrdergrooveAPIError):
    """401/403: the key is wrong, revoked, or lacks the Bulk Operations permission."""


@dataclass
class OrdergrooveStats(Counters):
    """Counters for a run's metadata. ``requests`` counts every HTTP request sent, retried
    attempts included; ``retries`` counts those attempts that were retries."""

    requests: int = 0
    pages: int = 0
    records: int = 0
    retries: int = 0


class CountingRetry(BoundedRetry):
    """A urllib3 ``Retry`` that calls ``on_retry`` whenever a retry is granted.

    urllib3 builds a fresh ``Retry`` per attempt through ``new()``, so the callback is carried
    over there; ``increment`` is the one place every retry (status, timeout, dropped
    connection) passes through, and it only returns when another attempt will be made.
    """

    def __init__(
        self, *args: Any, on_retry: Callable[[Retry], None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.on_retry = on_retry

    def new(self, **kw: Any) -> CountingRetry:
        kw.setdefault("on_retry", self.on_retry)
        return super().new(**kw)  # type: ignore[return-value]

    def increment(self, *args: Any, **kwargs: Any) -> CountingRetry:
        new_retry = super().increment(*args, **kwargs)  # raises MaxRetryError when exhausted
        if self.on_retry is not None:
            self.on_retry(new_retry)
        return new_retry


def og_window_params(
    resource: str, start: datetime, end: datetime, zone: str = DEFAULT_ZONE
) -> dict[str, str]:
    """The inclusive ``updated_start``/``updated_end`` filter (or ``order_updated_*`` for items)
    covering every record updated in ``[start, end]`` (aware datetimes).

    Ordergroove compares naive local times, and local time is not monotonic: in a fall-back
    hour it repeats, in a spring-forward hour it skips. So the start uses the smaller of the
    UTC offsets at ``start`` and an hour later, and the end the larger of the offsets at ``end``
    and an hour before; around a transition the local window widens by up to an hour (a
    superset; upserts make the extra records harmless) instead of missing the repeated hour.
    Seconds are floored: stamps have whole seconds, so flooring both bounds loses nothing.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware datetimes")
    if end < start:
        raise ValueError("end must not be before start")
    tz = ZoneInfo(zone)
    hour = timedelta(hours=1)

    def offset(moment: datetime) -> timedelta:
        return moment.astimezone(tz).utcoffset() or timedelta(0)

    start_utc = start.astimezone(UTC).replace(tzinfo=None)
    end_utc = end.astimezone(UTC).replace(tzinfo=None)
    local_start = start_utc + min(offset(start), offset(start + hour))
    local_end = end_utc + max(offset(end), offset(end - hour))
    field = version_field(resource)
    start_name, end_name = f"{field}_start", f"{field}_end"
    return {
        start_name: local_start.replace(microsecond=0).strftime(TIMESTAMP_FORMAT),
        end_name: local_end.replace(microsecond=0).strftime(TIMESTAMP_FORMAT),
    }


class OrdergrooveClient(SessionClient):
    """Streaming client for the Ordergroove REST API, one cursor at a time. Not shared between
    threads: concurrent walks (one per object type, as Ordergroove allows) each take a
    ``sibling()``, which shares the stats and the request limiter and has a session of its own."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        page_size: int = 100,
        connect_timeout: float = 5,
        read_timeout: float = 60,
        max_retries: int = 8,
        backoff_factor: float = 0.5,
        backoff_max: float = 30,
        backoff_jitter: float = 1.0,
        max_retry_after: int = DEFAULT_MAX_RETRY_AFTER,
        zone: str = DEFAULT_ZONE,
        session: requests.Session | None = None,
        limiter: RateLimiter | None = None,
        stats: OrdergrooveStats | None = None,
    ) -> None:
        if not api_key:
            raise OrdergrooveAuthError(f"{API_KEY_VARIABLE} is empty: set the Ordergroove API key")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        ZoneInfo(zone)  # fail now on a bad zone, not in the middle of a walk
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self.timeout = (connect_timeout, read_timeout)
        self.zone = zone
        self.max_retries = max_retries
        self.stats = stats if stats is not None else OrdergrooveStats()
        # Shared by every walk of a sync: Ordergroove's limit is per IP, not per cursor.
        self.limiter = limiter
        # Seconds the last request took on the wire (the limiter's wait not included).
        self.last_request_seconds = 0.0
        self._options = {
            "page_size": page_size,
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "max_retries": max_retries,
            "backoff_factor": backoff_factor,
            "backoff_max": backoff_max,
            "backoff_jitter": backoff_jitter,
            "max_retry_after": max_retry_after,
            "zone": zone,
        }
        self._api_key = api_key
        base = urlsplit(self.base_url)
        self._origin = (base.scheme, base.netloc)

        self._retry = CountingRetry(
            total=max_retries,
            connect=None,
            read=None,
            status=None,
            other=0,  # errors urllib3 cannot classify (SSL, proxy) will not heal by retrying
            allowed_methods=frozenset({"GET"}),
            status_forcelist=RETRY_STATUSES,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            backoff_jitter=backoff_jitter,
            respect_retry_after_header=True,
            retry_after_max=max_retry_after,
            # Hand back the last retryable response so the error can name status and attempts.
            raise_on_status=False,
            raise_on_redirect=False,
            on_retry=self._on_retry,
        )
        self._open_session(
            session,
            HTTPAdapter(max_retries=self._retry),
            {
                "x-api-key": api_key,
                "X-OG-API-VERSION": "2",
                "Accept": "application/json",
            },
            error=OrdergrooveAPIError,
            secret=api_key,
        )

    # -- public API --------------------------------------------------------------------------

    def sibling(self) -> OrdergrooveClient:
        """A client for another thread: same settings, stats and limiter; its own session."""
        return OrdergrooveClient(
            self.base_url,
            self._api_key,
            limiter=self.limiter,
            stats=self.stats,
            **self._options,  # type: ignore[arg-type]
        )

    def iter_pages(
        self, resource: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Walk one cursor over ``resource``: yields each page's ``results`` as it arrives."""
        url: str | None = f"{self.base_url}/{resource.strip('/')}/"
        query: dict[str, Any] | None = {"page_size": self.page_size, **(params or {})}
        while url is not None:
            body = self._get_json(url, query)
            query = None  # ``next`` already carries every parameter
            results = body.get("results") if isinstance(body, dict) else None
            if not isinstance(results, list):
                raise OrdergrooveAPIError(
                    f"GET {urlsplit(url).path}: response has no 'results' list",
                    path=urlsplit(url).path,
                )
            self.stats.add(pages=1, records=len(results))
            yield results
            url = self._checked_next(body.get("next"), url)

    def iter_updated(
        self, resource: str, start: datetime, end: datetime, params: Mapping[str, Any] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of records updated in ``[start, end]`` (aware datetimes, both inclusive)."""
        window = og_window_params(resource, start, end, self.zone)
        log.info("ordergroove %s window %s", resource, window)
        yield from self.iter_pages(resource, {**(params or {}), **window})

    def iter_products(self) -> Iterator[list[dict[str, Any]]]:
        """Pages of the whole product catalogue (products have no incremental filter)."""
        yield from self.iter_pages("products")

    def get_product(self, external_product_id: str) -> dict[str, Any] | None:
        """One product by its external id; None if Ordergroove does not know it (404)."""
        return self._get_one("products", external_product_id)

    def get_customer(self, merchant_user_id: str) -> dict[str, Any] | None:
        """One customer by merchant_user_id; None if Ordergroove does not know it (404)."""
        return self._get_one("customers", merchant_user_id)

    def _get_one(self, resource: str, key: str) -> dict[str, Any] | None:
        url = f"{self.base_url}/{resource}/{quote(str(key), safe='')}/"
        body = self._get_json(url, None, missing_ok=True)
        return body if isinstance(body, dict) else None

    # -- internals ---------------------------------------------------------------------------

    def _on_retry(self, retry: Retry) -> None:
        last = retry.history[-1]  # increment() has just appended this attempt's outcome
        cause = f"status {last.status}" if last.status else type(last.error).__name__
        # Each retry is one more request on the wire.
        self.stats.add(retries=1, requests=1)
        path = urlsplit(last.url or "").path
        log.warning("ordergroove GET %s: %s, retry %d", path, cause, len(retry.history))

    def _checked_next(self, next_url: object, current: str) -> str | None:
        if next_url in (None, ""):
            return None
        if not isinstance(next_url, str):
            raise OrdergrooveAPIError("'next' is not a URL string")
        parts = urlsplit(next_url)
        # The key goes with every request: never send it to a host other than the configured one.
        if (parts.scheme, parts.netloc) != self._origin:
            raise OrdergrooveAPIError(
                f"'next' points to {parts.scheme}://{parts.netloc}, not the configured API "
                f"origin; refusing to send the API key there",
                path=parts.path,
            )
        # A cursor that points at itself would loop forever (older pages are not kept, so a
        # longer cycle is left to the caller's run timeout).
        if next_url == current:
            raise OrdergrooveAPIError(
                f"cursor loop: 'next' repeats a page of {parts.path}", path=parts.path
            )
        return next_url

    def _get_json(
        self, url: str, params: Mapping[str, Any] | None, *, missing_ok: bool = False
    ) -> Any:
        path = urlsplit(url).path
        retries_before = self.stats.retries
        retry: Retry = self._retry
        self.stats.add(requests=1)  # later attempts are counted by _on_retry
        while True:
            if self.limiter is not None:
                self.limiter.acquire()
            sent = time.monotonic()
            try:
                response = self._session.get(url, params=params, timeout=self.timeout)
                self.last_request_seconds = time.monotonic() - sent
                break
            except requests.RequestException as exc:
                attempts = 1 + self.stats.retries - retries_before
                cause = exc.args[0] if exc.args else None
                # The adapter retries up to the response headers only; requests reads the body
                # afterwards, so a connection dropped or stalled mid-body surfaces here as a
                # bare urllib3 error (exhausted adapter retries come wrapped in MaxRetryError).
                if isinstance(cause, ProtocolError | ReadTimeoutError):
                    try:
                        retry = retry.increment("GET", url, error=cause)  # counts via on_retry
                    except MaxRetryError:
                        pass
                    else:
                        retry.sleep()
                        continue
                # Only the exception's class: its text holds the full URL and urllib3 internals.
                raise OrdergrooveAPIError(
                    f"GET {path} failed after {attempts} attempt(s): {_describe(exc)}", path=path
                ) from None
        attempts = 1 + self.stats.retries - retries_before
        status = response.status_code
        if status in (401, 403):
            raise _auth_error(status, path)
        if missing_ok and status == 404:
            return None
        if status in RETRY_STATUSES:
            raise OrdergrooveAPIError(
                f"GET {path} still answered {status} after {attempts} attempts; giving up",
                status=status,
                path=path,
            )
        if not 200 <= status < 300:
            detail = redact(response.text[:200], self._api_key).strip()
            raise OrdergrooveAPIError(
                f"GET {path} answered {status}" + (f": {detail}" if detail else ""),
                status=status,
                path=path,
            )
        try:
            return json_body(response)
        except ValueError:
            raise OrdergrooveAPIError(
                f"GET {path} answered {status} with a non-JSON body", status=status, path=path
            ) from None


def _auth_error(status: int, path: str) -> OrdergrooveAuthError:
    if status == 403:
        advice = (
            f"the key in {API_KEY_VARIABLE} is valid but not allowed to list these "
            "records: it needs the Bulk Operations permission (ask Ordergroove support "
            "to enable it for this key)"
        )
    else:
        advice = (
            f"the key in {API_KEY_VARIABLE} was not accepted: check that it is the "
            "current key for this API URL (production and staging keys differ) and has "
            "not been revoked"
        )
    return OrdergrooveAuthError(
        f"Ordergroove answered {status} to GET {path}: {advice}", status=status, path=path
    )


def _describe(exc: BaseException) -> str:
    """Name the root cause's class (e.g. ReadTimeoutError) without its URL-bearing text."""
    names = [type(exc).__name__]
    cause: BaseException | None = (
        exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc.__cause__
    )
    reason = getattr(cause, "reason", None)
    if isinstance(reason, BaseException):
        names.append(type(reason).__name__)
    return " / ".join(names)
