"""iCalendar (RFC 5545) for the item classes: VEVENT <-> ``Calendar``, VTODO <-> ``Task``,
VJOURNAL <-> ``Note``. The reference store keeps these items as iCalendar text, and
``eas import``/``eas export`` read and write it.

Zones: a TZID that is an IANA name, a Windows name (Outlook) or ends in one (Mozilla's
``/mozilla.org/.../Europe/Berlin``) becomes that IANA zone; any other TZID with a
VTIMEZONE keeps the right instants and the zone "UTC". Floating times and dates are in
the calendar's X-WR-TIMEZONE (Google, Apple) or else ``zone``.

Recurrence: RRULEs EAS can express map to ``Recurrence`` both ways. Any other RRULE
(HOURLY or finer, BYSETPOS or BYMONTH lists, several BYMONTHDAYs, BYWEEKNO, BYYEARDAY, a
second RRULE; RDATEs are ignored) stays as it is in the stored iCalendar, and the
device is given the closest EAS pattern (``closest_recurrence``): the same frequency and
interval with the first of each list, HOURLY and finer as daily. The store's windows and
free/busy expand the real rule (``occurrences``).

EAS fields iCalendar has no property for travel as X-EAS-* properties; Outlook's
X-MICROSOFT-CDO-BUSYSTATUS and X-MICROSOFT-DISALLOW-COUNTER are read and written.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import fields, is_dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import icalendar
from dateutil import rrule as du_rrule  # type: ignore[import-untyped]
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from eas.items.calendar import Attendee, Calendar, EventException, Recurrence
from eas.items.notes import Note
from eas.items.tasks import Task

Component: TypeAlias = icalendar.cal.component.Component
ICalItem: TypeAlias = Calendar | Task | Note

PRODID = "-//eas//Exchange ActiveSync reference store//EN"
MAX_ICAL = 16 * 1024 * 1024  # bytes of one file read_ical accepts


class ICalError(ValueError):
    """Text that is not iCalendar this module can read."""


# -- zones ---------------------------------------------------------------------------------

def _zone(name: str) -> tzinfo:
    if name.upper() in ("UTC", "Z", "GMT", "ETC/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def iana_name(tzid: str | None) -> str | None:
    """The IANA zone a TZID names, or None."""
    if not tzid:
        return None
    tzid = tzid.strip().strip('"')
    if tzid.upper() in ("UTC", "Z", "GMT", "ETC/UTC"):
        return "UTC"
    candidates = [tzid, WINDOWS_TO_OLSON.get(tzid, "")]
    match = re.search(r"([A-Za-z_]+/[A-Za-z_\-+0-9]+(?:/[A-Za-z_\-]+)?)$", tzid)
    if match:
        candidates.append(match.group(1))
    for name in candidates:
        if "/" in name:
            try:
                ZoneInfo(name)
                return name
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return None


def _zone_of(value: datetime) -> str | None:
    tz = value.tzinfo
    if tz is None:
        return None
    if tz is UTC or value.utcoffset() == timedelta(0) and getattr(tz, "key", "") in ("UTC", "Etc/UTC"):
        return "UTC"
    key = getattr(tz, "key", None)
    if key:
        return iana_name(key)
    from icalendar.timezone import tzid_from_tzinfo

    return iana_name(tzid_from_tzinfo(tz)) or "UTC"


def _instant(value: date | datetime, zone: str) -> datetime:
    """An aware UTC datetime: a floating time or a date is local time of ``zone``."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if value.tzinfo is None:
        value = value.replace(tzinfo=_zone(zone))
    return value.astimezone(UTC)


def _local(value: datetime, zone: str) -> datetime:
    return value.astimezone(_zone(zone))


# -- recurrence ----------------------------------------------------------------------------

_DAYS = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")  # bit 1 << i, as EAS DayOfWeek
_FREQS = {0: "DAILY", 1: "WEEKLY", 2: "MONTHLY", 3: "MONTHLY", 5: "YEARLY", 6: "YEARLY"}


def _mask_days(mask: int) -> list[str]:
    return [d for i, d in enumerate(_DAYS) if mask & (1 << i)]


def _weekday_bit(value: date) -> int:
    return 1 << ((value.weekday() + 1) % 7)


def recurrence_to_rrule(rec: Recurrence, start: datetime | date, until_as_date: bool = False) -> dict[str, Any]:
    """The RRULE of an EAS pattern; ``start`` (local) fills what the pattern leaves out."""
    rule: dict[str, Any] = {"FREQ": _FREQS.get(rec.type, "DAILY")}
    if rec.interval and rec.interval > 1:
        rule["INTERVAL"] = rec.interval
    if rec.type == 0 and rec.day_of_week:
        rule["BYDAY"] = _mask_days(rec.day_of_week)
    elif rec.type == 1:
        rule["BYDAY"] = _mask_days(rec.day_of_week or _weekday_bit(start))
    elif rec.type in (2, 5):
        rule["BYMONTHDAY"] = rec.day_of_month or start.day
    elif rec.type in (3, 6):
        days = _mask_days(rec.day_of_week or _weekday_bit(start))
        n = -1 if (rec.week_of_month or 1) >= 5 else (rec.week_of_month or 1)
        if len(days) == 1:
            rule["BYDAY"] = [f"{n}{days[0]}"]
        else:
            rule["BYDAY"] = days
            rule["BYSETPOS"] = n
    if rec.type in (5, 6):
        rule["BYMONTH"] = rec.month_of_year or start.month
    if rec.occurrences:
        rule["COUNT"] = rec.occurrences
    elif rec.until is not None:
        until = rec.until.astimezone(UTC)
        if until_as_date:  # an all-day series: the local date of its last day
            local_zone = start.tzinfo if isinstance(start, datetime) and start.tzinfo else UTC
            rule["UNTIL"] = rec.until.astimezone(local_zone).date()
        else:
            rule["UNTIL"] = until
    if rec.first_day_of_week is not None and 0 <= rec.first_day_of_week <= 6:
        rule["WKST"] = _DAYS[rec.first_day_of_week]
    return rule


_NTH = re.compile(r"^([+-]?\d{1,2})?(SU|MO|TU|WE|TH|FR|SA)$")


