"""``eas config get|set|clear|list`` and ``eas password set|clear``: the access-control
settings of a data dir's state store, changed from outside the server.

Names and values are checked against the table the engines register
(``eas.access.known_settings``) before anything is stored; every change goes to the audit
trail (actor ``cli``). A running server reads settings through short caches, so it sees a
change within a second or two; a mobile password change is also announced on the notify
socket, so the server drops its cached logins at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from eas import server
from eas.cli.admin import UsageError, existing_store, known_user, read_password

if TYPE_CHECKING:
    from eas.access import Setting
    from eas.state.store import StateStore


def with_state(args: argparse.Namespace, work: Callable[[StateStore], Awaitable[int]]) -> int:
    """Run ``work`` on the data dir's state store, closed afterwards."""
    from eas.state.sqlite import SQLiteStateStore

    folder = server.prepare_data_dir(server.data_dir(args.data_dir))

    async def run() -> int:
        store = SQLiteStateStore(folder / "state.db")
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def checked(work: Callable[[StateStore], Awaitable[Any]], *,
            missing: str = "not found: {}") -> Callable[[StateStore], Awaitable[int]]:
    """``work`` for ``with_state``, an admin call's refusal (ValueError, TypeError) turned
    into a usage error (exit 2), and a KeyError into one that ``missing`` words."""
    async def run(store: StateStore) -> int:
        try:
            return int(await work(store))
        except (ValueError, TypeError) as e:
            raise UsageError(str(e)) from None
        except KeyError as e:
            raise UsageError(missing.format(e.args[0] if e.args else "")) from None
    return run


def _setting(name: str) -> Setting:
    """The known setting ``name``, or the pattern (``logger.*``) that covers it
    (``UsageError`` otherwise)."""
    from eas.access import lookup

    try:
        return lookup(name)
    except KeyError:
        raise UsageError(f"unknown setting {name!r} (eas config list shows the known ones)") from None


def _show(value: Any, setting: Setting | None = None) -> str:
    """A value as JSON; a secret one (a password) only says whether it is set."""
    if setting is not None and setting.secret:
        return '"(set)"' if value else '""'
    return json.dumps(value, ensure_ascii=False)


def config_get(args: argparse.Namespace) -> int:
    from eas.access import get_setting

    setting = _setting(args.name)

    async def work(store: StateStore) -> int:
        print(_show(await get_setting(store, args.name), setting))
        return 0

    return with_state(args, work)


def config_set(args: argparse.Namespace) -> int:
    from eas.access import change_setting

    setting = _setting(args.name)
    try:
        raw = json.loads(args.value)
    except ValueError:
        raw = args.value  # a bare word (``strict``) is the string it spells
    if raw is None:
        raise UsageError(f"invalid value for {args.name}: null (eas config clear resets it)")

    async def work(store: StateStore) -> int:
        try:
            value = await change_setting(store, args.name, raw, actor="cli")
        except (ValueError, TypeError) as e:
            raise UsageError(f"invalid value for {args.name}: {e}") from None
        print(f"{args.name} = {_show(value, setting)}")
        return 0

    return with_state(args, work)


def config_clear(args: argparse.Namespace) -> int:
    from eas.access import change_setting

    setting = _setting(args.name)

    async def work(store: StateStore) -> int:
        await change_setting(store, args.name, None, actor="cli")
        print(f"{args.name} cleared (default {_show(setting.default)})")
        return 0

    return with_state(args, work)


def config_list(args: argparse.Namespace) -> int:
    from eas.access import known_settings

    known = known_settings()

    async def work(store: StateStore) -> int:
        values = await store.settings()
        for name in sorted(known):
            setting = known[name]
            if name.endswith("*"):  # a pattern: the names stored under it
                print(f"{name}")
                for stored in sorted(n for n in values if n.startswith(name[:-1]) and n not in known):
                    print(f"  {stored} = {_show(values[stored], setting)}")
            elif name in values:
                print(f"{name} = {_show(values[name], setting)}")
            else:
                print(f"{name} = {_show(setting.default)} (default)")
            print(f"    {setting.help}")
        return 0

    return with_state(args, work)


def password_set(args: argparse.Namespace) -> int:
    from eas.access.passwords import set_mobile_password

    account = known_user(existing_store(args), args.email)
    password = read_password(args)

    async def work(store: StateStore) -> int:
        await set_mobile_password(store, account, password, actor="cli")
        return 0

    with_state(args, work)
    # A running server has logins cached (the account password among them): it forgets them now.
    server.notifier(server.data_dir(args.data_dir)).publish_account(account)
    print(f"mobile password of {account} set; the account password no longer opens ActiveSync")
    return 0


def password_clear(args: argparse.Namespace) -> int:
    from eas.access.passwords import clear_mobile_password

    account = known_user(existing_store(args), args.email)

    async def work(store: StateStore) -> int:
        return 0 if await clear_mobile_password(store, account, actor="cli") else 1

    if with_state(args, work):
        raise UsageError(f"{account} has no mobile password")
    server.notifier(server.data_dir(args.data_dir)).publish_account(account)
    print(f"mobile password of {account} cleared; the account password opens ActiveSync again")
    return 0


def add_parsers(verbs: Any, data_dir_parent: argparse.ArgumentParser) -> None:
    """Add ``config`` and ``password`` to the ``eas`` command."""
    config = verbs.add_parser("config", help="access-control settings (eas config list shows them)")
    ops = config.add_subparsers(dest="op", required=True, metavar="OP")
    get = ops.add_parser("get", parents=[data_dir_parent], help="a setting's value (or its default)")
    get.add_argument("name")
    get.set_defaults(run=config_get)
    put = ops.add_parser("set", parents=[data_dir_parent], help="set a setting (a JSON value, or a bare word)")
    put.add_argument("name")
    put.add_argument("value", help='JSON, such as true, 30 or \'["10.0.0.0/8"]\'')
    put.set_defaults(run=config_set)
    clear = ops.add_parser("clear", parents=[data_dir_parent], help="back to the default")
    clear.add_argument("name")
    clear.set_defaults(run=config_clear)
    ls = ops.add_parser("list", parents=[data_dir_parent], help="every known setting with its value")
    ls.set_defaults(run=config_list)

    password = verbs.add_parser("password", help="mobile passwords: a password that opens ActiveSync only")
    ops = password.add_subparsers(dest="op", required=True, metavar="OP")
    pset = ops.add_parser("set", parents=[data_dir_parent],
                          help="set an account's mobile password (its account password then no longer opens EAS)")
    pset.add_argument("email")
    how = pset.add_mutually_exclusive_group()
    how.add_argument("--password", help="the mobile password (else prompted, or one line of stdin)")
    how.add_argument("--generate", action="store_true", help="make a random password and print it")
    pset.set_defaults(run=password_set)
    pclear = ops.add_parser("clear", parents=[data_dir_parent], help="remove an account's mobile password")
    pclear.add_argument("email")
    pclear.set_defaults(run=password_clear)
