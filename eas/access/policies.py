"""Provisioning policies at global, group and user level: the built-in policy hook.

A policy level is a setting holding a JSON object: EASProvisionDoc element names
(``eas.policy.ELEMENTS``) with their values, and the engine's own keys (``FLAGS``):
``required``, ``allow_non_provisionable``, ``allow_partial``, ``allow_externally_managed``.

- ``policy.global``: every account;
- ``policy.group:<name>``: the members of a class of service (``eas.access.mobile``'s
  groups, or an embedder's ``ActiveSync.groups`` hook);
- ``policy.user:<account>``: one account.

How the levels combine: key by key, the most specific level that sets a key wins: the
user's own policy, then the account's groups in the order of ``mobile.groups`` (groups an
embedder's hook names that are not there come after, in the hook's order), then the global
policy, then the default (``eas.policy.DEFAULT_POLICY`` and ``FLAGS``). Exchange assigns
one whole mobile mailbox policy per mailbox, and Zimbra one class of service per account;
here a user or group policy usually states only what differs (a longer password for the
board), so that a change to the global policy still reaches everyone who does not
override that element. A level that sets an element to its default value still overrides
a level below it.

``PolicyDecision.settings`` holds only the elements whose effective value differs from the
default: its hash (the policy key's trigger for a refresh, status 143 / HTTP 449) changes
exactly when the policy that applies to an account changes, whichever level changed it,
and for no other account. ``PolicyDecision.source`` says which level set what.

A running server reads the levels with a ``CACHE_SECONDS`` cache, so a change made with
``eas policy`` reaches its devices within that time. A level stored past the checks (by
hand in the database) that does not check out refuses the accounts it applies to with a
server error rather than letting them provision with less than was meant.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eas import policy
from eas.access import PolicyDecision, register
from eas.access.mobile import GroupsHook, check_member, check_name, groups_containing, list_groups
from eas.protocol import status as st
from eas.protocol.errors import EASError
from eas.state.model import AuditEvent

if TYPE_CHECKING:
    from eas.state.model import DeviceRecord
    from eas.state.store import StateStore

log = logging.getLogger("eas.access.policies")

CACHE_SECONDS = 1.0
PREFIX = "policy."
GLOBAL = "policy.global"
GROUP_PREFIX = "policy.group:"
USER_PREFIX = "policy.user:"
LEVELS = ("global", "group", "user")
MAX_LIST = 1000  # entries in one application list

# The engine's own keys and their defaults (those of PolicyDecision).
FLAGS: dict[str, bool] = {
    "required": True,  # the device must provision at all
    "allow_non_provisionable": False,  # a device that never sends a policy key syncs anyway
    "allow_partial": True,  # a device that applied the policy in part (Status 2) or not (3)
    "allow_externally_managed": True,  # a device managed by a third party (Status 4)
}


class PolicyConfigError(EASError):
    """A stored policy level does not check out: the accounts it applies to get a server
    error until an administrator fixes or clears it."""

    status = st.Common.ServerError


def check_policy(value: Any) -> dict[str, Any]:
    """A policy level as stored: known keys only, every value checked and normalised
    (booleans of elements as 0/1), sorted by name. ``TypeError``/``ValueError``
    (``policy.PolicyError``) name the first thing wrong."""
    if not isinstance(value, dict):
        raise TypeError("a policy is a JSON object of EASProvisionDoc elements and engine keys "
                        f"({', '.join(FLAGS)})")
    out: dict[str, Any] = {}
    for name, entry in value.items():
        if name in FLAGS:
            if not isinstance(entry, bool):
                raise TypeError(f"{name} is true or false, not {entry!r}"[:200])
            out[name] = entry
            continue
        element = policy.BY_NAME.get(name) if isinstance(name, str) else None
        if element is None:
            raise ValueError(f"{str(name)[:64]!r} is neither an EASProvisionDoc element nor one of "
                             f"{', '.join(FLAGS)} (eas policy elements lists them)")
        checked = element.check(entry)
        if element.kind == "list" and len(checked) > MAX_LIST:  # type: ignore[arg-type]
            raise ValueError(f"{name} holds more than {MAX_LIST} entries")
        out[name] = checked
    return dict(sorted(out.items()))


register(GLOBAL, check_policy, None, "the provisioning policy of every account (eas policy)")
register(GROUP_PREFIX + "*", check_policy, None,
         "a class of service's provisioning policy after 'policy.group:' (eas policy)")
register(USER_PREFIX + "*", check_policy, None, "an account's own provisioning policy after 'policy.user:' (eas policy)")


def setting_name(level: str, name: str | None = None) -> str:
    """The setting that holds a level: ``("global")``, ``("group", "staff")``,
    ``("user", "alice@example.com")`` (``ValueError``/``TypeError`` for a bad name)."""
    if level == "global":
        if name:
            raise ValueError("the global policy has no name")
        return GLOBAL
    if level == "group":
        return GROUP_PREFIX + check_name(name)
    if level == "user":
        account = check_member(name)
        if account.startswith("@"):
            raise ValueError(f"a user policy names an account (user@domain), not {name!r}"[:200])
        return USER_PREFIX + account
    raise ValueError(f"a policy level is one of {', '.join(LEVELS)}, not {level!r}"[:200])


def label(setting: str) -> str:
    """How people read a level's setting name: ``global``, ``group staff``, ``user bob@...``."""
    if setting == GLOBAL:
        return "global"
    for prefix, word in ((GROUP_PREFIX, "group"), (USER_PREFIX, "user")):
        if setting.startswith(prefix):
            return f"{word} {setting[len(prefix):]}"
    return setting


