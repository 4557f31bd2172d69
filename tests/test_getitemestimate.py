"""GetItemEstimate (MS-ASCMD 2.2.1.9): the count the next Sync would send, per version
and request shape, its status codes, and that it never changes state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_sync import ALICE, VERSIONS, Device, assert_in_version, cheap_scrypt, coll, collection, device, message

from eas.protocol.versions import Version
from eas.tags import AirSync as A
from eas.tags import GetItemEstimate as G
from eas.testing.client import Reply
from eas.wbxml import Node

__all__ = ["cheap_scrypt"]  # the autouse fixture, used here too


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def request(version: str, *collections: tuple[str, str, int | None]) -> str:
    """A GetItemEstimate body in the shape of ``version``: ``(CollectionId, SyncKey, FilterType)``."""
    parts = []
    for cid, key, filter_type in collections:
        if Version(version) >= Version("14.0"):
            options = "" if filter_type is None else \
                f"<a:Options><a:FilterType>{filter_type}</a:FilterType><a:Class>Email</a:Class></a:Options>"
            parts.append(f"<Collection><a:SyncKey>{key}</a:SyncKey><CollectionId>{cid}</CollectionId>{options}"
                         "</Collection>")
        else:
            ft = "" if filter_type is None else f"<a:FilterType>{filter_type}</a:FilterType>"
            parts.append(f"<Collection><Class>Email</Class><a:SyncKey>{key}</a:SyncKey>"
                         f"<CollectionId>{cid}</CollectionId>{ft}</Collection>")
    return f'<GetItemEstimate xmlns="GetItemEstimate:" xmlns:a="AirSync:"><Collections>{"".join(parts)}' \
           "</Collections></GetItemEstimate>"


async def estimate(dev: Device, *collections: tuple[str, str, int | None]) -> list[Node]:
    reply: Reply = await dev.client.command("GetItemEstimate", request(dev.version, *collections))
    assert reply.status == 200 and reply.node is not None, reply
    assert_in_version(reply.node, dev.version)
    return reply.node.findall(G.Response)


def outcome(response: Node) -> tuple[str | None, str | None, str | None]:
    """``(Status, CollectionId, Estimate)`` of one Response."""
    def text(*path: int) -> str | None:
        value = response.findtext(*path)
        return value if value is None or isinstance(value, str) else value.decode()

    return text(G.Status), text(G.Collection, G.CollectionId), text(G.Collection, G.Estimate)


async def blobs(dev: Device) -> list[bytes | None]:
    store = dev.app.store
    return [await store.load(ALICE, dev.client.device_id, key)
            for key in ("hierarchy", f"collection:{dev.folders['Inbox']}", "cache")]


@pytest.mark.parametrize("version", VERSIONS)
def test_estimate_follows_sync(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        inbox = dev.folders["Inbox"]
        for n in range(5):
            dev.store.deliver(ALICE, message(n))
        key = await dev.initial()
        [r] = await estimate(dev, (inbox, key, None))
        assert outcome(r) == ("1", inbox, "5")
        assert (r.findtext(G.Collection, G.Class) == "Email") == (Version(version) < Version("14.0"))
        c = collection(await dev.sync(coll(inbox, key, "<WindowSize>2</WindowSize>")), inbox)
        new_key = str(c.findtext(A.SyncKey))
        [r] = await estimate(dev, (inbox, new_key, None))
        assert outcome(r) == ("1", inbox, "3")
        [r] = await estimate(dev, (inbox, key, None))  # the previous key: what it had
        assert outcome(r) == ("1", inbox, "5")
        before = await blobs(dev)
        await estimate(dev, (inbox, new_key, None))
        assert await blobs(dev) == before  # GetItemEstimate only reads

    run(scenario)


@pytest.mark.parametrize("version", ["12.1", "14.1"])
def test_filter_type_of_the_request(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        inbox = dev.folders["Inbox"]
        now = datetime.now(UTC)
        dev.store.deliver(ALICE, message(1, date=now - timedelta(days=40)))
        dev.store.deliver(ALICE, message(2, date=now - timedelta(hours=1)))
        key = await dev.initial()
        [all_, week] = await estimate(dev, (inbox, key, 0), (inbox, key, 3))
        assert outcome(all_)[2] == "2" and outcome(week)[2] == "1"

    run(scenario)


@pytest.mark.parametrize("version", VERSIONS)
def test_status_codes(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        inbox, sent = dev.folders["Inbox"], dev.folders["Sent Items"]
        dev.store.deliver(ALICE, message(1))
        key = await dev.initial()
        before = await blobs(dev)
        responses = await estimate(dev, (inbox, "0", None), (sent, "1", None), ("4242", "1", None),
                                   (inbox, "99", None), (inbox, "x1", None), (inbox, key, 9), (inbox, key, None))
        assert [outcome(r) for r in responses] == [
            ("3", inbox, None),  # SyncKey 0: not primed
            ("3", sent, None),  # never synced
            ("2", "4242", None),  # no such collection
            ("4", inbox, None),  # a key never handed out
            ("4", inbox, None),
            ("2", inbox, None),  # FilterType 9 does not exist
            ("1", inbox, "1"),
        ]
        assert await blobs(dev) == before

    run(scenario)


@pytest.mark.parametrize("version", ["2.5", "14.1"])
def test_malformed_request(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        before = await blobs(dev)
        for body in ('<Ping xmlns="Ping:"><HeartbeatInterval>60</HeartbeatInterval></Ping>',
                     '<GetItemEstimate xmlns="GetItemEstimate:"><Collections/></GetItemEstimate>'):
            reply = await dev.client.command("GetItemEstimate", body)
            if Version(version) >= Version("14.0"):
                assert reply.status == 200 and reply.node is not None
                assert reply.node.tag == G.GetItemEstimate and reply.node.findtext(G.Status) == "103"
            else:
                assert reply.status == 400
        assert await blobs(dev) == before

    run(scenario)


@pytest.mark.parametrize("version", ["12.1", "14.1", "16.1"])
def test_calendar_window_of_the_estimate(tmp_path: Path, version: str) -> None:
    """A calendar counts the events of its window (FilterType 4: ended two weeks ago or
    later); a window calendars do not take (1, 8) is status 2."""
    from eas.items.calendar import Calendar

    async def scenario() -> None:
        dev = await device(tmp_path, version)
        cal, folder = dev.folders["Calendar"], dev.backend["Calendar"]
        now = datetime.now(UTC)
        for start in (now - timedelta(days=60), now - timedelta(days=3), now + timedelta(days=3)):
            await dev.store.add_item(ALICE, folder, Calendar(subject="e", start=start, end=start + timedelta(hours=1)))
        key = await dev.initial("Calendar")

        def body(filter_type: int) -> str:
            if version == "12.1":
                inner = f"<Class>Calendar</Class><a:SyncKey>{key}</a:SyncKey><CollectionId>{cal}</CollectionId>" \
                        f"<a:FilterType>{filter_type}</a:FilterType>"
            else:
                inner = f"<a:SyncKey>{key}</a:SyncKey><CollectionId>{cal}</CollectionId><a:Options>" \
                        f"<a:FilterType>{filter_type}</a:FilterType><a:Class>Calendar</a:Class></a:Options>"
            return f'<GetItemEstimate xmlns="GetItemEstimate:" xmlns:a="AirSync:"><Collections><Collection>' \
                   f'{inner}</Collection></Collections></GetItemEstimate>'

        got = {}
        for filter_type in (0, 4, 7, 1, 8):
            reply = await dev.client.command("GetItemEstimate", body(filter_type))
            assert reply.node is not None
            got[filter_type] = outcome(reply.node.find(G.Response))  # type: ignore[arg-type]
        assert got == {0: ("1", cal, "3"), 4: ("1", cal, "2"), 7: ("1", cal, "3"), 1: ("2", cal, None),
                       8: ("2", cal, None)}

    run(scenario)
