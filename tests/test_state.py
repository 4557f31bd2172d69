"""The StateStore contract, run against every engine (memory, SQLite), plus what only the
SQLite engine promises: atomic commits, persistence, several store objects (processes) on
one file, versioned schema, and StateError instead of driver errors for bad files."""

from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eas.protocol.errors import StateError
from eas.state.memory import MemoryStateStore
from eas.state.model import CollectionState, DeviceRecord, FolderEntry, HierarchyState
from eas.state.session import DeviceState
from eas.state.sqlite import SCHEMA_VERSION, SQLiteStateStore
from eas.state.store import StateStore

pytestmark = pytest.mark.kernel_independent

ENGINES = ["memory", "sqlite"]


@pytest.fixture(params=ENGINES)
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], StateStore]:
    """A factory of store objects over one place: the SQLite ones share ``state.db``."""
    if request.param == "memory":
        memory = MemoryStateStore()
        return lambda: memory
    return lambda: SQLiteStateStore(tmp_path / "state.db")


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def device(user: str = "alice@example.com", device_id: str = "Dev1", **kw: object) -> DeviceRecord:
    return DeviceRecord(user=user, device_id=device_id, **kw)  # type: ignore[arg-type]


def sample_hierarchy(h: HierarchyState | None = None) -> HierarchyState:
    """Fills ``h`` (a new one by default) with a known hierarchy."""
    h = h if h is not None else HierarchyState()
    h.sync_key, h.previous_key = 3, 2
    for backend_id, name, parent, ftype in (("inbox", "Inbox", "0", 2), ("sub", "Ünïcødé 'quoted'", "1", 12)):
        sid = h.server_id(backend_id)
        h.folders[sid] = FolderEntry(sid, parent, name, ftype, backend_id)
    h.previous_folders = {"1": FolderEntry("1", "0", "Inbox", 2, "inbox")}
    return h


def sample_collection(cid: str = "1") -> CollectionState:
    c = CollectionState(cid, "inbox", sync_key=4, snapshot={"a": "1", "b": "2"}, client_ids={"c1": f"{cid}:a"},
                        options={"class": "Email", "filter_type": 3, "body": [{"type": 2, "size": 5120}]},
                        extra={"pending": ["x", "y"]})
    c.advance()
    c.snapshot["c"] = "9"
    return c


# -- the contract, every engine -----------------------------------------------------------


def test_device_record_round_trip(new_store: Callable[[], StateStore]) -> None:
    async def scenario() -> None:
        store = new_store()
        record = device(device_type="iPhone", user_agent="Apple-iPhone/1", protocol_version="16.1", model="X",
                        imei="3556", friendly_name="Bob's \"phone\" ✓", policy_key=123456789, pending_policy_key=7,
                        policy_status=1, policy_hash="abc", wipe="pending", wipe_requested=12.5, access="quarantined",
                        access_reason="admin", suspended=True, enable_outbound_sms=True, last_seen=1000.25)
        assert await store.get_device(record.user, record.device_id) is None
        await store.commit(record, {})
        got = await store.get_device(record.user, record.device_id)
        assert got == record
        assert got is not record
        record.access = "allowed"
        record.last_seen = 2000.0
        await store.commit(record, {})
        got = await store.get_device(record.user, record.device_id)
        assert got is not None and got.access == "allowed" and got.last_seen == 2000.0
        await store.close()

    run(scenario())


def test_blobs_round_trip_and_delete(new_store: Callable[[], StateStore]) -> None:
    async def scenario() -> None:
        store = new_store()
        every_byte = bytes(range(256)) * 4096  # 1 MiB, every byte value, NULs included
        await store.commit(device(), {"hierarchy": b"h1", "collection:1": every_byte, "cache": b""})
        assert await store.load("alice@example.com", "Dev1", "hierarchy") == b"h1"
        value = await store.load("alice@example.com", "Dev1", "collection:1")
        assert type(value) is bytes and value == every_byte
        assert await store.load("alice@example.com", "Dev1", "cache") == b""
        assert await store.load("alice@example.com", "Dev1", "missing") is None
        assert await store.load("alice@example.com", "Dev2", "hierarchy") is None
        # None deletes, also for a key that is not there; other keys stay.
        await store.commit(device(), {"collection:1": None, "collection:nope": None, "hierarchy": b"h2"})
        assert await store.load("alice@example.com", "Dev1", "collection:1") is None
        assert await store.load("alice@example.com", "Dev1", "hierarchy") == b"h2"
        assert await store.load("alice@example.com", "Dev1", "cache") == b""
        await store.close()

    run(scenario())


def test_hostile_names_are_data(new_store: Callable[[], StateStore]) -> None:
    async def scenario() -> None:
        store = new_store()
        user = "x'; DROP TABLE devices; --@example.com"
        key = "collection:1' OR '1'='1"
        await store.commit(device(user, "D%_*"), {key: b"evil"})
        await store.commit(device("alice@example.com", "D%_*"), {"collection:1": b"good"})
        assert await store.load(user, "D%_*", key) == b"evil"
        assert await store.load(user, "D%_*", "collection:1") is None
        assert await store.load("alice@example.com", "D%_*", key) is None
        assert {d.user for d in await store.list_devices()} == {user, "alice@example.com"}
        await store.close()

    run(scenario())


