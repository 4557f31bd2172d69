"""Settings (MS-ASCMD 2.2.1.18): out-of-office (Oof Get/Set), DeviceInformation Set, the
recovery password (DevicePassword Set), UserInformation Get and, from 14.1,
RightsManagementInformation Get.

A request is read whole before anything is done: a body that does not have the Settings
shape gets the top-level Status 2 (protocol error) and changes nothing. Each operation then
gets its own Status (MS-ASCMD 2.2.3.177.15): 1 success, 2 protocol error, 5 invalid
arguments, 6 conflicting arguments, 7 denied by policy (DevicePassword). Backend calls run
before any change to the device's record, so a backend failure (top-level Status 4, server
unavailable) leaves the record as it was.

DeviceInformation is also what Provision carries from 14.1 (MS-ASPROV 2.2.2.53), so its
reading and storing live here for both commands.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from eas import policy
from eas.backend import BackendError, Oof
from eas.tags import RightsManagement as RM
from eas.tags import Settings as S
from eas.wbxml import Node, Writer

if TYPE_CHECKING:
    from eas.context import Context
    from eas.protocol.http import HTTPResponse
    from eas.state.model import DeviceRecord

log = logging.getLogger("eas.settings")

# MS-ASCMD 2.2.3.177.15
SUCCESS = 1
PROTOCOL_ERROR = 2
ACCESS_DENIED = 3
SERVER_UNAVAILABLE = 4
INVALID_ARGUMENTS = 5
CONFLICTING_ARGUMENTS = 6
DENIED_BY_POLICY = 7

MAX_DEVICE_INFORMATION = 1024  # DeviceInformationStringType (MS-ASCMD 6.38)
MAX_RECOVERY_PASSWORD = 255  # Password (MS-ASCMD 2.2.3.130)
MAX_OOF_MESSAGE = 128 * 1024  # our own bound on a reply message, in characters
RECOVERY_PASSWORD_KEY = "recovery_password"  # in the device cache


class Malformed(Exception):
    """The request does not have the shape the schema gives it (protocol error)."""


class Invalid(Exception):
    """A value is out of its range (``status`` 5) or contradicts another (6)."""

    def __init__(self, message: str, status: int = INVALID_ARGUMENTS) -> None:
        super().__init__(message)
        self.status = status


# -- DeviceInformation (MS-ASCMD 2.2.3.47), shared with Provision -------------------------

# Element -> DeviceRecord field.
DEVICE_FIELDS: dict[int, str] = {
    S.Model: "model",
    S.IMEI: "imei",
    S.FriendlyName: "friendly_name",
    S.OS: "os",
    S.OSLanguage: "os_language",
    S.PhoneNumber: "phone_number",
    S.UserAgent: "user_agent",
    S.EnableOutboundSMS: "enable_outbound_sms",
    S.MobileOperator: "mobile_operator",
}


def read_device_information(node: Node) -> dict[str, str | bool]:
    """The DeviceRecord fields a DeviceInformation element sets. ``Malformed`` when it is
    not ``DeviceInformation/Set`` with known children once each; ``Invalid`` for a value
    longer than the schema allows or an EnableOutboundSMS other than 0/1."""
    if node.text or len(node.children) != 1 or node.children[0].tag != S.Set:
        raise Malformed("DeviceInformation holds one Set")
    values: dict[str, str | bool] = {}
    for child in node.children[0].children:
        name = DEVICE_FIELDS.get(child.tag)
        if name is None or name in values:
            raise Malformed("unknown or repeated element in DeviceInformation/Set")
        text = _text(child)
        if len(text) > MAX_DEVICE_INFORMATION:
            raise Invalid(f"{name} is longer than {MAX_DEVICE_INFORMATION} characters")
        if child.tag == S.EnableOutboundSMS:
            if text not in ("0", "1"):
                raise Invalid("EnableOutboundSMS is neither 0 nor 1")
            values[name] = text == "1"
        else:
            values[name] = text
    return values


def store_device_information(device: DeviceRecord, values: dict[str, str | bool]) -> None:
    """Keep what the device said about itself on its record (fields it left out stay)."""
    for name, value in values.items():
        setattr(device, name, value)


# -- the command ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Op:
    """One operation of the request: ``tag`` is its element, ``status`` its answer so far
    (reading may already have found it wanting), ``parts`` what reading found and what
    the backend answered."""

    tag: int
    status: int = SUCCESS
    node: Node | None = None
    parts: dict[str, object] = field(default_factory=dict)


async def handle(ctx: Context) -> HTTPResponse:
    """MS-ASCMD 2.2.1.18."""
    try:
        ops = _read(ctx)
    except Malformed as e:
        log.info("Settings from %s/%s: %s", ctx.user, ctx.request.device_id, e)
        return _top_status(ctx, PROTOCOL_ERROR)
    try:
        for op in ops:  # backend work first: a failure here leaves the device untouched
            if op.status == SUCCESS and op.tag in _BACKEND:
                await _BACKEND[op.tag](ctx, op)
    except BackendError as e:
        log.warning("Settings for %s: backend failed: %s", ctx.user, e)
        return _top_status(ctx, SERVER_UNAVAILABLE)
    for op in ops:
        if op.status == SUCCESS and op.tag in _LOCAL:
            await _LOCAL[op.tag](ctx, op)
    w = Writer()
    with w.tag(S.Settings):
        w.leaf(S.Status, SUCCESS)
        for op in ops:
            _WRITE[op.tag](ctx, w, op)
    return ctx.respond(w)


def _top_status(ctx: Context, status: int) -> HTTPResponse:
    w = Writer()
    with w.tag(S.Settings):
        w.leaf(S.Status, status)
    return ctx.respond(w)


def _read(ctx: Context) -> list[_Op]:
    """Every operation of the request, each read as far as its own Status."""
    body = ctx.body
    if body is None or body.tag != S.Settings or body.text:
        raise Malformed("the body is not a Settings element")
    ops: list[_Op] = []
    seen: set[int] = set()
    for node in body.children:
        reader = _READ.get(node.tag)
        if reader is None or node.tag in seen or not ctx.has(node.tag):
            raise Malformed(f"unexpected element 0x{node.tag:04X} in Settings")
        seen.add(node.tag)
        op = _Op(node.tag, node=node)
        try:
            reader(ctx, op)
        except Malformed as e:
            log.info("Settings from %s/%s: %s", ctx.user, ctx.request.device_id, e)
            op.status = PROTOCOL_ERROR
        except Invalid as e:
            log.info("Settings from %s/%s: %s", ctx.user, ctx.request.device_id, e)
            op.status = e.status
        ops.append(op)
    return ops


def _only(node: Node, *allowed: int) -> Node:
    """The single child of ``node``, which must be one of ``allowed``."""
    if node.text or len(node.children) != 1 or node.children[0].tag not in allowed:
        raise Malformed("expected a single Get or Set")
    return node.children[0]


def _text(node: Node) -> str:
    """The text of a leaf; ``Malformed`` for children or opaque data."""
    if node.children or isinstance(node.text, bytes):
        raise Malformed("expected text")
    return node.text or ""


# -- Oof (MS-ASCMD 2.2.3.119) ------------------------------------------------------------

_AUDIENCES: dict[int, str] = {
    S.AppliesToInternal: "internal",
    S.AppliesToExternalKnown: "external_known",
    S.AppliesToExternalUnknown: "external_unknown",
}
_BODY_TYPES = {"text": "Text", "html": "HTML"}


def _read_oof(ctx: Context, op: _Op) -> None:
    assert op.node is not None
    action = _only(op.node, S.Get, S.Set)
    if action.tag == S.Get:
        children = {c.tag: c for c in action.children}
        if action.text or len(children) != len(action.children) or set(children) != {S.BodyType}:
            raise Malformed("Oof/Get holds one BodyType")
        op.parts["get"] = _body_type(_text(children[S.BodyType]))
        return
    op.parts["set"] = _read_oof_set(action)


def _body_type(text: str) -> str:
    value = _BODY_TYPES.get(text.strip().lower())
    if value is None:
        raise Invalid(f"BodyType {text[:16]!r} is neither Text nor HTML")
    return value


def _read_oof_set(node: Node) -> dict[str, object]:
    """What an Oof Set changes: ``state``, ``start``, ``end`` and per audience
    ``(enabled, message, body_type)``; only what the request names."""
    change: dict[str, object] = {}
    messages: dict[str, tuple[bool | None, str | None, str]] = {}
    if node.text:
        raise Malformed("Oof/Set holds elements")
    for child in node.children:
        if child.tag in (S.OofState, S.StartTime, S.EndTime):
            key = {S.OofState: "state", S.StartTime: "start", S.EndTime: "end"}[child.tag]
            if key in change:
                raise Malformed(f"{key} given twice")
            text = _text(child)
            if child.tag == S.OofState:
                if text.strip() not in ("0", "1", "2"):
                    raise Invalid(f"OofState {text[:8]!r} is not 0, 1 or 2")
                change[key] = int(text)
            else:
                change[key] = _parse_time(text)
        elif child.tag == S.OofMessage:
            audience, entry = _read_oof_message(child)
            if audience in messages:
                raise Invalid("two OofMessages for one audience", CONFLICTING_ARGUMENTS)
            messages[audience] = entry
        else:
            raise Malformed(f"unexpected element 0x{child.tag:04X} in Oof/Set")
    start, end = change.get("start"), change.get("end")
    if isinstance(start, datetime) and isinstance(end, datetime) and start >= end:
        raise Invalid("StartTime is not before EndTime", CONFLICTING_ARGUMENTS)
    change["messages"] = messages
    return change


def _read_oof_message(node: Node) -> tuple[str, tuple[bool | None, str | None, str]]:
    """``(audience, (enabled, reply message, body type))`` of an OofMessage."""
    audience = ""
    enabled: bool | None = None
    message: str | None = None
    body_type = ""
    seen: set[int] = set()
    for child in node.children:
        if child.tag in seen:
            raise Malformed("repeated element in OofMessage")
        seen.add(child.tag)
        if child.tag in _AUDIENCES:
            if audience or child.text or child.children:
                raise Malformed("OofMessage names one audience, with an empty element")
            audience = _AUDIENCES[child.tag]
        elif child.tag == S.Enabled:
            text = _text(child).strip()
            if text not in ("0", "1"):
                raise Invalid(f"Enabled {text[:8]!r} is neither 0 nor 1")
            enabled = text == "1"
        elif child.tag == S.ReplyMessage:
            message = _text(child)
            if len(message) > MAX_OOF_MESSAGE:
                raise Invalid("ReplyMessage is too long")
        elif child.tag == S.BodyType:
            body_type = _body_type(_text(child))
        else:
            raise Malformed(f"unexpected element 0x{child.tag:04X} in OofMessage")
    if not audience or node.text:
        raise Malformed("OofMessage without AppliesTo element")
    if message is not None and not body_type:
        raise Malformed("ReplyMessage without BodyType")  # MS-ASCMD 2.2.3.17
    return audience, (enabled, message, body_type or "Text")


def _parse_time(text: str) -> datetime:
    """A dateTime of the request (``2024-05-08T11:00:00.000Z``), in UTC."""
    text = text.strip()
    if not _DATETIME.fullmatch(text):
        raise Invalid(f"{text[:32]!r} is not a date and time")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(f"{text[:32]!r} is not a date and time") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?(Z|[+-]\d{2}:\d{2})?")


def _format_time(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def _run_oof(ctx: Context, op: _Op) -> None:
    current = await ctx.backend.get_oof(ctx.user)
    change = op.parts.get("set")
    if not isinstance(change, dict):
        op.parts["oof"] = current
        return
    try:
        updated = _apply_oof(current, change)
    except Invalid as e:
        log.info("Settings Oof Set from %s: %s", ctx.user, e)
        op.status = e.status
        return
    await ctx.backend.set_oof(ctx.user, updated)


def _apply_oof(current: Oof, change: dict[str, object]) -> Oof:
    """``current`` with the request's changes; what the request leaves out stays."""
    oof = replace(current)
    if "state" in change:
        oof.state = int(change["state"])  # type: ignore[call-overload]
    if "start" in change:
        oof.start = change["start"]  # type: ignore[assignment]
    if "end" in change:
        oof.end = change["end"]  # type: ignore[assignment]
    if oof.state == 2:
        if oof.start is None or oof.end is None:
            raise Invalid("a scheduled Oof needs StartTime and EndTime")
        if oof.start >= oof.end:
            raise Invalid("StartTime is not before EndTime", CONFLICTING_ARGUMENTS)
    else:
        # MS-ASCMD 2.2.3.124: a window sent with OofState other than 2 is answered with
        # success but not stored (one stored before stays, for a later OofState 2).
        oof.start, oof.end = current.start, current.end
    messages: dict[str, tuple[bool | None, str | None, str]] = change.get("messages", {})  # type: ignore[assignment]
    replaced = {audience: body_type for audience, (_, message, body_type) in messages.items() if message is not None}
    # One body type for all three messages: HTML as soon as one of them is HTML, so that
    # no message loses its markup unless the client replaces all three with text.
    keeps_html = oof.body_type == "HTML" and len(replaced) < len(_AUDIENCES)
    target = "HTML" if "HTML" in replaced.values() or keeps_html else "Text"
    for audience in _AUDIENCES.values():
        text = getattr(oof, f"{audience}_message")
        setattr(oof, f"{audience}_message", _convert(text, oof.body_type, target))
    oof.body_type = target
    for audience, (enabled, message, body_type) in messages.items():
        if enabled is not None:
            setattr(oof, f"{audience}_enabled", enabled)
        if message is not None:
            setattr(oof, f"{audience}_message", _convert(message, body_type, target))
    return oof


