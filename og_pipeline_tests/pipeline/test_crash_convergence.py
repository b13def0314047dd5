"""SIGKILL at any point of a sync or a webhook run, then a rerun: the right contact fields, and
no custom event sent twice.

Each test starts `python -m og_pipeline sync` (or `webhooks process`) against a sandbox in a
session of its own, waits for a moment of the run by polling the sandbox and the database with a
deadline, SIGKILLs the whole process group, clears the faults and runs the same command again.
The rerun must finish (the killed run's pool slot freed) and Ometria must then hold exactly the
ground truth of every customer with an e-mail.

Kill points: mid-walk (Ordergroove has served pages, nothing written yet), mid-write (rows in
og.*, the walk still going; only the run's main process is killed, and its writer must exit by
itself), mid-push (Ometria holds some contacts, not all), and between an Ometria push and its
bookkeeping, for contacts and for custom events. The sandbox's faults delay a request before
Ometria records it, never after, and the real window (the answer on its way back, then one
commit) is a few milliseconds: ``HoldAfterAccept`` stands in for a slow answer by holding the
sandbox's answer to one push after Ometria recorded it, until the run is dead.

bench/crash_drill.py imports these helpers for its demonstration.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from og_pipeline.db.connection import connect
from og_pipeline.sandbox import FaultSpec, MerchantSpec, SandboxServer, WebhookSender
from og_pipeline.sandbox.ometria import PushResult
from og_pipeline.webhooks.staging import store_event
from og_pipeline_tests.pipeline.conftest import NOW, START, expected_fields

ROOT = Path(__file__).resolve().parents[2]
RANGE = ("--start", START.strftime("%Y-%m-%d"), "--end", NOW.strftime("%Y-%m-%d"))
SUBSCRIPTIONS = 1000
KILL_DEADLINE = 90.0  # seconds for the moment of a kill to come
RUN_TIMEOUT = 180.0  # seconds for a rerun: a stalled one (a slot never freed) fails here
# What a command prints when it marks a killed run failed and frees its pool slots (cli/runs.py).
RELEASED = "its process is gone (killed or crashed); its pool slots are free again"
POLL = 0.005  # seconds between looks at the sandbox and the database while waiting for a moment
OG_TABLES = ("customers", "subscriptions", "orders", "items")
MAPPED_TYPES = (
    "subscription.create",
    "subscription.created",
    "subscription.cancel",
    "order.reminder",
)


# ---------------------------------------------------------------- running and killing commands


def command_env(
    sandbox: SandboxServer, db_url: str, dagster_db_url: str, home: Path
) -> dict[str, str]:
    return {
        **os.environ,
        "OG_DATABASE_URL": db_url,
        "OG_DAGSTER_DATABASE_URL": dagster_db_url,
        "OG_HOME": str(home),
        "ORDERGROOVE_API_URL": sandbox.ordergroove_url,
        "OMETRIA_API_URL": sandbox.ometria_url,
        "ORDERGROOVE_API_KEY": "sandbox-og-key",
        "OMETRIA_API_KEY": "sandbox-ometria-key",
    }


@dataclass
class Command:
    """`python -m og_pipeline <args>` in its own session (and process group); output to files."""

    env: dict[str, str]
    args: tuple[str, ...]
    logs: Path
    proc: subprocess.Popen[bytes] = field(init=False)

    def __post_init__(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        name = "-".join(self.args[:2]).replace("/", "_")
        self._out = open(self.logs / f"{name}-{time.monotonic_ns()}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "og_pipeline", *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return Path(self._out.name).read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill_group(self) -> None:
        """SIGKILL every process of the command's group, and reap the main one."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self._out.close()

    def wait(self, timeout: float = RUN_TIMEOUT) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill_group()
            raise AssertionError(
                f"{' '.join(self.args)} did not finish within {timeout:.0f} s "
                f"(a slot never freed?):\n{self.output[-3000:]}"
            ) from None
        self._out.close()
        return code


def run_to_end(env: dict[str, str], args: tuple[str, ...], logs: Path) -> tuple[float, str]:
    """Run a command to its end; its seconds and output. Fails on a non-zero exit."""
    began = time.monotonic()
    command = Command(env, args, logs)
    code = command.wait()
    seconds = time.monotonic() - began
    assert code == 0, command.output[-3000:]
    return seconds, command.output


def wait_for(
    what: str, moment: Callable[[], bool], command: Command, deadline: float = KILL_DEADLINE
) -> None:
    """Poll until ``moment()`` holds; fail if the command ends first or the deadline passes."""
    end = time.monotonic() + deadline
    while not moment():
        # pytest.fail, not assert: a moment missed is no outcome an xfail may expect.
        if not command.alive():
            pytest.fail(f"the run ended before {what}:\n{command.output[-3000:]}")
        if time.monotonic() >= end:
            pytest.fail(f"no {what} within {deadline:.0f} s")
        threading.Event().wait(POLL)  # a poll interval, not a synchronisation