def test_list_devices_filters_by_user(new_store: Callable[[], StateStore]) -> None:
    async def scenario() -> None:
        store = new_store()
        for user, dev in (("bob@example.com", "B1"), ("alice@example.com", "A2"), ("alice@example.com", "A1")):
            await store.commit(device(user, dev), {})
        assert [(d.user, d.device_id) for d in await store.list_devices()] == [
            ("alice@example.com", "A1"), ("alice@example.com", "A2"), ("bob@example.com", "B1")]
        assert [d.device_id for d in await store.list_devices("alice@example.com")] == ["A1", "A2"]
        assert [d.device_id for d in await store.list_devices("bob@example.com")] == ["B1"]
        assert await store.list_devices("carol@example.com") == []
        assert await store.list_devices("ALICE@example.com") == []  # exact account names
        await store.close()

    run(scenario())


def test_delete_and_reset_device_touch_only_that_device(new_store: Callable[[], StateStore]) -> None:
    async def scenario() -> None:
        store = new_store()
        targets = (("alice@example.com", "Dev1"), ("alice@example.com", "Dev2"), ("bob@example.com", "Dev1"))
        for user, dev in targets:
            await store.commit(device(user, dev), {"hierarchy": f"{user}/{dev}".encode(), "cache": b"{}"})

        await store.reset_device("alice@example.com", "Dev1")
        assert await store.get_device("alice@example.com", "Dev1") is not None
        assert await store.load("alice@example.com", "Dev1", "hierarchy") is None
        assert await store.load("alice@example.com", "Dev1", "cache") is None
        assert await store.load("alice@example.com", "Dev2", "hierarchy") == b"alice@example.com/Dev2"
        assert await store.load("bob@example.com", "Dev1", "hierarchy") == b"bob@example.com/Dev1"

        await store.delete_device("alice@example.com", "Dev2")
        assert await store.get_device("alice@example.com", "Dev2") is None
        assert await store.load("alice@example.com", "Dev2", "hierarchy") is None
        assert [(d.user, d.device_id) for d in await store.list_devices()] == [
            ("alice@example.com", "Dev1"), ("bob@example.com", "Dev1")]
        assert await store.load("bob@example.com", "Dev1", "cache") == b"{}"

        # Unknown devices are no error; a deleted device can come back, with no old state.
        await store.delete_device("nobody", "X")
        await store.reset_device("nobody", "X")
        await store.commit(device("alice@example.com", "Dev2"), {})
        assert await store.load("alice@example.com", "Dev2", "hierarchy") is None
        await store.close()

    run(scenario())


def test_device_state_round_trip(new_store: Callable[[], StateStore]) -> None:
    async def scenario() -> None:
        store = new_store()
        ds = DeviceState(store, device())
        assert (await ds.hierarchy()) == HierarchyState()
        assert await ds.collection("1") is None
        assert await ds.cache() == {}
        sample_hierarchy(await ds.hierarchy())
        ds.hierarchy_changed()
        ds.put_collection(sample_collection("1"))
        ds.put_collection(sample_collection("2"))
        (await ds.cache())["ping"] = {"folders": ["1", "2"], "heartbeat": 480}
        ds.cache_changed()
        await ds.commit()

        again = DeviceState(store, device())
        assert await again.hierarchy() == sample_hierarchy()
        got = await again.collection("1")
        assert got == sample_collection("1")
        assert got is not None and got.previous == {"sync_key": 4, "snapshot": {"a": "1", "b": "2"},
                                                    "client_ids": {"c1": "1:a"}}
        assert (await again.cache()) == {"ping": {"folders": ["1", "2"], "heartbeat": 480}}
        # Ids keep their allocation counter across a reload.
        assert (await again.hierarchy()).server_id("new") == "3"

        again.drop_collection("2")
        await again.commit()
        third = DeviceState(store, device())
        assert await third.collection("2") is None
        assert await third.collection("1") == sample_collection("1")
        await store.close()

    run(scenario())


def test_device_state_writes_only_dirty_blobs(new_store: Callable[[], StateStore]) -> None:
    """A DeviceState that read a collection but did not change it must not write back its
    stale copy over another writer's newer one."""

    async def scenario() -> None:
        store = new_store()
        first = DeviceState(store, device())
        first.put_collection(sample_collection("1"))
        first.hierarchy_changed()
        await first.hierarchy()
        await first.commit()

        stale = DeviceState(store, device())
        assert (await stale.collection("1")) is not None
        await stale.cache()

        newer = DeviceState(store, device())
        coll = await newer.collection("1")
        assert coll is not None
        coll.advance()
        newer.put_collection(coll)
        await newer.commit()

        h = await stale.hierarchy()
        h.sync_key = 9
        stale.hierarchy_changed()
        await stale.commit()

        check = DeviceState(store, device())
        after = await check.collection("1")
        assert after is not None and after.sync_key == 6  # newer's write survived
        assert (await check.hierarchy()).sync_key == 9
        # The cache was read but never changed, so no "cache" blob was written.
        assert await store.load("alice@example.com", "Dev1", "cache") is None
        # A second commit with nothing dirty writes no blob (the record only).
        await store.commit(device(), {"collection:1": None})
        await check.commit()
        assert await store.load("alice@example.com", "Dev1", "collection:1") is None
        await store.close()

    run(scenario())


