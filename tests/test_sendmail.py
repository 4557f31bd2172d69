"""SendMail, SmartReply and SmartForward over the reference store: what gets submitted,
who receives it, Sent Items, repeats, and every refusal leaving nothing sent."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Sequence
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from eas.backend import BackendError, Email, FolderType, QuotaExceeded, SendFailed
from eas.commands.sendmail import CACHE_KEY, REMEMBERED
from eas.core import ActiveSync
from eas.state.sqlite import SQLiteStateStore
from eas.store import ReferenceStore
from eas.tags import ComposeMail as CM
from eas.tags import FolderHierarchy as FH
from eas.testing.client import Client
from eas.testing.harness import USERS, client, make_app

ALICE, BOB = "alice@example.com", "bob@example.com"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def mime(to: str = BOB, subject: str = "Hi", body: str = "Hello Bob", extra: str = "") -> bytes:
    return (f"From: Alice <{ALICE}>\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def send_xml(client_id: str, data: bytes, *, save: bool = False, root: str = "SendMail", source: str = "",
             replace: bool = False) -> str:
    return (f'<{root} xmlns="ComposeMail:"><ClientId>{client_id}</ClientId>'
            + ("<SaveInSentItems/>" if save else "") + source + ("<ReplaceMime/>" if replace else "")
            + f"<Mime>{b64(data)}</Mime></{root}>")


async def folder_ids(c: Client) -> dict[str, str]:
    """FolderSync with SyncKey 0: {DisplayName: ServerId}."""
    r = await c.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>')
    assert r.status == 200 and r.text(FH.Status) == "1", r.xml
    changes = r.node.find(FH.Changes) if r.node is not None else None
    assert changes is not None
    out: dict[str, str] = {}
    for add in changes.findall(FH.Add):
        out[str(add.findtext(FH.DisplayName))] = str(add.findtext(FH.ServerId))
    return out


async def folder_messages(store: ReferenceStore, user: str, kind: FolderType) -> list[EmailMessage]:
    folder = next(f for f in await store.folders(user) if f.type == kind)
    stamps = await store.item_stamps(user, folder.id)
    mails = await ReferenceStore.fetch_emails(store, user, folder.id, sorted(stamps), mime=True)
    out = []
    for m in mails:
        assert m.mime is not None
        parsed = message_from_bytes(m.mime, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        out.append(parsed)
    return out


def text_of(msg: EmailMessage) -> str:
    body = msg.get_body(preferencelist=("plain", "html"))
    assert body is not None
    content = body.get_content()
    assert isinstance(content, str)
    return content


def quick_app(tmp_path: Path) -> tuple[ActiveSync, ReferenceStore]:
    """The harness app (the core remembers each login, so scrypt runs once per account)."""
    return make_app(tmp_path)


async def ready(tmp_path: Path, version: str = "14.1") -> tuple[Client, ReferenceStore]:
    app, store = quick_app(tmp_path)
    c = client(app, version=version)
    await c.provision()
    return c, store


# -- SendMail ------------------------------------------------------------------------------


def test_sendmail_141_delivers_and_saves_in_sent(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store = await ready(tmp_path)
        r = await c.command("SendMail", send_xml("m1", mime(subject="Lunch?"), save=True))
        assert (r.status, r.body) == (200, b"")
        inbox = await folder_messages(store, BOB, FolderType.INBOX)
        assert [m["subject"] for m in inbox] == ["Lunch?"]
        assert "Hello Bob" in text_of(inbox[0])
        sent = await folder_messages(store, ALICE, FolderType.SENT_ITEMS)
        assert [m["subject"] for m in sent] == ["Lunch?"]
        assert len(store.outgoing(ALICE)) == 1

    run(scenario())


def test_sendmail_without_save_in_sent_items_leaves_sent_empty(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store = await ready(tmp_path)
        r = await c.command("SendMail", send_xml("m1", mime()))
        assert (r.status, r.body) == (200, b"")
        assert await folder_messages(store, ALICE, FolderType.SENT_ITEMS) == []
        assert len(await folder_messages(store, BOB, FolderType.INBOX)) == 1

    run(scenario())


def test_sendmail_adds_missing_from_and_message_id(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store = await ready(tmp_path)
        data = f"To: {BOB}\r\nSubject: bare\r\n\r\nno from\r\n".encode()
        r = await c.command("SendMail", send_xml("m1", data))
        assert r.status == 200 and r.body == b""
        [(_sender, recipients, submitted)] = store.outgoing(ALICE)
        msg = message_from_bytes(submitted, policy=policy.default)
        assert ALICE in str(msg["from"]) and msg["message-id"] and msg["date"]
        assert recipients == [BOB]

    run(scenario())


def test_resent_client_id_is_not_sent_twice(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store = await ready(tmp_path)
        for _ in range(3):
            r = await c.command("SendMail", send_xml("same-id", mime(subject="once")))
            assert (r.status, r.body) == (200, b""), r.xml
        assert len(store.outgoing(ALICE)) == 1
        assert len(await folder_messages(store, BOB, FolderType.INBOX)) == 1
        r = await c.command("SendMail", send_xml("other-id", mime(subject="twice")))
        assert r.status == 200
        assert len(store.outgoing(ALICE)) == 2

    run(scenario())


def test_client_ids_remembered_are_bounded(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = quick_app(tmp_path)
        c = client(app, version="14.1")
        await c.provision()
        device = await app.store.get_device(ALICE, c.device_id)
        assert device is not None
        full = [[f"c:old{i}", 1] for i in range(REMEMBERED)]
        await app.store.commit(device, {"cache": json.dumps({CACHE_KEY: full}).encode()})
        await c.command("SendMail", send_xml("old0", mime()))  # still remembered: not sent
        assert store.outgoing() == []
        await c.command("SendMail", send_xml("fresh", mime()))  # sent; pushes old0 out
        cache = await app.store.load(ALICE, c.device_id, "cache")
        assert cache is not None
        entries = json.loads(cache)[CACHE_KEY]
        assert len(entries) == REMEMBERED and entries[-1] == ["c:fresh", 1] and entries[0][0] == "c:old1"
        await c.command("SendMail", send_xml("old0", mime()))  # forgotten: sent again
        await c.command("SendMail", send_xml("old2", mime()))  # remembered (old1 went out): not sent
        assert len(store.outgoing(ALICE)) == 2

    run(scenario())


def test_hostile_cache_contents_are_ignored(tmp_path: Path) -> None:
    async def scenario() -> None:
        app, store = quick_app(tmp_path)
        c = client(app, version="14.1")
        await c.provision()
        device = await app.store.get_device(ALICE, c.device_id)
        assert device is not None
        junk = {CACHE_KEY: ["c:a", [1], [2, 1], ["c:b"], None, {"x": 1}, ["c:ok", 1, 2]]}
        await app.store.commit(device, {"cache": json.dumps(junk).encode()})
        r = await c.command("SendMail", send_xml("a", mime()))
        assert (r.status, r.body) == (200, b"")
        assert len(store.outgoing(ALICE)) == 1

    run(scenario())


def test_failed_send_is_retried_under_the_same_client_id(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store = await ready(tmp_path)
        r = await c.command("SendMail", send_xml("x1", b"Subject: nobody\r\n\r\nbody\r\n"))
        assert r.text(CM.Status) == "119"
        r = await c.command("SendMail", send_xml("x1", mime()))
        assert (r.status, r.body) == (200, b"")
        assert len(store.outgoing(ALICE)) == 1

    run(scenario())


def test_sendmail_refusals_send_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store = await ready(tmp_path)
        cases = [
            (send_xml("a", b"Subject: no recipient\r\n\r\nx\r\n"), "119"),
            (send_xml("b", b""), "107"),
            (send_xml("c", b"just some words without any header"), "107"),
            ('<SendMail xmlns="ComposeMail:"><Mime>' + b64(mime()) + "</Mime></SendMail>", "103"),  # no ClientId
            ('<SendMail xmlns="ComposeMail:"><ClientId>' + "x" * 200 + "</ClientId><Mime>" + b64(mime())
             + "</Mime></SendMail>", "103"),
            ('<SendMail xmlns="ComposeMail:"><ClientId>d</ClientId></SendMail>', "103"),  # no Mime
            ('<SmartReply xmlns="ComposeMail:"><ClientId>e</ClientId><Mime>' + b64(mime())
             + "</Mime></SmartReply>", "103"),  # wrong top element for SendMail
        ]
        for xml, status in cases:
            r = await c.command("SendMail", xml)
            assert r.status == 200 and r.node is not None, xml
            assert r.node.tag == CM.SendMail and r.text(CM.Status) == status, (xml, r.xml)
        r = await c.raw("SendMail", b"\x03\x01\x6a\x00\x45\x99")  # truncated WBXML
        assert r.text(CM.Status) == "102"
        assert store.outgoing() == []
        assert await folder_messages(store, BOB, FolderType.INBOX) == []

    run(scenario())


def test_sendmail_mime_sent_as_inline_string(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store = await ready(tmp_path)
        from eas.wbxml import Writer
        w = Writer()
        with w.tag(CM.SendMail):
            w.leaf(CM.ClientId, "s1")
            w.leaf(CM.Mime, mime(subject="as string").decode())
        r = await c.raw("SendMail", w.getvalue())
        assert (r.status, r.body) == (200, b"")
        assert [m["subject"] for m in await folder_messages(store, BOB, FolderType.INBOX)] == ["as string"]

    run(scenario())


def test_sendmail_121_raw_mime(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store = await ready(tmp_path, "12.1")
        data = mime(subject="legacy", extra="Message-ID: <legacy-1@example.com>\r\n")
        for _ in range(2):  # a resend with the same Message-ID is not sent again
            r = await c.raw("SendMail", data, params={"SaveInSent": "T"}, content_type="message/rfc822")
            assert (r.status, r.body) == (200, b"")
        assert [m["subject"] for m in await folder_messages(store, BOB, FolderType.INBOX)] == ["legacy"]
        assert [m["subject"] for m in await folder_messages(store, ALICE, FolderType.SENT_ITEMS)] == ["legacy"]
        r = await c.raw("SendMail", mime(subject="not saved"), content_type="message/rfc822")
        assert r.status == 200
        assert len(await folder_messages(store, ALICE, FolderType.SENT_ITEMS)) == 1
        assert len(store.outgoing(ALICE)) == 2

    run(scenario())


def test_sendmail_121_errors_are_http(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store = await ready(tmp_path, "12.1")
        r = await c.raw("SendMail", b"Subject: nobody\r\n\r\nx\r\n", content_type="message/rfc822")
        assert (r.status, r.body) == (500, b"")
        r = await c.raw("SendMail", b"", content_type="message/rfc822")
        assert r.status == 400
        r = await c.raw("SmartReply", mime(), params={"ItemId": "9:999", "CollectionId": "9"},
                        content_type="message/rfc822")
        assert r.status == 500
        assert store.outgoing() == []

    run(scenario())


# -- SmartReply / SmartForward --------------------------------------------------------------

ORIGINAL = (f"From: Bob <{BOB}>\r\nTo: {ALICE}\r\nSubject: Plans\r\nMessage-ID: <orig-1@example.com>\r\n"
            "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=BB\r\n\r\n"
            "--BB\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nShall we meet on Friday?\r\nBob\r\n"
            "--BB\r\nContent-Type: application/pdf; name=agenda.pdf\r\n"
            "Content-Disposition: attachment; filename=agenda.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + b64(b"%PDF-1.4 agenda") + "\r\n--BB--\r\n").encode()


async def with_original(tmp_path: Path, version: str = "14.1") -> tuple[Client, ReferenceStore, str, str]:
    c, store = await ready(tmp_path, version)
    item = store.deliver(ALICE, ORIGINAL)
    inbox = (await folder_ids(c))["Inbox"]
    return c, store, inbox, item


def source(inbox: str, item: str) -> str:
    return f"<Source><FolderId>{inbox}</FolderId><ItemId>{inbox}:{item}</ItemId></Source>"


def test_smartreply_quotes_the_original(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store, inbox, item = await with_original(tmp_path)
        reply = mime(subject="Re: Plans", body="Friday works.")
        r = await c.command("SmartReply", send_xml("r1", reply, root="SmartReply", source=source(inbox, item),
                                                   save=True))
        assert (r.status, r.body) == (200, b""), r.xml
        [got] = await folder_messages(store, BOB, FolderType.INBOX)
        text = text_of(got)
        assert text.index("Friday works.") < text.index("> Shall we meet on Friday?")
        assert got["in-reply-to"] == "<orig-1@example.com>"
        assert "<orig-1@example.com>" in str(got["references"])
        assert list(got.iter_attachments()) == []  # a reply does not carry the attachments
        [saved] = await folder_messages(store, ALICE, FolderType.SENT_ITEMS)
        assert "Shall we meet" in text_of(saved)

    run(scenario())


def test_smartforward_carries_text_and_attachments(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store, inbox, item = await with_original(tmp_path)
        fwd = mime(to=BOB, subject="Fw: Plans", body="FYI")
        r = await c.command("SmartForward", send_xml("f1", fwd, root="SmartForward", source=source(inbox, item)))
        assert (r.status, r.body) == (200, b""), r.xml
        [got] = await folder_messages(store, BOB, FolderType.INBOX)
        text = text_of(got)
        assert text.index("FYI") < text.index("Shall we meet on Friday?")
        [attached] = list(got.iter_attachments())
        assert attached.get_filename() == "agenda.pdf"
        assert attached.get_content() == b"%PDF-1.4 agenda"

    run(scenario())


def test_smart_commands_with_replace_mime_send_the_device_message_only(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store, inbox, item = await with_original(tmp_path)
        edited = mime(subject="Re: Plans", body="edited inline, whole message")
        r = await c.command("SmartReply", send_xml("r2", edited, root="SmartReply", source=source(inbox, item),
                                                   replace=True))
        assert (r.status, r.body) == (200, b"")
        [got] = await folder_messages(store, BOB, FolderType.INBOX)
        assert "Shall we meet" not in text_of(got)
        assert "edited inline" in text_of(got)

    run(scenario())


def test_smart_commands_with_unknown_original_send_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store, inbox, item = await with_original(tmp_path)
        drafts = (await folder_ids(c))["Drafts"]
        for src in (source(inbox, "999999"), source("77", item), "<Source><ItemId>garbage</ItemId></Source>",
                    f"<Source><FolderId>{inbox}</FolderId><ItemId>{drafts}:{item}</ItemId></Source>",
                    f"<Source><FolderId>{drafts}</FolderId><ItemId>{inbox}:{item}</ItemId></Source>",
                    "<Source/>"):
            for root in ("SmartReply", "SmartForward"):
                r = await c.command(root, send_xml("u-" + root, mime(), root=root, source=src))
                assert r.node is not None and r.node.tag == getattr(CM, root), r.xml
                assert r.text(CM.Status) == "150", (src, r.xml)
        r = await c.command("SmartReply", '<SmartReply xmlns="ComposeMail:"><ClientId>z</ClientId><Mime>'
                            + b64(mime()) + "</Mime></SmartReply>")
        assert r.text(CM.Status) == "103"  # no Source at all
        long_and_item = (f"<Source><FolderId>{inbox}</FolderId><ItemId>{inbox}:{item}</ItemId>"
                         f"<LongId>{inbox}:{item}</LongId></Source>")
        r = await c.command("SmartReply", send_xml("y", mime(), root="SmartReply", source=long_and_item))
        assert r.text(CM.Status) == "105"
        assert store.outgoing() == []

    run(scenario())


def test_smartforward_121_with_query_parameters(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store, inbox, item = await with_original(tmp_path, "12.1")
        r = await c.raw("SmartForward", mime(subject="Fw: Plans", body="see below"),
                        params={"ItemId": f"{inbox}:{item}", "CollectionId": inbox, "SaveInSent": "T"},
                        content_type="message/rfc822")
        assert (r.status, r.body) == (200, b"")
        [got] = await folder_messages(store, BOB, FolderType.INBOX)
        assert "Shall we meet" in text_of(got)
        assert [a.get_filename() for a in got.iter_attachments()] == ["agenda.pdf"]
        assert len(await folder_messages(store, ALICE, FolderType.SENT_ITEMS)) == 1

    run(scenario())


def test_smartforward_161_forwardees_and_body(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store, inbox, item = await with_original(tmp_path, "16.1")
        xml = ('<SmartForward xmlns="ComposeMail:" xmlns:airsyncbase="AirSyncBase:"><ClientId>fw16</ClientId>'
               + source(inbox, item)
               + f"<Forwardees><Forwardee><Name>Bob B</Name><Email>{BOB}</Email></Forwardee></Forwardees>"
               + "<airsyncbase:Body><airsyncbase:Type>1</airsyncbase:Type>"
               + "<airsyncbase:Data>Please join</airsyncbase:Data></airsyncbase:Body></SmartForward>")
        r = await c.command("SmartForward", xml)
        assert (r.status, r.body) == (200, b""), r.xml
        [got] = await folder_messages(store, BOB, FolderType.INBOX)
        assert got["subject"] == "Fw: Plans"
        assert "Please join" in text_of(got) and "Shall we meet" in text_of(got)
        assert ALICE in str(got["from"])

    run(scenario())


def test_smartforward_161_bad_forwardee_combinations(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store, inbox, item = await with_original(tmp_path, "16.1")
        head = '<SmartForward xmlns="ComposeMail:" xmlns:airsyncbase="AirSyncBase:"><ClientId>b</ClientId>'
        with_mime = (head + source(inbox, item) + f"<Forwardees><Forwardee><Email>{BOB}</Email></Forwardee>"
                     + f"</Forwardees><Mime>{b64(mime())}</Mime></SmartForward>")
        r = await c.command("SmartForward", with_mime)
        assert r.text(CM.Status) == "178"
        no_email = (head + source(inbox, item) + "<Forwardees><Forwardee><Name>x</Name></Forwardee>"
                    + "</Forwardees></SmartForward>")
        r = await c.command("SmartForward", no_email)
        assert r.text(CM.Status) == "179"
        header_injection = (head + source(inbox, item) + "<Forwardees><Forwardee><Email>a@b\r\nBcc: c@d</Email>"
                            + "</Forwardee></Forwardees></SmartForward>")
        r = await c.command("SmartForward", header_injection)
        assert r.text(CM.Status) == "179"
        assert store.outgoing() == []

    run(scenario())


def test_forwardees_are_refused_before_16(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store, inbox, item = await with_original(tmp_path, "14.1")
        xml = ('<SmartForward xmlns="ComposeMail:"><ClientId>c</ClientId>' + source(inbox, item)
               + f"<Forwardees><Forwardee><Email>{BOB}</Email></Forwardee></Forwardees></SmartForward>")
        r = await c.command("SmartForward", xml)
        assert r.text(CM.Status) == "103"
        assert store.outgoing() == []

    run(scenario())


def test_unknown_account_id_is_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        c, store = await ready(tmp_path)
        xml = ('<SendMail xmlns="ComposeMail:"><ClientId>a1</ClientId><AccountId>other</AccountId>'
               f"<Mime>{b64(mime())}</Mime></SendMail>")
        r = await c.command("SendMail", xml)
        assert r.text(CM.Status) == "166"
        assert store.outgoing() == []

    run(scenario())


class StoreWithoutMime(ReferenceStore):
    """A backend that keeps no MIME (the Backend contract allows ``Email.mime`` None)."""

    async def fetch_emails(self, user: str, folder_id: str, item_ids: Sequence[str], *,
                           mime: bool = False) -> list[Email]:
        found = await super().fetch_emails(user, folder_id, item_ids, mime=False)
        return found


def test_smart_commands_rebuild_the_original_without_mime(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = StoreWithoutMime(tmp_path / "mail.db")
        for user, password in USERS:
            store.add_user(user, password)
        app = ActiveSync(store, SQLiteStateStore(tmp_path / "state.db"), authenticate=store.authenticate)
        c = client(app, version="14.1")
        await c.provision()
        item = store.deliver(ALICE, ORIGINAL)
        inbox = (await folder_ids(c))["Inbox"]
        r = await c.command("SmartForward", send_xml("f", mime(body="FYI"), root="SmartForward",
                                                     source=source(inbox, item)))
        assert (r.status, r.body) == (200, b"")
        [got] = await folder_messages(store, BOB, FolderType.INBOX)
        assert "Shall we meet on Friday?" in text_of(got) and "FYI" in text_of(got)
        [attached] = list(got.iter_attachments())
        assert attached.get_filename() == "agenda.pdf" and attached.get_content() == b"%PDF-1.4 agenda"
        r = await c.command("SmartReply", send_xml("r", mime(body="Sure"), root="SmartReply",
                                                   source=source(inbox, item)))
        assert (r.status, r.body) == (200, b"")
        replies = await folder_messages(store, BOB, FolderType.INBOX)
        assert any("> Shall we meet on Friday?" in text_of(m) for m in replies)

    run(scenario())


class RefusingStore(ReferenceStore):
    """A store whose submission fails the way a real one can (fault injection)."""

    failure: BackendError | None = None

    async def send_mail(self, user: str, mime: bytes, *, save_in_sent: bool) -> None:
        if self.failure is not None:
            raise self.failure
        await super().send_mail(user, mime, save_in_sent=save_in_sent)


def test_backend_send_failures_become_statuses(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = RefusingStore(tmp_path / "mail.db")
        for user, password in USERS:
            store.add_user(user, password)
        app = ActiveSync(store, SQLiteStateStore(tmp_path / "state.db"), authenticate=store.authenticate)
        new, old = client(app, version="14.1"), client(app, version="12.1", device_id="OldDevice")
        await new.provision()
        await old.provision()
        for failure, status, http in ((SendFailed("relay refused"), "120", 500),
                                      (QuotaExceeded("full"), "113", 507),
                                      (BackendError("unresolvable", status=116), "116", 500)):
            store.failure = failure
            r = await new.command("SendMail", send_xml(f"id-{status}", mime()))
            assert r.text(CM.Status) == status
            r = await old.raw("SendMail", mime(), content_type="message/rfc822")
            assert (r.status, r.body) == (http, b"")
        # A failure is not remembered as sent: once the backend recovers, the resend goes out.
        store.failure = SendFailed("again")
        await new.command("SendMail", send_xml("retry", mime()))
        store.failure = None
        r = await new.command("SendMail", send_xml("retry", mime()))
        assert (r.status, r.body) == (200, b"")
        assert len(store.outgoing(ALICE)) == 1

    run(scenario())


# -- eas.mime on its own ---------------------------------------------------------------------


def msg(data: str | bytes) -> EmailMessage:
    from eas import mime as mimelib
    return mimelib.parse(data.encode() if isinstance(data, str) else data)


@pytest.mark.kernel_independent
def test_reply_to_both_alternatives_and_an_html_only_original() -> None:
    from eas import mime as mimelib
    original = msg(f"From: {BOB}\r\nSubject: S\r\nMessage-ID: <o@x>\r\nContent-Type: text/html\r\n\r\n"
                   "<html><head><style>p{}</style></head><body><p>Tom &amp; Jerry</p></body></html>\r\n")
    new = msg(f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: Re: S\r\nContent-Type: multipart/alternative; boundary=A\r\n"
              "\r\n--A\r\nContent-Type: text/plain\r\n\r\nmine\r\n--A\r\nContent-Type: text/html\r\n\r\n"
              "<html><body><b>mine</b></body></html>\r\n--A--\r\n")
    out = msg(mimelib.to_bytes(mimelib.reply(new, original)))
    plain, rich = mimelib.text_of(out)
    assert plain is not None and rich is not None
    assert plain.index("mine") < plain.index("> Tom & Jerry")  # HTML original quoted as text
    assert rich.index("<b>mine</b>") < rich.index("<p>Tom &amp; Jerry</p>") < rich.index("</body>")
    assert "<style>" not in rich and out["In-Reply-To"] == "<o@x>"


@pytest.mark.kernel_independent
def test_forward_keeps_attached_messages_and_odd_charsets() -> None:
    from eas import mime as mimelib
    inner = f"From: {BOB}\r\nSubject: inner\r\n\r\ninner body\r\n"
    original = msg(f"From: {BOB}\r\nSubject: S\r\nContent-Type: multipart/mixed; boundary=M\r\n\r\n"
                   "--M\r\nContent-Type: text/plain; charset=x-unknown-charset\r\n\r\nodd caf\xe9\r\n"
                   f"--M\r\nContent-Type: message/rfc822\r\n\r\n{inner}--M--\r\n".encode("latin-1"))
    new = msg(f"From: {ALICE}\r\nTo: {BOB}\r\nSubject: Fw: S\r\n\r\nsee\r\n")
    out = msg(mimelib.to_bytes(mimelib.forward(new, original)))
    plain, _ = mimelib.text_of(out)
    assert plain is not None and "see" in plain and "odd caf" in plain
    [attached] = list(out.iter_attachments())
    assert attached.get_content_type() == "message/rfc822"
    assert "inner body" in attached.as_string()


@pytest.mark.kernel_independent
def test_reply_when_the_device_sent_no_text() -> None:
    from eas import mime as mimelib
    original = msg(f"From: {BOB}\r\nSubject: S\r\n\r\noriginal text\r\n")
    new = msg(f"From: {ALICE}\r\nTo: {BOB}\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
              "iVBORw0KGgo=\r\n")
    out = msg(mimelib.to_bytes(mimelib.reply(new, original)))
    plain, _ = mimelib.text_of(out)
    assert plain is not None and "> original text" in plain
    [image] = list(out.iter_attachments())
    assert image.get_content_type() == "image/png" and image.get_content() == b"\x89PNG\r\n\x1a\n"


@pytest.mark.kernel_independent
def test_parse_refuses_what_is_no_message() -> None:
    from eas import mime as mimelib
    for junk in (b"", b"   \r\n", b"no header here at all"):
        with pytest.raises(mimelib.MimeError):
            mimelib.parse(junk)
    data = b"To: x@y\n\nbody\n"
    added = mimelib.with_missing_headers(data, mimelib.parse(data), ALICE)
    assert added.endswith(data) and added.startswith(f"From: {ALICE}\n".encode())
    assert mimelib.recipients(mimelib.parse(b"To: a@b, c\r\nCc: d@e\r\nBcc: f@g\r\n\r\n")) == ["a@b", "d@e", "f@g"]
