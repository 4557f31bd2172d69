"""Shared folders end to end: the owner grants, the grantee mounts, the grantee's device
sees "Calendar (Bob)" in FolderSync and syncs the owner's items (read and write), a Ping
wakes on the owner's changes; refused mounts say why; unmount and revoke become a Delete
at the next FolderSync and status 12 for a Sync that comes first. Plus ``eas share`` as
a subprocess."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from eas.backend import FolderType
from eas.core import ActiveSync
from eas.items.calendar import Calendar
from eas.items.timezone import to_wire
from eas.store import ReferenceStore, passwords
from eas.store.sharing import ShareError
from eas.tags import AirSync as A
from eas.tags import AirSyncBase as B
from eas.tags import Calendar as CAL
from eas.tags import FolderHierarchy as FH
from eas.tags import ItemOperations as IO
from eas.tags import Move
from eas.tags import Ping as P
from eas.testing.client import Client, Reply
from eas.testing.harness import USERS, client, make_app
from eas.wbxml import Node

ALICE, BOB = USERS[0][0], USERS[1][0]
NS = 'xmlns="AirSync:" xmlns:e="Email:" xmlns:b="AirSyncBase:"'


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real scrypt at a work factor of microseconds: these tests are about sharing."""
    monkeypatch.setattr(passwords, "N", 2**4)


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(scenario)


def message(n: int) -> bytes:
    when = datetime.now(UTC) - timedelta(minutes=10)
    return (f"From: Bob <{BOB}>\r\nTo: {ALICE}\r\nSubject: Shared {n}\r\nDate: {format_datetime(when)}\r\n"
            f"Message-ID: <s{n}.{time.time_ns()}@example.com>\r\nContent-Type: text/plain\r\n\r\nbody {n}\r\n").encode()


async def folder_sync(c: Client, key: str) -> Reply:
    r = await c.command("FolderSync", f'<FolderSync xmlns="FolderHierarchy:"><SyncKey>{key}</SyncKey></FolderSync>')
    assert r.status == 200 and r.text(FH.Status) == "1", r
    return r


def changes(r: Reply) -> list[tuple[str, ...]]:
    """``(kind, ServerId, ParentId, DisplayName, Type)``; a Delete has its ServerId only."""
    assert r.node is not None
    node = r.node.find(FH.Changes)
    assert node is not None
    out: list[tuple[str, ...]] = []
    for child in node:
        if child.tag == FH.Delete:
            out.append(("Delete", str(child.findtext(FH.ServerId))))
        elif child.tag in (FH.Add, FH.Update):
            kind = "Add" if child.tag == FH.Add else "Update"
            out.append((kind, *(str(child.findtext(t)) for t in (FH.ServerId, FH.ParentId, FH.DisplayName, FH.Type))))
    return out


async def sync(c: Client, cid: str, key: str, inner: str = "", top: str = "") -> Node:
    """The collection of a one-collection Sync (2.5 wants a Class)."""
    klass = "<Class>Email</Class>" if c.version == "2.5" else ""
    r = await c.command("Sync", f"<Sync {NS}><Collections><Collection>{klass}<SyncKey>{key}</SyncKey>"
                                f"<CollectionId>{cid}</CollectionId>{inner}</Collection></Collections>{top}</Sync>")
    assert r.status == 200 and r.node is not None, r
    found = r.node.find(A.Collections)
    assert found is not None, r.xml
    return found.children[0]


def adds(collection: Node) -> list[str]:
    cmds = collection.find(A.Commands)
    return [str(n.findtext(A.ServerId)) for n in (cmds or []) if n.tag == A.Add]


async def setup(tmp_path: Path, version: str, folder: str = "Inbox") -> tuple[ActiveSync, ReferenceStore, Client, str]:
    """Bob shares ``folder`` with Alice (rw), she mounts it; her device is provisioned.
    Returns the app, the store, her client and the share's folder id."""
    app, store = make_app(tmp_path)
    share = store.grant(BOB, folder, ALICE, "rw")
    store.mount(ALICE, share.id)
    c = client(app, version=version)
    await c.provision()
    return app, store, c, share.folder_id


# -- the store's rules ------------------------------------------------------------------------


