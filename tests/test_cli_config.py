"""``eas config get|set|clear|list`` as a real process: values checked against the
settings the engines register, bad input refused with exit 2 and nothing stored, every
change in the audit trail as actor ``cli``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from eas.access import known_settings
from eas.state.model import AuditEvent
from eas.state.sqlite import SQLiteStateStore
from tests.test_cli_server import eas

pytestmark = pytest.mark.kernel_independent


def stored(data: Path) -> tuple[dict[str, Any], list[AuditEvent]]:
    """What the data dir's state store holds: settings and audit events."""

    async def read() -> tuple[dict[str, Any], list[AuditEvent]]:
        store = SQLiteStateStore(data / "state.db")
        try:
            return await store.settings(), await store.events()
        finally:
            await store.close()

    return asyncio.run(read())


def test_set_get_clear_list(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = eas("config", "list", data_dir=data)
    assert r.returncode == 0, r.stderr
    listed = r.stdout.decode()
    for name, setting in known_settings().items():
        if name.endswith("*"):  # a pattern: listed by itself, then the names stored under it
            assert f"\n{name}\n    {setting.help}\n" in listed
        else:
            assert f"{name} = {json.dumps(setting.default)} (default)" in listed
    assert eas("config", "get", "ip.allow", data_dir=data).stdout == b"[]\n"
    r = eas("config", "set", "ip.allow", '[" 10.0.0.0/8", "2001:DB8::/32"]', data_dir=data)
    assert r.returncode == 0, r.stderr
    assert json.loads(eas("config", "get", "ip.allow", data_dir=data).stdout) == ["10.0.0.0/8", "2001:db8::/32"]
    assert eas("config", "set", "ip.allow_enabled", "true", data_dir=data).returncode == 0
    listed = eas("config", "list", data_dir=data).stdout.decode()
    assert 'ip.allow = ["10.0.0.0/8", "2001:db8::/32"]\n' in listed
    assert "ip.allow_enabled = true\n" in listed
    assert eas("config", "clear", "ip.allow", data_dir=data).returncode == 0
    assert eas("config", "get", "ip.allow", data_dir=data).stdout == b"[]\n"
    settings, events = stored(data)
    assert settings == {"ip.allow_enabled": True}
    assert [(e.action, e.actor, e.detail) for e in reversed(events)] == [
        ("setting.set", "cli", 'ip.allow=["10.0.0.0/8", "2001:db8::/32"]'),
        ("setting.set", "cli", "ip.allow_enabled=true"),
        ("setting.clear", "cli", "ip.allow"),
    ]


@pytest.mark.parametrize(("args", "message"), [
    (("set", "ip.nope", "1"), b"unknown setting 'ip.nope'"),
    (("get", "password.mobile:alice@example.com"), b"unknown setting"),  # eas password does those
    (("set", "password.mobile:alice@example.com", '"x"'), b"unknown setting"),
    (("clear", ""), b"unknown setting"),
    (("set", "ip.allow", "10.0.0.0/8"), b"expected a JSON list"),
    (("set", "ip.allow", '["10.0.0.0/8"'), b"expected a JSON list"),  # broken JSON: a bare word
    (("set", "ip.allow", '["10.0.0.1/8"]'), b"host bits set"),
    (("set", "ip.allow", '["10.0.0.0/33"]'), b"not a CIDR network"),
    (("set", "ip.allow", '["fe80::/129"]'), b"not a CIDR network"),
    (("set", "ip.allow", "[10]"), b"not a CIDR network"),
    (("set", "ip.allow", '{"10.0.0.0/8": true}'), b"expected a JSON list"),
    (("set", "ip.trusted_proxies", '["proxy.example"]'), b"not a CIDR network"),
    (("set", "ip.allow_enabled", "yes"), b"expected true or false"),
    (("set", "ip.allow_enabled", "1"), b"expected true or false"),
    (("set", "ip.allow_enabled", "null"), b"eas config clear resets it"),
    (("set", "ip.allow_enabled"), b"the following arguments are required"),
    (("frobnicate",), b"invalid choice"),
])
def test_bad_input_stores_nothing(tmp_path: Path, args: tuple[str, ...], message: bytes) -> None:
    data = tmp_path / "data"
    r = eas("config", *args, data_dir=data)
    assert r.returncode == 2 and message in r.stderr and b"Traceback" not in r.stderr, r
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    if (data / "state.db").exists():
        assert stored(data) == ({}, [])


def test_admin_api() -> None:
    """``change_setting``/``get_setting``: what ``eas config`` and an admin page call."""
    from eas.access import change_setting, get_setting
    from eas.state.memory import MemoryStateStore

    async def scenario() -> None:
        store = MemoryStateStore()
        assert await get_setting(store, "ip.allow") == []
        with pytest.raises(KeyError):
            await change_setting(store, "ip.nope", 1, actor="web:admin")
        with pytest.raises(ValueError, match="host bits"):
            await change_setting(store, "ip.allow", ["192.0.2.1/24"], actor="web:admin")
        with pytest.raises(TypeError):
            await change_setting(store, "ip.allow_enabled", "true", actor="web:admin")
        assert await store.settings() == {} and await store.events() == []
        assert await change_setting(store, "ip.allow", ["192.0.2.0/24"], actor="web:admin") == ["192.0.2.0/24"]
        assert await get_setting(store, "ip.allow") == ["192.0.2.0/24"]
        assert await change_setting(store, "ip.allow", None, actor="web:admin") == []
        assert await store.settings() == {}
        assert [(e.action, e.actor) for e in await store.events()] == [("setting.clear", "web:admin"),
                                                                      ("setting.set", "web:admin")]

    asyncio.run(scenario())


def test_names_under_a_pattern(tmp_path: Path) -> None:
    """A name under a registered pattern (``mobile.user:*``) is set, read, listed and
    cleared like any other, checked by the pattern's check and stored under its own name."""
    data = tmp_path / "data"
    name = "mobile.user:alice@example.com"
    assert eas("config", "get", name, data_dir=data).stdout.strip() == b"null"
    r = eas("config", "set", name, "false", data_dir=data)
    assert r.returncode == 0, r.stderr
    assert eas("config", "get", name, data_dir=data).stdout.strip() == b"false"
    listed = eas("config", "list", data_dir=data).stdout.decode()
    assert f"  {name} = false" in listed
    bad = eas("config", "set", "mobile.user:bob@example.com", "maybe", data_dir=data)
    assert bad.returncode == 2 and b"mobile.user:bob@example.com" in bad.stderr
    settings, events = stored(data)
    assert settings == {name: False}
    assert [e.detail for e in events if e.action == "setting.set"] == [f"{name}=false"]
    assert eas("config", "clear", name, data_dir=data).returncode == 0
    assert stored(data)[0] == {}
    assert eas("config", "set", "mobile.userx", "true", data_dir=data).returncode == 2


def test_a_secret_setting_is_never_shown(tmp_path: Path) -> None:
    """The SMTP password is stored and used, but eas config get/set/list print only
    that it is set, and the audit trail does not carry it."""
    data = tmp_path / "data"
    name = "notifier.smtp_password"
    r = eas("config", "set", name, "hunter2-secret", data_dir=data)
    assert r.returncode == 0, r.stderr
    assert b"hunter2" not in r.stdout and b'"(set)"' in r.stdout
    get = eas("config", "get", name, data_dir=data)
    assert get.stdout == b'"(set)"\n'
    assert b"hunter2" not in eas("config", "list", data_dir=data).stdout
    settings, events = stored(data)
    assert settings[name] == "hunter2-secret"
    assert [e.detail for e in events if e.action == "setting.set"] == [f"{name}=(secret)"]
    assert eas("config", "clear", name, data_dir=data).returncode == 0
    assert eas("config", "get", name, data_dir=data).stdout == b'""\n'
