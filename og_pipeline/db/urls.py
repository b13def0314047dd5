"""Connection URLs: one Postgres server, two databases (og-pipeline's tables and Dagster's).

Dagster's storage goes through SQLAlchemy, which maps a bare ``postgresql://`` URL to psycopg 3
from SQLAlchemy 2.1 on; dagster-postgres is built on psycopg2, so its URL names that driver.
"""

from __future__ import annotations

import hashlib
from urllib.parse import SplitResult, urlsplit, urlunsplit

_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg")
DAGSTER_SUFFIX = "_dagster"
# Postgres truncates identifiers, database names included, to 63 bytes (NAMEDATALEN - 1).
_MAX_NAME_BYTES = 63


def _split(url: str) -> SplitResult:
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"expected a postgresql:// URL, got scheme {parts.scheme!r}")
    return parts


def with_database(url: str, database: str) -> str:
    """The same server and credentials, another database."""
    parts = _split(url)
    return urlunsplit(parts._replace(path="/" + database))


def database_name(url: str) -> str:
    name = _split(url).path.lstrip("/")
    return name or "postgres"


def dagster_database_url(og_url: str) -> str:
    """The Dagster database of the deployment whose tables are at ``og_url``: same server and
    credentials, database ``<name>_dagster``.

    One per og-pipeline database, so deployments sharing a server share no runs and no pool
    slots (a crashed run of one cannot stall another). A name too long for Postgres is cut and
    given a hash of the whole, so two long names stay two databases.
    """
    name = database_name(og_url)
    derived = name + DAGSTER_SUFFIX
    if len(derived.encode()) > _MAX_NAME_BYTES:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        room = _MAX_NAME_BYTES - len(DAGSTER_SUFFIX) - len(digest) - 1
        head = name.encode()[:room].decode(errors="ignore")  # never half a UTF-8 character
        derived = f"{head}_{digest}{DAGSTER_SUFFIX}"
    return with_database(og_url, derived)


def for_psycopg(url: str) -> str:
    """A libpq URL (psycopg and psql accept only the bare scheme)."""
    parts = _split(url)
    return urlunsplit(parts._replace(scheme="postgresql"))


def for_dagster(url: str) -> str:
    """A SQLAlchemy URL that selects psycopg2, the driver dagster-postgres is built on."""
    parts = _split(url)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg2"))


def redact(url: str) -> str:
    """The URL without its password, for logs and messages."""
    parts = _split(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
