"""ItemOperations (MS-ASCMD 2.2.1.10, protocol 12.0 and later): Fetch, EmptyFolderContents
and (14.0+) conversation Move, in the order the device listed them.

Fetch takes one of: ``airsync:CollectionId`` + ``airsync:ServerId`` (a mailbox item, with
Options: BodyPreference, MIMESupport, Schema), ``search:LongId`` (an item found by Search;
its form is the ServerId's), ``airsyncbase:FileReference`` (an attachment, with Options:
Range). Document libraries (``documentlibrary:LinkId``, Store other than Mailbox) are not
served: status 9, the store is unsupported.

Content goes inline (attachment Data as base64 text, MS-ASCMD 2.2.1.10.1) unless the device
asked for multipart (``MS-ASAcceptMultiPart: T`` or the base64 query's flag): then the
body is a MultiPartResponse (2.2.1.10.1.1: a little-endian int32 part count, an (offset,
length) int32 pair per part, the parts; part 0 is the WBXML) and each Data is replaced by a
Part index, for attachments in Properties, for mail bodies in airsyncbase:Body.

Status (2.2.3.177.8), used here: 1 success; 2 protocol error (whole request or one
operation); 3 server error; 6 object not found (item, folder, conversation); 8 byte range
invalid; 9 store unknown or unsupported; 11 data too large; 14 the item cannot be
converted (Notes before 14.0); 15 attachment or FileReference invalid;
155 conversation move without MoveAlways; 156 destination is no mail folder.
"""

from __future__ import annotations

import base64
import re
import struct
from dataclasses import dataclass, field
from typing import Any

from eas import hierarchy as hier
from eas.backend import FOLDER_CLASS, BackendError, FolderNotFound, FolderType, ItemNotFound
from eas.commands import text
from eas.commands.moveitems import Moved, record_moves
from eas.commands.sync import write_item
from eas.context import Context
from eas.items import server_id, split_server_id
from eas.items.email import mime_mode, parse_body_options
from eas.pending import supported_class
from eas.protocol.errors import ProtocolError
from eas.protocol.http import HTTPResponse
from eas.tags import AirSync, AirSyncBase, DocumentLibrary, Search
from eas.tags import ItemOperations as IO
from eas.wbxml import Node, Writer, decode
from eas.wbxml._writer import write_node

MULTIPART_CONTENT_TYPE = "application/vnd.ms-sync.multipart"
MAX_OPERATIONS = 200
MAX_PART_TOTAL = 0x7FFFFFFF  # offsets and lengths are int32

SUCCESS = 1
PROTOCOL_ERROR = 2
SERVER_ERROR = 3
NOT_FOUND = 6
BAD_RANGE = 8
UNKNOWN_STORE = 9
TOO_LARGE = 11
CONVERSION_FAILED = 14
BAD_ATTACHMENT = 15
MOVE_ALWAYS_REQUIRED = 155
BAD_DESTINATION = 156

_RANGE = re.compile(r"(\d{1,10})-(\d{1,10})")


@dataclass(slots=True)
class _Response:
    """The response being written, and the binary parts of a multipart answer."""

    writer: Writer
    multipart: bool
    parts: list[bytes] = field(default_factory=list)
    size: int = 0

    def add_part(self, data: bytes) -> int | None:
        """The Part index of ``data`` (1-based: part 0 is the WBXML), None if too much."""
        if self.size + len(data) > MAX_PART_TOTAL // 2:
            return None
        self.parts.append(data)
        self.size += len(data)
        return len(self.parts)


async def handle(ctx: Context) -> HTTPResponse:
    body = ctx.body
    operations = body.children if body is not None and body.tag == IO.ItemOperations else []
    if (not operations or len(operations) > MAX_OPERATIONS
            or any(op.tag not in (IO.Fetch, IO.EmptyFolderContents, IO.Move) or not ctx.has(op.tag)
                   for op in operations)):
        return _global_status(ctx, PROTOCOL_ERROR)
    out = _Response(Writer(), ctx.request.accept_multipart)
    w = out.writer
    with w.tag(IO.ItemOperations):
        w.leaf(IO.Status, SUCCESS)
        with w.tag(IO.Response):
            for op in operations:
                if op.tag == IO.Fetch:
                    await _fetch(ctx, op, out)
                elif op.tag == IO.EmptyFolderContents:
                    await _empty_folder(ctx, op, w)
                else:
                    await _move_conversation(ctx, op, w)
    if not out.multipart:
        return ctx.respond(w)
    return HTTPResponse(200, [("Content-Type", MULTIPART_CONTENT_TYPE)], multipart_body(w.getvalue(), out.parts))


