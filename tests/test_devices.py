"""Device management (``eas.access.devices``) on the real SQLite state store and the
reference mail store: list filters, details, every action audited and refused with a
clear error where it must be, wipe and suspension through the real core (a wipe ordered
while a Ping waits is kept by that Ping's commit, reaches the device, and comes again
until the partnership is removed), and the simulated sync (counts that match the store,
a broken item named, nothing of the real devices or the mail store changed)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from eas.access import devices
from eas.access.devices import NoSuchDevice
from eas.config import Config
from eas.core import ActiveSync
from eas.state.model import AuditEvent, DeviceRecord
from eas.state.sqlite import SQLiteStateStore
from eas.store import ReferenceStore
from eas.tags import AirSync as A
from eas.tags import FolderHierarchy as FH
from eas.tags import Ping
from eas.tags import Provision as P
from eas.testing.client import Client
from eas.testing.harness import client, make_app

pytestmark = pytest.mark.kernel_independent

ALICE, BOB = "alice@example.com", "bob@example.com"
FOLDERSYNC = '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>'
DAY = 86400.0
NOW = float(int(time.time()))  # the devices were seen relative to now


def run(scenario: Any) -> None:
    asyncio.run(scenario)


async def seeded(path: Path) -> SQLiteStateStore:
    """Five devices: alice's allowed phone, her quarantined tablet (seen 10 days ago),
    her suspended phone with a wipe pending, bob's blocked phone (60 days ago) and his
    wiped one."""
    store = SQLiteStateStore(path / "state.db")
    for record in (
        DeviceRecord(ALICE, "Phone1", device_type="iPhone", protocol_version="16.1", last_seen=NOW, model="iPhone15"),
        DeviceRecord(ALICE, "Tablet1", device_type="iPad", protocol_version="14.1", last_seen=NOW - 10 * DAY,
                     access="quarantined"),
        DeviceRecord(ALICE, "Phone2", device_type="IPHONE", protocol_version="16.1", last_seen=NOW - DAY,
                     suspended=True, wipe="pending", wipe_requested=NOW - 3600),
        DeviceRecord(BOB, "Android1", device_type="Android", protocol_version="14.1", last_seen=NOW - 60 * DAY,
                     access="blocked"),
        DeviceRecord(BOB, "Android2", device_type="Android", protocol_version="16.1", last_seen=NOW - 2 * DAY,
                     wipe="wiped", wipe_requested=NOW - 3 * DAY, wipe_acknowledged=NOW - 2 * DAY),
    ):
        await store.commit(record, {"hierarchy": b"{}"})
    return store


def ids(records: list[DeviceRecord]) -> list[str]:
    return [r.device_id for r in records]


def test_list_filters(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await seeded(tmp_path)
        assert ids(await devices.list_devices(store)) == ["Phone1", "Phone2", "Tablet1", "Android2", "Android1"]
        assert ids(await devices.list_devices(store, user="Bob@Example.com")) == ["Android2", "Android1"]
        cases: list[tuple[str, list[str]]] = [
            ("allowed", ["Phone1", "Phone2", "Android2"]), ("quarantined", ["Tablet1"]), ("blocked", ["Android1"]),
            ("discovery", []), ("suspended", ["Phone2"]), ("wipe-pending", ["Phone2"]), ("wiped", ["Android2"]),
            ("wipe-failed", [])]
        for state, expected in cases:
            assert ids(await devices.list_devices(store, state=state)) == expected, state
        assert ids(await devices.list_devices(store, device_type="iphone")) == ["Phone1", "Phone2"]
        assert ids(await devices.list_devices(store, seen_since=NOW - 5 * DAY)) == ["Phone1", "Phone2", "Android2"]
        assert ids(await devices.list_devices(store, seen_before=NOW - 5 * DAY)) == ["Tablet1", "Android1"]
        assert ids(await devices.list_devices(store, user=ALICE, state="allowed", device_type="IPhone",
                                              seen_since=NOW - 0.5 * DAY)) == ["Phone1"]
        assert [devices.state_of(d) for d in await devices.list_devices(store, user=ALICE)] == [
            "allowed", "wipe-pending", "quarantined"]
        for bad in ({"state": "gone"}, {"user": "not an account"}, {"user": ""}, {"device_type": "x" * 65},
                    {"device_type": "a\nb"}, {"user": "a@b@c"}):
            with pytest.raises((ValueError, TypeError)):
                await devices.list_devices(store, **bad)  # type: ignore[arg-type]
        await store.close()

    run(scenario())


def test_details_history_and_policy(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await seeded(tmp_path)
        record = await store.get_device(ALICE, "Phone1")
        assert record is not None
        record.policy_key, record.policy_status = 12345, 2
        record.skipped_items = [{"collection_id": "1", "server_id": "1:9", "item_id": "9", "class": "Email",
                                 "kind": "Add", "time": NOW, "reason": "the device kept failing on it"}]
        await store.commit(record, {})
        for i, action in enumerate(("access.quarantined", "abq.allow", "access.allowed")):
            await store.record_event(AuditEvent(action, actor="abq" if action.startswith("access") else "cli",
                                                user=ALICE, device_id="Phone1", detail=f"step {i}", time=NOW + i))
        await store.record_event(AuditEvent("access.blocked", actor="abq", user=ALICE, device_id="Tablet1"))
        details = await devices.device_details(store, "ALICE@example.com", "Phone1")
        assert details.device.model == "iPhone15" and details.device.protocol_version == "16.1"
        assert [e.action for e in details.history] == ["access.allowed", "abq.allow", "access.quarantined"]
        assert details.skipped == record.skipped_items
        assert details.policy == "provisioned, policy applied in part"
        other = await devices.device_details(store, ALICE, "Tablet1")
        assert other.policy == "not provisioned" and [e.action for e in other.history] == ["access.blocked"]
        with pytest.raises(NoSuchDevice, match="alice@example.com has no device Nope"):
            await devices.device_details(store, ALICE, "Nope")
        with pytest.raises(ValueError):
            await devices.device_details(store, ALICE, "../etc")
        await store.close()

    run(scenario())


def test_each_action_audited_and_waking_the_account(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = await seeded(tmp_path)
        woken: list[str] = []
        kw: dict[str, Any] = {"actor": "web:admin", "wake": woken.append}
        assert await devices.suspend(store, ALICE, "Phone1", **kw)
        assert not await devices.suspend(store, ALICE, "Phone1", **kw)  # already: nothing done
        assert (await store.get_device(ALICE, "Phone1")).suspended  # type: ignore[union-attr]
        assert await devices.resume(store, ALICE, "Phone1", **kw)
        assert not await devices.resume(store, ALICE, "Phone1", **kw)
        record = await devices.wipe(store, ALICE, "Phone1", **kw)
        assert record.wipe == "pending" and record.wipe_requested >= NOW
        assert (await store.get_device(ALICE, "Phone1")).wipe == "pending"  # type: ignore[union-attr]
        await devices.cancel_wipe(store, ALICE, "Phone1", **kw)
        assert (await store.get_device(ALICE, "Phone1")).wipe == ""  # type: ignore[union-attr]
        assert await store.load(ALICE, "Phone1", "hierarchy") == b"{}"
        assert await devices.reset(store, ALICE, "Phone1", **kw)
        assert await store.load(ALICE, "Phone1", "hierarchy") is None
        assert await store.get_device(ALICE, "Phone1") is not None  # the record stays
        assert await devices.remove(store, ALICE, "Tablet1", **kw)
        assert await store.get_device(ALICE, "Tablet1") is None and await store.load(ALICE, "Tablet1", "hierarchy") is None
        assert not await devices.remove(store, ALICE, "Tablet1", **kw)
        assert not await devices.reset(store, ALICE, "Tablet1", **kw)
        events = [(e.action, e.actor, e.user, e.device_id) for e in reversed(await store.events(limit=100))]
        assert events == [(a, "web:admin", ALICE, d) for a, d in (
            ("device.suspend", "Phone1"), ("device.resume", "Phone1"), ("device.wipe", "Phone1"),
            ("device.wipe.cancel", "Phone1"), ("device.reset", "Phone1"), ("device.remove", "Tablet1"))]
        assert woken == [ALICE] * 6
        # Unknown devices and hostile names: a clear error, nothing stored, nobody woken.
        before = ([d.to_json() for d in await store.list_devices()], len(await store.events(limit=1000)))
        for call in (devices.wipe, devices.cancel_wipe, devices.suspend, devices.resume):
            with pytest.raises(NoSuchDevice):
                await call(store, ALICE, "Nope", **kw)
            for user, device_id in (("nobody", "Phone1"), (ALICE, "a b"), (ALICE, "x" * 65), ("", "Phone1"),
                                    (ALICE, "\u202eevil"), (42, "Phone1"), (ALICE, None)):
                with pytest.raises((ValueError, TypeError)):
                    await call(store, user, device_id, **kw)  # type: ignore[arg-type]
        for call in (devices.remove, devices.reset):
            with pytest.raises(ValueError):
                await call(store, "a b@example.com", "Phone1", **kw)
        assert ([d.to_json() for d in await store.list_devices()], len(await store.events(limit=1000))) == before
        assert woken == [ALICE] * 6
        await store.close()

    run(scenario())


def test_wipe_rules(tmp_path: Path) -> None:
    """Account-only needs 16.1; a wipe again says what is the case; cancel only before
    the acknowledgment; remove refused while a wipe is pending."""

    async def scenario() -> None:
        store = await seeded(tmp_path)
        kw: dict[str, Any] = {"actor": "cli"}
        with pytest.raises(ValueError, match="needs a device speaking 16.1; Tablet1 speaks 14.1"):
            await devices.wipe(store, ALICE, "Tablet1", account_only=True, **kw)
        assert (await store.get_device(ALICE, "Tablet1")).wipe == ""  # type: ignore[union-attr]
        with pytest.raises(ValueError, match="already pending since"):
            await devices.wipe(store, ALICE, "Phone2", **kw)
        with pytest.raises(ValueError, match="full wipe .* is pending .* covers the account"):
            await devices.wipe(store, ALICE, "Phone2", account_only=True, **kw)
        with pytest.raises(ValueError, match="wipe of Phone2 is pending: removing it would drop the wipe"):
            await devices.remove(store, ALICE, "Phone2", **kw)
        with pytest.raises(ValueError, match="was wiped at .* until the partnership is removed"):
            await devices.wipe(store, BOB, "Android2", **kw)
        with pytest.raises(ValueError, match="was acknowledged at .* cannot be cancelled"):
            await devices.cancel_wipe(store, BOB, "Android2", **kw)
        with pytest.raises(ValueError, match="no wipe of Phone1 to cancel"):
            await devices.cancel_wipe(store, ALICE, "Phone1", **kw)
        # An account-only wipe, then a full one over it (an escalation is taken).
        assert (await devices.wipe(store, ALICE, "Phone1", account_only=True, **kw)).wipe == "account-pending"
        assert (await devices.wipe(store, ALICE, "Phone1", **kw)).wipe == "pending"
        # After a failed wipe, a new one is pending again.
        failed = await store.get_device(BOB, "Android1")
        assert failed is not None
        failed.wipe, failed.wipe_acknowledged = "failed", NOW
        await store.commit(failed, {})
        assert (await devices.wipe(store, BOB, "Android1", **kw)).wipe_acknowledged == 0.0
        # A wiped device's partnership can be removed (so that it may sync again).
        assert await devices.remove(store, BOB, "Android2", **kw)
        actions = [e.detail for e in reversed(await store.events(limit=100)) if e.action == "device.wipe"]
        assert actions == ["account only", "full, was account-pending", "full, was failed"]
        await store.close()

    run(scenario())


# -- through the real core -----------------------------------------------------------------------


async def synced_device(app: ActiveSync, version: str = "14.1", device_id: str = "PingPhone") -> tuple[Client, str]:
    """A provisioned device past FolderSync and the Inbox's initial Sync; its Inbox id."""
    c = client(app, version=version, device_id=device_id)
    await c.provision()
    r = await c.command("FolderSync", FOLDERSYNC)
    assert r.node is not None
    inbox = next(str(a.findtext(FH.ServerId)) for a in r.node.find(FH.Changes).findall(FH.Add)  # type: ignore[union-attr]
                 if a.findtext(FH.DisplayName) == "Inbox")
    r = await c.command("Sync", f'<Sync xmlns="AirSync:"><Collections><Collection><SyncKey>0</SyncKey>'
                                f"<CollectionId>{inbox}</CollectionId></Collection></Collections></Sync>")
    assert r.text(A.Collections, A.Collection, A.Status) == "1"
    return c, inbox


