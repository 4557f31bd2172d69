"""Device access control: one engine per module, each the built-in implementation of a
core hook, configured through settings in the StateStore.

Gatekeeping order (DESIGN.md "One request, end to end", step 3):

1. IP allow-list (``ipallow``): the client address behind trusted proxies; 403 when refused.
2. Authentication (``passwords``): the account password, or the mobile password when set.
2b. Mobile access (``mobile``): per user, else per class of service, else the default;
   status 126 (403 before 14.0). OPTIONS and Autodiscover are still answered.
3. Rate jail (``jail``): per device and per account, and a cap on an account's requests in
   progress; 503 with Retry-After.
4. Protocol-version filters (``versions``): the versions a client is offered (OPTIONS) and
   may use; a command in a removed version is refused as a version not offered.
5. Device registry, 6. ABQ, 7. provisioning.

Beside the order: account protocol loggers (``logger``) write an account's requests and
responses to a file of its own.

``SETTINGS`` is the table of known settings each engine registers (``register``), so that
``eas config`` can refuse unknown names and invalid values before anything is stored.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eas.state.store import StateStore

# The engine modules that register settings (add yours here).
ENGINES = ("eas.access.ipallow", "eas.access.jail", "eas.access.versions", "eas.access.mobile",
           "eas.access.logger")


@dataclass(frozen=True, slots=True)
class Setting:
    """A known setting: ``check`` returns the value to store (normalised) or raises
    ``ValueError`` (``TypeError`` for a value of the wrong type) naming what is wrong."""

    name: str
    check: Callable[[Any], Any]
    default: Any
    help: str


SETTINGS: dict[str, Setting] = {}


def register(name: str, check: Callable[[Any], Any], default: Any, help: str) -> None:
    SETTINGS[name] = Setting(name, check, default, help)


def lookup(name: str) -> Setting:
    """The setting of a name; a name registered as ``prefix.*`` stands for every name
    under the prefix (``logger.alice@example.com``). ``KeyError``: unknown."""
    settings = known_settings()
    if name in settings:
        return settings[name]
    prefix = name.split(".", 1)[0]
    if name.count(".") and len(name) > len(prefix) + 1 and prefix + ".*" in settings:
        return settings[prefix + ".*"]
    raise KeyError(name)


def known_settings() -> dict[str, Setting]:
    """Every registered setting, once each engine module is loaded."""
    for module in ENGINES:
        importlib.import_module(module)
    return SETTINGS


async def get_setting(store: StateStore, name: str) -> Any:
    """A known setting's value, its default when unset (``KeyError``: unknown name)."""
    setting = lookup(name)
    value = await store.get_setting(name)
    return setting.default if value is None else value


async def change_setting(store: StateStore, name: str, value: Any, *, actor: str) -> Any:
    """The admin API behind ``eas config``: check ``value`` against the registered
    setting and store what the check returns (None: back to the default), audited as
    ``actor``. ``KeyError`` for an unknown name, ``ValueError``/``TypeError`` for an
    invalid value: nothing is stored then."""
    from eas.state.model import AuditEvent

    setting = lookup(name)
    if value is None:
        await store.set_setting(name, None)
        await store.record_event(AuditEvent("setting.clear", actor=actor, detail=name))
        return setting.default
    value = setting.check(value)
    await store.set_setting(name, value)
    await store.record_event(AuditEvent("setting.set", actor=actor,
                                        detail=f"{name}={json.dumps(value, ensure_ascii=False)}"))
    return value
