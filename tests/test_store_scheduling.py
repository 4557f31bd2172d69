"""Meeting mail at delivery (eas.store.scheduling): real iMIP mail delivered with
``store.deliver`` (or sent by a device) puts, updates and cancels the attendee's event,
and a reply updates the organizer's; the devices see it through Calendar Sync. Broken,
foreign and hostile meeting mail leaves the calendars alone and is still delivered."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from meeting_mail import ATTENDEE, ORGANIZER, UID, ical, mail, vevent
from test_sync import Device, body_options, cheap_scrypt, device, run, settle, since  # noqa: F401

from eas.items import meeting
from eas.items.calendar import Attendee, Calendar
from eas.store import ReferenceStore
from eas.tags import AirSync as A
from eas.tags import Calendar as C
from eas.tags import Email as E
from eas.tags import Email2 as E2
from eas.tags import MeetingResponse as MR
from eas.testing.harness import USERS
from eas.wbxml import Node

CAROL = "carol@example.net"
MR_NS = 'xmlns="MeetingResponse:" xmlns:b="AirSyncBase:"'


def stamped(event: str, when: str) -> str:
    """A VEVENT sent at another time (its DTSTAMP)."""
    return event.replace("DTSTAMP:20261130T090000Z", f"DTSTAMP:{when}")


async def events(store: ReferenceStore, user: str = ATTENDEE) -> list[Calendar]:
    folder = store.folder_id(user, "Calendar")
    found = await store.fetch_items(user, folder, sorted(await store.item_stamps(user, folder)))
    return [e for e in found if isinstance(e, Calendar)]


def data(node: Node) -> Node:
    found = node.find(A.ApplicationData)
    assert found is not None
    return found


async def meeting_mail(dev: Device, key: str | None = None) -> tuple[str, list[tuple[str, str | None]]]:
    """``(ServerId, MeetingMessageType)`` of every meeting request the Inbox's Sync brings
    from ``key`` (None: an initial Sync first), in delivery order; and the last key."""
    if key is None:
        key = await dev.initial("Inbox", body_options(dev.version))
    key, got = await dev.drain("Inbox", key)
    out = []
    for kind, sid, node in got:
        mr = data(node).find(E.MeetingRequest) if kind == "Add" else None
        if mr is not None:
            out.append((sid, mr.findtext(E2.MeetingMessageType)))
    return key, sorted(out, key=lambda m: int(m[0].rpartition(":")[2]))  # in delivery order


async def accept(dev: Device, sid: str) -> None:
    """Alice accepts the invitation ``sid`` in her Inbox."""
    reply = await dev.client.command(
        "MeetingResponse", f"<MeetingResponse {MR_NS}><Request><UserResponse>1</UserResponse>"
        f"<CollectionId>{dev.folders['Inbox']}</CollectionId><RequestId>{sid}</RequestId></Request>"
        "</MeetingResponse>")
    assert reply.node is not None and [r.findtext(MR.Status) for r in reply.node.findall(MR.Result)] == ["1"]


# -- REQUEST ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ("14.1", "16.1"))
def test_request_puts_a_tentative_event_in_the_calendar(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        dev.store.deliver(ATTENDEE, mail(ical("REQUEST")))
        _, adds = await settle(dev, "Calendar")
        [add] = adds.values()
        event = data(add)
        assert event.findtext(C.Subject) == "Planning"
        assert event.findtext(C.UID) == UID
        assert event.findtext(C.MeetingStatus) == "3"  # a meeting received
        assert event.findtext(C.BusyStatus) == "1"  # tentative until answered
        assert event.findtext(C.ResponseType) == "5"  # not responded
        assert event.findtext(C.OrganizerEmail) == ORGANIZER
        assert event.find(C.Recurrence) is not None
        # The invitation itself is in the Inbox, as before: a new request.
        _, found = await meeting_mail(dev)
        assert [t for _, t in found] == ["1"]

    run(scenario)


@pytest.mark.parametrize("version", ("14.1", "16.1"))
def test_accept_after_delivery_gives_one_event(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        dev.store.deliver(ATTENDEE, mail(ical("REQUEST")))
        key, adds = await settle(dev, "Calendar")
        [sid] = adds
        _, [(mail_sid, _)] = await meeting_mail(dev)
        await accept(dev, mail_sid)
        [event] = await events(dev.store)
        assert (event.uid, event.response_type, event.busy_status) == (UID, 3, 2)
        # The device sees its event change, not a second one.
        key, got = await dev.drain("Calendar", key)
        assert [(kind, s) for kind, s, _ in got] == [("Change", sid)]
        assert data(got[0][2]).findtext(C.ResponseType) == "3"

    run(scenario)


@pytest.mark.parametrize("version", ("14.1", "16.1"))
def test_updates(tmp_path: Path, version: str) -> None:
    """An accepted meeting stays accepted through an informational update (the location
    moves) and goes back to tentative when the time changes; an update older than the
    event changes nothing. MeetingMessageType says which was which."""
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        dev.store.deliver(ATTENDEE, mail(ical("REQUEST")))
        inbox_key, [(sid, _)] = await meeting_mail(dev)
        await accept(dev, sid)
        inbox_key, _ = await dev.drain("Inbox", inbox_key)  # the answered request left

        moved_room = stamped(vevent(sequence=1), "20261201T090000Z").replace("Room 1", "Room 2")
        dev.store.deliver(ATTENDEE, mail(ical("REQUEST", moved_room), message_id="<u1@example.com>"))
        [event] = await events(dev.store)
        assert (event.location, event.response_type, event.busy_status) == ("Room 2", 3, 2)
        me = next(a for a in event.attendees if a.email == ATTENDEE)
        assert me.status == 3  # still accepted

        later = stamped(vevent(sequence=2, start="20261202T140000", end="20261202T150000"), "20261202T090000Z")
        dev.store.deliver(ATTENDEE, mail(ical("REQUEST", later.replace("Room 1", "Room 2")),
                                         message_id="<u2@example.com>"))
        [event] = await events(dev.store)
        assert event.start is not None and event.start.isoformat() == "2026-12-02T13:00:00+00:00"
        assert (event.response_type, event.busy_status) == (5, 1)

        stale = stamped(vevent(sequence=1, start="20261202T080000", end="20261202T090000"), "20261201T120000Z")
        dev.store.deliver(ATTENDEE, mail(ical("REQUEST", stale), message_id="<u0@example.com>"))
        [event] = await events(dev.store)
        assert event.start.isoformat() == "2026-12-02T13:00:00+00:00"  # type: ignore[union-attr]

        _, found = await meeting_mail(dev, inbox_key)
        assert [t for _, t in found] == ["3", "2", "4"]  # informational, full, outdated
        # The device's calendar holds the one event with the latest times.
        _, adds = await settle(dev, "Calendar")
        [add] = adds.values()
        assert data(add).findtext(C.StartTime) == "20261202T130000Z"

    run(scenario)


def test_update_before_any_answer_is_a_full_one(tmp_path: Path) -> None:
    """Outlook: an update to a meeting not yet answered asks for an answer again."""
    async def scenario() -> None:
        dev = await device(tmp_path, "14.1")
        dev.store.deliver(ATTENDEE, mail(ical("REQUEST")))
        key, _ = await meeting_mail(dev)
        info = stamped(vevent(sequence=1), "20261201T090000Z").replace("Room 1", "Room 2")
        dev.store.deliver(ATTENDEE, mail(ical("REQUEST", info), message_id="<u1@example.com>"))
        _, found = await meeting_mail(dev, key)
        assert [t for _, t in found] == ["2"]
        [event] = await events(dev.store)
        assert (event.location, event.response_type) == ("Room 2", 5)

    run(scenario)


def test_request_for_one_occurrence(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "16.1")
        dev.store.deliver(ATTENDEE, mail(ical("REQUEST")))
        _, [(sid, _)] = await meeting_mail(dev)
        await accept(dev, sid)
        one = stamped(vevent(recurrence_id="20261209T100000", start="20261209T120000", end="20261209T130000",
                             sequence=1), "20261201T090000Z")
        dev.store.deliver(ATTENDEE, mail(ical("REQUEST", one), message_id="<o1@example.com>"))
        [event] = await events(dev.store)
        assert event.recurrence is not None and event.response_type == 3  # the series as it was
        [moved] = [x for x in event.exceptions if not x.deleted]
        assert moved.original_start.isoformat() == "2026-12-09T09:00:00+00:00"
        assert moved.start is not None and moved.start.isoformat() == "2026-12-09T11:00:00+00:00"
        assert moved.response_type == 5  # that occurrence's time moved: to be answered again
        # Its mail is answered as usual: the same event, that occurrence accepted.
        _, found = await meeting_mail(dev)
        [(update_sid, _)] = [m for m in found if m[0] != sid]
        await accept(dev, update_sid)
        [event] = await events(dev.store)
        [moved] = [x for x in event.exceptions if not x.deleted]
        assert moved.response_type in (None, 3) and event.response_type == 3  # None: as the series
        assert moved.start is not None and moved.start.isoformat() == "2026-12-09T11:00:00+00:00"

    run(scenario)


def test_reply_for_one_occurrence(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "16.1")
        await organizer_event(dev.store, series=True)
        declined = vevent(recurrence_id="20261209T100000", start="20261209T100000", end="20261209T110000").replace(
            f"PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{CAROL}", f"PARTSTAT=DECLINED:mailto:{CAROL}")
        dev.store.deliver(ORGANIZER, mail(ical("REPLY", declined), sender=CAROL, to=ORGANIZER))
        [event] = await events(dev.store, ORGANIZER)
        assert {a.email: a.status for a in event.attendees} == {ATTENDEE: 5, CAROL: 5}  # the series as it was
        [one] = event.exceptions
        assert one.original_start.isoformat() == "2026-12-09T09:00:00+00:00" and one.attendees is not None
        assert {a.email: a.status for a in one.attendees} == {ATTENDEE: 5, CAROL: 4}

    run(scenario)


# -- CANCEL ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ("14.1", "16.1"))
def test_cancel_marks_the_event_cancelled(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        dev.store.deliver(ATTENDEE, mail(ical("REQUEST")))
        key, _ = await settle(dev, "Calendar")
        cancel = stamped(vevent(sequence=1, status="CANCELLED"), "20261201T090000Z")
        dev.store.deliver(ATTENDEE, mail(ical("CANCEL", cancel), subject="Canceled: Planning",
                                         message_id="<c1@example.com>"))
        [event] = await events(dev.store)
        assert (event.meeting_status, event.busy_status, event.subject) == (7, 0, "Canceled: Planning")
        _, got = await dev.drain("Calendar", key)
        [(kind, _, node)] = got
        assert kind == "Change" and data(node).findtext(C.MeetingStatus) == "7"
        # The user removes it from the calendar by declining (MeetingResponse allows that).
        assert dev.store.outgoing() == []

    run(scenario)


def test_cancel_of_one_occurrence_removes_it(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "14.1")
        dev.store.deliver(ATTENDEE, mail(ical("REQUEST")))
        one = stamped(vevent(recurrence_id="20261216T100000", start="20261216T100000", end="20261216T110000",
                             sequence=1, status="CANCELLED"), "20261201T090000Z")
        dev.store.deliver(ATTENDEE, mail(ical("CANCEL", one), message_id="<c1@example.com>"))
        [event] = await events(dev.store)
        assert event.meeting_status == 3
        assert [(x.original_start.isoformat(), x.deleted) for x in event.exceptions] == [
            ("2026-12-16T09:00:00+00:00", True)]

    run(scenario)


def test_cancel_from_someone_else_changes_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "16.1")
        dev.store.deliver(ATTENDEE, mail(ical("REQUEST")))
        before = await events(dev.store)
        forged = stamped(vevent(sequence=1, status="CANCELLED"), "20261201T090000Z").replace(
            f"ORGANIZER;CN=Bob:mailto:{ORGANIZER}", "ORGANIZER:mailto:mallory@example.org")
        dev.store.deliver(ATTENDEE, mail(ical("CANCEL", forged), sender="mallory@example.org",
                                         message_id="<c1@example.com>"))
        forged_request = stamped(vevent(sequence=1), "20261201T090000Z").replace(
            f"ORGANIZER;CN=Bob:mailto:{ORGANIZER}", "ORGANIZER:mailto:mallory@example.org").replace("Room 1", "Hall")
        dev.store.deliver(ATTENDEE, mail(ical("REQUEST", forged_request), sender="mallory@example.org",
                                         message_id="<r1@example.com>"))
        assert await events(dev.store) == before
        # Both mails arrived all the same.
        assert len(await dev.store.item_stamps(ATTENDEE, dev.store.folder_id(ATTENDEE, "Inbox"))) == 3

    run(scenario)


# -- REPLY -----------------------------------------------------------------------------------


async def organizer_event(store: ReferenceStore, *, series: bool = False) -> None:
    """Bob's own meeting (weekly with ``series``), Alice and Carol invited."""
    store.add_user(*USERS[1])
    start = meeting.read_invitation(ical("REQUEST"))
    assert start is not None
    own = Calendar(uid=UID, subject="Planning", start=start.start, end=start.end, organizer_email=ORGANIZER,
                   organizer_name="Bob", meeting_status=1, timezone=start.timezone,
                   recurrence=start.recurrence if series else None,
                   attendees=[Attendee(email=ATTENDEE, name="Alice", status=5, type=1),
                              Attendee(email=CAROL, name="Carol", status=5, type=2)])
    await store.add_item(ORGANIZER, store.folder_id(ORGANIZER, "Calendar"), own)


