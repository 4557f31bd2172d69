"""The request-rate jail (DoS filter) and the cap on concurrent requests per account.

Runs after authentication and before the device lock. Each request counts against two
keys, its device (account, device id) and its account; a key that makes more than
``jail.max_requests`` requests in ``jail.window`` seconds is jailed for ``jail.duration``
seconds: its requests get HTTP 503 with Retry-After (the jail time left) and never reach
the device lock or the state store. Each jailing is recorded once (audit event
``jail``, and a log warning; mail alerts wait for the SMTP notifier). A request beyond
``jail.max_concurrent`` of one account in progress at once gets 503 too, except a
request of a device whose long poll it ends (it takes that poll's slot). Everything is
off unless ``jail.enabled``.

The counters are in memory, per process (several server processes each count their
own share). The window slides by weighting the previous fixed window's count by how much
of it still overlaps, so each key costs three numbers; idle keys are evicted and the
number of keys is capped, so a flood of made-up device ids cannot grow memory without
bound. Settings are read from the StateStore at most once a second, so an ``eas config
set`` reaches a running server within a second; ``eas service restart anti-dos`` clears
the jails over the notify socket (``clear``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eas.access import SETTINGS, register
from eas.protocol import status as st
from eas.protocol.errors import EASError
from eas.state.model import AuditEvent
from eas.state.store import StateStore

log = logging.getLogger("eas.jail")

MAX_KEYS = 50_000  # counters kept at most; beyond, idle ones go, then the oldest
SETTINGS_TTL = 1.0  # seconds a read of the settings is reused

Key = tuple[str, str]  # ("device", "user\0device id") or ("account", user)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")  # noqa: TRY004 (eas config reports ValueError)
    return value


def _positive(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10**9:
        raise ValueError("expected a whole number from 1 to 1000000000")
    return value


register("jail.enabled", _boolean, False, "jail devices and accounts that send too many requests, "
         "and cap the requests of one account in progress at once")
register("jail.window", _positive, 30, "seconds over which the jail counts requests")
register("jail.max_requests", _positive, 150, "requests one device, or one account, may make in the window")
register("jail.duration", _positive, 600, "seconds a jailed device or account is refused (503)")
register("jail.max_concurrent", _positive, 16, "requests of one account in progress at once (Pings count)")


@dataclass(slots=True)
class _Counter:
    start: float  # beginning of the current fixed window
    current: int = 0
    previous: int = 0


class Jail:
    """The built-in engine. ``clock`` (seconds, monotonic) is injectable for tests."""

    def __init__(self, store: StateStore, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self._counters: dict[Key, _Counter] = {}
        self._jailed: dict[Key, float] = {}  # key -> release time
        self._running: dict[str, int] = {}  # account -> requests in progress
        self._settings: dict[str, Any] = {}
        self._read_at = -math.inf
        self.refused = 0  # requests answered 503 since start

    async def settings(self) -> dict[str, Any]:
        """The ``jail.*`` settings in force (stored value, or the registry's default)."""
        now = time.monotonic()
        if now - self._read_at >= SETTINGS_TTL:
            stored = await self.store.settings("jail.")
            out = {}
            for name, setting in SETTINGS.items():
                if name.startswith("jail."):
                    try:
                        value = stored.get(name)
                        out[name] = setting.default if value is None else setting.check(value)
                    except ValueError:
                        log.warning("jail: ignored the invalid setting %s=%r", name, stored[name])
                        out[name] = setting.default
            self._settings, self._read_at = out, now
        return self._settings

    def reload(self) -> None:
        """Read the settings again on the next request."""
        self._read_at = -math.inf

    def clear(self) -> int:
        """Release every jail and forget the counters (``eas service restart anti-dos``);
        the number of jails released."""
        released = sum(1 for until in self._jailed.values() if until > self.clock())
        self._jailed.clear()
        self._counters.clear()
        self.reload()
        return released

    def state(self) -> dict[str, Any]:
        """What ``eas service list`` shows."""
        now = self.clock()
        return {"jailed": sorted(_name(k) for k, until in self._jailed.items() if until > now),
                "counters": len(self._counters), "running": sum(self._running.values()),
                "refused": self.refused}

    async def admit(self, user: str, device_id: str, *, replaces: bool = False) -> Callable[[], None]:
        """Count one request; 503 when its device or account is jailed or the account has
        too many requests in progress. ``replaces``: the request ends a long poll of the
        same device (its slot is as good as free). Returns the call that frees the slot."""
        s = await self.settings()
        if not s["jail.enabled"]:
            return _nothing
        now = self.clock()
        keys = (("device", f"{user}\0{device_id}"), ("account", user))
        wait = max((self._jailed.get(k, now) - now for k in keys), default=0.0)
        if wait > 0:
            self.refused += 1
            raise _unavailable("jailed", wait)
        for key in keys:
            if self._count(key, now, s["jail.window"]) > s["jail.max_requests"]:
                await self._jail(key, user, device_id, now, s)
                self.refused += 1
                raise _unavailable("jailed", s["jail.duration"])
        running = self._running.get(user, 0)
        if running >= s["jail.max_concurrent"] and not replaces:
            self.refused += 1
            log.info("jail: %s has %d requests in progress; refused one of %s", user, running, device_id)
            raise _unavailable("too many requests in progress", 1)
        self._running[user] = running + 1
        return lambda: self._release(user)

    def _release(self, user: str) -> None:
        left = self._running.get(user, 1) - 1
        if left > 0:
            self._running[user] = left
        else:
            self._running.pop(user, None)

    def _count(self, key: Key, now: float, window: float) -> float:
        """Count a request of ``key``; the requests in the window sliding to ``now``."""
        counter = self._counters.get(key)
        if counter is None:
            if len(self._counters) >= MAX_KEYS:
                self._evict(now, window)
            counter = self._counters[key] = _Counter(now)
        elapsed = now - counter.start
        if elapsed >= 2 * window:
            counter.start, counter.previous, counter.current = now, 0, 0
            elapsed = 0.0
        elif elapsed >= window:
            counter.start += window
            counter.previous, counter.current = counter.current, 0
            elapsed -= window
        counter.current += 1
        return counter.current + counter.previous * (1 - elapsed / window)

    def _evict(self, now: float, window: float) -> None:
        """Make room: drop counters idle for two windows and ended jails; if none were,
        the older half of the counters (insertion order)."""
        self._jailed = {k: until for k, until in self._jailed.items() if until > now}
        self._counters = {k: c for k, c in self._counters.items() if now - c.start < 2 * window}
        if len(self._counters) >= MAX_KEYS:
            keep = list(self._counters.items())[len(self._counters) // 2:]
            self._counters = dict(keep)

    async def _jail(self, key: Key, user: str, device_id: str, now: float, s: dict[str, Any]) -> None:
        if len(self._jailed) >= MAX_KEYS:
            self._jailed = {k: until for k, until in self._jailed.items() if until > now}
        self._jailed[key] = now + s["jail.duration"]
        self._counters.pop(key, None)  # counting starts afresh once the jail ends
        what = "device" if key[0] == "device" else "account"
        detail = (f"{what} sent more than {s['jail.max_requests']} requests in {s['jail.window']} s; "
                  f"jailed for {s['jail.duration']} s")
        log.warning("jail: %s %s: %s", user, device_id if what == "device" else "(all devices)", detail)
        await self.store.record_event(AuditEvent("jail", actor="jail", user=user,
                                                 device_id=device_id if what == "device" else "",
                                                 detail=detail))


def _name(key: Key) -> str:
    return key[1].replace("\0", " ") if key[0] == "device" else f"{key[1]} (account)"


def _unavailable(why: str, seconds: float) -> EASError:
    return EASError(why, http_status=st.SERVICE_UNAVAILABLE,
                    headers={"Retry-After": str(max(1, math.ceil(seconds)))})


def _nothing() -> None:
    pass
