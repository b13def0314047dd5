"""The sync's writer process: what was submitted is written in order, and a writer that dies
fails the sync with a reason instead of hanging it or leaving a process behind."""

from __future__ import annotations

import multiprocessing
import os
import signal
from datetime import UTC, datetime

import pytest

from og_pipeline.db.connection import connect
from og_pipeline.ordergroove.writer import BatchWriter, WriterError

READ_AT = datetime(2026, 11, 3, tzinfo=UTC)


def _subscription(n: int, updated: str = "2026-11-02 10:00:00") -> dict[str, object]:
    return {
        "public_id": f"s{n}",
        "customer": f"c{n % 7}",
        "live": True,
        "created": updated,
        "updated": updated,
    }


def test_batches_are_written_in_order_and_counted_and_no_process_is_left(db_url: str) -> None:
    seen: list[tuple[str, int]] = []
    with BatchWriter(
        db_url, "America/Chicago", lambda resource, counts: seen.append((resource, counts.inserted))
    ) as writer:
        writer.submit("subscriptions", [_subscription(n) for n in range(1500)], READ_AT)
        # A later version of the same records in a later batch wins: batches are applied in order.
        writer.submit(
            "subscriptions",
            [_subscription(n, "2026-11-02 11:00:00") | {"live": False} for n in range(10)],
            READ_AT,
        )
        writer.end_of("subscriptions")
    assert writer.counts["subscriptions"].received == 1510
    assert writer.counts["subscriptions"].inserted == 1500
    assert writer.counts["subscriptions"].updated == 10
    assert sum(inserted for _, inserted in seen) == 1500
    with connect(db_url) as conn:
        assert conn.execute(
            "SELECT count(*) FILTER (WHERE NOT live), count(*) FROM og.subscriptions"
        ).fetchone() == (10, 1500)
        assert conn.execute("SELECT count(*) FROM og.dirty_contacts").fetchone() == (7,)
        # 1,500 rows in a never-analysed table: statistics refreshed without waiting for autovacuum.
        assert conn.execute(
            "SELECT reltuples FROM pg_class WHERE oid = 'og.subscriptions'::regclass"
        ).fetchone() == (1500,)
    assert multiprocessing.active_children() == []


def test_a_writer_killed_mid_walk_fails_the_sync_with_a_reason(db_url: str) -> None:
    with (
        pytest.raises(WriterError, match="writer process exited unexpectedly"),
        BatchWriter(db_url, "America/Chicago") as writer,
    ):
        assert writer.pid is not None
        os.kill(writer.pid, signal.SIGKILL)
        for n in range(10):
            writer.submit("subscriptions", [_subscription(n)], READ_AT)
    assert multiprocessing.active_children() == []


def test_a_bad_record_is_set_aside_and_the_rest_of_its_batch_written(db_url: str) -> None:
    with BatchWriter(db_url, "America/Chicago") as writer:
        writer.submit("subscriptions", [_subscription(1)], READ_AT)
        writer.submit(
            "subscriptions", [_subscription(2) | {"live": "perhaps"}, _subscription(3)], READ_AT
        )
    assert (writer.counts["subscriptions"].received, writer.counts["subscriptions"].rejected) == (
        2,
        1,
    )
    with connect(db_url) as conn:
        assert conn.execute("SELECT public_id FROM og.subscriptions ORDER BY 1").fetchall() == [
            ("s1",),
            ("s3",),
        ]
        assert conn.execute("SELECT record_id, reason FROM og.rejected_records").fetchall() == [
            ("s2", 'live: must be a boolean or "True"/"False", not str')
        ]


@pytest.mark.parametrize("text", ["\ud800", "a\x00b"], ids=["lone-surrogate", "nul"])
def test_text_postgres_cannot_store_is_set_aside_not_a_crash(db_url: str, text: str) -> None:
    # A lone surrogate is valid in JSON text (json.loads takes it) but refused by orjson and
    # Postgres; a NUL passes orjson and is refused by Postgres' jsonb.
    with BatchWriter(db_url, "America/Chicago") as writer:
        writer.submit(
            "subscriptions", [_subscription(1) | {"offer": text}, _subscription(2)], READ_AT
        )
    with connect(db_url) as conn:
        assert conn.execute("SELECT public_id FROM og.subscriptions").fetchall() == [("s2",)]
        assert conn.execute("SELECT record_id FROM og.rejected_records").fetchall() == [("s1",)]


def test_a_database_error_reaches_the_sync_without_the_row_it_quotes(db_url: str) -> None:
    # A trigger raising with a DETAIL that quotes the row, as Postgres' own errors do.
    with connect(db_url) as conn:
        conn.execute("""
            CREATE FUNCTION og.test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'refused by test'
                USING DETAIL = 'Failing row contains (' || NEW.record::text || ')';
            END $$""")
        conn.execute(
            "CREATE TRIGGER test_refuse BEFORE INSERT ON og.subscriptions "
            "FOR EACH ROW EXECUTE FUNCTION og.test_refuse()"
        )
    with pytest.raises(WriterError) as failure, BatchWriter(db_url, "America/Chicago") as writer:
        writer.submit(
            "subscriptions", [_subscription(1) | {"email": "secret.person@example.com"}], READ_AT
        )
    assert "SQLSTATE P0001" in str(failure.value)  # the class and SQLSTATE of the error
    assert "example.com" not in str(failure.value) and "Failing row" not in str(failure.value)


_ORPHAN_SCRIPT = """
import sys, threading
from og_pipeline.ordergroove.writer import BatchWriter
if __name__ == "__main__":
    with BatchWriter(sys.argv[1], "America/Chicago") as writer:
        print(writer.pid, flush=True)
        threading.Event().wait()  # until killed
"""


def test_a_writer_whose_sync_was_killed_exits_instead_of_waiting_for_ever(
    db_url: str, tmp_path
) -> None:
    import subprocess
    import sys
    import time

    script = tmp_path / "sync_then_killed.py"
    script.write_text(_ORPHAN_SCRIPT)
    sync = subprocess.Popen(
        [sys.executable, str(script), db_url], stdout=subprocess.PIPE, text=True
    )
    try:
        writer_pid = int(sync.stdout.readline())
        sync.kill()  # as an OOM kill would: no chance to stop the writer
        sync.wait(timeout=30)
        deadline = time.monotonic() + 30
        while _alive(writer_pid) and time.monotonic() < deadline:
            time.sleep(0.1)  # polling for the exit, with a deadline
        assert not _alive(writer_pid), "the writer outlived its sync"
    finally:
        sync.kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie awaiting its reaper (init) has exited all the same.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
