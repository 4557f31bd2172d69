"""What a parked long poll (a Ping waiting for changes) costs and how it ends, through
the ASGI adapter as uvicorn drives it: one task of its own besides the request's (the
connection watch), bounded Python memory, nothing loaded from the state store, and every
way out: a change (which wins over a newer request arriving with it), the device's
newer request, the server shutting down (end_waits), the client leaving (cancelled
after the grace period) and the server cancelling the request (which goes on up)."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest

from eas.asgi import ASGIApp
from eas.core import ActiveSync
from eas.tags import FolderHierarchy as FH
from eas.tags import Ping
from eas.testing.client import Client
from eas.testing.harness import USERS, client, make_app
from eas.wbxml import decode, from_xml

ALICE, PASSWORD = USERS[0]
pytestmark = pytest.mark.kernel_independent
MAIL = b"From: bob@example.com\r\nTo: alice@example.com\r\nSubject: hello\r\n\r\nhi\r\n"


class Connection:
    """One request on a fake ASGI connection: ``leave()`` makes ``receive`` report the
    client gone; what the app sends is kept."""

    def __init__(self, asgi: ASGIApp, c: Client, body: bytes) -> None:
        self.sent: list[dict[str, Any]] = []
        self._gone = asyncio.Event()
        self._messages = [{"type": "http.request", "body": body, "more_body": False}]
        query = (f"Cmd=Ping&User={c.user}&DeviceId={c.device_id}&DeviceType=Phone").encode()
        headers = [(k.lower().encode(), v.encode()) for k, v in (
            c._auth(), ("MS-ASProtocolVersion", c.version), ("Content-Type", "application/vnd.ms-sync.wbxml"),
            ("X-MS-PolicyKey", str(c.policy_key)), ("Content-Length", str(len(body))))]
        scope = {"type": "http", "method": "POST", "path": c.path, "query_string": query, "headers": headers,
                 "client": ("127.0.0.1", 1)}
        self.task = asyncio.ensure_future(asgi(scope, self.receive, self.send))

    async def receive(self) -> dict[str, Any]:
        if self._messages:
            return self._messages.pop()
        await self._gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.sent.append(dict(message))

    def leave(self) -> None:
        self._gone.set()

    @property
    def status(self) -> str | None:
        """The Ping Status answered, None while nothing was."""
        bodies = [m["body"] for m in self.sent if m["type"] == "http.response.body"]
        return decode(bodies[0]).findtext(Ping.Status) if bodies else None  # type: ignore[return-value]


async def devices(app: ActiveSync, n: int) -> tuple[list[Client], str]:
    """``n`` provisioned devices of Alice after FolderSync; the Inbox CollectionId."""
    out = []
    inbox = ""
    for i in range(n):
        c = client(app, version="14.1", device_id=f"Parked{i:03d}")
        await c.provision()
        r = await c.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>')
        assert r.node is not None
        changes = r.node.find(FH.Changes)
        assert changes is not None
        inbox = next(str(a.findtext(FH.ServerId)) for a in changes if a.findtext(FH.Type) == "2")
        out.append(c)
    return out, inbox


def ping_body(inbox: str) -> bytes:
    return from_xml(f'<Ping xmlns="Ping:"><HeartbeatInterval>600</HeartbeatInterval><Folders><Folder><Id>{inbox}'
                    "</Id><Class>Email</Class></Folder></Folders></Ping>")


async def settle(app: ActiveSync, waiting: int) -> None:
    for _ in range(500):
        if sum(len(w) for w in app._waiters.values()) == waiting:
            return
        await asyncio.sleep(0.002)
    raise AssertionError(f"{waiting} Pings never parked")


def test_a_parked_ping_holds_one_watch_task_and_little_memory(tmp_path: Path) -> None:
    app, store = make_app(tmp_path)
    asgi = ASGIApp(app)
    n = 40

    async def scenario() -> None:
        cs, inbox = await devices(app, n)
        body = ping_body(inbox)
        await asyncio.sleep(0)
        gc.collect()
        tasks_before = len(asyncio.all_tasks())
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            conns = [Connection(asgi, c, body) for c in cs]
            await settle(app, n)
            gc.collect()
            per_ping = (tracemalloc.get_traced_memory()[0] - before) / n
        finally:
            tracemalloc.stop()
        # The request's own task and the watch on its connection; no Events, no tasks
        # per wait (they cost some 5 KB per Ping before).
        assert len(asyncio.all_tasks()) - tasks_before == 2 * n
        assert per_ping < 18_000, per_ping  # 22 KB with two Events and three more tasks
        for conn in conns:  # nothing the state store gave is kept while parked
            assert conn.status is None
        app.end_waits()
        await asyncio.gather(*(conn.task for conn in conns))
        assert {conn.status for conn in conns} == {"1"}

    asyncio.run(scenario())
    store.close()


def test_every_way_out(tmp_path: Path) -> None:
    app, store = make_app(tmp_path)
    asgi = ASGIApp(app, disconnect_grace=0.05)

    async def scenario() -> None:
        (a, b, c), inbox = await devices(app, 3)
        body = ping_body(inbox)
        # Superseded: status 1 at once.
        first = Connection(asgi, a, body)
        await settle(app, 1)
        app._supersede((ALICE, a.device_id))
        await first.task
        assert first.status == "1"
        assert not app._waiters and not app._superseders
        # The client leaves: nothing is sent, and the wait ends after the grace period.
        second = Connection(asgi, b, body)
        await settle(app, 1)
        second.leave()
        await asyncio.wait_for(second.task, 2)
        assert second.sent == [] and not second.task.cancelled()
        assert not app._waiters and not app._locks and not app._superseders
        # The server cancels the request: the cancellation goes on up.
        third = Connection(asgi, b, body)
        await settle(app, 1)
        third.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await third.task
        assert third.sent == []
        assert not app._waiters and not app._locks and not app._superseders
        # A change and a newer request of the device in the same loop iteration: the
        # change wins (status 2, not 1).
        fourth = Connection(asgi, c, body)
        await settle(app, 1)
        store.deliver(ALICE, MAIL)  # the store's watcher wakes it
        app._supersede((ALICE, c.device_id))
        await fourth.task
        assert fourth.status == "2"
        assert not app._waiters and not app._locks and not app._superseders

    asyncio.run(scenario())
    store.close()
