"""Reading a webhook envelope: what the receiver stored, as the webhook step and the custom
events both need it. Plain functions over any JSON: a missing or mistyped part reads as absent,
or raises ``EventError`` where the event cannot do without it.

    {"id", "type", "created": <unix s>, "data": {"object": {...}, "snapshot"?: {...}},
     "snapshot"?: {...}, "context"?: {...}}

Ordergroove's docs disagree whether ``snapshot`` sits at the top level or inside ``data``:
both are accepted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Record = dict[str, Any]

# The resource of each object type; Ordergroove capitalises `data.object.type` at times.
_OBJECT_RESOURCES = {
    "subscription": "subscriptions",
    "customer": "customers",
    "order": "orders",
    "item": "items",
}


class EventError(ValueError):
    """The event cannot be applied as it is (a retry may help if its records were incomplete)."""


def _data(payload: Record) -> Record:
    # Any JSON value can stand where Ordergroove puts an object: read only a real one.
    data = payload.get("data")
    return data if isinstance(data, dict) else {}


def object_of(payload: Record) -> Record:
    obj = _data(payload).get("object")
    if not isinstance(obj, dict):
        raise EventError("event has no data.object")
    return obj


def snapshot_of(payload: Record) -> Record:
    snapshot = payload.get("snapshot") or _data(payload).get("snapshot") or {}
    return snapshot if isinstance(snapshot, dict) else {}


def resource_of(event_type: str, obj: Record) -> str | None:
    kind = str(obj.get("type") or event_type.split(".", 1)[0]).lower()
    if kind.endswith("s") and kind[:-1] in _OBJECT_RESOURCES:
        kind = kind[:-1]
    if kind == "subscriber":
        return None
    return _OBJECT_RESOURCES.get(kind)


def created_at(payload: Record) -> datetime | None:
    created = payload.get("created")
    if isinstance(created, bool) or not isinstance(created, int | float):
        return None
    try:
        return datetime.fromtimestamp(created, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None  # NaN, infinite or past year 9999: as if absent, as the receiver stores it
