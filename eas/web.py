"""The admin web page: quarantined devices with Allow and Block, the device list with
per-device actions and history, ABQ mode and rules, every registered setting, and the
audit trail, as a plain ASGI app that ``eas serve --admin-port`` runs on a port of its
own.

Admin accounts are not mail accounts: ``eas web user add`` keeps an scrypt hash
(``eas.store.passwords``) in the state store as ``web.admin:<name>``, a name no engine
registers, so ``eas config`` neither lists nor prints it.

Security: a login gives a random session token in a cookie (HttpOnly, SameSite=Strict,
Secure under TLS) that expires after ``SESSION_IDLE_SECONDS`` idle and
``SESSION_MAX_SECONDS`` in all; every POST form carries a CSRF token (the login form a
double-submitted one) and a foreign Origin is refused; failed logins are slowed and, past
``MAX_FAILURES`` per client address in ``FAILURE_WINDOW_SECONDS``, refused outright.
Every value shown is escaped (device ids and user agents come from devices, that is from
anyone); the pages carry no script, and the Content-Security-Policy allows none. Every
change is audited with actor ``web:<admin>``. Sessions and the failed-login counts live in
the server process: a restart logs every admin out.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from eas.asgi import Receive, Scope, Send
from eas.state.model import AuditEvent
from eas.store import passwords

if TYPE_CHECKING:
    from eas.core import ActiveSync
    from eas.state.model import DeviceRecord
    from eas.state.store import StateStore

ADMIN_PREFIX = "web.admin:"
MAX_ADMIN_NAME = 64
MAX_PASSWORD = 1024
SESSION_COOKIE = "eas_admin"
LOGIN_COOKIE = "eas_login"  # the login form's double-submitted CSRF token
SESSION_IDLE_SECONDS = 30 * 60
SESSION_MAX_SECONDS = 12 * 3600
MAX_SESSIONS = 1000
MAX_FAILURES = 5  # failed logins per client address in the window, then refused
FAILURE_WINDOW_SECONDS = 300.0
FAILURE_DELAY_SECONDS = 1.0  # each failed login answers this much later
MAX_FORM_BYTES = 64 * 1024
AUDIT_LIMIT = 200
RESTRICTED = ("quarantined", "discovery", "blocked")
# Per-device actions of eas.access.devices: form value -> (function, extra keywords, label).
DEVICE_ACTIONS: dict[str, tuple[str, dict[str, Any], str]] = {
    "wipe": ("wipe", {}, "Wipe"),
    "account-wipe": ("wipe", {"account_only": True}, "Account-only wipe"),
    "cancel-wipe": ("cancel_wipe", {}, "Cancel wipe"),
    "suspend": ("suspend", {}, "Suspend"),
    "resume": ("resume", {}, "Resume"),
    "reset": ("reset", {}, "Reset sync state"),
    "remove": ("remove", {}, "Remove"),
}
_ADMIN_NAME = re.compile(r"[a-z0-9][a-z0-9._@-]*")

SECURITY_HEADERS = [
    ("content-security-policy", ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                                 "frame-ancestors 'none'; base-uri 'none'")),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),  # "no-referrer" would make browsers send Origin: null
    ("cache-control", "no-store"),
]

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #222; }
nav { background: #234; padding: .5em 1em; }
nav a { color: #fff; margin-right: 1.2em; text-decoration: none; }
nav form { display: inline; float: right; }
main { padding: 1em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { border-bottom: 1px solid #ddd; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
form.inline { display: inline; margin: 0; }
.flash { background: #ffd; border: 1px solid #cc9; padding: .5em; }
.error { background: #fdd; border-color: #c99; }
.help { color: #666; font-size: 90%; }
code { word-break: break-all; }
"""


# -- admin accounts ----------------------------------------------------------------------


