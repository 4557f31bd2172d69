"""MeetingResponse (MS-ASCMD 2.2.1.11) end to end: an invitation delivered as real MIME is
answered from the Inbox or from the Calendar; the Calendar's Sync shows the event with
the answer; the request leaves the Inbox; 16.x SendResponse makes the server send the
iMIP REPLY (or COUNTER) to the organizer, a local user; bad requests get status 2."""

from __future__ import annotations

import base64
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from meeting_mail import ATTENDEE, ORGANIZER, UID, ical, mail, vevent
from test_sync import Device, body_options, cheap_scrypt, coll, device, run, settle, since  # noqa: F401

from eas.items.calendar import Calendar
from eas.tags import AirSync as A
from eas.tags import MeetingResponse as MR
from eas.testing.client import Reply
from eas.testing.harness import USERS

VERSIONS = ("12.1", "14.0", "14.1", "16.0", "16.1")
MR_NS = 'xmlns="MeetingResponse:" xmlns:s="Search:" xmlns:b="AirSyncBase:" xmlns:e="Email:"'


async def setup(tmp_path: Path, version: str, invitation: bytes | None = None) -> tuple[Device, str]:
    """Alice's device with Bob (a local user, the organizer) and an invitation in her
    Inbox, synced: the device and the invitation's ServerId."""
    dev = await device(tmp_path, version)
    dev.store.add_user(*USERS[1])
    dev.store.deliver(ATTENDEE, invitation or mail(ical("REQUEST")))
    _, adds = await settle(dev, "Inbox", body_options(version))
    assert len(adds) == 1
    return dev, next(iter(adds))


async def respond(dev: Device, inner: str) -> Reply:
    reply = await dev.client.command("MeetingResponse", f"<MeetingResponse {MR_NS}>{inner}</MeetingResponse>")
    assert reply.status == 200, reply
    return reply


def request(answer: int, collection: str, request_id: str, extra: str = "") -> str:
    return (f"<Request><UserResponse>{answer}</UserResponse><CollectionId>{collection}</CollectionId>"
            f"<RequestId>{request_id}</RequestId>{extra}</Request>")


def results(reply: Reply) -> list[tuple[str, str, str]]:
    assert reply.node is not None and reply.node.tag == MR.MeetingResponse, reply.xml
    return [(str(r.findtext(MR.RequestId, default="")), str(r.findtext(MR.Status)),
             str(r.findtext(MR.CalendarId, default=""))) for r in reply.node.findall(MR.Result)]


async def events(dev: Device) -> list[Calendar]:
    folder = dev.store.folder_id(ATTENDEE, "Calendar")
    stamps = await dev.store.item_stamps(ATTENDEE, folder)
    found = await dev.store.fetch_items(ATTENDEE, folder, sorted(stamps))
    return [e for e in found if isinstance(e, Calendar)]


async def inbox_ids(dev: Device) -> set[str]:
    return set(await dev.store.item_stamps(ATTENDEE, dev.store.folder_id(ATTENDEE, "Inbox")))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("answer", "response_type", "busy"), [(1, 3, 2), (2, 2, 1)])
def test_accept_and_tentative_from_the_inbox(tmp_path: Path, version: str, answer: int, response_type: int,
                                            busy: int) -> None:
    async def scenario() -> None:
        dev, sid = await setup(tmp_path, version)
        inbox = dev.folders["Inbox"]
        [(rid, status, calendar_id)] = results(await respond(dev, request(answer, inbox, sid)))
        assert (rid, status) == (sid, "1")
        [event] = await events(dev)
        assert calendar_id == f"{dev.folders['Calendar']}:{event.id}"
        assert (event.uid, event.response_type, event.busy_status) == (UID, response_type, busy)
        assert event.recurrence is not None and event.recurrence.occurrences == 5
        me = next(a for a in event.attendees if a.email == ATTENDEE)
        assert me.status == {1: 3, 2: 2}[answer]
        assert not await inbox_ids(dev)  # the request went to Deleted Items
        deleted = await dev.store.item_stamps(ATTENDEE, dev.store.folder_id(ATTENDEE, "Deleted Items"))
        assert len(deleted) == 1
        # The Calendar's Sync brings the event, under the CalendarId the answer named.
        _, adds = await settle(dev, "Calendar")
        assert list(adds) == [calendar_id]
        # No server-sent reply before 16.0, and none without SendResponse.
        assert dev.store.outgoing(ATTENDEE) == []
        # A resend (the answer was lost) gets the same result, not a second event.
        again = results(await respond(dev, request(answer, inbox, sid)))
        assert again == [(sid, "1", calendar_id)]
        assert len(await events(dev)) == 1

    run(scenario)


