"""The production topology, as separate processes started with the images' own commands.

On 127.0.0.1 with free ports (og_pipeline_tests/deploy/topology.py): Postgres, the sandbox APIs,
the code server (the image's default command, `dagster code-server start -m
og_pipeline.definitions`), `dagster-webserver`, `dagster-daemon run` and `og-pipeline webhooks
serve` (docker-compose.yaml's commands), on copies of deploy/dagster.yaml and
deploy/workspace.yaml. Runs go through the queue and are launched by Dagster's DefaultRunLauncher
as processes of the code server, as in docker-compose.yaml. Every wait is a poll with a deadline;
the one fixed interval (the CPU measurement) measures, it does not synchronise.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster._core.storage.tags import GRPC_INFO_TAG

from og_pipeline.pools import OMETRIA_POOL, ORDERGROOVE_POOL
from og_pipeline_tests.deploy.services import cpu_seconds, process_state
from og_pipeline_tests.deploy.topology import Topology, running_topology

pytestmark = [
    pytest.mark.slow,
    # dagster_graphql's client calls gql the way gql 4 deprecates.
    pytest.mark.filterwarnings("ignore:Using variable_values:DeprecationWarning"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads processes in /proc"),
]


@pytest.fixture(scope="module")
def topology(
    pg_server_url: str, _template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Topology]:
    with running_topology(pg_server_url, _template, tmp_path_factory.mktemp("topology")) as up:
        yield up


def test_a_queued_sync_run_is_launched_by_the_code_server_and_pushes_contacts(
    topology: Topology,
) -> None:
    run_id = topology.submit_sync(topology.busiest_hours[0])
    run = topology.wait_until_finished(run_id, timeout=180)

    events = {entry.dagster_event_type for entry in topology.instance.all_logs(run_id)}
    # Queued (the coordinator), then started by the daemon's run queue.
    assert {dg.DagsterEventType.RUN_ENQUEUED, dg.DagsterEventType.RUN_STARTING} <= events
    # Launched by DefaultRunLauncher through the code server, in a process none of us started.
    assert f'"port": {topology.code_port}' in run.tags[GRPC_INFO_TAG]
    pid = topology.worker_pid(run_id)
    assert pid is not None and pid not in topology.services.pids() | {os.getpid()}

    (pushed,) = [
        entry.asset_materialization
        for entry in topology.instance.all_logs(
            run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        )
        if entry.asset_materialization is not None
        and entry.asset_materialization.asset_key == dg.AssetKey("ometria_contact_fields")
    ]
    count = pushed.metadata["contacts_pushed"].value
    contacts = topology.sandbox.ometria.snapshot()["contacts"]
    assert count > 0 and len(contacts) == count


def test_signed_webhooks_reach_ometria_through_the_receiver_and_the_sensor(
    topology: Topology,
) -> None:
    sender = topology.sandbox.webhook_sender(topology.receiver_url, seed=11)
    sent = sender.stream(6)
    assert [getattr(response, "status_code", response) for _, response in sent] == [200] * 6
    expected = {f"og-{envelope['id']}" for envelope, _ in sent}

    topology.services.wait_for(
        lambda: expected <= set(topology.sandbox.ometria.snapshot()["events"]),
        180,
        "the sensor's runs sent the custom events to Ometria",
    )
    assert topology.query("SELECT status, count(*) FROM og.webhook_events GROUP BY status") == [
        ("processed", 6)
    ]
    sensor_runs = dg.RunsFilter(
        job_name="process_webhook_events", tags={"dagster/sensor_name": "webhook_events_sensor"}
    )
    runs = topology.services.wait_for(
        lambda: (
            (runs := topology.instance.get_runs(filters=sensor_runs))
            and all(run.is_finished for run in runs)
            and runs
        ),
        120,
        "the sensor's runs finished",
    )
    assert all(GRPC_INFO_TAG in run.tags for run in runs)  # launched by the code server
    assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}


def test_a_run_behind_held_slots_waits_queued_then_idle_and_ends_when_terminated(
    topology: Topology,
) -> None:
    """Slots held by runs that are not ours (another process's, say): ordergroove_api, the run's
    first pool, and ometria_api, the pool of its push."""
    storage = topology.instance.event_log_storage
    og_holder = "e" * 8 + "-holds-ordergroove-api"
    ometria_holder = "f" * 8 + "-holds-ometria-api"
    assert storage.claim_concurrency_slot(ORDERGROOVE_POOL, og_holder, "step").is_claimed
    assert storage.claim_concurrency_slot(OMETRIA_POOL, ometria_holder, "step").is_claimed
    try:
        # The run's first step cannot get a slot: the queue keeps the run, no worker is started.
        run_id = topology.submit_sync(topology.busiest_hours[1])
        daemon = topology.services.by_name("daemon")
        topology.services.wait_for(
            lambda: f"Run {run_id} is blocked by global concurrency limits" in daemon.output(400),
            60,
            f"the run queue holds run {run_id} for the {ORDERGROOVE_POOL} pool",
        )
        assert topology.run(run_id).status == dg.DagsterRunStatus.QUEUED
        assert topology.worker_pid(run_id) is None

        # Launched once ordergroove_api frees; its push then waits in the run worker.
        storage.free_concurrency_slots_for_run(og_holder)
        message = topology.services.wait_for(
            lambda: next(
                (m for m in topology.messages(run_id) if "waiting for a slot in pool" in m), None
            ),
            120,
            f"run {run_id} says it waits for a slot",
        )
        assert f"pool {OMETRIA_POOL}" in message and ometria_holder[:8] in message, message

        pid = topology.worker_pid(run_id)
        assert pid is not None and pid not in topology.services.pids()
        # The run worker is a process of the code server's (in its process group), alive.
        assert os.getpgid(pid) == topology.code_server.pid
        cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
        topology.services.wait_for(
            lambda: time.monotonic() - wall_before >= 4, 10, "4 s of waiting", interval=0.2
        )
        share = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - wall_before)
        assert share < 0.25, f"the waiting run worker used {share:.0%} of a CPU"

        topology.graphql.terminate_run(run_id)  # the UI's Terminate button
        topology.services.wait_for(
            lambda: topology.run(run_id).is_finished and process_state(pid) in (None, "Z"),
            60,
            f"run {run_id} ended and its worker exited",
        )
        assert topology.run(run_id).status in (
            dg.DagsterRunStatus.CANCELED,
            dg.DagsterRunStatus.FAILURE,
        )
        info = storage.get_concurrency_info(OMETRIA_POOL)
        assert run_id not in {step.run_id for step in info.pending_steps}
        assert info.active_run_ids == {ometria_holder}
        assert run_id not in storage.get_concurrency_info(ORDERGROOVE_POOL).active_run_ids
    finally:
        storage.free_concurrency_slots_for_run(og_holder)
        storage.free_concurrency_slots_for_run(ometria_holder)
