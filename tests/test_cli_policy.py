"""``eas policy``: set, clear, show and elements against a data dir (audited as actor
``cli``, bad names and values exit 2 and store nothing), and a change reaching a running
``eas serve``: the devices it applies to are asked to provision again (143), the others not."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from eas import policy
from eas.state.sqlite import SQLiteStateStore
from eas.tags import FolderHierarchy as FH
from eas.tags import Provision as P
from eas.testing.client import Client, HTTPTransport
from tests.test_cli_server import eas, serving
from tests.test_ipallow import until

pytestmark = pytest.mark.kernel_independent

A, B = "alice@example.com", "bob@example.com"
FOLDERSYNC = '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>'


def state(data: Path) -> tuple[dict[str, Any], list[tuple[str, str, str, str]]]:
    """The stored policy levels and the audit trail (oldest first) of a data dir."""
    async def read() -> tuple[dict[str, Any], list[tuple[str, str, str, str]]]:
        store = SQLiteStateStore(data / "state.db")
        try:
            events = await store.events(limit=1000)
            return (await store.settings("policy."),
                    [(e.action, e.actor, e.user, e.detail) for e in reversed(events) if e.action.startswith("policy.")])
        finally:
            await store.close()
    return asyncio.run(read())


def test_set_show_clear_and_audit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert eas("policy", "show", data_dir=data).stdout.strip() == b"no policies set: every device gets the default policy"
    assert eas("policy", "set", "global", "devicepasswordenabled=yes", "MinDevicePasswordLength=4",
               "allow_partial=false", data_dir=data).returncode == 0
    assert eas("policy", "set", "group", "Board", "MinDevicePasswordLength=10", "MaxAttachmentSize=",
               "ApprovedApplicationList=" + "a" * 40 + "," + "b" * 40, data_dir=data).returncode == 0
    assert eas("access", "group", "add", "board", A, data_dir=data).returncode == 0
    done = eas("policy", "set", "user", "Alice@Example.com", "AllowCamera=0", "allow_partial=on", data_dir=data)
    assert done.returncode == 0 and done.stdout.strip() == b"user alice@example.com: AllowCamera=0 allow_partial=true"
    levels, events = state(data)
    assert levels == {
        "policy.global": {"DevicePasswordEnabled": 1, "MinDevicePasswordLength": 4, "allow_partial": False},
        "policy.group:board": {"ApprovedApplicationList": ["a" * 40, "b" * 40], "MaxAttachmentSize": None,
                               "MinDevicePasswordLength": 10},
        "policy.user:" + A: {"AllowCamera": 0, "allow_partial": True},
    }
    assert [(action, actor, user) for action, actor, user, _ in events] == [
        ("policy.set", "cli", ""), ("policy.set", "cli", ""), ("policy.set", "cli", A)]

    shown = eas("policy", "show", A, data_dir=data)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.decode().splitlines()
    assert lines[0].startswith(f"{A}: user {A} (AllowCamera, allow_partial); group board (")
    assert "  MinDevicePasswordLength = 10  (group board)" in lines
    assert "  DevicePasswordEnabled = 1  (global)" in lines
    assert "  AllowCamera = 0  (user alice@example.com)" in lines
    assert "  MaxAttachmentSize = (empty)  (group board)" in lines
    assert "  allow_partial = true  (user alice@example.com)" in lines
    assert "  AllowWiFi = 1  (default)" in lines
    assert len([line for line in lines if " = " in line]) == len(policy.ELEMENTS) + 4
    bob = eas("policy", "show", B, data_dir=data).stdout.decode().splitlines()
    assert "  MinDevicePasswordLength = 4  (global)" in bob and "  allow_partial = false  (global)" in bob
    listed = eas("policy", "show", data_dir=data).stdout.decode().splitlines()
    assert listed == ["global: DevicePasswordEnabled=1 MinDevicePasswordLength=4 allow_partial=false",
                      f"group board: ApprovedApplicationList={['a' * 40, 'b' * 40]!r}".replace("'", '"')
                      + " MaxAttachmentSize=null MinDevicePasswordLength=10",
                      f"user {A}: AllowCamera=0 allow_partial=true"]

    assert eas("policy", "clear", "group", "board", "maxattachmentsize", "ApprovedApplicationList",
               data_dir=data).returncode == 0
    assert eas("policy", "clear", "user", A, data_dir=data).stdout.strip() == f"user {A}: nothing set".encode()
    levels, events = state(data)
    assert levels == {"policy.global": {"DevicePasswordEnabled": 1, "MinDevicePasswordLength": 4, "allow_partial": False},
                      "policy.group:board": {"MinDevicePasswordLength": 10}}
    assert [(action, user, detail) for action, _, user, detail in events[3:]] == [
        ("policy.clear", "", "group board: MaxAttachmentSize, ApprovedApplicationList"),
        ("policy.clear", A, f"user {A}: (the whole level)")]


BAD: list[tuple[tuple[str, ...], bytes]] = [
    (("set", "global", "Teleport=1"), b"unknown policy element 'Teleport'"),
    (("set", "global", "AllowCamera"), b"expected ELEMENT=VALUE"),
    (("set", "global", "AllowCamera=2"), b"AllowCamera is true or false"),
    (("set", "global", "MinDevicePasswordLength=17"), b"within 1..16"),
    (("set", "global", "MinDevicePasswordLength=six"), b"is an integer"),
    (("set", "global", "MaxCalendarAgeFilter=3"), b"must be one of"),
    (("set", "global", "MaxAttachmentSize=" + "9" * 400), b"MaxAttachmentSize"),
    (("set", "global", "allow_partial=maybe"), b"allow_partial is true or false"),
    (("set", "global", "UnapprovedInROMApplicationList=a,,b"), b"not a non-empty string"),
    (("set", "global", "ApprovedApplicationList=" + ",".join(["h"] * 1001)), b"more than 1000"),
    (("set", "user", "@example.com", "AllowCamera=0"), b"names an account"),
    (("set", "user", "nobody", "AllowCamera=0"), b"a member is an account"),
    (("set", "user", "a\nb@example.com", "AllowCamera=0"), b"not a valid member"),
    (("set", "user", "x" * 300 + "@example.com", "AllowCamera=0"), b"not a valid member"),
    (("set", "group", "\u202eevil", "AllowCamera=0"), b"not a valid group name"),
    (("set", "group", "", "AllowCamera=0"), b"not a valid group name"),
    (("clear", "group", "board", "Teleport"), b"unknown policy element"),
    (("show", "@example.com"), b"names an account"),
    (("show", "bad account"), b"not a valid member"),
]


@pytest.mark.parametrize(("args", "message"), BAD)
def test_bad_input_exits_2_and_stores_nothing(tmp_path: Path, args: tuple[str, ...], message: bytes) -> None:
    data = tmp_path / "data"
    assert eas("policy", "set", "group", "board", "AllowCamera=0", data_dir=data).returncode == 0
    before = state(data)
    bad = eas("policy", *args, data_dir=data)
    assert bad.returncode == 2, bad
    assert message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert state(data) == before


def test_elements_lists_every_element_with_its_versions_and_default(tmp_path: Path) -> None:
    out = eas("policy", "elements", data_dir=tmp_path / "data")
    assert out.returncode == 0
    lines = out.stdout.decode().splitlines()
    assert len(lines) == len(policy.ELEMENTS) + 4
    assert lines[0] == "DevicePasswordEnabled  boolean 0|1  12.0+  default 0  (MS-ASPROV 2.2.2.25)"
    assert "MinDevicePasswordLength  unsigned 1..16 or empty  12.0+  default (empty)  (MS-ASPROV 2.2.2.38)" in lines
    assert "AllowCamera  boolean 0|1  12.1+  default 1  (MS-ASPROV 2.2.2.4)" in lines
    assert "MaxCalendarAgeFilter  unsigned 0|4|5|6|7  12.1+  default 0  (MS-ASPROV 2.2.2.31)" in lines
    assert "allow_non_provisionable  engine true|false  default false" in lines


def test_a_change_reaches_a_running_server(tmp_path: Path) -> None:
    """14.1 devices: a group policy asks its member's device to re-provision (143) and
    not the other's; the new EASProvisionDoc carries it; a user's change likewise."""
    data = tmp_path / "data"
    for user in (A, B):
        assert eas("user", "add", user, "--password", "pw", data_dir=data).returncode == 0
    assert eas("access", "group", "add", "board", A, data_dir=data).returncode == 0
    with serving(data, "--no-tls") as server:
        transport = HTTPTransport(f"http://127.0.0.1:{server.port}")
        alice, bob = Client(transport, A, "pw", version="14.1"), Client(transport, B, "pw", version="14.1")

        def status(c: Client) -> str | None:
            async def check() -> str | None:
                return (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status)
            return asyncio.run(check())

        def becomes(c: Client, expected: str) -> bool:
            async def check() -> bool:
                return (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status) == expected
            return until(check)

        for c in (alice, bob):
            asyncio.run(c.provision())
            assert status(c) == "1"
        assert eas("policy", "set", "group", "board", "MinDevicePasswordLength=12", "DevicePasswordEnabled=1",
                   data_dir=data).returncode == 0
        assert becomes(alice, "143")
        assert status(bob) == "1"

        async def doc_after_reprovisioning(c: Client) -> str | None:
            c.policy_key = None
            first = await c.command("Provision", '<Provision xmlns="Provision:"><Policies><Policy><PolicyType>'
                                                 "MS-EAS-Provisioning-WBXML</PolicyType></Policy></Policies>"
                                                 "</Provision>")
            await c.provision()
            return first.text(P.Policies, P.Policy, P.Data, P.EASProvisionDoc, P.MinDevicePasswordLength)

        assert asyncio.run(doc_after_reprovisioning(alice)) == "12"
        assert status(alice) == "1"
        assert eas("policy", "set", "user", B, "AllowCamera=0", data_dir=data).returncode == 0
        assert becomes(bob, "143")
        assert status(alice) == "1"
        assert eas("policy", "set", "user", A, "Nonsense=1", data_dir=data).returncode == 2
        assert status(alice) == "1"
    assert server.process.returncode == 0, server.stderr


def test_a_users_change_ends_the_users_waiting_ping(tmp_path: Path) -> None:
    """The user's held Ping is answered at once (not at its heartbeat), so the device
    meets the new policy (143) on its next command; a group change reaches the Pings of
    its members only, a global change everyone's."""
    data = tmp_path / "data"
    assert eas("user", "add", A, "--password", "pw", data_dir=data).returncode == 0
    with serving(data, "--no-tls") as server:
        async def scenario() -> None:
            c = Client(HTTPTransport(f"http://127.0.0.1:{server.port}"), A, "pw", device_id="AlicePhone",
                       version="14.1")
            await c.provision()
            r = await c.command("FolderSync", FOLDERSYNC)
            assert r.node is not None and r.text(FH.Status) == "1"
            changes = r.node.find(FH.Changes)
            assert changes is not None
            inbox = next(a.findtext(FH.ServerId) for a in changes.findall(FH.Add) if a.findtext(FH.Type) == "2")

            def ping() -> asyncio.Future[Any]:
                return asyncio.ensure_future(c.command(
                    "Ping", '<Ping xmlns="Ping:"><HeartbeatInterval>300</HeartbeatInterval><Folders><Folder>'
                            f"<Id>{inbox}</Id><Class>Email</Class></Folder></Folders></Ping>"))

            held = ping()
            await asyncio.sleep(1.0)
            done = await asyncio.to_thread(eas, "policy", "set", "group", "staff", "AllowCamera=0", data_dir=data)
            assert done.returncode == 0
            await asyncio.sleep(1.0)
            assert not held.done()  # alice is in no group: nothing reaches her
            started = time.monotonic()
            done = await asyncio.to_thread(eas, "policy", "set", "user", A, "AllowCamera=0", data_dir=data)
            assert done.returncode == 0, done.stderr
            answer = await asyncio.wait_for(held, 10)
            assert time.monotonic() - started < 5 and answer.status == 200
            await asyncio.sleep(1.1)  # the engine's settings cache
            assert (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "143"
            # Once alice is in the group, its change reaches her Ping; a global one too.
            await c.provision()
            joined = await asyncio.to_thread(eas, "access", "group", "add", "staff", A, data_dir=data)
            assert joined.returncode == 0, joined.stderr
            for change in (("group", "staff", "AllowWiFi=0"), ("global", "AllowIrDA=0")):
                held = ping()
                await asyncio.sleep(1.0)
                assert not held.done()
                started = time.monotonic()
                done = await asyncio.to_thread(eas, "policy", "set", *change, data_dir=data)
                assert done.returncode == 0, done.stderr
                answer = await asyncio.wait_for(held, 10)
                assert time.monotonic() - started < 5 and answer.status == 200, change
                await asyncio.sleep(1.1)
                assert (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "143", change
                await c.provision()

        asyncio.run(scenario())
    assert server.process.returncode == 0, server.stderr


def test_an_invalid_stored_level_is_reported_and_can_be_cleared(tmp_path: Path) -> None:
    """A level written past the checks: ``show`` says what is wrong (exit 1), ``set`` on
    it is refused, ``clear`` removes it."""
    data = tmp_path / "data"
    assert eas("policy", "set", "global", "AllowCamera=0", data_dir=data).returncode == 0

    async def corrupt() -> None:
        store = SQLiteStateStore(data / "state.db")
        try:
            await store.set_setting("policy.user:" + A, {"AllowCamera": "maybe"})
        finally:
            await store.close()

    asyncio.run(corrupt())
    shown = eas("policy", "show", A, data_dir=data)
    assert shown.returncode == 1 and b"policy.user:alice@example.com" in shown.stderr
    assert eas("policy", "show", B, data_dir=data).returncode == 0  # other accounts are fine
    refused = eas("policy", "set", "user", A, "AllowWiFi=0", data_dir=data)
    assert refused.returncode == 2 and b"AllowCamera must be a boolean" in refused.stderr
    assert eas("policy", "clear", "user", A, data_dir=data).returncode == 0
    shown = eas("policy", "show", A, data_dir=data)
    assert shown.returncode == 0 and b"  AllowCamera = 0  (global)" in shown.stdout
