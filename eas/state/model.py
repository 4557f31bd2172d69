"""What is kept per device: its record, the folder hierarchy as last sent, and per
collection the sync key with the snapshot of what the device has.

A SyncKey is a decimal counter per collection that moves forward by one per response and
never goes back, not even when the device starts over with SyncKey 0, so a key from
before a restart can never be mistaken for a current one. The state of the key before
the current one is kept too (``previous``), so a device that repeats it (the response
never reached it) gets the same changes again; it is kept and stored as its difference
from the current snapshot, which is what makes a large folder's state cheap per request.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Self


@dataclass(slots=True)
class DeviceRecord:
    """One (user, device) partnership: identity, DeviceInformation, provisioning, access."""

    user: str
    device_id: str
    device_type: str = ""
    user_agent: str = ""
    protocol_version: str = ""
    first_seen: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)
    # Settings DeviceInformation (MS-ASCMD 2.2.3.47)
    model: str = ""
    imei: str = ""
    friendly_name: str = ""
    os: str = ""
    os_language: str = ""
    phone_number: str = ""
    mobile_operator: str = ""
    enable_outbound_sms: bool = False
    # Provisioning (MS-ASPROV): policy_key is the permanent key once acknowledged,
    # pending_policy_key the temporary one handed out in phase 1.
    policy_key: int = 0
    pending_policy_key: int = 0
    policy_status: int = 0  # the Status the device acknowledged with (1 applied, 2 partial, ...)
    policy_hash: str = ""  # of the policy the key was issued for
    # Remote wipe: "" none, "pending", "account-pending", "wiped", "account-wiped", "failed",
    # "account-failed" (eas.commands.provision, eas.access.devices)
    wipe: str = ""
    wipe_requested: float = 0.0
    wipe_acknowledged: float = 0.0
    # Access control (eas.access.abq): one of eas.access.STATES; the reason says who
    # decided (eas.access.REASONS); access_time is when the decision last changed.
    access: str = "allowed"
    access_reason: str = ""
    access_time: float = 0.0
    suspended: bool = False
    # What loop detection stopped sending (eas.loops.skip): dicts, for the admin.
    skipped_items: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        # Not dataclasses.asdict: it deep-copies every value, and the record is written on
        # every request (it was a third of a quiet request's time).
        return json.dumps({name: getattr(self, name) for name in _DEVICE_FIELD_ORDER}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> DeviceRecord:
        data = json.loads(text)
        return cls(**{k: v for k, v in data.items() if k in _DEVICE_FIELDS})


_DEVICE_FIELD_ORDER = tuple(f.name for f in fields(DeviceRecord))
_DEVICE_FIELDS = frozenset(_DEVICE_FIELD_ORDER)


@dataclass(slots=True)
class FolderEntry:
    """A folder as the device knows it: ``server_id`` is ours, ``backend_id`` the backend's."""

    server_id: str
    parent_id: str  # "0" at the top (MS-ASCMD 2.2.3.123)
    name: str
    type: int
    backend_id: str


@dataclass(slots=True)
class HierarchyState:
    """The folder hierarchy as last sent. ``id_map`` and ``next_id`` outlive a FolderSync
    with SyncKey 0, so server ids stay stable and collection states stay valid."""

    sync_key: int = 0
    folders: dict[str, FolderEntry] = field(default_factory=dict)  # by server_id
    id_map: dict[str, str] = field(default_factory=dict)  # backend_id -> server_id
    next_id: int = 1
    previous_key: int = 0
    previous_folders: dict[str, FolderEntry] | None = None

    def server_id(self, backend_id: str) -> str:
        """The stable server id of a backend folder, allocating one the first time."""
        sid = self.id_map.get(backend_id)
        if sid is None:
            sid = str(self.next_id)
            self.next_id += 1
            self.id_map[backend_id] = sid
        return sid

    def backend_id(self, server_id: str) -> str | None:
        entry = self.folders.get(server_id)
        return entry.backend_id if entry else None

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> HierarchyState:
        raw = json.loads(data)
        raw["folders"] = {k: FolderEntry(**v) for k, v in raw["folders"].items()}
        if raw.get("previous_folders") is not None:
            raw["previous_folders"] = {k: FolderEntry(**v) for k, v in raw["previous_folders"].items()}
        return cls(**raw)


