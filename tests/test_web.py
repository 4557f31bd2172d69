"""The admin web page (``eas.web``): its security rules in process over ASGI (login
required, bad passwords slowed and throttled, CSRF, foreign origins, escaping of what
devices send, security headers, session expiry), ``eas web user`` as a real process, and
the page in headless Chromium against a real ``eas serve --admin-port``."""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from eas import web
from eas.state.model import DeviceRecord
from eas.testing.client import Client
from eas.testing.harness import make_app
from tests.test_cli_server import MESSAGE, eas, free_port, http, serving
from tests.webdriver import Browser, tools

ADMIN, PASSWORD = "root", "correct horse"
XSS_AGENT = "<script>alert('agent')</script>"
XSS_ID = "\"'><img src=x onerror=alert(1)>"

pytestmark = pytest.mark.kernel_independent


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Visitor:
    """A browser's worth of state for the in-process app: cookies, and the last page."""

    def __init__(self, app: web.AdminApp, client: str = "192.0.2.7") -> None:
        self.app = app
        self.client = client
        self.cookies: dict[str, str] = {}
        self.page = ""

    async def request(self, method: str, path: str, fields: dict[str, str] | None = None, *,
                      headers: dict[str, str] | None = None, body: bytes | None = None) -> tuple[int, dict[str, list[str]], str]:
        path, _, query = path.partition("?")
        if body is None:
            body = urlencode(fields or {}).encode()
        hdrs = {"host": "admin.test", **({"content-type": "application/x-www-form-urlencoded"}
                                          if method == "POST" else {}), **(headers or {})}
        if self.cookies:
            hdrs["cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        scope = {"type": "http", "method": method, "path": path, "query_string": query.encode(),
                 "headers": [(k.encode(), v.encode()) for k, v in hdrs.items()] +
                            [(b"content-length", str(len(body)).encode())],
                 "client": (self.client, 50000)}
        sent: list[dict[str, Any]] = []
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        out: dict[str, list[str]] = {}
        for k, v in sent[0]["headers"]:
            out.setdefault(k.decode(), []).append(v.decode())
        for cookie in out.get("set-cookie", []):
            name, _, value = cookie.split(";")[0].partition("=")
            if "Max-Age=0" in cookie:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        self.page = sent[1]["body"].decode()
        return sent[0]["status"], out, self.page

    def csrf(self) -> str:
        found = re.search(r"name='csrf' value='([^']+)'", self.page)
        assert found, self.page
        return found.group(1)

    async def login(self, name: str = ADMIN, password: str = PASSWORD) -> int:
        await self.request("GET", "/login")
        status, _, _ = await self.request("POST", "/login", {"csrf": self.csrf(), "name": name,
                                                            "password": password})
        return status

    async def post(self, path: str, fields: dict[str, str]) -> tuple[int, dict[str, list[str]], str]:
        """A form of the last page, with its CSRF token."""
        return await self.request("POST", path, {"csrf": self.csrf(), **fields})


def _app(tmp_path: Path, **kw: Any) -> tuple[web.AdminApp, Any]:
    activesync, _ = make_app(tmp_path / "data")
    app = web.AdminApp(activesync, failure_delay=0, **kw)
    asyncio.run(web.add_admin(activesync.store, ADMIN, PASSWORD, actor="test"))
    return app, activesync.store


async def _device(store: Any, user: str, device_id: str, **fields: Any) -> DeviceRecord:
    device = DeviceRecord(user=user, device_id=device_id, **fields)
    await store.commit(device, {})
    return device


# -- in process: the security rules -----------------------------------------------------------