def check_admin_name(name: Any) -> str:
    """An admin name as stored: lower-case letters, digits and ``._@-`` (``ValueError``)."""
    if not isinstance(name, str):
        raise TypeError("an admin name is a string")
    text = name.strip().lower()
    if len(text) > MAX_ADMIN_NAME or not _ADMIN_NAME.fullmatch(text):
        raise ValueError(f"not a valid admin name (letters, digits, . _ @ -; at most {MAX_ADMIN_NAME}): "
                         f"{text[:MAX_ADMIN_NAME]!r}")
    return text


async def add_admin(store: StateStore, name: str, password: str, *, actor: str) -> str:
    """Create an admin account or replace its password; the name as stored."""
    name = check_admin_name(name)
    if not password or len(password) > MAX_PASSWORD:
        raise ValueError(f"an admin password has 1 to {MAX_PASSWORD} characters")
    hashed = await asyncio.to_thread(passwords.hash_password, password)
    existed = await store.get_setting(ADMIN_PREFIX + name) is not None
    await store.set_setting(ADMIN_PREFIX + name, hashed)
    await store.record_event(AuditEvent("web.admin.passwd" if existed else "web.admin.add", actor=actor,
                                        detail=name))
    return name


async def remove_admin(store: StateStore, name: str, *, actor: str) -> bool:
    """Remove an admin account; False when there was none. Its sessions end at their
    next request (the server looks the account up on each)."""
    name = check_admin_name(name)
    if await store.get_setting(ADMIN_PREFIX + name) is None:
        return False
    await store.set_setting(ADMIN_PREFIX + name, None)
    await store.record_event(AuditEvent("web.admin.remove", actor=actor, detail=name))
    return True


async def list_admins(store: StateStore) -> list[str]:
    return sorted(k[len(ADMIN_PREFIX):] for k in await store.settings(ADMIN_PREFIX))


async def verify_admin(store: StateStore, name: str, password: str) -> str | None:
    """The admin's name when ``password`` is right, else None; an unknown name costs the
    time of a wrong password (names cannot be told apart by timing)."""
    try:
        name = check_admin_name(name)
    except (TypeError, ValueError):
        name = ""
    stored = await store.get_setting(ADMIN_PREFIX + name) if name else None
    if not isinstance(stored, str) or len(password) > MAX_PASSWORD:
        await asyncio.to_thread(passwords.dummy_verify, password[:MAX_PASSWORD])
        return None
    return name if await asyncio.to_thread(passwords.verify_password, password, stored) else None


# -- the app -------------------------------------------------------------------------------


@dataclass(slots=True)
class Session:
    admin: str
    csrf: str
    created: float
    seen: float
    flash: list[tuple[str, bool]] = field(default_factory=list)  # (message, is_error)


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str]
    client: str
    session: Session | None = None
    token: str = ""


@dataclass(slots=True)
class Response:
    status: int
    body: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "text/html; charset=utf-8"


