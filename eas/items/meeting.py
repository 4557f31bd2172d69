"""Meetings in mail (iMIP, RFC 6047): what a device sees of an invitation and what the
server sends back for it.

It owns:

- ``global_obj_id``/``uid_from_global_obj_id``: the Outlook form of an iCalendar UID
  (MS-ASEMAIL 2.2.2.37, 3.1.4.7; MS-OXCICAL 2.1.3.1.1.20.26), both ways;
- ``calendar_part``/``message_class``: at delivery, the text/calendar part of a message
  and the message class its METHOD (and PARTSTAT) give (IPM.Schedule.Meeting.*);
- ``read_invitation``: the event an iCalendar describes, as a ``Calendar``;
- ``message_type``/``with_message_type``: MeetingMessageType, as delivery decides it
  (``eas.store.scheduling``) and records it in the stored calendar part;
- ``write_meeting_request``: Email:MeetingRequest (MS-ASEMAIL 2.2.2.48) for one version;
- ``reply_mime``: the iMIP REPLY (or COUNTER, for a new time proposal) a 16.x
  MeetingResponse with SendResponse has the server send to the organizer;
- ``screen_invitation``: the SendMail check against invitations a device sends that it
  should not (see the function).

The ``icalendar`` package is imported on first use: delivery only looks at METHOD.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.message import EmailMessage, Message
from email.policy import SMTP
from email.utils import format_datetime, formataddr, getaddresses, make_msgid
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from eas import tags
from eas.items import timezone
from eas.items.calendar import Calendar, Recurrence
from eas.items.email import format_date
from eas.protocol.versions import Version
from eas.tags import AirSyncBase, Email2
from eas.tags import Calendar as C
from eas.tags import Email as E

if TYPE_CHECKING:
    from eas.wbxml import Writer

# -- GlobalObjId ----------------------------------------------------------------------------

# PidLidGlobalObjectId's class id (MS-OXOCAL 2.2.1.27), the first 16 bytes of every one.
CLASS_ID = bytes.fromhex("040000008200E00074C5B7101A82E008")
_VCAL = b"vCal-Uid"
_VCAL_VERSION = b"\x01\x00\x00\x00"


def global_obj_id(uid: str) -> bytes:
    """The GlobalObjId of an iCalendar UID: an Outlook UID (the hex of a GlobalObjId) is
    that id itself; any other UID is wrapped as a vCal-Uid, NUL-terminated."""
    if uid.upper().startswith(CLASS_ID.hex().upper()) and len(uid) % 2 == 0:
        try:
            return bytes.fromhex(uid)
        except ValueError:
            pass
    data = _VCAL + _VCAL_VERSION + uid.encode("utf-8") + b"\x00"
    return CLASS_ID + bytes(4) + bytes(8) + bytes(8) + len(data).to_bytes(4, "little") + data


def uid_from_global_obj_id(value: bytes) -> str:
    """The UID a GlobalObjId stands for (MS-ASEMAIL 3.1.4.7): the text of a vCal-Uid, else
    the upper-case hex of the id with its instance date (bytes 17-20) zeroed. ValueError
    when it is no GlobalObjId."""
    if len(value) < 40 or value[:16] != CLASS_ID:
        raise ValueError("not a GlobalObjId")
    size = int.from_bytes(value[36:40], "little")
    data = value[40:40 + size]
    if data[:8] == _VCAL and len(data) >= 13:
        return data[12:].rstrip(b"\x00").decode("utf-8", "replace")
    return (value[:16] + bytes(4) + value[20:]).hex().upper()


# -- delivery -------------------------------------------------------------------------------

REQUEST = "IPM.Schedule.Meeting.Request"
CANCELED = "IPM.Schedule.Meeting.Canceled"
RESPONSE_CLASSES = {"ACCEPTED": "IPM.Schedule.Meeting.Resp.Pos", "TENTATIVE": "IPM.Schedule.Meeting.Resp.Tent",
                    "DECLINED": "IPM.Schedule.Meeting.Resp.Neg"}
_METHOD = re.compile(r"^METHOD[;:]?(?:[^:\r\n]*:)?\s*([A-Za-z-]+)", re.MULTILINE | re.IGNORECASE)
_PARTSTAT = re.compile(r"PARTSTAT=\"?([A-Za-z-]+)", re.IGNORECASE)


def calendar_part(msg: Message, max_depth: int = 32) -> Message | None:
    """The first text/calendar part of a message (depth-first, at most ``max_depth`` deep)."""
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        payload = part.get_payload()
        if part.get_content_maintype() == "multipart" and isinstance(payload, list):
            if depth < max_depth:
                stack.extend((p, depth + 1) for p in reversed(payload) if isinstance(p, Message))
            continue
        if part.get_content_type() == "text/calendar":
            return part
    return None


def method(ical: str) -> str:
    """The METHOD of an iCalendar text, upper-case ("" when none)."""
    found = _METHOD.search(ical)
    return found.group(1).upper() if found else ""


def message_class(ical: str) -> str | None:
    """The message class of a mail carrying this iCalendar (MS-ASEMAIL 2.2.2.49), or None
    when it is no meeting message (PUBLISH, no METHOD)."""
    kind = method(ical)
    if kind == "REQUEST":
        return REQUEST
    if kind == "CANCEL":
        return CANCELED
    if kind == "COUNTER":
        return RESPONSE_CLASSES["TENTATIVE"]
    if kind == "REPLY":
        found = _PARTSTAT.search(ical)
        return RESPONSE_CLASSES.get(found.group(1).upper() if found else "", "IPM.Schedule.Meeting.Resp.Tent")
    return None


# -- reading an invitation ------------------------------------------------------------------

_RSVP = re.compile(r";RSVP=\"?TRUE", re.IGNORECASE)
_INTENDED = re.compile(r"^X-MICROSOFT-CDO-INTENDEDSTATUS[^:\r\n]*:([A-Z]+)", re.IGNORECASE | re.MULTILINE)
_BUSY = {"FREE": 0, "TENTATIVE": 1, "BUSY": 2, "OOF": 3, "WORKINGELSEWHERE": 4}


def read_invitation(ical: str, owner: str = "") -> Calendar | None:
    """The event of a meeting message (``eas.items.ical``, with its overrides as
    exceptions); None when the text is no iCalendar with a VEVENT. A message about one
    occurrence only (VEVENTs with RECURRENCE-ID and no series) gets ``instance_id`` set to
    that occurrence. ResponseRequested is the RSVP of the attendees (MS-OXCICAL).
    ``message_type`` is the MeetingMessageType of a request (``message_type``)."""
    import icalendar

    from eas.items.ical import calendar_from_ical

    try:
        vcal = icalendar.Calendar.from_ical(ical)
        events = vcal.walk("VEVENT")
        if not events:
            return None
        event = calendar_from_ical(vcal, owner=owner)
        if all("RECURRENCE-ID" in e for e in events):
            event.instance_id = _when(events[0].decoded("RECURRENCE-ID"), event.timezone)
    except Exception:  # noqa: BLE001 - mail from the wild: no invitation, not an error
        return None
    sequence = str(events[0].get("SEQUENCE", "0")).strip()
    event.message_type = message_type(ical, int(sequence) if sequence.isascii() and sequence.isdigit() else 0)
    if event.response_requested is None:
        event.response_requested = bool(_RSVP.search(ical))
    intended = _INTENDED.search(ical)  # Outlook: BUSYSTATUS is TENTATIVE until answered
    if intended and intended.group(1).upper() in _BUSY:
        event.busy_status = _BUSY[intended.group(1).upper()]
    if method(ical) == "CANCEL" and event.meeting_status in (1, 3):
        event.meeting_status += 4  # cancelled (MS-ASCAL 2.2.2.29)
    return event


# MeetingMessageType (MS-ASEMAIL 2.2.2.47) of a request; delegation (5, 6) is not used.
NEW_REQUEST, FULL_UPDATE, INFORMATIONAL_UPDATE, OUTDATED = 1, 2, 3, 4
# Where delivery records the type it decided (``with_message_type``), in the stored copy
# of the calendar part: only delivery can compare a request with the calendar.
MESSAGE_TYPE = "X-EAS-MEETINGMESSAGETYPE"
_MESSAGE_TYPE = re.compile(rf"^{MESSAGE_TYPE}[;:][^\r\n]*(?:\r?\n)?", re.MULTILINE | re.IGNORECASE)
_BEGIN = re.compile(r"^BEGIN:VCALENDAR[ \t]*\r?\n", re.MULTILINE | re.IGNORECASE)


def message_type(ical: str, sequence: int = 0) -> int:
    """The MeetingMessageType of a meeting mail: what delivery recorded, else by SEQUENCE
    (a first request has 0; an update of unknown kind counts as a full one, which asks
    the user to answer again); 0 for anything but a request."""
    if method(ical) != "REQUEST":
        return 0
    found = re.search(rf"^{MESSAGE_TYPE}:\s*([1-4])\s*$", ical, re.MULTILINE | re.IGNORECASE)
    if found:
        return int(found.group(1))
    return NEW_REQUEST if sequence <= 0 else FULL_UPDATE


def with_message_type(ical: str, kind: int | None) -> str:
    """The calendar part with the MeetingMessageType delivery decided (None: as SEQUENCE
    says); a value the sender put there is dropped."""
    ical = _MESSAGE_TYPE.sub("", ical)
    if kind is None:
        return ical
    return _BEGIN.sub(lambda m: f"{m.group(0)}{MESSAGE_TYPE}:{kind}\r\n", ical, count=1)


def _when(value: date | datetime, zone: str) -> datetime:
    """A RECURRENCE-ID as aware UTC; a date is midnight in ``zone``."""
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=ZoneInfo(zone)).astimezone(UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- Email:MeetingRequest -------------------------------------------------------------------


class _Profile:
    """What one protocol version has of MeetingRequest, from the tag table."""

    __slots__ = ("airsyncbase_location", "global_obj_id", "message_type", "new_time", "recurrence_extra")

    def __init__(self, version: str) -> None:
        def has(tag: int) -> bool:
            return version in tags.BY_TAG[tag].versions

        self.global_obj_id = has(E.GlobalObjId)  # 16.x has calendar:UID instead
        self.airsyncbase_location = has(AirSyncBase.Location)
        self.new_time = has(E.DisallowNewTimeProposal)
        self.message_type = has(Email2.MeetingMessageType)
        self.recurrence_extra = has(Email2.FirstDayOfWeek)


_PROFILES: dict[str, _Profile] = {}


def _profile(version: Version) -> _Profile:
    found = _PROFILES.get(version.text)
    if found is None:
        found = _PROFILES[version.text] = _Profile(version.text)
    return found


def timezone_blob(zone: str, year: int) -> str:
    """The base64 TimeZone of a zone in ``year`` (MS-ASDTYPE 2.7.4); UTC for a zone
    the codec does not know."""
    try:
        return timezone.to_wire(zone, year)
    except ValueError:
        return timezone.to_wire("UTC", year)


def write_meeting_request(w: Writer, event: Calendar, message_cls: str, version: Version) -> None:
    """Email:MeetingRequest (MS-ASEMAIL 2.2.2.48), children in the order of the schema;
    only what ``version`` has (GlobalObjId to 14.1, calendar:UID and airsyncbase:Location
    from 16.0, DisallowNewTimeProposal from 14.0, MeetingMessageType from 14.1: the
    event's ``message_type`` for a request, 0 for a cancellation)."""
    p = _profile(version)
    leaf = w.leaf
    start = event.instance_id if event.instance_id is not None and event.start is None else event.start
    with w.tag(E.MeetingRequest):
        leaf(E.AllDayEvent, "1" if event.all_day else "0")
        if start is not None:
            leaf(E.StartTime, format_date(start))
        leaf(E.DtStamp, format_date(event.dtstamp or start or datetime.now(UTC)))
        if event.end is not None:
            leaf(E.EndTime, format_date(event.end))
        instance_type = 3 if event.instance_id is not None else 1 if event.recurrence is not None else 0
        leaf(E.InstanceType, instance_type)
        if event.location:
            if p.airsyncbase_location:
                with w.tag(AirSyncBase.Location):
                    leaf(AirSyncBase.DisplayName, event.location)
            else:
                leaf(E.Location, event.location)
        if event.organizer_email:
            leaf(E.Organizer, formataddr((event.organizer_name, event.organizer_email)))
        if event.instance_id is not None:
            leaf(E.RecurrenceId, format_date(event.instance_id))
        if event.reminder is not None:
            leaf(E.Reminder, max(0, event.reminder) * 60)  # seconds here, minutes in a Calendar
        leaf(E.ResponseRequested, "0" if event.response_requested is False else "1")
        if event.recurrence is not None and event.instance_id is None:
            _write_recurrence(w, event.recurrence, p)
        leaf(E.Sensitivity, event.sensitivity if 0 <= event.sensitivity <= 3 else 0)
        leaf(E.BusyStatus, event.busy_status if 0 <= event.busy_status <= 4 else 2)
        leaf(E.TimeZone, timezone_blob(event.timezone, (start or datetime.now(UTC)).year))
        if p.global_obj_id:
            leaf(E.GlobalObjId, base64.b64encode(global_obj_id(event.uid)).decode())
        else:
            leaf(C.UID, event.uid)
        if p.new_time:
            leaf(E.DisallowNewTimeProposal, "1" if event.disallow_new_time_proposal else "0")
        if p.message_type:
            kind = event.message_type if event.message_type is not None else NEW_REQUEST
            leaf(Email2.MeetingMessageType, kind if message_cls == REQUEST else 0)


def _write_recurrence(w: Writer, rec: Recurrence, p: _Profile) -> None:
    """Email:Recurrences (MS-ASEMAIL 2.2.2.62): one Recurrence, Until a UTC dateTime."""
    with w.tag(E.Recurrences), w.tag(E.Recurrence):
        w.leaf(E.Type, rec.type)
        w.leaf(E.Interval, max(1, rec.interval))
        if rec.until is not None:
            w.leaf(E.Until, format_date(rec.until))
        if rec.occurrences is not None:
            w.leaf(E.Occurrences, rec.occurrences)
        if rec.week_of_month is not None:
            w.leaf(E.WeekOfMonth, rec.week_of_month)
        if rec.day_of_month is not None:
            w.leaf(E.DayOfMonth, rec.day_of_month)
        if rec.day_of_week is not None:
            w.leaf(E.DayOfWeek, rec.day_of_week)
        if rec.month_of_year is not None:
            w.leaf(E.MonthOfYear, rec.month_of_year)
        if p.new_time:  # CalendarType and IsLeapMonth exist from 14.0, as DisallowNewTimeProposal
            w.leaf(Email2.CalendarType, rec.calendar_type if rec.calendar_type is not None else 0)
            w.leaf(Email2.IsLeapMonth, "1" if rec.is_leap_month else "0")
        if p.recurrence_extra and rec.first_day_of_week is not None:
            w.leaf(Email2.FirstDayOfWeek, rec.first_day_of_week)


# -- the server's reply (16.x SendResponse) -------------------------------------------------

ACCEPT, TENTATIVE, DECLINE = 1, 2, 3  # MeetingResponse UserResponse
_REPLY_PARTSTAT = {ACCEPT: "ACCEPTED", TENTATIVE: "TENTATIVE", DECLINE: "DECLINED"}
_REPLY_WORD = {ACCEPT: "Accepted", TENTATIVE: "Tentative", DECLINE: "Declined"}


@dataclass(slots=True)
class Reply:
    """What the attendee answers: ``proposed`` (start, end) makes it a COUNTER."""

    response: int
    attendee_email: str
    attendee_name: str = ""
    text: str = ""
    html: bool = False
    importance: int | None = None
    proposed: tuple[datetime, datetime] | None = None


def reply_mime(event: Calendar, reply: Reply, now: datetime | None = None) -> bytes:
    """The iMIP message to the organizer (RFC 6047, RFC 5546 3.2.3/3.2.7): METHOD:REPLY
    with the attendee's PARTSTAT, or METHOD:COUNTER with the proposed DTSTART/DTEND (as
    Outlook sends a new time proposal, with X-MS-OLK-ORIGINALSTART/END naming the times it
    replaces). One occurrence (``event.instance_id``) is answered with its RECURRENCE-ID."""
    import icalendar

    now = now or datetime.now(UTC)
    counter = reply.proposed is not None
    cal = icalendar.Calendar()
    cal.add("PRODID", "-//eas//ActiveSync MeetingResponse//EN")
    cal.add("VERSION", "2.0")
    cal.add("METHOD", "COUNTER" if counter else "REPLY")
    vevent = icalendar.Event()
    vevent.add("UID", event.uid)
    vevent.add("DTSTAMP", now)
    if event.instance_id is not None:
        vevent.add("RECURRENCE-ID", event.instance_id)
    if event.subject:
        vevent.add("SUMMARY", event.subject)
    organizer = icalendar.vCalAddress(f"mailto:{event.organizer_email}")
    if event.organizer_name:
        organizer.params["CN"] = event.organizer_name
    vevent.add("ORGANIZER", organizer)
    attendee = icalendar.vCalAddress(f"mailto:{reply.attendee_email}")
    if reply.attendee_name:
        attendee.params["CN"] = reply.attendee_name
    attendee.params["PARTSTAT"] = _REPLY_PARTSTAT[reply.response]
    vevent.add("ATTENDEE", attendee)
    if counter:
        assert reply.proposed is not None
        vevent.add("DTSTART", reply.proposed[0])
        vevent.add("DTEND", reply.proposed[1])
        if event.start is not None and event.end is not None:
            # Unknown to icalendar: typed here, or they would be written as Python's str().
            vevent.add("X-MS-OLK-ORIGINALSTART", icalendar.vDDDTypes(event.start))
            vevent.add("X-MS-OLK-ORIGINALEND", icalendar.vDDDTypes(event.end))
    elif event.start is not None:
        vevent.add("DTSTART", event.instance_id or event.start)
    if reply.text and not reply.html:
        vevent.add("COMMENT", reply.text)
    cal.add_component(vevent)
    ical = cal.to_ical().decode("utf-8")

    word = "New Time Proposed" if counter else _REPLY_WORD[reply.response]
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr((reply.attendee_name, reply.attendee_email))
    msg["To"] = formataddr((event.organizer_name, event.organizer_email))
    msg["Subject"] = f"{word}: {event.subject}".strip()
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=reply.attendee_email.rpartition("@")[2] or None)
    msg["Content-Class"] = "urn:content-classes:calendarmessage"
    if reply.importance in (0, 2):
        msg["Importance"] = "low" if reply.importance == 0 else "high"
    msg.set_content(reply.text, subtype="html" if reply.html else "plain")
    msg.add_alternative(ical, subtype="calendar", params={"method": "COUNTER" if counter else "REPLY"})
    return msg.as_bytes()


