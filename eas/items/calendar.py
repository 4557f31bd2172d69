"""The Calendar item class (MS-ASCAL): events with attendees, reminders, recurrence and
exceptions, and their conversion to and from nodes for every protocol version.

Times are timezone-aware datetimes in UTC; ``Calendar.timezone`` names the IANA zone the
event was made in (the EAS TimeZone blob is computed from it, and an incoming blob is
matched back to a zone). All-day events start and end at local midnight of that zone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from eas import tags
from eas.items import body as bodies
from eas.items import pim, recurrence, timezone
from eas.items.email import format_date, write_item_body
from eas.items.pim import (
    MAX_BODY,
    MAX_CATEGORY,
    bad,
    boolean,
    date,
    integer,
    parse_body,
    strings,
    text,
    write_strings,
)
from eas.protocol.errors import ProtocolError
from eas.protocol.versions import SUPPORTED_VERSIONS, Version
from eas.tags import AirSyncBase
from eas.tags import Calendar as C
from eas.wbxml import Node, Writer


@dataclass(slots=True)
class Attendee:
    """AttendeeStatus: 0 unknown, 2 tentative, 3 accept, 4 decline, 5 not responded;
    AttendeeType: 1 required, 2 optional, 3 resource (MS-ASCAL 2.2.2.4, 2.2.2.5)."""

    email: str
    name: str = ""
    status: int | None = None
    type: int | None = None


@dataclass(slots=True)
class Recurrence:
    """A recurrence pattern (MS-ASCAL 2.2.2.38, MS-ASTASK 2.2.2.18).

    ``type``: 0 daily, 1 weekly, 2 monthly, 3 monthly on the nth day, 5 yearly, 6 yearly on
    the nth day. ``day_of_week`` is a bit mask (1 Sunday ... 64 Saturday; 127 with
    ``week_of_month`` 5 is the last day of the month); ``week_of_month`` 5 means the last.
    ``start``, ``regenerate`` and ``dead_occur`` exist for tasks only.
    """

    type: int
    interval: int = 1
    occurrences: int | None = None
    until: datetime | None = None
    day_of_week: int | None = None
    day_of_month: int | None = None
    week_of_month: int | None = None
    month_of_year: int | None = None
    calendar_type: int | None = None
    is_leap_month: bool = False
    first_day_of_week: int | None = None
    start: datetime | None = None
    regenerate: bool = False
    dead_occur: bool = False


@dataclass(slots=True)
class EventException:
    """A changed or deleted occurrence of a recurring event; ``original_start`` (the
    ExceptionStartTime, or the 16.x InstanceId) names it. ``None`` fields are as in the
    series."""

    original_start: datetime
    deleted: bool = False
    subject: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    all_day: bool | None = None
    location: str | None = None
    body: str | None = None
    busy_status: int | None = None
    sensitivity: int | None = None
    reminder: int | None = None
    meeting_status: int | None = None
    categories: list[str] | None = None
    attendees: list[Attendee] | None = None
    dtstamp: datetime | None = None
    response_type: int | None = None
    appointment_reply_time: datetime | None = None
    online_meeting_conf_link: str | None = None
    online_meeting_external_link: str | None = None


@dataclass(slots=True)
class Calendar:
    """An event (MS-ASCAL 2.2.2). ``body`` is plain text unless ``body_html`` is set.

    BusyStatus: 0 free, 1 tentative, 2 busy, 3 out of office, 4 working elsewhere.
    Sensitivity: 0 normal, 1 personal, 2 private, 3 confidential. MeetingStatus: 0 an
    appointment, 1 a meeting the user organises, 3 a meeting received, 5/7 cancelled.
    ``reminder`` is minutes before the start. ``instance_id`` is set only on what a 16.x
    device sends to change or delete one occurrence (airsyncbase:InstanceId).
    """

    id: str = ""
    uid: str = ""
    subject: str = ""
    start: datetime | None = None
    end: datetime | None = None
    all_day: bool = False
    timezone: str = "UTC"
    location: str = ""
    body: str = ""
    body_html: str | None = None
    organizer_name: str = ""
    organizer_email: str = ""
    dtstamp: datetime | None = None
    busy_status: int = 2
    sensitivity: int = 0
    reminder: int | None = None
    meeting_status: int = 0
    categories: list[str] = field(default_factory=list)
    attendees: list[Attendee] = field(default_factory=list)
    recurrence: Recurrence | None = None
    exceptions: list[EventException] = field(default_factory=list)
    response_requested: bool | None = None
    response_type: int | None = None
    appointment_reply_time: datetime | None = None
    disallow_new_time_proposal: bool = False
    online_meeting_conf_link: str = ""
    online_meeting_external_link: str = ""
    client_uid: str = ""
    instance_id: datetime | None = None
    # The fields a device's ApplicationData carried (set by ``parse``; None for an event
    # from anywhere else): on a Change, an absent element may mean "as before" (ghosted,
    # MS-ASCAL 3.1.5.3: in 16.x every absent top-level element), see ``merge_change``.
    sent: frozenset[str] | None = field(default=None, compare=False, repr=False)
    # Of the event a meeting mail describes only: its MeetingMessageType (MS-ASEMAIL
    # 2.2.2.47), decided at delivery (``eas.items.meeting.message_type``).
    message_type: int | None = field(default=None, compare=False, repr=False)


# -- Conversion (MS-ASCAL 2.2.2) -------------------------------------------------------------
#
# Per version: 2.5 has Calendar:Body/BodyTruncated, 12.0 on AirSyncBase:Body and
# AttendeeStatus/AttendeeType; 14.0 adds ResponseRequested, ResponseType,
# AppointmentReplyTime, DisallowNewTimeProposal (and CalendarType/IsLeapMonth in a
# Recurrence); 14.1 the OnlineMeeting links (and FirstDayOfWeek); 16.0 replaces
# Calendar:Location with AirSyncBase:Location, an Exception's ExceptionStartTime with
# AirSyncBase:InstanceId, and takes UID and the organizer from the server only (a 16.x
# device's UID, OrganizerName and OrganizerEmail are ignored; its ClientUid is kept).

MAX_ATTENDEES = 1000  # a bound on what a device may send; MS-ASCAL sets none
MAX_EXCEPTIONS = 1000
MAX_UID = 300  # MS-ASCAL 2.2.2.13 ClientUid, 2.2.2.46 UID: at most 300 characters
_MEETING_STATUS = frozenset({0, 1, 3, 5, 7, 9, 11, 13, 15})  # MS-ASCAL 2.2.2.29
_ATTENDEE_STATUS = frozenset({0, 2, 3, 4, 5})
_MAX_REMINDER = 0xFFFFFFFF


class _Profile:
    """What one protocol version has, looked up once from the tag table."""

    __slots__ = ("airsyncbase", "attendee_details", "exception_start", "location16", "online", "v14")

    def __init__(self, version: str) -> None:
        def has(tag: int) -> bool:
            return version in tags.BY_TAG[tag].versions

        self.airsyncbase = has(AirSyncBase.Body)
        self.attendee_details = has(C.AttendeeStatus)
        self.v14 = has(C.ResponseType)
        self.online = has(C.OnlineMeetingConfLink)
        self.location16 = has(AirSyncBase.Location)
        self.exception_start = has(C.ExceptionStartTime)


_PROFILES: dict[str, _Profile] = {v.text: _Profile(v.text) for v in SUPPORTED_VERSIONS}


def _timezone_blob(item: Calendar) -> str:
    year = item.start.year if item.start is not None else None
    try:
        return timezone.to_wire(item.timezone, year)
    except ValueError:  # a zone this system's tzdata lacks: the event still goes out, in UTC
        return timezone.to_wire("UTC", year)


def _write_body(w: Writer, text: str, html: str | None, options: dict[str, Any], version: Version,
                p: _Profile) -> None:
    if p.airsyncbase:
        write_item_body(w, text, html, options, version)
        return
    if html is not None and not text:
        text = bodies.html_to_text(html)
    limit = options.get("truncation")  # 2.5: Calendar:Body, cut to the Truncation code's characters
    if limit is not None and len(text) > limit:
        if limit:
            w.leaf(C.Body, text[:limit])
        w.leaf(C.BodyTruncated, "1")
    elif text:
        w.leaf(C.Body, text)
        w.leaf(C.BodyTruncated, "0")


def _write_location(w: Writer, location: str, p: _Profile) -> None:
    if not location:
        return
    if p.location16:
        with w.tag(AirSyncBase.Location):
            w.leaf(AirSyncBase.DisplayName, location)
    else:
        w.leaf(C.Location, location)


def _write_attendees(w: Writer, attendees: list[Attendee], p: _Profile) -> None:
    with w.tag(C.Attendees):
        for a in attendees[:MAX_ATTENDEES]:
            with w.tag(C.Attendee):
                w.leaf(C.Email, a.email)
                w.leaf(C.Name, a.name or a.email)  # Name is required (MS-ASCAL 2.2.2.31)
                if p.attendee_details:
                    if a.status is not None:
                        w.leaf(C.AttendeeStatus, a.status)
                    if a.type is not None:
                        w.leaf(C.AttendeeType, a.type)


def write(w: Writer, item: Calendar, version: Version, options: dict[str, Any]) -> None:
    """The ApplicationData children of ``item`` for ``version`` under ``options`` (the
    BodyPreference or 2.5 Truncation of ``eas.items.email.parse_body_options``). Times
    go out in the compact UTC form; the TimeZone blob has the rules of the start's year."""
    p = _PROFILES[version.text]
    leaf = w.leaf
    leaf(C.Timezone, _timezone_blob(item))
    leaf(C.AllDayEvent, "1" if item.all_day else "0")
    _write_body(w, item.body, item.body_html, options, version, p)
    leaf(C.BusyStatus, item.busy_status)
    if item.organizer_name:
        leaf(C.OrganizerName, item.organizer_name)
    if item.organizer_email:
        leaf(C.OrganizerEmail, item.organizer_email)
    if item.dtstamp is not None:
        leaf(C.DtStamp, recurrence.compact_date(item.dtstamp))
    if item.end is not None:
        leaf(C.EndTime, recurrence.compact_date(item.end))
    _write_location(w, item.location, p)
    if item.reminder is not None:
        leaf(C.Reminder, item.reminder)
    leaf(C.Sensitivity, item.sensitivity)
    leaf(C.Subject, item.subject)
    if item.start is not None:
        leaf(C.StartTime, recurrence.compact_date(item.start))
    if item.uid:
        leaf(C.UID, item.uid)
    leaf(C.MeetingStatus, item.meeting_status)
    if item.attendees:
        _write_attendees(w, item.attendees, p)
    write_strings(w, C.Categories, C.Category, item.categories)
    if item.recurrence is not None:
        recurrence.write_recurrence(w, item.recurrence, C, version)
        if item.exceptions:
            with w.tag(C.Exceptions):
                for ex in item.exceptions[:MAX_EXCEPTIONS]:
                    _write_exception(w, ex, version, options, p)
    if p.v14:
        if item.response_requested is not None:
            leaf(C.ResponseRequested, "1" if item.response_requested else "0")
        if item.appointment_reply_time is not None:
            leaf(C.AppointmentReplyTime, recurrence.compact_date(item.appointment_reply_time))
        if item.response_type is not None:
            leaf(C.ResponseType, item.response_type)
        leaf(C.DisallowNewTimeProposal, "1" if item.disallow_new_time_proposal else "0")
    if p.online:
        if item.online_meeting_conf_link:
            leaf(C.OnlineMeetingConfLink, item.online_meeting_conf_link)
        if item.online_meeting_external_link:
            leaf(C.OnlineMeetingExternalLink, item.online_meeting_external_link)
    if p.airsyncbase:
        leaf(AirSyncBase.NativeBodyType, "2" if item.body_html is not None else "1")


