"""The Tasks item class (MS-ASTASK) and its conversion to and from nodes for every
protocol version."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from eas.items import pim
from eas.items.calendar import Recurrence
from eas.items.email import format_date, write_item_body
from eas.items.recurrence import parse_recurrence, write_recurrence
from eas.protocol.errors import ProtocolError
from eas.protocol.versions import Version
from eas.tags import AirSyncBase
from eas.tags import Tasks as T
from eas.wbxml import Node, Writer


@dataclass(slots=True)
class Task:
    """A task (MS-ASTASK 2.2.2). As on the wire, start and due dates come twice: local
    (naive datetimes, the user's wall clock) and UTC (aware). Importance: 0 low, 1 normal,
    2 high; Sensitivity as for events. ``body`` is plain text."""

    id: str = ""
    uid: str = ""
    subject: str = ""
    body: str = ""
    importance: int = 1
    sensitivity: int = 0
    start_date: datetime | None = None
    utc_start_date: datetime | None = None
    due_date: datetime | None = None
    utc_due_date: datetime | None = None
    complete: bool = False
    date_completed: datetime | None = None
    reminder_set: bool = False
    reminder_time: datetime | None = None
    categories: list[str] = field(default_factory=list)
    recurrence: Recurrence | None = None
    # The fields a device's ApplicationData carried (set by ``parse``, not compared).
    sent: frozenset[str] | None = field(default=None, compare=False, repr=False)


# -- Conversion (MS-ASTASK 2.2.2) ------------------------------------------------------------

_BODY_25 = (T.Body, T.BodySize, T.BodyTruncated)


def write(w: Writer, task: Task, version: Version, options: dict[str, Any]) -> None:
    """The ApplicationData children of ``task`` for ``version``. Start and due dates go
    out in pairs, local and UTC (a task with only one of them gets it in both);
    DateCompleted only with Complete 1, ReminderTime only with ReminderSet 1."""
    leaf = w.leaf
    if pim.has(AirSyncBase.Body, version):
        write_item_body(w, task.body, None, options, version)
    else:
        pim.write_body_25(w, task.body, options, _BODY_25)
    pim.write_strings(w, T.Categories, T.Category, task.categories)
    leaf(T.Complete, "1" if task.complete else "0")
    if task.complete and task.date_completed is not None:
        leaf(T.DateCompleted, format_date(task.date_completed))
    _write_pair(w, T.DueDate, T.UtcDueDate, task.due_date, task.utc_due_date)
    leaf(T.Importance, task.importance if 0 <= task.importance <= 2 else 1)
    if task.recurrence is not None:
        write_recurrence(w, _with_start(task.recurrence, task), T, version)
    leaf(T.ReminderSet, "1" if task.reminder_set else "0")
    if task.reminder_set and task.reminder_time is not None:
        leaf(T.ReminderTime, format_date(task.reminder_time))
    leaf(T.Sensitivity, task.sensitivity if 0 <= task.sensitivity <= 3 else 0)
    _write_pair(w, T.StartDate, T.UtcStartDate, task.start_date, task.utc_start_date)
    leaf(T.Subject, task.subject)


def _write_pair(w: Writer, local_tag: int, utc_tag: int, local: datetime | None, utc: datetime | None) -> None:
    """A local date and its UTC twin (both or neither): one alone stands for both."""
    if utc is None:
        if local is None:
            return
        utc = local.replace(tzinfo=UTC)
    elif local is None:
        local = utc.astimezone(UTC) if utc.tzinfo is not None else utc
    w.leaf(local_tag, format_date(local.replace(tzinfo=None)))
    w.leaf(utc_tag, format_date(utc))


def _with_start(rec: Recurrence, task: Task) -> Recurrence:
    """MS-ASTASK 2.2.2.20: Start is required; a pattern without one starts with the task."""
    if rec.start is not None:
        return rec
    start = task.utc_start_date or task.utc_due_date
    return dataclasses.replace(rec, start=start) if start is not None else rec


def parse(node: Node, version: Version) -> Task:
    """The task a device's ApplicationData describes (Add, Change). Status 6 (as a
    ``ProtocolError``) for what MS-ASTASK forbids: Complete 1 without DateCompleted, a
    due date before the start date, and for any bad value."""
    task = Task()
    pim.parse_fields(node, task, _PARSERS, _NAMES)
    for child in node.children:
        if child.tag == AirSyncBase.Body and pim.has(AirSyncBase.Body, version):
            task.body = pim.parse_body(child)[0]
        elif child.tag == T.Body and not pim.has(AirSyncBase.Body, version):
            task.body = pim.text(child, pim.MAX_BODY)
        elif child.tag == T.Recurrence:
            try:
                task.recurrence = parse_recurrence(child, T, version)
            except ProtocolError as e:
                raise pim.bad(str(e)) from None
    # A device that sends one date of a pair means the same instant in both.
    if task.start_date is None and task.utc_start_date is not None:
        task.start_date = task.utc_start_date.replace(tzinfo=None)
    if task.utc_start_date is None and task.start_date is not None:
        task.utc_start_date = task.start_date.replace(tzinfo=UTC)
    if task.due_date is None and task.utc_due_date is not None:
        task.due_date = task.utc_due_date.replace(tzinfo=None)
    if task.utc_due_date is None and task.due_date is not None:
        task.utc_due_date = task.due_date.replace(tzinfo=UTC)
    if task.recurrence is not None:
        task.recurrence = _with_start(task.recurrence, task)
    if task.complete and task.date_completed is None:
        raise pim.bad("Complete is 1 without DateCompleted")
    if not task.complete:
        task.date_completed = None
    if not task.reminder_set:  # a reminder time means nothing without the reminder (and is not written back)
        task.reminder_time = None
    if task.utc_start_date and task.utc_due_date and task.utc_due_date < task.utc_start_date:
        raise pim.bad("the task is due before it starts")
    task.sent = pim.sent_fields(node, ATTRIBUTES)
    return task


def merge_change(old: Task, new: Task, ghosted: Collection[int] | None = None, *, keep_body: bool = False) -> Task:
    """The task after a device's Change: ``new`` (from ``parse``) with ``old``'s value for
    each ghosted element it leaves out (None: every element) and, with ``keep_body`` (a
    truncated body echoed), ``old``'s body. MS-ASTASK ghosts nothing: Sync passes an empty
    ``ghosted``, so only the body can be kept."""
    return pim.merge(old, new, ATTRIBUTES, ghosted, keep_body)


_PARSERS: dict[int, Callable[[Node], Any]] = {
    T.Subject: pim.text,
    T.Importance: lambda n: pim.integer(n, 0, 2),
    T.Sensitivity: lambda n: pim.integer(n, 0, 3),
    T.StartDate: pim.local_date,
    T.UtcStartDate: pim.date,
    T.DueDate: pim.local_date,
    T.UtcDueDate: pim.date,
    T.Complete: pim.boolean,
    T.DateCompleted: pim.date,
    T.ReminderSet: pim.boolean,
    T.ReminderTime: pim.date,
    T.Categories: lambda n: pim.strings(n, T.Category, pim.MAX_CATEGORY),
}
_NAMES: dict[int, str] = {
    T.Subject: "subject", T.Importance: "importance", T.Sensitivity: "sensitivity", T.StartDate: "start_date",
    T.UtcStartDate: "utc_start_date", T.DueDate: "due_date", T.UtcDueDate: "utc_due_date",
    T.Complete: "complete", T.DateCompleted: "date_completed", T.ReminderSet: "reminder_set",
    T.ReminderTime: "reminder_time", T.Categories: "categories",
}
# The fields each element carries (a date of a pair stands for both, as ``parse`` reads it).
ATTRIBUTES: dict[int, tuple[str, ...]] = {
    **{tag: (name,) for tag, name in _NAMES.items()},
    T.StartDate: ("start_date", "utc_start_date"), T.UtcStartDate: ("start_date", "utc_start_date"),
    T.DueDate: ("due_date", "utc_due_date"), T.UtcDueDate: ("due_date", "utc_due_date"),
    T.Body: ("body",), AirSyncBase.Body: ("body",), T.Recurrence: ("recurrence",),
}
