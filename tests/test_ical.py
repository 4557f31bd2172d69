"""eas.items.ical: round trips of every field and recurrence pattern, files as Google,
Apple, Outlook and Thunderbird write them, and expansion checked against dateutil."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil import rrule as du
from hypothesis import given, settings
from hypothesis import strategies as st

from eas.items import ical
from eas.items.calendar import Attendee, Calendar, EventException, Recurrence
from eas.items.notes import Note
from eas.items.tasks import Task

pytestmark = pytest.mark.kernel_independent

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)  # type: ignore[misc]


def full_event() -> Calendar:
    return Calendar(
        uid="040000008200E00074C5B7101A82E008-1", subject="Planning", start=berlin(2024, 3, 5, 9, 0),
        end=berlin(2024, 3, 5, 10, 30), timezone="Europe/Berlin", location="Room 1", body="Agenda\nline 2",
        body_html="<p>Agenda</p>", organizer_name="Ann Org", organizer_email="ann@example.com",
        dtstamp=utc(2024, 2, 1, 12, 0), busy_status=3, sensitivity=1, reminder=15, meeting_status=1,
        categories=["Work", "Red, blue"],
        attendees=[Attendee("bob@example.com", "Bob", 3, 1), Attendee("cy@example.com", "Cy", 4, 2),
                   Attendee("room@example.com", "Room 1", 5, 3), Attendee("dee@example.com", "", 2, None)],
        recurrence=Recurrence(type=1, interval=2, day_of_week=4 | 16, until=utc(2024, 6, 30, 23, 59, 59),
                              first_day_of_week=1),
        exceptions=[
            EventException(original_start=berlin(2024, 3, 19, 9, 0), deleted=True),
            EventException(original_start=berlin(2024, 3, 21, 9, 0), subject="Moved", start=berlin(2024, 3, 21, 14, 0),
                           end=berlin(2024, 3, 21, 15, 30), location="Room 2"),
        ],
        response_requested=True, response_type=1, appointment_reply_time=utc(2024, 2, 2, 8, 0),
        disallow_new_time_proposal=True, online_meeting_conf_link="https://meet.example.com/x",
        online_meeting_external_link="https://meet.example.com/y", client_uid="client-1")


def test_event_round_trip_keeps_every_field() -> None:
    event = full_event()
    text = ical.calendar_to_ical(event)
    assert "TZID:Europe/Berlin" in text  # a VTIMEZONE for the zone
    assert "DTSTART;TZID=Europe/Berlin:20240305T090000" in text
    assert "EXDATE;TZID=Europe/Berlin:20240319T090000" in text
    assert "RECURRENCE-ID;TZID=Europe/Berlin:20240321T090000" in text
    assert "X-MICROSOFT-CDO-BUSYSTATUS:OOF" in text and "TRIGGER:-PT15M" in text
    back = ical.calendar_from_ical(text)
    assert back == event


def test_event_round_trip_in_utc_and_all_day() -> None:
    plain = Calendar(uid="u2", subject="Call", start=utc(2024, 1, 2, 10), end=utc(2024, 1, 2, 11),
                     dtstamp=utc(2024, 1, 1), busy_status=0)
    text = ical.calendar_to_ical(plain)
    assert "DTSTART:20240102T100000Z" in text and "TRANSP:TRANSPARENT" in text
    assert ical.calendar_from_ical(text) == plain
    holiday = Calendar(uid="u3", subject="Holiday", start=berlin(2024, 12, 24, 0, 0), end=berlin(2024, 12, 27, 0, 0),
                       all_day=True, timezone="Europe/Berlin", dtstamp=utc(2024, 1, 1),
                       recurrence=Recurrence(type=5, month_of_year=12, day_of_month=24, occurrences=3))
    text = ical.calendar_to_ical(holiday)
    assert "DTSTART;VALUE=DATE:20241224" in text and "DTEND;VALUE=DATE:20241227" in text
    assert ical.calendar_from_ical(text) == holiday


# Each EAS pattern: its RRULE, and dateutil's own rule for the same thing (the oracle).
PATTERNS = [
    (Recurrence(type=0, interval=3, occurrences=10), "FREQ=DAILY;COUNT=10;INTERVAL=3",
     {"freq": du.DAILY, "interval": 3, "count": 10}),
    (Recurrence(type=0, day_of_week=62, occurrences=12), "FREQ=DAILY;COUNT=12;BYDAY=MO,TU,WE,TH,FR",
     {"freq": du.DAILY, "byweekday": (du.MO, du.TU, du.WE, du.TH, du.FR), "count": 12}),
    (Recurrence(type=1, day_of_week=2 | 32, occurrences=9), "FREQ=WEEKLY;COUNT=9;BYDAY=MO,FR",
     {"freq": du.WEEKLY, "byweekday": (du.MO, du.FR), "count": 9}),
    (Recurrence(type=2, day_of_month=31, occurrences=7), "FREQ=MONTHLY;COUNT=7;BYMONTHDAY=31",
     {"freq": du.MONTHLY, "bymonthday": 31, "count": 7}),
    (Recurrence(type=3, day_of_week=4, week_of_month=2, occurrences=6), "FREQ=MONTHLY;COUNT=6;BYDAY=2TU",
     {"freq": du.MONTHLY, "byweekday": du.TU(2), "count": 6}),
    (Recurrence(type=3, day_of_week=32, week_of_month=5, occurrences=6), "FREQ=MONTHLY;COUNT=6;BYDAY=-1FR",
     {"freq": du.MONTHLY, "byweekday": du.FR(-1), "count": 6}),
    (Recurrence(type=3, day_of_week=62, week_of_month=5, occurrences=6),  # the last weekday of the month
     "FREQ=MONTHLY;COUNT=6;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
     {"freq": du.MONTHLY, "byweekday": (du.MO, du.TU, du.WE, du.TH, du.FR), "bysetpos": -1, "count": 6}),
    (Recurrence(type=3, day_of_week=127, week_of_month=5, occurrences=4),  # the last day of the month
     "FREQ=MONTHLY;COUNT=4;BYDAY=SU,MO,TU,WE,TH,FR,SA;BYSETPOS=-1",
     {"freq": du.MONTHLY, "bymonthday": -1, "count": 4}),
    (Recurrence(type=5, month_of_year=2, day_of_month=29, occurrences=3), "FREQ=YEARLY;COUNT=3;BYMONTH=2;BYMONTHDAY=29",
     {"freq": du.YEARLY, "bymonth": 2, "bymonthday": 29, "count": 3}),
    (Recurrence(type=6, month_of_year=11, day_of_week=16, week_of_month=4, occurrences=5),
     "FREQ=YEARLY;COUNT=5;BYDAY=4TH;BYMONTH=11",
     {"freq": du.YEARLY, "bymonth": 11, "byweekday": du.TH(4), "count": 5}),
    (Recurrence(type=1, interval=2, day_of_week=2, until=berlin(2024, 12, 31, 9, 0)), None,
     {"freq": du.WEEKLY, "interval": 2, "byweekday": du.MO, "until": datetime(2024, 12, 31, 9, 0, tzinfo=BERLIN)}),
]


@pytest.mark.parametrize(("rec", "rule", "oracle"), PATTERNS)
def test_every_pattern_round_trips_and_expands_as_dateutil_does(rec: Recurrence, rule: str | None,
                                                                   oracle: dict[str, object]) -> None:
    start_local = datetime(2024, 1, 1, 9, 0, tzinfo=BERLIN)  # a Monday; DST starts on March 31
    first = next(iter(du.rrule(dtstart=start_local, **oracle)))  # type: ignore[arg-type]
    event = Calendar(uid="p", subject="p", start=first.astimezone(UTC), end=(first + timedelta(hours=1)).astimezone(UTC),
                     timezone="Europe/Berlin", dtstamp=utc(2024, 1, 1), recurrence=rec)
    text = ical.calendar_to_ical(event)
    if rule is not None:
        written = next(line for line in text.splitlines() if line.startswith("RRULE:"))
        assert sorted(written[6:].split(";")) == sorted(rule.split(";"))
    assert ical.calendar_from_ical(text).recurrence == rec
    expected = [d.astimezone(UTC) for d in du.rrule(dtstart=first, **oracle)]  # type: ignore[arg-type]
    found, finite = ical.occurrences(text)
    assert finite
    assert [s for s, _, _ in found] == expected
    assert all(e - s == timedelta(hours=1) for s, e, _ in found)
    assert ical.event_span(text) == (expected[0], expected[-1] + timedelta(hours=1))


def test_wall_clock_kept_across_dst() -> None:
    event = Calendar(uid="d", start=berlin(2024, 3, 25, 9), end=berlin(2024, 3, 25, 10), timezone="Europe/Berlin",
                     recurrence=Recurrence(type=0, occurrences=14))
    found, _ = ical.occurrences(ical.calendar_to_ical(event))
    hours = [s.hour for s, _, _ in found]
    assert hours[:6] == [8] * 6 and hours[7:] == [7] * 7  # 09:00 CET, then 09:00 CEST


def test_all_day_series_until_its_last_local_day() -> None:
    start = datetime(2024, 7, 1, tzinfo=BERLIN).astimezone(UTC)
    event = Calendar(uid="a", subject="camp", all_day=True, timezone="Europe/Berlin", start=start,
                     end=start + timedelta(days=1), dtstamp=utc(2024, 1, 1),
                     recurrence=Recurrence(type=0, until=datetime(2024, 7, 5, tzinfo=BERLIN).astimezone(UTC)))
    text = ical.calendar_to_ical(event)
    assert "RRULE:FREQ=DAILY;UNTIL=20240705" in text
    days = [s.astimezone(BERLIN).date() for s, _, _ in ical.occurrences(text)[0]]
    assert days == [date(2024, 7, d) for d in range(1, 6)]
    back = ical.calendar_from_ical(text).recurrence
    assert back is not None and back.until == datetime(2024, 7, 5, 23, 59, 59, tzinfo=BERLIN)


GOOGLE = """BEGIN:VCALENDAR\r
PRODID:-//Google Inc//Google Calendar 70.9054//EN\r
VERSION:2.0\r
CALSCALE:GREGORIAN\r
METHOD:PUBLISH\r
X-WR-CALNAME:work\r
X-WR-TIMEZONE:America/New_York\r
BEGIN:VTIMEZONE\r
TZID:America/New_York\r
X-LIC-LOCATION:America/New_York\r
BEGIN:DAYLIGHT\r
TZOFFSETFROM:-0500\r
TZOFFSETTO:-0400\r
TZNAME:EDT\r
DTSTART:19700308T020000\r
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r
END:DAYLIGHT\r
BEGIN:STANDARD\r
TZOFFSETFROM:-0400\r
TZOFFSETTO:-0500\r
TZNAME:EST\r
DTSTART:19701101T020000\r
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r
END:STANDARD\r
END:VTIMEZONE\r
BEGIN:VEVENT\r
DTSTART;TZID=America/New_York:20240108T100000\r
DTEND;TZID=America/New_York:20240108T103000\r
RRULE:FREQ=WEEKLY;WKST=SU;UNTIL=20240226T150000Z;BYDAY=MO\r
DTSTAMP:20240301T120000Z\r
ORGANIZER;CN=Ann:mailto:ann@example.com\r
UID:7kukuqrfedlm2f9t0vr42q1f7s@google.com\r
ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=Bob;X-NUM-GUESTS=0:mailto:bob@example.com\r
CREATED:20240101T090000Z\r
DESCRIPTION:Weekly sync\\, bring notes\r
LAST-MODIFIED:20240102T090000Z\r
LOCATION:\r
SEQUENCE:1\r
STATUS:CONFIRMED\r
SUMMARY:Team sync\r
TRANSP:OPAQUE\r
BEGIN:VALARM\r
ACTION:DISPLAY\r
DESCRIPTION:This is an event reminder\r
TRIGGER:-P0DT0H10M0S\r
END:VALARM\r
END:VEVENT\r
BEGIN:VEVENT\r
DTSTART;TZID=America/New_York:20240122T110000\r
DTEND;TZID=America/New_York:20240122T113000\r
DTSTAMP:20240301T120000Z\r
UID:7kukuqrfedlm2f9t0vr42q1f7s@google.com\r
RECURRENCE-ID;TZID=America/New_York:20240122T100000\r
SUMMARY:Team sync (late)\r
SEQUENCE:2\r
END:VEVENT\r
BEGIN:VEVENT\r
DTSTART;TZID=America/New_York:20240205T100000\r
DTEND;TZID=America/New_York:20240205T103000\r
DTSTAMP:20240301T120000Z\r
UID:7kukuqrfedlm2f9t0vr42q1f7s@google.com\r
RECURRENCE-ID;TZID=America/New_York:20240205T100000\r
STATUS:CANCELLED\r
SUMMARY:Team sync\r
END:VEVENT\r
BEGIN:VEVENT\r
DTSTART;VALUE=DATE:20240704\r
DTEND;VALUE=DATE:20240705\r
DTSTAMP:20240301T120000Z\r
UID:holiday-1@google.com\r
SUMMARY:Independence Day\r
TRANSP:TRANSPARENT\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_google_export() -> None:
    series, holiday = ical.read_ical(GOOGLE, owner="bob@example.com")
    assert isinstance(series, Calendar) and isinstance(holiday, Calendar)
    assert series.timezone == "America/New_York" and series.start == datetime(2024, 1, 8, 15, 0, tzinfo=UTC)
    assert series.recurrence == Recurrence(type=1, day_of_week=2, until=utc(2024, 2, 26, 15), first_day_of_week=0)
    assert series.reminder == 10 and series.body == "Weekly sync, bring notes"
    assert series.meeting_status == 3  # bob was invited by ann
    assert series.attendees == [Attendee("bob@example.com", "Bob", 3, 1)]
    moved, cancelled = series.exceptions
    assert moved.original_start == utc(2024, 1, 22, 15) and moved.start == utc(2024, 1, 22, 16)
    assert moved.subject == "Team sync (late)" and not moved.deleted
    assert cancelled.original_start == utc(2024, 2, 5, 15) and cancelled.deleted
    # All day in the calendar's X-WR-TIMEZONE: New York midnight.
    assert holiday.all_day and holiday.timezone == "America/New_York"
    assert holiday.start == datetime(2024, 7, 4, tzinfo=NEW_YORK).astimezone(UTC)
    assert holiday.end - holiday.start == timedelta(days=1) and holiday.busy_status == 0
    # The stored text of the series expands with the override in place and the cancelled one gone.
    text = next(t for t in ical.split_ical(GOOGLE) if "7kukuq" in t)
    starts = [s for s, _, _ in ical.occurrences(text)[0]]
    expected = [d.astimezone(UTC) for d in du.rrule(du.WEEKLY, dtstart=datetime(2024, 1, 8, 10, tzinfo=NEW_YORK),
                                                    until=utc(2024, 2, 26, 15))]
    expected[2] = utc(2024, 1, 22, 16)
    expected.remove(utc(2024, 2, 5, 15))
    assert starts == expected


