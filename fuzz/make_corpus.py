"""Writes the seed corpus fuzz/corpus/: small realistic ActiveSync WBXML messages.

Most are written with eas.wbxml.Writer (most of those by benchmarks/corpus.py) (WBXML 1.3, UTF-8, no string table); a few are
hand-written bytes for what the Writer never emits: string tables (STR_T), entities,
US-ASCII and ISO-8859-1 charsets, a public id given as a string table index, older
WBXML versions, several text pieces in one element, code page switches back and forth.
Files are named by the SHA-1 of their content. Run: python fuzz/make_corpus.py
"""

from __future__ import annotations

import hashlib
import pathlib
import sys
from collections.abc import Callable, Iterator

from eas.tags import (
    AirSync,
    AirSyncBase,
    Calendar,
    ComposeMail,
    Contacts,
    Email,
    Find,
    ItemOperations,
    ResolveRecipients,
    Search,
)
from eas.wbxml import Writer, decode
from eas.wbxml._pure import mb_u_int32

OUT = pathlib.Path(__file__).parent / "corpus"
sys.path.insert(0, str(OUT.parents[1] / "benchmarks"))
import corpus as bench  # benchmarks/corpus.py

MIME = (
    b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: hello\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHi Bob,\r\n\r\n"
    b"see you at 10.\r\n"
)


