"""MoveItems (MS-ASCMD 2.2.1.12): move items between collections, one status per Move.

Status per Move (MS-ASCMD 2.2.3.177.9): 1 invalid source (collection or item), 2 invalid
destination collection, 3 success (with DstMsgId), 4 source and destination are the
same, 5 the move failed, 7 source or destination locked. The response has no top-level
Status: a request that is not a MoveItems at all gets HTTP 400.

The device has already moved the item on its side, so the affected collections' sync
states are brought up to date here: the item leaves the source snapshot (the next Sync of
the source sends no Delete) and enters the destination snapshot with its new stamp (the
next Sync of the destination sends no Add). ``record_moves`` does that for ItemOperations
conversation moves too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eas.backend import BackendError, FolderNotFound, ItemNotFound
from eas.commands import text
from eas.context import Context
from eas.hierarchy import folder_class
from eas.items import server_id, split_server_id
from eas.pending import filter_type_of, window_stamps
from eas.protocol.errors import ProtocolError
from eas.protocol.http import HTTPResponse
from eas.state.model import CollectionState, FolderEntry
from eas.tags import Move
from eas.wbxml import Writer

INVALID_SOURCE = 1
INVALID_DESTINATION = 2
SUCCESS = 3
SAME_FOLDER = 4
FAILED = 5
LOCKED = 7
MAX_MOVES = 1000  # per request; more is a protocol error (400), not work to do


@dataclass(frozen=True, slots=True)
class Moved:
    """One item moved: backend ids in backend folders, under these collection ids."""

    src_collection: str
    dst_collection: str
    dst_folder: str
    old_id: str
    new_id: str


async def handle(ctx: Context) -> HTTPResponse:
    body = ctx.body
    if body is None or body.tag != Move.MoveItems:
        raise ProtocolError("the request is not a MoveItems")
    moves = body.findall(Move.Move)
    if not moves or len(moves) > MAX_MOVES or len(moves) != len(body.children):
        raise ProtocolError("MoveItems needs 1 to 1000 Move elements and nothing else")
    results: list[tuple[str, int, str]] = []
    done: list[Moved] = []
    for move in moves:
        src_msg = text(move.find(Move.SrcMsgId))
        status, dst_msg, moved = await _move(ctx, src_msg, text(move.find(Move.SrcFldId)),
                                               text(move.find(Move.DstFldId)))
        results.append((src_msg, status, dst_msg))
        if moved is not None:
            done.append(moved)
    await record_moves(ctx, done)
    w = Writer()
    with w.tag(Move.MoveItems):
        for src_msg, status, dst_msg in results:
            with w.tag(Move.Response):
                w.leaf(Move.SrcMsgId, src_msg)
                w.leaf(Move.Status, status)
                if status == SUCCESS:
                    w.leaf(Move.DstMsgId, dst_msg)
    return ctx.respond(w)


async def _move(ctx: Context, src_msg: str, src_fld: str, dst_fld: str) -> tuple[int, str, Moved | None]:
    """``(status, DstMsgId, what moved)`` of one Move."""
    hierarchy = await ctx.state.hierarchy()
    parts = split_server_id(src_msg)
    src = hierarchy.folders.get(src_fld)
    if parts is None or src is None or parts[0] != src_fld:
        return INVALID_SOURCE, "", None
    dst = hierarchy.folders.get(dst_fld)
    if dst is None or not _same_class(src, dst):
        return INVALID_DESTINATION, "", None
    if src_fld == dst_fld:
        return SAME_FOLDER, "", None
    item_id = parts[1]
    try:
        new_id = await ctx.backend.move_item(ctx.user, item_id, src.backend_id, dst.backend_id)
    except ItemNotFound:
        return INVALID_SOURCE, "", None
    except FolderNotFound:
        # Which of the two is gone: the source is checked first by every backend we know,
        # and a vanished source makes its item invalid too.
        return INVALID_DESTINATION, "", None
    except BackendError:
        return FAILED, "", None
    return SUCCESS, server_id(dst_fld, new_id), Moved(src_fld, dst_fld, dst.backend_id, item_id, new_id)


def _same_class(src: FolderEntry, dst: FolderEntry) -> bool:
    """Mail goes to mail folders, contacts to contact folders, ..."""
    kind = folder_class(src.type)
    return kind is not None and kind == folder_class(dst.type)


async def record_moves(ctx: Context, moved: Sequence[Moved]) -> None:
    """Update the sync states of the collections involved so that the next Sync neither
    deletes the moved items from the source nor adds them to the destination again."""
    stamps: dict[str, dict[str, str]] = {}
    for m in moved:
        src_state = await ctx.state.collection(m.src_collection)
        if src_state is not None:
            _forget(src_state, m.old_id)
            ctx.state.put_collection(src_state)
        dst_state = await ctx.state.collection(m.dst_collection)
        if dst_state is None or dst_state.sync_key == 0:
            continue
        if m.dst_collection not in stamps:
            try:
                stamps[m.dst_collection] = await window_stamps(ctx, m.dst_folder, filter_type_of(dst_state.options))
            except BackendError:
                stamps[m.dst_collection] = {}
        stamp = stamps[m.dst_collection].get(m.new_id)
        if stamp is None:
            continue  # outside the collection's FilterType window: the device drops it itself
        dst_state.snapshot[m.new_id] = stamp
        if dst_state.previous is not None:
            dst_state.previous.setdefault("snapshot", {})[m.new_id] = stamp
        ctx.state.put_collection(dst_state)


def _forget(state: CollectionState, item_id: str) -> None:
    state.snapshot.pop(item_id, None)
    if state.previous is not None and isinstance(state.previous.get("snapshot"), dict):
        state.previous["snapshot"].pop(item_id, None)