def test_failed_handler_leaves_state_as_it_was(new_store: Callable[[], StateStore]) -> None:
    async def scenario() -> None:
        store = new_store()
        ds = DeviceState(store, device())
        ds.put_collection(sample_collection("1"))
        await ds.commit()
        before = await store.load("alice@example.com", "Dev1", "collection:1")

        async def failing_handler(state: DeviceState) -> None:
            coll = await state.collection("1")
            assert coll is not None
            coll.advance()
            coll.snapshot.clear()
            state.put_collection(coll)
            state.drop_collection("1")
            (await state.hierarchy()).sync_key = 99
            state.hierarchy_changed()
            raise RuntimeError("handler failed")

        with pytest.raises(RuntimeError):
            await failing_handler(DeviceState(store, device()))  # the core commits only on success
        assert await store.load("alice@example.com", "Dev1", "collection:1") == before
        assert await store.load("alice@example.com", "Dev1", "hierarchy") is None
        await store.close()

    run(scenario())


# -- CollectionState semantics ------------------------------------------------------------


def test_advance_and_rewind() -> None:
    c = CollectionState("1", "inbox", sync_key=1, snapshot={"a": "1"}, client_ids={"c": "1:a"})
    assert CollectionState("2", "x").rewind() is False
    c.advance()
    assert c.sync_key == 2 and c.previous == {"sync_key": 1, "snapshot": {"a": "1"}, "client_ids": {"c": "1:a"}}
    # The previous state is a copy: changing the current one leaves it alone.
    c.snapshot["b"] = "2"
    c.client_ids["d"] = "1:b"
    assert c.previous["snapshot"] == {"a": "1"} and c.previous["client_ids"] == {"c": "1:a"}
    assert c.rewind() is True
    assert (c.sync_key, c.snapshot, c.client_ids, c.previous) == (1, {"a": "1"}, {"c": "1:a"}, None)
    assert c.rewind() is False  # only one step back
    assert c.sync_key == 1
    # Advancing twice keeps only the last previous state.
    c.advance()
    c.snapshot["x"] = "1"
    c.advance()
    assert c.sync_key == 3 and c.previous is not None and c.previous["sync_key"] == 2
    assert c.previous["snapshot"] == {"a": "1", "x": "1"}
    # The previous state survives a trip through JSON, and rewinding after it works.
    back = CollectionState.from_json(c.to_json())
    assert back == c
    assert back.rewind() and back.sync_key == 2 and back.snapshot == {"a": "1", "x": "1"}


def test_rewind_survives_the_store(new_store: Callable[[], StateStore]) -> None:
    async def scenario() -> None:
        store = new_store()
        ds = DeviceState(store, device())
        c = CollectionState("5", "inbox", sync_key=1, snapshot={"a": "1"})
        c.advance()
        c.snapshot = {"a": "2", "b": "1"}
        ds.put_collection(c)
        await ds.commit()
        ds2 = DeviceState(store, device())
        got = await ds2.collection("5")
        assert got is not None and got.rewind()
        assert (got.sync_key, got.snapshot) == (1, {"a": "1"})
        await store.close()

    run(scenario())


# -- CollectionState storage: the previous key as a difference, the snapshot as arrays -----

ODD = st.text(max_size=6)  # any characters: quotes, commas, NUL, lone surrogates, ""


class RefState:
    """The reference behaviour: the previous key's state as a plain copy (the first
    implementation), against which the stored form is checked."""

    def __init__(self, sync_key: int, snapshot: dict[str, str], client_ids: dict[str, str]) -> None:
        self.sync_key, self.snapshot, self.client_ids = sync_key, dict(snapshot), dict(client_ids)
        self.previous: dict[str, Any] | None = None

    def advance(self) -> None:
        self.previous = {"sync_key": self.sync_key, "snapshot": dict(self.snapshot),
                         "client_ids": dict(self.client_ids)}
        self.sync_key += 1

    def rewind(self) -> bool:
        if self.previous is None:
            return False
        self.sync_key = self.previous["sync_key"]
        self.snapshot = dict(self.previous["snapshot"])
        self.client_ids = dict(self.previous["client_ids"])
        self.previous = None
        return True

    def expected(self) -> CollectionState:
        return CollectionState("7", "inbox", self.sync_key, dict(self.snapshot), dict(self.client_ids),
                               {"class": "Email", "filter_type": 0}, copy.deepcopy(self.previous), {"n": [1]})


