"""Find (MS-ASCMD 2.2.1.2, protocol 16.1): the mailbox or the GAL searched for a text,
the successor of Search for 16.1 clients.

Request: ``SearchId`` (a GUID the client pages with; nothing is cached, so it only has
to be well formed), ``ExecuteSearch`` with one ``MailBoxSearchCriterion`` (Query of
``FreeText``, ``airsync:Class``, ``airsync:CollectionId``; Options ``Range``,
``DeepTraversal``) or ``GalSearchCriterion`` (Query text; Options ``Range``, ``Picture``
with MaxSize/MaxPictures).

Response: ``Status``, then ``Response`` with ``itemoperations:Store`` (``Mailbox`` or
``GAL``), its Status, one ``Result`` per match (none when nothing matched), ``Range``
and ``Total`` (counted up to ``Config.search_match_limit``). A mail Result has
``airsync:Class``, ``airsync:ServerId``, ``airsync:CollectionId`` and ``Properties``:
Subject, DateReceived, DisplayTo, DisplayCc, DisplayBcc, HasAttachments, Read, From and a
Preview of the body (255 characters); a GAL Result the ``gal:`` properties.

Status (2.2.3.177.2): 1 success; 2 the request is invalid (no SearchId GUID, no or two
criteria, a bad query, range or option); 3 FolderSync required (no FolderSync yet, or a
CollectionId the device was never sent); 4, in Response, the Range does not start at 0.
The spec gives no limit for a Find range: up to 1000 results are returned.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from email.utils import getaddresses

from eas.backend import BackendError, Email, FolderNotFound, MailboxQuery
from eas.commands import text
from eas.commands.search import (
    MAX_QUERY,
    Pictures,
    SearchFailed,
    fetch_found,
    parse_range,
    write_person,
    write_range,
)
from eas.context import Context
from eas.items import server_id
from eas.items.body import html_to_text, preview
from eas.items.email import format_date
from eas.protocol import status as st
from eas.protocol.errors import ProtocolError
from eas.protocol.http import HTTPResponse
from eas.tags import AirSync, ItemOperations
from eas.tags import Email as E
from eas.tags import Find as F
from eas.wbxml import Node, Writer

SUCCESS = 1
INVALID_REQUEST = 2
FOLDER_SYNC_REQUIRED = 3
START_WITH_ZERO = 4

MAX_RESULTS = 1000
PREVIEW_LENGTH = 255
# Writes up to n Results; (how many it wrote, the Total).
_Write = Callable[[Writer, int], Awaitable[tuple[int, int]]]
_GUID = re.compile(r"\{?[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\}?")


async def handle(ctx: Context) -> HTTPResponse:
    """MS-ASCMD 2.2.1.2."""
    body = ctx.body
    if body is None or body.tag != F.Find:
        raise ProtocolError("not a Find request", status=st.Common.InvalidXML)
    w = Writer()
    with w.tag(F.Find):
        try:
            criterion = _criterion(body)
            if criterion.tag == F.MailBoxSearchCriterion:
                found = await _mailbox(ctx, criterion)
            else:
                found = await _gal(ctx, criterion)
        except SearchFailed as failed:
            w.leaf(F.Status, failed.status)
        else:
            w.leaf(F.Status, SUCCESS)
            store, first, count, write = found
            with w.tag(F.Response):
                w.leaf(ItemOperations.Store, store)
                if first != 0:
                    w.leaf(F.Status, START_WITH_ZERO)
                else:
                    w.leaf(F.Status, SUCCESS)
                    returned, total = await write(w, count)
                    write_range(w, F.Range, 0, returned)
                    w.leaf(F.Total, total)
    return ctx.respond(w)


def _criterion(body: Node) -> Node:
    """The one criterion of a well-formed request; ``SearchFailed(2)`` otherwise."""
    search_id = text(body.find(F.SearchId)).strip()
    execute = body.find(F.ExecuteSearch)
    if not _GUID.fullmatch(search_id) or execute is None or len(execute.children) != 1:
        raise SearchFailed(INVALID_REQUEST)
    criterion = execute.children[0]
    if criterion.tag not in (F.MailBoxSearchCriterion, F.GalSearchCriterion):
        raise SearchFailed(INVALID_REQUEST)
    return criterion


def _range(options: Node | None) -> tuple[int, int]:
    node = options.find(F.Range) if options is not None else None
    first, count, _ = parse_range(text(node) if node is not None else None, MAX_RESULTS)
    return first, count


async def _mailbox(ctx: Context, criterion: Node) -> tuple[str, int, int, _Write]:
    query_node, options = criterion.find(F.Query), criterion.find(F.Options)
    if query_node is None:
        raise SearchFailed(INVALID_REQUEST)
    query = MailboxQuery(deep_traversal=options is not None and options.find(F.DeepTraversal) is not None)
    hierarchy = await ctx.state.hierarchy()
    if hierarchy.sync_key == 0:  # results name CollectionIds: the device must have them
        raise SearchFailed(FOLDER_SYNC_REQUIRED)
    item_class = "Email"
    for child in query_node.children:
        if child.tag == F.FreeText:
            query.text = text(child)
        elif child.tag == AirSync.Class:
            item_class = text(child)
        elif child.tag == AirSync.CollectionId:
            entry = hierarchy.folders.get(text(child))
            if entry is None:
                raise SearchFailed(FOLDER_SYNC_REQUIRED)
            query.folder_ids.append(entry.backend_id)
        else:
            raise SearchFailed(INVALID_REQUEST)
    if not query.text.strip() or len(query.text) > MAX_QUERY or item_class not in ("Email", "SMS"):
        raise SearchFailed(INVALID_REQUEST)
    first, count = _range(options)
    try:
        found = [] if item_class != "Email" else await ctx.backend.search_mailbox(
            ctx.user, query, ctx.config.search_match_limit)
    except FolderNotFound:
        raise SearchFailed(FOLDER_SYNC_REQUIRED) from None
    except BackendError:
        raise SearchFailed(INVALID_REQUEST) from None
    known = [(hierarchy.id_map[f], f, i) for f, i in found if hierarchy.id_map.get(f) in hierarchy.folders]

    async def write(w: Writer, count: int) -> tuple[int, int]:
        page = known[:count]
        emails = await fetch_found(ctx, [(f, i) for _, f, i in page])
        returned = 0
        for collection_id, folder_id, item_id in page:
            email = emails.get((folder_id, item_id))
            if email is None:
                continue
            with w.tag(F.Result):
                w.leaf(AirSync.Class, "Email")
                w.leaf(AirSync.ServerId, server_id(collection_id, item_id))
                w.leaf(AirSync.CollectionId, collection_id)
                with w.tag(F.Properties):
                    _write_mail(w, email)
            returned += 1
        return returned, len(known)

    return "Mailbox", first, count, write


async def _gal(ctx: Context, criterion: Node) -> tuple[str, int, int, _Write]:
    query, options = text(criterion.find(F.Query)).strip(), criterion.find(F.Options)
    if not query or len(query) > MAX_QUERY:
        raise SearchFailed(INVALID_REQUEST)
    first, count = _range(options)
    try:
        pictures = Pictures.parse(options.find(F.Picture) if options is not None else None, F.MaxSize, F.MaxPictures)
        people = await ctx.backend.search_directory(ctx.user, query, ctx.config.search_match_limit)
    except (ProtocolError, BackendError):
        raise SearchFailed(INVALID_REQUEST) from None

    async def write(w: Writer, count: int) -> tuple[int, int]:
        page = people[:count]
        for person in page:
            with w.tag(F.Result), w.tag(F.Properties):
                write_person(w, person, ctx, pictures)
        return len(page), len(people)

    return "GAL", first, count, write


def _display(addresses: str) -> str:
    """The display form of an address list: names where there are, else addresses."""
    return "; ".join(name or address for name, address in getaddresses([addresses]) if name or address)


def _write_mail(w: Writer, email: Email) -> None:
    w.leaf(E.Subject, email.subject)
    if email.date_received is not None:
        w.leaf(E.DateReceived, format_date(email.date_received))
    w.leaf(E.DisplayTo, email.display_to or _display(email.to))
    w.leaf(F.DisplayCc, _display(email.cc))
    w.leaf(F.DisplayBcc, _display(email.bcc))
    w.leaf(F.HasAttachments, "1" if any(not a.is_inline for a in email.attachments) else "0")
    w.leaf(E.Read, "1" if email.read else "0")
    if email.sender:
        w.leaf(E.From, email.sender)
    body = email.body_text if email.body_text is not None else html_to_text(email.body_html or "")
    w.leaf(F.Preview, preview(body, PREVIEW_LENGTH))
