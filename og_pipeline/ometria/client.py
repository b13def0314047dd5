"""Plain-Python client for Ometria's Data API v2 push endpoint (no Dagster here).

Flow of a push::

    client = OmetriaClient(url, key)
    # The caller pages its records, client.max_batch (<= 100) at a time, one @type a page:
    results = client.push_batch(page)   # contacts (contacts.py): {record id: PushResult}
    result = client.push(page)          # custom events (custom_events.py): one PushResult
    later: client.errors()              # async validation errors
    metadata = client.stats.as_dict()

- ``push`` POSTs one batch (a JSON array of at most ``max_batch`` records of one ``@type``) to
  ``/v2/push`` and returns ``PushResult(request_id, accepted, rejected)``; a batch too big, of
  mixed ``@type``, or with a record without an id or over 60 KiB is refused before it is sent.
  ``push_batch`` pushes one batch the same way and answers per record id: when Ometria rejects
  any, the batch's records are pushed again one at a time to learn which. Nothing here splits
  records into batches: callers read them from the database a batch at a time.
- Every HTTP attempt, first tries and retries alike, first takes a slot from one
  ``RateLimiter`` shared by the client's threads, so the account's limit (8 requests/s by
  default) holds and 429s stay the exception. The limiter's window is padded by
  ``rate_margin`` seconds for jitter between our clock and Ometria's.
- Retries (429, 5xx, timeouts, dropped connections) are driven here, around a urllib3 ``Retry``
  object's ``increment``/``sleep`` (backoff + jitter, ``Retry-After``), not inside the
  ``HTTPAdapter``: urllib3 would re-send from deep inside the connection pool, past the
  limiter, and a storm of retries is exactly when the limit matters most. POST is retried on
  purpose: records carry stable ids, so a re-push is an idempotent upsert.
- 401/403 raise ``OmetriaAuthError`` naming ``OMETRIA_API_KEY``; other failures
  ``OmetriaAPIError``. Neither the key nor an e-mail address ever appears in a message.
- A redirect to another origin raises ``OmetriaAPIError`` before it is followed (the key
  header would go along; see ``http_common.SessionClient``); same-origin ones are followed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError
from urllib3.util.retry import Retry

from og_pipeline import defaults
from og_pipeline.http_common import (
    DEFAULT_MAX_RETRY_AFTER,
    APIError,
    BoundedRetry,
    Counters,
    RateLimiter,
    SessionClient,
    redact,
)

log = logging.getLogger(__name__)

API_KEY_VARIABLE = "OMETRIA_API_KEY"
PUSH_PATH = "/v2/push"
ERRORS_PATH = "/v2/push/_errors"
MAX_BATCH = 100
MAX_RECORD_BYTES = 60 * 1024
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# Transport failures worth another attempt; anything else (bad URL, SSL) will not heal.
_RETRY_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


class OmetriaError(Exception):
    """Base class of this client's errors."""


class OmetriaAPIError(APIError, OmetriaError):
    """A request failed for good: a non-retryable status, or retries exhausted."""


class OmetriaAuthError(OmetriaAPIError):
    """401/403: the API key is wrong, revoked, or not allowed to push."""


@dataclass(frozen=True)
class PushResult:
    request_id: str | None
    accepted: int
    rejected: int


@dataclass
class OmetriaStats(Counters):
    """Counters for a run's metadata. ``requests`` counts every HTTP request sent (retries
    included), ``throttled`` every 429 seen, ``rejected`` records Ometria refused."""

    requests: int = 0
    batches: int = 0
    records: int = 0
    retries: int = 0
    rejected: int = 0
    throttled: int = 0


