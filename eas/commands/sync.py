"""Sync (MS-ASCMD 2.2.1.21): a device's collections, both ways, one window at a time.

Theory of operation. Per collection the state (``eas.state.model.CollectionState``) holds
the SyncKey last handed out, the snapshot ``{backend item id: change stamp}`` of what the
device has, the ClientIds of the Adds of the last request, and the options in force.
What the device's SyncKey means (the key table, 2.2.3.181.4):

=============================  =====================================================
device sends                   server does
=============================  =====================================================
``0``                          start over: empty snapshot, new options, key + 1, no
                               items (the state the key had stays the previous one)
the current key                normal: apply the device's commands, send changes
the key before it              the last response was lost: ``rewind()`` to the state
                               that key had (its snapshot and ClientIds), then normal,
                               so the same changes go out again and resent Adds are
                               recognised by their ClientId
anything else                  status 3, and the collection is reset (key counter kept,
                               so keys only move forward) until the device sends ``0``
=============================  =====================================================

A normal request, in order: the device's Add/Change/Delete/Fetch are applied and the
snapshot follows them; if anything was applied or is to be sent, the key advances
(``advance()`` saves the state as the previous key's, so a repeat replays from here);
then the server's changes (snapshot against ``Backend.item_stamps`` within FilterType:
Delete, SoftDelete for what left the window, Change, Add newest first) go out, at most
WindowSize of them (MoreAvailable when more remain), and only what was sent enters the
snapshot. A collection with nothing to say keeps its key. A device that keeps repeating
the key of a response with items gets smaller windows and at last loses the item it
chokes on (``eas.loops``).

Item classes: mail is written by ``eas.items.email`` and takes only flag changes and
(16.x, Drafts) draft Adds; Calendar, Contacts, Tasks and Notes (14.0+) go through their
codec (``eas.items.codec``) both ways. A device's Change of one of those is merged into
the stored item (``_merged``): what it leaves out is kept where the element is ghosted
(every top-level calendar element in 16.x; before, for calendar and contacts, those the
SyncKey 0 request's Supported did not name, kept in the options; a task's body, a
note's subject and body) and cleared otherwise; a body it echoes truncated never
replaces the stored one. Supported for a Notes collection is status 4 (MS-ASNOTE).
FilterType per class as ``eas.pending.check_filter_type`` says. Conflict (2.2.3.34): 0
applies the device's Change; 1, the default, answers a Change of an item changed on the
server since with status 7, and the server's version goes out in the same response (the
snapshot still has the old stamp). A 16.x calendar Change or Delete with InstanceId
touches one occurrence (merged into it as it stands).

Requests without all their collections (12.1+, 2.2.1.21.1 and 2.2.3.131): an empty body
replays the last full request (cache key ``"sync"``), Partial merges the collections it
names into it; nothing cached is status 13. Unchanged collections are left out of the
response, and a response with nothing in it is an empty body. Wait (minutes, 12.1+) and
HeartbeatInterval (seconds, 14.0+) turn a request without changes into a long poll
(``ctx.wait``); out of bounds they are status 14 with Limit.

Status codes (2.2.3.177.17) are per collection except 4 (malformed request), 13, 14 and
15 (too many collections), which answer the whole request.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eas import hierarchy as hier
from eas import loops
from eas.backend import BackendError, EmailChange, FolderNotFound, FolderType, ItemNotFound, QuotaExceeded
from eas.context import Context
from eas.items import calendar, codec, pim, server_id, split_server_id
from eas.items.email import (
    draft_mime,
    is_smime,
    mime_mode,
    parse_body_options,
    parse_date,
    parse_email_change,
    write_email,
    write_email_flags,
)
from eas.pending import check_filter_type, filter_type_of, pending_changes, supported_class
from eas.protocol.errors import ProtocolError, ServiceUnavailable
from eas.protocol.http import HTTPResponse
from eas.protocol.versions import Version, has_tag
from eas.state.model import CollectionState
from eas.tags import AirSync as A
from eas.tags import AirSyncBase as B
from eas.tags import Calendar as CAL
from eas.tags import Notes as N
from eas.tags import Tasks as T
from eas.wbxml import Node, Writer

log = logging.getLogger("eas.sync")

# Sync Status, MS-ASCMD 2.2.3.177.17.
OK = 1
INVALID_SYNC_KEY = 3
PROTOCOL_ERROR = 4
SERVER_ERROR = 5
CONVERSION_ERROR = 6
CONFLICT = 7
OBJECT_NOT_FOUND = 8
CANNOT_COMPLETE = 9
HIERARCHY_CHANGED = 12
INCOMPLETE_REQUEST = 13
INVALID_WAIT = 14
TOO_MANY_COLLECTIONS = 15
RETRY = 16

CACHE_KEY = "sync"
_MAX_ID = 256  # longest ServerId/ClientId/CollectionId taken from a device
_V121 = Version("12.1")
_V14 = Version("14.0")
_V16 = Version("16.0")
# ClientIds remembered per collection: a device resending an Add, in the same request
# after a lost response or in a later one, gets the ServerId it was given.
_CLIENT_IDS_KEPT = 256


class _Refusal(Exception):
    """The whole request is answered with a top-level Status (and Limit for 14)."""

    def __init__(self, status: int, limit: int | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.limit = limit


@dataclass(slots=True)
class CollectionRequest:
    """One Collection of a request (or of the cached request, ``sync_key`` None)."""

    collection_id: str
    sync_key: str | None = None
    get_changes: bool | None = None
    deletes_as_moves: bool = True
    window_size: int | None = None
    conversation_mode: bool | None = None
    options: list[Node] = field(default_factory=list)
    commands: Node | None = None
    supported: list[int] | None = None  # the tags in Supported (2.2.3.179)
    error: str = ""  # malformed: status 4, state untouched


@dataclass(slots=True)
class SyncRequest:
    collections: list[CollectionRequest]
    wait: int | None = None  # seconds
    window_size: int | None = None


@dataclass(slots=True)
class _Result:
    """What one collection's response says."""

    collection_id: str
    sync_key: str
    status: int = OK
    item_class: str | None = None
    key_changed: bool = False
    more: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    responses: list[tuple[Any, ...]] = field(default_factory=list)
    commands: list[tuple[Any, ...]] = field(default_factory=list)
    backend_id: str = ""
    unreadable: int = 0  # items skipped because the backend could not read them

    @property
    def quiet(self) -> bool:
        return (self.status == OK and not self.key_changed and not self.more and not self.responses
                and not self.commands)