@pytest.mark.parametrize(("partstat", "status"), [("ACCEPTED", 3), ("TENTATIVE", 2), ("DECLINED", 4)])
def test_reply_sets_the_attendee_status(tmp_path: Path, partstat: str, status: int) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "16.1")
        await organizer_event(dev.store)
        reply = vevent().replace(f"PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{CAROL}", f"PARTSTAT={partstat}:mailto:{CAROL}")
        dev.store.deliver(ORGANIZER, mail(ical("REPLY", reply), sender=CAROL, to=ORGANIZER, subject="Re: Planning"))
        [event] = await events(dev.store, ORGANIZER)
        assert {a.email: a.status for a in event.attendees} == {ATTENDEE: 5, CAROL: status}
        assert len(await dev.store.item_stamps(ORGANIZER, dev.store.folder_id(ORGANIZER, "Inbox"))) == 1

    run(scenario)


def test_reply_sent_by_the_device_reaches_the_organizer_event(tmp_path: Path) -> None:
    """Alice's 16.1 device accepts with SendResponse: the server's REPLY, delivered to Bob
    (a local user), marks her as accepted in Bob's event, which his device sees."""
    async def scenario() -> None:
        dev = await device(tmp_path, "16.1")
        await organizer_event(dev.store)
        dev.store.deliver(ATTENDEE, mail(ical("REQUEST")))
        inbox = dev.folders["Inbox"]
        _, adds = await settle(dev, "Inbox", body_options("16.1"))
        [sid] = adds
        reply = await dev.client.command(
            "MeetingResponse", f"<MeetingResponse {MR_NS}><Request><UserResponse>1</UserResponse>"
            f"<CollectionId>{inbox}</CollectionId><RequestId>{sid}</RequestId><SendResponse/></Request>"
            "</MeetingResponse>")
        assert reply.node is not None and [r.findtext(MR.Status) for r in reply.node.findall(MR.Result)] == ["1"]
        [event] = await events(dev.store, ORGANIZER)
        assert {a.email: a.status for a in event.attendees} == {ATTENDEE: 3, CAROL: 5}

    run(scenario)


