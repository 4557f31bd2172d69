"""The notice mailbox: what a quarantined, blocked or discovered device sees instead of
the mail (DESIGN.md "One request, end to end", step 4).

A restricted device is answered by the core (``ActiveSync._locked``) from a small
read-only Backend of its own, ``NoticeMailbox``: one Inbox holding one mail that says
what happened, in the device's language. Provision passes as for any device
(``PASS_COMMANDS``); the commands that read mail run against the notice mailbox
(``MAILBOX_COMMANDS``), Settings among them: the device still tells its
DeviceInformation (which ends discovery), while out-of-office and user information are
the notice mailbox's, so a restricted device can neither read nor change the real ones;
every other command is refused with status 129. The core
resets the device's sync state when it moves between allowed and not, so the device
re-syncs to the mailbox it may now see.

Notice texts, per state ("quarantined" or "blocked"; "discovery" uses quarantined's),
are settings ``abq.message:<state>:<domain>:<language>`` (the parts empty at the global
level), each ``{"subject": str | null, "text": str}``. The one that applies, first found:

===================  ==========================================================
source               setting
===================  ==========================================================
``domain+language``  ``abq.message:quarantined:example.com:de``
``domain``           ``abq.message:quarantined:example.com:``
``global+language``  ``abq.message:quarantined::de``
``global``           ``abq.message:quarantined::``
``built-in``         ``BUILT_IN`` (English, German, French), in the device's
                     language when it is one of those, else English
===================  ==========================================================

A language is a BCP 47 tag (``de``, ``pt-BR``), matched case-insensitively; a longer
tag falls back to its shorter ones at each level (``de-AT``, then ``de``). The device's
language comes from Settings DeviceInformation OSLanguage (``device_language``), which
clients send as a name ("Deutsch", "German") or a code ("de-DE", "de_DE"). A subject
left unset is the built-in one of the state. Texts may carry ``{device_id}``,
``{device_type}``, ``{user}``, ``{model}`` and ``{reason}``, replaced in one pass by
plain substitution (no format strings: nothing of the device can reach an attribute).

The mail is a real RFC 5322 message (text/plain with an HTML alternative) dated by the
decision (``DeviceRecord.access_time``), from ``abq.notice_from`` (default
postmaster@ the account's domain) to the account. Its item id is a digest of what it
says, so a changed text reaches the device as a Delete of the old notice and an Add of
the new one: a Change of a delivered mail carries only its flags (Read, Flag,
Categories; ``eas.items.email.write_email_flags``), so a Change could not carry a new
text. An unchanged notice keeps its id and stamp across requests.

Writes are refused as the Backend protocol refuses them, each with the exception its
commands turn into a status: item changes, deletes and moves ``ItemNotFound`` (Sync
status 8; a deleted notice comes back at the next Sync), adds ``QuotaExceeded`` (9),
folder changes ``SpecialFolder``, sending ``SendFailed``. Nothing reaches the real
mailbox: the notice mailbox has no reference to it.

``abq.blocked_notice`` (true) says whether blocked devices see the notice mailbox; when
false they get status 129 for every command but Settings and Provision.
"""

from __future__ import annotations

import hashlib
import html
import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import TYPE_CHECKING, Any

from eas.access import register
from eas.backend import (
    BackendError,
    Email,
    Folder,
    FolderNotFound,
    FolderType,
    ItemNotFound,
    Oof,
    QuotaExceeded,
    SendFailed,
    SpecialFolder,
    UserInformation,
)
from eas.mime import to_bytes
from eas.state.model import AuditEvent

if TYPE_CHECKING:
    from eas.access import AccessDecision
    from eas.backend import Backend, BusyPeriod, ChangeCallback, EmailChange, Flag, Item, MailboxQuery, Person
    from eas.state.model import DeviceRecord
    from eas.state.store import StateStore

# Commands a restricted device may run as any device does (they read no mail) and those
# answered from the notice mailbox; every other command is refused with status 129.
PASS_COMMANDS = frozenset({"Provision"})
MAILBOX_COMMANDS = frozenset({"FolderSync", "Sync", "Ping", "GetItemEstimate", "ItemOperations", "Settings"})

CACHE_SECONDS = 1.0
PREFIX = "abq.message:"
STATES = ("quarantined", "blocked")  # those with texts of their own; discovery uses quarantined's
MAX_SUBJECT = 255
MAX_TEXT = 8000
MAX_VALUE = 128  # of a device's value put in for a placeholder
INBOX_ID = "notice-inbox"
MAILS_KEPT = 1000  # built notice mails kept (one per account, device decision and text)