def multipart_body(wbxml: bytes, parts: list[bytes]) -> bytes:
    """MultiPartResponse (MS-ASCMD 2.2.1.10.1.1): PartsCount, PartMetaData (Offset, Length
    from the start of the body) per part, then the parts; the WBXML is part 0."""
    everything = [wbxml, *parts]
    offset = 4 + 8 * len(everything)
    head = [struct.pack("<i", len(everything))]
    for part in everything:
        head.append(struct.pack("<ii", offset, len(part)))
        offset += len(part)
    return b"".join(head) + b"".join(everything)


def _global_status(ctx: Context, status: int) -> HTTPResponse:
    w = Writer()
    with w.tag(IO.ItemOperations):
        w.leaf(IO.Status, status)
    return ctx.respond(w)


# -- Fetch -------------------------------------------------------------------------------------


async def _fetch(ctx: Context, op: Node, out: _Response) -> None:
    store = text(op.find(IO.Store))
    refs = [c for c in op.children if c.tag == AirSyncBase.FileReference]
    long_id = text(op.find(Search.LongId))
    collection_id = text(op.find(AirSync.CollectionId))
    item = text(op.find(AirSync.ServerId))
    kinds = sum(bool(x) for x in (refs, long_id, item or collection_id))
    if store.lower() != "mailbox" or op.find(DocumentLibrary.LinkId) is not None:
        status = UNKNOWN_STORE if store else PROTOCOL_ERROR
        _fetch_status(out.writer, status, op)
    elif kinds != 1 or len(refs) > 1:
        _fetch_status(out.writer, PROTOCOL_ERROR, op)
    elif refs:
        await _fetch_attachment(ctx, op, text(refs[0]), out)
    else:
        await _fetch_item(ctx, op, collection_id, item, long_id, out)


def _fetch_status(w: Writer, status: int, op: Node) -> None:
    """A Fetch that failed: its Status and the ids the device sent, so it can tell which."""
    with w.tag(IO.Fetch):
        w.leaf(IO.Status, status)
        for tag in (Search.LongId, AirSync.CollectionId, AirSync.ServerId, AirSyncBase.FileReference):
            value = text(op.find(tag))
            if value and len(value) <= 256:
                w.leaf(tag, value)


async def _fetch_attachment(ctx: Context, op: Node, reference: str, out: _Response) -> None:
    w = out.writer
    if not reference:
        _fetch_status(w, BAD_ATTACHMENT, op)  # MS-ASAIRS 2.2.2.17.1: empty reference is 15
        return
    wanted: tuple[int, int] | None = None
    options = op.find(IO.Options)
    if options is not None and options.find(IO.Range) is not None:
        match = _RANGE.fullmatch(text(options.find(IO.Range)).strip())
        if match is None or int(match.group(1)) > int(match.group(2)):
            _fetch_status(w, BAD_RANGE, op)
            return
        wanted = int(match.group(1)), int(match.group(2))
    try:
        content_type, data = await ctx.backend.attachment(ctx.user, reference)
    except ItemNotFound:
        _fetch_status(w, BAD_ATTACHMENT, op)
        return
    except BackendError:
        _fetch_status(w, SERVER_ERROR, op)
        return
    total = len(data)
    if wanted is not None:
        start, end = wanted
        if start >= total and total:
            _fetch_status(w, BAD_RANGE, op)
            return
        data = data[start:end + 1]  # best effort (2.2.3.143.2): the range is cut at the end
    part = out.add_part(data) if out.multipart else None
    if out.multipart and part is None:
        _fetch_status(w, TOO_LARGE, op)
        return
    with w.tag(IO.Fetch):
        w.leaf(IO.Status, SUCCESS)
        w.leaf(AirSyncBase.FileReference, reference)
        with w.tag(IO.Properties):
            w.leaf(AirSyncBase.ContentType, _content_type(content_type))
            if wanted is not None:
                if data:  # the range actually sent, which may end before the one asked for
                    w.leaf(IO.Range, f"{wanted[0]}-{wanted[0] + len(data) - 1}")
                w.leaf(IO.Total, total)
            if part is not None:
                w.leaf(IO.Part, part)
            else:
                w.leaf(IO.Data, base64.b64encode(data).decode("ascii"))


