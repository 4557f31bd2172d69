"""``eas logger add|remove|list``: account protocol loggers (``eas.access.logger``) of a
data dir's state store. Changes are audited (actor ``cli``) and reach a running server
within a second (it reads the settings with a 1 s cache).
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from eas.cli.admin import UsageError
from eas.cli.config import with_state

if TYPE_CHECKING:
    from eas.state.store import StateStore


def _where(account: str, value: dict[str, Any]) -> str:
    from eas.access.logger import file_name

    return value["file"] or os.path.join("logs", file_name(account))


def logger_add(args: argparse.Namespace) -> int:
    from eas.access.logger import add_logger

    async def work(store: StateStore) -> int:
        try:
            value = await add_logger(store, args.user, level=args.level,
                                     file=os.path.abspath(args.file) if args.file else None,
                                     window=args.window, max_body=args.max_body, actor="cli")
        except (ValueError, TypeError) as e:
            raise UsageError(str(e)) from None
        print(f"logging {args.user} ({value['level']}) to {_where(args.user, value)}"
              + (f", WindowSize at most {value['window']}" if value["window"] else ""))
        return 0

    return with_state(args, work)


def logger_remove(args: argparse.Namespace) -> int:
    from eas.access.logger import remove_logger

    async def work(store: StateStore) -> int:
        if not await remove_logger(store, args.user, actor="cli"):
            raise UsageError(f"{args.user} has no logger")
        print(f"stopped logging {args.user}")
        return 0

    return with_state(args, work)


def logger_list(args: argparse.Namespace) -> int:
    from eas.access.logger import list_loggers

    async def work(store: StateStore) -> int:
        loggers = await list_loggers(store)
        if not loggers:
            print("no protocol loggers")
        for account, value in loggers.items():
            print(f"{account}: {value.get('level')} to {_where(account, value)}"
                  + (f", WindowSize at most {value['window']}" if value.get("window") else ""))
        return 0

    return with_state(args, work)


def add_parsers(verbs: Any, data_dir_parent: argparse.ArgumentParser) -> None:
    """Add ``logger`` to the ``eas`` command."""
    from eas.access.logger import DEFAULT_MAX_BODY, LEVELS

    p = verbs.add_parser("logger", help="account protocol loggers: an account's requests and responses in a file")
    ops = p.add_subparsers(dest="op", required=True, metavar="OP")
    add = ops.add_parser("add", parents=[data_dir_parent], help="log an account's requests (or change its logger)")
    add.add_argument("user", help="the account")
    add.add_argument("--level", choices=LEVELS, default="full",
                     help="headers: request line, headers and status; full: the XML too (default)")
    add.add_argument("--file", help="the log file (default DATA_DIR/logs/ACCOUNT.log)")
    add.add_argument("--window", type=int, help="force at most this WindowSize on Sync while logging")
    add.add_argument("--max-body", type=int, default=DEFAULT_MAX_BODY,
                     help=f"values longer than this are replaced by their length (default {DEFAULT_MAX_BODY})")
    add.set_defaults(run=logger_add)
    remove = ops.add_parser("remove", parents=[data_dir_parent], help="stop logging an account")
    remove.add_argument("user")
    remove.set_defaults(run=logger_remove)
    ls = ops.add_parser("list", parents=[data_dir_parent], help="the accounts being logged")
    ls.set_defaults(run=logger_list)