def children_of(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the
        # last ')'.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# ---------------------------------------------------------------- probing sandbox and database


class Probe:
    """Counts read while a run goes on, on one autocommit connection."""

    def __init__(self, sandbox: SandboxServer, db_url: str) -> None:
        self.sandbox = sandbox
        self.conn: psycopg.Connection = connect(db_url, autocommit=True)

    def close(self) -> None:
        self.conn.close()

    def count(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        row = self.conn.execute(sql, params).fetchone()
        return int(row[0]) if row else 0

    def og_rows(self) -> int:
        return self.count(
            "SELECT " + " + ".join(f"(SELECT count(*) FROM og.{t})" for t in OG_TABLES)
        )

    def ordergroove_requests(self) -> int:
        return len(self.sandbox.state.faults["ordergroove"].decisions)

    def ometria_contacts(self) -> int:
        with self.sandbox.ometria.lock:
            return len(self.sandbox.ometria.contacts)

    def contacts_recorded(self) -> int:
        return self.count("SELECT count(*) FROM og.ometria_contacts WHERE fields_hash IS NOT NULL")

    def recorded_among(self, contact_ids: list[str]) -> int:
        """How many of these Ometria contact ids og.ometria_contacts records as accepted."""
        return self.count(
            "SELECT count(*) FROM og.ometria_contacts"
            " WHERE fields_hash IS NOT NULL AND contact_id = ANY(%s)",
            (contact_ids,),
        )

    def contacts_accepted_by_ometria(self) -> int:
        return sum(
            r["accepted"]
            for r in self.sandbox.ometria.request_log()
            if r["status"] == 200 and r["type"] == "contact"
        )

    def pending_pushes(self) -> int:
        """Contacts with an e-mail whose fields differ from what Ometria last accepted."""
        return self.count(
            "SELECT count(*) FROM og.contact_stats s "
            "LEFT JOIN og.ometria_contacts o USING (customer_id) "
            "WHERE s.email IS NOT NULL AND s.fields_hash IS DISTINCT FROM o.fields_hash"
        )


def with_email(sandbox: SandboxServer) -> dict[str, dict[str, Any]]:
    return {cid: t for cid, t in sandbox.merchant.ground_truth().items() if t["email"]}


def mismatches(sandbox: SandboxServer) -> list[str]:
    """How Ometria's contacts differ from the ground truth (empty: converged)."""
    truth = with_email(sandbox)
    contacts = sandbox.ometria.snapshot()["contacts"]
    problems = [
        f"unexpected contact {cid}" for cid in sorted(set(contacts) - {f"og-{c}" for c in truth})
    ]
    for cid, t in truth.items():
        contact = contacts.get(f"og-{cid}")
        if contact is None:
            problems.append(f"og-{cid} missing")
        elif contact["properties"] != expected_fields(t) or contact.get("email") != t["email"]:
            problems.append(f"og-{cid}: {contact['properties']} != {expected_fields(t)}")
    return problems


class HoldAfterAccept:
    """Holds the sandbox's answer to the ``nth`` accepted push of ``record_type`` after Ometria
    recorded it: the sync is then between the push and its bookkeeping until ``release()``.

    The sandbox calls OmetriaState.push on its event loop, so the hold stalls the whole sandbox
    (nothing else is asked of it meanwhile); it holds outside Ometria's lock, so the test reads
    the request log while it waits, and for at most ``limit`` seconds, under the client's 30 s
    read timeout."""

    def __init__(
        self, sandbox: SandboxServer, record_type: str, nth: int, limit: float = 20.0
    ) -> None:
        self.ometria = sandbox.ometria
        self.record_type = record_type
        self.nth = nth
        self.limit = limit
        self.held = threading.Event()
        self._release = threading.Event()
        self._seen = 0
        self.ids: list[str] = []

    def _push(
        self, original: Callable[[str | None, bytes], PushResult]
    ) -> Callable[[str | None, bytes], PushResult]:
        def push(key: str | None, body: bytes) -> PushResult:
            result = original(key, body)
            if result.status != 200 or self.held.is_set():
                return result
            records = json.loads(body)
            if records and records[0].get("@type") == self.record_type:
                self._seen += 1
                if self._seen == self.nth:
                    self.ids = [r["id"] for r in records]
                    self.held.set()
                    self._release.wait(self.limit)
            return result

        return push

    def release(self) -> None:
        self._release.set()

    @contextmanager
    def installed(self) -> Iterator[HoldAfterAccept]:
        original = self.ometria.push
        self.ometria.push = self._push(original)  # type: ignore[method-assign,assignment]
        try:
            yield self
        finally:
            self.release()
            self.ometria.push = original  # type: ignore[method-assign]


# ---------------------------------------------------------------- kill points of a sync


@dataclass
class Drill:
    """One sandbox and database, the sync's environment, and a probe."""

    sandbox: SandboxServer
    db_url: str
    env: dict[str, str]
    logs: Path
    probe: Probe

    def sync(self) -> Command:
        return Command(self.env, ("sync", *RANGE), self.logs)

    def rerun(self) -> tuple[float, str]:
        """Clear the faults, sync again to its end; the rerun's seconds and output."""
        self.sandbox.clear_faults()
        return run_to_end(self.env, ("sync", *RANGE), self.logs)


def kill_mid_walk(drill: Drill) -> str:
    """Ordergroove has served a few slow pages; nothing is written yet (a batch is 10 pages)."""
    drill.sandbox.set_faults("ordergroove", FaultSpec(slow_rate=1.0, slow_seconds=0.3))
    run = drill.sync()
    wait_for("3 Ordergroove pages", lambda: drill.probe.ordergroove_requests() >= 3, run)
    run.kill_group()
    rows = drill.probe.og_rows()
    assert drill.sandbox.ometria.request_log() == []
    return (
        f"killed after {drill.probe.ordergroove_requests()} Ordergroove requests, {rows} og.* rows"
    )


def kill_mid_write(drill: Drill) -> str:
    """Rows in og.*, the walk still going: only the main process is killed (as the OOM killer
    would), and the writer must exit on its own; then the group, for anything left."""
    drill.sandbox.set_faults("ordergroove", FaultSpec(slow_rate=1.0, slow_seconds=0.05))
    run = drill.sync()
    wait_for("rows in og.*", lambda: drill.probe.og_rows() > 0, run)
    children = children_of(run.proc.pid)
    os.kill(run.proc.pid, signal.SIGKILL)
    run.proc.wait(timeout=30)
    rows = drill.probe.og_rows()
    end = time.monotonic() + 30
    while any(pid_alive(pid) for pid in children) and time.monotonic() < end:
        threading.Event().wait(0.05)  # a poll interval
    orphans = [pid for pid in children if pid_alive(pid)]
    run.kill_group()
    assert not orphans, f"processes of the killed sync still alive 30 s later: {orphans}"
    assert drill.sandbox.ometria.request_log() == []
    return f"killed with {rows} og.* rows written; its {len(children)} child process(es) exited"


def kill_mid_push(drill: Drill) -> str:
    """Ometria holds some contacts, not all."""
    total = len(with_email(drill.sandbox))
    drill.sandbox.set_faults("ometria", FaultSpec(slow_rate=1.0, slow_seconds=0.3))
    run = drill.sync()
    wait_for("a partial push", lambda: 0 < drill.probe.ometria_contacts(), run)
    run.kill_group()
    held = drill.probe.ometria_contacts()
    assert 0 < held < total, (held, total)
    return f"killed with {held} of {total} contacts in Ometria"


def kill_between_push_and_bookkeeping(drill: Drill) -> str:
    """Ometria accepted the second batch of contacts; og.ometria_contacts does not have it yet."""
    hold = HoldAfterAccept(drill.sandbox, "contact", nth=2)
    with hold.installed():
        run = drill.sync()
        wait_for("an accepted push", hold.held.is_set, run)
        accepted, recorded = (
            drill.probe.contacts_accepted_by_ometria(),
            drill.probe.contacts_recorded(),
        )
        run.kill_group()
    assert recorded < accepted, (recorded, accepted)
    # The batches before the held one may still be recorded until the kill (their answers came
    # back; four are on the wire at once); the held batch's contacts must not be.
    assert drill.probe.recorded_among(hold.ids) == 0, "the bookkeeping of the held push happened"
    return (
        f"killed with {accepted} contacts accepted by Ometria, "
        f"{recorded} recorded in og.ometria_contacts"
    )


KILL_POINTS: dict[str, Callable[[Drill], str]] = {
    "mid-walk": kill_mid_walk,
    "mid-write": kill_mid_write,
    "mid-push": kill_mid_push,
    "push-bookkeeping": kill_between_push_and_bookkeeping,
}


@pytest.fixture
def drill(db_url: str, dagster_db_url: str, tmp_path: Path) -> Iterator[Drill]:
    spec = MerchantSpec(subscriptions=SUBSCRIPTIONS, seed=9, start=START, now=NOW)
    with SandboxServer(spec, port=0) as sandbox:
        probe = Probe(sandbox, db_url)
        try:
            yield Drill(
                sandbox,
                db_url,
                command_env(sandbox, db_url, dagster_db_url, tmp_path),
                tmp_path / "logs",
                probe,
            )
        finally:
            probe.close()


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_sync_killed_then_rerun_converges(drill: Drill, point: str) -> None:
    KILL_POINTS[point](drill)

    _, output = drill.rerun()

    assert RELEASED in output, "the rerun did not free the killed run's slots first"

    assert mismatches(drill.sandbox) == []
    assert drill.probe.pending_pushes() == 0, "og.ometria_contacts does not match what Ometria has"


# ---------------------------------------------------------------- a webhook run


def stage_live_changes(
    sandbox: SandboxServer, db_url: str, count: int, seed: int = 3
) -> list[dict[str, Any]]:
    """``count`` seeded changes to the merchant, their events committed as the receiver would."""
    sender = WebhookSender(sandbox.merchant, "http://127.0.0.1:9/unused", ["unused"], seed=seed)
    envelopes = [sender.apply_random_action() for _ in range(count)]
    with connect(db_url) as conn:
        for envelope in envelopes:
            store_event(conn, json.dumps(envelope).encode())
    return envelopes


@dataclass
class WebhookKill:
    info: str
    mapped: set[str]  # the custom event ids the staged changes call for
    held: set[str]  # the ids of the push killed before its record


def kill_webhook_run_between_event_push_and_record(drill: Drill, changes: int = 250) -> WebhookKill:
    """After a sync, ``changes`` live changes staged; `webhooks process` killed once Ometria
    accepted its second batch of custom events and before og.ometria_events says so."""
    drill.rerun()  # the REST state first, as in production
    envelopes = stage_live_changes(drill.sandbox, drill.db_url, changes)
    mapped = {f"og-{e['id']}" for e in envelopes if e["type"] in MAPPED_TYPES}
    hold = HoldAfterAccept(drill.sandbox, "custom_event", nth=2)
    with hold.installed():
        run = Command(drill.env, ("webhooks", "process"), drill.logs)
        wait_for("an accepted custom event push", hold.held.is_set, run)
        sending = drill.probe.count(
            "SELECT count(*) FROM og.ometria_events WHERE outcome = 'sending'"
        )
        run.kill_group()
    held = set(hold.ids)
    return WebhookKill(
        f"killed with {len(held)} custom events accepted by Ometria, "
        f"{sending} of them 'sending' in og.ometria_events",
        mapped,
        held,
    )


def webhook_problems(drill: Drill, kill: WebhookKill) -> list[str]:
    """What custom_events.py promises after a kill between a push and its record, broken."""
    ometria = drill.sandbox.ometria.snapshot()
    outcomes: dict[str, str] = dict(
        drill.probe.conn.execute("SELECT event_id, outcome FROM og.ometria_events").fetchall()
    )
    problems = [
        f"{eid} sent {n} times" for eid, n in sorted(ometria["event_push_counts"].items()) if n > 1
    ]
    if set(ometria["events"]) != kill.mapped:
        problems.append(f"Ometria has {len(ometria['events'])} events, {len(kill.mapped)} expected")
    if {eid for eid, outcome in outcomes.items() if outcome == "unconfirmed"} != kill.held:
        problems.append("the held batch is not exactly the unconfirmed one")
    if {
        eid for eid, outcome in outcomes.items() if outcome == "accepted"
    } != kill.mapped - kill.held:
        problems.append("not every other event is accepted")
    return problems


def test_a_webhook_run_killed_between_an_event_push_and_its_record_sends_no_event_twice(
    drill: Drill,
) -> None:
    """custom_events.py: each batch is recorded 'sending' before its push, so a sender killed
    between the push and the outcome leaves rows the next sender marks 'unconfirmed' instead of
    sending them again."""
    kill = kill_webhook_run_between_event_push_and_record(drill)
    assert len(kill.held) == 100 and len(kill.mapped) > 200

    _, output = run_to_end(drill.env, ("webhooks", "process"), drill.logs)

    assert RELEASED in output
    assert webhook_problems(drill, kill) == []
    assert mismatches(drill.sandbox) == []


CLAIMED = "SELECT count(*) FROM og.webhook_events WHERE status = 'pending' AND batch_id IS NOT NULL"


def test_a_webhook_run_killed_mid_apply_then_rerun_converges(drill: Drill) -> None:
    """A run killed after its batch's claim committed: the batch's lock died with the process, so
    the rerun claims the events again at once (not STALE_BATCH later) and applies them."""
    drill.rerun()
    stage_live_changes(drill.sandbox, drill.db_url, 500)
    run = Command(drill.env, ("webhooks", "process"), drill.logs)
    wait_for("a claimed batch", lambda: drill.probe.count(CLAIMED) > 0, run)
    run.kill_group()
    if drill.probe.count(CLAIMED) == 0:
        pytest.fail("the kill came after the batch was applied")

    run_to_end(drill.env, ("webhooks", "process"), drill.logs)

    assert drill.probe.count("SELECT count(*) FROM og.webhook_events WHERE status = 'pending'") == 0
    assert mismatches(drill.sandbox) == []
