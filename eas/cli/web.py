"""``eas web user add|remove|list``: the admin accounts of the admin web page
(``eas.web``), kept apart from mail accounts in the data dir's state store. Every change
is audited (actor ``cli``); a removed admin's sessions end at their next request.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from eas.cli.admin import UsageError, read_password
from eas.cli.config import with_state

if TYPE_CHECKING:
    from eas.state.store import StateStore


def _name(raw: str) -> str:
    from eas.web import check_admin_name

    try:
        return check_admin_name(raw)
    except (TypeError, ValueError) as e:
        raise UsageError(str(e)) from None


def user_add(args: argparse.Namespace) -> int:
    from eas.web import add_admin

    name = _name(args.name)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password or len(password) > 1024:
            raise UsageError("an admin password has 1 to 1024 characters")
    else:
        args.password = None
        password = read_password(args)  # prompted twice on a terminal, else one line of stdin

    async def work(store: StateStore) -> int:
        await add_admin(store, name, password, actor="cli")
        return 0

    with_state(args, work)
    print(f"admin {name} set")
    return 0


def user_remove(args: argparse.Namespace) -> int:
    from eas.web import remove_admin

    name = _name(args.name)

    async def work(store: StateStore) -> int:
        return 0 if await remove_admin(store, name, actor="cli") else 1

    if with_state(args, work):
        raise UsageError(f"no admin named {name!r}")
    print(f"admin {name} removed")
    return 0


def user_list(args: argparse.Namespace) -> int:
    from eas.web import list_admins

    async def work(store: StateStore) -> int:
        for name in await list_admins(store):
            print(name)
        return 0

    return with_state(args, work)


def add_parsers(verbs: Any, data_dir_parent: argparse.ArgumentParser) -> None:
    """Add ``web`` to the ``eas`` command."""
    p = verbs.add_parser("web", help="admin accounts of the admin web page (eas serve --admin-port)")
    ops = p.add_subparsers(dest="op", required=True, metavar="OP")
    users = ops.add_parser("user", help="add, remove or list admin accounts (not mail accounts)")
    uops = users.add_subparsers(dest="user_op", required=True, metavar="OP")
    add = uops.add_parser("add", parents=[data_dir_parent], help="add an admin, or change its password")
    add.add_argument("name", help="letters, digits, . _ @ -")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of stdin (else prompted)")
    add.set_defaults(run=user_add)
    remove = uops.add_parser("remove", parents=[data_dir_parent], help="remove an admin")
    remove.add_argument("name")
    remove.set_defaults(run=user_remove)
    ls = uops.add_parser("list", parents=[data_dir_parent], help="the admin names")
    ls.set_defaults(run=user_list)