@pytest.mark.parametrize("version", ("14.1", "16.1"))
def test_decline_removes_the_event(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev, sid = await setup(tmp_path, version)
        inbox = dev.folders["Inbox"]
        [(_, status, calendar_id)] = results(await respond(dev, request(1, inbox, sid)))
        assert status == "1" and calendar_id
        event_sid = calendar_id
        # Declined later from the Calendar: the event goes, no CalendarId.
        [(rid, status, calendar_id)] = results(await respond(dev, request(3, dev.folders["Calendar"], event_sid)))
        assert (rid, status, calendar_id) == (event_sid, "1", "")
        assert await events(dev) == []

    run(scenario)


def test_decline_from_the_inbox_adds_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev, sid = await setup(tmp_path, "14.0")
        [(_, status, calendar_id)] = results(await respond(dev, request(3, dev.folders["Inbox"], sid)))
        assert (status, calendar_id) == ("1", "")
        assert await events(dev) == [] and not await inbox_ids(dev)

    run(scenario)


@pytest.mark.parametrize("version", ("16.0", "16.1"))
@pytest.mark.parametrize(("answer", "partstat", "subject"), [(1, "ACCEPTED", "Accepted: Planning"),
                                                             (2, "TENTATIVE", "Tentative: Planning"),
                                                             (3, "DECLINED", "Declined: Planning")])
def test_send_response_reaches_the_organizer(tmp_path: Path, version: str, answer: int, partstat: str,
                                             subject: str) -> None:
    async def scenario() -> None:
        dev, sid = await setup(tmp_path, version)
        send = ("<SendResponse><e:Importance>2</e:Importance><b:Body><b:Type>1</b:Type>"
                "<b:Data>See you there</b:Data></b:Body></SendResponse>")
        [(_, status, _)] = results(await respond(dev, request(answer, dev.folders["Inbox"], sid, send)))
        assert status == "1"
        [(sender, recipients, data)] = dev.store.outgoing(ATTENDEE)
        assert (sender, recipients) == (ATTENDEE, [ORGANIZER])
        # Bob (local) has it in his Inbox as a response of the right class.
        bob_inbox = dev.store.folder_id(ORGANIZER, "Inbox")
        [got] = await dev.store.fetch_emails(ORGANIZER, bob_inbox, list(await dev.store.item_stamps(ORGANIZER,
                                                                                                      bob_inbox)))
        assert got.message_class == {1: "IPM.Schedule.Meeting.Resp.Pos", 2: "IPM.Schedule.Meeting.Resp.Tent",
                                     3: "IPM.Schedule.Meeting.Resp.Neg"}[answer]
        assert got.subject == subject and got.importance == 2
        msg = message_from_bytes(data, policy=policy.default)
        cal = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
        text = cal.get_content().replace("\r\n ", "")  # unfolded
        assert "METHOD:REPLY" in text and f"PARTSTAT={partstat}" in text and f"UID:{UID}" in text
        assert "See you there" in msg.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        # Alice's copy is in her Sent Items.
        assert await dev.store.item_stamps(ATTENDEE, dev.store.folder_id(ATTENDEE, "Sent Items"))

    run(scenario)


def test_new_time_proposal_is_a_counter(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev, sid = await setup(tmp_path, "16.1")
        send = ("<SendResponse><ProposedStartTime>20261202T130000Z</ProposedStartTime>"
                "<ProposedEndTime>20261202T140000Z</ProposedEndTime></SendResponse>")
        [(_, status, calendar_id)] = results(await respond(dev, request(2, dev.folders["Inbox"], sid, send)))
        assert status == "1" and calendar_id
        [(_, _, data)] = dev.store.outgoing(ATTENDEE)
        text = next(p for p in message_from_bytes(data, policy=policy.default).walk()
                    if p.get_content_type() == "text/calendar").get_content().replace("\r\n ", "")
        assert "METHOD:COUNTER" in text and "DTSTART:20261202T130000Z" in text
        assert "X-MS-OLK-ORIGINALSTART:20261202T090000Z" in text

    run(scenario)


def test_response_requested_false_sends_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        quiet = mail(ical("REQUEST", vevent().replace(";RSVP=TRUE", "")))
        dev, sid = await setup(tmp_path, "16.1", quiet)
        send = "<SendResponse><b:Body><b:Type>1</b:Type><b:Data>ok</b:Data></b:Body></SendResponse>"
        [(_, status, _)] = results(await respond(dev, request(1, dev.folders["Inbox"], sid, send)))
        assert status == "1" and dev.store.outgoing(ATTENDEE) == []

    run(scenario)


@pytest.mark.parametrize("version", ("14.1", "16.1"))
def test_one_occurrence(tmp_path: Path, version: str) -> None:
    """InstanceId: tentative for one occurrence keeps the series accepted; declining one
    occurrence removes only it."""
    async def scenario() -> None:
        dev, sid = await setup(tmp_path, version)
        [(_, status, calendar_id)] = results(await respond(dev, request(1, dev.folders["Inbox"], sid)))
        assert status == "1"
        cal = dev.folders["Calendar"]
        third = "<InstanceId>2026-12-16T09:00:00.000Z</InstanceId>"
        [(_, status, cid)] = results(await respond(dev, request(2, cal, calendar_id, third)))
        assert (status, cid) == ("1", calendar_id)
        second = "<InstanceId>2026-12-09T09:00:00.000Z</InstanceId>"
        [(_, status, cid)] = results(await respond(dev, request(3, cal, calendar_id, second)))
        assert (status, cid) == ("1", "")
        [event] = await events(dev)
        assert event.response_type == 3 and event.busy_status == 2
        by_start = {x.original_start.isoformat(): x for x in event.exceptions}
        assert by_start["2026-12-09T09:00:00+00:00"].deleted
        third_exc = by_start["2026-12-16T09:00:00+00:00"]
        assert not third_exc.deleted and third_exc.busy_status == 1

    run(scenario)


@pytest.mark.parametrize("version", ("12.1", "14.1", "16.1"))
def test_bad_requests_are_status_2(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev, sid = await setup(tmp_path, version)
        delivered = await events(dev)  # the invitation's event, unanswered (eas.store.scheduling)
        assert [e.response_type for e in delivered] == [5]
        dev.store.deliver(ATTENDEE, b"From: x@example.net\r\nTo: alice@example.com\r\nSubject: plain\r\n\r\nhi\r\n")
        _, key_adds = await settle(dev, "Inbox")
        plain_sid = next(s for s in key_adds if s != sid)
        inbox, cal = dev.folders["Inbox"], dev.folders["Calendar"]
        bad = [request(1, inbox, f"{inbox}:999999"),  # unknown item
               request(1, inbox, plain_sid),  # not a meeting
               request(1, cal, sid),  # wrong collection
               request(1, "4242", "4242:1"),  # unknown collection
               request(4, inbox, sid),  # no such answer
               request(1, inbox, "junk"),
               request(1, dev.folders["Contacts"], f"{dev.folders['Contacts']}:1"),
               "<Request><UserResponse>1</UserResponse></Request>"]
        if not since(version, "14.1"):
            bad.append(request(1, inbox, sid, "<InstanceId>2026-12-09T09:00:00.000Z</InstanceId>"))
        got = results(await respond(dev, "".join(bad)))
        assert [status for _, status, _ in got] == ["2"] * len(bad)
        assert await events(dev) == delivered and sid in {f"{inbox}:{i}" for i in await inbox_ids(dev)}
        # A request that is no MeetingResponse at all is refused as a whole, and leaves no trace.
        reply = await dev.client.command("MeetingResponse", f"<MeetingResponse {MR_NS}><CalendarId>1</CalendarId></MeetingResponse>")
        assert reply.status in (200, 400) and reply.status != 500
        assert await events(dev) == delivered

    run(scenario)


def test_cancellation_cannot_be_accepted(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev, sid = await setup(tmp_path, "16.1", mail(ical("CANCEL", vevent(status="CANCELLED"))))
        [(_, status, _)] = results(await respond(dev, request(1, dev.folders["Inbox"], sid)))
        assert status == "2" and await events(dev) == []

    run(scenario)


def test_long_id(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev, sid = await setup(tmp_path, "14.1")
        inner = f"<Request><UserResponse>1</UserResponse><s:LongId>{sid}</s:LongId></Request>"
        [(_, status, calendar_id)] = results(await respond(dev, inner))
        assert status == "1" and calendar_id

    run(scenario)


def test_global_obj_id_names_the_event(tmp_path: Path) -> None:
    """What the device got as GlobalObjId is the UID of the event the answer created."""
    async def scenario() -> None:
        from eas.items.meeting import global_obj_id

        dev, sid = await setup(tmp_path, "14.1")
        await respond(dev, request(1, dev.folders["Inbox"], sid))
        [event] = await events(dev)
        assert base64.b64encode(global_obj_id(event.uid)).decode().startswith("BAAAAIIA4AB0xbcQGoLgCA")

    run(scenario)


def test_sync_shows_the_response_in_the_calendar(tmp_path: Path) -> None:
    async def scenario() -> None:
        dev, sid = await setup(tmp_path, "16.1")
        [(_, _, calendar_id)] = results(await respond(dev, request(2, dev.folders["Inbox"], sid)))
        _, adds = await settle(dev, "Calendar")
        data = adds[calendar_id].find(A.ApplicationData)
        assert data is not None
        from eas.tags import Calendar as C

        assert data.findtext(C.ResponseType) == "2" and data.findtext(C.BusyStatus) == "1"
        assert data.findtext(C.UID) == UID

    run(scenario)



def test_own_and_cancelled_events(tmp_path: Path) -> None:
    """The organizer cannot answer her own meeting; a cancelled meeting can only be
    declined, which takes it off the calendar."""
    async def scenario() -> None:
        from datetime import UTC, datetime

        from eas.items.calendar import Attendee

        dev, _ = await setup(tmp_path, "16.1")
        folder = dev.store.folder_id(ATTENDEE, "Calendar")
        start = datetime(2026, 12, 20, 9, tzinfo=UTC)
        own = Calendar(uid="own-1", subject="Mine", start=start, end=start.replace(hour=10),
                       organizer_email=ATTENDEE, attendees=[Attendee(email=ORGANIZER)], meeting_status=1)
        gone = Calendar(uid="gone-1", subject="Gone", start=start, end=start.replace(hour=10),
                        organizer_email=ORGANIZER, attendees=[Attendee(email=ATTENDEE)], meeting_status=7)
        own_id, _ = await dev.store.add_item(ATTENDEE, folder, own)
        gone_id, _ = await dev.store.add_item(ATTENDEE, folder, gone)
        cal = dev.folders["Calendar"]
        got = results(await respond(dev, request(1, cal, f"{cal}:{own_id}") + request(1, cal, f"{cal}:{gone_id}")
                                    + request(3, cal, f"{cal}:{gone_id}")))
        assert [status for _, status, _ in got] == ["2", "2", "1"]
        # The delivered invitation's event (UID) stays too.
        assert sorted(e.uid for e in await events(dev)) == sorted([UID, "own-1"])

    run(scenario)
