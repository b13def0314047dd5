"""Why something failed, in words that quote none of the data it failed on.

Used wherever an error reaches a log, a table or Dagster's event log: the webhook step's
``last_error``, the custom events' ``last_error``, the sync writer's failure.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Protocol

import psycopg

from og_pipeline.db.connection import DatabaseUnavailable
from og_pipeline.envelopes import EventError
from og_pipeline.http_common import redact

MAX_REASON = 2000


class ChainedError(Protocol):
    """Dagster's SerializableErrorInfo as read here: a message and the error that caused it."""

    @property
    def message(self) -> str: ...
    @property
    def cause(self) -> ChainedError | None: ...


def root_cause(error: ChainedError) -> str:
    """The message at the end of a chain of errors: what a person reads first of a failure
    (the API's answer, not Dagster's "error occurred while executing op")."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def safe_reason(exc: BaseException) -> str:
    """Why an event (or a write) failed, in words that quote none of its contents.

    Exception texts may quote values (``invalid literal for int(): 'jane@…'``) and psycopg's
    carry ``DETAIL: Failing row contains (...)``, so only our own EventError wording is kept;
    a database error gives its SQLSTATE and the schema names involved, anything else its class
    and where in og_pipeline it was raised. Redacted first, truncated after, so a cut can never
    leave half an e-mail address that the pattern no longer recognises.
    """
    name = type(exc).__name__
    if isinstance(exc, EventError | DatabaseUnavailable):  # our own wording, which quotes no data
        text = str(exc)
    elif isinstance(exc, psycopg.Error):
        diag = exc.diag
        names = (
            ("table", diag.table_name),
            ("column", diag.column_name),
            ("constraint", diag.constraint_name),
        )
        text = ", ".join(
            [f"SQLSTATE {exc.sqlstate}", *(f"{kind} {value}" for kind, value in names if value)]
        )
    else:
        ours = [
            f
            for f in traceback.extract_tb(exc.__traceback__)
            if "og_pipeline" in Path(f.filename).parts
        ]
        frame = ours[-1] if ours else None
        text = (
            f"raised in {frame.name} ({Path(frame.filename).name}:{frame.lineno})"
            if frame
            else "raised"
        )
    return redact(f"{name}: {text}")[:MAX_REASON]
