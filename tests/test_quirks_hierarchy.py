"""Hierarchy quirks of real clients, as request sequences recorded from them (shapes, not
bytes), kept as regression tests.

Gmail (Android's Exchange client, from 2025.11): every pull-to-refresh runs FolderSync
with SyncKey 0, then Syncs its collections with the keys it had (Z-Push issue #176: a
server that resets state on that makes the mail vanish and download again). What it
needs: the same ServerIds back, collection SyncKeys still valid (no re-Adds), Ping not
answering 7 forever, a folder deleted meanwhile answered 12 while the others carry on,
and Drafts and Outbox in the hierarchy (Android resets an account without them, Horde
pull request #120).

Outlook for iOS and Android: a cloud service speaks EAS 16.1 for the app (DeviceType
"Outlook", User-Agent "Outlook-iOS-Android/1.0", a 32-hex DeviceId per account, so one
phone with two accounts is two devices), from changing Microsoft addresses
(X-Forwarded-For). It starts with OPTIONS, provisions with DeviceInformation, runs
FolderSync 0 and Syncs several collections from SyncKey 0 in one request; Z-Push's
Outlook reports show folders dropped whose parent the device was never sent, so every
ParentId must name a folder sent before it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from eas.backend import FolderType
from eas.core import ActiveSync
from eas.store import passwords
from eas.tags import AirSync as A
from eas.tags import FolderHierarchy as FH
from eas.tags import GetItemEstimate as GIE
from eas.tags import Ping as P
from eas.testing.client import Client, Reply
from eas.testing.harness import USERS, client, make_app
from eas.wbxml import Node

ALICE, BOB = USERS[0][0], USERS[1][0]
GMAIL = {"device_type": "Android", "user_agent": "Android-Mail/2025.11.02.123456789.Release",
         "device_id": "androidc1234567890"}


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "N", 2**4)


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(scenario)


_counter = itertools.count()


def message(subject: str) -> bytes:
    when = format_datetime(datetime.now(UTC) - timedelta(minutes=5))
    return (f"From: Bob <{BOB}>\r\nTo: {ALICE}\r\nSubject: {subject}\r\nDate: {when}\r\n"
            f"Message-ID: <q{next(_counter)}@example.com>\r\nContent-Type: text/plain\r\n\r\nhello\r\n").encode()


async def folder_sync(c: Client, key: str) -> Reply:
    r = await c.command("FolderSync", f'<FolderSync xmlns="FolderHierarchy:"><SyncKey>{key}</SyncKey></FolderSync>')
    assert r.status == 200 and r.text(FH.Status) == "1", r
    return r


def adds(r: Reply) -> list[tuple[str, str, str, str]]:
    """``(ServerId, ParentId, DisplayName, Type)`` of the Adds, in order."""
    assert r.node is not None
    changes = r.node.find(FH.Changes)
    assert changes is not None
    return [tuple(str(a.findtext(t)) for t in (FH.ServerId, FH.ParentId, FH.DisplayName, FH.Type))  # type: ignore[misc]
            for a in changes.findall(FH.Add)]


def by_name(r: Reply) -> dict[str, str]:
    return {name: sid for sid, _, name, _ in adds(r)}


async def sync(c: Client, *collections: tuple[str, str]) -> dict[str, Node]:
    """Sync ``(CollectionId, SyncKey)`` pairs (2.5 names each Class); the collections of
    the answer by id (an empty answer: none)."""
    klass = "<Class>Email</Class>" if c.version == "2.5" else ""
    body = "".join(f"<Collection>{klass}<SyncKey>{key}</SyncKey><CollectionId>{cid}</CollectionId></Collection>"
                   for cid, key in collections)
    r = await c.command("Sync", f'<Sync xmlns="AirSync:"><Collections>{body}</Collections></Sync>')
    assert r.status == 200, r
    if r.node is None:
        return {}
    found = r.node.find(A.Collections)
    assert found is not None, r.xml
    return {str(n.findtext(A.CollectionId)): n for n in found}


def added_ids(collection: Node) -> list[str]:
    return [str(n.findtext(A.ServerId)) for n in collection.find(A.Commands) or [] if n.tag == A.Add]


async def ping(c: Client, body: str = "") -> Reply:
    r = await asyncio.wait_for(c.command("Ping", body or None), 20)
    assert r.status == 200, r
    return r


def parents_come_first(r: Reply) -> bool:
    """Every ParentId is 0 or a ServerId the response (or the device) had before it."""
    seen = {"0"}
    for sid, parent, _, _ in adds(r):
        if parent not in seen:
            return False
        seen.add(sid)
    return True


# -- Gmail: FolderSync 0 on every refresh ---------------------------------------------------------


@pytest.mark.parametrize("version", ["2.5", "14.1", "16.1"])
def test_gmail_refresh_keeps_server_ids_and_collection_keys(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path)
        c = client(app, version=version, **GMAIL)
        await c.provision()
        first = await folder_sync(c, "0")
        names = {name for _, _, name, _ in adds(first)}
        assert {"Drafts", "Outbox"} <= names  # Android resets an account without them
        ids = by_name(first)
        inbox = ids["Inbox"]
        store.deliver(ALICE, message("one"))
        key = str((await sync(c, (inbox, "0")))[inbox].findtext(A.SyncKey))
        got = (await sync(c, (inbox, key)))[inbox]
        assert len(added_ids(got)) == 1
        key = str(got.findtext(A.SyncKey))

        for refresh in range(3):  # pull to refresh, three times
            again = await folder_sync(c, "0")
            assert by_name(again) == ids, f"refresh {refresh}: server ids moved"
            # The old collection key is still good: nothing is sent twice.
            quiet = await sync(c, (inbox, key))
            assert version != "2.5" and quiet == {} or (
                quiet[inbox].findtext(A.Status) == "1" and added_ids(quiet[inbox]) == [])
            if version == "2.5":
                key = str(quiet[inbox].findtext(A.SyncKey))
        # New mail after the refreshes comes as one Add under the same collection.
        store.deliver(ALICE, message("two"))
        got = (await sync(c, (inbox, key)))[inbox]
        assert got.findtext(A.Status) == "1" and len(added_ids(got)) == 1

    run(scenario())


@pytest.mark.parametrize("version", ["14.1", "16.1"])
def test_gmail_refresh_then_ping_and_estimate_with_old_state(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path)
        c = client(app, version=version, **GMAIL)
        await c.provision()
        inbox = by_name(await folder_sync(c, "0"))["Inbox"]
        key = str((await sync(c, (inbox, "0")))[inbox].findtext(A.SyncKey))
        await sync(c, (inbox, key))
        await folder_sync(c, "0")
        store.deliver(ALICE, message("while refreshing"))
        # GetItemEstimate with the key from before the refresh counts the one new mail.
        est = await c.command("GetItemEstimate", f'<GetItemEstimate xmlns="GetItemEstimate:" xmlns:a="AirSync:">'
                                                 f"<Collections><Collection><a:SyncKey>{key}</a:SyncKey>"
                                                 f"<CollectionId>{inbox}</CollectionId></Collection></Collections>"
                                                 "</GetItemEstimate>")
        assert est.text(GIE.Response, GIE.Status) == "1"
        assert est.text(GIE.Response, GIE.Collection, GIE.Estimate) == "1"
        # Ping after the refresh: changes (2), not "FolderSync needed" (7).
        r = await ping(c, f'<Ping xmlns="Ping:"><HeartbeatInterval>300</HeartbeatInterval><Folders><Folder>'
                          f"<Id>{inbox}</Id><Class>Email</Class></Folder></Folders></Ping>")
        assert r.text(P.Status) == "2"
        await folder_sync(c, "0")
        store.deliver(ALICE, message("again"))
        assert (await ping(c)).text(P.Status) == "2"  # the cached Ping parameters survive too

    run(scenario())


def test_gmail_refresh_after_a_folder_went_away(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path)
        archive = await store.create_folder(ALICE, "", "Archive", FolderType.USER_MAIL)
        c = client(app, version="16.1", **GMAIL)
        await c.provision()
        ids = by_name(await folder_sync(c, "0"))
        keys = {}
        for name in ("Inbox", "Archive"):
            sid = ids[name]
            keys[name] = str((await sync(c, (sid, "0")))[sid].findtext(A.SyncKey))
        await store.delete_folder(ALICE, archive.id)
        projects = await store.create_folder(ALICE, "", "Projects", FolderType.USER_MAIL)
        again = by_name(await folder_sync(c, "0"))
        assert "Archive" not in again and again["Projects"] not in ids.values()
        assert {k: v for k, v in again.items() if k != "Projects"} == {k: v for k, v in ids.items() if k != "Archive"}
        # Gmail syncs what it had: the gone folder is 12, the Inbox carries on.
        answer = await sync(c, (ids["Inbox"], keys["Inbox"]), (ids["Archive"], keys["Archive"]))
        assert answer[ids["Archive"]].findtext(A.Status) == "12"
        assert ids["Inbox"] not in answer or answer[ids["Inbox"]].findtext(A.Status) == "1"
        del projects

    run(scenario())


def test_gmail_lost_foldersync_0_response_repeated(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, _store = make_app(tmp_path)
        c = client(app, version="14.1", **GMAIL)
        await c.provision()
        first = await folder_sync(c, "0")
        second = await folder_sync(c, "0")  # the first answer never arrived
        assert adds(second) == adds(first)
        assert int(str(second.text(FH.SyncKey))) == int(str(first.text(FH.SyncKey))) + 1
        # The superseded key is refused (9) and the current one is quiet.
        stale = await c.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>'
                                              f"{first.text(FH.SyncKey)}</SyncKey></FolderSync>")
        assert stale.text(FH.Status) == "9"
        current = await folder_sync(c, str(second.text(FH.SyncKey)))
        assert adds(current) == [] and current.text(FH.Changes, FH.Count) == "0"

    run(scenario())


# -- Outlook for iOS and Android ------------------------------------------------------------------


def outlook(app: ActiveSync, user: str, password: str, device_id: str, address: str) -> Client:
    c = client(app, user, password, version="16.1", device_id=device_id, device_type="Outlook",
               user_agent="Outlook-iOS-Android/1.0")
    c.extra_headers = [("X-Forwarded-For", address)]
    return c


async def outlook_setup(app: ActiveSync, c: Client) -> Reply:
    """OPTIONS, Provision (with DeviceInformation), FolderSync 0, as the app's service does."""
    options = await c.options()
    assert options.status == 200 and "16.1" in options.headers["ms-asprotocolversions"].split(",")
    assert "FolderSync" in options.headers["ms-asprotocolcommands"].split(",")
    await c.provision()
    del app
    return await folder_sync(c, "0")


