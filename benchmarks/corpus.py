"""A fixed, realistic corpus of ActiveSync messages for the codec benchmarks.

Every message is written with ``eas.wbxml.Writer`` and the ``eas.tags`` constants, in
the element structures of MS-ASCMD, MS-ASEMAIL, MS-ASCAL, MS-ASCNTC, MS-ASPROV and
MS-ASAIRS (protocol 14.1; no 16.x-only tags, so that libwbxml 0.11.8 knows them all).
The content comes from ``random.Random(SEED)``: the same bytes on every run.

``corpus()`` gives ``[(name, wbxml bytes), ...]``; ``small(corpus)`` the messages of
at most ``SMALL_LIMIT`` bytes. For timing "writing a message with Writer",
``writer_function(node)`` compiles a message-specific function ``write(w)`` made of the
same ``with w.tag(...)`` / ``w.leaf`` / ``w.opaque`` / ``w.empty`` calls a handler
would make; ``calls(node)`` and ``replay(w, calls)`` are the flat alternative.

Run ``python benchmarks/corpus.py`` for a listing.
"""

from __future__ import annotations

import base64
import datetime as _dt
import random
import struct
from collections.abc import Callable

from eas import wbxml
from eas.tags import (
    GAL, AirSync, AirSyncBase, Calendar, ComposeMail, Contacts, Contacts2, Email, Email2,
    FolderHierarchy, GetItemEstimate, ItemOperations, MeetingResponse, Move, Ping, Provision,
    Settings, Tasks,
)
from eas.wbxml import Node, Writer

SEED = 20240611
SMALL_LIMIT = 2048

# ---------------------------------------------------------------------------------------
# Content generators

WORDS = (
    "the quarterly report meeting budget review project deadline customer proposal "
    "update schedule please find attached let me know thanks regards team office "
    "contract invoice delivery status server migration exchange calendar agenda "
    "minutes action items follow up tomorrow week friday monday discussion draft "
    "final version approval signature marketing campaign launch product roadmap "
    "release notes feedback survey results analysis forecast revenue growth costs "
    "travel booking hotel flight conference workshop training onboarding policy "
    "security compliance audit backup network outage maintenance window ticket"
).split()
# Bodies come in three scripts, per item: 60% plain ASCII, 30% with Latin-1 words (German,
# French, Spanish), 10% with wider ones (Polish, Cyrillic, CJK, emoji). Python stores these
# as 1-, 1- and 2-or-4-byte strings, which matters for the cost of UTF-8 en/decoding.
LATIN1_WORDS = ["Grüße", "Müller", "Zürich", "réunion", "café", "naïve", "São", "évaluation",
                "Ærø", "señor", "déjà", "Straße"]
WIDE_WORDS = LATIN1_WORDS + ["Łódź", "東京", "会議", "Привет", "😀", "€100", "✓"]
SCRIPTS = ((0.6, ()), (0.9, LATIN1_WORDS), (1.0, WIDE_WORDS))
FIRST = ["Anna", "Ben", "Chloé", "David", "Elif", "Frank", "Grace", "Hiro", "Ines", "Jonas",
         "Katarzyna", "Liam", "María", "Noah", "Olga", "Pedro", "Qiu", "Rosa", "Søren", "Tomás",
         "Uma", "Viktor", "Wei", "Xavier", "Yuki", "Zoë"]
LAST = ["Schmidt", "Smith", "García", "Nguyen", "Kowalski", "Rossi", "Dubois", "Johansson",
        "Tanaka", "O'Brien", "Müller", "Novak", "Silva", "Yılmaz", "Andersen", "Wong"]
DOMAINS = ["example.com", "contoso.com", "fabrikam.net", "example.org", "northwind.de"]
FOLDERS = ["Projects", "Customers", "Archive", "Receipts", "Travel", "Newsletters", "HR",
           "Finance", "Team", "Support", "Vendors", "Conferences", "Old mail", "Legal", "Ideas"]


class Gen:
    """Deterministic content from one seeded Random."""

    def __init__(self, seed: int = SEED) -> None:
        self.r = random.Random(seed)
        self.base = _dt.datetime(2024, 5, 6, 8, 0, 0)

    def script(self) -> None:
        """Pick the script of the next item's text (see SCRIPTS)."""
        x = self.r.random()
        self.extra = next(words for limit, words in SCRIPTS if x < limit)

    extra: tuple[str, ...] | list[str] = ()

    def words(self, n: int) -> str:
        r = self.r
        out = []
        extra = self.extra
        for _ in range(n):
            out.append(r.choice(extra) if extra and r.random() < 0.03 else r.choice(WORDS))
        return " ".join(out)

    def sentence(self, lo: int = 6, hi: int = 18) -> str:
        s = self.words(self.r.randint(lo, hi))
        return s[0].upper() + s[1:] + "."

    def person(self) -> tuple[str, str]:
        f, last = self.r.choice(FIRST), self.r.choice(LAST)
        user = (f[0] + last).lower().replace("'", "").encode("ascii", "ignore").decode() or "user"
        return f"{f} {last}", f"{user}@{self.r.choice(DOMAINS)}"

    def addr(self) -> str:
        name, email = self.person()
        return f'"{name}" <{email}>'

    def when(self, days: float = 30) -> _dt.datetime:
        return self.base + _dt.timedelta(seconds=self.r.randint(0, int(days * 86400)))

    @staticmethod
    def iso(t: _dt.datetime) -> str:  # MS-ASDTYPE dateTime
        return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")

    @staticmethod
    def compact(t: _dt.datetime) -> str:  # the calendar's compact form
        return t.strftime("%Y%m%dT%H%M%SZ")

    def plain_body(self, size: int) -> str:
        paras = []
        n = 0
        while n < size:
            p = " ".join(self.sentence() for _ in range(self.r.randint(2, 6)))
            paras.append(p)
            n += len(p) + 2
        return "\r\n\r\n".join(paras)[:size]

    def html_body(self, size: int) -> str:
        out = ['<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
               '<style type="text/css">p{margin:0;font-family:Calibri,sans-serif;font-size:11pt}</style>'
               '</head><body lang="en-US" link="#0563C1"><div class="WordSection1">']
        n = len(out[0])
        while n < size - 40:
            kind = self.r.random()
            if kind < 0.7:
                piece = f"<p class=\"MsoNormal\">{self.sentence()} {self.sentence()}</p>\r\n"
            elif kind < 0.85:
                items = "".join(f"<li>{self.words(self.r.randint(3, 8))}</li>" for _ in range(self.r.randint(2, 5)))
                piece = f"<ul style=\"margin-top:0cm\">{items}</ul>\r\n"
            else:
                piece = (f"<p class=\"MsoNormal\"><a href=\"https://{self.r.choice(DOMAINS)}/"
                         f"{self.r.randint(1000, 99999)}\">{self.words(3)}</a>&nbsp;&amp; {self.words(4)}</p>\r\n")
            out.append(piece)
            n += len(piece)
        out.append("</div></body></html>")
        return "".join(out)

    def blob(self, n: int) -> bytes:
        return bytes(self.r.getrandbits(8) for _ in range(n))

    def hexid(self, n: int) -> str:
        return "".join(self.r.choice("0123456789ABCDEF") for _ in range(n))


