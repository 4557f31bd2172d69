"""Context: what a command handler gets (the parsed request, the device's state, the
backend, the configuration) and the few things it asks of the core (waiting for changes,
writing a WBXML response)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from eas.protocol.http import WBXML_CONTENT_TYPE, EASRequest, HTTPResponse
from eas.protocol.versions import Version, has_tag
from eas.state.session import DeviceState
from eas.wbxml import Node, Writer

if TYPE_CHECKING:
    from collections.abc import Collection, Coroutine
    from typing import Any

    from eas.backend import Backend
    from eas.config import Config
    from eas.core import ActiveSync
    from eas.merge import MergedBackend


@dataclass(slots=True)
class Context:
    """One request being handled. ``user`` is the authenticated account; ``body`` the
    decoded WBXML (None when the body is empty or raw MIME)."""

    server: ActiveSync
    request: EASRequest
    user: str
    state: DeviceState
    body: Node | None
    changes_seen: int = 0  # the user's change counter when the request began (see ActiveSync.wait_for_changes)
    merged: MergedBackend | None = None  # this device's view with merged folders (eas.merge), if it has one
    notices: Backend | None = None  # the notice mailbox of a quarantined or blocked device (eas.access.quarantine)

    @property
    def backend(self) -> Backend:
        if self.notices is not None:
            return self.notices
        return self.server.backend if self.merged is None else self.merged

    @property
    def config(self) -> Config:
        return self.server.config

    @property
    def version(self) -> Version:
        return self.request.version

    def has(self, tag: int) -> bool:
        """Whether the negotiated protocol version has ``tag``."""
        return has_tag(tag, self.request.version)

    def respond(self, writer: Writer | None = None, *, status: int = 200) -> HTTPResponse:
        """A response carrying the writer's WBXML (or an empty body)."""
        if writer is None:
            return HTTPResponse(status, [], b"")
        return HTTPResponse(status, [("Content-Type", WBXML_CONTENT_TYPE)], writer.getvalue())

    def wait(self, folder_ids: Collection[str], timeout: float) -> Coroutine[Any, Any, str]:
        """Commit the state, then wait until one of these backend folders changes
        (``"changed"``), ``timeout`` seconds pass (``"timeout"``), or a newer request
        of this device arrives (``"superseded"``). Nothing loaded is held meanwhile (it
        is read again when asked for), and ``body`` is None from here on (take what you
        need from it before waiting), since thousands of requests may be waiting. (The
        core's coroutine itself, not one more level: each costs ~250 bytes per wait.)"""
        if self.merged is not None:
            folder_ids = self.merged.watched(folder_ids)
        return self.server.wait_for_changes(self, folder_ids, timeout)
