"""Sync for mail (MS-ASCMD 2.2.1.21), end to end: the in-process client against the
reference store and the SQLite state store, per protocol version. Every response is
checked to hold only elements of the negotiated version."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from eas import tags
from eas.backend import BackendError, EmailChange, Flag, QuotaExceeded
from eas.core import ActiveSync, Config
from eas.protocol.errors import ServiceUnavailable
from eas.protocol.versions import Version
from eas.state.sqlite import SQLiteStateStore
from eas.store import ReferenceStore, passwords
from eas.tags import AirSync as A
from eas.tags import AirSyncBase as B
from eas.tags import Email as E
from eas.tags import FolderHierarchy as FH
from eas.testing.client import Client, Reply
from eas.testing.harness import USERS, client
from eas.wbxml import Node

ALICE, PASSWORD = USERS[0]
VERSIONS = ("2.5", "12.1", "14.0", "14.1", "16.1")
REPLAY_VERSIONS = ("12.1", "14.1", "16.1")  # with empty/partial requests and empty responses
NS = 'xmlns="AirSync:" xmlns:e="Email:" xmlns:b="AirSyncBase:" xmlns:t="Tasks:" xmlns:e2="Email2:"'


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real scrypt hashes, at a work factor that costs microseconds instead of ~50 ms a
    login: these tests make hundreds of logins and are about Sync, not passwords."""
    monkeypatch.setattr(passwords, "N", 2**4)


def assert_in_version(node: Node, version: str) -> None:
    """Every element of the tree exists in ``version`` (MS-ASWBXML code pages)."""
    info = tags.BY_TAG.get(node.tag)
    assert info is not None and version in info.versions, f"{tags.name(node.tag)} is not in {version}"
    for child in node.children:
        assert_in_version(child, version)


def message(n: int, *, date: datetime | None = None, body: str | None = None, subject: str | None = None) -> bytes:
    when = date or datetime.now(UTC) - timedelta(minutes=10)
    text = body if body is not None else f"Body of message {n}"
    return (f"From: Bob <bob@example.com>\r\nTo: {ALICE}\r\nSubject: {subject or f'Message {n}'}\r\n"
            f"Date: {format_datetime(when)}\r\nMessage-ID: <m{n}.{time.time_ns()}@example.com>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n").encode()


@dataclass
class Device:
    """A provisioned device that did FolderSync; ``folders`` maps a folder name to its
    CollectionId, ``backend`` to its backend id."""

    app: ActiveSync
    store: ReferenceStore
    client: Client
    version: str
    folders: dict[str, str]
    backend: dict[str, str]

    async def send(self, xml: str | None, **kw: Any) -> Reply:
        reply = await self.client.command("Sync", xml, **kw)
        assert reply.status == 200, reply
        if reply.node is not None:
            assert_in_version(reply.node, self.version)
        return reply

    async def sync(self, *collections: str, top: str = "") -> Reply:
        return await self.send(f"<Sync {NS}><Collections>{''.join(collections)}</Collections>{top}</Sync>")

    async def initial(self, name: str = "Inbox", options: str = "", extra: str = "") -> str:
        reply = await self.sync(coll(self.folders[name], "0", options + extra))
        c = collection(reply, self.folders[name])
        assert c.findtext(A.Status) == "1" and c.find(A.Commands) is None
        key = c.findtext(A.SyncKey)
        assert isinstance(key, str) and key != "0"
        return key

    async def drain(self, name: str, key: str, inner: str = "") -> tuple[str, list[tuple[str, str, Node]]]:
        """Sync until nothing more comes: the last key and every command received."""
        got: list[tuple[str, str, Node]] = []
        for _ in range(50):
            reply = await self.sync(coll(self.folders[name], key, inner))
            if reply.node is None:
                return key, got
            c = collection(reply, self.folders[name])
            assert c.findtext(A.Status) == "1", reply.xml
            new_key = str(c.findtext(A.SyncKey))
            got.extend(commands(c))
            if new_key == key and not commands(c) and c.find(A.MoreAvailable) is None:
                return key, got
            key = new_key
        raise AssertionError("Sync never settled")


async def device(tmp_path: Path, version: str, *, config: Config | None = None,
                 backend: type[ReferenceStore] = ReferenceStore, device_id: str = "SyncDevice1",
                 app: tuple[ActiveSync, ReferenceStore] | None = None) -> Device:
    """A fresh store with alice, her device provisioned and past FolderSync."""
    if app is None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        store = backend(tmp_path / "mail.db")
        store.add_user(ALICE, PASSWORD)
        server = ActiveSync(store, SQLiteStateStore(tmp_path / "state.db"), authenticate=store.authenticate,
                            config=config)
    else:
        server, store = app
    c = client(server, version=version, device_id=device_id)
    await c.provision()
    r = await c.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>')
    assert r.node is not None
    folders = {str(a.findtext(FH.DisplayName)): str(a.findtext(FH.ServerId))
               for a in r.node.find(FH.Changes).findall(FH.Add)}  # type: ignore[union-attr]
    backend_ids = {name: store.folder_id(ALICE, name) for name in folders}
    return Device(server, store, c, version, folders, backend_ids)


