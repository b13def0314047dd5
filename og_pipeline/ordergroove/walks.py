"""The walks of one sync: one thread per object type, each its own cursor, all under one limiter.

    walk thread (per resource)                       sync thread (the caller)
    window after window of the range:                 batches -> writer process (in order)
        pages -> ~1,000 records -> queue ---------->  "done_until" -> checkpoint (via the writer)
        a slow page: the next windows are halved      progress line every few seconds

Ordergroove allows different object types to be walked at once (never two cursors over one type)
and up to five paginating threads: four walks is within both, and the floor of a first sync
becomes its longest walk, not the sum of the four. The limiter (6,000 requests a minute by
default) is the client's, shared by the walks' clients (``OrdergrooveClient.sibling``).

A long range is walked in windows (``window``, a month by default, as Ordergroove advises for a
large initial load); a page slower than ``slow_page_seconds`` halves the windows of the rest of
that walk, down to an hour. After each window the walk says how far it is done; the sync records
that through the writer, after the window's batches, so a checkpoint never claims records that
were not committed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from og_pipeline.ordergroove.client import OrdergrooveClient, version_field
from og_pipeline.ordergroove.fields import instants

log = logging.getLogger(__name__)

# Records per statement and commit: pages of 100 are too small a unit of work for Postgres.
WRITE_BATCH = 1000
# Batches the walks may hold ahead of the writer, all walks together: memory stays flat.
QUEUE_BATCHES = 8
MIN_WINDOW = timedelta(hours=1)
SECOND = timedelta(seconds=1)


@dataclass
class WalkProgress:
    """How far one walk is, for the progress lines."""

    resource: str
    start: datetime
    end: datetime
    done_until: datetime
    pages: int = 0
    records: int = 0
    windows_halved: int = 0
    finished: bool = False
    finished_at: float | None = None  # time.monotonic(): a finished walk's rate stays its own
    # Within a window: the version stamp of the last record read (pages come sorted by it).
    reached: datetime | None = None

    @property
    def fraction(self) -> float:
        span = (self.end - self.start).total_seconds()
        if self.finished or span <= 0:
            return 1.0
        at = max(self.done_until, self.reached) if self.reached else self.done_until
        return min(1.0, max(0.0, (at - self.start).total_seconds() / span))

    def note_page(self, page: list[Any], zone: str) -> None:
        """Counts a page and moves ``reached`` to its last record's version stamp, if that
        reads (a record the writer will set aside only leaves the estimate where it was)."""
        self.pages += 1
        self.records += len(page)
        last = page[-1] if page else None
        if not isinstance(last, dict):
            return
        try:
            moment = instants(last.get(version_field(self.resource)), zone)
        except ValueError:
            return
        if moment is not None:
            reached = datetime.fromisoformat(moment.earliest)
            if reached.tzinfo is not None:
                self.reached = reached


@dataclass
class Progress:
    started: float = field(default_factory=time.monotonic)
    walks: dict[str, WalkProgress] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """One line per walk: records, pages, rate, share of the range, estimated time left."""
        return [f"{walk.resource}: {self.detail(walk)}" for walk in self.walks.values()]

    def detail(self, walk: WalkProgress) -> str:
        elapsed = max((walk.finished_at or time.monotonic()) - self.started, 1e-6)
        done = walk.fraction
        left = "done" if walk.finished else _eta(elapsed, done)
        return (
            f"{walk.records:,} records, {walk.pages:,} pages "
            f"({walk.pages / elapsed * 60:,.0f} pages/min), {done:.0%} of the range, {left}"
        )


def _eta(elapsed: float, done: float) -> str:
    if done <= 0:
        return "time left unknown yet"
    seconds = elapsed * (1 - done) / done
    return f"about {seconds / 60:.0f} min left" if seconds >= 90 else f"about {seconds:.0f} s left"


# Who else in this process follows the walks, besides the run's log: the `sync` command's
# progress bars on a terminal. Dagster hands a run's assets no callbacks, and the command runs
# its jobs in this process, so it registers here for the length of a run.
_watchers: list[Callable[[Progress], None]] = []
WATCH_EVERY = 1.0


@contextmanager
def watching(callback: Callable[[Progress], None]) -> Iterator[None]:
    """Calls ``callback`` with the walks' progress about every second while walks run here."""
    _watchers.append(callback)
    try:
        yield
    finally:
        _watchers.remove(callback)