def _convert(text: str, source: str, target: str) -> str:
    """A reply message from one body type into another."""
    if source == target or not text:
        return text
    if target == "HTML":
        return "<html><body>" + html.escape(text).replace("\r\n", "\n").replace("\n", "<br>") + "</body></html>"
    return _html_to_text(text)


_BREAKS = re.compile(r"<\s*(br|/p|/div|/li|/tr|/h\d)\b[^>]*>", re.IGNORECASE)
_INVISIBLE = re.compile(r"<\s*(script|style|head)\b.*?<\s*/\s*\1\s*>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]*>")


def _html_to_text(text: str) -> str:
    text = _INVISIBLE.sub("", text)
    text = _BREAKS.sub("\n", text)
    text = html.unescape(_TAGS.sub("", text))
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _write_oof(ctx: Context, w: Writer, op: _Op) -> None:
    with w.tag(S.Oof):
        w.leaf(S.Status, op.status)
        oof = op.parts.get("oof")
        if op.status != SUCCESS or not isinstance(oof, Oof):
            return
        wanted = str(op.parts["get"])
        with w.tag(S.Get):
            w.leaf(S.OofState, oof.state)
            if oof.state == 2 and oof.start is not None and oof.end is not None:
                w.leaf(S.StartTime, _format_time(oof.start))
                w.leaf(S.EndTime, _format_time(oof.end))
            for tag, audience in _AUDIENCES.items():
                message = _convert(getattr(oof, f"{audience}_message"), oof.body_type, wanted)
                with w.tag(S.OofMessage):
                    w.empty(tag)
                    w.leaf(S.Enabled, 1 if getattr(oof, f"{audience}_enabled") else 0)
                    w.leaf(S.ReplyMessage, message)
                    w.leaf(S.BodyType, wanted)


