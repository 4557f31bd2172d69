"""ABQ (``eas.access.abq``): the evaluation order as a table (every mode x device-list
entry x rule, matching or not) and rows for the helpers; a hypothesis test against a
plain reference evaluator written from the module docstring's table; the engine's cache,
service switch and hooks; the admin API (validation stores nothing, audit,
grandfathering, import all or nothing); and the engine through the real core."""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as s

from eas.access import AccessDecision, change_setting
from eas.access.abq import (
    ABQ,
    CACHE_SECONDS,
    DISCOVERY_SECONDS,
    ABQSettings,
    DeviceEntry,
    Matcher,
    Rule,
    add_rule,
    delete_device,
    delete_rule,
    device_entries,
    evaluate,
    import_devices,
    rules,
    set_device,
    set_mode,
)
from eas.core import PolicyDecision
from eas.state.memory import MemoryStateStore
from eas.state.model import DeviceRecord
from eas.tags import FolderHierarchy as FH
from eas.testing.harness import client, make_app

pytestmark = pytest.mark.kernel_independent

A = "alice@example.com"
NOW = 1_000_000.0
FOLDERSYNC = '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>'


def phone(device_type: str = "iPhone", model: str = "iPhone15,2", os: str = "iOS 17.1",
          user_agent: str = "Apple-iPhone15C2/2101.51", device_id: str = "ApplDEV1", age: float = 3600.0,
          ) -> DeviceRecord:
    return DeviceRecord(A, device_id, device_type=device_type, model=model, os=os, user_agent=user_agent,
                        first_seen=NOW - age)


def outcome(decision: AccessDecision) -> tuple[str, str]:
    return decision.access, decision.reason


# -- the table: mode x entry x rule x matching ---------------------------------------------------

MODES = ("permissive", "interactive", "strict", "disabled")
ENTRIES: tuple[tuple[str, str] | None, ...] = (
    None, ("personal", "allowed"), ("personal", "blocked"),
    ("list", "allowed"), ("list", "blocked"), ("list", "quarantined"))
RULE_ACTIONS = (None, "allow", "quarantine", "block")
STATE_OF = {"allow": "allowed", "quarantine": "quarantined", "block": "blocked"}
DEFAULT_OF = {"permissive": "allowed", "interactive": "quarantined", "strict": "blocked"}


def expected(mode: str, entry: tuple[str, str] | None, action: str | None, matching: bool) -> tuple[str, str]:
    """The documented order, written out for these cases: disabled allows; an entry
    (personal or device list) decides; then a matching rule; then the mode's default."""
    if mode == "disabled":
        return "allowed", ""
    if entry is not None:
        return entry[1], "individual"
    if action is not None and matching:
        return STATE_OF[action], "rule"
    return DEFAULT_OF[mode], "global"


CASES = list(itertools.product(MODES, ENTRIES, RULE_ACTIONS, (True, False)))


@pytest.mark.parametrize(("mode", "entry", "action", "matching"), CASES)
def test_order_table(mode: str, entry: tuple[str, str] | None, action: str | None, matching: bool) -> None:
    """Each case both through ``evaluate`` and through the engine over settings the
    admin API stored (rule on the device type, so no discovery)."""
    device = phone()

    async def scenario() -> None:
        store = MemoryStateStore()
        await set_mode(store, mode, actor="test", grandfather=False)
        if entry is not None:
            await set_device(store, "appldev1", entry[1], user=A if entry[0] == "personal" else "", actor="test")
        if action is not None:
            await add_rule(store, action, "device_type", "IPHONE" if matching else "Android", actor="test")
        engine_decision = await ABQ(store)(None, A, device)
        settings_now = ABQSettings.from_settings(await store.settings("abq."))
        pure = evaluate(settings_now, A, device, now=NOW)
        assert outcome(pure) == outcome(engine_decision) == expected(mode, entry, action, matching)

    asyncio.run(scenario())


# -- rows for the helpers ----------------------------------------------------------------------

def rule(action: str, field: str, value: str, *, regex: bool = False, domain: str = "", id: int = 1) -> Rule:
    return Rule(field, value, regex, id=id, action=action, domain=domain)