def _tell_watchers(progress: Progress) -> None:
    for callback in _watchers:
        try:
            callback(progress)
        except Exception:  # a display must never fail the walk
            log.debug("a progress watcher failed", exc_info=True)


class _Stopped(Exception):
    """Another walk failed or the sync is ending: this walk stops between pages."""


def _walk(
    client: OrdergrooveClient,
    progress: WalkProgress,
    out: queue.Queue[tuple[Any, ...]],
    stop: threading.Event,
    window: timedelta,
    slow_page_seconds: float,
) -> None:
    def put(item: tuple[Any, ...]) -> None:
        while True:
            if stop.is_set():
                raise _Stopped
            try:
                out.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    resource, size, cursor = progress.resource, window, progress.done_until
    try:
        while cursor <= progress.end:
            first, last = cursor, min(cursor + size - SECOND, progress.end)
            pending: list[Any] = []
            fetched_at = datetime.now(UTC)
            for page in client.iter_updated(resource, first, last):
                if stop.is_set():
                    raise _Stopped
                if not pending:
                    fetched_at = datetime.now(UTC)
                pending.extend(page)
                progress.note_page(page, client.zone)
                if len(pending) >= WRITE_BATCH:
                    put(("write", resource, pending, fetched_at))
                    pending = []
                if client.last_request_seconds > slow_page_seconds and size > MIN_WINDOW:
                    size = max(MIN_WINDOW, size / 2)
                    progress.windows_halved += 1
                    log.warning(
                        "ordergroove %s: a page took %.0f s; the rest of the walk goes in "
                        "windows of %s",
                        resource,
                        client.last_request_seconds,
                        size,
                    )
            if pending:
                put(("write", resource, pending, fetched_at))
            put(("done_until", resource, last))
            cursor = last + SECOND
        put(("end", resource))
    except _Stopped:
        return
    except BaseException as exc:  # noqa: BLE001 - handed to the sync thread, which raises it
        stop.set()
        try:
            out.put(("error", resource, exc), timeout=5)
        except queue.Full:
            pass
    finally:
        client.close()


def run_walks(
    client: OrdergrooveClient,
    plans: list[WalkProgress],
    *,
    window: timedelta,
    slow_page_seconds: float,
    handle: Callable[[tuple[Any, ...]], None],
    on_progress: Callable[[Progress], None] | None = None,
    progress_every: float = 5.0,
) -> Progress:
    """Walk every plan at once, a thread each; ``handle`` gets each item on the calling thread:
    ``("write", resource, records, fetched_at)``, ``("done_until", resource, last)``,
    ``("end", resource)``. Raises the first walk's error after stopping the others."""
    progress = Progress(walks={plan.resource: plan for plan in plans})
    out: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=QUEUE_BATCHES)
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=_walk,
            args=(client.sibling(), plan, out, stop, window, slow_page_seconds),
            name=f"og-walk-{plan.resource}",
            daemon=True,
        )
        for plan in plans
    ]
    for thread in threads:
        thread.start()
    running = {plan.resource for plan in plans}
    next_report = time.monotonic() + progress_every
    next_watch = time.monotonic()
    try:
        while running:
            try:
                item = out.get(timeout=0.5)
            except queue.Empty:
                item = None
            if item is not None:
                kind, resource = item[0], item[1]
                if kind == "error":
                    raise item[2]
                if kind == "end":
                    running.discard(resource)
                    progress.walks[resource].finished = True
                    progress.walks[resource].finished_at = time.monotonic()
                elif kind == "done_until":
                    progress.walks[resource].done_until = item[2] + SECOND
                handle(item)
            if on_progress is not None and time.monotonic() >= next_report:
                next_report = time.monotonic() + progress_every
                on_progress(progress)
            if _watchers and time.monotonic() >= next_watch:
                next_watch = time.monotonic() + WATCH_EVERY
                _tell_watchers(progress)
    finally:
        if _watchers:
            _tell_watchers(progress)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    return progress