# -- DeviceInformation ---------------------------------------------------------------------


def _read_device_information(ctx: Context, op: _Op) -> None:
    assert op.node is not None
    op.parts["values"] = read_device_information(op.node)


async def _apply_device_information(ctx: Context, op: _Op) -> None:
    store_device_information(ctx.state.device, op.parts["values"])  # type: ignore[arg-type]


def _write_device_information(ctx: Context, w: Writer, op: _Op) -> None:
    with w.tag(S.DeviceInformation):
        w.leaf(S.Status, op.status)


# -- DevicePassword (MS-ASCMD 2.2.3.48) ----------------------------------------------------


def _read_device_password(ctx: Context, op: _Op) -> None:
    assert op.node is not None
    action = _only(op.node, S.Set)
    if action.text or len(action.children) != 1 or action.children[0].tag != S.Password:
        raise Malformed("DevicePassword/Set holds one Password")
    password = _text(action.children[0])
    if len(password) > MAX_RECOVERY_PASSWORD:
        raise Invalid("the recovery password is longer than 255 characters")
    op.parts["password"] = password


async def _run_device_password(ctx: Context, op: _Op) -> None:
    """The recovery password is taken only when the policy enables recovery
    (MS-ASPROV 2.2.2.39)."""
    decision = await ctx.server.policy(ctx.user, ctx.state.device)
    try:
        enabled = policy.effective(decision.settings)["PasswordRecoveryEnabled"]
    except policy.PolicyError as e:
        log.error("the policy of %s is not valid: %s", ctx.user, e)
        enabled = 0
    if not enabled:
        op.status = DENIED_BY_POLICY


