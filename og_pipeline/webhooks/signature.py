"""Verifying Ordergroove's webhook signature (``OrderGroove-Signature: ts=<unix>,sig=<hex>``).

``sig`` is the hex HMAC-SHA256, keyed with the route's Verification Key, over ``f"{ts}."`` plus
the raw request body. During a key rotation the header carries one ``sig=`` per key for a day, and
we may hold several keys ourselves (``ORDERGROOVE_WEBHOOK_KEY`` is a comma-separated list): a
request is authentic when any signature matches any key. Comparisons are constant-time.

No web framework here: the receiver passes the header value and the body; the result says why a
request failed so that the log line can name the reason. The reason never contains the body, a key
or a signature, since logs are read by more people than the keys are shared with.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass

SIGNATURE_HEADER = "OrderGroove-Signature"

# A hex SHA-256 digest is 64 characters; anything longer cannot match and is not worth hashing.
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
# A header longer than this is not Ordergroove's (two signatures take ~150 bytes); refusing it
# early bounds the work an unauthenticated caller can make us do.
_MAX_HEADER_CHARS = 2048
# Signatures on one header: two during a rotation; a few more are tolerated, not hundreds.
_MAX_SIGNATURES = 8


class Failure(enum.Enum):
    """Why a request is not authentic (the value is what the log line says)."""

    MISSING = "missing signature header"
    MALFORMED = "malformed signature header"
    NO_MATCH = "no signature matches a key"
    TOO_OLD = "signature timestamp outside the maximum age"
    NO_KEYS = "no verification key configured"


@dataclass(frozen=True)
class Verification:
    """The outcome: ``ok``, or the ``failure`` that made it fail; ``ts`` when it could be read."""

    failure: Failure | None
    ts: int | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None

    @property
    def reason(self) -> str:
        return "ok" if self.failure is None else self.failure.value


def parse_header(value: str) -> tuple[int, list[str]] | None:
    """``(ts, [sig, ...])`` from ``ts=<unix>,sig=<hex>[,sig=<hex>]``; None when malformed.

    Spaces around parts and around ``=`` are tolerated, as are parts in any order; unknown parts
    (a future ``v2=`` scheme, say) are ignored rather than refused, so that an addition on
    Ordergroove's side does not turn every delivery into a 401.
    """
    if len(value) > _MAX_HEADER_CHARS:
        return None
    ts: int | None = None
    sigs: list[str] = []
    for part in value.split(","):
        name, sep, raw = part.partition("=")
        if not sep:
            if part.strip():
                return None
            continue  # an empty part, e.g. a trailing comma
        name, raw = name.strip().lower(), raw.strip()
        if name == "ts":
            if ts is not None or not raw.isascii() or not raw.isdigit():
                return None  # two timestamps, or not a plain unix integer
            ts = int(raw)
        elif name == "sig":
            if not raw or not set(raw) <= _HEX_DIGITS:
                return None
            sigs.append(raw.lower())
    if ts is None or not sigs or len(sigs) > _MAX_SIGNATURES:
        return None
    return ts, sigs


def expected_signature(body: bytes, key: str, ts: int) -> str:
    """The hex signature Ordergroove sends for ``body`` at ``ts`` with ``key``."""
    return hmac.new(key.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()


def verify(
    header: str | None,
    body: bytes,
    keys: Sequence[str],
    *,
    max_age_seconds: int | None = None,
    now: float | None = None,
) -> Verification:
    """Checks ``header`` (the raw value, or None when absent) against ``body`` and ``keys``."""
    if not keys:
        return Verification(Failure.NO_KEYS)
    if header is None or not header.strip():
        return Verification(Failure.MISSING)
    parsed = parse_header(header)
    if parsed is None:
        return Verification(Failure.MALFORMED)
    ts, sigs = parsed
    # Every (key, sig) pair is compared, without stopping at the first match, so the time taken
    # does not tell a caller which key or which position matched.
    matched = False
    for key in keys:
        expected = expected_signature(body, key, ts)
        for sig in sigs:
            matched |= hmac.compare_digest(expected, sig)
    if not matched:
        return Verification(Failure.NO_MATCH, ts)
    # Age is checked only on an authentic request: a forged one is refused as forged, which is
    # what an operator looking at the log needs to know.
    if max_age_seconds is not None:
        current = time.time() if now is None else now
        # A timestamp far in the future is as suspect as an old one (a clock skew of a minute
        # is not).
        if abs(current - ts) > max_age_seconds:
            return Verification(Failure.TOO_OLD, ts)
    return Verification(None, ts)
