"""FolderCreate, FolderUpdate and FolderDelete over the reference store: the change reaches
the backend and the hierarchy the device knows (the next FolderSync does not send it
back), every status code, and every refusal leaving both the backend and the stored
hierarchy as they were."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from test_foldersync import (
    ALICE,
    VERSIONS,
    changes,
    collection_blob,
    folder_sync,
    hierarchy_blob,
    ids_by_name,
    put_collection,
    quick_app,
    run,
)

from eas.backend import BackendError, Folder, FolderType
from eas.core import ActiveSync
from eas.state.model import CollectionState
from eas.store import ReferenceStore
from eas.tags import FolderHierarchy as FH
from eas.testing.client import Client, Reply
from eas.testing.harness import client
from eas.wbxml import Writer

Build = Callable[[Writer], None]


def body(root: int, **fields: str | bytes) -> Build:
    """A request with these FolderHierarchy children (bytes: opaque), in the given order."""
    def build(w: Writer) -> None:
        with w.tag(root):
            for name, value in fields.items():
                tag = getattr(FH, name)
                if isinstance(value, bytes):
                    w.opaque(tag, value)
                else:
                    w.leaf(tag, value)
    return build


async def send(c: Client, command: str, build: Build) -> Reply:
    w = Writer()
    build(w)
    r = await c.raw(command, w.getvalue())
    assert r.status == 200, r
    return r


class Mailbox:
    """Alice's device after FolderSync 0, with a user folder tree: Projects > Q3, and a
    Recipient Information folder (type 19, a special folder) put into the store's file."""

    def __init__(self, app: ActiveSync, store: ReferenceStore, c: Client, ids: dict[str, str]) -> None:
        self.app, self.store, self.c, self.ids = app, store, c, ids

    @classmethod
    async def open(cls, tmp_path: Path, version: str = "14.1") -> Mailbox:
        app, store = quick_app(tmp_path)
        projects = await store.create_folder(ALICE, "", "Projects", FolderType.USER_MAIL)
        await store.create_folder(ALICE, projects.id, "Q3", FolderType.USER_MAIL)
        with sqlite3.connect(tmp_path / "mail.db") as db:
            user_id = db.execute("SELECT id FROM users WHERE email = ?", (ALICE,)).fetchone()[0]
            db.execute("INSERT INTO folders (user_id, parent_id, name, type, special) VALUES (?, NULL, ?, 19, 1)",
                       (user_id, "Suggested Contacts"))
        db.close()
        c = client(app, version=version)
        await c.provision()
        ids = ids_by_name(await folder_sync(c, "0"))
        assert "Suggested Contacts" in ids
        return cls(app, store, c, ids)

    async def snapshot(self) -> tuple[bytes | None, list[Folder]]:
        """What a refused request must leave as it was."""
        return await hierarchy_blob(self.app, self.c), await self.store.folders(ALICE)


