"""Local stand-ins for the Ordergroove REST API and the Ometria push API.

Pieces: `MerchantSpec` -> `Merchant` (seeded, columnar, thread-safe store with sorted indexes;
layered columns -> generate -> store -> render/flaws -> reads -> merchant, see merchant.py);
`SandboxServer` (server.py) serves it under /ordergroove next to an Ometria push stand-in under
/ometria and a control plane under /_sandbox, all sharing one `SandboxState` (state.py);
`FaultSpec` injects seeded errors and delays per API; `WebhookSender` applies seeded actions to
the store and POSTs signed Webhooks 2.0 envelopes. REST answers have exactly the documented
record shapes (checked against og_pipeline_tests/contract); `MerchantSpec.bad_record_share`
serves a seeded share of them malformed, listed by `Merchant.bad_records()` (flaws.py), while
webhooks stay well-formed. No Dagster here: the pipeline only talks to these over HTTP.

Importing this package loads neither starlette nor uvicorn: the server's names (`SandboxServer`,
`build_app`, `serve`) are re-exported lazily, on first access, by the module `__getattr__`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .columns import MerchantSpec
from .faults import FaultInjector, FaultSpec
from .flaws import BadRecord
from .merchant import Merchant
from .ometria import OmetriaState
from .state import OG_KEY, OG_LIMITED_KEY, OMETRIA_KEY, WEBHOOK_KEY, SandboxState
from .webhooks import SIGNATURE_HEADER, WebhookSender, sign_webhook, signature_header

if TYPE_CHECKING:  # for type checkers only: at run time `__getattr__` provides these
    from .server import SandboxServer, build_app, serve

_SERVER_NAMES = frozenset({"SandboxServer", "build_app", "serve"})

__all__ = [
    "OG_KEY",
    "OG_LIMITED_KEY",
    "OMETRIA_KEY",
    "SIGNATURE_HEADER",
    "WEBHOOK_KEY",
    "BadRecord",
    "FaultInjector",
    "FaultSpec",
    "Merchant",
    "MerchantSpec",
    "OmetriaState",
    "SandboxServer",
    "SandboxState",
    "WebhookSender",
    "build_app",
    "serve",
    "sign_webhook",
    "signature_header",
]


def __getattr__(name: str) -> Any:
    """Loads server.py (and with it starlette and uvicorn) only when one of its names is used."""
    if name in _SERVER_NAMES:
        value = getattr(importlib.import_module(".server", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _SERVER_NAMES)