def timezone_blob() -> str:
    """A base64 TIME_ZONE_INFORMATION as MS-ASDTYPE 2.7.1 (W. Europe Standard Time)."""
    def name(s: str) -> bytes:
        return s.encode("utf-16-le").ljust(64, b"\0")

    def systime(month: int, dow: int, day: int, hour: int) -> bytes:
        return struct.pack("<8H", 0, month, dow, day, hour, 0, 0, 0)

    raw = (struct.pack("<i", -60) + name("W. Europe Standard Time") + systime(10, 0, 5, 3)
           + struct.pack("<i", 0) + name("W. Europe Daylight Time") + systime(3, 0, 5, 2)
           + struct.pack("<i", -60))
    assert len(raw) == 172
    return base64.b64encode(raw).decode()


# ---------------------------------------------------------------------------------------
# Messages


def folder_sync_response(g: Gen, nfolders: int = 50) -> bytes:
    w = Writer()
    with w.tag(FolderHierarchy.FolderSync):
        w.leaf(FolderHierarchy.Status, 1)
        w.leaf(FolderHierarchy.SyncKey, 1)
        with w.tag(FolderHierarchy.Changes):
            w.leaf(FolderHierarchy.Count, nfolders)
            default = [("Inbox", 2), ("Drafts", 3), ("Deleted Items", 4), ("Sent Items", 5),
                       ("Outbox", 6), ("Tasks", 7), ("Calendar", 8), ("Contacts", 9), ("Notes", 10),
                       ("Journal", 11), ("Junk Email", 12), ("RSS Feeds", 12), ("Conversation History", 12)]
            ids: list[str] = []
            for i in range(nfolders):
                if i < len(default):
                    dname, ftype = default[i]
                    parent = "0"
                else:
                    dname = g.r.choice(FOLDERS) + ("" if g.r.random() < 0.5 else f" {g.r.randint(2000, 2024)}")
                    ftype = g.r.choice((12, 12, 12, 1, 13, 14))
                    parent = g.r.choice(ids[:1] + ids[13:]) if ids else "0"
                sid = f"{i + 2}"
                ids.append(sid)
                with w.tag(FolderHierarchy.Add):
                    w.leaf(FolderHierarchy.ServerId, sid)
                    w.leaf(FolderHierarchy.ParentId, parent)
                    w.leaf(FolderHierarchy.DisplayName, dname)
                    w.leaf(FolderHierarchy.Type, ftype)
    return w.getvalue()


def write_mail(w: Writer, g: Gen, html: bool, size: int, full: bool = True) -> None:
    """Email ApplicationData children (MS-ASEMAIL 2.2.2), as Exchange 2010 orders them."""
    g.script()
    r = g.r
    to = [g.addr() for _ in range(r.randint(1, 4))]
    cc = [g.addr() for _ in range(r.randint(0, 3))]
    sender = g.addr()
    subject = g.words(r.randint(3, 9)).capitalize()
    if r.random() < 0.4:
        subject = r.choice(("RE: ", "FW: ", "AW: ")) + subject
    w.leaf(Email.To, ", ".join(to))
    if cc:
        w.leaf(Email.Cc, ", ".join(cc))
    w.leaf(Email.From, sender)
    if r.random() < 0.2:
        w.leaf(Email.ReplyTo, g.addr())
    w.leaf(Email.Subject, subject)
    w.leaf(Email.DateReceived, g.iso(g.when()))
    w.leaf(Email.DisplayTo, "; ".join(a.split('"')[1] for a in to))
    w.leaf(Email.ThreadTopic, subject.split(": ", 1)[-1])
    w.leaf(Email.Importance, r.choice((1, 1, 1, 0, 2)))
    w.leaf(Email.Read, r.choice((0, 1, 1)))
    if r.random() < 0.25:
        with w.tag(AirSyncBase.Attachments):
            for k in range(r.randint(1, 3)):
                with w.tag(AirSyncBase.Attachment):
                    w.leaf(AirSyncBase.DisplayName, f"{g.words(2).replace(' ', '_')}.{r.choice(('pdf', 'docx', 'xlsx', 'png'))}")
                    w.leaf(AirSyncBase.FileReference, f"RgAAAAD{g.hexid(40)}%3a{k}")
                    w.leaf(AirSyncBase.Method, 1)
                    w.leaf(AirSyncBase.EstimatedDataSize, r.randint(2000, 4_000_000))
                    if r.random() < 0.3:
                        w.leaf(AirSyncBase.ContentId, f"image{k:03}.png@01DA{g.hexid(8)}")
                        w.empty(AirSyncBase.IsInline) if r.random() < 0.5 else w.leaf(AirSyncBase.IsInline, 1)
    body = g.html_body(size) if html else g.plain_body(size)
    with w.tag(AirSyncBase.Body):
        w.leaf(AirSyncBase.Type, 2 if html else 1)
        w.leaf(AirSyncBase.EstimatedDataSize, len(body.encode()))
        w.leaf(AirSyncBase.Truncated, 0)
        w.leaf(AirSyncBase.Data, body)
        if full and r.random() < 0.5:
            w.leaf(AirSyncBase.Preview, g.sentence()[:255])
    w.leaf(Email.MessageClass, r.choice(("IPM.Note", "IPM.Note", "IPM.Note", "IPM.Note.SMIME.MultipartSigned")))
    w.leaf(Email.InternetCPID, 65001)
    if r.random() < 0.3:
        with w.tag(Email.Flag):
            w.leaf(Email.Status, 2)
            w.leaf(Email.FlagType, "Follow up")
            start = g.when()
            w.leaf(Tasks.StartDate, g.iso(start))
            w.leaf(Tasks.UtcStartDate, g.iso(start))
            w.leaf(Tasks.DueDate, g.iso(start + _dt.timedelta(days=2)))
            w.leaf(Tasks.UtcDueDate, g.iso(start + _dt.timedelta(days=2)))
            w.leaf(Tasks.ReminderSet, 0)
    else:
        w.empty(Email.Flag)
    w.leaf(Email.ContentClass, "urn:content-classes:message")
    w.leaf(AirSyncBase.NativeBodyType, 2 if html else 1)
    w.opaque(Email2.ConversationId, g.blob(16))
    w.opaque(Email2.ConversationIndex, g.blob(5 + 5 * r.randint(0, 3)))
    if r.random() < 0.3:
        with w.tag(Email.Categories):
            for c in r.sample(("Red category", "Blue category", "Important", "Project X", "Personal"), r.randint(1, 3)):
                w.leaf(Email.Category, c)
    if r.random() < 0.3:
        w.leaf(Email2.LastVerbExecuted, r.choice((1, 2, 3)))
        w.leaf(Email2.LastVerbExecutionTime, g.iso(g.when()))
    w.leaf(Email2.ReceivedAsBcc, 0)
    if r.random() < 0.1:
        w.leaf(Email2.Sender, g.addr())


