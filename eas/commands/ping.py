"""Ping (MS-ASCMD 2.2.1.13, 3.1.5.8): wait until one of the listed folders changes.

One linear path, each step answering with its status (2.2.3.177.11) when it applies:

1. parse: a malformed body is 4 (syntax error);
2. parameters: what the body leaves out comes from the last Ping (cache key ``"ping"``);
   nothing to fall back on is 3;
3. bounds: a HeartbeatInterval outside ``config.min_heartbeat..max_heartbeat`` is 5 with
   the bound, more folders than ``config.max_ping_folders`` is 6 with MaxFolders;
4. a folder the device was never sent, or a hierarchy that changed, is 7;
5. catch-up: a folder with changes the device has not synced yet is 2 at once, since a
   notification that came before this Ping would otherwise be lost;
6. wait (``ctx.wait``): a change re-checks and answers 2 with the folders (a wake-up
   without a real change waits again for the time left); the heartbeat passing is 1; a
   newer request of the same device ends this one with 1 at once.

A folder "has changes" when the backend's items (within the collection's FilterType)
differ from the collection's snapshot; a folder never synced has changes when it holds
anything. Ping writes only its parameters, and only when they changed; while it waits it
keeps no state loaded (tens of thousands may be parked at once).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eas import hierarchy as hier
from eas.backend import BackendError, FolderNotFound
from eas.context import Context
from eas.pending import filter_type_of, pending_changes
from eas.protocol.http import HTTPResponse
from eas.tags import Ping as P
from eas.wbxml import Node, Writer

log = logging.getLogger("eas.ping")

CACHE_KEY = "ping"


class Status(IntEnum):
    """Ping Status, MS-ASCMD 2.2.3.177.11."""

    EXPIRED = 1
    CHANGES = 2
    MISSING_PARAMETERS = 3
    SYNTAX_ERROR = 4
    HEARTBEAT_OUT_OF_RANGE = 5
    TOO_MANY_FOLDERS = 6
    FOLDER_SYNC_REQUIRED = 7
    SERVER_ERROR = 8


@dataclass(slots=True)
class _Request:
    """What the body says; None where it says nothing."""

    heartbeat: int | None = None
    folders: list[list[str]] | None = None  # [[id, class], ...]


class _Answer(Exception):
    """Ends the Ping with a status and what goes with it."""

    def __init__(self, status: Status, *, folders: list[str] | None = None, heartbeat: int | None = None,
                 max_folders: int | None = None) -> None:
        self.status = status
        self.folders = folders
        self.heartbeat = heartbeat
        self.max_folders = max_folders


_NUMBER = re.compile(r"[0-9]{1,9}")


async def handle(ctx: Context) -> HTTPResponse:
    try:
        answer = await _ping(ctx)
    except _Answer as early:
        answer = early
    except FolderNotFound:
        answer = _Answer(Status.FOLDER_SYNC_REQUIRED)  # a folder went away under us
    except BackendError as e:
        log.warning("Ping for %s: backend failed: %s", ctx.user, e)
        answer = _Answer(Status.SERVER_ERROR)
    except Exception:
        log.exception("Ping for %s failed", ctx.user)
        answer = _Answer(Status.SERVER_ERROR)
    return _respond(ctx, answer)


async def _ping(ctx: Context) -> _Answer:
    """The answer when the heartbeat passes; every other answer is raised."""
    request = _parse(ctx.body)
    cache = await ctx.state.cache()
    cached: dict[str, Any] = cache.get(CACHE_KEY) or {}
    heartbeat = request.heartbeat if request.heartbeat is not None else cached.get("heartbeat")
    folders = request.folders if request.folders else cached.get("folders")
    if not isinstance(heartbeat, int) or not folders:
        raise _Answer(Status.MISSING_PARAMETERS)
    low, high = ctx.config.min_heartbeat, ctx.config.max_heartbeat
    if heartbeat < low or heartbeat > high:
        raise _Answer(Status.HEARTBEAT_OUT_OF_RANGE, heartbeat=low if heartbeat < low else high)
    if len(folders) > ctx.config.max_ping_folders:
        raise _Answer(Status.TOO_MANY_FOLDERS, max_folders=ctx.config.max_ping_folders)
    ids = [f[0] for f in folders]
    known = hier.collection_folders(await ctx.state.hierarchy(), ids)
    if len(known) != len(ids):
        raise _Answer(Status.FOLDER_SYNC_REQUIRED)
    if cached != {"heartbeat": heartbeat, "folders": folders}:
        cache[CACHE_KEY] = {"heartbeat": heartbeat, "folders": folders}
        ctx.state.cache_changed()
    backend_ids = [f.backend_id for f in known.values()]
    del known, cache, cached, request
    await _check(ctx, ids)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + heartbeat
    while True:
        ctx.state.release()
        remaining = deadline - loop.time()
        if remaining <= 0:
            return _Answer(Status.EXPIRED)
        outcome = await ctx.wait(backend_ids, remaining)
        if outcome != "changed":  # "timeout", or "superseded": the device's newer request goes on
            return _Answer(Status.EXPIRED)
        await _check(ctx, ids)


async def _check(ctx: Context, ids: list[str]) -> None:
    """Answer 7 if the hierarchy changed, 2 if any of these folders has changes."""
    if await hier.hierarchy_changed(ctx):
        raise _Answer(Status.FOLDER_SYNC_REQUIRED)
    known = hier.collection_folders(await ctx.state.hierarchy(), ids)
    changed = [sid for sid, folder in known.items() if await _has_changes(ctx, sid, folder.backend_id)]
    if changed:
        raise _Answer(Status.CHANGES, folders=changed)


async def _has_changes(ctx: Context, collection_id: str, backend_id: str) -> bool:
    """Whether a Sync of this collection would bring the device anything."""
    state = await ctx.state.collection(collection_id)
    if state is None:
        return bool(await ctx.backend.item_stamps(ctx.user, backend_id))
    return (await pending_changes(ctx, backend_id, state.snapshot, filter_type_of(state.options), 0))[1] > 0


def _parse(body: Node | None) -> _Request:
    """The request's parameters (MS-ASCMD 2.2.3.136); 4 when it is not a Ping."""
    request = _Request()
    if body is None:
        return request
    if body.tag != P.Ping:
        raise _Answer(Status.SYNTAX_ERROR)
    for child in body:
        if child.tag == P.HeartbeatInterval:
            if not isinstance(child.text, str) or not _NUMBER.fullmatch(child.text):
                raise _Answer(Status.SYNTAX_ERROR)
            request.heartbeat = int(child.text)
        elif child.tag == P.Folders:
            request.folders = _folders(child)
        else:
            raise _Answer(Status.SYNTAX_ERROR)
    return request