HELPER_ROWS: list[tuple[str, ABQSettings, DeviceRecord, dict[str, Any], tuple[str, str], str]] = [
    # device limit: blocked beyond it, before rules and after individual entries
    ("limit: within", ABQSettings.of(max_devices=2), phone(), {"rank": 1}, ("allowed", "global"), "mode permissive"),
    ("limit: beyond", ABQSettings.of(max_devices=2), phone(), {"rank": 2}, ("blocked", "device limit"),
     "more than 2 devices"),
    ("limit beats an allow rule", ABQSettings.of(max_devices=1, rules=[rule("allow", "device_type", "iphone")]),
     phone(), {"rank": 1}, ("blocked", "device limit"), ""),
    ("personal allow beats the limit",
     ABQSettings.of(max_devices=1, entries=[DeviceEntry("ApplDEV1", A, "allowed")]), phone(), {"rank": 5},
     ("allowed", "individual"), ""),
    # auto-allow: the first N devices in interactive/strict only
    ("auto-allow: first", ABQSettings.of(mode="strict", auto_allow=2), phone(), {"rank": 1},
     ("allowed", "auto-approved"), "among the first 2 devices"),
    ("auto-allow: third", ABQSettings.of(mode="strict", auto_allow=2), phone(), {"rank": 2}, ("blocked", "global"), ""),
    ("auto-allow: permissive says global", ABQSettings.of(auto_allow=2), phone(), {"rank": 0},
     ("allowed", "global"), ""),
    ("auto-allow after a quarantine rule",
     ABQSettings.of(mode="interactive", auto_allow=3, rules=[rule("quarantine", "os", "ios 17.1")]), phone(),
     {"rank": 0}, ("quarantined", "rule"), "rule 1: quarantine os = ios 17.1"),
    # MDM hooks' answer
    ("mdm", ABQSettings.of(mode="interactive"), phone(), {"mdm": "MDM enrolled"}, ("allowed", "auto-approved"),
     "MDM enrolled"),
    ("mdm after a block rule", ABQSettings.of(mode="interactive", rules=[rule("block", "model", "iphone15,2")]),
     phone(), {"mdm": "MDM profile"}, ("blocked", "rule"), ""),
    # approved apps
    ("approved app by type", ABQSettings.of(mode="strict", approved_apps=[Matcher("device_type", "outlook")]),
     phone(device_type="Outlook"), {}, ("allowed", "auto-approved"), "approved app: device_type = outlook"),
    ("approved app by agent regex",
     ABQSettings.of(mode="interactive", approved_apps=[Matcher("user_agent", r"^Outlook-(iOS|Android)/", True)]),
     phone(user_agent="Outlook-Android/2.0"), {}, ("allowed", "auto-approved"), ""),
    ("approved app not matching", ABQSettings.of(mode="interactive", approved_apps=[Matcher("device_type", "out")]),
     phone(device_type="Outlook"), {}, ("quarantined", "global"), ""),
    # discovery: interactive/strict, a model/os rule, the field not told yet, within the period
    ("discovery", ABQSettings.of(mode="interactive", rules=[rule("allow", "model", "iphone15,2")]),
     phone(model="", age=10), {}, ("discovery", "rule"), "waiting for the device's model"),
    ("discovery before an allow rule",
     ABQSettings.of(mode="strict", rules=[rule("block", "os", "android 9"), rule("allow", "device_type", "iphone",
                                                                                  id=2)]),
     phone(os="", age=10), {}, ("discovery", "rule"), "waiting for the device's os"),
    ("discovery over", ABQSettings.of(mode="interactive", rules=[rule("allow", "model", "iphone15,2")]),
     phone(model="", age=DISCOVERY_SECONDS + 1), {}, ("quarantined", "global"), ""),
    ("no discovery when permissive", ABQSettings.of(rules=[rule("block", "model", "x")]), phone(model="", age=10), {},
     ("allowed", "global"), ""),
    ("no discovery once told", ABQSettings.of(mode="strict", rules=[rule("allow", "model", "iphone15,2")]),
     phone(age=10), {}, ("allowed", "rule"), "rule 1: allow model = iphone15,2"),
    ("a block rule beats discovery",
     ABQSettings.of(mode="strict", rules=[rule("block", "device_type", "iphone"), rule("allow", "model", "y", id=2)]),
     phone(model="", age=10), {}, ("blocked", "rule"), ""),
    ("no discovery for another domain's rule",
     ABQSettings.of(mode="strict", rules=[rule("allow", "model", "y", domain="other.org")]), phone(model="", age=10),
     {}, ("blocked", "global"), ""),
    # domain vs global rules
    ("domain rule first within an action",
     ABQSettings.of(rules=[rule("allow", "device_type", "iphone"),
                           rule("allow", "os", "ios 17.1", domain="example.com", id=2)]),
     phone(), {}, ("allowed", "rule"), "rule 2: allow os = ios 17.1 [example.com]"),
    ("global block beats domain allow",
     ABQSettings.of(rules=[rule("allow", "device_type", "iphone", domain="example.com"),
                           rule("block", "os", "ios 17.1", id=2)]),
     phone(), {}, ("blocked", "rule"), "rule 2: block os = ios 17.1"),
    ("other domain's rule ignored", ABQSettings.of(rules=[rule("block", "device_type", "iphone", domain="example.org")]),
     phone(), {}, ("allowed", "global"), ""),
    # exact vs regex, case
    ("exact is case-insensitive", ABQSettings.of(rules=[rule("block", "device_type", "IPHONE")]), phone(), {},
     ("blocked", "rule"), ""),
    ("exact is whole", ABQSettings.of(rules=[rule("block", "device_type", "iphon")]), phone(), {},
     ("allowed", "global"), ""),
    ("regex is searched", ABQSettings.of(rules=[rule("block", "user_agent", "iphone15", regex=True)]), phone(), {},
     ("blocked", "rule"), "rule 1: block user_agent ~ iphone15"),
    ("regex is case-insensitive", ABQSettings.of(rules=[rule("quarantine", "os", "^IOS 1[0-9]", regex=True)]),
     phone(), {}, ("quarantined", "rule"), ""),
    ("regex anchored", ABQSettings.of(rules=[rule("block", "os", "^17", regex=True)]), phone(), {},
     ("allowed", "global"), ""),
    ("regex metacharacters in an exact value",
     ABQSettings.of(rules=[rule("block", "model", "iPhone.*")]), phone(), {}, ("allowed", "global"), ""),
    ("an empty field matches no rule", ABQSettings.of(rules=[rule("block", "user_agent", ".*", regex=True)]),
     phone(user_agent=""), {}, ("allowed", "global"), ""),
    ("device id case-insensitive", ABQSettings.of(entries=[DeviceEntry("APPLDEV1", "", "blocked")]), phone(), {},
     ("blocked", "individual"), "device list"),
    ("personal entry of another account", ABQSettings.of(entries=[DeviceEntry("ApplDEV1", "bob@example.com",
                                                                             "blocked")]),
     phone(), {}, ("allowed", "global"), ""),
    ("personal over device list", ABQSettings.of(entries=[DeviceEntry("ApplDEV1", "", "blocked"),
                                                          DeviceEntry("ApplDEV1", A, "allowed")]),
     phone(), {}, ("allowed", "individual"), f"personal entry for {A}"),
]


