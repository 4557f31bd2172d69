"""FolderCreate, FolderUpdate and FolderDelete (MS-ASCMD 2.2.1.3, 2.2.1.6, 2.2.1.4).

Each request carries the device's current hierarchy SyncKey; a change is applied to the
backend and then to the hierarchy the device knows, under the next key, so that the next
FolderSync does not send the device back what it did itself (and still sends what
changed on the server meanwhile). The key before is kept as the previous one, as for
FolderSync: a device whose response got lost repeats it in a FolderSync and is told.

Checks, in order: the request's shape (10), the SyncKey (9), the folders named (4, 5),
special folders (2/3), names and types (10), then the backend's verdict. A failure
changes nothing and answers only its Status (2.2.3.177.3, .4, .6).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from enum import IntEnum

from eas import hierarchy as hier
from eas.backend import BackendError, FolderExists, FolderNotFound, FolderType, SpecialFolder
from eas.context import Context
from eas.protocol.http import HTTPResponse
from eas.state.model import FolderEntry, HierarchyState
from eas.tags import FolderHierarchy as FH
from eas.wbxml import Node, Writer

log = logging.getLogger("eas.folders")

MAX_NAME = 256
"""Longest DisplayName accepted, in characters (Exchange's own limit is 255)."""


class Status(IntEnum):
    """Status of FolderCreate (2.2.3.177.3), FolderDelete (.4) and FolderUpdate (.6).
    SPECIAL is the Recipient Information folder for FolderUpdate, where an ordinary
    special folder gives EXISTS."""

    SUCCESS = 1
    EXISTS = 2
    SPECIAL = 3
    NOT_FOUND = 4
    PARENT_NOT_FOUND = 5
    SERVER_ERROR = 6
    INVALID_SYNC_KEY = 9
    MALFORMED = 10
    UNKNOWN_ERROR = 11


class _Fail(Exception):
    """Ends a request with a status; nothing has been changed when it is raised."""

    def __init__(self, status: Status) -> None:
        self.status = status


_RI = FolderType.RECIPIENT_INFORMATION_CACHE


async def handle(ctx: Context) -> HTTPResponse:
    command = ctx.request.command
    root, run = _COMMANDS[command]
    w = Writer()
    try:
        body = ctx.body
        if body is None or body.tag != root:
            raise _Fail(Status.MALFORMED)
        key_text = body.findtext(FH.SyncKey)
        if key_text is None:
            raise _Fail(Status.MALFORMED)
        state = await ctx.state.hierarchy()
        key = hier.parse_key(key_text)
        if key is None or key == 0 or key != state.sync_key:
            raise _Fail(Status.INVALID_SYNC_KEY)
        new_key, server_id = await run(ctx, body, state, key)
    except _Fail as fail:
        with w.tag(root):
            w.leaf(FH.Status, int(fail.status))
        return ctx.respond(w)
    with w.tag(root):
        w.leaf(FH.Status, int(Status.SUCCESS))
        w.leaf(FH.SyncKey, str(new_key))
        if server_id is not None:
            w.leaf(FH.ServerId, server_id)
    return ctx.respond(w)


async def _create(ctx: Context, body: Node, state: HierarchyState, key: int) -> tuple[int, str | None]:
    """MS-ASCMD 2.2.1.3: ParentId, DisplayName and Type of a user folder."""
    parent_sid = _text(body, FH.ParentId)
    name = _name(body)
    type_text = _text(body, FH.Type)
    folder_type = hier.parse_key(type_text)
    if folder_type is None or folder_type not in hier.USER_FOLDER_TYPES:
        raise _Fail(Status.MALFORMED)
    parent_backend = _parent(state, parent_sid)
    try:
        folder = await ctx.backend.create_folder(ctx.user, parent_backend, name, FolderType(folder_type))
    except FolderExists:
        raise _Fail(Status.EXISTS) from None
    except FolderNotFound:
        raise _Fail(Status.PARENT_NOT_FOUND) from None
    except SpecialFolder:
        raise _Fail(Status.SPECIAL) from None
    except Exception as e:  # noqa: BLE001  (logged there; becomes status 6 or 11)
        raise _backend_failure(ctx, e) from None
    sid = state.server_id(folder.id)
    folders = dict(state.folders)
    folders[sid] = FolderEntry(sid, parent_sid, folder.name, int(folder.type), folder.id)
    return hier.advance(ctx, state, folders, previous=(key, state.folders)), sid


async def _update(ctx: Context, body: Node, state: HierarchyState, key: int) -> tuple[int, str | None]:
    """MS-ASCMD 2.2.1.6: rename and/or move a user folder."""
    sid = _text(body, FH.ServerId)
    parent_sid = _text(body, FH.ParentId)
    name = _name(body)
    target = state.folders.get(sid)
    if target is None:
        raise _Fail(Status.NOT_FOUND)
    if target.type == _RI:
        raise _Fail(Status.SPECIAL)
    if hier.is_special(target.type):
        raise _Fail(Status.EXISTS)
    parent_backend = _parent(state, parent_sid)
    if parent_sid in hier.descendants(state.folders, sid):
        raise _Fail(Status.MALFORMED)  # under itself: a semantic error (2.2.3.177.6, 10)
    try:
        await ctx.backend.update_folder(ctx.user, target.backend_id, parent_backend, name)
    except FolderExists:
        raise _Fail(Status.EXISTS) from None
    except SpecialFolder:
        raise _Fail(Status.EXISTS) from None
    except FolderNotFound:
        raise _Fail(await _which_missing(ctx, target.backend_id)) from None
    except Exception as e:  # noqa: BLE001  (logged there; becomes status 6 or 11)
        raise _backend_failure(ctx, e) from None
    name = await _stored_name(ctx, target.backend_id, name)
    folders = dict(state.folders)
    folders[sid] = FolderEntry(sid, parent_sid, name, target.type, target.backend_id)
    return hier.advance(ctx, state, folders, previous=(key, state.folders)), None


async def _delete(ctx: Context, body: Node, state: HierarchyState, key: int) -> tuple[int, str | None]:
    """MS-ASCMD 2.2.1.4: a user folder and everything below it."""
    sid = _text(body, FH.ServerId)
    target = state.folders.get(sid)
    if target is None:
        raise _Fail(Status.NOT_FOUND)
    if hier.is_special(target.type):
        raise _Fail(Status.SPECIAL)
    try:
        await ctx.backend.delete_folder(ctx.user, target.backend_id)
    except FolderNotFound:
        raise _Fail(Status.NOT_FOUND) from None
    except SpecialFolder:
        raise _Fail(Status.SPECIAL) from None
    except Exception as e:  # noqa: BLE001  (logged there; becomes status 6 or 11)
        raise _backend_failure(ctx, e) from None
    gone = hier.descendants(state.folders, sid)
    folders = {k: v for k, v in state.folders.items() if k not in gone}
    return hier.advance(ctx, state, folders, previous=(key, state.folders)), None


_Run = Callable[[Context, Node, HierarchyState, int], Awaitable[tuple[int, str | None]]]
_COMMANDS: dict[str, tuple[int, _Run]] = {
    "FolderCreate": (FH.FolderCreate, _create),
    "FolderUpdate": (FH.FolderUpdate, _update),
    "FolderDelete": (FH.FolderDelete, _delete),
}


def _text(body: Node, tag: int) -> str:
    """A required string element; 10 when it is missing or opaque."""
    value = body.findtext(tag)
    if not isinstance(value, str):
        raise _Fail(Status.MALFORMED)
    return value


def _name(body: Node) -> str:
    """DisplayName: printable, not blank, at most MAX_NAME characters; 10 otherwise.
    Control characters and undecodable bytes (surrogate escapes) never reach a backend."""
    name = _text(body, FH.DisplayName)
    if not name.strip() or len(name) > MAX_NAME:
        raise _Fail(Status.MALFORMED)
    if any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in name):
        raise _Fail(Status.MALFORMED)
    return name


