"""Recurrence patterns (MS-ASCAL 2.2.2.38, MS-ASTASK 2.2.2.18): writing and parsing the
Recurrence element of an event or a task, and expanding a pattern into occurrences.

The Calendar and Tasks code pages give Recurrence children of the same names, so one
writer and one parser take the page class (``eas.tags.Calendar`` or ``eas.tags.Tasks``).
Calendar dates use the compact form ``20261130T120000Z``, Tasks dates the long form
``2026-11-30T12:00:00.000Z`` (MS-ASDTYPE 2.3); both are accepted when parsing.

Occurrences follow Exchange's reading of a pattern (MS-OXOCAL): a day of the month that a
month lacks (the 31st in April) falls on the month's last day; WeekOfMonth 5 is the last
matching day; the series start counts only when it matches the pattern.
"""

from __future__ import annotations

import calendar as _gregorian
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from eas import tags
from eas.items import calendar as _items
from eas.items.email import format_date
from eas.items.pim import bad
from eas.items.pim import date as date_of
from eas.protocol.versions import Version
from eas.wbxml import Node, Writer

if TYPE_CHECKING:
    from eas.items.calendar import Recurrence

__all__ = ["compact_date", "occurrences", "parse_recurrence", "validate", "write_recurrence"]

DAILY, WEEKLY, MONTHLY, MONTHLY_NTH, YEARLY, YEARLY_NTH = 0, 1, 2, 3, 5, 6

# MS-ASCAL 2.2.2.38 / MS-ASTASK 2.2.2.18: what each Type needs besides Interval.
_REQUIRED: dict[int, tuple[str, ...]] = {
    DAILY: (),
    WEEKLY: ("day_of_week",),
    MONTHLY: ("day_of_month",),
    MONTHLY_NTH: ("week_of_month", "day_of_week"),
    YEARLY: ("day_of_month", "month_of_year"),
    YEARLY_NTH: ("week_of_month", "day_of_week", "month_of_year"),
}
# CalendarType (MS-ASCAL 2.2.2.11): 0 default, 1-12 Gregorian and regional, 14/15/20 lunar.
_CALENDAR_TYPES = frozenset({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 15, 20})
_MAX_COUNT = 999  # Occurrences and Interval are at most 999 (MS-ASCAL 2.2.2.26, 2.2.2.34)
# Integer fields: (element name, attribute, lowest, highest).
_INTS = (
    ("Occurrences", "occurrences", 0, _MAX_COUNT),
    ("Interval", "interval", 0, _MAX_COUNT),
    ("WeekOfMonth", "week_of_month", 1, 5),
    ("DayOfWeek", "day_of_week", 1, 127),
    ("MonthOfYear", "month_of_year", 1, 12),
    ("DayOfMonth", "day_of_month", 1, 31),
    ("CalendarType", "calendar_type", 0, 20),
    ("FirstDayOfWeek", "first_day_of_week", 0, 6),
)


def compact_date(value: datetime) -> str:
    """The compact UTC form of the Calendar page (MS-ASDTYPE 2.3): ``20261130T120000Z``."""
    value = value.astimezone(UTC) if value.tzinfo is not None else value
    return f"{value.year:04d}{value.month:02d}{value.day:02d}T{value.hour:02d}{value.minute:02d}{value.second:02d}Z"


def _date_text(value: datetime, page: type) -> str:
    return compact_date(value) if page is tags.Calendar else format_date(value)


def _tag(page: type, name: str) -> int:
    tag: int = getattr(page, name)
    return tag


def _has(page: type, name: str, version: Version) -> int | None:
    """The tag ``name`` of ``page`` when ``version`` has it."""
    tag: int | None = getattr(page, name, None)
    if tag is None or version.text not in tags.BY_TAG[tag].versions:
        return None
    return tag


