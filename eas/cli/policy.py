"""``eas policy``: provisioning policies at global, group and user level
(``eas.access.policies``) in a data dir's state store. Every change is audited (actor
``cli``); a running server applies it within a second (settings read with a 1 s cache),
and a device it reaches is asked to provision again (status 143, HTTP 449 before 14.0).
A change to a user's policy also ends that user's waiting Pings at once.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from eas.cli.admin import UsageError
from eas.cli.config import checked, with_state

if TYPE_CHECKING:
    from eas.state.store import StateStore

_TRUE = {"1": True, "true": True, "yes": True, "on": True}
_FALSE = {"0": False, "false": False, "no": False, "off": False}


def policy_key(name: str) -> str:
    """An element or engine key as spelled in any case, in its own spelling."""
    from eas import policy
    from eas.access.policies import FLAGS

    known = {n.lower(): n for n in (*FLAGS, *policy.BY_NAME)}
    key = known.get(name.strip().lower())
    if key is None:
        raise UsageError(f"unknown policy element {name[:80]!r} (eas policy elements lists them)")
    return key


def parse_assignment(text: str) -> tuple[str, Any]:
    """``ELEMENT=VALUE`` as a policy key and value. Booleans: 1/0, true/false, yes/no,
    on/off; numbers: an integer, or nothing for "no value" (sent empty); lists:
    comma-separated, nothing for an empty list."""
    from eas import policy

    name, eq, raw = text.partition("=")
    if not eq:
        raise UsageError(f"expected ELEMENT=VALUE, not {text[:80]!r}")
    key = policy_key(name)
    raw = raw.strip()
    element = policy.BY_NAME.get(key)
    if element is None or element.kind == "boolean":
        flag = _TRUE.get(raw.lower(), _FALSE.get(raw.lower()))
        if flag is None:
            raise UsageError(f"{key} is true or false, not {raw[:80]!r}")
        return key, flag if element is None else int(flag)
    if element.kind == "list":
        return key, [entry.strip() for entry in raw.split(",")] if raw else []
    if not raw:
        return key, None
    try:
        return key, int(raw)
    except ValueError:
        raise UsageError(f"{key} is an integer, not {raw[:80]!r}") from None




def _target(args: argparse.Namespace) -> tuple[str, str | None]:
    return args.level, getattr(args, "name", None)


async def _affected(store: StateStore, level: str, name: str | None) -> list[str]:
    """The accounts with devices that a change of this level reaches: the user; the
    group's members (by ``mobile.groups``); everyone for the global level."""
    from eas.access.mobile import groups_containing, list_groups

    if level == "user":
        return [name.strip().lower()] if name else []
    accounts = sorted({d.user for d in await store.list_devices()})
    if level == "group" and name:
        groups = await list_groups(store)
        accounts = [a for a in accounts if name.strip().lower() in groups_containing(a, groups)]
    return accounts


def _publish(args: argparse.Namespace, accounts: list[str]) -> None:
    """The running server ends these accounts' waiting Pings, so that their devices meet
    the new policy now (143) rather than at their next heartbeat."""
    from eas import server

    notifier = server.notifier(server.data_dir(args.data_dir))
    for account in accounts:
        notifier.publish_account(account)


def _change(args: argparse.Namespace, change: Callable[[StateStore, str, str | None], Awaitable[Any]]) -> int:
    """Apply ``change(store, level, name)`` (set or clear), print the level as it is
    now, and end the waiting Pings of the accounts it reaches."""
    from eas.access.policies import label, setting_name

    level, name = _target(args)
    affected: list[str] = []

    async def work(store: StateStore) -> int:
        now = await change(store, level, name)
        print(f"{label(setting_name(level, name))}: {_describe(now)}")
        affected.extend(await _affected(store, level, name))
        return 0

    code = with_state(args, checked(work))
    _publish(args, affected)
    return code


def set_policy(args: argparse.Namespace) -> int:
    from eas.access.policies import set_values

    values = dict(parse_assignment(a) for a in args.assignments)
    return _change(args, lambda store, level, name: set_values(store, level, name, values, actor="cli"))