def test_mounts_carbonio_refuses_are_refused_with_a_reason(tmp_path: Path) -> None:
    _app, store = make_app(tmp_path)
    cal = store.folder_id(BOB, "Calendar")
    sub = asyncio.run(store.create_folder(BOB, cal, "Team", FolderType.USER_CALENDAR))
    whole = store.grant(BOB, "/", ALICE, "rw")
    assert whole.folder == "" and whole.folder_id == ""
    with pytest.raises(ShareError, match="whole account"):
        store.mount(ALICE, whole.id)
    read_only = store.grant(BOB, "Contacts", ALICE, "r")
    with pytest.raises(ShareError, match="read-only"):
        store.mount(ALICE, read_only.id)
    parent = store.grant(BOB, "Calendar", ALICE, "rw")
    child = store.grant(BOB, "Calendar/Team", ALICE, "rw")
    assert child.folder == "Calendar/Team" and child.folder_id == sub.id
    with pytest.raises(ShareError, match="inside 'Calendar'"):
        store.mount(ALICE, child.id)
    # The other way round: a mounted subfolder keeps its parent from being mounted.
    store.revoke(BOB, "Calendar", ALICE)
    store.mount(ALICE, child.id)
    parent = store.grant(BOB, "Calendar", ALICE, "rw")
    with pytest.raises(ShareError, match="'Team', a folder inside"):
        store.mount(ALICE, parent.id)
    # Nothing refused was mounted.
    assert {s.id: s.mounted for s in store.shares(ALICE)} == {
        whole.id: False, read_only.id: False, child.id: True, parent.id: False}


def test_bad_share_requests(tmp_path: Path) -> None:
    _app, store = make_app(tmp_path)
    share = store.grant(BOB, "Calendar", ALICE, "rw")
    for bad in (lambda: store.grant(BOB, "Calendar", ALICE, "rwx"),
                lambda: store.grant(BOB, "Calendar", BOB, "rw"),
                lambda: store.grant(BOB, "No such folder", ALICE, "rw"),
                lambda: store.grant("nobody@example.com", "Calendar", ALICE, "rw"),
                lambda: store.grant(BOB, "Calendar", "nobody@example.com", "rw"),
                lambda: store.mount(ALICE, 999),
                lambda: store.mount(BOB, share.id),  # the owner is not the grantee
                lambda: store.revoke(BOB, "Contacts", ALICE)):
        with pytest.raises(ShareError):
            bad()
    assert store.shares(ALICE) == [share]  # nothing changed
    # Lowering the rights to read-only unmounts the share.
    store.mount(ALICE, share.id)
    assert store.grant(BOB, "Calendar", ALICE, "r").mounted is False
    assert [f.name for f in asyncio.run(store.folders(ALICE)) if f.owner] == []


# -- FolderSync, Sync, Ping through a mounted share -------------------------------------------


