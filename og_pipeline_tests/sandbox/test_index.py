"""The sorted index and page queries behind the REST stand-in, against a plain sorted list."""

from __future__ import annotations

import random
from bisect import bisect_left

from og_pipeline.sandbox.pagination import Cursor, cursor_page, number_page
from og_pipeline.sandbox.sortedkeys import SortedKeys


def _small_chunks(keys: list[int]) -> SortedKeys:
    index = SortedKeys()
    index.LOAD = 4  # tiny chunks exercise splits and chunk removal
    for key in keys:
        index.add(key)
    return index


def test_sorted_keys_matches_a_sorted_list_under_random_mutation() -> None:
    rng = random.Random(1)
    index = _small_chunks([])
    shadow: list[int] = []
    for _ in range(3000):
        if shadow and rng.random() < 0.4:
            key = rng.choice(shadow)
            index.remove(key)
            shadow.remove(key)
        else:
            key = rng.randrange(10_000)
            if key not in shadow:
                index.add(key)
                shadow.append(key)
        shadow.sort()
        probe = rng.randrange(10_000)
        assert len(index) == len(shadow)
        assert index.rank(probe) == bisect_left(shadow, probe)
        assert list(index.iter_from(probe))[:5] == [k for k in shadow if k >= probe][:5]
        below = [k for k in reversed(shadow) if k < probe][:5]
        assert list(index.iter_before(probe))[:5] == below
    assert list(index) == shadow


def test_cursor_pages_forward_and_back_cover_the_range_once() -> None:
    keys = list(range(0, 300, 3))
    index = _small_chunks(keys)
    lo, hi = 30, 250
    want = [k for k in keys if lo <= k < hi and k % 2 == 0]

    def even(k: int) -> bool:
        return k % 2 == 0

    pages = []
    page = cursor_page(index, lo, hi, even, None, 7)
    pages.append(page.keys)
    while page.next is not None:
        page = cursor_page(index, lo, hi, even, Cursor.decode(page.next.encode()), 7)
        pages.append(page.keys)
    assert [k for p in pages for k in p] == want
    # Walking back with `previous` returns the same pages in reverse.
    back = [page.keys]
    while page.previous is not None:
        page = cursor_page(index, lo, hi, even, page.previous, 7)
        back.append(page.keys)
    assert back[::-1] == pages


def test_number_pages_count_and_bounds() -> None:
    index = _small_chunks(list(range(50)))
    first = number_page(index, 10, 40, None, 1, 8)
    assert first is not None and first.count == 30 and first.keys == list(range(10, 18))
    last = number_page(index, 10, 40, None, 4, 8)
    assert last is not None and last.keys == list(range(34, 40)) and not last.has_next
    assert number_page(index, 10, 40, None, 5, 8) is None
