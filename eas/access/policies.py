"""Provisioning policies at global, group and user level: the built-in policy hook.
Being built (issue 5 item 3); until then the permissive policy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from eas.access import PolicyDecision

if TYPE_CHECKING:
    from eas.state.model import DeviceRecord
    from eas.state.store import StateStore

Groups = Callable[[str], "list[str] | Awaitable[list[str]]"]


class PolicyEngine:
    """``await engine(account, device)``: the policy that applies."""

    def __init__(self, store: StateStore, groups: Groups | None = None) -> None:
        self.store = store
        self.groups = groups

    async def __call__(self, account: str, device: DeviceRecord) -> PolicyDecision:
        return PolicyDecision()