def test_every_page_needs_a_login(tmp_path: Path) -> None:
    app, store = _app(tmp_path)

    async def scenario() -> None:
        v = Visitor(app)
        for path in ("/", "/devices", "/device?user=a&id=b", "/abq", "/settings", "/audit"):
            status, headers, _ = await v.request("GET", path)
            assert (status, headers["location"]) == (303, ["/login"]), path
        for path, fields in (("/settings", {"name": "jail.enabled", "value": "true"}),
                             ("/device/access", {"user": "a@example.com", "device_id": "X", "state": "allowed"}),
                             ("/device/action", {"user": "a@example.com", "device_id": "X", "action": "wipe"}),
                             ("/abq/mode", {"mode": "strict"})):
            status, headers, _ = await v.request("POST", path, {**fields, "csrf": "guess"})
            assert (status, headers["location"]) == (303, ["/login"]), path
        # A made-up session cookie is no session.
        v.cookies[web.SESSION_COOKIE] = "made-up"
        assert (await v.request("GET", "/settings"))[0] == 303
        assert await store.get_setting("jail.enabled") is None
        assert await store.get_setting("abq.mode") is None
        status, _, _ = await v.request("GET", "/nope")
        assert status == 404

    asyncio.run(scenario())


@pytest.mark.parametrize("secure", [False, True])
def test_login_sets_a_strict_cookie_and_headers_forbid_scripts_and_frames(tmp_path: Path, secure: bool) -> None:
    app, store = _app(tmp_path, secure=secure)

    async def scenario() -> None:
        v = Visitor(app)
        status, headers, page = await v.request("GET", "/login")
        assert status == 200 and "<script" not in page
        assert await v.login() == 303
        status, headers, page = await v.request("GET", "/")
        assert status == 200 and "Quarantined devices" in page and "<script" not in page
        csp = headers["content-security-policy"][0]
        assert "default-src 'none'" in csp and "unsafe-inline" not in csp and "script-src" not in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["x-frame-options"] == ["DENY"] and headers["cache-control"] == ["no-store"]
        assert headers["x-content-type-options"] == ["nosniff"]
        token = v.cookies[web.SESSION_COOKIE]
        assert len(token) >= 40 and token not in page
        await v.request("GET", "/login")
        _, headers, _ = await v.request("POST", "/login", {"csrf": v.csrf(), "name": ADMIN, "password": PASSWORD})
        cookie = next(c for c in headers["set-cookie"] if c.startswith(web.SESSION_COOKIE + "="))
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=" in cookie
        assert ("Secure" in cookie) is secure
        assert v.cookies[web.SESSION_COOKIE] != token  # a new login, a new token
        events = await store.events(limit=10)
        assert [e.actor for e in events if e.action == "web.login"] == [f"web:{ADMIN}"] * 2
        # Logging out ends the session on the server, not just in the browser.
        await v.request("GET", "/")
        old = v.cookies[web.SESSION_COOKIE]
        assert (await v.post("/logout", {}))[0] == 303
        v.cookies[web.SESSION_COOKIE] = old
        assert (await v.request("GET", "/"))[0] == 303

    asyncio.run(scenario())


def test_bad_passwords_are_refused_slowed_and_throttled(tmp_path: Path) -> None:
    clock = Clock()
    app, store = _app(tmp_path, clock=clock)
    app.failure_delay = 0.2

    async def scenario() -> None:
        v = Visitor(app)
        started = time.monotonic()
        assert await v.login(password="wrong") == 401
        assert time.monotonic() - started >= 0.2
        assert "Wrong name or password" in v.page and web.SESSION_COOKIE not in v.cookies
        app.failure_delay = 0
        assert await v.login(name="nobody") == 401
        assert await v.login(name="x" * 5000, password="p" * 5000) == 401  # hostile sizes: refused, no crash
        for _ in range(web.MAX_FAILURES - 3):
            assert await v.login(password="wrong") == 401
        # Throttled: even the right password is not tried now, from this address.
        assert await v.login() == 429 and web.SESSION_COOKIE not in v.cookies
        assert await Visitor(app, client="198.51.100.1").login() == 303  # another address is not
        clock.now += web.FAILURE_WINDOW_SECONDS + 1
        assert await v.login() == 303
        failed = [e for e in await store.events(limit=50) if e.action == "web.login.failed"]
        assert len(failed) == web.MAX_FAILURES and all("192.0.2.7" in e.detail for e in failed)
        assert "x" * (web.MAX_ADMIN_NAME + 5) not in failed[0].detail

    asyncio.run(scenario())


