"""The notice mailbox (``eas.access.quarantine``): what a quarantined or blocked device
sees, through the real core with the real SQLite state store and reference mail store
(one Inbox, one notice mail, per domain and language; writes refused and the real
mailbox untouched; a change of access resets the device's sync state both ways; a new
text reaches the device), and the notice-text API (precedence, language fallback,
hostile input storing nothing)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from test_sync import coll, collection

from eas import tags
from eas.access import AccessDecision, change_setting
from eas.access import quarantine as q
from eas.access.quarantine import CACHE_SECONDS, NoticeMailboxes, device_language, fill
from eas.backend import EmailChange, ItemNotFound, Oof, QuotaExceeded, SendFailed, SpecialFolder
from eas.core import ActiveSync
from eas.protocol.http import EASRequest
from eas.protocol.versions import Version
from eas.state.memory import MemoryStateStore
from eas.state.model import DeviceRecord
from eas.store import ReferenceStore
from eas.tags import AirSync as A
from eas.tags import FolderHierarchy as FH
from eas.tags import GetItemEstimate as G
from eas.tags import ItemOperations as IO
from eas.tags import Ping as P
from eas.testing.client import Client, Reply
from eas.testing.harness import USERS, client, make_app
from eas.wbxml import Node

VERSIONS = ("2.5", "12.1", "14.1", "16.1")
ALICE = USERS[0][0]
NS = 'xmlns="AirSync:" xmlns:e="Email:" xmlns:b="AirSyncBase:"'
FOLDERSYNC = '<FolderSync xmlns="FolderHierarchy:"><SyncKey>{}</SyncKey></FolderSync>'


def run(scenario: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(scenario())


def message(n: int) -> bytes:
    when = datetime.now(UTC) - timedelta(minutes=10)
    return (f"From: Bob <bob@example.com>\r\nTo: {ALICE}\r\nSubject: Real mail {n}\r\n"
            f"Date: {format_datetime(when)}\r\nMessage-ID: <real{n}.{time.time_ns()}@example.com>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSecret body {n}\r\n").encode()


class Gate:
    """A tiny access hook whose answer the test changes (the ABQ engine stands aside)."""

    def __init__(self, access: str = "quarantined", reason: str = "individual") -> None:
        self.decision = AccessDecision(access, reason, "")

    def set(self, access: str, reason: str = "individual") -> None:
        self.decision = AccessDecision(access, reason, "")

    async def __call__(self, request: EASRequest, account: str, device: DeviceRecord) -> AccessDecision:
        return self.decision


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += CACHE_SECONDS + 0.1


def options(version: str) -> str:
    """Whole plain-text bodies (2.5: Truncation 9)."""
    if version == "2.5":
        return "<Options><Truncation>9</Truncation></Options>"
    return "<Options><b:BodyPreference><b:Type>1</b:Type></b:BodyPreference></Options>"


def commands(c: Node) -> list[tuple[str, str, Node]]:
    return [(tags.name(n.tag).split(":")[1], str(n.findtext(A.ServerId)), n) for n in (c.find(A.Commands) or [])]


def responses(c: Node) -> list[tuple[str, str, str]]:
    return [(tags.name(n.tag).split(":")[1], str(n.findtext(A.ServerId) or n.findtext(A.ClientId)),
             str(n.findtext(A.Status))) for n in (c.find(A.Responses) or [])]


def subject_of(node: Node) -> str:
    return str(node.findtext(A.ApplicationData, tags.Email.Subject))


def body_of(node: Node) -> str:
    data = node.find(A.ApplicationData)
    assert data is not None
    legacy = data.findtext(tags.Email.Body)
    if legacy is not None:
        return str(legacy)
    return str(data.findtext(tags.AirSyncBase.Body, tags.AirSyncBase.Data))


class Phone:
    """One device of alice against ``app``: provisioned, with its FolderSync and Sync keys."""

    def __init__(self, app: ActiveSync, version: str, device_id: str = "NoticePhone1", user: str = ALICE,
                 password: str = USERS[0][1]) -> None:
        self.version = version
        self.client: Client = client(app, user, password, version=version, device_id=device_id)
        self.folders: dict[str, tuple[str, str]] = {}  # name -> (server id, type)
        self.folder_key = "0"

    async def folder_sync(self, key: str = "0") -> Reply:
        r = await self.client.command("FolderSync", FOLDERSYNC.format(key))
        assert r.status == 200, r
        if r.text(FH.Status) == "1":
            self.folder_key = str(r.text(FH.SyncKey))
            if key == "0":
                self.folders = {}
            for add in (r.node.find(FH.Changes) or []) if r.node is not None else []:
                if add.tag == FH.Add:
                    self.folders[str(add.findtext(FH.DisplayName))] = (str(add.findtext(FH.ServerId)),
                                                                       str(add.findtext(FH.Type)))
        return r

    async def sync(self, cid: str, key: str, inner: str = "") -> Reply:
        r = await self.client.command("Sync", f"<Sync {NS}><Collections>{coll(cid, key, inner)}</Collections></Sync>")
        assert r.status == 200, r
        return r

    async def settle(self, cid: str) -> tuple[str, list[tuple[str, str, Node]]]:
        """SyncKey 0, then Syncs until nothing more comes: the key and every command."""
        c = collection(await self.sync(cid, "0", options(self.version)), cid)
        assert c.findtext(A.Status) == "1", c
        key = str(c.findtext(A.SyncKey))
        got: list[tuple[str, str, Node]] = []
        for _ in range(20):
            r = await self.sync(cid, key, options(self.version))
            if r.node is None:
                return key, got
            c = collection(r, cid)
            assert c.findtext(A.Status) == "1", r.xml
            got += commands(c)
            if c.findtext(A.SyncKey) == key and not commands(c):
                return key, got
            key = str(c.findtext(A.SyncKey))
            if c.find(A.MoreAvailable) is None:
                return key, got
        raise AssertionError("Sync never settled")

    async def tell_language(self, language: str) -> None:
        r = await self.client.command("Settings", '<Settings xmlns="Settings:"><DeviceInformation><Set>'
                                      f"<Model>Pixel 9</Model><OSLanguage>{language}</OSLanguage>"
                                      "</Set></DeviceInformation></Settings>")
        assert r.status == 200 and r.text(tags.Settings.Status) == "1", r


async def real_mailbox(store: ReferenceStore) -> dict[str, Any]:
    """What alice's real mailbox holds: folders and each mail's stamp and read flag."""
    out: dict[str, Any] = {}
    for f in await store.folders(ALICE):
        stamps = await store.item_stamps(ALICE, f.id)
        mails = await store.fetch_emails(ALICE, f.id, list(stamps)) if stamps and f.type in (1, 2, 3, 4, 5, 6, 12) else []
        out[f.name] = (stamps, sorted((m.id, m.read, m.subject) for m in mails))
    return out


async def quarantined_app(tmp_path: Path, gate: Gate, clock: Clock | None = None) -> tuple[ActiveSync, ReferenceStore]:
    app, store = make_app(tmp_path)
    app.access = gate
    app.notices = NoticeMailboxes(app.store, clock=clock or Clock())
    store.deliver(ALICE, message(1))
    store.deliver(ALICE, message(2))
    return app, store


def refused(reply: Reply, version: str, status_tag: int | None) -> bool:
    """Status 129 from 14.0 where the command has a status, HTTP 403 otherwise."""
    if Version(version) >= Version("14.0") and status_tag is not None:
        return reply.status == 200 and reply.text(status_tag) == "129"
    return reply.status == 403


# -- the notice mailbox through the real core -------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_quarantined_device_sees_only_the_notice(tmp_path: Path, version: str) -> None:
    """FolderSync: one Inbox; Sync: exactly the notice; Ping and GetItemEstimate answer
    from it; ItemOperations fetches it; SendMail, Search, MoveItems are refused; the
    device's Change, Delete and Add change nothing in the real mailbox."""

    async def scenario() -> None:
        gate = Gate("quarantined")
        app, store = await quarantined_app(tmp_path, gate)
        await q.set_message(app.store, state="quarantined", text="Wait for {user}, device {device_id}.",
                            subject="Hold on", actor="test")
        before = await real_mailbox(store)
        phone = Phone(app, version)
        await phone.client.provision()
        r = await phone.folder_sync()
        assert r.text(FH.Status) == "1" and r.text(FH.Changes, FH.Count) == "1"
        assert phone.folders == {"Inbox": (phone.folders["Inbox"][0], "2")}
        inbox = phone.folders["Inbox"][0]
        c = collection(await phone.sync(inbox, "0", options(version)), inbox)
        key = str(c.findtext(A.SyncKey))
        # Ping answers at once: the Inbox has something the device has not got yet.
        ping = await phone.client.command("Ping", '<Ping xmlns="Ping:"><HeartbeatInterval>60</HeartbeatInterval>'
                                          f"<Folders><Folder><Id>{inbox}</Id><Class>Email</Class></Folder>"
                                          "</Folders></Ping>")
        assert ping.text(P.Status) == "2" and ping.text(P.Folders, P.Folder) == inbox, ping.xml
        estimate = await phone.client.command("GetItemEstimate", _estimate_xml(version, inbox, key))
        assert estimate.text(G.Response, G.Status) == "1", estimate.xml
        assert estimate.text(G.Response, G.Collection, G.Estimate) == "1"
        c = collection(await phone.sync(inbox, key, options(version)), inbox)
        [(kind, sid, add)] = commands(c)
        key = str(c.findtext(A.SyncKey))
        assert kind == "Add" and subject_of(add) == "Hold on"
        assert body_of(add).strip() == "Wait for alice@example.com, device NoticePhone1."
        assert add.findtext(A.ApplicationData, tags.Email.From) == "postmaster@example.com"
        assert add.findtext(A.ApplicationData, tags.Email.Read) == "0"
        if version != "2.5":
            fetch = await phone.client.command(
                "ItemOperations", f'<ItemOperations xmlns="ItemOperations:" xmlns:a="AirSync:" xmlns:b="AirSyncBase:"><Fetch>'
                f"<Store>Mailbox</Store><a:CollectionId>{inbox}</a:CollectionId><a:ServerId>{sid}</a:ServerId>"
                "<Options><b:BodyPreference><b:Type>1</b:Type></b:BodyPreference></Options></Fetch></ItemOperations>")
            assert fetch.text(IO.Response, IO.Fetch, IO.Status) == "1", fetch.xml
            assert fetch.text(IO.Response, IO.Fetch, IO.Properties, tags.Email.Subject) == "Hold on"
            empty = await phone.client.command(
                "ItemOperations", '<ItemOperations xmlns="ItemOperations:" xmlns:a="AirSync:"><EmptyFolderContents>'
                f"<a:CollectionId>{inbox}</a:CollectionId></EmptyFolderContents></ItemOperations>")
            assert empty.text(IO.Response, IO.EmptyFolderContents, IO.Status) == "3", empty.xml  # refused
        # Commands that are not answered from the notice mailbox.
        send = await phone.client.command("SendMail", _sendmail_xml(version)) if Version(version) >= Version("14.0") else \
            await phone.client.raw("SendMail", message(9), params={"SaveInSent": "T"}, content_type="message/rfc822")
        assert refused(send, version, tags.ComposeMail.Status), send
        search = await phone.client.command("Search", '<Search xmlns="Search:"><Store><Name>Mailbox</Name>'
                                            "<Query><FreeText>Secret</FreeText></Query></Store></Search>")
        assert refused(search, version, tags.Search.Status), search
        move = await phone.client.command("MoveItems", f'<MoveItems xmlns="Move:"><Move><SrcMsgId>{sid}</SrcMsgId>'
                                          f"<SrcFldId>{inbox}</SrcFldId><DstFldId>{inbox}</DstFldId></Move></MoveItems>")
        assert move.status == 403
        # Writes: a read-flag Change and a Delete are refused (8), a mail Add is 6.
        change = f"<Commands><Change><ServerId>{sid}</ServerId><ApplicationData><e:Read>1</e:Read>" \
                 "</ApplicationData></Change></Commands>"
        c = collection(await phone.sync(inbox, key, change), inbox)
        assert responses(c) == [("Change", sid, "8")], c
        key = str(c.findtext(A.SyncKey))
        add_mail = "<Commands><Add><ClientId>c1</ClientId><ApplicationData><e:Subject>x</e:Subject>" \
                   "</ApplicationData></Add></Commands>"
        c = collection(await phone.sync(inbox, key, add_mail), inbox)
        assert responses(c) == [("Add", "c1", "6")], c
        key = str(c.findtext(A.SyncKey))
        delete = f"<DeletesAsMoves>0</DeletesAsMoves><Commands><Delete><ServerId>{sid}</ServerId></Delete></Commands>"
        c = collection(await phone.sync(inbox, key, delete), inbox)
        assert responses(c) == [("Delete", sid, "8")], c
        # The notice comes back: it is not the device's to delete.
        assert [(k, s) for k, s, _ in commands(c)] == [("Add", sid)], c
        assert await real_mailbox(store) == before
        events = [e for e in await app.store.events(limit=50) if e.action.startswith("access.")]
        assert [(e.action, e.user, e.device_id) for e in events] == [("access.quarantined", ALICE, "NoticePhone1")]

    run(scenario)


