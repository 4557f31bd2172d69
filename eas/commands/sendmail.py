"""SendMail, SmartReply and SmartForward (MS-ASCMD 2.2.1.17, 2.2.1.20, 2.2.1.19).

One handler for the three; ``ctx.request.command`` says which. From 14.0 the request is
WBXML ComposeMail (ClientId, SaveInSentItems, Source, ReplaceMime, Mime; 16.x SmartForward
may carry Forwardees and airsyncbase:Body instead of Mime); for 2.5-12.1 the body is the
raw MIME message and the options are query parameters (SaveInSent, ItemId, CollectionId,
LongId).

Success is an empty 200 for every version. A failure is ``<Command><Status>`` with a
common status (107 InvalidMIME, 113 quota, 119 no recipient, 120 submission failed, 150
original not found, 178/179 bad 16.x SmartForward) from 14.0, an HTTP status before
(500 for most: MS-ASCMD has the older protocol answer a missing original with 500, and
Android then retries as a plain SendMail).

A resent message is not sent twice (MS-ASCMD 2.2.3.28.1: the server uses ClientId to
identify duplicates). The last 100 ClientIds and their result are kept in the device's
cache under ``sent_client_ids``; for 12.1 and older, which have no ClientId, the
Message-ID header stands in for it. A repeat of a message that was sent is answered with
plain success, not with status 118 (MessagePreviouslySent): the device resends because the
first answer never reached it, and real clients treat any Status in a SendMail response
as a failure (AOSP Exchange's EasOutboxSync keeps the mail in the Outbox and retries it
forever), so 118 would leave a sent mail stuck in the Outbox. A repeat of a message whose
first attempt failed is tried again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from eas import mime as mimelib
from eas.backend import BackendError, Email, FolderNotFound, ItemNotFound, QuotaExceeded
from eas.commands import COMMANDS, text
from eas.context import Context
from eas.items import meeting, split_server_id
from eas.protocol.http import HTTPResponse
from eas.protocol.status import Common
from eas.protocol.versions import Version
from eas.tags import AirSyncBase
from eas.tags import ComposeMail as CM
from eas.wbxml import Node, Writer

CACHE_KEY = "sent_client_ids"
REMEMBERED = 100
MAX_CLIENT_ID = 128  # MS-ASCMD says 40; longer ones are accepted up to this, then refused
SUCCESS = 1
# What 2.5-12.1 get instead of a status; everything else is 500 (MS-ASCMD 2.2.2, and
# 2.2.1.20: a missing original of SmartReply/SmartForward is 500 too).
_LEGACY_HTTP: dict[int, int] = {Common.InvalidContent: 400, Common.MailboxQuotaExceeded: 507, Common.ServerErrorRetryLater: 503}


class ComposeError(Exception):
    """Ends the command with a common status code."""

    def __init__(self, status: int, message: str = "") -> None:
        super().__init__(message or str(status))
        self.status = status


@dataclass(slots=True)
class Compose:
    """What the device asked for, in either protocol generation's form."""

    command: str
    client_id: str = ""
    save_in_sent: bool = False
    mime: bytes | None = None
    replace_mime: bool = False
    collection_id: str = ""
    item_id: str = ""
    long_id: str = ""
    forwardees: list[tuple[str, str]] = field(default_factory=list)
    body: tuple[int, str] | None = None  # 16.x SmartForward airsyncbase:Body (Type, Data)
    legacy: bool = False
    parsed: EmailMessage | None = None  # ``mime`` parsed, once

    @property
    def smart(self) -> bool:
        return self.command in ("SmartReply", "SmartForward")

    def message(self) -> EmailMessage:
        """``mime`` as a message (parsed on first use); ``MimeError`` if it is none."""
        if self.parsed is None:
            assert self.mime is not None
            self.parsed = mimelib.parse(self.mime)
        return self.parsed


