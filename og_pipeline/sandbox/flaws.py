"""Seeded malformed REST records ("bad records"), as a real API now and then serves them.

Flow: `flaw_of(m, resource, row)` draws, from a hash of (seed, record type, row) that no other
draw uses, whether that row is bad (a `MerchantSpec.bad_record_share` share of each record type)
and which one flaw it carries; `spoil` applies it as the last step of rendering a REST dict, so a
list page and a detail answer show the same flaw; `bad_records` lists every row served with a
flaw right now. `Merchant.repair` adds a row to `m.repaired`, after which it renders correctly.
Webhook objects never pass through here: webhooks stay well-formed.

The doc (shared/docs/ordergroove-api.md) says a record the sync cannot read is one bad record, not
a bad window; these flaws are exactly the kinds it names: a missing or null key, a version
timestamp that is missing or does not parse, a type no row of the doc allows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from . import ids
from .store import MerchantStore

KEY_NULL = "key_null"
KEY_MISSING = "key_missing"
VERSION_MISSING = "version_missing"
VERSION_UNPARSEABLE = "version_unparseable"
GENERIC_FLAWS = (KEY_NULL, KEY_MISSING, VERSION_MISSING, VERSION_UNPARSEABLE)
# Matches the shape of a REST timestamp, so only a parser (or a range-checking schema) sees it.
UNPARSEABLE_TIMESTAMP = "2026-13-45 25:61:00"
# Salt for the flaw draw: keeps it independent of the draws that already use the row hash
# (names, live-as-string, missing email), so turning bad records on changes nothing else.
_SALT = 0xBAD_5EED_0F_F1A3


@dataclass(frozen=True)
class Resource:
    kind: int  # the ids.KIND_* of the row hash
    key: str
    version: str
    # flaw name -> (field, the value the doc does not allow there)
    type_flaws: dict[str, tuple[str, Any]]

    @property
    def flaws(self) -> tuple[str, ...]:
        return GENERIC_FLAWS + tuple(self.type_flaws)


RESOURCES: dict[str, Resource] = {
    "subscriptions": Resource(
        ids.KIND_SUBSCRIPTION,
        "public_id",
        "updated",
        {
            "live_not_bool": ("live", "maybe"),
            "quantity_not_int": ("quantity", "lots"),
            "customer_null": ("customer", None),
        },
    ),
    "customers": Resource(
        ids.KIND_CUSTOMER,
        "merchant_user_id",
        "last_updated",
        {"live_not_bool": ("live", "maybe"), "locale_not_int": ("locale", "en_US")},
    ),
    "orders": Resource(
        ids.KIND_ORDER,
        "public_id",
        "updated",
        {"status_not_int": ("status", "sent"), "customer_null": ("customer", None)},
    ),
    "items": Resource(
        ids.KIND_ITEM,
        "public_id",
        "order_updated",
        {"quantity_not_int": ("quantity", "lots"), "order_null": ("order", None)},
    ),
}


@dataclass(frozen=True)
class BadRecord:
    """One malformed REST record: its resource (the API path), its real id and its flaw."""

    resource: str
    id: str
    flaw: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def flaw_of(m: MerchantStore, resource: str, row: int) -> str | None:
    """The flaw this row renders with over REST, or None for a well-formed record."""
    share = m.spec.bad_record_share
    if share <= 0 or (resource, row) in m.repaired:
        return None
    spec = RESOURCES[resource]
    h = ids.mix64(ids.row_hash(m.seed, spec.kind, row) ^ _SALT)
    if not ids.share_hit(h, 0, share):
        return None
    return spec.flaws[(h >> 20) % len(spec.flaws)]


def spoil(m: MerchantStore, resource: str, row: int, record: dict[str, Any]) -> dict[str, Any]:
    """Applies the row's flaw, if any, to a freshly rendered REST dict (in place)."""
    flaw = flaw_of(m, resource, row)
    if flaw is None:
        return record
    spec = RESOURCES[resource]
    if flaw == KEY_NULL:
        record[spec.key] = None
    elif flaw == KEY_MISSING:
        del record[spec.key]
    elif flaw == VERSION_MISSING:
        del record[spec.version]
    elif flaw == VERSION_UNPARSEABLE:
        record[spec.version] = UNPARSEABLE_TIMESTAMP
    else:
        name, value = spec.type_flaws[flaw]
        record[name] = value
    return record


def _rows(m: MerchantStore, resource: str) -> list[int]:
    c = m.cols
    if resource == "subscriptions":
        return list(range(len(c.s_customer)))
    if resource == "customers":
        return list(range(len(c.c_created)))
    # Orders and their 1:1 items share rows; hard-deleted ones are no longer served.
    return [r for r in range(len(c.o_sub)) if not c.o_deleted[r]]


def record_id(m: MerchantStore, resource: str, row: int) -> str:
    if resource == "subscriptions":
        return m.sub_id(row)
    if resource == "customers":
        return ids.customer_id(row)
    if resource == "orders":
        return m.order_id(row)
    return m.item_id(row)


def bad_rows(m: MerchantStore) -> list[tuple[str, int, str]]:
    """(resource, row, flaw) of every record served malformed now. Caller holds the lock."""
    if m.spec.bad_record_share <= 0:
        return []
    out: list[tuple[str, int, str]] = []
    for resource in RESOURCES:
        for row in _rows(m, resource):
            flaw = flaw_of(m, resource, row)
            if flaw is not None:
                out.append((resource, row, flaw))
    return out


def bad_records(m: MerchantStore) -> list[BadRecord]:
    with m.lock:
        return [BadRecord(res, record_id(m, res, row), flaw) for res, row, flaw in bad_rows(m)]


def bad_customers(m: MerchantStore) -> set[str]:
    """Customer ids any of whose REST records (own, subscriptions, orders, items) is bad."""
    with m.lock:
        c = m.cols
        out: set[str] = set()
        for resource, row, _ in bad_rows(m):
            if resource == "customers":
                cust = row
            elif resource == "subscriptions":
                cust = c.s_customer[row]
            else:
                cust = c.o_customer[row]
            out.add(ids.customer_id(cust))
        return out
