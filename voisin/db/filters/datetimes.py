"""Datetimes in payloads and range bounds, as Qdrant reads them.

A payload string counts as a datetime when it has one of the shapes Qdrant's
core accepts (``2021-03-04``, ``2021-03-04T05:06``, ``... :07.123456+02:00``,
a space instead of ``T``, ``Z`` or an offset, nanoseconds cut to microseconds);
without an offset it is UTC. Range bounds are ISO 8601 strings (a date alone
means midnight UTC). Both become integer microseconds since the Unix epoch so
that ranges compare as int64 arrays.

Example:
    >>> payload_micros("2021-01-01T00:00:01Z")
    1609459201000000
    >>> bound_micros("2021-01-01")
    1609459200000000
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICRO = timedelta(microseconds=1)

_FORMATS = (
    "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%d %H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S.%f %z", "%Y-%m-%d %H:%M:%S.%f %z", "%Y-%m-%dT%H:%M:%S %z",
    "%Y-%m-%d %H:%M:%S %z", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d",
)


def _micros(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return (dt - _EPOCH) // _MICRO


def _strptime_any(text: str) -> datetime | None:
    for fmt in _FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            pass
    return None


@lru_cache(maxsize=65536)
def payload_micros(text: str) -> int | None:
    """Microseconds since the epoch of a payload datetime string, or None."""
    s = text.lstrip()
    if not (s[:4].isdigit() and s[4:5] == "-"):  # every accepted shape starts YYYY-
        return None
    if s.endswith(" UTC"):
        s = s[:-4] + "+00:00"
    elif s.endswith("z"):
        s = s[:-1] + "Z"
    dot = s.find(".")
    if dot != -1:
        end = dot + 1
        while end < len(s) and s[end].isdigit():
            end += 1
        if end - dot > 7:
            s = s[:dot + 7] + s[end:]
    dt = _strptime_any(s)
    if dt is None:
        tail = s[-3:]
        if len(tail) == 3 and tail[0] in "+-" and tail[1:].isdigit():
            dt = _strptime_any(s + ":00")
    return None if dt is None else _micros(dt)


def bound_micros(text: str) -> int | None:
    """Microseconds since the epoch of an ISO 8601 range bound, or None."""
    s = text.strip()
    if s[-1:] in "zZ":
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        try:
            d = date.fromisoformat(s)
        except ValueError:
            return None
        dt = datetime(d.year, d.month, d.day)
    return _micros(dt)
