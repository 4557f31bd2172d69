"""Account protocol loggers (eas.access.logger, eas logger): in process through the core
with a controlled clock, and over HTTP against a running eas serve changed by eas logger."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from pathlib import Path

import pytest

from eas import tags
from eas.access import change_setting
from eas.access.logger import SETTINGS_TTL, add_logger, check, file_name, list_loggers, remove_logger
from eas.protocol.http import HTTPRequest, HTTPResponse
from eas.store import passwords
from eas.tags import AirSync as A
from eas.testing.client import Client
from eas.testing.harness import USERS, client, make_app
from tests.test_cli_server import eas, serving

ALICE, PASSWORD = USERS[0]
BOB, BOB_PASSWORD = USERS[1]
BIG = "BIGBODY-" + "x" * 5000  # a body well above the 1 KB default
NS = 'xmlns="AirSync:" xmlns:b="AirSyncBase:"'


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "N", 2**4)


def message(n: int, body: str) -> bytes:
    return (f"From: Bob <{BOB}>\r\nTo: {ALICE}\r\nSubject: Message {n}\r\n"
            f"Date: Mon, 30 Nov 2026 06:00:0{n} +0000\r\nMessage-ID: <m{n}.{time.time_ns()}@example.com>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


async def inbox(c: Client) -> str:
    if c.policy_key is None:
        await c.provision()
    r = await c.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>')
    assert r.node is not None
    for add in r.node.find(tags.FolderHierarchy.Changes).findall(tags.FolderHierarchy.Add):  # type: ignore[union-attr]
        if add.findtext(tags.FolderHierarchy.Type) == "2":
            return str(add.findtext(tags.FolderHierarchy.ServerId))
    raise AssertionError(r.xml)


async def sync(c: Client, cid: str, key: str, window: int = 50) -> tuple[str, int, bool]:
    """(new key, Adds received, MoreAvailable) of one Sync of the Inbox, bodies untruncated."""
    r = await c.command("Sync", f"<Sync {NS}><Collections><Collection><SyncKey>{key}</SyncKey>"
                                f"<CollectionId>{cid}</CollectionId><WindowSize>{window}</WindowSize>"
                                "<Options><b:BodyPreference><b:Type>1</b:Type></b:BodyPreference></Options>"
                                "</Collection></Collections></Sync>")
    assert r.status == 200 and r.node is not None, r
    coll = r.node.find(A.Collections, A.Collection)
    assert coll is not None and coll.findtext(A.Status) == "1", r.xml
    commands = coll.find(A.Commands)
    adds = len(commands.findall(A.Add)) if commands is not None else 0
    return str(coll.findtext(A.SyncKey)), adds, coll.find(A.MoreAvailable) is not None


def assert_redacted(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


def test_logger_in_process(tmp_path: Path) -> None:
    """Requests and responses of the logged account only, credentials redacted, a large
    body replaced by its length, WindowSize clamped, removal stops logging (after the
    settings cache, on a test clock), every change audited."""
    now = [0.0]

    async def scenario() -> None:
        app, store = make_app(tmp_path / "data")
        app.loggers.clock = lambda: now[0]
        for n, body in enumerate(("short one", BIG, "short three")):
            store.deliver(ALICE, message(n, body))
        await add_logger(app.store, ALICE, window=2, actor="tester")
        log_file = tmp_path / "data" / "logs" / f"{ALICE}.log"
        alice = client(app)
        cid = await inbox(alice)
        key, _, _ = await sync(alice, cid, "0")
        key, adds, more = await sync(alice, cid, key, window=50)
        assert (adds, more) == (2, True)  # the logger's window, not the client's 50
        key, adds, more = await sync(alice, cid, key, window=50)
        assert (adds, more) == (1, False)
        settings = await alice.command("Settings", '<Settings xmlns="Settings:"><DevicePassword><Set>'
                                                   "<Password>hunter2-device</Password></Set></DevicePassword></Settings>")
        assert settings.status == 200
        text = log_file.read_text()
        token = base64.b64encode(f"{ALICE}:{PASSWORD}".encode()).decode()
        assert_redacted(text, token, PASSWORD, "hunter2-device", "x" * 1025)
        assert "authorization: [redacted]" in text
        assert "POST /Microsoft-Server-ActiveSync?" in text and "--- 200" in text
        assert "<WindowSize>2</WindowSize>" in text and "<WindowSize>50</WindowSize>" not in text
        assert "<MoreAvailable/>" in text and "short three" in text
        assert f"[{len(BIG) + 2} characters omitted]" in text  # the body with its line end
        assert "<Password>[redacted]</Password>" in text
        # bob has no logger: nothing of his is written
        bob = client(app, BOB, BOB_PASSWORD)
        await inbox(bob)
        assert sorted(p.name for p in log_file.parent.iterdir()) == [log_file.name]
        # removal: still logged within the cache's second, not after it
        assert await remove_logger(app.store, ALICE, actor="tester")
        assert not await remove_logger(app.store, ALICE, actor="tester")
        size = log_file.stat().st_size
        await inbox(alice)
        assert log_file.stat().st_size > size
        now[0] += SETTINGS_TTL
        size = log_file.stat().st_size
        await inbox(alice)
        key, adds, more = await sync(alice, cid, "0")
        assert log_file.stat().st_size == size
        events = [(e.action, e.actor, e.detail) for e in await app.store.events(limit=100)]
        stored = '{"level": "full", "file": null, "window": 2, "max_body": 1024}'
        assert ("setting.set", "tester", f"logger.{ALICE}={stored}") in events
        assert ("setting.clear", "tester", f"logger.{ALICE}") in events

    asyncio.run(scenario())


def test_headers_level_and_own_file(tmp_path: Path) -> None:
    """Level headers writes the request line and status, no XML; --file is honoured."""
    own = tmp_path / "elsewhere" / "alice.txt"

    async def scenario() -> None:
        app, _ = make_app(tmp_path / "data")
        await add_logger(app.store, ALICE, level="headers", file=str(own), actor="tester")
        await inbox(client(app))
        text = own.read_text()
        assert "POST /Microsoft-Server-ActiveSync?" in text and "--- 200" in text
        assert "<FolderSync" not in text and "FolderHierarchy" not in text
        assert not (tmp_path / "data" / "logs").exists()

    asyncio.run(scenario())


def test_errors_are_logged_and_a_failing_disk_is_not_the_request(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    async def scenario() -> None:
        app, _ = make_app(tmp_path / "data")
        await add_logger(app.store, ALICE, actor="tester")
        alice = client(app)
        bad = await alice.raw("Sync", b"\x03\x01\x6a\x00\xff\xff")  # malformed WBXML
        assert bad.status in (200, 400)
        text = (tmp_path / "data" / "logs" / f"{ALICE}.log").read_text()
        assert "[6 bytes, not WBXML]" in text and f"--- {bad.status}" in text
        await add_logger(app.store, ALICE, file=str(blocker / "x.log"), actor="tester")
        app.loggers._expires = float("-inf")  # re-read now (the cache is tested above)
        with caplog.at_level(logging.WARNING, logger="eas.logger"):
            assert (await inbox(alice))
        assert "cannot write" in caplog.text

    asyncio.run(scenario())


@pytest.mark.parametrize("account", ["../../evil", "..", ".", "a/b", "..\\..\\x", "/etc/passwd", "a\0b",
                                     "x" * 400, "\u202e.log", "con"])
def test_hostile_account_names_stay_in_the_folder(tmp_path: Path, account: str) -> None:
    folder = tmp_path / "logs"
    name = file_name(account)
    assert "/" not in name and "\\" not in name and not name.startswith(".") and len(name) < 130
    assert (folder / name).resolve().parent == folder.resolve()
    assert file_name(account) != file_name(account + "_")  # distinct accounts, distinct files

    async def scenario() -> None:
        app, _ = make_app(tmp_path / "data")
        app.loggers.folder = folder
        logger = check({"level": "headers"})
        http = HTTPRequest("POST", "/Microsoft-Server-ActiveSync", "", [("authorization", "Basic x")])
        app.loggers.write(account, logger, http, None, HTTPResponse(200))
        assert [p.parent for p in tmp_path.rglob("*.log")] == [folder]

    asyncio.run(scenario())


@pytest.mark.parametrize("value", [[], {"level": "debug"}, {"file": "relative.log"}, {"window": 0},
                                   {"window": True}, {"window": 10_000}, {"max_body": -1}, {"other": 1},
                                   {"file": "/tmp/a\0b"}])
def test_bad_logger_values_store_nothing(tmp_path: Path, value: object) -> None:
    async def scenario() -> None:
        app, _ = make_app(tmp_path / "data")
        with pytest.raises(ValueError):
            await change_setting(app.store, f"logger.{ALICE}", value, actor="tester")
        with pytest.raises(ValueError):
            await add_logger(app.store, "bad name", actor="tester")
        assert await list_loggers(app.store) == {}
        assert await app.store.events(limit=10) == []

    asyncio.run(scenario())


def until(check: object, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if asyncio.run(check()):  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def test_logger_over_http(tmp_path: Path) -> None:
    """eas logger add while eas serve runs: the Sync XML in the file, credentials
    redacted, the large body replaced, the forced WindowSize seen; remove stops it."""
    data = tmp_path / "data"
    assert eas("user", "add", ALICE, "--password", PASSWORD, data_dir=data).returncode == 0
    for n, body in enumerate(("one", BIG, "three")):
        assert eas("mail", "deliver", ALICE, data_dir=data, stdin=message(n, body)).returncode == 0
    log_file = data / "logs" / f"{ALICE}.log"
    with serving(data, "--no-tls") as server:
        from eas.testing.client import HTTPTransport

        alice = Client(HTTPTransport(f"http://127.0.0.1:{server.port}"), ALICE, PASSWORD)
        cid = asyncio.run(inbox(alice))
        assert not log_file.exists()
        done = eas("logger", "add", ALICE, "--window", "1", data_dir=data)
        assert done.returncode == 0, done.stderr
        assert eas("logger", "add", "bad name", data_dir=data).returncode == 2
        assert eas("logger", "add", ALICE, "--window", "0", data_dir=data).returncode == 2
        listed = eas("logger", "list", data_dir=data).stdout.decode()
        assert f"{ALICE}: full to logs/{ALICE}.log, WindowSize at most 1" in listed
        keys = [asyncio.run(sync(alice, cid, "0"))[0]]

        async def logged() -> bool:
            keys[0] = (await sync(alice, cid, "0"))[0]
            return log_file.exists()

        assert until(logged)
        counts = []
        for _ in range(3):
            keys[0], adds, more = asyncio.run(sync(alice, cid, keys[0], window=20))
            counts.append((adds, more))
        assert counts == [(1, True), (1, True), (1, False)]
        text = log_file.read_text()
        assert_redacted(text, base64.b64encode(f"{ALICE}:{PASSWORD}".encode()).decode(), PASSWORD, "x" * 1025)
        assert "authorization: [redacted]" in text and "user-agent: eas-testing/1.0" in text
        assert "<WindowSize>1</WindowSize>" in text and "<WindowSize>20</WindowSize>" not in text
        assert "characters omitted]" in text and "three" in text
        assert eas("logger", "remove", ALICE, data_dir=data).returncode == 0
        assert eas("logger", "remove", ALICE, data_dir=data).returncode == 2

        async def stopped() -> bool:
            size = log_file.stat().st_size
            await inbox(alice)
            return log_file.stat().st_size == size

        assert until(stopped)
        assert "no protocol loggers" in eas("logger", "list", data_dir=data).stdout.decode()
    assert server.process.returncode == 0, server.stderr


def test_search_and_itemoperations_credentials_redacted() -> None:
    from eas.access.logger import render
    from eas.wbxml import from_xml

    body = from_xml('<Search xmlns="Search:"><Store><Name>DocumentLibrary</Name><Query>'
                    '<EqualTo><LinkId xmlns="DocumentLibrary:"/><Value>\\\\srv\\share</Value></EqualTo></Query>'
                    '<Options><UserName>CORP\\alice</UserName><Password>s3arch-secret</Password></Options>'
                    '</Store></Search>')
    ops = from_xml('<ItemOperations xmlns="ItemOperations:"><Fetch><Store>DocumentLibrary</Store>'
                   '<LinkId xmlns="DocumentLibrary:">\\\\srv\\f</LinkId><Options><UserName>CORP\\alice</UserName>'
                   '<Password>f3tch-secret</Password></Options></Fetch></ItemOperations>')
    for data, secret in ((body, "s3arch-secret"), (ops, "f3tch-secret")):
        http = HTTPRequest("POST", "/Microsoft-Server-ActiveSync", "Cmd=X", [], data)
        text = render(check({}), http, type("R", (), {"body": data})(), HTTPResponse(200))  # type: ignore[arg-type]
        assert secret not in text and "CORP" not in text and "<Password>[redacted]</Password>" in text


def test_rotation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond MAX_FILE bytes the file moves to .1 (one old file kept) and a new one starts."""
    from eas.access import logger as engine

    monkeypatch.setattr(engine, "MAX_FILE", 300)

    async def scenario() -> None:
        app, _ = make_app(tmp_path / "data")
        app.loggers.folder = tmp_path / "logs"
        http = HTTPRequest("POST", "/Microsoft-Server-ActiveSync", "", [("user-agent", "u" * 100)])
        for _ in range(10):
            app.loggers.write(ALICE, check({"level": "headers"}), http, None, HTTPResponse(200))
        files = sorted(p.name for p in (tmp_path / "logs").iterdir())
        assert files == [f"{ALICE}.log", f"{ALICE}.log.1"]
        assert all((tmp_path / "logs" / f).stat().st_size <= 300 + 200 for f in files)

    asyncio.run(scenario())
