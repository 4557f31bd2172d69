"""Shared plumbing of the server benchmarks (``sync.py``, ``ping.py``).

It owns: the server under test as a process (``eas serve --no-tls`` on 127.0.0.1, run
through the real CLI in a temporary data dir, or any other command that prints a ready
line), what /proc says about that process (CPU seconds, resident memory), and two small
ActiveSync clients over HTTP/1.1 keep-alive: a blocking one on ``http.client`` and raw
requests for asyncio streams, for thousands of connections at once.

Nothing here measures; the benchmarks decide what to time.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlencode

from eas.tags import FolderHierarchy as FH
from eas.tags import Provision as P
from eas.wbxml import IMPLEMENTATION, Node, decode, from_xml

WBXML = "application/vnd.ms-sync.wbxml"
PATH = "/Microsoft-Server-ActiveSync"
ROOT = Path(__file__).resolve().parent.parent
_TICKS = os.sysconf("SC_CLK_TCK")


# -- the process ---------------------------------------------------------------------------


def raise_nofile(wanted: int | None = None) -> int:
    """Raise this process's open-file limit to ``wanted`` (default: the hard limit);
    returns the limit in force. Thousands of sockets need it on both sides."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if wanted is None else min(max(wanted, soft), hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (``/proc/<pid>/stat``)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rpartition(b")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15)


def rss_kb(pid: int) -> int:
    """Resident memory of a process in KiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def eas_env() -> dict[str, str]:
    """The environment for ``python -m eas``: this checkout first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("EAS_DATA_DIR", None)
    return env


class Process:
    """A server in a subprocess, ready once a line of its stdout starts with ``ready``;
    stopped with SIGTERM (then SIGKILL) when the ``with`` block ends."""

    def __init__(self, argv: Sequence[str], *, ready: bytes, port: int, timeout: float = 60.0) -> None:
        self.argv = list(argv)
        self.ready = ready
        self.port = port
        self.timeout = timeout
        self.output: list[bytes] = []
        self._proc: subprocess.Popen[bytes] | None = None
        self._readers: list[threading.Thread] = []

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_kb(self.pid)

    def start(self) -> Self:
        raise_nofile()  # the child inherits the limit
        self._proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, env=eas_env())
        up = threading.Event()

        def drain(stream: object, watch: bool) -> None:
            for line in stream:  # type: ignore[attr-defined]
                self.output.append(line)
                if watch and line.startswith(self.ready):
                    up.set()
            up.set()  # EOF: the process is gone

        assert self._proc.stdout is not None and self._proc.stderr is not None
        self._readers = [threading.Thread(target=drain, args=(self._proc.stdout, True), daemon=True),
                         threading.Thread(target=drain, args=(self._proc.stderr, False), daemon=True)]
        for t in self._readers:
            t.start()
        up.wait(self.timeout)
        if self._proc.poll() is not None or not up.is_set():
            self.stop()
            raise RuntimeError(f"{self.argv[:4]} did not start:\n{b''.join(self.output).decode(errors='replace')}")
        return self

    def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for t in self._readers:
            t.join(5)
        self._proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def eas_serve(data_dir: Path, port: int | None = None) -> Process:
    """``eas serve`` on 127.0.0.1 without TLS, through the real CLI (``python -m eas``)."""
    port = port or free_port()
    argv = [sys.executable, "-m", "eas", "serve", "--no-tls", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(data_dir), "--log-level", "warning"]
    return Process(argv, ready=b"eas: ActiveSync at ", port=port)


# -- requests ------------------------------------------------------------------------------


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass(slots=True)
class Account:
    user: str
    password: str