def _estimate_xml(version: str, cid: str, key: str) -> str:
    if version in ("2.5", "12.1"):
        return (f'<GetItemEstimate xmlns="GetItemEstimate:" xmlns:a="AirSync:"><Collections><Collection>'
                f"<Class>Email</Class><a:SyncKey>{key}</a:SyncKey><CollectionId>{cid}</CollectionId>"
                "<a:FilterType>0</a:FilterType></Collection></Collections></GetItemEstimate>")
    return (f'<GetItemEstimate xmlns="GetItemEstimate:" xmlns:a="AirSync:"><Collections><Collection>'
            f"<a:SyncKey>{key}</a:SyncKey><CollectionId>{cid}</CollectionId>"
            "</Collection></Collections></GetItemEstimate>")


def _sendmail_xml(version: str) -> str:
    import base64

    mime = base64.b64encode(message(9)).decode()
    return (f'<SendMail xmlns="ComposeMail:"><ClientId>s1</ClientId><SaveInSentItems/>'
            f"<MIME>{mime}</MIME></SendMail>")


@pytest.mark.parametrize("version", VERSIONS)
def test_allowed_then_quarantined_again_resets_both_ways(tmp_path: Path, version: str) -> None:
    """Allowed: the old keys fail as a reset state makes them (Sync 12: the collection
    is unknown; FolderSync 9), a new FolderSync 0 + Sync shows the real mail; quarantined again: the notice
    mailbox again, the real mailbox untouched."""

    async def scenario() -> None:
        gate = Gate("quarantined")
        app, store = await quarantined_app(tmp_path, gate)
        phone = Phone(app, version)
        await phone.client.provision()
        await phone.folder_sync()
        old_inbox = phone.folders["Inbox"][0]
        old_key, got = await phone.settle(old_inbox)
        assert [subject_of(n) for _, _, n in got] == [q.BUILT_IN["quarantined"]["en"][0]]
        old_folder_key = phone.folder_key

        gate.set("allowed", "global")
        # The reset state knows no collection: status 12 (hierarchy changed), FolderSync 9.
        assert collection(await phone.sync(old_inbox, old_key), old_inbox).findtext(A.Status) == "12"
        assert (await phone.folder_sync(old_folder_key)).text(FH.Status) == "9"
        await phone.folder_sync()
        assert {"Inbox", "Drafts", "Sent Items", "Deleted Items"} <= set(phone.folders)
        real_inbox = phone.folders["Inbox"][0]
        _, got = await phone.settle(real_inbox)
        assert sorted(subject_of(n) for _, _, n in got) == ["Real mail 1", "Real mail 2"]
        before = await real_mailbox(store)

        gate.set("quarantined", "individual")
        assert (await phone.folder_sync(phone.folder_key)).text(FH.Status) == "9"
        await phone.folder_sync()
        assert list(phone.folders) == ["Inbox"]
        _, got = await phone.settle(phone.folders["Inbox"][0])
        assert [subject_of(n) for _, _, n in got] == [q.BUILT_IN["quarantined"]["en"][0]]
        assert await real_mailbox(store) == before
        actions = [e.action for e in reversed(await app.store.events(limit=50)) if e.action.startswith("access.")]
        assert actions == ["access.quarantined", "access.allowed", "access.quarantined"]

    run(scenario)