_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*", re.IGNORECASE)
_DOMAIN = re.compile(r"(?=.{1,253}\Z)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*")
_CONTROL = frozenset({"Cc", "Cs", "Zl", "Zp"})  # refused in texts: controls, lone surrogates, separators
_PLACEHOLDER = re.compile(r"\{(device_id|device_type|user|model|reason)\}")

# Built-in texts per state and language: (subject, text).
BUILT_IN: dict[str, dict[str, tuple[str, str]]] = {
    "quarantined": {
        "en": ("Your device is waiting for approval",
               ("Your device {device_type} ({device_id}) may not synchronise mail, calendar and contacts "
                "with {user} until an administrator approves it.\n\n"
                "You need not do anything: once it is approved, your mail appears here by itself. "
                "If that takes long, please contact your administrator.")),
        "de": ("Ihr Gerät wartet auf Freigabe",
               ("Ihr Gerät {device_type} ({device_id}) darf E-Mail, Kalender und Kontakte von {user} erst "
                "synchronisieren, wenn ein Administrator es freigibt.\n\n"
                "Sie müssen nichts tun: Sobald es freigegeben ist, erscheinen Ihre E-Mails hier von selbst. "
                "Dauert das lange, wenden Sie sich bitte an Ihren Administrator.")),
        "fr": ("Votre appareil attend une autorisation",
               ("Votre appareil {device_type} ({device_id}) ne peut synchroniser le courrier, le calendrier "
                "et les contacts de {user} qu'après l'autorisation d'un administrateur.\n\n"
                "Vous n'avez rien à faire : dès qu'il est autorisé, votre courrier apparaît ici de lui-même. "
                "Si cela tarde, veuillez contacter votre administrateur.")),
    },
    "blocked": {
        "en": ("Your device has been blocked",
               ("Your device {device_type} ({device_id}) is not allowed to synchronise with {user}.\n\n"
                "If you think this is a mistake, please contact your administrator.")),
        "de": ("Ihr Gerät wurde gesperrt",
               ("Ihr Gerät {device_type} ({device_id}) darf nicht mit {user} synchronisieren.\n\n"
                "Falls das ein Irrtum ist, wenden Sie sich bitte an Ihren Administrator.")),
        "fr": ("Votre appareil a été bloqué",
               ("Votre appareil {device_type} ({device_id}) n'est pas autorisé à se synchroniser avec {user}.\n\n"
                "Si vous pensez qu'il s'agit d'une erreur, veuillez contacter votre administrateur.")),
    },
    "discovery": {
        "en": ("Your device is being checked",
               ("Your device {device_type} ({device_id}) is being checked before it may synchronise with "
                "{user}. This usually takes a moment; if it does not end, please contact your administrator.")),
        "de": ("Ihr Gerät wird geprüft",
               ("Ihr Gerät {device_type} ({device_id}) wird geprüft, bevor es mit {user} synchronisieren darf. "
                "Das dauert meist nur einen Moment; wenn nicht, wenden Sie sich bitte an Ihren Administrator.")),
        "fr": ("Votre appareil est en cours de vérification",
               ("Votre appareil {device_type} ({device_id}) est vérifié avant de pouvoir se synchroniser avec "
                "{user}. Cela ne prend en général qu'un instant ; sinon, veuillez contacter votre administrateur.")),
    },
}

# OSLanguage as clients send it: names in English or in the language itself (lower
# case), and the Windows LCIDs some send; codes ("de-DE", "de_DE") are read as tags.
LANGUAGE_NAMES: dict[str, str] = {
    "english": "en", "german": "de", "deutsch": "de", "french": "fr", "français": "fr", "francais": "fr",
    "spanish": "es", "español": "es", "espanol": "es", "italian": "it", "italiano": "it",
    "dutch": "nl", "nederlands": "nl", "portuguese": "pt", "português": "pt", "portugues": "pt",
    "polish": "pl", "polski": "pl", "swedish": "sv", "svenska": "sv", "danish": "da", "dansk": "da",
    "norwegian": "nb", "norsk": "nb", "finnish": "fi", "suomi": "fi", "czech": "cs", "čeština": "cs",
    "turkish": "tr", "türkçe": "tr", "hungarian": "hu", "magyar": "hu", "greek": "el", "ελληνικά": "el",
    "russian": "ru", "русский": "ru", "japanese": "ja", "日本語": "ja", "chinese": "zh", "中文": "zh",
    "korean": "ko", "한국어": "ko", "catalan": "ca", "català": "ca", "romanian": "ro", "română": "ro",
    "1033": "en-US", "2057": "en-GB", "1031": "de-DE", "3079": "de-AT", "2055": "de-CH", "1036": "fr-FR",
    "1034": "es-ES", "3082": "es-ES", "1040": "it-IT", "1043": "nl-NL", "2070": "pt-PT", "1046": "pt-BR",
}