def _folders(node: Node) -> list[list[str]]:
    """``[[id, class], ...]`` without repeats; 4 for a Folder without an Id."""
    out: list[list[str]] = []
    seen: set[str] = set()
    for folder in node:
        if folder.tag != P.Folder:
            raise _Answer(Status.SYNTAX_ERROR)
        folder_id = folder.findtext(P.Id)
        folder_class = folder.findtext(P.Class, default="")
        if not isinstance(folder_id, str) or not folder_id or not isinstance(folder_class, str):
            raise _Answer(Status.SYNTAX_ERROR)
        if folder_id not in seen:
            seen.add(folder_id)
            out.append([folder_id, folder_class])
    return out


def _respond(ctx: Context, answer: _Answer) -> HTTPResponse:
    """Status, then Folders, MaxFolders, HeartbeatInterval as the response schema orders them."""
    w = Writer()
    with w.tag(P.Ping):
        w.leaf(P.Status, int(answer.status))
        if answer.folders:
            with w.tag(P.Folders):
                for folder_id in answer.folders:
                    w.leaf(P.Folder, folder_id)
        if answer.max_folders is not None:
            w.leaf(P.MaxFolders, answer.max_folders)
        if answer.heartbeat is not None:
            w.leaf(P.HeartbeatInterval, answer.heartbeat)
    return ctx.respond(w)
