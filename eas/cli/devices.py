"""``eas device``: a data dir's devices (``eas.access.devices``): list, show, remove,
reset, wipe, cancel-wipe, suspend, resume, simulate, and what loop detection skipped
(``eas.loops``). Changes are audited (actor ``cli``) and published as an account event,
so that a running ``eas serve`` ends the account's waiting Pings and its devices meet
the change at once. Bad input or an unknown device exits 2; ``simulate`` exits 1 when
the simulated sync found failures.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import time
from typing import TYPE_CHECKING, Any

from eas import server
from eas.cli.admin import UsageError
from eas.cli.config import with_state

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from eas.access.devices import DeviceDetails, SimulationReport
    from eas.state.model import DeviceRecord
    from eas.state.store import StateStore

DAY = 86400.0


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch)) if epoch else "-"


def _skipped_line(entry: dict[str, Any]) -> str:
    """One item loop detection or an unreadable item took out of a device's sync."""
    return (f"  {_when(entry.get('time', 0))} {entry.get('class', '')} {entry.get('kind', '')} "
            f"{entry.get('server_id', '')} (item {entry.get('item_id', '')}): {entry.get('reason', '')}")


def _state(args: argparse.Namespace, work: Callable[[StateStore], Awaitable[int]]) -> int:
    """Run ``work`` on the state store; bad names, unknown devices and refused changes
    are usage errors (exit 2)."""
    from eas.access.devices import NoSuchDevice

    async def checked(store: StateStore) -> int:
        try:
            return await work(store)
        except NoSuchDevice as e:
            raise UsageError(str(e)) from None
        except (ValueError, TypeError) as e:
            raise UsageError(str(e)) from None

    return with_state(args, checked)


def _wake(args: argparse.Namespace) -> Callable[[str], None]:
    """Publish an account event to the data dir's running server, if any."""
    notifier = server.notifier(server.data_dir(args.data_dir))
    return notifier.publish_account


def list_devices(args: argparse.Namespace) -> int:
    from eas.access.devices import list_devices, state_of

    now = time.time()
    for days in (args.seen_within, args.not_seen_within):
        if days is not None and not 0 < days <= 36500:
            raise UsageError(f"days must be more than 0 and at most 36500: {days}")

    async def work(store: StateStore) -> int:
        devices = await list_devices(
            store, user=args.user, state=args.state, device_type=args.type,
            seen_since=None if args.seen_within is None else now - args.seen_within * DAY,
            seen_before=None if args.not_seen_within is None else now - args.not_seen_within * DAY)
        if args.json:
            print(json.dumps([{**dataclasses.asdict(d), "state": state_of(d)} for d in devices], indent=1,
                             ensure_ascii=False))
            return 0
        if not devices:
            print("no devices")
            return 0
        rows = [("USER", "DEVICE ID", "TYPE", "MODEL", "VERSION", "STATE", "LAST SEEN")]
        rows += [(d.user, d.device_id, d.device_type, d.model or d.friendly_name, d.protocol_version, state_of(d),
                  _when(d.last_seen)) for d in devices]
        _table(rows)
        return 0

    return _state(args, work)


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def show(args: argparse.Namespace) -> int:
    from eas.access.devices import device_details

    async def work(store: StateStore) -> int:
        details = await device_details(store, args.user, args.device_id)
        if args.json:
            print(json.dumps({"device": dataclasses.asdict(details.device), "policy": details.policy,
                              "history": [dataclasses.asdict(e) for e in details.history],
                              "skipped": details.skipped}, indent=1, ensure_ascii=False))
        else:
            _print_details(details)
        return 0

    return _state(args, work)


def _wipe_text(d: DeviceRecord) -> str:
    if not d.wipe:
        return "none"
    text = d.wipe
    if d.wipe_requested:
        text += f", requested {_when(d.wipe_requested)}"
    if d.wipe_acknowledged:
        text += f", acknowledged {_when(d.wipe_acknowledged)}"
    return text