@dataclass(slots=True)
class Explanation:
    """The decision for an account and, per element or flag that some level sets, the
    level that set it (``label``); a key not in ``sources`` has its default."""

    decision: PolicyDecision
    sources: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)  # every key some level sets, as set


def combine(levels: Sequence[tuple[str, Mapping[str, Any]]]) -> Explanation:
    """The decision of checked levels given most specific first, as ``(label, level)``."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for who, level in levels:
        for key, value in level.items():
            if key not in values:
                values[key] = value
                sources[key] = who
    settings = {k: v for k, v in values.items() if k not in FLAGS and v != policy.DEFAULT_POLICY[k]}
    flags = {k: values.get(k, default) for k, default in FLAGS.items()}
    parts: dict[str, list[str]] = {}
    for key, who in sources.items():
        parts.setdefault(who, []).append(key)
    source = "; ".join(f"{who} ({', '.join(sorted(keys))})" for who, keys in parts.items()) or "default"
    decision = PolicyDecision(required=flags["required"], settings=dict(sorted(settings.items())),
                              allow_non_provisionable=flags["allow_non_provisionable"],
                              allow_partial=flags["allow_partial"],
                              allow_externally_managed=flags["allow_externally_managed"], source=source)
    return Explanation(decision, sources, values)


class PolicyEngine:
    """``await engine(account, device)``: the policy that applies (the core's policy hook).
    ``groups(account)`` names the account's groups (sync or async); without it, the
    members listed in ``mobile.groups`` decide."""

    def __init__(self, store: StateStore, groups: GroupsHook | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.groups = groups
        self.clock = clock
        self._until = float("-inf")
        self._levels: dict[str, dict[str, Any]] = {}  # setting name -> checked level
        self._invalid: dict[str, str] = {}  # setting name -> what is wrong with it
        self._group_order: list[str] = []
        self._mobile_groups: list[dict[str, Any]] = []

    async def __call__(self, account: str, device: DeviceRecord) -> PolicyDecision:
        return (await self.explain(account)).decision

    async def explain(self, account: str) -> Explanation:
        """The decision for ``account`` with where each part came from
        (``PolicyConfigError`` when a level that applies does not check out)."""
        await self._refresh()
        account = account.lower()
        names = [USER_PREFIX + account, *(GROUP_PREFIX + g for g in await self._groups_of(account)), GLOBAL]
        bad = [f"{n}: {self._invalid[n]}" for n in names if n in self._invalid]
        if bad:
            log.error("the provisioning policy of %s cannot be used: %s", account, "; ".join(bad))
            raise PolicyConfigError(f"invalid provisioning policy {bad[0]}")
        return combine([(label(n), self._levels[n]) for n in names if n in self._levels])

    async def _groups_of(self, account: str) -> list[str]:
        """The account's groups, those of ``mobile.groups`` first in its order."""
        if self.groups is None:
            member_of: Any = groups_containing(account, self._mobile_groups)
        else:
            member_of = self.groups(account)
            if inspect.isawaitable(member_of):
                member_of = await member_of
        wanted = {str(g).lower() for g in member_of}
        ordered = [g for g in self._group_order if g in wanted]
        for g in member_of:
            g = str(g).lower()
            if g not in ordered:
                ordered.append(g)
        return ordered

    async def _refresh(self) -> None:
        now = self.clock()
        if now < self._until:
            return
        levels: dict[str, dict[str, Any]] = {}
        invalid: dict[str, str] = {}
        for name, value in (await self.store.settings(PREFIX)).items():
            if value is None:
                continue
            try:
                levels[name] = check_policy(value)
            except (TypeError, ValueError) as e:
                invalid[name] = str(e)
        self._levels, self._invalid = levels, invalid
        self._mobile_groups = await list_groups(self.store)
        self._group_order = [g["name"] for g in self._mobile_groups]
        self._until = now + CACHE_SECONDS


# -- the admin API (eas policy) -------------------------------------------------------------


async def stored(store: StateStore) -> dict[str, Any]:
    """Every stored level by setting name, as stored (for listing)."""
    return {k: v for k, v in sorted((await store.settings(PREFIX)).items()) if v is not None}


async def set_values(store: StateStore, level: str, name: str | None, values: Mapping[str, Any], *,
                     actor: str) -> dict[str, Any]:
    """Set keys of a level (the others it sets stay), checked; audited as ``policy.set``.
    Returns the level as stored. Bad names or values raise and store nothing."""
    key = setting_name(level, name)
    if not values:
        raise ValueError("nothing to set: give ELEMENT=VALUE")
    given = check_policy(dict(values))
    merged: dict[str, Any] = await store.update_setting(key, lambda current: check_policy(
        {**(current if isinstance(current, dict) else {}), **given}))
    await store.record_event(AuditEvent("policy.set", actor=actor, user=_user(key),
                                        detail=f"{label(key)}: {json.dumps(given, ensure_ascii=False)}"))
    return merged


async def clear_values(store: StateStore, level: str, name: str | None, keys: Sequence[str], *,
                       actor: str) -> dict[str, Any] | None:
    """Drop keys from a level, or the whole level when ``keys`` is empty; audited as
    ``policy.clear``. Returns what is left (None: nothing). Unknown keys raise."""
    setting = setting_name(level, name)
    for k in keys:
        if k not in FLAGS and k not in policy.BY_NAME:
            raise ValueError(f"{str(k)[:64]!r} is neither an EASProvisionDoc element nor one of {', '.join(FLAGS)}")
    def drop(current: Any) -> dict[str, Any] | None:
        if keys and isinstance(current, dict):
            return {k: v for k, v in current.items() if k not in keys} or None
        return None

    left: dict[str, Any] | None = await store.update_setting(setting, drop)
    await store.record_event(AuditEvent("policy.clear", actor=actor, user=_user(setting),
                                        detail=f"{label(setting)}: {', '.join(keys) or '(the whole level)'}"))
    return left


def _user(setting: str) -> str:
    return setting[len(USER_PREFIX):] if setting.startswith(USER_PREFIX) else ""
