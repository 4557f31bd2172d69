"""Search (MS-ASCMD 2.2.1.16): the global address list (all versions) and the mailbox
(12.0 and later); document libraries are not served.

Request: one ``Store`` with ``Name`` (``GAL``, ``Mailbox`` or ``DocumentLibrary``),
``Query`` and ``Options``. A GAL Query is the text; a Mailbox Query is one ``And`` of
``airsync:Class``, ``airsync:CollectionId`` (any number), ``FreeText``, ``ConversationId``
(14.0+) and ``GreaterThan``/``LessThan`` on ``email:DateReceived``. Options: ``Range``
(``m-n``, zero-based, inclusive; default 0-99, at most 100 results: a larger range is cut
to 100 and answered with Status 12), ``DeepTraversal`` (subfolders of the CollectionIds),
``RebuildResults`` (nothing is cached, so every search is rebuilt), BodyPreference and
MIMESupport for the mail properties, RightsManagementSupport, UserName and Password
(ignored), and for the GAL from 14.1 ``Picture`` (MaxSize, MaxPictures).

Response: ``Status`` 1, then ``Response/Store`` with its own Status, one ``Result`` per
match (an empty one when there is none), ``Range`` (what was returned) and ``Total``
(every match, counted up to ``Config.search_match_limit``). A mailbox Result carries
``airsync:Class``, ``LongId`` (the item's ServerId, which ItemOperations Fetch and
Smart* accept as ``LongId``), ``airsync:CollectionId`` and ``Properties`` written by
``eas.items.email.write_email``; a GAL Result the ``gal:`` properties of the entry.

Store Status (2.2.3.177.13), used here: 1 success; 2 invalid request (malformed query,
range, options; Mailbox or DocumentLibrary in 2.5); 3 server error; 5 access denied
(DocumentLibrary: this server gives no access to document libraries); 8 query too
complex (``Or``, an ``And`` inside the ``And``, ConversationId outside it); 11 FolderSync
required (no FolderSync yet, or a CollectionId the device was never sent); 12 the range
asked exceeds the maximum (the first 100 of it are returned). gal:Picture Status: 1, 173
no picture, 174 larger than MaxSize, 175 more pictures than MaxPictures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from eas.backend import BackendError, Email, FolderNotFound, MailboxQuery, Person
from eas.commands import text
from eas.context import Context
from eas.items import server_id
from eas.items.email import parse_body_options, parse_date, write_email
from eas.protocol import status as st
from eas.protocol.errors import ProtocolError
from eas.protocol.http import HTTPResponse
from eas.protocol.versions import Version
from eas.tags import GAL, AirSync
from eas.tags import Email as E
from eas.tags import Search as S
from eas.wbxml import Node, Writer

SUCCESS = 1
INVALID_REQUEST = 2
SERVER_ERROR = 3
ACCESS_DENIED = 5
TOO_COMPLEX = 8
FOLDER_SYNC_REQUIRED = 11
RANGE_EXCEEDED = 12

PICTURE_OK = 1
NO_PICTURE = 173
PICTURE_TOO_LARGE = 174
TOO_MANY_PICTURES = 175

MAX_RESULTS = 100  # 2.2.3.143.3: Mailbox and GAL return at most 100 results
MAX_QUERY = 256  # characters of a GAL query or a FreeText
MAX_PICTURE_BYTES = 4 * 1024 * 1024  # of pictures in one response
_RANGE = re.compile(r"(\d{1,9})-(\d{1,9})")
# The item classes a mailbox search may name (2.2.3.27.4); only mail is searched.
_CLASSES = frozenset({"Email", "Calendar", "Contacts", "Tasks", "Notes", "SMS"})


class SearchFailed(Exception):
    """A Store (or Find Response) status other than success, with the status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def parse_range(value: str | None, maximum: int) -> tuple[int, int, bool]:
    """``(first, count, cut)`` of a Range ``m-n`` (None: the default ``0-{maximum-1}``);
    ``cut`` when it asked for more than ``maximum`` results (then ``count`` is the maximum).
    ``SearchFailed(2)`` when it is malformed."""
    if value is None:
        return 0, maximum, False
    match = _RANGE.fullmatch(value.strip())
    if match is None or int(match.group(1)) > int(match.group(2)):
        raise SearchFailed(INVALID_REQUEST)
    first, last = int(match.group(1)), int(match.group(2))
    count = last - first + 1
    return first, min(count, maximum), count > maximum


def write_range(w: Writer, tag: int, first: int, returned: int) -> None:
    if returned:
        w.leaf(tag, f"{first}-{first + returned - 1}")