def _print_details(details: DeviceDetails) -> None:
    from eas.access.devices import state_of

    d = details.device
    lines = [
        ("device", f"{d.device_id} of {d.user}"),
        ("state", state_of(d)),
        ("type", d.device_type), ("model", d.model), ("friendly name", d.friendly_name), ("OS", d.os),
        ("OS language", d.os_language), ("IMEI", d.imei), ("phone number", d.phone_number),
        ("mobile operator", d.mobile_operator), ("outbound SMS", "yes" if d.enable_outbound_sms else "no"),
        ("user agent", d.user_agent), ("protocol version", d.protocol_version),
        ("first seen", _when(d.first_seen)), ("last seen", _when(d.last_seen)),
        ("access", f"{d.access}" + (f" ({d.access_reason})" if d.access_reason else "")
         + (f" since {_when(d.access_time)}" if d.access_time else "")),
        ("policy", details.policy), ("wipe", _wipe_text(d)), ("suspended", "yes" if d.suspended else "no"),
    ]
    for name, value in lines:
        print(f"{name + ':':18}{value}")
    print(f"history ({len(details.history)}):")
    for e in details.history:
        print(f"  {_when(e.time)} {e.action} by {e.actor}" + (f": {e.detail}" if e.detail else ""))
    print(f"skipped by loop detection ({len(details.skipped)}):")
    for entry in details.skipped:
        print(_skipped_line(entry))


def change(args: argparse.Namespace) -> int:
    """remove, reset, wipe, cancel-wipe, suspend, resume."""
    from eas.access import devices

    wake = _wake(args)

    async def work(store: StateStore) -> int:
        who = f"{args.device_id} of {args.user}"
        if args.op in ("remove", "reset"):
            done = await (devices.remove if args.op == "remove" else devices.reset)(
                store, args.user, args.device_id, actor="cli", wake=wake)
            if not done:
                raise UsageError(f"{args.user} has no device {args.device_id}")
            print(f"{who}: removed (it starts over as a new device)" if args.op == "remove"
                  else f"{who}: sync state reset (it syncs everything again)")
        elif args.op == "wipe":
            record = await devices.wipe(store, args.user, args.device_id, account_only=args.account_only,
                                        actor="cli", wake=wake)
            print(f"{who}: {'account-only ' if args.account_only else ''}wipe pending since "
                  f"{_when(record.wipe_requested)} (delivered when it connects)")
        elif args.op == "cancel-wipe":
            await devices.cancel_wipe(store, args.user, args.device_id, actor="cli", wake=wake)
            print(f"{who}: wipe cancelled")
        else:
            act = devices.suspend if args.op == "suspend" else devices.resume
            changed = await act(store, args.user, args.device_id, actor="cli", wake=wake)
            word = "suspended" if args.op == "suspend" else "resumed"
            print(f"{who}: {word}" if changed else f"{who}: already {word if args.op == 'suspend' else 'syncing'}")
        return 0

    return _state(args, work)


def simulate(args: argparse.Namespace) -> int:
    from eas.access.devices import MAX_WINDOW, simulate_sync
    from eas.protocol.versions import Version

    try:
        Version(args.version)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if not 1 <= args.window <= MAX_WINDOW:
        raise UsageError(f"the window is 1 to {MAX_WINDOW} items: {args.window}")
    folder = server.data_dir(args.data_dir)
    try:
        mail = server.open_store(folder, create=False)
    except server.NoStore as e:
        raise UsageError(str(e)) from None
    try:
        user = args.user.strip().lower()
        if user not in mail.list_users():
            raise UsageError(f"no such user: {args.user}")
    finally:
        mail.close()
    app, store = server.build(folder)

    async def run() -> SimulationReport:
        try:
            return await simulate_sync(app, user, version=args.version, window=args.window)
        finally:
            await app.store.close()

    try:
        report = asyncio.run(run())
    finally:
        store.close()
    _print_report(report, args.window)
    return 0 if report.ok else 1