@pytest.mark.parametrize("version", ("12.1", "16.1"))
def test_a_new_text_or_state_reaches_the_device(tmp_path: Path, version: str) -> None:
    """An unchanged notice keeps its id and stamp (a Sync is quiet); a new text, after
    the settings cache, is a Delete of the old notice and an Add of the new one; so is
    quarantined -> blocked (no reset between two restricted states); with
    abq.blocked_notice false a blocked device gets status 129 / 403."""

    async def scenario() -> None:
        gate, clock = Gate("quarantined"), Clock()
        app, _ = await quarantined_app(tmp_path, gate, clock)
        phone = Phone(app, version)
        await phone.client.provision()
        await phone.folder_sync()
        inbox = phone.folders["Inbox"][0]
        key, [(_, first, _)] = await phone.settle(inbox)
        assert (await phone.sync(inbox, key)).node is None  # quiet: the same id and stamp

        await q.set_message(app.store, state="quarantined", text="New words.", actor="test")
        assert (await phone.sync(inbox, key)).node is None  # still the cached text
        clock.tick()
        c = collection(await phone.sync(inbox, key, options(version)), inbox)
        got = commands(c)
        assert [k for k, _, _ in got] == ["Delete", "Add"] and got[0][1] == first, c
        assert body_of(got[1][2]).strip() == "New words." and got[1][1] != first
        key = str(c.findtext(A.SyncKey))
        assert (await phone.sync(inbox, key)).node is None

        gate.set("blocked", "rule")
        c = collection(await phone.sync(inbox, key, options(version)), inbox)
        got = commands(c)
        assert [k for k, _, _ in got] == ["Delete", "Add"], c
        assert subject_of(got[1][2]) == q.BUILT_IN["blocked"]["en"][0]
        await change_setting(app.store, "abq.blocked_notice", False, actor="test")
        clock.tick()
        r = await phone.client.command("FolderSync", FOLDERSYNC.format(phone.folder_key))
        assert refused(r, version, FH.Status), r

    run(scenario)