@dataclass(frozen=True, slots=True)
class Notice:
    """A notice text: ``source`` says where it came from (``domain+language``, ``domain``,
    ``global+language``, ``global`` or ``built-in``); ``domain`` and ``language`` are
    those of that level ("" where it has none)."""

    state: str
    domain: str
    language: str
    subject: str
    text: str
    source: str


# -- checks --------------------------------------------------------------------------------


def check_state(state: Any) -> str:
    if not isinstance(state, str):
        raise TypeError("a state is a string")
    if state not in STATES:
        raise ValueError(f"a notice is for a state of {', '.join(STATES)}, not {state[:32]!r}")
    return state


def check_language(language: Any) -> str:
    """A BCP 47-ish tag in its usual case (``de``, ``pt-BR``, ``zh-Hant-TW``); "" for none."""
    if not isinstance(language, str):
        raise TypeError("a language is a string")
    if not language:
        return ""
    if len(language) > 35 or not _LANGUAGE.fullmatch(language):
        raise ValueError(f"not a language tag (like de or pt-BR): {language[:35]!r}")
    primary, *rest = language.lower().split("-")
    return "-".join([primary, *(p.upper() if len(p) == 2 else p.title() if len(p) == 4 else p for p in rest)])


def check_domain(domain: Any) -> str:
    """A mail domain in lower case, internationalised ones as their ASCII form; "" for none."""
    if not isinstance(domain, str):
        raise TypeError("a domain is a string")
    text = domain.strip().lower().removeprefix("@")
    if not text:
        return ""
    if len(text) <= 253 and not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            pass
    if not _DOMAIN.fullmatch(text):
        raise ValueError(f"not a mail domain: {domain[:64]!r}")
    return text


def _check_text(value: Any, what: str, limit: int, *, lines: bool) -> str:
    """Printable text of at most ``limit`` characters; line breaks (as ``\\n``) and tabs
    only where ``lines``."""
    if not isinstance(value, str):
        raise TypeError(f"a {what} is a string")
    text = value.replace("\r\n", "\n")
    if not text.strip():
        raise ValueError(f"the {what} is empty")
    if len(text) > limit:
        raise ValueError(f"the {what} is longer than {limit} characters")
    allowed = "\n\t" if lines else ""
    for c in text:
        if c not in allowed and unicodedata.category(c) in _CONTROL:
            raise ValueError(f"the {what} holds a control character ({ord(c):#x})")
    return text


def _check_message(value: Any) -> dict[str, Any]:
    """A stored notice: ``{"subject": str | null, "text": str}``."""
    if not isinstance(value, dict) or not set(value) <= {"subject", "text"} or "text" not in value:
        raise TypeError('expected {"subject": "..." or null, "text": "..."}')
    subject = value.get("subject")
    return {"subject": None if subject is None else _check_text(subject, "subject", MAX_SUBJECT, lines=False),
            "text": _check_text(value["text"], "text", MAX_TEXT, lines=True)}


def _check_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected true or false")
    return value


def _check_from(value: Any) -> str:
    """A sender address (``Postmaster <postmaster@example.com>``); "" for the default."""
    if not isinstance(value, str):
        raise TypeError("an address is a string")
    text = value.strip()
    if not text:
        return ""
    _check_text(text, "address", 320, lines=False)
    _, address = parseaddr(text)
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in address):
        raise ValueError(f"not a mail address: {text[:64]!r}")
    return text


register(PREFIX + "*", _check_message, None,
         "a notice text after 'abq.message:<state>:<domain>:<language>' (eas abq message)")
register("abq.notice_from", _check_from, "", "the From of the notice mail ('': postmaster@ the account's domain)")
register("abq.blocked_notice", _check_bool, True,
         "blocked devices see the notice mailbox (false: they are refused with status 129)")


def _name(state: str, domain: str, language: str) -> str:
    return f"{PREFIX}{state}:{domain}:{language}"