def test_login_form_needs_its_csrf_token(tmp_path: Path) -> None:
    app, _ = _app(tmp_path)

    async def scenario() -> None:
        v = Visitor(app)
        status, _, _ = await v.request("POST", "/login", {"name": ADMIN, "password": PASSWORD})
        assert status == 403
        await v.request("GET", "/login")
        status, _, _ = await v.request("POST", "/login", {"csrf": "x" * 43, "name": ADMIN, "password": PASSWORD})
        assert status == 403 and web.SESSION_COOKIE not in v.cookies

    asyncio.run(scenario())


def test_changes_need_the_sessions_csrf_token_and_the_same_origin(tmp_path: Path) -> None:
    app, store = _app(tmp_path)

    async def scenario() -> None:
        v = Visitor(app)
        assert await v.login() == 303
        await v.request("GET", "/settings")
        good = v.csrf()
        change = {"name": "jail.enabled", "value": "true", "op": "set"}
        assert (await v.request("POST", "/settings", change))[0] == 403  # missing
        assert (await v.request("POST", "/settings", {**change, "csrf": ""}))[0] == 403
        assert (await v.request("POST", "/settings", {**change, "csrf": good[:-1] + ("A" if good[-1] != "A" else "B")}))[0] == 403
        other = Visitor(app, client="198.51.100.9")
        assert await other.login() == 303
        await other.request("GET", "/settings")
        assert other.csrf() != good
        assert (await v.request("POST", "/settings", {**change, "csrf": other.csrf()}))[0] == 403
        assert (await v.request("POST", "/settings", {**change, "csrf": good},
                                headers={"origin": "https://evil.example"}))[0] == 403
        assert (await v.request("POST", "/settings", {**change, "csrf": good},
                                headers={"content-type": "text/plain"}))[0] == 415
        assert (await v.request("POST", "/settings", body=b"a=" + b"x" * web.MAX_FORM_BYTES))[0] == 413
        assert await store.get_setting("jail.enabled") is None
        assert not [e for e in await store.events(limit=50) if e.action.startswith("setting.")]
        status, headers, _ = await v.request("POST", "/settings", {**change, "csrf": good},
                                             headers={"origin": "http://admin.test"})
        assert (status, headers["location"]) == (303, ["/settings"])
        assert await store.get_setting("jail.enabled") is True
        event = (await store.events(limit=1))[0]
        assert (event.action, event.actor, event.detail) == ("setting.set", f"web:{ADMIN}", "jail.enabled=true")

    asyncio.run(scenario())


def test_settings_form_bad_input_stores_nothing(tmp_path: Path) -> None:
    app, store = _app(tmp_path)

    async def scenario() -> None:
        v = Visitor(app)
        await v.login()
        await v.request("GET", "/settings")
        assert "jail.max_requests" in v.page and "mobile.user:*" in v.page
        assert web.ADMIN_PREFIX not in v.page  # admin hashes are not settings
        before = await store.settings()
        for name, value, message in (
                ("no.such", "1", "unknown setting &#x27;no.such&#x27;"),
                ("jail.max_requests", "-5", "invalid value for jail.max_requests"),
                ("jail.enabled", "maybe", "invalid value for jail.enabled"),
                ("jail.enabled", "null", "null is not a value"),
                (web.ADMIN_PREFIX + ADMIN, '"x"', "unknown setting"),
                ("jail.window", "9" * 5000, "invalid value for jail.window")):
            status, _, _ = await v.post("/settings", {"name": name, "value": value, "op": "set"})
            assert status == 303
            await v.request("GET", "/settings")
            assert message in v.page and "class='flash error'" in v.page, (name, value)
        assert await store.settings() == before
        assert await web.verify_admin(store, ADMIN, PASSWORD) == ADMIN
        # A good value, a bare word, a name under a pattern, and clear.
        await v.post("/settings", {"name": "jail.max_requests", "value": "30", "op": "set"})
        await v.request("GET", "/settings")
        assert "jail.max_requests = 30" in v.page
        await v.post("/settings", {"name": "mobile.user:bob@example.com", "value": "false", "op": "set"})
        await v.request("GET", "/settings")
        assert "<code>mobile.user:bob@example.com</code>" in v.page
        assert await store.get_setting("jail.max_requests") == 30
        assert await store.get_setting("mobile.user:bob@example.com") is False
        # A password setting is never shown back: not in the form, the flash or the audit page.
        await v.post("/settings", {"name": "notifier.smtp_password", "value": "hunter2-secret", "op": "set"})
        assert await store.get_setting("notifier.smtp_password") == "hunter2-secret"
        for path in ("/settings", "/audit"):
            _, _, page = await v.request("GET", path)
            assert "hunter2" not in page and "notifier.smtp_password" in page, path
        await v.post("/settings", {"name": "jail.max_requests", "value": "", "op": "clear"})
        assert await store.get_setting("jail.max_requests") is None
        status, _, page = await v.request("GET", "/audit")
        assert status == 200 and page.count(f"web:{ADMIN}") >= 4 and "setting.clear" in page

    asyncio.run(scenario())