def test_outlook_mobile_setup_and_first_syncs(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path)
        inbox_id = store.folder_id(ALICE, "Inbox")
        top = await store.create_folder(ALICE, inbox_id, "Clients", FolderType.USER_MAIL)
        await store.create_folder(ALICE, top.id, "ACME", FolderType.USER_MAIL)
        store.deliver(ALICE, message("welcome"))
        c = outlook(app, ALICE, USERS[0][1], "e1568c571e684e0fb1724da85d215dc0", "52.96.0.10")
        r = await outlook_setup(app, c)
        assert parents_come_first(r)
        types = [t for _, _, _, t in adds(r)]
        assert types.count("2") == 1 and types.count("8") == 1 and types.count("9") == 1
        ids = by_name(r)
        # Several collections from SyncKey 0 in one request, from another cloud address.
        c.extra_headers = [("X-Forwarded-For", "40.97.1.2, 10.0.0.1")]
        first = await sync(c, (ids["Inbox"], "0"), (ids["Calendar"], "0"), (ids["Contacts"], "0"))
        assert {cid: n.findtext(A.Status) for cid, n in first.items()} == {
            ids["Inbox"]: "1", ids["Calendar"]: "1", ids["Contacts"]: "1"}
        keys = {cid: str(n.findtext(A.SyncKey)) for cid, n in first.items()}
        c.extra_headers = [("X-Forwarded-For", "13.107.6.3")]
        second = await sync(c, *keys.items())
        assert len(added_ids(second[ids["Inbox"]])) == 1
        # The device's record is one device, whatever address it came from.
        device = await app.store.get_device(ALICE, c.device_id)
        assert device is not None and device.device_type == "Outlook"
        assert device.user_agent == "Outlook-iOS-Android/1.0" and device.protocol_version == "16.1"

    run(scenario())