@pytest.mark.parametrize("version", ["2.5", "14.1", "16.1"])
def test_mounted_share_appears_with_its_own_name_and_type(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        _app, store, c, _ = await setup(tmp_path, version, "Calendar")
        store.set_display_name(BOB, "Bob")
        adds_ = {a[3]: a for a in changes(await folder_sync(c, "0")) if a[0] == "Add"}
        shared = adds_["Calendar (Bob)"]
        assert shared[2] == "0" and shared[4] == str(int(FolderType.USER_CALENDAR))
        assert adds_["Calendar"][4] == str(int(FolderType.CALENDAR))  # her own is still the default
        # The server id is stable: a re-initialising client gets the same one back.
        again = {a[3]: a[1] for a in changes(await folder_sync(c, "0"))}
        assert again["Calendar (Bob)"] == shared[1]
        # Bob's other folders stay invisible; his new display name is an Update of the
        # same server id.
        await store.create_folder(BOB, "", "Projects", FolderType.USER_MAIL)
        assert changes(await folder_sync(c, "2")) == []
        store.set_display_name(BOB, "Robert")
        assert changes(await folder_sync(c, "2")) == [("Update", shared[1], "0", "Calendar (Robert)", shared[4])]

    run(scenario())


@pytest.mark.parametrize("version", ["14.1", "16.1"])
def test_share_items_are_read_and_written_in_the_owners_folder(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        _app, store, c, fid = await setup(tmp_path, version)
        first = store.deliver(BOB, message(1))
        sid = {a[3]: a[1] for a in changes(await folder_sync(c, "0"))}["Inbox (bob)"]
        key = str((await sync(c, sid, "0")).findtext(A.SyncKey))
        got = await sync(c, sid, key)
        assert adds(got) == [f"{sid}:{first}"]
        key = str(got.findtext(A.SyncKey))
        # Her device marks it read and deletes nothing; Bob's store has the change.
        change = f"<Commands><Change><ServerId>{sid}:{first}</ServerId><ApplicationData><e:Read>1</e:Read>" \
                 "</ApplicationData></Change></Commands>"
        done = await sync(c, sid, key, change)
        assert done.findtext(A.Status) == "1"
        key = str(done.findtext(A.SyncKey))
        [mail] = await store.fetch_emails(BOB, fid, [first])
        assert mail.read
        # Her own Inbox is untouched, and Bob's next delivery comes to her device.
        assert await store.item_stamps(ALICE, store.folder_id(ALICE, "Inbox")) == {}
        second = store.deliver(BOB, message(2))
        assert adds(await sync(c, sid, key)) == [f"{sid}:{second}"]
        # Her delete goes to Bob's Deleted Items (his folder, not hers).
        gone = f"<Commands><Delete><ServerId>{sid}:{second}</ServerId></Delete></Commands>"
        assert (await sync(c, sid, str(int(key) + 1), gone)).findtext(A.Status) == "1"
        assert second not in await store.item_stamps(BOB, fid)
        assert len(await store.item_stamps(BOB, store.folder_id(BOB, "Deleted Items"))) == 1
        assert await store.item_stamps(ALICE, store.folder_id(ALICE, "Deleted Items")) == {}

    run(scenario())


@pytest.mark.parametrize("version", ["14.1", "16.1"])
def test_ping_wakes_on_the_owners_change(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        _app, store, c, _ = await setup(tmp_path, version)
        sid = {a[3]: a[1] for a in changes(await folder_sync(c, "0"))}["Inbox (bob)"]
        key = str((await sync(c, sid, "0")).findtext(A.SyncKey))
        quiet = await c.command("Sync", f"<Sync {NS}><Collections><Collection><SyncKey>{key}</SyncKey>"
                                        f"<CollectionId>{sid}</CollectionId></Collection></Collections></Sync>")
        assert quiet.status == 200 and quiet.node is None  # nothing to say: an empty response

        async def later() -> None:
            await asyncio.sleep(0.3)
            store.deliver(BOB, message(3))

        task = asyncio.create_task(later())
        started = time.monotonic()
        r = await asyncio.wait_for(c.command("Ping", f'<Ping xmlns="Ping:"><HeartbeatInterval>300</HeartbeatInterval>'
                                                     f"<Folders><Folder><Id>{sid}</Id><Class>Email</Class></Folder>"
                                                     "</Folders></Ping>"), 20)
        await task
        assert time.monotonic() - started < 10
        assert r.text(P.Status) == "2" and r.text(P.Folders, P.Folder) == sid

    run(scenario())


@pytest.mark.parametrize("version", ["2.5", "14.1", "16.1"])
@pytest.mark.parametrize("how", ["unmount", "revoke"])
def test_unmount_or_revoke_is_12_in_sync_then_a_delete(tmp_path: Path, version: str, how: str) -> None:
    async def scenario() -> None:
        _app, store, c, _ = await setup(tmp_path, version)
        store.deliver(BOB, message(4))
        sid = {a[3]: a[1] for a in changes(await folder_sync(c, "0"))}["Inbox (bob)"]
        key = str((await sync(c, sid, "0")).findtext(A.SyncKey))
        [share] = store.shares(ALICE)
        if how == "unmount":
            store.unmount(ALICE, share.id)
        else:
            store.revoke(BOB, "Inbox", ALICE)
        # Revoked mid-sync: the collection is 12 (hierarchy changed), nothing leaks.
        got = await sync(c, sid, key)
        assert got.findtext(A.Status) == "12" and got.find(A.Commands) is None
        # A Ping on it says FolderSync is needed.
        r = await c.command("Ping", f'<Ping xmlns="Ping:"><HeartbeatInterval>300</HeartbeatInterval><Folders>'
                                    f"<Folder><Id>{sid}</Id><Class>Email</Class></Folder></Folders></Ping>")
        assert r.text(P.Status) == "7"
        assert changes(await folder_sync(c, "1")) == [("Delete", sid)]
        # Bob's mail is untouched.
        assert len(await store.item_stamps(BOB, store.folder_id(BOB, "Inbox"))) == 1

    run(scenario())


def test_device_cannot_rename_or_delete_a_share_nor_create_in_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        _app, store, c, fid = await setup(tmp_path, "14.1", "Calendar")
        sid = {a[3]: a[1] for a in changes(await folder_sync(c, "0"))}["Calendar (bob)"]
        r = await c.command("FolderDelete", f'<FolderDelete xmlns="FolderHierarchy:"><SyncKey>1</SyncKey>'
                                            f"<ServerId>{sid}</ServerId></FolderDelete>")
        assert r.text(FH.Status) == "3"
        r = await c.command("FolderUpdate", f'<FolderUpdate xmlns="FolderHierarchy:"><SyncKey>1</SyncKey>'
                                            f"<ServerId>{sid}</ServerId><ParentId>0</ParentId>"
                                            "<DisplayName>Mine now</DisplayName></FolderUpdate>")
        assert r.text(FH.Status) == "2"
        r = await c.command("FolderCreate", f'<FolderCreate xmlns="FolderHierarchy:"><SyncKey>1</SyncKey>'
                                            f"<ParentId>{sid}</ParentId><DisplayName>Sub</DisplayName>"
                                            "<Type>13</Type></FolderCreate>")
        assert r.text(FH.Status) == "5"
        assert [f.name for f in await store.folders(BOB) if f.id == fid] == ["Calendar"]
        assert changes(await folder_sync(c, "1")) == []  # nothing changed on the way

    run(scenario())


def test_moves_between_accounts_are_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        _app, store, c, fid = await setup(tmp_path, "16.1")
        item = store.deliver(BOB, message(5))
        ids = {a[3]: a[1] for a in changes(await folder_sync(c, "0"))}
        sid, inbox = ids["Inbox (bob)"], ids["Inbox"]
        r = await c.command("MoveItems", f'<MoveItems xmlns="Move:"><Move><SrcMsgId>{sid}:{item}</SrcMsgId>'
                                         f"<SrcFldId>{sid}</SrcFldId><DstFldId>{inbox}</DstFldId></Move></MoveItems>")
        assert r.text(Move.Response, Move.Status) == "2"  # invalid destination: another account
        assert item in await store.item_stamps(BOB, fid)  # still Bob's, in his Inbox
        assert await store.item_stamps(ALICE, store.folder_id(ALICE, "Inbox")) == {}

    run(scenario())


# -- eas share ---------------------------------------------------------------------------------


def eas(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EAS_DATA_DIR": str(data)}
    return subprocess.run([sys.executable, "-m", "eas", *args], check=False, capture_output=True, text=True,
                          env=env, timeout=60)


def test_cli_grant_mount_list_refuse(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for user in (ALICE, BOB):
        assert eas(data, "user", "add", user, "--password", "pw").returncode == 0
    granted = eas(data, "share", "grant", BOB, "Calendar", ALICE, "--rights", "rw")
    assert granted.returncode == 0 and "share 1:" in granted.stdout
    assert eas(data, "share", "grant", BOB, "/", ALICE).returncode == 0
    mounted = eas(data, "share", "mount", ALICE, "1")
    assert mounted.returncode == 0 and "mounted" in mounted.stdout
    refused = eas(data, "share", "mount", ALICE, "2")
    assert refused.returncode == 2 and "whole account" in refused.stderr
    unknown = eas(data, "share", "mount", ALICE, "77")
    assert unknown.returncode == 2 and "no share 77" in unknown.stderr
    listed = eas(data, "share", "list", ALICE).stdout.splitlines()
    assert [line.split("\t")[0] for line in listed] == ["1", "2"]
    assert "\tmounted" in listed[0] and "not mounted" in listed[1]
    with ReferenceStore(data / "mail.db") as store:
        assert [f.name for f in asyncio.run(store.folders(ALICE)) if f.owner == BOB] == ["Calendar (bob)"]
    assert eas(data, "share", "revoke", BOB, "Calendar", ALICE).returncode == 0
    assert eas(data, "share", "revoke", BOB, "Calendar", ALICE).returncode == 2


def test_owner_deleting_a_shared_folder_wakes_the_grantees_ping_with_7(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path)
        team = await store.create_folder(BOB, "", "Team", FolderType.USER_CALENDAR)
        store.mount(ALICE, store.grant(BOB, "Team", ALICE, "rw").id)
        c = client(app, version="16.1")
        await c.provision()
        sid = {a[3]: a[1] for a in changes(await folder_sync(c, "0"))}["Team (bob)"]

        async def later() -> None:
            await asyncio.sleep(0.3)
            await store.delete_folder(BOB, team.id)  # the share goes with it (a cascade)

        task = asyncio.create_task(later())
        started = time.monotonic()
        r = await asyncio.wait_for(c.command("Ping", f'<Ping xmlns="Ping:"><HeartbeatInterval>300</HeartbeatInterval>'
                                                     f"<Folders><Folder><Id>{sid}</Id><Class>Calendar</Class></Folder>"
                                                     "</Folders></Ping>"), 20)
        await task
        assert time.monotonic() - started < 10  # woken, not the 300 s heartbeat
        assert r.text(P.Status) == "7"
        assert changes(await folder_sync(c, "1")) == [("Delete", sid)]
        assert store.shares(ALICE) == []

    run(scenario())


def test_attachment_of_a_shared_mail(tmp_path: Path) -> None:
    async def scenario() -> None:
        _app, store, c, _ = await setup(tmp_path, "14.1")
        mime = (f"From: Bob <{BOB}>\r\nTo: {BOB}\r\nSubject: Agenda\r\nDate: Mon, 30 Nov 2026 04:00:00 +0000\r\n"
                "Message-ID: <agenda@example.com>\r\nMIME-Version: 1.0\r\n"
                'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee\r\n'
                '--b\r\nContent-Type: application/pdf; name="a.pdf"\r\nContent-Disposition: attachment; '
                'filename="a.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
                + base64.b64encode(b"%PDF-1.4 agenda").decode() + "\r\n--b--\r\n").encode()
        item = store.deliver(BOB, mime)
        sid = {a[3]: a[1] for a in changes(await folder_sync(c, "0"))}["Inbox (bob)"]
        key = str((await sync(c, sid, "0")).findtext(A.SyncKey))
        got = await sync(c, sid, key, "<Options><b:BodyPreference><b:Type>1</b:Type></b:BodyPreference></Options>")
        add = next(n for n in got.find(A.Commands) or [] if n.findtext(A.ServerId) == f"{sid}:{item}")
        ref = add.findtext(A.ApplicationData, B.Attachments, B.Attachment, B.FileReference)
        assert isinstance(ref, str) and ref
        r = await c.command("ItemOperations", '<ItemOperations xmlns="ItemOperations:" xmlns:b="AirSyncBase:">'
                                              f"<Fetch><Store>Mailbox</Store><b:FileReference>{ref}</b:FileReference>"
                                              "</Fetch></ItemOperations>")
        assert r.text(IO.Response, IO.Fetch, IO.Status) == "1", r.xml
        data = r.text(IO.Response, IO.Fetch, IO.Properties, IO.Data)
        assert base64.b64decode(str(data)) == b"%PDF-1.4 agenda"
        # Once unmounted, the same reference is not found for her.
        store.unmount(ALICE, store.shares(ALICE)[0].id)
        r = await c.command("ItemOperations", '<ItemOperations xmlns="ItemOperations:" xmlns:b="AirSyncBase:">'
                                              f"<Fetch><Store>Mailbox</Store><b:FileReference>{ref}</b:FileReference>"
                                              "</Fetch></ItemOperations>")
        assert r.text(IO.Response, IO.Fetch, IO.Status) == "15", r.xml  # attachment not found

    run(scenario())


@pytest.mark.parametrize("version", ["14.1", "16.1"])
def test_contact_added_by_the_grantee_is_the_owners(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        _app, store, c, fid = await setup(tmp_path, version, "Contacts")
        sid = {a[3]: a[1] for a in changes(await folder_sync(c, "0"))}["Contacts (bob)"]
        key = (await c.command("Sync", f'<Sync xmlns="AirSync:"><Collections><Collection><SyncKey>0</SyncKey>'
                                       f"<CollectionId>{sid}</CollectionId></Collection></Collections></Sync>"))
        key_text = key.text(A.Collections, A.Collection, A.SyncKey)
        r = await c.command("Sync", f'<Sync xmlns="AirSync:" xmlns:c="Contacts:"><Collections><Collection>'
                                    f"<SyncKey>{key_text}</SyncKey><CollectionId>{sid}</CollectionId><Commands><Add>"
                                    "<ClientId>c1</ClientId><ApplicationData><c:FileAs>Carol</c:FileAs>"
                                    "<c:FirstName>Carol</c:FirstName></ApplicationData></Add></Commands>"
                                    "</Collection></Collections></Sync>")
        assert r.text(A.Collections, A.Collection, A.Responses, A.Add, A.Status) == "1", r.xml
        new = str(r.text(A.Collections, A.Collection, A.Responses, A.Add, A.ServerId))
        assert new.startswith(f"{sid}:")
        [contact] = await store.fetch_items(BOB, fid, [new.split(":", 1)[1]])  # Bob reads it as his own
        assert getattr(contact, "file_as", None) == "Carol"
        assert await store.item_stamps(ALICE, store.folder_id(ALICE, "Contacts")) == {}

    run(scenario())


@pytest.mark.parametrize("version", ["14.1", "16.1"])
def test_mount_wakes_a_waiting_ping_with_7_then_an_add(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path)
        share = store.grant(BOB, "Calendar", ALICE, "rw")
        c = client(app, version=version)
        await c.provision()
        inbox = {a[3]: a[1] for a in changes(await folder_sync(c, "0"))}["Inbox"]

        async def later() -> None:
            await asyncio.sleep(0.3)
            store.mount(ALICE, share.id)

        task = asyncio.create_task(later())
        started = time.monotonic()
        r = await asyncio.wait_for(c.command("Ping", f'<Ping xmlns="Ping:"><HeartbeatInterval>300</HeartbeatInterval>'
                                                     f"<Folders><Folder><Id>{inbox}</Id><Class>Email</Class></Folder>"
                                                     "</Folders></Ping>"), 20)
        await task
        assert time.monotonic() - started < 10 and r.text(P.Status) == "7"
        [(kind, _sid, parent, name, kind_of)] = changes(await folder_sync(c, "1"))
        assert (kind, parent, name, kind_of) == ("Add", "0", "Calendar (bob)", "13")

    run(scenario())


@pytest.mark.parametrize("version", ["14.1", "16.1"])
def test_shared_calendar_events_sync_both_ways(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        _app, store, c, fid = await setup(tmp_path, version, "Calendar")
        start = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
        event, _ = await store.add_item(BOB, fid, Calendar(subject="Trip", start=start, end=start + timedelta(hours=2)))
        sid = {a[3]: a[1] for a in changes(await folder_sync(c, "0"))}["Calendar (bob)"]
        cal_ns = 'xmlns="AirSync:" xmlns:cal="Calendar:"'

        async def sync_cal(key: str, inner: str = "") -> Node:
            r = await c.command("Sync", f"<Sync {cal_ns}><Collections><Collection><SyncKey>{key}</SyncKey>"
                                        f"<CollectionId>{sid}</CollectionId>{inner}</Collection></Collections></Sync>")
            assert r.node is not None, r
            return r.node.find(A.Collections).children[0]  # type: ignore[union-attr]

        key = str((await sync_cal("0")).findtext(A.SyncKey))
        got = await sync_cal(key)
        [add] = [n for n in got.find(A.Commands) or [] if n.tag == A.Add]
        assert add.findtext(A.ServerId) == f"{sid}:{event}"
        assert add.findtext(A.ApplicationData, CAL.Subject) == "Trip"
        key = str(got.findtext(A.SyncKey))
        stamp = "%Y%m%dT%H%M%SZ"
        change = (f"<Commands><Change><ServerId>{sid}:{event}</ServerId><ApplicationData>"
                  f"<cal:Timezone>{to_wire('UTC')}</cal:Timezone><cal:StartTime>{start.strftime(stamp)}"
                  f"</cal:StartTime><cal:EndTime>{(start + timedelta(hours=3)).strftime(stamp)}</cal:EndTime>"
                  "<cal:Subject>Longer trip</cal:Subject></ApplicationData></Change></Commands>")
        assert (await sync_cal(key, change)).findtext(A.Status) == "1"
        [stored] = await store.fetch_items(BOB, fid, [event])
        assert isinstance(stored, Calendar) and stored.subject == "Longer trip"
        assert stored.end == start + timedelta(hours=3)

    run(scenario())
