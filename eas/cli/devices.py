"""``eas device skipped``: what loop detection stopped sending to a user's devices
(``eas.loops``), read from the data dir's state store while the server runs."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING, Any

from eas import server
from eas.cli.admin import UsageError
from eas.cli.config import _with_state

if TYPE_CHECKING:
    from eas.state.store import StateStore


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
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(entry.get("time", 0)))
                print(f"  {when}Z {entry.get('class', '')} {entry.get('kind', '')} "
                      f"{entry.get('server_id', '')} (item {entry.get('item_id', '')}): {entry.get('reason', '')}")
        return 0

    return _with_state(args, report)


def add_parsers(verbs: Any, data_dir_parent: argparse.ArgumentParser) -> None:
    """Add ``device`` to the ``eas`` command."""
    device = verbs.add_parser("device", help="a user's devices")
    ops = device.add_subparsers(dest="op", required=True, metavar="OP")
    skip = ops.add_parser("skipped", parents=[data_dir_parent],
                          help="items loop detection stopped sending to a user's devices")
    skip.add_argument("user")
    skip.add_argument("device_id", nargs="?", help="only this device")
    skip.set_defaults(run=skipped)
