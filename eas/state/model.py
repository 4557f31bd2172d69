"""What is kept per device: its record, the folder hierarchy as last sent, and per
collection the sync key with the snapshot of what the device has.

A SyncKey is a decimal counter per collection that moves forward by one per response and
never goes back, not even when the device starts over with SyncKey 0, so a key from
before a restart can never be mistaken for a current one. The state of the key before
the current one is kept too (``previous``), so a device that repeats it (the response
never reached it) gets the same changes again.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any


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
    # Remote wipe: "" none, "pending", "account-pending", "wiped", "account-wiped", "failed"
    wipe: str = ""
    wipe_requested: float = 0.0
    wipe_acknowledged: float = 0.0
    # Access control: "allowed", "blocked", "quarantined"; the reason says who decided.
    access: str = "allowed"
    access_reason: str = ""
    suspended: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> DeviceRecord:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


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


@dataclass(slots=True)
class CollectionState:
    """One collection's sync state. ``snapshot`` maps item ServerIds to the change stamp
    the device has; ``client_ids`` maps recent Add ClientIds to the ServerIds given, so a
    resent Add is not added twice; ``options`` are those in force (class, FilterType,
    BodyPreference, ...), kept as plain JSON data. ``previous`` is the same triple for
    ``sync_key - 1``."""

    collection_id: str
    backend_id: str
    sync_key: int = 0
    snapshot: dict[str, str] = field(default_factory=dict)
    client_ids: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    previous: dict[str, Any] | None = None  # {"sync_key", "snapshot", "client_ids"}
    extra: dict[str, Any] = field(default_factory=dict)  # command-specific (pending ids, ...)

    def advance(self) -> None:
        """Remember the current key's state as ``previous`` and move to the next key."""
        self.previous = {"sync_key": self.sync_key, "snapshot": dict(self.snapshot),
                         "client_ids": dict(self.client_ids)}
        self.sync_key += 1

    def rewind(self) -> bool:
        """Go back to the previous key's state (the device repeated it); False if none."""
        if self.previous is None:
            return False
        self.sync_key = self.previous["sync_key"]
        self.snapshot = dict(self.previous["snapshot"])
        self.client_ids = dict(self.previous["client_ids"])
        self.previous = None
        return True

    def to_json(self) -> bytes:
        # Not asdict(): it deep-copies the snapshots, which cost most of an initial sync
        # of a large folder. The fields hold only JSON data, so a shallow dict is the same.
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)}, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> CollectionState:
        return cls(**json.loads(data))


def diff(snapshot: dict[str, str], current: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
    """``(added, changed, deleted)`` ids between what the device has and what is there."""
    added = [k for k in current if k not in snapshot]
    changed = [k for k, v in current.items() if k in snapshot and snapshot[k] != v]
    deleted = [k for k in snapshot if k not in current]
    return added, changed, deleted
