"""Mobile passwords (``eas.access.passwords``): once set, only they open ActiveSync and
Autodiscover; in process, around an embedder's own authenticate hook, and end to end
over HTTP with ``eas password`` changing a running ``eas serve``."""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path

import pytest

from eas.access.passwords import PREFIX, clear_mobile_password, mobile_passwords, set_mobile_password
from eas.protocol.http import HTTPRequest
from eas.state.memory import MemoryStateStore
from eas.store import passwords
from eas.tags import FolderHierarchy as FH
from eas.testing.client import Client, HTTPTransport, InProcess
from eas.testing.harness import make_app
from tests.test_cli_server import eas, serving

pytestmark = pytest.mark.kernel_independent

ALICE = "alice@example.com"


def basic(login: str, password: str) -> tuple[str, str]:
    return ("authorization", "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode())


def options(login: str, password: str) -> HTTPRequest:
    return HTTPRequest("OPTIONS", "/Microsoft-Server-ActiveSync", "", [basic(login, password)], b"", "127.0.0.1")


def autodiscover(login: str, password: str) -> HTTPRequest:
    body = (b'<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/exchange/'
            b'autodiscover/mobilesync/requestschema/2006"><Request><EMailAddress>alice@example.com</EMailAddress>'
            b'<AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/mobilesync/'
            b'responseschema/2006</AcceptableResponseSchema></Request></Autodiscover>')
    return HTTPRequest("POST", "/autodiscover/autodiscover.xml", "",
                       [basic(login, password), ("content-type", "text/xml")], body, "127.0.0.1")


def test_mobile_password_in_process(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, _ = make_app(tmp_path, users=((ALICE, "account-pw"), ("alice@other.example", "other-pw")))
        assert (await app.handle(options(ALICE, "account-pw"))).status == 200  # and now cached
        await set_mobile_password(app.store, ALICE, "phone-pw", actor="test")
        stored = await app.store.get_setting(PREFIX + ALICE)
        assert isinstance(stored, str) and "phone-pw" not in stored and passwords.verify_password("phone-pw", stored)
        app.forget_credentials()  # what the notify socket's account event does in eas serve
        for login in (ALICE, "ALICE@Example.com", "EXAMPLE\\alice@example.com"):
            assert (await app.handle(options(login, "account-pw"))).status == 401, login
            assert (await app.handle(options(login, "phone-pw"))).status == 200, login
        # A bare "alice" is both accounts' local part; only alice@example.com has a mobile
        # password, so it names that one for the mobile password.
        assert (await app.handle(options("alice", "phone-pw"))).status == 200
        assert (await app.handle(options("EXAMPLE\\alice", "phone-pw"))).status == 200
        assert (await app.handle(options(ALICE, "phone-pw2"))).status == 401
        assert (await app.handle(options(ALICE, ""))).status == 401
        # The other account is untouched.
        assert (await app.handle(options("alice@other.example", "other-pw"))).status == 200
        assert (await app.handle(options("alice@other.example", "phone-pw"))).status == 401
        # Autodiscover authenticates the same way.
        assert (await app.handle(autodiscover(ALICE, "account-pw"))).status == 401
        assert (await app.handle(autodiscover(ALICE, "phone-pw"))).status == 200
        # A full command goes through with it.
        c = Client(InProcess(app), ALICE, "phone-pw", version="14.1")
        await c.provision()
        r = await c.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>')
        assert r.status == 200 and r.text(FH.Status) == "1", r.xml
        assert await clear_mobile_password(app.store, ALICE, actor="test")
        assert not await clear_mobile_password(app.store, ALICE, actor="test")
        app.forget_credentials()
        assert (await app.handle(options(ALICE, "account-pw"))).status == 200
        assert (await app.handle(options(ALICE, "phone-pw"))).status == 401
        events = [(e.action, e.actor, e.user) for e in await app.store.events()]
        assert events == [("password.mobile.clear", "test", ALICE), ("password.mobile.set", "test", ALICE)]
        await app.store.close()

    asyncio.run(scenario())


def test_wraps_an_embedders_hook() -> None:
    """Any authenticate hook: accounts it knows keep working; for an account with a
    mobile password its answer is overruled; a stored value that is not a hash opens nothing."""
    calls: list[str] = []

    async def theirs(login: str, password: str) -> str | None:
        calls.append(login)
        return {"bob": "bob@corp.example", "carol": "carol@corp.example"}.get(login) if password == "sso" else None

    async def scenario() -> None:
        store = MemoryStateStore()
        check = mobile_passwords(store, theirs)
        assert await check("bob", "sso") == "bob@corp.example"
        await set_mobile_password(store, "Bob@Corp.example", "m0bile", actor="test")
        assert await check("bob", "sso") is None
        assert await check("bob", "m0bile") == "bob@corp.example"
        assert await check("bob@corp.example", "m0bile") == "bob@corp.example"
        assert await check("carol", "sso") == "carol@corp.example"
        assert await check("carol", "m0bile") is None
        await store.set_setting(PREFIX + "carol@corp.example", "not a hash")
        assert await check("carol", "not a hash") is None
        assert await check("carol", "sso") is None
        with pytest.raises(ValueError):
            await set_mobile_password(store, "bob@corp.example", "", actor="test")
        assert await check("bob", "m0bile") == "bob@corp.example"  # the refused change stored nothing

    asyncio.run(scenario())
    assert "bob@corp.example" not in calls  # a mobile password is checked without the wrapped hook


def test_mobile_password_over_http(tmp_path: Path) -> None:
    """``eas password set`` while the server runs: the account password, just used (so
    cached), is refused at once; the mobile one opens EAS; ``clear`` brings it back."""
    data = tmp_path / "data"
    assert eas("user", "add", ALICE, "--password", "account-pw", data_dir=data).returncode == 0
    with serving(data, "--no-tls") as server:
        transport = HTTPTransport(f"http://127.0.0.1:{server.port}")

        def status(login: str, password: str, request: object = options) -> int:
            return asyncio.run(transport(request(login, password))).status  # type: ignore[operator]

        assert status(ALICE, "account-pw") == 200
        r = eas("password", "set", ALICE, "--password", "phone-pw", data_dir=data)
        assert r.returncode == 0, r.stderr
        assert status(ALICE, "account-pw") == 401
        assert status(ALICE, "phone-pw") == 200
        assert status(ALICE, "account-pw", autodiscover) == 401
        assert status(ALICE, "phone-pw", autodiscover) == 200
        r = eas("password", "set", ALICE, "--generate", data_dir=data)
        assert r.returncode == 0, r.stderr
        generated = re.search(rb"password: (\S+)", r.stdout)
        assert generated is not None, r.stdout
        assert status(ALICE, "phone-pw") == 401
        assert status(ALICE, generated.group(1).decode()) == 200
        r = eas("password", "clear", ALICE, data_dir=data)
        assert r.returncode == 0, r.stderr
        assert status(ALICE, "account-pw") == 200
        assert status(ALICE, generated.group(1).decode()) == 401
    assert server.process.returncode == 0, server.stderr


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (("set", "nobody@example.com", "--password", "x"), b"", b"no such user"),
    (("set", ALICE, "--password", ""), b"", b"empty password"),
    (("set", ALICE), b"\n", b"empty password"),
    (("set", ALICE, "--password", "x" * 1025), b"", b"longer than 1024"),
    (("clear", ALICE), b"", b"has no mobile password"),
    (("clear", "nobody@example.com"), b"", b"no such user"),
])
def test_password_bad_input(tmp_path: Path, args: tuple[str, ...], stdin: bytes, message: bytes) -> None:
    data = tmp_path / "data"
    assert eas("user", "add", ALICE, "--password", "pw", data_dir=data).returncode == 0
    r = eas("password", *args, data_dir=data, stdin=stdin)
    assert r.returncode == 2 and message in r.stderr and b"Traceback" not in r.stderr, r
    r = eas("config", "list", data_dir=data)  # nothing stored: the state store has no mobile password
    assert r.returncode == 0

    async def stored() -> dict[str, object]:
        from eas.state.sqlite import SQLiteStateStore

        store = SQLiteStateStore(data / "state.db")
        try:
            return await store.settings(PREFIX)
        finally:
            await store.close()

    assert asyncio.run(stored()) == {}
