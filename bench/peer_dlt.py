"""The peer in peer_bench: dlt's ``rest_api`` source loading the sandbox into Postgres.

The load runs in an interpreter of its own (``python -c`` with ``dlt_child``'s source) that
imports dlt and nothing of og-pipeline's, measured as a process tree (``common.run_tree``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from common import OG_KEY, PAGE_SIZE, TreeRun, clean_env, run_tree
from sync_runs import sync_range
from walks import walk_window

from og_pipeline.db.connection import ensure_database, one
from og_pipeline.db.embedded import EmbeddedPostgres
from og_pipeline.db.urls import for_psycopg
from og_pipeline.ordergroove.client import og_window_params
from og_pipeline.ordergroove.sync import RESOURCES

# The records' keys: og.* tables' primary keys (db/migrations/0001_initial.sql).
PRIMARY_KEYS = {
    "customers": "merchant_user_id",
    "subscriptions": "public_id",
    "orders": "public_id",
    "items": "public_id",
}
DATASET = "ordergroove"  # dlt's schema in its database
POLL = 0.2  # seconds between memory readings
# Variables that would point dlt (or og-pipeline) elsewhere: left out of both children's.
DLT_PREFIXES = ("DLT_", "RUNTIME__", "DESTINATION")


@dataclass
class DltRun:
    strategy: str
    process: TreeRun = field(default_factory=TreeRun)
    child: dict[str, Any] = field(default_factory=dict)  # what the child reported
    table_rows: dict[str, int] = field(default_factory=dict)  # count(*) after the load

    @property
    def run_s(self) -> float:
        return float(self.child["run_s"])


def dlt_config(api_url: str, args: argparse.Namespace, strategy: str) -> dict[str, Any]:
    """The rest_api source's configuration: the sandbox's auth, pages, filters and keys."""
    start, end = walk_window(*sync_range(args.start, args.days))
    return {
        "client": {
            "base_url": api_url.rstrip("/") + "/",
            # Without the version header the sandbox (as Ordergroove) serves page numbers.
            "headers": {"X-OG-API-VERSION": "2", "Accept": "application/json"},
            "auth": {
                "type": "api_key",
                "name": "x-api-key",
                "api_key": OG_KEY,
                "location": "header",
            },
            # {"next": url | null, "previous": url | null, "results": [...]}
            "paginator": {"type": "json_link", "next_url_path": "next"},
        },
        "resource_defaults": {
            "write_disposition": {"disposition": "merge", "strategy": strategy},
            **({"parallelized": True} if args.dlt_parallelized else {}),
        },
        "resources": [
            {
                "name": resource,
                "primary_key": PRIMARY_KEYS[resource],
                "endpoint": {
                    "path": f"{resource}/",
                    "params": {
                        "page_size": PAGE_SIZE,
                        **og_window_params(resource, start, end),
                    },
                    "data_selector": "results",
                },
            }
            for resource in RESOURCES
        ],
    }


def dlt_child() -> None:
    """The dlt load, in its own interpreter (``python -c`` with this function's source), so that
    its process imports dlt and nothing of og-pipeline's: ``argv[1]`` is a JSON spec."""
    import json
    import sys
    import time

    with open(sys.argv[1]) as fh:
        spec = json.load(fh)
    began = time.perf_counter()
    import dlt
    from dlt.sources.rest_api import rest_api_source

    imported = time.perf_counter()
    pipeline = dlt.pipeline(
        pipeline_name=spec["pipeline"],
        destination=dlt.destinations.postgres(credentials=spec["credentials"]),
        dataset_name=spec["dataset"],
        pipelines_dir=spec["pipelines_dir"],
    )
    source = rest_api_source(spec["config"], name="ordergroove")
    run_began = time.perf_counter()
    info = pipeline.run(source)
    run_s = time.perf_counter() - run_began
    info.raise_on_failed_jobs()
    trace = pipeline.last_trace
    assert trace is not None  # the run just traced
    steps = {
        s.step: (s.finished_at - s.started_at).total_seconds()
        for s in trace.steps
        if s.started_at and s.finished_at
    }
    normalize = trace.last_normalize_info
    rows = dict(normalize.row_counts) if normalize is not None else {}
    out = {
        "dlt_version": dlt.__version__,
        "import_s": imported - began,
        "run_s": run_s,
        "steps": steps,
        "rows": rows,
    }
    with open(spec["out"], "w") as fh:
        json.dump(out, fh)


def count_rows(url: str, schema: str) -> dict[str, int]:
    """Rows per table of ``schema`` (dlt's own ``_dlt_*`` tables left out)."""
    with psycopg.connect(for_psycopg(url), autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                "AND table_type = 'BASE TABLE' ORDER BY table_name",
                (schema,),
            )
        ]
        counts: dict[str, int] = {}
        for name in names:
            if name.startswith("_dlt_"):
                continue
            query = f'SELECT count(*) FROM "{schema}"."{name}"'  # names from the catalogue
            counts[name] = int(one(conn.execute(query))[0])
        return counts


def dlt_credentials(url: str) -> str:
    """The database's URL as dlt takes it: dlt insists on a host, and the embedded server has a
    Unix socket only, named in ``?host=``; libpq lets the query's host override the URL's."""
    parts = urlsplit(for_psycopg(url))
    if parts.hostname:
        return urlunsplit(parts)
    user = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{user}@localhost" if user else "localhost"))


def run_dlt(
    args: argparse.Namespace, server: EmbeddedPostgres, base: str, work: Path, strategy: str
) -> DltRun:
    run = DltRun(strategy)
    tag = strategy.replace("-", "_")
    database = f"dlt_peer_{tag}"
    ensure_database(server.url(), database)
    home = work / f"dlt-{tag}"
    home.mkdir()
    spec = {
        "pipeline": f"og_peer_{tag}",
        "credentials": dlt_credentials(server.url(database)),
        "dataset": DATASET,
        "pipelines_dir": str(home / "pipelines"),
        "config": dlt_config(f"{base}/ordergroove", args, strategy),
        "out": str(home / "result.json"),
    }
    (home / "spec.json").write_text(json.dumps(spec, indent=1))
    env = clean_env(*DLT_PREFIXES)
    env.update(
        {
            "RUNTIME__DLTHUB_TELEMETRY": "false",  # no traffic off this machine
            "DLT_DATA_DIR": str(home / "data"),
            "DLT_PROJECT_DIR": str(home),  # no .dlt/ config from anywhere else
        }
    )
    code = inspect.getsource(dlt_child) + "\ndlt_child()\n"
    cmd = [sys.executable, "-c", code, str(home / "spec.json")]
    run.process = run_tree(
        cmd,
        env,
        home,
        home / "dlt.out",
        home / "dlt.err",
        name="dlt",
        poll=POLL,
        timeout=args.timeout,
    )
    run.child = json.loads((home / "result.json").read_text())
    run.table_rows = count_rows(server.url(database), DATASET)
    return run
