"""eas.items.tasks: a Task written for each protocol version, through the real codec, and
read back as a device's Add would be; MS-ASTASK's rules and bad values."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eas.items import tasks
from eas.items.calendar import Recurrence
from eas.items.email import parse_body_options
from eas.items.tasks import Task
from eas.protocol.errors import ProtocolError
from eas.protocol.versions import Version
from eas.tags import AirSync, AirSyncBase
from eas.tags import Tasks as T
from eas.testing.client import elements_outside
from eas.wbxml import Node, Writer, decode, from_xml

VERSIONS = ("2.5", "12.0", "12.1", "14.0", "14.1", "16.0", "16.1")


def render(task: Task, version: str, options: dict[str, Any] | None = None) -> Node:
    v = Version(version)
    w = Writer()
    with w.tag(AirSync.ApplicationData):
        tasks.write(w, task, v, options if options is not None else parse_body_options(None, v, default_class="Tasks"))
    node = decode(w.getvalue())
    assert elements_outside(node, version) == []
    return node


def full_task() -> Task:
    return Task(
        subject="File the report \u00e9", body="Numbers from Q3.\nAsk Bob.", importance=2, sensitivity=2,
        start_date=datetime(2024, 5, 1, 0, 0), utc_start_date=datetime(2024, 4, 30, 22, 0, tzinfo=UTC),
        due_date=datetime(2024, 5, 3, 0, 0), utc_due_date=datetime(2024, 5, 2, 22, 0, tzinfo=UTC),
        complete=True, date_completed=datetime(2024, 5, 2, 9, 30, tzinfo=UTC), reminder_set=True,
        reminder_time=datetime(2024, 5, 2, 7, 0, tzinfo=UTC), categories=["Work", "Q3"],
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_every_field_round_trips(version: str) -> None:
    task = full_task()
    assert tasks.parse(render(task, version), Version(version)) == task


@pytest.mark.parametrize("version", VERSIONS)
def test_body_per_version(version: str) -> None:
    node = render(Task(subject="s", body="text"), version)
    if version == "2.5":
        assert (node.findtext(T.Body), node.findtext(T.BodyTruncated)) == ("text", "0")
        assert node.find(AirSyncBase.Body) is None
    else:
        assert node.find(T.Body) is None
        assert node.findtext(AirSyncBase.Body, AirSyncBase.Data) == "text"


def test_local_dates_keep_the_wall_clock() -> None:
    """StartDate is the user's local time, sent with a Z that does not mean UTC."""
    node = render(full_task(), "14.1")
    assert node.findtext(T.StartDate) == "2024-05-01T00:00:00.000Z"
    assert node.findtext(T.UtcStartDate) == "2024-04-30T22:00:00.000Z"
    assert node.findtext(T.DueDate) == "2024-05-03T00:00:00.000Z"
    assert node.findtext(T.UtcDueDate) == "2024-05-02T22:00:00.000Z"


def test_one_date_of_a_pair_is_sent_as_both() -> None:
    node = render(Task(subject="s", utc_due_date=datetime(2024, 5, 2, 22, tzinfo=UTC)), "12.1")
    assert node.findtext(T.DueDate) == node.findtext(T.UtcDueDate) == "2024-05-02T22:00:00.000Z"
    assert node.find(T.StartDate) is None and node.find(T.UtcStartDate) is None


def test_incomplete_task_has_no_date_completed_and_no_reminder_time_without_reminder() -> None:
    task = Task(subject="s", complete=False, date_completed=datetime(2024, 1, 1, tzinfo=UTC),
                reminder_set=False, reminder_time=datetime(2024, 1, 1, tzinfo=UTC))
    node = render(task, "16.0")
    assert node.findtext(T.Complete) == "0"
    assert node.find(T.DateCompleted) is None
    assert node.findtext(T.ReminderSet) == "0"
    assert node.find(T.ReminderTime) is None


def test_out_of_range_numbers_are_written_as_defaults() -> None:
    node = render(Task(subject="s", importance=9, sensitivity=-1), "14.0")
    assert (node.findtext(T.Importance), node.findtext(T.Sensitivity)) == ("1", "0")