def _write_exception(w: Writer, ex: EventException, version: Version, options: dict[str, Any],
                     p: _Profile) -> None:
    """One Exception (MS-ASCAL 2.2.2.21): named by ExceptionStartTime (to 14.1) or
    AirSyncBase:InstanceId (16.x); Deleted, or the fields that differ from the series."""
    leaf = w.leaf
    with w.tag(C.Exception):
        if p.exception_start:
            leaf(C.ExceptionStartTime, recurrence.compact_date(ex.original_start))
        else:
            leaf(AirSyncBase.InstanceId, format_date(ex.original_start))
        if ex.deleted:
            leaf(C.Deleted, "1")
            return
        if ex.all_day is not None:
            leaf(C.AllDayEvent, "1" if ex.all_day else "0")
        if ex.body is not None:
            _write_body(w, ex.body, None, options, version, p)
        if ex.busy_status is not None:
            leaf(C.BusyStatus, ex.busy_status)
        if ex.dtstamp is not None:
            leaf(C.DtStamp, recurrence.compact_date(ex.dtstamp))
        if ex.end is not None:
            leaf(C.EndTime, recurrence.compact_date(ex.end))
        if ex.location is not None:
            _write_location(w, ex.location, p)
        if ex.reminder is not None:
            leaf(C.Reminder, ex.reminder)
        if ex.sensitivity is not None:
            leaf(C.Sensitivity, ex.sensitivity)
        if ex.subject is not None:
            leaf(C.Subject, ex.subject)
        if ex.start is not None:
            leaf(C.StartTime, recurrence.compact_date(ex.start))
        if ex.meeting_status is not None:
            leaf(C.MeetingStatus, ex.meeting_status)
        if ex.attendees is not None and ex.attendees and p.airsyncbase:
            _write_attendees(w, ex.attendees, p)
        if ex.categories:
            write_strings(w, C.Categories, C.Category, ex.categories)
        if p.v14:
            if ex.appointment_reply_time is not None:
                leaf(C.AppointmentReplyTime, recurrence.compact_date(ex.appointment_reply_time))
            if ex.response_type is not None:
                leaf(C.ResponseType, ex.response_type)
        if p.online:
            if ex.online_meeting_conf_link:
                leaf(C.OnlineMeetingConfLink, ex.online_meeting_conf_link)
            if ex.online_meeting_external_link:
                leaf(C.OnlineMeetingExternalLink, ex.online_meeting_external_link)


