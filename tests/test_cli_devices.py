"""``eas device`` against a running ``eas serve`` over real HTTP: a wipe ordered while
the device's Ping waits ends that Ping at once, the next request gets status 140 (449 in
12.1), Provision carries RemoteWipe (AccountOnlyRemoteWipe in 16.1), the acknowledgment
shows in ``eas device show`` with its time; a wipe cancelled before the device connects
delivers nothing; suspend gives 129 (403 in 12.1) and resume lets it sync; list filters
and JSON; unknown names exit 2; simulate prints its table and exits 1 on a broken item."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from eas.state.sqlite import SQLiteStateStore
from eas.store import ReferenceStore
from eas.tags import AirSync as A
from eas.tags import FolderHierarchy as FH
from eas.tags import Ping
from eas.tags import Provision as P
from eas.testing.client import Client, HTTPTransport
from tests.test_cli_server import eas, serving

pytestmark = pytest.mark.kernel_independent

ALICE = "alice@example.com"
FOLDERSYNC = '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>'


async def synced(transport: HTTPTransport, device_id: str, version: str) -> tuple[Client, str]:
    """A device that provisioned, did FolderSync and the Inbox's first Sync; its Inbox."""
    c = Client(transport, ALICE, "pw", device_id=device_id, version=version)
    assert (await c.command("FolderSync", FOLDERSYNC)).status in (200, 449)
    await c.provision()
    r = await c.command("FolderSync", FOLDERSYNC)
    assert r.text(FH.Status) == "1" and r.node is not None
    inbox = next(str(a.findtext(FH.ServerId)) for a in r.node.find(FH.Changes).findall(FH.Add)  # type: ignore[union-attr]
                 if a.findtext(FH.DisplayName) == "Inbox")
    r = await c.command("Sync", f'<Sync xmlns="AirSync:"><Collections><Collection><SyncKey>0</SyncKey>'
                                f"<CollectionId>{inbox}</CollectionId></Collection></Collections></Sync>")
    assert r.text(A.Collections, A.Collection, A.Status) == "1"
    return c, inbox


async def command(data: Path, *args: str) -> Any:
    return await asyncio.to_thread(eas, "device", *args, data_dir=data)


async def last_seen(data: Path, device_id: str) -> float:
    store = SQLiteStateStore(data / "state.db")
    try:
        record = await store.get_device(ALICE, device_id)
        return record.last_seen if record is not None else 0.0
    finally:
        await store.close()


async def ping_ended_by(data: Path, c: Client, inbox: str, *order: str) -> tuple[Any, float]:
    """Park a Ping of 300 s, run ``eas device ORDER``; the Ping's reply and how long it
    lasted once the order was given."""
    before = time.time()
    ping = asyncio.create_task(c.command("Ping", f'<Ping xmlns="Ping:"><HeartbeatInterval>300</HeartbeatInterval>'
                                                 f"<Folders><Folder><Id>{inbox}</Id><Class>Email</Class></Folder>"
                                                 "</Folders></Ping>"))
    deadline = time.monotonic() + 10
    while await last_seen(data, c.device_id) < before and time.monotonic() < deadline:  # it committed: parked
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    done = await command(data, *order)
    assert done.returncode == 0, done.stderr
    ordered = time.monotonic()
    reply = await asyncio.wait_for(ping, 30)
    return reply, time.monotonic() - ordered


