"""What a check answers, and how its answer is kept free of secrets.

``Check`` is one line of ``og-pipeline doctor``'s output (or one entry of its JSON): the check's
name, its ``Verdict``, what it found, what to do about it and the facts behind it. The names are
constants so that the order of the checks, the skip messages and the tests agree. ``Skip`` is
how a check that depends on a failed one says it cannot run.

No secret reaches a message: the API clients redact their own errors, URLs are shown without
their password (``public_url``, ``db.urls.redact``), exception texts pass through
``http_common.redact`` (``describe``), and ``scrub`` drops every configured secret that
``secrets_in`` finds from what the command prints, as a last guard.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from og_pipeline.http_common import redact


class Verdict(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    todo: str = ""
    facts: dict[str, Any] = field(default_factory=dict)


class Skip(Exception):
    """A check that cannot run: an earlier one failed (the message says which)."""


CONFIGURATION = "configuration"
POSTGRES = "postgres"
MIGRATIONS = "migrations"
DAGSTER_STORAGE = "dagster storage"
ORDERGROOVE_KEY = "ordergroove key"
OMETRIA_KEY = "ometria key"
WEBHOOK_KEY = "webhook key"
RECEIVER = "receiver"
POOL_LIMITS = "pools"
SLOT_HOLDS = "slot holds"

# What to do, shared by several checks: the other commands fix these by themselves at start.
APPLY_MIGRATIONS = (
    "every og-pipeline command applies them at start, e.g. `og-pipeline records rejected "
    "--limit 1`; then restart the receiver and Dagster so they run the same code"
)
FIRST_COMMAND = "the first og-pipeline command (dev, sync, webhooks process) creates"
FREE_IN_UI = (
    "free its slots in the Dagster UI (the run's menu, or the pool under Deployment > Concurrency)"
)

_SECRET_VARIABLES = ("ORDERGROOVE_API_KEY", "OMETRIA_API_KEY", "ORDERGROOVE_WEBHOOK_KEY")
_URL_VARIABLES = ("OG_DATABASE_URL", "OG_DAGSTER_DATABASE_URL")
# Below this length a "secret" would match ordinary words of the output; URLs and keys are
# already kept out of every message, the scrub only guards against what slipped through.
_MIN_SCRUBBED = 4


def secrets_in(environ: Mapping[str, str], receiver_url: str | None = None) -> list[str]:
    """The secret values of the configuration, read from the raw variables so that they are
    known even when the configuration does not parse."""
    found: list[str] = []
    for name in _SECRET_VARIABLES:
        value = environ.get(name, "")
        found += [value, value.strip(), *(part.strip() for part in value.split(","))]
    for url in [*(environ.get(name, "") for name in _URL_VARIABLES), receiver_url or ""]:
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password:
            found += [password, unquote(password)]
    # Longest first, so that a secret holding another is replaced whole.
    return sorted({s for s in found if len(s) >= _MIN_SCRUBBED}, key=len, reverse=True)


def scrub(check: Check, secrets: list[str]) -> Check:
    """``check`` with every one of ``secrets`` replaced, in its texts and facts alike."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            for secret in secrets:
                value = value.replace(secret, "[redacted]")
            return value
        if isinstance(value, dict):
            return {clean(k): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    return replace(
        check, detail=clean(check.detail), todo=clean(check.todo), facts=clean(check.facts)
    )


def describe(exc: BaseException, secrets: list[str]) -> str:
    """An exception as a message shows it: its class and the first line of its text, redacted
    (a driver's error may quote the URL or the password it was given)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return redact(f"{type(exc).__name__}" + (f": {text}" if text else ""), *secrets)


def public_url(url: str) -> str:
    """An API or receiver URL as shown: no user, password, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