def clear_policy(args: argparse.Namespace) -> int:
    from eas.access.policies import clear_values

    keys = [policy_key(k) for k in args.elements]
    return _change(args, lambda store, level, name: clear_values(store, level, name, keys, actor="cli"))


def show(args: argparse.Namespace) -> int:
    from eas import policy
    from eas.access.mobile import check_member
    from eas.access.policies import FLAGS, PolicyEngine, label, stored

    async def work(store: StateStore) -> int:
        if args.account is None:
            levels = await stored(store)
            if not levels:
                print("no policies set: every device gets the default policy")
            for setting, value in levels.items():
                print(f"{label(setting)}: {_describe(value) if isinstance(value, dict) else json.dumps(value)}")
            return 0
        account = check_member(args.account)
        if account.startswith("@"):
            raise ValueError("eas policy show names an account (user@domain), not a domain")
        explanation = await PolicyEngine(store).explain(account)
        decision = explanation.decision
        values = policy.effective(decision.settings)
        print(f"{account}: {decision.source} (policy hash {decision.hash})")
        for key in FLAGS:
            print(f"  {key} = {json.dumps(getattr(decision, key))}  ({explanation.sources.get(key, 'default')})")
        for element in policy.ELEMENTS:
            print(f"  {element.name} = {_value(values[element.name])}  "
                  f"({explanation.sources.get(element.name, 'default')})")
        return 0

    return with_state(args, checked(work))


def elements(args: argparse.Namespace) -> int:
    """Every EASProvisionDoc element: type, values, protocol versions, default."""
    from eas import policy, tags
    from eas.access.policies import FLAGS

    for element in policy.ELEMENTS:
        versions = tags.BY_TAG[element.tag].versions
        if element.kind == "boolean":
            values = "0|1"
        elif element.kind == "list":
            values = "comma-separated names" if element.name.startswith("Unapproved") else "comma-separated SHA-1 hashes"
        elif element.choices:
            values = "|".join(map(str, element.choices))
        else:
            values = f"{element.low}..{element.high}"
        if element.empty:
            values += " or empty"
        print(f"{element.name}  {element.kind} {values}  {versions[0]}+  default {_value(policy.DEFAULT_POLICY[element.name])}"
              f"  (MS-ASPROV {element.section})")
    for key, default in FLAGS.items():
        print(f"{key}  engine true|false  default {json.dumps(default)}")
    return 0


def _value(value: Any) -> str:
    if value is None:
        return "(empty)"
    if isinstance(value, list):
        return ",".join(value) or "(none)"
    return str(value)


def _describe(level: dict[str, Any] | None) -> str:
    """A level as its ``KEY=VALUE`` pairs, values as JSON."""
    return " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in (level or {}).items()) or "nothing set"


def add_parsers(verbs: Any, data_dir_parent: argparse.ArgumentParser) -> None:
    """Add ``policy`` to the ``eas`` command."""
    p = verbs.add_parser("policy", help="provisioning policies at global, group and user level")
    ops = p.add_subparsers(dest="op", required=True, metavar="OP")
    q = ops.add_parser("show", parents=[data_dir_parent],
                       help="the stored levels, or an account's effective policy and where each value comes from")
    q.add_argument("account", nargs="?")
    q.set_defaults(run=show)
    q = ops.add_parser("elements", parents=[data_dir_parent],
                       help="every EASProvisionDoc element: type, values, versions, default")
    q.set_defaults(run=elements)
    for op, text, run, metavar, nargs in (
            ("set", "set elements of a level", set_policy, "ELEMENT=VALUE", "+"),
            ("clear", "clear elements of a level, or the whole level", clear_policy, "ELEMENT", "*")):
        s = ops.add_parser(op, help=text)
        levels = s.add_subparsers(dest="level", required=True, metavar="LEVEL")
        for level, about in (("global", "every account"), ("group", "a class of service (eas access group)"),
                             ("user", "one account")):
            q = levels.add_parser(level, parents=[data_dir_parent], help=about)
            if level != "global":
                q.add_argument("name", metavar="ACCOUNT" if level == "user" else "NAME")
            q.add_argument("elements" if op == "clear" else "assignments", nargs=nargs, metavar=metavar)
            q.set_defaults(run=run)
