"""The EAS TimeZone blob (MS-ASDTYPE 2.7.4, MS-ASCAL 2.2.2.42) and IANA zones.

The blob is the 172-byte Windows TIME_ZONE_INFORMATION, little-endian:

    Bias            LONG      minutes, UTC = local + Bias
    StandardName    WCHAR[32]
    StandardDate    SYSTEMTIME  (wYear, wMonth, wDayOfWeek, wDay, wHour, wMinute, wSecond, wMilliseconds)
    StandardBias    LONG
    DaylightName    WCHAR[32]
    DaylightDate    SYSTEMTIME
    DaylightBias    LONG

With wYear 0 a SYSTEMTIME is a yearly rule: the wDay-th (5: last) wDayOfWeek (0 Sunday) of
wMonth at wHour:wMinute local time, read on the clock in force before the change. A zone
without daylight time has wMonth 0 in both dates.

Zones are compared by what they do in one year (offsets and the two transition
instants), so a device's "4th Sunday" and our "last Sunday" of the same day match.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import os
import struct
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from importlib import resources
from zoneinfo import TZPATH, ZoneInfo, ZoneInfoNotFoundError, available_timezones

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from eas.protocol.errors import ProtocolError

__all__ = ["BLOB_SIZE", "from_blob", "from_wire", "to_blob", "to_wire"]

BLOB_SIZE = 172
_LAYOUT = struct.Struct("<l64s8Hl64s8Hl")  # 4 + 64 + 16 + 4 + 64 + 16 + 4 = 172
assert _LAYOUT.size == BLOB_SIZE

# (month, weekday 0=Sunday, nth 1..5, hour, minute): one SYSTEMTIME rule with wYear 0.
_Rule = tuple[int, int, int, int, int]
# What a zone does in a year: (bias, daylight bias, start of daylight time, its end), the
# transitions as local (month, day, hour, minute); None for both without daylight time.
_Key = tuple[int, int, tuple[int, int, int, int] | None, tuple[int, int, int, int] | None]

# The zone a blob maps to when several match and its name does not decide: the common
# zone of each rule set, most populous first, so Berlin and not Arctic/Longyearbyen.
_PREFERRED = (
    "UTC", "Europe/London", "Europe/Berlin", "Europe/Paris", "Europe/Helsinki", "Europe/Athens",
    "Europe/Moscow", "Europe/Istanbul", "Europe/Lisbon", "Atlantic/Azores", "Atlantic/Reykjavik",
    "America/New_York", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles",
    "America/Anchorage", "Pacific/Honolulu", "America/Halifax", "America/St_Johns", "America/Mexico_City",
    "America/Bogota", "America/Caracas", "America/Sao_Paulo", "America/Argentina/Buenos_Aires",
    "America/Santiago", "America/Havana", "Asia/Tokyo", "Asia/Seoul", "Asia/Shanghai", "Asia/Hong_Kong",
    "Asia/Singapore", "Asia/Kolkata", "Asia/Kathmandu", "Asia/Dhaka", "Asia/Karachi", "Asia/Dubai",
    "Asia/Tehran", "Asia/Kabul", "Asia/Jerusalem", "Asia/Bangkok", "Asia/Jakarta", "Asia/Manila",
    "Asia/Yangon", "Africa/Cairo", "Africa/Johannesburg", "Africa/Lagos", "Africa/Nairobi",
    "Australia/Sydney", "Australia/Brisbane", "Australia/Adelaide", "Australia/Darwin", "Australia/Perth",
    "Australia/Lord_Howe", "Pacific/Auckland", "Pacific/Chatham", "Pacific/Fiji", "Pacific/Tongatapu",
    "Pacific/Kiritimati",
)



def _offset(zone: ZoneInfo, instant: datetime) -> int:
    """Minutes east of UTC in ``zone`` at the UTC ``instant``."""
    off = instant.astimezone(zone).utcoffset()
    assert off is not None
    return int(off.total_seconds()) // 60


def _transitions(zone: ZoneInfo, year: int) -> list[tuple[datetime, int, int]]:
    """``(instant, offset before, offset after)`` of each offset change in ``year``,
    found day by day and then to the minute by bisection."""
    out = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    before = _offset(zone, day)
    while day < end:
        nxt = day + timedelta(days=1)
        after = _offset(zone, nxt)
        if after != before:
            lo, hi = day, nxt  # offset(lo) == before, offset(hi) != before
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(second=0, microsecond=0)
                if mid <= lo:
                    mid = lo + timedelta(minutes=1)
                if _offset(zone, mid) == before:
                    lo = mid
                else:
                    hi = mid
            out.append((hi, before, _offset(zone, hi)))
            before = _offset(zone, hi)
            if before != after:  # two changes in one day: look at the rest of it again
                continue
        day = nxt
        before = after
    return out


def _rule_of(local: datetime) -> _Rule:
    """The "nth weekday of the month" rule for a local wall-clock time (5: the last)."""
    nth = (local.day - 1) // 7 + 1
    if local.day + 7 > calendar.monthrange(local.year, local.month)[1]:
        nth = 5
    weekday = (local.weekday() + 1) % 7  # Python: Monday 0; SYSTEMTIME: Sunday 0
    return (local.month, weekday, nth, local.hour, local.minute)


def _zone_rules(name: str, year: int) -> tuple[int, int, _Rule | None, _Rule | None]:
    """``(bias, daylight bias, daylight start rule, standard start rule)`` of a zone."""
    zone = ZoneInfo(name)
    changes = _transitions(zone, year)
    offsets = {_offset(zone, datetime(year, 1, 1, tzinfo=UTC))} | {after for _, _, after in changes}
    standard = min(offsets)  # the lower offset, also where tzdata says "negative DST" (Dublin)
    if len(changes) < 2 or len(offsets) < 2:
        # No daylight time this year; a one-off change (a zone moving its offset) counts
        # as the offset in force at the end of the year.
        return -_offset(zone, datetime(year, 12, 31, 12, tzinfo=UTC)), 0, None, None
    daylight = max(offsets)
    start = next(c for c in changes if c[2] == daylight)
    stop = next(c for c in changes if c[2] == standard)
    dst_rule = _rule_of((start[0] + timedelta(minutes=start[1])).replace(tzinfo=None))
    std_rule = _rule_of((stop[0] + timedelta(minutes=stop[1])).replace(tzinfo=None))
    return -standard, standard - daylight, dst_rule, std_rule


def _systemtime(rule: _Rule | None) -> tuple[int, ...]:
    if rule is None:
        return (0,) * 8
    month, weekday, nth, hour, minute = rule
    return (0, month, weekday, nth, hour, minute, 0, 0)


def _name(text: str) -> bytes:
    return text[:31].encode("utf-16-le").ljust(64, b"\0")


def to_blob(zone: str, year: int | None = None) -> bytes:
    """The TimeZone blob of an IANA zone, with the daylight rules of ``year`` (this year
    by default; kept within 1970-2200). An unknown zone is a ``ValueError``. The zone's
    name goes into StandardName and DaylightName so that ``from_blob`` gives it back."""
    return _blob(zone, min(max(year or datetime.now(UTC).year, 1970), 2200))


@lru_cache(maxsize=1024)  # an initial calendar Sync writes the same few zones many times
def _blob(zone: str, year: int) -> bytes:
    try:
        bias, dst_bias, dst_rule, std_rule = _zone_rules(zone, year)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {zone!r}") from e
    return _LAYOUT.pack(bias, _name(zone), *_systemtime(std_rule), 0,
                        _name(zone), *_systemtime(dst_rule), dst_bias)


def to_wire(zone: str, year: int | None = None) -> str:
    """``to_blob`` in base64, as Calendar:TimeZone carries it."""
    return base64.b64encode(to_blob(zone, year)).decode("ascii")


# -- From a blob -----------------------------------------------------------------------------


def _local_date(st: tuple[int, ...], year: int) -> tuple[int, int, int, int] | None:
    """(month, day, hour, minute) a SYSTEMTIME names in ``year``; None when it is unset."""
    w_year, month, weekday, nth, hour, minute = st[:6]
    if month == 0:
        return None
    if not 1 <= month <= 12 or hour > 23 or minute > 59:
        raise ProtocolError("TimeZone: a transition date is out of range")
    days = calendar.monthrange(year, month)[1]
    if w_year:  # an absolute date (of that year only); taken as the same day this year
        if not 1 <= nth <= days:
            raise ProtocolError("TimeZone: a transition day is out of range")
        return month, nth, hour, minute
    if weekday > 6 or not 1 <= nth <= 5:
        raise ProtocolError("TimeZone: a transition rule is out of range")
    first = (calendar.weekday(year, month, 1) + 1) % 7  # weekday of the 1st, Sunday 0
    day = 1 + (weekday - first) % 7 + 7 * (nth - 1)
    while day > days:
        day -= 7
    return month, day, hour, minute


def _key(bias: int, dst_bias: int, dst: tuple[int, ...], std: tuple[int, ...], year: int) -> _Key:
    start, stop = _local_date(dst, year), _local_date(std, year)
    if start is None or stop is None or dst_bias == 0:
        return bias, 0, None, None
    return bias, dst_bias, start, stop


@cache
def _known() -> frozenset[str]:
    return frozenset(available_timezones())  # a directory walk: ~8 ms a call


@lru_cache(maxsize=4096)
def _zone_key(name: str, year: int) -> _Key | None:
    try:
        bias, dst_bias, dst_rule, std_rule = _zone_rules(name, year)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return _key(bias, dst_bias, _systemtime(dst_rule), _systemtime(std_rule), year)


@cache
def _index(year: int) -> dict[_Key, list[str]]:
    """Every known zone by what it does in ``year`` (built once per year, about 0.5-1 s:
    only for a blob that does not name its zone)."""
    index: dict[_Key, list[str]] = {}
    for name in sorted(_known()):
        key = _zone_key(name, year)
        if key is not None:
            index.setdefault(key, []).append(name)
    return index


@cache
def _canonical() -> frozenset[str]:
    """The zones tzdata's zone.tab lists: canonical names, not backward-compatible aliases
    such as Asia/Calcutta (empty if no zone.tab is found; ranking then uses the names)."""
    for base in TZPATH:
        path = os.path.join(base, "zone.tab")
        if os.path.isfile(path):
            break
    else:
        try:
            path = str(resources.files("tzdata").joinpath("zoneinfo/zone.tab"))
        except ModuleNotFoundError:
            return frozenset()
    try:
        with open(path, encoding="utf-8") as f:
            return frozenset(line.split("\t")[2].strip() for line in f if line[:1] != "#" and line.count("\t") >= 2)
    except OSError:
        return frozenset()


def _rank(name: str) -> tuple[int, int, str]:
    """Sort key among zones that match: the preferred list, then canonical region/city
    names (not aliases like "US/Eastern", "CET", "Asia/Calcutta"), then the rest."""
    if name in _PREFERRED:
        return 0, _PREFERRED.index(name), name
    return (1 if name in _canonical() else 2), 0, name


def _decode_name(raw: bytes) -> str:
    return raw.decode("utf-16-le", "replace").split("\0", 1)[0].strip()


def from_blob(data: bytes, year: int | None = None) -> str:
    """The IANA zone that does what a TimeZone blob describes in ``year`` (this year by
    default): the zone its StandardName names when that one matches, else the common
    zone of its rules, else ``Etc/GMT+N`` for a whole-hour offset. ``ProtocolError`` for
    a blob that is not 172 bytes or holds impossible values."""
    if not isinstance(data, (bytes, bytearray)) or len(data) != BLOB_SIZE:
        raise ProtocolError(f"TimeZone must be {BLOB_SIZE} bytes")
    year = year or datetime.now(UTC).year
    fields = _LAYOUT.unpack(data)
    bias, std_name, std, std_bias = fields[0], fields[1], fields[2:10], fields[10]
    dst_bias, dst = fields[-1], fields[12:20]
    if not (-24 * 60 <= bias <= 24 * 60 and -24 * 60 <= std_bias <= 24 * 60 and -24 * 60 <= dst_bias <= 24 * 60):
        raise ProtocolError("TimeZone: bias out of range")
    # Normalise so that Bias is standard time, as we write it (a blob may put a non-zero
    # StandardBias beside it).
    bias += std_bias
    key = _key(bias, dst_bias - std_bias, dst, std, year)
    name = _decode_name(std_name)
    # The zone the blob names (ours put the IANA name there, Windows devices their zone
    # name: "W. Europe Standard Time" is Europe/Berlin), checked alone without the index.
    if name in _known() and _zone_key(name, year) == key:
        return name
    windows = WINDOWS_TO_OLSON.get(name)
    if windows in _known() and _rank(windows)[0] < 2 and _zone_key(windows, year) == key:
        return windows
    index = _index(year)
    candidates = index.get(key, [])
    if key[2] is None and bias % 60 == 0 and abs(bias) <= 12 * 60:
        return "UTC" if bias == 0 else f"Etc/GMT{bias // 60:+d}"  # Etc/GMT+5 is UTC-5: Bias's sign
    if not candidates:
        # Rules no zone has this year (an old blob, a typo'd hour): the zones with the
        # same offsets and transition months, else the offset alone.
        candidates = [z for k, zs in index.items() if k[:2] == key[:2]
                      and (k[2] or (0,))[0] == (key[2] or (0,))[0] for z in zs]
        if not candidates:
            candidates = [z for k, zs in index.items() if k[0] == bias for z in zs] or ["UTC"]
    return min(candidates, key=_rank)


def from_wire(text: str | bytes | None) -> str:
    """``from_blob`` of the base64 text of a Calendar:TimeZone element."""
    if isinstance(text, bytes):
        raw = text
    elif isinstance(text, str) and len(text) < 1024:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ProtocolError("TimeZone is not base64") from None
    else:
        raise ProtocolError("TimeZone is not base64")
    return from_blob(raw)
