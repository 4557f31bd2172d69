"""MoveItems over the reference store: every per-Move status, nothing moved on a refusal,
and the sync states of both collections brought up to date so the next Sync echoes
nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from test_sendmail import ALICE, ORIGINAL, folder_ids, mime, quick_app, run

from eas.backend import BackendError, FolderType
from eas.core import ActiveSync
from eas.state.model import CollectionState
from eas.state.sqlite import SQLiteStateStore
from eas.store import ReferenceStore
from eas.tags import AirSync, Move
from eas.testing.client import Client
from eas.testing.harness import USERS, client
from eas.wbxml import Node


def moves_xml(*moves: tuple[str, str, str]) -> str:
    body = "".join(f"<Move><SrcMsgId>{m}</SrcMsgId><SrcFldId>{s}</SrcFldId><DstFldId>{d}</DstFldId></Move>"
                   for m, s, d in moves)
    return f'<MoveItems xmlns="Move:">{body}</MoveItems>'


def responses(node: Node | None) -> list[tuple[str, str, str | None]]:
    assert node is not None and node.tag == Move.MoveItems
    out = []
    for r in node.findall(Move.Response):
        dst = r.findtext(Move.DstMsgId)
        out.append((str(r.findtext(Move.SrcMsgId)), str(r.findtext(Move.Status)),
                    None if dst is None else str(dst)))
    return out


@dataclass
class Setup:
    app: ActiveSync
    store: ReferenceStore
    c: Client
    ids: dict[str, str]  # folder DisplayName -> CollectionId
    items: list[str]  # three mails in alice's Inbox (backend ids)


async def setup(tmp_path: Path, version: str = "14.1") -> Setup:
    tmp_path.mkdir(parents=True, exist_ok=True)
    app, store = quick_app(tmp_path)
    c = client(app, version=version)
    await c.provision()
    items = [store.deliver(ALICE, mime(subject=f"m{i}")) for i in range(3)]
    return Setup(app, store, c, await folder_ids(c), items)


async def count(store: ReferenceStore, kind: FolderType) -> int:
    folder = next(f for f in await store.folders(ALICE) if f.type == kind)
    return len(await store.item_stamps(ALICE, folder.id))


def test_move_success_gives_the_destination_id(tmp_path: Path) -> None:
    async def scenario() -> None:
        t = await setup(tmp_path)
        store, c, ids, items = t.store, t.c, t.ids, t.items
        inbox, deleted = ids["Inbox"], ids["Deleted Items"]
        r = await c.command("MoveItems", moves_xml((f"{inbox}:{items[0]}", inbox, deleted)))
        assert r.status == 200
        [(src, status, dst)] = responses(r.node)
        assert (src, status) == (f"{inbox}:{items[0]}", "3")
        assert dst is not None and dst.startswith(f"{deleted}:")
        new_id = dst.split(":", 1)[1]
        folder = next(f for f in await store.folders(ALICE) if f.type == FolderType.DELETED_ITEMS)
        assert list(await store.item_stamps(ALICE, folder.id)) == [new_id]
        assert await count(store, FolderType.INBOX) == 2

    run(scenario())


def test_every_status(tmp_path: Path) -> None:
    async def scenario() -> None:
        t = await setup(tmp_path)
        store, c, ids, items = t.store, t.c, t.ids, t.items
        inbox, deleted, calendar = ids["Inbox"], ids["Deleted Items"], ids["Calendar"]
        good = f"{inbox}:{items[1]}"
        cases = [
            ((f"{inbox}:999999", inbox, deleted), "1"),  # no such item
            (("garbage", inbox, deleted), "1"),  # not a ServerId
            ((f"{inbox}:{items[0]}", "4242", deleted), "1"),  # unknown source folder
            ((f"{deleted}:{items[0]}", inbox, deleted), "1"),  # item id of another folder
            ((f"{inbox}:{items[0]}", inbox, "4242"), "2"),  # unknown destination
            ((f"{inbox}:{items[0]}", inbox, calendar), "2"),  # mail into a calendar
            ((f"{inbox}:{items[0]}", inbox, inbox), "4"),  # same folder
            ((good, inbox, deleted), "3"),
            ((good, inbox, deleted), "1"),  # already moved by the Move before
            (("", "", ""), "1"),
        ]
        r = await c.command("MoveItems", moves_xml(*(m for m, _ in cases)))
        got = responses(r.node)
        assert [s for _, s, _ in got] == [s for _, s in cases]
        assert [d is not None for _, _, d in got] == [s == "3" for _, s in cases]
        assert await count(store, FolderType.INBOX) == 2
        assert await count(store, FolderType.DELETED_ITEMS) == 1
        assert await count(store, FolderType.CALENDAR) == 0

    run(scenario())


def test_missing_elements_and_malformed_requests(tmp_path: Path) -> None:
    async def scenario() -> None:
        t = await setup(tmp_path)
        store, c, ids, items = t.store, t.c, t.ids, t.items
        inbox = ids["Inbox"]
        r = await c.command("MoveItems", f'<MoveItems xmlns="Move:"><Move><SrcMsgId>{inbox}:{items[0]}</SrcMsgId>'
                            f"<SrcFldId>{inbox}</SrcFldId></Move></MoveItems>")
        assert [s for _, s, _ in responses(r.node)] == ["2"]  # no destination
        for xml in ('<MoveItems xmlns="Move:"/>',
                    '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>',
                    '<MoveItems xmlns="Move:"><Status>1</Status></MoveItems>'):
            r = await c.command("MoveItems", xml)
            assert r.status == 400 and r.node is None, xml
        r = await c.raw("MoveItems", b"\x03\x01\x6a\x00\x45\x45\x45")  # truncated WBXML
        assert r.status == 400  # MoveItems has no top-level Status to carry 102
        assert await count(store, FolderType.INBOX) == 3

    run(scenario())


def test_too_many_moves_are_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        t = await setup(tmp_path)
        store, c, ids, items = t.store, t.c, t.ids, t.items
        inbox, deleted = ids["Inbox"], ids["Deleted Items"]
        r = await c.command("MoveItems", moves_xml(*[(f"{inbox}:{items[0]}", inbox, deleted)] * 1001))
        assert r.status == 400
        assert await count(store, FolderType.INBOX) == 3

    run(scenario())


def test_moves_update_both_sync_states(tmp_path: Path) -> None:
    """Seed states as a Sync would leave them; after the move the source no longer lists
    the item and the destination lists it under its new id with the store's stamp."""

    async def scenario() -> None:
        t = await setup(tmp_path)
        app, store, c, ids, items = t.app, t.store, t.c, t.ids, t.items
        inbox, deleted, drafts = ids["Inbox"], ids["Deleted Items"], ids["Drafts"]
        backend = {f.type: f.id for f in await store.folders(ALICE)}
        device = await app.store.get_device(ALICE, c.device_id)
        assert device is not None
        inbox_stamps = await store.item_stamps(ALICE, backend[FolderType.INBOX])
        src = CollectionState(inbox, backend[FolderType.INBOX], sync_key=2, snapshot=dict(inbox_stamps),
                              options={"class": "Email", "filter_type": 0},
                              previous={"sync_key": 1, "snapshot": dict(inbox_stamps), "client_ids": {}})
        dst = CollectionState(deleted, backend[FolderType.DELETED_ITEMS], sync_key=1,
                              options={"class": "Email", "filter_type": 0})
        await app.store.commit(device, {f"collection:{inbox}": src.to_json(), f"collection:{deleted}": dst.to_json()})
        r = await c.command("MoveItems", moves_xml((f"{inbox}:{items[0]}", inbox, deleted),
                                                   (f"{inbox}:{items[1]}", inbox, drafts)))
        [(_, s1, d1), (_, s2, d2)] = responses(r.node)
        assert (s1, s2) == ("3", "3") and d1 and d2
        src_after = CollectionState.from_json(await app.store.load(ALICE, c.device_id, f"collection:{inbox}") or b"")
        dst_after = CollectionState.from_json(await app.store.load(ALICE, c.device_id, f"collection:{deleted}")
                                              or b"")
        assert set(src_after.snapshot) == {items[2]}
        assert src_after.previous is not None and set(src_after.previous["snapshot"]) == {items[2]}
        deleted_stamps = await store.item_stamps(ALICE, backend[FolderType.DELETED_ITEMS])
        assert dst_after.snapshot == deleted_stamps == {d1.split(":", 1)[1]: deleted_stamps[d1.split(":", 1)[1]]}
        # Drafts has never been synced: no state is made up for it.
        assert await app.store.load(ALICE, c.device_id, f"collection:{drafts}") is None

    run(scenario())


