"""Page queries over a `SortedKeys` index: cursor (API v2) and legacy page-number (v1).

A cursor is an opaque token for (direction, key): "n" = the keys after `key`, "p" = the keys
before `key`. Because `key` is (local updated, row) of the last record served, a forward walk
resumes right after it whatever was inserted or moved meanwhile, and a walk over an unchanging
window yields each record exactly once. Cost: one bisect plus the records scanned, so
O(log N + page_size) when no extra filter has to skip records.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice

from .sortedkeys import SortedKeys

Match = Callable[[int], bool] | None


@dataclass(frozen=True)
class Cursor:
    direction: str  # "n" after key, "p" before key
    key: int

    def encode(self) -> str:
        raw = f"{self.direction}{self.key}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def decode(token: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            direction, key = raw[0], int(raw[1:])
        except (binascii.Error, UnicodeDecodeError, ValueError, IndexError):
            raise ValueError("Invalid cursor") from None
        if direction not in ("n", "p"):
            raise ValueError("Invalid cursor")
        return Cursor(direction, key)


@dataclass
class CursorPage:
    keys: list[int]
    next: Cursor | None
    previous: Cursor | None


def _forward(index: SortedKeys, start: int, hi: int, match: Match) -> Iterator[int]:
    for key in index.iter_from(start):
        if key >= hi:
            return
        if match is None or match(key):
            yield key


def _backward(index: SortedKeys, before: int, lo: int, match: Match) -> Iterator[int]:
    for key in index.iter_before(before):
        if key < lo:
            return
        if match is None or match(key):
            yield key


def cursor_page(
    index: SortedKeys, lo: int, hi: int, match: Match, cursor: Cursor | None, page_size: int
) -> CursorPage:
    """Keys in [lo, hi) that match, one page from `cursor` (None = the first page)."""
    if cursor is None or cursor.direction == "n":
        start = lo if cursor is None else max(lo, cursor.key + 1)
        got = list(islice(_forward(index, start, hi, match), page_size + 1))
        keys = got[:page_size]
        nxt = Cursor("n", keys[-1]) if len(got) > page_size else None
        prev = None
        if cursor is not None:
            anchor = keys[0] if keys else start
            if next(_backward(index, anchor, lo, match), None) is not None:
                prev = Cursor("p", anchor)
        return CursorPage(keys, nxt, prev)
    got = list(islice(_backward(index, min(cursor.key, hi), lo, match), page_size + 1))
    keys = list(reversed(got[:page_size]))
    prev = Cursor("p", keys[0]) if len(got) > page_size else None
    anchor = keys[-1] if keys else cursor.key - 1
    nxt = Cursor("n", anchor) if next(_forward(index, anchor + 1, hi, match), None) else None
    return CursorPage(keys, nxt, prev)


@dataclass
class NumberPage:
    keys: list[int]
    count: int
    has_next: bool
    has_previous: bool


def number_page(
    index: SortedKeys, lo: int, hi: int, match: Match, page: int, page_size: int
) -> NumberPage | None:
    """Legacy `?page=N` (1-based) with a total count; None when the page does not exist."""
    if match is None:
        count = index.count_range(lo, hi)
    else:
        count = sum(1 for _ in _forward(index, lo, hi, match))
    offset = (page - 1) * page_size
    if page < 1 or (offset >= count and page != 1):
        return None
    keys = list(islice(_forward(index, lo, hi, match), offset, offset + page_size))
    return NumberPage(keys, count, offset + page_size < count, page > 1)
