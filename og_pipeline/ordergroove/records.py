r"""Reading Ordergroove records: each one becomes the row we store, or is set aside with a reason.

    REST page or webhook object --parse(resource, record, context)--> Row       -> load.upsert
                                                                  \-> Rejected  -> og.rejected_records

One pydantic model per record type holds the documented shape and its type variants
(../shared/docs/ordergroove-api.md, "Record shapes"): ids as strings or integers, ``live`` as a
bool or "True"/"False", codes as strings or ints, decimals as strings, timestamps as naive local
text (REST) or unix seconds (webhooks). Items are versioned by ``order_updated`` (they have no
``updated``), customers by ``last_updated``. Anything else is one bad record, never an exception:
``parse`` returns a ``Rejected`` naming the field and what is wrong with it (never its value,
which may be personal data), with a copy of the record stripped of personal data.

Timestamps come out as two instants: the earliest and the latest the stamp can mean. A naive
time in the repeated hour of a fall-back has two readings an hour apart, and one in the skipped
hour of a spring-forward none; the latest reading is capped by the moment the record was read
(a record cannot have changed after we fetched it). The upsert keeps the stored row's earliest
instant and lets a version replace it when its latest instant is not older, so a REST read,
which is the current state, is never refused because the repeated hour compared the wrong way.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, NamedTuple
from zoneinfo import ZoneInfo

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from og_pipeline.http_common import redact

Row = dict[str, Any]

# Fields that hold personal data, wherever they appear in a record: removed from set-aside copies.
PERSONAL_FIELDS = frozenset({
    "email", "first_name", "last_name", "phone_number", "phone", "shipping_address",
    "billing_address", "address", "address2", "payment", "cc_holder", "name_on_card",
    "ip_address", "zip_code", "postal_code",
})
_MAX_DEPTH = 64  # Postgres' JSON parser has a stack limit; real records nest a few levels
_MAX_TEXT = 10_000  # longer values are not ids, names or codes; a set-aside copy keeps less
_INT32 = 2**31 - 1
_SMALLINT = 2**15 - 1
_MONEY_LIMIT = Decimal(10) ** 12  # og.orders.total is numeric(14, 2)
_UNIX_MAX = 253_402_300_799  # 9999-12-31T23:59:59Z, the last instant Python can represent


@dataclass(frozen=True)
class ParseContext:
    zone: str
    # When the record was read (REST) or received (webhook): a stamp cannot mean a later instant.
    fetched_at: datetime | None = None


class Rejected(NamedTuple):
    """A record set aside: its resource, its id when it has a readable one, why, and a copy
    of the record without personal data."""

    resource: str
    record_id: str | None
    reason: str
    record: Any

    @property
    def identity(self) -> str:
        """What makes two sightings the same record: its id, or a digest of a keyless copy."""
        if self.record_id is not None:
            return f"id:{self.record_id}"
        digest = hashlib.sha256(orjson.dumps(self.record, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return f"sha256:{digest}"


# -- field readers: each returns the stored value or raises ValueError with a short reason ----

def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _wrong_type(expected: str, value: object) -> ValueError:
    # ValueError, not TypeError: pydantic turns only ValueError into a validation error.
    return ValueError(f"must be {expected}, not {_kind(value)}")


def _text(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _wrong_type("a string or an integer", value)
    text = str(value).strip()
    if not text:
        raise ValueError("is empty")
    if len(text) > 255:
        raise ValueError("is longer than 255 characters")
    return text


def _optional_text(value: object) -> str | None:
    return None if value is None or value == "" else _text(value)


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


Id = Annotated[str, BeforeValidator(_text)]
OptionalId = Annotated[str | None, BeforeValidator(_optional_text)]
OptionalString = Annotated[str | None, BeforeValidator(_optional_string)]
Live = Annotated[bool, BeforeValidator(_bool)]
OptionalLive = Annotated[bool | None, BeforeValidator(_optional_bool)]
Quantity = Annotated[int | None, BeforeValidator(_integer(_INT32))]
Status = Annotated[int, BeforeValidator(_integer(_SMALLINT))]
Money = Annotated[str | None, BeforeValidator(_money)]


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
    text = value.strip()
    # The REST form "YYYY-MM-DD HH:MM:SS": a backfill reads hundreds of thousands of them, so
    # the zone's offsets are looked up once per local minute.
    if len(text) == 19 and text[10] in " T" and text[16] == ":" and text[17:].isdigit():
        offsets = _minute_offsets(text[:16], zone)
        if offsets is not None:
            stamp = f"{text[:10]}T{text[11:]}"
            earliest, latest = (f"{stamp}{offset}" for offset in offsets)
            if earliest != latest and fetched_at is not None and datetime.fromisoformat(latest) > fetched_at:
                latest = earliest  # the later reading would be after we read the record
            return Instants(earliest, latest)
    return _instants_general(text, zone, fetched_at)


@functools.lru_cache(maxsize=65_536)
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


def _local_date(value: object, zone: str) -> str | None:
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


# -- the documented record shapes -----------------------------------------------------------

class _Record(BaseModel):
    # Undocumented fields are kept in the raw record but not read; documented ones we do not
    # store are not validated either, so a variant there cannot set a record aside.
    model_config = ConfigDict(extra="ignore", frozen=True)

    @staticmethod
    def _context(info: ValidationInfo) -> ParseContext:
        context = info.context
        assert isinstance(context, ParseContext), "parse() passes a ParseContext"
        return context


def _stamp(value: object, info: ValidationInfo) -> Instants | None:
    context = _Record._context(info)
    return instants(value, context.zone, context.fetched_at)


def _version(value: object, info: ValidationInfo) -> Instants:
    moment = _stamp(value, info)
    if moment is None:
        raise ValueError("is missing: it orders the record's versions")
    return moment


class SubscriptionRecord(_Record):
    public_id: Id
    customer: Id
    product: OptionalId = None
    live: Live
    cancelled: Instants | None = None
    created: Instants | None = None
    updated: Instants

    _stamps = field_validator("cancelled", "created", mode="before")(_stamp)
    _versions = field_validator("updated", mode="before")(_version)


class CustomerRecord(_Record):
    merchant_user_id: Id
    email: OptionalString = None
    live: OptionalLive = None
    created: Instants | None = None
    last_updated: Instants  # customers have no `updated`

    _stamps = field_validator("created", mode="before")(_stamp)
    _versions = field_validator("last_updated", mode="before")(_version)


class OrderRecord(_Record):
    public_id: Id
    customer: Id
    status: Status
    place: str | None = None
    total: Money = None
    created: Instants | None = None
    updated: Instants

    _stamps = field_validator("created", mode="before")(_stamp)
    _versions = field_validator("updated", mode="before")(_version)

    @field_validator("place", mode="before")
    @classmethod
    def _place(cls, value: object, info: ValidationInfo) -> str | None:
        return _local_date(value, cls._context(info).zone)


class ItemRecord(_Record):
    public_id: Id
    order: Id
    subscription: OptionalId = None  # null for a one-time line
    product: OptionalId = None
    quantity: Quantity = None
    order_updated: Instants  # an item has no `updated` of its own: its order's

    _versions = field_validator("order_updated", mode="before")(_version)


class ProductRecord(_Record):
    external_product_id: Id
    name: OptionalString = None
    image_url: OptionalString = None
    detail_url: OptionalString = None
    live: OptionalLive = None


def _version_columns(moment: Instants) -> Row:
    # NULL when exact: the upsert compares against updated_at then.
    return {"updated_at": moment.earliest,
            "updated_at_latest": None if moment.latest == moment.earliest else moment.latest}


def _earliest(moment: Instants | None) -> str | None:
    return None if moment is None else moment.earliest


def _subscription_row(r: SubscriptionRecord) -> Row:
    return {"public_id": r.public_id, "customer_id": r.customer, "product_id": r.product,
            "live": r.live, "cancelled_at": _earliest(r.cancelled),
            "created_at": _earliest(r.created), **_version_columns(r.updated)}


def _customer_row(r: CustomerRecord) -> Row:
    return {"merchant_user_id": r.merchant_user_id, "email": r.email, "live": r.live,
            "created_at": _earliest(r.created), **_version_columns(r.last_updated)}


def _order_row(r: OrderRecord) -> Row:
    return {"public_id": r.public_id, "customer_id": r.customer, "status": r.status,
            "place": r.place, "total": r.total, "created_at": _earliest(r.created),
            **_version_columns(r.updated)}


def _item_row(r: ItemRecord) -> Row:
    return {"public_id": r.public_id, "order_id": r.order, "subscription_id": r.subscription,
            "product_id": r.product, "quantity": r.quantity, **_version_columns(r.order_updated)}


def _product_row(r: ProductRecord) -> Row:
    return {"external_product_id": r.external_product_id, "name": r.name,
            "image_url": r.image_url, "detail_url": r.detail_url, "live": r.live}


@dataclass(frozen=True)
class Shape:
    model: type[_Record]
    key: str  # the record's key field
    to_row: Callable[[Any], Row]


SHAPES: dict[str, Shape] = {
    "subscriptions": Shape(SubscriptionRecord, "public_id", _subscription_row),
    "customers": Shape(CustomerRecord, "merchant_user_id", _customer_row),
    "orders": Shape(OrderRecord, "public_id", _order_row),
    "items": Shape(ItemRecord, "public_id", _item_row),
    "products": Shape(ProductRecord, "external_product_id", _product_row),
}


def parse(resource: str, record: object, context: ParseContext) -> Row | Rejected:
    """The row to store for ``record`` (with the record itself under "record"), or why not.

    Never raises for anything a record holds: what cannot be read is a ``Rejected``.
    """
    shape = SHAPES[resource]
    if not isinstance(record, dict):
        return Rejected(resource, None, f"record is {_kind(record)}, not an object",
                        {"not_an_object": clean_copy(record)})
    unstorable = _unstorable(record)
    try:
        if unstorable is not None:
            raise ValueError(unstorable)
        row = shape.to_row(shape.model.model_validate(record, context=context))
    except ValidationError as exc:
        return _rejected(resource, shape, record, _reason(exc))
    except Exception as exc:  # noqa: BLE001 - nothing a record holds may escape as an exception
        return _rejected(resource, shape, record, str(exc) if isinstance(exc, ValueError) else
                         f"unreadable ({type(exc).__name__})")
    row["record"] = record
    return row


def _rejected(resource: str, shape: Shape, record: dict[str, Any], reason: str) -> Rejected:
    try:
        record_id: str | None = _text(record.get(shape.key))
    except ValueError:
        record_id = None
    if record_id is not None and _unstorable(record_id) is not None:
        record_id = None
    return Rejected(resource, record_id, reason, clean_copy(record))


def _reason(exc: ValidationError) -> str:
    # Field and message only: pydantic's full text quotes the input, which may be personal data.
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False)[:3]:
        where = ".".join(str(part) for part in error["loc"]) or "record"
        problems.append(f"{where}: {str(error['msg']).removeprefix('Value error, ')}")
    more = exc.error_count() - len(problems)
    return "; ".join(problems) + (f" (+{more} more)" if more > 0 else "")


def _unstorable(record: object) -> str | None:
    """Why Postgres could not store the record as jsonb, if it could not: a NUL character or a
    lone surrogate in any text, or nesting beyond any real record's."""
    try:
        data = orjson.dumps(record)  # refuses lone surrogates and nesting deeper than 255
    except orjson.JSONEncodeError as exc:
        if "Integer exceeds 64-bit range" in str(exc):
            return None  # jsonb stores any integer; our serialiser falls back for those
        return "holds text or nesting that cannot be stored (a lone surrogate, or too deep)"
    if b"\\u0000" in data:
        return "holds a NUL character, which Postgres text cannot store"
    return None


def clean_copy(value: Any, depth: int = 0) -> Any:
    """The record as it may be kept and shown: personal fields removed, e-mail addresses in
    other text masked, text Postgres cannot store escaped, long text and deep nesting cut."""
    if depth > _MAX_DEPTH:
        return "[nested too deep]"
    if isinstance(value, dict):
        return {_clean_text(str(k)): "[removed]" if str(k).lower() in PERSONAL_FIELDS and v is not None
                else clean_copy(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_copy(v, depth + 1) for v in value[:1000]]
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return str(value)
    return value


def _clean_text(text: str) -> str:
    text = text[:_MAX_TEXT].encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\u0000")
    return redact(text)