def test_what_devices_send_is_escaped(tmp_path: Path) -> None:
    """User agent, DeviceType and model come from the device as it likes (the protocol
    bounds a device id to letters, digits, _ and -, but a store may hold anything)."""
    app, store = _app(tmp_path)

    async def scenario() -> None:
        await _device(store, "alice@example.com", XSS_ID, user_agent=XSS_AGENT, device_type="<b>Phone</b>",
                      access="quarantined", access_reason="<i>rule</i>")
        await _device(store, "alice@example.com", "PLAIN1", user_agent=XSS_AGENT, device_type="<b>Phone</b>",
                      model="M\"odel'<img src=x>", os=XSS_ID, access="quarantined")
        from eas.state.model import AuditEvent
        await store.record_event(AuditEvent("access.quarantined", actor="abq", user="alice@example.com",
                                            device_id="PLAIN1", detail=XSS_AGENT))
        v = Visitor(app)
        await v.login()
        bad = urlencode({"user": "alice@example.com", "id": XSS_ID})
        good = urlencode({"user": "alice@example.com", "id": "PLAIN1"})
        for path, status in (("/", 200), ("/devices", 200), (f"/device?{good}", 200), ("/audit", 200),
                             (f"/device?{bad}", 404)):
            got, _, page = await v.request("GET", path)
            assert got == status, path
            for raw in (XSS_AGENT, XSS_ID, "<b>Phone</b>", "<i>rule</i>", "<img", "<script"):
                assert raw not in page, (path, raw)
        _, _, page = await v.request("GET", f"/device?{good}")
        assert html.escape(XSS_AGENT, quote=True) in page and html.escape(XSS_ID, quote=True) in page
        assert "access.quarantined" in page
        # The list links to the device and its hidden form fields carry the id back unchanged.
        _, _, page = await v.request("GET", "/")
        assert html.escape(bad, quote=True) in page
        assert f"value='{html.escape(XSS_ID, quote=True)}'" in page
        assert (await v.request("GET", "/device?user=alice@example.com&id=other"))[0] == 404

    asyncio.run(scenario())


def test_sessions_expire_and_end_with_their_admin(tmp_path: Path) -> None:
    clock = Clock()
    app, store = _app(tmp_path, clock=clock)

    async def scenario() -> None:
        v = Visitor(app)
        await v.login()
        clock.now += web.SESSION_IDLE_SECONDS - 1
        assert (await v.request("GET", "/"))[0] == 200  # in use: stays
        clock.now += web.SESSION_IDLE_SECONDS + 1
        assert (await v.request("GET", "/"))[0] == 303
        await v.login()
        assert (await v.request("GET", "/"))[0] == 200
        assert await web.remove_admin(store, ADMIN, actor="test")
        assert (await v.request("GET", "/"))[0] == 303
        assert await v.login() == 401

    asyncio.run(scenario())