@pytest.mark.parametrize("version", VERSIONS)
def test_recurrence_round_trips(version: str) -> None:
    rec = Recurrence(type=3, interval=2, occurrences=None, until=datetime(2025, 1, 1, tzinfo=UTC), day_of_week=2,
                     week_of_month=5, calendar_type=1, first_day_of_week=1,
                     start=datetime(2024, 5, 1, tzinfo=UTC), regenerate=True, dead_occur=True)
    task = dataclasses.replace(full_task(), recurrence=rec)
    node = render(task, version)
    assert node.findtext(T.Recurrence, T.Start) == "2024-05-01T00:00:00.000Z"
    assert node.findtext(T.Recurrence, T.Regenerate) == "1"
    v = Version(version)
    expected = dataclasses.replace(rec, calendar_type=1 if v >= Version("14.0") else None,
                                   first_day_of_week=1 if v >= Version("14.1") else None)
    assert tasks.parse(node, v) == dataclasses.replace(task, recurrence=expected)


def test_recurrence_without_start_starts_with_the_task() -> None:
    task = Task(subject="s", utc_start_date=datetime(2024, 5, 1, 8, tzinfo=UTC), recurrence=Recurrence(type=0))
    node = render(task, "14.1")
    assert node.findtext(T.Recurrence, T.Start) == "2024-05-01T08:00:00.000Z"
    assert node.findtext(T.Recurrence, T.DeadOccur) == "0"
    sent = device_data("<T:Subject>s</T:Subject><T:UtcStartDate>2024-05-01T08:00:00.000Z</T:UtcStartDate>"
                       "<T:Recurrence><T:Type>0</T:Type><T:Interval>3</T:Interval></T:Recurrence>")
    rec = tasks.parse(sent, Version("14.1")).recurrence
    assert rec is not None and rec.start == datetime(2024, 5, 1, 8, tzinfo=UTC) and rec.interval == 3


@pytest.mark.parametrize("recurrence", [
    "<T:Type>9</T:Type>",
    "<T:Type>1</T:Type>",  # weekly without DayOfWeek
    "<T:Interval>2</T:Interval>",  # no Type
    "<T:Type>0</T:Type><T:Until>someday</T:Until>",
    "<T:Type>0</T:Type><T:Regenerate>2</T:Regenerate>",
])
def test_bad_recurrence_is_status_6(recurrence: str) -> None:
    with pytest.raises(ProtocolError) as e:
        tasks.parse(device_data(f"<T:Subject>s</T:Subject><T:Recurrence>{recurrence}</T:Recurrence>"), Version("16.1"))
    assert e.value.status == 6


def device_data(body: str) -> Node:
    return decode(from_xml(f"<ApplicationData xmlns='AirSync:' xmlns:T='Tasks:' xmlns:B='AirSyncBase:'>"
                           f"{body}</ApplicationData>"))


def test_parse_a_device_add() -> None:
    """As Outlook for iOS or Android sends a new task (16.1): one date of a pair is enough."""
    node = device_data("<T:Subject>Buy milk</T:Subject><T:Importance>1</T:Importance>"
                       "<T:UtcDueDate>2024-06-01T10:00:00.000Z</T:UtcDueDate><T:Complete>0</T:Complete>"
                       "<T:ReminderSet>1</T:ReminderSet><T:ReminderTime>2024-06-01T08:00:00Z</T:ReminderTime>"
                       "<B:Body><B:Type>1</B:Type><B:Data>2 litres</B:Data></B:Body>")
    task = tasks.parse(node, Version("16.1"))
    assert task.subject == "Buy milk"
    assert task.utc_due_date == datetime(2024, 6, 1, 10, tzinfo=UTC)
    assert task.due_date == datetime(2024, 6, 1, 10)
    assert task.reminder_set and task.reminder_time == datetime(2024, 6, 1, 8, tzinfo=UTC)
    assert task.body == "2 litres"
    assert not task.complete and task.date_completed is None


