"""The messages SendMail, SmartReply and SmartForward submit (MS-ASCMD 2.2.1.17, .19, .20).

A device sends its own text as RFC 5322; for SmartReply and SmartForward the server adds
the original (unless the device set ReplaceMime): a reply gets the original's text quoted
under the device's text, a forward gets the original's text and its attachments. Only the
stdlib ``email`` package is used, and the device's bytes are re-serialised only when
something has to be added to them: a plain SendMail goes out byte for byte, with at most
a few header lines put in front.

``MimeError`` means the bytes are no message at all (common status 107, InvalidMIME).
Bcc stays in what is handed to the backend: the backend needs it to deliver, and removes
it from the copies recipients get.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.utils import format_datetime, getaddresses, make_msgid

_MSGID = re.compile(r"<[^<>\s]+>")
_BODY = re.compile(r"<body[^>]*>(.*)</body\s*>", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_DROP = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_BREAK = re.compile(r"<(br|/p|/div|/tr|/li|/h[1-6])\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_BLANK_LINES = re.compile(r"\n{3,}")
# A MIME tree deeper than this is not walked for attachments (a hostile message can nest thousands).
MAX_DEPTH = 32


class MimeError(ValueError):
    """The bytes are not an RFC 5322 message (no header at all)."""


def parse(mime: bytes) -> EmailMessage:
    """The message in ``mime``; ``MimeError`` when it has no header field at all."""
    if not mime or not mime.strip():
        raise MimeError("empty message")
    try:
        msg = message_from_bytes(mime, policy=policy.default)
    except Exception as e:  # noqa: BLE001 - the stdlib parser is lenient; anything else is junk
        raise MimeError(f"unparsable message: {e}") from None
    if not list(msg.keys()):
        raise MimeError("the message has no header")
    assert isinstance(msg, EmailMessage)
    return msg


def recipients(msg: Message) -> list[str]:
    """The addresses of To, Cc and Bcc (the ones that have an ``@``)."""
    found: list[str] = []
    for name in ("to", "cc", "bcc"):
        for value in _raw_values(msg, name):
            found += [addr for _, addr in getaddresses([value]) if "@" in addr]
    return found


def with_missing_headers(mime: bytes, msg: Message, sender: str) -> bytes:
    """``mime`` with From, Date and Message-ID put in front where the device left them out,
    without touching the device's bytes."""
    extra: list[tuple[str, str]] = []
    if not _raw_values(msg, "from"):
        extra.append(("From", sender))
    if not _raw_values(msg, "date"):
        extra.append(("Date", format_datetime(datetime.now(UTC))))
    if not _raw_values(msg, "message-id"):
        extra.append(("Message-ID", make_msgid(domain=sender.rpartition("@")[2] or None)))
    newline = b"\r\n" if b"\r\n" in mime[:4096] else b"\n"
    return b"".join(f"{k}: {v}".encode() + newline for k, v in extra) + mime


def to_bytes(msg: EmailMessage) -> bytes:
    """The message with CRLF line ends; ``MimeError`` when it cannot be written out."""
    try:
        return msg.as_bytes(policy=policy.SMTP)
    except Exception as e:  # noqa: BLE001 - headers the generator refuses
        raise MimeError(f"the message cannot be written: {e}") from None


# -- SmartReply and SmartForward ----------------------------------------------------


def reply(new: EmailMessage, original: EmailMessage) -> EmailMessage:
    """The device's reply with the original's text quoted under it, and In-Reply-To and
    References set when the device did not set them."""
    _append_original(new, original, quote=True, heading="-----Original Message-----")
    ids = _MSGID.findall(_header(original, "message-id"))
    if ids:
        if not _raw_values(new, "in-reply-to"):
            new["In-Reply-To"] = ids[0]
        if not _raw_values(new, "references"):
            chain = _MSGID.findall(_header(original, "references"))[-20:]
            new["References"] = " ".join([*chain, ids[0]])
    return new


def forward(new: EmailMessage, original: EmailMessage) -> EmailMessage:
    """The device's message with the original's text under it and the original's
    attachments attached."""
    _append_original(new, original, quote=False, heading="-----Original Message-----")
    for part in attachments(original):
        if new.get_content_type() != "multipart/mixed":
            new.make_mixed()
        new.attach(part)  # type: ignore[arg-type]  # parsed parts are EmailMessage (policy.default)
    return new


