"""Mobile passwords: a password per account that opens ActiveSync only.

Kept as the setting ``password.mobile:<account>`` (an scrypt hash of
``eas.store.passwords``). ``mobile_passwords(store, authenticate)`` wraps any
authenticate hook: for an account with a mobile password, only that password opens EAS
(the account password is refused); for the others the wrapped hook decides. After a
change, the server's login cache must be dropped (``ActiveSync.forget_credentials``;
``eas password`` does it over the notify socket), else a cached account password would
still open EAS for the cache's lifetime.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from eas.state.model import AuditEvent
from eas.state.store import StateStore
from eas.store import passwords

if TYPE_CHECKING:
    from eas.core import Authenticator

PREFIX = "password.mobile:"


async def _account_of(store: StateStore, login: str) -> tuple[str, str] | None:
    """``(account, hash)`` when the login names an account with a mobile password:
    ``user@domain``, ``DOMAIN\\user@domain``, or a bare ``user`` (``DOMAIN\\user``)
    whose local part is unique among them."""
    name = login.strip().lower().rsplit("\\", 1)[-1]
    if not name:
        return None
    if "@" in name:
        stored = await store.get_setting(PREFIX + name)
        return (name, stored) if isinstance(stored, str) else None
    found = [(k[len(PREFIX):], v) for k, v in (await store.settings(PREFIX)).items()
             if k[len(PREFIX):].split("@", 1)[0] == name and isinstance(v, str)]
    return found[0] if len(found) == 1 else None


def mobile_passwords(store: StateStore, authenticate: Authenticator) -> Authenticator:
    """The authenticate hook ``authenticate`` with mobile passwords in front of it."""

    async def check(login: str, password: str) -> str | None:
        found = await _account_of(store, login)
        if found is not None:
            mobile, stored = found
            return mobile if await asyncio.to_thread(passwords.verify_password, password, stored) else None
        account = await authenticate(login, password)
        if account is not None and await store.get_setting(PREFIX + account.lower()) is not None:
            return None  # the account password, for an account that has a mobile one
        return account

    return check


async def set_mobile_password(store: StateStore, account: str, password: str, *, actor: str) -> None:
    """Set (or replace) the mobile password of ``account`` (lower-case, as the
    authenticate hook returns it)."""
    if not password or len(password) > 1024:
        raise ValueError("a mobile password has 1 to 1024 characters")
    hashed = await asyncio.to_thread(passwords.hash_password, password)
    await store.set_setting(PREFIX + account.lower(), hashed)
    await store.record_event(AuditEvent("password.mobile.set", actor=actor, user=account.lower()))


async def clear_mobile_password(store: StateStore, account: str, *, actor: str) -> bool:
    """Remove the mobile password of ``account``; False when it had none."""
    name = PREFIX + account.lower()
    if await store.get_setting(name) is None:
        return False
    await store.set_setting(name, None)
    await store.record_event(AuditEvent("password.mobile.clear", actor=actor, user=account.lower()))
    return True
