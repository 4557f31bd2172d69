"""The Email item class (MS-ASEMAIL, MS-ASAIRS) for Sync, ItemOperations and Search.

It owns:

- ``parse_body_options``: the Options element of Sync/ItemOperations/GetItemEstimate as
  plain JSON data (FilterType, BodyPreference, MIMESupport, the 2.5 truncations, ...);
- ``write_email``: the ApplicationData children of a mail for one protocol version,
  straight into a ``Writer`` (the initial-sync hot path: no intermediate tree, version
  facts looked up once per version, not per element);
- ``write_email_flags``: the short form a server-side Change of a mail carries (Read,
  Flag, Categories);
- ``parse_email_change``: what a device may change on a mail (Read, Flag, Categories);
- ``draft_mime``: the RFC 5322 message a 16.x device's draft Add describes.

Nothing written here is outside the negotiated version: every version-dependent element
is guarded by a ``_Profile`` flag computed from ``eas.tags`` (``BY_TAG[tag].versions``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

from eas import tags
from eas.backend import Email, EmailChange, Flag
from eas.items import body as bodies
from eas.protocol.errors import ProtocolError
from eas.protocol.versions import SUPPORTED_VERSIONS, Version
from eas.tags import AirSync, AirSyncBase, Email2, Tasks
from eas.tags import Email as E
from eas.wbxml import Node, Writer

__all__ = [
    "DEFAULT_OPTIONS",
    "MIME_TRUNCATION",
    "TRUNCATION",
    "draft_mime",
    "effective_preferences",
    "format_date",
    "mime_mode",
    "parse_body_options",
    "parse_date",
    "parse_email_change",
    "write_email",
    "write_email_flags",
    "write_item_body",
]

# AirSync Truncation (2.5, MS-ASCMD 2.2.3.185): code -> characters kept (None: all).
TRUNCATION: tuple[int | None, ...] = (0, 512, 1024, 2048, 5120, 10240, 20480, 51200, 102400, None)
# AirSync MIMETruncation (MS-ASCMD 2.2.3.111): code -> characters kept (None: all).
MIME_TRUNCATION: tuple[int | None, ...] = (0, 4096, 5120, 7168, 10240, 20480, 51200, 102400, None)

DEFAULT_OPTIONS: dict[str, Any] = {
    "class": "Email",
    "filter_type": 0,
    "mime_support": 0,
    "mime_truncation": None,
    "truncation": None,
    "body_preferences": [],
    "conflict": 1,  # MS-ASCMD 2.2.3.34: the server's object wins unless the client says 0
    "conversation_mode": False,
    "max_items": None,
}

_MAX_CATEGORIES = 300  # MS-ASEMAIL 2.2.2.15: at most 300 Category elements
_MAX_UINT32 = 0xFFFFFFFF


class _Profile:
    """What one protocol version has, looked up once from the tag table."""

    __slots__ = ("airsyncbase", "categories", "content_class", "conversation", "flag", "is_draft", "preview",
                 "v25")

    def __init__(self, version: str) -> None:
        def has(tag: int) -> bool:
            return version in tags.BY_TAG[tag].versions

        self.v25 = has(E.Body)  # Email:Body, BodyTruncated, MIMEData, Email:Attachments: 2.5 only
        self.airsyncbase = has(AirSyncBase.Body)
        self.flag = has(E.Flag)
        self.content_class = has(E.ContentClass)
        self.categories = has(E.Categories)
        self.conversation = has(Email2.ConversationId)
        self.preview = has(AirSyncBase.Preview)
        self.is_draft = has(Email2.IsDraft)


_PROFILES: dict[str, _Profile] = {v.text: _Profile(v.text) for v in SUPPORTED_VERSIONS}


# -- Options ---------------------------------------------------------------------------------


def _int(node: Node, lo: int, hi: int) -> int:
    """The integer text of ``node`` within ``[lo, hi]``; ProtocolError otherwise."""
    text = node.text
    if isinstance(text, str):
        text = text.strip()
        if text.isascii() and text.isdigit() and len(text) <= 10:
            value = int(text)
            if lo <= value <= hi:
                return value
    raise ProtocolError(f"{tags.name(node.tag)} must be an integer in {lo}..{hi}, not {text!r}")


def _bool(node: Node, *, empty: bool | None = None) -> bool:
    """A boolean element: ``0``/``1``; an empty element means ``empty`` (None: invalid)."""
    text = node.text
    if (text is None or text == "") and empty is not None:
        return empty
    if text in ("0", "1"):
        return text == "1"
    raise ProtocolError(f"{tags.name(node.tag)} must be 0 or 1, not {text!r}")


def parse_body_options(options_node: Node | None, version: Version, *, default_class: str = "Email") -> dict[str, Any]:
    """The options of an Options element (Sync, ItemOperations, GetItemEstimate) as JSON
    data: ``class``, ``filter_type``, ``mime_support`` (0 never, 1 S/MIME only, 2 always),
    ``mime_truncation`` and ``truncation`` (characters kept, None for all),
    ``body_preferences`` (``type``, ``truncation_size``, ``all_or_none``, ``preview``),
    ``conflict``, ``conversation_mode``, ``max_items``. Elements of other commands'
    Options (Schema, Range, ...) are left to their command; an invalid value of one of
    these raises ``ProtocolError`` (Sync status 4)."""
    options: dict[str, Any] = dict(DEFAULT_OPTIONS)
    options["class"] = default_class
    options["body_preferences"] = []
    if options_node is None:
        return options
    seen_types: set[int] = set()
    for child in options_node.children:
        tag = child.tag
        if tag == AirSync.FilterType:
            options["filter_type"] = _int(child, 0, 8)
        elif tag == AirSync.Class:
            if not isinstance(child.text, str) or not child.text or len(child.text) > 64:
                raise ProtocolError("Class must be a class name")
            options["class"] = child.text
        elif tag == AirSync.MIMESupport:
            options["mime_support"] = _int(child, 0, 2)
        elif tag == AirSync.MIMETruncation:
            options["mime_truncation"] = MIME_TRUNCATION[_int(child, 0, 8)]
        elif tag == AirSync.Truncation:
            options["truncation"] = TRUNCATION[_int(child, 0, 9)]
        elif tag == AirSync.Conflict:
            options["conflict"] = _int(child, 0, 2)
        elif tag == AirSync.MaxItems:
            options["max_items"] = _int(child, 0, _MAX_UINT32)
        elif tag == AirSyncBase.BodyPreference:
            pref = _body_preference(child)
            if pref["type"] in seen_types:
                raise ProtocolError(f"BodyPreference Type {pref['type']} given twice")
            seen_types.add(pref["type"])
            options["body_preferences"].append(pref)
    return options


def _body_preference(node: Node) -> dict[str, Any]:
    pref: dict[str, Any] = {"type": None, "truncation_size": None, "all_or_none": False, "preview": 0}
    for child in node.children:
        if child.tag == AirSyncBase.Type:
            pref["type"] = _int(child, 1, 4)
        elif child.tag == AirSyncBase.TruncationSize:
            pref["truncation_size"] = _int(child, 0, _MAX_UINT32)
        elif child.tag == AirSyncBase.AllOrNone:
            pref["all_or_none"] = _bool(child)
        elif child.tag == AirSyncBase.Preview:
            pref["preview"] = _int(child, 0, bodies.PREVIEW_MAX)
    if pref["type"] is None:
        raise ProtocolError("BodyPreference without Type")
    return pref


def effective_preferences(options: dict[str, Any]) -> list[dict[str, Any]]:
    """The BodyPreferences in force: the client's, else MIME for a client that asked for
    MIME always (MIMESupport 2), else plain text."""
    prefs: list[dict[str, Any]] = options.get("body_preferences") or []
    if prefs:
        return prefs
    return [_MIME_PREF] if options.get("mime_support", 0) == 2 else [_PLAIN_PREF]


_PLAIN_PREF: dict[str, Any] = {"type": bodies.PLAIN, "truncation_size": None, "all_or_none": False, "preview": 0}
_MIME_PREF: dict[str, Any] = {"type": bodies.MIME, "truncation_size": None, "all_or_none": False, "preview": 0}


def mime_mode(options: dict[str, Any], version: Version) -> int:
    """Whether ``write_email`` will want ``Email.mime``: 0 never, 1 for S/MIME mail only,
    2 always; so a caller fetches the MIME bytes only when they are sent."""
    support: int = options.get("mime_support", 0)
    if _PROFILES[version.text].v25:
        return support
    types = {p["type"] for p in effective_preferences(options)}
    if bodies.MIME not in types:
        return 0
    if support == 2 or not types & {bodies.PLAIN, bodies.HTML}:
        return 2
    return 1 if support == 1 else 0


def is_smime(email: Email) -> bool:
    """A signed or encrypted mail, whose MIME goes out when MIMESupport is 1."""
    return email.message_class.startswith("IPM.Note.SMIME")


# -- Dates -----------------------------------------------------------------------------------


def format_date(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, as devices expect (a naive value is UTC)."""
    tz = value.tzinfo
    if tz is not None and tz is not UTC:
        value = value.astimezone(UTC)
    return (f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:"
            f"{value.second:02d}.{value.microsecond // 1000:03d}Z")