# -- the handler -----------------------------------------------------------------------------


async def handle(ctx: Context) -> HTTPResponse:
    """MS-ASCMD 2.2.1.21."""
    try:
        request = await _request(ctx)
    except _Refusal as refusal:
        return _refuse(ctx, refusal)
    results = await _run(ctx, request)
    if request.wait is not None and all(r.quiet for r in results):
        deadline = time.monotonic() + request.wait
        folders = [r.backend_id for r in results if r.backend_id]
        while all(r.quiet for r in results):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or await ctx.wait(folders, remaining) != "changed":
                return ctx.respond()  # 2.2.1.21.2: nothing changed, an empty response
            results = await _run(ctx, request)
    return _respond(ctx, results)


async def _run(ctx: Context, request: SyncRequest) -> list[_Result]:
    budget = request.window_size
    results = []
    for creq in request.collections:
        result = await _collection(ctx, creq, budget)
        if budget is not None:
            budget = max(0, budget - len(result.commands))
        results.append(result)
    return results


def _refuse(ctx: Context, refusal: _Refusal) -> HTTPResponse:
    w = Writer()
    with w.tag(A.Sync):
        w.leaf(A.Status, refusal.status)
        if refusal.limit is not None and ctx.has(A.Limit):
            w.leaf(A.Limit, refusal.limit)
    return ctx.respond(w)


# -- parsing ---------------------------------------------------------------------------------


def _text(node: Node) -> str:
    text = node.text
    if not isinstance(text, str):
        raise ProtocolError(f"{node!r} must hold text")
    return text


def _int(node: Node) -> int:
    text = _text(node).strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 10):
        raise ProtocolError(f"not an integer: {text!r}")
    return int(text)


def _bool(node: Node) -> bool:
    """0/1, an empty element meaning 1 (GetChanges, DeletesAsMoves, ConversationMode)."""
    text = node.text
    if text is None or text == "":
        return True
    if text in ("0", "1"):
        return text == "1"
    raise ProtocolError(f"not a boolean: {text!r}")


async def _request(ctx: Context) -> SyncRequest:
    """The request to carry out: the body's, or the cached one it leaves out (12.1+)."""
    body = ctx.body
    can_replay = ctx.version >= _V121
    cache = await ctx.state.cache()
    cached = cache.get(CACHE_KEY) if can_replay else None
    if body is None:
        if not can_replay:
            raise _Refusal(PROTOCOL_ERROR)
        if not cached:
            raise _Refusal(INCOMPLETE_REQUEST)
        return _from_cache(cached, [], None, None)
    if body.tag != A.Sync:
        raise _Refusal(PROTOCOL_ERROR)
    partial = False
    wait: int | None = None
    window: int | None = None
    collections: list[CollectionRequest] | None = None
    try:
        for child in body.children:
            tag = child.tag
            if tag == A.Partial:
                partial = True
            elif tag == A.Wait and ctx.has(A.Wait):
                if wait is not None:
                    raise ProtocolError("Wait and HeartbeatInterval together")
                wait = _wait(ctx, _int(child), 60)
            elif tag == A.HeartbeatInterval and ctx.has(A.HeartbeatInterval):
                if wait is not None:
                    raise ProtocolError("Wait and HeartbeatInterval together")
                wait = _wait(ctx, _int(child), 1)
            elif tag == A.WindowSize:
                window = _window(ctx, _int(child))
            elif tag == A.Collections:
                collections = [_collection_request(c) for c in child.children if c.tag == A.Collection]
    except ProtocolError:
        raise _Refusal(PROTOCOL_ERROR) from None
    if collections is not None:
        ids = [c.collection_id for c in collections]
        if len(set(ids)) != len(ids):
            raise _Refusal(PROTOCOL_ERROR)
        if len(ids) > ctx.config.max_sync_collections:
            raise _Refusal(TOO_MANY_COLLECTIONS)
    if (partial or collections is None) and can_replay:
        if not cached:
            raise _Refusal(INCOMPLETE_REQUEST)
        request = _from_cache(cached, collections or [], wait, window)
    elif collections is None:
        raise _Refusal(PROTOCOL_ERROR)
    else:
        request = SyncRequest(collections, wait, window)
    if can_replay:
        _remember(ctx, cache, request)
    if len(request.collections) > ctx.config.max_sync_collections:
        raise _Refusal(TOO_MANY_COLLECTIONS)
    return request


