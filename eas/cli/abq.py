"""``eas abq``: Allow/Block/Quarantine (``eas.access.abq``) in a data dir's state store:
the mode, the device list, the rules, the notice texts (``eas.access.quarantine``) and
how often administrators hear of quarantined devices (``notifier.interval``).

Every change is audited (actor ``cli``). A change that decides devices is announced on
the notify socket for each account that has such a device, so that a running server ends
their waiting Pings at once; it applies the change within a second (its 1 s cache).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from eas import server
from eas.cli.admin import UsageError
from eas.cli.config import with_state

if TYPE_CHECKING:
    from eas.state.store import StateStore

ACTOR = "cli"
Work = Callable[["StateStore"], Awaitable[int]]


def _run(args: argparse.Namespace, work: Work) -> int:
    """Run an admin call on the state store, bad input as a usage error (exit 2)."""
    async def run(store: StateStore) -> int:
        try:
            return await work(store)
        except (ValueError, TypeError) as e:
            raise UsageError(str(e)) from None
    return with_state(args, run)


async def _publish(args: argparse.Namespace, store: StateStore, device_id: str | None = None, user: str = "") -> None:
    """Tell a running server about the accounts whose devices the change may decide."""
    from eas.access.abq import accounts_with_device

    notifier = server.notifier(server.data_dir(args.data_dir))
    for account in sorted(await accounts_with_device(store, device_id, user)):
        notifier.publish_account(account)


def mode(args: argparse.Namespace) -> int:
    from eas.access import get_setting
    from eas.access.abq import set_mode

    async def work(store: StateStore) -> int:
        if args.mode is None:
            print(await get_setting(store, "abq.mode"))
            return 0
        kept = await set_mode(store, args.mode, actor=ACTOR, grandfather=not args.no_grandfather)
        await _publish(args, store)
        print(f"mode {args.mode}" + (f" ({kept} devices grandfathered: kept allowed)" if kept else ""))
        return 0

    return _run(args, work)


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(stamp)) if stamp else "-"


def show(args: argparse.Namespace) -> int:
    from eas.access import get_setting
    from eas.access.abq import device_entries, rules

    async def work(store: StateStore) -> int:
        print(f"mode: {await get_setting(store, 'abq.mode')}"
              + ("" if await get_setting(store, "service.abq") else " (service stopped: every device allowed)"))
        print(f"auto-allow: {await get_setting(store, 'abq.auto_allow')} devices per account, "
              f"max devices: {await get_setting(store, 'abq.max_devices') or 'unlimited'}")
        apps = await get_setting(store, "abq.approved_apps")
        for app in apps:
            print(f"approved app: {app['field']} {'~' if app.get('regex') else '='} {app['value']}")
        entries = await device_entries(store)
        print(f"device list ({len(entries)}):")
        for e in entries:
            print(f"  {e.device_id} {e.user or '(every account)'} {e.state}"
                  f"{' - ' + e.note if e.note else ''} (by {e.actor or '?'}, {_when(e.time)})")
        found = await rules(store)
        print(f"rules ({len(found)}):")
        for rule in found:
            print(f"  {rule.describe()}")
        devices = sorted(await store.list_devices(), key=lambda d: (d.user, d.device_id))
        print(f"devices ({len(devices)}):")
        for d in devices:
            print(f"  {d.user} {d.device_id} {d.device_type or '-'} {d.model or '-'}: {d.access}"
                  f"{' (' + d.access_reason + ')' if d.access_reason else ''} since {_when(d.access_time)}")
        return 0

    return _run(args, work)


def set_state(args: argparse.Namespace) -> int:
    from eas.access.abq import set_device

    state = {"allow": "allowed", "block": "blocked"}.get(args.op, getattr(args, "state", None))

    async def work(store: StateStore) -> int:
        await set_device(store, args.device, str(state), user=args.user or "", actor=ACTOR, note=args.note or "")
        await _publish(args, store, args.device, args.user or "")
        print(f"{args.device} {state} for {args.user or 'every account'}")
        return 0

    return _run(args, work)


def delete(args: argparse.Namespace) -> int:
    from eas.access.abq import delete_device

    async def work(store: StateStore) -> int:
        if not await delete_device(store, args.device, user=args.user or "", actor=ACTOR):
            raise UsageError(f"no entry for {args.device} ({args.user or 'every account'})")
        await _publish(args, store, args.device, args.user or "")
        print(f"{args.device}: entry for {args.user or 'every account'} deleted")
        return 0

    return _run(args, work)


def import_file(args: argparse.Namespace) -> int:
    from eas.access.abq import import_devices

    if args.file == "-":
        text = sys.stdin.read()
    else:
        with open(args.file, encoding="utf-8", errors="strict") as f:
            try:
                text = f.read()
            except UnicodeDecodeError as e:
                raise UsageError(f"{args.file}: not UTF-8 text ({e.reason} at byte {e.start})") from None

    async def work(store: StateStore) -> int:
        count = await import_devices(store, text.splitlines(), args.state, actor=ACTOR)
        await _publish(args, store)
        print(f"{count} entries {args.state}")
        return 0

    return _run(args, work)


def rule_add(args: argparse.Namespace) -> int:
    from eas.access.abq import add_rule

    async def work(store: StateStore) -> int:
        rule = await add_rule(store, args.action, args.field, args.value, regex=args.regex, domain=args.domain or "",
                              actor=ACTOR)
        await _publish(args, store)
        print(rule.describe())
        return 0

    return _run(args, work)


def rule_delete(args: argparse.Namespace) -> int:
    from eas.access.abq import delete_rule

    async def work(store: StateStore) -> int:
        if not await delete_rule(store, args.id, actor=ACTOR):
            raise UsageError(f"no rule {args.id}")
        await _publish(args, store)
        print(f"rule {args.id} deleted")
        return 0

    return _run(args, work)


def rule_list(args: argparse.Namespace) -> int:
    from eas.access.abq import rules

    async def work(store: StateStore) -> int:
        found = await rules(store)
        if not found:
            print("no rules")
        for rule in found:
            print(rule.describe())
        return 0

    return _run(args, work)


def message(args: argparse.Namespace) -> int:
    from eas.access import quarantine

    where = {"state": args.state, "domain": args.domain or "", "language": args.language or ""}
    text = getattr(args, "text", None)
    if args.op == "set":
        if (text is None) == (args.file is None):
            raise UsageError("give the message as TEXT or --file FILE (one of them)")
        if args.file is not None:
            with open(args.file, encoding="utf-8") as f:
                text = f.read()

    async def work(store: StateStore) -> int:
        if args.op == "get":
            notice = await quarantine.get_message(store, **where)
            print(f"({notice.source})\nSubject: {notice.subject}\n\n{notice.text}")
        elif args.op == "delete":
            if not await quarantine.delete_message(store, **where, actor=ACTOR):
                raise UsageError(f"no {args.state} message set for {args.domain or 'global'}"
                                 f"{' ' + args.language if args.language else ''}")
            print("message deleted")
        else:
            await quarantine.set_message(store, **where, subject=args.subject, text=str(text),
                                         actor=ACTOR)
            print("message set")
        return 0

    return _run(args, work)


def notify_interval(args: argparse.Namespace) -> int:
    from eas.access import change_setting, get_setting

    async def work(store: StateStore) -> int:
        try:
            if args.minutes is None:
                print(await get_setting(store, "notifier.interval"))
            else:
                value = await change_setting(store, "notifier.interval", args.minutes, actor=ACTOR)
                print(f"notifier.interval {value}" + (" (notices off)" if not value else " minutes"))
        except KeyError:
            raise UsageError("this server has no notifier (no setting notifier.interval)") from None
        except (ValueError, TypeError) as e:
            raise UsageError(f"notifier.interval: {e}") from None
        return 0

    return _run(args, work)


def add_parsers(verbs: Any, data_dir_parent: argparse.ArgumentParser) -> None:
    """Add ``abq`` to the ``eas`` command."""
    from eas.access.abq import ACTIONS, ENTRY_STATES, FIELDS, MODES

    p = verbs.add_parser("abq", help="Allow/Block/Quarantine: mode, device list, rules, notice texts")
    ops = p.add_subparsers(dest="op", required=True, metavar="OP")
    q = ops.add_parser("mode", parents=[data_dir_parent], help="show or set the mode")
    q.add_argument("mode", nargs="?", choices=MODES)
    q.add_argument("--no-grandfather", action="store_true",
                   help="on enabling interactive or strict, do not keep the devices allowed now allowed")
    q.set_defaults(run=mode)
    ops.add_parser("list", parents=[data_dir_parent], help="the mode, lists, rules and every device's state"
                   ).set_defaults(run=show)
    for op, text in (("allow", "allow a device id (for one account when USER is given)"),
                     ("block", "block a device id (for one account when USER is given)"),
                     ("set", "set a device id's state (quarantined: every account only)"),
                     ("delete", "delete a device id's entry (for USER: the personal one)")):
        q = ops.add_parser(op, parents=[data_dir_parent], help=text)
        q.add_argument("device")
        if op == "set":
            q.add_argument("state", choices=ENTRY_STATES)
        q.add_argument("user", nargs="?", help="the account (user@domain); none: every account")
        if op != "delete":
            q.add_argument("--note", help="why, for the device list")
        q.set_defaults(run=delete if op == "delete" else set_state)
    q = ops.add_parser("import", parents=[data_dir_parent],
                       help="entries from a file of DEVICEID or DEVICEID USER lines (all or nothing)")
    q.add_argument("file", help="the file; - for stdin")
    q.add_argument("state", choices=ENTRY_STATES)
    q.set_defaults(run=import_file)
    r = ops.add_parser("rule", help="device access rules")
    rops = r.add_subparsers(dest="rule_op", required=True, metavar="OP")
    q = rops.add_parser("add", parents=[data_dir_parent], help="add a rule")
    q.add_argument("action", choices=ACTIONS)
    q.add_argument("field", choices=FIELDS)
    q.add_argument("value", help="the value (case-insensitive), or a regular expression with --regex")
    q.add_argument("--regex", action="store_true", help="VALUE is a regular expression, searched")
    q.add_argument("--domain", help="for the accounts of this domain only")
    q.set_defaults(run=rule_add)
    q = rops.add_parser("delete", parents=[data_dir_parent], help="delete a rule")
    q.add_argument("id", type=int)
    q.set_defaults(run=rule_delete)
    rops.add_parser("list", parents=[data_dir_parent], help="the rules").set_defaults(run=rule_list)
    m = ops.add_parser("message", help="the notice a restricted device sees")
    mops = m.add_subparsers(dest="op", required=True, metavar="OP")
    for op, text in (("set", "set a notice text"), ("get", "the notice that applies"),
                     ("delete", "delete a notice text")):
        q = mops.add_parser(op, parents=[data_dir_parent], help=text)
        q.add_argument("--state", choices=("quarantined", "blocked"), default="quarantined")
        q.add_argument("--domain", help="for the accounts of this domain (default: global)")
        q.add_argument("--language", metavar="LL", help="for devices in this language (de, pt-BR)")
        if op == "set":
            q.add_argument("text", nargs="?")
            q.add_argument("--file", help="read the text from this file")
            q.add_argument("--subject")
        q.set_defaults(run=message)
    q = ops.add_parser("notify-interval", parents=[data_dir_parent],
                       help="show or set how often administrators are mailed about quarantined devices")
    q.add_argument("minutes", nargs="?", type=int, help="minutes; 0 disables")
    q.set_defaults(run=notify_interval)
