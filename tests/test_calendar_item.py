"""eas.items.calendar and eas.items.recurrence: an event's ApplicationData per protocol
version through the real codec (write -> encode -> decode -> parse), recurrence patterns
against dateutil's RRULE expansion, all-day events in a DST zone, exceptions, and bad
input from devices."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from eas import tags
from eas.items import calendar as cal
from eas.items import recurrence as recur
from eas.items import timezone as tz
from eas.items.calendar import Attendee, Calendar, EventException, Recurrence
from eas.items.email import parse_body_options
from eas.protocol.errors import ProtocolError
from eas.protocol.versions import Version
from eas.tags import AirSync, AirSyncBase
from eas.tags import Calendar as C
from eas.testing.client import elements_outside
from eas.wbxml import Node, Writer, decode, from_xml

VERSIONS = ("2.5", "12.0", "12.1", "14.0", "14.1", "16.0", "16.1")
BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)  # type: ignore[misc]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def xml(text: str) -> Node:
    return decode(from_xml(text))


def render(item: Calendar, version: str, options: dict[str, Any] | None = None) -> Node:
    """The ApplicationData written for ``item``, encoded, decoded, checked to be in version."""
    v = Version(version)
    w = Writer()
    with w.tag(AirSync.ApplicationData):
        cal.write(w, item, v, options if options is not None else parse_body_options(None, v))
    node = decode(w.getvalue())
    assert elements_outside(node, version) == []
    return node


def round_trip(item: Calendar, version: str) -> Calendar:
    return cal.parse(render(item, version), Version(version))


def has(tag: int, version: str) -> bool:
    return version in tags.BY_TAG[tag].versions


def expected(item: Calendar, version: str) -> Calendar:
    """What of ``item`` a device of ``version`` can get and send back: the fields of later
    versions drop out; a 16.x device's UID and organizer are the server's, not read back;
    ClientUid is only ever sent by devices."""
    e = dataclasses.replace(item, id="", client_uid="")
    v14, v141 = has(C.ResponseType, version), has(C.OnlineMeetingConfLink, version)
    details = has(C.AttendeeStatus, version)

    def people(attendees: list[Attendee]) -> list[Attendee]:
        return [Attendee(a.email, a.name or a.email, a.status if details else None, a.type if details else None)
                for a in attendees]

    e.attendees = people(item.attendees)
    if not v14:
        e.response_requested = e.response_type = e.appointment_reply_time = None
        e.disallow_new_time_proposal = False
    if not v141:
        e.online_meeting_conf_link = e.online_meeting_external_link = ""
    if version.startswith("16"):
        e.uid = e.organizer_name = e.organizer_email = ""
    if item.recurrence is None:
        e.exceptions = []
    else:
        r = dataclasses.replace(item.recurrence)
        if not has(C.CalendarType, version):
            r.calendar_type, r.is_leap_month = None, False
        if not has(C.FirstDayOfWeek, version):
            r.first_day_of_week = None
        e.recurrence = r
        exceptions = []
        for ex in item.exceptions:
            x = dataclasses.replace(ex)
            if ex.deleted:
                x = EventException(original_start=ex.original_start, deleted=True)
            else:
                if not v14:
                    x.response_type = x.appointment_reply_time = None
                if not v141:
                    x.online_meeting_conf_link = x.online_meeting_external_link = None
                if ex.attendees is not None:
                    x.attendees = people(ex.attendees) if has(AirSyncBase.Body, version) else None
            exceptions.append(x)
        e.exceptions = exceptions
    return e


def full_event() -> Calendar:
    """An event with every field set."""
    return Calendar(
        id="9", uid="040000008200E00074C5B7101A82E008-1", subject="Planning", start=berlin(2026, 3, 2, 9),
        end=berlin(2026, 3, 2, 10, 30), timezone="Europe/Berlin", location="Room 1", body="Agenda\nline 2",
        organizer_name="Olga", organizer_email="olga@example.com", dtstamp=utc(2026, 1, 15, 8, 0, 5),
        busy_status=1, sensitivity=2, reminder=15, meeting_status=1, categories=["Work", "Q1"],
        attendees=[Attendee("ann@example.com", "Ann", 3, 1), Attendee("bob@example.com", "", 5, 2),
                   Attendee("room@example.com", "Room", 0, 3)],
        recurrence=Recurrence(type=1, interval=2, day_of_week=2 | 8, until=berlin(2026, 6, 30, 9),
                              calendar_type=1, first_day_of_week=1),
        exceptions=[
            EventException(original_start=berlin(2026, 3, 4, 9), deleted=True),
            EventException(original_start=berlin(2026, 3, 16, 9), subject="Planning (moved)",
                           start=berlin(2026, 3, 17, 14), end=berlin(2026, 3, 17, 15), all_day=False,
                           location="Room 2", body="moved", busy_status=2, sensitivity=0, reminder=5,
                           meeting_status=1, categories=["Moved"], attendees=[Attendee("ann@example.com", "Ann", 4, 1)],
                           dtstamp=utc(2026, 3, 1), response_type=1, appointment_reply_time=utc(2026, 3, 2),
                           online_meeting_conf_link="https://meet.example.com/x",
                           online_meeting_external_link="https://meet.example.com/x?ext"),
        ],
        response_requested=True, response_type=1, appointment_reply_time=utc(2026, 2, 1, 12),
        disallow_new_time_proposal=True, online_meeting_conf_link="https://meet.example.com/p",
        online_meeting_external_link="https://meet.example.com/p?ext", client_uid="client-1",
    )


# -- Every field, every version --------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_every_field_round_trips(version: str) -> None:
    item = full_event()
    assert round_trip(item, version) == expected(item, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_elements_per_version(version: str) -> None:
    node = render(full_event(), version)
    names = {tags.name(n.tag) for n in _walk(node)}
    assert "Calendar:Timezone" in names and "Calendar:StartTime" in names and "Calendar:UID" in names
    assert ("Calendar:Body" in names) == (version == "2.5")
    assert ("AirSyncBase:Body" in names) == (version != "2.5")
    assert ("Calendar:AttendeeStatus" in names) == (version != "2.5")
    assert ("Calendar:ResponseRequested" in names) == (version >= "14.0" and version != "2.5")
    assert ("Calendar:OnlineMeetingConfLink" in names) == (version in ("14.1", "16.0", "16.1"))
    assert ("Calendar:FirstDayOfWeek" in names) == (version in ("14.1", "16.0", "16.1"))
    v16 = version.startswith("16")
    assert ("AirSyncBase:Location" in names) == v16 and ("Calendar:Location" in names) == (not v16)
    assert ("AirSyncBase:InstanceId" in names) == v16 and ("Calendar:ExceptionStartTime" in names) == (not v16)
    assert "Calendar:ClientUid" not in names  # MS-ASCAL 2.2.2.13: requests only
    # Dates in the compact form, the blob base64 of 172 bytes.
    assert node.findtext(C.StartTime) == "20260302T080000Z"
    assert len(base64.b64decode(str(node.findtext(C.Timezone)))) == 172


def _walk(node: Node) -> list[Node]:
    out = [node]
    for child in node.children:
        out.extend(_walk(child))
    return out


def test_timezone_blob_has_the_rules_of_the_start_year() -> None:
    node = render(Calendar(subject="x", start=utc(2031, 5, 1, 8), timezone="America/New_York"), "14.1")
    assert base64.b64decode(str(node.findtext(C.Timezone))) == tz.to_blob("America/New_York", 2031)


def test_unknown_zone_is_written_as_utc() -> None:
    node = render(Calendar(subject="x", start=utc(2026, 5, 1, 8), timezone="Nowhere/Atlantis"), "14.1")
    assert cal.parse(node, Version("14.1")).timezone == "UTC"


@pytest.mark.parametrize("version", ["12.1", "16.1"])
def test_html_body_under_body_preference(version: str) -> None:
    v = Version(version)
    opts = parse_body_options(xml(
        "<Options xmlns='AirSync:' xmlns:B='AirSyncBase:'><B:BodyPreference><B:Type>2</B:Type>"
        "</B:BodyPreference></Options>"), v)
    item = Calendar(subject="x", start=utc(2026, 5, 1, 8), body="Hi there", body_html="<p>Hi <b>there</b></p>")
    node = render(item, version, opts)
    assert node.findtext(AirSyncBase.Body, AirSyncBase.Type) == "2"
    assert node.findtext(AirSyncBase.NativeBodyType) == "2"
    back = cal.parse(node, v)
    assert back.body_html == "<p>Hi <b>there</b></p>" and back.body == "Hi there"


def test_body_truncation() -> None:
    item = Calendar(subject="x", start=utc(2026, 5, 1, 8), body="a" * 600)
    v25 = Version("2.5")
    opts = parse_body_options(xml("<Options xmlns='AirSync:'><Truncation>1</Truncation></Options>"), v25)
    node = render(item, "2.5", opts)
    assert node.findtext(C.Body) == "a" * 512 and node.findtext(C.BodyTruncated) == "1"
    v = Version("14.0")
    opts = parse_body_options(xml(
        "<Options xmlns='AirSync:' xmlns:B='AirSyncBase:'><B:BodyPreference><B:Type>1</B:Type>"
        "<B:TruncationSize>100</B:TruncationSize></B:BodyPreference></Options>"), v)
    node = render(item, "14.0", opts)
    assert node.findtext(AirSyncBase.Body, AirSyncBase.Truncated) == "1"
    assert node.findtext(AirSyncBase.Body, AirSyncBase.EstimatedDataSize) == "600"
    assert node.findtext(AirSyncBase.Body, AirSyncBase.Data) == "a" * 100


# -- Devices' requests -----------------------------------------------------------------------

ADD_16 = """<ApplicationData xmlns="AirSync:" xmlns:calendar="Calendar:" xmlns:airsyncbase="AirSyncBase:">
  <calendar:Timezone>{tz}</calendar:Timezone>
  <calendar:AllDayEvent>0</calendar:AllDayEvent>
  <calendar:StartTime>20261202T090000Z</calendar:StartTime>
  <calendar:EndTime>20261202T100000Z</calendar:EndTime>
  <calendar:Subject>Dentist</calendar:Subject>
  <calendar:UID>device-made-uid</calendar:UID>
  <calendar:OrganizerEmail>someone@else.example</calendar:OrganizerEmail>
  <calendar:ClientUid>abc-123</calendar:ClientUid>
  <airsyncbase:Location><airsyncbase:DisplayName>Main St 1</airsyncbase:DisplayName>
    <airsyncbase:City>Berlin</airsyncbase:City></airsyncbase:Location>
  <airsyncbase:Body><airsyncbase:Type>1</airsyncbase:Type><airsyncbase:Data>bring card</airsyncbase:Data></airsyncbase:Body>