def since(version: str, minimum: str) -> bool:
    return Version(version) >= Version(minimum)


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def coll(cid: str, key: str, inner: str = "") -> str:
    return f"<Collection><SyncKey>{key}</SyncKey><CollectionId>{cid}</CollectionId>{inner}</Collection>"


def collection(reply: Reply, cid: str) -> Node:
    assert reply.node is not None, "empty response"
    for c in reply.node.find(A.Collections) or []:
        if c.findtext(A.CollectionId) == cid:
            return c
    raise AssertionError(f"no collection {cid} in {reply.xml}")


def commands(c: Node) -> list[tuple[str, str, Node]]:
    cmds = c.find(A.Commands)
    return [(tags.name(n.tag).split(":")[1], str(n.findtext(A.ServerId)), n) for n in (cmds or [])]


def responses(c: Node) -> list[tuple[str, Node]]:
    return [(tags.name(n.tag).split(":")[1], n) for n in (c.find(A.Responses) or [])]


def body_options(version: str, plain_size: int | None = None) -> str:
    """Options asking for plain text (2.5: Truncation 9, whole body)."""
    if version == "2.5":
        return "<Options><Truncation>9</Truncation></Options>"
    size = f"<b:TruncationSize>{plain_size}</b:TruncationSize>" if plain_size is not None else ""
    return f"<Options><b:BodyPreference><b:Type>1</b:Type>{size}</b:BodyPreference></Options>"


async def settle(dev: Device, name: str = "Inbox", options: str = "") -> tuple[str, dict[str, Node]]:
    """Initial sync plus everything there is: the key and the Adds by ServerId."""
    key = await dev.initial(name, options)
    key, got = await dev.drain(name, key)
    return key, {sid: node for kind, sid, node in got if kind == "Add"}


async def is_quiet(dev: Device, name: str, key: str) -> bool:
    """Whether a Sync at ``key`` has nothing to say (empty response from 12.1)."""
    reply = await dev.sync(coll(dev.folders[name], key))
    if reply.node is None:
        return dev.version != "2.5"
    c = collection(reply, dev.folders[name])
    return c.findtext(A.SyncKey) == key and not commands(c) and c.find(A.Responses) is None


# -- initial sync and windows ----------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_initial_sync_in_windows(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        for n in range(7):
            dev.store.deliver(ALICE, message(n))
        inbox = dev.folders["Inbox"]
        reply = await dev.sync(coll(inbox, "0", body_options(version)))
        first = collection(reply, inbox)
        assert first.findtext(A.SyncKey) == "1" and first.find(A.Commands) is None
        assert (first.findtext(A.Class) == "Email") == (version in ("2.5", "12.1"))
        key = "1"
        seen: list[tuple[str, str, Node]] = []
        batches: list[int] = []
        while True:
            reply = await dev.sync(coll(inbox, key, "<WindowSize>3</WindowSize>"))
            if reply.node is None:
                break
            c = collection(reply, inbox)
            batch = commands(c)
            if not batch:
                assert version == "2.5" and c.findtext(A.SyncKey) == key
                break
            assert int(str(c.findtext(A.SyncKey))) == int(key) + 1
            assert (c.find(A.MoreAvailable) is not None) == (len(seen) + len(batch) < 7)
            batches.append(len(batch))
            seen.extend(batch)
            key = str(c.findtext(A.SyncKey))
        assert batches == [3, 3, 1]
        assert all(kind == "Add" and sid.startswith(inbox + ":") for kind, sid, _ in seen)
        assert len({sid for _, sid, _ in seen}) == 7
        subjects = [str(node.findtext(A.ApplicationData, E.Subject)) for _, _, node in seen]
        assert subjects[0] == "Message 6" and sorted(subjects) == [f"Message {n}" for n in range(7)]
        data = seen[0][2].find(A.ApplicationData)
        assert data is not None and data.findtext(E.Read) == "0" and data.findtext(E.From) == "Bob <bob@example.com>"
        text = data.findtext(E.Body) if version == "2.5" else data.findtext(B.Body, B.Data)
        assert text == "Body of message 6\r\n" or text == "Body of message 6\n"

    run(scenario)