@pytest.mark.parametrize(("name", "config", "device", "kw", "want", "detail"), HELPER_ROWS,
                         ids=[row[0] for row in HELPER_ROWS])
def test_helper_rows(name: str, config: ABQSettings, device: DeviceRecord, kw: dict[str, Any],
                     want: tuple[str, str], detail: str) -> None:
    decision = evaluate(config, "Alice@Example.com", device, now=NOW, **kw)
    assert outcome(decision) == want
    if detail:
        assert decision.detail == detail


# -- hypothesis: random settings against a plain reference evaluator ---------------------------

VALUES = ("iPhone", "iphone", "Android", "", "SM-G991B", "Outlook-iOS/2.0", "iOS 17.1")
PATTERNS = ("^i", "phone$", "[0-9]", "^SM-", "out", "x")
DOMAINS = ("", "example.com", "example.org")


def reference(mode: str, entries: list[tuple[str, str, str]], rule_list: list[tuple[int, str, str, str, bool, str]],
              apps: list[tuple[str, str, bool]], account: str, device: dict[str, str], rank: int, auto_allow: int,
              max_devices: int, mdm: bool, fresh: bool) -> tuple[str, str]:
    """The module docstring's table, row by row, in the plainest Python."""
    def hit(field: str, value: str, regex: bool) -> bool:
        told = device[field]
        if told == "":
            return False
        if regex:
            return re.search(value, told, re.IGNORECASE) is not None
        return told.lower() == value.lower()

    if mode == "disabled":
        return "allowed", ""
    domain = account.split("@")[1]
    for device_id, user, state in entries:
        if device_id.lower() == device["id"].lower() and user == account:
            return state, "individual"
    for device_id, user, state in entries:
        if device_id.lower() == device["id"].lower() and user == "":
            return state, "individual"
    if max_devices > 0 and rank >= max_devices:
        return "blocked", "device limit"
    mine = [r for r in rule_list if r[5] in ("", domain)]
    strict_ish = mode in ("interactive", "strict")
    for action in ("block", "quarantine", "allow"):
        pending = any(r[2] in ("model", "os") and device[r[2]] == "" for r in mine)
        if action == "allow" and strict_ish and fresh and pending:
            return "discovery", "rule"
        if any(r[1] == action and hit(r[2], r[3], r[4]) for r in mine):
            return STATE_OF[action], "rule"
    if strict_ish:
        if any(hit(field, value, regex) for field, value, regex in apps):
            return "allowed", "auto-approved"
        if rank < auto_allow:
            return "allowed", "auto-approved"
        if mdm:
            return "allowed", "auto-approved"
    return DEFAULT_OF[mode], "global"


