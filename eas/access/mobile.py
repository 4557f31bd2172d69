"""Mobile access on or off, per user and per class of service (a named group).

What applies to an account, first found wins:

1. the user's own setting ``mobile.user:<account>`` (true/false);
2. the first group, in the order of ``mobile.groups`` (creation order), that the
   account belongs to and that sets ``mobile`` (true/false; null: says nothing);
3. ``mobile.default`` (true).

A group's members are accounts (``alice@example.com``) or whole domains
(``@example.com``). An embedder replaces membership with ``ActiveSync.groups``, a
callable ``groups(account) -> list[str]`` (or awaitable): the group names the account
is in; the groups' settings and order still come from ``mobile.groups``.

A refused account gets, right after authentication, the command's status 126
(UserDisabledForSync) from 14.0 and HTTP 403 before. OPTIONS and Autodiscover are
answered (they carry no mailbox data; Exchange answers them too), so the client learns
it is disabled from its first command. Settings are read with a ``CACHE_SECONDS``
cache, so a CLI change reaches a running server within that time.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from eas.access import register
from eas.protocol import status as st
from eas.protocol.errors import AccessDenied
from eas.state.model import AuditEvent
from eas.state.store import StateStore

CACHE_SECONDS = 1.0
REFUSAL_LOG_SECONDS = 60.0  # one audit event per refused account in this time
USER_PREFIX = "mobile.user:"
MAX_NAME = 256

GroupsHook = Callable[[str], "list[str] | Awaitable[list[str]]"]


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected true or false")
    return value


def check_name(name: Any, what: str = "group name") -> str:
    """A group name or account as stored: printable, no spaces, bounded (``ValueError``)."""
    if not isinstance(name, str):
        raise TypeError(f"a {what} is a string")
    text = str(name).strip().lower()
    if not text or len(text) > MAX_NAME or not text.isprintable() or any(c.isspace() for c in text):
        raise ValueError(f"not a valid {what}: {text[:MAX_NAME]!r}")
    return text


def check_member(member: Any) -> str:
    """An account (``alice@example.com``) or a whole domain (``@example.com``)."""
    text = check_name(member, "member")
    local, at, domain = text.rpartition("@")
    if not at or not domain or "@" in local:
        raise ValueError(f"a member is an account (user@domain) or a domain (@domain): {text!r}")
    return text


def _groups(value: Any) -> list[dict[str, Any]]:
    """The stored groups: ``[{"name", "members": [...], "mobile": true|false|null}]``."""
    if not isinstance(value, list):
        raise TypeError('expected a JSON list of {"name": ..., "members": [...], "mobile": true|false|null}')
    out: list[dict[str, Any]] = []
    for entry in value:
        if not isinstance(entry, dict) or set(entry) - {"name", "members", "mobile"}:
            raise TypeError(f"not a group: {entry!r}")
        name = check_name(entry.get("name"))
        if any(g["name"] == name for g in out):
            raise ValueError(f"group {name!r} twice")
        members = entry.get("members", [])
        if not isinstance(members, list):
            raise TypeError(f"group {name!r}: members is a list")
        mobile = entry.get("mobile")
        if mobile is not None:
            _bool(mobile)
        out.append({"name": name, "members": sorted({check_member(m) for m in members}), "mobile": mobile})
    return out


register("mobile.default", _bool, True, "mobile access for an account that neither it nor its groups set")
register("mobile.groups", _groups, [], "classes of service in evaluation order: name, members, mobile")
register(USER_PREFIX + "*", _bool, None, "an account's own mobile access after 'mobile.user:' (eas access)")


def groups_containing(account: str, groups: list[dict[str, Any]]) -> list[str]:
    """The groups ``account`` is in by the settings: as itself or by its domain."""
    domain = "@" + account.rpartition("@")[2] if "@" in account else None
    return [g["name"] for g in groups if account in g["members"] or (domain and domain in g["members"])]


def decide(account: str, user: bool | None, groups: list[dict[str, Any]], member_of: list[str],
           default: bool) -> tuple[bool, str]:
    """``(allowed, why)`` by the order in the module docstring."""
    if user is not None:
        return user, "user setting"
    wanted = set(member_of)
    for g in groups:
        if g["name"] in wanted and g["mobile"] is not None:
            return g["mobile"], f"group {g['name']}"
    return default, "default"


class MobileAccess:
    """The built-in mobile-access engine: ``await engine.admit(account, groups)`` raises
    ``AccessDenied`` (status 126) for a refused account."""

    def __init__(self, store: StateStore, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self._until = float("-inf")
        self._values: dict[str, Any] = {}
        self._groups: list[dict[str, Any]] = []  # mobile.groups, read and checked once per refresh
        self._refusals: dict[str, float] = {}

    def groups_from_settings(self, account: str) -> list[str]:
        """The default ``ActiveSync.groups`` hook (reads the cached settings)."""
        return groups_containing(account, self._groups)

    async def explain(self, account: str, groups: GroupsHook | None = None) -> tuple[bool, str]:
        await self._refresh()
        account = account.lower()
        member_of = (groups or self.groups_from_settings)(account)
        if inspect.isawaitable(member_of):
            member_of = await member_of
        user = self._values.get(USER_PREFIX + account)
        default = self._values.get("mobile.default")
        return decide(account, user if isinstance(user, bool) else None, self._groups, list(member_of),
                      default if isinstance(default, bool) else True)

    async def admit(self, account: str, groups: GroupsHook | None = None) -> None:
        allowed, why = await self.explain(account, groups)
        if allowed:
            return
        now = self.clock()
        if self._refusals.get(account, float("-inf")) <= now:
            if len(self._refusals) >= 10000:
                self._refusals = {k: v for k, v in self._refusals.items() if v > now}
            self._refusals[account] = now + REFUSAL_LOG_SECONDS
            await self.store.record_event(AuditEvent("mobile.refused", actor="mobile", user=account, detail=why))
        raise AccessDenied(f"mobile access disabled ({why})", status=st.Common.UserDisabledForSync)

    async def _refresh(self) -> None:
        now = self.clock()
        if now < self._until:
            return
        self._values = await self.store.settings("mobile.")
        self._groups = _read_groups(self._values.get("mobile.groups"))
        self._until = now + CACHE_SECONDS


def _read_groups(value: Any) -> list[dict[str, Any]]:
    """Stored groups; an invalid value (written past ``eas config``) counts as none."""
    try:
        return _groups(value if value is not None else [])
    except (TypeError, ValueError):
        return []


# -- the admin API (eas access) -------------------------------------------------------------


async def set_user(store: StateStore, account: str, enabled: bool | None, *, actor: str) -> None:
    """Turn an account's mobile access on or off, or clear it (None: its groups decide)."""
    account = check_member(account)
    if account.startswith("@"):
        raise ValueError("a user setting names an account, not a domain")
    await store.set_setting(USER_PREFIX + account, enabled)
    action = {True: "mobile.enable", False: "mobile.disable", None: "mobile.clear"}[enabled]
    await store.record_event(AuditEvent(action, actor=actor, user=account))