# -- Parsing a device's Add or Change ---------------------------------------------------------


def _uid(node: Node) -> str:
    return text(node, MAX_UID)


def _location(node: Node) -> str:
    """Calendar:Location text, or the DisplayName of a 16.x AirSyncBase:Location."""
    if node.tag == C.Location or not node.children:
        return text(node)
    found = node.find(AirSyncBase.DisplayName)
    return text(found) if found is not None else ""


def _attendees(node: Node) -> list[Attendee]:
    out: list[Attendee] = []
    for child in node.children:
        if child.tag != C.Attendee:
            continue
        if len(out) >= MAX_ATTENDEES:
            raise bad(f"more than {MAX_ATTENDEES} attendees")
        a = Attendee(email="")
        for f in child.children:
            if f.tag == C.Email:
                a.email = text(f)
            elif f.tag == C.Name:
                a.name = text(f)
            elif f.tag == C.AttendeeStatus:
                a.status = integer(f, 0, 5)
                if a.status not in _ATTENDEE_STATUS:
                    raise bad(f"AttendeeStatus {a.status} is not defined")
            elif f.tag == C.AttendeeType:
                a.type = integer(f, 1, 3)
        if not a.email and not a.name:
            raise bad("an Attendee without Email or Name")
        out.append(a)
    return out