def parse_date(text: str | bytes | None) -> datetime:
    """A device's date (``2009-11-12T00:45:06.000Z``, also without ms, without ``Z``, or
    in the basic form ``20091112T004506Z``) as an aware UTC datetime; ProtocolError if it
    is none of these."""
    if not isinstance(text, str) or not 8 <= len(text) <= 40 or not text.isascii():
        raise ProtocolError(f"not a date: {text!r}")
    try:
        value = datetime.fromisoformat(text.strip())
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset that leaves years 1-9999
        raise ProtocolError(f"not a date: {text!r}") from None


# -- Writing a mail --------------------------------------------------------------------------

_IMPORTANCE = ("0", "1", "2")


def write_email(w: Writer, email: Email, version: Version, options: dict[str, Any]) -> None:
    """The ApplicationData children of ``email`` for ``version`` under ``options``
    (BodyPreference, MIMESupport, truncation). ``email.mime`` is used when the options
    ask for MIME (see ``mime_mode``) and the caller fetched it; otherwise the text bodies."""
    p = _PROFILES[version.text]
    leaf = w.leaf
    if email.to:
        leaf(E.To, email.to)
    if email.cc:
        leaf(E.Cc, email.cc)
    if email.sender:
        leaf(E.From, email.sender)
    leaf(E.Subject, email.subject)
    if email.reply_to:
        leaf(E.ReplyTo, email.reply_to)
    if email.date_received is not None:
        leaf(E.DateReceived, format_date(email.date_received))
    if email.display_to:
        leaf(E.DisplayTo, email.display_to)
    if email.thread_topic:
        leaf(E.ThreadTopic, email.thread_topic)
    importance = email.importance
    leaf(E.Importance, _IMPORTANCE[importance] if 0 <= importance <= 2 else "1")
    leaf(E.Read, "1" if email.read else "0")
    if p.v25:
        if email.attachments:
            _write_attachments_25(w, email)
        _write_body_25(w, email, options)
    else:
        if email.attachments:
            _write_attachments(w, email)
        _write_body(w, email, options, p.preview)
    leaf(E.MessageClass, email.message_class or "IPM.Note")
    if email.meeting_request is not None:
        from eas.items.meeting import write_meeting_request  # meeting mail only

        write_meeting_request(w, email.meeting_request, email.message_class, version)
    leaf(E.InternetCPID, str(email.internet_cpid))
    if p.flag:
        _write_flag(w, email.flag)
    if p.content_class:
        leaf(E.ContentClass, email.content_class or "urn:content-classes:message")
    if p.airsyncbase:
        leaf(AirSyncBase.NativeBodyType, "2" if email.body_html is not None else "1")
    if p.conversation:
        if email.conversation_id:
            w.opaque(Email2.ConversationId, email.conversation_id)
        if email.conversation_index:
            w.opaque(Email2.ConversationIndex, email.conversation_index)
    if p.categories and email.categories:
        with w.tag(E.Categories):
            for category in email.categories:
                leaf(E.Category, category)
    if p.is_draft:
        leaf(Email2.IsDraft, "1" if email.is_draft else "0")
        if email.is_draft and email.bcc:
            leaf(Email2.Bcc, email.bcc)


