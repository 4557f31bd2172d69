"""The reference server: ActiveSync over the reference mail store, from one data dir.

A data dir holds everything of one server (mode 0700):

    mail.db        the reference mail store (users, folders, mail)
    state.db       sync state and device records (SQLiteStateStore)
    tls/           cert.pem and key.pem (0600), self-signed, made on first start
    notify.sock    while ``eas serve`` runs: where other processes announce changes

``build`` assembles the ``ActiveSync`` object; ``serve`` runs it on uvicorn, with TLS by
default, and listens on the notify socket so that ``eas mail deliver`` in another process
wakes the Pings held here. The data dir is ``--data-dir``, else ``$EAS_DATA_DIR``, else
``./eas-data``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import logging
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eas.notify import SOCKET_NAME, UnixSocketNotifier

if TYPE_CHECKING:
    from eas.access.notifier import Notifier
    from eas.config import Config
    from eas.core import ActiveSync
    from eas.store import ReferenceStore

log = logging.getLogger("eas.server")

DATA_DIR_ENV = "EAS_DATA_DIR"
DEFAULT_DATA_DIR = "eas-data"
CERT_FILE, KEY_FILE = "cert.pem", "key.pem"
CERT_VALIDITY = datetime.timedelta(days=730)  # under the 825 days Apple accepts for TLS servers
DEMO_USER = "demo@example.com"
# Long enough that a device's next request (Ping ends, Sync follows) reuses the
# connection; short enough that idle sockets do not pile up.
KEEP_ALIVE_SECONDS = 120
# What requests still running at shutdown get to finish (a Sync committing its state);
# held Pings are answered at once instead (ActiveSync.end_waits).
SHUTDOWN_GRACE_SECONDS = 3
BACKLOG = 2048
_HOST_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_\-]{0,61}[A-Za-z0-9])?"
                        r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_\-]{0,61}[A-Za-z0-9])?)*")


# -- the data dir ------------------------------------------------------------------------

def data_dir(path: str | os.PathLike[str] | None = None) -> Path:
    """The data dir: ``path``, else ``$EAS_DATA_DIR``, else ``./eas-data``."""
    if path is not None and os.fspath(path) != "":
        return Path(path)
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def prepare_data_dir(path: Path) -> Path:
    """Create the data dir (0700: it holds password hashes and the TLS key)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


class NoStore(LookupError):
    """The data dir has no mail store yet (a mistyped --data-dir, most likely)."""


def open_store(path: Path, *, create: bool = True) -> ReferenceStore:
    """The reference mail store of a data dir, created on first use unless ``create`` is
    False (then ``NoStore``)."""
    from eas.store import ReferenceStore

    if not create and not (path / "mail.db").is_file():
        raise NoStore(f"no mail store in {path} (eas user add or eas serve makes one)")
    return ReferenceStore(prepare_data_dir(path) / "mail.db")


def build(path: str | os.PathLike[str], config: Config | None = None) -> tuple[ActiveSync, ReferenceStore]:
    """``(ActiveSync, ReferenceStore)`` of a data dir: the mail store in ``mail.db``, the
    sync state in ``state.db``, accounts authenticated by the store, the access engines of
    ``eas.access`` configured by the settings in the state store."""
    from eas.access.ipallow import IPAllowList
    from eas.access.passwords import mobile_passwords
    from eas.core import ActiveSync  # here: the eas command's admin verbs do without the core
    from eas.state.sqlite import SQLiteStateStore

    folder = prepare_data_dir(Path(path))
    store = open_store(folder)
    state = SQLiteStateStore(folder / "state.db")
    app = ActiveSync(store, state, authenticate=mobile_passwords(state, store.authenticate),
                     client_address=IPAllowList(state),
                     config=config)
    app.loggers.folder = folder / "logs"
    return app, store


def notifier(path: Path) -> UnixSocketNotifier:
    """The notifier of a data dir, for publishers and the server alike."""
    return UnixSocketNotifier(path / SOCKET_NAME)


# -- TLS -----------------------------------------------------------------------------------