def _wait(ctx: Context, value: int, unit: int) -> int:
    """Wait (minutes) or HeartbeatInterval (seconds) in seconds; 14 with Limit (in the
    element's unit) when outside ``config.min_heartbeat..max_heartbeat``."""
    low = -(-ctx.config.min_heartbeat // unit)
    high = ctx.config.max_heartbeat // unit
    if value < low:
        raise _Refusal(INVALID_WAIT, low)
    if value > high:
        raise _Refusal(INVALID_WAIT, high)
    return value * unit


def _window(ctx: Context, value: int) -> int:
    """WindowSize (2.2.3.199): 1..max_window_size; larger asks get the maximum."""
    return max(1, min(value, ctx.config.max_window_size))


def _collection_request(node: Node) -> CollectionRequest:
    creq = CollectionRequest("")
    have_id = False
    for child in node.children:
        tag = child.tag
        try:
            if tag == A.SyncKey:
                creq.sync_key = child.text if isinstance(child.text, str) else ""  # "" is no key: status 3
            elif tag == A.CollectionId:
                creq.collection_id = _text(child)
                have_id = True
            elif tag == A.GetChanges:
                creq.get_changes = _bool(child)
            elif tag == A.DeletesAsMoves:
                creq.deletes_as_moves = _bool(child)
            elif tag == A.WindowSize:
                creq.window_size = _int(child)
            elif tag == A.ConversationMode:
                creq.conversation_mode = _bool(child)
            elif tag == A.Options:
                creq.options.append(child)
            elif tag == A.Supported:
                creq.supported = [c.tag for c in child.children]
            elif tag == A.Commands:
                _check_commands(child)
                creq.commands = child
        except ProtocolError as e:
            creq.error = creq.error or str(e)
    if not have_id or not creq.collection_id or len(creq.collection_id) > _MAX_ID:
        raise ProtocolError("a Collection without a usable CollectionId")
    if creq.sync_key is None and not creq.error:
        creq.error = "a Collection without SyncKey"
    return creq


def _check_commands(node: Node) -> None:
    """Every command names what it applies to (checked before anything is applied)."""
    for cmd in node.children:
        if cmd.tag == A.Add:
            wanted = A.ClientId
        elif cmd.tag in (A.Change, A.Delete, A.Fetch):
            wanted = A.ServerId
        else:
            raise ProtocolError(f"unknown command {cmd!r}")
        value = cmd.findtext(wanted)
        if not isinstance(value, str) or not value or len(value) > _MAX_ID:
            raise ProtocolError(f"{cmd!r} without a usable id")


def _from_cache(cached: dict[str, Any], named: list[CollectionRequest], wait: int | None,
                window: int | None) -> SyncRequest:
    """The cached request with the collections of a Partial one merged in (2.2.3.131):
    those it names as sent, the others as last sent, at their current SyncKey; the Wait
    and WindowSize it gives, else the cached ones."""
    by_id = {c.collection_id: c for c in named}
    collections: list[CollectionRequest] = []
    for entry in cached.get("collections", []):
        cid = entry["id"]
        if cid in by_id:
            collections.append(by_id.pop(cid))
            continue
        collections.append(CollectionRequest(
            cid, None, entry.get("get_changes"), entry.get("deletes_as_moves", True), entry.get("window_size"),
            entry.get("conversation_mode")))
    collections.extend(by_id.values())
    return SyncRequest(collections, wait if wait is not None else cached.get("wait"),
                       window if window is not None else cached.get("window_size"))


def _remember(ctx: Context, cache: dict[str, Any], request: SyncRequest) -> None:
    """Cache the request's parameters (not its commands) for empty and partial requests;
    a malformed request leaves the cache as it was."""
    if any(c.error for c in request.collections):
        return
    entries = [{"id": c.collection_id, "get_changes": c.get_changes, "deletes_as_moves": c.deletes_as_moves,
                "window_size": c.window_size, "conversation_mode": c.conversation_mode}
               for c in request.collections]
    value = {"collections": entries, "wait": request.wait, "window_size": request.window_size}
    if cache.get(CACHE_KEY) != value:
        cache[CACHE_KEY] = value
        ctx.state.cache_changed()


def _forget(ctx: Context, cache: dict[str, Any], collection_id: str) -> None:
    """Take a collection out of the cached request (its state was reset)."""
    cached = cache.get(CACHE_KEY)
    if cached:
        kept = [e for e in cached["collections"] if e["id"] != collection_id]
        if len(kept) != len(cached["collections"]):
            cached["collections"] = kept
            ctx.state.cache_changed()


# -- one collection --------------------------------------------------------------------------


def _reset(state: CollectionState) -> None:
    """Forget what the device has; the key counter stays (keys only move forward)."""
    state.previous = None  # first: a previous state kept as a difference would be built for the old snapshot
    state.snapshot = {}
    state.client_ids = {}
    state.extra = {}


def _choose_options(creq: CollectionRequest, item_class: str, version: Version) -> dict[str, Any] | None:
    """The parsed Options for the collection's own class (an SMS Options is not ours)."""
    for node in creq.options:
        klass = node.findtext(A.Class)
        if klass in (None, item_class):
            return parse_body_options(node, version, default_class=item_class)
    return None


async def _collection(ctx: Context, creq: CollectionRequest, budget: int | None) -> _Result:
    cid = creq.collection_id
    key_text = creq.sync_key
    result = _Result(cid, key_text if key_text is not None and hier.parse_key(key_text) is not None else "0")
    if creq.error:
        result.status = PROTOCOL_ERROR
        return result
    folder = await hier.collection_folder(ctx, cid)
    if folder is None:
        result.status = HIERARCHY_CHANGED
        return result
    item_class = folder.item_class or "Email"
    result.item_class = folder.item_class
    result.backend_id = folder.backend_id
    if creq.supported is not None and item_class == "Notes":  # MS-ASNOTE 3.2.5.3
        result.status = PROTOCOL_ERROR
        return result
    try:
        options = _choose_options(creq, item_class, ctx.version)
        if options is not None:
            check_filter_type(options, item_class)
    except ProtocolError:
        result.status = PROTOCOL_ERROR
        return result
    state = await ctx.state.collection(cid)
    if key_text is None:  # from the cached request: the key last handed out
        if state is None or state.sync_key == 0:
            result.status = INCOMPLETE_REQUEST
            return result
        key_text = str(state.sync_key)
        result.sync_key = key_text
    key = hier.parse_key(key_text)
    try:
        if key == 0:
            return _initial(ctx, creq, folder, state, options, result)
        if state is None or state.backend_id != folder.backend_id:
            return await _invalid_key(ctx, state, result)
        dirty = repeated = False
        if key == state.sync_key:
            pass
        elif key is not None and key == state.previous_key:  # not .previous: that builds its snapshot
            state.rewind()
            dirty = repeated = True
        else:
            return await _invalid_key(ctx, state, result)
        if options is not None:
            options["conversation_mode"] = state.options.get("conversation_mode", False)
            if "supported" in state.options:  # set at SyncKey 0 only
                options["supported"] = state.options["supported"]
            dirty = dirty or options != state.options
            state.options = options
        elif not state.options:
            state.options = parse_body_options(None, ctx.version, default_class=item_class)
            dirty = True
        if creq.conversation_mode is not None and state.options.get("conversation_mode") != creq.conversation_mode:
            state.options["conversation_mode"] = creq.conversation_mode
            dirty = True
        result.options = state.options
        await _normal(ctx, creq, folder, state, result, budget, dirty, repeated)
    except FolderNotFound:
        result.status = HIERARCHY_CHANGED
    except ServiceUnavailable:
        result.status = RETRY
    except BackendError:
        log.exception("Sync of collection %s failed", cid)
        result.status = SERVER_ERROR
    if result.status != OK:
        result.commands, result.more = [], False
    return result


def _initial(ctx: Context, creq: CollectionRequest, folder: hier.CollectionFolder, state: CollectionState | None,
             options: dict[str, Any] | None, result: _Result) -> _Result:
    """SyncKey 0: a clean state under the next key, no items yet (2.2.3.181.4). The state
    the key had stays valid as the previous one: iOS sends a second initial Sync of a
    folder while the first is in flight, or even after it went on with the first one's
    key (Z-Push PR 186); whichever key it then keeps, it goes on from what it has."""
    if state is None:
        state = CollectionState(folder.collection_id, folder.backend_id)
    if state.backend_id != folder.backend_id:  # another folder under this id: nothing to keep
        _reset(state)
    state.backend_id = folder.backend_id
    state.options = options or parse_body_options(None, ctx.version, default_class=folder.item_class or "Email")
    if creq.conversation_mode is not None:
        state.options["conversation_mode"] = creq.conversation_mode
    if creq.supported is not None and folder.item_class in _GHOSTING:
        attributes = codec(folder.item_class).ATTRIBUTES
        state.options["supported"] = sorted({tag for tag in creq.supported if tag in attributes})
    state.advance()
    state.snapshot = {}
    state.client_ids = {}
    state.extra = {}
    ctx.state.put_collection(state)
    loops.forget(ctx.state.device, state.collection_id)  # a full resync sends them again
    result.sync_key = str(state.sync_key)
    result.key_changed = True
    result.options = state.options
    return result


async def _invalid_key(ctx: Context, state: CollectionState | None, result: _Result) -> _Result:
    """Status 3: the device starts this collection over with SyncKey 0."""
    result.status = INVALID_SYNC_KEY
    result.sync_key = "0"
    if state is not None:
        _reset(state)
        state.sync_key += 1  # the key the device had is no longer valid either
        ctx.state.put_collection(state)
    _forget(ctx, await ctx.state.cache(), result.collection_id)
    return result


async def _normal(ctx: Context, creq: CollectionRequest, folder: hier.CollectionFolder, state: CollectionState,
                  result: _Result, budget: int | None, dirty: bool, repeated: bool) -> None:
    request_key = state.sync_key
    skip: str | None = None
    if ctx.config.loop_detection:
        had_loop = "loop" in state.extra
        skip = loops.observe(state, repeated, ctx.config.loop_strikes)
        dirty = dirty or had_loop or "loop" in state.extra
    applied = False
    if creq.commands is not None:
        applied = await _client_commands(ctx, creq, folder, state, result)
    sent: list[tuple[str, str, str]] = []  # (kind, backend item id, stamp)
    get_changes = True if creq.get_changes is None else creq.get_changes
    if get_changes and supported_class(folder.item_class, ctx.version):
        window = _window(ctx, creq.window_size) if creq.window_size is not None else min(
            ctx.config.default_window_size, ctx.config.max_window_size)
        if budget is not None:
            window = min(window, budget)
        if ctx.config.loop_detection:
            window = min(window, loops.window(state, window))
        plan, total = await pending_changes(ctx, folder.backend_id, state.snapshot, filter_type_of(state.options),
                                            window + 1 if skip else window)
        if skip:
            plan, total = _skip(ctx, folder, state, plan, total, skip)
            plan = plan[:window]
            applied = True
        result.more = total > window
        sent = await _server_changes(ctx, folder, state, plan, result)
    if applied or sent or result.unreadable:
        state.advance()
        snapshot = state.snapshot
        for kind, item, stamp in sent:
            if kind in ("Add", "Change"):
                snapshot[item] = stamp
            else:
                snapshot.pop(item, None)
        result.key_changed = True
        dirty = True
    if ctx.config.loop_detection:
        loops.sent(state, request_key, [item for _, item, _ in sent], result.more)
    if dirty:
        ctx.state.put_collection(state)
    result.sync_key = str(state.sync_key)


def _skip(ctx: Context, folder: hier.CollectionFolder, state: CollectionState, plan: list[tuple[str, str, str]],
          total: int, item: str) -> tuple[list[tuple[str, str, str]], int]:
    """Loop detection decided the device chokes on ``item``: take it out of the plan."""
    for entry in plan:
        kind, candidate, stamp = entry
        if candidate == item:
            loops.skip(state, ctx.state.device, kind, item, stamp, server_id(folder.collection_id, item),
                       folder.item_class or "Email")
            log.warning("Sync loop: %s of %s skipped for device %s", kind, item, ctx.state.device.device_id)
            return [e for e in plan if e is not entry], total - 1
    return plan, total  # it changed or went meanwhile: nothing to skip


async def _fetch(ctx: Context, folder: hier.CollectionFolder, ids: list[str], options: dict[str, Any]) -> dict[str, Any]:
    """The items by id: mails with their MIME bytes where the options will send them, or
    the calendar, contact, task or note items."""
    if not ids:
        return {}
    backend_id = folder.backend_id
    if folder.item_class not in (None, "Email"):
        return {item.id: item for item in await ctx.backend.fetch_items(ctx.user, backend_id, ids)}
    mode = mime_mode(options, ctx.version)
    emails = await ctx.backend.fetch_emails(ctx.user, backend_id, ids, mime=mode == 2)
    found: dict[str, Any] = {e.id: e for e in emails}
    if mode == 1:
        smime = [e.id for e in emails if is_smime(e)]
        if smime:
            for e in await ctx.backend.fetch_emails(ctx.user, backend_id, smime, mime=True):
                found[e.id] = e
    return found


async def _fetch_readable(ctx: Context, folder: hier.CollectionFolder, state: CollectionState,
                          chosen: list[tuple[str, str, str]]) -> dict[str, Any]:
    """The chosen items one by one: an item the backend fails to read (corrupt data, a
    bug in a converter) is skipped as loop detection skips one, recorded on the device
    with the error for the admin (``eas device skipped``), and goes out again when it
    changes."""
    items: dict[str, Any] = {}
    for kind, item, stamp in chosen:
        if kind not in ("Add", "Change"):
            continue
        try:
            items.update(await _fetch(ctx, folder, [item], state.options))
        except BackendError:
            raise
        except Exception as e:
            log.exception("Sync of %s: item %s cannot be read; skipped until it changes", ctx.user, item)
            loops.skip(state, ctx.state.device, kind, item, stamp, server_id(folder.collection_id, item),
                       folder.item_class or "Email", f"the backend could not read it ({type(e).__name__}: {e})"[:300])
    return items


async def _server_changes(ctx: Context, folder: hier.CollectionFolder, state: CollectionState,
                          chosen: list[tuple[str, str, str]], result: _Result) -> list[tuple[str, str, str]]:
    """Turn the chosen changes into response commands; returns what was actually sent (an
    item gone between listing and fetching is left for the next Sync). An item loop
    detection skipped as an Add goes out as an Add when it changes, and its Delete is not
    sent (the device never had it)."""
    cid = folder.collection_id
    wanted = [item for kind, item, _ in chosen if kind in ("Add", "Change")]
    unreadable: set[str] = set()
    try:
        items = await _fetch(ctx, folder, wanted, state.options)
    except BackendError:
        raise
    except Exception:  # one unreadable item must not stop the folder's sync for good
        log.exception("Sync of %s: fetching %d items failed; fetching them one by one", ctx.user, len(wanted))
        items = await _fetch_readable(ctx, folder, state, chosen)
        unreadable = set(wanted) - set(items)
        result.unreadable = len(unreadable)
    skipped: dict[str, str] = state.extra.get("skipped") or {}
    sent: list[tuple[str, str, str]] = []
    commands = result.commands
    for kind, item, stamp in chosen:
        if item in unreadable:
            continue  # skipped by _fetch_readable: as if sent, and recorded
        if item in skipped:
            del skipped[item]
            loops.forget(ctx.state.device, cid, item)
            if kind != "Change":
                sent.append((kind, item, stamp))  # out of the snapshot, and no command
                continue
            kind = "Add"
        if kind in ("Delete", "SoftDelete"):
            commands.append((kind, server_id(cid, item), None))
        else:
            found = items.get(item)
            if found is None:
                continue
            commands.append((kind, server_id(cid, item), found))
        sent.append((kind, item, stamp))
    if not skipped:
        state.extra.pop("skipped", None)
    return sent


async def _client_commands(ctx: Context, creq: CollectionRequest, folder: hier.CollectionFolder,
                           state: CollectionState, result: _Result) -> bool:
    """Apply the device's Add/Change/Delete/Fetch (2.2.3.32); the Responses element gets
    successful Adds and Fetches and every failure (2.2.3.154). True if state changed."""
    assert creq.commands is not None
    applied = False
    current: dict[str, str] | None = None  # the folder's stamps, for conflict detection
    cid = folder.collection_id
    responses = result.responses
    for cmd in creq.commands.children:
        if cmd.tag == A.Add:
            client_id = str(cmd.findtext(A.ClientId))
            status, sid = await _client_add(ctx, cmd, folder, state, client_id)
            uid = await _new_uid(ctx, folder, sid) if status == OK else None
            responses.append(("Add", client_id, sid, status, uid))
            applied = applied or (status == OK and sid is not None)
            continue
        sid = str(cmd.findtext(A.ServerId))
        parsed = split_server_id(sid)
        item = parsed[1] if parsed is not None and parsed[0] == cid else None
        if cmd.tag == A.Fetch:
            found = None
            if item is not None and item in state.snapshot:
                found = (await _fetch(ctx, folder, [item], state.options)).get(item)
            responses.append(("Fetch", sid, OK if found else OBJECT_NOT_FOUND, found))
            continue
        name = _NAMES[cmd.tag]
        instance_node = cmd.find(B.InstanceId)  # 16.x: one occurrence of a recurring event
        instance = instance_node.text if instance_node is not None else None
        when = None
        if instance_node is not None:
            try:
                if folder.item_class != "Calendar" or not ctx.has(B.InstanceId):
                    raise ProtocolError("InstanceId names an occurrence of an event")
                when = parse_date(instance)
            except ProtocolError:
                responses.append((name, sid, PROTOCOL_ERROR, instance))
                continue
        if item is None or item not in state.snapshot:
            responses.append((name, sid, OBJECT_NOT_FOUND, instance))
            continue
        if cmd.tag == A.Delete:
            status = await _client_delete(ctx, creq, folder, state, item, when)
            if status != OK:
                responses.append(("Delete", sid, status, instance))
            applied = True
            continue
        # Change
        data = cmd.find(A.ApplicationData)
        if data is None:
            continue
        try:
            change = _parse_change(ctx, folder, data, when)
        except (ProtocolError, ValueError):
            responses.append(("Change", sid, CONVERSION_ERROR, instance))
            continue
        if state.options.get("conflict", 1) != 0:  # the server's object wins (2.2.3.34)
            if current is None:
                current = await ctx.backend.item_stamps(ctx.user, folder.backend_id)
            if item not in current:
                responses.append(("Change", sid, OBJECT_NOT_FOUND, instance))
                continue
            if current[item] != state.snapshot[item]:
                # Status 7; the snapshot keeps the old stamp, so the server's version goes
                # out as a Change in this same response.
                responses.append(("Change", sid, CONFLICT, instance))
                continue
        try:
            if isinstance(change, EmailChange):
                stamp = await ctx.backend.change_email(ctx.user, folder.backend_id, item, change)
            else:
                merged = await _merged(ctx, folder, state, item, change, data, when)
                stamp = await ctx.backend.change_item(ctx.user, folder.backend_id, item, merged)
        except ItemNotFound:
            responses.append(("Change", sid, OBJECT_NOT_FOUND, instance))
            continue
        except ProtocolError:  # the merged item is not one (an event ending before it starts)
            responses.append(("Change", sid, CONVERSION_ERROR, instance))
            continue
        state.snapshot[item] = stamp
        if current is not None:
            current[item] = stamp
        applied = True
    return applied


_NAMES = {A.Change: "Change", A.Delete: "Delete", A.Fetch: "Fetch"}


def _parse_change(ctx: Context, folder: hier.CollectionFolder, data: Node, when: datetime | None) -> Any:
    """What a Change's ApplicationData says: flags of a mail, or a whole item of another
    class (for a 16.x calendar Change with InstanceId, one occurrence)."""
    if folder.item_class in (None, "Email"):
        return parse_email_change(data, ctx.version)
    if not supported_class(folder.item_class, ctx.version):
        raise ProtocolError(f"no {folder.item_class} items in {ctx.version}")
    if folder.item_class == "Calendar":  # a Change may leave StartTime out
        item = codec("Calendar").parse(data, ctx.version, change=True)
    else:
        item = codec(folder.item_class).parse(data, ctx.version)
    if when is not None:
        item.instance_id = when
    return item


# The classes a Supported element applies to (MS-ASCMD 2.2.3.179).
_GHOSTING = ("Calendar", "Contacts")
# What a task or note Change may leave out without deleting it: "the absence of Body or
# Subject is not an implicit delete" (MS-ASNOTE 3.2.5.3; the Body of a task likewise,
# MS-ASTASK 3.2.5.3); every other element left out is deleted.
_NOT_DELETED = {"Tasks": frozenset({T.Body, B.Body}), "Notes": frozenset({N.Subject, B.Body})}


def _ghosted(item_class: str, options: dict[str, Any], version: Version) -> frozenset[int] | None:
    """The elements that keep their stored value when a Change leaves them out (None:
    all). 16.x calendar: every top-level element (MS-ASCAL 3.1.5.3). Calendar and contacts
    otherwise: those the initial Sync's Supported did not name; without Supported none,
    so what a Change leaves out is cleared (MS-ASCMD 2.2.3.179). Tasks and notes: their
    body (and a note's subject)."""
    if item_class == "Calendar" and version >= _V16:
        return None
    if item_class in _NOT_DELETED:
        return _NOT_DELETED[item_class]
    supported = options.get("supported")
    if item_class not in _GHOSTING or supported is None:
        return frozenset()
    return pim.ghosted(codec(item_class).ATTRIBUTES, supported)


async def _merged(ctx: Context, folder: hier.CollectionFolder, state: CollectionState, item: str, new: Any,
                  data: Node, when: datetime | None) -> Any:
    """The stored item as a device's Change leaves it: the device's values over the
    stored ones for what it sent, the ghosted elements it left out as stored, and the
    stored body when the device echoes a truncated one. With a 16.x InstanceId, over the
    occurrence as it stands (its exception, else the series). ``ItemNotFound``;
    ``ProtocolError`` (status 6) when the result is not a valid item."""
    found = await ctx.backend.fetch_items(ctx.user, folder.backend_id, [item])
    if not found:
        raise ItemNotFound(item)
    old = found[0]
    if when is not None and isinstance(old, calendar.Calendar):
        old = calendar.occurrence(old, when)
    stored = max(old.body, getattr(old, "body_html", None) or "", key=len)
    keep_body = pim.echoes_truncation(data, stored, state.options)
    item_class = str(folder.item_class)
    return codec(item_class).merge_change(old, new, _ghosted(item_class, state.options, ctx.version),
                                          keep_body=keep_body)


async def _client_delete(ctx: Context, creq: CollectionRequest, folder: hier.CollectionFolder,
                         state: CollectionState, item: str, when: datetime | None) -> int:
    """A device's Delete: the item (to Deleted Items unless DeletesAsMoves is 0), or with
    a 16.x InstanceId one occurrence of a recurring event."""
    if when is not None:
        try:
            state.snapshot[item] = await ctx.backend.delete_occurrence(ctx.user, folder.backend_id, item, when)
        except ItemNotFound:
            return OBJECT_NOT_FOUND
        return OK
    permanently = not creq.deletes_as_moves or folder.type == FolderType.DELETED_ITEMS
    status = OK
    try:
        await ctx.backend.delete_item(ctx.user, folder.backend_id, item, permanently=permanently)
    except ItemNotFound:
        status = OBJECT_NOT_FOUND
    state.snapshot.pop(item, None)
    return status


async def _new_uid(ctx: Context, folder: hier.CollectionFolder, sid: str | None) -> str | None:
    """The UID the server gave a device's new event: from 16.0 devices send none, and the
    Add's response carries it (MS-ASCAL 2.2.2.46)."""
    parsed = split_server_id(sid or "")
    if folder.item_class != "Calendar" or ctx.version < _V16 or parsed is None:
        return None
    found = await ctx.backend.fetch_items(ctx.user, folder.backend_id, [parsed[1]])
    return getattr(found[0], "uid", None) or None if found else None


async def _same_event(ctx: Context, folder: hier.CollectionFolder, item: Any) -> str | None:
    """The id of the event of this folder with the UID of an event a device adds, if any:
    devices re-add their events after a reset, and an event is one per UID (RFC 5545)."""
    uid = getattr(item, "uid", "") if folder.item_class == "Calendar" else ""
    found = await ctx.backend.find_event(ctx.user, uid) if uid else None
    return found[1] if found is not None and found[0] == folder.backend_id else None


async def _client_add(ctx: Context, cmd: Node, folder: hier.CollectionFolder, state: CollectionState,
                      client_id: str) -> tuple[int, str | None]:
    """A device's Add: ``(status, ServerId)``. Mail can be added only as a 16.x draft in
    the Drafts folder (MS-ASEMAIL 3.1.5.3.6), the other classes anywhere; a ClientId
    already answered is answered again with its ServerId instead of being added twice."""
    known = state.client_ids.get(client_id)
    if known is not None:
        return OK, known
    mail = folder.item_class in (None, "Email")
    if mail and (ctx.version < _V16 or folder.type != FolderType.DRAFTS):
        return CONVERSION_ERROR, None
    if not supported_class(folder.item_class, ctx.version):
        return CONVERSION_ERROR, None
    data = cmd.find(A.ApplicationData)
    if data is None:
        return PROTOCOL_ERROR, None
    try:
        if mail:
            mime = draft_mime(data, ctx.version, ctx.user)
        else:
            new = codec(str(folder.item_class)).parse(data, ctx.version)
    except (ProtocolError, ValueError):
        return CONVERSION_ERROR, None
    try:
        if mail:
            item, stamp = await ctx.backend.add_email(ctx.user, folder.backend_id, mime, read=True, is_draft=True)
        else:
            known_event = await _same_event(ctx, folder, new)
            if known_event is not None:  # sent again after the device lost track of it: one event
                item, stamp = known_event, await ctx.backend.change_item(ctx.user, folder.backend_id, known_event, new)
            else:
                item, stamp = await ctx.backend.add_item(ctx.user, folder.backend_id, new)
    except QuotaExceeded:
        return CANNOT_COMPLETE, None
    except FolderNotFound:
        raise  # the whole collection: status 12
    except BackendError:  # the backend refuses this item (an event UID of another calendar, ...)
        log.exception("Sync Add to collection %s failed", folder.collection_id)
        return SERVER_ERROR, None
    sid = server_id(folder.collection_id, item)
    state.snapshot[item] = stamp
    ids = state.client_ids
    ids[client_id] = sid
    while len(ids) > _CLIENT_IDS_KEPT:  # the oldest first (dicts keep insertion order)
        del ids[next(iter(ids))]
    return OK, sid


# -- the response ----------------------------------------------------------------------------


def _respond(ctx: Context, results: list[_Result]) -> HTTPResponse:
    """From 12.1 a collection with nothing to say is left out, and a response with no
    collection left is empty (2.2.1.21.2); 2.5 and 12.0 always get every collection."""
    version = ctx.version
    replay = version >= _V121
    shown = [r for r in results if not (replay and r.quiet)]
    if not shown:
        return ctx.respond()  # 2.2.1.21.2: the empty Sync response
    with_class = has_tag(A.Class, version) and version < _V14
    w = Writer()
    leaf = w.leaf
    with w.tag(A.Sync), w.tag(A.Collections):
        for r in shown:
            with w.tag(A.Collection):
                if with_class and r.item_class:
                    leaf(A.Class, r.item_class)
                leaf(A.SyncKey, r.sync_key)
                leaf(A.CollectionId, r.collection_id)
                leaf(A.Status, r.status)
                if r.responses:
                    _write_responses(w, r, version)
                if r.more:
                    w.empty(A.MoreAvailable)
                if r.commands:
                    _write_commands(w, r, version)
    return ctx.respond(w)


def write_item(w: Writer, item_class: str | None, item: Any, version: Version, options: dict[str, Any]) -> None:
    """An item's ApplicationData (or ItemOperations Properties) children, by its class."""
    if item_class in (None, "Email"):
        write_email(w, item, version, options)
    else:
        codec(item_class).write(w, item, version, options)


def _write_responses(w: Writer, r: _Result, version: Version) -> None:
    with w.tag(A.Responses):
        for entry in r.responses:
            kind = entry[0]
            if kind == "Add":
                _, client_id, sid, status, uid = entry
                with w.tag(A.Add):
                    w.leaf(A.ClientId, client_id)
                    if sid is not None:
                        w.leaf(A.ServerId, sid)
                    w.leaf(A.Status, status)
                    if uid:
                        with w.tag(A.ApplicationData):
                            w.leaf(CAL.UID, uid)
            elif kind == "Fetch":
                _, sid, status, item = entry
                with w.tag(A.Fetch):
                    w.leaf(A.ServerId, sid)
                    w.leaf(A.Status, status)
                    if item is not None:
                        with w.tag(A.ApplicationData):
                            write_item(w, r.item_class, item, version, _untruncated(r.options))
            else:
                _, sid, status, instance = entry
                with w.tag(A.Change if kind == "Change" else A.Delete):
                    w.leaf(A.ServerId, sid)
                    if isinstance(instance, str) and len(instance) <= _MAX_ID and has_tag(B.InstanceId, version):
                        w.leaf(B.InstanceId, instance)  # MS-ASAIRS 2.2.2.25: with the ServerId
                    w.leaf(A.Status, status)


def _untruncated(options: dict[str, Any]) -> dict[str, Any]:
    """Fetch asks for the whole item (2.2.3.67.2): the options without truncation."""
    out = dict(options)
    out["truncation"] = out["mime_truncation"] = None
    out["body_preferences"] = [dict(p, truncation_size=None) for p in options.get("body_preferences", [])]
    return out


def _write_commands(w: Writer, r: _Result, version: Version) -> None:
    options = r.options
    tag = w.tag
    leaf = w.leaf
    mail = r.item_class in (None, "Email")
    with tag(A.Commands):
        for kind, sid, item in r.commands:
            if kind == "Add":
                with tag(A.Add):
                    leaf(A.ServerId, sid)
                    with tag(A.ApplicationData):
                        write_item(w, r.item_class, item, version, options)
            elif kind == "Change":
                with tag(A.Change):
                    leaf(A.ServerId, sid)
                    with tag(A.ApplicationData):
                        if mail and not item.is_draft:  # a delivered mail's content cannot change
                            write_email_flags(w, item, version)
                        else:
                            write_item(w, r.item_class, item, version, options)
            else:
                with tag(A.SoftDelete if kind == "SoftDelete" else A.Delete):
                    leaf(A.ServerId, sid)
