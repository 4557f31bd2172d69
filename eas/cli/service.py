"""``eas service list|restart``: the server's background engines. Only the rate jail
(``anti-dos``, ``eas.access.jail``) is one so far; ``restart anti-dos`` clears every jail
of a running ``eas serve`` over the data dir's notify socket.

The jail's counters live in the server's memory, so ``list`` tells what it can from
outside: the settings in force, whether a server listens, and the jailings of the audit
trail that are not over yet (nor cleared by a restart since).
"""

from __future__ import annotations

import argparse
import socket
import time
from typing import TYPE_CHECKING, Any

from eas import server
from eas.cli.admin import UsageError
from eas.cli.config import _with_state

if TYPE_CHECKING:
    from eas.state.store import StateStore

SERVICES = ("anti-dos",)


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


def service_list(args: argparse.Namespace) -> int:
    from eas.access import known_settings

    known = known_settings()
    running = _server_running(args)

    async def work(store: StateStore) -> int:
        stored = await store.settings("jail.")
        s: dict[str, Any] = {name: stored.get(name, setting.default) for name, setting in known.items()
                             if name.startswith("jail.")}
        print(f"anti-dos: {'enabled' if s['jail.enabled'] else 'disabled'}"
              f"{'' if running else ' (no server running)'}: more than {s['jail.max_requests']} requests "
              f"in {s['jail.window']} s jails a device or account for {s['jail.duration']} s; "
              f"at most {s['jail.max_concurrent']} requests of one account at once")
        now = time.time()
        since = now - float(s["jail.duration"])
        events = await store.events(since=since, limit=1000)
        restarts = [e.time for e in events if e.action == "service.restart" and e.detail == "anti-dos"]
        if restarts:
            since = max(restarts)
        jails = [e for e in events if e.action == "jail" and e.time > since]
        for e in reversed(jails):
            left = int(e.time + float(s["jail.duration"]) - now) + 1
            who = f"{e.user} {e.device_id}" if e.device_id else f"{e.user} (account)"
            print(f"  jailed: {who}, {left} s left")
        return 0

    return _with_state(args, work)


def service_restart(args: argparse.Namespace) -> int:
    from eas.state.model import AuditEvent

    if args.name not in SERVICES:
        raise UsageError(f"unknown service {args.name!r} (known: {', '.join(SERVICES)})")
    reached = server.notifier(server.data_dir(args.data_dir)).publish_service(args.name)

    async def work(store: StateStore) -> int:
        await store.record_event(AuditEvent("service.restart", actor="cli", detail=args.name))
        return 0

    _with_state(args, work)
    print(f"{args.name}: restarted, every jail cleared" if reached
          else f"{args.name}: no server running (its jails end with it)")
    return 0


def add_parsers(verbs: Any, data_dir_parent: argparse.ArgumentParser) -> None:
    """Add ``service`` to the ``eas`` command."""
    service = verbs.add_parser("service", help="the server's engines (the rate jail: anti-dos)")
    ops = service.add_subparsers(dest="op", required=True, metavar="OP")
    listing = ops.add_parser("list", parents=[data_dir_parent], help="the engines, their settings and state")
    listing.set_defaults(run=service_list)
    restart = ops.add_parser("restart", parents=[data_dir_parent],
                             help="restart an engine of the running server (anti-dos: clear every jail)")
    restart.add_argument("name", help="anti-dos")
    restart.set_defaults(run=service_restart)