@settings(max_examples=300, deadline=None)
@given(mode=s.sampled_from(MODES),
       raw_entries=s.lists(s.tuples(s.sampled_from(("dev1", "DEV1", "dev2")), s.sampled_from(("", A, "bob@example.org")),
                                    s.sampled_from(("allowed", "blocked", "quarantined"))), max_size=4),
       raw_rules=s.lists(s.tuples(s.sampled_from(("allow", "quarantine", "block")),
                                  s.sampled_from(("device_type", "model", "os", "user_agent")), s.booleans(),
                                  s.sampled_from(DOMAINS), s.integers(0, len(VALUES) - 1)), max_size=6),
       raw_apps=s.lists(s.tuples(s.sampled_from(("device_type", "user_agent")), s.booleans(),
                                 s.integers(0, len(VALUES) - 1)), max_size=2),
       device=s.fixed_dictionaries({"id": s.sampled_from(("dev1", "Dev1", "dev3")),
                                    "device_type": s.sampled_from(VALUES), "model": s.sampled_from(VALUES),
                                    "os": s.sampled_from(VALUES), "user_agent": s.sampled_from(VALUES)}),
       account=s.sampled_from((A, "carol@example.org")), rank=s.integers(0, 4), auto_allow=s.integers(0, 3),
       max_devices=s.integers(0, 3), mdm=s.booleans(), fresh=s.booleans())
def test_against_reference(mode: str, raw_entries: list[tuple[str, str, str]],
                           raw_rules: list[tuple[str, str, bool, str, int]], raw_apps: list[tuple[str, bool, int]],
                           device: dict[str, str], account: str, rank: int, auto_allow: int, max_devices: int,
                           mdm: bool, fresh: bool) -> None:
    entries: dict[tuple[str, str], tuple[str, str, str]] = {}
    for device_id, user, state in raw_entries:
        if user and state == "quarantined":
            continue  # not a valid personal entry
        entries[(device_id.lower(), user)] = (device_id, user, state)  # a later one replaces
    rule_list = []
    for i, (action, field, regex, domain, v) in enumerate(raw_rules, 1):
        value = PATTERNS[v % len(PATTERNS)] if regex else (VALUES[v] or "none")
        rule_list.append((i, action, field, value, regex, domain))
    apps = [(field, PATTERNS[v % len(PATTERNS)] if regex else (VALUES[v] or "none"), regex)
            for field, regex, v in raw_apps]
    config = ABQSettings.of(mode=mode, entries=[DeviceEntry(*e) for e in entries.values()],
                            rules=[Rule(f, v, rx, id=i, action=a, domain=d) for i, a, f, v, rx, d in rule_list],
                            auto_allow=auto_allow, max_devices=max_devices,
                            approved_apps=[Matcher(f, v, rx) for f, v, rx in apps])
    record = DeviceRecord(account, device["id"], device_type=device["device_type"], model=device["model"],
                          os=device["os"], user_agent=device["user_agent"],
                          first_seen=NOW - (10 if fresh else DISCOVERY_SECONDS + 10))
    got = evaluate(config, account, record, rank=rank, mdm="MDM enrolled" if mdm else "", now=NOW)
    assert outcome(got) == reference(mode, list(entries.values()), rule_list, apps, account, device, rank,
                                     auto_allow, max_devices, mdm, fresh)


# -- the engine: cache, service switch, hooks, counts ----------------------------------------------

def test_engine_cache_service_switch_and_hooks() -> None:
    now = [100.0]

    async def scenario() -> None:
        store = MemoryStateStore()
        engine = ABQ(store, clock=lambda: now[0])
        device = phone()
        await set_mode(store, "strict", actor="test", grandfather=False)
        assert outcome(await engine(None, A, device)) == ("blocked", "global")
        await set_device(store, "ApplDEV1", "allowed", actor="test")
        assert outcome(await engine(None, A, device)) == ("blocked", "global")  # cached
        now[0] += CACHE_SECONDS
        assert outcome(await engine(None, A, device)) == ("allowed", "individual")
        # The service stopped: allowed without reading anything, like mode disabled.
        await set_device(store, "ApplDEV1", "blocked", actor="test")
        await store.set_setting("service.abq", False)
        engine.forget()
        assert outcome(await engine(None, A, device)) == ("allowed", "")
        await store.set_setting("service.abq", True)
        engine.forget()
        assert outcome(await engine(None, A, device)) == ("blocked", "individual")
        # Hooks: called only when the default would refuse; a sync or async True approves.
        await delete_device(store, "ApplDEV1", actor="test")
        engine.forget()
        calls: list[str] = []

        def enrolled(account: str, dev: DeviceRecord) -> bool:
            calls.append("enrolled")
            return dev.model.startswith("iPhone")

        async def profile(account: str, dev: DeviceRecord) -> bool:
            calls.append("profile")
            return account == A

        engine.mdm_profile = profile
        decision = await engine(None, A, device)
        assert (outcome(decision), decision.detail, calls) == (("allowed", "auto-approved"), "MDM profile",
                                                               ["profile"])
        engine.mdm_enrolled = enrolled
        decision = await engine(None, A, device)
        assert (decision.detail, calls[1:]) == ("MDM enrolled", ["enrolled"])
        assert outcome(await engine(None, "bob@example.com", phone(model="Pixel"))) == ("blocked", "global")
        calls.clear()
        await set_mode(store, "permissive", actor="test")
        engine.forget()
        assert outcome(await engine(None, A, phone(model="Pixel"))) == ("allowed", "global")
        assert calls == []  # not consulted when the default allows
        await add_rule(store, "block", "model", "pixel", actor="test")
        engine.forget()
        assert outcome(await engine(None, A, phone(model="Pixel"))) == ("blocked", "rule")
        assert calls == []

    asyncio.run(scenario())