@pytest.mark.parametrize("body", [
    "<T:Complete>1</T:Complete>",  # MS-ASTASK: DateCompleted is required when Complete is 1
    "<T:UtcStartDate>2024-06-02T00:00:00Z</T:UtcStartDate><T:UtcDueDate>2024-06-01T00:00:00Z</T:UtcDueDate>",
    "<T:Importance>3</T:Importance>",
    "<T:Importance>--1</T:Importance>",
    "<T:Importance>\u0661</T:Importance>",  # a digit, but not an ASCII one
    "<T:Sensitivity>high</T:Sensitivity>",
    "<T:Complete>yes</T:Complete>",
    "<T:DueDate>2024-02-30T00:00:00Z</T:DueDate>",
    "<T:UtcDueDate>9999-12-31T23:00:00-05:00</T:UtcDueDate>",
    "<T:ReminderTime></T:ReminderTime>",
    "<T:Categories>" + "<T:Category>c</T:Category>" * 10_000 + "</T:Categories>",
    "<T:Subject>" + "s" * 40_000 + "</T:Subject>",
])
def test_bad_values_are_status_6(body: str) -> None:
    with pytest.raises(ProtocolError) as e:
        tasks.parse(device_data(body), Version("14.1"))
    assert e.value.status == 6


def test_25_body_in_its_page() -> None:
    node = device_data("<T:Subject>s</T:Subject><T:Body>in 2.5</T:Body>")
    assert tasks.parse(node, Version("2.5")).body == "in 2.5"
    assert tasks.parse(node, Version("14.0")).body == ""  # not a 14.0 element: ignored


# -- Property ---------------------------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
_naive = st.datetimes(min_value=datetime(1901, 1, 1), max_value=datetime(2100, 1, 1)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
_aware = _naive.map(lambda d: d.replace(tzinfo=UTC))


@st.composite
def random_tasks(draw: st.DrawFn) -> Task:
    start = draw(st.none() | _aware)
    due = draw(st.none() | _aware)
    if start is not None and due is not None and due < start:
        start, due = due, start
    complete = draw(st.booleans())
    reminder_set = draw(st.booleans())
    return Task(
        subject=draw(_text), body=draw(_text), importance=draw(st.integers(0, 2)),
        sensitivity=draw(st.integers(0, 3)),
        utc_start_date=start, start_date=None if start is None else start.replace(tzinfo=None),
        utc_due_date=due, due_date=None if due is None else due.replace(tzinfo=None),
        complete=complete, date_completed=draw(_aware) if complete else None,
        reminder_set=reminder_set, reminder_time=draw(st.none() | _aware) if reminder_set else None,
        categories=draw(st.lists(_text.filter(bool), max_size=4)),
        recurrence=draw(st.none() | st.builds(
            Recurrence, type=st.just(1), interval=st.integers(1, 999), day_of_week=st.integers(1, 127),
            occurrences=st.none() | st.integers(1, 999), start=_aware, regenerate=st.booleans(),
            dead_occur=st.booleans())),
    )


@settings(max_examples=60, deadline=None)
@given(task=random_tasks(), version=st.sampled_from(VERSIONS))
def test_property_round_trip(task: Task, version: str) -> None:
    assert tasks.parse(render(task, version), Version(version)) == task


def test_a_reminder_time_without_the_reminder_is_dropped_as_when_written() -> None:
    """Found by the tree property test (test_pim): a ReminderTime without ReminderSet 1
    was kept when read but never written, so a task did not survive its round trip."""
    w = Writer()
    with w.tag(AirSync.ApplicationData):
        w.leaf(T.ReminderTime, "2024-02-29T10:00:00.000Z")
    task = tasks.parse(decode(w.getvalue()), Version("2.5"))
    assert (task.reminder_set, task.reminder_time) == (False, None)
    again = tasks.parse(render(task, "2.5"), Version("2.5"))
    assert (again.reminder_set, again.reminder_time) == (False, None)
    with_reminder = tasks.parse(render(dataclasses.replace(task, reminder_set=True,
                                                           reminder_time=datetime(2024, 2, 29, 10, tzinfo=UTC)),
                                       "2.5"), Version("2.5"))
    assert with_reminder.reminder_time == datetime(2024, 2, 29, 10, tzinfo=UTC)