</ApplicationData>"""


def test_16_add_keeps_client_uid_and_ignores_uid_and_organizer() -> None:
    node = xml(ADD_16.format(tz=tz.to_wire("Europe/Berlin")))
    item = cal.parse(node, Version("16.1"))
    assert item.client_uid == "abc-123" and item.uid == "" and item.organizer_email == ""
    assert item.location == "Main St 1" and item.body == "bring card" and item.timezone == "Europe/Berlin"
    assert item.start == utc(2026, 12, 2, 9) and item.end == utc(2026, 12, 2, 10)
    # The same under 14.1: the 16.x elements are not read, UID and organizer are.
    item = cal.parse(node, Version("14.1"))
    assert item.uid == "device-made-uid" and item.organizer_email == "someone@else.example"
    assert item.client_uid == "" and item.location == ""


def test_16_occurrence_change_with_instance_id() -> None:
    node = xml("""<ApplicationData xmlns="AirSync:" xmlns:calendar="Calendar:" xmlns:airsyncbase="AirSyncBase:">
      <airsyncbase:InstanceId>2026-12-09T09:00:00.000Z</airsyncbase:InstanceId>
      <calendar:Subject>Dentist (later)</calendar:Subject>
    </ApplicationData>""")
    item = cal.parse(node, Version("16.0"), change=True)
    assert item.instance_id == utc(2026, 12, 9, 9) and item.subject == "Dentist (later)" and item.start is None
    with pytest.raises(ProtocolError):  # an Add needs StartTime
        cal.parse(node, Version("16.0"))


def test_real_device_add_with_exchange_blob() -> None:
    """An Add as Exchange-era devices send it: the Windows Pacific blob, a weekly series
    with a deleted and a changed occurrence (12.1)."""
    pacific = ("4AEAAFAAYQBjAGkAZgBpAGMAIABTAHQAYQBuAGQAYQByAGQAIABUAGkAbQBlAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAsAAAAB"
               "AAIAAAAAAAAAAAAAAFAAYQBjAGkAZgBpAGMAIABEAGEAeQBsAGkAZwBoAHQAIABUAGkAbQBlAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
               "AAAAAAMAAAACAAIAAAAAAAAAxP///w==")
    node = xml(f"""<ApplicationData xmlns="AirSync:" xmlns:calendar="Calendar:">
      <calendar:Timezone>{pacific}</calendar:Timezone>
      <calendar:StartTime>20261103T170000Z</calendar:StartTime>
      <calendar:EndTime>20261103T180000Z</calendar:EndTime>
      <calendar:Subject>Standup</calendar:Subject>
      <calendar:UID>u-1</calendar:UID>
      <calendar:Recurrence><calendar:Type>1</calendar:Type><calendar:Interval>1</calendar:Interval>
        <calendar:DayOfWeek>4</calendar:DayOfWeek><calendar:Occurrences>10</calendar:Occurrences></calendar:Recurrence>
      <calendar:Exceptions>
        <calendar:Exception><calendar:Deleted>1</calendar:Deleted>
          <calendar:ExceptionStartTime>20261110T180000Z</calendar:ExceptionStartTime></calendar:Exception>
        <calendar:Exception><calendar:ExceptionStartTime>20261117T180000Z</calendar:ExceptionStartTime>
          <calendar:Subject>Standup (long)</calendar:Subject>
          <calendar:EndTime>20261117T190000Z</calendar:EndTime></calendar:Exception>
      </calendar:Exceptions>
    </ApplicationData>""")
    item = cal.parse(node, Version("12.1"))
    assert item.timezone == "America/Los_Angeles"
    assert item.recurrence == Recurrence(type=1, interval=1, day_of_week=4, occurrences=10)
    assert item.exceptions[0] == EventException(original_start=utc(2026, 11, 10, 18), deleted=True)
    assert item.exceptions[1].subject == "Standup (long)" and item.exceptions[1].end == utc(2026, 11, 17, 19)
    # 9:00 Pacific (PST, DST ended on 1 November) every Tuesday: 17:00 UTC each week.
    starts = recur.occurrences(item.start, item.recurrence, item.timezone)  # type: ignore[arg-type]
    assert len(starts) == 10 and all(s.hour == 17 and s.weekday() == 1 for s in starts)


# -- All-day events ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_all_day_event_on_the_dst_change(version: str) -> None:
    """29 March 2026 in Berlin has 23 hours: the event is local midnight to midnight."""
    item = Calendar(subject="Holiday", all_day=True, timezone="Europe/Berlin", start=berlin(2026, 3, 29),
                    end=berlin(2026, 3, 30), busy_status=0)
    assert item.end - item.start == timedelta(hours=23)  # type: ignore[operator]
    assert round_trip(item, version) == expected(item, version)


def test_all_day_times_are_widened_to_local_days() -> None:
    node = xml(f"""<ApplicationData xmlns="AirSync:" xmlns:calendar="Calendar:">
      <calendar:Timezone>{tz.to_wire("Europe/Berlin")}</calendar:Timezone>
      <calendar:AllDayEvent>1</calendar:AllDayEvent>
      <calendar:StartTime>20261025T100000Z</calendar:StartTime>
      <calendar:EndTime>20261025T120000Z</calendar:EndTime>
      <calendar:Subject>Trip</calendar:Subject>
    </ApplicationData>""")
    item = cal.parse(node, Version("14.1"))
    # 25 October 2026 ends DST in Berlin: a 25-hour day.
    assert item.start == berlin(2026, 10, 25) and item.end == berlin(2026, 10, 26)
    assert item.end - item.start == timedelta(hours=25)  # type: ignore[operator]


def test_all_day_yearly_series_stays_on_local_midnight() -> None:
    start = berlin(2026, 12, 24)
    rec = Recurrence(type=5, month_of_year=12, day_of_month=24, occurrences=3)
    starts = recur.occurrences(start, rec, "Europe/Berlin")
    assert [s.astimezone(BERLIN).replace(tzinfo=None) for s in starts] == [
        datetime(2026, 12, 24), datetime(2027, 12, 24), datetime(2028, 12, 24)]


# -- Recurrence patterns against dateutil ------------------------------------------------------

_DAYS = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")


def rrule_of(rec: Recurrence) -> dict[str, Any]:
    """The RRULE of a pattern, written from RFC 5545 and MS-OXCICAL's mapping (not from
    eas.items.recurrence): for tests, days of the month every month has."""
    days = [_DAYS[i] for i in range(7) if (rec.day_of_week or 0) >> i & 1]
    freq = {0: "DAILY", 1: "WEEKLY", 2: "MONTHLY", 3: "MONTHLY", 5: "YEARLY", 6: "YEARLY"}[rec.type]
    rule: dict[str, Any] = {"FREQ": freq, "INTERVAL": rec.interval}
    if rec.type == 1 or (rec.type == 0 and days):
        rule["FREQ"], rule["BYDAY"] = "WEEKLY", days
        rule["WKST"] = _DAYS[rec.first_day_of_week or 0]
    if rec.type in (2, 5):
        rule["BYMONTHDAY"] = rec.day_of_month
    if rec.type in (3, 6):
        rule["BYDAY"] = days
        rule["BYSETPOS"] = -1 if rec.week_of_month == 5 else rec.week_of_month
    if rec.type in (5, 6):
        rule["BYMONTH"] = rec.month_of_year
    if rec.occurrences is not None:
        rule["COUNT"] = rec.occurrences
    if rec.until is not None:
        rule["UNTIL"] = rec.until
    return rule


def dateutil_occurrences(start: datetime, rec: Recurrence, zone: str) -> list[datetime]:
    """Expand through icalendar (a VEVENT written and read back) and dateutil."""
    tz = ZoneInfo(zone)
    ev = icalendar.Event()
    ev.add("DTSTART", start.astimezone(tz))
    ev.add("RRULE", rrule_of(rec))
    ev.add("SUMMARY", "x")
    doc = icalendar.Calendar()
    doc.add_component(ev)
    back = icalendar.Calendar.from_ical(doc.to_ical())
    event = back.walk("VEVENT")[0]
    dtstart = event.decoded("DTSTART")
    rule = event["RRULE"].to_ical().decode()
    expansion = rrulestr(rule, dtstart=dtstart)
    return [d.astimezone(UTC) for d in expansion]


PATTERNS = [
    Recurrence(type=0, interval=3, occurrences=12),
    Recurrence(type=0, interval=1, day_of_week=2 | 4 | 8 | 16 | 32, occurrences=15),  # weekdays, as "daily"
    Recurrence(type=1, interval=2, day_of_week=2 | 16, occurrences=10, first_day_of_week=1),
    Recurrence(type=1, interval=1, day_of_week=1 | 64, until=utc(2026, 8, 1)),
    Recurrence(type=2, interval=1, day_of_month=15, occurrences=14),
    Recurrence(type=2, interval=3, day_of_month=28, occurrences=6),
    Recurrence(type=3, interval=1, week_of_month=2, day_of_week=8, occurrences=12),  # 2nd Wednesday
    Recurrence(type=3, interval=1, week_of_month=5, day_of_week=32, occurrences=12),  # last Friday
    Recurrence(type=3, interval=2, week_of_month=5, day_of_week=62, occurrences=8),  # last weekday
    Recurrence(type=3, interval=1, week_of_month=5, day_of_week=127, occurrences=8),  # last day
    Recurrence(type=5, interval=1, month_of_year=3, day_of_month=8, occurrences=5),
    Recurrence(type=5, interval=2, month_of_year=10, day_of_month=25, until=utc(2036, 1, 1)),
    Recurrence(type=6, interval=1, month_of_year=11, week_of_month=4, day_of_week=16, occurrences=5),  # Thanksgiving
    Recurrence(type=6, interval=1, month_of_year=3, week_of_month=5, day_of_week=1, occurrences=5),  # last Sunday
]
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC", "Pacific/Chatham"]


@pytest.mark.parametrize("rec", PATTERNS, ids=lambda r: f"type{r.type}-{r.day_of_week}-{r.week_of_month}")
@pytest.mark.parametrize("zone", ["Europe/Berlin", "Australia/Sydney"])
def test_patterns_match_dateutil(rec: Recurrence, zone: str) -> None:
    start = datetime(2026, 3, 8, 9, 30, tzinfo=ZoneInfo(zone)).astimezone(UTC)  # a Sunday, near DST changes
    assert recur.occurrences(start, rec, zone) == dateutil_occurrences(start, rec, zone)


@pytest.mark.parametrize("rec", PATTERNS, ids=lambda r: f"type{r.type}")
@pytest.mark.parametrize("version", VERSIONS)
def test_patterns_round_trip(rec: Recurrence, version: str) -> None:
    item = Calendar(subject="r", start=berlin(2026, 3, 8, 9), end=berlin(2026, 3, 8, 10), recurrence=rec,
                    timezone="Europe/Berlin")
    assert round_trip(item, version) == expected(item, version)


def test_day_31_falls_on_the_last_day_of_short_months() -> None:
    """Exchange's monthly day 31 is BYMONTHDAY=-1 in iCalendar (MS-OXCICAL 2.1.3.2.2.3)."""
    start = berlin(2026, 1, 31, 9)
    rec = Recurrence(type=2, day_of_month=31, occurrences=6)
    ours = recur.occurrences(start, rec, "Europe/Berlin")
    theirs = list(rrulestr("FREQ=MONTHLY;BYMONTHDAY=-1;COUNT=6", dtstart=start.astimezone(BERLIN)))
    assert ours == [d.astimezone(UTC) for d in theirs]


