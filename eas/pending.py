"""What the next Sync of a collection would send: asked by Sync (its window and
MoreAvailable), GetItemEstimate (the count) and Ping (whether there is anything), so that
the three never disagree. A module of its own, so that Ping does not load Sync.
"""

from __future__ import annotations

from itertools import chain, islice
from typing import TYPE_CHECKING, Any

from eas.items import filter_since
from eas.protocol.errors import ProtocolError
from eas.state.model import diff

if TYPE_CHECKING:
    from eas.context import Context
    from eas.protocol.versions import Version

INCOMPLETE_TASKS = 8

# The FilterType values each class takes (MS-ASCMD 2.2.3.68.2); mail keeps the older
# table's 0-7. The element does not apply to Contacts and Notes: there it is ignored.
FILTER_TYPES: dict[str, frozenset[int]] = {
    "Email": frozenset(range(8)),
    "Calendar": frozenset({0, 4, 5, 6, 7}),
    "Tasks": frozenset({0, INCOMPLETE_TASKS}),
}


def filter_type_of(options: dict[str, Any]) -> int:
    """The FilterType a collection's options are in force with (0, no window, if none)."""
    return int(options.get("filter_type", 0) or 0)


def check_filter_type(options: dict[str, Any], item_class: str) -> None:
    """Make parsed Options fit the class: a FilterType the class does not take is a
    ``ProtocolError`` (Sync status 4); Contacts and Notes have none (set to 0)."""
    allowed = FILTER_TYPES.get(item_class)
    if allowed is None:
        options["filter_type"] = 0
    elif filter_type_of(options) not in allowed:
        raise ProtocolError(f"FilterType {options['filter_type']} does not apply to {item_class}")


def supported_class(item_class: str | None, version: Version) -> bool:
    """Whether items of the class are synced in this protocol version (Notes from 14.0)."""
    if item_class == "Notes":
        return version.major >= 14
    return item_class in ("Email", "Calendar", "Contacts", "Tasks")


async def window_stamps(ctx: Context, backend_id: str, filter_type: int) -> dict[str, str]:
    """``{item id: stamp}`` of the folder's items within the FilterType window."""
    if filter_type == INCOMPLETE_TASKS:
        return await ctx.backend.item_stamps(ctx.user, backend_id, incomplete_only=True)
    return await ctx.backend.item_stamps(ctx.user, backend_id, filter_since(filter_type))


async def pending_changes(ctx: Context, backend_id: str, snapshot: dict[str, str], filter_type: int,
                          limit: int | None = None) -> tuple[list[tuple[str, str, str]], int]:
    """What the next Sync would send to a device holding ``snapshot``, in sending order:
    ``(kind, backend item id, stamp)`` with kind Delete, SoftDelete (left the FilterType
    window, 2.2.3.172: too old, or a task completed under FilterType 8), Change, Add
    (newest first); only the first ``limit`` are built (a window of a large folder), and
    the total is returned beside them (GetItemEstimate and Ping count it, Sync's
    MoreAvailable)."""
    since = filter_since(filter_type)
    current = await window_stamps(ctx, backend_id, filter_type)
    added, changed, deleted = diff(snapshot, current)
    # Which deletes are soft ones is asked only when a delete is to be built (not to count).
    classify = deleted and (since is not None or filter_type == INCOMPLETE_TASKS) and limit != 0
    everything = await ctx.backend.item_stamps(ctx.user, backend_id) if classify else {}
    order = chain((("SoftDelete" if item in everything else "Delete", item, "") for item in deleted),
                  (("Change", item, current[item]) for item in changed),
                  (("Add", item, current[item]) for item in reversed(added)))
    plan = list(order if limit is None else islice(order, limit))
    return plan, len(deleted) + len(changed) + len(added)
