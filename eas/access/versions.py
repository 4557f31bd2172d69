"""Protocol-version filters: which ActiveSync versions a client is offered and may use.

An ordered list of filters, stored as JSON in the setting ``versions.filters``. Each
filter has conditions on the request, an action on the set of offered versions, and a
``block`` flag. Evaluation starts from the versions the server offers (``Config.versions``)
and walks the list in order; a filter whose conditions hold applies its action, and if it
is blocking, evaluation stops there.

=============  =====================================================  ===================
action         offered versions afterwards                            ``versions`` holds
=============  =====================================================  ===================
``add``        offered | versions (any version the library speaks)    one or more
``subtract``   offered - versions                                     one or more
``fixed``      versions, whatever was offered                         zero or more
``max``        the offered versions <= the one given                  exactly one
=============  =====================================================  ===================

=========================  ===========================================================
condition field            what it is compared with
=========================  ===========================================================
``account``                the authenticated account (``alice@example.com``)
``domain``                 the account's part after ``@`` (empty when it has none)
``user_agent``             the User-Agent header
``device_type``            the DeviceType query parameter; **unknown on OPTIONS**
=========================  ===========================================================

Operators: ``exact`` (whole value), ``contains`` (substring), ``regex`` (``re.search``);
all three ignore case. ``match: "all"`` needs every condition, ``"any"`` one of them; a
filter without conditions applies to every request. OPTIONS is answered before the
device is known: only the account and the User-Agent are there, so a condition on the
device type is false on OPTIONS (a filter meant to shape OPTIONS matches the user agent).
The result shapes OPTIONS (``MS-ASProtocolVersions``, and ``MS-ASProtocolCommands`` keeps
the commands that exist in at least one version left) and a request in a version the
filters removed is refused as the core refuses a version it does not offer. A result
with no version at all refuses every request of that client.

Regular expressions are checked when a filter is stored (``parse_filter``): they must
compile, be at most ``MAX_PATTERN`` characters, and have no back-references, no
unbounded repeat around another repeat or an alternation, and at most one unbounded
repeat: the shapes whose backtracking explodes (exponentially or as a high power of the
subject's length); subjects are cut to ``MAX_SUBJECT`` characters. A filter that fails these checks
never reaches a request: a stored list edited by hand is read filter by filter, and an
invalid one is skipped with a warning.

The engine (``VersionFilters``) reads the setting at most once per ``ttl`` seconds (one
second by default), so a change made by ``eas filter`` reaches a running server within
that time without any message between the processes.
"""

from __future__ import annotations

import json
import logging
import re
import re._parser as sre  # type: ignore[import-not-found]  # the parsed pattern, to refuse explosive ones
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from eas.access import register
from eas.protocol.versions import SUPPORTED_VERSIONS, Version
from eas.state.model import AuditEvent
from eas.state.store import StateStore

__all__ = ["ACTIONS", "FIELDS", "OPERATORS", "SETTING", "Condition", "Filter", "FilterError", "VersionFilters",
           "VersionsHook",
           "add_filter", "delete_filter", "evaluate", "list_filters", "move_filter", "parse_filter"]

log = logging.getLogger("eas.access.versions")

SETTING = "versions.filters"
FIELDS = ("account", "domain", "user_agent", "device_type")
OPERATORS = ("exact", "contains", "regex")
ACTIONS = ("add", "subtract", "fixed", "max")
MAX_PATTERN = 200
MAX_SUBJECT = 320
MAX_FILTERS = 200


class FilterError(ValueError):
    """A filter that cannot be stored, with what is wrong with it."""


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    op: str
    value: str

    def holds(self, subject: dict[str, str | None]) -> bool:
        text = subject.get(self.field)
        if text is None:  # the device type on OPTIONS
            return False
        text = text[:MAX_SUBJECT].casefold()
        if self.op == "exact":
            return text == self.value.casefold()
        if self.op == "contains":
            return self.value.casefold() in text
        return compiled_regex(self.value).search(text) is not None