class Snapshot(dict[str, str]):
    """``{backend item id: change stamp}`` that, once ``journal`` is set (a dict), notes
    the value each key had before its first change (None: absent). The previous key's
    state is then the snapshot with that journal undone: no copy of the folder is made to
    keep it, and it is written as the few entries it differs by."""

    __slots__ = ("journal",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.journal: dict[str, str | None] | None = None

    def _note(self, key: str) -> None:
        journal = self.journal
        if journal is not None and key not in journal:
            journal[key] = dict.get(self, key)

    def __setitem__(self, key: str, value: str) -> None:
        self._note(key)
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        self._note(key)
        dict.__delitem__(self, key)

    def pop(self, key: str, *default: Any) -> Any:
        self._note(key)
        return dict.pop(self, key, *default)

    def popitem(self) -> tuple[str, str]:
        key, value = dict.popitem(self)
        journal = self.journal
        if journal is not None and key not in journal:
            journal[key] = value
        return key, value

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._note(key)
        return dict.setdefault(self, key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __ior__(self, other: Any) -> Self:  # type: ignore[override,misc]
        self.update(other)
        return self

    def clear(self) -> None:
        journal = self.journal
        if journal is not None:
            for key, value in dict.items(self):
                journal.setdefault(key, value)
        dict.clear(self)

    def __reduce__(self) -> Any:  # copies and pickles are plain dicts, without the journal
        return (dict, (dict(self),))


class CollectionState:
    """One collection's sync state. ``snapshot`` maps backend item ids to the change stamp
    the device has; ``client_ids`` maps recent Add ClientIds to the ServerIds given, so a
    resent Add is not added twice; ``options`` are those in force (class, FilterType,
    BodyPreference, ...), kept as plain JSON data. ``previous`` is the same triple for
    ``sync_key - 1`` (``{"sync_key", "snapshot", "client_ids"}``).

    The previous key's state is held as a difference from the current snapshot, not as a
    second copy of it: after ``advance()`` the snapshot journals its changes, after
    loading the difference stays as it was read, and the full dict is only built when
    ``previous`` is read or ``rewind()`` needs it (rarely: a lost response). A
    ``previous`` that was read (and may have been changed in place) is diffed in full
    when written. The blob holds the snapshot as two arrays, ids and stamps, which JSON
    writes and reads faster than an object; blobs of the first format (``snapshot`` and
    ``previous`` as objects) still load."""

    __slots__ = ("_prev_client_ids", "_prev_delta", "_prev_key", "_previous", "_snapshot", "backend_id", "client_ids",
                 "collection_id", "extra", "options", "sync_key")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, collection_id: str, backend_id: str, sync_key: int = 0,
                 snapshot: dict[str, str] | None = None, client_ids: dict[str, str] | None = None,
                 options: dict[str, Any] | None = None, previous: dict[str, Any] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        self.collection_id = collection_id
        self.backend_id = backend_id
        self.sync_key = sync_key
        self._snapshot = Snapshot(snapshot or ())
        self.client_ids: dict[str, str] = {} if client_ids is None else client_ids
        self.options: dict[str, Any] = {} if options is None else options
        self.extra: dict[str, Any] = {} if extra is None else extra  # command-specific (pending ids, ...)
        # The previous key's state is one of: none (both None); held as a difference
        # (_prev_key set: _prev_delta is it against the snapshot as it was at advance() or
        # loading, whose changes since are in the snapshot's journal); or in full (_previous).
        self._previous: dict[str, Any] | None = previous
        self._prev_key: int | None = None
        self._prev_delta: dict[str, str | None] = {}
        self._prev_client_ids: dict[str, str] = {}

    # -- the snapshot and the previous key's state ------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @snapshot.setter
    def snapshot(self, value: dict[str, str]) -> None:
        if self._prev_key is not None:
            self._materialise()  # its difference is against the snapshot being replaced
        self._snapshot.journal = None
        self._snapshot = Snapshot(value)

    @property
    def previous(self) -> dict[str, Any] | None:
        """The previous key's state in full, built on first use; callers may change it."""
        if self._prev_key is not None:
            self._materialise()
        return self._previous

    @previous.setter
    def previous(self, value: dict[str, Any] | None) -> None:
        self._drop_delta()
        self._previous = value

    @property
    def previous_key(self) -> int | None:
        """The previous key, without building its state."""
        if self._prev_key is not None:
            return self._prev_key
        return None if self._previous is None else self._previous.get("sync_key")

    def _drop_delta(self) -> None:
        self._prev_key = None
        self._prev_delta = {}
        self._prev_client_ids = {}
        self._snapshot.journal = None

    def _pending(self) -> dict[str, str | None]:
        """How the previous key's snapshot differs from the current one: id -> its stamp
        there (None: not there). Only while held as a difference."""
        current = self._snapshot
        merged = dict(current.journal or ())
        merged.update(self._prev_delta)
        return {k: v for k, v in merged.items() if current.get(k) != v}

    def _built(self) -> dict[str, Any]:
        snapshot = dict(self._snapshot)
        for k, v in self._pending().items():
            if v is None:
                snapshot.pop(k, None)
            else:
                snapshot[k] = v
        return {"sync_key": self._prev_key, "snapshot": snapshot, "client_ids": dict(self._prev_client_ids)}

    def _materialise(self) -> None:
        built = self._built()
        self._drop_delta()
        self._previous = built

    def advance(self) -> None:
        """Remember the current key's state as ``previous`` and move to the next key."""
        self._previous = None
        self._prev_key = self.sync_key
        self._prev_delta = {}
        self._prev_client_ids = dict(self.client_ids)
        self._snapshot.journal = {}
        self.sync_key += 1

    def rewind(self) -> bool:
        """Go back to the previous key's state (the device repeated it); False if none."""
        previous = self.previous
        if previous is None:
            return False
        self._snapshot = Snapshot(previous["snapshot"])
        self.sync_key = previous["sync_key"]
        self.client_ids = dict(previous.get("client_ids") or {})
        self._previous = None
        return True

    # -- comparison and storage ---------------------------------------------------------------

    def _fields(self) -> tuple[Any, ...]:
        previous = self._built() if self._prev_key is not None else self._previous
        return (self.collection_id, self.backend_id, self.sync_key, self._snapshot, self.client_ids, self.options,
                previous, self.extra)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CollectionState):
            return NotImplemented
        return self._fields() == other._fields()

    def __repr__(self) -> str:
        return (f"CollectionState(collection_id={self.collection_id!r}, backend_id={self.backend_id!r}, "
                f"sync_key={self.sync_key!r}, {len(self._snapshot)} items, previous_key={self.previous_key!r})")

    def _previous_blob(self) -> dict[str, Any] | None:
        if self._prev_key is not None:
            pending = self._pending()
            client_ids = self._prev_client_ids
            key: Any = self._prev_key
        elif self._previous is not None:  # in full, perhaps changed in place: diff it all
            prev = self._previous.get("snapshot") or {}
            current = self._snapshot
            pending = {k: v for k, v in prev.items() if current.get(k) != v}
            if len(current) != len(prev) - sum(1 for k in pending if k not in current):
                pending.update((k, None) for k in current if k not in prev)
            client_ids = self._previous.get("client_ids") or {}
            key = self._previous.get("sync_key")
        else:
            return None
        kept = [(k, v) for k, v in pending.items() if v is not None]
        return {"sync_key": key, "client_ids": client_ids, "ids": [k for k, _ in kept], "stamps": [v for _, v in kept],
                "drop": [k for k, v in pending.items() if v is None]}

    def to_json(self) -> bytes:
        snapshot = self._snapshot
        return json.dumps({
            "format": 2, "collection_id": self.collection_id, "backend_id": self.backend_id,
            "sync_key": self.sync_key, "client_ids": self.client_ids, "options": self.options, "extra": self.extra,
            "previous": self._previous_blob(), "ids": list(snapshot), "stamps": list(snapshot.values()),
        }, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> CollectionState:
        raw = json.loads(data)
        if "snapshot" in raw:  # the first format: the snapshots as objects, the previous one in full
            return cls(raw["collection_id"], raw["backend_id"], raw.get("sync_key", 0), raw["snapshot"],
                       raw.get("client_ids"), raw.get("options"), raw.get("previous"), raw.get("extra"))
        ids, stamps = raw["ids"], raw["stamps"]
        if len(ids) != len(stamps):
            raise ValueError("collection state: ids and stamps differ in number")
        state = cls(raw["collection_id"], raw["backend_id"], raw["sync_key"], None, raw["client_ids"],
                    raw["options"], None, raw["extra"])
        state._snapshot = snapshot = Snapshot(zip(ids, stamps))
        prev = raw.get("previous")
        if prev is not None:
            delta: dict[str, str | None] = dict(zip(prev["ids"], prev["stamps"]))
            delta.update(dict.fromkeys(prev["drop"]))
            state._prev_key = prev["sync_key"]
            state._prev_delta = delta
            state._prev_client_ids = prev["client_ids"]
            snapshot.journal = {}
        return state


def diff(snapshot: dict[str, str], current: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
    """``(added, changed, deleted)`` ids between what the device has and what is there."""
    added = [k for k in current if k not in snapshot]
    get = snapshot.get
    changed = [k for k, v in current.items() if get(k, v) != v]
    deleted = [k for k in snapshot if k not in current]
    return added, changed, deleted


@dataclass(slots=True)
class AuditEvent:
    """One administrative decision or change, kept in the state store's audit trail:
    who (``actor``: ``"cli"``, ``"web:admin"``, ``"abq"``, ``"jail"``, ...) did what
    (``action``: ``"device.blocked"``, ``"setting.set"``, ...) to whom, and why."""

    action: str
    actor: str = "system"
    user: str = ""
    device_id: str = ""
    detail: str = ""
    time: float = field(default_factory=time.time)