def test_occurrences_window() -> None:
    start = berlin(2026, 1, 5, 9)
    rec = Recurrence(type=0)  # daily, no end
    got = recur.occurrences(start, rec, "Europe/Berlin", berlin(2026, 3, 28), berlin(2026, 3, 31))
    assert got == [berlin(2026, 3, 28, 9), berlin(2026, 3, 29, 9), berlin(2026, 3, 30, 9)]
    assert got[0].hour == 8 and got[1].hour == 7  # 9:00 local on both sides of the DST change


@st.composite
def patterns(draw: st.DrawFn) -> Recurrence:
    kind = draw(st.sampled_from([0, 1, 2, 3, 5, 6]))
    rec = Recurrence(type=kind, interval=draw(st.integers(1, 4)))
    if kind in (1, 3, 6) or (kind == 0 and draw(st.booleans())):
        rec.day_of_week = draw(st.integers(1, 127))
    if kind in (2, 5):
        rec.day_of_month = draw(st.integers(1, 28))
    if kind in (3, 6):
        rec.week_of_month = draw(st.integers(1, 5))
    if kind in (5, 6):
        rec.month_of_year = draw(st.integers(1, 12))
    if kind in (0, 1):
        rec.first_day_of_week = draw(st.sampled_from([None, 0, 1, 6]))
    if draw(st.booleans()):
        rec.occurrences = draw(st.integers(1, 25))
    else:
        rec.until = draw(st.datetimes(datetime(2026, 6, 1), datetime(2029, 1, 1))).replace(microsecond=0, tzinfo=UTC)
    return rec


