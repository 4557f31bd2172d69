"""Item classes (Email, Calendar, Contacts, Tasks, Notes) and what their commands share:
item ServerIds, the FilterType windows, and the codec module of each class.

An item's ServerId is ``"{collection_id}:{backend_item_id}"``: stateless to map back, and
unique across the device's collections as MS-ASCMD asks.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from types import ModuleType

# AirSync FilterType (MS-ASCMD 2.2.3.69.2): how far back mail and calendar go.
FILTER_WINDOWS: dict[int, timedelta | None] = {
    0: None,
    1: timedelta(days=1),
    2: timedelta(days=3),
    3: timedelta(weeks=1),
    4: timedelta(weeks=2),
    5: timedelta(days=31),
    6: timedelta(days=92),
    7: timedelta(days=183),
    8: None,  # incomplete tasks; no date window
}


def filter_since(filter_type: int, now: datetime | None = None) -> datetime | None:
    """The oldest date a FilterType keeps, or None for no limit."""
    window = FILTER_WINDOWS.get(filter_type)
    if window is None:
        return None
    return (now or datetime.now(UTC)) - window


def server_id(collection_id: str, item_id: str) -> str:
    return f"{collection_id}:{item_id}"


def split_server_id(value: str) -> tuple[str, str] | None:
    """``(collection_id, backend_item_id)`` of an item ServerId, or None if malformed."""
    collection_id, sep, item_id = value.partition(":")
    if not sep or not collection_id or not item_id:
        return None
    return collection_id, item_id


# The module of each non-mail class (Email has its own writer, ``eas.items.email``). Each
# has ``write(w, item, version, options)``, the ApplicationData children of an item for
# a protocol version, and ``parse(node, version)``, the item an ApplicationData describes
# (``ProtocolError`` when it cannot be understood).
CLASS_MODULES: dict[str, str] = {
    "Calendar": "eas.items.calendar",
    "Contacts": "eas.items.contacts",
    "Tasks": "eas.items.tasks",
    "Notes": "eas.items.notes",
}


def codec(item_class: str) -> ModuleType:
    """The codec module of a non-mail class; ``KeyError`` for an unknown class."""
    return importlib.import_module(CLASS_MODULES[item_class])