async def _fetch_item(ctx: Context, op: Node, collection_id: str, item: str, long_id: str,
                      out: _Response) -> None:
    w = out.writer
    if not (long_id or item):
        _fetch_status(w, PROTOCOL_ERROR, op)  # a CollectionId alone names no item
        return
    parts = split_server_id(long_id or item)
    if parts is None or (collection_id and not long_id and parts[0] != collection_id):
        _fetch_status(w, NOT_FOUND, op)
        return
    folder = await hier.collection_folder(ctx, parts[0])
    if folder is None:
        _fetch_status(w, NOT_FOUND, op)
        return
    item_class = folder.item_class or "Email"
    if not supported_class(item_class, ctx.version):
        _fetch_status(w, CONVERSION_FAILED, op)  # Notes before 14.0
        return
    try:
        options = parse_body_options(op.find(IO.Options), ctx.version, default_class=item_class)
    except ProtocolError:
        _fetch_status(w, PROTOCOL_ERROR, op)
        return
    found: list[Any]
    try:
        if item_class == "Email":
            found = await ctx.backend.fetch_emails(ctx.user, folder.backend_id, [parts[1]],
                                                   mime=mime_mode(options, ctx.version) > 0)
        else:
            found = await ctx.backend.fetch_items(ctx.user, folder.backend_id, [parts[1]])
    except (ItemNotFound, FolderNotFound):
        found = []
    except BackendError:
        _fetch_status(w, SERVER_ERROR, op)
        return
    if not found:
        _fetch_status(w, NOT_FOUND, op)
        return
    schema = _schema(op.find(IO.Options))
    properties: Node | None = None
    if schema or out.multipart:  # the item is cut or its bodies moved out: as a tree first
        properties = _properties(ctx, item_class, found[0], options, schema, out)
        if properties is None:
            _fetch_status(w, TOO_LARGE, op)
            return
    with w.tag(IO.Fetch):
        w.leaf(IO.Status, SUCCESS)
        if long_id:
            w.leaf(Search.LongId, long_id)
        else:
            w.leaf(AirSync.CollectionId, parts[0])
            w.leaf(AirSync.ServerId, server_id(parts[0], parts[1]))
        w.leaf(AirSync.Class, item_class)
        if properties is not None:
            write_node(w, properties)
        else:
            with w.tag(IO.Properties):
                write_item(w, item_class, found[0], ctx.version, options)


def _properties(ctx: Context, item_class: str, item: Any, options: dict[str, Any], schema: set[int] | None,
                out: _Response) -> Node | None:
    """The item's Properties element as a tree: what its class writes, cut to the
    Schema, with each body's Data moved into a part for a multipart answer. (Without
    either, ``_fetch_item`` writes the item straight into the response.)"""
    scratch = Writer()
    with scratch.tag(IO.Properties):
        write_item(scratch, item_class, item, ctx.version, options)
    properties = decode(scratch.getvalue())
    if schema:
        properties.children = [c for c in properties.children if c.tag in schema]
    if out.multipart:
        for body in properties.findall(AirSyncBase.Body):
            for i, child in enumerate(body.children):
                if child.tag == AirSyncBase.Data:
                    value = child.text
                    data = value if isinstance(value, bytes) else (value or "").encode("utf-8", "surrogateescape")
                    part = out.add_part(data)
                    if part is None:
                        return None
                    body.children[i] = Node(IO.Part, str(part))
    return properties


def _schema(options: Node | None) -> set[int] | None:
    """The tags a Schema element lists (MS-ASCMD 2.2.3.158.1): only those are returned."""
    node = options.find(IO.Schema) if options is not None else None
    if node is None or not node.children:
        return None
    return {c.tag for c in node.children}


# -- EmptyFolderContents -----------------------------------------------------------------------


