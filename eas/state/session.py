"""DeviceState: the typed, lazily loaded state of one (user, device) for one request.

Handlers read and change it; nothing reaches the store until ``commit``, which the core
calls once the handler has returned (long polls commit before they wait). A handler that
fails leaves the stored state as it was.

An administrator may change a device while one of its requests runs (a wipe asked for
during a Ping that waits an hour): ``ADMIN_FIELDS`` that changed in the store since the
record was read, and that the request itself left alone, are taken from the store at
commit, so the request's commit does not undo them; a record removed from the store
after this request committed once (before a long poll's wait) is not written back.
"""

from __future__ import annotations

import json
from typing import Any

from eas.state.model import CollectionState, DeviceRecord, HierarchyState
from eas.state.store import StateStore

_COLLECTION = "collection:"

# Device record fields an administrator changes from outside a request (eas.access.devices).
ADMIN_FIELDS = ("wipe", "wipe_requested", "suspended")


class DeviceState:
    """State of ``device`` in ``store``. ``cache`` holds small per-device values (the last
    Sync and Ping requests, recent SendMail ClientIds) as JSON data."""

    def __init__(self, store: StateStore, device: DeviceRecord) -> None:
        self.store = store
        self.device = device
        self._hierarchy: HierarchyState | None = None
        self._collections: dict[str, CollectionState | None] = {}
        self._cache: dict[str, Any] | None = None
        self._dirty: set[str] = set()
        self._admin = {name: getattr(device, name) for name in ADMIN_FIELDS}  # as read
        self._committed = False  # once true, the record is in the store

    async def hierarchy(self) -> HierarchyState:
        if self._hierarchy is None:
            data = await self.store.load(self.device.user, self.device.device_id, "hierarchy")
            self._hierarchy = HierarchyState.from_json(data) if data else HierarchyState()
        return self._hierarchy

    def hierarchy_changed(self) -> None:
        self._dirty.add("hierarchy")

    async def collection(self, collection_id: str) -> CollectionState | None:
        if collection_id not in self._collections:
            data = await self.store.load(self.device.user, self.device.device_id, _COLLECTION + collection_id)
            self._collections[collection_id] = CollectionState.from_json(data) if data else None
        return self._collections[collection_id]

    def put_collection(self, state: CollectionState) -> None:
        self._collections[state.collection_id] = state
        self._dirty.add(_COLLECTION + state.collection_id)

    def drop_collection(self, collection_id: str) -> None:
        self._collections[collection_id] = None
        self._dirty.add(_COLLECTION + collection_id)

    async def cache(self) -> dict[str, Any]:
        if self._cache is None:
            data = await self.store.load(self.device.user, self.device.device_id, "cache")
            self._cache = json.loads(data) if data else {}
        return self._cache

    def cache_changed(self) -> None:
        self._dirty.add("cache")

    def release(self) -> None:
        """Forget what was loaded and has no uncommitted change (it is loaded again when
        asked for), so that a long poll holds nothing big while it waits."""
        if "hierarchy" not in self._dirty:
            self._hierarchy = None
        if "cache" not in self._dirty:
            self._cache = None
        self._collections = {k: v for k, v in self._collections.items() if _COLLECTION + k in self._dirty}

    async def commit(self) -> None:
        """Write the device record and every changed blob in one transaction."""
        blobs: dict[str, bytes | None] = {}
        for key in self._dirty:
            if key == "hierarchy":
                assert self._hierarchy is not None
                blobs[key] = self._hierarchy.to_json()
            elif key == "cache":
                blobs[key] = json.dumps(self._cache, separators=(",", ":")).encode()
            else:
                state = self._collections[key[len(_COLLECTION):]]
                blobs[key] = None if state is None else state.to_json()
        device = self.device
        stored = await self.store.get_device(device.user, device.device_id)
        if stored is None and self._committed:
            # The partnership was removed while this request waited (eas device remove):
            # writing it back would undo the removal.
            self._dirty.clear()
            return
        if stored is not None:
            for name, read in self._admin.items():
                theirs = getattr(stored, name)
                if theirs != read and getattr(device, name) == read:
                    setattr(device, name, theirs)
        await self.store.commit(device, blobs)
        self._committed = True
        self._admin = {name: getattr(device, name) for name in ADMIN_FIELDS}
        self._dirty.clear()
