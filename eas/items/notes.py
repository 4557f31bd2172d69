"""The Notes item class (MS-ASNOTE, EAS 14.0 and later) and its conversion to and from
nodes."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eas.items import pim
from eas.items.email import format_date, write_item_body
from eas.protocol.errors import ProtocolError
from eas.protocol.versions import Version
from eas.tags import AirSyncBase
from eas.tags import Notes as N
from eas.wbxml import Node, Writer


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
    # The fields a device's ApplicationData carried (set by ``parse``, not compared).
    sent: frozenset[str] | None = field(default=None, compare=False, repr=False)


# -- Conversion (MS-ASNOTE 2.2.2) ------------------------------------------------------------


def _require_notes(version: Version) -> None:
    if not pim.has(N.Subject, version):
        raise ProtocolError(f"the Notes class does not exist in {version}", status=pim.CONVERSION_ERROR)


def write(w: Writer, note: Note, version: Version, options: dict[str, Any]) -> None:
    """The ApplicationData children of ``note`` (14.0 and later; ``ProtocolError`` for an
    older version, which has no Notes class)."""
    _require_notes(version)
    w.leaf(N.Subject, note.subject)
    write_item_body(w, note.body, note.body_html, options, version)
    w.leaf(N.MessageClass, note.message_class or "IPM.StickyNote")
    if note.last_modified is not None:
        w.leaf(N.LastModifiedDate, format_date(note.last_modified))
    pim.write_strings(w, N.Categories, N.Category, note.categories)


def parse(node: Node, version: Version) -> Note:
    """The note a device's ApplicationData describes (Add, Change)."""
    _require_notes(version)
    note = Note()
    pim.parse_fields(node, note, _PARSERS, _NAMES)
    for child in node.children:
        if child.tag == AirSyncBase.Body:
            note.body, note.body_html = pim.parse_body(child)
    if note.message_class != "IPM.StickyNote" and not note.message_class.startswith("IPM.StickyNote."):
        raise pim.bad(f"a note's MessageClass is IPM.StickyNote, not {note.message_class!r}")
    note.sent = pim.sent_fields(node, ATTRIBUTES)
    return note


def merge_change(old: Note, new: Note, ghosted: Collection[int] | None = None, *, keep_body: bool = False) -> Note:
    """The note after a device's Change: ``new`` (from ``parse``) with ``old``'s value for
    each ghosted element it leaves out (None: every element) and, with ``keep_body`` (a
    truncated body echoed), ``old``'s body. MS-ASNOTE ghosts nothing: Sync passes an empty
    ``ghosted``, so only the body can be kept."""
    return pim.merge(old, new, ATTRIBUTES, ghosted, keep_body)


_PARSERS: dict[int, Callable[[Node], Any]] = {
    N.Subject: pim.text,
    N.MessageClass: lambda n: pim.text(n, 255) or "IPM.StickyNote",
    N.LastModifiedDate: pim.date,
    N.Categories: lambda n: pim.strings(n, N.Category, pim.MAX_CATEGORY),
}
_NAMES = {N.Subject: "subject", N.MessageClass: "message_class", N.LastModifiedDate: "last_modified",
          N.Categories: "categories"}
# The fields each element carries (for ``sent`` and ``merge_change``).
ATTRIBUTES: dict[int, tuple[str, ...]] = {
    **{tag: (name,) for tag, name in _NAMES.items()}, AirSyncBase.Body: ("body", "body_html"),
}
