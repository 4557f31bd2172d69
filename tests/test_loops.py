"""Loop detection (eas.loops): a device that keeps repeating the SyncKey of a response
that carried items gets a smaller window, then one item at a time, then the item it keeps
choking on is skipped and recorded for the admin; the sync goes on without SyncKey 0."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_cli_server import eas
from test_sync import ALICE, Device, cheap_scrypt, coll, collection, commands, device, message, run

from eas.backend import EmailChange
from eas.config import Config
from eas.loops import skipped_items
from eas.state.model import DeviceRecord
from eas.tags import AirSync as A
from eas.tags import GetItemEstimate as G

__all__ = ["cheap_scrypt"]
WINDOW = 8


async def window_sync(dev: Device, key: str) -> tuple[str, list[str], bool]:
    """A Sync of the Inbox at ``key`` with WindowSize 8: the new key, the Add ServerIds,
    MoreAvailable."""
    reply = await dev.sync(coll(dev.folders["Inbox"], key, f"<WindowSize>{WINDOW}</WindowSize>"))
    assert reply.node is not None, f"empty response at {key}"
    c = collection(reply, dev.folders["Inbox"])
    assert c.findtext(A.Status) == "1", reply.xml
    return str(c.findtext(A.SyncKey)), [sid for kind, sid, _ in commands(c) if kind == "Add"], \
        c.find(A.MoreAvailable) is not None


async def looping_device(tmp_path: Path, version: str = "14.1", mails: int = 20,
                         config: Config | None = None) -> tuple[Device, str]:
    dev = await device(tmp_path, version, config=config)
    for n in range(mails):
        dev.store.deliver(ALICE, message(n))
    return dev, await dev.initial()


async def device_record(dev: Device) -> DeviceRecord:
    record = await dev.app.store.get_device(ALICE, dev.client.device_id)
    assert record is not None
    return record


def test_the_loop_is_narrowed_down_and_the_item_skipped(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev, key = await looping_device(tmp_path)
        _, first, more = await window_sync(dev, key)
        assert len(first) == WINDOW and more
        # The device never takes the response: it sends the same key again and again.
        _, replay, _ = await window_sync(dev, key)
        assert replay == first  # once is a lost response: the same window again
        _, shrunk, more = await window_sync(dev, key)
        assert len(shrunk) == WINDOW // 4 and shrunk == first[:len(shrunk)] and more
        alone = []
        for _ in range(3):  # sent alone, and the device loops on it three times
            _, got, more = await window_sync(dev, key)
            assert len(got) == 1 and more
            alone.append(got[0])
        assert alone == [first[0]] * 3
        assert await skipped_items(dev.app.store, ALICE, dev.client.device_id) == []
        new_key, got, more = await window_sync(dev, key)  # the fourth repeat: skipped
        broken = first[0]
        assert got == [first[1]] and more and new_key != "0"
        records = await skipped_items(dev.app.store, ALICE, dev.client.device_id)
        assert [(r["server_id"], r["kind"], r["class"], r["collection_id"]) for r in records] == [
            (broken, "Add", "Email", dev.folders["Inbox"])]
        # The admin sees it with `eas device skipped` (another process, the server running).
        shown = eas("device", "skipped", ALICE, data_dir=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert f"{dev.client.device_id} (" in shown.stdout.decode() and "1 skipped" in shown.stdout.decode()
        assert f"Email Add {broken} " in shown.stdout.decode()
        assert eas("device", "skipped", ALICE, "NoSuchDevice", data_dir=tmp_path).returncode == 2
        # The device takes it from here: one at a time until it has caught up, the broken
        # mail never again, and never SyncKey 0.
        key = new_key
        received = set(got)
        while more:
            key, got, more = await window_sync(dev, key)
            assert len(got) == 1
            received.update(got)
        assert broken not in received and len(received) == 19
        # Caught up: a new mail comes back to normal windows, nothing pending for the others.
        for n in range(20, 30):
            dev.store.deliver(ALICE, message(n))
        key, got, more = await window_sync(dev, key)
        assert len(got) == WINDOW and more and broken not in got
        key, got, more = await window_sync(dev, key)
        assert len(got) == 2 and not more
        reply = await dev.sync(coll(dev.folders["Inbox"], key))
        assert reply.node is None  # 14.1: nothing to say
    run(scenario)


def test_a_skipped_item_goes_out_again_when_it_changes(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev, key = await looping_device(tmp_path, mails=3)
        _, first, _ = await window_sync(dev, key)
        for _ in range(5):
            await window_sync(dev, key)
        key, got, more = await window_sync(dev, key)
        assert first[0] not in got
        while more:
            key, got, more = await window_sync(dev, key)
        # Nothing pending for a skipped item: GetItemEstimate counts 0, Sync is quiet.
        estimate = await dev.client.command("GetItemEstimate", (
            f'<GetItemEstimate xmlns="GetItemEstimate:" xmlns:a="AirSync:"><Collections><Collection>'
            f'<a:SyncKey>{key}</a:SyncKey><CollectionId>{dev.folders["Inbox"]}</CollectionId>'
            f'</Collection></Collections></GetItemEstimate>'))
        assert estimate.node is not None and estimate.node.findtext(G.Response, G.Collection, G.Estimate) == "0"
        assert (await dev.sync(coll(dev.folders["Inbox"], key))).node is None
        # It changes on the server: it goes out again, as an Add (the device never had it).
        item = first[0].split(":", 1)[1]
        await dev.store.change_email(ALICE, dev.backend["Inbox"], item, EmailChange(read=True))
        reply = await dev.sync(coll(dev.folders["Inbox"], key))
        c = collection(reply, dev.folders["Inbox"])
        assert [(kind, sid) for kind, sid, _ in commands(c)] == [("Add", first[0])]
        assert await skipped_items(dev.app.store, ALICE, dev.client.device_id) == []
        key = str(c.findtext(A.SyncKey))
        assert (await dev.sync(coll(dev.folders["Inbox"], key))).node is None
    run(scenario)


def test_a_skipped_item_deleted_is_not_deleted_on_the_device(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev, key = await looping_device(tmp_path, mails=2)
        _, first, _ = await window_sync(dev, key)
        for _ in range(6):
            key2, got, more = await window_sync(dev, key)
        assert first[0] not in got
        key = key2
        while more:
            key, got, more = await window_sync(dev, key)
        item = first[0].split(":", 1)[1]
        await dev.store.delete_item(ALICE, dev.backend["Inbox"], item, permanently=True)
        reply = await dev.sync(coll(dev.folders["Inbox"], key))
        if reply.node is not None:  # the key may move on, but no Delete of what it never had
            assert commands(collection(reply, dev.folders["Inbox"])) == []
        assert await skipped_items(dev.app.store, ALICE, dev.client.device_id) == []
    run(scenario)


def test_one_lost_response_is_no_loop(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev, key = await looping_device(tmp_path)
        _, first, _ = await window_sync(dev, key)
        key, again, more = await window_sync(dev, key)
        assert again == first and more
        key, got, more = await window_sync(dev, key)  # it went through: full windows go on
        assert len(got) == WINDOW and not set(got) & set(first)
        record = await device_record(dev)
        assert record.skipped_items == []
    run(scenario)


def test_progress_while_narrowed_keeps_one_at_a_time_until_caught_up(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev, key = await looping_device(tmp_path, mails=12)
        for _ in range(4):  # sent, replayed, shrunk, one item
            _, got, _ = await window_sync(dev, key)
        assert len(got) == 1  # narrowed to one item
        sizes = []
        more = True
        while more:  # the device now takes every response
            key, got, more = await window_sync(dev, key)
            sizes.append(len(got))
        assert sizes == [1] * 12  # the single item again, then the other eleven one by one
        dev.store.deliver(ALICE, message(99))
        dev.store.deliver(ALICE, message(98))
        key, got, more = await window_sync(dev, key)
        assert len(got) == 2 and not more  # back to normal
        assert (await device_record(dev)).skipped_items == []
    run(scenario)


def test_loop_detection_off(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev, key = await looping_device(tmp_path, config=Config(loop_detection=False))
        _, first, _ = await window_sync(dev, key)
        for _ in range(7):
            _, got, _ = await window_sync(dev, key)
            assert got == first
        assert await skipped_items(dev.app.store, ALICE, dev.client.device_id) == []
    run(scenario)


@pytest.mark.parametrize("version", ["12.1", "16.1"])
def test_a_full_resync_forgets_the_records(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev, key = await looping_device(tmp_path, version, mails=2)
        for _ in range(7):
            await window_sync(dev, key)
        assert len(await skipped_items(dev.app.store, ALICE, dev.client.device_id)) == 1
        await dev.initial()  # SyncKey 0: everything goes out again
        assert await skipped_items(dev.app.store, ALICE, dev.client.device_id) == []
    run(scenario)


def test_device_records_of_before_load_without_skipped_items() -> None:
    old = '{"user":"a@example.com","device_id":"D1","device_type":"iPhone","access":"allowed"}'
    record = DeviceRecord.from_json(old)
    assert record.skipped_items == []
    record.skipped_items.append({"collection_id": "1", "item_id": "5"})
    assert DeviceRecord.from_json(record.to_json()).skipped_items == [{"collection_id": "1", "item_id": "5"}]


def test_skipped_items_of_an_unknown_device(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "14.1")
        assert await skipped_items(dev.app.store, ALICE, "NoSuchDevice") == []
    asyncio.run(scenario())


def test_a_contact_that_breaks_the_device(tmp_path: Path) -> None:
    """The same for any class: the record names it."""
    from eas.items.contacts import Contact

    async def scenario() -> None:
        dev = await device(tmp_path, "16.1")
        folder, cid = dev.backend["Contacts"], dev.folders["Contacts"]
        for n in range(3):
            await dev.store.add_item(ALICE, folder, Contact(first_name=f"P{n}"))
        key = await dev.initial("Contacts")
        seen = []
        for _ in range(7):  # sent, replay, shrink, alone x3, skipped
            reply = await dev.sync(coll(cid, key, "<WindowSize>8</WindowSize>"))
            c = collection(reply, cid)
            assert c.findtext(A.Status) == "1"
            seen.append([sid for _, sid, _ in commands(c)])
        assert [len(s) for s in seen] == [3, 3, 2, 1, 1, 1, 1]
        assert seen[6][0] != seen[5][0]
        records = await skipped_items(dev.app.store, ALICE, dev.client.device_id)
        assert [(r["server_id"], r["class"]) for r in records] == [(seen[5][0], "Contacts")]
    run(scenario)


def test_an_item_the_backend_cannot_read_is_skipped_not_a_broken_folder(tmp_path: Path) -> None:
    """A stored event whose text no longer parses: the Sync still answers (status 1,
    the other events, MoreAvailable as it should), the item is recorded for the admin
    with the error, and once the item is mended it goes out."""
    import sqlite3

    from eas.items.calendar import Calendar

    async def scenario() -> None:
        dev = await device(tmp_path, "14.1")
        folder, cid = dev.backend["Calendar"], dev.folders["Calendar"]
        ids = [(await dev.store.add_item(ALICE, folder, Calendar(subject=f"E{n}")))[0] for n in range(4)]
        with sqlite3.connect(tmp_path / "mail.db") as conn:
            conn.execute("UPDATE items SET data = 'BEGIN:VCALENDAR' WHERE id = ?", (int(ids[1]),))
        key = await dev.initial("Calendar")
        got: list[str] = []
        for window in (2, 2, 2):
            reply = await dev.sync(coll(cid, key, f"<WindowSize>{window}</WindowSize>"))
            if reply.node is None:
                break
            c = collection(reply, cid)
            assert c.findtext(A.Status) == "1", reply.xml
            key = str(c.findtext(A.SyncKey))
            got += [sid for _, sid, _ in commands(c)]
        assert len(got) == 3 and not any(sid.endswith(f":{ids[1]}") for sid in got)
        records = await skipped_items(dev.app.store, ALICE, dev.client.device_id)
        assert [r["item_id"] for r in records] == [ids[1]]
        assert "could not read it" in records[0]["reason"]
        await dev.store.change_item(ALICE, folder, ids[1], Calendar(subject="mended"))
        reply = await dev.sync(coll(cid, key, "<WindowSize>8</WindowSize>"))
        c = collection(reply, cid)
        assert [(kind, sid) for kind, sid, _ in commands(c)] == [("Add", f"{cid}:{ids[1]}")]
        assert await skipped_items(dev.app.store, ALICE, dev.client.device_id) == []
    run(scenario)