def test_outlook_mobile_two_accounts_are_two_devices(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path)
        store.mount(ALICE, store.grant(BOB, "Calendar", ALICE, "rw").id)
        a = outlook(app, ALICE, USERS[0][1], "0f4b1c2d3e4f5a6b7c8d9e0f1a2b3c4d", "52.96.0.11")
        b = outlook(app, BOB, USERS[1][1], "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d", "52.96.0.11")
        ra, rb = await outlook_setup(app, a), await outlook_setup(app, b)
        assert "Calendar (bob)" in by_name(ra) and "Calendar (bob)" not in by_name(rb)
        assert ra.text(FH.SyncKey) == rb.text(FH.SyncKey) == "1"
        # Bob's new folder reaches his device only.
        await store.create_folder(BOB, "", "Receipts", FolderType.USER_MAIL)
        assert [n for _, _, n, _ in adds(await folder_sync(b, "1"))] == ["Receipts"]
        assert adds(await folder_sync(a, "1")) == []
        assert await app.store.get_device(ALICE, b.device_id) is None
        assert await app.store.get_device(BOB, a.device_id) is None

    run(scenario())


def test_outlook_mobile_never_gets_a_parent_it_was_not_sent(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path)
        c = outlook(app, ALICE, USERS[0][1], "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e", "52.96.0.12")
        await outlook_setup(app, c)
        # A subtree appears between two FolderSyncs, deepest first in the store's ids.
        parent = await store.create_folder(ALICE, "", "Parent", FolderType.USER_MAIL)
        child = await store.create_folder(ALICE, parent.id, "Child", FolderType.USER_MAIL)
        await store.create_folder(ALICE, child.id, "Grandchild", FolderType.USER_MAIL)
        await store.update_folder(ALICE, parent.id, "", "Parent renamed")
        r = await folder_sync(c, "1")
        assert [n for _, _, n, _ in adds(r)] == ["Parent renamed", "Child", "Grandchild"]
        assert parents_come_first(r)

    run(scenario())

