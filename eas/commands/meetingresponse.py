"""MeetingResponse (MS-ASCMD 2.2.1.11): accept, tentatively accept or decline a meeting
request in a mail folder (the invitation) or in a calendar (the event).

Per Request, in this order:

1. the meeting: the invitation mail (``Email.meeting_request``; only a request, not a
   cancellation) or the event, by CollectionId + RequestId or by search:LongId; 14.1+
   InstanceId names one occurrence;
2. the user's event, found by UID (``find_event``), else added to the default Calendar
   from the invitation; its ResponseType and BusyStatus become the answer's (tentative 1,
   accept 2, as Exchange shows it); a decline removes it (one occurrence with
   InstanceId), as Exchange does, so there is no CalendarId;
3. 16.x with SendResponse: the server sends the iMIP REPLY (a COUNTER with 16.1's
   ProposedStartTime/EndTime) to the organizer, unless the meeting asked for no response.
   Before 16.0 the device sends its own reply through SendMail, so the server sends none;
4. the invitation leaves the Inbox for Deleted Items (the device learns it at its next
   Sync).

Result Status (MS-ASCMD 2.2.3.177.8): 1 success, 2 invalid meeting request (unknown or
malformed ids, not a meeting, an InstanceId the version lacks), 3 mailbox error, 4 server
error. A request resent with the same ids and answer gets the first result again (kept in
the device cache under ``meeting_responses``): a device resends when the answer was lost,
and the invitation is no longer where it was.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eas.backend import BackendError, FolderType, ItemNotFound
from eas.commands import text
from eas.context import Context
from eas.hierarchy import folder_class
from eas.items import meeting as imip
from eas.items import server_id, split_server_id
from eas.items.calendar import Calendar
from eas.items.email import parse_date
from eas.protocol.errors import ProtocolError
from eas.protocol.http import HTTPResponse
from eas.tags import AirSyncBase, Search
from eas.tags import Email as E
from eas.tags import MeetingResponse as MR
from eas.wbxml import Node, Writer

log = logging.getLogger(__name__)

SUCCESS, INVALID, MAILBOX_ERROR, SERVER_ERROR = 1, 2, 3, 4
MAX_REQUESTS = 100
CACHE_KEY = "meeting_responses"
REMEMBERED = 100
# UserResponse -> (Calendar ResponseType, BusyStatus, AttendeeStatus); MS-ASCAL 2.2.2.37, 2.2.2.4.
_ANSWER = {imip.ACCEPT: (3, 2, 3), imip.TENTATIVE: (2, 1, 2), imip.DECLINE: (4, 0, 4)}


class _Invalid(Exception):
    """Ends one Request with status 2."""


@dataclass(slots=True)
class _Result:
    request_id: str
    status: int
    calendar_id: str = ""


async def handle(ctx: Context) -> HTTPResponse:
    body = ctx.body
    if body is None or body.tag != MR.MeetingResponse:
        raise ProtocolError("the request is not a MeetingResponse")
    requests = body.findall(MR.Request)
    if not requests or len(requests) > MAX_REQUESTS or len(requests) != len(body.children):
        raise ProtocolError(f"MeetingResponse needs 1 to {MAX_REQUESTS} Request elements and nothing else")
    results = [await _respond(ctx, request) for request in requests]
    w = Writer()
    with w.tag(MR.MeetingResponse):
        for r in results:
            with w.tag(MR.Result):
                if r.request_id:
                    w.leaf(MR.RequestId, r.request_id)
                w.leaf(MR.Status, r.status)
                if r.calendar_id:
                    w.leaf(MR.CalendarId, r.calendar_id)
    return ctx.respond(w)


async def _respond(ctx: Context, node: Node) -> _Result:
    request_id = text(node.find(MR.RequestId))
    key = "|".join((text(node.find(MR.UserResponse)), text(node.find(MR.CollectionId)), request_id,
                    text(node.find(Search.LongId)), text(node.find(MR.InstanceId))))
    cache = await ctx.state.cache()
    for entry in _entries(cache):
        if entry[0] == key:
            return _Result(request_id, int(entry[1]), str(entry[2]))
    try:
        result = _Result(request_id, SUCCESS, await _apply(ctx, node))
    except _Invalid as e:
        log.info("MeetingResponse refused: %s", e)
        return _Result(request_id, INVALID)
    except BackendError as e:
        log.warning("MeetingResponse failed in the mailbox: %s", e)
        return _Result(request_id, MAILBOX_ERROR)
    except Exception:  # one Request's failure is its status, not the whole command's
        log.exception("MeetingResponse failed")
        return _Result(request_id, SERVER_ERROR)
    entries = [e for e in _entries(cache) if e[0] != key]
    entries.append([key, result.status, result.calendar_id])
    cache[CACHE_KEY] = entries[-REMEMBERED:]
    ctx.state.cache_changed()
    return result


def _entries(cache: dict[str, Any]) -> list[list[Any]]:
    raw = cache.get(CACHE_KEY)
    return [e for e in raw if isinstance(e, list) and len(e) == 3] if isinstance(raw, list) else []


async def _apply(ctx: Context, node: Node) -> str:
    """Carry out one Request; the CalendarId ("" for a decline). ``_Invalid`` for status 2."""
    answer = text(node.find(MR.UserResponse))
    if answer not in ("1", "2", "3"):
        raise _Invalid("UserResponse must be 1, 2 or 3")
    response = int(answer)
    instance = _instance(ctx, node)
    folder, item_id, kind = await _source(ctx, node)
    if kind == "Email":
        mails = await ctx.backend.fetch_emails(ctx.user, folder, [item_id])
        if not mails or mails[0].meeting_request is None or mails[0].message_class != imip.REQUEST:
            raise _Invalid("not a meeting request")
        invitation = mails[0].meeting_request
        found = await ctx.backend.find_event(ctx.user, invitation.uid) if invitation.uid else None
    else:
        events = [e for e in await ctx.backend.fetch_items(ctx.user, folder, [item_id]) if isinstance(e, Calendar)]
        # A cancelled meeting (7) can only be declined: that takes it off the calendar.
        if not events or events[0].meeting_status not in ((3, 7) if response == imip.DECLINE else (3,)):
            raise _Invalid("not a meeting the user was invited to")
        invitation, found = events[0], (folder, item_id)
    if instance is None:
        instance = invitation.instance_id
    elif invitation.recurrence is None and invitation.instance_id is None:
        raise _Invalid("InstanceId for a meeting that does not recur")
    reply = _reply(ctx, node, response)

    calendar_id = await _update_calendar(ctx, invitation, found, response, instance)
    if reply is not None and invitation.organizer_email and invitation.response_requested is not False \
            and invitation.organizer_email.lower() != ctx.user.lower():
        info = await ctx.backend.user_information(ctx.user)
        reply.attendee_name = info.display_name
        occurrence = dataclasses.replace(invitation, instance_id=instance)
        await ctx.backend.send_mail(ctx.user, imip.reply_mime(occurrence, reply), save_in_sent=True)
    if kind == "Email":
        try:
            await ctx.backend.delete_item(ctx.user, folder, item_id, permanently=False)
        except ItemNotFound:
            pass  # gone meanwhile: nothing left to tidy
    return calendar_id


def _instance(ctx: Context, node: Node) -> datetime | None:
    found = node.find(MR.InstanceId)
    if found is None:
        return None
    if not ctx.has(MR.InstanceId):
        raise _Invalid("InstanceId is not in this protocol version")  # MS-ASCMD 2.2.3.88.1
    try:
        return parse_date(found.text)
    except ProtocolError:
        raise _Invalid("InstanceId is not a date") from None


async def _source(ctx: Context, node: Node) -> tuple[str, str, str]:
    """``(backend folder, item id, class)`` of the meeting the Request names."""
    collection_id = text(node.find(MR.CollectionId))
    long_id = text(node.find(Search.LongId))
    ref = long_id or text(node.find(MR.RequestId))
    parts = split_server_id(ref) if ref else None
    if parts is None:
        raise _Invalid("no RequestId or LongId")
    if not long_id and parts[0] != collection_id:
        raise _Invalid("the RequestId is not in that collection")
    hierarchy = await ctx.state.hierarchy()
    entry = hierarchy.folders.get(parts[0])
    kind = folder_class(entry.type) if entry is not None else None
    if entry is None or kind not in ("Email", "Calendar"):
        raise _Invalid("not a mail folder or calendar")
    return entry.backend_id, parts[1], kind


def _reply(ctx: Context, node: Node, response: int) -> imip.Reply | None:
    """What SendResponse (16.x) asks the server to send, or None."""
    send = node.find(MR.SendResponse)
    if send is None:
        return None
    if not ctx.has(MR.SendResponse):
        raise _Invalid("SendResponse is not in this protocol version")
    reply = imip.Reply(response=response, attendee_email=ctx.user)
    body = send.find(AirSyncBase.Body)
    if body is not None:
        reply.text = text(body.find(AirSyncBase.Data))
        reply.html = text(body.find(AirSyncBase.Type)) == "2"
    importance = text(send.find(E.Importance))
    if importance in ("0", "1", "2"):
        reply.importance = int(importance)
    start, end = send.find(MR.ProposedStartTime), send.find(MR.ProposedEndTime)
    if start is not None or end is not None:
        if start is None or end is None or response == imip.ACCEPT:
            raise _Invalid("a new time needs ProposedStartTime and ProposedEndTime, and no accept")
        try:
            proposed = parse_date(start.text), parse_date(end.text)
        except ProtocolError:
            raise _Invalid("ProposedStartTime/EndTime are not dates") from None
        if proposed[1] < proposed[0]:
            raise _Invalid("the proposed end is before its start")
        reply.proposed = proposed
    return reply


async def _update_calendar(ctx: Context, invitation: Calendar, found: tuple[str, str] | None, response: int,
                           instance: datetime | None) -> str:
    """Put the answer into the user's calendar; the CalendarId of the event ("" when
    declined)."""
    backend = ctx.backend
    if response == imip.DECLINE:
        if found is not None:
            if instance is not None:
                await backend.delete_occurrence(ctx.user, found[0], found[1], instance)
            else:
                await backend.delete_item(ctx.user, found[0], found[1], permanently=True)
        return ""
    if found is None:
        calendar = next((f.id for f in await backend.folders(ctx.user) if f.type == FolderType.CALENDAR), None)
        if calendar is None:
            raise BackendError("the user has no calendar")
        placeholder = _answered(invitation, imip.TENTATIVE if instance is not None else response, ctx.user)
        item_id, _ = await backend.add_item(ctx.user, calendar, dataclasses.replace(placeholder, instance_id=None))
        found = (calendar, item_id)
        if instance is None:
            return await _calendar_id(ctx, found)
    events = [e for e in await backend.fetch_items(ctx.user, found[0], [found[1]]) if isinstance(e, Calendar)]
    if not events:
        raise ItemNotFound("the event is gone")
    if instance is not None:
        occurrence = dataclasses.replace(events[0], recurrence=None, exceptions=[], instance_id=instance)
        if invitation.instance_id == instance:  # the invitation is about this occurrence: its times
            occurrence.start, occurrence.end = invitation.start, invitation.end
        else:
            exception = next((x for x in events[0].exceptions if x.original_start == instance), None)
            length = (events[0].end - events[0].start) if events[0].start and events[0].end else None
            occurrence.start = exception.start if exception and exception.start else instance
            occurrence.end = exception.end if exception and exception.end else \
                (occurrence.start + length if length is not None else None)
        await backend.change_item(ctx.user, found[0], found[1], _answered(occurrence, response, ctx.user))
    else:
        await backend.change_item(ctx.user, found[0], found[1], _answered(events[0], response, ctx.user))
    return await _calendar_id(ctx, found)


def _answered(event: Calendar, response: int, user: str) -> Calendar:
    """The event with the user's answer: ResponseType, BusyStatus, the user's
    AttendeeStatus and the reply time."""
    response_type, busy, attendee_status = _ANSWER[response]
    attendees = [dataclasses.replace(a, status=attendee_status) if a.email.lower() == user.lower() else a
                 for a in event.attendees]
    return dataclasses.replace(event, id="", response_type=response_type, busy_status=busy, attendees=attendees,
                               appointment_reply_time=datetime.now(UTC).replace(microsecond=0),
                               meeting_status=3)


async def _calendar_id(ctx: Context, found: tuple[str, str]) -> str:
    """The event's ServerId as the device knows it ("" in a calendar it has not synced)."""
    hierarchy = await ctx.state.hierarchy()
    collection = hierarchy.id_map.get(found[0])
    return server_id(collection, found[1]) if collection else ""