def test_notice_by_domain_and_device_language(tmp_path: Path) -> None:
    """The domain's text for its accounts, the global one for others; the language the
    device said in Settings (a name or a code) picks the text, with fallback."""

    async def scenario() -> None:
        app, _ = make_app(tmp_path, users=(*USERS, ("carol@other.org", "carol-secret")))
        app.access = Gate("quarantined")
        store = app.store
        await q.set_message(store, state="quarantined", text="global en", actor="t")
        await q.set_message(store, state="quarantined", language="de", text="global de", actor="t")
        await q.set_message(store, state="quarantined", domain="example.com", text="example en", actor="t")
        await q.set_message(store, state="quarantined", domain="example.com", language="de", subject="Halt",
                            text="example de {model}", actor="t")
        cases = [(ALICE, USERS[0][1], "Deutsch", "Halt", "example de Pixel 9"),
                 (ALICE, USERS[0][1], "de-AT", "Halt", "example de Pixel 9"),
                 (ALICE, USERS[0][1], "Français", q.BUILT_IN["quarantined"]["fr"][0], "example en"),
                 ("carol@other.org", "carol-secret", "German", q.BUILT_IN["quarantined"]["de"][0], "global de"),
                 ("carol@other.org", "carol-secret", "en_US", q.BUILT_IN["quarantined"]["en"][0], "global en")]
        for n, (user, password, language, subject, text) in enumerate(cases):
            phone = Phone(app, "14.1", device_id=f"LangPhone{n}", user=user, password=password)
            await phone.client.provision()
            await phone.tell_language(language)
            await phone.folder_sync()
            _, [(_, _, add)] = await phone.settle(phone.folders["Inbox"][0])
            assert (subject_of(add), body_of(add).strip()) == (subject, text), (user, language)

    run(scenario)