async def handle(ctx: Context) -> HTTPResponse:
    command = ctx.request.command
    try:
        request = _read_request(ctx, command)
    except ComposeError as e:
        return _failure(ctx, command, e.status, legacy=ctx.version < Version("14.0"))
    key = _dedup_key(request)
    if key and await _already_sent(ctx, key):
        return ctx.respond()
    try:
        message, save_in_sent = await _build(ctx, request)
        screened = _screen_invitation(ctx, message)
        if screened is not None:
            await _send(ctx, screened, save_in_sent)
    except ComposeError as e:
        if key:
            await _remember(ctx, key, e.status)
        return _failure(ctx, command, e.status, legacy=request.legacy)
    if key:
        await _remember(ctx, key, SUCCESS)
    return ctx.respond()


# -- reading the request ------------------------------------------------------------------


def _read_request(ctx: Context, command: str) -> Compose:
    if ctx.body is None:
        return _legacy_request(ctx, command)
    return _wbxml_request(ctx, command, ctx.body)


def _legacy_request(ctx: Context, command: str) -> Compose:
    """2.5-12.1: the MIME is the body, the options are query parameters."""
    params = ctx.request.params
    if not ctx.request.body:
        raise ComposeError(Common.InvalidContent, "no message in the request body")
    return Compose(command=command, save_in_sent=ctx.request.save_in_sent, mime=ctx.request.body,
                   collection_id=params.get("CollectionId", ""), item_id=params.get("ItemId", ""),
                   long_id=params.get("LongId", ""), legacy=ctx.version < Version("14.0"))


def _wbxml_request(ctx: Context, command: str, body: Node) -> Compose:
    root = COMMANDS[command].root
    if body.tag != root:
        raise ComposeError(Common.InvalidXML, "the request's top element does not match the command")
    request = Compose(command=command)
    client_id = text(body.find(CM.ClientId))
    if not client_id or len(client_id) > MAX_CLIENT_ID:
        raise ComposeError(Common.InvalidXML, "ClientId missing or too long")
    request.client_id = client_id
    if text(body.find(CM.AccountId)):
        # Settings offers no AccountIds (the primary account has none), so any is unknown.
        raise ComposeError(Common.InvalidAccountId, "unknown AccountId")
    request.save_in_sent = body.find(CM.SaveInSentItems) is not None
    request.replace_mime = body.find(CM.ReplaceMime) is not None
    node = body.find(CM.Mime)
    if node is not None:
        value = node.text
        request.mime = value if isinstance(value, bytes) else (value or "").encode("utf-8", "surrogateescape")
    if request.smart:
        source = body.find(CM.Source)
        if source is None:
            raise ComposeError(Common.InvalidXML, "Source missing")
        request.collection_id = text(source.find(CM.FolderId))
        request.item_id = text(source.find(CM.ItemId))
        request.long_id = text(source.find(CM.LongId))
        if request.long_id and (request.item_id or request.collection_id):
            raise ComposeError(Common.InvalidCombinationOfIDs, "LongId together with FolderId/ItemId")
    forwardees = body.find(CM.Forwardees)
    new_body = body.find(AirSyncBase.Body)
    if forwardees is not None or new_body is not None:
        if command != "SmartForward" or not ctx.has(CM.Forwardees):
            raise ComposeError(Common.InvalidXML, "Forwardees/Body outside a 16.x SmartForward")
        # MS-ASCMD 2.2.3.169: with Forwardees or Body, none of Mime, SaveInSentItems,
        # ReplaceMime may be present.
        if node is not None or request.save_in_sent or request.replace_mime:
            raise ComposeError(Common.InvalidMimeBodyCombination, "Forwardees/Body together with Mime")
        request.forwardees = _forwardees(forwardees)
        request.body = _new_body(new_body)
        request.save_in_sent = True  # the forward is the user's sent mail, as any other
    elif request.mime is None:
        raise ComposeError(Common.InvalidXML, "Mime missing")
    return request


def _forwardees(node: Node | None) -> list[tuple[str, str]]:
    if node is None:
        return []
    out: list[tuple[str, str]] = []
    for forwardee in node.findall(CM.Forwardee):
        address = text(forwardee.find(CM.Email)).strip()
        if "@" not in address or any(c in address for c in "\r\n<>,;\"") or len(address) > 320:
            raise ComposeError(Common.InvalidSmartForwardParameters, "Forwardee without a valid Email")
        name = " ".join(text(forwardee.find(CM.Name)).split())[:256]
        out.append((name, address))
    if not out:
        raise ComposeError(Common.InvalidSmartForwardParameters, "Forwardees without a Forwardee")
    return out