@settings(max_examples=150, deadline=None)
@given(rec=patterns(), zone=st.sampled_from(ZONES),
       start=st.datetimes(datetime(2025, 1, 1), datetime(2027, 1, 1)))
def test_random_patterns_match_dateutil(rec: Recurrence, zone: str, start: datetime) -> None:
    local = start.replace(second=0, microsecond=0)
    first = local.replace(tzinfo=ZoneInfo(zone))
    if first.astimezone(UTC).astimezone(ZoneInfo(zone)).replace(tzinfo=None) != local:
        return  # a wall-clock time that does not exist (a DST gap): each library shifts it its own way
    begin = first.astimezone(UTC)
    assert recur.occurrences(begin, rec, zone) == dateutil_occurrences(begin, rec, zone)


def test_recurrence_versions_on_the_tasks_page() -> None:
    """The same writer for Tasks: Start, Regenerate, DeadOccur; long date form."""
    rec = Recurrence(type=2, day_of_month=3, start=utc(2026, 1, 3), until=utc(2026, 12, 3), regenerate=True,
                     calendar_type=1, first_day_of_week=1)
    for version in VERSIONS:
        v = Version(version)
        w = Writer()
        recur.write_recurrence(w, rec, tags.Tasks, v)
        node = decode(w.getvalue())
        assert elements_outside(node, version) == []
        assert node.findtext(tags.Tasks.Until) == "2026-12-03T00:00:00.000Z"
        back = recur.parse_recurrence(node, tags.Tasks, v)
        assert back.start == rec.start and back.regenerate and not back.dead_occur
        assert back.calendar_type == (1 if has(C.CalendarType, version) else None)
        assert back.first_day_of_week == (1 if has(C.FirstDayOfWeek, version) else None)