def test_engine_counts_the_accounts_devices() -> None:
    """max_devices and auto_allow rank a device by first seen among its account's
    devices; other accounts' devices do not count."""

    async def scenario() -> None:
        store = MemoryStateStore()
        devices = [phone(device_id=f"dev{i}", age=1000 - i) for i in range(4)]
        for d in devices:
            await store.commit(d, {})
        await store.commit(DeviceRecord("bob@example.com", "bobdev", first_seen=0), {})
        await set_mode(store, "interactive", actor="test", grandfather=False)
        await change_setting(store, "abq.auto_allow", 2, actor="test")
        await change_setting(store, "abq.max_devices", 3, actor="test")
        engine = ABQ(store)
        assert [outcome(await engine(None, A, d)) for d in devices] == [
            ("allowed", "auto-approved"), ("allowed", "auto-approved"), ("quarantined", "global"),
            ("blocked", "device limit")]
        new = phone(device_id="brandnew", age=0)  # not stored yet: the core commits after deciding
        assert outcome(await engine(None, A, new)) == ("blocked", "device limit")

    asyncio.run(scenario())


def test_garbage_settings_never_fail_a_request() -> None:
    async def scenario() -> None:
        store = MemoryStateStore()
        await store.set_setting("abq.mode", "paranoid")
        await store.set_setting("abq.devices", [{"device_id": "ApplDEV1", "state": "banished"}, "junk",
                                                {"device_id": "ApplDEV1", "user": A, "state": "blocked"}])
        await store.set_setting("abq.rules", {"not": "a list"})
        await store.set_setting("abq.auto_allow", "many")
        await store.set_setting("abq.approved_apps", [{"field": "os", "value": "x"}])
        decision = await ABQ(store)(None, A, phone())
        assert outcome(decision) == ("blocked", "individual")  # the one valid entry
        await store.set_setting("abq.rules", [{"id": 1, "action": "block", "field": "model", "value": "(a+)+$",
                                               "regex": True}])
        await store.set_setting("abq.devices", None)
        assert outcome(await ABQ(store)(None, A, phone(model="a" * 5000 + "!"))) == ("allowed", "global")

    asyncio.run(scenario())


# -- the admin API -----------------------------------------------------------------------------

async def _snapshot(store: MemoryStateStore) -> tuple[dict[str, Any], int]:
    return await store.settings("abq."), len(await store.events(limit=10000))