class OmetriaClient(SessionClient):
    """Thread-safe as far as the limiter and stats go; batches may be pushed from several
    threads and still share the one account limit."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        requests_per_second: float = 8.0,
        max_batch: int = MAX_BATCH,
        connect_timeout: float = 5,
        read_timeout: float = 30,
        max_retries: int = 8,
        backoff_factor: float = 0.5,
        backoff_max: float = 30,
        backoff_jitter: float = 1.0,
        max_retry_after: int = DEFAULT_MAX_RETRY_AFTER,
        rate_margin: float = defaults.OMETRIA_RATE_MARGIN_SECONDS,
        session: requests.Session | None = None,
    ) -> None:
        if not api_key:
            raise OmetriaAuthError(f"{API_KEY_VARIABLE} is empty: set the Ometria API key")
        if not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be between 1 and {MAX_BATCH}")
        self.base_url = base_url.rstrip("/")
        self.max_batch = max_batch
        self.timeout = (connect_timeout, read_timeout)
        self.stats = OmetriaStats()
        self.limiter = RateLimiter(requests_per_second, margin=rate_margin)
        self._api_key = api_key
        self._retry = BoundedRetry(
            total=max_retries,
            connect=None,
            read=None,
            status=None,
            allowed_methods=frozenset({"GET", "POST"}),
            status_forcelist=RETRY_STATUSES,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            backoff_jitter=backoff_jitter,
            respect_retry_after_header=True,
            retry_after_max=max_retry_after,
        )
        # No retries in the adapter: every attempt must pass the limiter (see module docstring).
        self._open_session(
            session,
            HTTPAdapter(max_retries=0),
            {"X-Ometria-Auth": api_key, "Accept": "application/json"},
            error=OmetriaAPIError,
            secret=api_key,
        )

    # -- public API --------------------------------------------------------------------------

    def push(self, records: list[dict[str, Any]]) -> PushResult:
        """Push one batch: at most ``max_batch`` (<= 100) records, all of one ``@type``."""
        body = self._encode_batch(records)
        response = self._request("POST", PUSH_PATH, body)
        payload = _json_or_error(response, "POST", PUSH_PATH)
        if not isinstance(payload, dict) or str(payload.get("status", "OK")).upper() != "OK":
            status = payload.get("status") if isinstance(payload, dict) else None
            raise OmetriaAPIError(
                f"POST {PUSH_PATH}: unexpected answer status {status!r}",
                status=response.status_code,
                path=PUSH_PATH,
            )
        rejected = int(payload.get("rejected") or 0)
        accepted = int(payload.get("accepted", len(records) - rejected) or 0)
        result = PushResult(payload.get("request_id"), accepted, rejected)
        self.stats.add(batches=1, records=len(records), rejected=rejected)
        if rejected:
            log.warning(
                "ometria push %s: %d of %d records rejected; see errors()",
                result.request_id,
                rejected,
                len(records),
            )
        return result

    def push_batch(self, records: list[dict[str, Any]]) -> dict[str, PushResult]:
        """Push one batch and say, per record id, how Ometria answered.

        Ometria's answer only counts rejections; when a batch has any, its records are pushed
        again one at a time (ids make that an upsert) to learn which were refused. Rare, so the
        extra requests do not matter; not knowing would mean recording a refusal as accepted.
        """
        result = self.push(records)
        if not result.rejected:
            return {str(record["id"]): result for record in records}
        return {str(record["id"]): self.push([record]) for record in records}

    def errors(self) -> list[dict[str, Any]]:
        """The latest asynchronous validation errors (``GET /v2/push/_errors``)."""
        response = self._request("GET", ERRORS_PATH, None)
        payload = _json_or_error(response, "GET", ERRORS_PATH)
        if isinstance(payload, dict):
            for key in ("errors", "results", "data"):
                if isinstance(payload.get(key), list):
                    return payload[key]
            return []
        return payload if isinstance(payload, list) else []

    # -- internals ---------------------------------------------------------------------------

    def _encode_batch(self, records: list[dict[str, Any]]) -> bytes:
        if not isinstance(records, list) or not records:
            raise ValueError("push needs a non-empty list of records")
        if len(records) > self.max_batch:
            raise ValueError(f"a batch holds at most {self.max_batch} records, got {len(records)}")
        types = {str(r.get("@type")) for r in records}
        if len(types) != 1 or "None" in types:
            raise ValueError(f"a batch must hold records of one @type, got {sorted(types)}")
        encoded = []
        for index, record in enumerate(records):
            if not record.get("id"):
                raise ValueError(f"record {index} of the batch has no 'id'")
            text = json.dumps(record, separators=(",", ":"), default=_json_default)
            if len(text.encode()) > MAX_RECORD_BYTES:
                # Ids are PII-free by design, so naming one is safe and helps find the record.
                raise ValueError(f"record {record['id']!r} is over {MAX_RECORD_BYTES} bytes")
            encoded.append(text)
        return ("[" + ",".join(encoded) + "]").encode()

    def _request(self, method: str, path: str, body: bytes | None) -> requests.Response:
        url = self.base_url + path
        retry: Retry = self._retry
        attempts = 0
        while True:
            waited = self.limiter.acquire()
            if waited > 0.5:
                log.debug("ometria %s %s waited %.2fs for the rate limit", method, path, waited)
            attempts += 1
            self.stats.add(requests=1)
            try:
                response = self._session.request(
                    method,
                    url,
                    data=body,
                    timeout=self.timeout,
                    headers={"Content-Type": "application/json"} if body is not None else None,
                )
            except _RETRY_ERRORS as exc:
                retry = self._next_attempt(retry, method, path, attempts, error=exc)
                retry.sleep()
                continue
            except requests.RequestException as exc:
                raise OmetriaAPIError(
                    f"{method} {path} failed: {type(exc).__name__}", path=path
                ) from None
            status = response.status_code
            if status == 429:
                self.stats.add(throttled=1)
            if status in RETRY_STATUSES:
                retry = self._next_attempt(retry, method, path, attempts, response=response)
                retry.sleep(response.raw)  # Retry-After if given, else backoff + jitter
                continue
            if status in (401, 403):
                raise _auth_error(status, method, path)
            if not 200 <= status < 300:
                detail = redact(response.text[:300], self._api_key).strip()
                raise OmetriaAPIError(
                    f"{method} {path} answered {status}" + (f": {detail}" if detail else ""),
                    status=status,
                    path=path,
                )
            return response

    def _next_attempt(
        self,
        retry: Retry,
        method: str,
        path: str,
        attempts: int,
        *,
        error: Exception | None = None,
        response: requests.Response | None = None,
    ) -> Retry:
        cause = f"status {response.status_code}" if response is not None else type(error).__name__
        try:
            # Not `if response`: a Response is falsy for every error status.
            raw = response.raw if response is not None else None
            retry = retry.increment(method, path, response=raw, error=error)
        except MaxRetryError:
            raise OmetriaAPIError(
                f"{method} {path} gave up after {attempts} attempts; last: {cause}",
                status=response.status_code if response is not None else None,
                path=path,
            ) from None
        self.stats.add(retries=1)
        log.warning("ometria %s %s: %s, retry %d", method, path, cause, len(retry.history))
        return retry


def _json_default(value: object) -> object:
    # Aware datetimes keep their offset, which Ometria's timestamps need.
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _json_or_error(response: requests.Response, method: str, path: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise OmetriaAPIError(
            f"{method} {path} answered {response.status_code} with a non-JSON body",
            status=response.status_code,
            path=path,
        ) from None


def _auth_error(status: int, method: str, path: str) -> OmetriaAuthError:
    if status == 403:
        advice = (
            f"the key in {API_KEY_VARIABLE} is not allowed to push data: check its "
            "permissions in Ometria (Settings > API keys)"
        )
    else:
        advice = (
            f"the key in {API_KEY_VARIABLE} was not accepted: check that it is the "
            "current key for this account and API URL and has not been revoked"
        )
    return OmetriaAuthError(
        f"Ometria answered {status} to {method} {path}: {advice}", status=status, path=path
    )