# -- Random events ---------------------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)
_some_text = _text.filter(bool)
_instants = st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC))
_attendees = st.lists(st.builds(Attendee, email=_some_text, name=_some_text,
                                status=st.sampled_from([None, 0, 2, 3, 4, 5]),
                                type=st.sampled_from([None, 1, 2, 3])), max_size=4)


@st.composite
def exceptions(draw: st.DrawFn) -> EventException:
    if draw(st.booleans()):
        return EventException(original_start=draw(_instants), deleted=True)
    start = draw(st.none() | _instants)
    return EventException(
        original_start=draw(_instants), subject=draw(st.none() | _text), start=start,
        end=None if start is None else start + timedelta(minutes=draw(st.integers(0, 600))),
        all_day=draw(st.none() | st.just(False)), location=draw(st.none() | _some_text), body=draw(st.none() | _some_text),
        busy_status=draw(st.none() | st.integers(0, 4)), sensitivity=draw(st.none() | st.integers(0, 3)),
        reminder=draw(st.none() | st.integers(0, 100000)), meeting_status=draw(st.none() | st.sampled_from([0, 1, 3, 5])),
        categories=draw(st.none() | st.lists(_some_text, min_size=1, max_size=3)),
        attendees=draw(st.none() | _attendees.filter(bool)), dtstamp=draw(st.none() | _instants),
        response_type=draw(st.none() | st.integers(0, 5)), appointment_reply_time=draw(st.none() | _instants),
        online_meeting_conf_link=draw(st.none() | _some_text), online_meeting_external_link=draw(st.none() | _some_text))