def test_moves_outside_the_destination_window_are_not_added(tmp_path: Path) -> None:
    async def scenario() -> None:
        t = await setup(tmp_path)
        app, store, c, ids = t.app, t.store, t.c, t.ids
        old = store.deliver(ALICE, ORIGINAL)  # dated 2024-01-01
        inbox, deleted = ids["Inbox"], ids["Deleted Items"]
        backend = {f.type: f.id for f in await store.folders(ALICE)}
        device = await app.store.get_device(ALICE, c.device_id)
        assert device is not None
        dst = CollectionState(deleted, backend[FolderType.DELETED_ITEMS], sync_key=1,
                              options={"class": "Email", "filter_type": 3})  # one week
        await app.store.commit(device, {f"collection:{deleted}": dst.to_json()})
        r = await c.command("MoveItems", moves_xml((f"{inbox}:{old}", inbox, deleted)))
        assert [s for _, s, _ in responses(r.node)] == ["3"]
        after = CollectionState.from_json(await app.store.load(ALICE, c.device_id, f"collection:{deleted}") or b"")
        assert after.snapshot == {}

    run(scenario())


def test_moveitems_in_older_versions(tmp_path: Path) -> None:
    async def scenario() -> None:
        for version in ("2.5", "12.1"):
            t = await setup(tmp_path / version, version)
            c, ids, items = t.c, t.ids, t.items
            inbox, deleted = ids["Inbox"], ids["Deleted Items"]
            r = await c.command("MoveItems", moves_xml((f"{inbox}:{items[0]}", inbox, deleted)))
            assert [s for _, s, _ in responses(r.node)] == ["3"]

    run(scenario())


