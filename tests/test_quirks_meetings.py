"""iOS sending meeting mail through SendMail (the quirk of eas.items.meeting.screen_invitation).

What broke for real: iOS 10.3's "Time to Leave" made the attendee's iPhone SmartForward the
organizer's invitation again and again (Microsoft KB 4014990, openradar 32898470), so
everyone invited got it once more each time; iOS 6 attendees "took over" meetings and
their declines went out as cancellations to everybody (Microsoft KB 2768774); and an
iPhone organizing a meeting lists herself as an attendee (ROLE=CHAIR), so the invitation
she sends through SendMail lands in her own Inbox as a second meeting.

The sequence below is what such devices send (iOS's own iCalendar: PRODID Apple, the
organizer as CHAIR attendee, quoted-printable text/calendar in multipart/alternative),
replayed with the in-process client. The server's answer: the organizer never gets her
own invitation; an attendee's device re-sending an invitation reaches only people not
yet invited (a genuine forward still works); a cancellation from an attendee reaches no
one; replies go through untouched. Every screened send is answered as sent, since iOS
retries a failed mail forever.
"""

from __future__ import annotations

import base64
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from test_sync import cheap_scrypt  # noqa: F401

from eas.backend import FolderType
from eas.store import ReferenceStore
from eas.testing.harness import USERS, client, make_app

ALICE, BOB = USERS[0][0], USERS[1][0]
CAROL = "carol@example.net"  # not local: shows in outgoing only
DAVE = "dave@example.org"
UID = "9A1B6C5E-3F2D-4E8A-B7C6-D5E4F3A2B1C0"


