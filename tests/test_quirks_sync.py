"""Recorded request sequences of real clients that broke other ActiveSync servers, replayed
through the in-process client:

- iOS Mail sends a second initial Sync (SyncKey 0) of a folder while the first is still in
  flight, or shortly after it went on with the first one's key; servers that let the second
  one replace the first sent everything twice, answered the first path with status 3, or
  took the repeats for a loop and fell back to one item at a time (Z-Push PR 186).
- A Gmail-like client runs FolderSync with SyncKey 0 (its hierarchy restart) and then
  re-runs the Sync it had going, with the keys it had: a server that drops collection state
  on a hierarchy restart answers status 3 and the client downloads the mailbox again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_sync import ALICE, NS, Device, cheap_scrypt, coll, collection, commands, device, message, run

from eas.loops import skipped_items
from eas.tags import AirSync as A
from eas.tags import FolderHierarchy as FH

__all__ = ["cheap_scrypt"]


def inbox_sync(cid: str, key: str, window: int = 5) -> str:
    return f"<Sync {NS}><Collections>{coll(cid, key, f'<WindowSize>{window}</WindowSize>')}</Collections></Sync>"


async def drain(dev: Device, cid: str, key: str) -> tuple[str, list[str]]:
    """Sync on from ``key`` until nothing more comes: the last key, the ServerIds added."""
    added: list[str] = []
    for _ in range(30):
        reply = await dev.send(inbox_sync(cid, key))
        if reply.node is None:
            return key, added
        c = collection(reply, cid)
        assert c.findtext(A.Status) == "1", reply.xml
        added += [sid for kind, sid, _ in commands(c) if kind == "Add"]
        key = str(c.findtext(A.SyncKey))
        if c.find(A.MoreAvailable) is None:
            return key, added
    raise AssertionError("never settled")


@pytest.mark.parametrize("keep", ["first", "second"])
def test_ios_two_initial_syncs_in_flight(tmp_path: Path, keep: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "16.1")
        for n in range(12):
            dev.store.deliver(ALICE, message(n))
        cid = dev.folders["Inbox"]
        first, second = await asyncio.gather(dev.send(inbox_sync(cid, "0")), dev.send(inbox_sync(cid, "0")))
        keys = []
        for reply in (first, second):
            c = collection(reply, cid)
            assert c.findtext(A.Status) == "1" and not commands(c)
            keys.append(str(c.findtext(A.SyncKey)))
        assert len(set(keys)) == 2 and "0" not in keys
        # Whichever response the device kept, it goes on from there: every mail once.
        _, added = await drain(dev, cid, keys[0] if keep == "first" else keys[1])
        assert len(added) == 12 and len(set(added)) == 12
        assert await skipped_items(dev.app.store, ALICE, dev.client.device_id) == []
    run(scenario)


def test_ios_second_initial_sync_after_the_first_went_on(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "14.1")
        for n in range(12):
            dev.store.deliver(ALICE, message(n))
        cid = dev.folders["Inbox"]
        c = collection(await dev.send(inbox_sync(cid, "0")), cid)
        key = str(c.findtext(A.SyncKey))
        c = collection(await dev.send(inbox_sync(cid, key)), cid)
        batch = [sid for _, sid, _ in commands(c)]
        key = str(c.findtext(A.SyncKey))
        assert len(batch) == 5
        # The late duplicate initial Sync; its response is dropped by the device, which
        # goes on with the key it had: the rest comes, nothing twice, full windows.
        late = collection(await dev.send(inbox_sync(cid, "0")), cid)
        assert late.findtext(A.Status) == "1" and late.findtext(A.SyncKey) not in ("0", key)
        sizes = []
        added: list[str] = []
        more = True
        while more:
            c = collection(await dev.send(inbox_sync(cid, key)), cid)
            assert c.findtext(A.Status) == "1"
            got = [sid for kind, sid, _ in commands(c) if kind == "Add"]
            sizes.append(len(got))
            added += got
            key, more = str(c.findtext(A.SyncKey)), c.find(A.MoreAvailable) is not None
        assert sizes == [5, 2] and not set(added) & set(batch) and len(set(added)) == 7
        assert await skipped_items(dev.app.store, ALICE, dev.client.device_id) == []
    run(scenario)


@pytest.mark.parametrize("version", ["12.1", "14.1", "16.1"])
def test_sync_rerun_after_foldersync_0(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        for n in range(4):
            dev.store.deliver(ALICE, message(n))
        cid = dev.folders["Inbox"]
        key = await dev.initial()
        key, added = await drain(dev, cid, key)
        assert len(added) == 4
        dev.store.deliver(ALICE, message(99))
        # Hierarchy restart: the same folders under the same ids.
        r = await dev.client.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey>'
                                                   '</FolderSync>')
        assert r.node is not None and r.node.findtext(FH.Status) == "1"
        again = {str(a.findtext(FH.DisplayName)): str(a.findtext(FH.ServerId))
                 for a in r.node.find(FH.Changes).findall(FH.Add)}  # type: ignore[union-attr]
        assert again == dev.folders
        # The Sync it had going, with its key: only what is new comes, no status 3.
        reply = await dev.send(inbox_sync(cid, key))
        c = collection(reply, cid)
        assert c.findtext(A.Status) == "1"
        new = [sid for kind, sid, _ in commands(c) if kind == "Add"]
        assert len(new) == 1 and new[0] not in added
        # And an empty Sync (12.1+: the cached request) right after a second restart.
        key = str(c.findtext(A.SyncKey))
        await dev.client.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey>'
                                               '</FolderSync>')
        dev.store.deliver(ALICE, message(100))
        reply = await dev.send(None)
        c = collection(reply, cid)
        assert c.findtext(A.Status) == "1" and len(commands(c)) == 1
    run(scenario)
