"""Time helpers: UTC instants <-> the naive local wall-clock values Ordergroove's REST API speaks.

The store keeps every instant as UTC epoch seconds. Ordergroove renders and filters on naive local
times (America/Chicago by default), as a database storing local naive timestamps would, so the
sandbox converts each instant to "local seconds": the local wall-clock reading expressed as if it
were UTC epoch seconds. Ordering and range filters then compare those integers, which reproduces
the real quirks (e.g. the repeated hour when DST ends sorts by wall clock, not by instant).
"""

from __future__ import annotations

import calendar
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

_EPOCH_DATE = date(1970, 1, 1)


class LocalClock:
    """Converts UTC epoch seconds to naive local seconds in one zone, fast enough for 10^6 rows."""

    def __init__(self, zone: str = "America/Chicago") -> None:
        self.zone_name = zone
        self.zone = ZoneInfo(zone)
        # Offsets change only at transitions; caching per UTC hour makes generation of a million
        # rows cheap. Hours that contain a transition are marked None and computed exactly.
        self._hour_offset: dict[int, int | None] = {}

    def _offset_exact(self, ts: int) -> int:
        off = datetime.fromtimestamp(ts, self.zone).utcoffset()
        return int(off.total_seconds()) if off is not None else 0

    def offset(self, ts: int) -> int:
        hour = ts // 3600
        cached = self._hour_offset.get(hour, -1)
        if cached == -1:
            first = self._offset_exact(hour * 3600)
            last = self._offset_exact(hour * 3600 + 3599)
            cached = first if first == last else None
            self._hour_offset[hour] = cached
        if cached is None:
            return self._offset_exact(ts)
        return cached

    def local(self, ts: int) -> int:
        """UTC epoch seconds -> local naive seconds."""
        return ts + self.offset(ts)

    def utc_from_local(self, local: int) -> int:
        """Local naive seconds -> a UTC instant (first occurrence when ambiguous)."""
        naive = datetime(1970, 1, 1) + timedelta(seconds=local)
        return int(naive.replace(tzinfo=self.zone, fold=0).timestamp())

    def local_day(self, ts: int) -> int:
        """The local calendar day of an instant, as days since 1970-01-01."""
        return self.local(ts) // 86400

    def utc_at_local_time(self, day: int, seconds_into_day: int) -> int:
        return self.utc_from_local(day * 86400 + seconds_into_day)


def format_local(local: int) -> str:
    """Local naive seconds -> Ordergroove's `"YYYY-MM-DD HH:MM:SS"`."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(local))


def format_day(day: int) -> str:
    return (_EPOCH_DATE + timedelta(days=day)).isoformat()


def day_to_date(day: int) -> date:
    return _EPOCH_DATE + timedelta(days=day)


def date_to_day(d: date) -> int:
    return (d - _EPOCH_DATE).days


_LOCAL_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d")


def parse_local(text: str) -> int:
    """A REST filter value (`YYYY-MM-DDThh:mm:ss`, no zone) -> local naive seconds.

    Raises ValueError for anything else; the API answers 400 then.
    """
    for fmt in _LOCAL_FORMATS:
        try:
            parsed = time.strptime(text, fmt)
        except ValueError:
            continue
        return calendar.timegm(parsed)
    raise ValueError(f"Enter a valid date/time: {text!r}")


def parse_day(text: str) -> int:
    return date_to_day(date.fromisoformat(text[:10]))


def to_utc_ts(value: datetime | float | None) -> int | None:
    """Accepts an aware datetime (naive is taken as UTC) or epoch seconds."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp())
    return int(value)


def wall_clock() -> int:
    return int(time.time())