async def list_groups(store: StateStore) -> list[dict[str, Any]]:
    return _read_groups(await store.get_setting("mobile.groups"))


async def _change_groups(store: StateStore, change: Callable[[list[dict[str, Any]]], None], *, actor: str,
                         action: str, detail: str) -> list[dict[str, Any]]:
    def update(raw: Any) -> Any:
        groups = _read_groups(raw)
        change(groups)
        return _groups(groups)

    # One transaction of the store: two administrators editing groups at once both keep their edit.
    groups: list[dict[str, Any]] = await store.update_setting("mobile.groups", update)
    await store.record_event(AuditEvent(action, actor=actor, detail=detail))
    return groups


def _find(groups: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for g in groups:
        if g["name"] == name:
            return g
    raise KeyError(name)


async def group_add(store: StateStore, group: str, members: list[str], *, actor: str) -> list[dict[str, Any]]:
    """Add members to a group, created (last in the order) when new."""
    group = check_name(group)
    members = [check_member(m) for m in members]

    def change(groups: list[dict[str, Any]]) -> None:
        try:
            g = _find(groups, group)
        except KeyError:
            g = {"name": group, "members": [], "mobile": None}
            groups.append(g)
        g["members"] = [*g["members"], *members]

    return await _change_groups(store, change, actor=actor, action="mobile.group.add",
                                detail=f"{group}: {' '.join(members)}")


async def group_remove(store: StateStore, group: str, members: list[str], *, actor: str) -> list[dict[str, Any]]:
    """Remove members from a group, or the whole group when ``members`` is empty
    (``KeyError``: no such group)."""
    group = check_name(group)
    members = [check_member(m) for m in members]

    def change(groups: list[dict[str, Any]]) -> None:
        g = _find(groups, group)
        if members:
            g["members"] = [m for m in g["members"] if m not in members]
        else:
            groups.remove(g)

    return await _change_groups(store, change, actor=actor, action="mobile.group.remove",
                                detail=f"{group}: {' '.join(members) or '(group)'}")


async def group_set(store: StateStore, group: str, enabled: bool | None, *, actor: str) -> list[dict[str, Any]]:
    """Set a group's mobile access (None: the group says nothing; ``KeyError``: no such group)."""
    group = check_name(group)

    def change(groups: list[dict[str, Any]]) -> None:
        _find(groups, group)["mobile"] = enabled

    return await _change_groups(store, change, actor=actor, action="mobile.group.set",
                                detail=f"{group}: {enabled}")
