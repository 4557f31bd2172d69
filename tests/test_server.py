"""The reference server's parts, in process: the notify socket, the TLS certificate, the
data dir, and ``build``. Only the Ping wake-up goes through the codec, so only it runs
under both kernels."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import socket
import ssl
import stat
import threading
from collections.abc import Collection
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from eas import notify, server
from eas.notify import MAX_DATAGRAM, NotifierInUse, UnixSocketNotifier

# -- the notify socket ------------------------------------------------------------------

@pytest.mark.kernel_independent
@pytest.mark.parametrize(("user", "folders"), [
    ("alice@example.com", ("1", "17")),
    ("bob@example.com", ()),
    ("we%ird\tname,with\nbreaks\r", ("a,b", "c\td", "%41", "é")),
    ("!account", ("!x",)),
])
def test_datagram_round_trip(user: str, folders: tuple[str, ...]) -> None:
    data = notify.encode(user, folders)
    assert data.count(b"\t") == 1 and b"\n" not in data
    assert notify.decode(data) == notify.Message("change", user, folders)
    assert notify.decode(notify.encode_account(user)) == notify.Message("account", user)


@pytest.mark.kernel_independent
def test_oversized_folder_list_becomes_anywhere() -> None:
    folders = [str(i) for i in range(5000)]
    data = notify.encode("alice@example.com", folders)
    assert len(data) <= MAX_DATAGRAM
    assert notify.decode(data) == notify.Message("change", "alice@example.com", ())


@pytest.mark.kernel_independent
@pytest.mark.parametrize("data", [b"", b"no tab", b"\t1,2", b"a\tb\tc", b"a\nb\t1", b"\xff\xfe\t1",
                                  b"!account\t", b"!other\tuser",
                                  b"u\t" + b"1" * MAX_DATAGRAM])
def test_malformed_datagrams_are_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        notify.decode(data)


@pytest.mark.kernel_independent
def test_publish_reaches_the_subscriber_and_close_removes_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"

    async def scenario() -> list[tuple[str, tuple[str, ...]]]:
        got: list[tuple[str, tuple[str, ...]]] = []
        arrived = asyncio.Event()

        def callback(user: str, folders: object) -> None:
            got.append((user, tuple(folders)))  # type: ignore[arg-type]
            if len(got) == 3:
                arrived.set()

        listener = UnixSocketNotifier(path)
        await listener.subscribe(callback, on_account=accounts.append)
        assert stat.S_ISSOCK(os.lstat(path).st_mode)
        assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
        publisher = UnixSocketNotifier(path)
        publisher.publish_account("carol@example.com")
        publisher.publish("alice@example.com", ["5"])
        # A malformed datagram in between is dropped, not fatal.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"garbage", str(path))
        # Published from another thread, as a store's watcher may be.
        t = threading.Thread(target=publisher.publish, args=("bob@example.com", ()))
        t.start()
        t.join()
        publisher.publish("alice@example.com", ["1", "2"])
        await asyncio.wait_for(arrived.wait(), 5)
        await listener.close()
        assert not path.exists()
        await listener.close()  # twice is harmless
        return got

    accounts: list[str] = []
    got = asyncio.run(scenario())
    assert sorted(got) == sorted([("alice@example.com", ("5",)), ("bob@example.com", ()),
                                  ("alice@example.com", ("1", "2"))])
    assert accounts == ["carol@example.com"]


@pytest.mark.kernel_independent
def test_publish_without_a_server_is_silent(tmp_path: Path) -> None:
    UnixSocketNotifier(tmp_path / "notify.sock").publish("alice@example.com", ["1"])
    UnixSocketNotifier(tmp_path / "missing" / "notify.sock").publish("alice@example.com")
    # A stale socket left by a server that died: nobody listens, still silent.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(str(tmp_path / "stale.sock"))
    stale.close()
    UnixSocketNotifier(tmp_path / "stale.sock").publish("alice@example.com", ["1"])
    # A regular file where the socket should be.
    (tmp_path / "file.sock").write_text("x")
    UnixSocketNotifier(tmp_path / "file.sock").publish("alice@example.com", ["1"])
    # Publishing raised nothing and created nothing: no socket, no folder, the file as it was.
    assert not (tmp_path / "notify.sock").exists() and not (tmp_path / "missing").exists()
    assert (tmp_path / "file.sock").read_text() == "x"


@pytest.mark.kernel_independent
def test_stale_socket_is_replaced_live_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(str(path))
    stale.close()

    async def scenario() -> None:
        first = UnixSocketNotifier(path)
        await first.subscribe(lambda user, folders: None)
        second = UnixSocketNotifier(path)
        with pytest.raises(NotifierInUse):
            await second.subscribe(lambda user, folders: None)
        assert path.exists()  # the refused one did not take the live socket away
        await second.close()
        assert path.exists()
        await first.close()
        assert not path.exists()

    asyncio.run(scenario())


@pytest.mark.kernel_independent
def test_a_regular_file_in_the_way_is_not_deleted(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    path.write_text("keep me")

    async def scenario() -> None:
        with pytest.raises(FileExistsError):
            await UnixSocketNotifier(path).subscribe(lambda user, folders: None)

    asyncio.run(scenario())
    assert path.read_text() == "keep me"


@pytest.mark.kernel_independent
def test_socket_path_longer_than_sun_path(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "notify.sock"
    assert len(str(path)) > 108

    async def scenario() -> tuple[str, tuple[str, ...]]:
        got: asyncio.Future[tuple[str, tuple[str, ...]]] = asyncio.get_running_loop().create_future()
        def callback(user: str, folders: Collection[str]) -> None:
            if not got.done():
                got.set_result((user, tuple(folders)))

        listener = UnixSocketNotifier(path)
        await listener.subscribe(callback)
        assert path.exists()
        UnixSocketNotifier(path).publish("alice@example.com", ["9"])
        result = await asyncio.wait_for(got, 5)
        await listener.close()
        assert not path.exists()
        return result

    assert asyncio.run(scenario()) == ("alice@example.com", ("9",))


@pytest.mark.kernel_independent
def test_a_failing_callback_does_not_stop_the_listener(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"

    async def scenario() -> list[str]:
        seen: list[str] = []
        done = asyncio.Event()

        def callback(user: str, folders: object) -> None:
            seen.append(user)
            if user == "boom":
                raise RuntimeError("boom")
            done.set()

        listener = UnixSocketNotifier(path)
        await listener.subscribe(callback)
        publisher = UnixSocketNotifier(path)
        publisher.publish("boom")
        publisher.publish("after")
        await asyncio.wait_for(done.wait(), 5)
        await listener.close()
        return seen

    assert asyncio.run(scenario()) == ["boom", "after"]


# -- TLS ---------------------------------------------------------------------------------

@pytest.mark.kernel_independent
def test_certificate_is_made_once_and_reused(tmp_path: Path) -> None:
    tls = tmp_path / "tls"
    cert, key, created = server.ensure_certificate(tls, ("mail.example.org", "0.0.0.0", "bücher.example", "bad\x00"))
    assert created
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tls).st_mode) == 0o700
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = san.get_values_for_type(x509.DNSName)
    ips = san.get_values_for_type(x509.IPAddress)
    assert "localhost" in dns and "mail.example.org" in dns and socket.gethostname().lower() in dns
    assert "xn--bcher-kva.example" in dns and not any("bad" in name for name in dns)
    assert ipaddress.ip_address("127.0.0.1") in ips and ipaddress.ip_address("::1") in ips
    assert ipaddress.ip_address("0.0.0.0") not in ips
    life = parsed.not_valid_after_utc - parsed.not_valid_before_utc
    assert datetime.timedelta(days=729) < life < datetime.timedelta(days=732)
    eku = parsed.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert parsed.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    before = cert.read_bytes(), key.read_bytes()
    again = server.ensure_certificate(tls, ("other.example.org",))
    assert again == (cert, key, False)
    assert (cert.read_bytes(), key.read_bytes()) == before
    fingerprint = server.certificate_fingerprint(cert)
    assert len(fingerprint.split(":")) == 32


@pytest.mark.kernel_independent
def test_certificate_serves_a_tls_handshake_that_verifies(tmp_path: Path) -> None:
    """The certificate and key load into ssl, and a client trusting the certificate
    verifies it for 127.0.0.1 and localhost."""
    cert, key, _ = server.ensure_certificate(tmp_path / "tls")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")

    t = threading.Thread(target=accept)
    t.start()
    try:
        for name in ("127.0.0.1", "localhost"):
            client_ctx = ssl.create_default_context(cafile=str(cert))
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                    client_ctx.wrap_socket(raw, server_hostname=name) as tls:
                assert tls.recv(2) == b"ok"
    finally:
        t.join(5)
        listener.close()


# -- the data dir --------------------------------------------------------------------------

@pytest.mark.kernel_independent
def test_data_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(server.DATA_DIR_ENV, raising=False)
    assert server.data_dir() == Path("eas-data")
    monkeypatch.setenv(server.DATA_DIR_ENV, str(tmp_path / "env"))
    assert server.data_dir() == tmp_path / "env"
    assert server.data_dir(tmp_path / "arg") == tmp_path / "arg"
    made = server.prepare_data_dir(tmp_path / "a" / "b")
    assert made.is_dir() and stat.S_IMODE(os.stat(made).st_mode) == 0o700


# -- build, and a wake-up through the socket ---------------------------------------------

def test_build_serves_a_data_dir_and_the_socket_wakes_a_ping(tmp_path: Path) -> None:
    """A Ping held by ``build``'s server returns when another store object on the same
    mail.db (as ``eas mail deliver`` has) delivers and publishes on the notify socket."""
    from eas.store import ReferenceStore
    from eas.tags import FolderHierarchy as FH
    from eas.tags import Ping
    from eas.testing.harness import client

    data = tmp_path / "data"
    app, store = server.build(data)
    assert {p.name for p in data.iterdir()} >= {"mail.db", "state.db"}
    store.add_user("bob@example.com", "pw")

    async def scenario() -> None:
        listener = server.notifier(data)
        await listener.subscribe(app.notify)
        outside = ReferenceStore(data / "mail.db")
        try:
            c = client(app, "bob@example.com", "pw", version="14.1")
            await c.provision()
            r = await c.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>')
            changes = r.node.find(FH.Changes) if r.node is not None else None
            assert changes is not None, r
            inbox = next(a.findtext(FH.ServerId) for a in changes.findall(FH.Add) if a.findtext(FH.Type) == "2")
            assert isinstance(inbox, str)
            ping = asyncio.ensure_future(c.command(
                "Ping", '<Ping xmlns="Ping:"><HeartbeatInterval>60</HeartbeatInterval><Folders><Folder>'
                        f'<Id>{inbox}</Id><Class>Email</Class></Folder></Folders></Ping>'))
            await asyncio.sleep(0.3)
            assert not ping.done()
            # Without the notifier, the other store's delivery would go unheard for 60 s.
            notify.publish_changes(outside, server.notifier(data))
            outside.deliver("bob@example.com", b"From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n")
            reply = await asyncio.wait_for(ping, 5)
            assert reply.text(Ping.Status) == "2", reply.xml
        finally:
            outside.close()
            await listener.close()
            await app.store.close()
            store.close()

    asyncio.run(scenario())
    assert not (data / "notify.sock").exists()


@pytest.mark.kernel_independent
def test_banner_says_where_and_how(tmp_path: Path) -> None:
    app, store = server.build(tmp_path / "d")
    try:
        tls = server.ServeOptions(data_dir=tmp_path / "d", demo=True)
        lines = "\n".join(server.banner(tls, app, password="s3cret", fingerprint="AA:BB"))
        assert "https://127.0.0.1:8443/Microsoft-Server-ActiveSync" in lines
        assert "demo@example.com password s3cret" in lines and "AA:BB" in lines
        assert "--host 0.0.0.0" in lines
        plain = server.ServeOptions(data_dir=tmp_path / "d", tls=False, host="mail.example.org", demo=True)
        lines = "\n".join(server.banner(plain, app, password=None, fingerprint=None))
        assert "http://mail.example.org:8080/Microsoft-Server-ActiveSync" in lines
        assert "password is unchanged" in lines and "SSL off" in lines and "--host 0.0.0.0" not in lines
    finally:
        asyncio.run(app.store.close())
        store.close()


@pytest.mark.kernel_independent
def test_demo_account_is_made_once(tmp_path: Path) -> None:
    from eas.store import ReferenceStore

    with ReferenceStore(tmp_path / "mail.db") as store:
        password = server.ensure_demo(store)
        assert password and len(password) >= 12
        assert server.ensure_demo(store) is None

        async def check() -> tuple[str | None, int]:
            inbox = store.folder_id(server.DEMO_USER, "Inbox")
            return (await store.authenticate(server.DEMO_USER, password),
                    len(await store.item_stamps(server.DEMO_USER, inbox)))

        account, count = asyncio.run(check())
    assert account == server.DEMO_USER and count >= 3