def test_admin_api_refuses_bad_names_and_passwords(tmp_path: Path) -> None:
    _, store = _app(tmp_path)

    async def scenario() -> None:
        before = await store.settings()
        for name, password in (("", "x"), ("a b", "x"), ("<script>", "x"), ("x" * 65, "x"), ("root", ""),
                               ("root", "p" * 1025), ("ro\x00t", "x"), (None, "x")):
            with pytest.raises((ValueError, TypeError)):
                await web.add_admin(store, name, password, actor="test")  # type: ignore[arg-type]
        assert await store.settings() == before
        assert await web.list_admins(store) == [ADMIN]
        assert not await web.remove_admin(store, "nobody", actor="test")
        assert await web.add_admin(store, " Second.Admin ", "pw", actor="test") == "second.admin"
        assert await web.list_admins(store) == [ADMIN, "second.admin"]
        hashed = await store.get_setting(web.ADMIN_PREFIX + "second.admin")
        assert hashed.startswith("scrypt$") and "pw" not in hashed

    asyncio.run(scenario())


def test_allow_and_block_buttons_set_abq_entries(tmp_path: Path) -> None:
    abq = pytest.importorskip("eas.access.abq")
    if not hasattr(abq, "set_device"):
        pytest.skip("the ABQ admin API is not there yet")
    app, store = _app(tmp_path)

    async def scenario() -> None:
        await _device(store, "alice@example.com", "PHONE1", access="quarantined", access_reason="global")
        await _device(store, "bob@example.com", "PHONE2", access="quarantined", access_reason="global")
        await _device(store, "bob@example.com", "OKPHONE", access="allowed")
        v = Visitor(app)
        await v.login()
        _, _, page = await v.request("GET", "/")
        assert "PHONE1" in page and "PHONE2" in page and "OKPHONE" not in page
        await v.post("/device/access", {"user": "alice@example.com", "device_id": "PHONE1", "state": "allowed"})
        await v.request("GET", "/")
        await v.post("/device/access", {"user": "bob@example.com", "device_id": "PHONE2", "state": "blocked"})
        await v.request("GET", "/")
        for back in ("//evil.example/", "https://evil.example/", "/\\evil.example", "/\r\nSet-Cookie: x=1",
                     "/\u00e9"):  # no open redirect, nothing that is not a plain path
            _, headers, _ = await v.post("/device/access", {"user": "bob@example.com", "device_id": "PHONE2",
                                                            "state": "blocked", "back": back})
            assert headers["location"] == ["/"], back
            await v.request("GET", "/")
        await v.post("/device/access", {"user": "bob@example.com", "device_id": "PHONE2", "state": "wiped"})
        await v.request("GET", "/")
        assert "not a device state" in v.page
        entries = {(e.user, e.device_id): e.state for e in await abq.device_entries(store)}
        assert entries == {("alice@example.com", "PHONE1"): "allowed", ("bob@example.com", "PHONE2"): "blocked"}
        assert all(e.actor == f"web:{ADMIN}" for e in await store.events(limit=5)
                   if e.action.startswith(("abq.", "device.")))

    asyncio.run(scenario())