def sync_mail_response(g: Gen, nmails: int) -> bytes:
    w = Writer()
    with w.tag(AirSync.Sync):
        with w.tag(AirSync.Collections):
            with w.tag(AirSync.Collection):
                w.leaf(AirSync.SyncKey, g.r.randint(10**8, 10**9))
                w.leaf(AirSync.CollectionId, 5)
                w.leaf(AirSync.Status, 1)
                if nmails >= 25:
                    w.empty(AirSync.MoreAvailable)
                with w.tag(AirSync.Commands):
                    for i in range(nmails):
                        with w.tag(AirSync.Add):
                            w.leaf(AirSync.ServerId, f"5:{g.r.randint(1, 9999)}")
                            with w.tag(AirSync.ApplicationData):
                                write_mail(w, g, html=g.r.random() < 0.6, size=g.r.randint(1500, 18000))
    return w.getvalue()


def write_recurrence(w: Writer, g: Gen) -> None:
    r = g.r
    kind = r.choice((0, 1, 2, 5))
    with w.tag(Calendar.Recurrence):
        w.leaf(Calendar.Type, kind)
        w.leaf(Calendar.Interval, r.randint(1, 2))
        if kind == 1:
            w.leaf(Calendar.DayOfWeek, r.choice((2, 10, 62, 34)))
        elif kind == 2:
            w.leaf(Calendar.DayOfMonth, r.randint(1, 28))
        elif kind == 5:
            w.leaf(Calendar.DayOfMonth, r.randint(1, 28))
            w.leaf(Calendar.MonthOfYear, r.randint(1, 12))
        if r.random() < 0.5:
            w.leaf(Calendar.Until, g.compact(g.when(300)))
        else:
            w.leaf(Calendar.Occurrences, r.randint(2, 52))
        w.leaf(Calendar.FirstDayOfWeek, 1)


def write_event(w: Writer, g: Gen, tz: str) -> None:
    """Calendar ApplicationData (MS-ASCAL 2.2.2)."""
    g.script()
    r = g.r
    start = g.when(60).replace(minute=r.choice((0, 30)), second=0)
    end = start + _dt.timedelta(minutes=r.choice((30, 60, 90, 120)))
    org_name, org_email = g.person()
    w.leaf(Calendar.Timezone, tz)
    w.leaf(Calendar.DtStamp, g.compact(g.when()))
    w.leaf(Calendar.StartTime, g.compact(start))
    w.leaf(Calendar.Subject, g.words(r.randint(2, 7)).capitalize())
    w.leaf(Calendar.UID, "040000008200E00074C5B7101A82E00800000000" + g.hexid(72))
    w.leaf(Calendar.OrganizerName, org_name)
    w.leaf(Calendar.OrganizerEmail, org_email)
    if r.random() < 0.8:
        with w.tag(Calendar.Attendees):
            for _ in range(r.randint(1, 12)):
                name, email = g.person()
                with w.tag(Calendar.Attendee):
                    w.leaf(Calendar.Email, email)
                    w.leaf(Calendar.Name, name)
                    w.leaf(Calendar.AttendeeStatus, r.choice((0, 2, 3, 4, 5)))
                    w.leaf(Calendar.AttendeeType, r.choice((1, 1, 2, 3)))
    w.leaf(Calendar.Location, r.choice(("Room 4.01", "Teams meeting", "Berlin HQ, Room Spree", "Café", "Online")))
    w.leaf(Calendar.EndTime, g.compact(end))
    recurring = r.random() < 0.4
    if recurring:
        write_recurrence(w, g)
    body = g.plain_body(r.randint(100, 2500))
    with w.tag(AirSyncBase.Body):
        w.leaf(AirSyncBase.Type, 1)
        w.leaf(AirSyncBase.EstimatedDataSize, len(body.encode()))
        w.leaf(AirSyncBase.Truncated, 0)
        w.leaf(AirSyncBase.Data, body)
    w.leaf(Calendar.Sensitivity, 0)
    w.leaf(Calendar.BusyStatus, r.choice((1, 2, 2, 3)))
    w.leaf(Calendar.AllDayEvent, 0)
    w.leaf(Calendar.Reminder, r.choice((5, 10, 15, 30)))
    if recurring and r.random() < 0.7:
        with w.tag(Calendar.Exceptions):
            for _ in range(r.randint(1, 4)):
                with w.tag(Calendar.Exception):
                    ex = start + _dt.timedelta(days=7 * r.randint(1, 20))
                    if r.random() < 0.4:
                        w.leaf(Calendar.Deleted, 1)
                        w.leaf(Calendar.ExceptionStartTime, g.compact(ex))
                    else:
                        w.leaf(Calendar.ExceptionStartTime, g.compact(ex))
                        w.leaf(Calendar.StartTime, g.compact(ex + _dt.timedelta(hours=1)))
                        w.leaf(Calendar.EndTime, g.compact(ex + _dt.timedelta(hours=2)))
                        w.leaf(Calendar.Subject, g.words(4).capitalize())
                        w.leaf(Calendar.Location, "Room 2.17")
                        w.leaf(Calendar.BusyStatus, 2)
                        w.leaf(Calendar.AllDayEvent, 0)
                        w.leaf(Calendar.Reminder, 15)
                        w.leaf(Calendar.DtStamp, g.compact(g.when()))
                        w.leaf(Calendar.MeetingStatus, 3)
                        w.leaf(Calendar.AppointmentReplyTime, g.compact(g.when()))
                        w.leaf(Calendar.ResponseType, 3)
    if r.random() < 0.3:
        with w.tag(Calendar.Categories):
            w.leaf(Calendar.Category, r.choice(("Travel", "Customer", "Internal")))
    w.leaf(Calendar.MeetingStatus, r.choice((0, 1, 3)))
    w.leaf(AirSyncBase.NativeBodyType, 1)
    w.leaf(Calendar.ResponseRequested, 1)
    w.leaf(Calendar.AppointmentReplyTime, g.compact(g.when()))
    w.leaf(Calendar.ResponseType, r.choice((1, 2, 3, 5)))
    w.leaf(Calendar.DisallowNewTimeProposal, 0)