def test_admin_api_validates_before_storing_and_audits() -> None:
    async def scenario() -> None:
        store = MemoryStateStore()
        await set_device(store, "ApplDEV1", "quarantined", actor="admin", note="lost?")
        await set_device(store, "ApplDEV1", "allowed", user="Alice@Example.com", actor="admin")
        await set_device(store, "appldev1", "blocked", actor="admin")  # replaces the device-list entry
        entries = await device_entries(store)
        assert [(e.device_id, e.user, e.state, e.actor) for e in entries] == [
            ("ApplDEV1", A, "allowed", "admin"), ("appldev1", "", "blocked", "admin")]
        r1 = await add_rule(store, "block", "model", "^SM-", regex=True, domain="Example.COM", actor="admin")
        r2 = await add_rule(store, "allow", "user_agent", "Outlook-iOS/2.0", actor="admin")
        assert (r1.id, r1.domain, r2.id) == (1, "example.com", 2)
        assert r1.describe() == "rule 1: block model ~ ^SM- [example.com]"
        before = await _snapshot(store)
        bad_devices: list[tuple[Any, str, str, str]] = [
            ("dev 1", "allowed", "", ""), ("", "allowed", "", ""), ("x" * 65, "allowed", "", ""),
            ("dev1", "quarantined", A, ""), ("dev1", "discovery", "", ""), ("dev1", "ALLOWED", "", ""),
            ("dev1", "allowed", "@example.com", ""), ("dev1", "allowed", "nobody", ""),
            ("dev1", "allowed", "a b@example.com", ""), ("dev1", "allowed", "x@y\x00z", ""),
            ("dev1", "allowed", "", "line\nbreak"), ("dev1", "allowed", "", "n" * 201), (42, "allowed", "", ""),
            ("dev1\u202e", "allowed", "", ""), ("dev1", "allowed", "a" * 300 + "@example.com", ""),
        ]
        for device_id, state, user, note in bad_devices:
            with pytest.raises((ValueError, TypeError)):
                await set_device(store, device_id, state, user=user, note=note, actor="admin")
        bad_rules: list[tuple[Any, Any, Any, bool, Any]] = [
            ("deny", "model", "x", False, ""), ("block", "imei", "x", False, ""), ("block", "model", "", False, ""),
            ("block", "model", "x" * 201, False, ""), ("block", "model", "(a+)+", True, ""),
            ("block", "model", "(a|aa)*b", True, ""), ("block", "model", "[", True, ""),
            ("block", "model", r"(a)\1", True, ""), ("block", "model", "x", False, "a@b"),
            ("block", "model", "x", False, "bad domain"), ("block", "model", "tab\there", False, ""),
            ("block", "model", 7, False, ""),
        ]
        for action, field, value, regex, domain in bad_rules:
            with pytest.raises((ValueError, TypeError)):
                await add_rule(store, action, field, value, regex=regex, domain=domain, actor="admin")
        with pytest.raises(ValueError):
            await set_mode(store, "lockdown", actor="admin")
        for name, value in (("abq.rules", [{"id": 1, "action": "block", "field": "model", "value": "(x*)*",
                                            "regex": True}]),
                            ("abq.rules", [{"id": 1, "action": "block", "field": "model", "value": "a"}] * 2),
                            ("abq.devices", [{"device_id": "d", "state": "allowed"}, {"device_id": "D",
                                                                                      "state": "blocked"}]),
                            ("abq.max_devices", -1), ("abq.auto_allow", True), ("abq.auto_allow", 10**6),
                            ("abq.approved_apps", [{"field": "model", "value": "x"}])):
            with pytest.raises((ValueError, TypeError)):
                await change_setting(store, name, value, actor="admin")
        assert not await delete_device(store, "nosuch", actor="admin")
        assert not await delete_rule(store, 99, actor="admin")
        assert await _snapshot(store) == before
        assert await delete_device(store, "APPLDEV1", user=A, actor="admin")
        assert await delete_rule(store, 1, actor="admin")
        assert [r.id for r in await rules(store)] == [2]
        assert [(e.device_id, e.user) for e in await device_entries(store)] == [("appldev1", "")]
        events = [(e.action, e.actor, e.user, e.device_id) for e in reversed(await store.events(limit=100))]
        assert events == [
            ("abq.device.quarantined", "admin", "", "ApplDEV1"), ("abq.device.allowed", "admin", A, "ApplDEV1"),
            ("abq.device.blocked", "admin", "", "appldev1"), ("abq.rule.add", "admin", "", ""),
            ("abq.rule.add", "admin", "", ""), ("abq.device.delete", "admin", A, "APPLDEV1"),
            ("abq.rule.delete", "admin", "", "")]

    asyncio.run(scenario())


def test_import_all_or_nothing() -> None:
    async def scenario() -> None:
        store = MemoryStateStore()
        good = ["# exported from the old server", "", "dev1", "  dev2   alice@example.com  # her tablet",
                "DEV1", "dev3\tbob@example.com"]
        assert await import_devices(store, good, "blocked", actor="admin") == 3  # DEV1 is dev1 again
        assert [(e.device_id, e.user, e.state, e.note) for e in await device_entries(store)] == [
            ("DEV1", "", "blocked", "imported"), ("dev2", A, "blocked", "imported"),
            ("dev3", "bob@example.com", "blocked", "imported")]
        before = await _snapshot(store)
        for lines, state, message in (
                (["dev4", "dev 5 x@example.com"], "allowed", "line 2: expected DEVICEID or DEVICEID USER"),
                (["ok1", "# c", "bad!id"], "allowed", "line 3: not a device id"),
                (["ok1", "ok2 nobody"], "allowed", "line 2: an account is user@domain"),
                (["ok1", "ok2 alice@example.com"], "quarantined", "line 2: a personal entry is allowed or blocked"),
                (["ok1"], "wiped", "line 1: a device-list entry is allowed or blocked or quarantined")):
            with pytest.raises(ValueError) as e:
                await import_devices(store, lines, state, actor="admin")
            assert str(e.value).startswith(message), e.value
        assert await _snapshot(store) == before
        assert await import_devices(store, ["dev1", "dev9"], "allowed", actor="admin") == 2
        assert [(e.device_id, e.state) for e in await device_entries(store)] == [
            ("dev2", "blocked"), ("dev3", "blocked"), ("dev1", "allowed"), ("dev9", "allowed")]
        assert await import_devices(store, ["# nothing"], "allowed", actor="admin") == 0

    asyncio.run(scenario())


