"""``eas service list|start|stop|restart NAME``: the server's engines, named in
``eas.access.services.SERVICES``: the ABQ engine (``abq``), the rate jail
(``anti-dos``) and the notifier that mails administrators (``notifier``).

``start`` and ``stop`` set the engine's setting (audited as actor ``cli``); a running
server follows through its short settings caches (abq, anti-dos: a second or two; the
notifier at its next round, within a minute). ``restart`` reaches a running ``eas
serve`` over the data dir's notify socket: anti-dos clears every jail, the notifier runs
a round now, abq reads its settings again.

The jail's counters live in the server's memory, so ``list`` tells what it can from
outside: the settings in force, whether a server listens, the jailings of the audit
trail that are not over yet (nor cleared by a restart since), the ABQ mode with the
devices it holds back, and the notifier's interval, recipients and last notice.
"""

from __future__ import annotations

import argparse
import socket
import time
from typing import TYPE_CHECKING, Any

from eas import server
from eas.access.services import SERVICES
from eas.cli.admin import UsageError
from eas.cli.config import with_state

if TYPE_CHECKING:
    from eas.state.store import StateStore


def _server_running(args: argparse.Namespace) -> bool:
    """Whether an ``eas serve`` listens on the data dir's notify socket."""
    from eas.notify import _address

    path = server.notifier(server.data_dir(args.data_dir)).path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
        try:
            with _address(path) as address:
                probe.connect(address)
        except OSError:
            return False
    return True


def _service(name: str) -> str:
    """A known service's name (``UsageError`` naming the known ones otherwise)."""
    if name not in SERVICES:
        raise UsageError(f"unknown service {name[:64]!r} (known: {', '.join(SERVICES)})")
    return name


def _when(t: float | None) -> str:
    return "never" if t is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


async def _abq_lines(store: StateStore, state: str) -> list[str]:
    from eas.access import get_setting

    counts: dict[str, int] = {}
    for device in await store.list_devices():
        counts[device.access] = counts.get(device.access, 0) + 1
    mode = await get_setting(store, "abq.mode")
    return [(f"abq: {state}: mode {mode}; {counts.get('quarantined', 0)} devices quarantined, "
             f"{counts.get('discovery', 0)} in discovery, {counts.get('blocked', 0)} blocked")]


async def _anti_dos_lines(store: StateStore, state: str) -> list[str]:
    from eas.access import known_settings

    stored = await store.settings("jail.")
    s: dict[str, Any] = {name: stored.get(name, setting.default) for name, setting in known_settings().items()
                         if name.startswith("jail.")}
    lines = [(f"anti-dos: {state}: more than {s['jail.max_requests']} requests "
             f"in {s['jail.window']} s jails a device or account for {s['jail.duration']} s; "
             f"at most {s['jail.max_concurrent']} requests of one account at once")]
    now = time.time()
    since = now - float(s["jail.duration"])
    events = await store.events(since=since, limit=1000)
    restarts = [e.time for e in events if e.action == "service.restart" and e.detail == "anti-dos"]
    if restarts:
        since = max(restarts)
    for e in reversed([e for e in events if e.action == "jail" and e.time > since]):
        left = int(e.time + float(s["jail.duration"]) - now) + 1
        who = f"{e.user} {e.device_id}" if e.device_id else f"{e.user} (account)"
        lines.append(f"  jailed: {who}, {left} s left")
    return lines


async def _notifier_lines(store: StateStore, state: str) -> list[str]:
    from eas.access.notifier import status

    s = await status(store)
    interval = s["notifier.interval"]
    notices = f"quarantine notices every {interval} min" if interval else "no quarantine notices (interval 0)"
    to = ", ".join(s["notifier.recipients"]) or "nobody (notifier.recipients unset: nothing is sent)"
    return [(f"notifier: {state}: {notices}, jail alerts; to {to} "
            f"via {s['notifier.smtp_host']}:{s['notifier.smtp_port']} ({s['notifier.smtp_tls']}); "
            f"last notice {_when(s['last_notice'])}")]


def service_list(args: argparse.Namespace) -> int:
    from eas.access import get_setting

    running = _server_running(args)
    describe = {"abq": _abq_lines, "anti-dos": _anti_dos_lines, "notifier": _notifier_lines}

    async def work(store: StateStore) -> int:
        for name, setting in SERVICES.items():
            state = "enabled" if await get_setting(store, setting) is True else "disabled"
            print("\n".join(await describe[name](store, state + ("" if running else " (no server running)"))))
        return 0

    return with_state(args, work)


def _switch(args: argparse.Namespace, on: bool) -> int:
    from eas.access import change_setting

    name = _service(args.name)
    setting = SERVICES[name]

    async def work(store: StateStore) -> int:
        await change_setting(store, setting, on, actor="cli")
        return 0

    with_state(args, work)
    print(f"{name}: {'started' if on else 'stopped'} ({setting} = {'true' if on else 'false'})")
    return 0


def service_start(args: argparse.Namespace) -> int:
    return _switch(args, True)


def service_stop(args: argparse.Namespace) -> int:
    return _switch(args, False)


RESTARTED = {"abq": "restarted, its settings are read again",
             "anti-dos": "restarted, every jail cleared",
             "notifier": "restarted, a round of notices runs now"}


def service_restart(args: argparse.Namespace) -> int:
    from eas.state.model import AuditEvent

    name = _service(args.name)
    reached = server.notifier(server.data_dir(args.data_dir)).publish_service(name)

    async def work(store: StateStore) -> int:
        await store.record_event(AuditEvent("service.restart", actor="cli", detail=name))
        return 0

    with_state(args, work)
    if reached:
        print(f"{name}: {RESTARTED[name]}")
    else:
        print(f"{name}: no server running" + (" (its jails end with it)" if name == "anti-dos" else ""))
    return 0


def add_parsers(verbs: Any, data_dir_parent: argparse.ArgumentParser) -> None:
    """Add ``service`` to the ``eas`` command."""
    names = ", ".join(SERVICES)
    service = verbs.add_parser("service", help=f"the server's engines ({names})")
    ops = service.add_subparsers(dest="op", required=True, metavar="OP")
    listing = ops.add_parser("list", parents=[data_dir_parent], help="the engines, on or off, their settings and state")
    listing.set_defaults(run=service_list)
    for op, run, what in (("start", service_start, "turn an engine on"),
                          ("stop", service_stop, "turn an engine off (abq stopped: every device allowed)"),
                          ("restart", service_restart, ("restart an engine of the running server (anti-dos: clear "
                                                       "every jail; notifier: a round now; abq: re-read settings)"))):
        parser = ops.add_parser(op, parents=[data_dir_parent], help=what)
        parser.add_argument("name", help=names)
        parser.set_defaults(run=run)
