"""Parked Pings: the memory each costs the server, and how fast a delivery wakes one.

    python benchmarks/ping.py            # 1,000 then 10,000 parked Pings, 50 wake-ups
    python benchmarks/ping.py --quick    # 200 then 1,000, 20 wake-ups

One ``eas serve --no-tls`` process on 127.0.0.1 (the real CLI, a temporary data dir);
the clients are asyncio streams in this process, writing HTTP/1.1 requests by hand.

Setup (not measured): ``--users`` accounts share the devices; every device is set up
for real, as a phone does it, over a few keep-alive connections at once: Provision (both
phases), FolderSync, Sync of the Inbox with SyncKey 0 and then with its new key (nothing
to send), so that its Ping is valid and has nothing to report at once. A separate
account with one device ("probe") is set up the same way for the wake-ups.

Memory: the server's VmRSS (/proc/<pid>/status) once setup is over and the server is
idle, then with N Pings parked (each on its own connection, the request sent, no
answer yet: checked), the server idle again; per Ping = (RSS_parked - RSS_before) / N.
The reference is the same uvicorn, configured the same way (``holdapp.py``), with a
trivial ASGI app that reads each request and holds it open: the same requests, the same
counts, measured the same way in the same run.

Wake-up latency, with the largest count still parked: the probe device parks a Ping on
its Inbox; then ``eas mail deliver`` (the real CLI, another process) delivers a message
to the probe's Inbox. Measured: from just before that process starts to the Ping's
answer arriving here ("CLI wake"), and, separately, from the same start to the line the
CLI prints once it has committed and announced the mail ("CLI run"), and the startup of
``python -m eas --version`` alone; then the same delivery made in this process
(``ReferenceStore.deliver`` and the data dir's notifier, as the CLI does), timed from
the store's commit (a watcher called right after it) to the answer ("commit to
answer"). The probe syncs the new mail after each wake-up. Finally one account's share
of the parked devices is woken at once by one delivery ("fan-out").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import easproc
import mailgen

from eas import notify, server
from eas.tags import AirSync as A
from eas.tags import Ping as PingTag
from eas.wbxml import decode, from_xml

HEARTBEAT = 3000  # seconds: no Ping expires during the run
VERSION = "14.1"
PROBE = easproc.Account("probe@example.com", "probe-secret")


@dataclass
class Device:
    ident: easproc.DeviceId
    inbox: str = ""
    sync_key: str = ""


@dataclass
class Parked:
    """One connection with a Ping sent and no answer yet."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    answer: asyncio.Task[easproc.Reply]


@dataclass
class Memory:
    label: str
    counts: list[int]
    before: int = 0  # KiB
    parked: dict[int, int] = field(default_factory=dict)  # count -> KiB
    early: int = 0  # answers that came while they should have been parked

    def per_ping(self, n: int) -> float:
        return (self.parked[n] - self.before) / n


def ping_body(inbox: str) -> bytes:
    return from_xml(f'<Ping xmlns="Ping:"><HeartbeatInterval>{HEARTBEAT}</HeartbeatInterval><Folders><Folder>'
                    f"<Id>{inbox}</Id><Class>Email</Class></Folder></Folders></Ping>")


def sync_body(key: str, inbox: str) -> bytes:
    changes = "<GetChanges>1</GetChanges><WindowSize>100</WindowSize>" if key != "0" else ""
    return from_xml(f'<Sync xmlns="AirSync:"><Collections><Collection><SyncKey>{key}</SyncKey>'
                    f"<CollectionId>{inbox}</CollectionId>{changes}<Options><FilterType>0</FilterType>"
                    '<BodyPreference xmlns="AirSyncBase:"><Type>1</Type><TruncationSize>5120</TruncationSize>'
                    "</BodyPreference></Options></Collection></Collections></Sync>")


# -- setup ---------------------------------------------------------------------------------


async def sync_once(c: easproc.AsyncClient, device: Device) -> int:
    """One Sync of the Inbox at the device's key; the number of mails it brought."""
    r = await c.post("Sync", sync_body(device.sync_key, device.inbox))
    if r.status != 200:
        raise RuntimeError(f"Sync: HTTP {r.status}")
    if not r.body:  # 12.1+: nothing to say is an empty response
        return 0
    collection = r.node.find(A.Collections, A.Collection)
    if collection is None or collection.findtext(A.Status) != "1":
        raise RuntimeError(f"Sync failed: {r.body[:200]!r}")
    device.sync_key = str(collection.findtext(A.SyncKey))
    commands = collection.find(A.Commands)
    return len(commands.children) if commands is not None else 0


