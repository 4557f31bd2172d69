"""Mobile access on or off (``eas.access.mobile``): the precedence of user setting,
groups in order and default; the refusal right after authentication (status 126 from
14.0, HTTP 403 before), OPTIONS and Autodiscover still answered; audit; hostile names;
and end to end against a running ``eas serve`` changed by ``eas access``."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest

from eas.access import mobile
from eas.access.mobile import CACHE_SECONDS, REFUSAL_LOG_SECONDS, MobileAccess
from eas.protocol.errors import AccessDenied
from eas.protocol.http import HTTPRequest
from eas.state.memory import MemoryStateStore
from eas.tags import FolderHierarchy as FH
from eas.testing.client import Client, HTTPTransport
from eas.testing.harness import client, make_app
from tests.test_autodiscover import request_xml
from tests.test_cli_server import eas, serving
from tests.test_ipallow import until

pytestmark = pytest.mark.kernel_independent

FOLDERSYNC = '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>'
A = "alice@example.com"

# (user setting, groups as (name, members, mobile) in order, default, expected allowed, expected why)
TABLE: list[tuple[bool | None, list[tuple[str, list[str], bool | None]], bool | None, bool, str]] = [
    (None, [], None, True, "default"),
    (None, [], False, False, "default"),
    (True, [], False, True, "user setting"),
    (False, [("vip", [A], True)], True, False, "user setting"),
    (True, [("off", ["@example.com"], False)], None, True, "user setting"),
    (None, [("off", ["@example.com"], False)], None, False, "group off"),
    (None, [("off", ["@example.com"], False), ("on", [A], True)], None, False, "group off"),
    (None, [("on", [A], True), ("off", ["@example.com"], False)], False, True, "group on"),
    (None, [("silent", [A], None), ("off", ["@example.com"], False)], None, False, "group off"),
    (None, [("silent", [A], None)], False, False, "default"),
    (None, [("other", ["@example.org", "bob@example.com"], False)], None, True, "default"),
    (None, [("sub", ["@sub.example.com"], False)], None, True, "default"),  # no subdomain matching
]


def _settings(user: bool | None, groups: list[tuple[str, list[str], bool | None]],
              default: bool | None) -> dict[str, Any]:
    values: dict[str, Any] = {"mobile.groups": [{"name": n, "members": m, "mobile": on} for n, m, on in groups]}
    if user is not None:
        values["mobile.user:" + A] = user
    if default is not None:
        values["mobile.default"] = default
    return values


@pytest.mark.parametrize(("user", "groups", "default", "allowed", "why"), TABLE)
def test_precedence(user: bool | None, groups: list[tuple[str, list[str], bool | None]], default: bool | None,
                    allowed: bool, why: str) -> None:
    async def scenario() -> None:
        store = MemoryStateStore()
        for name, value in _settings(user, groups, default).items():
            await store.set_setting(name, value)
        engine = MobileAccess(store)
        assert await engine.explain("Alice@Example.com") == (allowed, why)
        if allowed:
            await engine.admit(A)
        else:
            with pytest.raises(AccessDenied) as e:
                await engine.admit(A)
            assert e.value.status == 126

    asyncio.run(scenario())


def test_embedder_groups_hook_and_cache_on_a_clock() -> None:
    """A groups hook (sync or async) replaces membership; settings are re-read once the
    cache is CACHE_SECONDS old; refusals audited once a minute per account."""
    now = [100.0]

    async def scenario() -> None:
        store = MemoryStateStore()
        await store.set_setting("mobile.groups", [{"name": "interns", "members": [], "mobile": False}])
        engine = MobileAccess(store, clock=lambda: now[0])
        assert await engine.explain(A) == (True, "default")
        assert await engine.explain(A, lambda account: ["interns"]) == (False, "group interns")

        async def hook(account: str) -> list[str]:
            return ["nosuch", "interns"] if account == A else []

        assert await engine.explain(A, hook) == (False, "group interns")
        assert await engine.explain("bob@example.com", hook) == (True, "default")
        await store.set_setting("mobile.user:" + A, True)
        assert await engine.explain(A, hook) == (False, "group interns")  # still cached
        now[0] += CACHE_SECONDS
        assert await engine.explain(A, hook) == (True, "user setting")
        await store.set_setting("mobile.user:" + A, False)
        now[0] += CACHE_SECONDS
        for _ in range(5):
            with pytest.raises(AccessDenied):
                await engine.admit(A)
        now[0] += REFUSAL_LOG_SECONDS
        with pytest.raises(AccessDenied):
            await engine.admit(A)
        refused = [e for e in await store.events(limit=100) if e.action == "mobile.refused"]
        assert [(e.user, e.actor, e.detail) for e in refused] == [(A, "mobile", "user setting")] * 2

    asyncio.run(scenario())


def test_refused_after_authentication_in_process(tmp_path: Path) -> None:
    """14.1: FolderSync answers Status 126; 12.1: HTTP 403; a wrong password is still 401
    (authentication first); OPTIONS and Autodiscover are answered; other users unaffected;
    no device record is made for the refused request."""

    async def scenario() -> None:
        app, _ = make_app(tmp_path)
        await mobile.set_user(app.store, A, False, actor="test")
        app.mobile = MobileAccess(app.store)  # a fresh cache
        r = await client(app, version="14.1").command("FolderSync", FOLDERSYNC)
        assert r.status == 200 and r.text(FH.Status) == "126"
        r = await client(app, version="12.1").command("FolderSync", FOLDERSYNC)
        assert r.status == 403
        r = await client(app, version="14.1", password="wrong").command("FolderSync", FOLDERSYNC)
        assert r.status == 401
        assert (await client(app, version="14.1").options()).status == 200
        token = base64.b64encode(b"alice@example.com:alice-secret").decode()
        body = request_xml(A)
        auto = await app.handle(HTTPRequest("POST", "/autodiscover/autodiscover.xml", "",
                                            [("authorization", f"Basic {token}"),
                                             ("content-type", "text/xml"), ("host", "mail.example.com")],
                                            body, "127.0.0.1"))
        assert auto.status == 200 and b"Microsoft-Server-ActiveSync" in auto.body
        r = await client(app, "bob@example.com", "bob-secret", version="14.1").command("FolderSync", FOLDERSYNC)
        assert r.status == 200 and r.text(FH.Status) == "142"  # past the gate: provisioning next
        assert await app.store.list_devices(A) == []
        # An embedder's groups hook decides membership.
        await mobile.set_user(app.store, A, None, actor="test")
        await mobile.group_add(app.store, "contractors", ["@elsewhere.org"], actor="test")
        await mobile.group_set(app.store, "contractors", False, actor="test")
        app.mobile = MobileAccess(app.store)  # a fresh cache
        r = await client(app, "bob@example.com", "bob-secret", version="14.1").command("FolderSync", FOLDERSYNC)
        assert r.text(FH.Status) == "142"  # past the gate: provisioning next
        app.groups = lambda account: ["contractors"] if account.startswith("bob@") else []
        r = await client(app, "bob@example.com", "bob-secret", version="14.1").command("FolderSync", FOLDERSYNC)
        assert r.text(FH.Status) == "126"
        await app.store.close()

    asyncio.run(scenario())


def test_admin_changes_audited_and_hostile_names_store_nothing() -> None:
    async def scenario() -> None:
        store = MemoryStateStore()
        await mobile.group_add(store, "Staff", ["@Example.com", A], actor="admin")
        await mobile.group_add(store, "staff", [A, "bob@example.com"], actor="admin")
        await mobile.group_set(store, "staff", False, actor="admin")
        await mobile.set_user(store, "Alice@example.com", True, actor="admin")
        groups = await mobile.list_groups(store)
        assert groups == [{"name": "staff", "members": ["@example.com", A, "bob@example.com"], "mobile": False}]
        before = (await store.settings("mobile."), len(await store.events(limit=1000)))
        hostile: list[tuple[Any, ...]] = [
            (mobile.set_user, "a b@example.com", True), (mobile.set_user, "@example.com", False),
            (mobile.set_user, "nobody", False), (mobile.set_user, "x@y\x00z", False),
            (mobile.set_user, "", True), (mobile.set_user, "a" * 300 + "@example.com", True),
            (mobile.set_user, 42, True),
        ]
        for call, name, value in hostile:
            with pytest.raises((ValueError, TypeError)):
                await call(store, name, value, actor="admin")
        for group, members in (("", [A]), ("a\nb", [A]), ("x", ["@"]), ("x", ["a@b@c"]), ("x", ["plain"]),
                               ("x", [A, "\u202e@evil"]), ("x" * 300, [A])):
            with pytest.raises((ValueError, TypeError)):
                await mobile.group_add(store, group, members, actor="admin")
        with pytest.raises(KeyError):
            await mobile.group_set(store, "nosuch", True, actor="admin")
        with pytest.raises(KeyError):
            await mobile.group_remove(store, "nosuch", [], actor="admin")
        assert (await store.settings("mobile."), len(await store.events(limit=1000))) == before
        await mobile.group_remove(store, "staff", ["@example.com"], actor="admin")
        await mobile.group_remove(store, "staff", [], actor="admin")
        assert await mobile.list_groups(store) == []
        actions = [(e.action, e.actor) for e in reversed(await store.events(limit=1000))]
        assert actions == [("mobile.group.add", "admin")] * 2 + [("mobile.group.set", "admin"),
                                                                 ("mobile.enable", "admin")] + [
            ("mobile.group.remove", "admin")] * 2
        # Garbage written past the admin API counts as nothing set, not as an error.
        await store.set_setting("mobile.groups", {"not": "a list"})
        await store.set_setting("mobile.user:" + A, "yes")
        await store.set_setting("mobile.default", "no")
        assert await MobileAccess(store).explain(A) == (True, "default")

    asyncio.run(scenario())


def test_over_http_changed_by_the_cli_while_serving(tmp_path: Path) -> None:
    """``eas access`` reaches a running ``eas serve``: 14.1 status 126, 12.1 HTTP 403,
    by user and by group, user setting over group; ``eas access show`` says why."""
    data = tmp_path / "data"
    for user in (A, "bob@example.com"):
        assert eas("user", "add", user, "--password", "pw", data_dir=data).returncode == 0
    with serving(data, "--no-tls") as server:
        transport = HTTPTransport(f"http://127.0.0.1:{server.port}")

        def becomes(user: str, version: str, expected: tuple[int, str | None]) -> bool:
            async def check() -> bool:
                r = await Client(transport, user, "pw", version=version).command("FolderSync", FOLDERSYNC)
                return (r.status, r.text(FH.Status)) == expected
            return until(check)

        assert becomes(A, "14.1", (200, "142"))
        assert eas("access", "disable", A, data_dir=data).returncode == 0
        assert becomes(A, "14.1", (200, "126"))
        assert becomes(A, "12.1", (403, None))
        assert becomes("bob@example.com", "14.1", (200, "142"))
        assert eas("access", "group", "add", "staff", "@example.com", data_dir=data).returncode == 0
        assert eas("access", "group", "disable", "staff", data_dir=data).returncode == 0
        assert becomes("bob@example.com", "12.1", (403, None))
        assert eas("access", "enable", A, data_dir=data).returncode == 0
        assert becomes(A, "14.1", (200, "142"))  # the user's setting over the group's
        shown = eas("access", "show", "bob@example.com", data_dir=data)
        assert shown.returncode == 0 and b"off (group staff)" in shown.stdout
        assert eas("access", "group", "remove", "staff", data_dir=data).returncode == 0
        assert becomes("bob@example.com", "14.1", (200, "142"))
        bad = eas("access", "group", "add", "staff", "not-a-member", data_dir=data)
        assert bad.returncode == 2 and b"not-a-member" in bad.stderr
        assert eas("access", "disable", "@example.com", data_dir=data).returncode == 2
        listed = eas("access", "group", "list", data_dir=data)
        assert listed.returncode == 0 and listed.stdout.strip() == b"no groups"
    assert server.process.returncode == 0, server.stderr
