"""The year ui_bench measures the pages with: the raw asset's backfill, launched as the UI
launches one (GraphQL ``launchPartitionBackfill``) and run by the daemon, waited for to the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from datetime import time as day_time
from typing import TYPE_CHECKING, Any

import requests
from run_memory import RunWorkerMemory

if TYPE_CHECKING:
    from ui_bench import Result

RAW = "ordergroove_raw_records"
POLL = 2.0  # seconds between polls of the backfill and the runs
ACTIVE_RUN_STATUSES = "[QUEUED, NOT_STARTED, STARTING, STARTED, CANCELING]"
DONE_BACKFILL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def graphql(base: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = requests.post(
        f"{base}/graphql", json={"query": query, "variables": variables or {}}, timeout=300
    )
    if not answer.ok:
        raise RuntimeError(f"GraphQL answered {answer.status_code}: {answer.text[:3000]}")
    body = answer.json()
    if body.get("errors"):
        raise RuntimeError(f"GraphQL errors: {body['errors']}")
    data: dict[str, Any] = body["data"]
    return data


def wait_for(what: str, timeout: float, check: Callable[[], Any]) -> Any:
    """Polls ``check`` every POLL seconds until it returns something true, or fails after
    ``timeout`` seconds with ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(POLL)


def year_range(days: int) -> tuple[datetime, datetime]:
    """The ``days`` before today 00:00 UTC: [first hour, end)."""
    end = datetime.combine(datetime.now(UTC).date(), day_time(0), tzinfo=UTC)
    return end - timedelta(days=days), end


def partition_key(at: datetime) -> str:
    return at.strftime("%Y-%m-%d-%H:%M")  # HourlyPartitionsDefinition's format