def _new_body(node: Node | None) -> tuple[int, str] | None:
    if node is None:
        return None
    kind = text(node.find(AirSyncBase.Type)) or "1"
    if kind not in ("1", "2"):
        raise ComposeError(Common.InvalidSmartForwardParameters, "Body Type must be 1 (text) or 2 (HTML)")
    return int(kind), text(node.find(AirSyncBase.Data))


# -- building the message -----------------------------------------------------------------


async def _build(ctx: Context, request: Compose) -> tuple[bytes, bool]:
    """The RFC 5322 bytes to submit and whether to save them in Sent Items."""
    new: EmailMessage | None = None
    if request.mime is not None:
        try:
            new = request.message()
        except mimelib.MimeError as e:
            raise ComposeError(Common.InvalidMIME, str(e)) from None
    if not request.smart or request.replace_mime:
        # MS-ASCMD 2.2.3.148: with ReplaceMime the device sent the whole message.
        assert new is not None and request.mime is not None
        return _complete(ctx, request.mime, new), request.save_in_sent
    original = await _original(ctx, request)
    if new is None:
        text, rich = (request.body[1], None) if request.body and request.body[0] == 1 else \
            (None, request.body[1] if request.body else None)
        subject = original.get("subject", "") or ""
        new = mimelib.new_forward(ctx.user, request.forwardees, f"Fw: {subject}".strip(), text, rich)
    try:
        if request.command == "SmartReply":
            mimelib.reply(new, original)
        else:
            mimelib.forward(new, original)
        data = mimelib.to_bytes(new)
    except Exception:  # noqa: BLE001 - MimeError, or the stdlib email package on hostile input
        raise ComposeError(Common.MessageReplyFailed, "the reply could not be built") from None
    return _complete(ctx, data, mimelib.parse(data)), request.save_in_sent


def _complete(ctx: Context, data: bytes, msg: EmailMessage) -> bytes:
    if not mimelib.recipients(msg):
        raise ComposeError(Common.MessageHasNoRecipient, "the message has no recipient")
    return mimelib.with_missing_headers(data, msg, ctx.user)


async def _original(ctx: Context, request: Compose) -> EmailMessage:
    """The message replied to or forwarded, from the backend; status 150 when it is gone."""
    ref = request.long_id or request.item_id
    parts = split_server_id(ref) if ref else None
    if parts is None:
        raise ComposeError(Common.ItemNotFound, "no source item")
    collection_id, item_id = parts
    if request.collection_id and not request.long_id and request.collection_id != collection_id:
        raise ComposeError(Common.ItemNotFound, "the item is not in that folder")
    hierarchy = await ctx.state.hierarchy()
    folder = hierarchy.backend_id(collection_id)
    if folder is None:
        raise ComposeError(Common.ItemNotFound, "unknown collection")
    try:
        found = await ctx.backend.fetch_emails(ctx.user, folder, [item_id], mime=True)
    except (ItemNotFound, FolderNotFound):
        found = []
    if not found:
        raise ComposeError(Common.ItemNotFound, "the source item is gone")
    email = found[0]
    if email.mime:
        try:
            return mimelib.parse(email.mime)
        except mimelib.MimeError:
            pass
    return await _rebuild(ctx, email)