def ensure_certificate(tls_dir: Path, hosts: tuple[str, ...] = ()) -> tuple[Path, Path, bool]:
    """``(cert, key, created)``: the self-signed certificate kept in ``tls_dir``, made on
    first use for localhost, 127.0.0.1, ::1, this machine's name and ``hosts``, then
    reused (delete the folder to make a new one)."""
    cert_path, key_path = tls_dir / CERT_FILE, tls_dir / KEY_FILE
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path, False
    cert_pem, key_pem = self_signed_certificate(certificate_names(hosts))
    tls_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_private(key_path, key_pem)
    tmp = cert_path.with_suffix(".tmp")
    tmp.write_bytes(cert_pem)
    os.replace(tmp, cert_path)  # the cert appears last: its presence means both are whole
    return cert_path, key_path, True


def certificate_names(hosts: tuple[str, ...] = ()) -> list[str]:
    """Names and addresses for the certificate's subjectAltName, without duplicates."""
    names = ["localhost", "127.0.0.1", "::1"]
    with contextlib.suppress(OSError):
        names.append(socket.gethostname())
    lan = lan_address()
    if lan:
        names.append(lan)
    for host in hosts:
        if host and host not in ("0.0.0.0", "::", "*"):
            names.append(host)
    seen: dict[str, None] = {}
    for name in names:
        seen.setdefault(name.strip("[]").lower(), None)
    return [n for n in seen if n]