async def set_up(c: easproc.AsyncClient, device: Device) -> None:
    """Provision, FolderSync, Sync 0, Sync: what a phone does before its first Ping."""
    c.device = device.ident
    await c.provision()
    r = await c.post("FolderSync", easproc.FOLDER_SYNC_0)
    device.inbox = easproc.inbox_id(r.node)
    device.sync_key = "0"
    await sync_once(c, device)
    await sync_once(c, device)


async def set_up_all(port: int, devices: list[Device], connections: int) -> float:
    """Every device set up over ``connections`` keep-alive connections; seconds taken."""
    queue: asyncio.Queue[Device] = asyncio.Queue()
    for d in devices:
        queue.put_nowait(d)
    done = 0
    t0 = time.perf_counter()

    async def worker() -> None:
        nonlocal done
        c = easproc.AsyncClient(port, devices[0].ident)
        try:
            while not queue.empty():
                await set_up(c, queue.get_nowait())
                done += 1
                if done % 1000 == 0:
                    print(f"  {done} devices set up ({done / (time.perf_counter() - t0):.0f}/s)", flush=True)
        finally:
            c.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - t0


# -- parking -------------------------------------------------------------------------------


async def park(port: int, requests: list[bytes], into: list[Parked], batch: int = 250) -> None:
    """Open a connection per request and send it; the answers are awaited in tasks."""

    async def one(raw: bytes) -> Parked:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(raw)
        await writer.drain()
        return Parked(reader, writer, asyncio.ensure_future(easproc.read_reply(reader)))

    for start in range(0, len(requests), batch):
        into.extend(await asyncio.gather(*(one(r) for r in requests[start:start + batch])))


async def measure_parking(label: str, proc: easproc.Process, requests: list[bytes], counts: list[int],
                          parked: list[Parked]) -> Memory:
    """RSS before and with each count parked (cumulative); ``parked`` keeps the connections."""
    m = Memory(label, counts)
    await asyncio.to_thread(easproc.wait_idle, proc.pid)
    m.before = proc.rss()
    for n in counts:
        await park(proc.port, requests[len(parked):n], parked)
        await asyncio.to_thread(easproc.wait_idle, proc.pid)
        m.parked[n] = proc.rss()
        m.early = sum(p.answer.done() for p in parked)
        print(f"  {label}: {n} parked, RSS {m.parked[n] / 1024:.0f} MB "
              f"({m.per_ping(n):.1f} KB each){f'; ANSWERED EARLY: {m.early}' if m.early else ''}", flush=True)
    return m


def close_all(parked: list[Parked]) -> None:
    for p in parked:
        if p.answer.done():
            if not p.answer.cancelled():
                p.answer.exception()  # retrieved: a closed connection is expected here
        else:
            p.answer.cancel()
        p.writer.close()
    parked.clear()


# -- wake-ups ------------------------------------------------------------------------------


@dataclass
class Wakes:
    cli_wake: list[float] = field(default_factory=list)  # deliver process start -> Ping answer
    cli_run: list[float] = field(default_factory=list)  # deliver process start -> its "delivered" line
    startup: list[float] = field(default_factory=list)  # python -m eas --version
    commit_to_answer: list[float] = field(default_factory=list)  # in-process deliver: commit -> answer
    fan_out: tuple[int, float, float] | None = None  # (devices, p50, last) seconds


async def parked_probe(port: int, device: Device) -> tuple[easproc.AsyncClient, asyncio.Task[easproc.Reply]]:
    """The probe's Ping, sent and (checked) not answered."""
    c = easproc.AsyncClient(port, device.ident)
    await c.send("Ping", ping_body(device.inbox))
    answer = asyncio.ensure_future(c.reply())
    await asyncio.sleep(0.1)  # the server parks it within a millisecond or two
    if answer.done():
        raise RuntimeError(f"the probe's Ping was answered at once: {answer.result().body!r}")
    return c, answer


def changed_folders(reply: easproc.Reply) -> list[str]:
    node = decode(reply.body)
    if node.findtext(PingTag.Status) != "2":
        raise RuntimeError(f"Ping answered without changes: {reply.body!r}")
    folders = node.find(PingTag.Folders)
    return [str(f.text) for f in folders] if folders is not None else []


async def catch_up(port: int, device: Device, expected: int) -> None:
    c = easproc.AsyncClient(port, device.ident)
    try:
        got = await sync_once(c, device)
    finally:
        c.close()
    if got != expected:
        raise RuntimeError(f"the probe's Sync brought {got} mails, not {expected}")