def ping_xml(heartbeat: int, inbox: str) -> str:
    return (f'<Ping xmlns="Ping:"><HeartbeatInterval>{heartbeat}</HeartbeatInterval><Folders><Folder>'
            f"<Id>{inbox}</Id><Class>Email</Class></Folder></Folders></Ping>")


async def waiting(app: ActiveSync, device_id: str) -> None:
    """Until the device's Ping is parked (no clock: the core's own registry of waits)."""
    while (ALICE, device_id) not in app._superseders:
        await asyncio.sleep(0.005)


def test_wipe_ordered_while_a_ping_waits(tmp_path: Path) -> None:
    """With wake: the Ping ends at once. Without: it ends at its (short) heartbeat, and
    its commit keeps the wipe (ADMIN_FIELDS). Either way the next request gets 140,
    Provision the directive, the acknowledgment is recorded, the device is wiped again
    on its next connection, and once removed it starts over as a new device."""

    async def scenario() -> None:
        app, _ = make_app(tmp_path, config=Config(min_heartbeat=1, max_heartbeat=30))
        c, inbox = await synced_device(app)
        ping = asyncio.create_task(c.command("Ping", ping_xml(30, inbox)))
        await asyncio.wait_for(waiting(app, c.device_id), 5)
        await devices.wipe(app.store, ALICE, c.device_id, actor="test", wake=app.end_user_waits)
        reply = await asyncio.wait_for(ping, 5)  # not the 30 s heartbeat
        assert reply.status == 200 and reply.text(Ping.Status) == "1"
        assert (await app.store.get_device(ALICE, c.device_id)).wipe == "pending"  # type: ignore[union-attr]
        assert (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "140"
        # Without a wake, over a 1 s heartbeat: the Ping's commit must not undo the wipe.
        c2, inbox2 = await synced_device(app, device_id="QuietPhone")
        ping = asyncio.create_task(c2.command("Ping", ping_xml(1, inbox2)))
        await asyncio.wait_for(waiting(app, c2.device_id), 5)
        await devices.wipe(app.store, ALICE, c2.device_id, actor="test")
        assert (await asyncio.wait_for(ping, 10)).text(Ping.Status) == "1"  # the heartbeat ran out
        assert (await app.store.get_device(ALICE, c2.device_id)).wipe == "pending"  # type: ignore[union-attr]
        # The wipe goes out and is acknowledged.
        directive = await c.command("Provision", '<Provision xmlns="Provision:"/>')
        assert directive.node is not None and [n.tag for n in directive.node.children] == [P.Status, P.RemoteWipe]
        ack = await c.command("Provision", '<Provision xmlns="Provision:"><RemoteWipe><Status>1</Status>'
                                           "</RemoteWipe></Provision>")
        assert ack.text(P.Status) == "1"
        details = await devices.device_details(app.store, ALICE, c.device_id)
        assert details.device.wipe == "wiped" and details.device.wipe_acknowledged > 0
        assert [e.action for e in details.history][:2] == ["device.wipe.acknowledged", "device.wipe"]
        # Connecting again with the same id: wiped again (and cancel is too late).
        c.policy_key = None
        assert (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "140"
        again = await c.command("Provision", '<Provision xmlns="Provision:"/>')
        assert again.node is not None and again.node.find(P.RemoteWipe) is not None
        with pytest.raises(ValueError, match="cannot be cancelled"):
            await devices.cancel_wipe(app.store, ALICE, c.device_id, actor="test")
        # Removed: a new device, which provisions and syncs.
        assert await devices.remove(app.store, ALICE, c.device_id, actor="test", wake=app.end_user_waits)
        assert (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "142"
        await c.provision()
        assert (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "1"
        assert (await app.store.get_device(ALICE, c.device_id)).wipe == ""  # type: ignore[union-attr]
        await app.store.close()

    run(scenario())


def test_account_only_wipe_and_cancel_in_process(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, _ = make_app(tmp_path)
        c, _ = await synced_device(app, version="16.1")
        await devices.wipe(app.store, ALICE, c.device_id, account_only=True, actor="test")
        assert (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "140"
        directive = await c.command("Provision", '<Provision xmlns="Provision:"/>')
        assert directive.node is not None and directive.node.find(P.AccountOnlyRemoteWipe) is not None
        assert directive.node.find(P.RemoteWipe) is None
        ack = await c.command("Provision", '<Provision xmlns="Provision:"><AccountOnlyRemoteWipe><Status>1</Status>'
                                           "</AccountOnlyRemoteWipe></Provision>")
        assert ack.text(P.Status) == "1"
        assert (await app.store.get_device(ALICE, c.device_id)).wipe == "account-wiped"  # type: ignore[union-attr]
        # A wipe cancelled before the device connects: nothing is delivered.
        c2, _ = await synced_device(app, version="16.1", device_id="Cancelled")
        await devices.wipe(app.store, ALICE, c2.device_id, actor="test")
        await devices.cancel_wipe(app.store, ALICE, c2.device_id, actor="test")
        assert (await c2.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "1"
        await app.store.close()

    run(scenario())


def test_suspend_and_resume_in_process(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, _ = make_app(tmp_path)
        for version, refused in (("14.1", (200, "129")), ("12.1", (403, None))):
            c, _ = await synced_device(app, version=version, device_id="Dev" + version.replace(".", ""))
            assert await devices.suspend(app.store, ALICE, c.device_id, actor="test", wake=app.end_user_waits)
            r = await c.command("FolderSync", FOLDERSYNC)
            assert (r.status, r.text(FH.Status)) == refused
            assert await devices.resume(app.store, ALICE, c.device_id, actor="test", wake=app.end_user_waits)
            r = await c.command("FolderSync", FOLDERSYNC)
            assert (r.status, r.text(FH.Status)) == (200, "1")
        await app.store.close()

    run(scenario())


def test_remove_or_reset_while_a_ping_waits_is_not_undone(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, _ = make_app(tmp_path, config=Config(min_heartbeat=1, max_heartbeat=30))
        c, inbox = await synced_device(app)
        ping = asyncio.create_task(c.command("Ping", ping_xml(30, inbox)))
        await asyncio.wait_for(waiting(app, c.device_id), 5)
        assert await devices.remove(app.store, ALICE, c.device_id, actor="test", wake=app.end_user_waits)
        await asyncio.wait_for(ping, 5)
        assert await app.store.get_device(ALICE, c.device_id) is None
        assert await app.store.load(ALICE, c.device_id, "hierarchy") is None
        # A reset while a Ping waits: the Ping's commit writes none of the state back.
        c2, inbox2 = await synced_device(app, device_id="ResetPhone")
        ping = asyncio.create_task(c2.command("Ping", ping_xml(30, inbox2)))
        await asyncio.wait_for(waiting(app, c2.device_id), 5)
        assert await devices.reset(app.store, ALICE, c2.device_id, actor="test", wake=app.end_user_waits)
        await asyncio.wait_for(ping, 5)
        for key in ("hierarchy", "cache", "collection:" + inbox2):
            assert await app.store.load(ALICE, c2.device_id, key) is None, key
        assert (await c2.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>1</SyncKey>'
                                               "</FolderSync>")).text(FH.Status) == "9"  # start over
        await app.store.close()

    run(scenario())


# -- simulated sync --------------------------------------------------------------------------------


def event(n: int) -> str:
    return (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:event-{n}@example.com\r\n"
            f"DTSTAMP:20240101T000000Z\r\nDTSTART:202403{n + 1:02d}T090000Z\r\nDTEND:202403{n + 1:02d}T100000Z\r\n"
            f"SUMMARY:Meeting {n}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def contact(n: int) -> str:
    return f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:contact-{n}\r\nFN:Person {n}\r\nN:{n};Person;;;\r\nEND:VCARD\r\n"


def task(n: int) -> str:
    return (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VTODO\r\nUID:task-{n}\r\n"
            f"DTSTAMP:20240101T000000Z\r\nSUMMARY:Task {n}\r\nEND:VTODO\r\nEND:VCALENDAR\r\n")


def filled(tmp_path: Path) -> tuple[ActiveSync, ReferenceStore, list[str]]:
    """Alice's store: 7 mails (unread), 5 events, 4 contacts, 2 tasks, no notes."""
    app, store = make_app(tmp_path)
    for n in range(7):
        store.deliver(ALICE, f"From: bob@example.com\r\nTo: {ALICE}\r\nSubject: mail {n}\r\n\r\nbody {n}\r\n".encode())
    events = store.import_items(ALICE, "Calendar", [event(n) for n in range(5)])
    store.import_items(ALICE, "Contacts", [contact(n) for n in range(4)])
    store.import_items(ALICE, "Tasks", [task(n) for n in range(2)])
    return app, store, events


def dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


async def real_state(app: ActiveSync) -> list[Any]:
    out: list[Any] = []
    for d in await app.store.list_devices():
        out.append(d.to_json())
        for key in ("hierarchy", "cache"):
            out.append(await app.store.load(d.user, d.device_id, key))
    return out


def test_simulated_sync_counts_match_the_store_and_change_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store, _ = filled(tmp_path)
        await synced_device(app)  # a real device of alice's, whose state must not move
        state_before, mail_before = await real_state(app), dump(tmp_path / "mail.db")
        events_before = len(await app.store.events(limit=1000))
        expected = {"Inbox": 7, "Calendar": 5, "Contacts": 4, "Tasks": 2, "Notes": 0, "Drafts": 0}
        for version, window in (("16.1", 3), ("14.1", 100), ("12.1", 2), ("2.5", 4)):
            report = await devices.simulate_sync(app, ALICE, version=version, window=window)
            assert report.ok, report
            got = {f.name: f.items for f in report.folders}
            for name, count in expected.items():
                if name == "Notes" and version in ("12.1", "2.5"):
                    assert name not in got  # Notes from 14.0
                else:
                    assert got[name] == count, (version, name, got)
            classes = {f.name: f.item_class for f in report.folders}
            assert classes["Calendar"] == "Calendar" and classes["Inbox"] == "Email"
            assert all(f.bytes > 0 and f.seconds >= 0 for f in report.folders)
            inbox = next(f for f in report.folders if f.name == "Inbox")
            assert inbox.bytes > 7 * 20  # seven mails' worth of WBXML
        assert await real_state(app) == state_before
        assert dump(tmp_path / "mail.db") == mail_before  # nothing marked read, nothing written
        assert "EASSimulation" not in [d.device_id for d in await app.store.list_devices()]
        assert len(await app.store.events(limit=1000)) == events_before
        assert store._watchers == [app.notify]  # no watcher left behind on the real store
        await app.store.close()

    run(scenario())


def test_simulated_sync_names_a_broken_item(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, _, events = filled(tmp_path)
        broken = events[2]
        with sqlite3.connect(tmp_path / "mail.db") as conn:
            conn.execute("UPDATE items SET data = ? WHERE id = ?", ("BEGIN:VCALENDAR\r\nthis is not\r\n", int(broken)))
        report = await devices.simulate_sync(app, ALICE, window=100)
        assert not report.ok
        calendar = next(f for f in report.folders if f.name == "Calendar")
        # The Sync handler skips the unreadable item (the others arrive) and records it.
        assert [(f.what, f.item_id) for f in calendar.failures] == [("skipped", broken)], calendar.failures
        assert "could not read it" in calendar.failures[0].detail
        assert calendar.items == 4
        assert all(not f.failures for f in report.folders if f.name != "Calendar")
        assert {f.name: f.items for f in report.folders}["Contacts"] == 4
        # One at a time: the same.
        report = await devices.simulate_sync(app, ALICE, window=1)
        calendar = next(f for f in report.folders if f.name == "Calendar")
        assert calendar.items == 4 and [(f.what, f.item_id) for f in calendar.failures] == [("skipped", broken)]
        await app.store.close()

    run(scenario())


def test_simulated_sync_bad_input(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, _ = make_app(tmp_path)
        with pytest.raises(KeyError):
            await devices.simulate_sync(app, "nobody@example.com")
        for kw in ({"version": "17.0"}, {"version": ""}, {"window": 0}, {"window": 513}):
            with pytest.raises(ValueError):
                await devices.simulate_sync(app, ALICE, **kw)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await devices.simulate_sync(app, "not an account")
        await app.store.close()

    run(scenario())