def test_grandfathering() -> None:
    async def scenario() -> None:
        store = MemoryStateStore()
        await store.commit(DeviceRecord(A, "old1", access="allowed", access_reason="global"), {})
        await store.commit(DeviceRecord(A, "old2", access="blocked", access_reason="rule"), {})
        await store.commit(DeviceRecord("bob@example.com", "old3", access="allowed", access_reason="global"), {})
        await set_device(store, "old3", "blocked", user="bob@example.com", actor="admin")  # already decided
        assert await set_mode(store, "interactive", actor="admin") == 1
        entries = [(e.device_id, e.user, e.state, e.note) for e in await device_entries(store)]
        assert entries == [("old3", "bob@example.com", "blocked", ""), ("old1", A, "allowed", "grandfathered")]
        assert await set_mode(store, "strict", actor="admin") == 0  # from interactive: nothing to keep
        await store.commit(DeviceRecord(A, "new1", access="allowed"), {})
        await set_mode(store, "permissive", actor="admin")
        assert await set_mode(store, "strict", actor="admin", grandfather=False) == 0
        assert len(await device_entries(store)) == 2
        engine = ABQ(store)
        assert outcome(await engine(None, A, DeviceRecord(A, "old1"))) == ("allowed", "individual")
        assert outcome(await engine(None, A, DeviceRecord(A, "new1"))) == ("blocked", "global")
        modes = [e.detail for e in reversed(await store.events(limit=100)) if e.action == "abq.mode"]
        assert modes == ["permissive -> interactive (1 devices grandfathered)", "interactive -> strict",
                         "strict -> permissive", "permissive -> strict"]
        kept = [(e.user, e.device_id) for e in await store.events(limit=100)
                if e.action == "abq.device.allowed" and "grandfathered" in e.detail]
        assert kept == [(A, "old1")]

    asyncio.run(scenario())


# -- through the real core ----------------------------------------------------------------------

async def no_policy(user: str, device: DeviceRecord) -> PolicyDecision:
    return PolicyDecision(required=False)


def test_through_the_core(tmp_path: Path) -> None:
    """Strict (blocked devices refused rather than shown the notice mailbox): an
    unknown device gets 129 (403 before 14.0) and an access.blocked audit
    event; set_device lets its next request through once the cache time has passed;
    grandfathering keeps a device allowed across set_mode(strict); quarantined in
    interactive mode is not let into the real mailbox."""
    now = [0.0]

    async def scenario() -> None:
        app, _ = make_app(tmp_path)
        app.policy = no_policy
        app.abq = app.access = ABQ(app.store, clock=lambda: now[0])  # type: ignore[method-assign]
        store = app.store
        await change_setting(store, "abq.blocked_notice", False, actor="test")  # refused, not the notice mailbox
        old = client(app, device_id="OldPhone", version="14.1")
        r = await old.command("FolderSync", FOLDERSYNC)
        assert r.text(FH.Status) == "1"
        record = await store.get_device(A, "OldPhone")
        assert record is not None and (record.access, record.access_reason) == ("allowed", "global")
        assert await set_mode(store, "strict", actor="test") == 1
        now[0] += CACHE_SECONDS
        r = await old.command("FolderSync", FOLDERSYNC)
        assert r.text(FH.Status) == "1"  # grandfathered
        new = client(app, device_id="NewPhone", version="14.1")
        r = await new.command("FolderSync", FOLDERSYNC)
        assert (r.status, r.text(FH.Status)) == (200, "129")
        r = await client(app, device_id="NewPhone", version="12.1").command("FolderSync", FOLDERSYNC)
        assert r.status == 403
        blocked = [e for e in await store.events(device_id="NewPhone", limit=100) if e.action == "access.blocked"]
        assert [(e.actor, e.user, e.detail) for e in blocked] == [("abq", A, "global; mode strict")]
        await set_device(store, "NewPhone", "allowed", user=A, actor="test")
        r = await new.command("FolderSync", FOLDERSYNC)
        assert r.text(FH.Status) == "129"  # the engine's cache still holds the old settings
        now[0] += CACHE_SECONDS
        r = await new.command("FolderSync", FOLDERSYNC)
        assert (r.status, r.text(FH.Status)) == (200, "1")
        record = await store.get_device(A, "NewPhone")
        assert record is not None and (record.access, record.access_reason) == ("allowed", "individual")
        # Interactive: an unknown device is quarantined and does not see the real folders.
        await set_mode(store, "interactive", actor="test")
        now[0] += CACHE_SECONDS
        third = client(app, device_id="ThirdPhone", version="14.1")
        r = await third.command("FolderSync", FOLDERSYNC)
        record = await store.get_device(A, "ThirdPhone")
        assert record is not None and (record.access, record.access_reason) == ("quarantined", "global")
        real = await old.command("FolderSync", FOLDERSYNC)
        assert real.xml.count("<Add>") > 1
        assert r.xml.count("<Add>") <= 1  # the notice mailbox at most, or refused
        await store.close()

    asyncio.run(scenario())