def sync_xml(*pairs: tuple[str, int]) -> str:
    cols = "".join(f"<Collection><SyncKey>{k}</SyncKey><CollectionId>{c}</CollectionId></Collection>"
                   for c, k in pairs)
    return f'<Sync xmlns="AirSync:"><Collections>{cols}</Collections></Sync>'


def commands(node: Node | None, keys: dict[str, int]) -> dict[str, list[int]]:
    """CollectionId -> the tags of its Commands (Add, Delete, ...); ``keys`` follows the
    SyncKeys the response hands out (a collection left out keeps its key)."""
    if node is None:
        return {}
    out: dict[str, list[int]] = {}
    collections = node.find(AirSync.Collections)
    for col in collections.findall(AirSync.Collection) if collections is not None else []:
        cid = str(col.findtext(AirSync.CollectionId))
        assert col.findtext(AirSync.Status) == "1", col
        keys[cid] = int(str(col.findtext(AirSync.SyncKey)))
        found = col.find(AirSync.Commands)
        out[cid] = [c.tag for c in found.children] if found is not None else []
    return out


def test_no_echo_in_the_next_sync(tmp_path: Path) -> None:
    """After MoveItems, the next Sync of source and destination sends nothing; the same
    move done behind the device's back (in the store) is a Delete and an Add."""

    async def scenario() -> None:
        t = await setup(tmp_path)
        store, c, ids, items = t.store, t.c, t.ids, t.items
        inbox, deleted = ids["Inbox"], ids["Deleted Items"]
        keys = {inbox: 0, deleted: 0}

        async def sync() -> dict[str, list[int]]:
            r = await c.command("Sync", sync_xml(*keys.items()))
            assert r.status == 200
            return commands(r.node, keys)

        await sync()
        assert (await sync())[inbox] == [AirSync.Add] * 3
        r = await c.command("MoveItems", moves_xml((f"{inbox}:{items[0]}", inbox, deleted)))
        assert [s for _, s, _ in responses(r.node)] == ["3"]
        assert all(not tags for tags in (await sync()).values())
        # Control: a move the device did not make is seen as one.
        await store.move_item(ALICE, items[1], store.folder_id(ALICE, "Inbox"), store.folder_id(ALICE, "Deleted Items"))
        got = await sync()
        assert got[inbox] == [AirSync.Delete] and got[deleted] == [AirSync.Add]

    run(scenario())


class FailingMoves(ReferenceStore):
    """A store whose moves fail inside the backend (fault injection)."""

    async def move_item(self, user: str, item_id: str, src_folder: str, dst_folder: str) -> str:
        raise BackendError("the destination is read-only")


def test_backend_failure_is_status_5(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = FailingMoves(tmp_path / "mail.db")
        for user, password in USERS:
            store.add_user(user, password)
        app = ActiveSync(store, SQLiteStateStore(tmp_path / "state.db"), authenticate=store.authenticate)
        c = client(app, version="14.1")
        await c.provision()
        item = store.deliver(ALICE, mime())
        ids = await folder_ids(c)
        r = await c.command("MoveItems", moves_xml((f"{ids['Inbox']}:{item}", ids["Inbox"], ids["Deleted Items"])))
        assert responses(r.node) == [(f"{ids['Inbox']}:{item}", "5", None)]
        assert await count(store, FolderType.INBOX) == 1

    run(scenario())


def test_events_move_between_calendars_only(tmp_path: Path) -> None:
    """An event moves to another calendar (status 3, the item readable there); to a mail or
    contacts folder it is status 2 and stays where it was."""
    from datetime import UTC, datetime, timedelta

    from eas.items.calendar import Calendar

    async def scenario() -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        app, store = quick_app(tmp_path)
        await store.create_folder(ALICE, "", "Work", FolderType.USER_CALENDAR)
        c = client(app, version="16.1")
        await c.provision()
        ids = await folder_ids(c)
        backend = {f.name: f.id for f in await store.folders(ALICE)}
        start = datetime.now(UTC) + timedelta(days=1)
        event, _ = await store.add_item(ALICE, backend["Calendar"], Calendar(subject="Review", start=start,
                                                                               end=start + timedelta(hours=1)))
        cal, work = ids["Calendar"], ids["Work"]
        sid = f"{cal}:{event}"
        r = await c.command("MoveItems", moves_xml((sid, cal, ids["Inbox"]), (sid, cal, ids["Contacts"]),
                                                   (sid, cal, work)))
        got = responses(r.node)
        assert [s for _, s, _ in got] == ["2", "2", "3"]
        dst = got[2][2]
        assert dst is not None and dst.startswith(f"{work}:")
        moved = await store.fetch_items(ALICE, backend["Work"], [dst.split(":", 1)[1]])
        assert [e.subject for e in moved] == ["Review"]
        assert await store.item_stamps(ALICE, backend["Calendar"]) == {}

    run(scenario())