def sync_calendar_response(g: Gen, nevents: int = 30) -> bytes:
    tz = timezone_blob()
    w = Writer()
    with w.tag(AirSync.Sync):
        with w.tag(AirSync.Collections):
            with w.tag(AirSync.Collection):
                w.leaf(AirSync.SyncKey, g.r.randint(10**8, 10**9))
                w.leaf(AirSync.CollectionId, 8)
                w.leaf(AirSync.Status, 1)
                with w.tag(AirSync.Commands):
                    for _ in range(nevents):
                        with w.tag(AirSync.Add):
                            w.leaf(AirSync.ServerId, f"8:{g.r.randint(1, 9999)}")
                            with w.tag(AirSync.ApplicationData):
                                write_event(w, g, tz)
                    for _ in range(3):
                        with w.tag(AirSync.Delete):
                            w.leaf(AirSync.ServerId, f"8:{g.r.randint(1, 9999)}")
    return w.getvalue()


def write_contact(w: Writer, g: Gen) -> None:
    """Contacts ApplicationData (MS-ASCNTC 2.2.2)."""
    g.script()
    r = g.r
    first, last = r.choice(FIRST), r.choice(LAST)
    _, email = g.person()
    company = r.choice(("Contoso Ltd.", "Fabrikam GmbH", "Northwind Traders", "Adventure Works"))
    phone = lambda: f"+{r.randint(1, 49)} {r.randint(100, 999)} {r.randint(1000000, 9999999)}"  # noqa: E731
    w.leaf(Contacts.FileAs, f"{last}, {first}")
    w.leaf(Contacts.FirstName, first)
    w.leaf(Contacts.LastName, last)
    if r.random() < 0.3:
        w.leaf(Contacts.MiddleName, r.choice(FIRST))
    if r.random() < 0.3:
        w.leaf(Contacts.Title, r.choice(("Dr.", "Mr.", "Ms.", "Prof.")))
    w.leaf(Contacts.CompanyName, company)
    w.leaf(Contacts.Department, r.choice(("Sales", "Engineering", "Finance", "Legal", "Support")))
    w.leaf(Contacts.JobTitle, r.choice(("Account Manager", "Engineer", "Director", "Consultant")))
    w.leaf(Contacts.OfficeLocation, f"Building {r.randint(1, 9)}, Floor {r.randint(1, 12)}")
    w.leaf(Contacts.Email1Address, f'"{first} {last}" <{email}>')
    if r.random() < 0.5:
        w.leaf(Contacts.Email2Address, f"{first.lower()}.{last.lower()}@gmail.example")
    w.leaf(Contacts.BusinessPhoneNumber, phone())
    w.leaf(Contacts.MobilePhoneNumber, phone())
    if r.random() < 0.5:
        w.leaf(Contacts.HomePhoneNumber, phone())
    if r.random() < 0.2:
        w.leaf(Contacts.BusinessFaxNumber, phone())
    w.leaf(Contacts.BusinessAddressStreet, f"{r.randint(1, 200)} {r.choice(('Main St', 'Hauptstraße', 'Rue de Rivoli', 'High Street'))}")
    w.leaf(Contacts.BusinessAddressCity, r.choice(("Berlin", "Zürich", "Paris", "London", "Seattle")))
    w.leaf(Contacts.BusinessAddressState, r.choice(("BE", "ZH", "IDF", "WA", "NY")))
    w.leaf(Contacts.BusinessAddressPostalCode, str(r.randint(10000, 99999)))
    w.leaf(Contacts.BusinessAddressCountry, r.choice(("Germany", "Switzerland", "France", "UK", "USA")))
    if r.random() < 0.4:
        w.leaf(Contacts.HomeAddressStreet, f"{r.randint(1, 200)} Elm Road")
        w.leaf(Contacts.HomeAddressCity, "Potsdam")
        w.leaf(Contacts.HomeAddressPostalCode, str(r.randint(10000, 99999)))
        w.leaf(Contacts.HomeAddressCountry, "Germany")
    if r.random() < 0.5:
        w.leaf(Contacts.Birthday, g.iso(_dt.datetime(r.randint(1950, 2000), r.randint(1, 12), r.randint(1, 28), 11, 0)))
    if r.random() < 0.3:
        w.leaf(Contacts.WebPage, f"https://www.{r.choice(DOMAINS)}/~{last.lower()}")
    if r.random() < 0.3:
        with w.tag(Contacts.Categories):
            w.leaf(Contacts.Category, r.choice(("Business", "Family", "VIP")))
    if r.random() < 0.2:
        with w.tag(Contacts.Children):
            for _ in range(r.randint(1, 3)):
                w.leaf(Contacts.Child, r.choice(FIRST))
        w.leaf(Contacts.Spouse, f"{r.choice(FIRST)} {last}")
    if r.random() < 0.6:
        note = g.plain_body(r.randint(50, 600))
        with w.tag(AirSyncBase.Body):
            w.leaf(AirSyncBase.Type, 1)
            w.leaf(AirSyncBase.EstimatedDataSize, len(note.encode()))
            w.leaf(AirSyncBase.Truncated, 0)
            w.leaf(AirSyncBase.Data, note)
    w.leaf(AirSyncBase.NativeBodyType, 1)
    if r.random() < 0.2:
        w.leaf(Contacts.Picture, base64.b64encode(g.blob(r.randint(800, 3000))).decode())
    w.leaf(Contacts2.NickName, first[:3])
    if r.random() < 0.4:
        w.leaf(Contacts2.IMAddress, email)
    if r.random() < 0.4:
        w.leaf(Contacts2.ManagerName, " ".join(g.person()[0].split()))
    w.leaf(Contacts2.CompanyMainPhone, phone())
    w.leaf(Contacts2.AccountName, email.split("@")[0])


def sync_contacts_response(g: Gen, ncontacts: int = 60) -> bytes:
    w = Writer()
    with w.tag(AirSync.Sync):
        with w.tag(AirSync.Collections):
            with w.tag(AirSync.Collection):
                w.leaf(AirSync.SyncKey, g.r.randint(10**8, 10**9))
                w.leaf(AirSync.CollectionId, 9)
                w.leaf(AirSync.Status, 1)
                with w.tag(AirSync.Commands):
                    for _ in range(ncontacts):
                        with w.tag(AirSync.Add):
                            w.leaf(AirSync.ServerId, f"9:{g.r.randint(1, 9999)}")
                            with w.tag(AirSync.ApplicationData):
                                write_contact(w, g)
    return w.getvalue()