async def _rebuild(ctx: Context, email: Email) -> EmailMessage:
    """A backend that keeps no MIME: the original rebuilt from its fields."""
    msg = EmailMessage()
    for name, value in (("From", email.sender), ("To", email.to), ("Cc", email.cc), ("Subject", email.subject),
                        ("Message-ID", email.message_id)):
        if value:
            try:
                msg[name] = value
            except Exception:  # noqa: BLE001, S112 - a header the stdlib refuses is left out
                continue
    if email.date_received is not None:
        msg["Date"] = email.date_received
    if email.body_text is not None:
        msg.set_content(email.body_text)
        if email.body_html is not None:
            msg.add_alternative(email.body_html, subtype="html")
    elif email.body_html is not None:
        msg.set_content(email.body_html, subtype="html")
    else:
        msg.set_content("")
    if ctx.request.command == "SmartForward":
        for attachment in email.attachments:
            try:
                content_type, data = await ctx.backend.attachment(ctx.user, attachment.file_reference)
            except BackendError:
                continue
            maintype, _, subtype = content_type.partition("/")
            if maintype == "multipart" or not subtype:
                maintype, subtype = "application", "octet-stream"
            if maintype == "text":
                msg.add_attachment(data.decode("utf-8", "replace"), subtype=subtype,
                                   filename=attachment.display_name)
            elif maintype == "message":
                msg.add_attachment(data, maintype="application", subtype="octet-stream",
                                   filename=attachment.display_name)
            else:
                msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=attachment.display_name)
    return msg


_CALENDAR = re.compile(rb"text/calendar", re.IGNORECASE)


def _screen_invitation(ctx: Context, message: bytes) -> bytes | None:
    """An invitation or cancellation without the recipients it must not reach (iOS
    re-sending meetings: ``eas.items.meeting.screen_invitation``); None when nobody is
    left, and the device is still told it was sent."""
    if not _CALENDAR.search(message):
        return message
    try:
        msg = mimelib.parse(message)
        keep = meeting.screen_invitation(msg, ctx.user)
        if keep is None or {a.lower() for a in keep} == {a.lower() for a in mimelib.recipients(msg)}:
            return message
        return mimelib.to_bytes(meeting.keep_recipients(msg, keep)) if keep else None
    except mimelib.MimeError:
        return message  # what cannot be rewritten goes out as the device sent it


async def _send(ctx: Context, message: bytes, save_in_sent: bool) -> None:
    try:
        await ctx.backend.send_mail(ctx.user, message, save_in_sent=save_in_sent)
    except QuotaExceeded:
        raise ComposeError(Common.MailboxQuotaExceeded) from None
    except BackendError as e:
        status = e.status if e.status is not None and 100 < e.status < 200 else Common.MailSubmissionFailed
        raise ComposeError(status, str(e)) from None


# -- repeats --------------------------------------------------------------------------------


def _dedup_key(request: Compose) -> str:
    """What identifies a resent message: the ClientId, or for the older protocol (which
    has none) the message's Message-ID."""
    if request.client_id:
        return "c:" + request.client_id
    if request.legacy and request.mime:
        try:
            msg = request.message()
        except mimelib.MimeError:
            return ""
        ids = [v for k, v in msg.raw_items() if k.lower() == "message-id"]
        value = " ".join(str(ids[0]).split()) if ids else ""
        return "m:" + value[:MAX_CLIENT_ID] if value else ""
    return ""


async def _already_sent(ctx: Context, key: str) -> bool:
    for entry in _entries(await ctx.state.cache()):
        if entry[0] == key:
            return bool(entry[1] == SUCCESS)
    return False


async def _remember(ctx: Context, key: str, status: int) -> None:
    cache = await ctx.state.cache()
    entries = [e for e in _entries(cache) if e[0] != key]
    entries.append([key, int(status)])
    cache[CACHE_KEY] = entries[-REMEMBERED:]
    ctx.state.cache_changed()


def _entries(cache: dict[str, Any]) -> list[list[Any]]:
    raw = cache.get(CACHE_KEY)
    if not isinstance(raw, list):
        return []
    return [e for e in raw if isinstance(e, list) and len(e) == 2 and isinstance(e[0], str)]


# -- answers -----------------------------------------------------------------------------------


def _failure(ctx: Context, command: str, status: int, *, legacy: bool) -> HTTPResponse:
    """``<Command><Status>`` from 14.0; an HTTP status before (MS-ASCMD 2.2.2)."""
    if legacy:
        return ctx.respond(status=_LEGACY_HTTP.get(status, 500))
    w = Writer()
    root = COMMANDS[command].root
    assert root is not None
    with w.tag(root):
        w.leaf(CM.Status, status)
    return ctx.respond(w)

