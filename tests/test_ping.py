"""Ping over the reference store: every status, the parameters remembered for empty
Pings, the catch-up check before waiting, and the wait itself (through the core's
notification machinery): woken at once by a delivery, after ``notification_latency``
with instant notifications off, not by changes elsewhere, ended at once by the device's
next request, and holding no sync state while parked."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

import pytest
from test_foldersync import ALICE, VERSIONS, folder_sync, ids_by_name, put_collection, quick_app, run

from eas.backend import BackendError, EmailChange, FolderType
from eas.core import ActiveSync, Config
from eas.state.model import CollectionState, HierarchyState
from eas.store import ReferenceStore
from eas.tags import FolderHierarchy as FH
from eas.tags import Ping
from eas.testing.client import Client, Reply
from eas.testing.harness import client

CONFIG = {"min_heartbeat": 1, "max_heartbeat": 30, "max_ping_folders": 3}
MAIL = b"From: bob@example.com\r\nTo: alice@example.com\r\nSubject: hello\r\n\r\nhi\r\n"
OLD_MAIL = (b"From: bob@example.com\r\nTo: alice@example.com\r\nSubject: old\r\n"
            b"Date: Mon, 01 Jan 2001 00:00:00 +0000\r\n\r\nlong ago\r\n")


class Device:
    """Alice's device after FolderSync 0; ``ids``: folder DisplayName -> CollectionId,
    ``backend``: DisplayName -> backend folder id."""

    def __init__(self, app: ActiveSync, store: ReferenceStore, c: Client, ids: dict[str, str],
                 backend: dict[str, str]) -> None:
        self.app, self.store, self.c, self.ids, self.backend = app, store, c, ids, backend

    @classmethod
    async def open(cls, tmp_path: Path, version: str = "14.1", **config: object) -> Device:
        app, store = quick_app(tmp_path, Config(**{**CONFIG, **config}))  # type: ignore[arg-type]
        await store.create_folder(ALICE, "", "Projects", FolderType.USER_MAIL)
        c = client(app, version=version)
        await c.provision()
        ids = ids_by_name(await folder_sync(c, "0"))
        backend = {f.name: f.id for f in await store.folders(ALICE)}
        return cls(app, store, c, ids, backend)

    async def synced(self, name: str, filter_type: int = 0) -> None:
        """A collection state as a Sync leaves it: the device has every item there is."""
        stamps = await self.store.item_stamps(ALICE, self.backend[name])
        await put_collection(self.app, self.c, CollectionState(
            self.ids[name], self.backend[name], sync_key=2, snapshot=stamps,
            options={"class": "Email", "filter_type": filter_type}))

    async def ping(self, heartbeat: int | None, *names: str) -> Reply:
        r = await self.c.command("Ping", ping_xml(heartbeat, *(self.ids.get(n, n) for n in names)))
        assert r.status == 200, r
        return r


def ping_xml(heartbeat: int | str | None, *ids: str) -> str:
    parts = [] if heartbeat is None else [f"<HeartbeatInterval>{heartbeat}</HeartbeatInterval>"]
    if ids:
        folders = "".join(f"<Folder><Id>{i}</Id><Class>Email</Class></Folder>" for i in ids)
        parts.append(f"<Folders>{folders}</Folders>")
    return f'<Ping xmlns="Ping:">{"".join(parts)}</Ping>'


def folders(r: Reply) -> list[str]:
    assert r.node is not None
    node = r.node.find(Ping.Folders)
    return [] if node is None else [str(f.text) for f in node.findall(Ping.Folder)]


def answer(r: Reply) -> tuple[str | None, list[str]]:
    return r.text(Ping.Status), folders(r)


# -- statuses that need no waiting ------------------------------------------------------


@pytest.mark.parametrize("version", ["2.5", "16.1"])
def test_statuses_before_any_wait(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        d = await Device.open(tmp_path, version)
        d.store.deliver(ALICE, MAIL)
        inbox = d.ids["Inbox"]
        cases: list[tuple[str, str | None, str]] = [
            ("empty body, nothing remembered", None, "3"),
            ("interval only", ping_xml(10), "3"),
            ("folders only", ping_xml(None, inbox), "3"),
            ("empty Folders", '<Ping xmlns="Ping:"><HeartbeatInterval>10</HeartbeatInterval><Folders/></Ping>', "3"),
            ("interval not a number", ping_xml("ten", inbox), "4"),
            ("negative interval", ping_xml(-5, inbox), "4"),
            ("Folder without Id", ('<Ping xmlns="Ping:"><HeartbeatInterval>10</HeartbeatInterval><Folders>'
                                  "<Folder><Class>Email</Class></Folder></Folders></Ping>"), "4"),
            ("empty Id", ping_xml(10, ""), "4"),
            ("unknown element", '<Ping xmlns="Ping:"><MaxFolders>3</MaxFolders></Ping>', "4"),
            ("not a Ping", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>1</SyncKey></FolderSync>', "4"),
            ("unknown folder", ping_xml(10, "999"), "7"),
            ("item id as folder", ping_xml(10, f"{inbox}:1"), "7"),
            ("empty body still has nothing remembered", None, "3"),
        ]
        for case, xml, status in cases:
            r = await d.c.command("Ping", xml)
            assert (r.status, r.text(Ping.Status)) == (200, status), (case, r.xml)
            assert r.node is not None and [ch.tag for ch in r.node] == [Ping.Status], case

        r = await d.ping(0, "Inbox")
        assert (r.text(Ping.Status), r.text(Ping.HeartbeatInterval)) == ("5", "1")
        r = await d.ping(31, "Inbox")
        assert (r.text(Ping.Status), r.text(Ping.HeartbeatInterval)) == ("5", "30")
        r = await d.ping(10, "Inbox", "Drafts", "Outbox", "Projects")
        assert (r.text(Ping.Status), r.text(Ping.MaxFolders)) == ("6", "3")
        r = await d.ping(10, "Inbox", "Inbox", "Drafts", "Outbox")  # a repeat counts once
        assert answer(r) == ("2", [inbox])

        # Remembered now: an empty Ping, or one with a part left out, reuses them.
        assert answer(await d.ping(None)) == ("2", [inbox])
        r = await d.c.command("Ping", None)
        assert answer(r) == ("2", [inbox])
        assert answer(await d.ping(10)) == ("2", [inbox])
        assert answer(await d.ping(None, "Inbox")) == ("2", [inbox])
        # A refused Ping does not replace them.
        assert (await d.ping(31, "Drafts")).text(Ping.Status) == "5"
        assert answer(await d.c.command("Ping", None)) == ("2", [inbox])

    run(scenario())


def test_hierarchy_not_synced_or_changed_is_7(tmp_path: Path) -> None:
    async def scenario() -> None:
        d = await Device.open(tmp_path)
        d.store.deliver(ALICE, MAIL)
        fresh = client(d.app, version="14.1", device_id="FreshDevice0002")
        await fresh.provision()
        r = await fresh.command("Ping", ping_xml(10, d.ids["Inbox"]))
        assert r.text(Ping.Status) == "7"  # never did FolderSync
        await d.store.create_folder(ALICE, "", "New", FolderType.USER_MAIL)
        assert (await d.ping(10, "Inbox")).text(Ping.Status) == "7"
        await folder_sync(d.c, "1")
        assert answer(await d.ping(10, "Inbox")) == ("2", [d.ids["Inbox"]])

    run(scenario())


@pytest.mark.parametrize("version", VERSIONS)
def test_catch_up_before_waiting_in_every_version(tmp_path: Path, version: str) -> None:
    """Changes the device has not synced yet answer 2 at once: a never-synced folder with
    items, a synced one with a new item or a changed one; a never-synced empty one and a
    synced one without changes are not listed."""
    async def scenario() -> None:
        d = await Device.open(tmp_path, version)
        first = d.store.deliver(ALICE, MAIL)
        await d.synced("Inbox")
        d.store.deliver(ALICE, MAIL, folder="Projects")
        started = time.monotonic()
        r = await d.ping(30, "Inbox", "Projects", "Drafts")
        assert answer(r) == ("2", [d.ids["Projects"]])
        await d.synced("Projects")
        await d.store.change_email(ALICE, d.backend["Inbox"], first, EmailChange(read=True))
        assert answer(await d.ping(30, "Inbox", "Projects", "Drafts")) == ("2", [d.ids["Inbox"]])
        assert time.monotonic() - started < 1.0

    run(scenario())


def test_backend_failure_is_8(tmp_path: Path) -> None:
    async def scenario() -> None:
        d = await Device.open(tmp_path)

        async def refused(*args: object, **kw: object) -> dict[str, str]:
            raise BackendError("offline")

        async def broken(*args: object, **kw: object) -> dict[str, str]:
            raise RuntimeError("bug")

        for fault in (refused, broken):
            d.store.item_stamps = fault  # type: ignore[method-assign]
            assert (await d.ping(10, "Inbox")).text(Ping.Status) == "8"

    run(scenario())


# -- the wait ---------------------------------------------------------------------------


async def parked(d: Device, heartbeat: int, *names: str) -> asyncio.Task[Reply]:
    """A Ping that is waiting (it has passed its checks and sits in ``ctx.wait``)."""
    task = asyncio.ensure_future(d.ping(heartbeat, *names))
    for _ in range(200):
        await asyncio.sleep(0.005)
        if d.app._waiters.get(ALICE):
            return task
    raise AssertionError(f"the Ping did not wait: {task.done() and task.result().xml}")


def test_timeout_is_1_and_filter_type_is_respected(tmp_path: Path) -> None:
    """A mail older than the collection's FilterType window is no change."""
    async def scenario() -> None:
        d = await Device.open(tmp_path)
        await d.synced("Inbox", filter_type=1)
        d.store.deliver(ALICE, OLD_MAIL)
        started = time.monotonic()
        r = await d.ping(1, "Inbox")
        assert answer(r) == ("1", [])
        assert 0.9 <= time.monotonic() - started < 3

    run(scenario())


