"""``eas service list|start|stop|restart`` as processes (``eas.cli.service``) over a real
data dir, and against a running ``eas serve``: restart notifier makes it send the pending
quarantine notice at once, over real SMTP to ``SMTPSink``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from test_cli_server import eas, serving
from test_notifier import SMTPSink, listed, quarantine

from eas.access.notifier import Notifier
from eas.state.sqlite import SQLiteStateStore

pytestmark = pytest.mark.kernel_independent  # no WBXML here: one pass is enough

SETTINGS = {"abq": "service.abq", "anti-dos": "jail.enabled", "notifier": "service.notifier"}


def get(data: Path, name: str) -> bytes:
    r = eas("config", "get", name, data_dir=data)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def audit(data: Path) -> list[tuple[str, str, str]]:
    async def read() -> list[tuple[str, str, str]]:
        store = SQLiteStateStore(data / "state.db")
        try:
            return [(e.action, e.actor, e.detail) for e in reversed(await store.events(limit=1000))]
        finally:
            await store.close()

    return asyncio.run(read())


def test_start_and_stop_set_each_service_audited(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for name, setting in SETTINGS.items():
        r = eas("service", "stop", name, data_dir=data)
        assert (r.returncode, r.stdout) == (0, f"{name}: stopped ({setting} = false)\n".encode())
        assert get(data, setting) == b"false"
        listed_ = eas("service", "list", data_dir=data).stdout.decode()
        assert f"{name}: disabled (no server running): " in listed_
        r = eas("service", "start", name, data_dir=data)
        assert (r.returncode, r.stdout) == (0, f"{name}: started ({setting} = true)\n".encode())
        assert get(data, setting) == b"true"
        assert f"{name}: enabled (no server running): " in eas("service", "list", data_dir=data).stdout.decode()
    assert audit(data) == [("setting.set", "cli", f"{setting}={value}") for setting in SETTINGS.values()
                           for value in ("false", "true")]


def test_list_shows_abq_mode_and_devices_and_the_notifiers_state(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for name, value in (("abq.mode", "strict"), ("notifier.interval", "30"),
                        ("notifier.recipients", '["admin@example.com", "ops@example.org"]')):
        assert eas("config", "set", name, value, data_dir=data).returncode == 0
    now = time.time()
    with SMTPSink() as sink:
        async def devices() -> None:
            store = SQLiteStateStore(data / "state.db")
            for device_id, access in (("Q1", "quarantined"), ("Q2", "quarantined"), ("D1", "discovery"),
                                      ("B1", "blocked"), ("A1", "allowed")):
                await quarantine(store, "alice@example.com", device_id, now, access=access)
            await store.close()

        asyncio.run(devices())
        out = eas("service", "list", data_dir=data).stdout.decode()
        assert "abq: enabled (no server running): mode strict; 2 devices quarantined, 1 in discovery, 1 blocked" in out
        assert ("notifier: enabled (no server running): quarantine notices every 30 min, jail alerts; "
                "to admin@example.com, ops@example.org via localhost:25 (none); last notice never") in out

        async def notice() -> None:
            store = SQLiteStateStore(data / "state.db")
            for name, value in (("smtp_host", "127.0.0.1"), ("smtp_port", sink.port)):
                await store.set_setting(f"notifier.{name}", value)
            await Notifier(store, clock=lambda: now).tick()
            await store.close()

        asyncio.run(notice())
        assert [listed(m) for m in sink.messages] == [["D1", "Q1", "Q2"]]
    out = eas("service", "list", data_dir=data).stdout.decode()
    assert f"last notice {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(now))}" in out
    r = eas("config", "set", "notifier.interval", "0", data_dir=data)
    assert r.returncode == 0
    assert "notifier: enabled (no server running): no quarantine notices (interval 0)" in \
        eas("service", "list", data_dir=data).stdout.decode()


@pytest.mark.parametrize("args", [("start", "nonesuch"), ("stop", "ABQ"), ("restart", "abq\n--x"),
                                  ("stop", "x" * 5000), ("start",), ("reload", "abq")])
def test_bad_input_exits_2_and_stores_nothing(tmp_path: Path, args: tuple[str, ...]) -> None:
    data = tmp_path / "data"
    r = eas("service", *args, data_dir=data)
    assert r.returncode == 2 and r.stdout == b"" and len(r.stderr.splitlines()) == 1, r
    if len(args) == 2 and args[0] != "reload":
        assert b"unknown service" in r.stderr and b"known: abq, anti-dos, notifier" in r.stderr
        assert len(r.stderr) < 300
    assert not (data / "state.db").exists() or audit(data) == []


def test_restart_notifier_makes_a_running_server_send_the_pending_notice(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with SMTPSink() as sink, serving(data, "--no-tls") as server:
        r = eas("service", "restart", "notifier", data_dir=data)
        assert (r.returncode, r.stdout) == (0, b"notifier: restarted, a round of notices runs now\n")
        time.sleep(0.5)
        assert sink.received == []  # nobody to mail yet
        for name, value in (("smtp_host", "127.0.0.1"), ("smtp_port", str(sink.port)), ("interval", "60"),
                            ("recipients", "admin@example.com"), ("from", "eas@mail.example.com")):
            r = eas("config", "set", f"notifier.{name}", value, data_dir=data)
            assert r.returncode == 0, r.stderr

        async def add(device_id: str) -> None:
            store = SQLiteStateStore(data / "state.db")
            await quarantine(store, "alice@example.com", device_id, time.time())
            await store.close()

        asyncio.run(add("PHONE1"))
        started = time.monotonic()
        r = eas("service", "restart", "notifier", data_dir=data)
        assert r.returncode == 0
        (message,) = sink.wait(1, timeout=10)
        assert time.monotonic() - started < 10  # not the next minute's round
        assert listed(message) == ["PHONE1"] and message["To"] == "admin@example.com"
        # stopped: a restart runs no round
        assert eas("service", "stop", "notifier", data_dir=data).returncode == 0
        asyncio.run(add("PHONE2"))
        assert eas("service", "restart", "notifier", data_dir=data).returncode == 0
        time.sleep(1)
        assert len(sink.received) == 1
        r = eas("service", "restart", "abq", data_dir=data)
        assert (r.returncode, r.stdout) == (0, b"abq: restarted, its settings are read again\n")
        listed_ = eas("service", "list", data_dir=data).stdout.decode()
        assert "notifier: disabled: " in listed_ and "abq: enabled: " in listed_
        time.sleep(0.3)
    assert b"notifier restarted: a round of notices runs now" in server.stderr
    assert b"abq restarted" in server.stderr
    # the server may send before the command has written its own event: compared unordered
    assert sorted(a for a in audit(data) if a[0] in ("service.restart", "notifier.sent")) == sorted([
        ("service.restart", "cli", "notifier"), ("service.restart", "cli", "notifier"),
        ("notifier.sent", "notifier", "quarantine notice of 1 device to admin@example.com"),
        ("service.restart", "cli", "notifier"), ("service.restart", "cli", "abq")])