def test_decision_is_cheap() -> None:
    """The engine's per-request cost with a realistic configuration (no device counts):
    well under a millisecond once the settings are cached."""

    async def scenario() -> float:
        store = MemoryStateStore()
        await set_mode(store, "interactive", actor="test", grandfather=False)
        await import_devices(store, [f"dev{i} user{i}@example.com" for i in range(2000)], "allowed", actor="t")
        for i in range(50):
            await add_rule(store, "allow" if i % 2 else "block", "model", f"^Model{i}-", regex=True, actor="t")
        engine = ABQ(store)
        device = phone(model="Model7-x")
        await engine(None, A, device)
        start = time.perf_counter()
        for _ in range(2000):
            await engine(None, A, device)
        return (time.perf_counter() - start) / 2000

    per_request = asyncio.run(scenario())
    print(f"ABQ decision: {per_request * 1e6:.1f} us per request")
    assert per_request < 0.001


def test_registered_settings() -> None:
    from eas.access import known_settings

    names = set(known_settings())
    assert {"abq.mode", "abq.devices", "abq.rules", "abq.auto_allow", "abq.max_devices",
            "abq.approved_apps"} <= names


def test_discovery_through_the_core(tmp_path: Path) -> None:
    """Interactive with a rule on the model: a device that has not told its model is in
    discovery (kept out of the real mailbox); once Provision's DeviceInformation gives
    the model the rule allows it, and the change is audited."""
    now = [0.0]

    async def scenario() -> None:
        app, _ = make_app(tmp_path)
        app.abq = app.access = ABQ(app.store, clock=lambda: now[0])  # type: ignore[method-assign]
        store = app.store
        await set_mode(store, "interactive", actor="test")
        await add_rule(store, "allow", "model", "TestModel", actor="test")
        c = client(app, device_id="Fresh", version="14.1")
        await c.command("FolderSync", FOLDERSYNC)
        record = await store.get_device(A, "Fresh")
        assert record is not None and (record.access, record.access_reason) == ("discovery", "rule")
        await c.provision()  # sends DeviceInformation: Model TestModel
        r = await c.command("FolderSync", FOLDERSYNC)
        assert r.text(FH.Status) == "1" and r.xml.count("<Add>") > 1, r.xml
        record = await store.get_device(A, "Fresh")
        assert record is not None and (record.model, record.access, record.access_reason) == (
            "TestModel", "allowed", "rule")
        events = [(e.action, e.detail) for e in reversed(await store.events(device_id="Fresh", limit=100))]
        assert events == [("access.discovery", "rule; waiting for the device's model"),
                          ("access.allowed", "rule; rule 1: allow model = TestModel")]
        await store.close()

    asyncio.run(scenario())


def test_rules_survive_garbage_written_around_the_api() -> None:
    """A rule list edited by hand with a bad entry: the engine skips it, and the admin
    API keeps working on the valid rules (the bad one is dropped at the next change)."""

    async def scenario() -> None:
        store = MemoryStateStore()
        await store.set_setting("abq.rules", [{"id": 4, "action": "block", "field": "os", "value": "x"}, "junk",
                                              {"id": 9, "action": "nuke", "field": "os", "value": "y"}])
        added = await add_rule(store, "allow", "model", "m", actor="admin")
        assert added.id == 5
        assert [r.id for r in await rules(store)] == [4, 5]
        assert await delete_rule(store, 4, actor="admin")
        assert await store.get_setting("abq.rules") == [
            {"field": "model", "value": "m", "regex": False, "id": 5, "action": "allow", "domain": ""}]
        details = [e.detail for e in reversed(await store.events(limit=10))]
        assert details == ["rule 5: allow model = m", "rule 4: block os = x"]

    asyncio.run(scenario())


def test_two_administrators_changing_the_lists_at_once_keep_both_changes(tmp_path: Path) -> None:
    """The CLI and the admin page (two processes, two connections) allowing devices and
    adding rules at the same moment: every entry and every rule is kept, and rule ids
    stay unique (each list is changed in one transaction of the store)."""
    import threading

    from eas.access.abq import add_rule, device_entries, rules, set_device
    from eas.state.sqlite import SQLiteStateStore

    def admin(worker: int) -> None:
        async def work() -> None:
            store = SQLiteStateStore(tmp_path / "state.db")
            for n in range(40):
                await set_device(store, f"Dev{worker}x{n}", "allowed", actor=f"admin{worker}")
                if n % 4 == 0:
                    await add_rule(store, "allow", "model", f"Model {worker}-{n}", actor=f"admin{worker}")
            await store.close()

        asyncio.run(work())

    threads = [threading.Thread(target=admin, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    async def read() -> tuple[list[Any], list[Any]]:
        store = SQLiteStateStore(tmp_path / "state.db")
        try:
            return await device_entries(store), await rules(store)
        finally:
            await store.close()

    entries, stored_rules = asyncio.run(read())
    assert sorted(e.device_id for e in entries) == sorted(f"Dev{w}x{n}" for w in range(2) for n in range(40))
    assert len(stored_rules) == 20 and len({r.id for r in stored_rules}) == 20