@dataclass(slots=True)
class Pictures:
    """What a request's Picture element allows (MaxSize in bytes, MaxPictures), and how
    many pictures the response carries so far. Whatever the request allows, a response
    carries at most ``MAX_PICTURE_BYTES`` of pictures (then 175, as for MaxPictures): a
    hundred entries of large pictures must not make a response of a hundred megabytes."""

    max_size: int | None = None
    max_pictures: int | None = None
    sent: int = 0
    sent_bytes: int = 0

    @classmethod
    def parse(cls, node: Node | None, max_size_tag: int, max_pictures_tag: int) -> Pictures | None:
        """None without a Picture element; ``ProtocolError`` for a limit that is no number."""
        if node is None:
            return None
        return cls(_count(node.find(max_size_tag)), _count(node.find(max_pictures_tag)))

    def status(self, picture: bytes | None) -> int:
        """The Picture Status of an entry with this picture; counts it when it goes out."""
        if not picture:
            return NO_PICTURE
        if self.max_size is not None and len(picture) > self.max_size:
            return PICTURE_TOO_LARGE
        if (self.max_pictures is not None and self.sent >= self.max_pictures
                or self.sent_bytes + len(picture) > MAX_PICTURE_BYTES):
            return TOO_MANY_PICTURES
        self.sent += 1
        self.sent_bytes += len(picture)
        return PICTURE_OK


def _count(node: Node | None) -> int | None:
    if node is None:
        return None
    value = text(node).strip()
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise ProtocolError(f"not a count: {value!r}")
    return int(value)


def write_person(w: Writer, person: Person, ctx: Context, pictures: Pictures | None) -> None:
    """The ``gal:`` properties of a directory entry (2.2.3.139.3), Picture from 14.1."""
    for tag, value in ((GAL.DisplayName, person.display_name), (GAL.Phone, person.phone),
                       (GAL.Office, person.office), (GAL.Title, person.title), (GAL.Company, person.company),
                       (GAL.Alias, person.alias), (GAL.FirstName, person.first_name),
                       (GAL.LastName, person.last_name), (GAL.HomePhone, person.home_phone),
                       (GAL.MobilePhone, person.mobile_phone), (GAL.EmailAddress, person.email)):
        if value:
            w.leaf(tag, value)
    if pictures is not None and ctx.has(GAL.Picture):
        status = pictures.status(person.picture)
        with w.tag(GAL.Picture):
            w.leaf(GAL.Status, status)
            if status == PICTURE_OK and person.picture:
                w.opaque(GAL.Data, person.picture)


async def handle(ctx: Context) -> HTTPResponse:
    """MS-ASCMD 2.2.1.16."""
    body = ctx.body
    if body is None or body.tag != S.Search:
        raise ProtocolError("not a Search request", status=st.Common.InvalidXML)
    w = Writer()
    with w.tag(S.Search):
        w.leaf(S.Status, SUCCESS)
        with w.tag(S.Response), w.tag(S.Store):
            stores = body.findall(S.Store)
            try:
                if len(stores) != 1:
                    raise SearchFailed(INVALID_REQUEST)
                await _search(ctx, stores[0], w)
            except SearchFailed as failed:
                w.leaf(S.Status, failed.status)
    return ctx.respond(w)


async def _search(ctx: Context, store: Node, w: Writer) -> None:
    """Write the Store's Status, Results, Range and Total, or raise ``SearchFailed``."""
    name = text(store.find(S.Name)).strip().lower()
    options = store.find(S.Options)
    range_node = options.find(S.Range) if options is not None else None
    first, count, cut = parse_range(text(range_node) if range_node is not None else None, MAX_RESULTS)
    if name == "gal":
        await _gal(ctx, store, options, first, count, cut, w)
    elif name == "mailbox" and ctx.version >= Version("12.0"):
        await _mailbox(ctx, store, options, first, count, cut, w)
    elif name == "documentlibrary" and ctx.version >= Version("12.0"):
        raise SearchFailed(ACCESS_DENIED)
    else:
        raise SearchFailed(INVALID_REQUEST)


# -- GAL ---------------------------------------------------------------------------------------


async def _gal(ctx: Context, store: Node, options: Node | None, first: int, count: int, cut: bool,
               w: Writer) -> None:
    query = text(store.find(S.Query)).strip()
    if not query or len(query) > MAX_QUERY:
        raise SearchFailed(INVALID_REQUEST)
    try:
        pictures = Pictures.parse(options.find(S.Picture) if options is not None else None, S.MaxSize, S.MaxPictures)
    except ProtocolError:
        raise SearchFailed(INVALID_REQUEST) from None
    try:
        people = await ctx.backend.search_directory(ctx.user, query, ctx.config.search_match_limit)
    except BackendError:
        raise SearchFailed(SERVER_ERROR) from None
    page = people[first:first + count]
    w.leaf(S.Status, RANGE_EXCEEDED if cut else SUCCESS)
    for person in page:
        with w.tag(S.Result), w.tag(S.Properties):
            write_person(w, person, ctx, pictures)
    if not page:
        w.empty(S.Result)
    write_range(w, S.Range, first, len(page))
    w.leaf(S.Total, len(people))


# -- Mailbox -----------------------------------------------------------------------------------


