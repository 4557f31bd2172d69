"""The interface a mail server implements so that ``eas`` can serve its mailboxes.

Everything is async; a synchronous store can be wrapped with ``asyncio.to_thread``. The
library never asks the backend what changed: it lists each folder's items with a change
stamp (any string that changes whenever the item does) and computes the differences
against what the device last received. Item ids and folder ids are the backend's own
strings; the library maps them to the short ServerIds that devices see.

The reference implementation is ``eas.store.ReferenceStore`` (SQLite). ``eas.testing``
has contract tests an embedder can run against their own backend.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import TYPE_CHECKING, Protocol, TypeAlias

from eas.protocol.errors import EASError

if TYPE_CHECKING:  # not imported at run time: ``eas mail deliver`` starts without the item modules
    from eas.items.calendar import Calendar
    from eas.items.contacts import Contact
    from eas.items.notes import Note
    from eas.items.tasks import Task

    Item: TypeAlias = Calendar | Contact | Task | Note
    """An item of a calendar, contacts, tasks or notes folder (``eas.items.*``)."""


class FolderType(IntEnum):
    """FolderHierarchy Type (MS-ASCMD 2.2.3.186.3)."""

    USER_GENERIC = 1
    INBOX = 2
    DRAFTS = 3
    DELETED_ITEMS = 4
    SENT_ITEMS = 5
    OUTBOX = 6
    TASKS = 7
    CALENDAR = 8
    CONTACTS = 9
    NOTES = 10
    JOURNAL = 11
    USER_MAIL = 12
    USER_CALENDAR = 13
    USER_CONTACTS = 14
    USER_TASKS = 15
    USER_JOURNAL = 16
    USER_NOTES = 17
    UNKNOWN = 18
    RECIPIENT_INFORMATION_CACHE = 19


# The item class of each folder type, as Sync's Class element names it.
FOLDER_CLASS: dict[FolderType, str] = {
    FolderType.USER_GENERIC: "Email",
    FolderType.INBOX: "Email",
    FolderType.DRAFTS: "Email",
    FolderType.DELETED_ITEMS: "Email",
    FolderType.SENT_ITEMS: "Email",
    FolderType.OUTBOX: "Email",
    FolderType.USER_MAIL: "Email",
    FolderType.TASKS: "Tasks",
    FolderType.USER_TASKS: "Tasks",
    FolderType.CALENDAR: "Calendar",
    FolderType.USER_CALENDAR: "Calendar",
    FolderType.CONTACTS: "Contacts",
    FolderType.USER_CONTACTS: "Contacts",
    FolderType.NOTES: "Notes",
    FolderType.USER_NOTES: "Notes",
}


@dataclass(frozen=True, slots=True)
class Folder:
    """A folder: ``parent_id`` is ``""`` at the top of the mailbox; ``owner`` is the
    account a folder shared with the user belongs to (``""``: the user's own)."""

    id: str
    parent_id: str
    name: str
    type: FolderType
    owner: str = ""


@dataclass(slots=True)
class Attachment:
    """An attachment of a mail; ``file_reference`` is the backend's handle for fetching it."""

    file_reference: str
    display_name: str
    size: int
    content_type: str = "application/octet-stream"
    content_id: str = ""
    content_location: str = ""
    is_inline: bool = False
    method: int = 1  # AirSyncBase Method: 1 normal, 5 embedded message, 6 OLE


@dataclass(slots=True)
class Flag:
    """A follow-up flag (MS-ASEMAIL 2.2.2.27): status 0 cleared, 1 complete, 2 active."""

    status: int = 2
    flag_type: str = "Follow up"
    start_date: datetime | None = None
    due_date: datetime | None = None
    complete_time: datetime | None = None
    reminder_set: bool = False
    reminder_time: datetime | None = None


@dataclass(slots=True)
class Email:
    """A mail as a device sees it; addresses are RFC 5322 address-list strings."""

    id: str
    subject: str = ""
    sender: str = ""  # From
    to: str = ""
    cc: str = ""
    bcc: str = ""
    reply_to: str = ""
    display_to: str = ""
    date_received: datetime | None = None
    importance: int = 1  # 0 low, 1 normal, 2 high
    read: bool = False
    flag: Flag | None = None
    categories: list[str] = field(default_factory=list)
    message_class: str = "IPM.Note"
    content_class: str = "urn:content-classes:message"
    internet_cpid: int = 65001
    thread_topic: str = ""
    conversation_id: bytes = b""
    conversation_index: bytes = b""
    message_id: str = ""
    body_text: str | None = None
    body_html: str | None = None
    size: int = 0  # of the whole RFC 5322 message
    attachments: list[Attachment] = field(default_factory=list)
    is_draft: bool = False
    mime: bytes | None = None  # only when fetched with mime=True
    # The event a meeting request, update or cancellation describes (message_class
    # IPM.Schedule.Meeting.*); Email:MeetingRequest is written from it.
    meeting_request: Calendar | None = None


@dataclass(slots=True)
class EmailChange:
    """What a device may change on a mail: None leaves a field as it is."""

    read: bool | None = None
    flag: Flag | None = None  # Flag(status=0) clears it
    categories: list[str] | None = None


@dataclass(slots=True)
class Oof:
    """Out-of-office settings (MS-ASCMD Settings Oof): state 0 off, 1 on, 2 scheduled."""

    state: int = 0
    start: datetime | None = None
    end: datetime | None = None
    internal_message: str = ""
    external_known_message: str = ""
    external_unknown_message: str = ""
    internal_enabled: bool = False
    external_known_enabled: bool = False
    external_unknown_enabled: bool = False
    body_type: str = "Text"  # "Text" or "HTML"


@dataclass(slots=True)
class MailboxQuery:
    """A mailbox search (Search Store Mailbox, Find): every condition given must hold.
    ``folder_ids`` empty searches every mail folder; ``deep_traversal`` includes the
    subfolders of those given. Dates bound DateReceived (exclusive, as GreaterThan and
    LessThan are)."""

    text: str = ""
    folder_ids: list[str] = field(default_factory=list)
    deep_traversal: bool = False
    received_after: datetime | None = None
    received_before: datetime | None = None
    conversation_id: bytes = b""


@dataclass(slots=True)
class Person:
    """An entry of the global address list (GAL) or of a contacts folder, as Search,
    Find and ResolveRecipients show it; ``certificates`` are DER-encoded X.509."""

    display_name: str
    email: str
    first_name: str = ""
    last_name: str = ""
    alias: str = ""
    phone: str = ""
    mobile_phone: str = ""
    home_phone: str = ""
    office: str = ""
    title: str = ""
    company: str = ""
    picture: bytes | None = None
    certificates: list[bytes] = field(default_factory=list)
    contact: bool = False  # from the user's own contacts (ResolveRecipients Type 2), not the GAL


@dataclass(frozen=True, slots=True)
class BusyPeriod:
    """A span of someone's calendar that is not free; ``status`` is a BusyStatus
    (1 tentative, 2 busy, 3 out of office, 4 working elsewhere)."""

    start: datetime
    end: datetime
    status: int = 2


@dataclass(slots=True)
class UserInformation:
    """Settings UserInformation: the primary address first."""

    display_name: str
    emails: list[str]


ChangeCallback = Callable[[str, Collection[str]], None]
"""``callback(user, folder_ids)``: something changed in these folders of this user
(empty: anywhere). Called from the backend's thread or loop; it must not block."""


class Backend(Protocol):
    """What the library needs of a mail server. Ids are strings of the backend's choice."""

    async def folders(self, user: str) -> list[Folder]:
        """Every folder of the mailbox, parents before children."""
        ...

    async def create_folder(self, user: str, parent_id: str, name: str, type: FolderType) -> Folder:
        """A new folder; ``FolderExists`` or ``FolderNotFound`` (the parent)."""
        ...

    async def update_folder(self, user: str, folder_id: str, parent_id: str, name: str) -> None:
        """Rename or move a folder; ``FolderNotFound``, ``FolderExists``, ``SpecialFolder``."""
        ...

    async def delete_folder(self, user: str, folder_id: str) -> None:
        """Delete a folder and what it holds; ``FolderNotFound``, ``SpecialFolder``."""
        ...

    async def item_stamps(self, user: str, folder_id: str, since: datetime | None = None, *,
                          incomplete_only: bool = False) -> dict[str, str]:
        """``{item_id: change_stamp}`` of the folder (FilterType windows): ``since`` keeps
        only mail received from then on, and events that end (an occurrence of a recurring
        one included) from then on; ``incomplete_only`` keeps only incomplete tasks.
        ``FolderNotFound``."""
        ...

    async def fetch_items(self, user: str, folder_id: str, item_ids: Sequence[str]) -> list[Item]:
        """The calendar, contact, task or note items with these ids, in that order; ids no
        longer there are left out."""
        ...

    async def add_item(self, user: str, folder_id: str, item: Item) -> tuple[str, str]:
        """Store a new calendar, contact, task or note item: ``(item_id, change_stamp)``.
        ``FolderNotFound``, ``QuotaExceeded``."""
        ...

    async def change_item(self, user: str, folder_id: str, item_id: str, item: Item) -> str:
        """Replace an item by what a device sent; the new change stamp. A ``Calendar`` with
        ``instance_id`` set changes only that occurrence. ``ItemNotFound``."""
        ...

    async def delete_occurrence(self, user: str, folder_id: str, item_id: str, instance: datetime) -> str:
        """Delete one occurrence of a recurring event (16.x Delete with InstanceId); the
        new change stamp. ``ItemNotFound``."""
        ...

    async def find_event(self, user: str, uid: str) -> tuple[str, str] | None:
        """``(folder_id, item_id)`` of the user's event with this iCalendar UID, if any."""
        ...

    async def search_mailbox(self, user: str, query: MailboxQuery, limit: int) -> list[tuple[str, str]]:
        """``(folder_id, item_id)`` of the mails matching, newest first, at most ``limit``."""
        ...

    async def search_directory(self, user: str, text: str, limit: int, *, contacts: bool = False) -> list[Person]:
        """Entries of the address lists this user may search whose name, alias or address
        contains ``text`` (case-insensitive), at most ``limit``, best matches first;
        ``contacts`` adds the user's own contacts after them (``Person.contact``)."""
        ...

    async def free_busy(self, user: str, email: str, start: datetime, end: datetime) -> list[BusyPeriod] | None:
        """The busy periods of ``email``'s calendar between ``start`` and ``end`` as this
        user may see them; None when the address is not known to this server."""
        ...

    async def fetch_emails(self, user: str, folder_id: str, item_ids: Sequence[str], *,
                           mime: bool = False) -> list[Email]:
        """The mails with these ids, in that order; ids no longer there are left out.
        ``mime=True`` also fills ``Email.mime``."""
        ...

    async def add_email(self, user: str, folder_id: str, mime: bytes, *, read: bool = True,
                        flag: Flag | None = None, categories: Sequence[str] = (),
                        is_draft: bool = False) -> tuple[str, str]:
        """Store a mail in a folder (drafts, imports): ``(item_id, change_stamp)``."""
        ...

    async def change_email(self, user: str, folder_id: str, item_id: str, change: EmailChange) -> str:
        """Apply a device's change; the new change stamp. ``ItemNotFound``."""
        ...

    async def delete_item(self, user: str, folder_id: str, item_id: str, *, permanently: bool) -> None:
        """Delete, or move to Deleted Items unless ``permanently``. ``ItemNotFound``."""
        ...

    async def move_item(self, user: str, item_id: str, src_folder: str, dst_folder: str) -> str:
        """Move a mail; its id in the destination. ``ItemNotFound``, ``FolderNotFound``."""
        ...

    async def send_mail(self, user: str, mime: bytes, *, save_in_sent: bool) -> None:
        """Submit an RFC 5322 message for delivery; ``SendFailed`` when it cannot."""
        ...

    async def attachment(self, user: str, file_reference: str) -> tuple[str, bytes]:
        """``(content_type, data)`` of an attachment; ``ItemNotFound``."""
        ...

    async def empty_folder(self, user: str, folder_id: str, *, delete_subfolders: bool) -> None:
        """Delete everything in a folder (ItemOperations EmptyFolderContents)."""
        ...

    async def get_oof(self, user: str) -> Oof:
        ...

    async def set_oof(self, user: str, oof: Oof) -> None:
        ...

    async def user_information(self, user: str) -> UserInformation:
        ...

    def watch(self, callback: ChangeCallback) -> None:
        """Call ``callback`` after every committed change, so that waiting Pings wake."""
        ...


class BackendError(EASError):
    """A backend failure; handlers turn the subclasses into their command's status."""

    http_status = 500


class FolderNotFound(BackendError):
    pass


class FolderExists(BackendError):
    pass


class SpecialFolder(BackendError):
    """A standard folder (Inbox, ...) cannot be renamed or deleted."""


class ItemNotFound(BackendError):
    pass


class SendFailed(BackendError):
    pass


class QuotaExceeded(BackendError):
    http_status = 507
