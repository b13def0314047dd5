"""The Ometria push stand-in's state: contacts, custom events, request log, async errors.

Flow of `OmetriaState.push(key, body)`: auth (401) -> per-key sliding-window rate limit (429)
-> structural checks that fail the whole request (400: not a JSON array, 0 or >100 records,
mixed `@type`) -> per record: size check ("Record is too large" counts as rejected), then
semantic checks that real Ometria reports only later at `GET /v2/push/_errors`, then upsert by
id. Records with a structural semantic error (bad id, unknown or too long event_type, timestamp
without offset) are not stored; unknown custom fields and over-long strings are dropped from the
stored record. Every request, refused or not, is appended to the request log.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DEFAULT_CONTACT_FIELDS = frozenset(
    {
        "ordergroove_active_subscriptions",
        "ordergroove_total_subscriptions",
        "ordergroove_subscription_status",
        "ordergroove_next_order_date",
    }
)
DEFAULT_EVENT_TYPES = frozenset({"Ordergroove_subscription_event", "Ordergroove_order_reminder"})
MAX_RECORDS = 100
MAX_RECORD_BYTES = 60 * 1024
MAX_STRING = 512
MAX_EVENT_TYPE = 32
RECORD_TYPES = frozenset({"contact", "custom_event", "order", "product"})


@dataclass
class PushResult:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class OmetriaState:
    """Thread-safe. Read `contacts`, `events`, `event_push_counts`, `requests`, `errors`."""

    def __init__(
        self,
        api_keys: set[str],
        rate_limit: float = 8.0,
        contact_fields: frozenset[str] = DEFAULT_CONTACT_FIELDS,
        event_types: frozenset[str] = DEFAULT_EVENT_TYPES,
        rate_limit_retry_after: int | None = 1,
    ) -> None:
        self.api_keys = api_keys
        self.rate_limit_retry_after = rate_limit_retry_after
        self.rate_limit = rate_limit
        self.contact_fields = contact_fields
        self.event_types = event_types
        self.lock = threading.RLock()
        self.contacts: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.event_push_counts: dict[str, int] = {}
        self.other_records: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.errors: deque[dict[str, str]] = deque(maxlen=100)
        # Ids refused synchronously (counted in `rejected`), standing in for Ometria's own
        # record-level refusals, which the push answer counts but does not name.
        self.reject_ids: set[str] = set()
        self._arrived: float | None = None
        self._windows: dict[str, deque[float]] = {}

    # ------------------------------------------------------------------ helpers

    def _log(
        self,
        status: int,
        key: str | None,
        record_type: str | None,
        count: int,
        accepted: int = 0,
        rejected: int = 0,
    ) -> None:
        self.requests.append(
            {
                "time": time.time(),
                # The instant the rate limiter saw the request (when it did), so that windows
                # measured on the log are the limiter's own, not shifted by processing time.
                "monotonic": self._arrived if self._arrived is not None else time.monotonic(),
                "status": status,
                "key": key,
                "type": record_type,
                "count": count,
                "accepted": accepted,
                "rejected": rejected,
            }
        )

    def log_fault(self, status: int, key: str | None) -> None:
        """Records an injected fault, so the log shows every request the client made."""
        with self.lock:
            self._arrived = None
            self._log(status, key, None, 0)
            self.requests[-1]["fault"] = True

    def _rate_ok(self, key: str) -> bool:
        now = self._arrived = time.monotonic()
        window = self._windows.setdefault(key, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= self.rate_limit:
            return False
        window.append(now)
        return True

    def _error(self, message: str, path: str) -> None:
        self.errors.append({"error_message": message, "error_path": path})

    def reset(self) -> None:
        with self.lock:
            self.contacts.clear()
            self.events.clear()
            self.event_push_counts.clear()
            self.other_records.clear()
            self.requests.clear()
            self.errors.clear()
            self._windows.clear()

    # ------------------------------------------------------------------ push

    def push(self, key: str | None, body: bytes) -> PushResult:
        with self.lock:
            self._arrived = None
            if key not in self.api_keys:
                self._log(401, key, None, 0)
                return PushResult(401, {"status": "error", "message": "Invalid API key"})
            if not self._rate_ok(key):
                self._log(429, key, None, 0)
                # Ometria documents no Retry-After; sending one is configurable so clients can
                # be tested both ways (rate_limit_retry_after=None sends none).
                headers = {}
                if self.rate_limit_retry_after is not None:
                    headers["Retry-After"] = str(self.rate_limit_retry_after)
                return PushResult(
                    429, {"status": "error", "message": "Rate limit exceeded"}, headers
                )
            try:
                records = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                return self._bad(key, None, 0, "Request body is not valid JSON")
            if not isinstance(records, list):
                return self._bad(key, None, 0, "Request body must be a JSON array of records")
            if not records:
                return self._bad(key, None, 0, "Request body must contain at least one record")
            if len(records) > MAX_RECORDS:
                return self._bad(
                    key,
                    None,
                    len(records),
                    f"Too many records: {len(records)} (at most {MAX_RECORDS} per request)",
                )
            if not all(isinstance(r, dict) for r in records):
                return self._bad(key, None, len(records), "Every record must be a JSON object")
            types = {r.get("@type") for r in records}
            if len(types) != 1:
                return self._bad(
                    key,
                    None,
                    len(records),
                    "All records in one request must have the same @type, got "
                    + ", ".join(sorted(str(t) for t in types)),
                )
            record_type = next(iter(types))
            if record_type not in RECORD_TYPES:
                return self._bad(
                    key, str(record_type), len(records), f"Unknown record @type: {record_type!r}"
                )
            accepted = rejected = 0
            for record in records:
                if self._ingest(record_type, record):
                    accepted += 1
                else:
                    rejected += 1
            self._log(200, key, record_type, len(records), accepted, rejected)
            return PushResult(
                200,
                {
                    "status": "OK",
                    "request_id": uuid.uuid4().hex,
                    "accepted": accepted,
                    "rejected": rejected,
                },
            )

    def _bad(
        self, key: str | None, record_type: str | None, count: int, message: str
    ) -> PushResult:
        self._log(400, key, record_type, count)
        return PushResult(400, {"status": "error", "message": message})

    def _ingest(self, record_type: str, record: dict[str, Any]) -> bool:
        """Returns False when the record is rejected synchronously (counted in `rejected`)."""
        rid = record.get("id")
        size = len(json.dumps(record, separators=(",", ":")).encode())
        path = f"{record_type}[{rid}]"
        if size > MAX_RECORD_BYTES:
            self._error("Record is too large", path)
            return False
        if not isinstance(rid, str) or not rid:
            self._error("Record has no id", path)
            return False
        if rid in self.reject_ids:
            self._error("Record refused", path)
            return False
        # From here on Ometria has accepted the record; problems surface only in _errors.
        if record_type == "contact":
            self._contact(rid, record, path)
        elif record_type == "custom_event":
            self._event(rid, record, path)
        else:
            self.other_records[(record_type, rid)] = copy.deepcopy(record)
        return True

    def _clean_properties(
        self, record: dict[str, Any], path: str, known: frozenset[str] | None
    ) -> dict[str, Any]:
        props = record.get("properties") or {}
        if not isinstance(props, dict):
            self._error("properties must be an object", f"{path}.properties")
            return {}
        cleaned: dict[str, Any] = {}
        for name, value in props.items():
            if known is not None and name not in known:
                self._error(f"Unknown custom field: {name}", f"{path}.properties.{name}")
                continue
            if isinstance(value, str) and len(value) > MAX_STRING:
                self._error(
                    f"String property exceeds {MAX_STRING} characters",
                    f"{path}.properties.{name}",
                )
                continue
            cleaned[name] = value
        return cleaned

    def _contact(self, rid: str, record: dict[str, Any], path: str) -> None:
        if "@" in rid:
            self._error("Contact id must not contain an email address", f"{path}.id")
            return
        props = self._clean_properties(record, path, self.contact_fields)
        incoming = {k: copy.deepcopy(v) for k, v in record.items() if k != "properties"}
        stored = self.contacts.get(rid)
        if stored is not None and record.get("@merge") is True:
            merged = dict(stored)
            merged.update(incoming)
            merged["properties"] = {**stored.get("properties", {}), **props}
        else:
            merged = {**incoming, "properties": props}
        self.contacts[rid] = merged

    def _event(self, rid: str, record: dict[str, Any], path: str) -> None:
        self.event_push_counts[rid] = self.event_push_counts.get(rid, 0) + 1
        event_type = record.get("event_type")
        if not isinstance(event_type, str) or not event_type:
            self._error("Missing event_type", f"{path}.event_type")
            return
        if len(event_type) >= MAX_EVENT_TYPE:
            self._error(
                f"event_type must be under {MAX_EVENT_TYPE} characters", f"{path}.event_type"
            )
            return
        if event_type not in self.event_types:
            self._error(f"Unknown event_type: {event_type}", f"{path}.event_type")
            return
        stamp = record.get("timestamp")
        try:
            parsed = datetime.fromisoformat(str(stamp))
        except ValueError:
            self._error(f"Invalid timestamp: {stamp}", f"{path}.timestamp")
            return
        if parsed.tzinfo is None:
            self._error(f"Timestamp has no UTC offset: {stamp}", f"{path}.timestamp")
            return
        props = self._clean_properties(record, path, None)
        self.events[rid] = {**copy.deepcopy(record), "properties": props}

    # ------------------------------------------------------------------ inspection

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "contacts": copy.deepcopy(self.contacts),
                "events": copy.deepcopy(self.events),
                "event_push_counts": dict(self.event_push_counts),
            }

    def request_log(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.requests]

    def latest_errors(self) -> list[dict[str, str]]:
        with self.lock:
            return list(reversed(self.errors))
