"""``eas access``: mobile access on or off per user and per class of service
(``eas.access.mobile``) in a data dir's state store. Every change is audited (actor
``cli``); a running server applies it within a second (settings read with a 1 s cache).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from eas.cli.config import checked, with_state

if TYPE_CHECKING:
    from eas.state.store import StateStore


def _checked(work: Any) -> Any:
    """An admin call, a bad name or an unknown group a usage error (exit 2)."""
    return checked(work, missing="no such group: {}")


def user_set(args: argparse.Namespace) -> int:
    from eas.access.mobile import set_user

    enabled = {"enable": True, "disable": False, "clear": None}[args.op]

    async def work(store: StateStore) -> int:
        await set_user(store, args.user, enabled, actor="cli")
        print(f"{args.user}: mobile access {args.op}d" if enabled is not None
              else f"{args.user}: own setting cleared (groups and the default decide)")
        return 0

    return with_state(args, _checked(work))


def show(args: argparse.Namespace) -> int:
    from eas.access.mobile import MobileAccess, check_member

    async def work(store: StateStore) -> int:
        account = check_member(args.user)
        allowed, why = await MobileAccess(store).explain(account)
        print(f"{account}: mobile access {'on' if allowed else 'off'} ({why})")
        return 0

    return with_state(args, _checked(work))


def group_members(args: argparse.Namespace) -> int:
    from eas.access.mobile import group_add, group_remove

    async def work(store: StateStore) -> int:
        change = group_add if args.op == "add" else group_remove
        await change(store, args.group, args.members, actor="cli")
        print(f"group {args.group}: {args.op} {' '.join(args.members) or '(the group)'}")
        return 0

    return with_state(args, _checked(work))


def group_set(args: argparse.Namespace) -> int:
    from eas.access.mobile import group_set as set_group

    enabled = {"enable": True, "disable": False, "clear": None}[args.op]

    async def work(store: StateStore) -> int:
        await set_group(store, args.group, enabled, actor="cli")
        print(f"group {args.group}: mobile access {args.op}d" if enabled is not None
              else f"group {args.group}: mobile access no longer set")
        return 0

    return with_state(args, _checked(work))


def group_list(args: argparse.Namespace) -> int:
    from eas.access.mobile import list_groups

    async def work(store: StateStore) -> int:
        groups = await list_groups(store)
        if not groups:
            print("no groups")
        for i, g in enumerate(groups, 1):
            state = {True: "on", False: "off", None: "not set"}[g["mobile"]]
            print(f"{i}. {g['name']} (mobile {state}): {' '.join(g['members']) or '(no members)'}")
        return 0

    return with_state(args, _checked(work))


def add_parsers(verbs: Any, data_dir_parent: argparse.ArgumentParser) -> None:
    """Add ``access`` to the ``eas`` command."""
    p = verbs.add_parser("access", help="mobile access on or off per user and per group (class of service)")
    ops = p.add_subparsers(dest="op", required=True, metavar="OP")
    for op, text in (("enable", "allow the account mobile access, whatever its groups say"),
                     ("disable", "refuse the account mobile access, whatever its groups say"),
                     ("clear", "drop the account's own setting: its groups, then the default, decide")):
        q = ops.add_parser(op, parents=[data_dir_parent], help=text)
        q.add_argument("user", help="the account, such as alice@example.com")
        q.set_defaults(run=user_set)
    q = ops.add_parser("show", parents=[data_dir_parent], help="what applies to an account and why")
    q.add_argument("user")
    q.set_defaults(run=show)
    g = ops.add_parser("group", help="classes of service, evaluated in creation order")
    gops = g.add_subparsers(dest="op", required=True, metavar="OP")
    for op, text in (("add", "add members to a group (created, last in the order, when new)"),
                     ("remove", "remove members from a group, or the group when none are given")):
        q = gops.add_parser(op, parents=[data_dir_parent], help=text)
        q.add_argument("group")
        q.add_argument("members", nargs="*" if op == "remove" else "+", metavar="MEMBER",
                       help="an account (alice@example.com) or a whole domain (@example.com)")
        q.set_defaults(run=group_members)
    for op, text in (("enable", "the group's members have mobile access"),
                     ("disable", "the group's members have no mobile access"),
                     ("clear", "the group no longer decides (later groups or the default do)")):
        q = gops.add_parser(op, parents=[data_dir_parent], help=text)
        q.add_argument("group")
        q.set_defaults(run=group_set)
    q = gops.add_parser("list", parents=[data_dir_parent], help="the groups in evaluation order")
    q.set_defaults(run=group_list)
