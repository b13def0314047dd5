"""Progress bars for `og-pipeline sync` on a terminal: a bar per walk, about every second.

The run's log already gives a line per walk every few seconds (records, pages, rate, share of
the range, time left); on a terminal the same figures also drive a bar per object type, drawn
below the log lines by rich (which Dagster itself depends on). Not on a terminal (a pipe, CI,
a file), nothing is drawn: the log lines are the record.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

from og_pipeline.ordergroove import walks

STEPS = 1000  # a bar's resolution: a year's walk moves it every ~9 hours of records


@contextmanager
def walk_bars(console: Console | None = None) -> Iterator[None]:
    """Shows a bar per walk while walks run in this process, if ``console`` is a terminal."""
    console = console or Console(stderr=True)
    if not console.is_terminal or console.is_dumb_terminal:
        yield
        return
    bars = Progress(
        TextColumn("{task.description:<13}"),
        BarColumn(),
        TextColumn("{task.fields[detail]}"),
        console=console,
        redirect_stdout=True,
        redirect_stderr=True,
    )
    tasks: dict[str, TaskID] = {}

    def show(progress: walks.Progress) -> None:
        for walk in progress.walks.values():
            if walk.resource not in tasks:
                tasks[walk.resource] = bars.add_task(walk.resource, total=STEPS, detail="")
            bars.update(
                tasks[walk.resource],
                completed=round(walk.fraction * STEPS),
                detail=progress.detail(walk),
            )

    with bars, walks.watching(show):
        yield