def provision_response(g: Gen) -> bytes:
    """Provision response with the full EASProvisionDoc (MS-ASPROV 2.2.2.27)."""
    P = Provision
    w = Writer()
    with w.tag(P.Provision):
        w.leaf(P.Status, 1)
        with w.tag(P.Policies):
            with w.tag(P.Policy):
                w.leaf(P.PolicyType, "MS-EAS-Provisioning-WBXML")
                w.leaf(P.Status, 1)
                w.leaf(P.PolicyKey, g.r.randint(10**9, 4 * 10**9))
                with w.tag(P.Data):
                    with w.tag(P.EASProvisionDoc):
                        for tag, value in (
                            (P.DevicePasswordEnabled, 1), (P.AlphanumericDevicePasswordRequired, 0),
                            (P.PasswordRecoveryEnabled, 1), (P.RequireStorageCardEncryption, 0),
                            (P.AttachmentsEnabled, 1), (P.MinDevicePasswordLength, 6),
                            (P.MaxInactivityTimeDeviceLock, 900), (P.MaxDevicePasswordFailedAttempts, 8),
                            (P.MaxAttachmentSize, None), (P.AllowSimpleDevicePassword, 0),
                            (P.DevicePasswordExpiration, 90), (P.DevicePasswordHistory, 5),
                            (P.AllowStorageCard, 1), (P.AllowCamera, 1), (P.RequireDeviceEncryption, 1),
                            (P.AllowUnsignedApplications, 1), (P.AllowUnsignedInstallationPackages, 1),
                            (P.MinDevicePasswordComplexCharacters, 3), (P.AllowWiFi, 1),
                            (P.AllowTextMessaging, 1), (P.AllowPOPIMAPEmail, 1), (P.AllowBluetooth, 2),
                            (P.AllowIrDA, 1), (P.RequireManualSyncWhenRoaming, 0), (P.AllowDesktopSync, 1),
                            (P.MaxCalendarAgeFilter, 0), (P.AllowHTMLEmail, 1), (P.MaxEmailAgeFilter, 0),
                            (P.MaxEmailBodyTruncationSize, -1), (P.MaxEmailHTMLBodyTruncationSize, -1),
                            (P.RequireSignedSMIMEMessages, 0), (P.RequireEncryptedSMIMEMessages, 0),
                            (P.RequireSignedSMIMEAlgorithm, 0), (P.RequireEncryptionSMIMEAlgorithm, 0),
                            (P.AllowSMIMEEncryptionAlgorithmNegotiation, 2), (P.AllowSMIMESoftCerts, 1),
                            (P.AllowBrowser, 1), (P.AllowConsumerEmail, 1), (P.AllowRemoteDesktop, 1),
                            (P.AllowInternetSharing, 1),
                        ):
                            if value is None:
                                w.empty(tag)
                            else:
                                w.leaf(tag, str(value))
                        with w.tag(P.UnapprovedInROMApplicationList):
                            for app in ("Solitaire", "Internet Sharing", "Hearts"):
                                w.leaf(P.ApplicationName, app)
                        with w.tag(P.ApprovedApplicationList):
                            for _ in range(3):
                                w.leaf(P.Hash, g.hexid(40))
    return w.getvalue()


def ping_request(folders: list[tuple[str, str]], interval: int = 900) -> bytes:
    w = Writer()
    with w.tag(Ping.Ping):
        w.leaf(Ping.HeartbeatInterval, interval)
        with w.tag(Ping.Folders):
            for fid, cls in folders:
                with w.tag(Ping.Folder):
                    w.leaf(Ping.Id, fid)
                    w.leaf(Ping.Class, cls)
    return w.getvalue()


def ping_response(changed: list[str]) -> bytes:
    w = Writer()
    with w.tag(Ping.Ping):
        w.leaf(Ping.Status, 2 if changed else 1)
        if changed:
            with w.tag(Ping.Folders):
                for fid in changed:
                    w.leaf(Ping.Folder, fid)
    return w.getvalue()


def item_operations_fetch_response(g: Gen) -> bytes:
    """ItemOperations response: a whole mail, and an attachment by FileReference."""
    w = Writer()
    with w.tag(ItemOperations.ItemOperations):
        w.leaf(ItemOperations.Status, 1)
        with w.tag(ItemOperations.Response):
            with w.tag(ItemOperations.Fetch):
                w.leaf(ItemOperations.Status, 1)
                w.leaf(AirSync.CollectionId, 5)
                w.leaf(AirSync.ServerId, "5:1741")
                w.leaf(AirSync.Class, "Email")
                with w.tag(ItemOperations.Properties):
                    write_mail(w, g, html=True, size=26000, full=False)
            with w.tag(ItemOperations.Fetch):
                w.leaf(ItemOperations.Status, 1)
                w.leaf(AirSyncBase.FileReference, f"RgAAAAD{g.hexid(40)}%3a0")
                with w.tag(ItemOperations.Properties):
                    w.leaf(AirSyncBase.ContentType, "application/pdf")
                    att = g.blob(12000)
                    w.leaf(ItemOperations.Total, len(att))
                    w.leaf(ItemOperations.Data, base64.b64encode(att).decode())
    return w.getvalue()