def test_reply_from_someone_not_invited_is_ignored(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "16.1")
        await organizer_event(dev.store)
        before = await events(dev.store, ORGANIZER)
        stranger = vevent().replace(f"PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{CAROL}",
                                    "PARTSTAT=ACCEPTED:mailto:mallory@example.org")
        stranger = stranger.replace(f"PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{ATTENDEE}",
                                    "PARTSTAT=NEEDS-ACTION:mailto:nobody@example.org")
        dev.store.deliver(ORGANIZER, mail(ical("REPLY", stranger), sender="mallory@example.org", to=ORGANIZER))
        # A reply about an event Bob does not have, and one to an attendee (not the organizer).
        dev.store.deliver(ORGANIZER, mail(ical("REPLY", vevent(uid="unknown-1")), sender=CAROL, to=ORGANIZER,
                                          message_id="<x2@example.com>"))
        dev.store.deliver(ATTENDEE, mail(ical("REQUEST")))
        carol_said_yes = vevent().replace(f"PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{CAROL}",
                                          f"PARTSTAT=ACCEPTED:mailto:{CAROL}")
        dev.store.deliver(ATTENDEE, mail(ical("REPLY", carol_said_yes), sender=CAROL, message_id="<x3@example.com>"))
        assert await events(dev.store, ORGANIZER) == before
        [alices] = await events(dev.store)
        assert {a.email: a.status for a in alices.attendees}[CAROL] == 5
        assert len(await dev.store.item_stamps(ORGANIZER, dev.store.folder_id(ORGANIZER, "Inbox"))) == 2

    run(scenario)


