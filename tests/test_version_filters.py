"""Protocol-version filters (``eas.access.versions``): the evaluator table-driven and
against a plain reference (hypothesis), validation of hostile filters, the core's OPTIONS
and refusals in process, and OPTIONS shaped over HTTP by ``eas filter`` while ``eas serve``
runs."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from eas.access.versions import (
    SETTING,
    FilterError,
    VersionFilters,
    add_filter,
    delete_filter,
    evaluate,
    list_filters,
    move_filter,
    parse_filter,
    subject,
)
from eas.config import Config
from eas.protocol.http import HTTPRequest
from eas.protocol.versions import Version
from eas.state.memory import MemoryStateStore
from eas.testing.client import Client, HTTPTransport
from eas.testing.harness import USERS, client, make_app
from tests.test_cli_server import eas, serving

pytestmark = pytest.mark.kernel_independent

ALL = ["2.5", "12.0", "12.1", "14.0", "14.1", "16.0", "16.1"]
PATH = "/Microsoft-Server-ActiveSync"
T = TypeVar("T")
ALICE, ALICE_PW = USERS[0]
FOLDERSYNC = '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>'


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def cond(field: str, op: str, value: str) -> dict[str, str]:
    return {"field": field, "op": op, "value": value}


def flt(action: str, versions: list[str], *conditions: dict[str, Any], match: str = "all",
        block: bool = False) -> dict[str, Any]:
    return {"action": action, "versions": versions, "conditions": list(conditions), "match": match, "block": block}


OUTLOOK = ("carol@corp.example", "Outlook/16.0 (Windows)", "WindowsOutlook")
IPHONE = ("alice@example.com", "Apple-iPhone9C1/1402.60", "iPhone")

# (filters, (account, user agent, device type), offered versions afterwards)
CASES = [
    ([], IPHONE, ALL),
    ([flt("subtract", ["16.0", "16.1"])], IPHONE, ALL[:5]),
    ([flt("add", ["2.5"])], IPHONE, ALL),
    ([flt("fixed", ["14.1", "12.1"])], IPHONE, ["12.1", "14.1"]),
    ([flt("fixed", [])], IPHONE, []),
    ([flt("max", ["14.0"])], IPHONE, ALL[:4]),
    ([flt("max", ["2.5"])], IPHONE, ["2.5"]),
    # conditions on each field, each operator, ignoring case
    ([flt("max", ["14.1"], cond("account", "exact", "ALICE@example.com"))], IPHONE, ALL[:5]),
    ([flt("max", ["14.1"], cond("account", "exact", "alice@example"))], IPHONE, ALL),
    ([flt("max", ["14.1"], cond("domain", "exact", "Example.COM"))], IPHONE, ALL[:5]),
    ([flt("max", ["14.1"], cond("domain", "exact", "example.com"))], OUTLOOK, ALL),
    ([flt("max", ["14.1"], cond("user_agent", "contains", "iphone"))], IPHONE, ALL[:5]),
    ([flt("max", ["14.1"], cond("user_agent", "contains", "iPad"))], IPHONE, ALL),
    ([flt("max", ["14.1"], cond("user_agent", "regex", r"^apple-iphone\d"))], IPHONE, ALL[:5]),
    ([flt("max", ["14.1"], cond("user_agent", "regex", r"^iphone"))], IPHONE, ALL),
    ([flt("max", ["14.1"], cond("device_type", "exact", "iphone"))], IPHONE, ALL[:5]),
    ([flt("max", ["14.1"], cond("device_type", "exact", "iPhon"))], IPHONE, ALL),
    # and / or
    ([flt("max", ["14.1"], cond("domain", "exact", "example.com"), cond("device_type", "exact", "iPad"))],
     IPHONE, ALL),
    ([flt("max", ["14.1"], cond("domain", "exact", "example.com"), cond("device_type", "exact", "iPad"),
          match="any")], IPHONE, ALL[:5]),
    # order and the blocking flag
    ([flt("max", ["14.1"]), flt("add", ["16.1"])], IPHONE, [*ALL[:5], "16.1"]),
    ([flt("max", ["14.1"], block=True), flt("add", ["16.1"])], IPHONE, ALL[:5]),
    ([flt("max", ["14.1"], cond("device_type", "exact", "x"), block=True), flt("subtract", ["2.5"])],
     IPHONE, ALL[1:]),  # a blocking filter that does not match stops nothing
    ([flt("fixed", ["14.1"], cond("user_agent", "contains", "outlook"), block=True), flt("subtract", ["14.1"])],
     OUTLOOK, ["14.1"]),
    ([flt("fixed", ["14.1"], cond("user_agent", "contains", "outlook"), block=True), flt("subtract", ["14.1"])],
     IPHONE, ["2.5", "12.0", "12.1", "14.0", "16.0", "16.1"]),
    # OPTIONS: the device type is unknown, a condition on it is false
    ([flt("max", ["14.1"], cond("device_type", "regex", ".*"))], (IPHONE[0], IPHONE[1], None), ALL),
    ([flt("max", ["14.1"], cond("device_type", "exact", "x"), cond("user_agent", "contains", "apple"),
          match="any")], (IPHONE[0], IPHONE[1], None), ALL[:5]),
]


@pytest.mark.parametrize(("filters", "who", "expected"), CASES)
def test_evaluate_table(filters: list[dict[str, Any]], who: tuple[str, str, str | None], expected: list[str]) -> None:
    got = evaluate([parse_filter(f) for f in filters], [Version(v) for v in ALL], subject(*who))
    assert [v.text for v in got] == expected


def test_evaluate_adds_versions_the_server_does_not_offer_and_shapes_a_smaller_base() -> None:
    base = [Version("14.1"), Version("16.1")]
    got = evaluate([parse_filter(flt("add", ["12.1"])), parse_filter(flt("max", ["14.1"]))], base, subject(*IPHONE))
    assert [v.text for v in got] == ["12.1", "14.1"]


# -- hypothesis: the evaluator against a plain reference --------------------------------------

def _key(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def reference(filters: list[dict[str, Any]], offered: list[str], who: dict[str, str | None]) -> list[str]:
    """The tables of the module docstring, written out with lists and loops."""
    current = list(offered)
    for f in filters:
        results = []
        for c in f["conditions"]:
            value = who[c["field"]]
            if value is None:
                results.append(False)
            elif c["op"] == "exact":
                results.append(value.lower() == c["value"].lower())
            elif c["op"] == "contains":
                results.append(c["value"].lower() in value.lower())
            else:
                results.append(re.search(c["value"], value, re.IGNORECASE) is not None)
        if not results:
            hit = True
        elif f["match"] == "all":
            hit = False not in results
        else:
            hit = True in results
        if not hit:
            continue
        if f["action"] == "add":
            current = current + [v for v in f["versions"] if v not in current]
        elif f["action"] == "subtract":
            current = [v for v in current if v not in f["versions"]]
        elif f["action"] == "fixed":
            current = list(f["versions"])
        else:
            current = [v for v in current if _key(v) <= _key(f["versions"][0])]
        if f["block"]:
            break
    return sorted(set(current), key=_key)


WORDS = ["alice", "Example.com", "iPhone", "outlook", "", "x"]
REGEXES = ["^a", "com$", "i.*e", "[0-9]", "OUT", "^$"]


@hs.composite
def conditions(draw: hs.DrawFn) -> dict[str, str]:
    field = draw(hs.sampled_from(["account", "domain", "user_agent", "device_type"]))
    op = draw(hs.sampled_from(["exact", "contains", "regex"]))
    value = draw(hs.sampled_from(REGEXES if op == "regex" else WORDS))
    return cond(field, op, value)


@hs.composite
def filters(draw: hs.DrawFn) -> dict[str, Any]:
    action = draw(hs.sampled_from(["add", "subtract", "fixed", "max"]))
    if action == "max":
        versions = [draw(hs.sampled_from(ALL))]
    else:
        versions = draw(hs.lists(hs.sampled_from(ALL), min_size=0 if action == "fixed" else 1, max_size=4, unique=True))
    return flt(action, versions, *draw(hs.lists(conditions(), max_size=3)),
               match=draw(hs.sampled_from(["all", "any"])), block=draw(hs.booleans()))


@settings(max_examples=300, deadline=None)
@given(hs.lists(filters(), max_size=6), hs.lists(hs.sampled_from(ALL), unique=True),
       hs.sampled_from(["alice@example.com", "Bob@Outlook.example", "x"]),
       hs.sampled_from(["Apple-iPhone/1", "Outlook/16.0", ""]), hs.sampled_from(["iPhone", "x", None]))
def test_evaluate_matches_reference(raw: list[dict[str, Any]], offered: list[str], account: str, agent: str,
                                    device_type: str | None) -> None:
    who = subject(account, agent, device_type)
    got = evaluate([parse_filter(f) for f in raw], [Version(v) for v in offered], who)
    assert [v.text for v in got] == reference(raw, offered, who)


# -- hostile filters ----------------------------------------------------------------------------

HOSTILE: list[Any] = [
    None, [], "max 14.1", {"action": "max"}, {"action": "drop", "versions": ["14.1"]},
    flt("max", ["14.1", "16.1"]), flt("max", []), flt("add", []), flt("subtract", []),
    flt("add", ["99.9"]), flt("add", ["14.10"]), {"action": "add", "versions": [14.1]},
    {"action": "add", "versions": "14.1"}, {**flt("add", ["14.1"]), "match": "some"},
    {**flt("add", ["14.1"]), "block": "true"}, {**flt("add", ["14.1"]), "extra": 1},
    {**flt("add", ["14.1"]), "conditions": "user_agent"}, flt("add", ["14.1"], *[cond("account", "exact", "a")] * 21),
    flt("add", ["14.1"], {"field": "account", "op": "exact"}),
    flt("add", ["14.1"], {"field": "account", "op": "exact", "value": "a", "x": 1}),
    flt("add", ["14.1"], cond("ip", "exact", "a")), flt("add", ["14.1"], cond("account", "glob", "a*")),
    flt("add", ["14.1"], {"field": "account", "op": "exact", "value": 5}),
    flt("add", ["14.1"], cond("account", "exact", "a" * 201)), flt("add", ["14.1"], cond("account", "exact", "a\0")),
    # regular expressions: invalid, or backtracking without bound
    flt("add", ["14.1"], cond("user_agent", "regex", "[")), flt("add", ["14.1"], cond("user_agent", "regex", "(?P<x")),
    flt("add", ["14.1"], cond("user_agent", "regex", "a{2,1}")),
    flt("add", ["14.1"], cond("user_agent", "regex", "(a+)+$")), flt("add", ["14.1"], cond("user_agent", "regex", "(a*)*b")),
    flt("add", ["14.1"], cond("user_agent", "regex", "(a|aa)*$")), flt("add", ["14.1"], cond("user_agent", "regex", r"(.)\1")),
    flt("add", ["14.1"], cond("user_agent", "regex", r"(x)?(?(1)a|b)")),
    flt("add", ["14.1"], cond("user_agent", "regex", ".*a.*a.*b")),
    flt("add", ["14.1"], cond("user_agent", "regex", r"\w*\w*\w*!")),
    flt("add", ["14.1"], cond("user_agent", "regex", "(?=(a+)+)")),
    flt("add", ["14.1"], cond("user_agent", "regex", "((" * 200)),
]


@pytest.mark.parametrize("raw", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_filter_refused_and_nothing_stored(raw: Any) -> None:
    async def scenario() -> None:
        store = MemoryStateStore()
        await add_filter(store, flt("max", ["14.1"]), actor="test")
        before = await store.get_setting(SETTING)
        events = len(await store.events())
        with pytest.raises(FilterError):
            await add_filter(store, raw, actor="test")
        assert await store.get_setting(SETTING) == before
        assert len(await store.events()) == events

    run(scenario())


def test_accepted_regexes_stay_fast_on_hostile_subjects() -> None:
    """What validation lets through costs little on the longest subject considered."""
    patterns = ["^Apple-iPhone", "Outlook.*16", r"\w*!", "(?:ab){2}x+", "a{1,1000}b", "[a-z]+$"]
    filters = [parse_filter(flt("subtract", ["16.1"], cond("user_agent", "regex", p))) for p in patterns]
    start = time.perf_counter()
    for agent in ["a" * 5000, "ab" * 2500, "Outlook" * 700, "x" * 5000 + "!"]:
        evaluate(filters, [Version("16.1")], subject("a@b", agent, "t"))
    assert time.perf_counter() - start < 0.5


# -- the engine and the admin API ---------------------------------------------------------------

def test_engine_reads_the_setting_through_a_cache_on_its_clock() -> None:
    now = [100.0]

    async def scenario() -> None:
        store = MemoryStateStore()
        engine = VersionFilters(store, ttl=1.0, clock=lambda: now[0])
        base = [Version(v) for v in ALL]
        assert await engine(base, ALICE, "ua", "t") == tuple(base)
        await add_filter(store, flt("max", ["12.1"]), actor="test")
        now[0] += 0.5
        assert await engine(base, ALICE, "ua", "t") == tuple(base)  # still cached
        now[0] += 0.6
        assert [v.text for v in await engine(base, ALICE, "ua", "t")] == ["2.5", "12.0", "12.1"]

    run(scenario())


def test_a_stored_list_edited_by_hand_skips_what_is_invalid() -> None:
    async def scenario() -> None:
        store = MemoryStateStore()
        await store.set_setting(SETTING, [flt("max", ["14.1"], cond("user_agent", "regex", "(a+)+$")),
                                          {"action": "nonsense"}, flt("subtract", ["2.5"]), 7])
        engine = VersionFilters(store)
        got = await engine([Version(v) for v in ALL], ALICE, "a" * 300 + "!", "t")
        assert [v.text for v in got] == ALL[1:]
        await store.set_setting(SETTING, {"not": "a list"})
        assert len(await VersionFilters(store)([Version("14.1")], ALICE, "", None)) == 1

    run(scenario())


def test_admin_api_add_move_delete_are_audited() -> None:
    async def scenario() -> None:
        store = MemoryStateStore()
        await add_filter(store, flt("max", ["14.1"]), actor="cli")
        await add_filter(store, flt("add", ["2.5"], cond("domain", "exact", "example.com")), actor="cli")
        await add_filter(store, flt("fixed", ["12.1"]), position=1, actor="cli")
        assert [f.action for f in await list_filters(store)] == ["fixed", "max", "add"]
        await move_filter(store, 3, 1, actor="cli")
        assert [f.action for f in await list_filters(store)] == ["add", "fixed", "max"]
        await delete_filter(store, 2, actor="cli")
        assert [f.action for f in await list_filters(store)] == ["add", "max"]
        for bad in (lambda: delete_filter(store, 3), lambda: delete_filter(store, 0), lambda: move_filter(store, 1, 3),
                    lambda: add_filter(store, flt("max", ["14.1"]), position=4)):
            with pytest.raises(FilterError):
                await bad()
        assert [f.action for f in await list_filters(store)] == ["add", "max"]
        actions = [e.action for e in await store.events()]
        assert actions == ["versions.filter.delete", "versions.filter.move"] + ["versions.filter.add"] * 3
        assert all(e.actor == "cli" for e in await store.events())

    run(scenario())


# -- the core -----------------------------------------------------------------------------------

async def options(c: Client, user_agent: str | None) -> dict[str, str]:
    headers = [c._auth()] + ([("user-agent", user_agent)] if user_agent is not None else [])
    reply = await c.send(HTTPRequest("OPTIONS", PATH, "", headers, b"", "127.0.0.1"))
    assert reply.status == 200
    return reply.headers


def test_options_shaped_by_user_agent_and_account(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)

    async def scenario() -> None:
        await add_filter(app.store, flt("subtract", ["16.0", "16.1"], cond("user_agent", "contains", "Outlook")))
        await add_filter(app.store, flt("max", ["12.1"], cond("device_type", "exact", "TestPhone")))
        c = client(app)
        plain = await options(c, "eas-testing/1.0")
        assert plain["ms-asprotocolversions"] == ",".join(ALL)  # the device-type filter is not seen on OPTIONS
        assert "Find" in plain["ms-asprotocolcommands"].split(",")
        outlook = await options(c, "Microsoft Outlook/16.0")
        assert outlook["ms-asprotocolversions"] == "2.5,12.0,12.1,14.0,14.1"
        commands = outlook["ms-asprotocolcommands"].split(",")
        assert "Find" not in commands and "Sync" in commands and "Settings" in commands
        app.versions = VersionFilters(app.store, ttl=0)  # sees the next change at once
        await add_filter(app.store, flt("fixed", ["2.5"], cond("account", "exact", ALICE)), position=1)
        legacy = (await options(c, None))["ms-asprotocolcommands"].split(",")
        assert (await options(c, None))["ms-asprotocolversions"] == "2.5"
        assert "Settings" not in legacy and "ItemOperations" not in legacy and "GetAttachment" in legacy

    run(scenario())


def test_a_request_in_a_removed_version_is_refused_as_one_not_offered(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path / "filtered")
    unoffered, _ = make_app(tmp_path / "plain", config=Config(versions=tuple(Version(v) for v in ALL[:5])))

    async def scenario() -> None:
        await add_filter(app.store, flt("subtract", ["16.0", "16.1"], cond("device_type", "exact", "TestPhone")))
        expected = await client(unoffered, version="16.1").command("FolderSync", FOLDERSYNC)
        assert expected.status == 400
        refused = await client(app, version="16.1").command("FolderSync", FOLDERSYNC)
        assert (refused.status, refused.body) == (expected.status, expected.body)
        again = await client(app, version="16.0").command("Sync", '<Sync xmlns="AirSync:"/>')
        assert again.status == expected.status
        assert (await client(app, version="16.1").command("FolderSync", FOLDERSYNC)).status == expected.status
        assert await app.store.get_device(ALICE, "TestDevice0001") is None  # refused before the device registry
        events = await app.store.events(user=ALICE)
        # once per device and version: a device retrying does not flood the trail
        assert sorted((e.action, e.device_id, e.detail.split()[0]) for e in events) == [
            ("versions.refused", "TestDevice0001", "16.0"), ("versions.refused", "TestDevice0001", "16.1")]
        ok = await client(app, version="14.1").command("FolderSync", FOLDERSYNC)
        assert ok.status == 200
        other = await client(app, version="16.1", device_type="iPhone", device_id="Other").command("FolderSync",
                                                                                                    FOLDERSYNC)
        assert other.status == 200

    run(scenario())


def test_an_added_version_the_server_does_not_offer_is_usable(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path, config=Config(versions=(Version("14.1"), Version("16.1"))))

    async def scenario() -> None:
        assert (await client(app, version="12.1").command("FolderSync", FOLDERSYNC)).status == 400
        app.versions = VersionFilters(app.store, ttl=0)
        await add_filter(app.store, flt("add", ["12.1"], cond("domain", "exact", "example.com")))
        assert (await options(client(app), "x"))["ms-asprotocolversions"] == "12.1,14.1,16.1"
        past = await client(app, version="12.1").command("FolderSync", FOLDERSYNC)
        assert past.status == 449  # past the version gate: a 12.1 device is asked to provision first

    run(scenario())


# -- end to end ---------------------------------------------------------------------------------

def test_options_shaped_over_http_by_eas_filter_while_serving(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert eas("user", "add", ALICE, "--password", "pw", data_dir=data).returncode == 0
    with serving(data, "--no-tls") as server:
        c = Client(HTTPTransport(f"http://127.0.0.1:{server.port}"), ALICE, "pw", user_agent="Outlook/16.0")

        async def versions_eventually(expected: str, seconds: float = 3.0) -> None:
            deadline = time.monotonic() + seconds
            while True:
                got = (await options(c, "Outlook/16.0"))["ms-asprotocolversions"]
                if got == expected:
                    return
                assert time.monotonic() < deadline, f"OPTIONS still offers {got}, not {expected}"
                await asyncio.sleep(0.1)

        async def scenario() -> None:
            await versions_eventually(",".join(ALL))
            r = eas("filter", "add", "max", "14.1", "--when", "user_agent", "contains", "outlook", "--block",
                    data_dir=data)
            assert r.returncode == 0, r.stderr
            r = eas("filter", "add", "fixed", "2.5", data_dir=data)
            assert r.returncode == 0, r.stderr
            await versions_eventually("2.5,12.0,12.1,14.0,14.1")
            c.version = "16.1"
            assert (await c.command("FolderSync", FOLDERSYNC)).status == 400
            c.version = "14.1"
            assert (await c.command("FolderSync", FOLDERSYNC)).status == 200
            r = eas("filter", "add", "add", "14.1", "--when", "user_agent", "regex", "(a+)+$", data_dir=data)
            assert r.returncode == 2 and b"refused" in r.stderr
            r = eas("filter", "list", data_dir=data)
            assert r.stdout.decode().splitlines() == ["1. when user_agent contains 'outlook': max 14.1 [block]",
                                                      "2. when always: fixed 2.5"]
            assert eas("filter", "move", "2", "1", data_dir=data).returncode == 0
            await versions_eventually("2.5")
            assert eas("filter", "delete", "1", data_dir=data).returncode == 0
            assert eas("filter", "delete", "1", data_dir=data).returncode == 0
            assert eas("filter", "delete", "1", data_dir=data).returncode == 2
            await versions_eventually(",".join(ALL))

        run(scenario())