async def wake_with_cli(port: int, data_dir: Path, probe: Device, message: Path, w: Wakes) -> None:
    c, answer = await parked_probe(port, probe)
    try:
        t0 = time.perf_counter()
        deliver = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "eas", "mail", "deliver", "--data-dir", str(data_dir), PROBE.user, str(message),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=easproc.eas_env())
        assert deliver.stdout is not None
        stdout = deliver.stdout

        async def first_line() -> tuple[bytes, float]:
            line = await stdout.readline()
            return line, time.perf_counter()

        line_task = asyncio.ensure_future(first_line())
        reply = await asyncio.wait_for(answer, 30)
        w.cli_wake.append(time.perf_counter() - t0)
        line, printed = await line_task
        w.cli_run.append(printed - t0)
        _, err = await deliver.communicate()
        if deliver.returncode != 0 or not line.startswith(b"delivered"):
            raise RuntimeError(f"eas mail deliver failed: {line!r} {err!r}")
        if changed_folders(reply) != [probe.inbox]:
            raise RuntimeError(f"unexpected Ping answer {reply.body!r}")
    finally:
        c.close()
    await catch_up(port, probe, 1)


async def wake_in_process(port: int, data_dir: Path, probe: Device, mime: bytes, w: Wakes) -> None:
    store = server.open_store(data_dir, create=False)
    committed: list[float] = []
    store.watch(lambda user, folders: committed.append(time.perf_counter()))  # called first, right after COMMIT
    notify.publish_changes(store, server.notifier(data_dir))
    try:
        c, answer = await parked_probe(port, probe)
        try:
            await asyncio.to_thread(store.deliver, PROBE.user, mime)
            reply = await asyncio.wait_for(answer, 30)
            arrived = time.perf_counter()
            w.commit_to_answer.append(arrived - committed[0])
            changed_folders(reply)
        finally:
            c.close()
    finally:
        store.close()
    await catch_up(port, probe, 1)


def startup_time() -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "eas", "--version"], check=True, capture_output=True, env=easproc.eas_env())
    return time.perf_counter() - t0


async def fan_out(data_dir: Path, user: str, parked: list[Parked], w: Wakes) -> None:
    """One delivery to ``user`` wakes all of that user's parked Pings: how long until the
    last answer. ``parked`` are that user's connections."""
    store = server.open_store(data_dir, create=False)
    committed: list[float] = []
    store.watch(lambda u, folders: committed.append(time.perf_counter()))
    notify.publish_changes(store, server.notifier(data_dir))
    arrivals: list[float] = []

    async def arrival(p: Parked) -> None:
        await p.answer
        arrivals.append(time.perf_counter())

    try:
        waiting = asyncio.gather(*(arrival(p) for p in parked))
        await asyncio.to_thread(store.deliver, user, mailgen.message(1))
        await asyncio.wait_for(waiting, 120)
    finally:
        store.close()
    t = sorted(a - committed[0] for a in arrivals)
    w.fan_out = (len(parked), statistics.median(t), t[-1])


# -- report --------------------------------------------------------------------------------


def ms(values: list[float], q: float) -> str:
    return f"{easproc.percentile(values, q) * 1000:.1f}"


def report(ours: Memory, ref: Memory, w: Wakes, setup: tuple[int, float]) -> None:
    print()
    print(f"setup: {setup[0]} devices set up for real in {setup[1]:.1f} s ({setup[0] / setup[1]:.0f} devices/s, "
          "5 requests each)")
    print()
    print("| parked | eas RSS before → parked (MB) | eas KB/Ping | reference RSS before → parked (MB) "
          "| reference KB/conn | eas / reference |")
    print("|---:|---|---:|---|---:|---:|")
    for n in ours.counts:
        a, b = ours.per_ping(n), ref.per_ping(n)
        print(f"| {n:,} | {ours.before / 1024:.0f} → {ours.parked[n] / 1024:.0f} | **{a:.1f}** "
              f"| {ref.before / 1024:.0f} → {ref.parked[n] / 1024:.0f} | {b:.1f} | {a / b:.2f}x |")
    print()
    print("| wake-up (N) | p50 ms | p99 ms | max ms |")
    print("|---|---:|---:|---:|")
    rows = [("`eas mail deliver` start → Ping answer", w.cli_wake),
            ("`eas mail deliver` start → its 'delivered' line (process run)", w.cli_run),
            ("`python -m eas --version` (interpreter + CLI startup)", w.startup),
            ("in-process deliver: commit → Ping answer", w.commit_to_answer)]
    for label, values in rows:
        if values:
            print(f"| {label} ({len(values)}) | {ms(values, 50)} | {ms(values, 99)} | {max(values) * 1000:.1f} |")
    if w.fan_out:
        n, p50, last = w.fan_out
        print(f"\nfan-out: one delivery to an account with {n} parked Pings: half answered {p50 * 1000:.0f} ms "
              f"after the commit, the last {last * 1000:.0f} ms")
    print()
    print("Targets:")
    top = ours.counts[-1]
    per = ours.per_ping(top)
    print(f"  memory per parked Ping at {top:,}: {per:.1f} KB (need <= 20 KB: {'MET' if per <= 20 else 'MISSED'})")
    p99 = easproc.percentile(w.cli_wake, 99) * 1000
    print(f"  wake p99, deliver CLI start to answer: {p99:.0f} ms (need <= 100 ms: {'MET' if p99 <= 100 else 'MISSED'})")
    if w.commit_to_answer:
        p99c = easproc.percentile(w.commit_to_answer, 99) * 1000
        print(f"  wake p99, commit to answer: {p99c:.1f} ms (need <= 100 ms: {'MET' if p99c <= 100 else 'MISSED'})")
    if ours.early or ref.early:
        print(f"  WARNING: {ours.early} eas and {ref.early} reference requests were answered while parked")


