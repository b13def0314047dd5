"""Readers of Ordergroove's field values, with the type variants its reference shows.

Each reader returns the value to store or raises ValueError with a short reason that names no
value (values may be personal data); pydantic turns it into the field's validation error.
Timestamps become ``Instants``: the earliest and latest instant a stamp can mean (see
``records``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, NamedTuple
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator

_INT32 = 2**31 - 1
_SMALLINT = 2**15 - 1
_MONEY_LIMIT = Decimal(10) ** 12  # og.orders.total is numeric(14, 2)
_UNIX_MAX = 253_402_300_799  # 9999-12-31T23:59:59Z, the last instant Python can represent


# -- field readers: each returns the stored value or raises ValueError with a short reason ----


def kind_of(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _wrong_type(expected: str, value: object) -> ValueError:
    # ValueError, not TypeError: pydantic turns only ValueError into a validation error.
    return ValueError(f"must be {expected}, not {kind_of(value)}")


def text_id(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _wrong_type("a string or an integer", value)
    text = str(value).strip()
    if not text:
        raise ValueError("is empty")
    if len(text) > 255:
        raise ValueError("is longer than 255 characters")
    return text


def _optional_text(value: object) -> str | None:
    return None if value is None or value == "" else text_id(value)


def _optional_string(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _wrong_type("a string", value)
    return value


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise _wrong_type('a boolean or "True"/"False"', value)


def _optional_bool(value: object) -> bool | None:
    return None if value is None or value == "" else _bool(value)


def _integer(limit: int) -> Callable[[object], int | None]:
    def read(value: object) -> int | None:
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            raise _wrong_type("an integer", value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ValueError("must be an integer") from None
        if not isinstance(value, int):
            raise _wrong_type("an integer", value)
        if not -limit - 1 <= value <= limit:
            raise ValueError("is out of range")
        return value

    return read


def _money(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _wrong_type("a decimal string", value)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("is not a decimal number") from None
    if not amount.is_finite() or abs(amount) >= _MONEY_LIMIT:
        raise ValueError("is not a finite amount below 10^12")
    return str(amount)


def _optional_date(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _wrong_type("a date", value)
    try:
        return datetime.fromisoformat(value.strip()).date().isoformat()
    except ValueError:
        raise ValueError("is not a date as YYYY-MM-DD") from None


def _extra_data(value: object) -> object:
    # A JSON string over REST, an object in webhooks.
    if value is None or isinstance(value, str | dict):
        return value
    raise _wrong_type("a JSON string or an object", value)


Id = Annotated[str, BeforeValidator(text_id)]
OptionalId = Annotated[str | None, BeforeValidator(_optional_text)]
OptionalString = Annotated[str | None, BeforeValidator(_optional_string)]
Live = Annotated[bool, BeforeValidator(_bool)]
OptionalLive = Annotated[bool | None, BeforeValidator(_optional_bool)]
Quantity = Annotated[int | None, BeforeValidator(_integer(_INT32))]
Status = Annotated[int, BeforeValidator(_integer(_SMALLINT))]
Money = Annotated[str | None, BeforeValidator(_money)]
Count = Quantity  # the reference's other int fields (codes, periods, days)
Code = OptionalId  # codes come as strings or ints
OptionalDate = Annotated[str | None, BeforeValidator(_optional_date)]
ExtraData = Annotated[object, BeforeValidator(_extra_data)]


# -- timestamps ---------------------------------------------------------------------------


class Instants(NamedTuple):
    """The earliest and latest instant a stamp can mean, as ISO text Postgres reads."""

    earliest: str
    latest: str


def instants(value: object, zone: str, fetched_at: datetime | None = None) -> Instants | None:
    """An Ordergroove timestamp (naive local text, text with an offset, or unix seconds) as
    its earliest and latest instants; None for null/""; ValueError when it does not parse."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _wrong_type("a timestamp", value)
    if not isinstance(value, str):
        if not (math.isfinite(value) and 0 <= value <= _UNIX_MAX):
            raise ValueError("is not a unix time between 1970 and 9999")
        exact = datetime.fromtimestamp(value, tz=UTC).isoformat()
        return Instants(exact, exact)
    moment = _rest_stamp(value, zone)
    if moment is None:
        return _instants_general(value.strip(), zone, fetched_at)
    if (
        moment.earliest != moment.latest
        and fetched_at is not None
        and datetime.fromisoformat(moment.latest) > fetched_at
    ):
        return Instants(moment.earliest, moment.earliest)  # the later reading is after the read
    return moment


# The walks arrive sorted by `updated`, so repeats come close together (a new record's `created`
# and `updated`, a page's minutes): a few thousand entries keep the hits. 65,536 each held ~62 MiB
# in the writer once a year's first sync had filled them.
STAMP_CACHE_SIZE = 4_096


@functools.lru_cache(maxsize=STAMP_CACHE_SIZE)
def _rest_stamp(value: str, zone: str) -> Instants | None:
    """The REST form "YYYY-MM-DD HH:MM:SS" read without its cap (None for any other form). A
    backfill reads hundreds of thousands of stamps, often the same second several times (a new
    record's `created` and `updated`), and offsets are looked up once per local minute."""
    text = value.strip()
    if not (len(text) == 19 and text[10] in " T" and text[16] == ":" and text[17:].isdigit()):
        return None
    offsets = _minute_offsets(text[:16], zone)
    if offsets is None:
        return None
    stamp = f"{text[:10]}T{text[11:]}"
    return Instants(f"{stamp}{offsets[0]}", f"{stamp}{offsets[1]}")


@functools.lru_cache(maxsize=STAMP_CACHE_SIZE)
def _minute_offsets(minute: str, zone: str) -> tuple[str, str] | None:
    """The offsets ("-05:00") giving the earliest and the latest instant of a naive local
    minute (the same twice but in a repeated or skipped hour); None if it is not a minute."""
    try:
        naive = datetime.fromisoformat(minute)
    except ValueError:
        return None
    tz = ZoneInfo(zone)
    offsets = []
    for fold in (0, 1):
        offset = naive.replace(tzinfo=tz, fold=fold).utcoffset()
        if offset is None or offset % timedelta(minutes=1):
            return None
        offsets.append(offset)
    # A larger offset means an earlier instant of the same wall time.
    return _offset_text(max(offsets)), _offset_text(min(offsets))


def _offset_text(offset: timedelta) -> str:
    minutes = offset // timedelta(minutes=1)
    return f"{'-' if minutes < 0 else '+'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _instants_general(text: str, zone: str, fetched_at: datetime | None) -> Instants:
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is not None:
            exact = parsed.astimezone(UTC)
            return Instants(exact.isoformat(), exact.isoformat())
        tz = ZoneInfo(zone)
        readings = sorted(parsed.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1))
    except (ValueError, OverflowError):
        raise ValueError("is not a timestamp as YYYY-MM-DD HH:MM:SS") from None
    earliest, latest = readings
    if fetched_at is not None and latest > fetched_at:
        latest = earliest
    return Instants(earliest.isoformat(), latest.isoformat())


def local_date(value: object, zone: str) -> str | None:
    """A placement date: the local date of a timestamp (text or unix seconds)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip()).date().isoformat()
        except ValueError:
            try:
                return date.fromisoformat(value.strip()[:10]).isoformat()
            except ValueError:
                raise ValueError("is not a date or timestamp") from None
    moment = instants(value, zone)
    assert moment is not None
    return datetime.fromisoformat(moment.earliest).astimezone(ZoneInfo(zone)).date().isoformat()
