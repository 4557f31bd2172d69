"""Merged folders: one calendar, one address book, one task list and one notes folder, for
clients that sync only the default folder of each type (Samsung's own mail app and
others; Horde offers the same switch).

``MergedBackend`` wraps the real backend for one request of such a device (the core
chooses it per request, ``view``). It lists the user's calendars, shared ones included, as
the default Calendar alone (contacts, tasks and notes likewise), and translates ids:

- an item of another folder appears in the default folder as ``"<folder id>/<item id>"``;
  an item of the default folder keeps its own id, so a device that is switched to merging
  keeps the items it has;
- adds go to the default folder; changes, deletes and moves go to the item's own folder;
- a Ping on the default folder waits for every merged folder (``watched``).

Mail folders are never merged: every client handles several of those.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from eas.backend import Folder, FolderType

if TYPE_CHECKING:
    from eas.backend import Backend, Item
    from eas.config import Config
    from eas.protocol.http import EASRequest

MERGED: dict[FolderType, FolderType] = {
    FolderType.CALENDAR: FolderType.USER_CALENDAR,
    FolderType.CONTACTS: FolderType.USER_CONTACTS,
    FolderType.TASKS: FolderType.USER_TASKS,
    FolderType.NOTES: FolderType.USER_NOTES,
}
"""Default folder type -> the type of the folders merged into it."""


def wanted(config: Config, request: EASRequest) -> bool:
    """Whether this device is configured for merged folders: a pattern of
    ``config.merge_folders_for`` matches the start of its DeviceType or User-Agent,
    ignoring case (a plain word is a prefix)."""
    return any(_pattern(p).match(request.device_type) or _pattern(p).match(request.user_agent)
               for p in config.merge_folders_for)


@functools.lru_cache(maxsize=64)
def _pattern(text: str) -> re.Pattern[str]:
    """A setting's pattern; one that is no regular expression ("SAMSUNG[") is taken
    literally, so that a typo in the configuration never fails every request."""
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error:
        return re.compile(re.escape(text), re.IGNORECASE)


def view(config: Config, request: EASRequest, backend: Backend) -> MergedBackend | None:
    """The merging wrapper for this request, or None when the device sees every folder."""
    return MergedBackend(backend) if config.merge_folders_for and wanted(config, request) else None


class MergedBackend:
    """The backend as a merging device sees it; methods not named here pass through."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._members: dict[str, list[str]] | None = None  # default folder id -> merged ids, itself first

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    # -- folders ---------------------------------------------------------------------

    async def folders(self, user: str) -> list[Folder]:
        """The folders without those merged into a default one."""
        folders = await self._backend.folders(user)
        members: dict[str, list[str]] = {}
        hidden: set[str] = set()
        for default_type, merged_type in MERGED.items():
            default = next((f for f in folders if f.type == default_type and not f.owner), None)
            if default is None:
                continue
            merged = [f.id for f in folders if f.type == merged_type]
            members[default.id] = [default.id, *merged]
            hidden.update(merged)
        self._members = members
        # A folder below a merged one (mail under a calendar) is shown at the top
        # (eas.hierarchy puts a folder whose parent is missing there).
        return [f for f in folders if f.id not in hidden]

    def watched(self, folder_ids: Collection[str]) -> list[str]:
        """The backend folders whose changes concern a wait on ``folder_ids``."""
        members = self._members or {}
        return [m for f in folder_ids for m in members.get(f, (f,))]

    async def _merged(self, user: str, folder_id: str) -> list[str] | None:
        """The folders shown as ``folder_id``, itself first; None when it merges none."""
        if self._members is None:
            await self.folders(user)
        assert self._members is not None
        return self._members.get(folder_id)

    @staticmethod
    def _encode(default_id: str, folder_id: str, item_id: str) -> str:
        """The id a device sees: the default folder's own ids as they are, others (and
        default ones holding a "/") as ``folder/item``, "%" and "/" in the folder id
        escaped, so that the first "/" always ends it."""
        if folder_id == default_id and "/" not in item_id:
            return item_id
        return f"{quote(folder_id, safe='')}/{item_id}"

    async def _decode(self, user: str, folder_id: str, item_id: str) -> tuple[str, str]:
        """``(real folder, real item id)`` of an item id the device has; an id naming no
        merged folder stays in the default one (where it is not found)."""
        folder, sep, item = item_id.partition("/")
        if sep and unquote(folder) in (await self._merged(user, folder_id) or ()):
            return unquote(folder), item
        return folder_id, item_id

    # -- items -----------------------------------------------------------------------

    async def item_stamps(self, user: str, folder_id: str, *args: Any, **kw: Any) -> dict[str, str]:
        members = await self._merged(user, folder_id)
        if members is None:
            return await self._backend.item_stamps(user, folder_id, *args, **kw)
        out: dict[str, str] = {}
        for member in members:
            stamps = await self._backend.item_stamps(user, member, *args, **kw)
            out.update((self._encode(folder_id, member, i), s) for i, s in stamps.items())
        return out

    async def fetch_items(self, user: str, folder_id: str, item_ids: Sequence[str]) -> list[Item]:
        if await self._merged(user, folder_id) is None:
            return await self._backend.fetch_items(user, folder_id, item_ids)
        by_folder: dict[str, list[str]] = {}
        wanted_ids: list[tuple[str, str]] = []
        for item_id in item_ids:
            real = await self._decode(user, folder_id, item_id)
            by_folder.setdefault(real[0], []).append(real[1])
            wanted_ids.append(real)
        found: dict[tuple[str, str], Item] = {}
        for real_folder, ids in by_folder.items():
            for item in await self._backend.fetch_items(user, real_folder, ids):
                found[(real_folder, item.id)] = item
        return [dataclasses.replace(found[r], id=self._encode(folder_id, *r))
                for r in wanted_ids if r in found]

    async def change_item(self, user: str, folder_id: str, item_id: str, item: Item) -> str:
        real_folder, real_id = await self._decode(user, folder_id, item_id)
        return await self._backend.change_item(user, real_folder, real_id, item)

    async def delete_occurrence(self, user: str, folder_id: str, item_id: str, instance: datetime) -> str:
        real_folder, real_id = await self._decode(user, folder_id, item_id)
        return await self._backend.delete_occurrence(user, real_folder, real_id, instance)

    async def delete_item(self, user: str, folder_id: str, item_id: str, *, permanently: bool) -> None:
        real_folder, real_id = await self._decode(user, folder_id, item_id)
        await self._backend.delete_item(user, real_folder, real_id, permanently=permanently)

    async def move_item(self, user: str, item_id: str, src_folder: str, dst_folder: str) -> str:
        """From the item's own folder; into the default folder of a merged destination."""
        real_src, real_id = await self._decode(user, src_folder, item_id)
        new_id = await self._backend.move_item(user, real_id, real_src, dst_folder)
        return self._encode(dst_folder, dst_folder, new_id)

    async def find_event(self, user: str, uid: str) -> tuple[str, str] | None:
        found = await self._backend.find_event(user, uid)
        if found is None:
            return None
        if self._members is None:
            await self.folders(user)
        for default_id, members in (self._members or {}).items():
            if found[0] in members:
                return default_id, self._encode(default_id, *found)
        return found