def test_wipe_suspend_and_cancel_over_http(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert eas("user", "add", ALICE, "--password", "pw", data_dir=data).returncode == 0
    with serving(data, "--no-tls") as server:
        transport = HTTPTransport(f"http://127.0.0.1:{server.port}")

        async def scenario() -> None:
            # A full wipe ordered while the device's Ping waits.
            c, inbox = await synced(transport, "WipeMe141", "14.1")
            reply, lasted = await ping_ended_by(data, c, inbox, "wipe", ALICE, c.device_id)
            assert reply.status == 200 and reply.text(Ping.Status) == "1" and lasted < 10
            assert (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "140"
            directive = await c.command("Provision", '<Provision xmlns="Provision:"/>')
            assert directive.node is not None and [n.tag for n in directive.node.children] == [P.Status, P.RemoteWipe]
            ack = await c.command("Provision", '<Provision xmlns="Provision:"><RemoteWipe><Status>1</Status>'
                                               "</RemoteWipe></Provision>")
            assert ack.text(P.Status) == "1"
            shown = await command(data, "show", ALICE, c.device_id)
            assert shown.returncode == 0
            assert b"wipe:             wiped, requested 20" in shown.stdout and b", acknowledged 20" in shown.stdout
            shown = json.loads((await command(data, "show", ALICE, c.device_id, "--json")).stdout)
            assert shown["device"]["wipe"] == "wiped" and shown["device"]["wipe_acknowledged"] > 0
            assert [e["action"] for e in shown["history"]][:2] == ["device.wipe.acknowledged", "device.wipe"]
            # 12.1: the next request is 449 after the wipe.
            old, _ = await synced(transport, "WipeMe121", "12.1")
            assert (await command(data, "wipe", ALICE, old.device_id)).returncode == 0
            assert (await old.command("FolderSync", FOLDERSYNC)).status == 449
            # Account-only: 16.1 only.
            new, inbox16 = await synced(transport, "AccountOnly161", "16.1")
            refused = await command(data, "wipe", ALICE, "WipeMe141", "--account-only")
            assert refused.returncode == 2 and b"16.1" in refused.stderr
            reply, lasted = await ping_ended_by(data, new, inbox16, "wipe", ALICE, new.device_id, "--account-only")
            assert reply.text(Ping.Status) == "1" and lasted < 10
            assert (await new.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "140"
            directive = await new.command("Provision", '<Provision xmlns="Provision:"/>')
            assert directive.node is not None and directive.node.find(P.AccountOnlyRemoteWipe) is not None
            ack = await new.command("Provision", '<Provision xmlns="Provision:"><AccountOnlyRemoteWipe><Status>1'
                                                 "</Status></AccountOnlyRemoteWipe></Provision>")
            assert ack.text(P.Status) == "1"
            shown = await command(data, "show", ALICE, new.device_id)
            assert b"wipe:             account-wiped, requested" in shown.stdout
            # Cancelled before the device connects: nothing delivered.
            kept, _ = await synced(transport, "Cancelled", "16.1")
            assert (await command(data, "wipe", ALICE, kept.device_id)).returncode == 0
            assert (await command(data, "cancel-wipe", ALICE, kept.device_id)).returncode == 0
            r = await kept.command("FolderSync", FOLDERSYNC)
            assert r.text(FH.Status) == "1" and b"RemoteWipe" not in r.body
            late = await command(data, "cancel-wipe", ALICE, "WipeMe141")
            assert late.returncode == 2 and b"cannot be cancelled" in late.stderr
            # Suspend (ending a waiting Ping), refused with 129 / 403; resume syncs again.
            paused, inbox_p = await synced(transport, "Paused141", "14.1")
            reply, lasted = await ping_ended_by(data, paused, inbox_p, "suspend", ALICE, paused.device_id)
            assert reply.status == 200 and lasted < 10
            assert (await paused.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "129"
            paused121, _ = await synced(transport, "Paused121", "12.1")
            assert (await command(data, "suspend", ALICE, paused121.device_id)).returncode == 0
            assert (await paused121.command("FolderSync", FOLDERSYNC)).status == 403
            for device in (paused, paused121):
                assert (await command(data, "resume", ALICE, device.device_id)).returncode == 0
                r = await device.command("FolderSync", FOLDERSYNC)
                assert (r.status, r.text(FH.Status)) == (200, "1")
            # The list, filtered.
            listed = await command(data, "list", "--user", ALICE, "--state", "wiped")
            assert listed.returncode == 0
            assert {line.split()[1] for line in listed.stdout.decode().splitlines()[1:]} == {
                "WipeMe141", "AccountOnly161"}
            rows = json.loads((await command(data, "list", "--state", "wipe-pending", "--json")).stdout)
            assert [(r["device_id"], r["state"]) for r in rows] == [("WipeMe121", "wipe-pending")]
            assert (await command(data, "list", "--not-seen-within", "1")).stdout.strip() == b"no devices"
            # Removing a device with a wipe pending is refused; unknown names exit 2.
            refused = await command(data, "remove", ALICE, "WipeMe121")
            assert refused.returncode == 2 and b"pending" in refused.stderr
            for args in (("wipe", ALICE, "Nope"), ("show", "nobody@example.com", "X"), ("suspend", "bad name", "X"),
                         ("remove", ALICE, "Nope"), ("list", "--state", "asleep"), ("show", ALICE, "a/b")):
                bad = await command(data, *args)
                assert bad.returncode == 2 and bad.stderr.count(b"\n") == 1, (args, bad.stderr)
            # Removing the wiped one lets it start over as a new device.
            assert (await command(data, "remove", ALICE, "WipeMe141")).returncode == 0
            c.policy_key = None
            assert (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "142"

        asyncio.run(scenario())
    assert server.process.returncode == 0, server.stderr


def test_simulate_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert eas("user", "add", ALICE, "--password", "pw", data_dir=data).returncode == 0
    store = ReferenceStore(data / "mail.db")
    for n in range(3):
        store.deliver(ALICE, f"From: bob@example.com\r\nTo: {ALICE}\r\nSubject: m{n}\r\n\r\nhello\r\n".encode())
    text = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:e1\r\n"
            "DTSTAMP:20240101T000000Z\r\nDTSTART:20240301T090000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    [event] = store.import_items(ALICE, "Calendar", [text])
    store.close()
    good = eas("device", "simulate", ALICE, "--version", "14.1", data_dir=data)
    assert good.returncode == 0, good.stderr
    lines = good.stdout.decode().splitlines()
    assert lines[0].startswith(f"simulated sync of {ALICE} as a 14.1 device (window 100): 9 folders, 4 items")
    inbox = next(line.split() for line in lines if line.startswith("Inbox "))
    assert inbox[1:3] == ["Email", "3"] and inbox[-1] == "ok"
    with sqlite3.connect(data / "mail.db") as conn:
        conn.execute("UPDATE items SET data = 'BEGIN:VCALENDAR' WHERE id = ?", (int(event),))
    broken = eas("device", "simulate", ALICE, data_dir=data)
    assert broken.returncode == 1
    assert f"Calendar: item {event} skipped: the backend could not read it".encode() in broken.stdout
    assert eas("device", "simulate", "nobody@example.com", data_dir=data).returncode == 2
    assert eas("device", "simulate", ALICE, "--version", "9.9", data_dir=data).returncode == 2
    assert eas("device", "simulate", ALICE, "--window", "0", data_dir=data).returncode == 2
    assert eas("device", "simulate", ALICE, data_dir=tmp_path / "empty").returncode == 2