OPS = st.one_of(
    st.tuples(st.just("set"), ODD, ODD),
    st.tuples(st.just("pop"), ODD),
    st.tuples(st.just("del"), ODD),
    st.tuples(st.just("setdefault"), ODD, ODD),
    st.tuples(st.just("update"), st.dictionaries(ODD, ODD, max_size=3)),
    st.tuples(st.just("ior"), st.dictionaries(ODD, ODD, max_size=3)),
    st.tuples(st.just("popitem")),
    st.tuples(st.just("clear")),
    st.tuples(st.just("assign"), st.dictionaries(ODD, ODD, max_size=5)),
    st.tuples(st.just("client_id"), ODD, ODD),
    st.tuples(st.just("advance")),
    st.tuples(st.just("rewind")),
    st.tuples(st.just("store")),  # to_json + from_json
    st.tuples(st.just("read_previous")),  # builds it, as GetItemEstimate does
    st.tuples(st.just("edit_previous"), ODD, st.one_of(st.none(), ODD)),  # as MoveItems does
    st.tuples(st.just("drop_previous")),
)


def apply_op(c: CollectionState, ref: RefState, op: tuple[Any, ...]) -> None:
    name = op[0]
    for snap in (c.snapshot, ref.snapshot):
        if name == "set":
            snap[op[1]] = op[2]
        elif name == "pop":
            snap.pop(op[1], None)
        elif name == "del" and op[1] in snap:
            del snap[op[1]]
        elif name == "setdefault":
            snap.setdefault(op[1], op[2])
        elif name == "update":
            snap.update(op[1])
        elif name == "ior":
            snap |= op[1]
        elif name == "popitem" and snap:
            snap.popitem()
        elif name == "clear":
            snap.clear()
    if name == "assign":
        c.snapshot, ref.snapshot = dict(op[1]), dict(op[1])
    elif name == "client_id":
        c.client_ids[op[1]] = op[2]
        ref.client_ids[op[1]] = op[2]
    elif name == "advance":
        c.advance()
        ref.advance()
    elif name == "rewind":
        assert c.rewind() is ref.rewind()
    elif name == "read_previous":
        assert c.previous == ref.previous
    elif name == "edit_previous":
        for prev in (c.previous, ref.previous):
            if prev is not None:
                if op[2] is None:
                    prev["snapshot"].pop(op[1], None)
                else:
                    prev["snapshot"][op[1]] = op[2]
    elif name == "drop_previous":
        c.previous = ref.previous = None


def stored(c: CollectionState) -> CollectionState:
    return CollectionState.from_json(c.to_json())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshot=st.dictionaries(ODD, ODD, max_size=8), ops=st.lists(OPS, max_size=25))
def test_stored_state_behaves_as_plain_copies(snapshot: dict[str, str], ops: list[tuple[Any, ...]]) -> None:
    c = CollectionState("7", "inbox", 3, dict(snapshot), {"c0": "7:x"}, {"class": "Email", "filter_type": 0},
                        None, {"n": [1]})
    ref = RefState(3, snapshot, {"c0": "7:x"})
    for op in ops:
        if op[0] == "store":
            c = stored(c)
        else:
            apply_op(c, ref, op)
        # Compared without building ``previous`` (== does not), so the difference form is what is checked.
        assert c == ref.expected()
        assert c.previous_key == (ref.previous["sync_key"] if ref.previous else None)
        assert stored(c) == ref.expected()
    # Whatever form it was in, the previous state rewinds to the reference's, also after storage.
    again = stored(c)
    assert (again.rewind(), again.sync_key, dict(again.snapshot), again.client_ids) == (
        ref.rewind(), ref.sync_key, ref.snapshot, ref.client_ids)
    assert again.previous is None and stored(again) == ref.expected()


def test_previous_is_stored_as_a_difference() -> None:
    c = CollectionState("5", "inbox", 1, {f"{i}": f"s{i}" for i in range(2000)}, {"c1": "5:1"})
    alone = len(c.to_json())
    c.advance()
    c.snapshot["new"] = "n1"
    c.snapshot["7"] = "changed"
    c.snapshot.pop("8")
    blob = c.to_json()
    # One snapshot and a few entries, not two snapshots.
    assert len(blob) < alone + 200
    back = CollectionState.from_json(blob)
    assert back.previous_key == 1 and back.sync_key == 2
    # Loaded, the previous key's state stays a difference until something needs it ...
    assert back.snapshot["7"] == "changed" and "8" not in back.snapshot and back.snapshot["new"] == "n1"
    back.snapshot["more"] = "m"  # (a window sent without advancing: the difference follows)
    again = CollectionState.from_json(back.to_json())
    assert again.rewind() and again.sync_key == 1 and again.client_ids == {"c1": "5:1"}
    assert again.snapshot == {f"{i}": f"s{i}" for i in range(2000)}
    # ... and a second advance after loading replaces it with the new key's.
    back.advance()
    assert back.previous_key == 2
    assert back.previous is not None and back.previous["snapshot"] == dict(back.snapshot)


