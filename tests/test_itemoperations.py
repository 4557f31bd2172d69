"""ItemOperations over the reference store: Fetch of mail (BodyPreference, MIME, Schema,
LongId) and of attachments (inline, Range, multipart read back with an independent
parser), EmptyFolderContents, conversation Move, and the statuses of every refusal."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

from test_sendmail import ALICE, BOB, ORIGINAL, b64, folder_ids, quick_app, run

from eas.backend import FolderType
from eas.core import ActiveSync
from eas.store import ReferenceStore
from eas.tags import AirSync, AirSyncBase, Search
from eas.tags import Email as E
from eas.tags import ItemOperations as IO
from eas.testing.client import Client, Reply
from eas.testing.harness import client
from eas.wbxml import Node, decode

NS = 'xmlns="ItemOperations:" xmlns:airsync="AirSync:" xmlns:airsyncbase="AirSyncBase:" xmlns:email="Email:" ' \
     'xmlns:search="Search:" xmlns:documentlibrary="DocumentLibrary:"'
MULTIPART = [("ms-asacceptmultipart", "T")]


def io(*ops: str) -> str:
    return f"<ItemOperations {NS}>{''.join(ops)}</ItemOperations>"


def fetch_item(collection: str, item: str, options: str = "", store: str = "Mailbox") -> str:
    return (f"<Fetch><Store>{store}</Store><airsync:CollectionId>{collection}</airsync:CollectionId>"
            f"<airsync:ServerId>{collection}:{item}</airsync:ServerId>"
            + (f"<Options>{options}</Options>" if options else "") + "</Fetch>")


def fetch_file(reference: str, options: str = "") -> str:
    return (f"<Fetch><Store>Mailbox</Store><airsyncbase:FileReference>{reference}</airsyncbase:FileReference>"
            + (f"<Options>{options}</Options>" if options else "") + "</Fetch>")


def body_pref(kind: int, size: int | None = None) -> str:
    trunc = f"<airsyncbase:TruncationSize>{size}</airsyncbase:TruncationSize>" if size is not None else ""
    return f"<airsyncbase:BodyPreference><airsyncbase:Type>{kind}</airsyncbase:Type>{trunc}</airsyncbase:BodyPreference>"


def results(r: Reply) -> list[Node]:
    """The operations of the Response, after checking the global Status is 1."""
    assert r.status == 200 and r.node is not None and r.node.tag == IO.ItemOperations, (r.status, r.body[:80])
    assert r.text(IO.Status) == "1", r.xml
    response = r.node.find(IO.Response)
    assert response is not None
    return response.children


def status(node: Node) -> str:
    return str(node.findtext(IO.Status))


async def start(tmp_path: Path, version: str = "14.1") -> tuple[ActiveSync, ReferenceStore, Client, dict[str, str],
                                                                 str]:
    app, store = quick_app(tmp_path)
    c = client(app, version=version)
    await c.provision()
    item = store.deliver(ALICE, ORIGINAL)
    return app, store, c, await folder_ids(c), item


async def reference_of(store: ReferenceStore, item: str) -> str:
    folder = next(f for f in await store.folders(ALICE) if f.type == FolderType.INBOX)
    [mail] = await store.fetch_emails(ALICE, folder.id, [item])
    return mail.attachments[0].file_reference


# -- Fetch of mail ------------------------------------------------------------------------------


def test_fetch_mail_with_body_preferences(tmp_path: Path) -> None:
    async def scenario() -> None:
        _, store, c, ids, item = await start(tmp_path)
        inbox = ids["Inbox"]
        r = await c.command("ItemOperations", io(fetch_item(inbox, item, body_pref(1))))
        [fetch] = results(r)
        assert fetch.tag == IO.Fetch and status(fetch) == "1"
        assert fetch.findtext(AirSync.CollectionId) == inbox
        assert fetch.findtext(AirSync.ServerId) == f"{inbox}:{item}"
        assert fetch.findtext(AirSync.Class) == "Email"
        props = fetch.find(IO.Properties)
        assert props is not None
        assert props.findtext(E.Subject) == "Plans"
        assert props.findtext(AirSyncBase.Body, AirSyncBase.Type) == "1"
        assert "Shall we meet on Friday?" in str(props.findtext(AirSyncBase.Body, AirSyncBase.Data))
        assert props.findtext(AirSyncBase.Attachments, AirSyncBase.Attachment,
                              AirSyncBase.FileReference) == await reference_of(store, item)
        # Truncated plain text
        r = await c.command("ItemOperations", io(fetch_item(inbox, item, body_pref(1, 5))))
        [fetch] = results(r)
        body = fetch.find(IO.Properties, AirSyncBase.Body)
        assert body is not None
        assert body.findtext(AirSyncBase.Truncated) == "1" and body.findtext(AirSyncBase.Data) == "Shall"
        # MIME
        r = await c.command("ItemOperations", io(fetch_item(
            inbox, item, "<airsync:MIMESupport>2</airsync:MIMESupport>" + body_pref(4))))
        [fetch] = results(r)
        body = fetch.find(IO.Properties, AirSyncBase.Body)
        assert body is not None and body.findtext(AirSyncBase.Type) == "4"
        assert "Message-ID: <orig-1@example.com>" in str(body.findtext(AirSyncBase.Data))

    run(scenario())


def test_fetch_with_schema_and_long_id(tmp_path: Path) -> None:
    async def scenario() -> None:
        _, _, c, ids, item = await start(tmp_path, "16.1")
        inbox = ids["Inbox"]
        schema = "<Schema><email:Subject/><email:From/></Schema>"
        r = await c.command("ItemOperations", io(fetch_item(inbox, item, schema + body_pref(1))))
        [fetch] = results(r)
        props = fetch.find(IO.Properties)
        assert props is not None
        assert [c.tag for c in props.children] == [E.From, E.Subject]
        r = await c.command("ItemOperations", io(
            f"<Fetch><Store>Mailbox</Store><search:LongId>{inbox}:{item}</search:LongId></Fetch>"))
        [fetch] = results(r)
        assert status(fetch) == "1" and fetch.findtext(Search.LongId) == f"{inbox}:{item}"
        assert fetch.find(AirSync.ServerId) is None
        assert fetch.findtext(IO.Properties, E.Subject) == "Plans"

    run(scenario())


def test_fetch_refusals(tmp_path: Path) -> None:
    async def scenario() -> None:
        _, store, c, ids, item = await start(tmp_path)
        inbox, calendar, drafts = ids["Inbox"], ids["Calendar"], ids["Drafts"]
        ref = await reference_of(store, item)
        cases = [
            (fetch_item(inbox, "999999"), "6"),  # no such item
            (fetch_item("4242", item), "6"),  # unknown collection
            ((f"<Fetch><Store>Mailbox</Store><airsync:CollectionId>{drafts}</airsync:CollectionId>"
              f"<airsync:ServerId>{inbox}:{item}</airsync:ServerId></Fetch>"), "6"),  # ServerId of another folder
            (fetch_item(calendar, "1"), "6"),  # no such event
            (fetch_item(inbox, item, store="DocumentLibrary"), "9"),
            (("<Fetch><Store>Mailbox</Store><documentlibrary:LinkId>\\\\srv\\share\\a.txt"
              "</documentlibrary:LinkId></Fetch>"), "9"),
            (f"<Fetch><airsyncbase:FileReference>{ref}</airsyncbase:FileReference></Fetch>", "2"),  # no Store
            ("<Fetch><Store>Mailbox</Store></Fetch>", "2"),  # nothing to fetch
            (f"<Fetch><Store>Mailbox</Store><airsync:CollectionId>{inbox}</airsync:CollectionId></Fetch>", "2"),
            ((f"<Fetch><Store>Mailbox</Store><airsyncbase:FileReference>{ref}</airsyncbase:FileReference>"
              f"<airsync:ServerId>{inbox}:{item}</airsync:ServerId></Fetch>"), "2"),  # two kinds
            ((f"<Fetch><Store>Mailbox</Store><airsyncbase:FileReference>{ref}</airsyncbase:FileReference>"
              f"<airsyncbase:FileReference>{ref}</airsyncbase:FileReference></Fetch>"), "2"),  # two references
            (fetch_item(inbox, item, body_pref(9)), "2"),  # BodyPreference Type out of range
            (fetch_file("999999:1"), "15"),
            (fetch_file(""), "15"),
            (fetch_file("junk"), "15"),
            (fetch_file(ref, "<Range>9-2</Range>"), "8"),
            (fetch_file(ref, "<Range>a-b</Range>"), "8"),
            (fetch_file(ref, "<Range>1000-2000</Range>"), "8"),  # starts after the end
        ]
        r = await c.command("ItemOperations", io(*(x for x, _ in cases)))
        got = results(r)
        assert [status(g) for g in got] == [s for _, s in cases], r.xml
        assert all(g.find(IO.Properties) is None for g in got)

    run(scenario())


def test_whole_request_protocol_errors(tmp_path: Path) -> None:
    async def scenario() -> None:
        _, _, c, ids, item = await start(tmp_path)
        for xml in (f"<ItemOperations {NS}/>", io("<Response/>"), io(fetch_item(ids["Inbox"], item), "<Status>1</Status>"),
                    '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>',
                    io(*[fetch_item(ids["Inbox"], item)] * 201)):
            r = await c.command("ItemOperations", xml)
            assert r.status == 200 and r.node is not None and r.text(IO.Status) == "2", xml[:80]
            assert r.node.find(IO.Response) is None
        r = await c.raw("ItemOperations", b"\x03\x01\x6a\x00\x00\x14\x45\x46")  # truncated WBXML
        assert r.text(IO.Status) == "102"

    run(scenario())


# -- Fetch of attachments ----------------------------------------------------------------------


def test_fetch_attachment_inline_and_by_range(tmp_path: Path) -> None:
    async def scenario() -> None:
        _, store, c, _, item = await start(tmp_path)
        ref = await reference_of(store, item)
        r = await c.command("ItemOperations", io(fetch_file(ref), fetch_file(ref, "<Range>0-3</Range>"),
                                                 fetch_file(ref, "<Range>9-500</Range>")))
        whole, head, tail = results(r)
        assert [status(x) for x in (whole, head, tail)] == ["1", "1", "1"]
        assert whole.findtext(AirSyncBase.FileReference) == ref
        assert whole.findtext(IO.Properties, AirSyncBase.ContentType) == "application/pdf"
        assert base64.b64decode(str(whole.findtext(IO.Properties, IO.Data))) == b"%PDF-1.4 agenda"
        assert whole.find(IO.Properties, IO.Total) is None
        assert base64.b64decode(str(head.findtext(IO.Properties, IO.Data))) == b"%PDF"
        assert head.findtext(IO.Properties, IO.Range) == "0-3"
        assert head.findtext(IO.Properties, IO.Total) == "15"
        assert base64.b64decode(str(tail.findtext(IO.Properties, IO.Data))) == b"agenda"
        assert tail.findtext(IO.Properties, IO.Range) == "9-14"

    run(scenario())


def parse_multipart(body: bytes) -> list[bytes]:
    """MS-ASCMD 2.2.1.10.1.1, read independently: int32 count, (offset, length) pairs."""
    (count,) = struct.unpack_from("<i", body, 0)
    assert 1 <= count < 1000
    parts = []
    for i in range(count):
        offset, length = struct.unpack_from("<ii", body, 4 + 8 * i)
        assert 4 + 8 * count <= offset and offset + length <= len(body)
        parts.append(body[offset:offset + length])
    assert sum(len(p) for p in parts) + 4 + 8 * count == len(body)
    return parts


def test_fetch_multipart(tmp_path: Path) -> None:
    async def scenario() -> None:
        _, store, c, ids, item = await start(tmp_path)
        inbox = ids["Inbox"]
        ref = await reference_of(store, item)
        r = await c.command("ItemOperations", io(fetch_file(ref), fetch_item(inbox, item, body_pref(1)),
                                                 fetch_file("999999:1")), headers=MULTIPART)
        assert r.status == 200 and r.headers["content-type"] == "application/vnd.ms-sync.multipart"
        parts = parse_multipart(r.body)
        assert len(parts) == 3
        doc = decode(parts[0])
        assert doc.tag == IO.ItemOperations and doc.findtext(IO.Status) == "1"
        response = doc.find(IO.Response)
        assert response is not None
        attachment, mail, missing = response.children
        assert attachment.find(IO.Properties, IO.Data) is None
        assert parts[int(str(attachment.findtext(IO.Properties, IO.Part)))] == b"%PDF-1.4 agenda"
        body = mail.find(IO.Properties, AirSyncBase.Body)
        assert body is not None and body.find(AirSyncBase.Data) is None
        assert b"Shall we meet on Friday?" in parts[int(str(body.findtext(IO.Part)))]
        assert status(missing) == "15"

    run(scenario())


def test_multipart_with_the_base64_query_flag(tmp_path: Path) -> None:
    """The base64 query carries AcceptMultiPart as Options bit 0x02 (MS-ASHTTP 2.2.1.1.1.1)."""

    async def scenario() -> None:
        app, store, c, _, item = await start(tmp_path)
        ref = await reference_of(store, item)
        from eas.protocol.http import WBXML_CONTENT_TYPE, HTTPRequest
        from eas.wbxml import from_xml
        device = c.device_id.encode()
        key = struct.pack("<I", c.policy_key or 0)
        raw = (bytes([141, 19]) + struct.pack("<H", 0x0409) + bytes([len(device)]) + device + bytes([4]) + key
               + bytes([len(c.device_type)]) + c.device_type.encode() + bytes([7, 1, 0x02]))
        token = base64.b64encode(f"{ALICE}:alice-secret".encode()).decode()
        request = HTTPRequest("POST", "/Microsoft-Server-ActiveSync", base64.b64encode(raw).decode(),
                              [("authorization", f"Basic {token}"), ("content-type", WBXML_CONTENT_TYPE)],
                              from_xml(io(fetch_file(ref))), "127.0.0.1")
        response = await app.handle(request)
        assert response.status == 200
        assert dict(response.headers)["Content-Type"] == "application/vnd.ms-sync.multipart"
        assert parse_multipart(response.body)[1] == b"%PDF-1.4 agenda"

    run(scenario())


# -- EmptyFolderContents ----------------------------------------------------------------------


def test_empty_folder_contents(tmp_path: Path) -> None:
    async def scenario() -> None:
        _, store, c, _, _ = await start(tmp_path)
        deleted_backend = store.folder_id(ALICE, "Deleted Items")
        sub = await store.create_folder(ALICE, deleted_backend, "Old", FolderType.USER_MAIL)
        for _ in range(3):
            store.deliver(ALICE, ORIGINAL, folder="Deleted Items")
        store.deliver(ALICE, ORIGINAL, folder="Deleted Items/Old")
        ids = await folder_ids(c)
        deleted = ids["Deleted Items"]
        r = await c.command("ItemOperations", io(
            f"<EmptyFolderContents><airsync:CollectionId>{deleted}</airsync:CollectionId></EmptyFolderContents>",
            "<EmptyFolderContents><airsync:CollectionId>4242</airsync:CollectionId></EmptyFolderContents>",
            "<EmptyFolderContents/>"))
        ok, unknown, empty = results(r)
        assert (status(ok), status(unknown), status(empty)) == ("1", "6", "2")
        assert ok.findtext(AirSync.CollectionId) == deleted
        assert await store.item_stamps(ALICE, deleted_backend) == {}
        assert len(await store.item_stamps(ALICE, sub.id)) == 1  # subfolders kept without DeleteSubFolders
        r = await c.command("ItemOperations", io(
            f"<EmptyFolderContents><airsync:CollectionId>{deleted}</airsync:CollectionId>"
            "<Options><DeleteSubFolders/></Options></EmptyFolderContents>"))
        [done] = results(r)
        assert status(done) == "1"
        assert sub.id not in {f.id for f in await store.folders(ALICE)}
        assert len(await store.item_stamps(ALICE, store.folder_id(ALICE, "Inbox"))) == 1  # the Inbox untouched

    run(scenario())


# -- conversation Move ----------------------------------------------------------------------------


def test_conversation_move(tmp_path: Path) -> None:
    async def scenario() -> None:
        _, store, c, _, first = await start(tmp_path)
        reply = (f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: Re: Plans\r\nMessage-ID: <reply-1@example.com>\r\n"
                 "In-Reply-To: <orig-1@example.com>\r\nReferences: <orig-1@example.com>\r\n\r\nYes\r\n").encode()
        second = store.deliver(ALICE, reply)
        sent = store.deliver(ALICE, reply, folder="Sent Items")
        other = store.deliver(ALICE, b"From: x@y\r\nTo: alice@example.com\r\nSubject: Unrelated\r\n\r\nz\r\n")
        archive = await store.create_folder(ALICE, "", "Archive", FolderType.USER_MAIL)
        ids = await folder_ids(c)
        inbox_backend = store.folder_id(ALICE, "Inbox")
        mails = await store.fetch_emails(ALICE, inbox_backend, [first, second, other])
        conversation = mails[0].conversation_id
        assert mails[1].conversation_id == conversation != mails[2].conversation_id
        cid = b64(conversation)

        def move(dst: str, always: bool = True, conv: str = cid) -> str:
            return (f"<Move><ConversationId>{conv}</ConversationId><DstFldId>{dst}</DstFldId>"
                    + ("<Options><MoveAlways/></Options>" if always else "") + "</Move>")

        r = await c.command("ItemOperations", io(move(ids["Archive"], always=False), move(ids["Calendar"]),
                                                 move("4242"), move(ids["Archive"], conv=b64(b"\x01" * 16))))
        assert [status(x) for x in results(r)] == ["155", "156", "6", "6"]
        assert len(await store.item_stamps(ALICE, inbox_backend)) == 3
        r = await c.command("ItemOperations", io(move(ids["Archive"])))
        [done] = results(r)
        assert status(done) == "1" and done.findtext(IO.ConversationId) == conversation
        assert set(await store.item_stamps(ALICE, inbox_backend)) == {other}
        assert len(await store.item_stamps(ALICE, archive.id)) == 2
        sent_backend = store.folder_id(ALICE, "Sent Items")
        assert set(await store.item_stamps(ALICE, sent_backend)) == {sent}  # Sent Items stays
        r = await c.command("ItemOperations", io(move(ids["Archive"])))  # repeated: already there
        assert [status(x) for x in results(r)] == ["1"]

    run(scenario())


def test_older_versions(tmp_path: Path) -> None:
    async def scenario() -> None:
        _, _, c, ids, item = await start(tmp_path, "12.1")
        move = (f"<Move><ConversationId>{b64(b'x' * 16)}</ConversationId><DstFldId>{ids['Inbox']}</DstFldId>"
                "<Options><MoveAlways/></Options></Move>")
        # Conversation Move is 14.0+: a 12.1 request holding one is malformed as a whole,
        # since the response could not name the operation it refuses.
        r = await c.command("ItemOperations", io(fetch_item(ids["Inbox"], item, body_pref(1)), move))
        assert r.text(IO.Status) == "2" and r.node is not None and r.node.find(IO.Response) is None
        r = await c.command("ItemOperations", io(fetch_item(ids["Inbox"], item, body_pref(1))))
        (fetch,) = results(r)
        assert status(fetch) == "1" and fetch.findtext(IO.Properties, E.Subject) == "Plans"
        old = client(c.transport.app, version="2.5", device_id="OldDevice")  # type: ignore[attr-defined]
        await old.provision()
        r = await old.command("ItemOperations", io(fetch_item(ids["Inbox"], item)))
        assert r.status == 400 and r.node is None  # no ItemOperations before 12.0

    run(scenario())


def test_fetch_note_and_event_multipart(tmp_path: Path) -> None:
    """Items of other classes in a multipart answer: their AirSyncBase Body Data goes into
    a part as a mail's does."""
    from datetime import UTC, datetime, timedelta

    from eas.items.calendar import Calendar
    from eas.items.notes import Note
    from eas.tags import Calendar as CAL
    from eas.tags import Notes as N

    async def scenario() -> None:
        _, store, c, ids, _ = await start(tmp_path, "16.1")
        backend = {f.name: f.id for f in await store.folders(ALICE)}
        note, _ = await store.add_item(ALICE, backend["Notes"], Note(subject="Groceries", body="milk, bread"))
        start_at = datetime.now(UTC) + timedelta(days=2)
        event, _ = await store.add_item(ALICE, backend["Calendar"], Calendar(
            subject="Dentist", start=start_at, end=start_at + timedelta(hours=1), body="bring the card"))
        r = await c.command("ItemOperations", io(fetch_item(ids["Notes"], note, body_pref(1)),
                                                 fetch_item(ids["Calendar"], event, body_pref(1))), headers=MULTIPART)
        parts = parse_multipart(r.body)
        doc = decode(parts[0])
        got_note, got_event = doc.find(IO.Response).children  # type: ignore[union-attr]
        assert [status(got_note), status(got_event)] == ["1", "1"]
        assert got_note.findtext(AirSync.Class) == "Notes" and got_event.findtext(AirSync.Class) == "Calendar"
        assert got_note.findtext(IO.Properties, N.Subject) == "Groceries"
        assert got_event.findtext(IO.Properties, CAL.Subject) == "Dentist"
        for fetched, text in ((got_note, b"milk, bread"), (got_event, b"bring the card")):
            body = fetched.find(IO.Properties, AirSyncBase.Body)
            assert body is not None and body.find(AirSyncBase.Data) is None
            assert parts[int(str(body.findtext(IO.Part)))] == text

    run(scenario())
