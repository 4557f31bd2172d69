"""Change notification across processes: a change committed by one process (``eas mail
deliver``, an MTA's delivery hook, an admin tool) wakes the Pings held by another (``eas
serve``).

A ``Notifier`` has two sides. ``publish(user, folder_ids)`` tells every listening server
that these backend folders of ``user`` changed (empty: anywhere); ``publish_account(user)``
that the account's password or status changed. ``subscribe(callback, on_account)`` makes
this process one of the listeners, calling ``callback`` (``ActiveSync.notify``) for each
change, ``on_account`` for each account event and ``on_service`` for each service
restart (``eas service restart anti-dos``: the jails are cleared). ``UnixSocketNotifier`` is the
one-machine implementation: one Unix datagram socket in the data dir (``notify.sock``,
mode 0600, so only the server's own account can reach it). A PostgreSQL LISTEN/NOTIFY or
Redis pub/sub notifier for several machines takes its place behind the same four methods.

The wire format is one datagram per event, UTF-8: ``user TAB folder_id,folder_id,...``
for a change, ``!account TAB user`` for an account event, ``!service TAB name`` for a
service restart, with ``%``, TAB, ``,``, ``!``
and line breaks in names escaped as ``%XX``. Delivery is best effort, as change
notification is everywhere in ActiveSync: a Ping that misses a wake-up still ends at its
heartbeat, and the next Sync finds the change.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote

from eas.backend import Backend, ChangeCallback

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger("eas.notify")

AccountCallback = Callable[[str], None]
"""``on_account(user)``: the account's password or status changed."""
ServiceCallback = Callable[[str], None]
"""``on_service(name)``: restart that service of the server (``"anti-dos"``)."""

SOCKET_NAME = "notify.sock"
# Datagrams larger than this are refused by the listener; a publisher whose folder list
# would not fit sends "anywhere" instead, which wakes the same Pings and a few more.
MAX_DATAGRAM = 8192
# sun_path holds 108 bytes on Linux (104 on the BSDs); longer paths go through /proc.
_SUN_PATH_MAX = 100


class Notifier(Protocol):
    """Fan-out of change notifications between the processes serving one mail store."""

    def publish(self, user: str, folder_ids: Collection[str] = ()) -> None:
        """Tell the listening servers that these folders of ``user`` changed. Must not
        block, and must not fail when nobody listens."""
        ...

    def publish_account(self, user: str) -> None:
        """Tell the listening servers that ``user``'s password or status changed, so
        they forget cached logins. Same rules as ``publish``."""
        ...

    def publish_service(self, name: str) -> bool:
        """Tell the listening server to restart service ``name``; whether one was reached.
        Same rules as ``publish``."""
        ...

    async def subscribe(self, callback: ChangeCallback, on_account: AccountCallback | None = None,
                        on_service: ServiceCallback | None = None) -> None:
        """Start calling ``callback(user, folder_ids)`` for every published change,
        ``on_account(user)`` for every account change and ``on_service(name)`` for every
        service restart, on the running event loop, until ``close``."""
        ...

    async def close(self) -> None:
        """Stop listening and release what ``subscribe`` took."""
        ...


class NotifierInUse(OSError):
    """Another live process already listens on this notifier (another ``eas serve`` on
    the same data dir)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One notification: ``kind`` is ``"change"`` (mail in ``folder_ids`` changed; empty:
    anywhere), ``"account"`` (the account's password or status changed: drop what is
    cached about its logins) or ``"service"`` (restart the service named in ``user``)."""

    kind: str
    user: str
    folder_ids: tuple[str, ...] = ()


def encode(user: str, folder_ids: Collection[str]) -> bytes:
    """A change datagram; an over-long folder list becomes "anywhere" (empty)."""
    head = _escape(user).encode("utf-8", "surrogatepass") + b"\t"
    body = ",".join(_escape(f) for f in folder_ids).encode("utf-8", "surrogatepass")
    if len(head) + len(body) > MAX_DATAGRAM:
        body = b""
    return head + body


def encode_account(user: str) -> bytes:
    """An account datagram: ``!account TAB user`` (a user never starts with ``!``: it is
    escaped)."""
    return _ACCOUNT + b"\t" + _escape(user).encode("utf-8", "surrogatepass")


def encode_service(name: str) -> bytes:
    """A service datagram: ``!service TAB name``."""
    return _SERVICE + b"\t" + _escape(name).encode("utf-8", "surrogatepass")