def validate(rec: Recurrence) -> None:
    """ProtocolError (status 6) unless ``rec`` is a pattern MS-ASCAL allows: a known Type with the
    elements it needs, values in range, at most one of Occurrences and Until."""
    if rec.type not in _REQUIRED:
        raise bad(f"Recurrence Type {rec.type} is not 0-3, 5 or 6")
    for attr in _REQUIRED[rec.type]:
        if getattr(rec, attr) is None:
            raise bad(f"Recurrence Type {rec.type} needs {attr}")
    for name, attr, lo, hi in _INTS:
        value = getattr(rec, attr)
        if value is not None and not lo <= value <= hi:
            raise bad(f"Recurrence {name} {value} is not in {lo}..{hi}")
    if rec.calendar_type is not None and rec.calendar_type not in _CALENDAR_TYPES:
        raise bad(f"CalendarType {rec.calendar_type} is not defined")
    if rec.occurrences is not None and rec.until is not None:
        raise bad("Recurrence has both Occurrences and Until")


def write_recurrence(w: Writer, rec: Recurrence, page: type, version: Version) -> None:
    """The Recurrence element of ``page`` for ``version`` (only elements it has)."""
    leaf = w.leaf
    with w.tag(_tag(page, "Recurrence")):
        leaf(_tag(page, "Type"), rec.type)
        if page is tags.Tasks and rec.start is not None:
            leaf(tags.Tasks.Start, format_date(rec.start))
        for name, attr, _lo, _hi in _INTS:
            value = getattr(rec, attr)
            if value is None:
                continue
            tag = _has(page, name, version)
            if tag is not None:
                leaf(tag, value)
        if rec.until is not None:
            leaf(_tag(page, "Until"), _date_text(rec.until, page))
        if rec.is_leap_month and _has(page, "IsLeapMonth", version) is not None:
            leaf(_tag(page, "IsLeapMonth"), "1")
        if page is tags.Tasks:
            leaf(tags.Tasks.Regenerate, "1" if rec.regenerate else "0")
            leaf(tags.Tasks.DeadOccur, "1" if rec.dead_occur else "0")


def _int(node: Node, name: str) -> int:
    text = node.text
    if isinstance(text, str):
        text = text.strip()
        if text.isascii() and text.isdigit() and len(text) <= 6:
            return int(text)
    raise bad(f"Recurrence {name} must be a small integer, not {text!r}")


def _flag(node: Node, name: str) -> bool:
    if node.text in ("0", "1"):
        return node.text == "1"
    if not node.text:
        return False
    raise bad(f"Recurrence {name} must be 0 or 1")


def parse_recurrence(node: Node, page: type, version: Version) -> Recurrence:
    """The Recurrence a device sent; ProtocolError if it is not a valid pattern.
    Elements the version lacks are ignored; Interval 0 is read as 1."""
    rec = _items.Recurrence(type=-1, interval=1)
    by_tag = {}
    for name, attr, _lo, _hi in _INTS:
        tag = _has(page, name, version)
        if tag is not None:
            by_tag[tag] = (name, attr)
    type_tag, until_tag = _tag(page, "Type"), _tag(page, "Until")
    for child in node.children:
        tag = child.tag
        if tag == type_tag:
            rec.type = _int(child, "Type")
        elif tag in by_tag:
            name, attr = by_tag[tag]
            setattr(rec, attr, _int(child, name))
        elif tag == until_tag:
            rec.until = date_of(child)
        elif tag == _has(page, "IsLeapMonth", version):
            rec.is_leap_month = _flag(child, "IsLeapMonth")
        elif page is tags.Tasks and tag == tags.Tasks.Start:
            rec.start = date_of(child)
        elif page is tags.Tasks and tag == tags.Tasks.Regenerate:
            rec.regenerate = _flag(child, "Regenerate")
        elif page is tags.Tasks and tag == tags.Tasks.DeadOccur:
            rec.dead_occur = _flag(child, "DeadOccur")
    if rec.type == -1:
        raise bad("Recurrence without Type")
    validate(rec)
    if rec.interval == 0:
        rec.interval = 1
    return rec


