r"""Reading Ordergroove records: each one becomes the row we store, or is set aside with a reason.

    REST or webhook record --parse(resource, record, context)--> Row       -> load.upsert
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

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from og_pipeline.http_common import redact
from og_pipeline.ordergroove.fields import (
    Code,
    Count,
    ExtraData,
    Id,
    Instants,
    Live,
    Money,
    OptionalDate,
    OptionalId,
    OptionalLive,
    OptionalString,
    Quantity,
    Status,
    instants,
    kind_of,
    local_date,
    text_id,
)

Row = dict[str, Any]

# Fields that hold personal data, wherever they appear in a record: removed from set-aside copies.
PERSONAL_FIELDS = frozenset(
    {
        "email",
        "first_name",
        "last_name",
        "phone_number",
        "phone",
        "shipping_address",
        "billing_address",
        "address",
        "address2",
        "payment",
        "cc_holder",
        "name_on_card",
        "ip_address",
        "zip_code",
        "postal_code",
    }
)
_MAX_DEPTH = 64  # Postgres' JSON parser has a stack limit; real records nest a few levels
_MAX_TEXT = 10_000  # longer values are not ids, names or codes; a set-aside copy keeps less


@dataclass(frozen=True)
class ParseContext:
    zone: str
    # When the record was read (REST) or received (webhook): a stamp cannot mean a later instant.
    fetched_at: datetime | None = None
    # The batch was already found storable as a whole (see ``storable_batch``): no record-level
    # check needed.
    storable: bool = False


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


# -- the documented record shapes -----------------------------------------------------------


class _Record(BaseModel):
    # Undocumented fields are kept in the raw record but not read.
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
    # Documented fields we do not store, read all the same: a type the reference does not allow
    # anywhere in a record means the record (or the API) is not what we think it is.
    quantity: Quantity = None
    price: Money = None
    frequency_days: Count = None
    every: Count = None
    every_period: Count = None
    reminder_days: Count = None
    start_date: OptionalDate = None
    cancel_reason_code: Code = None
    extra_data: ExtraData = None

    _stamps = field_validator("cancelled", "created", mode="before")(_stamp)
    _versions = field_validator("updated", mode="before")(_version)


class CustomerRecord(_Record):
    merchant_user_id: Id
    email: OptionalString = None
    live: OptionalLive = None
    created: Instants | None = None
    last_updated: Instants  # customers have no `updated`
    phone_type: Count = None
    locale: Count = None
    price_code: Code = None
    extra_data: ExtraData = None

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
    sub_total: Money = None
    tax_total: Money = None
    shipping_total: Money = None
    discount_total: Money = None
    tries: Count = None
    type: Count = None
    locked: OptionalLive = None
    extra_data: ExtraData = None

    _stamps = field_validator("created", mode="before")(_stamp)
    _versions = field_validator("updated", mode="before")(_version)

    @field_validator("place", mode="before")
    @classmethod
    def _place(cls, value: object, info: ValidationInfo) -> str | None:
        return local_date(value, cls._context(info).zone)


class ItemRecord(_Record):
    public_id: Id
    order: Id
    subscription: OptionalId = None  # null for a one-time line
    product: OptionalId = None
    quantity: Quantity = None
    order_updated: Instants  # an item has no `updated` of its own: its order's
    price: Money = None
    extra_cost: Money = None
    total_price: Money = None
    one_time: OptionalLive = None
    frozen: OptionalLive = None

    _versions = field_validator("order_updated", mode="before")(_version)


class ProductRecord(_Record):
    external_product_id: Id
    name: OptionalString = None
    image_url: OptionalString = None
    detail_url: OptionalString = None
    live: OptionalLive = None
    price: Money = None
    discontinued: OptionalLive = None
    autoship_enabled: OptionalLive = None


def _version_columns(moment: Instants) -> Row:
    # NULL when exact: the upsert compares against updated_at then.
    return {
        "updated_at": moment.earliest,
        "updated_at_latest": None if moment.latest == moment.earliest else moment.latest,
    }


def _earliest(moment: Instants | None) -> str | None:
    return None if moment is None else moment.earliest


def _subscription_row(r: SubscriptionRecord) -> Row:
    return {
        "public_id": r.public_id,
        "customer_id": r.customer,
        "product_id": r.product,
        "live": r.live,
        "cancelled_at": _earliest(r.cancelled),
        "created_at": _earliest(r.created),
        **_version_columns(r.updated),
    }


def _customer_row(r: CustomerRecord) -> Row:
    return {
        "merchant_user_id": r.merchant_user_id,
        "email": r.email,
        "live": r.live,
        "created_at": _earliest(r.created),
        **_version_columns(r.last_updated),
    }


def _order_row(r: OrderRecord) -> Row:
    return {
        "public_id": r.public_id,
        "customer_id": r.customer,
        "status": r.status,
        "place": r.place,
        "total": r.total,
        "created_at": _earliest(r.created),
        **_version_columns(r.updated),
    }


def _item_row(r: ItemRecord) -> Row:
    return {
        "public_id": r.public_id,
        "order_id": r.order,
        "subscription_id": r.subscription,
        "product_id": r.product,
        "quantity": r.quantity,
        **_version_columns(r.order_updated),
    }


def _product_row(r: ProductRecord) -> Row:
    return {
        "external_product_id": r.external_product_id,
        "name": r.name,
        "image_url": r.image_url,
        "detail_url": r.detail_url,
        "live": r.live,
    }


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
        return Rejected(
            resource,
            None,
            f"record is {kind_of(record)}, not an object",
            {"not_an_object": clean_copy(record)},
        )
    unstorable = None if context.storable else _unstorable(record)
    try:
        if unstorable is not None:
            raise ValueError(unstorable)
        row = shape.to_row(shape.model.model_validate(record, context=context))
    except ValidationError as exc:
        return _rejected(resource, shape, record, _reason(exc))
    except Exception as exc:  # noqa: BLE001 - nothing a record holds may escape as an exception
        return _rejected(
            resource,
            shape,
            record,
            str(exc) if isinstance(exc, ValueError) else f"unreadable ({type(exc).__name__})",
        )
    row["record"] = record
    return row


def _rejected(resource: str, shape: Shape, record: dict[str, Any], reason: str) -> Rejected:
    try:
        record_id: str | None = text_id(record.get(shape.key))
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


def storable_batch(serialised: bytes) -> bool:
    """Whether a batch orjson serialised (so without lone surrogates or extreme nesting) holds
    nothing Postgres refuses in jsonb: one scan for NUL instead of a check per record."""
    return b"\\u0000" not in serialised


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
        return {
            _clean_text(str(k)): "[removed]"
            if str(k).lower() in PERSONAL_FIELDS and v is not None
            else clean_copy(v, depth + 1)
            for k, v in value.items()
        }
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
    text = (
        text[:_MAX_TEXT]
        .encode("utf-8", "backslashreplace")
        .decode("utf-8")
        .replace("\x00", "\\u0000")
    )
    return redact(text)
