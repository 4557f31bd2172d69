"""``eas abq`` as a real process on a data dir: every verb, bad input exiting 2 with one
line and storing nothing, import all or nothing, the audit trail (actor cli); and a
running ``eas serve`` meeting a change at once (its held Ping ended, the device refused)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from eas.state.model import DeviceRecord
from eas.state.sqlite import SQLiteStateStore
from eas.tags import FolderHierarchy as FH
from eas.testing.client import Client
from tests.test_cli_server import eas, http, serving

pytestmark = pytest.mark.kernel_independent

A = "alice@example.com"
FOLDERSYNC = '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>'


def state(data: Path) -> tuple[dict[str, Any], list[tuple[str, str, str, str]]]:
    """The abq settings and the audit trail (oldest first) of a data dir."""
    async def read() -> tuple[dict[str, Any], list[tuple[str, str, str, str]]]:
        store = SQLiteStateStore(data / "state.db")
        try:
            events = await store.events(limit=10000)
            return (await store.settings("abq."),
                    [(e.action, e.actor, e.user, e.device_id) for e in reversed(events)])
        finally:
            await store.close()
    return asyncio.run(read())


def add_device(data: Path, record: DeviceRecord) -> None:
    async def write() -> None:
        store = SQLiteStateStore(data / "state.db")
        try:
            await store.commit(record, {})
        finally:
            await store.close()
    asyncio.run(write())


def ok(*args: str, data: Path, stdin: bytes = b"") -> str:
    r = eas("abq", *args, data_dir=data, stdin=stdin)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout.decode()


def refused(*args: str, data: Path, message: bytes, stdin: bytes = b"") -> None:
    """Exit 2, one line on stderr naming the fault, nothing stored or audited."""
    before = state(data)
    r = eas("abq", *args, data_dir=data, stdin=stdin)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert message in r.stderr and r.stderr.count(b"\n") == 1, (args, r.stderr)
    assert state(data) == before


def test_every_verb(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    add_device(data, DeviceRecord(A, "OldPhone", device_type="iPhone", access="allowed", access_reason="global"))
    add_device(data, DeviceRecord("bob@example.com", "Gone", access="blocked", access_reason="rule"))
    assert ok("mode", data=data).strip() == "permissive"
    assert "1 devices grandfathered" in ok("mode", "interactive", data=data)
    assert ok("mode", data=data).strip() == "interactive"
    assert ok("mode", "permissive", data=data).strip() == "mode permissive"
    assert ok("mode", "strict", "--no-grandfather", data=data).strip() == "mode strict"
    ok("allow", "Dev1", data=data)
    ok("block", "Dev2", "Bob@Example.com", "--note", "stolen", data=data)
    ok("set", "Dev3", "quarantined", data=data)
    ok("set", "Dev3", "allowed", A, data=data)
    ok("delete", "OldPhone", A, data=data)
    assert ok("rule", "add", "block", "model", "^SM-", "--regex", "--domain", "example.com", data=data).strip() == \
        "rule 1: block model ~ ^SM- [example.com]"
    ok("rule", "add", "allow", "device_type", "iPhone", data=data)
    assert ok("rule", "list", data=data).splitlines() == ["rule 1: block model ~ ^SM- [example.com]",
                                                         "rule 2: allow device_type = iPhone"]
    ok("rule", "delete", "1", data=data)
    listed = ok("list", data=data)
    for line in ("mode: strict", "Dev1 (every account) allowed", "Dev2 bob@example.com blocked - stolen",
                 "Dev3 (every account) quarantined", f"Dev3 {A} allowed", "rule 2: allow device_type = iPhone",
                 f"{A} OldPhone iPhone -: allowed (global)", "bob@example.com Gone - -: blocked (rule)"):
        assert line in listed, (line, listed)
    assert "OldPhone alice" not in listed  # its grandfathered entry was deleted
    settings, events = state(data)
    assert settings["abq.mode"] == "strict" and [r["id"] for r in settings["abq.rules"]] == [2]
    assert [(e[0], e[2], e[3]) for e in events if e[0] != "abq.mode"] == [
        ("abq.device.allowed", A, "OldPhone"), ("abq.device.allowed", "", "Dev1"),
        ("abq.device.blocked", "bob@example.com", "Dev2"), ("abq.device.quarantined", "", "Dev3"),
        ("abq.device.allowed", A, "Dev3"), ("abq.device.delete", A, "OldPhone"), ("abq.rule.add", "", ""),
        ("abq.rule.add", "", ""), ("abq.rule.delete", "", "")]
    assert {e[1] for e in events} == {"cli"}
    # Notice texts (eas.access.quarantine) and the notifier's interval.
    ok("message", "set", "--domain", "example.com", "--subject", "Hold on", "Your {device_type} waits", data=data)
    shown = ok("message", "get", "--domain", "Example.com", data=data)
    assert "Subject: Hold on" in shown and "Your {device_type} waits" in shown
    text = tmp_path / "blocked.txt"
    text.write_text("Blocked: ask the help desk.\n", encoding="utf-8")
    ok("message", "set", "--state", "blocked", "--language", "de", "--file", str(text), data=data)
    assert "ask the help desk" in ok("message", "get", "--state", "blocked", "--language", "de-AT", data=data)
    ok("message", "delete", "--domain", "example.com", data=data)
    assert "Your {device_type} waits" not in ok("message", "get", "--domain", "example.com", data=data)
    assert ok("notify-interval", "30", data=data).strip() == "notifier.interval 30 minutes"
    assert ok("notify-interval", data=data).strip() == "30"
    assert ok("notify-interval", "0", data=data).strip() == "notifier.interval 0 (notices off)"


def test_bad_input_exits_2_and_stores_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    ok("allow", "Dev1", data=data)
    ok("rule", "add", "block", "os", "Android 9", data=data)
    refused("mode", "paranoid", data=data, message=b"invalid choice")
    refused("allow", "dev 1", data=data, message=b"not a device id")
    refused("allow", "x" * 65, data=data, message=b"not a device id")
    refused("block", "Dev1", "nobody", data=data, message=b"an account is user@domain")
    refused("block", "Dev1", "@example.com", data=data, message=b"an account is user@domain")
    refused("set", "Dev1", "quarantined", A, data=data, message=b"a personal entry is allowed or blocked")
    refused("set", "Dev1", "wiped", data=data, message=b"invalid choice")
    refused("allow", "Dev1", "--note", "two\nlines", data=data, message=b"a note must be printable")
    refused("delete", "Dev9", data=data, message=b"no entry for Dev9")
    refused("delete", "Dev1", A, data=data, message=b"no entry for Dev1")
    refused("rule", "add", "block", "model", "(a+)+", "--regex", data=data, message=b"a repeat inside a repeat")
    refused("rule", "add", "block", "model", "[", "--regex", data=data, message=b"invalid regular expression")
    refused("rule", "add", "deny", "model", "x", data=data, message=b"invalid choice")
    refused("rule", "add", "block", "imei", "x", data=data, message=b"invalid choice")
    refused("rule", "add", "block", "model", "x" * 201, data=data, message=b"printable text of 1 to 200")
    refused("rule", "add", "block", "model", "x", "--domain", "a b", data=data, message=b"not a valid domain")
    refused("rule", "delete", "7", data=data, message=b"no rule 7")
    refused("rule", "delete", "one", data=data, message=b"invalid int value")
    refused("message", "set", "--subject", "s", data=data, message=b"TEXT or --file")
    refused("message", "set", "--language", "not a language", "hello", data=data, message=b"language")
    refused("message", "delete", "--domain", "nowhere.example", data=data, message=b"no quarantined message")
    refused("notify-interval", "-5", data=data, message=b"notifier.interval")
    assert [(e["device_id"], e["state"]) for e in state(data)[0]["abq.devices"]] == [("Dev1", "allowed")]


def test_import_all_or_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    good = tmp_path / "devices.txt"
    good.write_text("# the old server's list\nDevA\nDevB bob@example.com  # his phone\n\nDevC\n", encoding="utf-8")
    assert ok("import", str(good), "blocked", data=data).strip() == "3 entries blocked"
    assert ok("import", "-", "allowed", data=data, stdin=b"DevD\nDevA\n").strip() == "2 entries allowed"
    entries = [(e["device_id"], e["user"], e["state"]) for e in state(data)[0]["abq.devices"]]
    assert entries == [("DevB", "bob@example.com", "blocked"), ("DevC", "", "blocked"), ("DevD", "", "allowed"),
                       ("DevA", "", "allowed")]
    bad = tmp_path / "bad.txt"
    bad.write_text("DevE\nDevF carol@example.com\nDevG carol@example.com again\n", encoding="utf-8")
    refused("import", str(bad), "allowed", data=data, message=b"line 3: expected DEVICEID or DEVICEID USER")
    bad.write_text("DevE\nDevF carol@example.com\n", encoding="utf-8")
    refused("import", str(bad), "quarantined", data=data, message=b"line 2: a personal entry")
    bad.write_bytes(b"DevE\n\xff\xfe\n")
    refused("import", str(bad), "allowed", data=data, message=b"not UTF-8")
    refused("import", str(good), "maybe", data=data, message=b"invalid choice")
    r = eas("abq", "import", str(tmp_path / "missing.txt"), "allowed", data_dir=data)
    assert r.returncode == 1 and b"missing.txt" in r.stderr


def test_a_running_server_meets_the_change_at_once(tmp_path: Path) -> None:
    """A device's held Ping ends as soon as ``eas abq block`` runs in another process;
    its next request is refused (status 129, the notice mailbox turned off); ``eas abq
    allow`` lets it back; strict mode refuses a new device."""
    data = tmp_path / "data"
    assert eas("user", "add", A, "--password", "pw", data_dir=data).returncode == 0
    assert eas("config", "set", "abq.blocked_notice", "false", data_dir=data).returncode == 0
    with serving(data, "--no-tls") as server:
        async def scenario() -> None:
            c = Client(http(server.port), A, "pw", device_id="AlicePhone", version="14.1")
            await c.provision()
            r = await c.command("FolderSync", FOLDERSYNC)
            assert r.node is not None and r.text(FH.Status) == "1"
            changes = r.node.find(FH.Changes)
            assert changes is not None
            deleted = next(a.findtext(FH.ServerId) for a in changes.findall(FH.Add) if a.findtext(FH.Type) == "4")
            held = asyncio.ensure_future(c.command(
                "Ping", '<Ping xmlns="Ping:"><HeartbeatInterval>300</HeartbeatInterval><Folders><Folder>'
                        f'<Id>{deleted}</Id><Class>Email</Class></Folder></Folders></Ping>'))
            await asyncio.sleep(1.0)
            assert not held.done()
            started = time.monotonic()
            r2 = await asyncio.to_thread(eas, "abq", "block", "AlicePhone", A, data_dir=data)
            assert r2.returncode == 0, r2.stderr
            answer = await asyncio.wait_for(held, 10)
            assert time.monotonic() - started < 5 and answer.status == 200
            await asyncio.sleep(1.1)  # the engine's settings cache

            assert (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "129"
            r3 = await asyncio.to_thread(eas, "abq", "allow", "AlicePhone", A, data_dir=data)
            assert r3.returncode == 0
            await asyncio.sleep(1.1)
            back = await c.command("FolderSync", FOLDERSYNC)
            assert back.text(FH.Status) == "1", back.xml
            r4 = await asyncio.to_thread(eas, "abq", "mode", "strict", data_dir=data)
            assert r4.returncode == 0 and b"grandfathered" not in r4.stdout  # already allowed by an entry
            await asyncio.sleep(1.1)
            other = Client(http(server.port), A, "pw", device_id="Stranger", version="12.1")
            assert (await other.command("FolderSync", FOLDERSYNC)).status == 403
            assert (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "1"

        asyncio.run(scenario())
    assert server.process.returncode == 0, server.stderr
