"""The interface of a state storage engine (SQLite, PostgreSQL, memory)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from eas.state.model import DeviceRecord


class StateStore(Protocol):
    """Device records and, per (user, device), state blobs under string keys
    (``"hierarchy"``, ``"collection:5"``, ``"cache"``). The core serialises the requests
    of one device, so an engine needs no locking beyond its own transactions. Driver
    errors are raised as ``eas.protocol.errors.StateError``."""

    async def get_device(self, user: str, device_id: str) -> DeviceRecord | None:
        ...

    async def load(self, user: str, device_id: str, key: str) -> bytes | None:
        """A state blob, or None when there is none."""
        ...

    async def commit(self, device: DeviceRecord, blobs: Mapping[str, bytes | None]) -> None:
        """In one transaction: write the device record and the blobs (None deletes one)."""
        ...

    async def list_devices(self, user: str | None = None) -> list[DeviceRecord]:
        ...

    async def delete_device(self, user: str, device_id: str) -> None:
        """Forget the device and all its state."""
        ...

    async def reset_device(self, user: str, device_id: str) -> None:
        """Drop all sync state of the device, keeping its record (a full resync follows)."""
        ...

    async def close(self) -> None:
        ...