def test_device_actions_and_filters(tmp_path: Path) -> None:
    app, store = _app(tmp_path)

    async def scenario() -> None:
        await _device(store, "alice@example.com", "PHONE1", device_type="iPhone", protocol_version="14.1")
        await _device(store, "bob@example.com", "PHONE2", device_type="Android")
        v = Visitor(app)
        await v.login()
        _, _, page = await v.request("GET", "/devices?type=iphone")
        assert "PHONE1" in page and "PHONE2" not in page
        _, _, page = await v.request("GET", "/devices?user=bob@example.com")
        assert "PHONE2" in page and "PHONE1" not in page
        _, _, page = await v.request("GET", "/devices?state=%3Cbogus%3E")
        assert "unknown state" in page and "<bogus>" not in page and "PHONE1" not in page
        where = {"user": "alice@example.com", "device_id": "PHONE1"}
        await v.request("GET", "/device?user=alice@example.com&id=PHONE1")

        async def act(action: str) -> str:
            await v.post("/device/action", {**where, "action": action})
            return (await v.request("GET", "/device?user=alice@example.com&id=PHONE1"))[2]

        assert "Wipe: done" in await act("wipe")
        assert (await store.get_device("alice@example.com", "PHONE1")).wipe == "pending"
        assert "already pending" in await act("wipe")  # refused with the reason, nothing changed
        assert "needs a device speaking 16.1" in await act("account-wipe")
        assert "Cancel wipe: done" in await act("cancel-wipe")
        assert "Suspend: done" in await act("suspend")
        assert "nothing to do" in await act("suspend")
        assert (await store.get_device("alice@example.com", "PHONE1")).suspended
        assert "not a device action" in (await v.post("/device/action", {**where, "action": "explode"}) and
                                         (await v.request("GET", "/devices"))[2])
        await v.request("GET", "/device?user=alice@example.com&id=PHONE1")
        page = await act("resume")
        for action in ("device.wipe", "device.wipe.cancel", "device.suspend", "device.resume"):
            assert action in page  # the history on the detail page
        events = [e for e in await store.events(limit=20) if e.action.startswith("device.")]
        assert len(events) == 4 and {e.actor for e in events} == {f"web:{ADMIN}"}
        await v.post("/device/action", {**where, "action": "remove"})
        assert await store.get_device("alice@example.com", "PHONE1") is None
        _, _, page = await v.request("GET", "/devices")
        assert "Remove: done for PHONE1" in page and ">PHONE1</a>" not in page and ">PHONE2</a>" in page

    asyncio.run(scenario())


# -- eas web user --------------------------------------------------------------------------------


def test_eas_web_user_verbs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = eas("web", "user", "add", "Root", "--password-stdin", data_dir=data, stdin=b"s3cret\nignored\n")
    assert (r.returncode, r.stdout, r.stderr) == (0, b"admin root set\n", b"")
    assert eas("web", "user", "add", "ops", data_dir=data, stdin=b"other\n").returncode == 0
    assert eas("web", "user", "list", data_dir=data).stdout == b"ops\nroot\n"
    for args, stdin in ((("add", "a b", "--password-stdin"), b"x\n"), (("add", "<x>", "--password-stdin"), b"x\n"),
                        (("add", "dora", "--password-stdin"), b"\n"), (("add", "dora"), b""),
                        (("remove", "nobody"), b""), (("remove", "x" * 100), b"")):
        r = eas("web", "user", *args, data_dir=data, stdin=stdin)
        assert r.returncode == 2 and r.stderr.count(b"\n") == 1 and r.stderr.startswith(b"eas: "), args
    assert eas("web", "user", "list", data_dir=data).stdout == b"ops\nroot\n"
    # Not settings: eas config neither lists nor prints them.
    listed = eas("config", "list", data_dir=data)
    assert listed.returncode == 0 and b"web.admin" not in listed.stdout and b"scrypt" not in listed.stdout
    assert eas("config", "get", "web.admin:root", data_dir=data).returncode == 2
    assert eas("web", "user", "remove", "ops", data_dir=data).returncode == 0
    assert eas("web", "user", "list", data_dir=data).stdout == b"root\n"

    from eas.state.sqlite import SQLiteStateStore

    async def check() -> None:
        store = SQLiteStateStore(data / "state.db")
        try:
            assert await web.verify_admin(store, "root", "s3cret") == "root"
            assert await web.verify_admin(store, "root", "ignored") is None
            actions = [(e.action, e.actor, e.detail) for e in await store.events(limit=10)]
            assert actions[:3] == [("web.admin.remove", "cli", "ops"), ("web.admin.add", "cli", "ops"),
                                   ("web.admin.add", "cli", "root")]
        finally:
            await store.close()

    asyncio.run(check())


def test_missing_browser_skips_unless_tools_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("EAS_REQUIRE_TOOLS", raising=False)
    with pytest.raises(pytest.skip.Exception):
        _browser()
    monkeypatch.setenv("EAS_REQUIRE_TOOLS", "1")
    with pytest.raises(pytest.fail.Exception, match="EAS_REQUIRE_TOOLS"):
        _browser()


