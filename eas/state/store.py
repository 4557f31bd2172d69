"""The interface of a state storage engine (SQLite, PostgreSQL, memory)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from eas.state.model import AuditEvent, DeviceRecord


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

    async def update_device(self, user: str, device_id: str,
                            change: Callable[[DeviceRecord], None]) -> DeviceRecord | None:
        """In one transaction: read the device record, let ``change`` change it in place,
        write it, and return it (None: no such device, nothing called). An exception
        from ``change`` writes nothing and is raised. For administrators' changes (a
        wipe, a suspension), so that they never write back a stale copy of the record
        over what a request of the device committed meanwhile."""
        ...

    async def list_devices(self, user: str | None = None) -> list[DeviceRecord]:
        ...

    async def delete_device(self, user: str, device_id: str) -> None:
        """Forget the device and all its state."""
        ...

    async def reset_device(self, user: str, device_id: str) -> None:
        """Drop all sync state of the device, keeping its record (a full resync follows)."""
        ...

    async def get_setting(self, name: str) -> Any:
        """A setting's JSON value (access control, filters, jail...), None when unset.
        Names are dotted and may carry a scope: ``"abq.mode"``,
        ``"password.mobile:alice@example.com"``."""
        ...

    async def set_setting(self, name: str, value: Any) -> None:
        """Store a JSON-serialisable value; None removes the setting."""
        ...

    async def update_setting(self, name: str, change: Callable[[Any], Any]) -> Any:
        """In one transaction: read the setting (None when unset), store what
        ``change(value)`` returns (None removes it), and return that. An exception
        from ``change`` stores nothing and is raised. For lists and objects that two
        administrators may change at once (the ABQ lists, filters, groups, policies):
        neither change is lost. ``change`` runs under the store's lock: keep it short,
        and it must not call the store."""
        ...

    async def settings(self, prefix: str = "") -> dict[str, Any]:
        """Every setting whose name starts with ``prefix``, by name."""
        ...

    async def record_event(self, event: AuditEvent) -> None:
        """Append to the audit trail (never changed or removed by the library)."""
        ...

    async def events(self, *, user: str | None = None, device_id: str | None = None,
                     since: float | None = None, limit: int = 100) -> list[AuditEvent]:
        """The newest audit events first, filtered by user, device and time."""
        ...

    async def close(self) -> None:
        ...