@pytest.mark.parametrize("version", VERSIONS)
def test_create_update_delete_in_every_version(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        m = await Mailbox.open(tmp_path, version)
        c, store, ids = m.c, m.store, m.ids
        r = await send(c, "FolderCreate", body(FH.FolderCreate, SyncKey="1", ParentId=ids["Inbox"],
                                               DisplayName="Receipts", Type="12"))
        assert (r.text(FH.Status), r.text(FH.SyncKey)) == ("1", "2")
        sid = r.text(FH.ServerId)
        assert sid and sid not in ids.values()
        assert r.node is not None and [ch.tag for ch in r.node] == [FH.Status, FH.SyncKey, FH.ServerId]
        inbox = next(f for f in await store.folders(ALICE) if f.name == "Inbox")
        created = next(f for f in await store.folders(ALICE) if f.name == "Receipts")
        assert (created.parent_id, created.type) == (inbox.id, FolderType.USER_MAIL)
        assert changes(await folder_sync(c, "2")) == []  # not sent back to its creator

        r = await send(c, "FolderUpdate", body(FH.FolderUpdate, SyncKey="2", ServerId=sid, ParentId=ids["Projects"],
                                               DisplayName="Bills"))
        assert (r.text(FH.Status), r.text(FH.SyncKey)) == ("1", "3")
        assert r.node is not None and [ch.tag for ch in r.node] == [FH.Status, FH.SyncKey]
        moved = next(f for f in await store.folders(ALICE) if f.id == created.id)
        projects = next(f for f in await store.folders(ALICE) if f.name == "Projects")
        assert (moved.name, moved.parent_id) == ("Bills", projects.id)
        assert changes(await folder_sync(c, "3")) == []

        r = await send(c, "FolderDelete", body(FH.FolderDelete, SyncKey="3", ServerId=sid))
        assert (r.text(FH.Status), r.text(FH.SyncKey)) == ("1", "4")
        assert all(f.id != created.id for f in await store.folders(ALICE))
        assert changes(await folder_sync(c, "4")) == []

    run(scenario())


def test_server_changes_are_still_sent_after_a_client_change(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = await Mailbox.open(tmp_path)
        await m.store.create_folder(ALICE, "", "From the web", FolderType.USER_MAIL)
        r = await send(m.c, "FolderCreate", body(FH.FolderCreate, SyncKey="1", ParentId="0",
                                                 DisplayName="From the phone", Type="1"))
        assert r.text(FH.Status) == "1"
        assert [ch[3] for ch in changes(await folder_sync(m.c, "2"))] == ["From the web"]

    run(scenario())


def test_a_lost_response_is_made_good_by_the_previous_key(tmp_path: Path) -> None:
    """The FolderCreate response never arrived; a FolderSync from the key before it
    announces the folder (with the server id the lost response carried)."""
    async def scenario() -> None:
        m = await Mailbox.open(tmp_path)
        r = await send(m.c, "FolderCreate", body(FH.FolderCreate, SyncKey="1", ParentId="0",
                                                 DisplayName="Lost", Type="12"))
        sid = r.text(FH.ServerId)
        again = await folder_sync(m.c, "1")
        assert changes(again) == [("Add", sid, "0", "Lost", "12")]
        assert again.text(FH.SyncKey) == "3"

    run(scenario())


def test_stored_name_is_what_the_device_keeps(tmp_path: Path) -> None:
    """The store trims a name; the hierarchy records the stored name, so the next
    FolderSync has nothing to correct."""
    async def scenario() -> None:
        m = await Mailbox.open(tmp_path)
        r = await send(m.c, "FolderUpdate", body(FH.FolderUpdate, SyncKey="1", ServerId=m.ids["Q3"],
                                                 ParentId=m.ids["Projects"], DisplayName="  Q3 2024  "))
        assert r.text(FH.Status) == "1"
        assert changes(await folder_sync(m.c, "2")) == []

    run(scenario())


def test_delete_drops_the_collection_states_below(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = await Mailbox.open(tmp_path)
        folders = {f.name: f.id for f in await m.store.folders(ALICE)}
        for name in ("Projects", "Q3", "Inbox"):
            await put_collection(m.app, m.c, CollectionState(m.ids[name], folders[name], sync_key=4,
                                                             options={"class": "Email", "filter_type": 0}))
        r = await send(m.c, "FolderDelete", body(FH.FolderDelete, SyncKey="1", ServerId=m.ids["Projects"]))
        assert r.text(FH.Status) == "1"
        assert await collection_blob(m.app, m.c, m.ids["Projects"]) is None
        assert await collection_blob(m.app, m.c, m.ids["Q3"]) is None
        assert await collection_blob(m.app, m.c, m.ids["Inbox"]) is not None
        assert {f.name for f in await m.store.folders(ALICE)}.isdisjoint({"Projects", "Q3"})
        assert changes(await folder_sync(m.c, "2")) == []

    run(scenario())


# -- every status, nothing changed on a refusal -----------------------------------------

CREATE = FH.FolderCreate
UPDATE = FH.FolderUpdate
DELETE = FH.FolderDelete

# (case, command, request given the device's folder ids, status)
CASES: list[tuple[str, str, Callable[[dict[str, str]], Build], str]] = [
    ("create: exists", "FolderCreate",
     lambda i: body(CREATE, SyncKey="1", ParentId=i["Projects"], DisplayName="q3", Type="12"), "2"),
    ("create: exists at the top", "FolderCreate",
     lambda i: body(CREATE, SyncKey="1", ParentId="0", DisplayName="INBOX", Type="12"), "2"),
    ("create: under the RI folder", "FolderCreate",
     lambda i: body(CREATE, SyncKey="1", ParentId=i["Suggested Contacts"], DisplayName="x", Type="12"), "3"),
    ("create: unknown parent", "FolderCreate",
     lambda i: body(CREATE, SyncKey="1", ParentId="999", DisplayName="x", Type="12"), "5"),
    ("create: item ServerId as parent", "FolderCreate",
     lambda i: body(CREATE, SyncKey="1", ParentId=f"{i['Inbox']}:1", DisplayName="x", Type="12"), "5"),
    ("create: key 0", "FolderCreate",
     lambda i: body(CREATE, SyncKey="0", ParentId="0", DisplayName="x", Type="12"), "9"),
    ("create: future key", "FolderCreate",
     lambda i: body(CREATE, SyncKey="2", ParentId="0", DisplayName="x", Type="12"), "9"),
    ("create: non-numeric key", "FolderCreate",
     lambda i: body(CREATE, SyncKey="one", ParentId="0", DisplayName="x", Type="12"), "9"),
    ("create: no key", "FolderCreate", lambda i: body(CREATE, ParentId="0", DisplayName="x", Type="12"), "10"),
    ("create: no name", "FolderCreate", lambda i: body(CREATE, SyncKey="1", ParentId="0", Type="12"), "10"),
    ("create: no parent", "FolderCreate", lambda i: body(CREATE, SyncKey="1", DisplayName="x", Type="12"), "10"),
    ("create: no type", "FolderCreate", lambda i: body(CREATE, SyncKey="1", ParentId="0", DisplayName="x"), "10"),
    ("create: Inbox type", "FolderCreate",
     lambda i: body(CREATE, SyncKey="1", ParentId="0", DisplayName="x", Type="2"), "10"),
    ("create: type 19", "FolderCreate",
     lambda i: body(CREATE, SyncKey="1", ParentId="0", DisplayName="x", Type="19"), "10"),
    ("create: type not a number", "FolderCreate",
     lambda i: body(CREATE, SyncKey="1", ParentId="0", DisplayName="x", Type="mail"), "10"),
    ("create: blank name", "FolderCreate",
     lambda i: body(CREATE, SyncKey="1", ParentId="0", DisplayName="   ", Type="12"), "10"),
    ("create: name too long", "FolderCreate",
     lambda i: body(CREATE, SyncKey="1", ParentId="0", DisplayName="n" * 257, Type="12"), "10"),
    ("create: control character", "FolderCreate",
     lambda i: body(CREATE, SyncKey="1", ParentId="0", DisplayName="a\x01b", Type="12"), "10"),
    ("create: newline", "FolderCreate",
     lambda i: body(CREATE, SyncKey="1", ParentId="0", DisplayName="a\nb", Type="12"), "10"),
    ("create: undecodable name", "FolderCreate",
     lambda i: body(CREATE, SyncKey="1", ParentId="0", DisplayName="a\udcff", Type="12"), "10"),
    ("create: opaque name", "FolderCreate",
     lambda i: body(CREATE, SyncKey="1", ParentId="0", DisplayName=b"x", Type="12"), "10"),
    ("create: wrong root", "FolderCreate", lambda i: body(UPDATE, SyncKey="1"), "10"),
    ("update: unknown folder", "FolderUpdate",
     lambda i: body(UPDATE, SyncKey="1", ServerId="999", ParentId="0", DisplayName="x"), "4"),
    ("update: special folder", "FolderUpdate",
     lambda i: body(UPDATE, SyncKey="1", ServerId=i["Inbox"], ParentId="0", DisplayName="Mail"), "2"),
    ("update: special folder moved", "FolderUpdate",
     lambda i: body(UPDATE, SyncKey="1", ServerId=i["Sent Items"], ParentId=i["Projects"],
                    DisplayName="Sent Items"), "2"),
    ("update: name exists", "FolderUpdate",
     lambda i: body(UPDATE, SyncKey="1", ServerId=i["Projects"], ParentId="0", DisplayName="Drafts"), "2"),
    ("update: the RI folder", "FolderUpdate",
     lambda i: body(UPDATE, SyncKey="1", ServerId=i["Suggested Contacts"], ParentId="0", DisplayName="x"), "3"),
    ("update: unknown parent", "FolderUpdate",
     lambda i: body(UPDATE, SyncKey="1", ServerId=i["Q3"], ParentId="999", DisplayName="Q3"), "5"),
    ("update: under its own child", "FolderUpdate",
     lambda i: body(UPDATE, SyncKey="1", ServerId=i["Projects"], ParentId=i["Q3"], DisplayName="Projects"), "10"),
    ("update: under itself", "FolderUpdate",
     lambda i: body(UPDATE, SyncKey="1", ServerId=i["Projects"], ParentId=i["Projects"],
                    DisplayName="Projects"), "10"),
    ("update: no name", "FolderUpdate", lambda i: body(UPDATE, SyncKey="1", ServerId=i["Q3"], ParentId="0"), "10"),
    ("update: no parent", "FolderUpdate",
     lambda i: body(UPDATE, SyncKey="1", ServerId=i["Q3"], DisplayName="x"), "10"),
    ("update: no ServerId", "FolderUpdate", lambda i: body(UPDATE, SyncKey="1", ParentId="0", DisplayName="x"), "10"),
    ("update: name too long", "FolderUpdate",
     lambda i: body(UPDATE, SyncKey="1", ServerId=i["Q3"], ParentId="0", DisplayName="\u00e9" * 300), "10"),
    ("update: tab in name", "FolderUpdate",
     lambda i: body(UPDATE, SyncKey="1", ServerId=i["Q3"], ParentId="0", DisplayName="a\tb"), "10"),
    ("update: old key", "FolderUpdate",
     lambda i: body(UPDATE, SyncKey="0", ServerId=i["Q3"], ParentId="0", DisplayName="x"), "9"),
    ("update: no key", "FolderUpdate", lambda i: body(UPDATE, ServerId=i["Q3"], ParentId="0", DisplayName="x"), "10"),
    ("delete: unknown folder", "FolderDelete", lambda i: body(DELETE, SyncKey="1", ServerId="999"), "4"),
    ("delete: empty ServerId", "FolderDelete", lambda i: body(DELETE, SyncKey="1", ServerId=""), "4"),
    ("delete: the top", "FolderDelete", lambda i: body(DELETE, SyncKey="1", ServerId="0"), "4"),
    ("delete: special folder", "FolderDelete", lambda i: body(DELETE, SyncKey="1", ServerId=i["Inbox"]), "3"),
    ("delete: the RI folder", "FolderDelete",
     lambda i: body(DELETE, SyncKey="1", ServerId=i["Suggested Contacts"]), "3"),
    ("delete: wrong key", "FolderDelete", lambda i: body(DELETE, SyncKey="7", ServerId=i["Q3"]), "9"),
    ("delete: no ServerId", "FolderDelete", lambda i: body(DELETE, SyncKey="1"), "10"),
    ("delete: no key", "FolderDelete", lambda i: body(DELETE, ServerId=i["Q3"]), "10"),
]


@pytest.mark.parametrize("version", ["2.5", "16.1"])
def test_every_status_and_nothing_changed(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        m = await Mailbox.open(tmp_path, version)
        before = await m.snapshot()
        for case, command, request, status in CASES:
            r = await send(m.c, command, request(m.ids))
            assert r.text(FH.Status) == status, (case, r.xml)
            assert r.node is not None and [ch.tag for ch in r.node] == [FH.Status], case
            assert await m.snapshot() == before, case
        # The device's key is still good.
        assert (await folder_sync(m.c, "1")).text(FH.Status) == "1"

    run(scenario())


def test_backend_failures_are_status_6_and_11(tmp_path: Path) -> None:
    async def scenario() -> None:
        m = await Mailbox.open(tmp_path)
        before = await m.snapshot()

        async def refused(*args: object) -> Folder:
            raise BackendError("mail store offline")

        async def broken(*args: object) -> Folder:
            raise RuntimeError("bug")

        create = body(CREATE, SyncKey="1", ParentId="0", DisplayName="x", Type="12")
        update = body(UPDATE, SyncKey="1", ServerId=m.ids["Q3"], ParentId="0", DisplayName="x")
        delete = body(DELETE, SyncKey="1", ServerId=m.ids["Q3"])
        for fault, status in ((refused, "6"), (broken, "11")):
            m.store.create_folder = fault  # type: ignore[method-assign]
            m.store.update_folder = fault  # type: ignore[method-assign,assignment]
            m.store.delete_folder = fault  # type: ignore[method-assign,assignment]
            for command, request in (("FolderCreate", create), ("FolderUpdate", update), ("FolderDelete", delete)):
                r = await send(m.c, command, request)
                assert r.text(FH.Status) == status, command
                assert await hierarchy_blob(m.app, m.c) == before[0]

    run(scenario())


def test_a_folder_gone_on_the_server_is_4_for_update_and_delete(tmp_path: Path) -> None:
    """The device still lists Q3, the backend no longer has it."""
    async def scenario() -> None:
        m = await Mailbox.open(tmp_path)
        q3 = next(f for f in await m.store.folders(ALICE) if f.name == "Q3")
        await m.store.delete_folder(ALICE, q3.id)
        before = await hierarchy_blob(m.app, m.c)
        r = await send(m.c, "FolderUpdate", body(UPDATE, SyncKey="1", ServerId=m.ids["Q3"], ParentId="0",
                                                 DisplayName="Q4"))
        assert r.text(FH.Status) == "4"
        r = await send(m.c, "FolderDelete", body(DELETE, SyncKey="1", ServerId=m.ids["Q3"]))
        assert r.text(FH.Status) == "4"
        # A parent gone on the server: 5 for a create or a move under it.
        projects = next(f for f in await m.store.folders(ALICE) if f.name == "Projects")
        await m.store.delete_folder(ALICE, projects.id)
        r = await send(m.c, "FolderCreate", body(CREATE, SyncKey="1", ParentId=m.ids["Projects"],
                                                 DisplayName="x", Type="12"))
        assert r.text(FH.Status) == "5"
        await m.store.create_folder(ALICE, "", "Loose", FolderType.USER_MAIL)
        assert await hierarchy_blob(m.app, m.c) == before
        r = await folder_sync(m.c, "1")
        assert sorted(ch[0] for ch in changes(r)) == ["Add", "Delete", "Delete"]

    run(scenario())