# -- what must not happen ----------------------------------------------------------------------


def test_no_self_invitation(tmp_path: Path) -> None:
    """Bob (organizer) gets his own invitation (he listed himself): his calendar keeps
    only his own event; without one, none is made."""
    async def scenario() -> None:
        dev = await device(tmp_path, "16.1")
        dev.store.add_user(*USERS[1])
        dev.store.deliver(ORGANIZER, mail(ical("REQUEST"), to=ORGANIZER))
        assert await events(dev.store, ORGANIZER) == []
        await organizer_event_only(dev.store)
        before = await events(dev.store, ORGANIZER)
        dev.store.deliver(ORGANIZER, mail(ical("REQUEST", stamped(vevent(sequence=1), "20261201T090000Z")),
                                          to=ORGANIZER, message_id="<r2@example.com>"))
        assert await events(dev.store, ORGANIZER) == before

    run(scenario)


async def organizer_event_only(store: ReferenceStore) -> None:
    own = Calendar(uid=UID, subject="Mine", organizer_email=ORGANIZER, meeting_status=1,
                   attendees=[Attendee(email=ATTENDEE)])
    invitation = meeting.read_invitation(ical("REQUEST"))
    assert invitation is not None
    own.start, own.end = invitation.start, invitation.end
    await store.add_item(ORGANIZER, store.folder_id(ORGANIZER, "Calendar"), own)