def test_notice_mail_is_an_rfc5322_message() -> None:
    """From (abq.notice_from or postmaster@domain), To, Subject, Date (the decision),
    text/plain and an HTML alternative; placeholders filled; refused writes."""

    async def scenario() -> None:
        store = MemoryStateStore()
        notices = NoticeMailboxes(store)
        decided = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC).timestamp()
        device = DeviceRecord(user=ALICE, device_id="Dev<1>", device_type="iPhone", model="X", access_time=decided)
        mailbox = await notices.backend(ALICE, device, AccessDecision("blocked", "rule", "rule 3: model X"))
        assert mailbox is not None
        [folder] = await mailbox.folders(ALICE)
        stamps = await mailbox.item_stamps(ALICE, folder.id, datetime.now(UTC))  # whatever the window
        assert stamps == await mailbox.item_stamps(ALICE, folder.id)
        [item] = stamps
        [mail] = await mailbox.fetch_emails(ALICE, folder.id, [item], mime=True)
        assert mail.mime is not None
        msg = message_from_bytes(mail.mime, policy=policy.default)
        assert msg["From"] == "postmaster@example.com" and msg["To"] == ALICE
        assert msg["Subject"] == q.BUILT_IN["blocked"]["en"][0]
        assert parsedate_to_datetime(msg["Date"]).timestamp() == decided
        assert msg.get_content_type() == "multipart/alternative"
        plain = msg.get_body(("plain",))
        html_part = msg.get_body(("html",))
        assert plain is not None and html_part is not None
        assert "iPhone (Dev<1>)" in plain.get_content() and "Dev&lt;1&gt;" in html_part.get_content()
        [plain_only] = await mailbox.fetch_emails(ALICE, folder.id, [item])
        assert plain_only.mime is None and plain_only.subject == mail.subject
        assert await mailbox.fetch_emails(ALICE, folder.id, ["other"]) == []
        for write in (mailbox.change_email(ALICE, folder.id, item, EmailChange(read=True)),
                      mailbox.delete_item(ALICE, folder.id, item, permanently=True),
                      mailbox.move_item(ALICE, item, folder.id, folder.id)):
            with pytest.raises(ItemNotFound):
                await write
        with pytest.raises(QuotaExceeded):
            await mailbox.add_email(ALICE, folder.id, b"Subject: x\r\n\r\nx")
        with pytest.raises(SendFailed):
            await mailbox.send_mail(ALICE, b"Subject: x\r\n\r\nx", save_in_sent=False)
        with pytest.raises(SpecialFolder):
            await mailbox.delete_folder(ALICE, folder.id)
        # The same decision gives the same id and stamp; the sender setting changes them.
        again = await notices.backend(ALICE, device, AccessDecision("blocked", "rule", "rule 3: model X"))
        assert again is not None and await again.item_stamps(ALICE, folder.id) == stamps
        rebuilt = await NoticeMailboxes(store).backend(ALICE, device, AccessDecision("blocked", "rule", "rule 3: model X"))
        assert rebuilt is not None
        assert [m.mime for m in await rebuilt.fetch_emails(ALICE, folder.id, [item], mime=True)] == [mail.mime]
        await change_setting(store, "abq.notice_from", "IT desk <it@example.com>", actor="t")
        fresh = NoticeMailboxes(store)
        other = await fresh.backend(ALICE, device, AccessDecision("blocked", "rule", "rule 3: model X"))
        assert other is not None
        [(other_item, _)] = (await other.item_stamps(ALICE, folder.id)).items()
        assert other_item != item
        [other_mail] = await other.fetch_emails(ALICE, folder.id, [other_item], mime=True)
        assert message_from_bytes(other_mail.mime or b"", policy=policy.default)["From"] == "IT desk <it@example.com>"
        # The reason placeholder says why; blocked devices refused outright when set so.
        await q.set_message(store, state="blocked", text="Refused: {reason}", actor="t")
        await change_setting(store, "abq.blocked_notice", False, actor="t")
        fresh = NoticeMailboxes(store)
        assert await fresh.backend(ALICE, device, AccessDecision("blocked", "rule", "")) is None
        quarantined = await fresh.backend(ALICE, device, AccessDecision("quarantined", "global", ""))
        assert quarantined is not None

    run(scenario)


