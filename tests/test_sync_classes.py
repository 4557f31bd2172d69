"""Sync of calendar, contact, task and note collections both ways (MS-ASCMD 2.2.1.21 with
MS-ASCAL, MS-ASCNTC, MS-ASTASK, MS-ASNOTE), in every protocol version the class exists in,
end to end through the in-process client, the reference store and SQLite state. Every
response is checked to hold only elements of the negotiated version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_sync import ALICE, Device, cheap_scrypt, coll, collection, commands, device, responses, run

from eas import tags
from eas.items.calendar import Calendar, Recurrence
from eas.items.contacts import Contact
from eas.items.notes import Note
from eas.items.tasks import Task
from eas.items.timezone import to_wire
from eas.protocol.versions import Version
from eas.tags import AirSync as A
from eas.tags import AirSyncBase as B
from eas.tags import Calendar as CAL
from eas.tags import Contacts as C
from eas.tags import GetItemEstimate as G
from eas.tags import ItemOperations as IO
from eas.tags import Move as M
from eas.tags import Notes as N
from eas.tags import Tasks as T
from eas.wbxml import Node

__all__ = ["cheap_scrypt"]
NS = ('xmlns="AirSync:" xmlns:b="AirSyncBase:" xmlns:c="Contacts:" xmlns:t="Tasks:" xmlns:n="Notes:" '
      'xmlns:cal="Calendar:"')


@dataclass(frozen=True)
class Kind:
    """One item class: its folder, where its name is, how a device writes one."""

    name: str
    folder: str
    versions: tuple[str, ...]
    tag: int  # the element holding the item's name
    field: str  # ... and the dataclass field it is read into
    make: Callable[[str], Any]  # a server-side item named so
    xml: Callable[[str, str], str]  # ApplicationData of a device's item named so, per version
    garbage: str  # ApplicationData the codec must refuse (status 6)


def _body(version: str, text: str) -> str:
    return f"<b:Body><b:Type>1</b:Type><b:Data>{text}</b:Data></b:Body>" if version != "2.5" else ""


SOON = (datetime.now(UTC) + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)


def compact(value: datetime) -> str:
    return value.strftime("%Y%m%dT%H%M%SZ")


def _event_xml(version: str, subject: str, start: datetime = SOON, uid: str = "") -> str:
    """A device's event; before 16.0 it names its UID (from 16.0 the server makes it)."""
    uid_xml = f"<cal:UID>{uid or 'dev-' + subject.replace(' ', '-')}</cal:UID>" if Version(version) < Version("16.0") else ""
    return (f"<cal:Timezone>{to_wire('UTC')}</cal:Timezone><cal:StartTime>{compact(start)}</cal:StartTime>"
            f"<cal:EndTime>{compact(start + timedelta(hours=1))}</cal:EndTime><cal:Subject>{subject}</cal:Subject>"
            f"{uid_xml}{_body(version, 'agenda')}")


KINDS = {
    "Calendar": Kind("Calendar", "Calendar", ("2.5", "12.1", "14.0", "14.1", "16.0", "16.1"), CAL.Subject, "subject",
                     lambda s: Calendar(subject=s, start=SOON, end=SOON + timedelta(hours=1)),
                     _event_xml,
                     f"<cal:StartTime>{compact(SOON)}</cal:StartTime>"  # ends before it starts
                     f"<cal:EndTime>{compact(SOON - timedelta(hours=1))}</cal:EndTime><cal:Subject>Bad</cal:Subject>"),
    "Contacts": Kind("Contacts", "Contacts", ("2.5", "12.1", "14.0", "14.1", "16.1"), C.FirstName, "first_name",
                     lambda s: Contact(first_name=s, last_name="Server", email1_address="srv@example.com"),
                     lambda v, s: f"<c:FirstName>{s}</c:FirstName><c:LastName>Device</c:LastName>",
                     "<c:FirstName>Bad</c:FirstName><c:Birthday>not a date</c:Birthday>"),
    "Tasks": Kind("Tasks", "Tasks", ("2.5", "12.1", "14.0", "14.1", "16.1"), T.Subject, "subject",
                  lambda s: Task(subject=s),
                  lambda v, s: f"<t:Subject>{s}</t:Subject>{_body(v, 'do it')}<t:Complete>0</t:Complete>",
                  "<t:Subject>Bad</t:Subject><t:Complete>1</t:Complete>"),  # Complete without DateCompleted
    "Notes": Kind("Notes", "Notes", ("14.0", "14.1", "16.1"), N.Subject, "subject",
                  lambda s: Note(subject=s, body="server note"),
                  lambda v, s: f"<n:Subject>{s}</n:Subject>{_body(v, 'a note')}",
                  "<n:Subject>Bad</n:Subject><n:MessageClass>IPM.Note</n:MessageClass>"),
}
CASES = [(k, v) for k in KINDS for v in KINDS[k].versions]
IDS = [f"{k}-{v}" for k, v in CASES]


