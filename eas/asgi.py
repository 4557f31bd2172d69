"""The ASGI 3 adapter: an ``ActiveSync`` core as an ASGI application (uvicorn, hypercorn,
daphne, or mounted in another ASGI app).

It owns the translation between the ASGI scope and messages and the core's
``HTTPRequest``/``HTTPResponse``, the request body limit (checked while the body arrives,
so an oversized body is refused with 413 before it is read), clients that go away during
a long poll, and the lifespan protocol (the state store is closed on shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from eas.core import ActiveSync
from eas.protocol.http import HTTPRequest, HTTPResponse

log = logging.getLogger("eas.asgi")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# RFC 6455 7.4.1: 1008 "policy violation"; sent before accept, the server answers 403.
_WEBSOCKET_REFUSED = 1008


class BodyTooLarge(Exception):
    """The request body is over the limit (answered with 413)."""


class BadRequest(Exception):
    """The request framing is unusable (answered with 400)."""


class ASGIApp:
    """``activesync`` as an ASGI 3 application.

    ``max_body`` caps the request body as it comes over the wire (default: the core's
    ``config.max_request_body``). ``disconnect_grace`` is how long a request whose
    client went away may still run before it is cancelled: a request that is almost done
    (a Sync applying the device's changes) gets to commit its state, while a long poll
    (Ping, Sync with Wait) that no one will hear the end of is cancelled; long polls
    commit their state before they wait, so cancelling one loses nothing.
    """

    def __init__(self, activesync: ActiveSync, *, max_body: int | None = None,
                 disconnect_grace: float = 10.0) -> None:
        self.activesync = activesync
        self.max_body = activesync.config.max_request_body if max_body is None else max_body
        self.disconnect_grace = disconnect_grace

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": _WEBSOCKET_REFUSED})
        else:
            raise ValueError(f"eas.asgi cannot serve ASGI scope type {kind!r}")

    # -- http ----------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope.get("headers", ())]
        try:
            body = await self._body(headers, receive)
        except BodyTooLarge:
            await _send(send, HTTPResponse(413, [("Connection", "close")], b""))
            return
        except BadRequest:
            await _send(send, HTTPResponse(400, [("Connection", "close")], b""))
            return
        except _Disconnected:
            return
        client = scope.get("client")
        request = HTTPRequest(
            method=scope.get("method", "GET").upper(),
            path=scope.get("path", "/"),
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            body=body,
            client=str(client[0]) if client else "",
        )
        # The core runs in this task, and a second one only watches the connection: a
        # parked Ping costs no more (tens of thousands are parked at once; this is not a
        # method of its own for the same reason: a coroutine per level costs ~250 bytes).
        # When the client leaves, the request gets ``disconnect_grace`` seconds, then
        # this task cancels the core (and only that: a cancellation from the server goes
        # on up); nothing is sent then.
        watch = _Watch(self.disconnect_grace)
        gone = asyncio.ensure_future(_disconnect(receive))
        gone.add_done_callback(watch.client_left)
        try:
            response = await self.activesync.handle(request)
        except asyncio.CancelledError:
            if not watch.expired:
                raise
            watch.task.uncancel()
            log.debug("client of %s left; request cancelled", request.path)
            return
        finally:
            # Before any await: once this is past, the timer cannot cancel the task.
            gone.remove_done_callback(watch.client_left)
            if watch.timer is not None:
                watch.timer.cancel()
            if not gone.done():
                gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(gone, return_exceptions=True)
        if not watch.left:
            await _send(send, response)

    async def _body(self, headers: list[tuple[str, str]], receive: Receive) -> bytes:
        """The whole body, refusing as soon as it is known to be over the limit."""
        declared = next((v for k, v in headers if k == "content-length"), None)
        if declared is not None:
            if not declared.strip().isdigit():
                raise BadRequest
            if int(declared) > self.max_body:
                raise BodyTooLarge
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise BodyTooLarge
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    # -- lifespan ------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.activesync.store.close()
                except Exception as e:  # noqa: BLE001 - reported to the server, which logs it
                    await send({"type": "lifespan.shutdown.failed", "message": f"closing the state store: {e}"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return


class _Watch:
    """What a request's connection watch knows: whether the client left, and the timer
    that then cancels the request's task after the grace period. An object with slots,
    not closures: it is kept by every parked long poll."""

    __slots__ = ("expired", "grace", "left", "task", "timer")

    def __init__(self, grace: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.task = task
        self.grace = grace
        self.left = self.expired = False
        self.timer: asyncio.TimerHandle | None = None

    def client_left(self, gone: asyncio.Future[None]) -> None:
        if gone.cancelled():
            return
        gone.exception()  # retrieved: a failing receive counts as the client leaving
        self.left = True
        self.timer = asyncio.get_running_loop().call_later(self.grace, self.expire)

    def expire(self) -> None:
        self.expired = True
        self.task.cancel()


class _Disconnected(Exception):
    """The client went away while its request body was coming in."""


async def _disconnect(receive: Receive) -> None:
    """Returns once the client has disconnected."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _send(send: Send, response: HTTPResponse) -> None:
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers
               if k.lower() != "content-length"]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body, "more_body": False})
