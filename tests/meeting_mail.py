"""Meeting mail as real clients and servers send it, for the meeting tests: an Outlook-style
invitation (multipart/alternative with a text/calendar part), its cancellation, replies."""

from __future__ import annotations

ORGANIZER = "bob@example.com"
ATTENDEE = "alice@example.com"
UID = "040000008200E00074C5B7101A82E00800000000B0C2A1C3A7CDD9010000000000000000100000004D1D2C5A8B9F3A4E9E1C2B3A4D5E6F70"


def vevent(uid: str = UID, *, sequence: int = 0, extra: str = "", rrule: str = "RRULE:FREQ=WEEKLY;BYDAY=WE;COUNT=5",
           recurrence_id: str = "", start: str = "20261202T100000", end: str = "20261202T110000",
           status: str = "") -> str:
    return ("BEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nSEQUENCE:{sequence}\r\nDTSTAMP:20261130T090000Z\r\n"
            f"DTSTART;TZID=Europe/Berlin:{start}\r\nDTEND;TZID=Europe/Berlin:{end}\r\n"
            + (f"RECURRENCE-ID;TZID=Europe/Berlin:{recurrence_id}\r\n" if recurrence_id else "")
            + (f"{rrule}\r\n" if rrule and not recurrence_id else "")
            + (f"STATUS:{status}\r\n" if status else "")
            + "SUMMARY:Planning\r\nLOCATION:Room 1\r\nCLASS:PUBLIC\r\n"
            f"ORGANIZER;CN=Bob:mailto:{ORGANIZER}\r\n"
            f"ATTENDEE;CN=Alice;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{ATTENDEE}\r\n"
            "ATTENDEE;CN=Carol;ROLE=OPT-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:carol@example.net\r\n"
            f"{extra}"
            "BEGIN:VALARM\r\nTRIGGER:-PT15M\r\nACTION:DISPLAY\r\nDESCRIPTION:Reminder\r\nEND:VALARM\r\n"
            "END:VEVENT\r\n")


def ical(method: str, *events: str) -> str:
    return ("BEGIN:VCALENDAR\r\nPRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN\r\nVERSION:2.0\r\n"
            f"METHOD:{method}\r\n" + "".join(events or (vevent(),)) + "END:VCALENDAR\r\n")


def mail(calendar: str, *, sender: str = ORGANIZER, to: str = ATTENDEE, subject: str = "Planning",
         message_id: str = "<inv1@example.com>", text: str = "When: Wednesday 10:00-11:00") -> bytes:
    method = calendar.split("METHOD:", 1)[1].split("\r\n", 1)[0]
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 30 Nov 2026 09:00:00 +0000\r\n"
            f"Message-ID: {message_id}\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/alternative; boundary="=_b1"\r\n\r\n'
            "--=_b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{text}\r\n"
            f"--=_b1\r\nContent-Type: text/calendar; charset=utf-8; method={method}\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            f"{calendar}"
            "--=_b1--\r\n").encode()