async def _apply_device_password(ctx: Context, op: _Op) -> None:
    # Stored as given: it is for the user to read back from the server when locked out.
    # Never logged.
    cache = await ctx.state.cache()
    password = str(op.parts["password"])
    if password:
        cache[RECOVERY_PASSWORD_KEY] = password
    else:
        cache.pop(RECOVERY_PASSWORD_KEY, None)
    ctx.state.cache_changed()


def _write_device_password(ctx: Context, w: Writer, op: _Op) -> None:
    with w.tag(S.DevicePassword):
        w.leaf(S.Status, op.status)


# -- UserInformation (MS-ASCMD 2.2.3.192) --------------------------------------------------


def _read_get(ctx: Context, op: _Op) -> None:
    assert op.node is not None
    action = _only(op.node, S.Get)
    if action.children or action.text:
        raise Malformed("Get is empty here")


async def _run_user_information(ctx: Context, op: _Op) -> None:
    op.parts["info"] = await ctx.backend.user_information(ctx.user)


def _write_user_information(ctx: Context, w: Writer, op: _Op) -> None:
    """12.0-14.0: Get/EmailAddresses/SMTPAddress; 14.1 and later: Get/Accounts/Account
    with the display name and the primary address (MS-ASCMD 2.2.3.57)."""
    with w.tag(S.UserInformation):
        w.leaf(S.Status, op.status)
        info = op.parts.get("info")
        if op.status != SUCCESS or info is None:
            return
        emails = [e for e in getattr(info, "emails", []) if e]
        display = getattr(info, "display_name", "") or (emails[0] if emails else ctx.user)
        with w.tag(S.Get):
            if not ctx.has(S.Accounts):
                _write_addresses(w, emails, primary=False)
                return
            # The primary account has no AccountId (MS-ASCMD 2.2.3.3.2).
            with w.tag(S.Accounts), w.tag(S.Account):
                w.leaf(S.AccountName, display)
                w.leaf(S.UserDisplayName, display)
                w.leaf(S.SendDisabled, 0)
                _write_addresses(w, emails, primary=True)


