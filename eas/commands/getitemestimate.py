"""GetItemEstimate (MS-ASCMD 2.2.1.9): how many changes the next Sync of each collection
would send, so that a client can show progress or decide to sync.

The estimate is exactly what Sync would count (``eas.pending.pending_changes``:
deletes, soft deletes, changes and adds against the collection's snapshot) under the
FilterType of the request, else the one in force. Nothing is written: the request only
reads state. Per collection Status (2.2.3.177.7): 1 success, 2 unknown or malformed
collection, 3 sync state not primed (the collection was never synced, or the request
says SyncKey 0), 4 a SyncKey that is neither the current nor the previous one.

Two request shapes: up to 12.1 the Collection carries ``Class``, ``airsync:SyncKey``,
``CollectionId`` and ``airsync:FilterType``; from 14.0 ``airsync:SyncKey``,
``CollectionId``, ``airsync:ConversationMode`` and ``airsync:Options`` (FilterType,
Class, MaxItems).
"""

from __future__ import annotations

from dataclasses import dataclass

from eas import hierarchy as hier
from eas.backend import BackendError
from eas.context import Context
from eas.items.email import parse_body_options
from eas.pending import check_filter_type, filter_type_of, pending_changes, supported_class
from eas.protocol import status as st
from eas.protocol.errors import ProtocolError
from eas.protocol.http import HTTPResponse
from eas.tags import AirSync
from eas.tags import GetItemEstimate as G
from eas.wbxml import Node, Writer

OK = 1
INVALID_COLLECTION = 2
NOT_PRIMED = 3
INVALID_SYNC_KEY = 4

_MAX_COLLECTIONS = 300  # 2.2.3.31.1: 1 to 300 Collection elements


@dataclass(slots=True)
class _Answer:
    collection_id: str
    status: int
    estimate: int | None = None
    item_class: str | None = None


async def handle(ctx: Context) -> HTTPResponse:
    """MS-ASCMD 2.2.1.9."""
    body = ctx.body
    if body is None or body.tag != G.GetItemEstimate:
        raise ProtocolError("not a GetItemEstimate request", status=st.Common.InvalidXML)
    collections = body.find(G.Collections)
    nodes = collections.findall(G.Collection) if collections is not None else []
    if not nodes or len(nodes) > min(_MAX_COLLECTIONS, ctx.config.max_sync_collections):
        raise ProtocolError("GetItemEstimate takes 1 to 300 collections", status=st.Common.InvalidXML)
    answers = [await _estimate(ctx, node) for node in nodes]
    w = Writer()
    with_class = ctx.has(G.Class)
    with w.tag(G.GetItemEstimate):
        for a in answers:
            with w.tag(G.Response):
                w.leaf(G.Status, a.status)
                with w.tag(G.Collection):
                    if with_class and a.item_class:
                        w.leaf(G.Class, a.item_class)
                    w.leaf(G.CollectionId, a.collection_id)
                    if a.estimate is not None:
                        w.leaf(G.Estimate, a.estimate)
    return ctx.respond(w)


async def _estimate(ctx: Context, node: Node) -> _Answer:
    cid = node.findtext(G.CollectionId)
    if not isinstance(cid, str) or not cid or len(cid) > 64:
        return _Answer("", INVALID_COLLECTION)
    answer = _Answer(cid, OK)
    folder = await hier.collection_folder(ctx, cid)
    if folder is None:
        answer.status = INVALID_COLLECTION
        return answer
    answer.item_class = folder.item_class
    filter_type: int | None = None
    item_class = folder.item_class or "Email"
    try:
        for child in node.children:
            options = None
            if child.tag == AirSync.FilterType:  # 12.1 and earlier
                options = parse_body_options(Node(AirSync.Options, None, [child]), ctx.version)
            elif child.tag == AirSync.Options:
                klass = child.findtext(AirSync.Class)
                if klass in (None, folder.item_class) and child.find(AirSync.FilterType) is not None:
                    options = parse_body_options(child, ctx.version)
            if options is not None:
                check_filter_type(options, item_class)  # the class's windows, as Sync takes them
                filter_type = filter_type_of(options)
    except ProtocolError:
        answer.status = INVALID_COLLECTION
        return answer
    key = hier.parse_key(node.findtext(AirSync.SyncKey))
    state = await ctx.state.collection(cid)
    if key == 0 or state is None or state.sync_key == 0 or state.backend_id != folder.backend_id:
        answer.status = NOT_PRIMED
        return answer
    if key == state.sync_key:
        snapshot = state.snapshot
    elif key is not None and state.previous is not None and key == state.previous["sync_key"]:
        snapshot = state.previous["snapshot"]
    else:
        answer.status = INVALID_SYNC_KEY
        return answer
    if not supported_class(folder.item_class, ctx.version):
        answer.estimate = 0
        return answer
    if filter_type is None:
        filter_type = filter_type_of(state.options)
    try:
        answer.estimate = (await pending_changes(ctx, folder.backend_id, snapshot, filter_type, 0))[1]
    except BackendError:  # FolderNotFound among them
        answer.status = INVALID_COLLECTION
    return answer