def test_serve_admin_port_without_tls_and_without_admins(tmp_path: Path) -> None:
    """The banner says how to add the first admin; the page answers on its own port,
    the ActiveSync port does not serve it, and both stop together."""
    import urllib.error
    import urllib.request

    data = tmp_path / "data"
    admin_port = free_port()
    with serving(data, "--no-tls", "--admin-port", str(admin_port)) as server:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/login", timeout=10) as page:
            assert page.status == 200 and page.headers["x-frame-options"] == "DENY"
            cookie = page.headers["set-cookie"]
            assert "HttpOnly" in cookie and "Secure" not in cookie
            assert b"eas web user add NAME" in page.read()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/login", timeout=10)
        assert refused.value.code != 200
    assert server.process.returncode == 0, server.stderr
    assert f"eas: admin page at http://127.0.0.1:{admin_port}/\n".encode() in server.stdout
    assert b"eas: no admin account yet: eas web user add NAME" in server.stdout


def test_serve_admin_port_flags(tmp_path: Path) -> None:
    data = tmp_path / "data"
    r = eas("serve", "--admin-port", "70000", data_dir=data)
    assert (r.returncode, r.stderr) == (2, b"eas: port out of range: 70000\n")
    r = eas("serve", "--no-tls", "--port", "9999", "--admin-port", "9999", data_dir=data)
    assert (r.returncode, r.stderr) == (2, b"eas: --admin-port must differ from the ActiveSync port\n")
    with serving(data, "--no-tls") as server:  # off unless asked for
        pass
    assert b"eas: ActiveSync at" in server.stdout and b"admin page" not in server.stdout


# -- headless Chromium against eas serve --admin-port ----------------------------------------


def _browser() -> Browser:
    if tools() is None:
        message = "chromium and chromedriver are needed (apt-get install -y chromium chromium-driver)"
        if os.environ.get("EAS_REQUIRE_TOOLS", "") not in ("", "0"):
            pytest.fail(f"EAS_REQUIRE_TOOLS is set but {message}", pytrace=False)
        pytest.skip(message)
    browser = Browser.start()
    assert browser is not None
    return browser


SYNC_INBOX = ('<Sync xmlns="AirSync:"><Collections><Collection><SyncKey>{key}</SyncKey>'
              '<CollectionId>{inbox}</CollectionId>{more}</Collection></Collections></Sync>')


async def _inbox_subjects(c: Any) -> list[str]:
    """FolderSync from 0, then Sync the Inbox from 0: the subjects the device gets."""
    from eas.tags import AirSync
    from eas.tags import FolderHierarchy as FH

    r = await c.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>')
    assert r.status == 200 and r.node is not None, r
    inbox = next(a.findtext(FH.ServerId) for a in r.node.find(FH.Changes).findall(FH.Add)
                 if a.findtext(FH.Type) == "2")
    first = await c.command("Sync", SYNC_INBOX.format(key="0", inbox=inbox, more=""))
    key = first.text(AirSync.Collections, AirSync.Collection, AirSync.SyncKey)
    assert key, first.xml
    r = await c.command("Sync", SYNC_INBOX.format(key=key, inbox=inbox, more="<GetChanges>1</GetChanges>"))
    assert r.status == 200, r
    return re.findall(r"<email:Subject>([^<]*)</email:Subject>", r.xml)


