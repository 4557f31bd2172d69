"""The Tasks item class (MS-ASTASK) and its conversion to and from nodes for every
protocol version."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from eas.items.calendar import Recurrence


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
