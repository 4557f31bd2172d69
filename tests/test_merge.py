"""Merged folders (``eas.merge``) end to end: a device matched by
``Config.merge_folders_for`` sees one Contacts (Calendar, Tasks, Notes) folder holding
the items of all of them, shared ones included; its adds land in the default folder, its
changes and deletes in the item's own folder; a Ping on the merged folder wakes on a
change in any of them. Other devices of the same user see every folder."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from eas import merge
from eas.backend import FolderType
from eas.core import ActiveSync, Config
from eas.items.calendar import Calendar
from eas.items.contacts import Contact
from eas.items.timezone import to_wire
from eas.protocol.http import EASRequest
from eas.protocol.versions import Version
from eas.store import ReferenceStore, passwords
from eas.tags import AirSync as A
from eas.tags import Calendar as CAL
from eas.tags import FolderHierarchy as FH
from eas.tags import Ping as P
from eas.testing.client import Client, Reply
from eas.testing.harness import USERS, client, make_app
from eas.wbxml import Node

ALICE, BOB = USERS[0][0], USERS[1][0]
SAMSUNG = {"device_type": "SAMSUNGSMG991B", "user_agent": "SAMSUNG-SM-G991B/101.10.0"}
CONFIG = Config(merge_folders_for=("SAMSUNG", r"Android-Mail/\d"))


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "N", 2**4)


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(scenario)


async def folder_ids(c: Client) -> dict[str, tuple[str, str]]:
    """DisplayName -> (ServerId, Type) of an initial FolderSync."""
    r = await c.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>')
    assert r.status == 200 and r.text(FH.Status) == "1" and r.node is not None
    changes = r.node.find(FH.Changes)
    assert changes is not None
    return {str(a.findtext(FH.DisplayName)): (str(a.findtext(FH.ServerId)), str(a.findtext(FH.Type)))
            for a in changes.findall(FH.Add)}


async def sync(c: Client, cid: str, key: str, inner: str = "") -> Reply:
    return await c.command("Sync", f'<Sync xmlns="AirSync:" xmlns:c="Contacts:"><Collections><Collection>'
                                   f"<SyncKey>{key}</SyncKey><CollectionId>{cid}</CollectionId>{inner}"
                                   "</Collection></Collections></Sync>")


def collection(r: Reply) -> Node:
    assert r.status == 200 and r.node is not None, r
    found = r.node.find(A.Collections)
    assert found is not None
    return found.children[0]


def added(c: Node) -> dict[str, str]:
    """ServerId -> FileAs of the Adds."""
    cmds = c.find(A.Commands)
    return {str(n.findtext(A.ServerId)): str(n.find(A.ApplicationData).children[0].text)  # type: ignore[union-attr]
            for n in (cmds or []) if n.tag == A.Add}


async def world(tmp_path: Path, version: str) -> tuple[ActiveSync, ReferenceStore, dict[str, str], dict[str, str]]:
    """Alice has Contacts and a second address book "Work", and has mounted Bob's
    Contacts; one contact in each. Returns folder ids and item ids by name."""
    app, store = make_app(tmp_path, config=CONFIG)
    work = await store.create_folder(ALICE, "", "Work", FolderType.USER_CONTACTS)
    folders = {"own": store.folder_id(ALICE, "Contacts"), "work": work.id, "bob": store.folder_id(BOB, "Contacts")}
    store.mount(ALICE, store.grant(BOB, "Contacts", ALICE, "rw").id)
    items = {}
    for name, owner in (("own", ALICE), ("work", ALICE), ("bob", BOB)):
        items[name], _ = await store.add_item(owner, folders[name], Contact(file_as=name.title(), first_name=name))
    del version
    return app, store, folders, items


# -- which devices merge ---------------------------------------------------------------------


def request(device_type: str, user_agent: str) -> EASRequest:
    return EASRequest(command="Sync", user="u", device_id="d", device_type=device_type, version=Version("16.1"),
                      user_agent=user_agent)


@pytest.mark.parametrize(("device_type", "user_agent", "merged"), [
    ("SAMSUNGSMG991B", "whatever", True),        # a prefix of DeviceType
    ("samsungsm-a52", "", True),                  # ignoring case
    ("Android", "Android-Mail/12.3", True),       # a regular expression on User-Agent
    ("Android", "Android-Mail/x", False),
    ("iPhone", "Apple-iPhone14C2/2006.8", False),
    ("MySAMSUNG", "", False),                     # at the start only
])
def test_which_devices_merge(device_type: str, user_agent: str, merged: bool) -> None:
    assert merge.wanted(CONFIG, request(device_type, user_agent)) is merged
    assert merge.wanted(Config(), request(device_type, user_agent)) is False


def test_a_pattern_that_is_no_regex_is_taken_literally() -> None:
    config = Config(merge_folders_for=("SAMSUNG[",))
    assert merge.wanted(config, request("SAMSUNG[X]", "")) is True
    assert merge.wanted(config, request("SAMSUNGSMG991B", "")) is False


@pytest.mark.parametrize(("folder", "item"), [
    ("8", "1"), ("8", "a/b"), ("8", "19/2"),        # the default folder's ids, "/" in them too
    ("19", "2"), ("19/2", "5"), ("19", "2/5"),     # other folders, "/" in folder and item ids
])
def test_item_ids_round_trip(folder: str, item: str) -> None:
    view = merge.MergedBackend(None)  # type: ignore[arg-type]
    view._members = {"8": ["8", "19", "19/2"]}
    shown = view._encode("8", folder, item)
    assert asyncio.run(view._decode("u", "8", shown)) == (folder, item)
    assert (shown == item) is (folder == "8" and "/" not in item)


# -- the hierarchy -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.5", "14.1", "16.1"])
def test_merged_device_sees_one_folder_per_type(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        app, store, _, _ = await world(tmp_path, version)
        await store.create_folder(ALICE, "", "Team calendar", FolderType.USER_CALENDAR)
        await store.create_folder(ALICE, "", "Archive", FolderType.USER_MAIL)
        merged = client(app, version=version, device_id="Samsung1", **SAMSUNG)
        plain = client(app, version=version, device_id="Plain1")
        for c in (merged, plain):
            await c.provision()
        seen = await folder_ids(merged)
        everything = await folder_ids(plain)
        assert {"Work", "Contacts (bob)", "Team calendar"} <= set(everything)
        assert set(everything) - set(seen) == {"Work", "Contacts (bob)", "Team calendar"}
        assert seen["Archive"][1] == "12"  # mail folders are never merged
        assert [n for n, (_, t) in seen.items() if t in ("8", "9", "7", "10", "13", "14", "15", "17")] == \
            ["Calendar", "Contacts", "Tasks", "Notes"]

    run(scenario())


# -- items -------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["14.1", "16.1"])
def test_items_of_every_address_book_in_the_default_one(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        app, store, folders, items = await world(tmp_path, version)
        c = client(app, version=version, **SAMSUNG)
        await c.provision()
        cid = (await folder_ids(c))["Contacts"][0]
        key = str(collection(await sync(c, cid, "0")).findtext(A.SyncKey))
        got = collection(await sync(c, cid, key))
        key = str(got.findtext(A.SyncKey))
        by_name = {v: k for k, v in added(got).items()}
        # The default folder's item keeps its own id; the others carry their folder.
        assert by_name == {"Own": f"{cid}:{items['own']}", "Work": f"{cid}:{folders['work']}/{items['work']}",
                           "Bob": f"{cid}:{folders['bob']}/{items['bob']}"}

        # A change and a delete go to the item's own folder (Bob's one through the share).
        change = (f"<Commands><Change><ServerId>{by_name['Work']}</ServerId><ApplicationData>"
                  "<c:FileAs>Work 2</c:FileAs><c:FirstName>work</c:FirstName></ApplicationData></Change>"
                  f"<Delete><ServerId>{by_name['Bob']}</ServerId></Delete>"
                  "<Add><ClientId>new-1</ClientId><ApplicationData><c:FileAs>New</c:FileAs></ApplicationData></Add>"
                  "</Commands>")
        done = collection(await sync(c, cid, key, change))
        assert done.findtext(A.Status) == "1", done
        responses = done.find(A.Responses)
        assert responses is not None
        [add] = responses.findall(A.Add)
        assert add.findtext(A.Status) == "1"
        [work] = await store.fetch_items(ALICE, folders["work"], [items["work"]])
        assert isinstance(work, Contact) and work.file_as == "Work 2"
        assert items["bob"] not in await store.item_stamps(BOB, folders["bob"])
        # The add is in the default folder, under the id the device was given.
        new_ids = set(await store.item_stamps(ALICE, folders["own"])) - {items["own"]}
        assert [f"{cid}:{i}" for i in new_ids] == [add.findtext(A.ServerId)]
        assert len(await store.item_stamps(ALICE, folders["work"])) == 1

    run(scenario())


def test_unknown_and_hostile_merged_ids_are_not_found(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store, folders, items = await world(tmp_path, "16.1")
        c = client(app, version="16.1", **SAMSUNG)
        await c.provision()
        cid = (await folder_ids(c))["Contacts"][0]
        key = str(collection(await sync(c, cid, "0")).findtext(A.SyncKey))
        key = str(collection(await sync(c, cid, key)).findtext(A.SyncKey))
        # An id naming a folder that is not merged here (Alice's Inbox), one naming nothing.
        inbox = store.folder_id(ALICE, "Inbox")
        bad = "".join(f"<Change><ServerId>{cid}:{sid}</ServerId><ApplicationData><c:FileAs>x</c:FileAs>"
                      "</ApplicationData></Change>" for sid in (f"{inbox}/1", "99999/1", "../1", f"{folders['work']}/"))
        done = collection(await sync(c, cid, key, f"<Commands>{bad}</Commands>"))
        statuses = [r.findtext(A.Status) for r in done.find(A.Responses) or []]
        assert statuses == ["8", "8", "8", "8"]
        [work] = await store.fetch_items(ALICE, folders["work"], [items["work"]])
        assert isinstance(work, Contact) and work.file_as == "Work"  # untouched

    run(scenario())


def test_ping_on_the_merged_folder_wakes_on_any_of_them(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store, folders, _ = await world(tmp_path, "14.1")
        c = client(app, version="14.1", **SAMSUNG)
        await c.provision()
        cid = (await folder_ids(c))["Contacts"][0]
        key = str(collection(await sync(c, cid, "0")).findtext(A.SyncKey))
        collection(await sync(c, cid, key))
        key = str(int(key) + 1)
        assert (await sync(c, cid, key)).node is None  # all synced: an empty response

        async def later() -> None:
            await asyncio.sleep(0.3)
            await store.add_item(BOB, folders["bob"], Contact(file_as="Later"))  # Bob's, through the share

        task = asyncio.create_task(later())
        started = time.monotonic()
        r = await asyncio.wait_for(c.command("Ping", f'<Ping xmlns="Ping:"><HeartbeatInterval>300</HeartbeatInterval>'
                                                     f"<Folders><Folder><Id>{cid}</Id><Class>Contacts</Class>"
                                                     "</Folder></Folders></Ping>"), 20)
        await task
        assert time.monotonic() - started < 10
        assert r.text(P.Status) == "2" and r.text(P.Folders, P.Folder) == cid
        assert list(added(collection(await sync(c, cid, key))).values()) == ["Later"]

    run(scenario())


# -- calendars ---------------------------------------------------------------------------------

SOON = (datetime.now(UTC) + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)


def event_xml(version: str, subject: str) -> str:
    """A device's event (before 16.0 it names its UID; from 16.0 the server makes it)."""
    stamp = "%Y%m%dT%H%M%SZ"
    uid = f"<cal:UID>dev-{subject}</cal:UID>" if version < "16" else ""
    return (f"<cal:Timezone>{to_wire('UTC')}</cal:Timezone><cal:StartTime>{SOON.strftime(stamp)}</cal:StartTime>"
            f"<cal:EndTime>{(SOON + timedelta(hours=1)).strftime(stamp)}</cal:EndTime>"
            f"<cal:Subject>{subject}</cal:Subject>{uid}")


