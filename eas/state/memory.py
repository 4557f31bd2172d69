"""An in-memory StateStore, for unit tests and one-shot tools. Not persistent."""

from __future__ import annotations

from collections.abc import Mapping

from eas.state.model import DeviceRecord


class MemoryStateStore:
    """Keeps records as JSON text so that what it returns is never shared with a caller."""

    def __init__(self) -> None:
        self._devices: dict[tuple[str, str], str] = {}
        self._blobs: dict[tuple[str, str], dict[str, bytes]] = {}

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

    async def close(self) -> None:
        pass
