"""What the sandbox's routes share, without the HTTP stack: `SandboxState` and `make_state`.

`SandboxState` holds the merchant store, the Ometria state, one fault injector per API and the
keys; http_routes.py and ordergroove_api.py serve it, server.py builds the Starlette app around
it and runs it with uvicorn. Importing this module loads neither starlette nor uvicorn.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from .columns import MerchantSpec
from .faults import CursorGuard, FaultInjector
from .merchant import Merchant
from .ometria import DEFAULT_CONTACT_FIELDS, DEFAULT_EVENT_TYPES, OmetriaState

OG_KEY = "sandbox-og-key"
OG_LIMITED_KEY = "sandbox-og-limited-key"
OMETRIA_KEY = "sandbox-ometria-key"
WEBHOOK_KEY = "sandbox-webhook-key"
APIS = ("ordergroove", "ometria")


@dataclass
class SandboxState:
    merchant: Merchant
    ometria: OmetriaState
    keys: dict[str, str]
    faults: dict[str, FaultInjector] = field(
        default_factory=lambda: {api: FaultInjector() for api in APIS}
    )
    # Ordergroove's paginating rule (one cursor per object type, five at most), enforced.
    cursors: CursorGuard = field(default_factory=CursorGuard)
    # Push requests being answered now, and the most at once (for the tests).
    pushes_in_flight: int = 0
    most_pushes_in_flight: int = 0
    sink: list[dict[str, Any]] = field(default_factory=list)
    sink_lock: threading.Lock = field(default_factory=threading.Lock)


def make_state(
    spec: MerchantSpec | Merchant,
    og_key: str = OG_KEY,
    og_limited_key: str = OG_LIMITED_KEY,
    ometria_key: str = OMETRIA_KEY,
    webhook_key: str = WEBHOOK_KEY,
    ometria_rate_limit: float = 8.0,
    contact_fields: frozenset[str] = DEFAULT_CONTACT_FIELDS,
    event_types: frozenset[str] = DEFAULT_EVENT_TYPES,
) -> SandboxState:
    merchant = spec if isinstance(spec, Merchant) else Merchant(spec)
    ometria = OmetriaState({ometria_key}, ometria_rate_limit, contact_fields, event_types)
    keys = {
        "ordergroove": og_key,
        "ordergroove_limited": og_limited_key,
        "ometria": ometria_key,
        "webhook": webhook_key,
    }
    return SandboxState(merchant, ometria, keys)