def _print_report(report: SimulationReport, window: int) -> None:
    print(f"simulated sync of {report.user} as a {report.version} device (window {window}): "
          f"{len(report.folders)} folders, {sum(f.items for f in report.folders)} items, "
          f"{sum(f.bytes for f in report.folders)} bytes, {report.seconds:.2f} s")
    rows = [("FOLDER", "CLASS", "ITEMS", "BYTES", "SECONDS", "RESULT")]
    rows += [(f.name, f.item_class, str(f.items), str(f.bytes), f"{f.seconds:.2f}",
              "ok" if not f.failures else f"{len(f.failures)} failures") for f in report.folders]
    _table(rows)
    failures = [("FolderSync", x) for x in report.hierarchy_failures]
    failures += [(f.name, x) for f in report.folders for x in f.failures]
    if failures:
        print(f"failures ({len(failures)}):")
    for where, x in failures:
        item = f" item {x.item_id}" if x.item_id else ""
        print(f"  {where}:{item} {x.what}" + (f": {x.detail}" if x.detail else ""))


def skipped(args: argparse.Namespace) -> int:
    from eas.loops import skipped_items

    path = server.data_dir(args.data_dir) / "state.db"
    if not path.exists():
        raise UsageError(f"no device state in {path.parent} (no device has connected)")
    user = args.user.strip().lower()

    async def report(store: StateStore) -> int:
        devices = [d for d in await store.list_devices(user)
                   if args.device_id is None or d.device_id == args.device_id]
        if args.device_id is not None and not devices:
            raise UsageError(f"{user} has no device {args.device_id}")
        for device in devices:
            items = await skipped_items(store, user, device.device_id)
            print(f"{device.device_id} ({device.device_type or 'unknown type'}): {len(items)} skipped")
            for entry in items:
                print(_skipped_line(entry))
        return 0

    return with_state(args, report)


def add_parsers(verbs: Any, data_dir_parent: argparse.ArgumentParser) -> None:
    """Add ``device`` to the ``eas`` command."""
    from eas.access.devices import STATE_FILTERS

    device = verbs.add_parser("device", help="users' devices: list, show, wipe, suspend, simulate a sync")
    ops = device.add_subparsers(dest="op", required=True, metavar="OP")
    q = ops.add_parser("list", parents=[data_dir_parent], help="devices, filtered")
    q.add_argument("--user", help="only this account's devices")
    q.add_argument("--state", help=f"only devices in this state: {', '.join(STATE_FILTERS)}")
    q.add_argument("--type", help="only devices of this DeviceType (any case)")
    q.add_argument("--seen-within", type=float, metavar="DAYS", help="only devices seen in the last DAYS days")
    q.add_argument("--not-seen-within", type=float, metavar="DAYS", help="only devices not seen for DAYS days")
    q.add_argument("--json", action="store_true", help="JSON instead of a table")
    q.set_defaults(run=list_devices)
    q = ops.add_parser("show", parents=[data_dir_parent],
                       help="a device: DeviceInformation, policy, wipe, access history, skipped items")
    q.add_argument("user")
    q.add_argument("device_id", metavar="DEVICE")
    q.add_argument("--json", action="store_true", help="JSON instead of text")
    q.set_defaults(run=show)
    for op, text in (("remove", "forget the partnership and its state (refused while a wipe is pending)"),
                     ("reset", "drop the device's sync state: it syncs everything again"),
                     ("wipe", "remote wipe at its next connection, and at every one after until removed"),
                     ("cancel-wipe", "call off a wipe the device has not acknowledged"),
                     ("suspend", "stop the device's sync (status 129, 403 before 14.0)"),
                     ("resume", "let a suspended device sync again")):
        q = ops.add_parser(op, parents=[data_dir_parent], help=text)
        q.add_argument("user")
        q.add_argument("device_id", metavar="DEVICE")
        if op == "wipe":
            q.add_argument("--account-only", action="store_true",
                           help="wipe only the account's data (devices speaking 16.1)")
        q.set_defaults(run=change)
    q = ops.add_parser("simulate", parents=[data_dir_parent],
                       help="sync an account as a virtual device: what a device receives and where it fails")
    q.add_argument("user")
    q.add_argument("--version", default="16.1", help="the protocol version of the virtual device (16.1)")
    q.add_argument("--window", type=int, default=100, help="items per Sync response (100)")
    q.set_defaults(run=simulate)
    skip = ops.add_parser("skipped", parents=[data_dir_parent],
                          help="items loop detection stopped sending to a user's devices")
    skip.add_argument("user")
    skip.add_argument("device_id", nargs="?", help="only this device")
    skip.set_defaults(run=skipped)
