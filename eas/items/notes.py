"""The Notes item class (MS-ASNOTE, EAS 14.0 and later) and its conversion to and from
nodes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(slots=True)
class Note:
    """A note (MS-ASNOTE 2.2.2): plain-text ``body`` unless ``body_html`` is set."""

    id: str = ""
    uid: str = ""
    subject: str = ""
    body: str = ""
    body_html: str | None = None
    message_class: str = "IPM.StickyNote"
    last_modified: datetime | None = None
    categories: list[str] = field(default_factory=list)