def w_messages() -> Iterator[bytes]:
    """Messages written by the Writer, like clients and the server send them: the
    benchmark corpus's small ones (Ping, FolderSync, Sync, Provision, Settings,
    GetItemEstimate, MoveItems, ItemOperations, ...) and a few it does not have."""
    for _, data in bench.small(bench.corpus()):
        yield data

    def doc(body: Callable[[Writer], None]) -> bytes:
        w = Writer()
        body(w)
        return w.getvalue()

    def sync_mail(w: Writer) -> None:
        with w.tag(AirSync.Sync):
            with w.tag(AirSync.Collections):
                with w.tag(AirSync.Collection):
                    w.leaf(AirSync.SyncKey, "1234567891")
                    w.leaf(AirSync.CollectionId, 1)
                    w.leaf(AirSync.Status, 1)
                    with w.tag(AirSync.Commands):
                        with w.tag(AirSync.Add):
                            w.leaf(AirSync.ServerId, "1:1")
                            with w.tag(AirSync.ApplicationData):
                                w.leaf(Email.To, '"Bob" <bob@example.com>')
                                w.leaf(Email.From, '"Alice" <alice@example.com>')
                                w.leaf(Email.Subject, "Grüße aus Köln ☕")
                                w.leaf(Email.DateReceived, "2024-05-01T10:00:00.000Z")
                                w.leaf(Email.Importance, 1)
                                w.leaf(Email.Read, 0)
                                with w.tag(AirSyncBase.Body):
                                    w.leaf(AirSyncBase.Type, 2)
                                    w.leaf(AirSyncBase.EstimatedDataSize, 42)
                                    w.leaf(AirSyncBase.Data, "<html><body>Hi &amp; bye</body></html>")
                                w.leaf(Email.MessageClass, "IPM.Note")
                                w.leaf(Email.InternetCPID, 65001)
                                with w.tag(Email.Flag):
                                    pass
                                w.leaf(AirSyncBase.NativeBodyType, 2)
                        with w.tag(AirSync.Delete):
                            w.leaf(AirSync.ServerId, "1:7")
                    w.empty(AirSync.MoreAvailable)

    def sync_contact(w: Writer) -> None:
        with w.tag(AirSync.Sync):
            with w.tag(AirSync.Collections):
                with w.tag(AirSync.Collection):
                    w.leaf(AirSync.SyncKey, 5)
                    w.leaf(AirSync.CollectionId, 4)
                    with w.tag(AirSync.Commands):
                        with w.tag(AirSync.Change):
                            w.leaf(AirSync.ServerId, "4:12")
                            with w.tag(AirSync.ApplicationData):
                                w.leaf(Contacts.FirstName, "Zoë")
                                w.leaf(Contacts.LastName, "Ångström")
                                w.leaf(Contacts.Email1Address, "zoe@example.org")
                                w.leaf(Contacts.MobilePhoneNumber, "+49 170 1234567")
                                with w.tag(Contacts.Categories):
                                    w.leaf(Contacts.Category, "Family")
                                    w.leaf(Contacts.Category, "")
                                w.opaque(Contacts.Picture, bytes(range(256)))

    def itemops_resp(w: Writer) -> None:
        with w.tag(ItemOperations.ItemOperations):
            w.leaf(ItemOperations.Status, 1)
            with w.tag(ItemOperations.Response):
                with w.tag(ItemOperations.Fetch):
                    w.leaf(ItemOperations.Status, 1)
                    w.leaf(AirSyncBase.FileReference, "1%3a3%3a0")
                    with w.tag(ItemOperations.Properties):
                        w.leaf(AirSyncBase.ContentType, "image/png")
                        w.opaque(ItemOperations.Data, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(40))

    def sendmail(w: Writer) -> None:
        with w.tag(ComposeMail.SendMail):
            w.leaf(ComposeMail.ClientId, "4C3A2F10-1B2C-4D5E-8F90-0123456789AB")
            w.empty(ComposeMail.SaveInSentItems)
            w.opaque(ComposeMail.Mime, MIME)

    def smartreply(w: Writer) -> None:
        with w.tag(ComposeMail.SmartReply):
            w.leaf(ComposeMail.ClientId, 17)
            with w.tag(ComposeMail.Source):
                w.leaf(ComposeMail.FolderId, 1)
                w.leaf(ComposeMail.ItemId, "1:1")
            w.opaque(ComposeMail.Mime, MIME * 3)

    def search(w: Writer) -> None:
        with w.tag(Search.Search):
            with w.tag(Search.Store):
                w.leaf(Search.Name, "GAL")
                w.leaf(Search.Query, "ali")
                with w.tag(Search.Options):
                    w.leaf(Search.Range, "0-99")

    def empty_root(w: Writer) -> None:
        w.empty(AirSync.Sync)

    def sync_calendar(w: Writer) -> None:
        """A recurring meeting with a moved and a deleted occurrence (Calendar page,
        16.x InstanceId on AirSyncBase, a Timezone blob as base64 text)."""
        with w.tag(AirSync.Sync), w.tag(AirSync.Collections), w.tag(AirSync.Collection):
            w.leaf(AirSync.SyncKey, 3)
            w.leaf(AirSync.CollectionId, 6)
            w.leaf(AirSync.Status, 1)
            with w.tag(AirSync.Commands), w.tag(AirSync.Add):
                w.leaf(AirSync.ServerId, "6:1")
                with w.tag(AirSync.ApplicationData):
                    w.leaf(Calendar.Timezone, "xP///0UAdQByAG8AcABlAC8AQgBlAHIAbABpAG4A" + "A" * 188)
                    w.leaf(Calendar.StartTime, "20240304T080000Z")
                    w.leaf(Calendar.EndTime, "20240304T090000Z")
                    w.leaf(Calendar.Subject, "Weekly review")
                    w.leaf(Calendar.UID, "series-1")
                    with w.tag(Calendar.Attendees), w.tag(Calendar.Attendee):
                        w.leaf(Calendar.Email, "alice@example.com")
                        w.leaf(Calendar.AttendeeStatus, 3)
                    with w.tag(Calendar.Recurrence):
                        w.leaf(Calendar.Type, 1)
                        w.leaf(Calendar.Occurrences, 10)
                        w.leaf(Calendar.DayOfWeek, 2)
                    with w.tag(Calendar.Exceptions):
                        with w.tag(Calendar.Exception):
                            w.leaf(AirSyncBase.InstanceId, "2024-03-11T08:00:00.000Z")
                            w.leaf(Calendar.Subject, "moved")
                        with w.tag(Calendar.Exception):
                            w.leaf(Calendar.ExceptionStartTime, "20240318T080000Z")
                            w.leaf(Calendar.Deleted, 1)

    def find(w: Writer) -> None:
        with w.tag(Find.Find):
            w.leaf(Find.SearchId, "0f8fad5b-d9cb-469f-a165-70867728950e")
            with w.tag(Find.ExecuteSearch), w.tag(Find.MailBoxSearchCriterion):
                with w.tag(Find.Query):
                    w.leaf(AirSync.Class, "Email")
                    w.leaf(Find.FreeText, "budget")
                with w.tag(Find.Options):
                    w.leaf(Find.Range, "0-9")
                    w.empty(Find.DeepTraversal)

    def resolve_recipients(w: Writer) -> None:
        with w.tag(ResolveRecipients.ResolveRecipients):
            w.leaf(ResolveRecipients.Status, 1)
            with w.tag(ResolveRecipients.Response):
                w.leaf(ResolveRecipients.To, "bob")
                w.leaf(ResolveRecipients.Status, 1)
                w.leaf(ResolveRecipients.RecipientCount, 1)
                with w.tag(ResolveRecipients.Recipient):
                    w.leaf(ResolveRecipients.Type, 1)
                    w.leaf(ResolveRecipients.EmailAddress, "bob@example.com")
                    with w.tag(ResolveRecipients.Certificates):
                        w.leaf(ResolveRecipients.Status, 1)
                        w.leaf(ResolveRecipients.CertificateCount, 1)
                        w.leaf(ResolveRecipients.Certificate, "MIIBszCCAVmgAwIBAgIU")

    for body in (sync_mail, sync_contact, itemops_resp, sendmail, smartreply, search, empty_root, sync_calendar,
                 find, resolve_recipients):
        yield doc(body)


