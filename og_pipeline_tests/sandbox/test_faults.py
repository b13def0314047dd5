"""Fault injection: seeded, reproducible decisions, bursts, and no side effects when faulted."""

from __future__ import annotations

import requests

from og_pipeline.sandbox import FaultSpec, SandboxServer
from og_pipeline.sandbox.faults import FaultInjector

from .conftest import V2

OMETRIA = {"X-Ometria-Auth": "sandbox-ometria-key"}


def _statuses(sb: SandboxServer, n: int) -> list[int]:
    session = requests.Session()
    url = sb.ordergroove_url + "/products/"
    return [session.get(url, headers=V2).status_code for _ in range(n)]


def test_same_seed_same_sequence(fresh_sandbox: SandboxServer) -> None:
    spec = FaultSpec(rate=0.4, seed=42)
    fresh_sandbox.set_faults("ordergroove", spec)
    first = _statuses(fresh_sandbox, 40)
    fresh_sandbox.set_faults("ordergroove", spec)
    second = _statuses(fresh_sandbox, 40)
    fresh_sandbox.set_faults("ordergroove", FaultSpec(rate=0.4, seed=43))
    third = _statuses(fresh_sandbox, 40)
    assert first == second
    assert first != third
    assert set(first) - {200} and set(first) <= {200, 429, 423, 500, 502, 503}
    fresh_sandbox.clear_faults()
    assert set(_statuses(fresh_sandbox, 10)) == {200}


def test_retry_after_on_429(fresh_sandbox: SandboxServer) -> None:
    fresh_sandbox.set_faults("ordergroove", FaultSpec(burst=(429, 1), retry_after=3))
    response = requests.get(fresh_sandbox.ordergroove_url + "/products/", headers=V2)
    assert response.status_code == 429 and response.headers["Retry-After"] == "3"


def test_burst_then_recovery(fresh_sandbox: SandboxServer) -> None:
    fresh_sandbox.set_faults("ordergroove", FaultSpec(burst=(503, 5)))
    assert _statuses(fresh_sandbox, 7) == [503] * 5 + [200, 200]


def test_faulted_push_has_no_side_effects(fresh_sandbox: SandboxServer) -> None:
    fresh_sandbox.set_faults("ometria", FaultSpec(burst=(500, 2)))
    record = [{"@type": "contact", "id": "og-1", "email": "a@example.com"}]
    url = fresh_sandbox.ometria_url + "/v2/push"
    assert requests.post(url, json=record, headers=OMETRIA).status_code == 500
    assert "og-1" not in fresh_sandbox.ometria.contacts
    assert requests.post(url, json=record, headers=OMETRIA).status_code == 500
    assert requests.post(url, json=record, headers=OMETRIA).status_code == 200
    assert "og-1" in fresh_sandbox.ometria.contacts
    log = fresh_sandbox.ometria.request_log()
    assert [(r["status"], r.get("fault", False)) for r in log] == [
        (500, True),
        (500, True),
        (200, False),
    ]


def test_faults_over_http_control_plane(fresh_sandbox: SandboxServer) -> None:
    control = fresh_sandbox.url + "/_sandbox/faults"
    set_burst = {"api": "ordergroove", "fault": {"burst": [502, 2]}}
    assert requests.post(control, json=set_burst).status_code == 200
    assert _statuses(fresh_sandbox, 3) == [502, 502, 200]
    requests.post(control, json={"api": "ordergroove", "fault": {"burst": [429, 9]}})
    assert requests.post(control, json={"api": "all", "clear": True}).status_code == 200
    assert _statuses(fresh_sandbox, 2) == [200, 200]
    assert requests.post(control, json={"api": "nope", "clear": True}).status_code == 400


def test_slow_responses_still_answer(fresh_sandbox: SandboxServer) -> None:
    fresh_sandbox.set_faults("ordergroove", FaultSpec(slow_rate=1.0, slow_seconds=0.05))
    assert _statuses(fresh_sandbox, 2) == [200, 200]
    injector = fresh_sandbox.state.faults["ordergroove"]
    assert [d.delay for d in injector.decisions] == [0.05, 0.05]


def test_requests_per_minute_sliding_window() -> None:
    now = [1000.0]
    injector = FaultInjector(FaultSpec(requests_per_minute=3), clock=lambda: now[0])
    statuses = []
    for at in (0.0, 10.0, 20.0, 30.0, 59.9, 60.0, 61.0, 70.0, 71.0):
        now[0] = 1000.0 + at
        statuses.append(injector.decide().status)
    # Three let through in [0, 20]; 30 and 59.9 still see all three within 60 s; at 60.0 the
    # first has left the window, at 70.0 the second, the refused ones never counted.
    assert statuses == [None, None, None, 429, 429, None, 429, None, 429]
    assert injector.limited == 4
    now[0] = 1030.0
    injector.set(FaultSpec(requests_per_minute=1))  # a new spec starts an empty window
    assert injector.decide().status is None and injector.decide().status == 429


def test_requests_per_minute_answers_429_with_retry_after(fresh_sandbox: SandboxServer) -> None:
    fresh_sandbox.set_faults("ordergroove", FaultSpec(requests_per_minute=2))
    session = requests.Session()
    url = fresh_sandbox.ordergroove_url + "/products/"
    responses = [session.get(url, headers=V2) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert 1 <= int(responses[2].headers["Retry-After"]) <= 60
    # Ometria's own limit is not this one.
    record = [{"@type": "contact", "id": "og-1", "email": "a@example.com"}]
    push = requests.post(fresh_sandbox.ometria_url + "/v2/push", json=record, headers=OMETRIA)
    assert push.status_code == 200