def test_a_delivery_wakes_the_ping_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        d = await Device.open(tmp_path)
        await d.synced("Inbox")
        await d.synced("Projects")
        task = await parked(d, 30, "Inbox", "Projects")
        delivered = time.monotonic()
        d.store.deliver(ALICE, MAIL, folder="Projects")
        r = await asyncio.wait_for(task, 5)
        assert time.monotonic() - delivered < 0.5
        assert answer(r) == ("2", [d.ids["Projects"]])
        assert not d.app._waiters.get(ALICE)

    run(scenario())


def test_with_instant_notifications_off_it_wakes_after_the_latency(tmp_path: Path) -> None:
    async def scenario() -> None:
        d = await Device.open(tmp_path, instant_notifications=False, notification_latency=0.4)
        await d.synced("Inbox")
        task = await parked(d, 30, "Inbox")
        delivered = time.monotonic()
        d.store.deliver(ALICE, MAIL)
        await asyncio.sleep(0.2)
        assert not task.done()
        r = await asyncio.wait_for(task, 5)
        assert 0.35 <= time.monotonic() - delivered < 2
        assert answer(r) == ("2", [d.ids["Inbox"]])

    run(scenario())


def test_changes_elsewhere_do_not_end_the_ping(tmp_path: Path) -> None:
    """A delivery to a folder not listed does not wake it; a wake-up without a change
    (a notification for 'anywhere') waits again for the time left, so the answer is 1
    after the heartbeat, not before."""
    async def scenario() -> None:
        d = await Device.open(tmp_path)
        await d.synced("Inbox")
        started = time.monotonic()
        task = await parked(d, 1, "Inbox")
        d.store.deliver(ALICE, MAIL, folder="Projects")
        d.store.deliver("bob@example.com", MAIL)
        await asyncio.sleep(0.1)
        d.app.notify(ALICE)
        await asyncio.sleep(0.1)
        assert not task.done()
        r = await asyncio.wait_for(task, 5)
        assert answer(r) == ("1", [])
        assert 0.9 <= time.monotonic() - started < 3

    run(scenario())