async def stored(dev: Device, kind: Kind) -> dict[str, Any]:
    """The folder's items in the store, by id."""
    folder = dev.backend[kind.folder]
    ids = list(await dev.store.item_stamps(ALICE, folder))
    return {i.id: i for i in await dev.store.fetch_items(ALICE, folder, ids)}


def name_of(node: Node, kind: Kind) -> str | None:
    data = node.find(A.ApplicationData)
    return data.findtext(kind.tag) if data is not None else None


async def start(tmp_path: Path, kind: Kind, version: str, options: str = "") -> tuple[Device, str]:
    dev = await device(tmp_path, version)
    return dev, await dev.initial(kind.folder, options)


async def sync(dev: Device, kind: Kind, key: str, inner: str = "") -> tuple[str, Node | None]:
    """One Sync of the class's folder: the new key and its Collection (None: nothing said)."""
    reply = await dev.send(f"<Sync {NS}><Collections>{coll(dev.folders[kind.folder], key, inner)}"
                           f"</Collections></Sync>")
    if reply.node is None:
        return key, None
    c = collection(reply, dev.folders[kind.folder])
    return str(c.findtext(A.SyncKey)), c


# -- server -> device -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "version"), CASES, ids=IDS)
def test_server_items_reach_the_device(tmp_path: Path, name: str, version: str) -> None:
    kind = KINDS[name]

    async def scenario() -> None:
        dev, key = await start(tmp_path, kind, version)
        folder = dev.backend[kind.folder]
        ids = [(await dev.store.add_item(ALICE, folder, kind.make(f"Item {n}")))[0] for n in range(3)]
        key, c = await sync(dev, kind, key)
        assert c is not None and c.findtext(A.Status) == "1"
        adds = {sid: name_of(node, kind) for cmd, sid, node in commands(c) if cmd == "Add"}
        cid = dev.folders[kind.folder]
        assert adds == {f"{cid}:{i}": f"Item {n}" for n, i in enumerate(ids)}
        # Changed on the server: the whole item goes out as a Change.
        await dev.store.change_item(ALICE, folder, ids[1], kind.make("Renamed"))
        await dev.store.delete_item(ALICE, folder, ids[2], permanently=True)
        key, c = await sync(dev, kind, key)
        assert c is not None
        got = [(cmd, sid, name_of(node, kind) if cmd == "Change" else None) for cmd, sid, node in commands(c)]
        assert got == [("Delete", f"{cid}:{ids[2]}", None), ("Change", f"{cid}:{ids[1]}", "Renamed")]
        key, c = await sync(dev, kind, key)
        assert c is None if version != "2.5" else not commands(c)  # type: ignore[arg-type]
    run(scenario)