def write_email_flags(w: Writer, email: Email, version: Version) -> None:
    """The ApplicationData of a server-side Change of a mail: only what can change on a
    delivered mail (Read, Flag, Categories), an empty Flag or Categories clearing them."""
    p = _PROFILES[version.text]
    w.leaf(E.Read, "1" if email.read else "0")
    if p.flag:
        _write_flag(w, email.flag)
    if p.categories:
        if email.categories:
            with w.tag(E.Categories):
                for category in email.categories:
                    w.leaf(E.Category, category)
        else:
            w.empty(E.Categories)


def _write_flag(w: Writer, flag: Flag | None) -> None:
    """MS-ASEMAIL 2.2.2.27: an empty Flag when there is none (this clears it on the device)."""
    if flag is None or flag.status == 0:
        w.empty(E.Flag)
        return
    with w.tag(E.Flag):
        w.leaf(E.Status, flag.status if flag.status in (1, 2) else 2)
        if flag.flag_type:
            w.leaf(E.FlagType, flag.flag_type)
        if flag.start_date is not None:
            start = format_date(flag.start_date)
            w.leaf(Tasks.StartDate, start)
            w.leaf(Tasks.UtcStartDate, start)
        if flag.due_date is not None:
            due = format_date(flag.due_date)
            w.leaf(Tasks.DueDate, due)
            w.leaf(Tasks.UtcDueDate, due)
        if flag.status == 1 and flag.complete_time is not None:
            done = format_date(flag.complete_time)
            w.leaf(E.CompleteTime, done)
            w.leaf(Tasks.DateCompleted, done)
        w.leaf(Tasks.ReminderSet, "1" if flag.reminder_set else "0")
        if flag.reminder_set and flag.reminder_time is not None:
            w.leaf(Tasks.ReminderTime, format_date(flag.reminder_time))