def rrule_to_recurrence(rule: dict[str, Any], zone: str) -> tuple[Recurrence, bool]:
    """The EAS pattern of an RRULE, and whether it is exact (False: the closest one)."""
    def first(key: str) -> Any:
        value = rule.get(key)
        if isinstance(value, list):
            return value[0] if value else None
        return value

    exact = True
    freq = str(first("FREQ") or "DAILY").upper()
    interval = int(first("INTERVAL") or 1)
    if freq not in ("DAILY", "WEEKLY", "MONTHLY", "YEARLY"):
        exact, freq, interval = False, "DAILY", 1
    for key in ("BYWEEKNO", "BYYEARDAY", "BYHOUR", "BYMINUTE", "BYSECOND"):
        if rule.get(key):
            exact = False
    for key in ("BYSETPOS", "BYMONTH", "BYMONTHDAY"):
        if isinstance(rule.get(key), list) and len(rule[key]) > 1:
            exact = False
    days: list[tuple[int, str]] = []
    for item in rule.get("BYDAY") or []:
        m = _NTH.match(str(item).upper())
        if m:
            days.append((int(m.group(1) or 0), m.group(2)))
    mask = sum(1 << _DAYS.index(d) for _, d in days) or None
    nth = next((n for n, _ in days if n), 0) or int(first("BYSETPOS") or 0)
    if len({n for n, _ in days}) > 1:
        exact = False
    week = None if not nth else (5 if nth < 0 else min(nth, 5))
    if nth < -1:
        exact = False
    monthday = first("BYMONTHDAY")
    if monthday is not None and int(monthday) < 0:
        exact, monthday = False, None
    rec = Recurrence(type=0, interval=max(1, min(interval, 999)))
    if freq == "DAILY":
        rec.day_of_week = mask
    elif freq == "WEEKLY":
        rec.type, rec.day_of_week = 1, mask
    elif freq == "MONTHLY":
        if mask and week:
            rec.type, rec.day_of_week, rec.week_of_month = 3, mask, week
        else:
            rec.type, rec.day_of_month = 2, int(monthday) if monthday else None
            if mask:
                exact = False
    else:
        month = first("BYMONTH")
        rec.month_of_year = int(month) if month else None
        if mask and week:
            rec.type, rec.day_of_week, rec.week_of_month = 6, mask, week
        else:
            rec.type, rec.day_of_month = 5, int(monthday) if monthday else None
            if mask:
                exact = False
    count = first("COUNT")
    until = first("UNTIL")
    if count:
        rec.occurrences = int(count)
    elif until is not None:
        rec.until = _instant(until, zone) if isinstance(until, datetime) else \
            _instant(datetime.combine(until, time(23, 59, 59)), zone)
    wkst = first("WKST")
    if wkst and str(wkst).upper() in _DAYS:
        rec.first_day_of_week = _DAYS.index(str(wkst).upper())
    return rec, exact


def closest_recurrence(rule: dict[str, Any], zone: str) -> Recurrence:
    """The EAS pattern a device gets for an RRULE (see the module's docstring)."""
    return rrule_to_recurrence(rule, zone)[0]


# -- events --------------------------------------------------------------------------------

_BUSY = {0: "FREE", 1: "TENTATIVE", 2: "BUSY", 3: "OOF", 4: "WORKINGELSEWHERE"}
_BUSY_BACK = {v: k for k, v in _BUSY.items()}
# CLASS: x-names are "PRIVATE" to readers that do not know them (RFC 5545 3.8.1.3).
_CLASS = {0: "PUBLIC", 1: "X-PERSONAL", 2: "PRIVATE", 3: "CONFIDENTIAL"}
_CLASS_BACK = {v: k for k, v in _CLASS.items()}
_PARTSTAT = {0: "X-UNKNOWN", 2: "TENTATIVE", 3: "ACCEPTED", 4: "DECLINED", 5: "NEEDS-ACTION"}
_PARTSTAT_BACK = {v: k for k, v in _PARTSTAT.items()} | {"DELEGATED": 5}
_ROLE = {1: "REQ-PARTICIPANT", 2: "OPT-PARTICIPANT", 3: "NON-PARTICIPANT"}
_CANCELLED = (5, 7, 13, 15)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _scrub(value: Any) -> Any:
    """A copy of an item whose text iCalendar can carry: no control characters but tab
    and line breaks, no lone surrogates (a device's undecodable bytes)."""
    if isinstance(value, str):
        return _CONTROL.sub("", value.encode("utf-8", "replace").decode("utf-8"))
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return replace(value, **{f.name: _scrub(getattr(value, f.name)) for f in fields(value)
                                 if isinstance(getattr(value, f.name), (str, list)) or
                                 is_dataclass(getattr(value, f.name))})
    return value


def _bool(value: bool) -> str:
    return "TRUE" if value else "FALSE"


def _text(component: Component, name: str) -> str:
    value = component.get(name)
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value) if value is not None else ""


def _int(component: Component, name: str) -> int | None:
    try:
        return int(_text(component, name))
    except ValueError:
        return None


def _address(value: str) -> str:
    value = str(value)
    return value[7:] if value.lower().startswith("mailto:") else value


def _categories(component: Component) -> list[str]:
    out: list[str] = []
    values = component.get("CATEGORIES")
    for prop in values if isinstance(values, list) else [values] if values is not None else []:
        out.extend(str(c) for c in getattr(prop, "cats", [prop]))
    return out


def _dt(component: Component, name: str) -> date | datetime | None:
    if name not in component:
        return None
    try:
        value = component.decoded(name)
    except Exception as e:  # noqa: BLE001 - icalendar raises several kinds for bad values
        raise ICalError(f"bad {name}: {e}") from None
    if isinstance(value, list):
        value = value[0] if value else None
    if value is not None and not isinstance(value, date):
        raise ICalError(f"bad {name}: {str(value)[:60]!r}")
    return value


