"""The ASGI and WSGI adapters, driven for real: the ASGI app under uvicorn, the WSGI app
under the stdlib ``wsgiref`` server, both on 127.0.0.1, with real HTTP requests (the test
client's ``HTTPTransport`` and raw ``http.client`` for what a client should not do)."""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import uvicorn

from eas.asgi import ASGIApp
from eas.core import ActiveSync, Config, PolicyDecision
from eas.protocol.errors import StateError
from eas.protocol.http import HTTPRequest, HTTPResponse
from eas.state.memory import MemoryStateStore
from eas.state.model import DeviceRecord
from eas.store import ReferenceStore
from eas.tags import FolderHierarchy as FH
from eas.testing.client import Client, HTTPTransport
from eas.testing.harness import USERS, make_app
from eas.wbxml import from_xml
from eas.wsgi import WSGIApp

USER, PASSWORD = USERS[0]
PATH = "/Microsoft-Server-ActiveSync"
LIMIT = 4096  # max_request_body of the apps under test
FOLDERSYNC = '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>'


def basic(user: str = USER, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def query(command: str = "FolderSync", device_id: str = "Adapter1") -> str:
    return f"Cmd={command}&User={USER}&DeviceId={device_id}&DeviceType=TestPhone"


async def no_provisioning(user: str, device: DeviceRecord) -> PolicyDecision:
    return PolicyDecision(required=False)


# -- servers --------------------------------------------------------------------------------


@dataclass
class Served:
    """A running server: its URL, the ActiveSync object and the reference store behind it."""

    kind: str
    url: str
    port: int
    activesync: ActiveSync
    store: ReferenceStore
    adapter: Any

    def request(self, method: str, target: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, target, body=body, headers=headers or {})
            answer = conn.getresponse()
            return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        finally:
            conn.close()

    def client(self, **kw: Any) -> Client:
        return Client(HTTPTransport(self.url), USER, PASSWORD, device_id="Adapter1", **kw)


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def uvicorn_server(app: Any, **config: Any) -> Iterator[int]:
    """``app`` under uvicorn in a thread, on a free loopback port (yielded)."""
    sock = _listening_socket()
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", http="h11",
                                           timeout_graceful_shutdown=2, **config))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def wsgiref_server(app: WSGIApp) -> Iterator[int]:
    server = make_server("127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
        app.close()


@contextmanager
def serving(kind: str, folder: Path) -> Iterator[Served]:
    activesync, store = make_app(folder, config=Config(max_request_body=LIMIT))
    try:
        if kind == "asgi":
            asgi = ASGIApp(activesync, disconnect_grace=0.2)
            with uvicorn_server(asgi) as port:
                yield Served("asgi", f"http://127.0.0.1:{port}", port, activesync, store, asgi)
        else:
            wsgi = WSGIApp(activesync)
            with wsgiref_server(wsgi) as port:
                yield Served("wsgi", f"http://127.0.0.1:{port}", port, activesync, store, wsgi)
    finally:
        store.close()


@pytest.fixture(params=["asgi", "wsgi"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    """A server of its own, for a test that changes state."""
    with serving(request.param, tmp_path) as running:
        yield running


@pytest.fixture(scope="module", params=["asgi", "wsgi"])
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server per adapter for the tests whose requests are all refused before they
    could change anything (which they check: no device record appears)."""
    with serving(request.param, tmp_path_factory.mktemp(request.param)) as running:
        yield running
        assert asyncio.run(running.activesync.store.list_devices()) == []


# -- both adapters --------------------------------------------------------------------------


@pytest.mark.kernel_independent
def test_options(shared: Served) -> None:
    status, headers, body = shared.request("OPTIONS", PATH, headers={"Authorization": basic()})
    assert status == 200 and body == b""
    assert "14.1" in headers["ms-asprotocolversions"].split(",")
    assert "FolderSync" in headers["ms-asprotocolcommands"].split(",")
    assert headers["content-length"] == "0"
    assert headers["ms-server-activesync"] == shared.activesync.config.server_version


@pytest.mark.kernel_independent
def test_options_over_the_test_client(shared: Served) -> None:
    async def scenario() -> None:
        reply = await shared.client().options()
        assert reply.status == 200 and "16.1" in reply.headers["ms-asprotocolversions"]

    asyncio.run(scenario())


@pytest.mark.kernel_independent
@pytest.mark.parametrize("authorization", [None, basic(password="wrong"), "Basic !!!notbase64", "Bearer abc"])
def test_bad_auth_is_401_with_a_challenge(shared: Served, authorization: str | None) -> None:
    headers = {"MS-ASProtocolVersion": "14.1", "Content-Type": "application/vnd.ms-sync.wbxml"}
    if authorization:
        headers["Authorization"] = authorization
    status, got, body = shared.request("POST", f"{PATH}?{query()}", from_xml(FOLDERSYNC), headers)
    assert status == 401
    assert got["www-authenticate"].startswith("Basic")
    assert body == b""


@pytest.mark.kernel_independent
def test_get_is_405(shared: Served) -> None:
    status, headers, _ = shared.request("GET", PATH, headers={"Authorization": basic()})
    assert status == 405
    assert "POST" in headers["allow"]


@pytest.mark.kernel_independent
@pytest.mark.parametrize("bad_query", ["%%%", "Cmd=FolderSync&Cmd=Sync&User=a&DeviceId=D&DeviceType=T",
                                       "Cmd=FolderSync&User=a&DeviceId=bad%20id!&DeviceType=T"])
def test_malformed_query_is_400(shared: Served, bad_query: str) -> None:
    status, _, body = shared.request("POST", f"{PATH}?{bad_query}", b"",
                                     {"Authorization": basic(), "MS-ASProtocolVersion": "14.1"})
    assert status == 400 and body == b""


@pytest.mark.kernel_independent
def test_unknown_path_is_404(shared: Served) -> None:
    status, _, _ = shared.request("POST", f"/elsewhere?{query()}", b"x", {"Authorization": basic()})
    assert status == 404


@pytest.mark.kernel_independent
def test_oversized_body_is_413(shared: Served) -> None:
    headers = {"Authorization": basic(), "MS-ASProtocolVersion": "14.1",
               "Content-Type": "application/vnd.ms-sync.wbxml"}
    status, _, _ = shared.request("POST", f"{PATH}?{query()}", b"\x03" * (LIMIT + 1), headers)
    assert status == 413
    status, _, _ = shared.request("POST", f"{PATH}?{query()}", b"\x03" * (LIMIT + 1), {})
    assert status == 413  # before authentication: the body is refused as it arrives
    assert asyncio.run(shared.activesync.store.list_devices()) == []


@pytest.mark.kernel_independent
def test_announced_oversized_body_is_refused_unread(shared: Served) -> None:
    """A body announced as 100 MB is refused at once: the server does not wait for it."""
    conn = http.client.HTTPConnection("127.0.0.1", shared.port, timeout=5)
    try:
        conn.putrequest("POST", f"{PATH}?{query()}")
        conn.putheader("Authorization", basic())
        conn.putheader("MS-ASProtocolVersion", "14.1")
        conn.putheader("Content-Length", str(100 * 1024 * 1024))
        conn.endheaders()  # and no body at all
        answer = conn.getresponse()  # a timeout here means the adapter waited for the body
        assert answer.status == 413
    finally:
        conn.close()


@pytest.mark.kernel_independent
def test_bad_content_length_is_400(shared: Served) -> None:
    with socket.create_connection(("127.0.0.1", shared.port), timeout=5) as sock:
        sock.sendall(f"POST {PATH}?{query()} HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n".encode())
        head = sock.recv(1024)
    assert head.startswith(b"HTTP/1.") and head.split()[1] == b"400"


def test_provision_and_foldersync(served: Served) -> None:
    """Authentication, the policy key header, WBXML bodies both ways and the core's
    command path, over HTTP."""

    async def scenario() -> None:
        client = served.client(version="14.1")
        assert await client.provision() > 0
        reply = await client.command("FolderSync", FOLDERSYNC)
        assert reply.status == 200, reply
        assert reply.headers["content-type"].startswith("application/vnd.ms-sync.wbxml")
        assert reply.text(FH.Status) == "1"
        assert reply.text(FH.SyncKey) not in (None, "0")
        names = [n.findtext(FH.DisplayName) for n in reply.node.find(FH.Changes).findall(FH.Add)]  # type: ignore[union-attr]
        assert "Inbox" in names
        assert int(reply.headers["content-length"]) == len(reply.body)
        devices = await served.activesync.store.list_devices(USER)
        assert [d.device_id for d in devices] == ["Adapter1"]

    asyncio.run(scenario())


def test_unprovisioned_device_gets_the_protocol_status(served: Served) -> None:
    """14.1: HTTP 200 with Status 142 in WBXML; 12.1: HTTP 449 (MS-ASPROV 3.2.5.1)."""

    async def scenario() -> None:
        reply = await served.client(version="14.1").command("FolderSync", FOLDERSYNC)
        assert (reply.status, reply.text(FH.Status)) == (200, "142")
        reply = await served.client(version="12.1").command("FolderSync", FOLDERSYNC)
        assert reply.status == 449 and reply.body == b""

    asyncio.run(scenario())


def test_malformed_wbxml_is_refused_and_stores_nothing(served: Served) -> None:
    served.activesync.policy = no_provisioning

    async def scenario() -> None:
        client = served.client(version="14.1")
        reply = await client.raw("FolderSync", b"\x03\x01j\x00\x45\x52\x03")  # truncated WBXML
        assert reply.status == 200 and reply.text(FH.Status) == "102"
        state = await served.activesync.store.load(USER, "Adapter1", "hierarchy")
        assert state is None

    asyncio.run(scenario())


class RecordingActiveSync(ActiveSync):
    """Test-only: remembers the requests the adapters hand over, then answers as usual."""

    seen: list[HTTPRequest]

    async def handle(self, http: HTTPRequest) -> HTTPResponse:
        self.seen.append(http)
        return await super().handle(http)


@pytest.mark.kernel_independent
def test_requests_are_translated_faithfully(tmp_path: Path) -> None:
    """Header names lower case, the raw query as latin-1 text, the peer's address, the
    body as sent, by both adapters."""
    _, store = make_app(tmp_path)
    recording = RecordingActiveSync(store, MemoryStateStore(), authenticate=store.authenticate)
    recording.seen = []
    raw_query = b"Cmd=Sync&User=alice&DeviceId=D1&DeviceType=T&x=%41\xe9"
    messages = [{"type": "http.request", "body": b"ab", "more_body": True},
                {"type": "http.request", "body": b"", "more_body": True},
                {"type": "http.request", "body": b"cd", "more_body": False}]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": PATH, "query_string": raw_query, "client": ("10.1.2.3", 5555),
             "headers": [(b"X-Mixed-Case", b"V\xe9"), (b"content-length", b"4"), (b"Authorization", b"Basic x"),
                         (b"MS-ASProtocolVersion", b"14.1")]}
    asyncio.run(ASGIApp(recording)(scope, receive, send))
    environ = {"REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": PATH, "QUERY_STRING": raw_query.decode("latin-1"),
               "REMOTE_ADDR": "10.1.2.3", "HTTP_X_MIXED_CASE": "V\xe9", "CONTENT_LENGTH": "4", "CONTENT_TYPE": "",
               "HTTP_AUTHORIZATION": "Basic x", "HTTP_MS_ASPROTOCOLVERSION": "14.1", "wsgi.input": io.BytesIO(b"abcdEXTRA")}
    wsgi = WSGIApp(recording)
    started: list[Any] = []
    chunks = wsgi(environ, lambda status, headers: started.append((status, headers)))
    wsgi.close()

    assert len(recording.seen) == 2
    for request in recording.seen:
        assert (request.method, request.path, request.client, request.body) == ("POST", PATH, "10.1.2.3", b"abcd")
        assert request.query == "Cmd=Sync&User=alice&DeviceId=D1&DeviceType=T&x=%41\xe9"
        assert request.header("x-mixed-case") == "V\xe9"
        assert request.header("authorization") == "Basic x"
    # Both answered the core's 401 with its challenge and a Content-Length.
    assert sent[0]["status"] == 401 and (b"content-length", b"0") in sent[0]["headers"]
    assert any(k == b"www-authenticate" for k, _ in sent[0]["headers"])
    assert started[0][0] == "401 Unauthorized" and ("Content-Length", "0") in started[0][1]
    assert b"".join(chunks) == b""
    store.close()


# -- ASGI only ------------------------------------------------------------------------------


@pytest.mark.kernel_independent
def test_asgi_chunked_body_over_the_limit_is_413(tmp_path: Path) -> None:
    activesync, store = make_app(tmp_path, config=Config(max_request_body=LIMIT))
    with uvicorn_server(ASGIApp(activesync)) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        chunks = iter([b"\x03" * 1500] * 3)  # no Content-Length: known only once 4500 bytes came
        conn.request("POST", f"{PATH}?{query()}", body=chunks, encode_chunked=True,
                     headers={"Authorization": basic(), "MS-ASProtocolVersion": "14.1"})
        assert conn.getresponse().status == 413
        conn.close()
    store.close()


@pytest.mark.kernel_independent
def test_asgi_lifespan_closes_the_state_store(tmp_path: Path) -> None:
    activesync, store = make_app(tmp_path)
    with uvicorn_server(ASGIApp(activesync)) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("OPTIONS", PATH, headers={"Authorization": basic()})
        assert conn.getresponse().status == 200
        conn.close()
        assert asyncio.run(activesync.store.list_devices()) == []  # open while serving
    with pytest.raises(StateError, match="closed"):
        asyncio.run(activesync.store.list_devices())
    store.close()


@pytest.mark.kernel_independent
def test_asgi_client_leaving_mid_body_leaves_nothing(tmp_path: Path) -> None:
    activesync, store = make_app(tmp_path)
    activesync.policy = no_provisioning
    with uvicorn_server(ASGIApp(activesync)) as port:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"POST {PATH}?{query()} HTTP/1.1\r\nHost: x\r\nAuthorization: {basic()}\r\n"
                         f"MS-ASProtocolVersion: 14.1\r\nContent-Length: 500\r\n\r\n".encode() + b"\x03\x01")
            time.sleep(0.1)
        time.sleep(0.2)
        assert asyncio.run(activesync.store.list_devices()) == []
        # The server goes on serving.
        status = _options_status(port)
        assert status == 200
    store.close()


@pytest.mark.kernel_independent
def test_asgi_client_leaving_a_long_poll_leaves_nothing(tmp_path: Path) -> None:
    activesync, store = make_app(tmp_path)
    activesync.policy = no_provisioning
    asgi = ASGIApp(activesync, disconnect_grace=0.2)
    with uvicorn_server(asgi) as port:
        url = f"http://127.0.0.1:{port}"

        async def prepare() -> None:
            client = Client(HTTPTransport(url), USER, PASSWORD, device_id="Adapter1", version="14.1")
            reply = await client.command("FolderSync", FOLDERSYNC)
            assert reply.text(FH.Status) == "1"

        asyncio.run(prepare())
        ping = from_xml('<Ping xmlns="Ping:"><HeartbeatInterval>300</HeartbeatInterval><Folders><Folder>'
                        "<Id>1</Id><Class>Email</Class></Folder></Folders></Ping>")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"POST {PATH}?{query('Ping')} HTTP/1.1\r\nHost: x\r\nAuthorization: {basic()}\r\n"
                         f"MS-ASProtocolVersion: 14.1\r\nContent-Type: application/vnd.ms-sync.wbxml\r\n"
                         f"Content-Length: {len(ping)}\r\n\r\n".encode() + ping)
            deadline = time.monotonic() + 5
            while not activesync._waiters:  # the Ping is now waiting
                assert time.monotonic() < deadline, "the Ping never waited"
                time.sleep(0.02)
        deadline = time.monotonic() + 5
        while activesync._waiters or activesync._locks:
            assert time.monotonic() < deadline, "the long poll outlived its client"
            time.sleep(0.02)
        assert _options_status(port) == 200
    store.close()


def test_asgi_refuses_websockets(tmp_path: Path) -> None:
    activesync, store = make_app(tmp_path)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    async def scenario() -> None:
        await ASGIApp(activesync)({"type": "websocket", "path": PATH, "headers": []}, receive, send)
        with pytest.raises(ValueError, match="scope type"):
            await ASGIApp(activesync)({"type": "telepathy"}, receive, send)

    asyncio.run(scenario())
    assert [m["type"] for m in sent] == ["websocket.close"]
    asyncio.run(activesync.store.close())
    store.close()


@pytest.mark.kernel_independent
def test_https_with_a_self_signed_certificate(tmp_path: Path) -> None:
    from eas.server import ensure_certificate

    cert, key, _ = ensure_certificate(tmp_path / "tls")
    activesync, store = make_app(tmp_path)
    with uvicorn_server(ASGIApp(activesync), ssl_certfile=str(cert), ssl_keyfile=str(key)) as port:

        async def scenario() -> None:
            trusting = Client(HTTPTransport(f"https://127.0.0.1:{port}", verify=False), USER, PASSWORD)
            assert (await trusting.options()).status == 200
            strict = Client(HTTPTransport(f"https://127.0.0.1:{port}"), USER, PASSWORD)
            with pytest.raises(ssl.SSLCertVerificationError):
                await strict.options()

        asyncio.run(scenario())
    store.close()


def test_http_transport_refuses_other_urls() -> None:
    with pytest.raises(ValueError):
        HTTPTransport("ftp://127.0.0.1/")
    with pytest.raises(ValueError):
        HTTPTransport("127.0.0.1:8080")


# -- WSGI only ------------------------------------------------------------------------------


@pytest.mark.kernel_independent
def test_wsgi_close_stops_the_loop_and_closes_the_store(tmp_path: Path) -> None:
    activesync, store = make_app(tmp_path)
    wsgi = WSGIApp(activesync)
    with wsgiref_server(wsgi) as port:
        assert _options_status(port) == 200
        loop_thread = wsgi._thread
        wsgi.close()
        assert not loop_thread.is_alive()
        assert _options_status(port) == 503  # served by a closed adapter
    with pytest.raises(StateError, match="closed"):
        asyncio.run(activesync.store.list_devices())
    wsgi.close()  # twice is harmless
    store.close()


@pytest.mark.kernel_independent
def test_wsgi_close_ends_a_waiting_long_poll(tmp_path: Path) -> None:
    activesync, store = make_app(tmp_path)
    activesync.policy = no_provisioning
    wsgi = WSGIApp(activesync)
    with wsgiref_server(wsgi) as port:

        async def prepare() -> None:
            client = Client(HTTPTransport(f"http://127.0.0.1:{port}"), USER, PASSWORD, device_id="Adapter1",
                            version="14.1")
            assert (await client.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "1"

        asyncio.run(prepare())
        ping = from_xml('<Ping xmlns="Ping:"><HeartbeatInterval>300</HeartbeatInterval><Folders><Folder>'
                        "<Id>1</Id><Class>Email</Class></Folder></Folders></Ping>")
        statuses: list[int] = []

        def long_poll() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", f"{PATH}?{query('Ping')}", body=ping, headers={
                "Authorization": basic(), "MS-ASProtocolVersion": "14.1",
                "Content-Type": "application/vnd.ms-sync.wbxml"})
            statuses.append(conn.getresponse().status)
            conn.close()

        worker = threading.Thread(target=long_poll)
        worker.start()
        deadline = time.monotonic() + 5
        while not activesync._waiters:
            assert time.monotonic() < deadline, "the Ping never waited"
            time.sleep(0.02)
        started = time.monotonic()
        wsgi.close()
        worker.join(5)
        assert statuses == [503] and time.monotonic() - started < 3
    store.close()


@pytest.mark.kernel_independent
def test_wsgi_requests_from_many_threads_share_one_loop(tmp_path: Path) -> None:
    """Concurrent WSGI workers all reach the core on the adapter's one loop."""
    activesync, store = make_app(tmp_path)
    with wsgiref_server(WSGIApp(activesync)) as port:
        results: list[int] = []
        threads = [threading.Thread(target=lambda: results.append(_options_status(port))) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 8
    store.close()


def _options_status(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("OPTIONS", PATH, headers={"Authorization": basic()})
        answer = conn.getresponse()
        answer.read()
        return answer.status
    finally:
        conn.close()