@pytest.mark.parametrize("version", ["14.1", "16.1"])
def test_every_calendar_in_the_default_one(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        app, store = make_app(tmp_path, config=CONFIG)
        team = await store.create_folder(ALICE, "", "Team", FolderType.USER_CALENDAR)
        store.mount(ALICE, store.grant(BOB, "Calendar", ALICE, "rw").id)
        folders = {"own": store.folder_id(ALICE, "Calendar"), "team": team.id, "bob": store.folder_id(BOB, "Calendar")}
        items = {}
        for name, owner in (("own", ALICE), ("team", ALICE), ("bob", BOB)):
            items[name], _ = await store.add_item(owner, folders[name], Calendar(
                subject=name.title(), start=SOON, end=SOON + timedelta(hours=1)))
        c = client(app, version=version, **SAMSUNG)
        await c.provision()
        seen = await folder_ids(c)
        assert "Team" not in seen and "Calendar (bob)" not in seen
        cid = seen["Calendar"][0]

        async def sync_cal(key: str, inner: str = "") -> Node:
            return collection(await c.command(
                "Sync", f'<Sync xmlns="AirSync:" xmlns:cal="Calendar:"><Collections><Collection>'
                        f"<SyncKey>{key}</SyncKey><CollectionId>{cid}</CollectionId>{inner}</Collection>"
                        "</Collections></Sync>"))

        key = str((await sync_cal("0")).findtext(A.SyncKey))
        got = await sync_cal(key)
        subjects = {str(n.findtext(A.ServerId)): str(n.findtext(A.ApplicationData, CAL.Subject))
                    for n in got.find(A.Commands) or [] if n.tag == A.Add}
        assert sorted(subjects.values()) == ["Bob", "Own", "Team"]
        by_subject = {v: k for k, v in subjects.items()}
        assert by_subject["Own"] == f"{cid}:{items['own']}"
        key = str(got.findtext(A.SyncKey))
        # The device adds one (to the default calendar) and deletes Bob's (in his calendar).
        done = await sync_cal(key, f"<Commands><Add><ClientId>e1</ClientId><ApplicationData>"
                                   f"{event_xml(version, 'Lunch')}</ApplicationData></Add>"
                                   f"<Delete><ServerId>{by_subject['Bob']}</ServerId></Delete></Commands>")
        assert done.findtext(A.Status) == "1"
        assert [n.findtext(A.Status) for n in done.find(A.Responses) or []] == ["1"]
        own = await store.fetch_items(ALICE, folders["own"], list(await store.item_stamps(ALICE, folders["own"])))
        assert sorted(getattr(e, "subject", "") for e in own) == ["Lunch", "Own"]
        assert await store.item_stamps(BOB, folders["bob"]) == {}
        assert list(await store.item_stamps(ALICE, folders["team"])) == [items["team"]]

    run(scenario())
