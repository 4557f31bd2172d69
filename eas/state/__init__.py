"""SyncKey/SyncState persistence per (user, device).

``StateStore`` is what a storage engine implements: device records plus opaque state
blobs under keys, written in one transaction per request (``commit``). ``DeviceState``
is what command handlers use: typed, lazily loaded, committed by the core. Engines:
``eas.state.sqlite.SQLiteStateStore`` (default), ``eas.state.memory.MemoryStateStore``.
"""

from __future__ import annotations

from eas.state.model import CollectionState, DeviceRecord, FolderEntry, HierarchyState
from eas.state.session import DeviceState
from eas.state.store import StateStore

__all__ = ["CollectionState", "DeviceRecord", "DeviceState", "FolderEntry", "HierarchyState", "StateStore"]