def _write_attachments(w: Writer, email: Email) -> None:
    """AirSyncBase Attachments (MS-ASAIRS 2.2.2.7), 12.0 and later."""
    with w.tag(AirSyncBase.Attachments):
        for a in email.attachments:
            with w.tag(AirSyncBase.Attachment):
                w.leaf(AirSyncBase.DisplayName, a.display_name or "attachment")
                w.leaf(AirSyncBase.FileReference, a.file_reference)
                w.leaf(AirSyncBase.Method, a.method)
                w.leaf(AirSyncBase.EstimatedDataSize, max(0, a.size))
                if a.content_id:
                    w.leaf(AirSyncBase.ContentId, a.content_id)
                if a.content_location:
                    w.leaf(AirSyncBase.ContentLocation, a.content_location)
                if a.is_inline:
                    w.leaf(AirSyncBase.IsInline, "1")


def _write_attachments_25(w: Writer, email: Email) -> None:
    """Email:Attachments (MS-ASEMAIL 2.2.2.8), 2.5: AttName is the GetAttachment name."""
    with w.tag(E.Attachments):
        for a in email.attachments:
            with w.tag(E.Attachment):
                w.leaf(E.AttName, a.file_reference)
                w.leaf(E.AttSize, max(0, a.size))
                w.leaf(E.AttMethod, a.method)
                w.leaf(E.DisplayName, a.display_name or "attachment")


def _text_of(email: Email) -> str:
    if email.body_text is not None:
        return email.body_text
    return bodies.html_to_text(email.body_html) if email.body_html else ""


def _body_data(email: Email, kind: int) -> str:
    if kind == bodies.PLAIN:
        return _text_of(email)
    if kind == bodies.HTML:
        if email.body_html is not None:
            return email.body_html
        return bodies.text_to_html(email.body_text or "")
    assert email.mime is not None
    return email.mime.decode("utf-8", "surrogateescape")


