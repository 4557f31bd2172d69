"""The Calendar item class (MS-ASCAL): events with attendees, reminders, recurrence and
exceptions, and their conversion to and from nodes for every protocol version.

Times are timezone-aware datetimes in UTC; ``Calendar.timezone`` names the IANA zone the
event was made in (the EAS TimeZone blob is computed from it, and an incoming blob is
matched back to a zone). All-day events start and end at local midnight of that zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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
