"""Meeting mail at delivery: what Exchange's calendar attendant does with an iMIP message
(RFC 6047, RFC 5546) as it reaches a mailbox, so that the device finds the meeting in
its Calendar before anyone answers.

- REQUEST to anyone but its organizer (an attendee, a list member, someone it was
  forwarded to): the event goes into the default Calendar as not yet answered
  (ResponseType 5, BusyStatus tentative, MeetingStatus 3). A newer request for an event
  the user has (same UID, same organizer) replaces it, keeping the user's categories and
  reminder; the user's answer stays only when the start, end and recurrence did not
  change and the user had answered (an informational update; a "significant change",
  MS-OXOCAL 3.1.4.7.3.1, or a meeting not yet answered makes it a full one, tentative
  again). A request for one occurrence (RECURRENCE-ID) changes that occurrence.
- CANCEL from the organizer: the event is marked cancelled (MeetingStatus 7, free,
  "Canceled: " before the subject) and stays until the user removes it; a cancelled
  occurrence is taken out of the series.
- REPLY to the organizer: the replying attendee's AttendeeStatus in the organizer's event
  (accept 3, tentative 2, decline 4); replies from people not invited are ignored.

"Newer" is the DTSTAMP (RFC 5546 2.1.5 orders by SEQUENCE first, but the stored event
keeps no SEQUENCE; an organizer stamps every message it sends). Requests the recipient
organises, mail about unknown events, broken calendar parts: the calendar stays as it
is. Whatever happens here, the mail itself is delivered.

``scheduled`` is what ``ReferenceStore.deliver`` calls (``scheduled_async`` its
``send_mail``), before the mail is stored: the MeetingMessageType a request gets (new 1,
full update 2, informational 3, outdated 4) is recorded in the stored calendar part of
that mail (``eas.items.meeting.with_message_type``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from eas.backend import BackendError, FolderType, ItemNotFound
from eas.items import meeting
from eas.items.calendar import Attendee, Calendar, occurrence

if TYPE_CHECKING:
    from eas.store.mime import Parsed
    from eas.store.reference import ReferenceStore

log = logging.getLogger(__name__)

T = TypeVar("T")

NOT_RESPONDED, TENTATIVE, ACCEPTED, DECLINED = 5, 2, 3, 4  # ResponseType / AttendeeStatus (MS-ASCAL)
RECEIVED, RECEIVED_CANCELLED = 3, 7  # MeetingStatus (MS-ASCAL 2.2.2.29)
_CANCELED = "Canceled: "


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run one of the store's coroutines to its end from synchronous code (``deliver``,
    which may be called inside a running loop): the store's methods never suspend, their
    SQLite calls run inline (``eas.store.reference``)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a store method suspended")


def scheduled(store: ReferenceStore, user: str, parsed: Parsed) -> Parsed:
    """``parsed`` as delivered to ``user``, after its meeting (if any) was scheduled: for
    the synchronous ``deliver``."""
    return run_now(scheduled_async(store, user, parsed))


async def scheduled_async(store: ReferenceStore, user: str, parsed: Parsed) -> Parsed:
    """``scheduled`` for ``send_mail``'s local deliveries."""
    if parsed.meeting is None:
        return parsed
    kind = await schedule(store, user, parsed.meeting)
    return dataclasses.replace(parsed, meeting=meeting.with_message_type(parsed.meeting, kind))


async def schedule(store: ReferenceStore, user: str, ical: str) -> int | None:
    """Apply a meeting message delivered to ``user`` to the user's calendar: for a
    request, its MeetingMessageType (None: nothing decided, SEQUENCE tells)."""
    try:
        kind = meeting.method(ical)
        if kind not in ("REQUEST", "CANCEL", "REPLY"):
            return None
        event = meeting.read_invitation(ical, owner=user)
        if event is None or not event.uid:
            return None
        if kind == "REQUEST":
            return await _request(store, user.lower(), event)
        if kind == "CANCEL":
            await _cancel(store, user.lower(), event)
        else:
            await _reply(store, user.lower(), event)
    except BackendError as e:  # no such user (send_mail asks for every recipient), a full folder
        log.info("meeting mail for %s left the calendar as it was: %s", user, e)
    except Exception:  # mail from anyone: the calendar stays, the mail is delivered
        log.warning("meeting mail for %s left the calendar as it was", user, exc_info=True)
    return None


async def _stored(store: ReferenceStore, user: str, uid: str) -> tuple[str, str, Calendar] | None:
    """``(folder, item id, event)`` of the user's event with this UID."""
    found = await store.find_event(user, uid)
    if found is None:
        return None
    items = [e for e in await store.fetch_items(user, found[0], [found[1]]) if isinstance(e, Calendar)]
    return (found[0], found[1], items[0]) if items else None