@pytest.mark.parametrize("junk", [
    "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nDTSTART:garbage\r\n",
    "METHOD:REQUEST\r\n\x00\x01 not a calendar at all\r\n",
    "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n",
    ("BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nSUMMARY:no uid\r\nDTSTART:20261202T100000Z\r\n"
     "ORGANIZER:mailto:bob@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"),
    ("BEGIN:VCALENDAR\r\nMETHOD:CANCEL\r\nBEGIN:VEVENT\r\nUID:x\r\nRECURRENCE-ID:nonsense\r\nEND:VEVENT\r\n"
     "END:VCALENDAR\r\n"),
])
def test_broken_calendar_parts_leave_the_calendar_alone(tmp_path: Path, junk: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "16.1")
        dev.store.deliver(ATTENDEE, mail(ical("REQUEST")))
        before = await events(dev.store)
        dev.store.deliver(ATTENDEE, mail(junk, message_id="<junk@example.com>"))
        assert await events(dev.store) == before
        assert len(await dev.store.item_stamps(ATTENDEE, dev.store.folder_id(ATTENDEE, "Inbox"))) == 2

    run(scenario)


def test_unknown_user_or_folder_touches_no_calendar(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "16.1")
        with pytest.raises(ValueError):
            dev.store.deliver("nobody@example.com", mail(ical("REQUEST")))
        with pytest.raises(ValueError):
            dev.store.deliver(ATTENDEE, mail(ical("REQUEST")), folder="No Such Folder")
        assert await events(dev.store) == []

    run(scenario)