def _parse_name(name: str) -> tuple[str, str, str] | None:
    """``(state, domain, language)`` of a stored notice's setting name; None if not one."""
    parts = name[len(PREFIX):].split(":")
    if not name.startswith(PREFIX) or len(parts) != 3:
        return None
    try:
        return check_state(parts[0]), check_domain(parts[1]), check_language(parts[2])
    except (TypeError, ValueError):
        return None


def _fallbacks(language: str) -> list[str]:
    """``pt-BR`` -> ``["pt-BR", "pt"]``: the tag and its shorter forms."""
    parts = language.split("-") if language else []
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]


# -- the admin API (eas abq message) -------------------------------------------------------


async def set_message(store: StateStore, *, state: str, domain: str = "", language: str = "",
                      subject: str | None = None, text: str, actor: str) -> None:
    """Set the notice of ``state`` for a domain ("" all) and language ("" any); a
    ``subject`` left None is the built-in one. ``ValueError``/``TypeError``: nothing stored."""
    state, domain, language = check_state(state), check_domain(domain), check_language(language)
    value = _check_message({"subject": subject, "text": text})
    name = _name(state, domain, language)
    await store.set_setting(name, value)
    await store.record_event(AuditEvent("abq.message.set", actor=actor, detail=f"{state} {domain or '*'} "
                                        f"{language or '*'}: {value['subject'] or '(default subject)'}"))


async def delete_message(store: StateStore, *, state: str, domain: str = "", language: str = "",
                         actor: str) -> bool:
    """Remove a notice; False (and nothing audited) when there was none."""
    state, domain, language = check_state(state), check_domain(domain), check_language(language)
    name = _name(state, domain, language)
    if await store.get_setting(name) is None:
        return False
    await store.set_setting(name, None)
    await store.record_event(AuditEvent("abq.message.delete", actor=actor,
                                        detail=f"{state} {domain or '*'} {language or '*'}"))
    return True


async def get_message(store: StateStore, *, state: str, domain: str = "", language: str = "") -> Notice:
    """The notice that applies to ``state`` ("discovery" too) for a domain and language,
    by the order in the module docstring."""
    if state != "discovery":
        state = check_state(state)
    return find_notice(await _stored(store), state, check_domain(domain), check_language(language))


async def messages(store: StateStore) -> list[Notice]:
    """Every stored notice, by state, domain and language."""
    stored = await _stored(store)
    return [Notice(state, domain, language, value["subject"] or _built_in(state, language)[0], value["text"],
                   _source(domain, language))
            for (state, domain, language), value in sorted(stored.items())]


async def _stored(store: StateStore) -> dict[tuple[str, str, str], dict[str, Any]]:
    """The stored notices by ``(state, domain, language)``; values written past
    ``set_message`` that are not valid are left out."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for name, value in (await store.settings(PREFIX)).items():
        key = _parse_name(name)
        if key is None:
            continue
        try:
            out[key] = _check_message(value)
        except (TypeError, ValueError):
            continue
    return out


def _source(domain: str, language: str) -> str:
    return "+".join(filter(None, ("domain" if domain else "global", "language" if language else "")))


def _built_in(state: str, language: str) -> tuple[str, str]:
    texts = BUILT_IN[state]
    for tag in _fallbacks(language.lower()):
        if tag in texts:
            return texts[tag]
    return texts["en"]


def find_notice(stored: dict[tuple[str, str, str], dict[str, Any]], state: str, domain: str,
                language: str) -> Notice:
    """The notice that applies, from the stored ones (see ``get_message``)."""
    own = "quarantined" if state == "discovery" else state
    tags = _fallbacks(language)
    for level_domain in ((domain, "") if domain else ("",)):
        for tag in (*tags, ""):
            value = stored.get((own, level_domain, tag))
            if value is not None:
                subject = value["subject"] or _built_in(state, tag or language)[0]
                return Notice(state, level_domain, tag, subject, value["text"], _source(level_domain, tag))
    subject, text = _built_in(state, language)
    built_in_language = next((t for t in _fallbacks(language.lower()) if t in BUILT_IN[state]), "en")
    return Notice(state, "", built_in_language, subject, text, "built-in")


def device_language(os_language: str) -> str:
    """The tag of a device's OSLanguage ("Deutsch", "German", "de_DE", "1031"), or ""."""
    text = (os_language or "").strip()
    if not text or len(text) > 64:
        return ""
    name = text.split("(")[0].strip().lower()
    if name in LANGUAGE_NAMES:
        return LANGUAGE_NAMES[name]
    try:
        return check_language(text.replace("_", "-").split(".")[0])
    except ValueError:
        return ""


