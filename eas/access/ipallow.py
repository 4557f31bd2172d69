"""The IP allow-list: which addresses may reach the endpoint, and who the client is.

The client is the peer, unless the peer is a trusted proxy: then X-Forwarded-For is read
from the right, skipping trusted proxies, and the first address that is not one is the
client (an address further left was written by whoever sent the request, so it proves
nothing). A header that cannot be read there leaves the client unknown: refused when the
list is on, the peer otherwise. With ``ip.allow_enabled`` on, a client outside every
``ip.allow`` network gets 403 before authentication.

Settings are read through a cache of ``CACHE_SECONDS``, so an ``eas config set`` reaches
a running server within that time without a database read per request.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any

from eas.access import register
from eas.protocol.http import HTTPRequest
from eas.state.model import AuditEvent
from eas.state.store import StateStore

log = logging.getLogger("eas.access.ipallow")

CACHE_SECONDS = 1.0
MAX_HOPS = 32  # X-Forwarded-For entries read from the right, at most
DENIAL_LOG_SECONDS = 60.0  # one audit event per refused address in this time

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _networks(value: Any) -> list[str]:
    """A list of CIDR strings, normalised (``10.1.2.3/8`` is refused: host bits set)."""
    if not isinstance(value, list):
        raise TypeError("expected a JSON list of CIDR networks, such as [\"10.0.0.0/8\", \"2001:db8::/32\"]")
    out = []
    for entry in value:
        if not isinstance(entry, str):
            raise TypeError(f"not a CIDR network: {entry!r}")
        try:
            out.append(str(ipaddress.ip_network(entry.strip())))
        except ValueError as e:
            raise ValueError(f"not a CIDR network: {entry!r} ({e})") from None
    return out


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected true or false")
    return value


register("ip.allow_enabled", _bool, False, "refuse (403) every client outside ip.allow")
register("ip.allow", _networks, [], "CIDR networks allowed when ip.allow_enabled is on")
register("ip.trusted_proxies", _networks, [], "reverse proxies (CIDR) whose X-Forwarded-For is believed")


def parse_address(text: str) -> Address | None:
    """An address as peers and proxies write it (``1.2.3.4``, ``1.2.3.4:80``, ``::1``,
    ``[::1]:80``); IPv4-mapped IPv6 as IPv4. None when it is none of these."""
    text = text.strip()
    port = None
    if text.startswith("["):
        text, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:] if rest else None
    elif text.count(":") == 1:  # IPv4 with a port
        text, _, port = text.partition(":")
    if port is not None and not (port.isascii() and port.isdigit() and len(port) <= 5):
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _within(address: Address, networks: list[Network]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def resolve_client(peer: str, forwarded_for: list[str], trusted: list[Network]) -> Address | None:
    """The client's address, or None when it cannot be told (see the module docstring)."""
    address = parse_address(peer)
    if address is None or not _within(address, trusted):
        return address
    hops = [h for value in forwarded_for for h in value.split(",")][-MAX_HOPS:]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            return None
        if not _within(address, trusted):
            return address
    return address  # every hop a trusted proxy: the leftmost is the client


class IPAllowList:
    """The built-in client-address hook of ``ActiveSync``: ``await hook(http)`` is the
    client's address, or None to refuse the request."""

    def __init__(self, store: StateStore, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self._until = float("-inf")
        self._enabled = False
        self._allow: list[Network] = []
        self._trusted: list[Network] = []
        self._denials: dict[str, float] = {}

    async def _refresh(self) -> None:
        now = self.clock()
        if now < self._until:
            return
        values = await self.store.settings("ip.")
        self._enabled = values.get("ip.allow_enabled") is True
        self._allow = _read_networks(values.get("ip.allow"))
        self._trusted = _read_networks(values.get("ip.trusted_proxies"))
        self._until = now + CACHE_SECONDS

    async def __call__(self, http: HTTPRequest) -> str | None:
        await self._refresh()
        forwarded = [v for k, v in http.headers if k == "x-forwarded-for"]
        address = resolve_client(http.client, forwarded, self._trusted)
        if not self._enabled:
            return str(address) if address is not None else http.client
        if address is not None and _within(address, self._allow):
            return str(address)
        await self._denied(str(address) if address is not None else f"unknown (peer {http.client})")
        return None

    async def _denied(self, who: str) -> None:
        """Audit a refusal, once per address per ``DENIAL_LOG_SECONDS`` (a scanner must
        not fill the trail)."""
        now = self.clock()
        if self._denials.get(who, float("-inf")) > now:
            return
        if len(self._denials) >= 10000:
            self._denials = {k: v for k, v in self._denials.items() if v > now}
        self._denials[who] = now + DENIAL_LOG_SECONDS
        await self.store.record_event(AuditEvent("ip.denied", actor="ipallow", detail=who))


def _read_networks(value: Any) -> list[Network]:
    """Stored networks; an entry that is not one (written past ``eas config``) is skipped."""
    out: list[Network] = []
    for entry in value if isinstance(value, list) else []:
        try:
            out.append(ipaddress.ip_network(str(entry), strict=False))
        except ValueError:
            log.warning("ignoring %r in the IP settings: not a CIDR network", entry)
    return out