def _meeting_status(node: Node) -> int:
    value = integer(node, 0, 15)
    if value not in _MEETING_STATUS:
        raise bad(f"MeetingStatus {value} is not defined")
    return value


# Elements an event and an exception share: tag -> (attribute, reader).
_COMMON: dict[int, tuple[str, Callable[[Node], Any]]] = {
    C.Subject: ("subject", text),
    C.StartTime: ("start", date),
    C.EndTime: ("end", date),
    C.DtStamp: ("dtstamp", date),
    C.AllDayEvent: ("all_day", boolean),
    C.Location: ("location", _location),
    AirSyncBase.Location: ("location", _location),
    C.BusyStatus: ("busy_status", lambda n: integer(n, 0, 4)),
    C.Sensitivity: ("sensitivity", lambda n: integer(n, 0, 3)),
    C.Reminder: ("reminder", lambda n: integer(n, 0, _MAX_REMINDER)),
    C.MeetingStatus: ("meeting_status", _meeting_status),
    C.Categories: ("categories", lambda n: strings(n, C.Category, MAX_CATEGORY)),
    C.Attendees: ("attendees", _attendees),
    C.ResponseType: ("response_type", lambda n: integer(n, 0, 5)),
    C.AppointmentReplyTime: ("appointment_reply_time", date),
    C.OnlineMeetingConfLink: ("online_meeting_conf_link", text),
    C.OnlineMeetingExternalLink: ("online_meeting_external_link", text),
}
_EVENT: dict[int, tuple[str, Callable[[Node], Any]]] = {
    **_COMMON,
    C.UID: ("uid", _uid),
    C.ClientUid: ("client_uid", _uid),
    C.OrganizerName: ("organizer_name", text),
    C.OrganizerEmail: ("organizer_email", text),
    C.ResponseRequested: ("response_requested", boolean),
    C.DisallowNewTimeProposal: ("disallow_new_time_proposal", boolean),
}
_SERVER_ONLY_16 = frozenset({C.UID, C.OrganizerName, C.OrganizerEmail})