def test_huge_attendee_list(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "16.1")
        crowd = "".join(f"ATTENDEE;CN=Guest {n};PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:guest{n}@example.org\r\n"
                        for n in range(5000))
        began = time.perf_counter()
        dev.store.deliver(ATTENDEE, mail(ical("REQUEST", vevent(extra=crowd))))
        elapsed = time.perf_counter() - began
        [event] = await events(dev.store)
        assert len(event.attendees) == 5002 and event.response_type == 5
        assert elapsed < 20, elapsed  # measured 0.8 s here (parsing and writing 5,000 attendees)
        # A reply from one of them reaches nobody's event (Alice is no organizer).
        dev.store.deliver(ATTENDEE, mail(ical("REPLY", vevent().replace(
            f"PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{CAROL}", f"PARTSTAT=ACCEPTED:mailto:{CAROL}")),
            message_id="<r@example.com>"))
        [after] = await events(dev.store)
        assert after == event

    run(scenario)


def test_forged_message_type_is_replaced(tmp_path: Path) -> None:
    """A sender's own X-EAS-MEETINGMESSAGETYPE does not reach the device: delivery decides."""
    async def scenario() -> None:
        dev = await device(tmp_path, "14.1")
        forged = ical("REQUEST").replace("VERSION:2.0\r\n", f"VERSION:2.0\r\n{meeting.MESSAGE_TYPE}:4\r\n")
        dev.store.deliver(ATTENDEE, mail(forged))
        _, found = await meeting_mail(dev)
        assert [t for _, t in found] == ["1"]

    run(scenario)


def test_message_type_functions() -> None:
    request = ical("REQUEST")
    assert meeting.message_type(request) == 1
    assert meeting.message_type(request, 3) == 2  # an update of unknown kind: a full one
    assert meeting.message_type(ical("CANCEL")) == 0
    for kind in (1, 2, 3, 4):
        marked = meeting.with_message_type(request, kind)
        assert meeting.message_type(marked, 5) == kind
        assert meeting.with_message_type(marked, None) == request
        assert meeting.with_message_type(marked, 3).count(meeting.MESSAGE_TYPE) == 1
    invitation = meeting.read_invitation(meeting.with_message_type(ical("REQUEST", vevent(sequence=2)), 3))
    assert invitation is not None and invitation.message_type == 3
    assert meeting.read_invitation(ical("REQUEST", vevent(sequence=2))).message_type == 2  # type: ignore[union-attr]


def test_invitation_sent_through_the_store_reaches_local_calendars(tmp_path: Path) -> None:
    """``send_mail`` (a device's SendMail) schedules for each local recipient: Alice gets
    the event; Bob, who sends it and is on the list, gets no copy of his own meeting;
    external recipients are no users and change nothing."""
    async def scenario() -> None:
        dev = await device(tmp_path, "14.1")
        dev.store.add_user(*USERS[1])
        invitation = mail(ical("REQUEST"), to=f"{ATTENDEE}, {ORGANIZER}, {CAROL}")
        await dev.store.send_mail(ORGANIZER, invitation, save_in_sent=True)
        [event] = await events(dev.store)
        assert (event.uid, event.response_type, event.meeting_status) == (UID, 5, 3)
        assert await events(dev.store, ORGANIZER) == []
        _, found = await meeting_mail(dev)
        assert [t for _, t in found] == ["1"]

    run(scenario)


def test_run_now_refuses_a_coroutine_that_suspends() -> None:
    import asyncio

    from eas.store.scheduling import run_now

    async def answer() -> int:
        return 42

    assert run_now(answer()) == 42
    with pytest.raises(RuntimeError):
        run_now(asyncio.sleep(0))