async def _mailbox(ctx: Context, store: Node, options: Node | None, first: int, count: int, cut: bool,
                   w: Writer) -> None:
    query, item_class = await _mailbox_query(ctx, store.find(S.Query))
    query.deep_traversal = options is not None and options.find(S.DeepTraversal) is not None
    try:
        body_options = parse_body_options(options, ctx.version)
    except ProtocolError:
        raise SearchFailed(INVALID_REQUEST) from None
    hierarchy = await ctx.state.hierarchy()
    try:
        found = [] if item_class != "Email" else await ctx.backend.search_mailbox(
            ctx.user, query, ctx.config.search_match_limit)
    except FolderNotFound:
        raise SearchFailed(FOLDER_SYNC_REQUIRED) from None
    except BackendError:
        raise SearchFailed(SERVER_ERROR) from None
    # Only what the device can name: mail in folders it was sent.
    known = [(hierarchy.id_map[f], f, i) for f, i in found
             if hierarchy.id_map.get(f) in hierarchy.folders]
    page = known[first:first + count]
    emails = await fetch_found(ctx, [(f, i) for _, f, i in page])
    w.leaf(S.Status, RANGE_EXCEEDED if cut else SUCCESS)
    written = 0
    for collection_id, folder_id, item_id in page:
        email = emails.get((folder_id, item_id))
        if email is None:  # deleted since the search
            continue
        with w.tag(S.Result):
            w.leaf(AirSync.Class, "Email")
            w.leaf(S.LongId, server_id(collection_id, item_id))
            w.leaf(AirSync.CollectionId, collection_id)
            with w.tag(S.Properties):
                write_email(w, email, ctx.version, body_options)
        written += 1
    if not written:
        w.empty(S.Result)
    write_range(w, S.Range, first, written)
    w.leaf(S.Total, len(known))


async def fetch_found(ctx: Context, found: list[tuple[str, str]], *, mime: bool = False) -> dict[tuple[str, str], Email]:
    """The mails of ``(folder_id, item_id)`` pairs, fetched folder by folder; those gone
    (or whose folder is) are left out."""
    by_folder: dict[str, list[str]] = {}
    for folder_id, item_id in found:
        by_folder.setdefault(folder_id, []).append(item_id)
    out: dict[tuple[str, str], Email] = {}
    for folder_id, ids in by_folder.items():
        try:
            for email in await ctx.backend.fetch_emails(ctx.user, folder_id, ids, mime=mime):
                out[folder_id, email.id] = email
        except BackendError:
            continue
    return out


async def _mailbox_query(ctx: Context, node: Node | None) -> tuple[MailboxQuery, str]:
    """The query of a Mailbox search and the item class it names (MS-ASCMD 2.2.3.142.3)."""
    if node is None or len(node.children) != 1:
        raise SearchFailed(INVALID_REQUEST)
    top = node.children[0]
    if top.tag == S.Or:
        raise SearchFailed(TOO_COMPLEX)
    if top.tag != S.And:
        raise SearchFailed(TOO_COMPLEX if top.tag == S.ConversationId else INVALID_REQUEST)
    query = MailboxQuery()
    item_class = "Email"
    hierarchy = await ctx.state.hierarchy()
    if hierarchy.sync_key == 0:  # results name CollectionIds: the device must have them
        raise SearchFailed(FOLDER_SYNC_REQUIRED)
    seen: set[int] = set()
    for child in top.children:
        tag = child.tag
        if tag in (S.And, S.Or):
            raise SearchFailed(TOO_COMPLEX)
        if tag in seen and tag != AirSync.CollectionId:
            raise SearchFailed(INVALID_REQUEST)
        seen.add(tag)
        if tag == AirSync.Class:
            item_class = text(child)
            if item_class not in _CLASSES:
                raise SearchFailed(INVALID_REQUEST)
        elif tag == AirSync.CollectionId:
            entry = hierarchy.folders.get(text(child))
            if entry is None:
                raise SearchFailed(FOLDER_SYNC_REQUIRED)
            query.folder_ids.append(entry.backend_id)
        elif tag == S.FreeText:
            query.text = text(child)
            if len(query.text) > MAX_QUERY:
                raise SearchFailed(INVALID_REQUEST)
        elif tag == S.ConversationId and ctx.has(S.ConversationId):
            value = child.text
            query.conversation_id = value if isinstance(value, bytes) else text(child).encode("utf-8")
            if not query.conversation_id:
                raise SearchFailed(INVALID_REQUEST)
        elif tag in (S.GreaterThan, S.LessThan):
            when = _date_condition(child)
            if tag == S.GreaterThan:
                query.received_after = when
            else:
                query.received_before = when
        else:
            raise SearchFailed(INVALID_REQUEST)
    return query, item_class


def _date_condition(node: Node) -> datetime:
    """The date of ``<GreaterThan|LessThan><email:DateReceived/><Value>date</Value>``."""
    field = node.find(E.DateReceived)
    if sorted(c.tag for c in node.children) != sorted([E.DateReceived, S.Value]) or field is None or field.children:
        raise SearchFailed(INVALID_REQUEST)
    try:
        return parse_date(text(node.find(S.Value)).strip())
    except ProtocolError:
        raise SearchFailed(INVALID_REQUEST) from None