def _parent(state: HierarchyState, parent_sid: str) -> str:
    """The backend id of a ParentId ("" at the top); 5 when the device cannot know it, 3
    under the Recipient Information folder."""
    if parent_sid == hier.TOP:
        return ""
    parent = state.folders.get(parent_sid)
    if parent is None:
        raise _Fail(Status.PARENT_NOT_FOUND)
    if parent.type == _RI:
        raise _Fail(Status.SPECIAL)
    return parent.backend_id


async def _which_missing(ctx: Context, backend_id: str) -> Status:
    """FolderNotFound from an update: the folder itself (4) or the new parent (5)?"""
    try:
        present = {f.id for f in await ctx.backend.folders(ctx.user)}
    except Exception as e:  # noqa: BLE001  (logged there; becomes status 6 or 11)
        return _backend_failure(ctx, e).status
    return Status.PARENT_NOT_FOUND if backend_id in present else Status.NOT_FOUND


async def _stored_name(ctx: Context, backend_id: str, name: str) -> str:
    """The name as the backend stored it (it may normalise it), so that the next
    FolderSync does not send the device an Update of the folder it just renamed."""
    try:
        folders = await ctx.backend.folders(ctx.user)
    except Exception:  # noqa: BLE001  (the rename is done; the next FolderSync corrects a wrong guess)
        return name
    return next((f.name for f in folders if f.id == backend_id), name)


def _backend_failure(ctx: Context, error: Exception) -> _Fail:
    """A backend error the command has no own code for: 10 when the backend refused the
    client's input (an error with HTTP status 400: a name it cannot store, ...), 6
    (server error, retry) for its other errors, 11 (unknown error) for anything else."""
    if isinstance(error, BackendError) and error.http_status == 400:
        return _Fail(Status.MALFORMED)
    if isinstance(error, BackendError):
        log.warning("%s for %s: backend failed: %s", ctx.request.command, ctx.user, error)
        return _Fail(Status.SERVER_ERROR)
    log.error("%s for %s: unexpected backend failure", ctx.request.command, ctx.user, exc_info=error)
    return _Fail(Status.UNKNOWN_ERROR)
