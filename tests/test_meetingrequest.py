"""Meeting mail in the Inbox (MS-ASEMAIL 2.2.2.48 MeetingRequest): an invitation delivered
as real MIME is synced with its MeetingRequest in every protocol version, with only the
elements that version has; cancellations and replies get their message classes; the
GlobalObjId is the Outlook encoding of the UID both ways."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from meeting_mail import ORGANIZER, UID, ical, mail, vevent
from test_sync import Device, body_options, cheap_scrypt, device, run, settle, since  # noqa: F401

from eas.items import meeting, timezone
from eas.tags import AirSyncBase as B
from eas.tags import Calendar as C
from eas.tags import Email as E
from eas.tags import Email2 as E2
from eas.wbxml import Node

ALL_VERSIONS = ("2.5", "12.0", "12.1", "14.0", "14.1", "16.0", "16.1")

# MS-ASEMAIL 4.3: a GlobalObjId of Outlook's own and one wrapping a vCal UID.
OUTLOOK_ID = "BAAAAIIA4AB0xbcQGoLgCAfUCRDgQMnBJoXEAQAAAAAAAAAAEAAAAAvw7UtuTulOnjnjhns3jvM="
OUTLOOK_UID = ("040000008200E00074C5B7101A82E00800000000E040C9C12685C4010000000000000000100000000BF0ED4B6E4EE94E9E3"
               "9E3867B378EF3")
VCAL_ID = ("BAAAAIIA4AB0xbcQGoLgCAAAAAAAAAAAAAAAAAAAAAAAAAAAMwAAAHZDYWwtVWlkAQAAAHs4MTQxMkQzQy0yQTI0LTRFOUQtQjIwRS"
           "0xMUY3QkJFOTI3OTl9AA==")


def test_global_obj_id_spec_examples() -> None:
    assert meeting.uid_from_global_obj_id(base64.b64decode(OUTLOOK_ID)) == OUTLOOK_UID
    vcal_uid = meeting.uid_from_global_obj_id(base64.b64decode(VCAL_ID))
    assert vcal_uid == "{81412D3C-2A24-4E9D-B20E-11F7BBE92799}"
    assert meeting.global_obj_id(vcal_uid) == base64.b64decode(VCAL_ID)
    # An Outlook UID is its own GlobalObjId; any other UID survives the round trip.
    assert meeting.global_obj_id(OUTLOOK_UID).hex().upper() == OUTLOOK_UID
    for uid in ("planning-1@example.com", "ümlaut-ü", UID):
        assert meeting.uid_from_global_obj_id(meeting.global_obj_id(uid)) == uid
    with pytest.raises(ValueError):
        meeting.uid_from_global_obj_id(b"\x00" * 60)


async def inbox_add(dev: Device) -> Node:
    _, adds = await settle(dev, "Inbox", body_options(dev.version))
    assert len(adds) == 1
    node = next(iter(adds.values())).find(0x001D)  # AirSync:ApplicationData
    assert node is not None
    return node


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_invitation_in_every_version(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        dev.store.deliver(dev.client.user, mail(ical("REQUEST")))
        data = await inbox_add(dev)
        assert data.findtext(E.MessageClass) == "IPM.Schedule.Meeting.Request"
        names = [c.tag for c in data.children]
        assert names.index(E.MeetingRequest) == names.index(E.MessageClass) + 1
        mr = data.find(E.MeetingRequest)
        assert mr is not None
        assert mr.findtext(E.AllDayEvent) == "0"
        assert mr.findtext(E.StartTime) == "2026-12-02T09:00:00.000Z"  # 10:00 in Berlin
        assert mr.findtext(E.EndTime) == "2026-12-02T10:00:00.000Z"
        assert mr.findtext(E.DtStamp) == "2026-11-30T09:00:00.000Z"
        assert mr.findtext(E.InstanceType) == "1"
        assert mr.findtext(E.Organizer) == f"Bob <{ORGANIZER}>"
        assert mr.findtext(E.Reminder) == "900"  # seconds
        assert mr.findtext(E.ResponseRequested) == "1"
        assert mr.findtext(E.Sensitivity) == "0"
        rec = mr.find(E.Recurrences)
        assert rec is not None
        assert [(tagname.tag, tagname.text) for tagname in rec.find(E.Recurrence) or []][:4] == [
            (E.Type, "1"), (E.Interval, "1"), (E.Occurrences, "5"), (E.DayOfWeek, "8")]
        blob = mr.findtext(E.TimeZone)
        assert isinstance(blob, str) and timezone.from_wire(blob) == "Europe/Berlin"
        if since(version, "16.0"):
            assert mr.find(E.GlobalObjId) is None and mr.find(E.Location) is None
            assert mr.findtext(C.UID) == UID
            loc = mr.find(B.Location)
            assert loc is not None and loc.findtext(B.DisplayName) == "Room 1"
        else:
            gid = mr.findtext(E.GlobalObjId)
            assert isinstance(gid, str) and meeting.uid_from_global_obj_id(base64.b64decode(gid)) == UID
            assert mr.findtext(E.Location) == "Room 1"
        assert (mr.findtext(E.DisallowNewTimeProposal) == "0") == since(version, "14.0")
        assert (mr.findtext(E2.MeetingMessageType) == "1") == since(version, "14.1")
        # The invitation is MeetingRequest, not an attachment too.
        assert data.find(B.Attachments) is None and data.find(E.Attachments) is None

    run(scenario)


@pytest.mark.parametrize("version", ("12.1", "14.1", "16.1"))
def test_cancellation_and_replies(tmp_path: Path, version: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        dev.store.deliver(dev.client.user, mail(ical("CANCEL", vevent(status="CANCELLED", sequence=1)),
                                                subject="Canceled: Planning", message_id="<c1@example.com>"))
        data = await inbox_add(dev)
        assert data.findtext(E.MessageClass) == "IPM.Schedule.Meeting.Canceled"
        mr = data.find(E.MeetingRequest)
        assert mr is not None and mr.findtext(E.StartTime) == "2026-12-02T09:00:00.000Z"
        if since(version, "14.1"):
            assert mr.findtext(E2.MeetingMessageType) == "0"

    run(scenario)


@pytest.mark.parametrize(("partstat", "expected"), [("ACCEPTED", "IPM.Schedule.Meeting.Resp.Pos"),
                                                    ("TENTATIVE", "IPM.Schedule.Meeting.Resp.Tent"),
                                                    ("DECLINED", "IPM.Schedule.Meeting.Resp.Neg")])
def test_reply_classes(tmp_path: Path, partstat: str, expected: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "14.1")
        reply = ical("REPLY", vevent().replace("PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:alice",
                                               f"PARTSTAT={partstat}:mailto:alice"))
        dev.store.deliver(dev.client.user, mail(reply, sender="carol@example.net", subject="Re: Planning"))
        data = await inbox_add(dev)
        assert data.findtext(E.MessageClass) == expected
        assert data.find(E.MeetingRequest) is None  # responses carry no MeetingRequest

    run(scenario)


@pytest.mark.parametrize("version", ("14.0", "16.1"))
def test_one_occurrence(tmp_path: Path, version: str) -> None:
    """An update of one occurrence only (a VEVENT with RECURRENCE-ID, no series)."""
    async def scenario() -> None:
        dev = await device(tmp_path, version)
        one = vevent(recurrence_id="20261209T100000", start="20261209T120000", end="20261209T130000", sequence=2)
        dev.store.deliver(dev.client.user, mail(ical("REQUEST", one)))
        mr = (await inbox_add(dev)).find(E.MeetingRequest)
        assert mr is not None
        assert mr.findtext(E.InstanceType) == "3"
        assert mr.findtext(E.RecurrenceId) == "2026-12-09T09:00:00.000Z"
        assert mr.findtext(E.StartTime) == "2026-12-09T11:00:00.000Z"
        assert mr.find(E.Recurrences) is None

    run(scenario)


@pytest.mark.parametrize("junk", ["BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nDTSTART:garbage\r\n",
                                  "METHOD:REQUEST\r\n\x00\x01 not a calendar at all",
                                  "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"])
def test_broken_invitation_is_still_a_mail(tmp_path: Path, junk: str) -> None:
    async def scenario() -> None:
        dev = await device(tmp_path, "16.1")
        dev.store.deliver(dev.client.user, mail(junk + ("" if junk.endswith("\r\n") else "\r\n")))
        data = await inbox_add(dev)
        assert data.findtext(E.Subject) == "Planning"
        assert data.find(E.MeetingRequest) is None

    run(scenario)


def test_busy_status_is_the_intended_one(tmp_path: Path) -> None:
    """Outlook marks an invitation TENTATIVE until answered; the MeetingRequest shows the
    status the meeting will have (X-MICROSOFT-CDO-INTENDEDSTATUS), here out of office."""
    async def scenario() -> None:
        dev = await device(tmp_path, "14.1")
        extra = "X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE\r\nX-MICROSOFT-CDO-INTENDEDSTATUS:OOF\r\n"
        dev.store.deliver(dev.client.user, mail(ical("REQUEST", vevent(extra=extra))))
        mr = (await inbox_add(dev)).find(E.MeetingRequest)
        assert mr is not None and mr.findtext(E.BusyStatus) == "3"

    run(scenario)