APPLE = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//Apple Inc.//macOS 14.2//EN
CALSCALE:GREGORIAN
BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
DTSTART:19810329T020000
TZNAME:MESZ
TZOFFSETTO:+0200
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
DTSTART:19961027T030000
TZNAME:MEZ
TZOFFSETTO:+0100
END:STANDARD
END:VTIMEZONE
BEGIN:VEVENT
TRANSP:OPAQUE
DTEND;TZID=Europe/Berlin:20240415T190000
UID:6B29FC40-CA47-1067-B31D-00DD010662DA
DTSTAMP:20240410T101010Z
LOCATION:Philharmonie
X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC
SEQUENCE:0
SUMMARY:Konzert
LAST-MODIFIED:20240410T101010Z
CREATED:20240410T101000Z
DTSTART;TZID=Europe/Berlin:20240415T173000
BEGIN:VALARM
X-WR-ALARMUID:5D2A8B0E-1C32-4C59-9A4A-3F1E7CB0A3B1
UID:5D2A8B0E-1C32-4C59-9A4A-3F1E7CB0A3B1
TRIGGER:-PT1H
ATTACH;VALUE=URI:Chord
ACTION:AUDIO
END:VALARM
END:VEVENT
BEGIN:VEVENT
UID:birthday-anna
DTSTART;VALUE=DATE:20000229
DTEND;VALUE=DATE:20000301
RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1
SUMMARY:Anna
TRANSP:TRANSPARENT
DTSTAMP:20240410T101010Z
END:VEVENT
END:VCALENDAR
"""


def test_apple_export() -> None:
    concert, birthday = ical.read_ical(APPLE)
    assert isinstance(concert, Calendar) and isinstance(birthday, Calendar)
    assert concert.timezone == "Europe/Berlin" and concert.start == berlin(2024, 4, 15, 17, 30)
    assert concert.end == berlin(2024, 4, 15, 19, 0) and concert.reminder == 60 and concert.meeting_status == 0
    # BYMONTHDAY=-1 (last day of February) has no EAS form: the closest pattern goes to the
    # device, the stored rule expands as written.
    assert birthday.recurrence is not None and birthday.recurrence.type == 5
    assert birthday.recurrence.month_of_year == 2
    text = next(t for t in ical.split_ical(APPLE) if "birthday-anna" in t)
    found, finite = ical.occurrences(text, utc(2023, 1, 1), utc(2025, 12, 31))
    assert not finite
    assert [s.date() for s, _, _ in found] == [date(2023, 2, 28), date(2024, 2, 29), date(2025, 2, 28)]
    assert ical.event_span(text) == (utc(2000, 2, 29), None)


OUTLOOK = """BEGIN:VCALENDAR
PRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN
VERSION:2.0
METHOD:PUBLISH
X-MS-OLK-FORCEINSPECTOROPEN:TRUE
BEGIN:VTIMEZONE
TZID:W. Europe Standard Time
BEGIN:STANDARD
DTSTART:16011028T030000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010325T020000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
END:DAYLIGHT
END:VTIMEZONE
BEGIN:VEVENT
ATTENDEE;CN="Bob Builder";RSVP=TRUE;ROLE=OPT-PARTICIPANT:mailto:bob@example.com
ATTENDEE;CN=Projector;CUTYPE=RESOURCE;ROLE=NON-PARTICIPANT:mailto:projector@example.com
CLASS:PRIVATE
CREATED:20240105T083000Z
DESCRIPTION:Quarterly review\\n
DTEND;TZID="W. Europe Standard Time":20240110T120000
DTSTAMP:20240105T083000Z
DTSTART;TZID="W. Europe Standard Time":20240110T110000
EXDATE;TZID="W. Europe Standard Time":20240410T110000
LAST-MODIFIED:20240105T083000Z
LOCATION:Board room
ORGANIZER;CN="Ann Org":mailto:ann@example.com
PRIORITY:5
RRULE:FREQ=MONTHLY;COUNT=6;BYDAY=2WE
SEQUENCE:0
SUMMARY;LANGUAGE=de:Review
TRANSP:OPAQUE
UID:040000008200E00074C5B7101A82E00800000000B0E1B4C7A63FDA01000000000000000010000000
X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE
X-MICROSOFT-CDO-IMPORTANCE:1
X-MICROSOFT-DISALLOW-COUNTER:FALSE
X-MS-OLK-CONFTYPE:0
BEGIN:VALARM
TRIGGER:-PT15M
ACTION:DISPLAY
DESCRIPTION:Reminder
END:VALARM
END:VEVENT
END:VCALENDAR
"""


def test_outlook_export() -> None:
    [review] = ical.read_ical(OUTLOOK, owner="ann@example.com")
    assert isinstance(review, Calendar)
    assert review.timezone == "Europe/Berlin"  # the Windows zone name, mapped
    assert review.start == berlin(2024, 1, 10, 11) and review.busy_status == 1 and review.sensitivity == 2
    assert review.organizer_name == "Ann Org" and review.meeting_status == 1
    assert review.attendees == [Attendee("bob@example.com", "Bob Builder", None, 2),
                                Attendee("projector@example.com", "Projector", None, 3)]
    assert review.recurrence == Recurrence(type=3, day_of_week=8, week_of_month=2, occurrences=6)
    assert review.exceptions == [EventException(original_start=berlin(2024, 4, 10, 11), deleted=True)]
    starts = [s for s, _, _ in ical.occurrences(ical.split_ical(OUTLOOK)[0])[0]]
    expected = [d.astimezone(UTC) for d in du.rrule(du.MONTHLY, count=6, byweekday=du.WE(2),
                                                    dtstart=datetime(2024, 1, 10, 11, tzinfo=BERLIN))]
    expected.remove(berlin(2024, 4, 10, 11))
    assert starts == expected


THUNDERBIRD = """BEGIN:VCALENDAR
PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN
VERSION:2.0
BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
END:STANDARD
END:VTIMEZONE
BEGIN:VEVENT
CREATED:20240301T080000Z
LAST-MODIFIED:20240301T080000Z
DTSTAMP:20240301T080000Z
UID:a8f1d6c2-3b1e-4a55-9d64-0f1c1a2b3c4d
SUMMARY:Floating lunch
DTSTART:20240312T120000
DTEND:20240312T130000
X-MOZ-GENERATION:1
END:VEVENT
BEGIN:VTODO
CREATED:20240301T080000Z
LAST-MODIFIED:20240302T080000Z
DTSTAMP:20240302T080000Z
UID:0c7e4d11-2a6e-4e0b-8a7f-7a2d1c0e9f11
SUMMARY:File taxes
PRIORITY:1
STATUS:IN-PROCESS
PERCENT-COMPLETE:40
DTSTART;TZID=Europe/Berlin:20240401T090000
DUE;TZID=Europe/Berlin:20240415T180000
CATEGORIES:Finance
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER;VALUE=DATE-TIME:20240414T080000Z
DESCRIPTION:Default Mozilla Description
END:VALARM
END:VTODO
BEGIN:VTODO
UID:done-1
SUMMARY:Buy milk
STATUS:COMPLETED
COMPLETED:20240302T100000Z
DTSTAMP:20240302T100000Z
END:VTODO
END:VCALENDAR
"""


def test_thunderbird_export_with_floating_time_and_tasks() -> None:
    lunch, taxes, milk = ical.read_ical(THUNDERBIRD, zone="Europe/Berlin")
    assert isinstance(lunch, Calendar) and lunch.start == berlin(2024, 3, 12, 12)  # floating: the given zone
    assert isinstance(taxes, Task) and isinstance(milk, Task)
    assert taxes.importance == 2 and not taxes.complete and taxes.categories == ["Finance"]
    assert taxes.utc_start_date == berlin(2024, 4, 1, 9) and taxes.start_date == datetime(2024, 4, 1, 9)
    assert taxes.utc_due_date == berlin(2024, 4, 15, 18) and taxes.due_date == datetime(2024, 4, 15, 18)
    assert taxes.reminder_set and taxes.reminder_time == utc(2024, 4, 14, 8)
    assert milk.complete and milk.date_completed == utc(2024, 3, 2, 10)


def test_task_and_note_round_trip() -> None:
    task = Task(uid="t1", subject="Report", body="Write it", importance=0, sensitivity=3,
                start_date=datetime(2024, 5, 1, 9), utc_start_date=utc(2024, 5, 1, 7),
                due_date=datetime(2024, 5, 3, 17), utc_due_date=utc(2024, 5, 3, 15), complete=True,
                date_completed=utc(2024, 5, 2, 12), reminder_set=True, reminder_time=utc(2024, 5, 3, 8),
                categories=["A"], recurrence=Recurrence(type=1, day_of_week=8, occurrences=4, regenerate=True,
                                                        start=utc(2024, 5, 1, 7)))
    assert ical.task_from_ical(ical.task_to_ical(task)) == task
    note = Note(uid="n1", subject="Idea", body="text", body_html="<b>text</b>", last_modified=utc(2024, 5, 1),
                categories=["x", "y"])
    text = ical.note_to_ical(note)
    assert "BEGIN:VJOURNAL" in text
    assert ical.note_from_ical(text) == note


def test_inexpressible_rule_gets_closest_pattern_and_is_kept_on_a_device_change() -> None:
    text = ("BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:x\nBEGIN:VEVENT\nUID:odd\nDTSTAMP:20240101T000000Z\n"
            "DTSTART:20240101T090000Z\nDTEND:20240101T100000Z\n"
            "RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1,-1;COUNT=6\nSUMMARY:Edges\n"
            "END:VEVENT\nEND:VCALENDAR\n")
    event = ical.calendar_from_ical(text)
    assert event.recurrence is not None and event.recurrence.type == 3 and event.recurrence.occurrences == 6
    event.subject = "Edges, renamed"
    again = ical.calendar_to_ical(event, keep_from=text)
    assert "BYSETPOS=1,-1" in again and "SUMMARY:Edges\\, renamed" in again
    oracle = list(du.rrulestr("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1,-1;COUNT=6",
                              dtstart=utc(2024, 1, 1, 9)))
    assert [s for s, _, _ in ical.occurrences(again)[0]] == oracle
    # A device that changed the pattern itself replaces the rule.
    event.recurrence = Recurrence(type=1, day_of_week=2, occurrences=3)
    assert "BYSETPOS" not in ical.calendar_to_ical(event, keep_from=text)
    hourly = text.replace("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1,-1;COUNT=6", "FREQ=HOURLY;INTERVAL=4;COUNT=3")
    assert ical.calendar_from_ical(hourly).recurrence == Recurrence(type=0, occurrences=3)
    assert [s.hour for s, _, _ in ical.occurrences(hourly)[0]] == [9, 13, 17]


def test_occurrence_override_and_delete() -> None:
    event = Calendar(uid="s", subject="Standup", start=berlin(2024, 1, 1, 9), end=berlin(2024, 1, 1, 9, 15),
                     timezone="Europe/Berlin", recurrence=Recurrence(type=0, occurrences=5))
    text = ical.calendar_to_ical(event)
    text = ical.with_occurrence(text, berlin(2024, 1, 2, 9), Calendar(subject="Late", start=berlin(2024, 1, 2, 11),
                                                                      end=berlin(2024, 1, 2, 11, 30)))
    text = ical.without_occurrence(text, berlin(2024, 1, 4, 9))
    found = ical.occurrences(text)[0]
    assert [(s, e - s) for s, e, _ in found] == [
        (berlin(2024, 1, 1, 9), timedelta(minutes=15)), (berlin(2024, 1, 2, 11), timedelta(minutes=30)),
        (berlin(2024, 1, 3, 9), timedelta(minutes=15)), (berlin(2024, 1, 5, 9), timedelta(minutes=15))]
    back = ical.calendar_from_ical(text)
    assert [(e.original_start, e.deleted, e.subject) for e in back.exceptions] == [
        (berlin(2024, 1, 2, 9), False, "Late"), (berlin(2024, 1, 4, 9), True, None)]
    # Deleting an overridden occurrence removes its override too.
    text = ical.without_occurrence(text, berlin(2024, 1, 2, 9))
    assert len(ical.occurrences(text)[0]) == 3 and "RECURRENCE-ID" not in text
    with pytest.raises(ical.NoSuchOccurrence):
        ical.without_occurrence(text, berlin(2024, 1, 3, 10))  # not an occurrence's start
    with pytest.raises(ical.NoSuchOccurrence):
        ical.with_occurrence(ical.calendar_to_ical(Calendar(uid="x", start=utc(2024, 1, 1), end=utc(2024, 1, 1, 1))),
                             utc(2024, 1, 1), Calendar(subject="y"))


@pytest.mark.parametrize("text", [
    "", "hello", "BEGIN:VCARD\nEND:VCARD\n", "BEGIN:VCALENDAR\nBEGIN:VEVENT\n",
    "BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nUID:x\nDTSTART:2024XX01T000000Z\nEND:VEVENT\nEND:VCALENDAR\n",
    ("BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nUID:x\nDTSTART:20240101T000000Z\nRRULE:FREQ=SOMETIMES\n"
    "END:VEVENT\nEND:VCALENDAR\n"),
])
def test_malformed_text_raises_icalerror(text: str) -> None:
    with pytest.raises(ical.ICalError):
        ical.read_ical(text)


# -- properties ----------------------------------------------------------------------------

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham"]


@st.composite
def recurrences(draw: st.DrawFn) -> Recurrence:
    kind = draw(st.sampled_from([0, 1, 2, 3, 5, 6]))
    rec = Recurrence(type=kind, interval=draw(st.integers(1, 5)) if kind in (0, 1, 2) else 1,
                     occurrences=draw(st.integers(1, 30)))
    if kind == 0 and draw(st.booleans()):
        rec.day_of_week = draw(st.integers(1, 127))
    if kind == 1:
        rec.day_of_week = draw(st.integers(1, 127))
    if kind in (2, 5):
        rec.day_of_month = draw(st.integers(1, 28))
    if kind in (3, 6):
        rec.day_of_week = draw(st.sampled_from([1, 2, 4, 8, 16, 32, 64, 62, 65, 127]))
        rec.week_of_month = draw(st.integers(1, 5))
    if kind in (5, 6):
        rec.month_of_year = draw(st.integers(1, 12))
    return rec


printable = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)


@settings(max_examples=60, deadline=None)
@given(rec=recurrences(), zone=st.sampled_from(ZONES), subject=printable, location=printable,
       day=st.integers(0, 3000), minute=st.integers(0, 24 * 60 - 1), all_day=st.booleans())
def test_random_events_round_trip(rec: Recurrence, zone: str, subject: str, location: str, day: int, minute: int,
                                  all_day: bool) -> None:
    local = datetime(2020, 1, 1, tzinfo=ZoneInfo(zone)) + timedelta(days=day)
    if not all_day:
        local = local.replace(hour=minute // 60, minute=minute % 60)
    start = local.astimezone(UTC)
    end = (local + timedelta(days=1)).astimezone(UTC) if all_day else start + timedelta(minutes=45)
    event = Calendar(uid="prop", subject=subject, location=location, start=start, end=end, all_day=all_day,
                     timezone=zone, dtstamp=utc(2024, 1, 1), recurrence=rec)
    text = ical.calendar_to_ical(event)
    back = ical.calendar_from_ical(text)
    assert back.recurrence == rec
    assert (back.subject, back.location) == (subject.replace("\r\n", "\n").replace("\r", "\n"),
                                             location.replace("\r\n", "\n").replace("\r", "\n"))
    assert (back.start, back.end, back.all_day, back.timezone) == (start, end, all_day, zone)
    found, finite = ical.occurrences(text)
    assert finite and 1 <= len(found) <= rec.occurrences  # type: ignore[operator]
    assert all(s < t for (s, _, _), (t, _, _) in itertools.pairwise(found))


def test_override_naming_no_one_stays_part_of_the_meeting() -> None:
    """A moved occurrence exported without ORGANIZER/ATTENDEE keeps the series' meeting
    status and attendees (no MeetingStatus/Attendees in its exception)."""
    text = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:weekly-1
DTSTAMP:20260101T000000Z
DTSTART:20260105T090000Z
DTEND:20260105T100000Z
RRULE:FREQ=WEEKLY;COUNT=4
SUMMARY:Standup
ORGANIZER:mailto:boss@example.org
ATTENDEE;PARTSTAT=ACCEPTED:mailto:alice@example.com
END:VEVENT
BEGIN:VEVENT
UID:weekly-1
DTSTAMP:20260101T000000Z
RECURRENCE-ID:20260112T090000Z
DTSTART:20260112T110000Z
DTEND:20260112T120000Z
SUMMARY:Standup
END:VEVENT
END:VCALENDAR
"""
    [event] = ical.read_ical(text, owner="alice@example.com")
    assert isinstance(event, Calendar) and event.meeting_status == 3
    [moved] = event.exceptions
    assert moved.start == datetime(2026, 1, 12, 11, tzinfo=UTC)
    assert moved.meeting_status is None and moved.attendees is None
