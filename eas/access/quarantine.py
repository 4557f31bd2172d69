"""The notice mailbox: what a quarantined or blocked device sees instead of the mail.
Being built (issue 5 item 2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eas.access import AccessDecision
    from eas.backend import Backend
    from eas.state.model import DeviceRecord
    from eas.state.store import StateStore

# Commands a restricted device may run as any device does (they read no mail) and those
# answered from the notice mailbox; every other command is refused with status 129.
PASS_COMMANDS = frozenset({"Settings", "Provision"})
MAILBOX_COMMANDS = frozenset({"FolderSync", "Sync", "Ping", "GetItemEstimate", "ItemOperations"})


class NoticeMailboxes:
    """``await notices.backend(account, device, decision)``: the notice mailbox of a
    restricted device as a Backend, or None when it is refused outright instead."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    async def backend(self, account: str, device: DeviceRecord, decision: AccessDecision) -> Backend | None:
        return None