def hand_messages() -> Iterator[bytes]:
    """Hand-written bytes for WBXML features the Writer never emits."""
    strtbl = b"Inbox\x00Sent Items\x00-//AIRSYNC//DTD AirSync//EN\x00"
    pid_at = strtbl.index(b"-//")
    # FolderSync response with a string table: STR_T for names, public id by index.
    body = (b"\x00\x07\x56\x4c\x03" b"1\x00" b"\x01\x52\x03" b"1\x00" b"\x01\x4e\x4f\x03" b"2\x00" b"\x01"
            b"\x4f\x48\x03" b"1\x00" b"\x01\x49\x03" b"0\x00" b"\x01\x47\x83\x00\x01\x4a\x03" b"2\x00" b"\x01\x01"
            b"\x4f\x48\x03" b"2\x00" b"\x01\x49\x03" b"0\x00" b"\x01\x47\x83\x06\x01\x4a\x03" b"5\x00" b"\x01\x01"
            b"\x01\x01")
    yield b"\x03\x00" + mb_u_int32(pid_at) + b"\x6a" + mb_u_int32(len(strtbl)) + strtbl + body
    # The same with public id 1 and the string table kept.
    yield b"\x03\x01\x6a" + mb_u_int32(len(strtbl)) + strtbl + body
    # Sync with the subject split into pieces: STR_I, ENTITY, STR_T, STR_I.
    tbl = b"Gr\xc3\xbc\x00\xc3\x9f\x00"
    yield (b"\x03\x01\x6a" + mb_u_int32(len(tbl)) + tbl +
           b"\x45\x5c\x4f\x4b\x03" b"1\x00" b"\x01\x52\x03" b"1\x00" b"\x01\x56\x47\x4d\x03" b"1:2\x00" b"\x01"
           b"\x5d\x00\x02\x54\x83\x00\x83\x05\x02\x81\x69\x03 aus K\x00\x02\x81\x76\x03" b"ln \x00\x02\x84\xa7\x15"
           b"\x01\x00\x00\x01\x01\x01\x01\x01\x01")
    # ISO-8859-1 (MIBenum 4): Latin-1 bytes in strings.
    yield (b"\x03\x01\x04\x00\x00\x07\x56\x52\x03" b"1\x00" b"\x01\x4e\x4f\x48\x03" b"9\x00" b"\x01"
           b"\x49\x03" b"0\x00" b"\x01\x47\x03" b"B\xfcro \xc4rger\x00" b"\x01\x4a\x03" b"1\x00" b"\x01\x01\x01\x01")
    # US-ASCII (MIBenum 3), WBXML 1.1, and an entity for a non-ASCII character.
    yield (b"\x01\x01\x03\x00\x00\x0d\x45\x48\x03" b"480\x00" b"\x01\x49\x4a\x4b\x03" b"1\x00" b"\x01"
           b"\x4c\x03" b"Email\x00" b"\x01\x01\x4a\x4b\x03" b"caf\x00" b"\x02\x81\x69\x01\x01\x01\x01")
    # WBXML 1.2, charset 0 (unknown: read as UTF-8), multi-byte public id.
    yield b"\x02\x81\x7f\x00\x00\x00\x0d\x45\x47\x03" b"2\x00" b"\x01\x01"
    # Opaque data split in two pieces, and an opaque piece of length zero.
    yield (b"\x03\x01\x6a\x00\x00\x15\x45\x51\xc3\x03abc\xc3\x02de\x01\x50\x01\x55\xc3\x00\x01\x01")
    # Page switches back and forth, redundant switches, a switch to the same page.
    yield (b"\x03\x01\x6a\x00\x45\x00\x00\x5c\x00\x11\x00\x11\x45\x46\x03" b"2\x00" b"\x01\x01\x00\x00\x4f"
           b"\x00\x02\x54\x03" b"x\x00" b"\x01\x00\x00\x01\x01\x01")
    # A deep chain of nested elements (Contacts Categories inside each other is not
    # valid EAS but is valid WBXML for the codec).
    yield b"\x03\x01\x6a\x00\x00\x01" + b"\x55" * 40 + b"\x56\x03deep\x00\x01" + b"\x01" * 40
    # Empty string table present but unused, and an empty root with content.
    yield b"\x03\x01\x6a\x03ab\x00\x00\x0e\x45\x01"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    seen = set()
    for data in [*w_messages(), *hand_messages()]:
        decode(data)  # every seed is a valid message
        name = hashlib.sha1(data).hexdigest()
        seen.add(name)
        (OUT / name).write_bytes(data)
    for old in OUT.iterdir():
        if old.name not in seen:
            old.unlink()
    print(f"{len(seen)} seeds in {OUT}")


if __name__ == "__main__":
    main()