async def _empty_folder(ctx: Context, op: Node, w: Writer) -> None:
    collection_id = text(op.find(AirSync.CollectionId))
    options = op.find(IO.Options)
    delete_subfolders = options is not None and options.find(IO.DeleteSubFolders) is not None
    status = SUCCESS
    folder = await hier.collection_folder(ctx, collection_id) if collection_id else None
    if not collection_id:
        status = PROTOCOL_ERROR
    elif folder is None:
        status = NOT_FOUND
    else:
        try:
            await ctx.backend.empty_folder(ctx.user, folder.backend_id, delete_subfolders=delete_subfolders)
        except FolderNotFound:
            status = NOT_FOUND
        except BackendError:
            status = SERVER_ERROR
    with w.tag(IO.EmptyFolderContents):
        w.leaf(IO.Status, status)
        if collection_id and len(collection_id) <= 64:
            w.leaf(AirSync.CollectionId, collection_id)


# -- Move (conversations, 14.0+) -----------------------------------------------------------------


async def _move_conversation(ctx: Context, op: Node, w: Writer) -> None:
    """MS-ASCMD 2.2.3.117.1 and MS-ASCON 3.1.4.2: every mail of the conversation, in every
    mail folder except Sent Items, moves to DstFldId. MoveAlways (future mail of the
    conversation too) is required (status 155 without it); this server moves what is
    there now and keeps no rule for later mail, since the Backend has no rule interface."""
    raw = op.find(IO.ConversationId)
    conversation = raw.text if raw is not None else None
    if isinstance(conversation, str):
        conversation = conversation.encode("utf-8", "surrogateescape")
    status = await _conversation_status(ctx, op, conversation)
    with w.tag(IO.Move):
        w.leaf(IO.Status, status)
        if conversation:
            w.opaque(IO.ConversationId, conversation[:64])


async def _conversation_status(ctx: Context, op: Node, conversation: bytes | None) -> int:
    if not conversation:
        return PROTOCOL_ERROR
    destination = text(op.find(IO.DstFldId))
    options = op.find(IO.Options)
    if options is None or options.find(IO.MoveAlways) is None:
        return MOVE_ALWAYS_REQUIRED
    hierarchy = await ctx.state.hierarchy()
    dst = hierarchy.folders.get(destination)
    if dst is None:
        return NOT_FOUND
    if hier.folder_class(dst.type) != "Email":
        return BAD_DESTINATION
    try:
        folders = await ctx.backend.folders(ctx.user)
    except BackendError:
        return SERVER_ERROR
    moved: list[Moved] = []
    for folder in folders:
        if (FOLDER_CLASS.get(folder.type) != "Email" or folder.type == FolderType.SENT_ITEMS
                or folder.id == dst.backend_id):
            continue
        try:
            ids = list(await ctx.backend.item_stamps(ctx.user, folder.id))
            mails = await ctx.backend.fetch_emails(ctx.user, folder.id, ids) if ids else []
            for mail in mails:
                if mail.conversation_id != conversation:
                    continue
                new_id = await ctx.backend.move_item(ctx.user, mail.id, folder.id, dst.backend_id)
                src_collection = hierarchy.id_map.get(folder.id)
                if src_collection is not None:
                    moved.append(Moved(src_collection, destination, dst.backend_id, mail.id, new_id))
        except (ItemNotFound, FolderNotFound):
            continue
        except BackendError:
            return SERVER_ERROR
    await record_moves(ctx, moved)
    return SUCCESS if moved or await _already_there(ctx, dst.backend_id, conversation) else NOT_FOUND


async def _already_there(ctx: Context, folder_id: str, conversation: bytes) -> bool:
    """Whether the conversation is all in the destination already (a repeated Move)."""
    try:
        ids = list(await ctx.backend.item_stamps(ctx.user, folder_id))
        return any(m.conversation_id == conversation for m in await ctx.backend.fetch_emails(ctx.user, folder_id, ids))
    except BackendError:
        return False


# -- helpers -------------------------------------------------------------------------------------


_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")


def _content_type(value: str) -> str:
    value = (value or "").split(";")[0].strip()
    return value if len(value) <= 128 and _MEDIA_TYPE.fullmatch(value) else "application/octet-stream"