@dataclass(frozen=True, slots=True)
class Filter:
    action: str
    versions: tuple[Version, ...]
    conditions: tuple[Condition, ...] = ()
    match: str = "all"
    block: bool = False

    def matches(self, subject: dict[str, str | None]) -> bool:
        if not self.conditions:
            return True
        hits = (c.holds(subject) for c in self.conditions)
        return all(hits) if self.match == "all" else any(hits)

    def apply(self, offered: frozenset[Version]) -> frozenset[Version]:
        if self.action == "add":
            return offered | set(self.versions)
        if self.action == "subtract":
            return offered - set(self.versions)
        if self.action == "fixed":
            return frozenset(self.versions)
        return frozenset(v for v in offered if v <= self.versions[0])

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "versions": [v.text for v in self.versions], "match": self.match,
                "block": self.block,
                "conditions": [{"field": c.field, "op": c.op, "value": c.value} for c in self.conditions]}

    def describe(self) -> str:
        """One line for ``eas filter list`` and the audit trail."""
        joint = " and " if self.match == "all" else " or "
        when = joint.join(f"{c.field} {c.op} {c.value!r}" for c in self.conditions) or "always"
        return (f"when {when}: {self.action} {' '.join(v.text for v in self.versions) or '(none)'}"
                f"{' [block]' if self.block else ''}")


def subject(account: str, user_agent: str, device_type: str | None) -> dict[str, str | None]:
    """What conditions are matched against; ``device_type`` None on OPTIONS."""
    return {"account": account, "domain": account.rpartition("@")[2] if "@" in account else "",
            "user_agent": user_agent, "device_type": device_type}


def evaluate(filters: Sequence[Filter], offered: Sequence[Version],
             subject: dict[str, str | None]) -> tuple[Version, ...]:
    """The versions left for this subject, ascending (see the tables above)."""
    result = frozenset(offered)
    for f in filters:
        if f.matches(subject):
            result = f.apply(result)
            if f.block:
                break
    return tuple(sorted(result))


# -- validation ------------------------------------------------------------------------------

def parse_filter(raw: Any) -> Filter:
    """A filter from its JSON form, or ``FilterError`` naming what is wrong."""
    if not isinstance(raw, dict):
        raise FilterError("a filter is a JSON object")
    unknown = set(raw) - {"action", "versions", "conditions", "match", "block"}
    if unknown:
        raise FilterError(f"unknown filter keys: {', '.join(sorted(map(str, unknown)))}")
    action = raw.get("action")
    if action not in ACTIONS:
        raise FilterError(f"action must be one of {', '.join(ACTIONS)}")
    names = raw.get("versions", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise FilterError("versions is a list of version strings")
    try:
        versions = tuple(sorted({Version(n) for n in names}))
    except ValueError:
        raise FilterError(f"versions must be among {', '.join(v.text for v in SUPPORTED_VERSIONS)}") from None
    if action == "max" and len(versions) != 1:
        raise FilterError("max takes exactly one version")
    if action in ("add", "subtract") and not versions:
        raise FilterError(f"{action} takes at least one version")
    match = raw.get("match", "all")
    if match not in ("all", "any"):
        raise FilterError("match is all or any")
    block = raw.get("block", False)
    if not isinstance(block, bool):
        raise FilterError("block is true or false")
    conditions = raw.get("conditions", [])
    if not isinstance(conditions, list) or len(conditions) > 20:
        raise FilterError("conditions is a list of at most 20 conditions")
    return Filter(action, versions, tuple(_condition(c) for c in conditions), match, block)


def _condition(raw: Any) -> Condition:
    if not isinstance(raw, dict) or set(raw) != {"field", "op", "value"}:
        raise FilterError("a condition is an object with field, op and value")
    field, op, value = raw["field"], raw["op"], raw["value"]
    if field not in FIELDS:
        raise FilterError(f"condition field must be one of {', '.join(FIELDS)}")
    if op not in OPERATORS:
        raise FilterError(f"condition op must be one of {', '.join(OPERATORS)}")
    if not isinstance(value, str) or len(value) > MAX_PATTERN or "\0" in value:
        raise FilterError(f"a condition's value is a string of at most {MAX_PATTERN} characters")
    if op == "regex":
        check_regex(value)
    return Condition(field, op, value)


def check_regex(pattern: str) -> None:
    try:
        parsed = sre.parse(pattern, re.IGNORECASE)
        re.compile(pattern, re.IGNORECASE)
    except (re.error, RecursionError, OverflowError) as e:
        raise FilterError(f"invalid regular expression {pattern!r}: {e}") from None
    nodes = list(_walk(parsed, inside=False))
    problem = None
    if any(op in (sre.GROUPREF, sre.GROUPREF_EXISTS) for op, _, _ in nodes):
        problem = "back-references are not allowed"
    elif any(op in _REPEATS and av[1] > 1 and inside for op, av, inside in nodes):
        problem = "a repeat inside a repeat"
    elif any(op == sre.BRANCH and inside for op, _, inside in nodes):
        problem = "an alternation inside a repeat"
    elif sum(op in _REPEATS and av[1] > _LONG for op, av, _ in nodes) > 1:
        problem = "more than one unbounded repeat (use two conditions and match all)"
    if problem:
        raise FilterError(f"regular expression {pattern!r} refused: {problem}")


# A repeat of more than this many is "long": one long repeat in a pattern costs at most
# ~subject length squared steps in re.search (1 ms at MAX_SUBJECT); two cost the cube
# (~50 ms), three some seconds, which is why only one is allowed.
_LONG = 10
_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT)}


