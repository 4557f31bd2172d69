"""What the reference store extracts from an RFC 5322 message, once, at delivery.

``parse(mime)`` never raises: mail from the wild has broken headers, unknown charsets,
8-bit junk and truncated MIME trees, and such a message is still stored, with whatever
fields could be read. Every string that comes out is valid Unicode without NUL (8-bit
header bytes are read as UTF-8, else cp1252), so it can go to SQLite and to WBXML.

Attachments are the leaf parts that are not the chosen text/plain or text/html body;
an attached message (message/rfc822) is one attachment (AirSyncBase Method 5), not a
tree to descend into. ``walk`` numbers parts in one fixed order, and that number is the
part index of a file reference, so ``attachment_data`` finds a part again in the stored
bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

# FILETIME counts 100 ns intervals since 1601-01-01.
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_TOPIC_PREFIX = re.compile(r"^\s*(?:(?:re|fwd?|aw|wg|sv|vs|antw|tr|rif|r|enc|odp|vl)\s*(?:\[\d+\])?\s*[:：]\s*)+",
                           re.IGNORECASE)
_MSGID = re.compile(r"<[^<>\s]+>")
# Deeper MIME trees than this are not walked (a hostile message can nest thousands).
MAX_DEPTH = 32


@dataclass(slots=True)
class PartInfo:
    """An attachment as stored (JSON in the database): ``index`` is its ``walk`` number."""

    index: int
    name: str
    size: int
    content_type: str
    content_id: str = ""
    content_location: str = ""
    is_inline: bool = False
    method: int = 1


@dataclass(slots=True)
class Parsed:
    """The fields an EAS client needs, extracted from one message."""

    subject: str = ""
    sender: str = ""
    to: str = ""
    cc: str = ""
    bcc: str = ""
    reply_to: str = ""
    display_to: str = ""
    date: datetime | None = None
    importance: int = 1
    message_id: str = ""
    thread_topic: str = ""
    conversation_id: bytes = b""
    conversation_index: bytes = b""
    message_class: str = "IPM.Note"
    body_text: str | None = None
    body_html: str | None = None
    attachments: list[PartInfo] = field(default_factory=list)
    size: int = 0
    recipients: list[str] = field(default_factory=list)  # addresses of To, Cc, Bcc (lower-case)
    meeting: str | None = None  # the text/calendar part of a meeting message (iMIP)


def load(mime: bytes) -> EmailMessage:
    """The message object of ``mime`` (the parser itself records defects, never raises)."""
    msg = message_from_bytes(mime, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def parse(mime: bytes, *, received: datetime | None = None) -> Parsed:
    """Extract the fields of ``mime``; ``received`` (default now) stands in for a missing
    or unreadable Date."""
    out = Parsed(size=len(mime))
    try:
        _fill(out, load(mime))
    except Exception:  # noqa: BLE001 - e.g. RecursionError on absurd nesting: keep the headers at least
        out.attachments, out.body_text, out.body_html = [], None, None
        with contextlib.suppress(Exception):
            _fill_headers(out, _load_headers(mime))
    if out.date is None:
        out.date = (received or datetime.now(UTC)).replace(microsecond=0)
    if not out.conversation_id:
        out.conversation_id = _hash16(out.message_id or out.thread_topic or repr(out.date))
    if not out.conversation_index:
        out.conversation_index = _conversation_index(out.date, out.conversation_id, 0)
    return out


def _load_headers(mime: bytes) -> EmailMessage:
    msg = BytesParser(policy=policy.default).parsebytes(mime, headersonly=True)
    assert isinstance(msg, EmailMessage)
    return msg


def _fill(out: Parsed, msg: EmailMessage) -> None:
    _fill_headers(out, msg)
    with contextlib.suppress(Exception):  # keep the header fields already read
        _bodies_and_attachments(out, msg)


def _fill_headers(out: Parsed, msg: EmailMessage) -> None:
    out.subject = header(msg, "subject")
    out.sender = header(msg, "from")
    out.to = header(msg, "to")
    out.cc = header(msg, "cc")
    out.bcc = header(msg, "bcc")
    out.reply_to = header(msg, "reply-to")
    out.display_to = "; ".join(name or addr for name, addr in addresses(msg, "to"))
    out.recipients = [addr.lower() for f in ("to", "cc", "bcc") for _, addr in addresses(msg, f) if "@" in addr]
    out.date = _date(msg)
    out.importance = _importance(msg)
    ids = _MSGID.findall(header(msg, "message-id"))
    out.message_id = ids[0] if ids else header(msg, "message-id")
    out.thread_topic = _TOPIC_PREFIX.sub("", out.subject).strip()
    references = _MSGID.findall(header(msg, "references")) or _MSGID.findall(header(msg, "in-reply-to"))
    root = references[0] if references else out.message_id
    if root:
        out.conversation_id = _hash16(root)
    elif out.thread_topic:
        out.conversation_id = _hash16("topic:" + out.thread_topic.lower())
    if out.date is not None and out.conversation_id:
        out.conversation_index = _conversation_index(out.date, out.conversation_id, len(references))
    out.message_class = _message_class(msg)


# -- headers --------------------------------------------------------------------------


def clean(text: str) -> str:
    """Valid Unicode without NUL: surrogate-escaped 8-bit bytes are read as UTF-8, else cp1252."""
    if _has_8bit(text):
        raw = text.encode("utf-8", "surrogateescape")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("cp1252", "replace")
    text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates of other origins
    return text.replace("\x00", "")


def _raw(msg: Message, name: str) -> str | None:
    """The first raw value of a header as parsed (8-bit bytes surrogate-escaped)."""
    for key, value in msg.raw_items() if hasattr(msg, "raw_items") else msg.items():
        if key.lower() == name:
            return str(value)
    return None


def _has_8bit(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _plain(raw: str) -> str:
    """RFC 2047 decoding without the structured parser; raw 8-bit read as UTF-8 or cp1252."""
    text = clean(raw)
    with contextlib.suppress(Exception):  # keep the undecoded text
        text = str(make_header(decode_header(text)))
    return clean(" ".join(text.split()))


def header(msg: Message, name: str) -> str:
    """A header's decoded value ("" when absent). Raw 8-bit headers (not allowed, common)
    and values the policy's structured parser fails on get a plain decoding instead: the
    parser would turn 8-bit bytes into U+FFFD."""
    raw = _raw(msg, name)
    if raw is None:
        return ""
    if not _has_8bit(raw):
        with contextlib.suppress(Exception):  # fall through to the plain decoding
            value = msg.get(name)
            return "" if value is None else clean(" ".join(str(value).split()))
    return _plain(raw)


def addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """``(display name, address)`` pairs of an address header, best effort."""
    raw = _raw(msg, name)
    if raw is None:
        return []
    if not _has_8bit(raw):
        with contextlib.suppress(Exception):
            value = msg.get(name)
            if value is not None and hasattr(value, "addresses"):
                return [(clean(a.display_name), clean(a.addr_spec)) for a in value.addresses if a.addr_spec]
    try:
        pairs = getaddresses([_plain(raw)])
    except Exception:  # noqa: BLE001
        return []
    return [(clean(n), clean(a)) for n, a in pairs if a]


def _date(msg: Message) -> datetime | None:
    text = header(msg, "date")
    if not text:
        return None
    try:
        value = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    # A date before 1970 or after 9000 is junk, not history.
    if not 1970 <= value.year <= 9000:
        return None
    return value


def _importance(msg: Message) -> int:
    """AirSync Importance: from Importance, else X-Priority (1-2 high, 4-5 low), else normal."""
    value = header(msg, "importance").lower()
    if value.startswith("high"):
        return 2
    if value.startswith("low"):
        return 0
    if value.startswith("normal"):
        return 1
    priority = header(msg, "x-priority")[:1]
    if priority in ("1", "2"):
        return 2
    if priority in ("4", "5"):
        return 0
    return 1


def _message_class(msg: Message) -> str:
    ctype = msg.get_content_type()
    if ctype == "multipart/signed":
        return "IPM.Note.SMIME.MultipartSigned"
    if ctype in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
        return "IPM.Note.SMIME"
    if ctype == "multipart/report" and msg.get_param("report-type") == "delivery-status":
        return "REPORT.IPM.Note.NDR"
    return "IPM.Note"


def _hash16(text: str) -> bytes:
    return hashlib.md5(text.encode("utf-8", "replace"), usedforsecurity=False).digest()


def _conversation_index(date: datetime, conversation_id: bytes, replies: int) -> bytes:
    """PidTagConversationIndex (MS-OXOMSG 2.2.1.3): a 22-byte header (the top six bytes of
    the FILETIME, whose first is the reserved 0x01, and the conversation GUID), then one
    5-byte child block per reply level."""
    filetime = int((date - _FILETIME_EPOCH).total_seconds() * 10_000_000)
    head = filetime.to_bytes(8, "big")[:6] + conversation_id
    child = bytes(5)
    return head + child * min(replies, 50)


# -- bodies and attachments -----------------------------------------------------------


def walk(msg: Message) -> Iterator[tuple[int, Message]]:
    """The leaf parts in document order, numbered from 0; message/rfc822 counts as a leaf."""
    counter = 0
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        payload = part.get_payload()
        if part.is_multipart() and part.get_content_maintype() == "multipart" and isinstance(payload, list):
            if depth < MAX_DEPTH:
                stack.extend((child, depth + 1) for child in reversed(payload) if isinstance(child, Message))
            continue
        yield counter, part
        counter += 1


def part_bytes(part: Message) -> bytes:
    """The decoded content of a leaf part (an attached message: its bytes)."""
    if part.get_content_type() == "message/rfc822" or part.is_multipart():
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else payload
        if isinstance(inner, Message):
            try:
                return inner.as_bytes(policy=policy.SMTP)
            except Exception:  # noqa: BLE001
                return inner.as_string().encode("utf-8", "surrogateescape")
        return str(inner).encode("utf-8", "surrogateescape")
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


def part_text(part: Message) -> str:
    """A text part as str, with its charset, falling back to UTF-8 then cp1252."""
    data = part_bytes(part)
    charset = part.get_content_charset() or "utf-8"
    for candidate in (charset, "utf-8"):
        try:
            return clean(data.decode(candidate))
        except (LookupError, UnicodeDecodeError):
            continue
    return clean(data.decode("cp1252", "replace"))


def _bodies_and_attachments(out: Parsed, msg: EmailMessage) -> None:
    bodies: list[Message] = []
    for preference in ("plain", "html"):
        try:
            body = msg.get_body(preferencelist=(preference,))
        except Exception:  # noqa: BLE001
            body = None
        if body is not None and body.get_content_type() == f"text/{preference}":
            bodies.append(body)
            text = part_text(body)
            if preference == "plain":
                out.body_text = text
            else:
                out.body_html = text
    if not bodies and not msg.is_multipart() and msg.get_content_maintype() == "multipart":
        out.body_text = part_text(msg)  # a multipart without a usable boundary: show it as text
        return
    for index, part in walk(msg):
        if any(part is body for body in bodies):
            continue
        if out.meeting is None and part.get_content_type() == "text/calendar" and _meeting(out, part):
            continue  # the invitation itself, shown as MeetingRequest, not as a file
        info = _attachment_info(index, part)
        if info is not None:
            out.attachments.append(info)


def _meeting(out: Parsed, part: Message) -> bool:
    """Keep a text/calendar part as the message's meeting when its METHOD makes it a
    meeting message (request, cancellation, response): the message class follows it."""
    from eas.items import meeting  # only for mail that has a calendar part

    text = part_text(part)
    found = meeting.message_class(text)
    if found is None or out.message_class != "IPM.Note":
        return False
    out.meeting, out.message_class = text, found
    return True


def _attachment_info(index: int, part: Message) -> PartInfo | None:
    ctype = part.get_content_type()
    try:
        disposition = (part.get_content_disposition() or "").lower()
    except Exception:  # noqa: BLE001
        disposition = ""
    data = part_bytes(part)
    if not data and ctype.startswith("text/") and disposition != "attachment":
        return None  # an empty alternative, not a file
    try:
        name = clean(part.get_filename() or "")
    except Exception:  # noqa: BLE001
        name = ""
    method = 5 if ctype == "message/rfc822" else 1
    payload: Any = part.get_payload()
    if not name and method == 5 and isinstance(payload, list) and payload and isinstance(payload[0], Message):
        subject = header(payload[0], "subject")
        name = f"{subject}.eml" if subject else ""
    if not name:
        name = f"attachment-{index + 1}{mimetypes.guess_extension(ctype) or '.bin'}"
    content_id = header(part, "content-id").strip().strip("<>")
    return PartInfo(
        index=index,
        name=name.replace("/", "_").replace("\\", "_")[:255],
        size=len(data),
        content_type=ctype,
        content_id=content_id,
        content_location=header(part, "content-location"),
        is_inline=bool(content_id) and disposition != "attachment",
        method=method,
    )


def attachment_data(mime: bytes, index: int) -> tuple[str, bytes] | None:
    """``(content_type, data)`` of the part numbered ``index`` by ``walk``, or None."""
    msg = load(mime)
    for number, part in walk(msg):
        if number == index:
            return part.get_content_type(), part_bytes(part)
        if number > index:
            break
    return None