# -- Occurrences -----------------------------------------------------------------------------

_MAX_PERIODS = 200_000  # a bound on the work one expansion does, whatever the pattern


def _sunday0(day: date) -> int:
    return (day.weekday() + 1) % 7


def _in_mask(day: date, mask: int) -> bool:
    return bool(mask >> _sunday0(day) & 1)


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    index = year * 12 + month - 1 + n
    return index // 12, index % 12 + 1


def _nth_in_month(year: int, month: int, mask: int, nth: int) -> date | None:
    """The nth day of the month whose weekday is in ``mask`` (5: the last such day)."""
    days = [date(year, month, d) for d in range(1, _gregorian.monthrange(year, month)[1] + 1)]
    matching = [d for d in days if _in_mask(d, mask)]
    if not matching:
        return None
    if nth == 5:
        return matching[-1]
    return matching[nth - 1] if nth <= len(matching) else None


def _clamped(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, _gregorian.monthrange(year, month)[1]))


def _local_dates(first: date, rec: Recurrence) -> Iterator[date]:
    """The dates the pattern names from ``first`` on, in order (a bounded number of periods)."""
    try:
        yield from _local_dates_unchecked(first, rec)
    except (OverflowError, ValueError):  # past year 9999
        return


def _local_dates_unchecked(first: date, rec: Recurrence) -> Iterator[date]:
    interval = max(1, rec.interval)
    kind = rec.type
    if kind == DAILY and rec.day_of_week:
        kind = WEEKLY  # MS-ASCAL: a daily pattern with DayOfWeek is weekly
    for k in range(_MAX_PERIODS):
        if kind == DAILY:
            yield first + timedelta(days=k * interval)
            continue
        if kind == WEEKLY:
            week_start = first - timedelta(days=(_sunday0(first) - (rec.first_day_of_week or 0)) % 7)
            start = week_start + timedelta(weeks=k * interval)
            for d in range(7):
                day = start + timedelta(days=d)
                if day >= first and _in_mask(day, rec.day_of_week or 0):
                    yield day
            continue
        if kind in (MONTHLY, MONTHLY_NTH):
            year, month = _add_months(first.year, first.month, k * interval)
        else:
            year, month = first.year + k * interval, rec.month_of_year or 1
        if year > 9999:
            return
        if kind in (MONTHLY, YEARLY):
            candidate: date | None = _clamped(year, month, rec.day_of_month or 1)
        else:
            candidate = _nth_in_month(year, month, rec.day_of_week or 0, rec.week_of_month or 1)
        if candidate is not None and candidate >= first:
            yield candidate


def occurrences(start: datetime, rec: Recurrence, zone: str, window_start: datetime | None = None,
                window_end: datetime | None = None) -> list[datetime]:
    """The UTC start times of a series' occurrences in ``[window_start, window_end)``
    (unbounded sides: None). ``start`` is the series' first start (aware); the pattern is
    read on the wall clock of ``zone``, so a 9:00 meeting stays at 9:00 across DST.
    Occurrences and Until end the series; a series without an end needs ``window_end``
    (else it stops at year 9999 or after a bounded number of periods)."""
    tz = ZoneInfo(zone)
    local = start.astimezone(tz)
    wall = local.time().replace(tzinfo=None)
    out: list[datetime] = []
    for count, day in enumerate(_local_dates(local.date(), rec), 1):
        try:
            when = datetime.combine(day, wall, tzinfo=tz).astimezone(UTC)
        except OverflowError:  # the last hours of year 9999 west of UTC
            break
        if rec.until is not None and when > rec.until:
            break
        if window_end is not None and when >= window_end:
            break
        if rec.occurrences is not None and count > rec.occurrences:
            break
        if window_start is None or when >= window_start:
            out.append(when)
    return out
