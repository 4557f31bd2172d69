"""The IP allow-list (``eas.access.ipallow``): who the client is behind trusted proxies,
403 before authentication for the others; in process on a clock the test controls, and
end to end over HTTP against a real ``eas serve`` changed by ``eas config`` while it runs."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import time
from pathlib import Path

import pytest

from eas.access.ipallow import CACHE_SECONDS, IPAllowList, parse_address, resolve_client
from eas.protocol.http import HTTPRequest
from eas.state.memory import MemoryStateStore
from eas.testing.client import Client, HTTPTransport
from eas.testing.harness import make_app
from tests.test_cli_server import eas, serving

pytestmark = pytest.mark.kernel_independent

PATH = "/Microsoft-Server-ActiveSync"
TRUSTED = [ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("fd00::/64")]


@pytest.mark.parametrize(("text", "expected"), [
    ("192.0.2.1", "192.0.2.1"), (" 192.0.2.1 ", "192.0.2.1"), ("192.0.2.1:4711", "192.0.2.1"),
    ("2001:db8::1", "2001:db8::1"), ("[2001:db8::1]", "2001:db8::1"), ("[2001:db8::1]:443", "2001:db8::1"),
    ("::ffff:192.0.2.9", "192.0.2.9"),  # IPv4-mapped: matched against IPv4 networks
    ("", None), ("unknown", None), ("192.0.2.256", None), ("1.2.3.4:80:90", None), ("[::1", None),
    ("[::1]x", None), ("[::1]:", None),    ("192.0.2.1:http", None), ("192.0.2.1:", None), ("[192.0.2.1]:80", "192.0.2.1"),
    ("_hidden", None), ("192.0.2.1/32", None),
])
def test_parse_address(text: str, expected: str | None) -> None:
    address = parse_address(text)
    assert (None if address is None else str(address)) == expected


@pytest.mark.parametrize(("peer", "xff", "expected"), [
    # An untrusted peer is the client, whatever it claims.
    ("192.0.2.7", ["10.0.0.9"], "192.0.2.7"),
    ("192.0.2.7", ["garbage"], "192.0.2.7"),
    # A trusted proxy: the rightmost address that is not a trusted proxy.
    ("10.0.0.1", ["198.51.100.4"], "198.51.100.4"),
    ("10.0.0.1", ["203.0.113.5, 198.51.100.4"], "198.51.100.4"),  # 203.0.113.5: written by the client
    ("10.0.0.1", ["198.51.100.4, 10.0.0.2, 10.0.0.3"], "198.51.100.4"),  # a chain of proxies
    ("10.0.0.1", ["198.51.100.4", "10.0.0.2"], "198.51.100.4"),  # two headers, in order
    ("10.0.0.1", ["10.0.0.2, 10.0.0.3"], "10.0.0.2"),  # only proxies: the first of them
    ("10.0.0.1", [], "10.0.0.1"),  # the proxy itself asks
    ("10.0.0.1", ["[2001:db8::5]:1234, fd00::2"], "2001:db8::5"),
    ("fd00::1", ["2001:db8::5"], "2001:db8::5"),
    ("::ffff:10.0.0.1", ["198.51.100.4"], "198.51.100.4"),
    # Unreadable where it counts: unknown. Past the client it is never read.
    ("10.0.0.1", ["198.51.100.4, bogus"], None),
    ("10.0.0.1", ["198.51.100.4,"], None),
    ("10.0.0.1", ["bogus, 198.51.100.4"], "198.51.100.4"),
    ("", ["198.51.100.4"], None),
])
def test_resolve_client(peer: str, xff: list[str], expected: str | None) -> None:
    address = resolve_client(peer, xff, TRUSTED)
    assert (None if address is None else str(address)) == expected


def options(client: str, *headers: tuple[str, str], password: str = "pw") -> HTTPRequest:
    token = base64.b64encode(f"alice@example.com:{password}".encode()).decode()
    return HTTPRequest("OPTIONS", PATH, "", [("authorization", f"Basic {token}"), *headers], b"", client)


def test_allow_list_in_process_with_a_clock(tmp_path: Path) -> None:
    """403 before authentication outside the list; settings read again once the cache
    is older than CACHE_SECONDS; the resolved address replaces the peer on the request
    for the later engines; one audit event per refused address and minute."""
    now = [1000.0]

    async def scenario() -> None:
        app, _ = make_app(tmp_path, users=(("alice@example.com", "pw"),))
        hook = IPAllowList(app.store, clock=lambda: now[0])
        app.client_address = hook
        assert (await app.handle(options("192.0.2.7"))).status == 200  # the list is off
        await app.store.set_setting("ip.allow_enabled", True)
        await app.store.set_setting("ip.allow", ["198.51.100.0/24", "2001:db8::/32"])
        assert (await app.handle(options("192.0.2.7"))).status == 200  # cached for CACHE_SECONDS
        now[0] += CACHE_SECONDS
        assert (await app.handle(options("192.0.2.7"))).status == 403
        assert (await app.handle(options("192.0.2.7", password="wrong"))).status == 403  # before authentication
        assert (await app.handle(options("198.51.100.4"))).status == 200
        assert (await app.handle(options("198.51.100.4", password="wrong"))).status == 401
        assert (await app.handle(options("2001:db8::77"))).status == 200
        assert (await app.handle(options("2001:db9::77"))).status == 403
        assert (await app.handle(options(""))).status == 403  # no peer address (a WSGI server without REMOTE_ADDR)
        # Spoofing from an untrusted peer does nothing; from a trusted proxy it is believed.
        spoof = ("x-forwarded-for", "198.51.100.4")
        assert (await app.handle(options("10.0.0.1", spoof))).status == 403
        await app.store.set_setting("ip.trusted_proxies", ["10.0.0.0/24"])
        now[0] += CACHE_SECONDS
        request = options("10.0.0.1", spoof)
        assert (await app.handle(request)).status == 200
        assert request.client == "198.51.100.4"  # what the rate jail and the others see
        assert (await app.handle(options("10.0.0.1", ("x-forwarded-for", "198.51.100.4, 192.0.2.7")))).status == 403
        assert (await app.handle(options("10.0.0.1", ("x-forwarded-for", "198.51.100.4, 10.0.0.5")))).status == 200
        assert (await app.handle(options("10.0.0.1", ("x-forwarded-for", "198.51.100.4, %zz")))).status == 403
        # The list off again: a malformed header from a proxy leaves the proxy as the client.
        await app.store.set_setting("ip.allow_enabled", False)
        now[0] += CACHE_SECONDS
        request = options("10.0.0.1", ("x-forwarded-for", "not an address"))
        assert (await app.handle(request)).status == 200
        assert request.client == "10.0.0.1"
        denied = [e for e in await app.store.events(limit=1000) if e.action == "ip.denied"]
        assert sorted(e.detail for e in denied) == sorted(
            ["192.0.2.7", "2001:db9::77", "unknown (peer )", "10.0.0.1", "unknown (peer 10.0.0.1)"])
        assert all(e.actor == "ipallow" for e in denied)
        await app.store.close()

    asyncio.run(scenario())


def test_denials_are_audited_once_a_minute_per_address() -> None:
    now = [0.0]

    async def scenario() -> None:
        store = MemoryStateStore()
        await store.set_setting("ip.allow_enabled", True)
        hook = IPAllowList(store, clock=lambda: now[0])
        for _ in range(50):
            assert await hook(options("192.0.2.7")) is None
        now[0] += 61
        assert await hook(options("192.0.2.7")) is None
        assert [e.detail for e in await store.events()] == ["192.0.2.7", "192.0.2.7"]

    asyncio.run(scenario())


def test_stored_garbage_is_skipped_not_fatal() -> None:
    """A value written past ``eas config`` (not a list, not networks) does not break requests."""

    async def scenario() -> None:
        store = MemoryStateStore()
        await store.set_setting("ip.allow_enabled", True)
        await store.set_setting("ip.allow", ["nonsense", 7, "192.0.2.0/24"])
        await store.set_setting("ip.trusted_proxies", "10.0.0.1")
        hook = IPAllowList(store)
        assert await hook(options("192.0.2.7")) == "192.0.2.7"
        assert await hook(options("10.0.0.1", ("x-forwarded-for", "192.0.2.7"))) is None

    asyncio.run(scenario())


def until(check: object, seconds: float = 5.0) -> bool:
    """Poll ``check()`` (a coroutine function) until true; the server's settings cache
    is CACHE_SECONDS, so a change shows within about that."""

    async def poll() -> bool:
        deadline = time.monotonic() + seconds
        while True:
            if await check():  # type: ignore[operator]
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)

    return asyncio.run(poll())


def test_allow_list_over_http_with_proxies(tmp_path: Path) -> None:
    """``eas config`` changes reach a running ``eas serve``: the loopback peer refused,
    then let through as a trusted proxy for an allowed client, spoofing ignored once it
    is no longer trusted, and chains read from the right."""
    data = tmp_path / "data"
    assert eas("user", "add", "alice@example.com", "--password", "pw", data_dir=data).returncode == 0
    with serving(data, "--no-tls") as server:

        transport = HTTPTransport(f"http://127.0.0.1:{server.port}")

        def becomes(expected: int, xff: str | None = None, password: str = "pw") -> bool:
            async def check() -> bool:
                extra = [("X-Forwarded-For", xff)] if xff is not None else []
                return (await transport(options("", *extra, password=password))).status == expected
            return until(check)

        assert becomes(200)
        for args in (("ip.allow", '["198.51.100.0/24"]'), ("ip.allow_enabled", "true")):
            assert eas("config", "set", *args, data_dir=data).returncode == 0
        assert becomes(403)
        assert becomes(403, password="wrong")  # refused before authentication
        assert becomes(403, xff="198.51.100.4")  # loopback is not a trusted proxy (yet)
        assert eas("config", "set", "ip.trusted_proxies", '["127.0.0.0/8"]', data_dir=data).returncode == 0
        assert becomes(200, xff="198.51.100.4")
        assert becomes(401, xff="198.51.100.4", password="wrong")
        assert becomes(403)  # the proxy itself is not allowed
        assert becomes(403, xff="198.51.100.4, 192.0.2.1")  # the rightmost untrusted address counts
        assert becomes(200, xff="192.0.2.1, 198.51.100.4, 127.0.0.5")  # a chain of proxies
        assert becomes(403, xff="198.51.100.4, [zz")  # malformed header
        assert becomes(403, xff="")
        assert eas("config", "clear", "ip.trusted_proxies", data_dir=data).returncode == 0
        assert becomes(403, xff="198.51.100.4")  # spoofing from an untrusted peer
        assert eas("config", "set", "ip.allow_enabled", "false", data_dir=data).returncode == 0
        assert becomes(200, xff="garbage")
    assert server.process.returncode == 0, server.stderr


def test_allow_list_over_http_ipv6(tmp_path: Path) -> None:
    """An IPv6 peer (``eas serve --host ::1``) matched against IPv6 networks."""
    data = tmp_path / "data"
    assert eas("user", "add", "alice@example.com", "--password", "pw", data_dir=data).returncode == 0
    for args in (("ip.allow", '["10.0.0.0/8", "::1/128"]'), ("ip.allow_enabled", "true")):
        assert eas("config", "set", *args, data_dir=data).returncode == 0
    with serving(data, "--no-tls", "--host", "::1") as server:

        async def status() -> int:
            c = Client(HTTPTransport(f"http://[::1]:{server.port}"), "alice@example.com", "pw")
            return (await c.options()).status

        assert asyncio.run(status()) == 200
        assert eas("config", "set", "ip.allow", '["10.0.0.0/8", "2001:db8::/32"]', data_dir=data).returncode == 0

        async def refused() -> bool:
            return await status() == 403

        assert until(refused)


def test_autodiscover_and_unknown_paths_are_behind_the_list(tmp_path: Path) -> None:
    """The list guards the whole endpoint, not only the ActiveSync path."""

    async def scenario() -> None:
        app, _ = make_app(tmp_path, users=(("alice@example.com", "pw"),))
        await app.store.set_setting("ip.allow_enabled", True)
        await app.store.set_setting("ip.allow", ["198.51.100.0/24"])
        for path in ("/autodiscover/autodiscover.xml", "/elsewhere"):
            for client, expected in (("192.0.2.7", 403), ("198.51.100.4", 401 if path.startswith("/auto") else 404)):
                request = HTTPRequest("POST", path, "", [], b"<Autodiscover/>", client)
                assert (await app.handle(request)).status == expected, (path, client)
        await app.store.close()

    asyncio.run(scenario())