def self_signed_certificate(names: list[str]) -> tuple[bytes, bytes]:
    """``(cert_pem, key_pem)``: EC P-256, SHA-256, serverAuth, ``CERT_VALIDITY`` long,
    not a CA (what phones accept for a server they are told to trust)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "eas reference server")])
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            continue
        except ValueError:
            pass
        try:  # certificates carry A-labels: "bücher.example" as "xn--bcher-kva.example"
            label = name.encode("idna").decode("ascii")
        except UnicodeError:
            label = ""
        if _HOST_NAME.fullmatch(label):
            alt.append(x509.DNSName(label))
        else:
            log.warning("leaving %r out of the certificate: not a host name", name)
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # clocks of phones drift
        .not_valid_after(now + CERT_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class CertificateError(ValueError):
    """The certificate or key cannot serve TLS (not PEM, or they do not match)."""


def certificate_fingerprint(cert_path: Path) -> str:
    """SHA-256 of the (first) certificate, as phones show it (``AB:CD:...``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except ValueError:
        raise CertificateError(f"not a PEM certificate: {cert_path}") from None
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def check_certificate(cert_path: Path, key_path: Path) -> str:
    """The certificate's fingerprint once ``ssl`` has loaded the pair as uvicorn will, so
    a bad pair is one clear error before the server starts, not a traceback inside it."""
    import ssl

    fingerprint = certificate_fingerprint(cert_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_path, key_path)
    except ssl.SSLError as e:
        raise CertificateError(f"{cert_path} and {key_path} cannot serve TLS ({e.reason or e})") from None
    return fingerprint


def _write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only, from the first byte on."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def lan_address() -> str | None:
    """This machine's address on its default route, if it has one (no packet is sent)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the route
        address: str = s.getsockname()[0]
        if not address.startswith(("0.", "127.")):
            return address
    return None


# -- the demo account ----------------------------------------------------------------------

def ensure_demo(store: ReferenceStore, user: str = DEMO_USER) -> str | None:
    """Create the demo account with a random password and sample mail, and return the
    password; None when the account already exists (its password is left as it is)."""
    import secrets

    from eas.store import demo

    if user in store.list_users():
        return None
    password = secrets.token_urlsafe(12)
    store.add_user(user, password)
    demo.populate(store, user)
    return password


# -- serving -------------------------------------------------------------------------------

@dataclass(slots=True)
class ServeOptions:
    """What ``eas serve`` was asked for."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int | None = None  # 8443 with TLS, 8080 without
    tls: bool = True
    cert: Path | None = None
    key: Path | None = None
    demo: bool = False
    log_level: str = "info"
    config: Config | None = None  # the core's tuning (heartbeat bounds, notifications, windows)
    admin_port: int | None = None  # the admin web page (eas.web) on this port; None: off
    admin_host: str = "127.0.0.1"

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else (8443 if self.tls else 8080)


def _say(line: str) -> None:
    print(line, flush=True)  # at once, also when stdout is a pipe (systemd, tests)


async def serve(options: ServeOptions, *, out: Callable[[str], None] = _say) -> None:
    """Run the reference server until it is stopped (SIGINT, SIGTERM)."""
    import uvicorn

    from eas.access.notifier import Notifier
    from eas.asgi import ASGIApp

    folder = prepare_data_dir(options.data_dir)
    activesync, store = build(folder, options.config)
    admin_mail = Notifier(activesync.store)
    # The notify socket and the port first: a second server on the same data dir, or a
    # port in use, stops before anything is created (a demo password nobody saw).
    listener = notifier(folder)
    await listener.subscribe(activesync.notify, on_account=lambda user: account_changed(activesync, user),
                             on_service=lambda name: restart_service(activesync, name, admin_mail))
    sock: socket.socket | None = None
    admin_sock: socket.socket | None = None
    try:
        sock = listen(options.host, options.effective_port, backlog=BACKLOG)
        if options.admin_port is not None:
            admin_sock = listen(options.admin_host, options.admin_port)
        ssl: dict[str, Any] = {}
        fingerprint = None
        if options.tls:
            if options.cert is not None and options.key is not None:
                cert, key = options.cert, options.key
            else:
                cert, key, _ = ensure_certificate(folder / "tls", (options.host,))
            fingerprint = check_certificate(cert, key)
            ssl = {"ssl_certfile": os.fspath(cert), "ssl_keyfile": os.fspath(key)}
        password = ensure_demo(store) if options.demo else None
        # The adapter's lifespan closes the state store at shutdown; the mail store is
        # closed below, once uvicorn has returned.
        config = uvicorn.Config(
            ASGIApp(activesync), host=options.host, port=options.effective_port, http="h11",
            lifespan="on", timeout_keep_alive=KEEP_ALIVE_SECONDS, limit_concurrency=None,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS, log_level=options.log_level,
            server_header=False, backlog=BACKLOG,
            # uvicorn would believe X-Forwarded-For from loopback peers: the IP allow-list
            # (eas.access.ipallow) decides whose header counts, so the peer goes in as it is.
            proxy_headers=False, **ssl)
        lines = banner(options, activesync, password=password, fingerprint=fingerprint)
        admin = None
        if admin_sock is not None:
            admin = await _admin_server(uvicorn, options, activesync, ssl)
            lines += await admin_banner(options, activesync)
        # One write: a signal arriving meanwhile cannot cut it (a demo password half shown).
        out("\n".join(lines))
        admin_task = asyncio.ensure_future(admin.serve(sockets=[admin_sock])) if admin is not None else None
        mailing = asyncio.create_task(admin_mail.run(), name="eas notifier")
        try:
            await _server(uvicorn, config, activesync, mailing).serve(sockets=[sock])
        finally:
            mailing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await mailing
            if admin is not None and admin_task is not None:
                admin.should_exit = True  # the admin page stops with the ActiveSync port
                await admin_task
    finally:
        if sock is not None:
            sock.close()
        if admin_sock is not None:
            admin_sock.close()
        await listener.close()
        store.close()


async def _admin_server(uvicorn: Any, options: ServeOptions, activesync: ActiveSync, ssl: dict[str, Any]) -> Any:
    """The admin page's uvicorn server (``eas.web``), in the same loop as the ActiveSync
    one and with its certificate; it leaves signals to that one, which stops it."""
    from eas.web import AdminApp

    class AdminServer(uvicorn.Server):  # type: ignore[misc]
        @contextlib.contextmanager
        def capture_signals(self) -> Any:
            yield

    config = uvicorn.Config(AdminApp(activesync, secure=bool(ssl)), host=options.admin_host,
                            port=options.admin_port, http="h11", lifespan="off", log_level=options.log_level,
                            server_header=False, proxy_headers=False, timeout_graceful_shutdown=1, **ssl)
    return AdminServer(config)


async def admin_banner(options: ServeOptions, activesync: ActiveSync) -> list[str]:
    """The admin page's URL, and how to add its first admin when there is none."""
    from eas.web import list_admins

    shown = options.admin_host if options.admin_host not in ("0.0.0.0", "::", "") else "localhost"
    netloc = f"[{shown}]" if ":" in shown else shown
    lines = [f"eas: admin page at {'https' if options.tls else 'http'}://{netloc}:{options.admin_port}/"]
    if not await list_admins(activesync.store):
        lines.append("eas: no admin account yet: eas web user add NAME (in another terminal) makes one")
    return lines


def account_changed(activesync: ActiveSync, user: str) -> None:
    """An account event reached this server (a password, mobile access, or a device's
    access, wipe or suspension changed): cached logins go, and the account's waiting
    long polls end so that its devices meet the change at once."""
    activesync.forget_credentials()
    activesync.end_user_waits(user)


def restart_service(activesync: ActiveSync, name: str, admin_mail: Notifier | None = None) -> None:
    """``eas service restart NAME`` reached this server (over the notify socket)."""
    if name == "anti-dos":
        log.warning("anti-dos restarted: %d jails released", activesync.jail.clear())
    elif name == "notifier" and admin_mail is not None:
        admin_mail.restart()
        log.warning("notifier restarted: a round of notices runs now")
    elif name == "abq":
        forget = getattr(activesync.abq, "forget", None)  # drops its cached settings, where it has any
        if forget is not None:
            forget()
        log.warning("abq restarted: its settings are read again")
    else:
        log.warning("restart of an unknown service %r ignored", name)


def _server(uvicorn: Any, config: Any, activesync: ActiveSync, *background: asyncio.Task[None]) -> Any:
    """A uvicorn Server that answers the held long polls (Ping: status 1, as when the
    device's next request supersedes it) before waiting for connections to close, so a
    restart neither cuts them off nor waits out the grace period. The ``background``
    tasks (the notifier) are cancelled first: the state store closes at shutdown."""

    class Server(uvicorn.Server):  # type: ignore[misc]
        async def shutdown(self, sockets: Any = None) -> None:
            for task in background:
                task.cancel()
            activesync.end_waits()
            await super().shutdown(sockets=sockets)

    return Server(config)


def listen(host: str, port: int, *, backlog: int = BACKLOG) -> socket.socket:
    """The listening socket, bound here rather than by uvicorn so that a port in use is
    one ``OSError`` naming the address (exit 1), not a log line and uvicorn's exit code."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise OSError(e.errno, f"cannot listen on {host} port {port}: {e.strerror or e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host in ("::", ""):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too
        sock.bind(address)
        sock.listen(backlog)
    except OSError as e:
        sock.close()
        raise OSError(e.errno, f"cannot listen on {host} port {port}: {e.strerror or e}") from None
    return sock


def banner(options: ServeOptions, activesync: ActiveSync, *, password: str | None,
           fingerprint: str | None) -> list[str]:
    """What ``eas serve`` prints: the endpoint, the demo account, how to set up a phone."""
    scheme = "https" if options.tls else "http"
    wildcard = options.host in ("0.0.0.0", "::", "")
    shown = (lan_address() or "localhost") if wildcard else options.host
    netloc = f"[{shown}]" if ":" in shown else shown
    port = options.effective_port
    lines = [f"eas: ActiveSync at {scheme}://{netloc}:{port}{activesync.config.path}",
             f"eas: data in {options.data_dir.resolve()}"]
    if fingerprint:
        lines.append(f"eas: TLS certificate SHA-256 {fingerprint}")
    if options.demo:
        if password is not None:
            lines.append(f"eas: demo account {DEMO_USER} password {password} (shown once)")
        else:
            lines.append(f"eas: demo account {DEMO_USER} (already there; its password is unchanged)")
    lines.append(f"eas: on a phone, add an Exchange account with server {netloc}:{port}"
                 f"{', SSL on' if options.tls else ', SSL off'}, the account's address as user name")
    if options.tls and not options.cert:
        lines.append("eas: the certificate is self-signed: accept it when the phone asks, comparing the SHA-256")
    if shown in ("127.0.0.1", "localhost", "::1"):
        lines.append("eas: this address is this machine only; --host 0.0.0.0 lets a phone on your network in")
    return lines


class Terminated(Exception):
    """SIGTERM arrived: stop like on Ctrl-C, through every ``finally``."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def run(options: ServeOptions) -> None:
    """``serve`` on a new event loop (the ``eas serve`` command). SIGTERM and SIGINT stop
    it cleanly: uvicorn shuts down gracefully, then raises the signal again once it has
    put back the handlers it found, which are these (the default one would kill the
    process before the notify socket is removed)."""
    import signal

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        import asyncio

        asyncio.run(serve(options))
    except (Terminated, KeyboardInterrupt):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
