"""The folder hierarchy a device knows, held against the backend's folders (MS-ASCMD 2.2.1.5).

This module owns:

- turning the backend's folder list into ``FolderEntry`` records with stable server ids
  (``HierarchyState.server_id``), parents before children, orphans and parent loops of a
  misbehaving backend put at the top;
- the differences against what the device was last sent: Add (parents first), Update
  (in the order of the new tree), Delete (children first), so a client can apply them
  one by one;
- moving the hierarchy SyncKey forward by one, keeping the folder list the device had
  before (``previous_key``/``previous_folders``) so that a repeated key gets the same
  changes again, dropping the collection state of every folder that is gone;
- what Sync, Ping and GetItemEstimate ask of the hierarchy: which backend folder and item
  class a CollectionId stands for, and whether the backend's folders differ from what the
  device has (Ping status 7, Sync status 12).

Server ids survive a FolderSync with SyncKey 0: a client that re-initialises its
hierarchy (Gmail and others do on every refresh) gets the same CollectionIds back, and
their collection states stay valid, so it does not download its mail again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eas.backend import FOLDER_CLASS, Folder, FolderType
from eas.state.model import FolderEntry, HierarchyState

if TYPE_CHECKING:
    from eas.context import Context

TOP = "0"
"""The ParentId of a top-level folder (MS-ASCMD 2.2.3.123)."""

USER_FOLDER_TYPES = frozenset({
    FolderType.USER_GENERIC, FolderType.USER_MAIL, FolderType.USER_CALENDAR, FolderType.USER_CONTACTS,
    FolderType.USER_TASKS, FolderType.USER_JOURNAL, FolderType.USER_NOTES,
})
"""The types a client may create (MS-ASCMD 2.2.3.186.2); the others are default folders."""

_KEY = re.compile(r"0|[1-9][0-9]{0,17}")


def parse_key(text: str | bytes | None) -> int | None:
    """A SyncKey as the server wrote it (canonical decimal), or None when it is not one:
    a key the server never hands out can never match, whatever int() would make of it."""
    if not isinstance(text, str) or not _KEY.fullmatch(text):
        return None
    return int(text)


@dataclass(slots=True)
class Changes:
    """What the device is to be told, each list in the order it can be applied in."""

    added: list[FolderEntry] = field(default_factory=list)
    updated: list[FolderEntry] = field(default_factory=list)
    deleted: list[FolderEntry] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.added) + len(self.updated) + len(self.deleted)


@dataclass(frozen=True, slots=True)
class CollectionFolder:
    """What a CollectionId stands for: the backend folder, its type, and the item class
    Sync's Class element names (None for types the library does not sync: Journal, ...)."""

    collection_id: str
    backend_id: str
    type: int
    item_class: str | None


def folder_class(folder_type: int) -> str | None:
    """The item class of a folder type (``"Email"``, ``"Calendar"``, ...), or None."""
    try:
        return FOLDER_CLASS.get(FolderType(folder_type))
    except ValueError:
        return None


def is_special(folder_type: int) -> bool:
    """Whether a folder is a default (system) folder a client may not rename or delete."""
    return folder_type not in USER_FOLDER_TYPES


def entries(hierarchy: HierarchyState, folders: Sequence[Folder]) -> dict[str, FolderEntry]:
    """The backend's folders as the device is to see them, by server id, parents first.
    Allocates server ids for backend folders seen for the first time."""
    out: dict[str, FolderEntry] = {}
    for folder, parent in _parents_first(folders):
        parent_sid = TOP if parent is None else hierarchy.server_id(parent)
        sid = hierarchy.server_id(folder.id)
        out[sid] = FolderEntry(sid, parent_sid, folder.name, int(folder.type), folder.id)
    return out


def _parents_first(folders: Sequence[Folder]) -> list[tuple[Folder, str | None]]:
    """``(folder, effective parent backend id or None for the top)``, every parent before
    its children. A parent the list lacks, or one that closes a loop, counts as the top:
    the device must never be sent a tree it cannot build."""
    by_id: dict[str, Folder] = {}
    for folder in folders:
        by_id.setdefault(folder.id, folder)
    done: set[str] = set()
    order: list[tuple[Folder, str | None]] = []
    for start in by_id.values():
        path: list[tuple[Folder, str | None]] = []
        on_path: set[str] = set()
        node: Folder | None = start
        while node is not None and node.id not in done:
            on_path.add(node.id)
            parent = by_id.get(node.parent_id) if node.parent_id else None
            if parent is not None and parent.id in on_path:
                parent = None  # a loop: cut it here
            path.append((node, parent.id if parent is not None else None))
            node = parent
        for item in reversed(path):
            done.add(item[0].id)
            order.append(item)
    return order