def test_admin_page_in_headless_chromium(tmp_path: Path) -> None:
    """Against ``eas serve --admin-port`` over TLS: log in, see a quarantined device
    (whose user agent and type try a script), Allow it and see its next Sync get the
    real mail; change a setting in the form and read it with ``eas config get``; wipe the
    device from its page and see the wipe pending in the state store."""
    browser = _browser()
    data = tmp_path / "data"
    try:
        assert eas("user", "add", "bob@example.com", "--password", "pw", data_dir=data).returncode == 0
        assert eas("mail", "deliver", "bob@example.com", data_dir=data, stdin=MESSAGE).returncode == 0
        assert eas("web", "user", "add", ADMIN, "--password-stdin", data_dir=data,
                   stdin=PASSWORD.encode() + b"\n").returncode == 0
        assert eas("abq", "mode", "interactive", data_dir=data).returncode == 0
        admin_port = free_port()
        with serving(data, "--admin-port", str(admin_port)) as server:
            base = f"https://127.0.0.1:{admin_port}"
            device = Client(http(server.port, data / "tls" / "cert.pem"), "bob@example.com", "pw",
                            device_id="BOBPHONE1", device_type="<i>Evil</i>", user_agent=XSS_AGENT, version="14.1")

            async def quarantined() -> list[str]:
                await device.provision()
                return await _inbox_subjects(device)

            notice = asyncio.run(quarantined())
            assert len(notice) == 1 and "Lunch?" not in notice  # the notice mailbox, not the mail

            browser.get(base + "/")
            assert browser.current_url == base + "/login"
            browser.type("#name", ADMIN)
            browser.type("#password", "wrong")
            browser.click("#login")
            assert "Wrong name or password" in browser.text()
            browser.type("#name", ADMIN)
            browser.type("#password", PASSWORD)
            browser.click("#login")
            assert browser.current_url == base + "/"
            rows = browser.texts("tr.device")
            assert len(rows) == 1 and "BOBPHONE1" in rows[0] and XSS_AGENT in rows[0] and "<i>Evil</i>" in rows[0]
            assert "quarantined" in rows[0]
            assert browser.alert_text() is None  # shown as text: no script ran
            browser.click("#allow-0")
            assert "BOBPHONE1 of bob@example.com: allowed" in browser.text(".flash")
            assert f"allowed by web:{ADMIN}, from its next request" in browser.text("tr.device")

            assert "Lunch?" in asyncio.run(_inbox_subjects(device))  # the device's next request syncs
            browser.get(base + "/")
            assert browser.find_all("tr.device") == [] and browser.find_all("#none")

            browser.get(base + "/settings")
            browser.type("[id='input-jail.max_requests']", "42")
            browser.click("[id='set-jail.max_requests']")
            assert "jail.max_requests = 42" in browser.text(".flash")
            assert browser.text("[id='value-jail.max_requests']") == "42"
            browser.type("[id='input-jail.window']", "-1")
            browser.click("[id='set-jail.window']")
            assert "invalid value for jail.window" in browser.text(".flash.error")
            got = eas("config", "get", "jail.max_requests", data_dir=data)
            assert (got.returncode, got.stdout) == (0, b"42\n")
            assert eas("config", "get", "jail.window", data_dir=data).stdout == b"30\n"

            browser.get(base + "/devices")
            browser.click("tr.device a")
            assert browser.text("#fact-device-id") == "BOBPHONE1"
            assert browser.text("#fact-user-agent") == XSS_AGENT
            browser.click("#action-wipe")
            assert "Wipe: done for BOBPHONE1" in browser.text(".flash")
            assert browser.text("#fact-wipe") == "pending"
            history = browser.text("main")
            assert "device.wipe" in history and f"web:{ADMIN}" in history and "abq.device.allowed" in history
            assert _device_record(data, "bob@example.com", "BOBPHONE1").wipe == "pending"
            shown = eas("device", "show", "bob@example.com", "BOBPHONE1", "--json", data_dir=data)
            assert shown.returncode == 0, shown.stderr
            assert json.loads(shown.stdout)["device"]["wipe"] == "pending", shown.stdout

            browser.get(base + "/audit")
            audit = browser.text("main")
            for action in ("web.login.failed", "web.login", "abq.device.allowed", "setting.set", "device.wipe"):
                assert action in audit
            browser.click("#logout")
            browser.get(base + "/settings")
            assert browser.current_url == base + "/login"
        assert server.process.returncode == 0, server.stderr
        assert f"eas: admin page at https://127.0.0.1:{admin_port}/\n".encode() in server.stdout
        assert b"no admin account yet" not in server.stdout
    finally:
        browser.quit()



def _device_record(data: Path, user: str, device_id: str) -> DeviceRecord:
    from eas.state.sqlite import SQLiteStateStore

    async def read() -> DeviceRecord:
        store = SQLiteStateStore(data / "state.db")
        try:
            device = await store.get_device(user, device_id)
            assert device is not None
            return device
        finally:
            await store.close()

    return asyncio.run(read())
