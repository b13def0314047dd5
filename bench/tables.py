"""The Markdown tables the benchmarks print."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")
# A row of a table with a column per measured thing: its label, and its cell for each thing.
Row = tuple[str, Callable[[T], str]]


def line(cells: Iterable[object]) -> str:
    """One row: ``| a | b |``."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def labelled(heads: Sequence[str], rows: Iterable[tuple[str, Sequence[str]]]) -> str:
    """A table with a label column, then a column per head: a row per label and its cells."""
    lines = ["| | " + " | ".join(heads) + " |", "| --- |" + " --- |" * len(heads)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    return "\n".join(lines)


def by_column(heads: Sequence[str], rows: Iterable[Row[T]], items: Sequence[T]) -> str:
    """A table with a label column, then a column per item (headed by ``heads``)."""
    return labelled(heads, ((label, [cell(item) for item in items]) for label, cell in rows))


def fmt_s(seconds: float) -> str:
    return f"{seconds:,.1f} s"


def verdict(value: float, target: float) -> str:
    return "under" if value <= target else "over"