@st.composite
def events(draw: st.DrawFn) -> Calendar:
    start = draw(_instants)
    rec = draw(st.none() | patterns())
    return Calendar(
        uid=draw(_text), subject=draw(_text), start=start,
        end=start + timedelta(minutes=draw(st.integers(0, 5000))), timezone=draw(st.sampled_from(ZONES)),
        location=draw(_text), body=draw(_text), organizer_name=draw(_text), organizer_email=draw(_text),
        dtstamp=draw(st.none() | _instants), busy_status=draw(st.integers(0, 4)), sensitivity=draw(st.integers(0, 3)),
        reminder=draw(st.none() | st.integers(0, 2**32 - 1)), meeting_status=draw(st.sampled_from([0, 1, 3, 5, 7])),
        categories=draw(st.lists(_text, max_size=3)), attendees=draw(_attendees), recurrence=rec,
        exceptions=draw(st.lists(exceptions(), max_size=3)) if rec is not None else [],
        response_requested=draw(st.none() | st.booleans()), response_type=draw(st.none() | st.integers(0, 5)),
        appointment_reply_time=draw(st.none() | _instants), disallow_new_time_proposal=draw(st.booleans()),
        online_meeting_conf_link=draw(_text), online_meeting_external_link=draw(_text))


@settings(max_examples=120, deadline=None)
@given(item=events(), version=st.sampled_from(VERSIONS))
def test_random_events_round_trip(item: Calendar, version: str) -> None:
    assert round_trip(item, version) == expected(item, version)


