"""ABQ (Allow/Block/Quarantine): the built-in access hook, run on every request after
authentication, under the device's lock, once the device record is updated.

Modes (``abq.mode``, for the whole server): ``permissive`` (everything syncs except
blocked devices), ``interactive`` (a device not allowed is quarantined: it sees only the
notice mailbox until an administrator allows or blocks it), ``strict`` (a device not
allowed is blocked) and ``disabled`` (nothing is evaluated; so too when the service is
stopped, ``service.abq`` false).

Evaluation order, first row that applies wins (``evaluate``)::

    #   when                                                        state        reason
    0   mode disabled, or service.abq false                          allowed      ""
    1   personal entry (device id, account): blocked                 blocked      individual
    2   personal entry (device id, account): allowed                 allowed      individual
    3   device-list entry (device id, every account)                 its state    individual
    4   abq.max_devices set and the device is not among the
        account's first max_devices devices (by first seen)         blocked      device limit
    5   a block rule matches                                         blocked      rule
    6   a quarantine rule matches                                    quarantined  rule
    7   Interactive/Strict, a rule that applies is on model or os,
        the device has not told that field yet, and it was first
        seen less than DISCOVERY_SECONDS ago                         discovery    rule
    8   an allow rule matches                                        allowed      rule
    9   Interactive/Strict: an approved app (abq.approved_apps)      allowed      auto-approved
    10  Interactive/Strict: among the account's first abq.auto_allow
        devices (by first seen)                                      allowed      auto-approved
    11  Interactive/Strict: an MDM hook says yes (mdm_enrolled,
        then mdm_profile)                                            allowed      auto-approved
    12  the mode's default: permissive allowed, interactive
        quarantined, strict blocked                                  (default)    global

Why this order: an administrator's decision about one device (rows 1-3) beats every
class of devices; the device limit (4) beats rules, so no rule lets a user past it;
rules (5-8) go block, quarantine, allow as Exchange's do, and discovery (7) sits before
allow so that a device whose model a block rule may yet match is not let in meanwhile.
The auto-approval helpers (9-11) only replace a default that would not allow; in
Permissive they change nothing and are not consulted (the MDM hooks, which may be slow,
are called only when row 12 would otherwise answer quarantined or blocked).

Entries (``abq.devices``): keyed by device id and account ("" for every account);
device ids and accounts compare case-insensitively. Personal entries (with an account)
are allowed or blocked; device-list entries (every account) may also be quarantined.

Rules (``abq.rules``): action allow|block|quarantine on a field device_type|model|os|
user_agent, matched exactly (case-insensitive, as Exchange does) or by a regular
expression (searched, case-insensitive, as Zextras does; anchor it with ^...$ to match
the whole value; checked against explosive patterns as ``eas.access.versions`` does).
A rule is global or for one domain (then it applies to that domain's accounts only).
Within one action, the domain's rules are tried before global ones, each in id order;
the first that matches names itself in the decision's detail. A field the device has not
told (empty) matches no rule.

Discovery: model and OS come from Settings or Provision DeviceInformation, so they are
empty on a device's first requests. A device that never tells them (EAS 2.5 has no
Settings command) leaves discovery after ``DISCOVERY_SECONDS`` and is judged on what it
did tell, as Exchange does after its discovery period.

Grandfathering: ``set_mode`` from permissive or disabled to interactive or strict adds a
personal allow entry for every device whose last decision was allowed (unless
``grandfather=False``), so that nobody's phone stops syncing at the switch.

The engine reads the ``abq.`` settings through a ``CACHE_SECONDS`` cache (``forget``
drops it) and lists an account's devices only when a device-count helper is set.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from eas.access import AccessDecision, register
from eas.access.mobile import check_name
from eas.access.versions import MAX_PATTERN, MAX_SUBJECT, check_regex, compiled_regex
from eas.protocol.http import DEVICE_ID_PATTERN
from eas.state.model import AuditEvent, DeviceRecord

if TYPE_CHECKING:
    from eas.protocol.http import EASRequest
    from eas.state.store import StateStore

__all__ = ["ABQ", "ACTIONS", "CACHE_SECONDS", "DISCOVERY_SECONDS", "FIELDS", "MODES", "ABQSettings", "DeviceEntry",
           "Matcher", "Rule", "accounts_with_device", "add_rule", "delete_device", "delete_rule", "device_entries",
           "evaluate", "import_devices", "rules", "set_device", "set_mode"]

MODES = ("permissive", "interactive", "strict", "disabled")
ACTIONS = ("block", "quarantine", "allow")  # in evaluation order
FIELDS = ("device_type", "model", "os", "user_agent")
APP_FIELDS = ("device_type", "user_agent")
ENTRY_STATES = ("allowed", "blocked", "quarantined")
PERSONAL_STATES = ("allowed", "blocked")
DEFAULTS = {"permissive": "allowed", "interactive": "quarantined", "strict": "blocked"}
CACHE_SECONDS = 1.0
DISCOVERY_SECONDS = 15 * 60.0
MAX_ENTRIES = 10000
MAX_RULES = 200
MAX_NOTE = 200
MAX_COUNT = 10000

DeviceHook = Callable[[str, DeviceRecord], "bool | Awaitable[bool]"]


# -- what is stored ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """An administrator's decision about one device id: for every account (``user`` "")
    or for one account (a personal entry)."""

    device_id: str
    user: str
    state: str
    note: str = ""
    actor: str = ""
    time: float = 0.0

    @property
    def key(self) -> tuple[str, str]:
        return self.device_id.casefold(), self.user


@dataclass(frozen=True, slots=True)
class Matcher:
    """A field of the device matched exactly (case-insensitive) or by a regex."""

    field: str
    value: str
    regex: bool = False

    def matches(self, facts: Mapping[str, str]) -> bool:
        text = facts.get(self.field, "")[:MAX_SUBJECT]
        if not text:
            return False
        if self.regex:
            return compiled_regex(self.value).search(text) is not None
        return text.casefold() == self.value.casefold()

    def describe(self) -> str:
        return f"{self.field} {'~' if self.regex else '='} {self.value}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule(Matcher):
    """A device access rule (``abq.rules``); ``domain`` "" is global."""

    id: int
    action: str
    domain: str = ""

    def describe(self) -> str:
        where = f" [{self.domain}]" if self.domain else ""
        return f"rule {self.id}: {self.action} {Matcher.describe(self)}{where}"


# -- checks (eas config and the admin API alike) ------------------------------------------------

def _text(value: Any, what: str, limit: int, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} is a string")
    if (not value and not empty) or len(value) > limit or not value.isprintable():
        raise ValueError(f"{what} must be printable text of 1 to {limit} characters: {value[:limit]!r}")
    return value


def check_device_id(value: Any) -> str:
    if not isinstance(value, str) or not DEVICE_ID_PATTERN.fullmatch(value):
        raise ValueError(f"not a device id (1 to 64 letters, digits, _ or -): {str(value)[:64]!r}")
    return value


def check_account(value: Any) -> str:
    """An account (user@domain), lower case; "" stands for every account."""
    if value == "":
        return ""
    account = check_name(value, "account")
    local, _, domain = account.rpartition("@")
    if not local or not domain or "@" in local:
        raise ValueError(f"an account is user@domain: {account!r}")
    return account


def check_domain(value: Any) -> str:
    """A domain ("" for global), lower case, without "@"."""
    if value == "":
        return ""
    domain = check_name(value, "domain").removeprefix("@")
    if not domain or "@" in domain:
        raise ValueError(f"not a domain: {domain!r}")
    return domain


def check_entry(raw: Any) -> DeviceEntry:
    if not isinstance(raw, dict) or not {"device_id", "state"} <= set(raw) <= {
            "device_id", "user", "state", "note", "actor", "time"}:
        raise TypeError(f"not a device entry (device_id, user, state, note): {raw!r}"[:300])
    user = check_account(raw.get("user", ""))
    state = raw["state"]
    allowed = PERSONAL_STATES if user else ENTRY_STATES
    if state not in allowed:
        raise ValueError(f"a {'personal' if user else 'device-list'} entry is {' or '.join(allowed)}, not {state!r}")
    stamp = raw.get("time", 0.0)
    if not isinstance(stamp, (int, float)) or isinstance(stamp, bool):
        raise TypeError("an entry's time is a number")
    return DeviceEntry(check_device_id(raw["device_id"]), user, state,
                       _text(raw.get("note", ""), "a note", MAX_NOTE, empty=True),
                       _text(raw.get("actor", ""), "an actor", MAX_NOTE, empty=True), float(stamp))


def check_matcher(raw: Any, fields: tuple[str, ...] = FIELDS) -> Matcher:
    if not isinstance(raw, dict) or not {"field", "value"} <= set(raw) <= {"field", "value", "regex"}:
        raise TypeError(f"not a match (field, value, regex): {raw!r}"[:300])
    if raw["field"] not in fields:
        raise ValueError(f"field must be one of {', '.join(fields)}, not {raw['field']!r}"[:300])
    value = _text(raw["value"], "a value", MAX_PATTERN)
    regex = raw.get("regex", False)
    if not isinstance(regex, bool):
        raise TypeError("regex is true or false")
    if regex:
        check_regex(value)
    return Matcher(raw["field"], value, regex)


def check_rule(raw: Any) -> Rule:
    if not isinstance(raw, dict) or not {"id", "action", "field", "value"} <= set(raw) <= {
            "id", "action", "field", "value", "regex", "domain"}:
        raise TypeError(f"not a rule (id, action, field, value, regex, domain): {raw!r}"[:300])
    if raw["action"] not in ACTIONS:
        raise ValueError(f"action must be one of allow, block, quarantine, not {raw['action']!r}"[:300])
    rule_id = raw["id"]
    if not isinstance(rule_id, int) or isinstance(rule_id, bool) or not 1 <= rule_id <= 10**9:
        raise ValueError(f"a rule id is a positive integer, not {rule_id!r}"[:300])
    m = check_matcher({k: v for k, v in raw.items() if k in ("field", "value", "regex")})
    return Rule(m.field, m.value, m.regex, id=rule_id, action=raw["action"], domain=check_domain(raw.get("domain", "")))


def _list_of(check: Callable[[Any], Any], limit: int, what: str) -> Callable[[Any], list[dict[str, Any]]]:
    def checked(value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list) or len(value) > limit:
            raise TypeError(f"{what} is a JSON list of at most {limit}")
        return [asdict(check(item)) for item in value]
    return checked


def _unique(check: Callable[[Any], list[dict[str, Any]]], key: Callable[[dict[str, Any]], Any],
            what: str) -> Callable[[Any], list[dict[str, Any]]]:
    def checked(value: Any) -> list[dict[str, Any]]:
        items = check(value)
        keys = [key(i) for i in items]
        if len(set(keys)) != len(keys):
            raise ValueError(f"the same {what} twice")
        return items
    return checked


def _mode(value: Any) -> str:
    if value not in MODES:
        raise ValueError(f"abq.mode is one of {', '.join(MODES)}, not {value!r}"[:200])
    return str(value)


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
        raise ValueError(f"a number of devices from 0 to {MAX_COUNT}, not {value!r}"[:200])
    return value


check_entries = _unique(_list_of(check_entry, MAX_ENTRIES, "abq.devices"),
                        lambda e: (e["device_id"].casefold(), e["user"]), "device entry")
check_rules = _unique(_list_of(check_rule, MAX_RULES, "abq.rules"), lambda r: r["id"], "rule id")
check_apps = _list_of(lambda raw: check_matcher(raw, APP_FIELDS), MAX_RULES, "abq.approved_apps")

register("abq.mode", _mode, "permissive", "permissive | interactive | strict | disabled (eas abq mode)")
register("abq.devices", check_entries, [], "the administrator's device decisions (eas abq allow|block|set|delete)")
register("abq.rules", check_rules, [], "device access rules (eas abq rule add|delete|list)")
register("abq.auto_allow", _count, 0, "devices per account allowed before approval is required (0: none)")
register("abq.max_devices", _count, 0, "devices per account; one beyond is blocked (0: unlimited)")
register("abq.approved_apps", check_apps, [],
         'apps auto-approved: [{"field": "device_type"|"user_agent", "value": ..., "regex": false}]')


# -- the decision -------------------------------------------------------------------------------

def _loaded(raw: Any, check: Callable[[Any], Any]) -> list[Any]:
    """Stored items one by one; one written past the checks is skipped, never fails a request."""
    out = []
    for item in raw if isinstance(raw, list) else []:
        try:
            out.append(check(item))
        except (TypeError, ValueError):
            continue
    return out


@dataclass(frozen=True, slots=True)
class ABQSettings:
    """The ``abq.`` settings as ``evaluate`` uses them (build with ``of``: it indexes
    the rules by action and scope, so a decision does not walk every rule)."""

    mode: str = "permissive"
    entries: Mapping[tuple[str, str], DeviceEntry] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    auto_allow: int = 0
    max_devices: int = 0
    approved_apps: tuple[Matcher, ...] = ()
    by_scope: Mapping[tuple[str, str], tuple[Rule, ...]] = field(default_factory=dict)  # (action, domain)
    discovered: Mapping[str, frozenset[str]] = field(default_factory=dict)  # domain -> model/os ruled on

    @classmethod
    def of(cls, *, mode: str = "permissive", entries: Iterable[DeviceEntry] = (), rules: Iterable[Rule] = (),
           auto_allow: int = 0, max_devices: int = 0, approved_apps: Iterable[Matcher] = ()) -> ABQSettings:
        ordered = tuple(sorted(rules, key=lambda r: r.id))
        by_scope: dict[tuple[str, str], tuple[Rule, ...]] = {}
        discovered: dict[str, frozenset[str]] = {}
        for r in ordered:
            by_scope[r.action, r.domain] = (*by_scope.get((r.action, r.domain), ()), r)
            if r.field in ("model", "os"):
                discovered[r.domain] = discovered.get(r.domain, frozenset()) | {r.field}
        return cls(mode, {e.key: e for e in entries}, ordered, auto_allow, max_devices, tuple(approved_apps),
                   by_scope, discovered)

    @classmethod
    def from_settings(cls, values: Mapping[str, Any]) -> ABQSettings:
        """From ``store.settings("abq.")``; what fails its check counts as unset."""
        mode = values.get("abq.mode")
        counts = [values.get(name) for name in ("abq.auto_allow", "abq.max_devices")]
        auto_allow, max_devices = (c if isinstance(c, int) and not isinstance(c, bool) and c > 0 else 0
                                   for c in counts)
        return cls.of(mode=mode if mode in MODES else "permissive",
                      entries=_loaded(values.get("abq.devices"), check_entry),
                      rules=_loaded(values.get("abq.rules"), check_rule), auto_allow=auto_allow,
                      max_devices=max_devices,
                      approved_apps=_loaded(values.get("abq.approved_apps"), lambda r: check_matcher(r, APP_FIELDS)))


def facts(device: DeviceRecord) -> dict[str, str]:
    """What rules match against."""
    return {"device_type": device.device_type, "model": device.model, "os": device.os,
            "user_agent": device.user_agent}


def evaluate(settings: ABQSettings, account: str, device: DeviceRecord, *, rank: int = 0, mdm: str = "",
             now: float | None = None) -> AccessDecision:
    """The decision by the table in the module docstring. ``rank``: how many of the
    account's devices were first seen before this one; ``mdm``: which MDM hook said yes
    ("" none); ``now``: the wall clock (discovery's end). Pure: no store, no hooks."""
    mode = settings.mode
    if mode == "disabled":
        return AccessDecision("allowed", "")
    account = account.lower()
    device_id = device.device_id.casefold()
    personal = settings.entries.get((device_id, account))
    if personal is not None:
        return AccessDecision(personal.state, "individual", f"personal entry for {account}")
    listed = settings.entries.get((device_id, ""))
    if listed is not None:
        return AccessDecision(listed.state, "individual", "device list")
    if settings.max_devices and rank >= settings.max_devices:
        return AccessDecision("blocked", "device limit", f"more than {settings.max_devices} devices")
    domain = account.rpartition("@")[2]
    told = facts(device)
    restricting = mode in ("interactive", "strict")
    for action, state in (("block", "blocked"), ("quarantine", "quarantined"), ("allow", "allowed")):
        if action == "allow" and restricting:
            ruled = settings.discovered.get(domain, frozenset()) | settings.discovered.get("", frozenset())
            pending = sorted(f for f in ruled if not told[f])
            if pending and (time.time() if now is None else now) - device.first_seen < DISCOVERY_SECONDS:
                return AccessDecision("discovery", "rule", f"waiting for the device's {' and '.join(pending)}")
        for scope in dict.fromkeys((domain, "")):
            for rule in settings.by_scope.get((action, scope), ()):
                if rule.matches(told):
                    return AccessDecision(state, "rule", rule.describe())
    if restricting:
        for app in settings.approved_apps:
            if app.matches(told):
                return AccessDecision("allowed", "auto-approved", f"approved app: {app.describe()}")
        if rank < settings.auto_allow:
            return AccessDecision("allowed", "auto-approved", f"among the first {settings.auto_allow} devices")
        if mdm:
            return AccessDecision("allowed", "auto-approved", mdm)
    return AccessDecision(DEFAULTS[mode], "global", f"mode {mode}")


def device_rank(device: DeviceRecord, devices: Iterable[DeviceRecord]) -> int:
    """How many of the account's other devices were first seen before this one."""
    mine = (device.first_seen, device.device_id)
    return sum(1 for d in devices if d.device_id != device.device_id and (d.first_seen, d.device_id) < mine)


class ABQ:
    """The ABQ engine: ``await abq(request, account, device)`` gives the decision.

    ``mdm_enrolled`` and ``mdm_profile``: hooks an embedder sets, ``(account, device) ->
    bool`` (or awaitable); True auto-approves a device that would otherwise be
    quarantined or blocked by the mode's default (row 11)."""

    def __init__(self, store: StateStore, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self.mdm_enrolled: DeviceHook | None = None
        self.mdm_profile: DeviceHook | None = None
        self._until = float("-inf")
        self._running = True
        self._settings = ABQSettings()

    def forget(self) -> None:
        """Drop the cached settings: the next request reads them again."""
        self._until = float("-inf")

    async def settings(self) -> ABQSettings | None:
        """The settings in force, None while the service is stopped."""
        now = self.clock()
        if now >= self._until:
            self._running = await self.store.get_setting("service.abq") is not False
            if self._running:
                self._settings = ABQSettings.from_settings(await self.store.settings("abq."))
            self._until = now + CACHE_SECONDS
        return self._settings if self._running else None

    async def __call__(self, request: EASRequest | None, account: str, device: DeviceRecord) -> AccessDecision:
        settings = await self.settings()
        if settings is None or settings.mode == "disabled":
            return AccessDecision("allowed", "")
        rank = 0
        if settings.max_devices or settings.auto_allow:
            rank = device_rank(device, await self.store.list_devices(account))
        decision = evaluate(settings, account, device, rank=rank)
        if decision.reason == "global" and settings.mode != "permissive":
            for name, hook in (("MDM enrolled", self.mdm_enrolled), ("MDM profile", self.mdm_profile)):
                if hook is not None:
                    answer = hook(account, device)
                    if inspect.isawaitable(answer):
                        answer = await answer
                    if answer is True:
                        return evaluate(settings, account, device, rank=rank, mdm=name)
        return decision


# -- the admin API (eas abq, the admin web page) --------------------------------------------------

async def device_entries(store: StateStore) -> list[DeviceEntry]:
    """The device list, personal entries included, in the order they were made."""
    return _loaded(await store.get_setting("abq.devices"), check_entry)


async def _change_entries(store: StateStore, change: Callable[[list[DeviceEntry]], list[DeviceEntry]]) -> None:
    """Replace the device list by ``change(entries)`` in one transaction of the store, so
    that two administrators changing it at once both keep their change."""
    def update(raw: Any) -> Any:
        return check_entries([asdict(e) for e in change(_loaded(raw, check_entry))]) or None

    await store.update_setting("abq.devices", update)


async def set_device(store: StateStore, device_id: str, state: str, *, user: str = "", actor: str,
                     note: str = "") -> None:
    """Allow, block or quarantine a device id for every account (``user`` "") or, as a
    personal entry, for one account (allowed or blocked only); replaces an entry of the
    same key. ``ValueError``/``TypeError``: nothing stored."""
    entry = check_entry({"device_id": device_id, "user": user, "state": state, "note": note, "actor": actor,
                         "time": time.time()})
    await _change_entries(store, lambda entries: [*(e for e in entries if e.key != entry.key), entry])
    await store.record_event(AuditEvent(f"abq.device.{entry.state}", actor=actor, user=entry.user,
                                        device_id=entry.device_id,
                                        detail="; ".join(filter(None, ("personal" if entry.user else "device list",
                                                                       entry.note)))))


async def delete_device(store: StateStore, device_id: str, *, user: str = "", actor: str) -> bool:
    """Remove the entry of (device id, user); False when there was none."""
    key = (check_device_id(device_id).casefold(), check_account(user))
    removed = False

    def drop(entries: list[DeviceEntry]) -> list[DeviceEntry]:
        nonlocal removed
        kept = [e for e in entries if e.key != key]
        removed = len(kept) != len(entries)
        return kept

    await _change_entries(store, drop)
    if not removed:
        return False
    await store.record_event(AuditEvent("abq.device.delete", actor=actor, user=key[1], device_id=device_id))
    return True


async def import_devices(store: StateStore, lines: Iterable[str], state: str, *, actor: str) -> int:
    """Entries from lines of ``DEVICEID`` or ``DEVICEID USER`` (``#`` comments and blank
    lines skipped), all in ``state``: all or nothing; a bad line raises ``ValueError``
    naming its number. The number of entries made."""
    made: dict[tuple[str, str], DeviceEntry] = {}
    now = time.time()
    for number, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) > 2:
            raise ValueError(f"line {number}: expected DEVICEID or DEVICEID USER")
        try:
            entry = check_entry({"device_id": words[0], "user": words[1] if len(words) > 1 else "", "state": state,
                                 "note": "imported", "actor": actor, "time": now})
        except (TypeError, ValueError) as e:
            raise ValueError(f"line {number}: {e}") from None
        made[entry.key] = entry
        if len(made) > MAX_ENTRIES:
            raise ValueError(f"line {number}: more than {MAX_ENTRIES} entries")
    await _change_entries(store, lambda entries: [*(e for e in entries if e.key not in made), *made.values()])
    for entry in made.values():
        await store.record_event(AuditEvent(f"abq.device.{entry.state}", actor=actor, user=entry.user,
                                            device_id=entry.device_id, detail="imported"))
    return len(made)


async def rules(store: StateStore) -> list[Rule]:
    """The rules, in id order."""
    return sorted(_loaded(await store.get_setting("abq.rules"), check_rule), key=lambda r: r.id)


async def add_rule(store: StateStore, action: str, field: str, value: str, *, regex: bool = False,
                   domain: str = "", actor: str) -> Rule:
    """A new rule with the next free id (``ValueError``/``TypeError``: nothing stored)."""
    given = {"action": action, "field": field, "value": value, "regex": regex, "domain": domain}
    check_rule({"id": 1, **given})  # bad input refused before the store is locked
    made: list[Rule] = []

    def add(raw: Any) -> Any:
        existing = _loaded(raw, check_rule)
        made[:] = [check_rule({"id": max((r.id for r in existing), default=0) + 1, **given})]
        return check_rules([asdict(r) for r in (*existing, *made)])

    await store.update_setting("abq.rules", add)
    await store.record_event(AuditEvent("abq.rule.add", actor=actor, detail=made[0].describe()))
    return made[0]


async def delete_rule(store: StateStore, rule_id: int, *, actor: str) -> bool:
    """Remove rule ``rule_id``; False when there is none."""
    removed: list[Rule] = []

    def drop(raw: Any) -> Any:
        existing = _loaded(raw, check_rule)
        removed[:] = [r for r in existing if r.id == rule_id]
        return [asdict(r) for r in existing if r.id != rule_id] or None

    await store.update_setting("abq.rules", drop)
    if not removed:
        return False
    await store.record_event(AuditEvent("abq.rule.delete", actor=actor, detail=removed[0].describe()))
    return True


async def set_mode(store: StateStore, mode: str, *, actor: str, grandfather: bool = True) -> int:
    """Set the mode; going from permissive or disabled to interactive or strict adds a
    personal allow entry for every device last decided allowed (unless ``grandfather``
    is False). The number of devices grandfathered."""
    mode = _mode(mode)
    raw = await store.get_setting("abq.mode")
    old = raw if raw in MODES else "permissive"
    kept: list[DeviceEntry] = []
    if grandfather and mode in ("interactive", "strict") and old in ("permissive", "disabled"):
        devices = await store.list_devices()
        now = time.time()

        def keep_allowed(entries: list[DeviceEntry]) -> list[DeviceEntry]:
            known = {e.key for e in entries}
            kept.clear()
            for device in devices:
                entry = DeviceEntry(device.device_id, device.user.casefold(), "allowed", "grandfathered", actor, now)
                if device.access == "allowed" and entry.key not in known:
                    known.add(entry.key)
                    kept.append(entry)
            return [*entries, *kept]

        await _change_entries(store, keep_allowed)
    await store.set_setting("abq.mode", mode)
    await store.record_event(AuditEvent("abq.mode", actor=actor, detail=f"{old} -> {mode}"
                                        + (f" ({len(kept)} devices grandfathered)" if kept else "")))
    for entry in kept:
        await store.record_event(AuditEvent("abq.device.allowed", actor=actor, user=entry.user,
                                            device_id=entry.device_id, detail="personal; grandfathered"))
    return len(kept)


async def accounts_with_device(store: StateStore, device_id: str | None = None, user: str = "") -> set[str]:
    """The accounts a change of ``device_id`` (None: of every device) for ``user`` ("":
    every account) reaches: those to publish an account event for, so that a running
    server ends their waiting Pings."""
    devices = await store.list_devices(user or None)
    return {d.user for d in devices if device_id is None or d.device_id.casefold() == device_id.casefold()}