def mime_message(g: Gen, size: int) -> bytes:
    """An RFC 5322 multipart/alternative message, as a client puts in SendMail."""
    g.script()
    _, frm = g.person()
    to = ", ".join(g.addr() for _ in range(3))
    boundary = "_000_" + g.hexid(24) + "_"
    plain = g.plain_body(size // 3)
    html = g.html_body(size // 2)
    qp = lambda s: s.encode("utf-8").decode("latin-1").encode("latin-1")  # noqa: E731
    lines = [
        f"From: {frm}", f"To: {to}", f"Subject: {g.words(5).capitalize()}",
        "Date: Mon, 6 May 2024 10:42:17 +0200", f"Message-ID: <{g.hexid(20)}@{g.r.choice(DOMAINS)}>",
        "MIME-Version: 1.0", "X-Mailer: eas-benchmark",
        f'Content-Type: multipart/alternative; boundary="{boundary}"', "",
        f"--{boundary}", 'Content-Type: text/plain; charset="utf-8"', "Content-Transfer-Encoding: 8bit", "",
    ]
    head = "\r\n".join(lines).encode() + b"\r\n" + qp(plain)
    tail = (f"\r\n--{boundary}\r\nContent-Type: text/html; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + qp(html) + f"\r\n--{boundary}--\r\n".encode()
    return head + tail


def send_mail(g: Gen) -> bytes:
    """SendMail in the 14.0 WBXML form (MS-ASCMD 2.2.1.17): ClientId, SaveInSentItems, Mime."""
    w = Writer()
    with w.tag(ComposeMail.SendMail):
        w.leaf(ComposeMail.ClientId, f"SendMail-{g.r.randint(10**11, 10**12)}")
        w.empty(ComposeMail.SaveInSentItems)
        w.opaque(ComposeMail.Mime, mime_message(g, 12000))
    return w.getvalue()


# Small messages (<= 2 KB)


def folder_sync_request(key: str) -> bytes:
    w = Writer()
    with w.tag(FolderHierarchy.FolderSync):
        w.leaf(FolderHierarchy.SyncKey, key)
    return w.getvalue()


def sync_request_initial() -> bytes:
    w = Writer()
    with w.tag(AirSync.Sync):
        with w.tag(AirSync.Collections):
            with w.tag(AirSync.Collection):
                w.leaf(AirSync.SyncKey, 0)
                w.leaf(AirSync.CollectionId, 5)
    return w.getvalue()


def sync_request_options(g: Gen) -> bytes:
    w = Writer()
    with w.tag(AirSync.Sync):
        with w.tag(AirSync.Collections):
            for cid, cls in ((5, "Email"), (8, "Calendar"), (9, "Contacts")):
                with w.tag(AirSync.Collection):
                    w.leaf(AirSync.SyncKey, g.r.randint(10**8, 10**9))
                    w.leaf(AirSync.CollectionId, cid)
                    w.empty(AirSync.DeletesAsMoves)
                    w.empty(AirSync.GetChanges)
                    w.leaf(AirSync.WindowSize, 25)
                    with w.tag(AirSync.Options):
                        if cls == "Email":
                            w.leaf(AirSync.FilterType, 3)
                        with w.tag(AirSyncBase.BodyPreference):
                            w.leaf(AirSyncBase.Type, 2 if cls == "Email" else 1)
                            w.leaf(AirSyncBase.TruncationSize, 51200 if cls == "Email" else 32768)
                            if cls == "Email":
                                w.leaf(AirSyncBase.Preview, 255)
                        if cls == "Email":
                            w.leaf(AirSync.MIMESupport, 0)
        w.leaf(AirSync.WindowSize, 100)
    return w.getvalue()


def sync_request_changes(g: Gen) -> bytes:
    """A client's Sync with a flag change, a read change, a delete and a new contact."""
    w = Writer()
    with w.tag(AirSync.Sync):
        with w.tag(AirSync.Collections):
            with w.tag(AirSync.Collection):
                w.leaf(AirSync.SyncKey, g.r.randint(10**8, 10**9))
                w.leaf(AirSync.CollectionId, 5)
                w.empty(AirSync.GetChanges)
                with w.tag(AirSync.Commands):
                    with w.tag(AirSync.Change):
                        w.leaf(AirSync.ServerId, "5:12")
                        with w.tag(AirSync.ApplicationData):
                            w.leaf(Email.Read, 1)
                    with w.tag(AirSync.Change):
                        w.leaf(AirSync.ServerId, "5:19")
                        with w.tag(AirSync.ApplicationData):
                            with w.tag(Email.Flag):
                                w.leaf(Email.Status, 2)
                                w.leaf(Email.FlagType, "for Follow Up")
                                w.leaf(Tasks.StartDate, "2024-05-07T00:00:00.000Z")
                                w.leaf(Tasks.UtcStartDate, "2024-05-06T22:00:00.000Z")
                                w.leaf(Tasks.DueDate, "2024-05-08T00:00:00.000Z")
                                w.leaf(Tasks.UtcDueDate, "2024-05-07T22:00:00.000Z")
                    with w.tag(AirSync.Delete):
                        w.leaf(AirSync.ServerId, "5:7")
            with w.tag(AirSync.Collection):
                w.leaf(AirSync.SyncKey, g.r.randint(10**8, 10**9))
                w.leaf(AirSync.CollectionId, 9)
                with w.tag(AirSync.Commands):
                    with w.tag(AirSync.Add):
                        w.leaf(AirSync.ClientId, g.r.randint(10**5, 10**6))
                        with w.tag(AirSync.ApplicationData):
                            w.leaf(Contacts.FileAs, "Kowalski, Katarzyna")
                            w.leaf(Contacts.FirstName, "Katarzyna")
                            w.leaf(Contacts.LastName, "Kowalski")
                            w.leaf(Contacts.MobilePhoneNumber, "+48 601 234 567")
                            w.leaf(Contacts.Email1Address, "kkowalski@example.com")
    return w.getvalue()


def sync_response_small(g: Gen) -> bytes:
    """A Sync response with a few changes and the client's adds acknowledged."""
    w = Writer()
    with w.tag(AirSync.Sync):
        with w.tag(AirSync.Collections):
            with w.tag(AirSync.Collection):
                w.leaf(AirSync.SyncKey, g.r.randint(10**8, 10**9))
                w.leaf(AirSync.CollectionId, 5)
                w.leaf(AirSync.Status, 1)
                with w.tag(AirSync.Commands):
                    for sid in ("5:31", "5:32"):
                        with w.tag(AirSync.Change):
                            w.leaf(AirSync.ServerId, sid)
                            with w.tag(AirSync.ApplicationData):
                                w.leaf(Email.Read, 1)
                                w.empty(Email.Flag)
                    with w.tag(AirSync.SoftDelete):
                        w.leaf(AirSync.ServerId, "5:3")
            with w.tag(AirSync.Collection):
                w.leaf(AirSync.SyncKey, g.r.randint(10**8, 10**9))
                w.leaf(AirSync.CollectionId, 9)
                w.leaf(AirSync.Status, 1)
                with w.tag(AirSync.Responses):
                    with w.tag(AirSync.Add):
                        w.leaf(AirSync.ClientId, 123456)
                        w.leaf(AirSync.ServerId, "9:88")
                        w.leaf(AirSync.Status, 1)
    return w.getvalue()


def sync_response_empty() -> bytes:
    w = Writer()
    with w.tag(AirSync.Sync):
        w.leaf(AirSync.Status, 1)
    return w.getvalue()


def device_information(w: Writer, fields: dict[int, str | int]) -> None:
    """Settings:DeviceInformation with its Set, as Settings and the first Provision send it."""
    with w.tag(Settings.DeviceInformation):
        with w.tag(Settings.Set):
            for tag, value in fields.items():
                w.leaf(tag, value)


def settings_request() -> bytes:
    w = Writer()
    with w.tag(Settings.Settings):
        device_information(w, {
            Settings.Model: "Pixel 8", Settings.IMEI: "356938035643809", Settings.FriendlyName: "Anna's phone",
            Settings.OS: "Android 14", Settings.OSLanguage: "Deutsch", Settings.PhoneNumber: "+49 170 1234567",
            Settings.UserAgent: "Android-Mail/2024.04.28", Settings.EnableOutboundSMS: 0,
            Settings.MobileOperator: "Telekom.de",
        })
        with w.tag(Settings.UserInformation):
            w.empty(Settings.Get)
        with w.tag(Settings.Oof):
            with w.tag(Settings.Get):
                w.leaf(Settings.BodyType, "Text")
    return w.getvalue()


def settings_response(g: Gen) -> bytes:
    w = Writer()
    with w.tag(Settings.Settings):
        w.leaf(Settings.Status, 1)
        with w.tag(Settings.DeviceInformation):
            w.leaf(Settings.Status, 1)
        with w.tag(Settings.UserInformation):
            w.leaf(Settings.Status, 1)
            with w.tag(Settings.Get):
                with w.tag(Settings.Accounts):
                    with w.tag(Settings.Account):
                        w.leaf(Settings.UserDisplayName, "Anna Schmidt")
                        with w.tag(Settings.EmailAddresses):
                            w.leaf(Settings.SMTPAddress, "aschmidt@example.com")
                            w.leaf(Settings.SMTPAddress, "anna.schmidt@example.com")
                            w.leaf(Settings.PrimarySmtpAddress, "aschmidt@example.com")
        with w.tag(Settings.Oof):
            w.leaf(Settings.Status, 1)
            with w.tag(Settings.Get):
                w.leaf(Settings.OofState, 2)
                w.leaf(Settings.StartTime, "2024-07-29T00:00:00.000Z")
                w.leaf(Settings.EndTime, "2024-08-16T00:00:00.000Z")
                for applies in (Settings.AppliesToInternal, Settings.AppliesToExternalKnown):
                    with w.tag(applies):
                        w.leaf(Settings.Enabled, 1)
                        w.leaf(Settings.ReplyMessage, "Ich bin bis 16. August nicht im Büro. " + g.sentence())
                        w.leaf(Settings.BodyType, "Text")
    return w.getvalue()


def get_item_estimate_request() -> bytes:
    w = Writer()
    with w.tag(GetItemEstimate.GetItemEstimate):
        with w.tag(GetItemEstimate.Collections):
            for cid, key in ((5, "291012345"), (8, "291012346")):
                with w.tag(GetItemEstimate.Collection):
                    w.leaf(AirSync.SyncKey, key)
                    w.leaf(GetItemEstimate.CollectionId, cid)
                    with w.tag(AirSync.Options):
                        w.leaf(AirSync.FilterType, 3)
    return w.getvalue()


def get_item_estimate_response() -> bytes:
    w = Writer()
    with w.tag(GetItemEstimate.GetItemEstimate):
        for cid, n in ((5, 37), (8, 4)):
            with w.tag(GetItemEstimate.Response):
                w.leaf(GetItemEstimate.Status, 1)
                with w.tag(GetItemEstimate.Collection):
                    w.leaf(GetItemEstimate.CollectionId, cid)
                    w.leaf(GetItemEstimate.Estimate, n)
    return w.getvalue()


def provision_request_initial() -> bytes:
    w = Writer()
    with w.tag(Provision.Provision):
        device_information(w, {
            Settings.Model: "iPhone15,2", Settings.IMEI: "35 209900 176148 1", Settings.FriendlyName: "iPhone",
            Settings.OS: "iOS 17.4.1 21E236", Settings.OSLanguage: "en", Settings.PhoneNumber: "+1 206 555 0100",
            Settings.UserAgent: "Apple-iPhone15C2/2104.236", Settings.MobileOperator: "T-Mobile",
        })
        with w.tag(Provision.Policies):
            with w.tag(Provision.Policy):
                w.leaf(Provision.PolicyType, "MS-EAS-Provisioning-WBXML")
    return w.getvalue()


def provision_ack() -> bytes:
    w = Writer()
    with w.tag(Provision.Provision):
        with w.tag(Provision.Policies):
            with w.tag(Provision.Policy):
                w.leaf(Provision.PolicyType, "MS-EAS-Provisioning-WBXML")
                w.leaf(Provision.PolicyKey, 3942919513)
                w.leaf(Provision.Status, 1)
    return w.getvalue()


def move_items_request() -> bytes:
    w = Writer()
    with w.tag(Move.MoveItems):
        for src in ("5:17", "5:23", "5:24"):
            with w.tag(Move.Move):
                w.leaf(Move.SrcMsgId, src)
                w.leaf(Move.SrcFldId, 5)
                w.leaf(Move.DstFldId, 21)
    return w.getvalue()


def meeting_response_request() -> bytes:
    w = Writer()
    with w.tag(MeetingResponse.MeetingResponse):
        with w.tag(MeetingResponse.Request):
            w.leaf(MeetingResponse.UserResponse, 1)
            w.leaf(MeetingResponse.CollectionId, 5)
            w.leaf(MeetingResponse.RequestId, "5:48")
    return w.getvalue()


def item_operations_fetch_request() -> bytes:
    w = Writer()
    with w.tag(ItemOperations.ItemOperations):
        with w.tag(ItemOperations.Fetch):
            w.leaf(ItemOperations.Store, "Mailbox")
            w.leaf(AirSync.CollectionId, 5)
            w.leaf(AirSync.ServerId, "5:1741")
            with w.tag(ItemOperations.Options):
                with w.tag(AirSyncBase.BodyPreference):
                    w.leaf(AirSyncBase.Type, 2)
        with w.tag(ItemOperations.Fetch):
            w.leaf(ItemOperations.Store, "Mailbox")
            w.leaf(AirSyncBase.FileReference, "RgAAAAD4C1F0E6B2A9D8C7B6A5F4E3D2C1B0A9F8E7D%3a0")
    return w.getvalue()


def search_gal_response() -> bytes:
    """Not a Search envelope (kept small): a GAL entry's Properties-like leaf set in a Sync
    Add, to have the GAL page present among the small messages."""
    w = Writer()
    with w.tag(AirSync.Sync):
        with w.tag(AirSync.Collections):
            with w.tag(AirSync.Collection):
                w.leaf(AirSync.SyncKey, 7)
                w.leaf(AirSync.CollectionId, 9)
                w.leaf(AirSync.Status, 1)
                with w.tag(AirSync.Commands):
                    with w.tag(AirSync.Add):
                        w.leaf(AirSync.ServerId, "9:2")
                        with w.tag(AirSync.ApplicationData):
                            w.leaf(GAL.DisplayName, "Wei Wong")
                            w.leaf(GAL.EmailAddress, "wwong@contoso.com")
                            w.leaf(GAL.Phone, "+1 425 555 0199")
    return w.getvalue()


def corpus(seed: int = SEED) -> list[tuple[str, bytes]]:
    """The benchmark corpus: ``[(name, WBXML bytes), ...]``, the same on every call."""
    g = Gen(seed)
    folders = [("5", "Email"), ("8", "Calendar"), ("9", "Contacts"), ("7", "Tasks"), ("21", "Email")]
    msgs: list[tuple[str, bytes]] = [
        ("FolderSync response (50 folders)", folder_sync_response(g, 50)),
        ("Sync response, 1 mail", sync_mail_response(g, 1)),
        ("Sync response, 25 mails", sync_mail_response(g, 25)),
        ("Sync response, 100 mails", sync_mail_response(g, 100)),
        ("Sync response, calendar (30 events)", sync_calendar_response(g, 30)),
        ("Sync response, contacts (60)", sync_contacts_response(g, 60)),
        ("Provision response (EASProvisionDoc)", provision_response(g)),
        ("ItemOperations Fetch response", item_operations_fetch_response(g)),
        ("SendMail (14.0, MIME)", send_mail(g)),
        # small messages
        ("Ping request", ping_request(folders)),
        ("Ping response (changes)", ping_response(["5", "9"])),
        ("Ping response (no changes)", ping_response([])),
        ("FolderSync request (initial)", folder_sync_request("0")),
        ("FolderSync request", folder_sync_request("7")),
        ("Sync request (initial)", sync_request_initial()),
        ("Sync request (3 collections, options)", sync_request_options(g)),
        ("Sync request (client changes)", sync_request_changes(g)),
        ("Sync response (small changes)", sync_response_small(g)),
        ("Sync response (status only)", sync_response_empty()),
        ("Sync response (1 GAL-like add)", search_gal_response()),
        ("Settings request", settings_request()),
        ("Settings response", settings_response(g)),
        ("GetItemEstimate request", get_item_estimate_request()),
        ("GetItemEstimate response", get_item_estimate_response()),
        ("Provision request (initial)", provision_request_initial()),
        ("Provision request (ack)", provision_ack()),
        ("MoveItems request", move_items_request()),
        ("MeetingResponse request", meeting_response_request()),
        ("ItemOperations Fetch request", item_operations_fetch_request()),
    ]
    return msgs


def small(msgs: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The messages of at most SMALL_LIMIT bytes."""
    return [(n, d) for n, d in msgs if len(d) <= SMALL_LIMIT]


# ---------------------------------------------------------------------------------------
# Writing a decoded message again with Writer


def _value(text: str):
    """The value a handler would pass: small canonical decimals as ints (``w.leaf(t, 1)``),
    everything else as the string."""
    if text.isascii() and text.isdigit() and len(text) < 10 and str(int(text)) == text:
        return int(text)
    return text


def calls(node: Node) -> list[tuple]:
    """The flat list of Writer calls that writes ``node``: ("tag", t), ("end",),
    ("leaf", t, value), ("opaque", t, bytes), ("empty", t)."""
    out: list[tuple] = []

    def walk(n: Node) -> None:
        if n.children:
            out.append(("tag", n.tag))
            for c in n.children:
                walk(c)
            out.append(("end",))
        elif n.text is None:
            out.append(("empty", n.tag))
        elif isinstance(n.text, bytes):
            out.append(("opaque", n.tag, n.text))
        else:
            out.append(("leaf", n.tag, _value(n.text)))

    walk(node)
    return out


def replay(w: Writer, ops: list[tuple]) -> None:
    """Make the calls of ``calls(node)`` on ``w`` (``with`` blocks as explicit enter/exit)."""
    stack = []
    for op in ops:
        kind = op[0]
        if kind == "leaf":
            w.leaf(op[1], op[2])
        elif kind == "tag":
            cm = w.tag(op[1])
            cm.__enter__()
            stack.append(cm)
        elif kind == "end":
            stack.pop().__exit__(None, None, None)
        elif kind == "opaque":
            w.opaque(op[1], op[2])
        else:
            w.empty(op[1])


def writer_function(node: Node) -> Callable[[Writer], None]:
    """A compiled, message-specific ``write(w)``: the nested ``with w.tag(...)`` blocks and
    leaf calls a handler writing this message would run, with the tags as int constants
    and the texts from a constant tuple."""
    values: list[object] = []
    lines = ["def write(w, V=V):", "    leaf, opaque, empty, tag = w.leaf, w.opaque, w.empty, w.tag"]

    def const(v: object) -> str:
        if isinstance(v, int):
            return repr(v)
        values.append(v)
        return f"V[{len(values) - 1}]"

    def walk(n: Node, depth: int) -> None:
        pad = "    " * depth
        if n.children:
            lines.append(f"{pad}with tag({n.tag:#06x}):")
            for c in n.children:
                walk(c, depth + 1)
        elif n.text is None:
            lines.append(f"{pad}empty({n.tag:#06x})")
        elif isinstance(n.text, bytes):
            lines.append(f"{pad}opaque({n.tag:#06x}, {const(n.text)})")
        else:
            lines.append(f"{pad}leaf({n.tag:#06x}, {const(_value(n.text))})")

    walk(node, 1)
    namespace: dict[str, object] = {"V": tuple(values)}
    exec(compile("\n".join(lines), "<writer>", "exec"), namespace)
    namespace["V"] = tuple(values)
    return namespace["write"]  # type: ignore[return-value]


def check(msgs: list[tuple[str, bytes]]) -> None:
    """Every message decodes, and both ways of writing it again give the same bytes."""
    for name, data in msgs:
        node = wbxml.decode(data)
        w = Writer()
        writer_function(node)(w)
        assert w.getvalue() == data, name
        w = Writer()
        replay(w, calls(node))
        assert w.getvalue() == data, name
        assert wbxml.encode(node) == data, name


def main() -> None:
    msgs = corpus()
    check(msgs)
    total = sum(len(d) for _, d in msgs)
    sm = small(msgs)
    for name, data in msgs:
        print(f"{len(data):8d}  {name}")
    print(f"{total:8d}  total, {len(msgs)} messages; {len(sm)} small (<= {SMALL_LIMIT} B), "
          f"{sum(len(d) for _, d in sm)} bytes")


if __name__ == "__main__":
    main()