# -- main ----------------------------------------------------------------------------------


async def run(args: argparse.Namespace, tmp: Path) -> None:
    counts = sorted(args.counts)
    total = counts[-1]
    data_dir = tmp / "data"
    store = server.open_store(data_dir)
    users = [easproc.Account(f"user{i:02d}@example.com", f"secret-{i}") for i in range(args.users)]
    for u in [*users, PROBE]:
        store.add_user(u.user, u.password)
    store.close()
    message = tmp / "message.eml"
    message.write_bytes(mailgen.message(0))
    devices = [Device(easproc.DeviceId(users[i % len(users)], f"BenchPing{i:05d}", version=VERSION))
               for i in range(total)]
    probe = Device(easproc.DeviceId(PROBE, "BenchProbe", version=VERSION))
    w = Wakes()

    # The reference first: the same requests, the same counts, on the trivial app.
    requests = [d.ident.raw("Ping", ping_body("1")) for d in devices]
    port = easproc.free_port()
    holder = easproc.Process([sys.executable, os.path.join(HERE, "holdapp.py"), "--port", str(port)],
                             ready=b"holdapp: listening", port=port)
    parked: list[Parked] = []
    with holder:
        ref = await measure_parking("reference", holder, requests, counts, parked)
        holder.stop()  # before the clients close: the server answers nothing, cancels its holds
    close_all(parked)

    with easproc.eas_serve(data_dir) as proc:
        print(f"server: pid {proc.pid}, port {proc.port}; setting up {total} devices ...", flush=True)
        took = await set_up_all(proc.port, [probe, *devices], args.connections)
        requests = [d.ident.raw("Ping", ping_body(d.inbox)) for d in devices]
        ours = await measure_parking("eas", proc, requests, counts, parked)
        try:
            for _ in range(5):
                w.startup.append(await asyncio.to_thread(startup_time))
            for i in range(args.wakes):
                await wake_with_cli(proc.port, data_dir, probe, message, w)
                if i % 10 == 9:
                    print(f"  {i + 1} CLI wake-ups, p50 {ms(w.cli_wake, 50)} ms", flush=True)
            for i in range(args.wakes):
                await wake_in_process(proc.port, data_dir, probe, mailgen.message(100 + i), w)
            mine = [p for p, d in zip(parked, devices) if d.ident.account is users[0]]
            await fan_out(data_dir, users[0].user, mine, w)
        finally:
            proc.stop()  # answers every parked Ping (end_waits), then the clients close
            close_all(parked)
    report(ours, ref, w, (total + 1, took))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="200 and 1,000 parked Pings, 20 wake-ups")
    ap.add_argument("--counts", type=lambda s: [int(x) for x in s.split(",")],
                    help="parked Pings to measure at (default 1000,10000)")
    ap.add_argument("--users", type=int, default=10, help="accounts sharing the devices (default 10)")
    ap.add_argument("--wakes", type=int, help="wake-ups to time (default 50, quick 20)")
    ap.add_argument("--connections", type=int, default=8, help="concurrent connections for the setup")
    args = ap.parse_args()
    args.counts = args.counts or ([200, 1000] if args.quick else [1000, 10000])
    args.wakes = args.wakes or (20 if args.quick else 50)
    limit = easproc.raise_nofile()
    if limit < max(args.counts) + 100:
        print(f"the open-file limit is {limit}: too low for {max(args.counts)} connections", file=sys.stderr)
        return 1
    print(f"machine: {easproc.machine()}")
    tmp = Path(tempfile.mkdtemp(prefix="eas-bench-ping-"))
    try:
        asyncio.run(run(args, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