# -- invitations a device sends (SendMail) --------------------------------------------------


def screen_invitation(msg: Message, user: str, user_addresses: set[str] | None = None) -> list[str] | None:
    """Which recipients an invitation or cancellation a device submits may reach, or None
    when the message is no such thing (it goes out as it is).

    iOS sends meeting mail through SendMail that no server should pass on as it is: an
    attendee's device re-sends the organizer's invitation (the iOS 10.3 "Time to Leave"
    SmartForward storm; iOS 6 taking over a meeting and cancelling it for everybody),
    and an organizer's device lists the organizer among the recipients of her own
    invitation, which lands in her Inbox as a second copy of her meeting. So:

    - a REQUEST goes to nobody already invited (the organizer, the listed attendees)
      unless the user is the organizer; the user never receives her own invitation;
    - a CANCEL from someone who is not the organizer goes to nobody.

    An empty list means: answer success and send nothing (the device would resend a
    failed mail forever)."""
    part = calendar_part(msg)
    if part is None:
        return None
    raw = part.get_payload(decode=True)
    try:
        ical = raw.decode(part.get_content_charset() or "utf-8", "replace") if isinstance(raw, bytes) else ""
    except LookupError:  # an unknown charset
        ical = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
    kind = method(ical)
    if kind not in ("REQUEST", "CANCEL"):
        return None
    event = read_invitation(ical)
    if event is None:
        return None
    mine = {a.lower() for a in (user_addresses or set())} | {user.lower()}
    organizer = event.organizer_email.lower()
    is_organizer = not organizer or organizer in mine
    recipients: list[str] = []
    for name in ("to", "cc", "bcc"):
        recipients += [a for _, a in getaddresses([str(v) for v in msg.get_all(name, [])]) if "@" in a]
    if not is_organizer and kind == "CANCEL":
        return []
    invited = {a.email.lower() for a in event.attendees} | {organizer}
    keep: list[str] = []
    for address in dict.fromkeys(recipients):
        low = address.lower()
        if low in mine or (not is_organizer and low in invited):
            continue
        keep.append(address)
    return keep



def keep_recipients(msg: EmailMessage, keep: list[str]) -> EmailMessage:
    """``msg`` with only the ``keep`` addresses left in To, Cc and Bcc (headers left
    empty are removed)."""
    wanted = {a.lower() for a in keep}
    for name in ("To", "Cc", "Bcc"):
        values = [str(v) for v in msg.get_all(name, [])]
        if not values:
            continue
        pairs = [(n, a) for n, a in getaddresses(values) if a.lower() in wanted]
        del msg[name]
        if pairs:
            msg[name] = ", ".join(formataddr(p) for p in pairs)
    return msg
