"""FolderSync over the reference store and the SQLite state store: the initial hierarchy
in every version, changes since a key (Add/Update/Delete in an order a client can apply),
the previous key answered again, SyncKey 0 keeping server ids and collection states,
every status, and bad input leaving the stored hierarchy as it was. The ordering logic of
``eas.hierarchy`` is also tested on its own (orphans and loops a backend may produce)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from eas import hierarchy as hier
from eas.backend import BackendError, Folder, FolderType
from eas.core import ActiveSync, Config
from eas.state.model import CollectionState, FolderEntry, HierarchyState
from eas.state.session import DeviceState
from eas.store import ReferenceStore
from eas.tags import FolderHierarchy as FH
from eas.tags import Ping
from eas.testing.client import Client, Reply
from eas.testing.harness import client, make_app
from eas.wbxml import Writer

ALICE = "alice@example.com"
VERSIONS = ("2.5", "12.0", "12.1", "14.0", "14.1", "16.0", "16.1")
STANDARD = {"Inbox": 2, "Drafts": 3, "Deleted Items": 4, "Sent Items": 5, "Outbox": 6, "Calendar": 8,
            "Contacts": 9, "Tasks": 7, "Notes": 10}


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coro)


def quick_app(tmp_path: Path, config: Config | None = None) -> tuple[ActiveSync, ReferenceStore]:
    """The harness app (the core remembers each login, so scrypt runs once per account)."""
    return make_app(tmp_path, config=config)


async def ready(tmp_path: Path, version: str = "14.1") -> tuple[ActiveSync, ReferenceStore, Client]:
    app, store = quick_app(tmp_path)
    c = client(app, version=version)
    await c.provision()
    return app, store, c


def folder_sync_xml(key: str) -> str:
    return f'<FolderSync xmlns="FolderHierarchy:"><SyncKey>{key}</SyncKey></FolderSync>'


async def folder_sync(c: Client, key: str) -> Reply:
    r = await c.command("FolderSync", folder_sync_xml(key))
    assert r.status == 200, r
    return r


def changes(r: Reply) -> list[tuple[str, ...]]:
    """``(kind, ServerId, ParentId, DisplayName, Type)`` per change; Delete has ServerId only."""
    assert r.node is not None
    node = r.node.find(FH.Changes)
    assert node is not None, r.xml
    out: list[tuple[str, ...]] = []
    for child in node:
        if child.tag == FH.Count:
            continue
        kind = {FH.Add: "Add", FH.Update: "Update", FH.Delete: "Delete"}[child.tag]
        if kind == "Delete":
            out.append((kind, str(child.findtext(FH.ServerId))))
        else:
            out.append((kind, *(str(child.findtext(t)) for t in (FH.ServerId, FH.ParentId, FH.DisplayName, FH.Type))))
    assert r.text(FH.Changes, FH.Count) == str(len(out))
    return out


def ids_by_name(r: Reply) -> dict[str, str]:
    return {c[3]: c[1] for c in changes(r) if c[0] == "Add"}


async def hierarchy_blob(app: ActiveSync, c: Client) -> bytes | None:
    return await app.store.load(ALICE, c.device_id, "hierarchy")


async def put_collection(app: ActiveSync, c: Client, state: CollectionState) -> None:
    """A collection state as Sync would leave it, written straight into the state store."""
    device = await app.store.get_device(ALICE, c.device_id)
    assert device is not None
    ds = DeviceState(app.store, device)
    ds.put_collection(state)
    await ds.commit()


async def collection_blob(app: ActiveSync, c: Client, cid: str) -> bytes | None:
    return await app.store.load(ALICE, c.device_id, f"collection:{cid}")


async def backend_id(store: ReferenceStore, name: str) -> str:
    return next(f.id for f in await store.folders(ALICE) if f.name == name)


# -- the initial hierarchy --------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_initial_hierarchy_in_every_version(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        _app, _store, c = await ready(tmp_path, version)
        r = await folder_sync(c, "0")
        assert r.text(FH.Status) == "1"
        assert r.text(FH.SyncKey) == "1"
        adds = changes(r)
        assert {(a[3], int(a[4])) for a in adds} == set(STANDARD.items())
        assert all(a[0] == "Add" and a[2] == "0" for a in adds)
        assert len({a[1] for a in adds}) == len(adds)  # server ids are unique
        # Nothing changed: the same key again, nothing to apply.
        again = await folder_sync(c, "1")
        assert (again.text(FH.Status), again.text(FH.SyncKey), changes(again)) == ("1", "1", [])

    run(scenario())


def test_changes_since_a_key_in_an_order_a_client_can_apply(tmp_path: Path) -> None:
    async def scenario() -> None:
        _app, store, c = await ready(tmp_path)
        ids = ids_by_name(await folder_sync(c, "0"))
        inbox = await backend_id(store, "Inbox")
        projects = await store.create_folder(ALICE, inbox, "Projects", FolderType.USER_MAIL)
        child = await store.create_folder(ALICE, projects.id, "Q3", FolderType.USER_MAIL)
        r = await folder_sync(c, "1")
        assert r.text(FH.SyncKey) == "2"
        (k1, p_sid, p_parent, p_name, p_type), (k2, c_sid, c_parent, c_name, _) = changes(r)
        assert (k1, p_parent, p_name, p_type) == ("Add", ids["Inbox"], "Projects", "12")
        assert (k2, c_parent, c_name) == ("Add", p_sid, "Q3")  # parent first

        # Rename + move to the top, then delete a parent with its child.
        await store.update_folder(ALICE, child.id, "", "Q3 done")
        r = await folder_sync(c, "2")
        assert changes(r) == [("Update", c_sid, "0", "Q3 done", "12")]
        await store.create_folder(ALICE, projects.id, "Sub", FolderType.USER_MAIL)
        r = await folder_sync(c, "3")
        [(_, sub_sid, *_)] = changes(r)
        await store.delete_folder(ALICE, projects.id)
        r = await folder_sync(c, "4")
        assert changes(r) == [("Delete", sub_sid), ("Delete", p_sid)]  # children first
        assert r.text(FH.SyncKey) == "5"

    run(scenario())


def test_update_order_follows_the_new_tree(tmp_path: Path) -> None:
    """Two folders trading places: the one moving to the top is sent first, so that the
    other never moves under a folder that is still its own child on the device."""
    async def scenario() -> None:
        _app, store, c = await ready(tmp_path)
        a = await store.create_folder(ALICE, "", "A", FolderType.USER_MAIL)
        b = await store.create_folder(ALICE, a.id, "B", FolderType.USER_MAIL)
        ids = ids_by_name(await folder_sync(c, "0"))
        await store.update_folder(ALICE, b.id, "", "B")
        await store.update_folder(ALICE, a.id, b.id, "A")
        r = await folder_sync(c, "1")
        assert changes(r) == [("Update", ids["B"], "0", "B", "12"), ("Update", ids["A"], ids["B"], "A", "12")]

    run(scenario())


# -- keys: the previous one, SyncKey 0 -------------------------------------------------


def test_the_previous_key_gets_the_same_changes_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        _app, store, c = await ready(tmp_path)
        await folder_sync(c, "0")
        await store.create_folder(ALICE, "", "New", FolderType.USER_MAIL)
        first = await folder_sync(c, "1")
        assert first.text(FH.SyncKey) == "2"
        # The response never arrived: the device repeats key 1.
        second = await folder_sync(c, "1")
        assert changes(second) == changes(first)
        assert second.text(FH.SyncKey) == "3"  # keys only move forward
        # The key that never arrived is no longer valid; the new one is.
        assert (await folder_sync(c, "2")).text(FH.Status) == "9"
        third = await folder_sync(c, "3")
        assert (third.text(FH.Status), changes(third)) == ("1", [])

    run(scenario())


def test_synckey_0_keeps_server_ids_and_collection_states(tmp_path: Path) -> None:
    """A client that re-initialises its hierarchy gets the same CollectionIds back and its
    synced collections stay valid; a folder gone meanwhile loses its state."""
    async def scenario() -> None:
        app, store, c = await ready(tmp_path)
        work = await store.create_folder(ALICE, "", "Work", FolderType.USER_MAIL)
        old = await store.create_folder(ALICE, "", "Old", FolderType.USER_MAIL)
        first = await folder_sync(c, "0")
        ids = ids_by_name(first)
        inbox_backend = await backend_id(store, "Inbox")
        await put_collection(app, c, CollectionState(ids["Inbox"], inbox_backend, sync_key=7,
                                                     options={"class": "Email", "filter_type": 0}))
        await put_collection(app, c, CollectionState(ids["Old"], old.id, sync_key=3,
                                                     options={"class": "Email", "filter_type": 0}))
        await store.create_folder(ALICE, work.id, "Later", FolderType.USER_MAIL)
        await store.delete_folder(ALICE, old.id)

        again = await folder_sync(c, "0")
        assert again.text(FH.SyncKey) == "2"  # never back to a key handed out before
        new_ids = ids_by_name(again)
        assert {k: v for k, v in new_ids.items() if k != "Later"} == {k: v for k, v in ids.items() if k != "Old"}
        assert new_ids["Later"] not in ids.values()
        kept = await collection_blob(app, c, ids["Inbox"])
        assert kept is not None and CollectionState.from_json(kept).sync_key == 7
        assert await collection_blob(app, c, ids["Old"]) is None
        # The old keys are gone for good.
        assert (await folder_sync(c, "1")).text(FH.Status) == "9"
        assert changes(await folder_sync(c, "2")) == []

    run(scenario())


def test_repeated_synckey_0(tmp_path: Path) -> None:
    async def scenario() -> None:
        _app, _store, c = await ready(tmp_path)
        first = await folder_sync(c, "0")
        second = await folder_sync(c, "0")
        assert changes(first) == changes(second)
        assert (first.text(FH.SyncKey), second.text(FH.SyncKey)) == ("1", "2")

    run(scenario())


def test_devices_have_their_own_hierarchies(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, _store, c = await ready(tmp_path)
        other = client(app, version="14.1", device_id="OtherDevice0002")
        await other.provision()
        await folder_sync(c, "0")
        await folder_sync(c, "0")
        assert (await folder_sync(other, "2")).text(FH.Status) == "9"
        assert (await folder_sync(other, "0")).text(FH.SyncKey) == "1"

    run(scenario())


# -- statuses and bad input -------------------------------------------------------------


def _key(key: str) -> Callable[[Writer], None]:
    def build(w: Writer) -> None:
        with w.tag(FH.FolderSync):
            w.leaf(FH.SyncKey, key)
    return build


def _opaque_key(w: Writer) -> None:
    with w.tag(FH.FolderSync):
        w.opaque(FH.SyncKey, b"1")


def _wrong_root(w: Writer) -> None:
    with w.tag(FH.FolderCreate):
        w.leaf(FH.SyncKey, "1")


BAD_REQUESTS: list[tuple[str, Callable[[Writer], None], str]] = [
    ("no SyncKey", lambda w: w.empty(FH.FolderSync), "10"),
    ("wrong root element", _wrong_root, "10"),
    ("non-numeric key", _key("abc"), "9"),
    ("empty key", _key(""), "9"),
    ("leading zero", _key("01"), "9"),
    ("blank around key", _key(" 1"), "9"),
    ("negative key", _key("-1"), "9"),
    ("future key", _key("2"), "9"),
    ("huge key", _key("9" * 400), "9"),
    ("fullwidth digit", _key("\uff11"), "9"),
    ("opaque key", _opaque_key, "9"),
]


@pytest.mark.parametrize("version", ["12.1", "14.1"])
def test_bad_requests_get_their_status_and_change_nothing(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        app, _store, c = await ready(tmp_path, version)
        await folder_sync(c, "0")
        before = await hierarchy_blob(app, c)
        for name, build, status in BAD_REQUESTS:
            w = Writer()
            build(w)
            r = await c.raw("FolderSync", w.getvalue())
            assert (r.status, r.text(FH.Status)) == (200, status), name
            assert r.node is not None and [ch.tag for ch in r.node] == [FH.Status], name
            assert await hierarchy_blob(app, c) == before, name
        # Malformed WBXML and an empty body: the core's common status (14.0+) or HTTP 400.
        for body in (b"\x03\x01j\x00\x00\x07V\x52\x03", b"garbage"):
            r = await c.raw("FolderSync", body)
            if version >= "14.0":
                assert (r.status, r.text(FH.Status)) == (200, "102")
            else:
                assert r.status == 400
        r = await c.raw("FolderSync", b"")
        assert r.status == 200 if version >= "14.0" else r.status == 400
        assert await hierarchy_blob(app, c) == before
        assert (await folder_sync(c, "1")).text(FH.Status) == "1"

    run(scenario())


def test_backend_failures_are_status_6_and_11(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store, c = await ready(tmp_path)
        await folder_sync(c, "0")
        await store.create_folder(ALICE, "", "Pending", FolderType.USER_MAIL)
        before = await hierarchy_blob(app, c)
        real = store.folders

        async def refused(user: str) -> list[Folder]:
            raise BackendError("mail store offline")

        async def broken(user: str) -> list[Folder]:
            raise RuntimeError("bug")

        for fault, status in ((refused, "6"), (broken, "11")):
            store.folders = fault  # type: ignore[method-assign]
            r = await folder_sync(c, "1")
            assert r.text(FH.Status) == status
            assert await hierarchy_blob(app, c) == before
        store.folders = real  # type: ignore[method-assign]
        r = await folder_sync(c, "1")
        assert [ch[3] for ch in changes(r)] == ["Pending"]

    run(scenario())


# -- eas.hierarchy on its own -----------------------------------------------------------


def _folder(fid: str, parent: str, name: str | None = None) -> Folder:
    return Folder(fid, parent, name or f"f{fid}", FolderType.USER_MAIL)


@pytest.mark.kernel_independent
@pytest.mark.parametrize(("folders", "tops"), [
    ([_folder("b", "a"), _folder("a", "")], {"a"}),  # child listed before its parent
    ([_folder("a", "missing")], {"a"}),  # orphan
    ([_folder("a", "a")], {"a"}),  # its own parent
    ([_folder("a", "b"), _folder("b", "c"), _folder("c", "a")], None),  # a loop
    ([_folder("a", ""), _folder("a", "x"), _folder("b", "a")], {"a"}),  # a repeated id
])
def test_entries_are_a_tree_parents_first(folders: list[Folder], tops: set[str] | None) -> None:
    state = HierarchyState()
    out = hier.entries(state, folders)
    backend_of = {sid: e.backend_id for sid, e in out.items()}
    assert sorted(backend_of.values()) == sorted({f.id for f in folders})
    seen: set[str] = {hier.TOP}
    for sid, entry in out.items():
        assert entry.parent_id in seen  # every parent comes first, so no loop either
        seen.add(sid)
    top = {backend_of[sid] for sid, e in out.items() if e.parent_id == hier.TOP}
    assert top == tops if tops is not None else len(top) == 1


@pytest.mark.kernel_independent
def test_compare_and_stable_ids() -> None:
    state = HierarchyState()
    first = hier.entries(state, [_folder("a", ""), _folder("b", "a")])
    second = hier.entries(state, [_folder("b", "", "renamed"), _folder("c", "b")])
    assert {e.backend_id: sid for sid, e in first.items()}["b"] == {e.backend_id: sid for sid, e in
                                                                     second.items()}["b"]
    diff = hier.compare(first, second)
    assert [e.backend_id for e in diff.added] == ["c"]
    assert [(e.backend_id, e.name, e.parent_id) for e in diff.updated] == [("b", "renamed", hier.TOP)]
    assert [e.backend_id for e in diff.deleted] == ["a"]
    assert len(diff) == 3
    assert len(hier.compare(second, second)) == 0


@pytest.mark.kernel_independent
def test_descendants_and_depth_survive_loops() -> None:
    folders = {"1": FolderEntry("1", "2", "x", 12, "a"), "2": FolderEntry("2", "1", "y", 12, "b"),
               "3": FolderEntry("3", "0", "z", 12, "c"), "4": FolderEntry("4", "3", "w", 12, "d")}
    assert hier.descendants(folders, "3") == {"3", "4"}
    assert hier.descendants(folders, "1") == {"1", "2"}
    gone = hier.compare(folders, {})
    assert [e.server_id for e in gone.deleted][-1] in {"1", "2", "3"}
    assert [e.server_id for e in gone.deleted].index("4") < [e.server_id for e in gone.deleted].index("3")


@pytest.mark.kernel_independent
@pytest.mark.parametrize(("text", "key"), [("0", 0), ("1", 1), ("123", 123), ("01", None), ("", None),
                                           ("-1", None), (" 1", None), ("1.0", None), (b"1", None), (None, None),
                                           ("1" * 19, None), ("\u0661", None)])
def test_parse_key(text: str | bytes | None, key: int | None) -> None:
    assert hier.parse_key(text) == key


def test_hierarchy_changed_sees_every_kind_of_change(tmp_path: Path) -> None:
    """Through Ping (status 7), which asks ``hierarchy_changed`` before anything else."""
    async def scenario() -> None:
        _app, store, c = await ready(tmp_path)
        ids = ids_by_name(await folder_sync(c, "0"))
        ping = ('<Ping xmlns="Ping:"><HeartbeatInterval>60</HeartbeatInterval><Folders><Folder>'
                f'<Id>{ids["Inbox"]}</Id><Class>Email</Class></Folder></Folders></Ping>')
        store.deliver(ALICE, b"From: bob@example.com\r\nSubject: hi\r\n\r\nhello\r\n")
        inbox = await backend_id(store, "Inbox")
        folder = await store.create_folder(ALICE, "", "X", FolderType.USER_MAIL)
        steps = [
            lambda: asyncio.sleep(0),  # the creation above
            lambda: store.update_folder(ALICE, folder.id, "", "Y"),  # renamed
            lambda: store.update_folder(ALICE, folder.id, inbox, "Y"),  # moved
            lambda: store.delete_folder(ALICE, folder.id),  # deleted
        ]
        for key, step in enumerate(steps, start=1):
            await step()
            r = await c.command("Ping", ping)
            assert r.text(Ping.Status) == "7", r.xml
            r = await folder_sync(c, str(key))
            assert len(changes(r)) == 1
            assert (await c.command("Ping", ping)).text(Ping.Status) == "2"  # the mail, not 7

    run(scenario())
