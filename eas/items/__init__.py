"""Item classes (Email now; Calendar, Contacts, Tasks, Notes later) and what their
commands share: item ServerIds and the FilterType windows.

An item's ServerId is ``"{collection_id}:{backend_item_id}"``: stateless to map back, and
unique across the device's collections as MS-ASCMD asks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