# -- the engine ----------------------------------------------------------------------------


class NoticeMailboxes:
    """``await notices.backend(account, device, decision)``: the notice mailbox of a
    restricted device as a Backend, or None when it is refused outright instead. The
    settings are read once per ``CACHE_SECONDS``."""

    def __init__(self, store: StateStore, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self._until = float("-inf")
        self._stored: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._sender = ""
        self._blocked_notice = True
        self._mails: dict[str, Email] = {}  # built notice mails by item id (the email package takes ms)

    async def backend(self, account: str, device: DeviceRecord, decision: AccessDecision) -> Backend | None:
        await self._refresh()
        state = decision.access if decision.access in BUILT_IN else "quarantined"
        if state == "blocked" and not self._blocked_notice:
            return None
        domain = account.rpartition("@")[2] if "@" in account else ""
        try:
            domain = check_domain(domain)
        except ValueError:
            domain = ""
        notice = find_notice(self._stored, state, domain, device_language(device.os_language))
        values = {"device_id": device.device_id, "device_type": device.device_type, "user": account,
                  "model": device.model, "reason": decision.detail or decision.reason}
        sender = self._sender or f"postmaster@{domain or 'localhost'}"
        if len(self._mails) >= MAILS_KEPT:
            self._mails.clear()
        return NoticeMailbox(account, sender, fill(notice.subject, values), fill(notice.text, values),
                             device.access_time or device.first_seen, domain, self._mails)

    async def _refresh(self) -> None:
        now = self.clock()
        if now < self._until:
            return
        self._stored = await _stored(self.store)
        sender = await self.store.get_setting("abq.notice_from")
        blocked = await self.store.get_setting("abq.blocked_notice")
        self._sender = _valid(_check_from, sender, "")
        self._blocked_notice = _valid(_check_bool, blocked, True)
        self._until = now + CACHE_SECONDS


def _valid(check: Callable[[Any], Any], value: Any, default: Any) -> Any:
    """A stored value as its check leaves it; the default when unset or invalid."""
    if value is None:
        return default
    try:
        return check(value)
    except (TypeError, ValueError):
        return default


def fill(text: str, values: dict[str, str]) -> str:
    """``text`` with its placeholders replaced in one pass by the values, each cut to
    ``MAX_VALUE`` characters without control characters (they may go into a header)."""

    def value(match: re.Match[str]) -> str:
        raw = values.get(match.group(1), "")[:MAX_VALUE]
        return "".join(c for c in raw if c.isprintable())

    return _PLACEHOLDER.sub(value, text)


class NoticeMailbox:
    """A restricted device's mailbox: one Inbox with one notice mail; read-only (see the
    module docstring for how writes are refused). Built per request; the mail is made
    when a command first fetches it, and kept (by its id, which says all it holds)."""

    def __init__(self, account: str, sender: str, subject: str, text: str, decided: float, domain: str,
                 built: dict[str, Email] | None = None) -> None:
        self.account = account
        self.sender = sender
        self.subject = subject
        self.text = text
        self.date = datetime.fromtimestamp(int(decided), UTC)
        self.domain = domain or "localhost"
        digest = hashlib.sha256("\0".join((account, sender, subject, text, str(int(decided)))).encode(
            "utf-8", "surrogatepass")).hexdigest()
        self.item_id = "notice-" + digest[:20]
        self.stamp = digest[:20]
        self.conversation_id = bytes.fromhex(digest[:32])
        self._built = {} if built is None else built  # shared by the requests of one NoticeMailboxes

    def _mail(self) -> Email:
        mail = self._built.get(self.item_id)
        if mail is None:
            mail = self._built[self.item_id] = self._build()
        return mail

    def _build(self) -> Email:
        message_id = f"<{self.stamp}.notice@{self.domain}>"
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = self.account
        msg["Subject"] = self.subject
        msg["Date"] = format_datetime(self.date)
        msg["Message-ID"] = message_id
        msg["Auto-Submitted"] = "auto-generated"
        page = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in self.text.split("\n\n"))
        body_html = f'<html><body><h3>{html.escape(self.subject)}</h3>{page}</body></html>'
        msg.set_content(self.text)
        msg.add_alternative(body_html, subtype="html")
        msg.set_boundary(f"=_notice_{self.stamp}")  # the same bytes whenever it is built again
        mime = to_bytes(msg)
        return Email(id=self.item_id, subject=self.subject, sender=self.sender, to=self.account,
                     display_to=self.account, date_received=self.date, read=False, thread_topic=self.subject,
                     message_id=message_id, body_text=self.text, body_html=body_html, size=len(mime),
                     conversation_id=self.conversation_id, mime=mime)

    def _inbox(self, folder_id: str) -> None:
        if folder_id != INBOX_ID:
            raise FolderNotFound(folder_id)

    # -- what the mail commands read --------------------------------------------------------

    async def folders(self, user: str) -> list[Folder]:
        return [Folder(INBOX_ID, "", "Inbox", FolderType.INBOX)]

    async def item_stamps(self, user: str, folder_id: str, since: datetime | None = None, *,
                          incomplete_only: bool = False) -> dict[str, str]:
        """The notice whatever the FilterType: it is there to be seen."""
        self._inbox(folder_id)
        return {self.item_id: self.stamp}

    async def fetch_emails(self, user: str, folder_id: str, item_ids: Sequence[str], *,
                           mime: bool = False) -> list[Email]:
        if folder_id != INBOX_ID or self.item_id not in item_ids:
            return []
        mail = self._mail()
        return [replace(mail, mime=mail.mime if mime else None)]  # a copy: the built one is shared

    async def fetch_items(self, user: str, folder_id: str, item_ids: Sequence[str]) -> list[Item]:
        return []

    async def find_event(self, user: str, uid: str) -> tuple[str, str] | None:
        return None

    async def search_mailbox(self, user: str, query: MailboxQuery, limit: int) -> list[tuple[str, str]]:
        return []

    async def search_directory(self, user: str, text: str, limit: int, *, contacts: bool = False) -> list[Person]:
        return []

    async def free_busy(self, user: str, email: str, start: datetime, end: datetime) -> list[BusyPeriod] | None:
        return None

    async def attachment(self, user: str, file_reference: str) -> tuple[str, bytes]:
        raise ItemNotFound("the notice has no attachments")

    async def get_oof(self, user: str) -> Oof:
        return Oof()

    async def user_information(self, user: str) -> UserInformation:
        return UserInformation(user, [user])

    def watch(self, callback: ChangeCallback) -> None:
        """Nothing changes here by itself (a new text reaches a waiting Ping at its
        heartbeat; a new decision ends it through the core)."""

    # -- writes, refused --------------------------------------------------------------------

    async def create_folder(self, user: str, parent_id: str, name: str, type: FolderType) -> Folder:
        raise SpecialFolder("the notice mailbox is read-only")

    async def update_folder(self, user: str, folder_id: str, parent_id: str, name: str) -> None:
        raise SpecialFolder("the notice mailbox is read-only")

    async def delete_folder(self, user: str, folder_id: str) -> None:
        raise SpecialFolder("the notice mailbox is read-only")

    async def empty_folder(self, user: str, folder_id: str, *, delete_subfolders: bool) -> None:
        self._inbox(folder_id)
        raise SpecialFolder("the notice mailbox is read-only")

    async def add_item(self, user: str, folder_id: str, item: Item) -> tuple[str, str]:
        raise QuotaExceeded("the notice mailbox is read-only")

    async def add_email(self, user: str, folder_id: str, mime: bytes, *, read: bool = True,
                        flag: Flag | None = None, categories: Sequence[str] = (),
                        is_draft: bool = False) -> tuple[str, str]:
        raise QuotaExceeded("the notice mailbox is read-only")

    async def change_item(self, user: str, folder_id: str, item_id: str, item: Item) -> str:
        raise ItemNotFound("the notice mailbox is read-only")

    async def change_email(self, user: str, folder_id: str, item_id: str, change: EmailChange) -> str:
        raise ItemNotFound("the notice mailbox is read-only")

    async def delete_item(self, user: str, folder_id: str, item_id: str, *, permanently: bool) -> None:
        raise ItemNotFound("the notice mailbox is read-only")

    async def delete_occurrence(self, user: str, folder_id: str, item_id: str, instance: datetime) -> str:
        raise ItemNotFound("the notice mailbox is read-only")

    async def move_item(self, user: str, item_id: str, src_folder: str, dst_folder: str) -> str:
        raise ItemNotFound("the notice mailbox is read-only")

    async def send_mail(self, user: str, mime: bytes, *, save_in_sent: bool) -> None:
        raise SendFailed("a restricted device cannot send mail")

    async def set_oof(self, user: str, oof: Oof) -> None:
        raise BackendError("the notice mailbox is read-only", http_status=403)