def _in_version(tag: int, version: Version) -> bool:
    info = tags.BY_TAG.get(tag)
    return info is not None and version.text in info.versions


def parse(node: Node, version: Version, *, change: bool = False) -> Calendar:
    """The event a device's ApplicationData describes (Sync Add, or Change with
    ``change=True``, which may leave StartTime out). Elements outside ``version`` are
    ignored; bad values raise ``ProtocolError`` (status 6). The TimeZone blob is matched
    to an IANA zone; an all-day event is widened to whole local days of that zone."""
    item = Calendar()
    v16 = _PROFILES[version.text].location16
    zone_text: str | bytes | None = None
    sent: set[str] = set()
    for child in node.children:
        tag = child.tag
        if not _in_version(tag, version) or (v16 and tag in _SERVER_ONLY_16):
            continue
        sent.update(ATTRIBUTES.get(tag, ()))
        entry = _EVENT.get(tag)
        if entry is not None:
            setattr(item, entry[0], entry[1](child))
        elif tag == C.Timezone:
            zone_text = child.text
        elif tag in (C.Body, AirSyncBase.Body):
            item.body, item.body_html = (text(child, MAX_BODY), None) if tag == C.Body else parse_body(child)
        elif tag == C.Recurrence:
            item.recurrence = recurrence.parse_recurrence(child, C, version)
        elif tag == C.Exceptions:
            item.exceptions = _exceptions(child, version)
        elif tag == AirSyncBase.InstanceId:
            item.instance_id = date(child)
    if zone_text:  # an empty Timezone element: as if absent
        try:
            item.timezone = timezone.from_wire(zone_text)
        except ProtocolError as e:
            raise bad(str(e)) from None
    if item.start is None and not change:
        raise bad("an event without StartTime")
    if item.start is not None and item.end is not None and item.end < item.start:
        raise bad("EndTime is before StartTime")
    if item.all_day:
        item.start, item.end = _whole_days(item.start, item.end, item.timezone)
    item.sent = frozenset(sent)
    return item


# The Calendar fields each top-level element carries (for ``sent`` and ``merge_change``).
ATTRIBUTES: dict[int, tuple[str, ...]] = {
    **{tag: (attr,) for tag, (attr, _reader) in _EVENT.items()},
    C.Timezone: ("timezone",),
    C.Body: ("body", "body_html"),
    AirSyncBase.Body: ("body", "body_html"),
    C.Recurrence: ("recurrence",),
    C.Exceptions: ("exceptions",),
}