def test_notice_mailbox_is_cheap() -> None:
    """A request's notice mailbox (its stamps and its mail) costs well under a millisecond
    once the settings are cached and the mail built."""

    async def scenario() -> None:
        store = MemoryStateStore()
        await q.set_message(store, state="quarantined", domain="example.com", language="de", text="x", actor="t")
        notices = NoticeMailboxes(store)
        device = DeviceRecord(user=ALICE, device_id="D1", os_language="Deutsch", access_time=time.time())
        decision = AccessDecision("quarantined", "global", "")
        await notices.backend(ALICE, device, decision)
        n = 2000
        start = time.perf_counter()
        for _ in range(n):
            mailbox = await notices.backend(ALICE, device, decision)
            assert mailbox is not None
            [item] = await mailbox.item_stamps(ALICE, q.INBOX_ID)
            [mail] = await mailbox.fetch_emails(ALICE, q.INBOX_ID, [item])  # built once, then kept
        assert mail.subject
        per_request = (time.perf_counter() - start) / n
        assert per_request < 0.001, per_request

    run(scenario)


# -- the notice-text API --------------------------------------------------------------------


def test_precedence_and_language_fallback() -> None:
    async def scenario() -> None:
        store = MemoryStateStore()

        async def source(domain: str = "example.com", language: str = "de-AT", state: str = "quarantined") -> tuple[str, str]:
            notice = await q.get_message(store, state=state, domain=domain, language=language)
            return notice.source, notice.text

        assert (await source()) == ("built-in", q.BUILT_IN["quarantined"]["de"][1])
        assert (await source(language="zz")) == ("built-in", q.BUILT_IN["quarantined"]["en"][1])
        assert (await source(language="FR-ca")) == ("built-in", q.BUILT_IN["quarantined"]["fr"][1])
        await q.set_message(store, state="quarantined", text="G", actor="t")
        assert await source() == ("global", "G")
        await q.set_message(store, state="quarantined", language="de", text="GL", actor="t")
        assert await source() == ("global+language", "GL")
        assert await source(language="en") == ("global", "G")
        await q.set_message(store, state="quarantined", domain="Example.COM", text="D", actor="t")
        assert await source() == ("domain", "D")
        assert await source(domain="other.org") == ("global+language", "GL")
        await q.set_message(store, state="quarantined", domain="example.com", language="DE", text="DL", actor="t")
        assert await source() == ("domain+language", "DL")
        await q.set_message(store, state="quarantined", domain="example.com", language="de-at", text="DLR", actor="t")
        assert await source() == ("domain+language", "DLR")
        assert await source(language="de-CH") == ("domain+language", "DL")
        # discovery uses quarantined's texts; blocked has its own.
        assert await source(state="discovery") == ("domain+language", "DLR")
        assert await source(state="blocked") == ("built-in", q.BUILT_IN["blocked"]["de"][1])
        notice = await q.get_message(store, state="quarantined", domain="example.com", language="de-AT")
        assert (notice.domain, notice.language, notice.subject) == ("example.com", "de-AT",
                                                                    q.BUILT_IN["quarantined"]["de"][0])
        assert [(n.state, n.domain, n.language, n.text) for n in await q.messages(store)] == [
            ("quarantined", "", "", "G"), ("quarantined", "", "de", "GL"), ("quarantined", "example.com", "", "D"),
            ("quarantined", "example.com", "de", "DL"), ("quarantined", "example.com", "de-AT", "DLR")]
        assert await q.delete_message(store, state="quarantined", domain="example.com", language="de-AT", actor="t")
        assert not await q.delete_message(store, state="quarantined", domain="example.com", language="de-AT",
                                          actor="t")
        assert await source() == ("domain+language", "DL")
        audit = [(e.action, e.actor) for e in await store.events(limit=50)]
        assert audit.count(("abq.message.set", "t")) == 5 and audit.count(("abq.message.delete", "t")) == 1

    run(scenario)


