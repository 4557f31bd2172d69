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
5. Device registry: the record of (account, device id) is read and updated.
5b. A device with a remote wipe pending gets the wipe whatever else applies; a suspended
   device (``devices``) is refused with status 129 (403 before 14.0).
6. ABQ (``abq``): allowed, blocked, quarantined or discovery, with a reason. A device
   that is not allowed is answered from the notice mailbox (``quarantine``) for the
   commands that read mail, and refused (status 129) for the others. A change of
   decision is audited (``access.<state>``) and resets the device's sync state, so that
   it re-syncs to the right mailbox at once.
7. Provisioning (``policies``): the policy of the account (user, else group, else
   global); 449 before 14.0, status 142-144 from 14.0.

Beside the order: account protocol loggers (``logger``) write an account's requests and
responses to a file of its own; the notifier (``notifier``) mails administrators about
newly quarantined devices and jailings; ``services`` says which engines run.

``SETTINGS`` is the table of known settings each engine registers (``register``), so that
``eas config`` can refuse unknown names and invalid values before anything is stored.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eas.protocol.http import EASRequest
    from eas.state.model import DeviceRecord
    from eas.state.store import StateStore

# ABQ states (DeviceRecord.access) and the reasons a decision gives (``AccessDecision``):
# who decided. "discovery": the device has not yet said what it is (no DeviceInformation)
# while a rule on its model or OS waits for it; it is treated as quarantined meanwhile.
STATES = ("allowed", "blocked", "quarantined", "discovery")
REASONS = ("global", "individual", "rule", "policy", "device limit", "auto-approved")


@dataclass(slots=True)
class AccessDecision:
    """What the access hook (ABQ) decides for a device: one of ``STATES``, the reason
    (one of ``REASONS``, or "" when nothing was checked) and what matched, for people
    (``"rule 3: model ~ ^SM-"``)."""

    access: str = "allowed"
    reason: str = ""
    detail: str = ""


AccessHook = Callable[["EASRequest", str, "DeviceRecord"], Awaitable[AccessDecision]]


@dataclass(slots=True)
class PolicyDecision:
    """The provisioning policy that applies to a device: ``required`` says whether a
    device must provision at all; ``settings`` are EASProvisionDoc element names with
    their values (an empty dict is the permissive policy). ``allow_non_provisionable``
    lets a device that never sends a policy key sync without provisioning;
    ``allow_partial`` takes a device that applied the policy in part (Status 2) or not
    at all (3); ``allow_externally_managed`` one managed by a third party (4)."""

    required: bool = True
    settings: dict[str, Any] = field(default_factory=dict)
    allow_non_provisionable: bool = False
    allow_partial: bool = True
    allow_externally_managed: bool = True
    source: str = ""  # which policy applies, for people: "global", "group staff", "user bob@..."

    @property
    def hash(self) -> str:
        """Changes when the policy does, so that the device re-provisions."""
        return hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:16]


PolicyHook = Callable[[str, "DeviceRecord"], Awaitable[PolicyDecision]]

# The engine modules that register settings (add yours here).
ENGINES = ("eas.access.ipallow", "eas.access.jail", "eas.access.versions", "eas.access.mobile",
           "eas.access.logger", "eas.access.services", "eas.access.abq", "eas.access.quarantine",
           "eas.access.policies", "eas.access.notifier")


@dataclass(frozen=True, slots=True)
class Setting:
    """A known setting: ``check`` returns the value to store (normalised) or raises
    ``ValueError`` (``TypeError`` for a value of the wrong type) naming what is wrong."""

    name: str
    check: Callable[[Any], Any]
    default: Any
    help: str
    secret: bool = False  # a credential: shown as "(set)" by eas config, not written to the audit trail


SETTINGS: dict[str, Setting] = {}


def register(name: str, check: Callable[[Any], Any], default: Any, help: str, *, secret: bool = False) -> None:
    SETTINGS[name] = Setting(name, check, default, help, secret)


def lookup(name: str) -> Setting:
    """The setting of a name; a name registered ending in ``*`` stands for every longer
    name that starts with what comes before it, the longest such pattern winning
    (``logger.*`` for ``logger.alice@example.com``, ``policy.user:*`` for
    ``policy.user:bob@example.com``). ``KeyError``: unknown."""
    settings = known_settings()
    if name in settings:
        return settings[name]
    best: Setting | None = None
    for pattern, setting in settings.items():
        if (pattern.endswith("*") and len(name) >= len(pattern) and name.startswith(pattern[:-1])
                and (best is None or len(pattern) > len(best.name))):
            best = setting
    if best is None:
        raise KeyError(name)
    return best


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
    shown = "(secret)" if setting.secret else json.dumps(value, ensure_ascii=False)
    await store.record_event(AuditEvent("setting.set", actor=actor, detail=f"{name}={shown}"))
    return value
