"""The WSGI adapter, for embedders whose server speaks only WSGI (PEP 3333).

The core is async; WSGI is not. The adapter owns one asyncio event loop running in a
background thread, and each WSGI worker thread hands its request to that loop
(``asyncio.run_coroutine_threadsafe``) and blocks until the answer is ready. So all
requests share one loop, as the core expects (device locks, change notification), and a
long poll (Ping) holds a worker thread but no more than that. ``close()`` closes the state
store and stops the loop.

A WSGI application cannot tell that its client went away: a long poll whose client left
runs until its heartbeat ends or the device's next request supersedes it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterable
from typing import Any

from eas.core import ActiveSync
from eas.protocol.http import HTTPRequest, HTTPResponse
from eas.protocol.status import REASONS

StartResponse = Callable[..., Any]
_CHUNK = 64 * 1024


class WSGIApp:
    """``activesync`` as a WSGI application. ``max_body`` caps the request body (default:
    the core's ``config.max_request_body``); a body over it is refused with 413 without
    being read."""

    def __init__(self, activesync: ActiveSync, *, max_body: int | None = None) -> None:
        self.activesync = activesync
        self.max_body = activesync.config.max_request_body if max_body is None else max_body
        self._loop = asyncio.new_event_loop()
        self._closed = False
        self._thread = threading.Thread(target=self._run_loop, name="eas-wsgi-loop", daemon=True)
        self._thread.start()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        response = self._handle(environ)
        headers = [(k, v) for k, v in response.headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(response.body))))
        start_response(_status_line(response.status), headers)
        return [response.body]

    def _handle(self, environ: dict[str, Any]) -> HTTPResponse:
        if self._closed:
            return HTTPResponse(503, [("Retry-After", "30")], b"")
        headers = _headers(environ)
        try:
            body = self._body(environ)
        except _Refused as e:
            return HTTPResponse(e.status, [], b"")  # PEP 3333: connection handling is the server's
        request = HTTPRequest(
            method=str(environ.get("REQUEST_METHOD", "GET")).upper(),
            path=_native(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")) or "/",
            query=environ.get("QUERY_STRING", ""),
            headers=headers,
            body=body,
            client=environ.get("REMOTE_ADDR", ""),
        )
        try:
            future = asyncio.run_coroutine_threadsafe(self.activesync.handle(request), self._loop)
        except RuntimeError:  # the loop was closed meanwhile
            return HTTPResponse(503, [("Retry-After", "30")], b"")
        try:
            return future.result()
        except concurrent.futures.CancelledError:  # close() cancelled it
            return HTTPResponse(503, [("Retry-After", "30")], b"")

    def _body(self, environ: dict[str, Any]) -> bytes:
        """PEP 3333: read CONTENT_LENGTH bytes, or to the end when the server says the
        input is terminated (chunked uploads); never more than the limit allows."""
        stream = environ["wsgi.input"]
        declared = str(environ.get("CONTENT_LENGTH", "") or "").strip()
        if declared:
            if not declared.isdigit():
                raise _Refused(400)
            length = int(declared)
            if length > self.max_body:
                raise _Refused(413)
        elif environ.get("wsgi.input_terminated"):
            length = self.max_body + 1
        else:
            return b""
        chunks: list[bytes] = []
        size = 0
        while size < length:
            chunk = stream.read(min(_CHUNK, length - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > self.max_body:
            raise _Refused(413)
        if declared and size < length:
            raise _Refused(400)  # the client sent less than it announced
        return b"".join(chunks)

    def close(self) -> None:
        """Close the state store, end the requests still waiting and stop the loop."""
        if self._closed:
            return
        self._closed = True

        async def shutdown() -> None:
            current = asyncio.current_task()
            for task in asyncio.all_tasks():
                if task is not current:
                    task.cancel()
            await self.activesync.store.close()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=30)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            if not self._thread.is_alive():
                self._loop.close()


class _Refused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def _headers(environ: dict[str, Any]) -> list[tuple[str, str]]:
    """The request headers with lower-case names, from the CGI-style environ keys."""
    out = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            out.append((key[5:].replace("_", "-").lower(), str(value)))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            out.append((key.replace("_", "-").lower(), str(value)))
    return out


def _native(path: str) -> str:
    """PEP 3333 hands the path as bytes decoded as latin-1; ASGI gives UTF-8 text."""
    try:
        return path.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return path


def _status_line(status: int) -> str:
    return f"{status} {REASONS.get(status, 'Status')}"
