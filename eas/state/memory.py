"""An in-memory StateStore, for unit tests and one-shot tools. Not persistent."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from typing import Any

from eas.state.model import AuditEvent, DeviceRecord


class MemoryStateStore:
    """Keeps records as JSON text so that what it returns is never shared with a caller."""

    def __init__(self) -> None:
        self._devices: dict[tuple[str, str], str] = {}
        self._blobs: dict[tuple[str, str], dict[str, bytes]] = {}
        self._settings: dict[str, str] = {}
        self._events: list[AuditEvent] = []
        self._update_lock = threading.Lock()  # update_setting from several threads' loops

    async def get_device(self, user: str, device_id: str) -> DeviceRecord | None:
        text = self._devices.get((user, device_id))
        return DeviceRecord.from_json(text) if text else None

    async def load(self, user: str, device_id: str, key: str) -> bytes | None:
        return self._blobs.get((user, device_id), {}).get(key)

    async def commit(self, device: DeviceRecord, blobs: Mapping[str, bytes | None]) -> None:
        ident = (device.user, device.device_id)
        self._devices[ident] = device.to_json()
        stored = self._blobs.setdefault(ident, {})
        for key, value in blobs.items():
            if value is None:
                stored.pop(key, None)
            else:
                stored[key] = bytes(value)

    async def list_devices(self, user: str | None = None) -> list[DeviceRecord]:
        return [DeviceRecord.from_json(t) for (u, _), t in sorted(self._devices.items()) if user in (None, u)]

    async def delete_device(self, user: str, device_id: str) -> None:
        self._devices.pop((user, device_id), None)
        self._blobs.pop((user, device_id), None)

    async def reset_device(self, user: str, device_id: str) -> None:
        self._blobs.pop((user, device_id), None)

    async def get_setting(self, name: str) -> Any:
        text = self._settings.get(name)
        return None if text is None else json.loads(text)

    async def set_setting(self, name: str, value: Any) -> None:
        if value is None:
            self._settings.pop(name, None)
        else:
            self._settings[name] = json.dumps(value)

    async def update_device(self, user: str, device_id: str,
                            change: Callable[[DeviceRecord], None]) -> DeviceRecord | None:
        with self._update_lock:
            text = self._devices.get((user, device_id))
            if not text:
                return None
            device = DeviceRecord.from_json(text)
            change(device)
            self._devices[(user, device_id)] = device.to_json()
            return DeviceRecord.from_json(device.to_json())

    async def update_setting(self, name: str, change: Callable[[Any], Any]) -> Any:
        with self._update_lock:
            text = self._settings.get(name)
            value = change(None if text is None else json.loads(text))
            if value is None:
                self._settings.pop(name, None)
            else:
                self._settings[name] = json.dumps(value)
            return value

    async def settings(self, prefix: str = "") -> dict[str, Any]:
        return {k: json.loads(v) for k, v in sorted(self._settings.items()) if k.startswith(prefix)}

    async def record_event(self, event: AuditEvent) -> None:
        self._events.append(AuditEvent(**asdict(event)))

    async def events(self, *, user: str | None = None, device_id: str | None = None,
                     since: float | None = None, limit: int = 100) -> list[AuditEvent]:
        found = [e for e in reversed(self._events) if user in (None, e.user) and device_id in (None, e.device_id)
                 and (since is None or e.time >= since)]
        return [replace(e) for e in found[:max(0, limit)]]

    async def close(self) -> None:
        pass
