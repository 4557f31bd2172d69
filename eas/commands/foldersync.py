"""FolderSync (MS-ASCMD 2.2.1.5): the folder hierarchy, as changes since the device's SyncKey.

The keys a request may carry, and what each means (the logic is in ``eas.hierarchy``):

=====================  ===============================================================
SyncKey                the device has ...
=====================  ===============================================================
``0``                  nothing: every folder is an Add; server ids and the collection
                       states of folders that still exist are kept (re-initialising
                       clients do not download their mail again)
current key            what it was last sent: the changes since; no changes, no new key
previous key           what it had before the last response, which never arrived: the
                       changes since then again, under a new key
anything else          status 9: the device starts over with SyncKey 0
=====================  ===============================================================

Status (2.2.3.177.5) is global; a response that is not a success carries nothing else.
"""

from __future__ import annotations

import logging
from enum import IntEnum

from eas import hierarchy as hier
from eas.backend import BackendError
from eas.context import Context
from eas.protocol.http import HTTPResponse
from eas.state.model import FolderEntry
from eas.tags import FolderHierarchy as FH
from eas.wbxml import Writer

log = logging.getLogger("eas.foldersync")


class Status(IntEnum):
    """FolderSync Status, MS-ASCMD 2.2.3.177.5."""

    SUCCESS = 1
    SERVER_ERROR = 6
    INVALID_SYNC_KEY = 9
    MALFORMED = 10
    UNKNOWN_ERROR = 11


async def handle(ctx: Context) -> HTTPResponse:
    body = ctx.body
    if body is None or body.tag != FH.FolderSync:
        return _status(ctx, Status.MALFORMED)
    key_text = body.findtext(FH.SyncKey)
    if key_text is None:
        return _status(ctx, Status.MALFORMED)
    key = hier.parse_key(key_text)
    state = await ctx.state.hierarchy()
    if key is None:
        return _status(ctx, Status.INVALID_SYNC_KEY)
    if key == 0:
        base: dict[str, FolderEntry] = {}
    elif key == state.sync_key:
        base = state.folders
    elif key == state.previous_key and state.previous_folders is not None:
        base = state.previous_folders
    else:
        return _status(ctx, Status.INVALID_SYNC_KEY)
    try:
        folders = await ctx.backend.folders(ctx.user)
    except BackendError as e:
        log.warning("FolderSync for %s: backend failed: %s", ctx.user, e)
        return _status(ctx, Status.SERVER_ERROR)
    except Exception:
        log.exception("FolderSync for %s: unexpected backend failure", ctx.user)
        return _status(ctx, Status.UNKNOWN_ERROR)
    current = hier.entries(state, folders)
    changes = hier.compare(base, current)
    if key == state.sync_key and key != 0 and not changes:
        new_key = state.sync_key
    else:
        new_key = hier.advance(ctx, state, current, previous=(key, base) if key else None)

    w = Writer()
    with w.tag(FH.FolderSync):
        w.leaf(FH.Status, int(Status.SUCCESS))
        w.leaf(FH.SyncKey, str(new_key))
        with w.tag(FH.Changes):
            w.leaf(FH.Count, len(changes))
            for entry in changes.added:
                with w.tag(FH.Add):
                    _folder(w, entry)
            for entry in changes.updated:
                with w.tag(FH.Update):
                    _folder(w, entry)
            for entry in changes.deleted:
                with w.tag(FH.Delete):
                    w.leaf(FH.ServerId, entry.server_id)
    return ctx.respond(w)


def _folder(w: Writer, entry: FolderEntry) -> None:
    w.leaf(FH.ServerId, entry.server_id)
    w.leaf(FH.ParentId, entry.parent_id)
    w.leaf(FH.DisplayName, entry.name)
    w.leaf(FH.Type, entry.type)


def _status(ctx: Context, status: Status) -> HTTPResponse:
    w = Writer()
    with w.tag(FH.FolderSync):
        w.leaf(FH.Status, int(status))
    return ctx.respond(w)