async def _request(store: ReferenceStore, user: str, invitation: Calendar) -> int | None:
    organizer = invitation.organizer_email.lower()
    if not organizer or organizer == user:
        return None  # no self-invitation: the organizer's event is her own
    stored = await _stored(store, user, invitation.uid)
    if stored is None:
        calendar = next((f.id for f in await store.folders(user) if f.type == FolderType.CALENDAR), None)
        if calendar is None:
            return None
        await store.add_item(user, calendar, _unanswered(invitation, instance_id=None))
        return meeting.NEW_REQUEST
    folder, item_id, old = stored
    if old.organizer_email.lower() != organizer:
        return None  # someone else's meeting under this UID: not theirs to change
    instance = invitation.instance_id if old.recurrence is not None else None
    current = old if instance is None else _occurrence(old, instance)
    if _older(invitation.dtstamp, current.dtstamp):
        return meeting.OUTDATED
    if invitation.dtstamp is not None and invitation.dtstamp == current.dtstamp:
        return None  # the same message again
    moved = _times(invitation) != _times(current) or (instance is None and _pattern(invitation) != _pattern(old))
    answered = current.response_type in (TENTATIVE, ACCEPTED) and current.meeting_status == RECEIVED
    new = _unanswered(invitation, instance_id=instance)
    new.categories = old.categories or new.categories  # the user's own
    new.reminder = old.reminder if old.reminder is not None else new.reminder
    keep = answered and not moved
    if keep:
        new.response_type, new.busy_status = current.response_type, current.busy_status
        new.appointment_reply_time = current.appointment_reply_time
        mine = next((a.status for a in current.attendees if a.email.lower() == user), None)
        new.attendees = [_with_status(a, mine) if a.email.lower() == user else a for a in new.attendees]
    try:
        await store.change_item(user, folder, item_id, new)
    except ItemNotFound:
        return None  # an occurrence the series does not have
    return meeting.INFORMATIONAL_UPDATE if keep else meeting.FULL_UPDATE


async def _cancel(store: ReferenceStore, user: str, cancel: Calendar) -> None:
    stored = await _stored(store, user, cancel.uid)
    if stored is None:
        return
    folder, item_id, old = stored
    organizer = old.organizer_email.lower()
    if not organizer or organizer == user or organizer != cancel.organizer_email.lower():
        return  # only the organizer cancels, and not in her own calendar
    instance = cancel.instance_id
    if instance is not None and old.recurrence is not None:
        if not _older(cancel.dtstamp, _occurrence(old, instance).dtstamp):
            try:
                await store.delete_occurrence(user, folder, item_id, instance)
            except ItemNotFound:
                pass  # no such occurrence (any more)
        return
    if old.meeting_status != RECEIVED or _older(cancel.dtstamp, old.dtstamp):
        return
    subject = old.subject if old.subject.startswith(_CANCELED) else _CANCELED + old.subject
    await store.change_item(user, folder, item_id, dataclasses.replace(
        old, id="", meeting_status=RECEIVED_CANCELLED, busy_status=0, subject=subject,
        dtstamp=cancel.dtstamp or old.dtstamp))


async def _reply(store: ReferenceStore, user: str, reply: Calendar) -> None:
    stored = await _stored(store, user, reply.uid)
    if stored is None:
        return
    folder, item_id, old = stored
    if (old.organizer_email.lower() or (user if old.meeting_status == 1 else "")) != user:
        return  # only the organizer's event keeps the answers
    answers = {a.email.lower(): a.status for a in reply.attendees if a.status in (TENTATIVE, ACCEPTED, DECLINED)}
    instance = reply.instance_id if old.recurrence is not None else None
    target = old if instance is None else _occurrence(old, instance)
    if not answers.keys() & {a.email.lower() for a in target.attendees}:
        return  # from no one invited
    attendees = [_with_status(a, answers.get(a.email.lower(), a.status)) for a in target.attendees]
    try:
        await store.change_item(user, folder, item_id, dataclasses.replace(target, id="", attendees=attendees))
    except ItemNotFound:
        pass  # an occurrence the series does not have


def _unanswered(invitation: Calendar, *, instance_id: datetime | None) -> Calendar:
    """The event of an invitation as it waits for the user's answer."""
    return dataclasses.replace(invitation, id="", instance_id=instance_id, response_type=NOT_RESPONDED,
                               busy_status=1, meeting_status=RECEIVED, appointment_reply_time=None,
                               message_type=None)


def _with_status(attendee: Attendee, status: int | None) -> Attendee:
    return dataclasses.replace(attendee, status=status) if status != attendee.status else attendee


def _older(new: datetime | None, old: datetime | None) -> bool:
    return new is not None and old is not None and new < old


def _times(event: Calendar) -> tuple[Any, ...]:
    return event.start, event.end, event.all_day


def _pattern(event: Calendar) -> Any:
    """The recurrence as far as a full update is concerned (not how it was stored)."""
    rec = event.recurrence
    return None if rec is None else dataclasses.replace(rec, calendar_type=None, first_day_of_week=None, start=None)


def _occurrence(series: Calendar, instance: datetime) -> Calendar:
    """One occurrence of a series as it stands (``calendar.occurrence``), with
    ``instance_id`` set and no id: what ``change_item`` takes for an occurrence."""
    return dataclasses.replace(occurrence(series, instance), id="", instance_id=instance)
