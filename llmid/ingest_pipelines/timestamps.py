"""Timestamps of every supported format turned into epoch seconds (UTC), fast.

`strptime` costs ~10 µs a call, too slow for 100k+ lines/s, so each shape is one precompiled regex and the
date part is cached. Times without a zone are taken as UTC; times without a year (syslog, Android) get the
current year, or the previous one when that would put them more than a day in the future.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from functools import lru_cache

MONTHS = {m: i for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}


@lru_cache(maxsize=4096)
def _day_epoch(year: int, month: int, day: int) -> int:
    """Epoch seconds of 00:00 UTC on that date (cached: consecutive lines share their date)."""
    return int(datetime(year, month, day, tzinfo=UTC).timestamp())


def _guess_year(month: int, day: int) -> int:
    """Year for a date printed without one: this year unless that lies more than a day ahead."""
    now = time.time()
    year = time.gmtime(now).tm_year
    try:
        if _day_epoch(year, month, day) > now + 86400:
            return year - 1
    except ValueError:
        pass
    return year


def _frac(text: str | None) -> float:
    return float("0." + text) if text else 0.0


def _zone(text: str | None) -> int:
    """Offset in seconds of 'Z', '+0200', '+02:00' or '+02'."""
    if not text or text in ("Z", "z"):
        return 0
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours = int(digits[:2])
    minutes = int(digits[2:4]) if len(digits) >= 4 else 0
    return sign * (hours * 3600 + minutes * 60)


def _month(name: str) -> int:
    return MONTHS[name[:3].lower()]


_TIME = r"(\d{1,2}):(\d\d):(\d\d)(?:[.,:](\d{1,9}))?"
_ISO = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ]" + _TIME + r"\s*(Z|z|[+-]\d\d(?::?\d\d)?)?(?:\s|$)")
_YMD_SLASH = re.compile(r"(\d{4})/(\d\d)/(\d\d)[ T]" + _TIME + r"\s*(Z|[+-]\d\d(?::?\d\d)?)?(?:\s|$)")
_SYSLOG = re.compile(r"(?:[A-Z][a-z]{2},? )?([A-Z][a-z]{2}) +(\d{1,2})(?:,? (\d{4}))? " + _TIME
                     + r"(?: (\d{4}))?(?:\s*(Z|[+-]\d\d(?::?\d\d)?|UTC|GMT))?$")
_ACCESS = re.compile(r"(\d\d)/([A-Z][a-z]{2})/(\d{4}):" + _TIME + r"(?: ([+-]\d{4}))?$")
_HDFS = re.compile(r"(\d\d)(\d\d)(\d\d) (\d\d)(\d\d)(\d\d)$")
_YY_SLASH = re.compile(r"(\d\d)/(\d\d)/(\d\d) " + _TIME + "$")
_MD = re.compile(r"(\d\d)-(\d\d) " + _TIME + "$")
_MD_DOT = re.compile(r"(\d\d)\.(\d\d) " + _TIME + "$")
_BGL = re.compile(r"(\d{4})-(\d\d)-(\d\d)-(\d\d)\.(\d\d)\.(\d\d)(?:\.(\d+))?$")
_COMPACT = re.compile(r"(\d{4})(\d\d)(\d\d)-" + _TIME + "$")
_EPOCH = re.compile(r"\d{9,10}(?:\.\d+)?$|\d{13}$|\d{16}$|\d{19}$")


def epoch_number(value: float) -> float | None:
    """Epoch seconds from a number that may be seconds, milli-, micro- or nanoseconds (by magnitude)."""
    v = float(value)
    if v <= 0:
        return None
    for scale in (1.0, 1e3, 1e6, 1e9):
        if v / scale < 1e11:  # before year 5138 in seconds
            return v / scale
    return None


def _iso(m: re.Match[str]) -> float:
    y, mo, d, hh, mi, ss, fr, zone = m.groups()
    return (_day_epoch(int(y), int(mo), int(d)) + int(hh) * 3600 + int(mi) * 60 + int(ss) + _frac(fr)
            - _zone(zone))


def _epoch(m: re.Match[str]) -> float | None:
    return epoch_number(float(m.group(0)))


def _hdfs(m: re.Match[str]) -> float:
    y, mo, d, hh, mi, ss = (int(g) for g in m.groups())
    return _day_epoch(2000 + y, mo, d) + hh * 3600 + mi * 60 + ss


def _ymd(century: int) -> object:
    def conv(m: re.Match[str]) -> float:
        y, mo, d, hh, mi, ss, fr = m.groups()
        return (_day_epoch(century + int(y), int(mo), int(d)) + int(hh) * 3600 + int(mi) * 60 + int(ss)
                + _frac(fr))

    return conv


def _compact(m: re.Match[str]) -> float:
    y, mo, d, hh, mi, ss, fr = m.groups()
    ms = int(fr) / 1000.0 if fr else 0.0  # HealthApp prints milliseconds unpadded ("22:15:29:6" is 6 ms)
    return _day_epoch(int(y), int(mo), int(d)) + int(hh) * 3600 + int(mi) * 60 + int(ss) + ms


def _month_day(m: re.Match[str]) -> float:
    mo, d, hh, mi, ss, fr = m.groups()
    year = _guess_year(int(mo), int(d))
    return _day_epoch(year, int(mo), int(d)) + int(hh) * 3600 + int(mi) * 60 + int(ss) + _frac(fr)


def _access(m: re.Match[str]) -> float:
    d, mon, y, hh, mi, ss, fr, zone = m.groups()
    return (_day_epoch(int(y), _month(mon), int(d)) + int(hh) * 3600 + int(mi) * 60 + int(ss) + _frac(fr)
            - _zone(zone))


def _syslog(m: re.Match[str]) -> float:
    mon, d, y1, hh, mi, ss, fr, y2, zone = m.groups()
    month = _month(mon)
    year = int(y1 or y2) if (y1 or y2) else _guess_year(month, int(d))
    zone = None if zone in ("UTC", "GMT") else zone
    return (_day_epoch(year, month, int(d)) + int(hh) * 3600 + int(mi) * 60 + int(ss) + _frac(fr)
            - _zone(zone))


_SHAPES: list[tuple[re.Pattern[str], object]] = [
    (_ISO, _iso), (_YMD_SLASH, _iso), (_EPOCH, _epoch), (_HDFS, _hdfs), (_YY_SLASH, _ymd(2000)),
    (_BGL, _ymd(0)), (_COMPACT, _compact), (_MD, _month_day), (_MD_DOT, _month_day), (_ACCESS, _access),
    (_SYSLOG, _syslog),
]
"""Every timestamp shape with its converter; the last one that worked is tried first next time."""
_last_shape = 0


def parse_timestamp(text: str | None) -> float | None:
    """Epoch seconds (UTC) of a timestamp in any supported shape, or None when not recognised."""
    global _last_shape
    if not text:
        return None
    s = text.strip()
    if not s:
        return None
    regex, conv = _SHAPES[_last_shape]
    m = regex.match(s)
    try:
        if m is not None:
            ts = conv(m)  # type: ignore[operator]
            return None if ts is None else float(ts)
        for i, (regex, conv) in enumerate(_SHAPES):
            m = regex.match(s)
            if m is not None:
                _last_shape = i
                ts = conv(m)  # type: ignore[operator]
                return None if ts is None else float(ts)
    except (ValueError, KeyError, OverflowError):
        return None
    return None


_DATE_KEYS = ("timestamp", "datetime", "month", "date", "day", "time", "year")


def timestamp_from_fields(names: tuple[str, ...], values: dict[str, str]) -> float | None:
    """Timestamp from header fields: an epoch `Timestamp` wins, else the date/time fields joined in order."""
    ts = values.get("Timestamp")
    if ts and ts.isdigit():
        return epoch_number(float(ts))
    parts = [values[n] for n in names if values.get(n)]
    if not parts:
        return None
    return parse_timestamp(" ".join(parts))


def date_field_names(headers: list[str]) -> tuple[str, ...]:
    """The header fields (in template order) that hold parts of the date/time."""
    return tuple(h for h in headers if h.lower() in _DATE_KEYS)