# -- device -> server -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "version"), CASES, ids=IDS)
def test_device_items_reach_the_server(tmp_path: Path, name: str, version: str) -> None:
    kind = KINDS[name]

    async def scenario() -> None:
        dev, key = await start(tmp_path, kind, version)
        cid = dev.folders[kind.folder]
        add = f"<Add><ClientId>c1</ClientId><ApplicationData>{kind.xml(version, 'From phone')}</ApplicationData></Add>"
        key0 = key
        key, c = await sync(dev, kind, key, f"<Commands>{add}</Commands>")
        assert c is not None and c.findtext(A.Status) == "1"
        (what, node), = responses(c)
        sid = str(node.findtext(A.ServerId))
        assert what == "Add" and node.findtext(A.Status) == "1" and node.findtext(A.ClientId) == "c1"
        assert not commands(c)  # its own Add does not come back
        items = await stored(dev, kind)
        assert [getattr(i, kind.field) for i in items.values()] == ["From phone"]
        assert sid == f"{cid}:{next(iter(items))}"
        # From 16.0 a device sends no UID: the server's comes back with the Add.
        uid = node.findtext(A.ApplicationData, CAL.UID)
        if name == "Calendar" and Version(version) >= Version("16.0"):
            assert uid and uid == next(iter(items.values())).uid
        else:
            assert node.find(A.ApplicationData) is None
        # The response was lost: the same request again gets the same ServerId, no second item.
        key2, c = await sync(dev, kind, key0, f"<Commands>{add}</Commands>")
        assert key2 == key and responses(c)[0][1].findtext(A.ServerId) == sid  # type: ignore[arg-type]
        # Resent in a later request too (the ClientId is remembered).
        key, c = await sync(dev, kind, key, f"<Commands>{add}</Commands>")
        assert responses(c)[0][1].findtext(A.ServerId) == sid  # type: ignore[arg-type]
        assert len(await stored(dev, kind)) == 1
        # Change (the whole item), Fetch, Delete.
        change = f"<Change><ServerId>{sid}</ServerId><ApplicationData>{kind.xml(version, 'Edited')}" \
                 f"</ApplicationData></Change>"
        key, c = await sync(dev, kind, key, f"<Commands>{change}</Commands>")
        assert c is None or (not responses(c) and not commands(c))
        assert [getattr(i, kind.field) for i in (await stored(dev, kind)).values()] == ["Edited"]
        key, c = await sync(dev, kind, key, f"<Commands><Fetch><ServerId>{sid}</ServerId></Fetch></Commands>")
        assert c is not None
        (what, node), = responses(c)
        assert what == "Fetch" and node.findtext(A.Status) == "1" and name_of(node, kind) == "Edited"
        key, c = await sync(dev, kind, key, f"<Commands><Delete><ServerId>{sid}</ServerId></Delete></Commands>")
        assert c is None or not responses(c)
        assert await stored(dev, kind) == {}
        key, c = await sync(dev, kind, key, f"<Commands><Delete><ServerId>{sid}</ServerId></Delete></Commands>")
        assert c is not None and [(w, n.findtext(A.Status)) for w, n in responses(c)] == [("Delete", "8")]
    run(scenario)


@pytest.mark.parametrize(("name", "version"), CASES, ids=IDS)
def test_garbage_add_is_refused_alone(tmp_path: Path, name: str, version: str) -> None:
    kind = KINDS[name]

    async def scenario() -> None:
        dev, key = await start(tmp_path, kind, version)
        good = kind.xml(version, "Good")
        cmds = (f"<Add><ClientId>bad</ClientId><ApplicationData>{kind.garbage}</ApplicationData></Add>"
                f"<Add><ClientId>good</ClientId><ApplicationData>{good}</ApplicationData></Add>"
                f"<Add><ClientId>empty</ClientId></Add>")
        key, c = await sync(dev, kind, key, f"<Commands>{cmds}</Commands>")
        assert c is not None and c.findtext(A.Status) == "1"
        got = {n.findtext(A.ClientId): (n.findtext(A.Status), n.find(A.ServerId) is not None) for _, n in responses(c)}
        assert got == {"bad": ("6", False), "good": ("1", True), "empty": ("4", False)}
        assert [getattr(i, kind.field) for i in (await stored(dev, kind)).values()] == ["Good"]
        key, c = await sync(dev, kind, key)
        assert c is None or not commands(c)
    run(scenario)


