"""``eas serve``, ``eas user`` and ``eas mail deliver`` as real processes, over real HTTP
on loopback (plain and TLS), sharing one data dir."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from eas.tags import AirSync, Ping
from eas.tags import FolderHierarchy as FH
from eas.testing.client import Client, HTTPTransport

MESSAGE = (b"From: Carol <carol@example.org>\r\nTo: bob@example.com\r\nSubject: Lunch?\r\n"
           b"Date: Mon, 6 Jan 2025 12:00:00 +0000\r\nMessage-ID: <lunch@example.org>\r\n\r\nAt noon?\r\n")


def _env(implementation: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("EAS_DATA_DIR", None)
    if implementation == "python":
        env["EAS_PURE_PYTHON"] = "1"
    return env


def eas(*args: str, data_dir: Path, stdin: bytes = b"", implementation: str = "c",
        timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    """``python -m eas ARGS --data-dir DATA_DIR`` to completion."""
    return subprocess.run([sys.executable, "-m", "eas", *args, "--data-dir", str(data_dir)], input=stdin,
                          check=False, capture_output=True, env=_env(implementation), timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    stdout: bytes = b""
    stderr: bytes = b""


@contextmanager
def serving(data_dir: Path, *extra: str, implementation: str = "c") -> Iterator[Running]:
    """``eas serve`` in a subprocess until the block ends (then SIGTERM). Ready once its
    banner is out: the port, certificate and accounts are all set up by then."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "eas", "serve", "--port", str(port), "--data-dir", str(data_dir),
         "--log-level", "warning", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(implementation))
    running = Running(process, port, data_dir)
    out: list[bytes] = []
    err: list[bytes] = []
    ready = threading.Event()

    def drain(stream: IO[bytes], into: list[bytes], banner: bool) -> None:
        for line in stream:
            into.append(line)
            if banner and line.startswith(b"eas: ActiveSync at "):
                ready.set()
        ready.set()  # at EOF: the process is gone

    readers = [threading.Thread(target=drain, args=(process.stdout, out, True), daemon=True),
               threading.Thread(target=drain, args=(process.stderr, err, False), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        ready.wait(20)
        if process.poll() is not None or not out:
            raise AssertionError(f"eas serve did not start ({process.poll()}): {b''.join(err).decode()}")
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        finally:
            for reader in readers:
                reader.join(5)
            running.stdout, running.stderr = b"".join(out), b"".join(err)


def http(port: int, cafile: Path | None = None) -> HTTPTransport:
    """The test client's HTTP transport to the server; with ``cafile``, HTTPS trusting
    that certificate only (and checking the host name against it)."""
    if cafile is None:
        return HTTPTransport(f"http://127.0.0.1:{port}")
    transport = HTTPTransport(f"https://127.0.0.1:{port}")
    transport.ssl_context = ssl.create_default_context(cafile=str(cafile))
    return transport


# -- eas user ------------------------------------------------------------------------------

@pytest.mark.kernel_independent
def test_user_add_list_passwd(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = eas("user", "add", "Alice@Example.com", "--password", "first", data_dir=data)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"added alice@example.com\n", b"")
    r = eas("user", "add", "bob@example.com", data_dir=data, stdin=b"from-stdin\nignored\n")
    assert r.returncode == 0, r.stderr
    r = eas("user", "add", "carol@example.com", "--generate", data_dir=data)
    assert r.returncode == 0, r.stderr
    carol_password = re.search(rb"password: (\S+)", r.stdout)
    assert carol_password and len(carol_password.group(1)) >= 12

    r = eas("user", "list", data_dir=data)
    assert (r.returncode, r.stdout) == (0, b"alice@example.com\nbob@example.com\ncarol@example.com\n")
    # $EAS_DATA_DIR stands in for --data-dir.
    by_env = subprocess.run([sys.executable, "-m", "eas", "user", "list"], check=False, capture_output=True,
                            env={**_env("c"), "EAS_DATA_DIR": str(data)}, cwd=tmp_path, timeout=30)
    assert by_env.stdout == r.stdout and not (tmp_path / "eas-data").exists()

    r = eas("user", "passwd", "ALICE@example.com", data_dir=data, stdin=b"second\n")
    assert (r.returncode, r.stdout) == (0, b"password of alice@example.com changed\n")

    from eas.store import ReferenceStore

    with ReferenceStore(data / "mail.db") as store:
        async def logins() -> list[str | None]:
            return [await store.authenticate("alice@example.com", "first"),
                    await store.authenticate("alice@example.com", "second"),
                    await store.authenticate("bob@example.com", "from-stdin"),
                    await store.authenticate("carol@example.com", carol_password.group(1).decode())]

        assert asyncio.run(logins()) == [None, "alice@example.com", "bob@example.com", "carol@example.com"]
    assert os.stat(data).st_mode & 0o777 == 0o700


@pytest.fixture(scope="module")
def alice_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with one account, shared by the cases that must leave it as it is."""
    data = tmp_path_factory.mktemp("alice") / "data"
    assert eas("user", "add", "alice@example.com", "--password", "keep", data_dir=data).returncode == 0
    return data


@pytest.mark.kernel_independent
@pytest.mark.parametrize(("args", "stdin", "message"), [
    (("user", "add", "not-an-address", "--password", "x"), b"", b"eas: not an email address: 'not-an-address'\n"),
    (("user", "add", "a@@example.com", "--password", "x"), b"", b"eas: not an email address: 'a@@example.com'\n"),
    (("user", "add", "a b@example.com", "--password", "x"), b"", b"eas: not an email address: 'a b@example.com'\n"),
    (("user", "add", "a@localhost", "--password", "x"), b"", b"eas: not an email address: 'a@localhost'\n"),
    (("user", "add", "dora@example.com"), b"", b"eas: empty password\n"),
    (("user", "add", "dora@example.com"), b"\n", b"eas: empty password\n"),
    (("user", "add", "alice@example.com", "--password", "x"), b"",
     b"eas: user alice@example.com exists (eas user passwd changes the password)\n"),
    (("user", "passwd", "nobody@example.com", "--password", "x"), b"", b"eas: no such user: nobody@example.com\n"),
    (("user", "add", "dora@example.com", "--password", "x", "--generate"), b"",
     b"eas user add: argument --generate: not allowed with argument --password (see eas user add --help)\n"),
    (("user", "frobnicate"), b"", None),
])
def test_user_bad_input(alice_only: Path, args: tuple[str, ...], stdin: bytes, message: bytes | None) -> None:
    data = alice_only
    r = eas(*args, data_dir=data, stdin=stdin)
    assert r.returncode == 2
    assert r.stdout == b""
    assert r.stderr.count(b"\n") == 1
    if message is not None:
        assert r.stderr == message
    assert eas("user", "list", data_dir=data).stdout == b"alice@example.com\n"


# -- eas mail deliver ------------------------------------------------------------------------

@pytest.mark.kernel_independent
def test_deliver_from_file_and_stdin_and_bad_input(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert eas("user", "add", "bob@example.com", "--password", "pw", data_dir=data).returncode == 0
    message = tmp_path / "lunch.eml"
    message.write_bytes(MESSAGE)
    r = eas("mail", "deliver", "bob@example.com", str(message), data_dir=data)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"delivered to bob@example.com Inbox: ")
    # mbox envelope line, another folder, address in other case, from stdin
    r = eas("mail", "deliver", "BOB@example.com", "-", "--folder", "sent items", data_dir=data,
            stdin=b"From carol@example.org Mon Jan  6 12:00:00 2025\n" + MESSAGE)
    assert r.returncode == 0, r.stderr

    bad = [
        (("mail", "deliver", "nobody@example.com", str(message)), b"", 2, b"eas: no such user: nobody@example.com\n"),
        (("mail", "deliver", "bob@example.com", str(tmp_path / "missing.eml")), b"", 1,
         f"eas: No such file or directory: {tmp_path / 'missing.eml'}\n".encode()),
        (("mail", "deliver", "bob@example.com", str(tmp_path)), b"", 1,
         f"eas: Is a directory: {tmp_path}\n".encode()),
        (("mail", "deliver", "bob@example.com"), b"", 2, b"eas: empty message on standard input\n"),
        (("mail", "deliver", "bob@example.com", "-"), b"\r\n \n", 2, b"eas: empty message on standard input\n"),
        (("mail", "deliver", "bob@example.com"), b"just some text\n", 2,
         b"eas: not an RFC 5322 message: it does not begin with a header field\n"),
        (("mail", "deliver", "bob@example.com", str(message), "--folder", "Nope"), b"", 2,
         b"eas: no folder 'Nope'\n"),
    ]
    for args, stdin, code, stderr in bad:
        r = eas(*args, data_dir=data, stdin=stdin)
        assert (r.returncode, r.stderr, r.stdout) == (code, stderr, b""), args

    from eas.store import ReferenceStore

    with ReferenceStore(data / "mail.db") as store:
        async def counts() -> dict[str, int]:
            folders = await store.folders("bob@example.com")
            return {f.name: len(await store.item_stamps("bob@example.com", f.id)) for f in folders}

        got = asyncio.run(counts())
    assert got["Inbox"] == 1 and got["Sent Items"] == 1 and sum(got.values()) == 2


@pytest.mark.kernel_independent
def test_data_dir_that_is_missing_or_unusable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    r = eas("user", "add", "a@example.com", "--password", "x", data_dir=tmp_path / "file")
    assert r.returncode == 1 and r.stderr.count(b"\n") == 1 and r.stderr.startswith(b"eas: ")
    for args in (("user", "list"), ("user", "passwd", "a@example.com", "--password", "x"),
                 ("mail", "deliver", "a@example.com")):
        r = eas(*args, data_dir=tmp_path / "typo", stdin=MESSAGE)
        assert (r.returncode, r.stderr) == (2, f"eas: no mail store in {tmp_path / 'typo'} "
                                               "(eas user add or eas serve makes one)\n".encode())
    assert not (tmp_path / "typo").exists()


# -- eas serve -----------------------------------------------------------------------------

def test_serve_plain_http_and_wake_on_deliver(tmp_path: Path, implementation: str) -> None:
    """Provision and FolderSync over HTTP; a Ping held by the server returns as soon as
    ``eas mail deliver`` runs in another process; the notify socket goes at exit."""
    data = tmp_path / "data"
    assert eas("user", "add", "bob@example.com", "--password", "pw", data_dir=data).returncode == 0
    with serving(data, "--no-tls", implementation=implementation) as server:
        sock = data / "notify.sock"
        assert sock.exists() and sock.stat().st_mode & 0o777 == 0o600

        async def scenario() -> None:
            c = Client(http(server.port), "bob@example.com", "pw", version="14.1")
            options = await c.options()
            assert options.status == 200
            assert "14.1" in options.headers["ms-asprotocolversions"].split(",")
            denied = await Client(http(server.port), "bob@example.com", "wrong").options()
            assert denied.status == 401
            # A password changed by `eas user passwd` in another process: the server
            # forgets the login it had cached, so the old password stops working at once.
            passwd = await asyncio.to_thread(eas, "user", "passwd", "bob@example.com", "--password", "pw2",
                                             data_dir=data)
            assert passwd.returncode == 0, passwd.stderr
            assert (await c.options()).status == 401
            c.password = "pw2"
            assert (await c.options()).status == 200
            # Malformed WBXML over the wire: the protocol's status, and the server lives on.
            bad = await c.raw("FolderSync", b"\x03\x01\x6a\x00\x45\x03ab")
            assert bad.status in (200, 400, 449), bad
            await c.provision()
            r = await c.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>')
            assert r.status == 200 and r.node is not None, r
            changes = r.node.find(FH.Changes)
            assert changes is not None, r.xml
            inbox = next(add.findtext(FH.ServerId) for add in changes.findall(FH.Add) if add.findtext(FH.Type) == "2")
            assert isinstance(inbox, str)
            await _ping_wakes(c, data, inbox, implementation)
            # A Ping held at shutdown (on an empty folder: it would wait 300 s) is answered
            # with status 1 at once, and the SIGTERM exit is quick and clean.
            deleted = next(a.findtext(FH.ServerId) for a in changes.findall(FH.Add) if a.findtext(FH.Type) == "4")
            assert isinstance(deleted, str)
            held = asyncio.ensure_future(c.command(
                "Ping", '<Ping xmlns="Ping:"><HeartbeatInterval>300</HeartbeatInterval><Folders><Folder>'
                        f'<Id>{deleted}</Id><Class>Email</Class></Folder></Folders></Ping>'))
            await asyncio.sleep(0.5)
            assert not held.done()
            stopping = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            answer = await asyncio.wait_for(held, 10)
            assert answer.text(Ping.Status) == "1", answer.xml
            code = await asyncio.to_thread(server.process.wait, 15)
            assert code == 0 and time.monotonic() - stopping < 2.5  # under the 3 s grace period

        asyncio.run(scenario())
    assert server.process.returncode == 0, server.stderr
    assert not (data / "notify.sock").exists()


async def _ping_wakes(c: Client, data: Path, inbox: str, implementation: str) -> None:
    ping = asyncio.ensure_future(c.command(
        "Ping", '<Ping xmlns="Ping:"><HeartbeatInterval>300</HeartbeatInterval><Folders><Folder>'
                f'<Id>{inbox}</Id><Class>Email</Class></Folder></Folders></Ping>'))
    await asyncio.sleep(1.0)
    assert not ping.done(), "the Ping returned before anything changed"
    started = time.monotonic()
    r = await asyncio.to_thread(eas, "mail", "deliver", "bob@example.com", data_dir=data, stdin=MESSAGE,
                                implementation=implementation)
    assert r.returncode == 0, r.stderr
    reply = await asyncio.wait_for(ping, 10)
    assert time.monotonic() - started < 10
    assert reply.text(Ping.Status) == "2", reply.xml  # changes in the listed folders
    assert inbox in reply.xml


@pytest.mark.kernel_independent
def test_serve_tls_with_generated_certificate_and_demo(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with serving(data, "--demo") as server:
        cert = data / "tls" / "cert.pem"
        assert cert.exists() and (data / "tls" / "key.pem").stat().st_mode & 0o777 == 0o600

        async def options(password: str) -> int:
            c = Client(http(server.port, cert), "demo@example.com", password)
            return (await c.options()).status
        server.process.send_signal(signal.SIGTERM)  # stopping during startup is clean too
    out = server.stdout.decode()
    match = re.search(r"demo account demo@example.com password (\S+)", out)
    assert match, out
    assert f"https://127.0.0.1:{server.port}/Microsoft-Server-ActiveSync" in out
    assert "SHA-256" in out
    first_cert = cert.read_bytes()

    with serving(data, "--demo") as server:
        assert asyncio.run(options(match.group(1))) == 200
        assert asyncio.run(options("wrong")) == 401
        # Without trusting the certificate, verification fails: it is really TLS.
        with pytest.raises(ssl.SSLCertVerificationError):
            asyncio.run(Client(HTTPTransport(f"https://127.0.0.1:{server.port}"), "demo@example.com",
                               match.group(1)).options())
    assert "password is unchanged" in server.stdout.decode()
    assert match.group(1) not in server.stdout.decode()
    assert cert.read_bytes() == first_cert
    assert server.process.returncode == 0


@pytest.mark.kernel_independent
def test_serve_refuses_a_second_server_on_the_same_data_dir_and_bad_options(tmp_path: Path) -> None:
    data = tmp_path / "data"

    def serve(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "eas", "serve", "--data-dir", str(data), *args],
                              check=False, capture_output=True, env=_env("c"), timeout=30)

    with serving(data, "--no-tls") as first:
        r = serve("--no-tls", "--port", str(free_port()), "--demo")
        assert (r.returncode, r.stdout) == (1, b"")
        assert r.stderr == f"eas: another server is listening: {data / 'notify.sock'}\n".encode()
        assert (data / "notify.sock").exists()  # the first one's socket is left alone
        assert first.process.poll() is None
        # The port is taken (by the first server): one line, exit 1, no demo account made.
        r = serve("--no-tls", "--port", str(first.port), "--demo", "--data-dir", str(tmp_path / "other"))
        assert (r.returncode, r.stdout) == (1, b"")
        assert r.stderr == f"eas: cannot listen on 127.0.0.1 port {first.port}: Address already in use\n".encode()
        assert not (tmp_path / "other" / "notify.sock").exists()
    assert eas("user", "list", data_dir=tmp_path / "other").stdout == b""
    assert eas("user", "list", data_dir=data).stdout == b""

    (tmp_path / "junk.pem").write_text("not a certificate\n")
    cases = [
        (("--cert", "x.pem"), 2, b"eas: --cert and --key go together\n"),
        (("--no-tls", "--cert", "a", "--key", "b"), 2, b"eas: --no-tls and --cert exclude each other\n"),
        (("--port", "70000"), 2, b"eas: port out of range: 70000\n"),
        (("--log-level", "loud"), 2, None),
        (("--min-heartbeat", "100", "--max-heartbeat", "50"), 2,
         b"eas: need 1 <= --min-heartbeat <= --max-heartbeat\n"),
        (("--max-window-size", "0"), 2,
         b"eas: --notification-latency must be >= 0 and --max-window-size >= 1\n"),
        (("--cert", str(tmp_path / "none.pem"), "--key", str(tmp_path / "none.pem")), 1,
         f"eas: No such file or directory: {tmp_path / 'none.pem'}\n".encode()),
        (("--cert", str(tmp_path / "junk.pem"), "--key", str(tmp_path / "junk.pem"), "--port", str(free_port())), 2,
         f"eas: not a PEM certificate: {tmp_path / 'junk.pem'}\n".encode()),
    ]
    for args, code, message in cases:
        r = serve(*args)
        assert r.returncode == code, (args, r.stderr)
        assert r.stderr.count(b"\n") == 1, r.stderr
        if message is not None:
            assert r.stderr == message
    assert not (data / "notify.sock").exists()


def test_serve_tuning_flags_reach_the_core(tmp_path: Path) -> None:
    """--max-heartbeat bounds what a Ping may ask (status 5 naming the bound), and
    --max-window-size bounds a Sync window."""
    data = tmp_path / "data"
    assert eas("user", "add", "bob@example.com", "--password", "pw", data_dir=data).returncode == 0
    for i in range(3):
        message = f"From: a@example.com\r\nTo: bob@example.com\r\nSubject: {i}\r\n\r\nbody\r\n".encode()
        assert eas("mail", "deliver", "bob@example.com", data_dir=data, stdin=message).returncode == 0
    with serving(data, "--no-tls", "--max-heartbeat", "120", "--max-window-size", "2") as server:

        async def scenario() -> None:
            c = Client(http(server.port), "bob@example.com", "pw", version="14.1")
            await c.provision()
            r = await c.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>')
            assert r.node is not None
            changes = r.node.find(FH.Changes)
            assert changes is not None
            inbox = next(a.findtext(FH.ServerId) for a in changes.findall(FH.Add) if a.findtext(FH.Type) == "2")
            ping = await c.command("Ping", '<Ping xmlns="Ping:"><HeartbeatInterval>600</HeartbeatInterval><Folders>'
                                           f'<Folder><Id>{inbox}</Id><Class>Email</Class></Folder></Folders></Ping>')
            assert (ping.text(Ping.Status), ping.text(Ping.HeartbeatInterval)) == ("5", "120")
            sync = ('<Sync xmlns="AirSync:"><Collections><Collection><SyncKey>{key}</SyncKey>'
                    f'<CollectionId>{inbox}</CollectionId>{{more}}</Collection></Collections></Sync>')
            first = await c.command("Sync", sync.format(key="0", more=""))
            key = first.text(AirSync.Collections, AirSync.Collection, AirSync.SyncKey)
            window = await c.command("Sync", sync.format(key=key, more="<WindowSize>100</WindowSize>"))
            collection = window.node.find(AirSync.Collections, AirSync.Collection)  # type: ignore[union-attr]
            assert collection is not None and collection.find(AirSync.MoreAvailable) is not None
            assert len(collection.find(AirSync.Commands).findall(AirSync.Add)) == 2  # type: ignore[union-attr]

        asyncio.run(scenario())


def test_serve_merge_flag_reaches_the_core(tmp_path: Path) -> None:
    """--merge-folders-for: a device whose DeviceType matches sees one calendar, others all."""
    data = tmp_path / "data"
    assert eas("user", "add", "bob@example.com", "--password", "pw", data_dir=data).returncode == 0
    with serving(data, "--no-tls", "--merge-folders-for", "SAMSUNG") as server:

        async def calendars(c: Client) -> list[str]:
            await c.provision()
            r = await c.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>')
            changes = r.node.find(FH.Changes) if r.node is not None else None
            assert changes is not None
            return sorted(str(a.findtext(FH.DisplayName)) for a in changes.findall(FH.Add)
                          if a.findtext(FH.Type) in ("8", "13"))

        async def scenario() -> None:
            phone = Client(http(server.port), "bob@example.com", "pw", version="14.1", device_id="Phone1",
                           device_type="iPhone")
            assert await calendars(phone) == ["Calendar"]
            r = await phone.command("FolderCreate", '<FolderCreate xmlns="FolderHierarchy:"><SyncKey>1</SyncKey>'
                                    '<ParentId>0</ParentId><DisplayName>Work</DisplayName><Type>13</Type></FolderCreate>')
            assert r.text(FH.Status) == "1"
            assert await calendars(phone) == ["Calendar", "Work"]
            samsung = Client(http(server.port), "bob@example.com", "pw", version="14.1", device_id="Galaxy1",
                             device_type="SAMSUNGSMG991B")
            assert await calendars(samsung) == ["Calendar"]

        asyncio.run(scenario())