def wait_for_location(base: str) -> None:
    query = """{ workspaceOrError { __typename ... on Workspace { locationEntries {
        name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""

    def loaded() -> bool:
        data = graphql(base, query)["workspaceOrError"]
        entries = data.get("locationEntries") or []
        for entry in entries:
            error = entry.get("locationOrLoadError") or {}
            if error.get("__typename") == "PythonError":
                raise RuntimeError(f"code location {entry['name']}: {error['message']}")
        return bool(entries) and all(
            entry["loadStatus"] == "LOADED"
            and (entry.get("locationOrLoadError") or {}).get("__typename") == "RepositoryLocation"
            for entry in entries
        )

    wait_for("the code location loaded in the webserver", 300, loaded)


LAUNCH_BACKFILL = """mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}"""
BACKFILL_STATUS = """query BenchBackfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status error { message } }
    ... on Error { message }
  }
}"""
BACKFILL_DETAIL = """query BenchBackfillDetail($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill {
      status numPartitions timestamp endTimestamp
      runs { runId jobName status startTime endTime }
      assetBackfillData { assetBackfillStatuses { ... on AssetPartitionsStatusCounts {
        numPartitionsTargeted numPartitionsInProgress numPartitionsMaterialized
        numPartitionsFailed } } }
    }
  }
}"""
ACTIVE_RUNS = (
    "{ runsOrError(filter: {statuses: " + ACTIVE_RUN_STATUSES + "}) { __typename "
    "... on Runs { results { runId jobName status } } } }"
)
PUSH_RUNS = """query BenchPushRuns($after: Float!) {
  runsOrError(filter: {pipelineName: "contacts_push", createdAfter: $after}) {
    __typename ... on Runs { results { runId status } }
  }
}"""
DONE_RUN = {"SUCCESS", "FAILURE", "CANCELED"}
RECENT_RUNS = (
    "{ runsOrError(limit: 50) { __typename "
    "... on Runs { results { runId jobName status startTime endTime } } } }"
)
PARTITION_STATS = """query BenchPartitionStats($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) { ... on AssetNode { partitionStats {
    numMaterialized numPartitions numFailed numMaterializing } } }
}"""


def backfill_year(
    base: str, first: datetime, end: datetime, timeout: float, push_timeout: float, result: Result
) -> None:
    """The raw asset's backfill over the hours [first, end), as the UI launches one; waits for
    it, for the contacts_push run after it, and for no run to be left."""
    params = {
        # Not with assetSelection: Dagster refuses the two together.
        "partitionsByAssets": [
            {
                "assetKey": {"path": [RAW]},
                "partitions": {
                    "range": {
                        "start": partition_key(first),
                        "end": partition_key(end - timedelta(hours=1)),
                    }
                },
            }
        ],
        "tags": [{"key": "og/bench", "value": "ui_bench"}],
        "title": f"ui_bench: {RAW} over {(end - first) // timedelta(hours=1):,} hours",
    }
    memory = RunWorkerMemory().start()  # the run workers' PSS, until no run is left
    began, launched_at = time.monotonic(), time.time()
    result.launched_at = launched_at
    try:
        _backfill(base, params, began, launched_at, timeout, push_timeout, result)
    finally:
        memory.stop()
        result.run_memory = memory.as_json()


def _backfill(
    base: str,
    params: dict[str, Any],
    began: float,
    launched_at: float,
    timeout: float,
    push_timeout: float,
    result: Result,
) -> None:
    launched = graphql(base, LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
    if launched["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"launchPartitionBackfill: {launched}")
    result.backfill_id = launched["backfillId"]
    print(f"backfill {result.backfill_id} launched; waiting for the daemon to run it", flush=True)
    last = [""]

    def done() -> str:
        data = graphql(base, BACKFILL_STATUS, {"id": result.backfill_id})
        backfill = data["partitionBackfillOrError"]
        status = str(backfill.get("status", backfill["__typename"]))
        if status != last[0]:
            print(f"  {time.monotonic() - began:6.1f} s: backfill {status}", flush=True)
            last[0] = status
        return status if status in DONE_BACKFILL else ""

    result.backfill_status = wait_for("the backfill completed", timeout, done)
    result.backfill_seconds = time.monotonic() - began
    if result.backfill_status != "COMPLETED_SUCCESS":
        raise RuntimeError(f"backfill {result.backfill_id} ended {result.backfill_status}")
    quiet_from = time.monotonic()

    def pushed() -> str:
        data = graphql(base, PUSH_RUNS, {"after": launched_at})["runsOrError"]
        done = [r["status"] for r in data.get("results") or [] if r["status"] in DONE_RUN]
        return done[0] if done else ""

    # push_after_backfill starts contacts_push once the backfill's run succeeded, at its next
    # evaluation: the pages are measured after that run, not beside it.
    try:
        result.push_status = wait_for("the contacts_push run after it", push_timeout, pushed)
    except TimeoutError as missing:
        result.push_status = f"none ({missing})"

    def quiet() -> bool:
        runs = graphql(base, ACTIVE_RUNS)["runsOrError"]
        return not runs.get("results")

    wait_for("no run queued or in progress", timeout, quiet)
    result.quiet_seconds = time.monotonic() - quiet_from


def backfill_facts(base: str, result: Result) -> None:
    """After the page loads (these queries would warm the caches the first load meets)."""
    detail = graphql(base, BACKFILL_DETAIL, {"id": result.backfill_id})["partitionBackfillOrError"]
    result.backfill_runs = detail.get("runs") or []
    statuses = (detail.get("assetBackfillData") or {}).get("assetBackfillStatuses") or [{}]
    result.backfill_counts = {"numPartitions": detail.get("numPartitions"), **statuses[0]}
    node = graphql(base, PARTITION_STATS, {"key": {"path": [RAW]}})["assetNodeOrError"]
    result.materialized = node.get("partitionStats") or {}
    began, ended = result.pages_window
    result.runs_during_pages = [
        r
        for r in graphql(base, RECENT_RUNS)["runsOrError"].get("results") or []
        if (r["startTime"] or ended) < ended and (r["endTime"] or ended) > began
    ]