def _walk(items: Any, inside: bool) -> Iterator[tuple[Any, Any, bool]]:
    """Every node of a parsed pattern, with whether it lies inside a long repeat."""
    for op, av in items:
        yield op, av, inside
        if op in _REPEATS:
            yield from _walk(av[2], inside or av[1] > _LONG)
        elif op == sre.BRANCH:
            for branch in av[1]:
                yield from _walk(branch, inside)
        elif op == sre.SUBPATTERN:
            yield from _walk(av[-1], inside)
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            yield from _walk(av[1], inside)
        elif op == getattr(sre, "ATOMIC_GROUP", None):
            yield from _walk(av, inside)


_PATTERNS: dict[str, re.Pattern[str]] = {}


def compiled_regex(pattern: str) -> re.Pattern[str]:
    compiled = _PATTERNS.get(pattern)
    if compiled is None:
        if len(_PATTERNS) > 1000:
            _PATTERNS.clear()
        compiled = _PATTERNS[pattern] = re.compile(pattern, re.IGNORECASE)
    return compiled


def load(raw: Any) -> list[Filter]:
    """The stored list, skipping (with a warning) what fails validation: a bad filter
    written around the admin API never fails a request."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        log.warning("setting %s is not a list; no version filter applies", SETTING)
        return []
    out = []
    for i, entry in enumerate(raw[:MAX_FILTERS], 1):
        try:
            out.append(parse_filter(entry))
        except FilterError as e:
            log.warning("version filter %d skipped: %s", i, e)
    return out


def check_setting(value: Any) -> list[dict[str, Any]]:
    """``eas config set versions.filters``: the whole list, validated and normalised."""
    if not isinstance(value, list) or len(value) > MAX_FILTERS:
        raise ValueError(f"{SETTING} is a list of at most {MAX_FILTERS} filters")
    return [parse_filter(entry).to_json() for entry in value]


register(SETTING, check_setting, [], "ordered protocol-version filters (eas filter add|delete|move|list)")


# -- the engine ------------------------------------------------------------------------------

VersionsHook = Callable[..., Awaitable[tuple[Version, ...]]]
"""``versions(offered, account, user_agent, device_type, requested=None, device_id="")``:
the versions of ``offered`` (``Config.versions``) this client is offered. ``device_type``
is None on OPTIONS; ``requested`` is the version a command asks for (None on OPTIONS)."""


class VersionFilters:
    """The built-in versions hook: ``evaluate`` over the stored filters, the list
    re-read at most once per ``ttl`` seconds of ``clock``. A command refused because a
    filter removed its version is recorded in the audit trail, once per device and
    version while the filters stay the same (a device retrying does not flood it)."""

    def __init__(self, store: StateStore, *, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self._filters: list[Filter] = []
        self._expires = float("-inf")
        self._refused: set[tuple[str, str, Version]] = set()

    async def filters(self) -> list[Filter]:
        now = self.clock()
        if now >= self._expires:
            filters = load(await self.store.get_setting(SETTING))
            if filters != self._filters:
                self._refused.clear()
            self._filters = filters
            self._expires = now + self.ttl
        return self._filters

    async def __call__(self, offered: Sequence[Version], account: str, user_agent: str, device_type: str | None,
                       requested: Version | None = None, device_id: str = "") -> tuple[Version, ...]:
        filters = await self.filters()
        if not filters:
            return tuple(offered)
        result = evaluate(filters, offered, subject(account, user_agent, device_type))
        if requested is not None and requested in offered and requested not in result:
            await self._refuse(account, device_id, requested, result)
        return result

    async def _refuse(self, account: str, device_id: str, version: Version, left: tuple[Version, ...]) -> None:
        refusal = (account, device_id, version)
        if refusal in self._refused:
            return
        if len(self._refused) >= 10000:
            self._refused.clear()
        self._refused.add(refusal)
        await self.store.record_event(AuditEvent(
            "versions.refused", "versions", account, device_id,
            f"{version.text} removed by the version filters (left: {' '.join(v.text for v in left) or 'none'})"))


# -- the admin API ---------------------------------------------------------------------------

async def list_filters(store: StateStore) -> list[Filter]:
    return load(await store.get_setting(SETTING))


async def _change(store: StateStore, change: Callable[[list[Any]], Any]) -> Any:
    """Change the stored filter list in place with ``change`` in one transaction of the
    store (two administrators editing at once both keep their edit); what ``change``
    returns."""
    result: list[Any] = []

    def update(raw: Any) -> Any:
        stored = list(raw) if isinstance(raw, list) else []
        result[:] = [change(stored)]
        return stored or None

    await store.update_setting(SETTING, update)
    return result[0]


async def add_filter(store: StateStore, raw: Any, *, position: int | None = None, actor: str = "api") -> Filter:
    """Validate and insert a filter at ``position`` (1-based; the end when None)."""
    f = parse_filter(raw)

    def insert(stored: list[Any]) -> int:
        if len(stored) >= MAX_FILTERS:
            raise FilterError(f"at most {MAX_FILTERS} filters")
        at = len(stored) + 1 if position is None else position
        if not 1 <= at <= len(stored) + 1:
            raise FilterError(f"position must be between 1 and {len(stored) + 1}")
        stored.insert(at - 1, f.to_json())
        return at

    at = await _change(store, insert)
    await store.record_event(AuditEvent("versions.filter.add", actor, detail=f"#{at} {f.describe()}"))
    return f


async def delete_filter(store: StateStore, position: int, *, actor: str = "api") -> None:
    def delete(stored: list[Any]) -> Any:
        if not 1 <= position <= len(stored):
            raise FilterError(f"no filter {position} (there are {len(stored)})")
        return stored.pop(position - 1)

    removed = await _change(store, delete)
    await store.record_event(AuditEvent("versions.filter.delete", actor,
                                        detail=f"#{position} {json.dumps(removed, sort_keys=True)}"))


async def move_filter(store: StateStore, position: int, to: int, *, actor: str = "api") -> None:
    def move(stored: list[Any]) -> None:
        if not 1 <= position <= len(stored) or not 1 <= to <= len(stored):
            raise FilterError(f"positions must be between 1 and {len(stored)}")
        stored.insert(to - 1, stored.pop(position - 1))

    await _change(store, move)
    await store.record_event(AuditEvent("versions.filter.move", actor, detail=f"#{position} -> #{to}"))