def _candidates(email: Email, options: dict[str, Any]) -> list[dict[str, Any]]:
    """The BodyPreferences to try in order (MS-ASAIRS 2.2.2.12): MIME when the client
    takes it for this mail, then the mail's native type, then the richer one; RTF is not
    produced. The later ones are the fallbacks of AllOrNone."""
    prefs = effective_preferences(options)
    native = bodies.HTML if email.body_html is not None else bodies.PLAIN
    texts = [p for p in prefs if p["type"] in (bodies.PLAIN, bodies.HTML)]
    texts.sort(key=lambda p: (p["type"] != native, -p["type"]))
    if email.mime is not None:
        mime = next((p for p in prefs if p["type"] == bodies.MIME), None)
        support = options.get("mime_support", 0)
        if mime is not None and (support == 2 or (support == 1 and is_smime(email)) or not texts):
            return [mime, *texts]
    if not texts:
        return [{"type": native, "truncation_size": None, "all_or_none": False, "preview": 0}]
    return texts


def _write_body(w: Writer, email: Email, options: dict[str, Any], with_preview: bool) -> None:
    """AirSyncBase Body (MS-ASAIRS 2.2.2.9): Type, EstimatedDataSize, Truncated, Data, Preview."""
    candidates = _candidates(email, options)
    last = len(candidates) - 1
    for i, pref in enumerate(candidates):
        kind: int = pref["type"]
        data = _body_data(email, kind)
        limit: int | None = pref["truncation_size"]
        if limit is None:
            size, truncated = bodies.utf8_size(data), False
        else:
            data, size, truncated = bodies.truncate_utf8(data, limit)
            if truncated and pref["all_or_none"]:
                if i < last:
                    continue
                data = ""  # AllOrNone: no part of a body that does not fit
        with w.tag(AirSyncBase.Body):
            w.leaf(AirSyncBase.Type, kind)
            w.leaf(AirSyncBase.EstimatedDataSize, size)
            if truncated:
                w.leaf(AirSyncBase.Truncated, "1")
            if data or not truncated:
                w.leaf(AirSyncBase.Data, data)
            if with_preview and pref["preview"]:
                w.leaf(AirSyncBase.Preview, bodies.preview(_text_of(email), pref["preview"]))
        return


def write_item_body(w: Writer, text: str, html: str | None, options: dict[str, Any], version: Version) -> None:
    """The AirSyncBase Body of a contact, task or note (12.0 and later): the same choice
    of BodyPreference, truncation and Preview as for a mail whose text is ``text`` (and
    ``html``, its HTML form, if it has one); nothing is written for an empty body."""
    if text or html:
        carrier = Email(id="", body_text=text if text or html is None else None, body_html=html)
        _write_body(w, carrier, options, _PROFILES[version.text].preview)


def _write_body_25(w: Writer, email: Email, options: dict[str, Any]) -> None:
    """2.5 bodies (MS-ASEMAIL 2.2.2.10.2, 2.2.2.50): MIMEData when MIMESupport asks for it,
    else the plain text Body, truncated to the Truncation code's characters."""
    support = options.get("mime_support", 0)
    if email.mime is not None and (support == 2 or (support == 1 and is_smime(email))):
        mime = email.mime.decode("utf-8", "surrogateescape")
        limit = options.get("mime_truncation")
        if limit is not None and len(mime) > limit:
            w.leaf(E.MIMETruncated, "1")
            w.leaf(E.MIMESize, len(mime))
            if limit:
                w.leaf(E.MIMEData, mime[:limit])
        else:
            w.leaf(E.MIMETruncated, "0")
            w.leaf(E.MIMEData, mime)
        return
    text = _text_of(email)
    limit = options.get("truncation")
    if limit is not None and len(text) > limit:
        if limit:
            w.leaf(E.Body, text[:limit])
        w.leaf(E.BodySize, len(text))
        w.leaf(E.BodyTruncated, "1")
    else:
        w.leaf(E.Body, text)
        w.leaf(E.BodyTruncated, "0")


# -- Client changes --------------------------------------------------------------------------