def test_first_format_blobs_still_load() -> None:
    old = (b'{"collection_id":"5","backend_id":"inbox","sync_key":4,"snapshot":{"a":"2","b":"1","\\"q,":"x"},'
           b'"client_ids":{"c1":"5:b"},"options":{"class":"Email","filter_type":3},'
           b'"previous":{"sync_key":3,"snapshot":{"a":"1","gone":"9"},"client_ids":{}},"extra":{"k":1}}')
    c = CollectionState.from_json(old)
    assert (c.collection_id, c.backend_id, c.sync_key, c.client_ids, c.options, c.extra) == (
        "5", "inbox", 4, {"c1": "5:b"}, {"class": "Email", "filter_type": 3}, {"k": 1})
    assert c.snapshot == {"a": "2", "b": "1", '"q,': "x"} and c.previous_key == 3
    # Written again in the new form, the same state comes back, and rewinds as the old one did.
    back = CollectionState.from_json(c.to_json())
    assert back == c and b'"snapshot"' not in c.to_json()
    assert back.rewind() and (back.sync_key, back.snapshot, back.client_ids) == (3, {"a": "1", "gone": "9"}, {})
    # A blob without a previous state.
    bare = CollectionState.from_json(b'{"collection_id":"1","backend_id":"x","snapshot":{},"previous":null}')
    assert bare.sync_key == 0 and bare.previous is None and bare.rewind() is False


def test_a_damaged_blob_is_refused() -> None:
    good = json.loads(CollectionState("1", "x", 2, {"a": "1", "b": "2"}).to_json())
    good["stamps"] = ["1"]
    with pytest.raises(ValueError):
        CollectionState.from_json(json.dumps(good).encode())


def test_snapshot_copies_and_constructor_do_not_share_the_journal() -> None:
    base = {"a": "1"}
    c = CollectionState("1", "x", 1, base)
    c.advance()
    view = CollectionState("1", "x", 2, c.snapshot)  # as GetItemEstimate builds its view
    view.advance()
    view.snapshot["b"] = "2"
    c.snapshot["a"] = "3"
    assert base == {"a": "1"} and view.snapshot == {"a": "1", "b": "2"}
    assert c.previous == {"sync_key": 1, "snapshot": {"a": "1"}, "client_ids": {}}
    assert view.previous is not None and view.previous["snapshot"] == {"a": "1"}
    assert copy.copy(c.snapshot) == {"a": "3"} and type(copy.copy(c.snapshot)) is dict


# -- SQLite only --------------------------------------------------------------------------


class FailingSQLiteStore(SQLiteStateStore):
    """Test-only failure injection: writing the blob under ``fail_key`` raises inside the
    commit's transaction, after the record and earlier blobs were written."""

    fail_key = "collection:2"
    error: BaseException = sqlite3.OperationalError("disk I/O error (injected by the test)")

    def _write_blob(self, db: sqlite3.Connection, user: str, device_id: str, key: str, value: bytes | None) -> None:
        if key == self.fail_key:
            raise self.error
        super()._write_blob(db, user, device_id, key, value)