@pytest.mark.parametrize("version", ["2.5", "14.1", "16.1"])
@pytest.mark.parametrize("name", ["Calendar", "Contacts", "Tasks"])
def test_conflicts(tmp_path: Path, name: str, version: str) -> None:
    """Conflict 1 (the default): the server's object wins, status 7 and the server's
    version goes out in the same response; Conflict 0: the device's change is applied."""
    kind = KINDS[name]

    async def scenario() -> None:
        dev, key = await start(tmp_path, kind, version)
        folder, cid = dev.backend[kind.folder], dev.folders[kind.folder]
        item, _ = await dev.store.add_item(ALICE, folder, kind.make("Original"))
        key, _ = await sync(dev, kind, key)
        sid = f"{cid}:{item}"
        await dev.store.change_item(ALICE, folder, item, kind.make("Server edit"))
        change = f"<Change><ServerId>{sid}</ServerId><ApplicationData>{kind.xml(version, 'Device edit')}" \
                 f"</ApplicationData></Change>"
        key, c = await sync(dev, kind, key, f"<Commands>{change}</Commands>")
        assert c is not None
        assert [(w, n.findtext(A.ServerId), n.findtext(A.Status)) for w, n in responses(c)] == [("Change", sid, "7")]
        assert [(cmd, s, name_of(n, kind)) for cmd, s, n in commands(c)] == [("Change", sid, "Server edit")]
        assert [getattr(i, kind.field) for i in (await stored(dev, kind)).values()] == ["Server edit"]
        # Client wins.
        await dev.store.change_item(ALICE, folder, item, kind.make("Server again"))
        options = "<Options><Conflict>0</Conflict></Options>"
        key, c = await sync(dev, kind, key, f"{options}<Commands>{change}</Commands>")
        assert c is None or not responses(c)
        assert [getattr(i, kind.field) for i in (await stored(dev, kind)).values()] == ["Device edit"]
    run(scenario)


# -- FilterType per class ---------------------------------------------------------------------


@pytest.mark.parametrize(("name", "filter_type", "status"), [
    ("Tasks", 4, "4"), ("Tasks", 1, "4"), ("Tasks", 0, "1"), ("Tasks", 8, "1"),
    ("Contacts", 3, "1"), ("Contacts", 8, "1"), ("Notes", 5, "1"),
])
def test_filter_type_per_class(tmp_path: Path, name: str, filter_type: int, status: str) -> None:
    kind = KINDS[name]

    async def scenario() -> None:
        dev = await device(tmp_path, "14.1")
        await dev.store.add_item(ALICE, dev.backend[kind.folder], kind.make("Kept"))
        reply = await dev.sync(coll(dev.folders[kind.folder], "0",
                                    f"<Options><FilterType>{filter_type}</FilterType></Options>"))
        c = collection(reply, dev.folders[kind.folder])
        assert c.findtext(A.Status) == status
        if status == "1":  # Contacts and Notes ignore it: everything comes
            _, c2 = await sync(dev, kind, str(c.findtext(A.SyncKey)))
            assert c2 is not None and [name_of(n, kind) for _, _, n in commands(c2)] == ["Kept"]
    run(scenario)


@pytest.mark.parametrize("version", ["12.1", "16.1"])
def test_incomplete_tasks_only(tmp_path: Path, version: str) -> None:
    """FilterType 8: completed tasks are not sent; a task completed on the server leaves
    the device with a SoftDelete (it is still in the folder)."""
    kind = KINDS["Tasks"]

    async def scenario() -> None:
        dev, key = await start(tmp_path, kind, version, "<Options><FilterType>8</FilterType></Options>")
        folder, cid = dev.backend["Tasks"], dev.folders["Tasks"]
        done = datetime.now(UTC) - timedelta(days=1)
        open_id, _ = await dev.store.add_item(ALICE, folder, Task(subject="Open"))
        await dev.store.add_item(ALICE, folder, Task(subject="Done", complete=True, date_completed=done))
        key, c = await sync(dev, kind, key)
        assert c is not None and [name_of(n, kind) for _, _, n in commands(c)] == ["Open"]
        await dev.store.change_item(ALICE, folder, open_id, Task(subject="Open", complete=True, date_completed=done))
        key, c = await sync(dev, kind, key)
        assert c is not None and [(cmd, s) for cmd, s, _ in commands(c)] == [("SoftDelete", f"{cid}:{open_id}")]
        estimate = await dev.client.command("GetItemEstimate", (
            '<GetItemEstimate xmlns="GetItemEstimate:" xmlns:a="AirSync:"><Collections><Collection>'
            + ("<a:FilterType>8</a:FilterType>" if version == "12.1" else "")
            + f'<a:SyncKey>{key}</a:SyncKey><CollectionId>{cid}</CollectionId>'
            + ("<a:Options><a:FilterType>8</a:FilterType></a:Options>" if version != "12.1" else "")
            + '</Collection></Collections></GetItemEstimate>'))
        assert estimate.node is not None
        assert estimate.node.findtext(G.Response, G.Collection, G.Estimate) == "0"
    run(scenario)