# -- Bad input -------------------------------------------------------------------------------

_HEAD = '<ApplicationData xmlns="AirSync:" xmlns:calendar="Calendar:" xmlns:airsyncbase="AirSyncBase:">'
_START = "<calendar:StartTime>20261202T090000Z</calendar:StartTime>"


def _parse(body: str, version: str = "14.1") -> Calendar:
    return cal.parse(xml(f"{_HEAD}{body}</ApplicationData>"), Version(version))


@pytest.mark.parametrize("body", [
    "<calendar:Subject>no start</calendar:Subject>",
    _START + "<calendar:EndTime>20261202T080000Z</calendar:EndTime>",  # ends before it starts
    "<calendar:StartTime>2026-13-45T99:00:00Z</calendar:StartTime>",
    "<calendar:StartTime>not a date</calendar:StartTime>",
    _START + "<calendar:Reminder>99999999999999999999999</calendar:Reminder>",
    _START + "<calendar:Reminder>-5</calendar:Reminder>",
    _START + "<calendar:BusyStatus>9</calendar:BusyStatus>",
    _START + "<calendar:MeetingStatus>2</calendar:MeetingStatus>",
    _START + "<calendar:Sensitivity>x</calendar:Sensitivity>",
    _START + "<calendar:AllDayEvent>2</calendar:AllDayEvent>",
    _START + "<calendar:Timezone>!!!not base64</calendar:Timezone>",
    _START + "<calendar:Timezone>QUJD</calendar:Timezone>",  # 3 bytes
    _START + f"<calendar:UID>{'u' * 301}</calendar:UID>",
    _START + "<calendar:Attendees><calendar:Attendee><calendar:AttendeeStatus>1</calendar:AttendeeStatus>"
             "<calendar:Email>a@b</calendar:Email></calendar:Attendee></calendar:Attendees>",
    _START + "<calendar:Attendees><calendar:Attendee><calendar:AttendeeType>1</calendar:AttendeeType>"
             "</calendar:Attendee></calendar:Attendees>",  # neither Email nor Name
    _START + "<calendar:Recurrence><calendar:Type>4</calendar:Type></calendar:Recurrence>",
    _START + "<calendar:Recurrence><calendar:Interval>1</calendar:Interval></calendar:Recurrence>",  # no Type
    _START + "<calendar:Recurrence><calendar:Type>1</calendar:Type></calendar:Recurrence>",  # no DayOfWeek
    _START + "<calendar:Recurrence><calendar:Type>2</calendar:Type></calendar:Recurrence>",  # no DayOfMonth
    _START + "<calendar:Recurrence><calendar:Type>3</calendar:Type><calendar:DayOfWeek>2</calendar:DayOfWeek>"
             "</calendar:Recurrence>",  # no WeekOfMonth
    _START + "<calendar:Recurrence><calendar:Type>6</calendar:Type><calendar:DayOfWeek>2</calendar:DayOfWeek>"
             "<calendar:WeekOfMonth>1</calendar:WeekOfMonth></calendar:Recurrence>",  # no MonthOfYear
    _START + "<calendar:Recurrence><calendar:Type>0</calendar:Type><calendar:Occurrences>3</calendar:Occurrences>"
             "<calendar:Until>20270101T000000Z</calendar:Until></calendar:Recurrence>",
    _START + "<calendar:Recurrence><calendar:Type>2</calendar:Type><calendar:DayOfMonth>32</calendar:DayOfMonth>"
             "</calendar:Recurrence>",
    _START + "<calendar:Recurrence><calendar:Type>0</calendar:Type><calendar:Interval>1000</calendar:Interval>"
             "</calendar:Recurrence>",
    _START + "<calendar:Recurrence><calendar:Type>0</calendar:Type><calendar:CalendarType>13</calendar:CalendarType>"
             "</calendar:Recurrence>",
    _START + "<calendar:Exceptions><calendar:Exception><calendar:Subject>x</calendar:Subject>"
             "</calendar:Exception></calendar:Exceptions>",  # no ExceptionStartTime
    _START + "<calendar:Exceptions><calendar:Exception><calendar:ExceptionStartTime>x</calendar:ExceptionStartTime>"
             "</calendar:Exception></calendar:Exceptions>",
])
def test_bad_values_are_protocol_errors(body: str) -> None:
    with pytest.raises(ProtocolError) as e:
        _parse(body)
    assert e.value.status == 6  # Sync: error in client/server conversion


