"""``eas filter add|delete|move|list``: the protocol-version filters (``eas.access.versions``)
of a data dir's state store. Positions are 1-based, in evaluation order. A filter is
validated before it is stored (a bad regular expression exits 2 storing nothing), every
change is audited (actor ``cli``), and a running server applies it within a second.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from eas.cli.admin import UsageError
from eas.cli.config import with_state

if TYPE_CHECKING:
    from eas.state.store import StateStore


def filter_add(args: argparse.Namespace) -> int:
    from eas.access.versions import FilterError, add_filter

    raw = {"action": args.action, "versions": args.versions, "match": "any" if args.any else "all",
           "block": args.block, "conditions": [{"field": f, "op": o, "value": v} for f, o, v in args.when or ()]}

    async def work(store: StateStore) -> int:
        try:
            f = await add_filter(store, raw, position=args.position, actor="cli")
        except FilterError as e:
            raise UsageError(str(e)) from None
        print(f"added: {f.describe()}")
        return 0

    return with_state(args, work)


def filter_delete(args: argparse.Namespace) -> int:
    from eas.access.versions import FilterError, delete_filter

    async def work(store: StateStore) -> int:
        try:
            await delete_filter(store, args.position, actor="cli")
        except FilterError as e:
            raise UsageError(str(e)) from None
        print(f"deleted filter {args.position}")
        return 0

    return with_state(args, work)


def filter_move(args: argparse.Namespace) -> int:
    from eas.access.versions import FilterError, move_filter

    async def work(store: StateStore) -> int:
        try:
            await move_filter(store, args.position, args.to, actor="cli")
        except FilterError as e:
            raise UsageError(str(e)) from None
        print(f"moved filter {args.position} to {args.to}")
        return 0

    return with_state(args, work)


def filter_list(args: argparse.Namespace) -> int:
    from eas.access.versions import list_filters

    async def work(store: StateStore) -> int:
        filters = await list_filters(store)
        if args.json:
            print(json.dumps([f.to_json() for f in filters], indent=2))
        elif not filters:
            print("no version filters: every client is offered the server's versions")
        for i, f in enumerate(filters, 1):
            if not args.json:
                print(f"{i}. {f.describe()}")
        return 0

    return with_state(args, work)


def add_parsers(verbs: Any, data_dir_parent: argparse.ArgumentParser) -> None:
    """Add ``filter`` to the ``eas`` command."""
    from eas.access.versions import ACTIONS, FIELDS, OPERATORS

    p = verbs.add_parser("filter", help="protocol-version filters: which ActiveSync versions clients are offered")
    ops = p.add_subparsers(dest="op", required=True, metavar="OP")
    add = ops.add_parser("add", parents=[data_dir_parent], help="add a filter (at the end, or at --position)")
    add.add_argument("action", choices=ACTIONS, help="add, subtract, fixed (exactly these) or max (at most this)")
    add.add_argument("versions", nargs="*", metavar="VERSION", help="protocol versions, such as 14.1 16.0")
    add.add_argument("--when", nargs=3, action="append", metavar=("FIELD", "OP", "VALUE"),
                     help=f"a condition: FIELD one of {', '.join(FIELDS)}, OP one of {', '.join(OPERATORS)} "
                          "(all ignore case; on OPTIONS the device type is unknown); repeatable")
    add.add_argument("--any", action="store_true", help="match when any condition holds (default: all)")
    add.add_argument("--block", action="store_true", help="stop evaluating after this filter when it matches")
    add.add_argument("--position", type=int, help="insert at this 1-based position")
    add.set_defaults(run=filter_add)
    delete = ops.add_parser("delete", parents=[data_dir_parent], help="delete the filter at a position")
    delete.add_argument("position", type=int)
    delete.set_defaults(run=filter_delete)
    move = ops.add_parser("move", parents=[data_dir_parent], help="move a filter to another position")
    move.add_argument("position", type=int)
    move.add_argument("to", type=int)
    move.set_defaults(run=filter_move)
    ls = ops.add_parser("list", parents=[data_dir_parent], help="the filters in evaluation order")
    ls.add_argument("--json", action="store_true", help="as the JSON stored in versions.filters")
    ls.set_defaults(run=filter_list)
