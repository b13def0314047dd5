"""A chunked sorted list of ints: the sandbox's per-object-type "database index".

Keys are `(local_updated_seconds << 32) | row`, so one int orders by (updated, primary key)
(primary keys are allocated monotonically in row order, see `ids.py`). Chunks keep inserts and
removes at O(sqrt-ish N) instead of shifting a million-entry list, and a page lookup is a bisect
over chunk maxima plus a bisect inside one chunk: O(log N + page_size).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator

ROW_BITS = 32
ROW_MASK = (1 << ROW_BITS) - 1


def make_key(local_updated: int, row: int) -> int:
    return (local_updated << ROW_BITS) | row


def key_row(key: int) -> int:
    return key & ROW_MASK


class SortedKeys:
    """Sorted collection of distinct int keys; not thread-safe (the Merchant lock guards it)."""

    LOAD = 1000

    def __init__(self, keys: Iterable[int] = ()) -> None:
        ordered = sorted(keys)
        self._chunks: list[list[int]] = [
            ordered[i : i + self.LOAD] for i in range(0, len(ordered), self.LOAD)
        ]
        self._maxes: list[int] = [c[-1] for c in self._chunks]
        self._len = len(ordered)

    def __len__(self) -> int:
        return self._len

    def add(self, key: int) -> None:
        if not self._chunks:
            self._chunks.append([key])
            self._maxes.append(key)
        else:
            i = bisect_left(self._maxes, key)
            if i == len(self._maxes):
                i -= 1
                self._chunks[i].append(key)
                self._maxes[i] = key
            else:
                insort(self._chunks[i], key)
            if len(self._chunks[i]) > 2 * self.LOAD:
                chunk = self._chunks[i]
                self._chunks[i : i + 1] = [chunk[: self.LOAD], chunk[self.LOAD :]]
                self._maxes[i : i + 1] = [chunk[self.LOAD - 1], chunk[-1]]
        self._len += 1

    def remove(self, key: int) -> None:
        i = bisect_left(self._maxes, key)
        if i == len(self._maxes):
            raise KeyError(key)
        chunk = self._chunks[i]
        j = bisect_left(chunk, key)
        if j == len(chunk) or chunk[j] != key:
            raise KeyError(key)
        del chunk[j]
        if chunk:
            self._maxes[i] = chunk[-1]
        else:
            del self._chunks[i]
            del self._maxes[i]
        self._len -= 1

    def __contains__(self, key: int) -> bool:
        i = bisect_left(self._maxes, key)
        if i == len(self._maxes):
            return False
        chunk = self._chunks[i]
        j = bisect_left(chunk, key)
        return j < len(chunk) and chunk[j] == key

    def rank(self, key: int) -> int:
        """How many keys are < key."""
        i = bisect_left(self._maxes, key)
        before = sum(len(c) for c in self._chunks[:i])
        if i == len(self._chunks):
            return before
        return before + bisect_left(self._chunks[i], key)

    def iter_from(self, key: int) -> Iterator[int]:
        """Keys >= key, ascending."""
        i = bisect_left(self._maxes, key)
        if i == len(self._chunks):
            return
        j = bisect_left(self._chunks[i], key)
        # Snapshot each chunk slice so a concurrent mutation cannot derail the iteration.
        yield from self._chunks[i][j:]
        for chunk in self._chunks[i + 1 :]:
            yield from list(chunk)

    def iter_before(self, key: int) -> Iterator[int]:
        """Keys < key, descending."""
        i = bisect_left(self._maxes, key)
        if i == len(self._chunks):
            i -= 1
            if i < 0:
                return
            j = len(self._chunks[i])
        else:
            j = bisect_left(self._chunks[i], key)
        yield from reversed(self._chunks[i][:j])
        for chunk in reversed(self._chunks[:i]):
            yield from reversed(list(chunk))

    def __iter__(self) -> Iterator[int]:
        for chunk in self._chunks:
            yield from chunk

    def count_range(self, lo: int, hi: int) -> int:
        """Keys in [lo, hi)."""
        return max(0, self.rank(hi) - self.rank(lo))
