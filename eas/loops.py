"""Loop detection: a device that keeps asking again for the same changes is choking on one
of them, and would ask forever.

A device repeats the previous SyncKey when a response never reached it (MS-ASCMD
2.2.3.181.4); once is normal. A device that keeps repeating the key of a response that
carried items is failing to store one of them (a broken item, a client bug, a response
too big for it), so the server narrows down which, and stops sending it. The rule, per
collection (an event "repeat" is the device sending again the key whose response carried
server changes; "progress" is the device sending the key it was last given):

=========  ========================================  =====================================
phase      on repeat                                 window of the response
=========  ========================================  =====================================
normal     -> replay (a lost response, probably)     as asked
replay     -> shrink                                 a quarter of it
shrink     -> single                                 1: the item sent is the suspect
single     -> single, one strike more for the        1
           suspect; at ``config.loop_strikes`` it
           is skipped (below) and the next one goes
=========  ========================================  =====================================

On progress, replay goes back to normal; shrink and single stay (another broken item may
follow in the same batch), forgetting the suspect, until a response that had nothing more
to send (no MoreAvailable) is acknowledged: then normal.

A skipped item is marked as sent in the snapshot, so nothing (Sync, Ping, GetItemEstimate)
sees it as pending, and recorded on the device record (``DeviceRecord.skipped_items``,
read by ``skipped_items`` for the admin). A skipped Add is also kept in the collection's
``extra["skipped"]`` with its stamp: when the item changes, the Change the snapshot
difference yields goes out as an Add (the device never had it); when it is deleted, the
Delete is dropped. Either way its record goes. The device never starts over (no SyncKey
0): the loop is resolved within the key sequence. Z-Push's loop detection (window 1, then
"ignored broken message" shown by z-push-admin) is the behaviour this follows; unlike it,
a skipped item is retried once it changes.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eas.state.model import CollectionState, DeviceRecord
    from eas.state.store import StateStore

NORMAL, REPLAY, SHRINK, SINGLE = "normal", "replay", "shrink", "single"
_ON_REPEAT = {NORMAL: REPLAY, REPLAY: SHRINK, SHRINK: SINGLE, SINGLE: SINGLE}
MAX_RECORDS = 100  # per device: the oldest records go first


def _loop(state: CollectionState) -> dict[str, Any]:
    loop: dict[str, Any] = state.extra.setdefault("loop", {})
    loop.setdefault("phase", NORMAL)
    return loop


def observe(state: CollectionState, repeated: bool, strikes: int) -> str | None:
    """Note a request's key (``repeated``: the device sent the previous key, and the state
    was rewound to it). Returns the id of the item to skip, if this is the strike that
    says so. Call before the changes are planned."""
    loop = state.extra.get("loop")
    if loop is None and not repeated:
        return None  # the common case touches nothing
    loop = _loop(state)
    if not repeated:
        if loop["phase"] == REPLAY or loop.get("caught_up"):
            state.extra.pop("loop", None)
        else:
            loop["suspect"], loop["strikes"] = "", 0
        return None
    if loop.get("key") != state.sync_key:  # that key's response carried nothing from us
        return None
    loop["phase"] = _ON_REPEAT[loop["phase"]]
    suspect = loop.get("suspect", "")
    if loop["phase"] != SINGLE or not suspect:
        return None
    loop["strikes"] = loop.get("strikes", 0) + 1
    if loop["strikes"] < strikes:
        return None
    loop["suspect"], loop["strikes"] = "", 0
    return str(suspect)


def window(state: CollectionState, asked: int) -> int:
    """The window for this response in the collection's loop phase."""
    loop = state.extra.get("loop")
    phase = loop["phase"] if loop else NORMAL
    if phase == SHRINK:
        return max(1, asked // 4)
    if phase == SINGLE:
        return 1
    return asked


def sent(state: CollectionState, request_key: int, items: list[str], more: bool) -> None:
    """Note what the response to ``request_key`` carries (server changes, by item id)."""
    if not items:
        return
    loop = _loop(state)
    loop["key"] = request_key
    loop["caught_up"] = not more
    if loop["phase"] == SINGLE:
        if loop.get("suspect") != items[0]:
            loop["strikes"] = 0
        loop["suspect"] = items[0]


def skip(state: CollectionState, device: DeviceRecord, kind: str, item: str, stamp: str, server_id: str,
         item_class: str, reason: str = "the device repeated its SyncKey while this item was sent alone") -> None:
    """Stop sending ``item``: it is as if sent (snapshot), and recorded for the admin
    (``eas device skipped``) with ``reason``. It goes out again when it changes."""
    if kind in ("Delete", "SoftDelete"):
        state.snapshot.pop(item, None)
    else:
        state.snapshot[item] = stamp
        if kind == "Add":
            state.extra.setdefault("skipped", {})[item] = stamp
    forget(device, state.collection_id, item)
    device.skipped_items.append({
        "collection_id": state.collection_id, "server_id": server_id, "item_id": item, "class": item_class,
        "kind": kind, "time": time.time(), "reason": reason,
    })
    del device.skipped_items[:-MAX_RECORDS]


def forget(device: DeviceRecord, collection_id: str, item: str | None = None) -> None:
    """Drop the records of an item (it goes out again, or is gone), or of a whole collection."""
    records = device.skipped_items
    kept = [r for r in records if not (r["collection_id"] == collection_id and item in (None, r["item_id"]))]
    if len(kept) != len(records):
        device.skipped_items = kept


async def skipped_items(store: StateStore, user: str, device_id: str) -> list[dict[str, Any]]:
    """What loop detection stopped sending to this device (for the admin): per item its
    ``collection_id``, ``server_id``, ``item_id``, ``class``, ``kind`` (Add, Change,
    Delete, SoftDelete), ``time`` (epoch seconds) and ``reason``."""
    device = await store.get_device(user, device_id)
    return [dict(r) for r in device.skipped_items] if device is not None else []