def test_commit_is_atomic(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = FailingSQLiteStore(tmp_path / "state.db")
        await store.commit(device(access="allowed", policy_key=1), {"collection:1": b"old1", "collection:3": b"old3"})

        changed = device(access="blocked", policy_key=2)
        blobs = {"collection:1": b"new1", "collection:3": None, "hierarchy": b"new", "collection:2": b"boom"}
        with pytest.raises(StateError, match="disk I/O error"):
            await store.commit(changed, blobs)
        # A non-driver error is not wrapped, but rolls back just the same.
        store.error = RuntimeError("bug in the middle of a commit")
        with pytest.raises(RuntimeError):
            await store.commit(changed, blobs)

        reader = SQLiteStateStore(tmp_path / "state.db")  # what another process sees
        for s in (store, reader):
            got = await s.get_device("alice@example.com", "Dev1")
            assert got is not None and (got.access, got.policy_key) == ("allowed", 1)
            assert await s.load("alice@example.com", "Dev1", "collection:1") == b"old1"
            assert await s.load("alice@example.com", "Dev1", "collection:3") == b"old3"
            assert await s.load("alice@example.com", "Dev1", "hierarchy") is None
            assert [d.access for d in await s.list_devices()] == ["allowed"]

        # The connection is usable afterwards, and no transaction was left open.
        store.fail_key = "nothing"
        await store.commit(changed, blobs)
        assert await reader.load("alice@example.com", "Dev1", "collection:2") == b"boom"
        assert await reader.load("alice@example.com", "Dev1", "collection:3") is None
        await store.close()
        await reader.close()

    run(scenario())


def test_persists_across_reopening(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStateStore(tmp_path / "state.db")
        ds = DeviceState(store, device(model="Pixel"))
        ds.put_collection(sample_collection("7"))
        await ds.commit()
        await store.close()
        with pytest.raises(StateError, match="closed"):
            await store.load("alice@example.com", "Dev1", "collection:7")

        reopened = SQLiteStateStore(str(tmp_path / "state.db"))
        got = await reopened.get_device("alice@example.com", "Dev1")
        assert got is not None and got.model == "Pixel"
        assert await DeviceState(reopened, got).collection("7") == sample_collection("7")
        await reopened.close()

    run(scenario())


def test_schema_file_settings_and_indexed_columns(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStateStore(tmp_path / "state.db")
        await store.commit(device(device_type="iPhone", access="quarantined", last_seen=5.0), {})
        await store.commit(device(device_type="iPad", access="blocked", last_seen=7.0), {})
        await store.close()

    run(scenario())
    db = sqlite3.connect(tmp_path / "state.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # The listing columns follow the record on update.
    assert db.execute("SELECT device_type, access, last_seen FROM devices").fetchall() == [("iPad", "blocked", 7.0)]
    db.close()


def test_two_store_objects_on_one_file(tmp_path: Path) -> None:
    """Two store objects stand for two processes: each sees the other's commits, and
    concurrent writers from several threads all land."""

    async def one_writer(path: Path, n: int) -> None:
        store = SQLiteStateStore(path)
        for i in range(20):
            await store.commit(device(device_id=f"W{n}"), {f"collection:{i}": f"{n}:{i}".encode()})
        await store.close()

    path = tmp_path / "state.db"
    errors: list[BaseException] = []

    def thread(n: int) -> None:
        try:
            asyncio.run(one_writer(path, n))
        except StateError as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=thread, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    async def scenario() -> None:
        a, b = SQLiteStateStore(path), SQLiteStateStore(path)
        assert [d.device_id for d in await a.list_devices("alice@example.com")] == ["W0", "W1", "W2", "W3"]
        assert await b.load("alice@example.com", "W3", "collection:19") == b"3:19"
        await a.commit(device(device_id="X"), {"cache": b"from a"})
        assert await b.load("alice@example.com", "X", "cache") == b"from a"
        await b.delete_device("alice@example.com", "X")
        assert await a.get_device("alice@example.com", "X") is None
        await a.close()
        await b.close()

    run(scenario())


def test_another_process_writes_the_same_file(tmp_path: Path) -> None:
    """A real second process commits while this one does: every commit of both lands."""
    path = tmp_path / "state.db"
    SQLiteStateStore(path)  # schema made here, so the race is about writing, not creating
    script = (
        "import asyncio, sys\n"
        "from eas.state.model import DeviceRecord\n"
        "from eas.state.sqlite import SQLiteStateStore\n"
        "async def main():\n"
        "    s = SQLiteStateStore(sys.argv[1])\n"
        "    for i in range(40):\n"
        "        await s.commit(DeviceRecord('bob@example.com', 'P'), {f'collection:{i}': b'child'})\n"
        "    await s.close()\n"
        "asyncio.run(main())\n")
    child = subprocess.Popen([sys.executable, "-c", script, str(path)])

    async def scenario() -> None:
        store = SQLiteStateStore(path)
        for i in range(40):
            await store.commit(device(), {f"collection:{i}": b"parent"})
            await asyncio.sleep(0.002)
        assert child.wait(timeout=30) == 0
        for i in range(40):
            assert await store.load("bob@example.com", "P", f"collection:{i}") == b"child"
            assert await store.load("alice@example.com", "Dev1", f"collection:{i}") == b"parent"
        await store.close()

    try:
        run(scenario())
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_file_locked_at_open_gives_state_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # a new file in rollback-journal mode, held
    try:
        with pytest.raises(StateError, match="locked by another process"):
            SQLiteStateStore(path, busy_timeout=0.1)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store = SQLiteStateStore(path)  # once free, it opens and migrates
    run(store.close())


def test_new_file_opened_by_many_at_once(tmp_path: Path) -> None:
    """Processes starting together race to create the schema: exactly one migrates."""
    path = tmp_path / "state.db"
    barrier = threading.Barrier(6)
    outcome: list[object] = []

    def opener() -> None:
        barrier.wait()
        try:
            store = SQLiteStateStore(path)
            asyncio.run(store.close())
            outcome.append("ok")
        except StateError as e:  # pragma: no cover - reported below
            outcome.append(e)

    threads = [threading.Thread(target=opener) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcome == ["ok"] * 6


@pytest.mark.parametrize("content, message", [
    (b"this is not a database at all, just some text" * 100, "not an eas state database, or is corrupt"),
    (b"SQLite format 3\x00" + b"\xff" * 4080, "not an eas state database, or is corrupt"),
])
def test_corrupt_file_gives_state_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(content)
    with pytest.raises(StateError, match=message) as info:
        SQLiteStateStore(path)
    assert not isinstance(info.value, sqlite3.Error) and info.value.__cause__ is None
    assert path.read_bytes() == content  # nothing was written into it


def test_truncated_database_gives_state_error(tmp_path: Path) -> None:
    async def fill() -> None:
        store = SQLiteStateStore(tmp_path / "good.db")
        for i in range(50):
            await store.commit(device(device_id=f"D{i}"), {"collection:1": bytes(3000)})
        await store.close()

    run(fill())
    good = (tmp_path / "good.db").read_bytes()
    assert len(good) > 8192
    bad = tmp_path / "bad.db"
    bad.write_bytes(good[:4096] + b"\x00" * 4096 + good[8192:])  # a wiped page in the middle

    async def use() -> None:
        store = SQLiteStateStore(bad)
        try:
            for i in range(50):
                await store.get_device("alice@example.com", f"D{i}")
                await store.load("alice@example.com", f"D{i}", "collection:1")
            await store.list_devices()
        finally:
            await store.close()

    with pytest.raises(StateError, match="corrupt|malformed|not a database"):
        run(use())


def test_other_files_give_state_error(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE mail (id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(StateError, match="database of something else"):
        SQLiteStateStore(foreign)

    newer = tmp_path / "newer.db"
    SQLiteStateStore(newer)
    db = sqlite3.connect(newer)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StateError, match="newer than this library"):
        SQLiteStateStore(newer)

    with pytest.raises(StateError, match="cannot open|unable to open"):
        SQLiteStateStore(tmp_path / "no such folder" / "state.db")
    with pytest.raises(StateError, match="cannot open|unable to open"):
        SQLiteStateStore(tmp_path)  # a directory


def test_unreadable_record_gives_state_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = SQLiteStateStore(tmp_path / "state.db")
        await store.commit(device(), {})
        db = sqlite3.connect(tmp_path / "state.db")
        db.execute("UPDATE devices SET record = '{not json'")
        db.commit()
        db.close()
        with pytest.raises(StateError, match="unreadable"):
            await store.get_device("alice@example.com", "Dev1")
        with pytest.raises(StateError, match="unreadable"):
            await store.list_devices()
        await store.close()

    run(scenario())


def test_locked_database_gives_state_error(tmp_path: Path) -> None:
    """A writer that cannot get the lock within the busy timeout gets StateError, and
    its commit leaves nothing behind."""

    async def scenario() -> None:
        store = SQLiteStateStore(tmp_path / "state.db", busy_timeout=0.05)
        await store.commit(device(), {"cache": b"1"})
        other = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StateError, match="locked"):
                await store.commit(device(), {"cache": b"2"})
            assert await store.load("alice@example.com", "Dev1", "cache") == b"1"  # readers are not blocked
        finally:
            other.execute("ROLLBACK")
            other.close()
        await store.commit(device(), {"cache": b"3"})
        assert await store.load("alice@example.com", "Dev1", "cache") == b"3"
        await store.close()

    run(scenario())


# -- settings and the audit trail (the access-control engines keep theirs here) ----------


def test_settings_round_trip_list_and_remove(new_store: Callable[[], StateStore]) -> None:
    async def scenario() -> None:
        store = new_store()
        assert await store.get_setting("abq.mode") is None
        await store.set_setting("abq.mode", "interactive")
        await store.set_setting("abq.rules", [{"match": "iPhone", "action": "allow"}, {"regex": "^SAMSUNG"}])
        await store.set_setting("abqx", 1)
        await store.set_setting("jail.window", 30)
        assert await new_store().get_setting("abq.rules") == [{"match": "iPhone", "action": "allow"},
                                                             {"regex": "^SAMSUNG"}]
        assert await store.settings("abq.") == {"abq.mode": "interactive",
                                                "abq.rules": [{"match": "iPhone", "action": "allow"},
                                                              {"regex": "^SAMSUNG"}]}
        assert set(await store.settings()) == {"abq.mode", "abq.rules", "abqx", "jail.window"}
        await store.set_setting("abq.mode", "strict")
        assert await store.get_setting("abq.mode") == "strict"
        await store.set_setting("abq.mode", None)
        await store.set_setting("never.set", None)  # removing what is not there is no error
        assert await new_store().get_setting("abq.mode") is None
        assert set(await store.settings("abq")) == {"abq.rules", "abqx"}

    run(scenario())


def test_update_setting_is_one_transaction(new_store: Callable[[], StateStore]) -> None:
    """update_setting reads and writes in one transaction: two connections appending to
    one list from two threads at once keep every item (a read-then-write would lose
    some); a change that raises stores nothing; None removes the setting."""
    async def scenario() -> None:
        store = new_store()
        assert await store.update_setting("abq.devices", lambda v: [*(v or []), "first"]) == ["first"]
        with pytest.raises(ValueError, match="refused"):
            await store.update_setting("abq.devices", lambda v: (_ for _ in ()).throw(ValueError("refused")))
        assert await store.get_setting("abq.devices") == ["first"]
        assert await store.update_setting("abq.devices", lambda v: None) is None
        assert await store.get_setting("abq.devices") is None

    run(scenario())

    def append(worker: int) -> None:
        async def many() -> None:
            store = new_store()
            for n in range(100):
                await store.update_setting("list", lambda v, n=n: [*(v or []), f"{worker}-{n}"])
                await asyncio.sleep(0)

        asyncio.run(many())

    threads = [threading.Thread(target=append, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = asyncio.run(new_store().get_setting("list"))
    assert sorted(stored) == sorted(f"{w}-{n}" for w in range(2) for n in range(100))


def test_update_device_changes_the_stored_record_in_one_transaction(new_store: Callable[[], StateStore]) -> None:
    """An administrator's change is made on the record as stored now (a request's
    commit made meanwhile is kept), a refusal writes nothing, an unknown device is None."""
    async def scenario() -> None:
        store = new_store()
        assert await store.update_device("alice@example.com", "Dev1", lambda d: None) is None
        await store.commit(device(last_seen=100.0), {"hierarchy": b"h"})
        admin_copy = await new_store().get_device("alice@example.com", "Dev1")  # read by the admin, then...
        await store.commit(device(last_seen=200.0, policy_key=77), {})  # ...the device's request commits
        assert admin_copy is not None and admin_copy.last_seen == 100.0

        def suspend(d: DeviceRecord) -> None:
            d.suspended = True

        changed = await new_store().update_device("alice@example.com", "Dev1", suspend)
        assert changed is not None and changed.suspended
        stored = await store.get_device("alice@example.com", "Dev1")
        assert stored is not None and (stored.suspended, stored.last_seen, stored.policy_key) == (True, 200.0, 77)

        def refuse(d: DeviceRecord) -> None:
            d.wipe = "pending"
            raise ValueError("refused")

        with pytest.raises(ValueError, match="refused"):
            await store.update_device("alice@example.com", "Dev1", refuse)
        stored = await store.get_device("alice@example.com", "Dev1")
        assert stored is not None and stored.wipe == ""
        assert await store.load("alice@example.com", "Dev1", "hierarchy") == b"h"

    run(scenario())


def test_setting_names_and_prefixes_are_data(new_store: Callable[[], StateStore]) -> None:
    async def scenario() -> None:
        store = new_store()
        for name in ("a%b", "a_b", "axb", "x'; DROP TABLE settings; --", "password.mobile:al\u00efce@example.com"):
            await store.set_setting(name, name)
        assert set(await store.settings("a%")) == {"a%b"}  # not a LIKE pattern
        assert set(await store.settings("a_")) == {"a_b"}
        assert await store.get_setting("x'; DROP TABLE settings; --") == "x'; DROP TABLE settings; --"
        assert await store.get_setting("password.mobile:al\u00efce@example.com") == "password.mobile:al\u00efce@example.com"
        with pytest.raises(TypeError):
            await store.set_setting("bad", {1, 2})  # not JSON: refused, nothing stored
        assert await store.get_setting("bad") is None

    run(scenario())


def test_audit_trail_newest_first_and_filtered(new_store: Callable[[], StateStore]) -> None:
    from eas.state.model import AuditEvent

    async def scenario() -> None:
        store = new_store()
        await store.record_event(AuditEvent("device.quarantined", "abq", "alice@example.com", "Dev1", "new device",
                                            time=100.0))
        await store.record_event(AuditEvent("device.allowed", "cli", "alice@example.com", "Dev1", "by admin",
                                            time=200.0))
        await store.record_event(AuditEvent("jail", "jail", "bob@example.com", "Dev9", "150 requests in 30 s",
                                            time=300.0))
        await store.record_event(AuditEvent("setting.set", "cli", detail="abq.mode=strict", time=300.0))
        everything = await new_store().events()
        assert [e.action for e in everything] == ["setting.set", "jail", "device.allowed", "device.quarantined"]
        assert everything[2] == AuditEvent("device.allowed", "cli", "alice@example.com", "Dev1", "by admin",
                                           time=200.0)
        assert [e.action for e in await store.events(user="alice@example.com")] == ["device.allowed",
                                                                                    "device.quarantined"]
        assert [e.action for e in await store.events(user="alice@example.com", device_id="Dev1", since=150.0)] == [
            "device.allowed"]
        assert [e.action for e in await store.events(limit=1)] == ["setting.set"]
        assert await store.events(limit=-5) == []
        assert await store.events(device_id="nope") == []
        got = (await store.events(limit=1))[0]
        got.detail = "changed by the caller"
        assert (await store.events(limit=1))[0].detail == "abq.mode=strict"  # not shared with the caller

    run(scenario())


def test_a_first_version_file_gains_settings_and_keeps_its_devices(tmp_path: Path) -> None:
    """A state file made before the settings existed (schema 1) opens, migrates, and keeps
    its device records."""
    from eas.state.sqlite import MIGRATIONS

    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        db.execute(statement)
    db.execute("INSERT INTO devices (user, device_id, record) VALUES (?, ?, ?)",
               ("alice@example.com", "Old1", device(device_id="Old1", model="Nokia").to_json()))
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()

    async def scenario() -> None:
        store = SQLiteStateStore(path)
        got = await store.get_device("alice@example.com", "Old1")
        assert got is not None and got.model == "Nokia"
        await store.set_setting("abq.mode", "permissive")
        assert await store.settings() == {"abq.mode": "permissive"}
        await store.close()

    run(scenario())
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
