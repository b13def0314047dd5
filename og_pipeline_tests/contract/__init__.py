"""The documented API record shapes as data: JSON Schema (draft 2020-12) files, and a loader.

ordergroove/<record>.schema.json encode shared/docs/ordergroove-api.md, "Record shapes (REST)":
each documented field with its type variants, the key and version timestamp required, and
`additionalProperties: false` so that a stand-in cannot serve a field Ordergroove does not (an
item with `updated` fails). page.schema.json is the v2 cursor page envelope. Shared value shapes
live in defs.schema.json, referenced by `$id`; `validator(name)` resolves them from this folder
only, never over the network.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

ORDERGROOVE = Path(__file__).parent / "ordergroove"
RECORDS = ("subscription", "customer", "order", "item", "product")
# The API path of each list endpoint -> its record schema.
SCHEMA_OF_RESOURCE = {
    "subscriptions": "subscription",
    "customers": "customer",
    "orders": "order",
    "items": "item",
    "products": "product",
}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ORDERGROOVE / f"{name}.schema.json").read_text())
    return data


@cache
def _registry() -> Registry:
    resources = [
        (schema["$id"], Resource.from_contents(schema))
        for schema in (json.loads(p.read_text()) for p in ORDERGROOVE.glob("*.schema.json"))
    ]
    return Registry().with_resources(resources)


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator for one schema by file stem: "item", "page", ..."""
    return Draft202012Validator(load(name), registry=_registry())