def decode(data: bytes) -> Message:
    """The message of a datagram; ``ValueError`` when it is not one."""
    if len(data) > MAX_DATAGRAM:
        raise ValueError("datagram too long")
    text = data.decode("utf-8")
    first, sep, rest = text.partition("\t")
    if not sep or not first or "\n" in text or "\t" in rest:
        raise ValueError("not a notification")
    if first == _ACCOUNT.decode():
        if not rest:
            raise ValueError("account notification without a user")
        return Message("account", unquote(rest))
    if first == _SERVICE.decode():
        if not rest:
            raise ValueError("service notification without a name")
        return Message("service", unquote(rest))
    if first.startswith("!"):
        raise ValueError(f"unknown notification {first!r}")
    folders = tuple(unquote(f) for f in rest.split(",")) if rest else ()
    return Message("change", unquote(first), folders)


_ACCOUNT = b"!account"
_SERVICE = b"!service"


def _escape(value: str) -> str:
    return (value.replace("%", "%25").replace("\t", "%09").replace(",", "%2C").replace("\n", "%0A")
            .replace("\r", "%0D").replace("!", "%21"))


class UnixSocketNotifier:
    """A Unix datagram socket at ``path`` (``DATA_DIR/notify.sock``): the server binds
    it, any local process of the same account sends to it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inode: tuple[int, int] | None = None

    # -- publishing (any process) ---------------------------------------------------------

    def publish(self, user: str, folder_ids: Collection[str] = ()) -> None:
        """Send one datagram; silent when no server is listening (no socket, or a stale
        one left by a server that died) or when its queue is full."""
        self._send(encode(user, folder_ids), user)

    def publish_account(self, user: str) -> None:
        self._send(encode_account(user), user)

    def publish_service(self, name: str) -> bool:
        return self._send(encode_service(name), name)

    def _send(self, data: bytes, user: str) -> bool:
        """Whether the datagram reached a listening server."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.setblocking(False)
            try:
                with _address(self.path) as address:
                    s.sendto(data, address)
            except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
                return False  # no server: the next Sync finds the change anyway
            except BlockingIOError:
                log.warning("notify: the server's queue is full; dropped a change of %s", user)
                return False
            except OSError as e:
                if e.errno in (errno.ENOTSOCK, errno.EPROTOTYPE, errno.ECONNREFUSED):
                    return False
                raise
            return True

    # -- listening (the server) -----------------------------------------------------------

    async def subscribe(self, callback: ChangeCallback, on_account: AccountCallback | None = None,
                        on_service: ServiceCallback | None = None) -> None:
        """Bind the socket (mode 0600) and call ``callback`` for each datagram. A stale
        socket file is replaced; a live one raises ``NotifierInUse``."""
        if self._sock is not None:
            raise RuntimeError("already subscribed")
        self._remove_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            # umask closes the window between bind and chmod; startup is single-threaded.
            old = os.umask(0o177)
            try:
                with _address(self.path) as address:
                    sock.bind(address)
            finally:
                os.umask(old)
            os.chmod(self.path, 0o600)
            st = os.stat(self.path)
            self._inode = (st.st_dev, st.st_ino)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        import asyncio  # here, not at the top: publishers (the eas command) have no loop

        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable, callback, on_account, on_service)

    def _readable(self, callback: ChangeCallback, on_account: AccountCallback | None,
                  on_service: ServiceCallback | None) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(256):  # bounded, so a flood cannot starve the loop
            try:
                data = sock.recv(MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                log.exception("notify: receive failed")
                return
            try:
                message = decode(data)
            except ValueError:
                log.warning("notify: ignored a malformed datagram of %d bytes", len(data))
                continue
            try:
                if message.kind == "change":
                    callback(message.user, message.folder_ids)
                elif message.kind == "account" and on_account is not None:
                    on_account(message.user)
                elif message.kind == "service" and on_service is not None:
                    on_service(message.user)
            except Exception:
                log.exception("notify: the %s callback failed", message.kind)

    def _remove_stale(self) -> None:
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise FileExistsError(errno.EEXIST, "exists and is not a socket", str(self.path))
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            with _address(self.path) as address:
                probe.connect(address)
        except ConnectionRefusedError:
            self.path.unlink(missing_ok=True)  # left by a server that did not stop cleanly
            return
        finally:
            probe.close()
        raise NotifierInUse(errno.EADDRINUSE, "another server is listening", str(self.path))

    async def close(self) -> None:
        """Stop listening and remove the socket file, if it is still ours."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock.fileno())
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(self.path)
            if (st.st_dev, st.st_ino) == self._inode:
                self.path.unlink()


@contextlib.contextmanager
def _address(path: Path) -> Iterator[str]:
    """A socket address for ``path``: itself, or through an open descriptor of its
    folder when the path is too long for ``sun_path`` (deep temporary folders)."""
    text = os.fspath(path)
    if len(os.fsencode(text)) <= _SUN_PATH_MAX or not os.path.isdir("/proc/self/fd"):
        yield text
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def publish_changes(backend: Backend, notifier: Notifier) -> None:
    """Publish every change ``backend`` commits in this process: how a tool outside the
    server (``eas mail deliver``) wakes the server's Pings."""
    backend.watch(notifier.publish)
