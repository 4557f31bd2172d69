"""The protocol core: one transport-neutral request in, one response out.

``ActiveSync.handle`` follows DESIGN.md "One request, end to end": parse (MS-ASHTTP),
gatekeeping in a fixed order (authentication, access decision, provisioning check, each
a hook with a built-in default), then the command handler under the (user, device) lock,
with the device's state committed once the handler returns. Errors are turned into
responses here and nowhere else: a common status in WBXML for 14.0 and later where the
command has one, the HTTP status otherwise, never a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field

from eas import commands, merge
from eas.access import AccessDecision, AccessHook, PolicyDecision, PolicyHook
from eas.access.abq import ABQ
from eas.access.jail import Jail
from eas.access.logger import AccountLoggers
from eas.access.mobile import GroupsHook, MobileAccess
from eas.access.policies import PolicyEngine
from eas.access.quarantine import MAILBOX_COMMANDS, PASS_COMMANDS, NoticeMailboxes
from eas.access.versions import VersionFilters
from eas.backend import Backend
from eas.commands.provision import WIPE_DUE
from eas.config import Config
from eas.context import Context
from eas.protocol import status as st
from eas.protocol.errors import AccessDenied, AuthenticationError, EASError, ProtocolError
from eas.protocol.http import (
    WBXML_CONTENT_TYPE,
    EASRequest,
    HTTPRequest,
    HTTPResponse,
    accepts_gzip,
    gzip_body,
    parse_request,
)
from eas.protocol.versions import Version, command_in_version, has_tag
from eas.state.model import AuditEvent, DeviceRecord
from eas.state.session import DeviceState
from eas.state.store import StateStore
from eas.wbxml import Node, WBXMLError, Writer, decode

__all__ = ["AccessDecision", "AccessHook", "ActiveSync", "Authenticator", "ClientHook", "Config", "PolicyDecision", "PolicyHook",
           "allow_all", "peer_address", "permissive_policy"]  # Config from eas.config, here too for ActiveSync(config=...)

log = logging.getLogger("eas")

Authenticator = Callable[[str, str], Awaitable[str | None]]
"""``authenticate(login, password)``: the account's canonical name, or None to refuse.
``login`` is what the client typed: ``user``, ``DOMAIN\\user`` or ``user@domain``."""


ClientHook = Callable[[HTTPRequest], Awaitable[str | None]]
"""``client_address(http)``: the client's address (behind trusted proxies), or None to
refuse the request with 403 before authentication (``eas.access.ipallow``)."""


async def peer_address(http: HTTPRequest) -> str | None:
    """The default client hook: the peer is the client, and every client may try."""
    return http.client


async def allow_all(request: EASRequest, user: str, device: DeviceRecord) -> AccessDecision:
    """An access hook that allows every device (the built-in one is ``eas.access.abq``)."""
    return AccessDecision()


async def permissive_policy(user: str, device: DeviceRecord) -> PolicyDecision:
    """A policy hook under which devices provision and the policy asks nothing of them
    (the built-in one is ``eas.access.policies``)."""
    return PolicyDecision()


class ActiveSync:
    """An ActiveSync server over a backend and a state store.

    Hooks: ``authenticate`` (required), ``access`` (the ABQ engine, ``self.abq``),
    ``policy`` (the policy engine, ``self.policies``), ``client_address`` (the peer).
    ``notify(user, folder_ids)`` wakes that user's waiting Pings; it is connected to the
    backend's ``watch`` and may be called from any thread.
    """

    def __init__(self, backend: Backend, store: StateStore, *, authenticate: Authenticator,
                 access: AccessHook | None = None, policy: PolicyHook | None = None,
                 client_address: ClientHook = peer_address, config: Config | None = None) -> None:
        self.backend = backend
        self.store = store
        self.authenticate = authenticate
        self.abq = ABQ(store)  # the built-in access hook (eas.access.abq)
        self.access: AccessHook = access or self.abq
        # The policy engine finds an account's groups through self.groups, read per call
        # so that an embedder may replace the hook after construction.
        self.policies = PolicyEngine(store, groups=lambda account: self.groups(account))
        self.policy: PolicyHook = policy or self.policies
        self.notices = NoticeMailboxes(store)  # what restricted devices see (eas.access.quarantine)
        self.client_address = client_address
        self.config = config or Config()
        self.jail = Jail(store)  # the rate jail; replace it (or its clock) before serving
        self.versions = VersionFilters(store)  # the versions hook (eas.access.versions), likewise
        self.loggers = AccountLoggers(store)  # protocol loggers (eas.access.logger); server.build sets its folder
        self.mobile = MobileAccess(store)  # mobile access on or off (eas.access.mobile)
        self.groups: GroupsHook = self.mobile.groups_from_settings  # an account's classes of service
        self._locks: dict[tuple[str, str], _DeviceLock] = {}
        self._superseders: dict[tuple[str, str], _Waiter] = {}
        self._waiters: dict[str, set[_Waiter]] = {}
        self._changes: dict[str, int] = {}  # per user, counts wake-ups delivered
        self._auth_cache: dict[bytes, tuple[str, float]] = {}
        self._auth_key = secrets.token_bytes(32)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        backend.watch(self.notify)

    # -- the request ---------------------------------------------------------------------

    async def handle(self, http: HTTPRequest) -> HTTPResponse:
        """Answer one HTTP request. Never raises."""
        self._bind_loop()
        try:
            response = await self._handle(http)
        except EASError as e:
            response = _error_response(e, None)
        except Exception:
            log.exception("unhandled error in %s %s", http.method, http.path)
            response = HTTPResponse(st.INTERNAL_SERVER_ERROR, [], b"")
        return self._finish(http, response)

    async def _handle(self, http: HTTPRequest) -> HTTPResponse:
        address = await self.client_address(http)
        if address is None:
            return HTTPResponse(st.FORBIDDEN, [], b"")
        http.client = address  # from here on the client, also for the later engines
        if http.path.lower().startswith("/autodiscover/"):
            from eas import autodiscover  # loaded by the servers that are asked only

            return await autodiscover.handle(self, http)
        if http.path.rstrip("/").lower() != self.config.path.lower():
            return HTTPResponse(st.NOT_FOUND, [], b"")
        if http.method == "OPTIONS":
            _, account = await self._authenticate(http)
            return self._options(await self.versions(self.config.versions, account, http.header("user-agent", "") or "",
                                                     None))
        if http.method != "POST":
            return HTTPResponse(st.METHOD_NOT_ALLOWED, [("Allow", "OPTIONS, POST")], b"")
        request = parse_request(http, max_body=self.config.max_request_body)
        try:
            return await self._command(http, request)
        except EASError as e:
            return _error_response(e, request)

    async def _command(self, http: HTTPRequest, request: EASRequest) -> HTTPResponse:
        login, account = await self._authenticate(http)
        logger = await self.loggers.get(account)  # eas.access.logger: None for most accounts
        if logger is None:
            return await self._gated(http, request, login, account)
        self.loggers.clamp(logger, request)
        try:
            response = await self._gated(http, request, login, account)
        except EASError as e:
            response = _error_response(e, request)
        self.loggers.write(account, logger, http, request, response)
        return response

    async def _gated(self, http: HTTPRequest, request: EASRequest, login: str, account: str) -> HTTPResponse:
        if request.user and not _same_account(request.user, login, account):
            raise AccessDenied("the User parameter names another account than the one authenticated")
        await self.mobile.admit(account, self.groups)
        release = await self.jail.admit(account, request.device_id,
                                        replaces=(account, request.device_id) in self._superseders)
        try:
            return await self._admitted(request, account)
        finally:
            release()

    async def _admitted(self, request: EASRequest, account: str) -> HTTPResponse:
        offered = await self.versions(self.config.versions, account, request.user_agent, request.device_type,
                                      request.version, request.device_id)
        if request.version not in offered:
            raise ProtocolError(f"protocol version {request.version} is not offered")
        if not command_in_version(request.command, request.version):
            raise ProtocolError(f"{request.command} is not in protocol version {request.version}",
                                status=st.Common.VersionNotSupported)
        handle = commands.handler(request.command)
        if handle is None:
            raise EASError(f"{request.command} is not implemented", status=st.Common.CommandNotSupported,
                           http_status=st.NOT_IMPLEMENTED)
        key = (account, request.device_id)
        self._supersede(key)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = _DeviceLock()
        lock.users += 1
        try:
            async with lock.lock:
                return await self._locked(request, account, handle)
        finally:
            lock.users -= 1
            if not lock.users:
                del self._locks[key]

    async def _locked(self, request: EASRequest, account: str,
                      handle: commands.Handler) -> HTTPResponse:
        device = await self._device(request, account)
        notices: Backend | None = None
        if device.wipe not in WIPE_DUE:  # a wipe reaches any device, again until it is removed
            if device.suspended:
                await self.store.commit(device, {})
                raise AccessDenied("device suspended", status=st.Common.DeviceIsBlockedForThisUser)
            decision = await self.access(request, account, device)
            await self._record_decision(device, decision)
            if decision.access != "allowed" and request.command not in PASS_COMMANDS:
                if request.command in MAILBOX_COMMANDS:
                    notices = await self.notices.backend(account, device, decision)
                if notices is None:
                    await self.store.commit(device, {})
                    raise AccessDenied(f"device {decision.access}", status=st.Common.DeviceIsBlockedForThisUser)
        info = commands.COMMANDS[request.command]
        state = DeviceState(self.store, device)
        if info.provisioning:
            problem = await self._provisioning_problem(request, device)
            if problem:
                await state.commit()
                raise EASError("device must provision", status=problem, http_status=st.RETRY_AFTER_PROVISIONING)
        # The body only in the context: a long poll drops it while it waits (Context.wait).
        ctx = Context(self, request, account, state, self._body(request, info), self._changes.get(account, 0),
                      None if notices is not None else merge.view(self.config, request, self.backend), notices)
        response = await handle(ctx)
        await state.commit()
        return response

    async def _record_decision(self, device: DeviceRecord, decision: AccessDecision) -> None:
        """Keep the decision on the device record. A new state, or a new reason for
        holding a device back, is audited (not a new device's first "allowed": a
        permissive server would log every device); a change between allowed and not
        resets the device's sync state (before it is loaded), so that the device
        re-syncs to the mailbox it may now see."""
        if (device.access, device.access_reason) == (decision.access, decision.reason):
            return
        new_state = device.access != decision.access
        if (device.access == "allowed") != (decision.access == "allowed"):
            await self.store.reset_device(device.user, device.device_id)
        device.access, device.access_reason = decision.access, decision.reason
        device.access_time = time.time()
        if new_state or decision.access != "allowed":
            await self.store.record_event(AuditEvent(f"access.{decision.access}", actor="abq", user=device.user,
                                                     device_id=device.device_id,
                                                     detail="; ".join(filter(None, (decision.reason,
                                                                                    decision.detail)))))

    async def _authenticate(self, http: HTTPRequest) -> tuple[str, str]:
        """``(login, account)`` from the Basic credentials, or 401."""
        header = http.header("authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic" or not value:
            raise AuthenticationError("credentials required", headers=_CHALLENGE)
        try:
            login, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise AuthenticationError("malformed credentials", headers=_CHALLENGE) from None
        if not sep or not login or len(login) > 320 or len(password) > 1024:
            raise AuthenticationError("malformed credentials", headers=_CHALLENGE)
        account = await self._check_password(login, password)
        if account is None:
            raise AuthenticationError("credentials refused", headers=_CHALLENGE)
        return login, account

    async def _check_password(self, login: str, password: str) -> str | None:
        """The authenticate hook, behind a cache of recent successes keyed by a keyed hash
        of the credentials (so the cache never holds a password)."""
        ttl = self.config.auth_cache_seconds
        if ttl <= 0:
            return await self.authenticate(login, password)
        key = hmac.digest(self._auth_key, f"{login}\0{password}".encode(), "sha256")
        now = time.monotonic()
        hit = self._auth_cache.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        account = await self.authenticate(login, password)
        if account is not None:
            if len(self._auth_cache) >= 10000:
                self._auth_cache = {k: v for k, v in self._auth_cache.items() if v[1] > now}
            self._auth_cache[key] = (account, now + ttl)
        return account

    def forget_credentials(self) -> None:
        """Drop cached logins (call after a password change or an account is disabled)."""
        self._auth_cache.clear()

    async def _device(self, request: EASRequest, account: str) -> DeviceRecord:
        """The device record, created on first contact and updated on every request."""
        device = await self.store.get_device(account, request.device_id)
        if device is None:
            device = DeviceRecord(user=account, device_id=request.device_id)
        device.device_type = request.device_type
        device.user_agent = request.user_agent[:256] or device.user_agent
        device.protocol_version = request.version.text
        device.last_seen = time.time()
        return device

    async def _provisioning_problem(self, request: EASRequest, device: DeviceRecord) -> int | None:
        """The common status forcing a (re)provision, or None (MS-ASPROV 3.2.5.1)."""
        if device.wipe in WIPE_DUE:
            return st.Common.RemoteWipeRequested
        policy = await self.policy(device.user, device)
        if not policy.required:
            return None
        if request.policy_key is None and not device.policy_key and policy.allow_non_provisionable:
            return None  # a device that never sends a policy key, let in without one
        if not device.policy_key:
            return st.Common.DeviceNotProvisioned
        if request.policy_key != device.policy_key:
            return st.Common.InvalidPolicyKey if request.policy_key else st.Common.DeviceNotProvisioned
        if device.policy_hash != policy.hash:
            return st.Common.PolicyRefresh
        return None

    def _body(self, request: EASRequest, info: commands.CommandInfo) -> Node | None:
        """The decoded WBXML body; None when empty or raw MIME."""
        if not request.body:
            if info.empty_body or (info.mime_before_14 and request.version < Version("14.0")):
                return None
            raise ProtocolError("request body missing", status=st.Common.InvalidContent)
        if info.mime_before_14 and request.version < Version("14.0"):
            return None
        try:
            return decode(request.body, limits=self.config.wbxml_limits)
        except WBXMLError as e:
            raise ProtocolError(f"malformed WBXML: {e}", status=st.Common.InvalidWBXML) from None

    def _options(self, versions: tuple[Version, ...]) -> HTTPResponse:
        """MS-ASHTTP 2.2.4: the versions offered to this client and the commands in them."""
        return HTTPResponse(st.OK, [
            ("Allow", "OPTIONS,POST"),
            ("MS-ASProtocolVersions", ",".join(v.text for v in versions)),
            ("MS-ASProtocolCommands", ",".join(c for c in commands.COMMANDS
                                               if any(command_in_version(c, v) for v in versions))),
        ], b"")

    def _finish(self, http: HTTPRequest, response: HTTPResponse) -> HTTPResponse:
        """Headers every response carries; gzip when the client takes it."""
        response.headers += [("MS-Server-ActiveSync", self.config.server_version), ("Cache-Control", "private")]
        if len(response.body) >= self.config.gzip_min_size and accepts_gzip(http):
            response.body = gzip_body(response.body)
            response.headers.append(("Content-Encoding", "gzip"))
        return response

    # -- change notification and long polls ----------------------------------------------

    def _bind_loop(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()

    def notify(self, user: str, folder_ids: Collection[str] = ()) -> None:
        """Something changed in these backend folders of ``user`` (empty: anywhere).
        Safe to call from any thread."""
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self.notify, user, tuple(folder_ids))
            return
        if self.config.instant_notifications:
            self._wake(user, folder_ids)
        else:
            loop.call_later(self.config.notification_latency, self._wake, user, tuple(folder_ids))

    def _wake(self, user: str, folder_ids: Collection[str]) -> None:
        self._changes[user] = self._changes.get(user, 0) + 1
        for waiter in list(self._waiters.get(user, ())):
            if not folder_ids or any(f in waiter.folders for f in folder_ids):
                waiter.change()

    def end_user_waits(self, user: str) -> None:
        """End the waiting long polls of ``user``'s devices, so that their next request
        meets what an administrator just changed (access, wipe, suspension)."""
        for (owner, _), waiter in list(self._superseders.items()):
            if owner == user:
                waiter.supersede()

    def end_waits(self) -> None:
        """End every waiting long poll now, as a newer request of its device would: a
        server shutting down answers its held Pings instead of cutting them off."""
        for waiter in list(self._superseders.values()):
            waiter.supersede()

    def _supersede(self, key: tuple[str, str]) -> None:
        """A newer request of this device ends the request waiting for it."""
        waiter = self._superseders.get(key)
        if waiter is not None:
            waiter.supersede()

    async def wait_for_changes(self, ctx: Context, folder_ids: Collection[str], timeout: float) -> str:
        """See ``Context.wait``. One future per waiting request, resolved by the first of
        a change, a newer request and the timeout: tens of thousands of these are parked
        at once, so no task or Event of their own (they cost some 5 KB per Ping)."""
        await ctx.state.commit()
        ctx.state.release()
        ctx.body = None
        key = (ctx.user, ctx.request.device_id)
        loop = asyncio.get_running_loop()
        waiter = _Waiter(tuple(folder_ids), loop.create_future())
        self._superseders[key] = waiter
        self._waiters.setdefault(ctx.user, set()).add(waiter)
        timer: asyncio.TimerHandle | None = None
        try:
            # A change that came after the request began, before the waiter was in place
            # (while the handler checked, or while the state was committed), is not lost:
            # the handler is sent back to check again.
            seen = self._changes.get(ctx.user, 0)
            if seen != ctx.changes_seen:
                ctx.changes_seen = seen
                return "changed"
            timer = loop.call_later(timeout, waiter.resolve)
            await waiter.wake
            if waiter.changed:  # a change wins over a newer request that came with it
                ctx.changes_seen = self._changes.get(ctx.user, 0)
                return "changed"
            if waiter.superseded:
                return "superseded"
            return "timeout"
        finally:
            if timer is not None:
                timer.cancel()
            waiters = self._waiters.get(ctx.user)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[ctx.user]
            if self._superseders.get(key) is waiter:
                del self._superseders[key]


@dataclass(slots=True)
class _DeviceLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@dataclass(slots=True, eq=False)
class _Waiter:
    """A waiting long poll: ``wake`` is resolved by whatever ends the wait first; the
    flags say what happened (both may have, before the waiting request runs again)."""

    folders: tuple[str, ...]  # a frozenset of one folder costs 216 bytes, this tuple 48
    wake: asyncio.Future[None]
    changed: bool = False
    superseded: bool = False

    def resolve(self) -> None:
        if not self.wake.done():
            self.wake.set_result(None)

    def change(self) -> None:
        self.changed = True
        self.resolve()

    def supersede(self) -> None:
        self.superseded = True
        self.resolve()


RETRY_AFTER_SECONDS = 30  # what a 503 asks a client to wait when the cause names no time

_CHALLENGE = {"WWW-Authenticate": 'Basic realm="ActiveSync"'}


def _same_account(query_user: str, login: str, account: str) -> bool:
    """Whether the query's User names the authenticated account: as typed at login, as
    the account, or as either without its domain (``DOMAIN\\user``, ``user@domain``)."""

    def forms(name: str) -> set[str]:
        name = name.lower()
        out = {name}
        if "\\" in name:
            out.add(name.split("\\", 1)[1])
        if "@" in name:
            out.add(name.split("@", 1)[0])
        return out

    wanted = query_user.lower().split("\\", 1)[-1]
    return wanted in forms(login) | forms(account)


def _error_response(error: EASError, request: EASRequest | None) -> HTTPResponse:
    """The one place errors become responses (see the module docstring)."""
    headers = list(error.headers.items())
    if error.http_status == st.UNAUTHORIZED:
        return HTTPResponse(st.UNAUTHORIZED, headers, b"")
    if request is not None and error.status is not None and request.version >= Version("14.0"):
        info = commands.COMMANDS.get(request.command)
        if (info is not None and info.root is not None and info.status is not None
                and has_tag(info.root, request.version) and has_tag(info.status, request.version)):
            w = Writer()
            with w.tag(info.root):
                w.leaf(info.status, error.status)
            return HTTPResponse(st.OK, [("Content-Type", WBXML_CONTENT_TYPE), *headers], w.getvalue())
    http_status = error.http_status
    if error.status is not None and error.http_status in (400, 500):
        http_status = st.LEGACY_HTTP.get(error.status, error.http_status)
    if http_status == st.SERVICE_UNAVAILABLE and not any(k.lower() == "retry-after" for k, _ in headers):
        headers.append(("Retry-After", str(RETRY_AFTER_SECONDS)))
    if error.status in (st.Common.DeviceNotProvisioned, st.Common.InvalidPolicyKey, st.Common.PolicyRefresh,
                        st.Common.RemoteWipeRequested, st.Common.LegacyDeviceOnStrictPolicy):
        http_status = st.RETRY_AFTER_PROVISIONING
    return HTTPResponse(http_status, headers, b"")
