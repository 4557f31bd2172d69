"""ABQ (Allow/Block/Quarantine): the built-in access hook. Being built (issue 5 item 2);
until then every device is allowed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from eas.access import AccessDecision

if TYPE_CHECKING:
    from eas.protocol.http import EASRequest
    from eas.state.model import DeviceRecord
    from eas.state.store import StateStore


class ABQ:
    """The ABQ engine: ``await abq(request, account, device)`` gives the decision."""

    def __init__(self, store: StateStore, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock

    async def __call__(self, request: EASRequest, account: str, device: DeviceRecord) -> AccessDecision:
        return AccessDecision()