def _utc_text(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def _x_instant(component: Component, name: str) -> datetime | None:
    """A UTC date-time of an X- property (which icalendar reads back as text)."""
    text = _text(component, name)
    try:
        value = icalendar.vDDDTypes.from_ical(text) if text else None  # type: ignore[no-untyped-call]
    except ValueError:
        return None
    return _instant(value, "UTC") if isinstance(value, datetime) else None


def _add_dt(component: Component, name: str, value: datetime, zone: str, all_day: bool) -> None:
    if all_day:
        component.add(name, _local(value, zone).date())
    elif zone == "UTC":
        component.add(name, value.astimezone(UTC))
    else:
        component.add(name, _local(value, zone))


def _event_component(cal: Calendar, zone: str, *, with_rule: bool = True) -> icalendar.Event:
    ev = icalendar.Event()
    ev.add("UID", cal.uid or str(uuid.uuid4()))
    ev.add("DTSTAMP", (cal.dtstamp or datetime.now(UTC)).astimezone(UTC))
    if cal.start is not None:
        _add_dt(ev, "DTSTART", cal.start, zone, cal.all_day)
    if cal.end is not None:
        _add_dt(ev, "DTEND", cal.end, zone, cal.all_day)
    if cal.all_day and zone != "UTC":
        ev.add("X-EAS-TIMEZONE", zone)
    if cal.subject:
        ev.add("SUMMARY", cal.subject)
    if cal.location:
        ev.add("LOCATION", cal.location)
    if cal.body:
        ev.add("DESCRIPTION", cal.body)
    if cal.body_html:
        ev.add("X-ALT-DESC", cal.body_html, parameters={"FMTTYPE": "text/html"})
    if cal.organizer_email:
        params = {"CN": cal.organizer_name} if cal.organizer_name else {}
        ev.add("ORGANIZER", f"mailto:{cal.organizer_email}", parameters=params)
    for a in cal.attendees:
        params = {}
        if a.name:
            params["CN"] = a.name
        if a.status in _PARTSTAT:
            params["PARTSTAT"] = _PARTSTAT[a.status]
        if a.type in _ROLE:
            params["ROLE"] = _ROLE[a.type]
        if a.type == 3:
            params["CUTYPE"] = "RESOURCE"
        ev.add("ATTENDEE", f"mailto:{a.email}", parameters=params)
    ev.add("TRANSP", "TRANSPARENT" if cal.busy_status == 0 else "OPAQUE")
    ev.add("X-MICROSOFT-CDO-BUSYSTATUS", _BUSY.get(cal.busy_status, "BUSY"))
    ev.add("CLASS", _CLASS.get(cal.sensitivity, "PUBLIC"))
    if cal.categories:
        ev.add("CATEGORIES", list(cal.categories))
    if cal.meeting_status in _CANCELLED:
        ev.add("STATUS", "CANCELLED")
    ev.add("X-EAS-MEETINGSTATUS", str(cal.meeting_status))
    if cal.response_requested is not None:
        ev.add("X-EAS-RESPONSEREQUESTED", _bool(cal.response_requested))
    if cal.response_type is not None:
        ev.add("X-EAS-RESPONSETYPE", str(cal.response_type))
    if cal.appointment_reply_time is not None:
        ev.add("X-EAS-APPOINTMENTREPLYTIME", _utc_text(cal.appointment_reply_time))
    if cal.disallow_new_time_proposal:
        ev.add("X-MICROSOFT-DISALLOW-COUNTER", "TRUE")
    if cal.online_meeting_conf_link:
        ev.add("X-EAS-ONLINEMEETINGCONFLINK", cal.online_meeting_conf_link)
    if cal.online_meeting_external_link:
        ev.add("X-EAS-ONLINEMEETINGEXTERNALLINK", cal.online_meeting_external_link)
    if cal.client_uid:
        ev.add("X-EAS-CLIENTUID", cal.client_uid)
    if cal.reminder is not None:
        alarm = icalendar.Alarm()
        alarm.add("ACTION", "DISPLAY")
        alarm.add("DESCRIPTION", cal.subject or "Reminder")
        alarm.add("TRIGGER", timedelta(minutes=-max(0, cal.reminder)))
        ev.add_component(alarm)
    if with_rule and cal.recurrence is not None and cal.start is not None:
        local_start = _local(cal.start, zone)
        ev.add("RRULE", recurrence_to_rrule(cal.recurrence, local_start, until_as_date=cal.all_day))
        if cal.recurrence.calendar_type:
            ev.add("X-EAS-CALENDARTYPE", str(cal.recurrence.calendar_type))
        deleted = sorted({e.original_start for e in cal.exceptions if e.deleted})
        for when in deleted:
            _add_dt(ev, "EXDATE", when, zone, cal.all_day)
    return ev


def _override(cal: Calendar, exc: EventException) -> Calendar:
    """The master with the exception's fields laid over it."""
    changes = {name: getattr(exc, name) for name in (
        "subject", "start", "end", "all_day", "location", "body", "busy_status", "sensitivity", "reminder",
        "meeting_status", "categories", "attendees", "dtstamp", "response_type", "appointment_reply_time",
        "online_meeting_conf_link", "online_meeting_external_link") if getattr(exc, name) is not None}
    if exc.start is not None and exc.end is None and cal.start is not None and cal.end is not None:
        changes["end"] = exc.start + (cal.end - cal.start)
    over = replace(cal, recurrence=None, exceptions=[], **changes)
    if exc.start is None:
        over.start = exc.original_start
        if cal.start is not None and cal.end is not None:
            over.end = exc.original_start + (cal.end - cal.start)
    return over


def calendar_components(cal: Calendar) -> list[icalendar.Event]:
    """The VEVENTs of an event: the master, then one per changed occurrence."""
    cal = _scrub(cal)
    zone = cal.timezone if cal.timezone and _zone(cal.timezone) is not UTC else "UTC"
    out = [_event_component(cal, zone)]
    if cal.recurrence is not None:
        for exc in cal.exceptions:
            if exc.deleted:
                continue
            ev = _event_component(_override(cal, exc), zone, with_rule=False)
            _add_dt(ev, "RECURRENCE-ID", exc.original_start, zone, cal.all_day)
            out.append(ev)
    return out


def _wrap(components: Iterable[Component], vtimezone: bool = True) -> str:
    vcal = icalendar.Calendar()
    vcal.add("PRODID", PRODID)
    vcal.add("VERSION", "2.0")
    for c in components:
        vcal.add_component(c)
    if vtimezone:
        vcal.add_missing_timezones()
    return str(vcal.to_ical().decode())


def calendar_to_ical(cal: Calendar, *, keep_from: str | None = None, vtimezone: bool = True) -> str:
    """A VCALENDAR with the event, its overrides and the VTIMEZONE of its zone (unless
    ``vtimezone`` is False: the store leaves IANA zones by reference, RFC 7809, since a
    generated VTIMEZONE lists every transition and makes each item ~8 KB to parse;
    ``eas export`` adds them).
    ``keep_from`` is the stored text a device's change replaces: when its RRULE is one EAS
    cannot express and the device sent back the closest pattern unchanged, that RRULE
    stays (the device changed something else)."""
    components = calendar_components(cal)
    if keep_from and cal.recurrence is not None:
        old = next((e for e in _parse(keep_from)[0].walk("VEVENT") if "RECURRENCE-ID" not in e), None)
        rules = _rules(old) if old is not None else []
        if old is not None and rules:
            approx, exact = rrule_to_recurrence(rules[0], cal.timezone)
            mine = replace(cal.recurrence, calendar_type=None)
            if not exact and approx == mine:
                master = components[0]
                master.pop("RRULE")
                for prop in _as_list(old.get("RRULE")):
                    master.add("RRULE", prop)
    return _wrap(components, vtimezone)


def _reminder(component: Component, start: datetime | None, end: datetime | None) -> int | None:
    for alarm in component.walk("VALARM"):
        try:
            trigger = alarm.decoded("TRIGGER")
        except Exception:  # noqa: BLE001, S112 - a broken alarm is no reminder
            continue
        if isinstance(trigger, timedelta):
            related = alarm["TRIGGER"].params.get("RELATED", "START").upper() if "TRIGGER" in alarm else "START"
            base = end if related == "END" else start
            if related == "END" and start is not None and end is not None:
                trigger = trigger + (end - start)
            minutes = int(-trigger.total_seconds() // 60) if base is not None or related == "START" else 0
            return max(0, minutes)
        if isinstance(trigger, datetime) and start is not None:
            return max(0, int((start - trigger.astimezone(UTC)).total_seconds() // 60))
    return None


def _event_fields(ev: Component, zone: str, owner: str) -> Calendar:
    raw_start = _dt(ev, "DTSTART")
    raw_end = _dt(ev, "DTEND")
    all_day = raw_start is not None and not isinstance(raw_start, datetime)
    ev_zone = (_zone_of(raw_start) if isinstance(raw_start, datetime) else None) or \
        (iana_name(_text(ev, "X-EAS-TIMEZONE")) if all_day else None) or zone
    start = _instant(raw_start, ev_zone) if raw_start is not None else None
    if raw_end is not None:
        end = _instant(raw_end, ev_zone)
    elif "DURATION" in ev and start is not None:
        end = start + ev.decoded("DURATION")
    elif start is not None:
        end = start + (timedelta(days=1) if all_day else timedelta(0))
    else:
        end = None
    cal = Calendar(uid=_text(ev, "UID"), subject=_text(ev, "SUMMARY"), start=start, end=end, all_day=all_day,
                   timezone=ev_zone, location=_text(ev, "LOCATION"), body=_text(ev, "DESCRIPTION"))
    cal.body_html = _text(ev, "X-ALT-DESC") or None
    stamp = _dt(ev, "DTSTAMP")
    cal.dtstamp = _instant(stamp, "UTC") if stamp is not None else None
    organizer = ev.get("ORGANIZER")
    if organizer is not None:
        cal.organizer_email = _address(organizer)
        cal.organizer_name = str(organizer.params.get("CN", ""))
    attendees = ev.get("ATTENDEE") or []
    for a in attendees if isinstance(attendees, list) else [attendees]:
        params = a.params
        cutype = str(params.get("CUTYPE", "")).upper()
        role = str(params.get("ROLE", "")).upper()
        kind = 3 if cutype in ("RESOURCE", "ROOM") else 2 if role in ("OPT-PARTICIPANT", "NON-PARTICIPANT") \
            else 1 if role in ("REQ-PARTICIPANT", "CHAIR") else None
        partstat = str(params.get("PARTSTAT", "")).upper()
        cal.attendees.append(Attendee(email=_address(a), name=str(params.get("CN", "")),
                                      status=_PARTSTAT_BACK.get(partstat), type=kind))
    busy = _text(ev, "X-MICROSOFT-CDO-BUSYSTATUS").upper()
    if busy in _BUSY_BACK:
        cal.busy_status = _BUSY_BACK[busy]
    elif _text(ev, "TRANSP").upper() == "TRANSPARENT":
        cal.busy_status = 0
    elif _text(ev, "STATUS").upper() == "TENTATIVE":
        cal.busy_status = 1
    cal.sensitivity = _CLASS_BACK.get(_text(ev, "CLASS").upper(), 2 if "CLASS" in ev else 0)
    cal.categories = _categories(ev)
    cal.reminder = _reminder(ev, start, end)
    status = _int(ev, "X-EAS-MEETINGSTATUS")
    if status is None:
        if not cal.attendees and not cal.organizer_email:
            status = 0
        elif not cal.organizer_email or (owner and cal.organizer_email.lower() == owner.lower()):
            status = 1
        else:
            status = 3
        if _text(ev, "STATUS").upper() == "CANCELLED":
            status = 0 if status == 0 else status + 4
    cal.meeting_status = status
    requested = _text(ev, "X-EAS-RESPONSEREQUESTED").upper()
    cal.response_requested = None if not requested else requested == "TRUE"
    cal.response_type = _int(ev, "X-EAS-RESPONSETYPE")
    cal.appointment_reply_time = _x_instant(ev, "X-EAS-APPOINTMENTREPLYTIME")
    cal.disallow_new_time_proposal = _text(ev, "X-MICROSOFT-DISALLOW-COUNTER").upper() == "TRUE"
    cal.online_meeting_conf_link = _text(ev, "X-EAS-ONLINEMEETINGCONFLINK")
    cal.online_meeting_external_link = _text(ev, "X-EAS-ONLINEMEETINGEXTERNALLINK")
    cal.client_uid = _text(ev, "X-EAS-CLIENTUID")
    return cal


def _rules(component: Component) -> list[dict[str, Any]]:
    rules = component.get("RRULE")
    if rules is None:
        return []
    return [dict(r) for r in (rules if isinstance(rules, list) else [rules])]


def _exdates(component: Component, zone: str) -> list[datetime]:
    out: list[datetime] = []
    values = component.get("EXDATE")
    for prop in values if isinstance(values, list) else [values] if values is not None else []:
        for d in prop.dts:
            out.append(_instant(d.dt, zone))
    return out


def _calendar_master(master: Component, overrides: list[Component], zone: str, owner: str) -> Calendar:
    cal = _event_fields(master, zone, owner)
    rules = _rules(master)
    if rules and cal.start is not None:
        cal.recurrence = closest_recurrence(rules[0], cal.timezone)
        cal.recurrence.calendar_type = _int(master, "X-EAS-CALENDARTYPE")
        for when in _exdates(master, cal.timezone):
            cal.exceptions.append(EventException(original_start=when, deleted=True))
        for ov in overrides:
            cal.exceptions.append(_exception(cal, ov, zone, owner))
        cal.exceptions.sort(key=lambda e: e.original_start)
    return cal


def _exception(master: Calendar, ov: Component, zone: str, owner: str) -> EventException:
    rid = _dt(ov, "RECURRENCE-ID")
    if rid is None:
        raise ICalError("an override without RECURRENCE-ID")
    other = _event_fields(ov, master.timezone, owner)
    exc = EventException(original_start=_instant(rid, master.timezone))
    if _cancelled_instance(ov):
        exc.deleted = True  # a cancelled instance, as Google exports it
        return exc
    names = ["subject", "start", "end", "all_day", "location", "body", "busy_status", "sensitivity",
             "reminder", "meeting_status", "categories", "attendees", "response_type",
             "appointment_reply_time", "dtstamp"]
    if "ORGANIZER" not in ov and "ATTENDEE" not in ov:
        # An override naming no one (as many exports write a moved occurrence) is still the
        # series' meeting: a device would show it as a plain appointment otherwise.
        names.remove("meeting_status")
        names.remove("attendees")
    for name in names:
        value = getattr(other, name)
        if value != getattr(master, name):
            setattr(exc, name, value)
    for name in ("online_meeting_conf_link", "online_meeting_external_link"):
        value = getattr(other, name)
        if value != getattr(master, name):
            setattr(exc, name, value)
    if exc.start is None and other.start != exc.original_start:
        exc.start = other.start
    if exc.end is None and other.end is not None and master.start is not None and master.end is not None \
            and other.end - (other.start or other.end) != master.end - master.start:
        exc.end = other.end
    return exc


def _cancelled_instance(override: Component) -> bool:
    return _text(override, "STATUS").upper() == "CANCELLED" and "X-EAS-MEETINGSTATUS" not in override


def parse(text: str | bytes) -> Component:
    """The (first) VCALENDAR of a text, for the functions here that take text or one
    parsed VCALENDAR (a caller with several questions parses once). ``ICalError``."""
    return _parse(text)[0]


def _parse(text: str | bytes | Component) -> list[Component]:
    if isinstance(text, Component):
        if text.name != "VCALENDAR":
            raise ICalError(f"a {text.name}, not a VCALENDAR")
        return [text]
    if isinstance(text, str):
        text = text.encode("utf-8", "surrogateescape")
    if len(text) > MAX_ICAL:
        raise ICalError(f"iCalendar larger than {MAX_ICAL} bytes")
    try:
        found = icalendar.Calendar.from_ical(text, multiple=True)
    except Exception as e:  # noqa: BLE001 - the parser raises ValueError, IndexError, KeyError...
        raise ICalError(f"not iCalendar: {e}") from None
    out: list[Component] = [c for c in found if c.name == "VCALENDAR"]
    if not out:
        raise ICalError("no VCALENDAR in the text")
    return out


def _default_zone(vcal: Component, zone: str) -> str:
    return iana_name(_text(vcal, "X-WR-TIMEZONE")) or zone


def calendar_from_ical(source: str | bytes | Component, *, zone: str = "UTC", owner: str = "") -> Calendar:
    """The event of a VCALENDAR (its first UID, with that UID's overrides) or of one VEVENT.
    ``owner`` is the address of the calendar's user: an event it organises is a meeting
    status 1, one it was invited to 3 (X-EAS-MEETINGSTATUS, when present, wins)."""
    if isinstance(source, (str, bytes)):
        items = [i for i in read_ical(source, zone=zone, owner=owner) if isinstance(i, Calendar)]
        if not items:
            raise ICalError("no VEVENT in the text")
        return items[0]
    if source.name == "VEVENT":
        return _calendar_master(source, [], zone, owner)
    events = source.walk("VEVENT")
    if not events:
        raise ICalError("no VEVENT in the component")
    return _group_events(events, _default_zone(source, zone), owner)[0]


def _group_events(events: list[Component], zone: str, owner: str) -> list[Calendar]:
    masters: dict[str, Component] = {}
    overrides: dict[str, list[Component]] = {}
    order: list[str] = []
    for ev in events:
        uid = _text(ev, "UID") or str(uuid.uuid4())
        if uid not in order:
            order.append(uid)
        if "RECURRENCE-ID" in ev:
            overrides.setdefault(uid, []).append(ev)
        else:
            masters.setdefault(uid, ev)
    out: list[Calendar] = []
    for uid in order:
        if uid in masters:
            out.append(_calendar_master(masters[uid], overrides.get(uid, []), zone, owner))
        else:  # single occurrences of a series not in the file (Google's invitations)
            out.extend(_calendar_master(ov, [], zone, owner) for ov in overrides[uid])
    return out


# -- tasks ---------------------------------------------------------------------------------

def task_component(task: Task) -> icalendar.Todo:
    task = _scrub(task)
    todo = icalendar.Todo()
    todo.add("UID", task.uid or str(uuid.uuid4()))
    todo.add("DTSTAMP", datetime.now(UTC))
    if task.subject:
        todo.add("SUMMARY", task.subject)
    if task.body:
        todo.add("DESCRIPTION", task.body)
    todo.add("PRIORITY", {0: 9, 1: 5, 2: 1}.get(task.importance, 5))
    todo.add("CLASS", _CLASS.get(task.sensitivity, "PUBLIC"))
    for name, local, utc in (("DTSTART", task.start_date, task.utc_start_date),
                             ("DUE", task.due_date, task.utc_due_date)):
        if utc is not None:
            todo.add(name, utc.astimezone(UTC))
            if local is not None:
                todo.add(f"X-EAS-LOCAL-{name}", local.replace(tzinfo=None).strftime("%Y%m%dT%H%M%S"))
        elif local is not None:
            todo.add(name, local.replace(tzinfo=None))
    if task.complete:
        todo.add("STATUS", "COMPLETED")
        todo.add("PERCENT-COMPLETE", 100)
        if task.date_completed is not None:
            todo.add("COMPLETED", task.date_completed.astimezone(UTC))
    else:
        todo.add("STATUS", "NEEDS-ACTION")
    if task.categories:
        todo.add("CATEGORIES", list(task.categories))
    if task.reminder_set and task.reminder_time is not None:
        alarm = icalendar.Alarm()
        alarm.add("ACTION", "DISPLAY")
        alarm.add("DESCRIPTION", task.subject or "Reminder")
        alarm.add("TRIGGER", task.reminder_time.astimezone(UTC), parameters={"VALUE": "DATE-TIME"})
        todo.add_component(alarm)
    rec = task.recurrence
    if rec is not None:
        base = task.start_date or task.due_date or rec.start or datetime.now(UTC)
        todo.add("RRULE", recurrence_to_rrule(rec, base))
        if rec.regenerate:
            todo.add("X-EAS-REGENERATE", "TRUE")
        if rec.dead_occur:
            todo.add("X-EAS-DEADOCCUR", "TRUE")
        if rec.start is not None:
            todo.add("X-EAS-RECURRENCESTART", _utc_text(rec.start))
    return todo


def task_to_ical(task: Task) -> str:
    return _wrap([task_component(task)])


def _task_fields(todo: Component, zone: str) -> Task:
    task = Task(uid=_text(todo, "UID"), subject=_text(todo, "SUMMARY"), body=_text(todo, "DESCRIPTION"))
    priority = _int(todo, "PRIORITY") or 0
    task.importance = 1 if priority in (0, 5) else 2 if priority < 5 else 0
    task.sensitivity = _CLASS_BACK.get(_text(todo, "CLASS").upper(), 2 if "CLASS" in todo else 0)
    for name, local_attr, utc_attr in (("DTSTART", "start_date", "utc_start_date"),
                                       ("DUE", "due_date", "utc_due_date")):
        value = _dt(todo, name)
        if value is None:
            continue
        own = _zone_of(value) if isinstance(value, datetime) else None
        instant = _instant(value, own or zone)
        setattr(task, utc_attr, instant)
        local_text = _text(todo, f"X-EAS-LOCAL-{name}")
        try:
            local = datetime.strptime(local_text, "%Y%m%dT%H%M%S") if local_text else None
        except ValueError:
            local = None
        if local is None:
            local = instant.astimezone(_zone(own or zone)).replace(tzinfo=None)
        setattr(task, local_attr, local)
    status = _text(todo, "STATUS").upper()
    task.complete = status == "COMPLETED" or _int(todo, "PERCENT-COMPLETE") == 100 or "COMPLETED" in todo
    done = _dt(todo, "COMPLETED")
    task.date_completed = _instant(done, zone) if done is not None else None
    if task.complete and task.date_completed is None:
        stamp = _dt(todo, "LAST-MODIFIED") or _dt(todo, "DTSTAMP")
        task.date_completed = _instant(stamp, zone) if stamp is not None else None
    task.categories = _categories(todo)
    for alarm in todo.walk("VALARM"):
        try:
            trigger = alarm.decoded("TRIGGER")
        except Exception:  # noqa: BLE001, S112 - a broken alarm is no reminder
            continue
        base = task.utc_start_date or task.utc_due_date
        if isinstance(trigger, datetime):
            task.reminder_set, task.reminder_time = True, _instant(trigger, zone)
        elif isinstance(trigger, timedelta) and base is not None:
            task.reminder_set, task.reminder_time = True, base + trigger
        break
    rules = _rules(todo)
    if rules:
        task.recurrence = closest_recurrence(rules[0], zone)
        task.recurrence.regenerate = _text(todo, "X-EAS-REGENERATE").upper() == "TRUE"
        task.recurrence.dead_occur = _text(todo, "X-EAS-DEADOCCUR").upper() == "TRUE"
        task.recurrence.start = _x_instant(todo, "X-EAS-RECURRENCESTART") or task.utc_start_date
    return task


def task_from_ical(source: str | bytes | Component, *, zone: str = "UTC") -> Task:
    task: Task = _first(source, Task, "VTODO", _task_fields, zone)
    return task


def _first(source: str | bytes | Component, kind: type, name: str, fields: Any, zone: str) -> Any:
    """The first item of ``kind`` in a text, or the ``name`` component (or the first one
    inside) read with ``fields(component, zone)``; ``ICalError`` when there is none."""
    if isinstance(source, (str, bytes)):
        items = [i for i in read_ical(source, zone=zone) if isinstance(i, kind)]
        if not items:
            raise ICalError(f"no {name} in the text")
        return items[0]
    component = source if source.name == name else next(iter(source.walk(name)), None)
    if component is None:
        raise ICalError(f"no {name} in the component")
    return fields(component, zone)


# -- notes ---------------------------------------------------------------------------------

def note_component(note: Note) -> icalendar.Journal:
    note = _scrub(note)
    journal = icalendar.Journal()
    journal.add("UID", note.uid or str(uuid.uuid4()))
    journal.add("DTSTAMP", datetime.now(UTC))
    if note.subject:
        journal.add("SUMMARY", note.subject)
    if note.body:
        journal.add("DESCRIPTION", note.body)
    if note.body_html:
        journal.add("X-ALT-DESC", note.body_html, parameters={"FMTTYPE": "text/html"})
    if note.last_modified is not None:
        journal.add("LAST-MODIFIED", note.last_modified.astimezone(UTC))
    if note.categories:
        journal.add("CATEGORIES", list(note.categories))
    if note.message_class != "IPM.StickyNote":
        journal.add("X-EAS-MESSAGECLASS", note.message_class)
    return journal


def note_to_ical(note: Note) -> str:
    return _wrap([note_component(note)])


def _note_fields(journal: Component, zone: str) -> Note:
    note = Note(uid=_text(journal, "UID"), subject=_text(journal, "SUMMARY"))
    descriptions = journal.get("DESCRIPTION")  # RFC 5545 allows several in a VJOURNAL
    if isinstance(descriptions, list):
        note.body = "\n\n".join(str(d) for d in descriptions)
    else:
        note.body = _text(journal, "DESCRIPTION")
    note.body_html = _text(journal, "X-ALT-DESC") or None
    modified = _dt(journal, "LAST-MODIFIED") or _dt(journal, "DTSTAMP")
    note.last_modified = _instant(modified, zone) if modified is not None else None
    note.categories = _categories(journal)
    note.message_class = _text(journal, "X-EAS-MESSAGECLASS") or "IPM.StickyNote"
    return note


def note_from_ical(source: str | bytes | Component, *, zone: str = "UTC") -> Note:
    note: Note = _first(source, Note, "VJOURNAL", _note_fields, zone)
    return note


# -- files ---------------------------------------------------------------------------------

def split_ical(text: str | bytes) -> list[str]:
    """One VCALENDAR text per item of a file (an event with its overrides, a VTODO, a
    VJOURNAL), each with the VTIMEZONEs it uses: what the store keeps, unchanged, so that
    what EAS cannot express survives. X-WR-TIMEZONE is carried along. ``ICalError``."""
    out: list[str] = []
    for vcal in _parse(text):
        zones = {_text(tz, "TZID"): tz for tz in vcal.walk("VTIMEZONE")}
        groups: dict[tuple[str, str], list[Component]] = {}
        for comp in vcal.subcomponents:
            if comp.name not in ("VEVENT", "VTODO", "VJOURNAL"):
                continue
            uid = _text(comp, "UID") or str(uuid.uuid4())
            if comp.name == "VEVENT":
                groups.setdefault((comp.name, uid), []).append(comp)
            else:
                groups[(comp.name, uid + "\0" + str(len(groups)))] = [comp]
        for members in groups.values():
            item = icalendar.Calendar()
            item.add("PRODID", _text(vcal, "PRODID") or PRODID)
            item.add("VERSION", "2.0")
            if "X-WR-TIMEZONE" in vcal:
                item.add("X-WR-TIMEZONE", _text(vcal, "X-WR-TIMEZONE"))
            used: set[str] = set()
            for comp in members:
                for prop in comp.property_items():
                    tzid = getattr(prop[1], "params", {}).get("TZID") if hasattr(prop[1], "params") else None
                    if tzid:
                        used.add(str(tzid))
            for tzid in sorted(used):
                if tzid in zones:
                    item.add_component(zones[tzid])
            for comp in members:
                item.add_component(comp)
            out.append(item.to_ical().decode())
    return out


def read_ical(text: str | bytes | Component, *, zone: str = "UTC", owner: str = "") -> list[ICalItem]:
    """Every item of a file: events (a master and its overrides grouped by UID), tasks and
    notes, in file order by kind. ``ICalError`` for text that is not iCalendar or holds an
    unreadable value."""
    out: list[ICalItem] = []
    for vcal in _parse(text):
        default = _default_zone(vcal, zone)
        try:
            out.extend(_group_events(vcal.walk("VEVENT"), default, owner))
            out.extend(_task_fields(t, default) for t in vcal.walk("VTODO"))
            out.extend(_note_fields(j, default) for j in vcal.walk("VJOURNAL"))
        except ICalError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as e:
            raise ICalError(f"unreadable iCalendar value: {e}") from None
    return out


def item_from_ical(text: str | bytes, *, zone: str = "UTC", owner: str = "") -> ICalItem:
    """The one item of a stored VCALENDAR; ``ICalError`` if it holds none."""
    items = read_ical(text, zone=zone, owner=owner)
    if not items:
        raise ICalError("no VEVENT, VTODO or VJOURNAL in the text")
    return items[0]


def item_to_ical(item: ICalItem) -> str:
    if isinstance(item, Calendar):
        return calendar_to_ical(item)
    if isinstance(item, Task):
        return task_to_ical(item)
    return note_to_ical(item)


# -- expansion -----------------------------------------------------------------------------

def occurrences(text: str | bytes | Component, window_start: datetime | None = None, window_end: datetime | None = None,
                *, zone: str = "UTC", limit: int = 100_000) -> tuple[list[tuple[datetime, datetime, Component]], bool]:
    """The occurrences of the event of a stored VCALENDAR that overlap the window, as
    ``(start, end, component)`` in UTC, with overrides in place of their instances and
    EXDATEs left out; and whether the series ends (False: it recurs forever). The real
    RRULE is expanded here, not the EAS pattern."""
    vcal = _parse(text)[0]
    default = _default_zone(vcal, zone)
    events = vcal.walk("VEVENT")
    master = next((e for e in events if "RECURRENCE-ID" not in e), None)
    overrides = {}
    for ev in events:
        rid = _dt(ev, "RECURRENCE-ID")
        if rid is not None and ev is not master:
            overrides[_instant(rid, _ev_zone(master or ev, default))] = ev
    # A cancelled instance (Google's form of a deleted one) is no occurrence.
    cancelled = {k for k, ev in overrides.items() if _cancelled_instance(ev)}
    found: list[tuple[datetime, datetime, Component]] = []

    def keep(start: datetime, end: datetime, comp: Component) -> None:
        if (window_end is None or start < window_end) and (window_start is None or end > window_start
                                                            or (end == start and start >= window_start)):
            found.append((start, end, comp))

    finite = True
    if master is not None:
        ev_zone = _ev_zone(master, default)
        raw = _dt(master, "DTSTART")
        span = _span(master, ev_zone)
        if raw is None:
            return [], True
        rules = master.get("RRULE")
        starts: Iterable[datetime]
        if rules is None:
            starts = [_instant(raw, ev_zone)]
        else:
            rset = du_rrule.rruleset()
            local_start = raw if isinstance(raw, datetime) else datetime.combine(raw, time())
            if local_start.tzinfo is None:
                local_start = local_start.replace(tzinfo=_zone(ev_zone))
            for rule in rules if isinstance(rules, list) else [rules]:
                text_rule = rule.to_ical().decode()
                if "COUNT" not in rule and "UNTIL" not in rule:
                    finite = False
                rset.rrule(_rrule(text_rule, local_start, ev_zone))
            excluded = set(_exdates(master, ev_zone))
            starts = (s.astimezone(UTC) for s in rset)
            starts = (s for s in starts if s not in excluded)
        for n, start in enumerate(starts):
            if n >= limit:
                finite = False  # too many to list: treated as endless
                break
            if window_end is not None and start >= window_end + timedelta(days=2):
                break  # overrides may move an instance earlier; two days past the window is enough
            if start not in overrides:
                keep(start, start + span, master)
    for key, ev in overrides.items():
        s = _dt(ev, "DTSTART")
        if key in cancelled:
            continue
        if s is None:
            continue
        z = _ev_zone(ev, default)
        start = _instant(s, z)
        keep(start, start + _span(ev, z), ev)
    found.sort(key=lambda x: x[0])
    return found, finite


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


def _ev_zone(ev: Component, default: str) -> str:
    raw = _dt(ev, "DTSTART")
    if isinstance(raw, datetime):
        return _zone_of(raw) or default
    return iana_name(_text(ev, "X-EAS-TIMEZONE")) or default


def _span(ev: Component, zone: str) -> timedelta:
    start, end = _dt(ev, "DTSTART"), _dt(ev, "DTEND")
    if start is not None and end is not None:
        return max(timedelta(0), _instant(end, zone) - _instant(start, zone))
    if "DURATION" in ev:
        duration = ev.decoded("DURATION")
        return duration if isinstance(duration, timedelta) else timedelta(0)
    return timedelta(days=1) if start is not None and not isinstance(start, datetime) else timedelta(0)


def _rrule(text_rule: str, local_start: datetime, zone: str) -> du_rrule.rrule:
    """A dateutil rule; an UNTIL given as a date or floating time is made to match
    DTSTART, as dateutil insists."""
    text_rule = re.sub(r"UNTIL=(\d{8})(?:;|$)", lambda m: f"UNTIL={m.group(1)}T235959;", text_rule).rstrip(";")
    match = re.search(r"UNTIL=(\d{8}T\d{6})(Z?)", text_rule)
    if match and not match.group(2):
        local = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=_zone(zone))
        text_rule = text_rule.replace(match.group(0), "UNTIL=" + local.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"))
    try:
        return du_rrule.rrulestr(text_rule, dtstart=local_start)
    except (ValueError, TypeError) as e:
        raise ICalError(f"bad RRULE {text_rule!r}: {e}") from None


def event_span(text: str | bytes | Component, *, zone: str = "UTC") -> tuple[datetime | None, datetime | None]:
    """``(first start, last end)`` of a stored event in UTC; the end is None for a series
    without end. What the store's ``starts``/``ends`` columns hold."""
    vcal = _parse(text)[0]
    master = next((e for e in vcal.walk("VEVENT") if "RECURRENCE-ID" not in e), None)
    if master is not None and master.get("RRULE") is not None and not all(
            "COUNT" in r or "UNTIL" in r for r in _as_list(master.get("RRULE"))):
        first, _ = occurrences(vcal, None, _instant(_dt(master, "DTSTART") or datetime.now(UTC), "UTC")
                               + timedelta(days=1), zone=zone, limit=1)
        return (first[0][0] if first else None), None
    found, finite = occurrences(vcal, zone=zone)
    if not found and master is not None and _dt(master, "DTSTART") is not None:
        # A rule with no occurrence at all (UNTIL before DTSTART): the event as written.
        ev_zone = _ev_zone(master, _default_zone(vcal, zone))
        start = _instant(_dt(master, "DTSTART"), ev_zone)  # type: ignore[arg-type]
        return start, start + _span(master, ev_zone)
    if not found:
        return None, None
    return min(s for s, _, _ in found), (max(e for _, e, _ in found) if finite else None)


# -- changes of one occurrence -------------------------------------------------------------

class NoSuchOccurrence(ICalError):
    """The instance named is no occurrence of the stored series."""


def busy_status(event: Component) -> int:
    """The BusyStatus of an occurrence's VEVENT; 0 (free) also for a cancelled one."""
    if _text(event, "STATUS").upper() == "CANCELLED" or _int(event, "X-EAS-MEETINGSTATUS") in _CANCELLED:
        return 0
    busy = _text(event, "X-MICROSOFT-CDO-BUSYSTATUS").upper()
    if busy in _BUSY_BACK:
        return _BUSY_BACK[busy]
    if _text(event, "TRANSP").upper() == "TRANSPARENT":
        return 0
    return 1 if _text(event, "STATUS").upper() == "TENTATIVE" else 2


def _series(text: str) -> tuple[Component, Component, Calendar]:
    vcal = _parse(text)[0]
    master = next((e for e in vcal.walk("VEVENT") if "RECURRENCE-ID" not in e), None)
    if master is None or "RRULE" not in master:
        raise NoSuchOccurrence("the event does not recur")
    return vcal, master, _calendar_master(master, [], _default_zone(vcal, "UTC"), "")


def _check_instance(text: str, vcal: Component, master: Calendar, instance: datetime) -> datetime:
    """The instance as an aware UTC datetime, if the series has it (an occurrence of the
    rule, or one already overridden)."""
    instance = instance.astimezone(UTC) if instance.tzinfo else instance.replace(tzinfo=UTC)
    for ev in vcal.walk("VEVENT"):
        rid = _dt(ev, "RECURRENCE-ID")
        if rid is not None and _instant(rid, master.timezone) == instance:
            return instance
    found, _ = occurrences(text, instance - timedelta(days=1), instance + timedelta(days=1))
    span = (master.end - master.start) if master.start and master.end else timedelta(0)
    if not any(c.get("RECURRENCE-ID") is None and s == instance for s, e, c in found) and not (
            span == timedelta(0) and any(s == instance for s, _, _ in found)):
        raise NoSuchOccurrence(f"the series has no occurrence at {instance.isoformat()}")
    return instance


def _without_override(vcal: Component, master: Calendar, instance: datetime) -> None:
    vcal.subcomponents = [c for c in vcal.subcomponents if not (
        c.name == "VEVENT" and (rid := _dt(c, "RECURRENCE-ID")) is not None
        and _instant(rid, master.timezone) == instance)]


def with_occurrence(text: str, instance: datetime, cal: Calendar) -> str:
    """The stored series with the occurrence at ``instance`` replaced by ``cal`` (a 16.x
    change with InstanceId): a RECURRENCE-ID override. ``NoSuchOccurrence``."""
    vcal, _, master = _series(text)
    instance = _check_instance(text, vcal, master, instance)
    _without_override(vcal, master, instance)
    over = replace(_scrub(cal), uid=master.uid, recurrence=None, exceptions=[], instance_id=None,
                   timezone=master.timezone, all_day=master.all_day if cal.start is None else cal.all_day)
    if over.start is None:
        over.start = instance
    if over.end is None and master.start is not None and master.end is not None:
        over.end = over.start + (master.end - master.start)
    ev = _event_component(over, master.timezone, with_rule=False)
    _add_dt(ev, "RECURRENCE-ID", instance, master.timezone, master.all_day)
    vcal.add_component(ev)
    return _refresh_zones(vcal)


def without_occurrence(text: str, instance: datetime) -> str:
    """The stored series without the occurrence at ``instance`` (an EXDATE; an override
    of it goes too). ``NoSuchOccurrence``."""
    vcal, master_ev, master = _series(text)
    instance = _check_instance(text, vcal, master, instance)
    _without_override(vcal, master, instance)
    _add_dt(master_ev, "EXDATE", instance, master.timezone, master.all_day)
    return _refresh_zones(vcal)


def _refresh_zones(vcal: Component) -> str:
    """The changed series as text, its VTIMEZONEs as they were (see ``calendar_to_ical``)."""
    return str(vcal.to_ical().decode())
