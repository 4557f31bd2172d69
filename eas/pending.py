"""What the next Sync of a collection would send: asked by Sync (its window and
MoreAvailable), GetItemEstimate (the count) and Ping (whether there is anything), so that
the three never disagree. A module of its own, so that Ping does not load Sync.
"""

from __future__ import annotations

from itertools import chain, islice
from typing import TYPE_CHECKING, Any

from eas.items import filter_since
from eas.state.model import diff

if TYPE_CHECKING:
    from eas.context import Context


def filter_type_of(options: dict[str, Any]) -> int:
    """The FilterType a collection's options are in force with (0, no window, if none)."""
    return int(options.get("filter_type", 0) or 0)


async def pending_changes(ctx: Context, backend_id: str, snapshot: dict[str, str], filter_type: int,
                          limit: int | None = None) -> tuple[list[tuple[str, str, str]], int]:
    """What the next Sync would send to a device holding ``snapshot``, in sending order:
    ``(kind, backend item id, stamp)`` with kind Delete, SoftDelete (left the FilterType
    window, 2.2.3.172), Change, Add (newest first); only the first ``limit`` are built (a
    window of a large folder), and the total is returned beside them (GetItemEstimate and
    Ping count it, Sync's MoreAvailable)."""
    since = filter_since(filter_type)
    current = await ctx.backend.item_stamps(ctx.user, backend_id, since)
    added, changed, deleted = diff(snapshot, current)
    # Which deletes are soft ones is asked only when a delete is to be built (not to count).
    classify = deleted and since is not None and limit != 0
    everything = await ctx.backend.item_stamps(ctx.user, backend_id) if classify else {}
    order = chain((("SoftDelete" if item in everything else "Delete", item, "") for item in deleted),
                  (("Change", item, current[item]) for item in changed),
                  (("Add", item, current[item]) for item in reversed(added)))
    plan = list(order if limit is None else islice(order, limit))
    return plan, len(deleted) + len(changed) + len(added)