def parse_email_change(app_data_node: Node, version: Version) -> EmailChange:
    """What a device changed on a mail (MS-ASEMAIL 3.1.5.3): Read, Flag (an empty Flag or
    Status 0 clears it), Categories (an empty element clears them). Other elements are
    not changeable on a delivered mail and are ignored. ProtocolError for bad values."""
    change = EmailChange()
    p = _PROFILES[version.text]
    for child in app_data_node.children:
        tag = child.tag
        if tag == E.Read:
            change.read = _bool(child)
        elif tag == E.Flag and p.flag:
            change.flag = _parse_flag(child)
        elif tag == E.Categories and p.categories:
            change.categories = _parse_categories(child)
    return change


def _parse_flag(node: Node) -> Flag:
    if not node.children:
        return Flag(status=0)
    flag = Flag(status=2, flag_type="")
    for child in node.children:
        tag = child.tag
        if tag == E.Status:
            flag.status = _int(child, 0, 2)
        elif tag == E.FlagType:
            flag.flag_type = child.text if isinstance(child.text, str) else ""
        elif tag in (Tasks.UtcStartDate, Tasks.StartDate):
            if tag == Tasks.UtcStartDate or flag.start_date is None:
                flag.start_date = parse_date(child.text)
        elif tag in (Tasks.UtcDueDate, Tasks.DueDate):
            if tag == Tasks.UtcDueDate or flag.due_date is None:
                flag.due_date = parse_date(child.text)
        elif tag in (E.CompleteTime, Tasks.DateCompleted):
            flag.complete_time = parse_date(child.text)
        elif tag == Tasks.ReminderSet:
            flag.reminder_set = _bool(child)
        elif tag == Tasks.ReminderTime:
            flag.reminder_time = parse_date(child.text)
    if flag.status == 2 and not flag.flag_type:
        flag.flag_type = "Follow up"
    return flag


def _parse_categories(node: Node) -> list[str]:
    out: list[str] = []
    for child in node.children:
        if child.tag != E.Category:
            continue
        if not isinstance(child.text, str) or len(child.text) > 255:
            raise ProtocolError("a Category must be text of at most 255 characters")
        out.append(child.text)
    if len(out) > _MAX_CATEGORIES:
        raise ProtocolError(f"more than {_MAX_CATEGORIES} categories")
    return out


# -- Drafts (16.0 and later) -----------------------------------------------------------------


def draft_mime(app_data_node: Node, version: Version, sender: str) -> bytes:
    """The RFC 5322 message a 16.x draft Add describes (MS-ASEMAIL 3.1.5.3.6): To, Cc,
    Bcc, Subject, Importance and the AirSyncBase Body (plain, HTML, or a MIME Data)."""
    fields: dict[int, str] = {}
    body_type, body_data = bodies.PLAIN, ""
    for child in app_data_node.children:
        if child.tag == AirSyncBase.Body:
            body_type = _int(child.find(AirSyncBase.Type) or Node(AirSyncBase.Type, "1"), 1, 4)
            data = child.findtext(AirSyncBase.Data, default="")
            if not isinstance(data, str):
                raise ProtocolError("Body Data must be text")
            body_data = data
        elif isinstance(child.text, str):
            fields[child.tag] = child.text
    if body_type == bodies.MIME:
        return body_data.encode("utf-8", "surrogateescape")
    msg = EmailMessage(policy=SMTP)
    try:
        msg["From"] = sender
        for tag, name in ((E.To, "To"), (E.Cc, "Cc"), (Email2.Bcc, "Bcc")):
            if fields.get(tag):
                msg[name] = fields[tag]
        msg["Subject"] = fields.get(E.Subject, "")
        msg["Date"] = format_datetime(datetime.now(UTC))
        importance = fields.get(E.Importance)
        if importance in ("0", "2"):
            msg["Importance"] = "low" if importance == "0" else "high"
        if body_type == bodies.HTML:
            msg.set_content(body_data, subtype="html")
        else:
            msg.set_content(body_data)
        return msg.as_bytes()
    except (ValueError, TypeError, UnicodeError) as e:
        raise ProtocolError(f"the draft cannot be written as a message: {e}") from None