LONG = "x" * (q.MAX_TEXT + 1)


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"state": "allowed"}, ValueError),
    ({"state": "discovery"}, ValueError),
    ({"state": "Quarantined"}, ValueError),
    ({"state": None}, TypeError),
    ({"text": LONG}, ValueError),
    ({"text": ""}, ValueError),
    ({"text": "   \n "}, ValueError),
    ({"text": "bell \x07"}, ValueError),
    ({"text": "nul \x00"}, ValueError),
    ({"text": "escape \x1b[31m"}, ValueError),
    ({"text": "surrogate \ud800"}, ValueError),
    ({"text": "separator \u2028"}, ValueError),
    ({"text": 42}, TypeError),
    ({"subject": "two\nlines"}, ValueError),
    ({"subject": "tab\there"}, ValueError),
    ({"subject": "s" * (q.MAX_SUBJECT + 1)}, ValueError),
    ({"language": "german"}, ValueError),
    ({"language": "d"}, ValueError),
    ({"language": "de_DE"}, ValueError),
    ({"language": "de:AT"}, ValueError),
    ({"language": "de-" + "a" * 40}, ValueError),
    ({"language": "../../etc"}, ValueError),
    ({"domain": "exa mple.com"}, ValueError),
    ({"domain": "example.com:de"}, ValueError),
    ({"domain": "a" * 300}, ValueError),
    ({"domain": "-bad-.com"}, ValueError),
    ({"domain": ["example.com"]}, TypeError),
])
def test_hostile_input_is_refused_and_stores_nothing(kwargs: dict[str, Any], error: type[Exception]) -> None:
    async def scenario() -> None:
        store = MemoryStateStore()
        args: dict[str, Any] = {"state": "quarantined", "text": "fine", "actor": "t", **kwargs}
        with pytest.raises(error):
            await q.set_message(store, **args)
        assert await store.settings("abq.") == {}
        assert await store.events(limit=10) == []

    run(scenario)


def test_settings_through_eas_config_are_checked() -> None:
    """The registered settings refuse bad values before anything is stored; a value
    written past the checks (bad name or value) is ignored, never served."""

    async def scenario() -> None:
        store = MemoryStateStore()
        for name, value, error in [("abq.blocked_notice", "yes", TypeError),
                                   ("abq.notice_from", "not an address", ValueError),
                                   ("abq.notice_from", "a@b\r\nBcc: x@y", ValueError),
                                   ("abq.message:quarantined::", {"text": "x\x00"}, ValueError),
                                   ("abq.message:quarantined::", {"text": "x", "html": "<b>"}, TypeError),
                                   ("abq.message:quarantined::", "just text", TypeError)]:
            with pytest.raises(error):
                await change_setting(store, name, value, actor="t")
        assert await store.settings("abq.") == {}
        assert await change_setting(store, "abq.message:blocked:example.com:", {"text": "ok"}, actor="t") == \
            {"subject": None, "text": "ok"}
        await store.set_setting("abq.message:quarantined::", {"text": "bad\x00"})
        await store.set_setting("abq.message:nosuch::", {"text": "x"})
        await store.set_setting("abq.message:quarantined:x", {"text": "x"})
        assert [(n.state, n.domain) for n in await q.messages(store)] == [("blocked", "example.com")]
        assert (await q.get_message(store, state="quarantined")).source == "built-in"

    run(scenario)