@dataclass
class DeviceId:
    """Who sends: account, device, protocol version, policy key once provisioned."""

    account: Account
    device_id: str
    device_type: str = "BenchPhone"
    version: str = "14.1"
    policy_key: int | None = None

    def target(self, command: str) -> str:
        q = urlencode({"Cmd": command, "User": self.account.user, "DeviceId": self.device_id,
                       "DeviceType": self.device_type})
        return f"{PATH}?{q}"

    def headers(self, body: bytes) -> list[tuple[str, str]]:
        h = [("Authorization", basic(self.account.user, self.account.password)),
             ("MS-ASProtocolVersion", self.version), ("User-Agent", "eas-bench/1.0")]
        if body:
            h.append(("Content-Type", WBXML))
        if self.policy_key is not None:
            h.append(("X-MS-PolicyKey", str(self.policy_key)))
        return h

    def raw(self, command: str, body: bytes, host: str = "127.0.0.1") -> bytes:
        """The whole HTTP/1.1 request, for writing to a socket by hand."""
        lines = [f"POST {self.target(command)} HTTP/1.1", f"Host: {host}",
                 *(f"{k}: {v}" for k, v in self.headers(body)), f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    _node: Node | None = field(default=None, repr=False)

    @property
    def node(self) -> Node:
        if self._node is None:
            self._node = decode(self.body)
        return self._node


def provision_requests(version: str) -> tuple[str, str]:
    """The two Provision bodies (MS-ASPROV 3.1.5.1) as XML; ``{key}`` in the second."""
    kind = "MS-EAS-Provisioning-WBXML"
    info = ""
    if version in ("14.1", "16.0", "16.1"):  # DeviceInformation is required there (status 165 without)
        info = ('<DeviceInformation xmlns="Settings:"><Set><Model>Bench</Model><OS>BenchOS 1</OS>'
                "<UserAgent>eas-bench/1.0</UserAgent></Set></DeviceInformation>")
    first = (f'<Provision xmlns="Provision:">{info}<Policies><Policy><PolicyType>{kind}</PolicyType></Policy>'
             "</Policies></Provision>")
    second = (f'<Provision xmlns="Provision:"><Policies><Policy><PolicyType>{kind}</PolicyType>'
              "<PolicyKey>{key}</PolicyKey><Status>1</Status></Policy></Policies></Provision>")
    return first, second


FOLDER_SYNC_0 = from_xml('<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>')


def inbox_id(folder_sync: Node) -> str:
    """The CollectionId of the Inbox (Type 2) in a FolderSync response."""
    for add in folder_sync.find(FH.Changes) or ():
        if add.tag == FH.Add and add.findtext(FH.Type) == "2":
            return str(add.findtext(FH.ServerId))
    raise RuntimeError("no Inbox in the FolderSync response")


class Client:
    """A device over one keep-alive ``http.client`` connection (blocking)."""

    def __init__(self, port: int, device: DeviceId, *, timeout: float = 120.0) -> None:
        self.device = device
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def close(self) -> None:
        self.conn.close()

    def post(self, command: str, body: bytes) -> Reply:
        c = self.conn
        c.putrequest("POST", self.device.target(command), skip_accept_encoding=True)
        for k, v in self.device.headers(body):
            c.putheader(k, v)
        c.putheader("Content-Length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        data = r.read()
        return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, data)

    def command(self, command: str, xml: str) -> Reply:
        return self.post(command, from_xml(xml))

    def provision(self) -> int:
        first, second = provision_requests(self.device.version)
        self.device.policy_key = None
        r = self.command("Provision", first)
        temporary = r.node.findtext(P.Policies, P.Policy, P.PolicyKey)
        r = self.command("Provision", second.format(key=temporary))
        final = r.node.findtext(P.Policies, P.Policy, P.PolicyKey)
        if r.status != 200 or not final:
            raise RuntimeError(f"Provision failed: {r}")
        self.device.policy_key = int(str(final))
        return self.device.policy_key

    def folder_sync(self) -> str:
        """FolderSync from 0; the Inbox's CollectionId."""
        r = self.post("FolderSync", FOLDER_SYNC_0)
        return inbox_id(r.node)


# -- asyncio streams -----------------------------------------------------------------------


async def read_reply(reader: asyncio.StreamReader) -> Reply:
    """One HTTP/1.1 response with a Content-Length body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Reply(status, headers, body)


class AsyncClient:
    """A device over one keep-alive asyncio stream connection."""

    def __init__(self, port: int, device: DeviceId) -> None:
        self.port = port
        self.device = device
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def send(self, command: str, body: bytes) -> None:
        if self.writer is None:
            await self.connect()
        assert self.writer is not None
        self.writer.write(self.device.raw(command, body))
        await self.writer.drain()

    async def reply(self) -> Reply:
        assert self.reader is not None
        return await read_reply(self.reader)

    async def post(self, command: str, body: bytes) -> Reply:
        await self.send(command, body)
        return await self.reply()

    async def provision(self) -> int:
        first, second = provision_requests(self.device.version)
        self.device.policy_key = None
        r = await self.post("Provision", from_xml(first))
        temporary = r.node.findtext(P.Policies, P.Policy, P.PolicyKey)
        r = await self.post("Provision", from_xml(second.format(key=temporary)))
        final = r.node.findtext(P.Policies, P.Policy, P.PolicyKey)
        if r.status != 200 or not final:
            raise RuntimeError(f"Provision failed: {r}")
        self.device.policy_key = int(str(final))
        return self.device.policy_key

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self.reader = None


# -- where a process's time goes (py-spy, when installed) ---------------------------------


class Sampler:
    """``py-spy record`` on a process while the ``with`` block runs (raw samples of the
    busy threads). ``shares()`` then gives each frame's inclusive share of them."""

    def __init__(self, py_spy: str, pid: int, out: Path, rate: int = 1000) -> None:
        self.argv = [py_spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "-o", str(out),
                     "--nonblocking"]
        self.out = out
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        self._proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)  # attached before the work starts
        return self

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.communicate()

    def shares(self) -> tuple[int, list[tuple[float, str]]]:
        """``(samples, [(share, "function (file:line)"), ...])``, largest first."""
        total = 0
        inclusive: dict[str, int] = {}
        try:
            lines = self.out.read_text().splitlines()
        except OSError:
            return 0, []
        for line in lines:
            stack, _, count = line.rpartition(" ")
            n = int(count)
            total += n
            for frame in {_short(f) for f in stack.split(";")}:
                inclusive[frame] = inclusive.get(frame, 0) + n
        ranked = sorted(((n / total, f) for f, n in inclusive.items()), reverse=True) if total else []
        return total, ranked


def _short(frame: str) -> str:
    """``name (path/to/file.py:12)`` as ``name (file.py:12)``, eas paths from ``eas/``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")")
    if "/eas/" in path:
        path = "eas/" + path.rsplit("/eas/", 1)[1]
    elif not path.startswith("eas/"):
        path = path.rsplit("/", 1)[-1]
    return f"{name} ({path})"


# -- small statistics ----------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100), nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def wait_idle(pid: int, *, quiet: float = 0.5, threshold: float = 0.02, timeout: float = 120.0) -> float:
    """Wait until the process has used under ``threshold`` of a CPU over ``quiet``
    seconds (it has worked through what was sent); the seconds waited."""
    start = time.monotonic()
    last = cpu_seconds(pid)
    while time.monotonic() - start < timeout:
        time.sleep(quiet)
        now = cpu_seconds(pid)
        if now - last <= threshold * quiet:
            break
        last = now
    return time.monotonic() - start


def machine() -> str:
    """One line naming the machine, Python, the codec and the load at the start."""
    cpu = platform.machine()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} "
            f"{platform.release()}, codec {IMPLEMENTATION}, load average {load} at the start")