def ios_calendar(method: str, organizer: str = ALICE, partstat_bob: str = "NEEDS-ACTION") -> str:
    return ("BEGIN:VCALENDAR\r\nMETHOD:" + method + "\r\nPRODID:-//Apple Inc.//iPhone 10.3.1//EN\r\n"
            "VERSION:2.0\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\n"
            "DTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nTZNAME:CET\r\n"
            "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\n"
            "DTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nTZNAME:CEST\r\n"
            "TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\n"
            f"ATTENDEE;CN=Alice;CUTYPE=INDIVIDUAL;EMAIL={ALICE};PARTSTAT=ACCEPTED;ROLE=CHAIR:mailto:{ALICE}\r\n"
            f"ATTENDEE;CN=Bob;CUTYPE=INDIVIDUAL;EMAIL={BOB};PARTSTAT={partstat_bob};ROLE=REQ-PARTICIPANT;"
            f"RSVP=TRUE:mailto:{BOB}\r\n"
            f"ATTENDEE;CN=Carol;CUTYPE=INDIVIDUAL;EMAIL={CAROL};PARTSTAT=NEEDS-ACTION;ROLE=REQ-PARTICIPANT;"
            f"RSVP=TRUE:mailto:{CAROL}\r\n"
            "DTEND;TZID=Europe/Berlin:20261203T150000\r\nDTSTAMP:20261130T080000Z\r\n"
            "DTSTART;TZID=Europe/Berlin:20261203T140000\r\nLOCATION:Cafe\r\nSEQUENCE:0\r\n"
            f"ORGANIZER;CN=Alice;EMAIL={organizer}:mailto:{organizer}\r\nSUMMARY:Coffee\r\n"
            f"UID:{UID}\r\nX-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def ios_mail(sender: str, to: str, calendar: str, cc: str = "", subject: str = "Invitation: Coffee") -> bytes:
    qp = calendar.replace("=", "=3D")
    method = calendar.split("METHOD:", 1)[1].split("\r\n", 1)[0]
    return (f"Content-Type: multipart/alternative; boundary=Apple-Mail-4E1B\r\nSubject: {subject}\r\n"
            f"From: {sender}\r\nTo: {to}\r\n" + (f"Cc: {cc}\r\n" if cc else "")
            + "Date: Mon, 30 Nov 2026 09:00:00 +0100\r\nMime-Version: 1.0 (1.0)\r\n"
            f"Message-Id: <{abs(hash((sender, to, cc, method)))}@example.com>\r\nX-Mailer: iPhone Mail (14E304)\r\n\r\n"
            "--Apple-Mail-4E1B\r\nContent-Type: text/plain; charset=us-ascii\r\n"
            "Content-Transfer-Encoding: 7bit\r\n\r\nCoffee, Thursday 14:00\r\n\r\n"
            f"--Apple-Mail-4E1B\r\nContent-Type: text/calendar; charset=utf-8; method={method}\r\n"
            f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{qp}\r\n--Apple-Mail-4E1B--\r\n").encode()


def send_mail_xml(client_id: str, data: bytes) -> str:
    return (f'<SendMail xmlns="ComposeMail:"><ClientId>{client_id}</ClientId><SaveInSentItems/>'
            f"<Mime>{base64.b64encode(data).decode()}</Mime></SendMail>")


async def inbox(store: ReferenceStore, user: str) -> list[str]:
    folder = next(f for f in await store.folders(user) if f.type == FolderType.INBOX)
    stamps = await store.item_stamps(user, folder.id)
    return [m.subject for m in await store.fetch_emails(user, folder.id, list(stamps))]


def outgoing(store: ReferenceStore, user: str) -> list[list[str]]:
    return [sorted(recipients) for _, recipients, _ in store.outgoing(user)]


@pytest.mark.parametrize("version", ("12.1", "14.1", "16.1"))
def test_ios_meeting_sequence(tmp_path: Path, version: str) -> None:
    import asyncio

    async def send(c: object, client_id: str, data: bytes) -> None:
        if version == "12.1":  # raw MIME in the body, SaveInSent in the query
            reply = await c.raw("SendMail", data, params={"SaveInSent": "T"},  # type: ignore[attr-defined]
                                content_type="message/rfc822")
        else:
            reply = await c.command("SendMail", send_mail_xml(client_id, data))  # type: ignore[attr-defined]
        assert reply.status == 200 and reply.body == b"", reply  # plain success, every time

    async def scenario() -> None:
        app, store = make_app(tmp_path)
        alice = client(app, *USERS[0], version=version, device_id="AliceiPhone")
        bob = client(app, *USERS[1], version=version, device_id="BobiPhone")
        await alice.provision()
        await bob.provision()

        # 1. Alice's iPhone (organizer) invites Bob and Carol, and lists herself too.
        await send(alice, "inv-1", ios_mail(ALICE, f"Bob <{BOB}>, Alice <{ALICE}>, {CAROL}", ios_calendar("REQUEST")))
        assert outgoing(store, ALICE) == [sorted([BOB, CAROL])]
        assert await inbox(store, BOB) == ["Invitation: Coffee"]
        assert await inbox(store, ALICE) == []  # no second copy of her own meeting
        bob_inbox = next(f for f in await store.folders(BOB) if f.type == FolderType.INBOX)
        [invite] = await store.fetch_emails(BOB, bob_inbox.id, list(await store.item_stamps(BOB, bob_inbox.id)))
        assert invite.message_class == "IPM.Schedule.Meeting.Request" and invite.meeting_request is not None

        # 2. Bob's iPhone re-sends Alice's invitation to everybody invited ("Time to Leave").
        for n in range(3):
            await send(bob, f"ttl-{n}", ios_mail(BOB, f"{ALICE}, {CAROL}", ios_calendar("REQUEST"), cc=BOB))
        assert outgoing(store, BOB) == []
        assert await inbox(store, ALICE) == [] and await inbox(store, BOB) == ["Invitation: Coffee"]

        # 3. A real forward to someone new reaches only the new person.
        await send(bob, "fwd-1", ios_mail(BOB, f"{DAVE}, {ALICE}", ios_calendar("REQUEST"), cc=CAROL,
                                          subject="Fwd: Invitation: Coffee"))
        [(_, recipients, data)] = store.outgoing(BOB)
        assert recipients == [DAVE]
        forwarded = message_from_bytes(data, policy=policy.default)
        assert DAVE in str(forwarded["To"]) and forwarded["Cc"] is None
        assert any(p.get_content_type() == "text/calendar" for p in forwarded.walk())
        assert await inbox(store, ALICE) == []

        # 4. Bob's iPhone, having taken the meeting over, "cancels" it for everybody.
        await send(bob, "hijack-1", ios_mail(BOB, f"{ALICE}, {CAROL}, {DAVE}", ios_calendar("CANCEL"),
                                             subject="Canceled: Coffee"))
        assert len(store.outgoing(BOB)) == 1 and await inbox(store, ALICE) == []

        # 5. Bob's answer (before 16.0 the device sends it itself) goes through untouched.
        reply_cal = ios_calendar("REPLY", partstat_bob="ACCEPTED")
        await send(bob, "reply-1", ios_mail(BOB, ALICE, reply_cal, subject="Accepted: Coffee"))
        assert outgoing(store, BOB)[-1] == [ALICE]
        assert await inbox(store, ALICE) == ["Accepted: Coffee"]
        alice_inbox = next(f for f in await store.folders(ALICE) if f.type == FolderType.INBOX)
        [answer] = await store.fetch_emails(ALICE, alice_inbox.id, list(await store.item_stamps(ALICE,
                                                                                                alice_inbox.id)))
        assert answer.message_class == "IPM.Schedule.Meeting.Resp.Pos"

        # 6. Alice re-sends her (updated) invitation: organizer mail passes, minus herself.
        await send(alice, "inv-2", ios_mail(ALICE, f"{BOB}, {ALICE}", ios_calendar("REQUEST"),
                                            subject="Updated Invitation: Coffee"))
        assert outgoing(store, ALICE)[-1] == [BOB]

    asyncio.run(scenario())