class Refused(Exception):
    """A request refused with ``status`` (403 bad CSRF, 404, 413, ...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _e(value: Any) -> str:
    """Escaped for HTML text and attribute values (quotes included)."""
    return html.escape(str(value), quote=True)


def _when(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp)) if stamp else "never"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class AdminApp:
    """The admin page of ``activesync`` as an ASGI 3 app. ``secure``: served over TLS
    (the session cookie is then Secure). ``clock`` and ``failure_delay`` are for tests."""

    def __init__(self, activesync: ActiveSync, *, secure: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 failure_delay: float = FAILURE_DELAY_SECONDS) -> None:
        self.activesync = activesync
        self.store = activesync.store
        self.secure = secure
        self.clock = clock
        self.failure_delay = failure_delay
        self.sessions: dict[str, Session] = {}
        self._failures: dict[str, list[float]] = {}
        Page = Callable[[Request], Awaitable[Response]]
        self.pages: dict[tuple[str, str], tuple[Page, bool]] = {  # (method, path) -> (page, login needed)
            ("GET", "/login"): (self.login_form, False),
            ("POST", "/login"): (self.login, False),
            ("GET", "/style.css"): (self.style, False),
            ("POST", "/logout"): (self.logout, True),
            ("GET", "/"): (self.quarantine, True),
            ("GET", "/devices"): (self.devices, True),
            ("GET", "/device"): (self.device, True),
            ("POST", "/device/access"): (self.device_access, True),
            ("POST", "/device/action"): (self.device_action, True),
            ("GET", "/abq"): (self.abq, True),
            ("POST", "/abq/mode"): (self.abq_mode, True),
            ("GET", "/settings"): (self.settings, True),
            ("POST", "/settings"): (self.change_setting, True),
            ("GET", "/audit"): (self.audit, True),
        }

    # -- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:  # the ActiveSync app's lifespan owns the state store
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        try:
            response = await self._respond(scope, receive)
        except Refused as e:
            response = self._error(e.status, str(e))
        await self._send(send, response)

    async def _respond(self, scope: Scope, receive: Receive) -> Response:
        headers: dict[str, str] = {}
        for k, v in scope.get("headers", ()):
            headers[k.decode("latin-1").lower()] = v.decode("latin-1")
        method = scope.get("method", "GET").upper()
        if method == "HEAD":
            method = "GET"
        body = await self._body(headers, receive)
        client = scope.get("client")
        request = Request(method, scope.get("path", "/"), _fields(scope.get("query_string", b"")),
                          headers, {}, str(client[0]) if client else "")
        found = self.pages.get((method, request.path))
        if found is None:
            if any(path == request.path for _, path in self.pages):
                raise Refused(405, "method not allowed")
            raise Refused(404, "no such page")
        page, needs_login = found
        if method == "POST":
            self._same_origin(request)
            if "application/x-www-form-urlencoded" not in headers.get("content-type", ""):
                raise Refused(415, "a form is expected")
            request.form = _fields(body)
        request.session, request.token = self._session(headers)
        if needs_login:
            if request.session is None:
                return _redirect("/login")
            if not await self._still_admin(request.session):
                self.sessions.pop(request.token, None)
                return _redirect("/login")
            if method == "POST" and not secrets.compare_digest(request.form.get("csrf", ""),
                                                               request.session.csrf):
                raise Refused(403, "the form's CSRF token is missing or wrong: reload the page")
        return await page(request)

    async def _body(self, headers: dict[str, str], receive: Receive) -> bytes:
        declared = headers.get("content-length", "0").strip()
        if not declared.isdigit():
            raise Refused(400, "bad Content-Length")
        if int(declared) > MAX_FORM_BYTES:
            raise Refused(413, "form too large")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Refused(400, "client left")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_FORM_BYTES:
                raise Refused(413, "form too large")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    def _same_origin(request: Request) -> None:
        """A browser says where a form came from: another site's page is refused."""
        origin = request.headers.get("origin")
        if origin is not None and (origin == "null" or urlsplit(origin).netloc != request.headers.get("host")):
            raise Refused(403, "form posted from another site")

    async def _send(self, send: Send, response: Response) -> None:
        body = response.body.encode("utf-8")
        headers = [(b"content-type", response.content_type.encode()),
                   (b"content-length", str(len(body)).encode())]
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in SECURITY_HEADERS + response.headers]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    # -- sessions ------------------------------------------------------------------------

    def _session(self, headers: dict[str, str]) -> tuple[Session | None, str]:
        token = _cookies(headers).get(SESSION_COOKIE, "")
        session = self.sessions.get(token)
        if session is None:
            return None, ""
        now = self.clock()
        if now - session.seen > SESSION_IDLE_SECONDS or now - session.created > SESSION_MAX_SECONDS:
            del self.sessions[token]
            return None, ""
        session.seen = now
        return session, token

    async def _still_admin(self, session: Session) -> bool:
        return await self.store.get_setting(ADMIN_PREFIX + session.admin) is not None

    def _cookie(self, name: str, value: str, max_age: int) -> tuple[str, str]:
        secure = "; Secure" if self.secure else ""
        return ("set-cookie", f"{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")

    def _throttled(self, client: str) -> bool:
        now = self.clock()
        recent = [t for t in self._failures.get(client, ()) if now - t < FAILURE_WINDOW_SECONDS]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return len(recent) >= MAX_FAILURES

    def _failed(self, client: str) -> None:
        if len(self._failures) >= 10000:
            self._failures.clear()
        self._failures.setdefault(client, []).append(self.clock())

    # -- login ---------------------------------------------------------------------------

    async def login_form(self, request: Request, problem: str = "") -> Response:
        token = _cookies(request.headers).get(LOGIN_COOKIE, "")
        if not re.fullmatch(r"[A-Za-z0-9_-]{32,64}", token):
            token = secrets.token_urlsafe(32)
        none_yet = "" if await list_admins(self.store) else (
            "<p class='flash'>No admin account exists yet: add one with <code>eas web user add NAME</code>.</p>")
        error = f"<p class='flash error'>{_e(problem)}</p>" if problem else ""
        body = (f"<h1>eas admin</h1>{none_yet}{error}<form method='post' action='/login'>"
                f"<input type='hidden' name='csrf' value='{_e(token)}'>"
                "<p><label>Name <input name='name' id='name' autocomplete='username' required></label></p>"
                "<p><label>Password <input name='password' id='password' type='password' "
                "autocomplete='current-password' required></label></p>"
                "<p><button type='submit' id='login'>Log in</button></p></form>")
        return Response(401 if problem else 200, _document("Log in", body),
                        [self._cookie(LOGIN_COOKIE, token, 3600)])

    async def login(self, request: Request) -> Response:
        expected = _cookies(request.headers).get(LOGIN_COOKIE, "")
        if not expected or not secrets.compare_digest(request.form.get("csrf", ""), expected):
            raise Refused(403, "the login form's CSRF token is missing or wrong: reload the page")
        if self._throttled(request.client):
            raise Refused(429, "too many failed logins: try again in a few minutes")
        name = request.form.get("name", "")[:MAX_ADMIN_NAME * 2]
        admin = await verify_admin(self.store, name, request.form.get("password", ""))
        if admin is None:
            self._failed(request.client)
            await self.store.record_event(AuditEvent("web.login.failed", actor="web",
                                                      detail=f"{name[:MAX_ADMIN_NAME]!r} from {request.client}"))
            await asyncio.sleep(self.failure_delay)
            return await self.login_form(request, "Wrong name or password.")
        if len(self.sessions) >= MAX_SESSIONS:
            oldest = min(self.sessions, key=lambda t: self.sessions[t].seen)
            del self.sessions[oldest]
        token = secrets.token_urlsafe(32)
        now = self.clock()
        self.sessions[token] = Session(admin, secrets.token_urlsafe(32), now, now)
        await self.store.record_event(AuditEvent("web.login", actor=f"web:{admin}", detail=request.client))
        return _redirect("/", [self._cookie(SESSION_COOKIE, token, SESSION_MAX_SECONDS),
                               self._cookie(LOGIN_COOKIE, "", 0)])

    async def logout(self, request: Request) -> Response:
        self.sessions.pop(request.token, None)
        return _redirect("/login", [self._cookie(SESSION_COOKIE, "", 0)])

    async def style(self, request: Request) -> Response:
        return Response(200, STYLE, content_type="text/css; charset=utf-8")

    # -- pages ---------------------------------------------------------------------------

    def _page(self, request: Request, title: str, body: str) -> Response:
        session = request.session
        assert session is not None
        flashes = "".join(f"<p class='flash{' error' if bad else ''}'>{_e(text)}</p>" for text, bad in session.flash)
        session.flash.clear()
        nav = ("<nav><a href='/'>Quarantine</a><a href='/devices'>Devices</a><a href='/abq'>ABQ</a>"
               "<a href='/settings'>Settings</a><a href='/audit'>Audit</a>"
               f"<form method='post' action='/logout'>{self._csrf(request)}"
               f"<button type='submit' id='logout'>Log out {_e(session.admin)}</button></form></nav>")
        return Response(200, _document(title, f"{nav}<main><h1>{_e(title)}</h1>{flashes}{body}</main>"))

    @staticmethod
    def _csrf(request: Request) -> str:
        assert request.session is not None
        return f"<input type='hidden' name='csrf' value='{_e(request.session.csrf)}'>"

    def _button(self, request: Request, action: str, fields: dict[str, str], label: str, ident: str = "") -> str:
        """A one-button POST form."""
        hidden = "".join(f"<input type='hidden' name='{_e(k)}' value='{_e(v)}'>" for k, v in fields.items())
        id_attr = f" id='{_e(ident)}'" if ident else ""
        return (f"<form class='inline' method='post' action='{_e(action)}'>{self._csrf(request)}{hidden}"
                f"<button type='submit'{id_attr}>{_e(label)}</button></form>")

    @staticmethod
    def _done(request: Request, message: str, *, error: bool = False, to: str = "/") -> Response:
        assert request.session is not None
        request.session.flash.append((message, error))
        return _redirect(to)

    async def quarantine(self, request: Request) -> Response:
        from eas.access.abq import device_entries

        devices = [d for d in await self.store.list_devices() if d.access in RESTRICTED]
        # A decision made here applies at the device's next request (ABQ runs then): say so.
        decided = {e.key: e for e in await device_entries(self.store)}
        rows = []
        for n, d in enumerate(sorted(devices, key=lambda d: (d.access, -d.access_time))):
            where = {"user": d.user, "device_id": d.device_id, "back": "/"}
            entry = decided.get((d.device_id.casefold(), d.user.casefold()))
            pending = (f"<span class='pending'>{_e(entry.state)} by {_e(entry.actor)}, from its next request</span>"
                       if entry is not None and entry.state != d.access else "")
            rows.append(f"<tr class='device'>{_device_cells(d)}<td>{_e(d.access_reason)}</td>"
                        f"<td>{_e(_when(d.access_time))}</td><td>{pending}"
                        + self._button(request, "/device/access", {**where, "state": "allowed"}, "Allow",
                                       f"allow-{n}")
                        + self._button(request, "/device/access", {**where, "state": "blocked"}, "Block",
                                       f"block-{n}")
                        + "</td></tr>")
        table = (_table(["Account", "Device", "Type", "Model", "User agent", "State", "Reason", "Since", ""], rows)
                 if rows else "<p id='none'>No quarantined, blocked or undiscovered devices.</p>")
        return self._page(request, "Quarantined devices", table)

    async def device_access(self, request: Request) -> Response:
        """Allow or block a device for its account (a personal ABQ entry)."""
        form = request.form
        user, device_id, state = form.get("user", ""), form.get("device_id", ""), form.get("state", "")
        back = _local(form.get("back", "/"))
        if state not in ("allowed", "blocked", "quarantined"):
            return self._done(request, f"not a device state: {state!r}", error=True, to=back)
        from eas.access.abq import set_device

        try:
            # A personal entry: allowed or blocked for this account (a device-list entry,
            # without an account, would decide for every account using the same id).
            await set_device(self.store, device_id, state, user=user, actor=self._actor(request),
                             note="admin web page")
        except (KeyError, ValueError, TypeError) as e:
            return self._done(request, f"{device_id!r}: {_message(e)}", error=True, to=back)
        self.activesync.abq.forget()  # this process's ABQ cache: the device's next request sees it
        self.activesync.end_user_waits(user)
        return self._done(request, f"{device_id} of {user}: {state}", to=back)

    async def devices(self, request: Request) -> Response:
        from eas.access.devices import STATE_FILTERS, list_devices, state_of

        q = request.query
        user, state, kind = q.get("user", "").strip(), q.get("state", ""), q.get("type", "").strip()
        try:
            found = await list_devices(self.store, user=user or None, state=state or None, device_type=kind or None)
        except (ValueError, TypeError) as e:
            assert request.session is not None
            request.session.flash.append((f"filter: {e}", True))
            found = []
        options = "".join(f"<option value='{s}'{' selected' if s == state else ''}>{s or '(any)'}</option>"
                          for s in ("", *STATE_FILTERS))
        filters = (f"<form method='get' action='/devices'><label>Account <input name='user' value='{_e(user)}'>"
                   f"</label> <label>State <select name='state'>{options}</select></label> "
                   f"<label>Type <input name='type' value='{_e(kind)}'></label> "
                   "<button type='submit'>Filter</button></form>")
        rows = [f"<tr class='device'>{_device_cells(d)}<td>{_e(state_of(d))}</td>"
                f"<td>{_e(_when(d.last_seen))}</td></tr>" for d in found]
        table = _table(["Account", "Device", "Type", "Model", "User agent", "Access", "State", "Last seen"],
                       rows) if rows else "<p id='none'>No devices.</p>"
        return self._page(request, "Devices", filters + table)

    async def device(self, request: Request) -> Response:
        from eas.access.devices import device_details

        try:
            details = await device_details(self.store, request.query.get("user", ""), request.query.get("id", ""))
        except (KeyError, ValueError, TypeError) as e:
            raise Refused(404, f"no such device: {_message(e)}") from None
        d = details.device
        facts = [("Account", d.user), ("Device id", d.device_id), ("Type", d.device_type), ("Model", d.model),
                 ("OS", d.os), ("User agent", d.user_agent), ("Friendly name", d.friendly_name),
                 ("IMEI", d.imei), ("Protocol", d.protocol_version), ("First seen", _when(d.first_seen)),
                 ("Last seen", _when(d.last_seen)), ("Access", f"{d.access} ({d.access_reason or '-'})"),
                 ("Wipe", d.wipe or "none"), ("Suspended", "yes" if d.suspended else "no"),
                 ("Policy", details.policy), ("Items skipped by loop detection", len(details.skipped))]
        info = _table(["", ""], [f"<tr><th>{_e(k)}</th><td id='fact-{_e(k.lower().replace(' ', '-'))}'>"
                                 f"<code>{_e(v)}</code></td></tr>" for k, v in facts])
        where = {"user": d.user, "device_id": d.device_id}
        actions = " ".join(self._button(request, "/device/action", {**where, "action": a}, label, f"action-{a}")
                           for a, (_, _, label) in DEVICE_ACTIONS.items())
        back = f"/device?{urlencode({'user': d.user, 'id': d.device_id})}"
        access = " ".join(self._button(request, "/device/access", {**where, "state": s, "back": back}, label,
                                       f"access-{s}")
                          for s, label in (("allowed", "Allow"), ("blocked", "Block"), ("quarantined", "Quarantine")))
        history = _events_table(details.history) if details.history else "<p>No history.</p>"
        return self._page(request, f"Device {d.device_id}",
                          f"{info}<h2>Access</h2><p>{access}</p><h2>Actions</h2><p>{actions}</p>"
                          f"<h2>History</h2>{history}")

    async def device_action(self, request: Request) -> Response:
        form = request.form
        user, device_id, action = form.get("user", ""), form.get("device_id", ""), form.get("action", "")
        back = f"/device?{urlencode({'user': user, 'id': device_id})}"
        if action not in DEVICE_ACTIONS:
            return self._done(request, f"not a device action: {action!r}", error=True, to="/devices")
        name, extra, label = DEVICE_ACTIONS[action]
        from eas.access import devices as admin

        try:
            done = await getattr(admin, name)(self.store, user, device_id, actor=self._actor(request),
                                              wake=self.activesync.end_user_waits, **extra)
        except (KeyError, ValueError, TypeError) as e:
            return self._done(request, f"{label}: {_message(e)}", error=True, to=back)
        if done is False:  # suspend of a suspended device, resume of a running one
            return self._done(request, f"{label}: nothing to do for {device_id} of {user}", to=back)
        return self._done(request, f"{label}: done for {device_id} of {user}",
                          to="/devices" if action == "remove" else back)

    async def abq(self, request: Request) -> Response:
        from eas.access import abq, get_setting

        mode = await get_setting(self.store, "abq.mode")
        options = "".join(f"<option value='{m}'{' selected' if m == mode else ''}>{m}</option>" for m in abq.MODES)
        rules = [f"<tr><td><code>{_e(rule.describe())}</code></td></tr>" for rule in await abq.rules(self.store)]
        entries = [f"<tr><td><code>{_e(e.device_id)}</code></td><td>{_e(e.user or '(every account)')}</td>"
                   f"<td>{_e(e.state)}</td><td>{_e(e.note)}</td><td>{_e(e.actor)}</td><td>{_e(_when(e.time))}</td></tr>"
                   for e in await abq.device_entries(self.store)]
        body = (f"<p>Mode: <strong id='abq-mode'>{_e(mode)}</strong></p>"
                f"<form method='post' action='/abq/mode'>{self._csrf(request)}"
                f"<label>Mode <select name='mode' id='mode'>{options}</select></label> "
                "<label><input type='checkbox' name='grandfather' value='1' checked> "
                "keep syncing the devices allowed now</label> <button type='submit' id='set-mode'>Set mode</button>"
                "</form><h2>Rules</h2>" + (_table(["Rule"], rules) if rules else "<p>No rules.</p>")
                + "<h2>Device entries</h2>"
                + (_table(["Device", "Account", "State", "Note", "By", "When"], entries) if entries else
                   "<p>No device entries.</p>"))
        return self._page(request, "Allow / Block / Quarantine", body)

    async def abq_mode(self, request: Request) -> Response:
        from eas.access.abq import set_mode

        mode = request.form.get("mode", "").strip()
        try:
            kept = await set_mode(self.store, mode, actor=self._actor(request),
                                  grandfather=request.form.get("grandfather") == "1")
        except (KeyError, ValueError, TypeError) as e:
            return self._done(request, f"mode {mode!r}: {_message(e)}", error=True, to="/abq")
        self.activesync.abq.forget()
        return self._done(request, f"ABQ mode: {mode}" + (f" ({kept} devices kept allowed)" if kept else ""),
                          to="/abq")

    async def settings(self, request: Request) -> Response:
        from eas.access import known_settings

        values = await self.store.settings()
        rows = []
        for name, setting in sorted(known_settings().items()):
            if name.endswith("*"):
                stored = sorted(n for n in values if n.startswith(name[:-1]))
                rows.append(f"<tr><th colspan='3'><code>{_e(name)}</code></th><td>"
                            f"{self._setting_form(request, '', '', new_under=name[:-1])}"
                            f"<div class='help'>{_e(setting.help)}</div></td></tr>")
                rows += [self._setting_row(request, n, values[n], setting.default, True) for n in stored]
            else:
                rows.append(self._setting_row(request, name, values.get(name), setting.default, name in values,
                                              setting.help))
        return self._page(request, "Settings", _table(["Name", "Value", "Default", "Change"], rows))

    def _setting_row(self, request: Request, name: str, value: Any, default: Any, stored: bool,
                     help: str = "") -> str:
        secret = _secret(name)
        shown = ("(set)" if secret else _json(value)) if stored else "(default)"
        return (f"<tr class='setting'><td><code>{_e(name)}</code></td><td id='value-{_e(name)}'>"
                f"<code>{_e(shown)}</code></td><td><code>{_e(_json(default))}</code></td>"
                f"<td>{self._setting_form(request, name, '' if secret else _json(value if stored else default))}"
                f"<div class='help'>{_e(help)}</div></td></tr>")

    def _setting_form(self, request: Request, name: str, value: str, *, new_under: str = "") -> str:
        if new_under:
            name_field = f"<input name='name' value='{_e(new_under)}' size='30'>"
            clear = ""
        else:
            name_field = f"<input type='hidden' name='name' value='{_e(name)}'>"
            clear = f" <button type='submit' name='op' value='clear' id='clear-{_e(name)}'>Clear</button>"
        return (f"<form class='inline' method='post' action='/settings'>{self._csrf(request)}{name_field}"
                f"<input name='value' value='{_e(value)}' size='30' id='input-{_e(name or new_under)}'"
                f"{' type=password autocomplete=off' if _secret(name) else ''}> "
                f"<button type='submit' name='op' value='set' id='set-{_e(name or new_under)}'>Set</button>"
                f"{clear}</form>")

    async def change_setting(self, request: Request) -> Response:
        """As ``eas config set|clear``: a JSON value, or a bare word for the string it spells."""
        from eas.access import change_setting

        name, text = request.form.get("name", "").strip(), request.form.get("value", "")
        clear = request.form.get("op") == "clear"
        if name.startswith(ADMIN_PREFIX):
            return self._done(request, f"unknown setting {name!r}", error=True, to="/settings")
        try:
            value = None if clear else json.loads(text)
        except ValueError:
            value = text.strip()
        if value is None and not clear:
            return self._done(request, f"{name}: null is not a value (Clear resets it)", error=True, to="/settings")
        try:
            stored = await change_setting(self.store, name, value, actor=self._actor(request))
        except KeyError:
            return self._done(request, f"unknown setting {name!r}", error=True, to="/settings")
        except (ValueError, TypeError) as e:
            return self._done(request, f"invalid value for {name}: {e}", error=True, to="/settings")
        shown = "(set)" if _secret(name) else _json(stored)
        return self._done(request, f"{name} cleared" if clear else f"{name} = {shown}", to="/settings")

    async def audit(self, request: Request) -> Response:
        events = await self.store.events(limit=AUDIT_LIMIT)
        return self._page(request, "Audit trail", _events_table(events) if events else "<p>No events.</p>")

    @staticmethod
    def _actor(request: Request) -> str:
        assert request.session is not None
        return f"web:{request.session.admin}"

    def _error(self, status: int, message: str) -> Response:
        return Response(status, _document("Error", f"<main><h1>{status}</h1><p>{_e(message)}</p>"
                                                   "<p><a href='/'>Back</a></p></main>"))