# -- Notes only from 14.0 ---------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.5", "12.1"])
def test_no_notes_before_14(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        """The folder is listed, but no note is written in a version without the class,
        and a note from the device is refused (status 6)."""
        dev = await device(tmp_path, version)
        kind = KINDS["Notes"]
        await dev.store.add_item(ALICE, dev.backend["Notes"], Note(subject="Hidden"))
        key = await dev.initial("Notes")
        key, c = await sync(dev, kind, key)
        assert c is None or not commands(c)
        add = "<Add><ClientId>n1</ClientId><ApplicationData><n:Subject>x</n:Subject></ApplicationData></Add>"
        key, c = await sync(dev, kind, key, f"<Commands>{add}</Commands>")
        assert c is not None and [(w, n.findtext(A.Status)) for w, n in responses(c)] == [("Add", "6")]
        assert [n.subject for n in (await stored(dev, kind)).values()] == ["Hidden"]
    run(scenario)


# -- GetItemEstimate, ItemOperations, MoveItems -----------------------------------------------


@pytest.mark.parametrize(("name", "version"), [("Contacts", "2.5"), ("Tasks", "14.1"), ("Notes", "16.1"),
                                               ("Calendar", "14.0"), ("Contacts", "16.1")])
def test_estimate_and_fetch(tmp_path: Path, name: str, version: str) -> None:
    kind = KINDS[name]

    async def scenario() -> None:
        dev, key = await start(tmp_path, kind, version)
        folder, cid = dev.backend[kind.folder], dev.folders[kind.folder]
        ids = [(await dev.store.add_item(ALICE, folder, kind.make(f"N{n}")))[0] for n in range(4)]
        if version == "2.5":
            inner = f'<Class>{name}</Class><a:SyncKey>{key}</a:SyncKey><CollectionId>{cid}</CollectionId>' \
                    f'<a:FilterType>0</a:FilterType>'
        else:
            inner = f'<a:SyncKey>{key}</a:SyncKey><CollectionId>{cid}</CollectionId>'
        estimate = await dev.client.command("GetItemEstimate", (
            f'<GetItemEstimate xmlns="GetItemEstimate:" xmlns:a="AirSync:"><Collections><Collection>{inner}'
            f'</Collection></Collections></GetItemEstimate>'))
        assert estimate.node is not None
        assert estimate.node.findtext(G.Response, G.Collection, G.Estimate) == "4"
        if version == "2.5":
            return  # no ItemOperations in 2.5
        r = await dev.client.command("ItemOperations", (
            f'<ItemOperations xmlns="ItemOperations:" xmlns:a="AirSync:" xmlns:b="AirSyncBase:"><Fetch>'
            f'<Store>Mailbox</Store><a:CollectionId>{cid}</a:CollectionId><a:ServerId>{cid}:{ids[2]}</a:ServerId>'
            f'<Options><b:BodyPreference><b:Type>1</b:Type></b:BodyPreference></Options></Fetch>'
            f'<Fetch><Store>Mailbox</Store><a:CollectionId>{cid}</a:CollectionId>'
            f'<a:ServerId>{cid}:{ids[3]}</a:ServerId><Options><Schema><x:{tags.name(kind.tag).split(":")[1]} '
            f'xmlns:x="{name}:"/></Schema></Options></Fetch></ItemOperations>'))
        assert r.node is not None
        fetches = r.node.find(IO.Response).findall(IO.Fetch)  # type: ignore[union-attr]
        assert [f.findtext(IO.Status) for f in fetches] == ["1", "1"]
        assert fetches[0].findtext(A.Class) == name
        assert fetches[0].find(IO.Properties).findtext(kind.tag) == "N2"  # type: ignore[union-attr]
        cut = fetches[1].find(IO.Properties)
        assert cut is not None and [c.tag for c in cut.children] == [kind.tag] and cut.findtext(kind.tag) == "N3"
    run(scenario)


@pytest.mark.parametrize("version", ["12.1", "16.1"])
def test_move_between_contact_folders(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        from eas.backend import FolderType

        dev = await device(tmp_path, version)
        await dev.store.create_folder(ALICE, "", "Friends", FolderType.USER_CONTACTS)
        dev = await device(tmp_path / "x", version, app=(dev.app, dev.store), device_id="SyncDevice2")
        kind = KINDS["Contacts"]
        key = await dev.initial("Contacts")
        friends_key = await dev.initial("Friends")
        item, _ = await dev.store.add_item(ALICE, dev.backend["Contacts"], kind.make("Mover"))
        key, _ = await sync(dev, kind, key)
        src, dst, inbox = dev.folders["Contacts"], dev.folders["Friends"], dev.folders["Inbox"]
        r = await dev.client.command("MoveItems", (
            f'<MoveItems xmlns="Move:"><Move><SrcMsgId>{src}:{item}</SrcMsgId><SrcFldId>{src}</SrcFldId>'
            f'<DstFldId>{dst}</DstFldId></Move><Move><SrcMsgId>{src}:{item}</SrcMsgId><SrcFldId>{src}</SrcFldId>'
            f'<DstFldId>{inbox}</DstFldId></Move></MoveItems>'))
        assert r.node is not None
        got = [(x.findtext(M.Status), x.findtext(M.DstMsgId)) for x in r.node.findall(M.Response)]
        assert got[0][0] == "3" and str(got[0][1]).startswith(f"{dst}:")
        assert got[1] == ("2", None)  # a mail folder is no destination for a contact
        moved = await dev.store.fetch_items(ALICE, dev.backend["Friends"], [str(got[0][1]).split(":", 1)[1]])
        assert [m.first_name for m in moved] == ["Mover"]
        # The device moved it itself: neither folder's next Sync says anything about it.
        _, c = await sync(dev, kind, key)
        assert c is None or not commands(c)
        friends = Kind("Contacts", "Friends", (), C.FirstName, "first_name", kind.make, kind.xml, "")
        _, c = await sync(dev, friends, friends_key)
        assert c is None or not commands(c)
        # Moved already: the source item is gone.
        r = await dev.client.command("MoveItems", (
            f'<MoveItems xmlns="Move:"><Move><SrcMsgId>{src}:{item}</SrcMsgId><SrcFldId>{src}</SrcFldId>'
            f'<DstFldId>{dst}</DstFldId></Move></MoveItems>'))
        assert r.node is not None and r.node.findtext(M.Response, M.Status) == "1"
    run(scenario)


# -- Calendar: windows, occurrences, UIDs -----------------------------------------------------


@pytest.mark.parametrize("version", ["12.1", "14.1", "16.1"])
def test_calendar_window(tmp_path: Path, version: str) -> None:
    """FilterType 4 (two weeks back): an event that ended before is not sent; one that
    moves out of the window leaves the device with a SoftDelete; one moved into it comes."""
    kind = KINDS["Calendar"]

    async def scenario() -> None:
        dev, key = await start(tmp_path, kind, version, "<Options><FilterType>4</FilterType></Options>")
        folder, cid = dev.backend["Calendar"], dev.folders["Calendar"]
        old = SOON - timedelta(days=40)
        recent, _ = await dev.store.add_item(ALICE, folder, kind.make("Recent"))
        past, _ = await dev.store.add_item(ALICE, folder, Calendar(subject="Past", start=old,
                                                                     end=old + timedelta(hours=1)))
        key, c = await sync(dev, kind, key)
        assert c is not None and [name_of(n, kind) for _, _, n in commands(c)] == ["Recent"]
        await dev.store.change_item(ALICE, folder, recent, Calendar(subject="Recent", start=old,
                                                                      end=old + timedelta(hours=1)))
        await dev.store.change_item(ALICE, folder, past, kind.make("Past"))
        key, c = await sync(dev, kind, key)
        assert c is not None
        assert [(cmd, s) for cmd, s, _ in commands(c)] == [("SoftDelete", f"{cid}:{recent}"), ("Add", f"{cid}:{past}")]
        for bad in (1, 3, 8):  # mail-only windows, and the tasks filter
            reply = await dev.sync(coll(cid, key, f"<Options><FilterType>{bad}</FilterType></Options>"))
            assert collection(reply, cid).findtext(A.Status) == "4"
        key, c = await sync(dev, kind, key)  # the bad requests changed nothing
        assert c is None
    run(scenario)


def test_calendar_occurrences_16(tmp_path: Path) -> None:
    """16.x: Delete and Change with InstanceId touch one occurrence of a recurring event."""
    kind = KINDS["Calendar"]

    async def scenario() -> None:
        dev, key = await start(tmp_path, kind, "16.1")
        folder, cid = dev.backend["Calendar"], dev.folders["Calendar"]
        daily = Calendar(subject="Standup", start=SOON, end=SOON + timedelta(minutes=15),
                         recurrence=Recurrence(type=0, occurrences=5))
        item, _ = await dev.store.add_item(ALICE, folder, daily)
        key, c = await sync(dev, kind, key)
        sid = f"{cid}:{item}"
        second, third = SOON + timedelta(days=1), SOON + timedelta(days=2)
        cmds = (f"<Delete><ServerId>{sid}</ServerId><b:InstanceId>{compact(second)}</b:InstanceId></Delete>"
                f"<Change><ServerId>{sid}</ServerId><b:InstanceId>{compact(third)}</b:InstanceId><ApplicationData>"
                f"<cal:Subject>Moved standup</cal:Subject></ApplicationData></Change>")
        key, c = await sync(dev, kind, key, f"<Commands>{cmds}</Commands>")
        assert c is None or not responses(c)
        (event,) = (await stored(dev, kind)).values()
        assert event.subject == "Standup" and event.recurrence is not None
        by_start = {e.original_start: e for e in event.exceptions}
        assert by_start[second].deleted
        assert by_start[third].subject == "Moved standup" and not by_start[third].deleted
        # An occurrence that does not exist, and a malformed InstanceId.
        cmds = (f"<Delete><ServerId>{sid}</ServerId><b:InstanceId>{compact(SOON + timedelta(hours=5))}"
                f"</b:InstanceId></Delete>"
                f"<Delete><ServerId>{sid}</ServerId><b:InstanceId>yesterday</b:InstanceId></Delete>")
        key, c = await sync(dev, kind, key, f"<Commands>{cmds}</Commands>")
        assert c is not None
        assert [(w, n.findtext(A.Status), n.findtext(B.InstanceId)) for w, n in responses(c)] == [
            ("Delete", "8", compact(SOON + timedelta(hours=5))), ("Delete", "4", "yesterday")]
        assert len(await stored(dev, kind)) == 1  # the series is still there
    run(scenario)


def test_instance_id_outside_calendars(tmp_path: Path) -> None:
    kind = KINDS["Contacts"]

    async def scenario() -> None:
        dev, key = await start(tmp_path, kind, "16.1")
        item, _ = await dev.store.add_item(ALICE, dev.backend["Contacts"], kind.make("Kept"))
        key, _ = await sync(dev, kind, key)
        sid = f"{dev.folders['Contacts']}:{item}"
        cmd = f"<Delete><ServerId>{sid}</ServerId><b:InstanceId>{compact(SOON)}</b:InstanceId></Delete>"
        key, c = await sync(dev, kind, key, f"<Commands>{cmd}</Commands>")
        assert c is not None and [(w, n.findtext(A.Status)) for w, n in responses(c)] == [("Delete", "4")]
        assert len(await stored(dev, kind)) == 1
    run(scenario)


@pytest.mark.parametrize("version", ["14.1"])
def test_event_added_again_is_one_event(tmp_path: Path, version: str) -> None:
    """A device that lost its state adds its events again (new ClientIds, same UIDs): the
    server answers with the event it has instead of making a second one."""
    kind = KINDS["Calendar"]

    async def scenario() -> None:
        dev, key = await start(tmp_path, kind, version)
        xml = _event_xml(version, "Dentist", uid="uid-dentist")
        first = f"<Add><ClientId>a1</ClientId><ApplicationData>{xml}</ApplicationData></Add>"
        key, c = await sync(dev, kind, key, f"<Commands>{first}</Commands>")
        sid = responses(c)[0][1].findtext(A.ServerId)  # type: ignore[arg-type]
        again = f"<Add><ClientId>b7</ClientId><ApplicationData>{xml.replace('Dentist', 'Dentist 2')}" \
                f"</ApplicationData></Add>"
        key, c = await sync(dev, kind, key, f"<Commands>{again}</Commands>")
        assert c is not None
        assert [(n.findtext(A.Status), n.findtext(A.ServerId)) for _, n in responses(c)] == [("1", sid)]
        assert [e.subject for e in (await stored(dev, kind)).values()] == ["Dentist 2"]
    run(scenario)


@pytest.mark.parametrize(("name", "version"), [("Calendar", "16.1"), ("Contacts", "2.5"), ("Tasks", "14.1"),
                                               ("Notes", "14.0")])
def test_hostile_changes(tmp_path: Path, name: str, version: str) -> None:
    """A Change the codec refuses is 6, one of an unknown or foreign ServerId is 8, and
    neither touches the store; the good Change beside them is applied."""
    kind = KINDS[name]

    async def scenario() -> None:
        dev, key = await start(tmp_path, kind, version)
        folder, cid = dev.backend[kind.folder], dev.folders[kind.folder]
        a, _ = await dev.store.add_item(ALICE, folder, kind.make("A"))
        b, _ = await dev.store.add_item(ALICE, folder, kind.make("B"))
        key, _ = await sync(dev, kind, key)
        inbox = dev.folders["Inbox"]
        cmds = (f"<Change><ServerId>{cid}:{a}</ServerId><ApplicationData>{kind.garbage}</ApplicationData></Change>"
                f"<Change><ServerId>{cid}:999999</ServerId><ApplicationData>{kind.xml(version, 'X')}"
                f"</ApplicationData></Change>"
                f"<Change><ServerId>{inbox}:{a}</ServerId><ApplicationData>{kind.xml(version, 'X')}"
                f"</ApplicationData></Change>"
                f"<Fetch><ServerId>{cid}:nope</ServerId></Fetch>"
                f"<Change><ServerId>{cid}:{b}</ServerId><ApplicationData>{kind.xml(version, 'B2')}"
                f"</ApplicationData></Change>")
        key, c = await sync(dev, kind, key, f"<Commands>{cmds}</Commands>")
        assert c is not None and c.findtext(A.Status) == "1"
        assert [(w, n.findtext(A.Status)) for w, n in responses(c)] == [
            ("Change", "6"), ("Change", "8"), ("Change", "8"), ("Fetch", "8")]
        assert sorted(getattr(i, kind.field) for i in (await stored(dev, kind)).values()) == ["A", "B2"]
        # A request whose command names nothing is malformed as a whole: status 4, nothing applied.
        bad = f"<Commands><Change><ApplicationData>{kind.xml(version, 'Z')}</ApplicationData></Change></Commands>"
        reply = await dev.send(f"<Sync {NS}><Collections>{coll(cid, key, bad)}</Collections></Sync>")
        assert collection(reply, cid).findtext(A.Status) == "4"
        assert sorted(getattr(i, kind.field) for i in (await stored(dev, kind)).values()) == ["A", "B2"]
        _, c = await sync(dev, kind, key)  # the key still works
        assert c is None or c.findtext(A.Status) == "1"
    run(scenario)
