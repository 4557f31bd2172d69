"""The core's gatekeeping and error conversion, through real requests to a real app
(reference store, SQLite state): authentication, OPTIONS, paths and methods, version
and command checks, provisioning, malformed bodies, gzip, and failures never leaking."""

from __future__ import annotations

import asyncio
import base64
import gzip
from pathlib import Path

import pytest

from eas.core import ActiveSync, PolicyDecision
from eas.protocol.http import HTTPRequest
from eas.tags import FolderHierarchy as FH
from eas.testing.harness import USERS, client, make_app

ALICE, ALICE_PW = USERS[0]
FOLDERSYNC = '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>'


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def basic(user: str, password: str) -> tuple[str, str]:
    return ("authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())


def test_options_needs_credentials_and_lists_versions_and_commands(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)

    async def scenario() -> None:
        anonymous = await app.handle(HTTPRequest("OPTIONS", "/Microsoft-Server-ActiveSync", "", []))
        assert anonymous.status == 401
        assert dict(anonymous.headers)["WWW-Authenticate"].startswith("Basic")
        reply = await client(app).options()
        assert reply.status == 200
        assert reply.headers["ms-asprotocolversions"] == "2.5,12.0,12.1,14.0,14.1,16.0,16.1"
        commands = reply.headers["ms-asprotocolcommands"].split(",")
        assert "Sync" in commands and "FolderSync" in commands and "Ping" in commands

    run(scenario())


@pytest.mark.parametrize(
    ("login", "password"),
    [(ALICE, "wrong"), ("nobody@example.com", "x"), (ALICE, ""), ("", ALICE_PW)],
)
def test_refused_credentials_get_401_with_challenge(tmp_path: Path, login: str, password: str) -> None:
    app, _ = make_app(tmp_path)
    reply = run(client(app, login, password).command("FolderSync", FOLDERSYNC))
    assert reply.status == 401 and reply.headers["www-authenticate"].startswith("Basic") and not reply.body


@pytest.mark.parametrize("header", ["Basic", "Basic !!!!", "Bearer abc", "Basic " + base64.b64encode(b"nocolon").decode(),
                                    "Basic " + base64.b64encode(b"\xff\xfe:x").decode()])
def test_malformed_authorization_gets_401(tmp_path: Path, header: str) -> None:
    app, _ = make_app(tmp_path)
    query = "Cmd=FolderSync&User=alice&DeviceId=D1&DeviceType=T"
    response = run(app.handle(HTTPRequest("POST", "/Microsoft-Server-ActiveSync", query,
                                          [("authorization", header), ("ms-asprotocolversion", "14.1")])))
    assert response.status == 401


def test_user_parameter_must_name_the_authenticated_account(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    query = "Cmd=FolderSync&User=bob%40example.com&DeviceId=D1&DeviceType=T"  # alice's credentials, User=bob
    response = run(app.handle(HTTPRequest("POST", "/Microsoft-Server-ActiveSync", query,
                                          [basic(ALICE, ALICE_PW), ("ms-asprotocolversion", "14.1")], b"")))
    assert response.status == 403


@pytest.mark.parametrize("user", ["alice", "alice@example.com", "EXAMPLE\\alice", "ALICE@EXAMPLE.COM"])
def test_user_parameter_forms_of_the_same_account(tmp_path: Path, user: str) -> None:
    app, _ = make_app(tmp_path)
    c = client(app, version="14.1")
    c.user = user  # used for both the credentials and the User parameter

    async def scenario() -> int:
        await c.provision()
        return (await c.command("FolderSync", FOLDERSYNC)).status

    assert run(scenario()) == 200


def test_paths_and_methods(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)

    async def scenario() -> None:
        auth = [basic(ALICE, ALICE_PW)]
        assert (await app.handle(HTTPRequest("POST", "/elsewhere", "", auth))).status == 404
        got = await app.handle(HTTPRequest("GET", "/Microsoft-Server-ActiveSync", "", auth))
        assert got.status == 405 and ("Allow", "OPTIONS, POST") in got.headers
        assert (await app.handle(HTTPRequest("POST", "/microsoft-server-activesync/", "Cmd=Ping&User=alice&"
                                             "DeviceId=D&DeviceType=T", auth))).status == 400  # no version header

    run(scenario())


def test_version_and_command_checks(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)

    async def scenario() -> None:
        # GetAttachment does not exist in 14.1; Settings does not exist in 2.5.
        assert (await client(app, version="14.1").raw("GetAttachment", params={"AttachmentName": "1:1"})).status == 400
        legacy = await client(app, version="2.5").command("Settings", '<Settings xmlns="Settings:"/>')
        assert legacy.status == 400
        # Find is 16.1 only: in 14.1 its Status element does not exist either, so the
        # refusal is HTTP 400 with no body rather than a Find response (the client checks).
        early = await client(app, version="14.1").command("Find", '<Find xmlns="Find:"/>')
        assert early.status == 400 and not early.body
        assert (await client(app, version="16.1").raw("Frobnicate", b"")).status == 501  # no such command

    run(scenario())


def test_provisioning_is_required_before_other_commands(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)

    async def scenario() -> None:
        new = await client(app, version="14.1").command("FolderSync", FOLDERSYNC)
        assert new.status == 200 and new.text(FH.Status) == "142"
        legacy = await client(app, version="12.1", device_id="Legacy1").command("FolderSync", FOLDERSYNC)
        assert legacy.status == 449 and not legacy.body

    run(scenario())


def test_without_required_policy_no_provisioning_is_needed(tmp_path: Path) -> None:
    app, _store = make_app(tmp_path)

    async def no_policy(user: str, device: object) -> PolicyDecision:
        return PolicyDecision(required=False)

    app.policy = no_policy  # type: ignore[assignment]
    reply = run(client(app, version="14.1").command("FolderSync", FOLDERSYNC))
    assert reply.status == 200 and reply.text(FH.Status) == "1"


def test_malformed_wbxml_gets_status_102_or_400(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)

    async def scenario() -> None:
        c = client(app, version="14.1")
        await c.provision()
        reply = await c.raw("FolderSync", b"\x03\x01\x6a\x00\x45\x4e")  # FolderSync tag on page 0, cut short
        assert reply.status == 200 and reply.text(FH.Status) == "102"
        old = client(app, version="12.1", device_id="Old1")
        await old.provision()
        assert (await old.raw("FolderSync", b"garbage")).status == 400
        assert (await old.raw("FolderSync", b"")).status == 400  # body required

    run(scenario())


def test_gzip_response_when_accepted(tmp_path: Path) -> None:
    app, _store = make_app(tmp_path)
    app.config.gzip_min_size = 10

    async def scenario() -> None:
        c = client(app, version="14.1")
        await c.provision()
        plain = await c.command("FolderSync", FOLDERSYNC)
        c.extra_headers = [("accept-encoding", "gzip, deflate")]
        c.device_id = "TestDevice0002"
        await c.provision()
        zipped = await c.command("FolderSync", FOLDERSYNC)
        assert "content-encoding" not in plain.headers
        assert zipped.headers["content-encoding"] == "gzip" and zipped.text(FH.Status) == "1"
        assert gzip.decompress(zipped.body)[:1] == b"\x03"  # a WBXML 1.3 document inside

    run(scenario())


class BrokenStore:
    """A backend that fails on every call: a stand-in for a mail server that is down
    (named as such; only used to prove failures never leak a traceback)."""

    def watch(self, callback: object) -> None:
        pass

    def __getattr__(self, name: str) -> object:
        async def fail(*args: object, **kw: object) -> None:
            raise RuntimeError("database is on fire")

        return fail


def test_unexpected_failures_give_500_without_details(tmp_path: Path) -> None:
    _, store = make_app(tmp_path)
    from eas.core import PolicyDecision as PD
    from eas.state.memory import MemoryStateStore

    async def no_policy(user: str, device: object) -> PD:
        return PD(required=False)

    app = ActiveSync(BrokenStore(), MemoryStateStore(), authenticate=store.authenticate,  # type: ignore[arg-type]
                     policy=no_policy)
    reply = run(client(app, version="14.1").command("FolderSync", FOLDERSYNC))
    # FolderSync answers its own "server error, retry" status; the details stay in the log.
    assert reply.status == 200 and reply.text(FH.Status) in ("6", "11")
    assert b"fire" not in reply.body and b"Traceback" not in reply.body
    legacy = run(client(app, version="12.1").command("GetItemEstimate", '<GetItemEstimate xmlns="GetItemEstimate:">'
                                                     '<Collections><Collection><SyncKey xmlns="AirSync:">1</SyncKey><CollectionId>1'
                                                     '</CollectionId></Collection></Collections></GetItemEstimate>'))
    assert legacy.status in (200, 500) and b"fire" not in legacy.body and b"Traceback" not in legacy.body


def test_successful_logins_are_cached_and_refusals_are_not(tmp_path: Path) -> None:
    app, store = make_app(tmp_path)
    calls: list[str] = []
    real = store.authenticate

    async def counting(login: str, password: str) -> str | None:
        calls.append(password)
        return await real(login, password)

    app.authenticate = counting

    async def scenario() -> None:
        good, bad = client(app, version="14.1"), client(app, version="14.1", password="wrong")
        for _ in range(3):
            assert (await good.options()).status == 200
            assert (await bad.options()).status == 401
        assert calls.count(ALICE_PW) == 1 and calls.count("wrong") == 3
        store.set_password(ALICE, "changed")
        app.forget_credentials()
        assert (await good.options()).status == 401
        app.config.auth_cache_seconds = 0
        assert (await client(app, password="changed").options()).status == 200
        assert (await client(app, password="changed").options()).status == 200
        assert calls.count("changed") == 2

    run(scenario())


def test_a_failing_state_store_gives_503_with_retry_after(tmp_path: Path) -> None:
    from eas.protocol.errors import StateError
    from eas.state.sqlite import SQLiteStateStore

    class FailingStateStore(SQLiteStateStore):
        """The real SQLite engine whose commits fail: a stand-in for a full disk."""

        async def commit(self, device, blobs):  # type: ignore[no-untyped-def]
            raise StateError("disk full")

    _, store = make_app(tmp_path)
    app = ActiveSync(store, FailingStateStore(tmp_path / "failing.db"), authenticate=store.authenticate)
    for version in ("14.1", "12.1"):
        reply = run(client(app, version=version).command("FolderSync", FOLDERSYNC))
        assert reply.status == 503 and reply.headers["retry-after"] == "30" and b"disk" not in reply.body