def new_forward(sender: str, forwardees: Sequence[tuple[str, str]], subject: str, text: str | None,
                html_text: str | None) -> EmailMessage:
    """A message to ``forwardees`` (``(name, address)``) built from a 16.x SmartForward's
    Forwardees and airsyncbase:Body, for ``forward`` to complete."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = [_address(name, addr) for name, addr in forwardees]
    msg["Subject"] = subject
    if html_text is not None:
        msg.set_content(html_text, subtype="html", cte=_cte(html_text))
    else:
        body = text or ""
        msg.set_content(body, cte=_cte(body))
    return msg


def attachments(msg: Message) -> Iterator[Message]:
    """The leaf parts that are not the message's text or HTML body (an attached message
    is one leaf), in document order."""
    bodies = [b for b in _bodies(msg) if b is not None]
    stack: list[tuple[Message, int]] = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        payload = part.get_payload()
        if part.get_content_maintype() == "multipart" and isinstance(payload, list):
            if depth < MAX_DEPTH:
                stack.extend((child, depth + 1) for child in reversed(payload) if isinstance(child, Message))
            continue
        if part is msg or any(part is b for b in bodies):
            continue
        yield part


def text_of(msg: Message) -> tuple[str | None, str | None]:
    """``(plain, html)`` bodies of a message, either None when it has none."""
    plain, rich = _bodies(msg)
    return (_content(plain) if plain is not None else None, _content(rich) if rich is not None else None)


def html_to_text(value: str) -> str:
    """A readable plain text of an HTML body (for quoting into a text-only reply)."""
    value = _DROP.sub("", value)
    value = _BREAK.sub("\n", value)
    value = html.unescape(_TAG.sub("", value))
    lines = [line.rstrip() for line in value.replace("\r\n", "\n").split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _append_original(new: EmailMessage, original: EmailMessage, *, quote: bool, heading: str) -> None:
    orig_plain, orig_html = text_of(original)
    if orig_plain is None and orig_html is not None:
        orig_plain = html_to_text(orig_html)
    orig_plain = orig_plain or ""
    fields = [(label, _header(original, name)) for label, name in
              (("From", "from"), ("Sent", "date"), ("To", "to"), ("Cc", "cc"), ("Subject", "subject"))]
    fields = [(label, value) for label, value in fields if value]
    plain_part, html_part = _bodies(new)
    if plain_part is None and html_part is None:
        # The device sent no text of its own (only attachments, or nothing): the quote
        # becomes the text.
        if new.get_content_maintype() != "multipart":
            new.make_mixed()
        part = EmailMessage()
        part.set_content("")
        del part["MIME-Version"]
        payload = new.get_payload()
        assert isinstance(payload, list)
        payload.insert(0, part)
        plain_part = part
    if plain_part is not None:
        body = orig_plain if not quote else "\n".join("> " + line if line else ">" for line in
                                                      orig_plain.replace("\r\n", "\n").split("\n"))
        block = "\n".join([heading, *(f"{label}: {value}" for label, value in fields)])
        _set_text(plain_part, new, (_content(plain_part) or "").rstrip("\r\n") + f"\n\n{block}\n\n{body}\n",
                  "plain")
    if html_part is not None:
        if orig_html is not None:
            match = _BODY.search(orig_html)
            inner = match.group(1) if match else orig_html
        else:
            inner = html.escape(orig_plain).replace("\n", "<br>\n")
        head = "<br>\n".join(f"<b>{html.escape(label)}:</b> {html.escape(value)}" for label, value in fields)
        if quote:
            inner = f'<blockquote style="margin:0 0 0 .8ex;border-left:1px solid #ccc;padding-left:1ex">{inner}</blockquote>'
        block = f"<hr>\n<div>{head}</div>\n<br>\n{inner}\n"
        current = _content(html_part) or ""
        ends = list(_BODY_END.finditer(current))
        if ends:
            at = ends[-1].start()
            current = current[:at] + block + current[at:]
        else:
            current = current + block
        _set_text(html_part, new, current, "html")


def _bodies(msg: Message) -> tuple[Message | None, Message | None]:
    if not isinstance(msg, EmailMessage):
        return None, None
    try:
        plain = msg.get_body(preferencelist=("plain",))
    except Exception:  # noqa: BLE001 - a broken tree has no usable body
        plain = None
    try:
        rich = msg.get_body(preferencelist=("html",))
    except Exception:  # noqa: BLE001
        rich = None
    return plain, rich


def _content(part: Message) -> str | None:
    """The text of a part in its charset, falling back to UTF-8 then cp1252."""
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        data = None
    if not isinstance(data, bytes):
        raw = part.get_payload()
        return raw if isinstance(raw, str) else None
    charset = part.get_content_charset() or "utf-8"
    for candidate in (charset, "utf-8"):
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("cp1252", "replace")


def _set_text(part: Message, root: Message, text: str, subtype: str) -> None:
    assert isinstance(part, EmailMessage)
    disposition = part.get("Content-Disposition")
    part.set_content(text, subtype=subtype, charset="utf-8", cte=_cte(text))
    if disposition:
        part["Content-Disposition"] = str(disposition)
    if part is not root:
        del part["MIME-Version"]


def _cte(text: str) -> str | None:
    """7bit text as it is; anything else quoted-printable, which every relay carries."""
    if text.isascii() and all(len(line) <= 900 for line in text.splitlines()):
        return None
    return "quoted-printable"


def _raw_values(msg: Message, name: str) -> list[str]:
    """The values of a header as written (no structured parsing, which can fail)."""
    out: list[str] = []
    for key, value in msg.raw_items() if hasattr(msg, "raw_items") else msg.items():
        if key.lower() == name:
            out.append(str(value).strip())
    return [v for v in out if v]


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
        return "" if value is None else " ".join(str(value).split())
    except Exception:  # noqa: BLE001 - fall back to the raw value
        values = _raw_values(msg, name)
        return " ".join(values[0].split()) if values else ""


def _address(name: str, addr: str) -> Address:
    user, _, domain = addr.rpartition("@")
    return Address(display_name=name, username=user, domain=domain)