# -- HTML helpers ----------------------------------------------------------------------------


def _document(title: str, body: str) -> str:
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{_e(title)} - eas admin</title><link rel='stylesheet' href='/style.css'></head>"
            f"<body>{body}</body></html>")


def _table(heads: Iterable[str], rows: Iterable[str]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in heads)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _device_cells(d: DeviceRecord, *, link: bool = True) -> str:
    device = _e(d.device_id)
    if link:
        device = f"<a href='/device?{_e(urlencode({'user': d.user, 'id': d.device_id}))}'>{device}</a>"
    return (f"<td>{_e(d.user)}</td><td><code>{device}</code></td><td>{_e(d.device_type)}</td>"
            f"<td>{_e(d.model)}</td><td><code>{_e(d.user_agent)}</code></td><td>{_e(d.access)}</td>")


def _events_table(events: Iterable[AuditEvent]) -> str:
    rows = [f"<tr class='event'><td>{_e(_when(ev.time))}</td><td>{_e(ev.action)}</td><td>{_e(ev.actor)}</td>"
            f"<td>{_e(ev.user)}</td><td><code>{_e(ev.device_id)}</code></td><td>{_e(ev.detail)}</td></tr>"
            for ev in events]
    return _table(["Time", "Action", "Actor", "Account", "Device", "Detail"], rows)


def _secret(name: str) -> bool:
    """A setting whose value the page never shows (registered as secret:
    ``notifier.smtp_password``)."""
    from eas.access import lookup

    try:
        return lookup(name).secret
    except KeyError:
        return True  # not a setting the page knows: shown as little as possible



def _message(e: BaseException) -> str:
    return str(e.args[0]) if type(e) is KeyError and e.args else str(e)


def _redirect(to: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(303, "", [("location", to), *(headers or [])])


def _local(path: str) -> str:
    """A path on this site to go back to (never another site's URL)."""
    safe = path.isascii() and path.isprintable() and " " not in path and "\\" not in path
    return path if safe and path.startswith("/") and not path.startswith("//") else "/"


def _fields(raw: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "malformed form or query") from None
    return dict(pairs)


def _cookies(headers: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in headers.get("cookie", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            out.setdefault(name, value)
    return out