def _write_addresses(w: Writer, emails: list[str], *, primary: bool) -> None:
    with w.tag(S.EmailAddresses):
        for address in emails:
            w.leaf(S.SMTPAddress, address)
        if primary and emails:
            w.leaf(S.PrimarySmtpAddress, emails[0])


# -- RightsManagementInformation (MS-ASCMD 2.2.3.153, 14.1+) -------------------------------


def _write_rights_management(ctx: Context, w: Writer, op: _Op) -> None:
    """No IRM here: an empty template list (MS-ASRM)."""
    with w.tag(S.RightsManagementInformation):
        w.leaf(S.Status, op.status)
        if op.status == SUCCESS:
            with w.tag(S.Get):
                w.empty(RM.RightsManagementTemplates)


_READ: dict[int, Callable[[Context, _Op], None]] = {
    S.Oof: _read_oof,
    S.DeviceInformation: _read_device_information,
    S.DevicePassword: _read_device_password,
    S.UserInformation: _read_get,
    S.RightsManagementInformation: _read_get,
}
_BACKEND = {
    S.Oof: _run_oof,
    S.DevicePassword: _run_device_password,
    S.UserInformation: _run_user_information,
}
_LOCAL = {
    S.DeviceInformation: _apply_device_information,
    S.DevicePassword: _apply_device_password,
}
_WRITE: dict[int, Callable[[Context, Writer, _Op], None]] = {
    S.Oof: _write_oof,
    S.DeviceInformation: _write_device_information,
    S.DevicePassword: _write_device_password,
    S.UserInformation: _write_user_information,
    S.RightsManagementInformation: _write_rights_management,
}