@pytest.mark.parametrize(("os_language", "tag"), [
    ("English", "en"), ("Deutsch", "de"), ("german", "de"), ("Français", "fr"), ("de-DE", "de-DE"),
    ("de_at", "de-AT"), ("pt_BR", "pt-BR"), ("en_US.UTF-8", "en-US"), ("English (United States)", "en"),
    ("1031", "de-DE"), ("", ""), ("Klingon", ""), ("x" * 100, ""), ("{user}", ""),
])
def test_device_language(os_language: str, tag: str) -> None:
    assert device_language(os_language) == tag


def test_placeholders_are_filled_once_and_safely() -> None:
    values = {"device_id": "{user}\r\nBcc: evil@x", "device_type": "T", "user": "alice", "model": "M" * 500,
              "reason": "rule"}
    out = fill("{device_id}|{user}|{model}|{reason}|{0.__class__}|{device_type.__class__}|{nope}", values)
    assert out == "{user}Bcc: evil@x|alice|" + "M" * q.MAX_VALUE + "|rule|{0.__class__}|{device_type.__class__}|{nope}"


def test_with_the_real_abq_engine(tmp_path: Path) -> None:
    """Interactive mode quarantines a new device: it sees the notice; the administrator
    allows it (eas.access.abq.set_device): the real mailbox after the reset; blocks it:
    the blocked notice."""
    from eas.access import abq

    async def scenario() -> None:
        clock = Clock()
        app, store = make_app(tmp_path)
        app.abq = app.access = abq.ABQ(app.store, clock=clock)
        app.notices = NoticeMailboxes(app.store, clock=clock)
        store.deliver(ALICE, message(1))
        await abq.set_mode(app.store, "interactive", actor="test", grandfather=False)
        phone = Phone(app, "14.1")
        await phone.client.provision()
        await phone.folder_sync()
        assert list(phone.folders) == ["Inbox"]
        _, [(_, _, add)] = await phone.settle(phone.folders["Inbox"][0])
        assert subject_of(add) == q.BUILT_IN["quarantined"]["en"][0]
        [device] = await app.store.list_devices(ALICE)
        assert (device.access, device.access_reason) == ("quarantined", "global")

        await abq.set_device(app.store, "NoticePhone1", "allowed", user=ALICE, actor="test")
        clock.tick()
        assert (await phone.folder_sync(phone.folder_key)).text(FH.Status) == "9"
        await phone.folder_sync()
        assert "Sent Items" in phone.folders
        _, got = await phone.settle(phone.folders["Inbox"][0])
        assert [subject_of(n) for _, _, n in got] == ["Real mail 1"]

        await abq.set_device(app.store, "NoticePhone1", "blocked", user=ALICE, actor="test")
        clock.tick()
        assert (await phone.folder_sync(phone.folder_key)).text(FH.Status) == "9"
        await phone.folder_sync()
        assert list(phone.folders) == ["Inbox"]
        _, [(_, _, add)] = await phone.settle(phone.folders["Inbox"][0])
        assert subject_of(add) == q.BUILT_IN["blocked"]["en"][0]

    run(scenario)


def test_settings_of_a_restricted_device_reach_the_notice_mailbox_only(tmp_path: Path) -> None:
    """A quarantined device still tells its DeviceInformation (stored on its record),
    but its out-of-office Get shows nothing of the real one, its Set is refused, and the
    real mailbox's out-of-office stays as it was."""
    async def scenario() -> None:
        gate = Gate()
        app, store = await quarantined_app(tmp_path, gate)
        real = Oof(state=1, internal_message="away from the office", internal_enabled=True)
        await store.set_oof(ALICE, real)
        phone = Phone(app, "14.1")
        await phone.client.provision()
        await phone.tell_language("Deutsch")
        device = await app.store.get_device(ALICE, "NoticePhone1")
        assert device is not None and device.model == "Pixel 9" and device.os_language == "Deutsch"
        got = await phone.client.command("Settings", '<Settings xmlns="Settings:"><Oof><Get><BodyType>Text'
                                         "</BodyType></Get></Oof></Settings>")
        assert got.status == 200 and "away from the office" not in got.xml
        assert got.text(tags.Settings.Oof, tags.Settings.Get, tags.Settings.OofState) == "0", got.xml
        put = await phone.client.command("Settings", '<Settings xmlns="Settings:"><Oof><Set><OofState>0'
                                         "</OofState></Set></Oof></Settings>")
        assert put.status == 200 and put.text(tags.Settings.Oof, tags.Settings.Status) != "1", put.xml
        assert await store.get_oof(ALICE) == real

    run(scenario)