def test_ten_thousand_attendees_are_refused() -> None:
    people = [Node(C.Attendee, children=[Node(C.Email, f"p{i}@example.com"), Node(C.Name, f"P{i}")])
              for i in range(10_000)]
    node = Node(AirSync.ApplicationData, children=[Node(C.StartTime, "20261202T090000Z"),
                                                   Node(C.Attendees, children=people)])
    with pytest.raises(ProtocolError):
        cal.parse(node, Version("14.1"))
    node.children[1].children = people[:cal.MAX_ATTENDEES]
    assert len(cal.parse(node, Version("14.1")).attendees) == cal.MAX_ATTENDEES


def test_too_many_exceptions_are_refused() -> None:
    ex = [Node(C.Exception, children=[Node(C.ExceptionStartTime, "20261202T090000Z"), Node(C.Deleted, "1")])
          for _ in range(cal.MAX_EXCEPTIONS + 1)]
    node = Node(AirSync.ApplicationData, children=[
        Node(C.StartTime, "20261202T090000Z"),
        Node(C.Recurrence, children=[Node(C.Type, "0")]), Node(C.Exceptions, children=ex)])
    with pytest.raises(ProtocolError):
        cal.parse(node, Version("14.1"))


def test_deep_nesting_and_odd_content_do_not_crash() -> None:
    """Children where text is expected, opaque bytes, unknown tags nested deep: a
    ProtocolError or ignored, never another exception."""
    deep = Node(C.Subject)
    cursor = deep
    for _ in range(5000):
        nxt = Node(C.Categories)
        cursor.children.append(nxt)
        cursor = nxt
    node = Node(AirSync.ApplicationData, children=[Node(C.StartTime, "20261202T090000Z"), deep,
                                                   Node(tags.Email.Subject, "not calendar")])
    assert cal.parse(node, Version("14.1")).subject == ""
    node = Node(AirSync.ApplicationData, children=[Node(C.StartTime, "20261202T090000Z"), Node(C.Subject, b"\xff\x00")])
    with pytest.raises(ProtocolError):
        cal.parse(node, Version("14.1"))


def test_empty_timezone_element_is_utc() -> None:
    assert _parse(_START + "<calendar:Timezone/>").timezone == "UTC"


def test_year_extremes_are_bounded() -> None:
    """A series at the end of the calendar stops instead of overflowing."""
    start = utc(9999, 12, 1, 9)
    for rec in (Recurrence(type=0), Recurrence(type=1, day_of_week=127), Recurrence(type=2, day_of_month=1),
                Recurrence(type=5, month_of_year=12, day_of_month=1)):
        got = recur.occurrences(start, rec, "UTC")
        assert got and got[-1].year == 9999
    assert _parse("<calendar:StartTime>00010101T000000Z</calendar:StartTime>").start == utc(1, 1, 1)


# -- Changes: ghosted elements ---------------------------------------------------------------


def test_parse_records_what_was_sent() -> None:
    item = _parse(_START + "<calendar:Subject>s</calendar:Subject><airsyncbase:Body><airsyncbase:Type>1</airsyncbase:Type>"
                  "<airsyncbase:Data>b</airsyncbase:Data></airsyncbase:Body>", "16.1")
    assert item.sent == {"start", "subject", "body", "body_html"}
    assert Calendar(subject="s").sent is None


def test_16_change_keeps_absent_elements() -> None:
    """MS-ASCAL 3.1.5.3: in 16.x every top-level element a Change leaves out is ghosted."""
    old = full_event()
    new = _parse("<calendar:Subject>Renamed</calendar:Subject>"
                 "<calendar:StartTime>20260302T090000Z</calendar:StartTime>", "16.1")
    merged = cal.merge_change(old, new)
    assert merged.subject == "Renamed" and merged.start == utc(2026, 3, 2, 9)
    assert merged.body == old.body and merged.location == old.location and merged.attendees == old.attendees
    assert merged.recurrence == old.recurrence and merged.exceptions == old.exceptions
    assert merged.timezone == old.timezone and merged.end == old.end
    assert merged.id == old.id and merged.uid == old.uid and merged.organizer_email == old.organizer_email


def test_change_with_supported_ghosts_only_the_unnamed_elements() -> None:
    """Before 16.0, only elements left out of Supported are ghosted: the others, absent,
    are cleared (MS-ASCMD 2.2.3.179)."""
    old = full_event()
    new = _parse(_START + "<calendar:Subject>Renamed</calendar:Subject>", "14.1")
    merged = cal.merge_change(old, new, ghosted={C.Attendees, C.Categories})
    assert merged.attendees == old.attendees and merged.categories == old.categories
    assert merged.location == "" and merged.body == "" and merged.recurrence is None