def merge_change(old: Calendar, new: Calendar, ghosted: Collection[int] | None = None, *,
                 keep_body: bool = False) -> Calendar:
    """The event after a device's Change: ``new`` (from ``parse``), with the fields of
    ``old`` kept where ``new`` lacks the element and that element is ghosted. ``ghosted``
    is the set of Calendar/AirSyncBase tags ghosted for this collection (those not named
    in the Sync Supported element, MS-ASCMD 2.2.3.179); None means every element, the
    16.x rule (MS-ASCAL 3.1.5.3). ``keep_body``: the device echoed a truncated body, the
    stored one stays. The id, UID and organizer are always the server's. ``ProtocolError``
    (status 6) when the result ends before it starts."""
    merged = pim.merge(old, new, ATTRIBUTES, ghosted, keep_body)
    if new.sent is not None and not ({"organizer_name", "organizer_email"} & new.sent):
        merged.organizer_name, merged.organizer_email = old.organizer_name, old.organizer_email
    if merged.start is not None and merged.end is not None and merged.end < merged.start:
        raise bad("EndTime is before StartTime")  # a new end before the kept start, or the reverse
    return merged


def occurrence(series: Calendar, instance: datetime) -> Calendar:
    """One occurrence of a recurring event as it stands: the series' values with those of
    its exception (if it has one) over them, at its own start and end. What a 16.x Change
    with InstanceId merges into (``merge_change``)."""
    occ = dataclasses.replace(series, recurrence=None, exceptions=[], start=instance)
    if series.start is not None and series.end is not None:
        occ.end = instance + (series.end - series.start)
    for ex in series.exceptions:
        if ex.original_start == instance and not ex.deleted:
            for f in dataclasses.fields(ex):
                value = getattr(ex, f.name)
                if f.name not in ("original_start", "deleted") and value is not None:
                    setattr(occ, f.name, value)
            if ex.body is not None:
                occ.body_html = None
    return occ


def _whole_days(start: datetime | None, end: datetime | None, zone: str) -> tuple[datetime | None, datetime | None]:
    """Start at the local midnight on or before ``start``, end at the one on or after
    ``end`` (and a day after the start at least), as Exchange stores all-day events."""
    if start is None:
        return start, end
    tz = ZoneInfo(zone)
    local = start.astimezone(tz)
    first = datetime.combine(local.date(), time(), tzinfo=tz)
    if end is None:
        last = first + timedelta(days=1)
    else:
        local_end = end.astimezone(tz)
        last = datetime.combine(local_end.date(), time(), tzinfo=tz)
        if last < local_end.replace(tzinfo=tz) or last <= first:
            last = datetime.combine(local_end.date() + timedelta(days=1), time(), tzinfo=tz)
    return first.astimezone(UTC), last.astimezone(UTC)


def _exceptions(node: Node, version: Version) -> list[EventException]:
    out: list[EventException] = []
    for child in node.children:
        if child.tag != C.Exception:
            continue
        if len(out) >= MAX_EXCEPTIONS:
            raise bad(f"more than {MAX_EXCEPTIONS} exceptions")
        out.append(_exception(child, version))
    return out


def _exception(node: Node, version: Version) -> EventException:
    fields: dict[str, Any] = {}
    original: datetime | None = None
    for child in node.children:
        tag = child.tag
        if not _in_version(tag, version):
            continue
        entry = _COMMON.get(tag)
        if entry is not None:
            fields[entry[0]] = entry[1](child)
        elif tag in (C.ExceptionStartTime, AirSyncBase.InstanceId):
            original = date(child)
        elif tag == C.Deleted:
            fields["deleted"] = boolean(child)
        elif tag in (C.Body, AirSyncBase.Body):
            fields["body"] = text(child, MAX_BODY) if tag == C.Body else parse_body(child)[0]
    if original is None:
        raise bad("an Exception without ExceptionStartTime or InstanceId")
    return EventException(original_start=original, **fields)