def _depths(folders: Mapping[str, FolderEntry]) -> dict[str, int]:
    """Each folder's depth in a server-id tree (0 at the top); loops count as the top."""
    depths: dict[str, int] = {}
    for sid in folders:
        chain: list[str] = []
        seen: set[str] = set()
        cur = sid
        while cur in folders and cur not in depths and cur not in seen:
            seen.add(cur)
            chain.append(cur)
            cur = folders[cur].parent_id
        base = depths.get(cur, -1) if cur in folders else -1
        for offset, node in enumerate(reversed(chain), start=1):
            depths[node] = base + offset
    return depths


def _differs(old: FolderEntry, new: FolderEntry) -> bool:
    return (old.parent_id, old.name, old.type) != (new.parent_id, new.name, new.type)


def compare(known: Mapping[str, FolderEntry], current: Mapping[str, FolderEntry]) -> Changes:
    """What turns ``known`` (the device's folders) into ``current`` (``entries`` order)."""
    changes = Changes()
    for sid, entry in current.items():
        old = known.get(sid)
        if old is None:
            changes.added.append(entry)
        elif _differs(old, entry):
            changes.updated.append(entry)
    depths = _depths(known)
    gone = [known[sid] for sid in known if sid not in current]
    changes.deleted = sorted(gone, key=lambda e: -depths.get(e.server_id, 0))
    return changes


def advance(ctx: Context, hierarchy: HierarchyState, folders: dict[str, FolderEntry], *,
            previous: tuple[int, dict[str, FolderEntry]] | None) -> int:
    """Make ``folders`` what the device has under a new key (the old one plus one) and
    return that key. ``previous`` is the key and folder list the device sent from (None
    after SyncKey 0): a device that repeats that key gets its changes again. The
    collection states of folders that are gone are dropped; server ids of backend
    folders that are gone are forgotten, so a reused backend id can never revive them."""
    gone = (set(hierarchy.folders) | set(previous[1] if previous else ())) - set(folders)
    for sid in gone:
        ctx.state.drop_collection(sid)
    hierarchy.previous_key, hierarchy.previous_folders = previous if previous else (0, None)
    hierarchy.folders = folders
    keep = {e.backend_id for e in folders.values()}
    keep.update(e.backend_id for e in (hierarchy.previous_folders or {}).values())
    hierarchy.id_map = {b: s for b, s in hierarchy.id_map.items() if b in keep}
    hierarchy.sync_key += 1
    ctx.state.hierarchy_changed()
    return hierarchy.sync_key


def descendants(folders: Mapping[str, FolderEntry], root: str) -> set[str]:
    """``root`` and every folder below it in a server-id tree."""
    children: dict[str, list[str]] = {}
    for sid, entry in folders.items():
        children.setdefault(entry.parent_id, []).append(sid)
    out: set[str] = set()
    stack = [root]
    while stack:
        sid = stack.pop()
        if sid in out:
            continue
        out.add(sid)
        stack.extend(children.get(sid, ()))
    return out


async def backend_entries(ctx: Context, hierarchy: HierarchyState) -> dict[str, FolderEntry] | None:
    """The backend's folders as ``entries`` gives them, but without allocating server ids:
    None when the backend has a folder the hierarchy has never named (so it changed)."""
    folders = await ctx.backend.folders(ctx.user)
    out: dict[str, FolderEntry] = {}
    for folder, parent in _parents_first(folders):
        sid = hierarchy.id_map.get(folder.id)
        parent_sid = TOP if parent is None else hierarchy.id_map.get(parent)
        if sid is None or parent_sid is None:
            return None
        out[sid] = FolderEntry(sid, parent_sid, folder.name, int(folder.type), folder.id)
    return out


async def hierarchy_changed(ctx: Context) -> bool:
    """Whether the backend's folders differ from what the device was last sent (Ping
    status 7, Sync status 12): a device that never did FolderSync has changes too."""
    hierarchy = await ctx.state.hierarchy()
    if hierarchy.sync_key == 0:
        return True
    current = await backend_entries(ctx, hierarchy)
    return current is None or len(compare(hierarchy.folders, current)) > 0


def collection_folders(hierarchy: HierarchyState, ids: Iterable[str] | None = None) -> dict[str, CollectionFolder]:
    """CollectionId -> ``CollectionFolder`` for the folders the device knows (all of them,
    or those of ``ids`` that it knows; unknown ids are left out)."""
    wanted = hierarchy.folders.keys() if ids is None else ids
    out: dict[str, CollectionFolder] = {}
    for sid in wanted:
        entry = hierarchy.folders.get(sid)
        if entry is not None:
            out[sid] = CollectionFolder(sid, entry.backend_id, entry.type, folder_class(entry.type))
    return out


async def collection_folder(ctx: Context, collection_id: str) -> CollectionFolder | None:
    """What ``collection_id`` stands for, or None when the device was never sent it."""
    hierarchy = await ctx.state.hierarchy()
    return collection_folders(hierarchy, (collection_id,)).get(collection_id)