@pytest.mark.parametrize("version", VERSIONS)
def test_repeated_key_gets_the_same_changes(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        for n in range(3):
            dev.store.deliver(ALICE, message(n))
        inbox = dev.folders["Inbox"]
        k1 = await dev.initial()
        first = collection(await dev.sync(coll(inbox, k1)), inbox)
        k2 = str(first.findtext(A.SyncKey))
        again = collection(await dev.sync(coll(inbox, k1)), inbox)  # the response was lost
        assert again.findtext(A.SyncKey) == k2
        assert [sid for _, sid, _ in commands(again)] == [sid for _, sid, _ in commands(first)]
        assert len(commands(again)) == 3
        assert await is_quiet(dev, "Inbox", k2)
        dev.store.deliver(ALICE, message(9))
        third = collection(await dev.sync(coll(inbox, k2)), inbox)
        k3 = str(third.findtext(A.SyncKey))
        assert [k for k, _, _ in commands(third)] == ["Add"]
        replay = collection(await dev.sync(coll(inbox, k2)), inbox)
        assert replay.findtext(A.SyncKey) == k3 and commands(replay)[0][1] == commands(third)[0][1]
        assert await is_quiet(dev, "Inbox", k3)
        stale = collection(await dev.sync(coll(inbox, k1)), inbox)  # two keys back: gone
        assert stale.findtext(A.Status) == "3"

    run(scenario)


@pytest.mark.parametrize("version", VERSIONS)
def test_stale_key_is_3_then_a_clean_restart(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        for n in range(2):
            dev.store.deliver(ALICE, message(n))
        inbox = dev.folders["Inbox"]
        key, adds = await settle(dev)
        assert len(adds) == 2
        for bad in ("77", "abc", "-1", "01", ""):
            c = collection(await dev.sync(coll(inbox, bad)), inbox)
            assert c.findtext(A.Status) == "3" and c.findtext(A.SyncKey) == "0" and not commands(c)
        c = collection(await dev.sync(coll(inbox, key)), inbox)  # reset: the old key is gone too
        assert c.findtext(A.Status) == "3"
        new_key = await dev.initial()
        assert int(new_key) > int(key)  # keys only move forward
        _, got = await dev.drain("Inbox", new_key)
        assert sorted(sid for _, sid, _ in got) == sorted(adds)

    run(scenario)


@pytest.mark.parametrize("version", VERSIONS)
def test_two_initial_syncs_both_keys_work(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        for n in range(2):
            dev.store.deliver(ALICE, message(n))
        k1 = await dev.initial()
        k2 = await dev.initial()  # iOS sends two initial Syncs at once
        assert int(k2) > int(k1)
        _, got = await dev.drain("Inbox", k1)  # the device kept the first response
        assert len(got) == 2
        other = await device(tmp_path, version, app=(dev.app, dev.store), device_id="SyncDevice2")
        o1 = await other.initial()
        o2 = await other.initial()
        _, got2 = await other.drain("Inbox", o2)  # this one kept the second
        assert len(got2) == 2 and int(o2) > int(o1)

    run(scenario)


@pytest.mark.parametrize("version", VERSIONS)
def test_getchanges_0_sends_nothing(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        dev.store.deliver(ALICE, message(1))
        inbox = dev.folders["Inbox"]
        key = await dev.initial()
        reply = await dev.sync(coll(inbox, key, "<GetChanges>0</GetChanges>"))
        if version == "2.5":
            c = collection(reply, inbox)
            assert c.findtext(A.SyncKey) == key and not commands(c)
        else:
            assert reply.node is None and reply.body == b""
        c = collection(await dev.sync(coll(inbox, key, "<GetChanges/>")), inbox)
        assert len(commands(c)) == 1

    run(scenario)


# -- changes both ways -----------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_server_flag_changes_send_only_flags(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        item = dev.store.deliver(ALICE, message(1))
        key, adds = await settle(dev)
        await dev.store.change_email(ALICE, dev.backend["Inbox"], item, EmailChange(
            read=True, flag=Flag(status=2, flag_type="Follow up"), categories=["Blue"]))
        c = collection(await dev.sync(coll(dev.folders["Inbox"], key)), dev.folders["Inbox"])
        [(kind, sid, node)] = commands(c)
        assert kind == "Change" and sid in adds
        data = node.find(A.ApplicationData)
        assert data is not None and data.findtext(E.Read) == "1" and data.find(E.Subject) is None
        if version != "2.5":
            assert data.findtext(E.Flag, E.Status) == "2"
        if since(version, "14.0"):
            assert data.findtext(E.Categories, E.Category) == "Blue"
        key = str(c.findtext(A.SyncKey))
        assert await is_quiet(dev, "Inbox", key)
        await dev.store.change_email(ALICE, dev.backend["Inbox"], item, EmailChange(flag=Flag(status=0),
                                                                                     categories=[]))
        c = collection(await dev.sync(coll(dev.folders["Inbox"], key)), dev.folders["Inbox"])
        data = commands(c)[0][2].find(A.ApplicationData)
        assert data is not None
        if version != "2.5":
            flag = data.find(E.Flag)
            assert flag is not None and not flag.children  # an empty Flag clears it
        if since(version, "14.0"):
            assert data.find(E.Categories) is not None and not data.find(E.Categories).children  # type: ignore[union-attr]

    run(scenario)


@pytest.mark.parametrize("version", VERSIONS)
def test_client_read_and_flag_changes_reach_the_store(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        item = dev.store.deliver(ALICE, message(1))
        key, adds = await settle(dev)
        [sid] = adds
        flag = ("" if version == "2.5" else
                "<e:Flag><e:Status>2</e:Status><e:FlagType>Follow up</e:FlagType>"
                "<t:UtcDueDate>2030-01-02T00:00:00.000Z</t:UtcDueDate></e:Flag>")
        cats = "<e:Categories><e:Category>Red</e:Category></e:Categories>" if since(version, "14.0") else ""
        change = f"<Commands><Change><ServerId>{sid}</ServerId><ApplicationData><e:Read>1</e:Read>{flag}{cats}" \
                 "</ApplicationData></Change></Commands>"
        c = collection(await dev.sync(coll(dev.folders["Inbox"], key, change)), dev.folders["Inbox"])
        assert c.findtext(A.Status) == "1" and c.find(A.Responses) is None  # success has no response
        new_key = str(c.findtext(A.SyncKey))
        assert int(new_key) == int(key) + 1
        [email] = await dev.store.fetch_emails(ALICE, dev.backend["Inbox"], [item])
        assert email.read
        if version != "2.5":
            assert email.flag is not None and email.flag.status == 2
            assert email.flag.due_date == datetime(2030, 1, 2, tzinfo=UTC)
        if since(version, "14.0"):
            assert email.categories == ["Red"]
        assert await is_quiet(dev, "Inbox", new_key)  # the device's own change is not echoed

    run(scenario)


@pytest.mark.parametrize("version", VERSIONS)
def test_deletes_both_ways(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        items = [dev.store.deliver(ALICE, message(n)) for n in range(3)]
        inbox = dev.folders["Inbox"]
        key, adds = await settle(dev)
        assert len(adds) == 3
        await dev.store.delete_item(ALICE, dev.backend["Inbox"], items[0], permanently=True)
        c = collection(await dev.sync(coll(inbox, key)), inbox)
        assert commands(c) == [("Delete", f"{inbox}:{items[0]}", commands(c)[0][2])]
        key = str(c.findtext(A.SyncKey))
        move = f"<Commands><Delete><ServerId>{inbox}:{items[1]}</ServerId></Delete></Commands>"
        c = collection(await dev.sync(coll(inbox, key, move)), inbox)
        assert c.findtext(A.Status) == "1" and c.find(A.Responses) is None
        key = str(c.findtext(A.SyncKey))
        trash = await dev.store.item_stamps(ALICE, dev.backend["Deleted Items"])
        assert len(trash) == 1  # DeletesAsMoves defaults to true
        gone = f"<DeletesAsMoves>0</DeletesAsMoves><Commands><Delete><ServerId>{inbox}:{items[2]}</ServerId>" \
               "</Delete></Commands>"
        c = collection(await dev.sync(coll(inbox, key, gone)), inbox)
        key = str(c.findtext(A.SyncKey))
        assert len(await dev.store.item_stamps(ALICE, dev.backend["Deleted Items"])) == 1
        assert await dev.store.item_stamps(ALICE, dev.backend["Inbox"]) == {}
        assert await is_quiet(dev, "Inbox", key)

    run(scenario)


@pytest.mark.parametrize("version", VERSIONS)
def test_filter_type_window(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        now = datetime.now(UTC)
        old = dev.store.deliver(ALICE, message(1, date=now - timedelta(days=30)))
        new = dev.store.deliver(ALICE, message(2, date=now - timedelta(hours=2)))
        inbox = dev.folders["Inbox"]
        week = "<Options><FilterType>3</FilterType></Options>"
        key = await dev.initial(options=week)
        key, got = await dev.drain("Inbox", key)
        assert [sid for _, sid, _ in got] == [f"{inbox}:{new}"]
        key, got = await dev.drain("Inbox", key, "<Options><FilterType>0</FilterType></Options>")
        assert [(k, sid) for k, sid, _ in got] == [("Add", f"{inbox}:{old}")]
        key, got = await dev.drain("Inbox", key, week)
        assert [(k, sid) for k, sid, _ in got] == [("SoftDelete", f"{inbox}:{old}")]
        # The stored options hold: a request without Options keeps the week.
        dev.store.deliver(ALICE, message(3, date=now - timedelta(days=60)))
        assert await is_quiet(dev, "Inbox", key)

    run(scenario)


# -- bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_truncated_body_then_fetch(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        text = "Grüße aus Köln. " * 60  # 960 characters, more bytes
        item = dev.store.deliver(ALICE, message(1, body=text))
        inbox = dev.folders["Inbox"]
        options = ("<Options><Truncation>1</Truncation></Options>" if version == "2.5" else
                   "<Options><b:BodyPreference><b:Type>1</b:Type><b:TruncationSize>13</b:TruncationSize>"
                   "</b:BodyPreference></Options>")
        key = await dev.initial(options=options)
        c = collection(await dev.sync(coll(inbox, key)), inbox)
        [(_, sid, node)] = commands(c)
        data = node.find(A.ApplicationData)
        assert data is not None
        if version == "2.5":
            assert data.findtext(E.BodyTruncated) == "1" and data.findtext(E.Body) == text[:512]
        else:
            body = data.find(B.Body)
            assert body is not None and body.findtext(B.Truncated) == "1"
            assert body.findtext(B.Data) == "Grüße aus K" and len("Grüße aus K".encode()) == 13
            assert int(str(body.findtext(B.EstimatedDataSize))) >= len(text.encode())
        key = str(c.findtext(A.SyncKey))
        fetch = f"<Commands><Fetch><ServerId>{sid}</ServerId></Fetch></Commands>"
        c = collection(await dev.sync(coll(inbox, key, fetch)), inbox)
        [(kind, node)] = responses(c)
        assert kind == "Fetch" and node.findtext(A.Status) == "1" and node.findtext(A.ServerId) == sid
        whole = node.findtext(A.ApplicationData, E.Body) if version == "2.5" else \
            node.findtext(A.ApplicationData, B.Body, B.Data)
        assert isinstance(whole, str) and whole.rstrip() == text.rstrip()
        [email] = await dev.store.fetch_emails(ALICE, dev.backend["Inbox"], [item])
        assert email.body_text == whole

    run(scenario)


@pytest.mark.parametrize("version", ["12.1", "14.1", "16.1"])
def test_mime_body(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        raw = message(1, body="MIME please é")
        dev.store.deliver(ALICE, raw)
        options = ("<Options><MIMESupport>2</MIMESupport><b:BodyPreference><b:Type>4</b:Type></b:BodyPreference>"
                   "</Options>")
        key = await dev.initial(options=options)
        c = collection(await dev.sync(coll(dev.folders["Inbox"], key)), dev.folders["Inbox"])
        body = commands(c)[0][2].find(A.ApplicationData, B.Body)
        assert body is not None and body.findtext(B.Type) == "4"
        data = body.findtext(B.Data)
        assert isinstance(data, str) and data.encode("utf-8", "surrogateescape") == raw

    run(scenario)


# -- client Adds (16.x drafts) ---------------------------------------------------------------


DRAFT = ("<Commands><Add><ClientId>{cid}</ClientId><ApplicationData><e:To>bob@example.com</e:To>"
         "<e:Subject>Draft {cid}</e:Subject><b:Body><b:Type>1</b:Type><b:Data>Not done yet</b:Data></b:Body>"
         "</ApplicationData></Add></Commands>")


def test_draft_add_is_not_added_twice(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "16.1")
        drafts = dev.folders["Drafts"]
        key = await dev.initial("Drafts")
        first = collection(await dev.sync(coll(drafts, key, DRAFT.format(cid="c1"))), drafts)
        [(kind, node)] = responses(first)
        assert kind == "Add" and node.findtext(A.ClientId) == "c1" and node.findtext(A.Status) == "1"
        sid = node.findtext(A.ServerId)
        assert isinstance(sid, str) and sid.startswith(drafts + ":")
        k2 = str(first.findtext(A.SyncKey))
        again = collection(await dev.sync(coll(drafts, key, DRAFT.format(cid="c1"))), drafts)  # response lost
        assert again.findtext(A.SyncKey) == k2 and responses(again)[0][1].findtext(A.ServerId) == sid
        later = collection(await dev.sync(coll(drafts, k2, DRAFT.format(cid="c1"))), drafts)  # resent later
        assert responses(later)[0][1].findtext(A.ServerId) == sid
        stored = await dev.store.item_stamps(ALICE, dev.backend["Drafts"])
        assert list(stored) == [sid.split(":")[1]]
        [email] = await dev.store.fetch_emails(ALICE, dev.backend["Drafts"], list(stored))
        assert email.is_draft and email.subject == "Draft c1" and email.to == "bob@example.com"
        assert not commands(later)  # the device's own draft is not sent back
        assert await is_quiet(dev, "Drafts", str(later.findtext(A.SyncKey)))

    run(scenario)


@pytest.mark.parametrize("version", ["2.5", "14.1", "16.1"])
def test_add_outside_drafts_is_6(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        name = "Drafts" if version != "16.1" else "Inbox"  # before 16.0 even Drafts takes no Add
        key = await dev.initial(name)
        add = DRAFT.format(cid="x1") if version != "2.5" else (
            "<Commands><Add><ClientId>x1</ClientId><ApplicationData><e:Subject>s</e:Subject></ApplicationData>"
            "</Add></Commands>")
        c = collection(await dev.sync(coll(dev.folders[name], key, add)), dev.folders[name])
        [(kind, node)] = responses(c)
        assert kind == "Add" and node.findtext(A.Status) == "6" and node.find(A.ServerId) is None
        assert await dev.store.item_stamps(ALICE, dev.backend[name]) == {}

    run(scenario)


# -- empty and partial requests, long polls --------------------------------------------------


@pytest.mark.parametrize("version", REPLAY_VERSIONS)
def test_empty_and_partial_requests(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        assert (await dev.send(None)).node.findtext(A.Status) == "13"  # type: ignore[union-attr]
        partial = await dev.send(f"<Sync {NS}><Partial/></Sync>")
        assert partial.node is not None and partial.node.findtext(A.Status) == "13"
        inbox, sent = dev.folders["Inbox"], dev.folders["Sent Items"]
        ki, ks = await dev.initial("Inbox"), await dev.initial("Sent Items")
        both = await dev.sync(coll(inbox, ki), coll(sent, ks))
        assert both.node is None  # nothing anywhere: the empty response
        empty = await dev.send(None)
        assert empty.node is None and empty.body == b""
        dev.store.deliver(ALICE, message(1))
        reply = await dev.send(None)  # the cached request, at the current keys
        assert [c.findtext(A.CollectionId) for c in reply.node.find(A.Collections)] == [inbox]  # type: ignore[union-attr]
        c = collection(reply, inbox)
        assert [k for k, _, _ in commands(c)] == ["Add"]
        ki = str(c.findtext(A.SyncKey))
        dev.store.deliver(ALICE, message(2))
        dev.store.deliver(ALICE, message(3), folder="Sent Items")
        reply = await dev.send(f"<Sync {NS}><Partial/><Collections>{coll(sent, ks)}</Collections></Sync>")
        got = {c.findtext(A.CollectionId): len(commands(c)) for c in reply.node.find(A.Collections)}  # type: ignore[union-attr]
        assert got == {inbox: 1, sent: 1}
        assert (await dev.send(None)).node is None

    run(scenario)


def test_wait_is_woken_by_a_delivery(tmp_path: Path) -> None:
    async def scenario() -> None:
        for version, wait in (("12.1", "<Wait>1</Wait>"), ("14.1", "<HeartbeatInterval>60</HeartbeatInterval>")):
            dev = await device(tmp_path / version, version)
            inbox = dev.folders["Inbox"]
            key = await dev.initial()

            async def later(store: ReferenceStore) -> None:
                await asyncio.sleep(0.2)
                store.deliver(ALICE, message(5))

            task = asyncio.create_task(later(dev.store))
            started = time.monotonic()
            reply = await asyncio.wait_for(dev.sync(coll(inbox, key), top=wait), 20)
            await task
            assert time.monotonic() - started < 10
            c = collection(reply, inbox)
            assert [k for k, _, _ in commands(c)] == ["Add"]

    run(scenario)


def test_wait_times_out_empty_and_is_superseded(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "14.1", config=Config(min_heartbeat=1))
        inbox = dev.folders["Inbox"]
        key = await dev.initial()
        started = time.monotonic()
        reply = await dev.sync(coll(inbox, key), top="<HeartbeatInterval>1</HeartbeatInterval>")
        assert reply.node is None and reply.body == b"" and 0.9 < time.monotonic() - started < 10
        waiting = asyncio.create_task(dev.sync(coll(inbox, key), top="<HeartbeatInterval>600</HeartbeatInterval>"))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        newer = await dev.sync(coll(inbox, key))  # the device's next request ends the wait
        first = await asyncio.wait_for(waiting, 10)
        assert first.node is None and newer.node is None

    run(scenario)


# -- status codes and bad input --------------------------------------------------------------


async def state_of(dev: Device, name: str = "Inbox") -> tuple[bytes | None, bytes | None]:
    store = dev.app.store
    return (await store.load(ALICE, dev.client.device_id, f"collection:{dev.folders[name]}"),
            await store.load(ALICE, dev.client.device_id, "cache"))


@pytest.mark.parametrize("version", VERSIONS)
def test_malformed_collections_are_4_and_leave_state_alone(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        dev.store.deliver(ALICE, message(1))
        inbox = dev.folders["Inbox"]
        key, adds = await settle(dev)
        [sid] = adds
        before = await state_of(dev)
        bad = [
            "<Options><FilterType>99</FilterType></Options>",
            "<Options><FilterType>8</FilterType></Options>",
            "<Options><MIMESupport>7</MIMESupport></Options>",
            "<GetChanges>perhaps</GetChanges>",
            "<WindowSize>-3</WindowSize>",
            "<Commands><Change><ApplicationData><e:Read>1</e:Read></ApplicationData></Change></Commands>",
            "<Commands><Add><ApplicationData/></Add></Commands>",
            f"<Commands><Delete><ServerId>{sid}</ServerId></Delete><Status>1</Status></Commands>",
        ]
        if version != "2.5":
            bad.append("<Options><b:BodyPreference><b:Type>9</b:Type></b:BodyPreference></Options>")
        for inner in bad:
            c = collection(await dev.sync(coll(inbox, key, inner)), inbox)
            assert c.findtext(A.Status) == "4", inner
            assert await state_of(dev) == before, inner
        for body in (f"<Sync {NS}><Collections><Collection><SyncKey>{key}</SyncKey></Collection></Collections></Sync>",
                     f"<Sync {NS}><Collections>{coll(inbox, key)}{coll(inbox, key)}</Collections></Sync>",
                     '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>'):
            reply = await dev.send(body)
            assert reply.node is not None and reply.node.tag == A.Sync and reply.node.findtext(A.Status) == "4"
            assert await state_of(dev) == before
        garbage = await dev.client.raw("Sync", b"\x03\x01\x6a\x00\x45\x5c\x4f\x4b\x03garbage")
        assert garbage.status == (200 if since(version, "14.0") else 400)
        if since(version, "14.0"):
            assert garbage.node is not None and garbage.node.findtext(A.Status) == "102"
        assert await state_of(dev) == before
        if version == "2.5":  # the key still works (later versions: an empty response, checked below)
            assert collection(await dev.sync(coll(inbox, key)), inbox).findtext(A.Status) == "1"
        assert await is_quiet(dev, "Inbox", key)

    run(scenario)


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_items_are_8_and_unknown_collections_12(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        inbox = dev.folders["Inbox"]
        key = await dev.initial()
        cmds = (f"<Commands><Change><ServerId>{inbox}:999</ServerId><ApplicationData><e:Read>1</e:Read>"
                f"</ApplicationData></Change><Delete><ServerId>nonsense</ServerId></Delete>"
                f"<Fetch><ServerId>{dev.folders['Sent Items']}:1</ServerId></Fetch></Commands>")
        c = collection(await dev.sync(coll(inbox, key, cmds)), inbox)
        assert [(k, n.findtext(A.Status)) for k, n in responses(c)] == [("Change", "8"), ("Delete", "8"),
                                                                          ("Fetch", "8")]
        c = collection(await dev.sync(coll("999", "1")), "999")
        assert c.findtext(A.Status) == "12"

    run(scenario)


@pytest.mark.parametrize("version", ["12.1", "14.1"])
def test_conflict_7_unless_the_client_wins(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        item = dev.store.deliver(ALICE, message(1))
        inbox = dev.folders["Inbox"]
        key, adds = await settle(dev)
        [sid] = adds
        await dev.store.change_email(ALICE, dev.backend["Inbox"], item, EmailChange(read=True))
        unread = f"<Commands><Change><ServerId>{sid}</ServerId><ApplicationData><e:Read>0</e:Read>" \
                 "</ApplicationData></Change></Commands>"
        c = collection(await dev.sync(coll(inbox, key, unread)), inbox)
        [(kind, node)] = responses(c)
        assert kind == "Change" and node.findtext(A.Status) == "7"
        [(k, _, change)] = commands(c)  # the server's version follows
        assert k == "Change" and change.findtext(A.ApplicationData, E.Read) == "1"
        [email] = await dev.store.fetch_emails(ALICE, dev.backend["Inbox"], [item])
        assert email.read
        key = str(c.findtext(A.SyncKey))
        await dev.store.change_email(ALICE, dev.backend["Inbox"], item, EmailChange(read=True, categories=["x"]))
        c = collection(await dev.sync(coll(inbox, key, "<Options><Conflict>0</Conflict></Options>" + unread)), inbox)
        assert c.find(A.Responses) is None
        [email] = await dev.store.fetch_emails(ALICE, dev.backend["Inbox"], [item])
        assert not email.read

    run(scenario)


@pytest.mark.parametrize("version", REPLAY_VERSIONS)
def test_wait_out_of_range_is_14_with_limit(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        inbox = dev.folders["Inbox"]
        key = await dev.initial()
        cases = [("<Wait>0</Wait>", "1"), ("<Wait>60</Wait>", "59")]
        if since(version, "14.0"):
            cases += [("<HeartbeatInterval>59</HeartbeatInterval>", "60"),
                      ("<HeartbeatInterval>3541</HeartbeatInterval>", "3540")]
        for top, limit in cases:
            reply = await dev.sync(coll(inbox, key), top=top)
            assert reply.node is not None and reply.node.findtext(A.Status) == "14", top
            assert reply.node.findtext(A.Limit) == limit and reply.node.find(A.Collections) is None
        if since(version, "14.0"):  # (12.1 has no HeartbeatInterval: it would wait 5 minutes)
            both = await dev.sync(coll(inbox, key), top="<Wait>5</Wait><HeartbeatInterval>300</HeartbeatInterval>")
            assert both.node is not None and both.node.findtext(A.Status) == "4"
            bad = await dev.sync(coll(inbox, key), top="<HeartbeatInterval>soon</HeartbeatInterval>")
            assert bad.node is not None and bad.node.findtext(A.Status) == "4"

    run(scenario)


def test_too_many_collections_is_15(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "14.1", config=Config(max_sync_collections=1))
        reply = await dev.sync(coll(dev.folders["Inbox"], "0"), coll(dev.folders["Sent Items"], "0"))
        assert reply.node is not None and reply.node.findtext(A.Status) == "15"
        collection_state, cache = await state_of(dev)
        assert collection_state is None and b'"sync"' not in (cache or b"")

    run(scenario)


class FailingStore(ReferenceStore):
    """The reference store with faults switched on by the test (``fail`` names one)."""

    fail = ""

    async def item_stamps(self, user: str, folder_id: str, since: datetime | None = None) -> dict[str, str]:
        if self.fail == "server":
            raise BackendError("disk on fire")
        if self.fail == "busy":
            raise ServiceUnavailable("try later")
        return await super().item_stamps(user, folder_id, since)

    async def add_email(self, user: str, folder_id: str, mime: bytes, **kw: Any) -> tuple[str, str]:
        if self.fail == "quota":
            raise QuotaExceeded("mailbox full")
        return await super().add_email(user, folder_id, mime, **kw)


def test_backend_failures_are_5_16_and_9(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "16.1", backend=FailingStore)
        store = dev.store
        assert isinstance(store, FailingStore)
        inbox, drafts = dev.folders["Inbox"], dev.folders["Drafts"]
        store.deliver(ALICE, message(1))
        key = await dev.initial()
        dkey = await dev.initial("Drafts")
        before = await state_of(dev)
        for fail, status in (("server", "5"), ("busy", "16")):
            store.fail = fail
            c = collection(await dev.sync(coll(inbox, key)), inbox)
            assert c.findtext(A.Status) == status and not commands(c)
            assert (await state_of(dev))[0] == before[0]
        store.fail = "quota"
        c = collection(await dev.sync(coll(drafts, dkey, DRAFT.format(cid="q"))), drafts)
        assert responses(c)[0][1].findtext(A.Status) == "9"
        store.fail = ""
        c = collection(await dev.sync(coll(inbox, key)), inbox)
        assert c.findtext(A.Status) == "1" and len(commands(c)) == 1

    run(scenario)


def test_bad_change_values_are_6(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "14.1")
        item = dev.store.deliver(ALICE, message(1))
        inbox = dev.folders["Inbox"]
        key, adds = await settle(dev)
        [sid] = adds
        bad = f"<Commands><Change><ServerId>{sid}</ServerId><ApplicationData><e:Flag><e:Status>2</e:Status>" \
              "<t:DueDate>someday</t:DueDate></e:Flag></ApplicationData></Change></Commands>"
        c = collection(await dev.sync(coll(inbox, key, bad)), inbox)
        assert [(k, n.findtext(A.Status)) for k, n in responses(c)] == [("Change", "6")]
        [email] = await dev.store.fetch_emails(ALICE, dev.backend["Inbox"], [item])
        assert email.flag is None

    run(scenario)


def test_global_window_across_collections(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "14.1")
        for n in range(3):
            dev.store.deliver(ALICE, message(n))
            dev.store.deliver(ALICE, message(10 + n), folder="Sent Items")
        inbox, sent = dev.folders["Inbox"], dev.folders["Sent Items"]
        ki, ks = await dev.initial("Inbox"), await dev.initial("Sent Items")
        reply = await dev.sync(coll(inbox, ki), coll(sent, ks), top="<WindowSize>4</WindowSize>")
        ci, cs = collection(reply, inbox), collection(reply, sent)
        assert len(commands(ci)) == 3 and len(commands(cs)) == 1
        assert ci.find(A.MoreAvailable) is None and cs.find(A.MoreAvailable) is not None

    run(scenario)