def test_the_devices_next_request_ends_the_ping_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        d = await Device.open(tmp_path)
        await d.synced("Inbox")
        task = await parked(d, 30, "Inbox")
        started = time.monotonic()
        r = await folder_sync(d.c, "1")
        assert r.text(FH.Status) == "1"
        ping = await asyncio.wait_for(task, 5)
        assert answer(ping) == ("1", [])
        assert time.monotonic() - started < 0.5
        # Another device of the same user does not end it.
        await d.synced("Projects")
        task = await parked(d, 30, "Inbox")
        other = client(d.app, version="14.1", device_id="OtherDevice0002")
        await other.provision()
        await asyncio.sleep(0.1)
        assert not task.done()
        d.store.deliver(ALICE, MAIL)
        assert answer(await asyncio.wait_for(task, 5)) == ("2", [d.ids["Inbox"]])

    run(scenario())


def test_a_folder_deleted_while_waiting_is_7(tmp_path: Path) -> None:
    async def scenario() -> None:
        d = await Device.open(tmp_path)
        await d.synced("Projects")
        task = await parked(d, 30, "Projects")
        await d.store.delete_folder(ALICE, d.backend["Projects"])
        r = await asyncio.wait_for(task, 5)
        assert r.text(Ping.Status) == "7"

    run(scenario())


def test_a_parked_ping_holds_no_sync_state(tmp_path: Path) -> None:
    """Tens of thousands may wait at once: none keeps a hierarchy or a snapshot loaded."""
    async def scenario() -> None:
        d = await Device.open(tmp_path)
        for _ in range(20):
            d.store.deliver(ALICE, MAIL)
        await d.synced("Inbox")
        await d.synced("Projects")
        task = await parked(d, 30, "Inbox", "Projects")
        gc.collect()
        alive = [o for o in gc.get_objects() if isinstance(o, (CollectionState, HierarchyState))]
        assert alive == []
        d.store.deliver(ALICE, MAIL)
        assert answer(await asyncio.wait_for(task, 5)) == ("2", [d.ids["Inbox"]])

    run(scenario())


def test_a_change_between_the_check_and_the_wait_is_not_lost(tmp_path: Path) -> None:
    """Mail delivered while the Ping commits its state (after its catch-up check, before
    it listens) still ends the Ping at once instead of at the heartbeat."""

    async def scenario() -> None:
        d = await Device.open(tmp_path)
        await d.synced("Inbox")
        state_store = d.app.store
        commit = state_store.commit
        delivered: list[float] = []

        async def commit_then_deliver(device, blobs):  # type: ignore[no-untyped-def]
            await commit(device, blobs)
            if not delivered:  # the first commit of the Ping: its parameters, just before the wait
                delivered.append(time.monotonic())
                d.store.deliver(ALICE, MAIL, folder="Inbox")

        state_store.commit = commit_then_deliver  # type: ignore[method-assign]
        r = await asyncio.wait_for(d.ping(20, "Inbox"), 5)
        assert delivered and time.monotonic() - delivered[0] < 1.0
        assert answer(r) == ("2", [d.ids["Inbox"]])

    run(scenario())
