"""Local stand-ins for the Ordergroove REST API and the Ometria push API.

Pieces: `MerchantSpec` -> `Merchant` (seeded, columnar, thread-safe store with sorted indexes);
`SandboxServer` serves it under /ordergroove next to an Ometria push stand-in under /ometria and
a control plane under /_sandbox; `FaultSpec` injects seeded errors and delays per API;
`WebhookSender` applies seeded actions to the store and POSTs signed Webhooks 2.0 envelopes.
REST answers have exactly the documented record shapes (checked against
og_pipeline_tests/contract); `MerchantSpec.bad_record_share` serves a seeded share of them
malformed, listed by `Merchant.bad_records()` (flaws.py), while webhooks stay well-formed.
No Dagster here: the pipeline only talks to these over HTTP.
"""

from __future__ import annotations

from .faults import FaultInjector, FaultSpec
from .flaws import BadRecord
from .merchant import Merchant, MerchantSpec
from .ometria import OmetriaState
from .server import (
    OG_KEY,
    OG_LIMITED_KEY,
    OMETRIA_KEY,
    WEBHOOK_KEY,
    SandboxServer,
    SandboxState,
    build_app,
    serve,
)
from .webhooks import SIGNATURE_HEADER, WebhookSender, sign_webhook, signature_header

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
