"""Contract tests for ``eas.backend.Backend``: what any backend must do for the protocol
handlers to work, written once and run against the reference store and against yours.

How to run them against your backend (pytest): subclass ``BackendContract`` in a test
module, under a name pytest collects, and give it a ``subject`` fixture returning a
``Subject``: a fresh backend, one existing account with the standard folders and, if
the backend delivers locally, a second account::

    import pytest
    from eas.testing.backend_contract import BackendContract, Subject

    class TestMyBackend(BackendContract):
        @pytest.fixture
        def subject(self, tmp_path):
            backend = MyBackend(tmp_path)          # empty, or at least empty mailboxes
            backend.create_account("alice@example.com")
            return Subject(backend, "alice@example.com", other_user=None)

Every test builds its mail with ``Backend.add_email``, so nothing else of your backend is
needed. Tests that need a second account skip when ``other_user`` is None. The tests are
plain ``def test_...`` functions that call ``asyncio.run``; they need no asyncio plugin.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TypeVar

import pytest

from eas.backend import (
    Backend,
    EmailChange,
    Flag,
    Folder,
    FolderExists,
    FolderNotFound,
    FolderType,
    ItemNotFound,
    MailboxQuery,
    Oof,
    SendFailed,
    SpecialFolder,
)

T = TypeVar("T")

# Ids a device may send (stale or hostile) that the contract assumes the backend never
# issued, for folders, items and file references alike.
BAD_IDS = ("", "-1", "99999999", "../1", "1 OR 1=1", "1;DROP TABLE", "\x00", "1" * 400, "é", "\udcff")


@dataclass(slots=True)
class Subject:
    """What the contract runs against: ``backend`` with ``user``'s mailbox (standard
    folders present); ``other_user`` another account of the same backend, or None."""

    backend: Backend
    user: str
    other_user: str | None = None


def message(subject: str = "Hello", *, to: str = "someone@example.net", sender: str = "sender@example.org",
            date: datetime | None = None, body: str = "Body text.\r\n", extra: str = "") -> bytes:
    """A small RFC 5322 text message."""
    when = format_datetime((date or datetime.now(UTC)).replace(microsecond=0))
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {when}\r\n"
            f"Message-ID: <{time.monotonic_ns()}.{subject.replace(' ', '.')}@example.org>\r\n{extra}"
            f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}").encode()


ATTACHMENT_DATA = bytes(range(256)) * 3


def message_with_attachment(subject: str = "With attachment") -> bytes:
    """A multipart/mixed message: a text body and ``ATTACHMENT_DATA`` as data.bin."""
    import base64

    encoded = base64.encodebytes(ATTACHMENT_DATA).decode().replace("\n", "\r\n")
    return (f"From: a@example.org\r\nTo: b@example.net\r\nSubject: {subject}\r\n"
            f"Date: {format_datetime(datetime.now(UTC))}\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n"
            '--b1\r\nContent-Type: application/octet-stream; name="data.bin"\r\n'
            'Content-Disposition: attachment; filename="data.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
            f"{encoded}--b1--\r\n").encode()


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


async def folder_of(backend: Backend, user: str, type: FolderType) -> Folder:
    """The user's folder of a standard type."""
    for folder in await backend.folders(user):
        if folder.type == type:
            return folder
    raise AssertionError(f"no {type.name} folder")


async def wait_until(check: Callable[[], bool], timeout: float = 2.0) -> bool:
    """Poll ``check`` (watch callbacks may arrive from another thread or later)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


class BackendContract:
    """The contract; subclass it with a ``subject`` fixture (see the module docstring)."""

    @pytest.fixture
    def subject(self) -> Subject:
        raise NotImplementedError("a BackendContract subclass provides the subject fixture")

    # -- folders -------------------------------------------------------------------------

    def test_standard_folders(self, subject: Subject) -> None:
        folders = run(subject.backend.folders(subject.user))
        types = [f.type for f in folders]
        for wanted in (FolderType.INBOX, FolderType.DRAFTS, FolderType.DELETED_ITEMS, FolderType.SENT_ITEMS,
                       FolderType.OUTBOX):
            assert types.count(wanted) == 1, wanted
        assert len({f.id for f in folders}) == len(folders)
        assert all(f.id and isinstance(f.id, str) for f in folders)

    def test_parents_before_children(self, subject: Subject) -> None:
        async def scenario() -> None:
            b, u = subject.backend, subject.user
            inbox = await folder_of(b, u, FolderType.INBOX)
            a = await b.create_folder(u, "", "Contract A", FolderType.USER_MAIL)
            b1 = await b.create_folder(u, a.id, "B", FolderType.USER_MAIL)
            c = await b.create_folder(u, inbox.id, "C", FolderType.USER_MAIL)
            # Move A below C, which was created after it: order must follow the tree, not ids.
            await b.update_folder(u, a.id, c.id, "Contract A")
            folders = await b.folders(u)
            position = {f.id: i for i, f in enumerate(folders)}
            for f in folders:
                if f.parent_id:
                    assert position[f.parent_id] < position[f.id], f
            by_id = {f.id: f for f in folders}
            assert by_id[a.id].parent_id == c.id and by_id[b1.id].parent_id == a.id and by_id[c.id].parent_id == inbox.id

        run(scenario())

    def test_create_folder(self, subject: Subject) -> None:
        async def scenario() -> None:
            b, u = subject.backend, subject.user
            made = await b.create_folder(u, "", "Projects", FolderType.USER_MAIL)
            assert made.name == "Projects" and made.parent_id == "" and made.type == FolderType.USER_MAIL
            assert made in await b.folders(u)
            child = await b.create_folder(u, made.id, "2024", FolderType.USER_MAIL)
            assert child.parent_id == made.id
            with pytest.raises(FolderExists):
                await b.create_folder(u, "", "Projects", FolderType.USER_MAIL)
            with pytest.raises(FolderNotFound):
                await b.create_folder(u, "99999999", "Orphan", FolderType.USER_MAIL)
            # The same name under another parent is fine.
            again = await b.create_folder(u, child.id, "Projects", FolderType.USER_MAIL)
            assert again.id not in (made.id, child.id)

        run(scenario())

    def test_update_folder(self, subject: Subject) -> None:
        async def scenario() -> None:
            b, u = subject.backend, subject.user
            one = await b.create_folder(u, "", "One", FolderType.USER_MAIL)
            two = await b.create_folder(u, "", "Two", FolderType.USER_MAIL)
            await b.update_folder(u, one.id, "", "Uno")
            names = {f.id: f.name for f in await b.folders(u)}
            assert names[one.id] == "Uno"
            with pytest.raises(FolderExists):
                await b.update_folder(u, one.id, "", "Two")
            await b.update_folder(u, one.id, two.id, "Uno")
            assert {f.id: f.parent_id for f in await b.folders(u)}[one.id] == two.id
            inbox = await folder_of(b, u, FolderType.INBOX)
            with pytest.raises(SpecialFolder):
                await b.update_folder(u, inbox.id, "", "Renamed Inbox")
            with pytest.raises(FolderNotFound):
                await b.update_folder(u, "99999999", "", "Nothing")
            assert (await folder_of(b, u, FolderType.INBOX)).name == inbox.name

        run(scenario())

    def test_delete_folder_is_recursive(self, subject: Subject) -> None:
        async def scenario() -> None:
            b, u = subject.backend, subject.user
            top = await b.create_folder(u, "", "Old", FolderType.USER_MAIL)
            below = await b.create_folder(u, top.id, "Older", FolderType.USER_MAIL)
            await b.add_email(u, below.id, message("kept below"))
            await b.delete_folder(u, top.id)
            ids = {f.id for f in await b.folders(u)}
            assert top.id not in ids and below.id not in ids
            with pytest.raises(FolderNotFound):
                await b.item_stamps(u, below.id)
            with pytest.raises(FolderNotFound):
                await b.delete_folder(u, top.id)
            for special in (FolderType.INBOX, FolderType.DELETED_ITEMS, FolderType.SENT_ITEMS):
                with pytest.raises(SpecialFolder):
                    await b.delete_folder(u, (await folder_of(b, u, special)).id)

        run(scenario())

    # -- items ---------------------------------------------------------------------------

    def test_add_and_fetch(self, subject: Subject) -> None:
        async def scenario() -> None:
            b, u = subject.backend, subject.user
            inbox = await folder_of(b, u, FolderType.INBOX)
            before = await b.item_stamps(u, inbox.id)
            mime = message("Contract subject", sender="Ann <ann@example.org>", body="Hello there.\r\n")
            item_id, stamp = await b.add_email(u, inbox.id, mime, read=False)
            stamps = await b.item_stamps(u, inbox.id)
            assert stamps[item_id] == stamp and set(stamps) == set(before) | {item_id}
            [mail] = await b.fetch_emails(u, inbox.id, [item_id])
            assert mail.id == item_id
            assert mail.subject == "Contract subject"
            assert "ann@example.org" in mail.sender
            assert mail.read is False
            assert mail.body_text is not None and "Hello there." in mail.body_text
            assert mail.date_received is not None and mail.date_received.tzinfo is not None
            assert mail.size == len(mime)
            assert mail.mime is None
            [with_mime] = await b.fetch_emails(u, inbox.id, [item_id], mime=True)
            assert with_mime.mime == mime

        run(scenario())

    def test_fetch_keeps_order_and_leaves_out_missing(self, subject: Subject) -> None:
        async def scenario() -> None:
            b, u = subject.backend, subject.user
            inbox = await folder_of(b, u, FolderType.INBOX)
            ids = [(await b.add_email(u, inbox.id, message(f"n{i}")))[0] for i in range(5)]
            wanted = [ids[3], "99999999", ids[0], *BAD_IDS, ids[4]]
            got = await b.fetch_emails(u, inbox.id, wanted)
            assert [m.id for m in got] == [ids[3], ids[0], ids[4]]
            assert [m.subject for m in got] == ["n3", "n0", "n4"]
            # An item of another folder is not in this one.
            drafts = await folder_of(b, u, FolderType.DRAFTS)
            assert await b.fetch_emails(u, drafts.id, ids) == []
            with pytest.raises(FolderNotFound):
                await b.fetch_emails(u, "99999999", ids)

        run(scenario())

    def test_item_stamps_since(self, subject: Subject) -> None:
        async def scenario() -> None:
            b, u = subject.backend, subject.user
            folder = await b.create_folder(u, "", "Dated", FolderType.USER_MAIL)
            now = datetime.now(UTC)
            old, _ = await b.add_email(u, folder.id, message("old", date=now - timedelta(days=40)))
            new, _ = await b.add_email(u, folder.id, message("new", date=now - timedelta(days=2)))
            assert set(await b.item_stamps(u, folder.id)) == {old, new}
            assert set(await b.item_stamps(u, folder.id, now - timedelta(days=7))) == {new}
            assert set(await b.item_stamps(u, folder.id, now + timedelta(days=1))) == set()
            with pytest.raises(FolderNotFound):
                await b.item_stamps(u, "99999999")

        run(scenario())

    def test_change_email(self, subject: Subject) -> None:
        async def scenario() -> None:
            b, u = subject.backend, subject.user
            inbox = await folder_of(b, u, FolderType.INBOX)
            item_id, stamp0 = await b.add_email(u, inbox.id, message("to change"), read=False)
            stamp1 = await b.change_email(u, inbox.id, item_id, EmailChange(read=True))
            assert stamp1 != stamp0
            due = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)
            stamp2 = await b.change_email(u, inbox.id, item_id, EmailChange(
                flag=Flag(status=2, flag_type="Follow up", due_date=due), categories=["Blue", "Work"]))
            assert stamp2 not in (stamp0, stamp1)
            assert (await b.item_stamps(u, inbox.id))[item_id] == stamp2
            [mail] = await b.fetch_emails(u, inbox.id, [item_id])
            assert mail.read is True
            assert mail.flag is not None and mail.flag.status == 2 and mail.flag.due_date == due
            assert mail.categories == ["Blue", "Work"]
            await b.change_email(u, inbox.id, item_id, EmailChange(flag=Flag(status=0), categories=[]))
            [mail] = await b.fetch_emails(u, inbox.id, [item_id])
            assert mail.flag is None or mail.flag.status == 0
            assert mail.categories == [] and mail.read is True
            drafts = await folder_of(b, u, FolderType.DRAFTS)
            with pytest.raises(ItemNotFound):
                await b.change_email(u, drafts.id, item_id, EmailChange(read=False))
            for bad in BAD_IDS:
                with pytest.raises(ItemNotFound):
                    await b.change_email(u, inbox.id, bad, EmailChange(read=False))
            [mail] = await b.fetch_emails(u, inbox.id, [item_id])
            assert mail.read is True

        run(scenario())

    def test_delete_item(self, subject: Subject) -> None:
        async def scenario() -> None:
            b, u = subject.backend, subject.user
            inbox = await folder_of(b, u, FolderType.INBOX)
            trash = await folder_of(b, u, FolderType.DELETED_ITEMS)
            item_id, _ = await b.add_email(u, inbox.id, message("to trash"))
            trash_before = await b.item_stamps(u, trash.id)
            await b.delete_item(u, inbox.id, item_id, permanently=False)
            assert item_id not in await b.item_stamps(u, inbox.id)
            trash_after = await b.item_stamps(u, trash.id)
            [moved] = set(trash_after) - set(trash_before)
            assert [m.subject for m in await b.fetch_emails(u, trash.id, [moved])] == ["to trash"]
            # Deleting from Deleted Items removes it for good.
            await b.delete_item(u, trash.id, moved, permanently=False)
            assert set(await b.item_stamps(u, trash.id)) == set(trash_before)
            gone, _ = await b.add_email(u, inbox.id, message("gone"))
            await b.delete_item(u, inbox.id, gone, permanently=True)
            assert gone not in await b.item_stamps(u, inbox.id)
            assert set(await b.item_stamps(u, trash.id)) == set(trash_before)
            with pytest.raises(ItemNotFound):
                await b.delete_item(u, inbox.id, gone, permanently=True)
            for bad in BAD_IDS:
                with pytest.raises(ItemNotFound):
                    await b.delete_item(u, inbox.id, bad, permanently=True)

        run(scenario())

    def test_move_item(self, subject: Subject) -> None:
        async def scenario() -> None:
            b, u = subject.backend, subject.user
            inbox = await folder_of(b, u, FolderType.INBOX)
            archive = await b.create_folder(u, "", "Archive", FolderType.USER_MAIL)
            item_id, stamp = await b.add_email(u, inbox.id, message("to move"))
            new_id = await b.move_item(u, item_id, inbox.id, archive.id)
            assert item_id not in await b.item_stamps(u, inbox.id)
            moved = await b.item_stamps(u, archive.id)
            assert set(moved) == {new_id}
            [mail] = await b.fetch_emails(u, archive.id, [new_id])
            assert mail.subject == "to move"
            if new_id == item_id:
                assert moved[new_id] != stamp, "a moved item keeping its id needs a new stamp"
            with pytest.raises(ItemNotFound):
                await b.move_item(u, item_id, inbox.id, archive.id)
            with pytest.raises(FolderNotFound):
                await b.move_item(u, new_id, archive.id, "99999999")
            assert set(await b.item_stamps(u, archive.id)) == {new_id}

        run(scenario())

    def test_empty_folder(self, subject: Subject) -> None:
        async def scenario() -> None:
            b, u = subject.backend, subject.user
            trash = await folder_of(b, u, FolderType.DELETED_ITEMS)
            inbox = await folder_of(b, u, FolderType.INBOX)
            sub = await b.create_folder(u, trash.id, "Deleted sub", FolderType.USER_MAIL)
            for i in range(3):
                await b.add_email(u, trash.id, message(f"junk {i}"))
            await b.add_email(u, sub.id, message("junk below"))
            kept, _ = await b.add_email(u, inbox.id, message("kept"))
            await b.empty_folder(u, trash.id, delete_subfolders=False)
            assert await b.item_stamps(u, trash.id) == {}
            assert len(await b.item_stamps(u, sub.id)) == 1
            await b.empty_folder(u, trash.id, delete_subfolders=True)
            assert sub.id not in {f.id for f in await b.folders(u)}
            assert kept in await b.item_stamps(u, inbox.id)
            with pytest.raises(FolderNotFound):
                await b.empty_folder(u, "99999999", delete_subfolders=False)

        run(scenario())

    def test_attachment(self, subject: Subject) -> None:
        async def scenario() -> None:
            b, u = subject.backend, subject.user
            inbox = await folder_of(b, u, FolderType.INBOX)
            item_id, _ = await b.add_email(u, inbox.id, message_with_attachment())
            [mail] = await b.fetch_emails(u, inbox.id, [item_id])
            assert [a.display_name for a in mail.attachments] == ["data.bin"]
            ref = mail.attachments[0]
            assert ref.size == len(ATTACHMENT_DATA)
            content_type, data = await b.attachment(u, ref.file_reference)
            assert data == ATTACHMENT_DATA
            assert content_type == "application/octet-stream"
            for bad in (*BAD_IDS, ref.file_reference + "9", "9999999:1"):
                with pytest.raises(ItemNotFound):
                    await b.attachment(u, bad)

        run(scenario())

    def test_hostile_folder_ids(self, subject: Subject) -> None:
        async def scenario() -> None:
            b, u = subject.backend, subject.user
            before = await b.folders(u)
            for bad in BAD_IDS:
                with pytest.raises(FolderNotFound):
                    await b.item_stamps(u, bad)
                with pytest.raises(FolderNotFound):
                    await b.delete_folder(u, bad)
                with pytest.raises(FolderNotFound):
                    await b.add_email(u, bad, message("lost"))
            assert await b.folders(u) == before

        run(scenario())

    # -- sending -------------------------------------------------------------------------

    def test_send_mail(self, subject: Subject) -> None:
        async def scenario() -> None:
            b, u = subject.backend, subject.user
            sent = await folder_of(b, u, FolderType.SENT_ITEMS)
            before = set(await b.item_stamps(u, sent.id))
            await b.send_mail(u, message("Sent one", sender=u, to="friend@example.net"), save_in_sent=True)
            after = await b.item_stamps(u, sent.id)
            [new] = set(after) - before
            [mail] = await b.fetch_emails(u, sent.id, [new])
            assert mail.subject == "Sent one" and mail.read is True
            await b.send_mail(u, message("Not kept", sender=u, to="friend@example.net"), save_in_sent=False)
            assert set(await b.item_stamps(u, sent.id)) == set(after)

        run(scenario())

    def test_send_mail_refuses_what_cannot_go(self, subject: Subject) -> None:
        async def scenario() -> None:
            b, u = subject.backend, subject.user
            sent = await folder_of(b, u, FolderType.SENT_ITEMS)
            before = await b.item_stamps(u, sent.id)
            no_recipient = f"From: {u}\r\nSubject: nobody\r\n\r\nbody\r\n".encode()
            for bad in (b"", b"\r\n\r\n", no_recipient, b"\x00\xff\xfe garbage without any header"):
                with pytest.raises(SendFailed):
                    await b.send_mail(u, bad, save_in_sent=True)
            assert await b.item_stamps(u, sent.id) == before

        run(scenario())

    def test_send_mail_to_a_local_user(self, subject: Subject) -> None:
        if subject.other_user is None:
            pytest.skip("the subject has no second account")
        other = subject.other_user

        async def scenario() -> None:
            b, u = subject.backend, subject.user
            inbox = await folder_of(b, other, FolderType.INBOX)
            before = set(await b.item_stamps(other, inbox.id))
            await b.send_mail(u, message("Across", sender=u, to=other), save_in_sent=False)
            [new] = set(await b.item_stamps(other, inbox.id)) - before
            [mail] = await b.fetch_emails(other, inbox.id, [new])
            assert mail.subject == "Across" and mail.read is False

        run(scenario())

    # -- search --------------------------------------------------------------------------

    def test_search_mailbox(self, subject: Subject) -> None:
        async def scenario() -> None:
            b, u = subject.backend, subject.user
            inbox = await folder_of(b, u, FolderType.INBOX)
            drafts = await folder_of(b, u, FolderType.DRAFTS)
            day = datetime(2024, 5, 1, 12, tzinfo=UTC)
            first, _ = await b.add_email(u, inbox.id, message("Zebra crossing", date=day))
            second, _ = await b.add_email(u, inbox.id, message("Other", date=day + timedelta(days=1),
                                                               body="About the ZEBRA.\r\n"))
            third, _ = await b.add_email(u, drafts.id, message("Zebra draft", date=day + timedelta(days=2)))
            await b.add_email(u, inbox.id, message("Unrelated", date=day + timedelta(days=3)))
            found = await b.search_mailbox(u, MailboxQuery(text="zebra"), 10)
            assert found == [(drafts.id, third), (inbox.id, second), (inbox.id, first)]  # newest first
            assert await b.search_mailbox(u, MailboxQuery(text="zebra", folder_ids=[inbox.id]), 10) == [
                (inbox.id, second), (inbox.id, first)]
            assert await b.search_mailbox(u, MailboxQuery(text="zebra"), 1) == [(drafts.id, third)]
            window = MailboxQuery(text="zebra", received_after=day, received_before=day + timedelta(days=2))
            assert await b.search_mailbox(u, window, 10) == [(inbox.id, second)]  # both bounds exclusive
            for bad in BAD_IDS:
                try:
                    assert await b.search_mailbox(u, MailboxQuery(folder_ids=[bad]), 10) == []
                except FolderNotFound:
                    pass

        run(scenario())

    def test_search_directory_with_own_contacts(self, subject: Subject) -> None:
        from eas.items.contacts import Contact

        async def scenario() -> None:
            b, u = subject.backend, subject.user
            contacts = await folder_of(b, u, FolderType.CONTACTS)
            await b.add_item(u, contacts.id, Contact(first_name="Quentin", last_name="Quux",
                                                     email1_address="quentin@quux.example"))
            found = await b.search_directory(u, "QUUX", 10, contacts=True)
            mine = [p for p in found if p.email == "quentin@quux.example"]
            assert len(mine) == 1 and mine[0].contact and "Quentin" in mine[0].display_name
            assert all(not p.contact for p in await b.search_directory(u, "quux", 10))
            assert len(await b.search_directory(u, "e", 1, contacts=True)) <= 1
            for hostile in ("%", "_", "' OR 1=1 --", "\x00", "x" * 1000):
                assert isinstance(await b.search_directory(u, hostile, 10, contacts=True), list)

        run(scenario())

    # -- settings and notification -------------------------------------------------------

    def test_oof_round_trip(self, subject: Subject) -> None:
        async def scenario() -> None:
            b, u = subject.backend, subject.user
            assert (await b.get_oof(u)).state == 0
            oof = Oof(state=2, start=datetime(2030, 1, 1, tzinfo=UTC), end=datetime(2030, 1, 8, tzinfo=UTC),
                      internal_message="Away", internal_enabled=True, external_unknown_message="Gone",
                      external_unknown_enabled=True)
            await b.set_oof(u, oof)
            assert await b.get_oof(u) == oof
            await b.set_oof(u, Oof(state=0))
            assert (await b.get_oof(u)).state == 0

        run(scenario())

    def test_user_information(self, subject: Subject) -> None:
        info = run(subject.backend.user_information(subject.user))
        assert info.emails and "@" in info.emails[0]
        assert isinstance(info.display_name, str)

    def test_watch_reports_changed_folders(self, subject: Subject) -> None:
        calls: list[tuple[str, Collection[str]]] = []

        def callback(user: str, folder_ids: Collection[str]) -> None:
            calls.append((user, list(folder_ids)))

        async def scenario() -> None:
            b, u = subject.backend, subject.user
            b.watch(callback)
            inbox = await folder_of(b, u, FolderType.INBOX)
            trash = await folder_of(b, u, FolderType.DELETED_ITEMS)

            def saw(folder_id: str) -> Callable[[], bool]:
                return lambda: any(user.lower() == u.lower() and (not ids or folder_id in ids) for user, ids in calls)

            item_id, _ = await b.add_email(u, inbox.id, message("watched"))
            assert await wait_until(saw(inbox.id)), calls
            calls.clear()
            await b.change_email(u, inbox.id, item_id, EmailChange(read=True))
            assert await wait_until(saw(inbox.id)), calls
            calls.clear()
            await b.delete_item(u, inbox.id, item_id, permanently=False)
            assert await wait_until(saw(inbox.id)) and await wait_until(saw(trash.id)), calls

        run(scenario())

    # -- calendar, contact, task and note items ----------------------------------------

    def test_calendar_items(self, subject: Subject) -> None:
        from eas.items.calendar import Calendar, Recurrence

        async def scenario() -> None:
            b, u = subject.backend, subject.user
            cal = await folder_of(b, u, FolderType.CALENDAR)
            now = datetime.now(UTC).replace(microsecond=0)
            recent = Calendar(subject="Contract recent", start=now - timedelta(days=1),
                              end=now - timedelta(days=1) + timedelta(hours=1), timezone="Europe/Berlin")
            old = Calendar(subject="Contract old", start=now - timedelta(days=60), end=now - timedelta(days=60, hours=-1))
            series = Calendar(subject="Contract series", start=now - timedelta(days=400),
                              end=now - timedelta(days=400, hours=-1), recurrence=Recurrence(type=1))
            recent_id, recent_stamp = await b.add_item(u, cal.id, recent)
            old_id, _ = await b.add_item(u, cal.id, old)
            series_id, _ = await b.add_item(u, cal.id, series)
            assert set(await b.item_stamps(u, cal.id)) == {recent_id, old_id, series_id}
            # A two-week window keeps the recent event and the running series, not the old one.
            assert set(await b.item_stamps(u, cal.id, now - timedelta(weeks=2))) == {recent_id, series_id}
            fetched = await b.fetch_items(u, cal.id, [series_id, "99999999", recent_id])
            assert [i.id for i in fetched] == [series_id, recent_id]
            got = fetched[1]
            assert isinstance(got, Calendar) and got.subject == "Contract recent" and got.start == recent.start
            assert got.uid and await b.find_event(u, got.uid) == (cal.id, recent_id)
            assert await b.find_event(u, "no such uid at all") is None
            got.subject = "Contract changed"
            stamp = await b.change_item(u, cal.id, recent_id, got)
            assert stamp != recent_stamp and (await b.item_stamps(u, cal.id))[recent_id] == stamp
            [again] = await b.fetch_items(u, cal.id, [recent_id])
            assert isinstance(again, Calendar) and again.subject == "Contract changed" and again.uid == got.uid
            await b.delete_item(u, cal.id, old_id, permanently=False)
            assert set(await b.item_stamps(u, cal.id)) == {recent_id, series_id}
            for bad in BAD_IDS:
                with pytest.raises(ItemNotFound):
                    await b.change_item(u, cal.id, bad, got)
                with pytest.raises(ItemNotFound):
                    await b.delete_item(u, cal.id, bad, permanently=True)

        run(scenario())

    def test_occurrences_of_a_series(self, subject: Subject) -> None:
        from eas.items.calendar import Calendar, Recurrence

        async def scenario() -> None:
            b, u = subject.backend, subject.user
            cal = await folder_of(b, u, FolderType.CALENDAR)
            start = datetime(2024, 1, 1, 9, tzinfo=UTC)
            series_id, _ = await b.add_item(u, cal.id, Calendar(
                subject="Contract daily", start=start, end=start + timedelta(hours=1),
                recurrence=Recurrence(type=0, occurrences=5)))
            await b.delete_occurrence(u, cal.id, series_id, start + timedelta(days=1))
            moved = Calendar(subject="Contract moved", start=start + timedelta(days=2, hours=3),
                             end=start + timedelta(days=2, hours=4), instance_id=start + timedelta(days=2))
            await b.change_item(u, cal.id, series_id, moved)
            [got] = await b.fetch_items(u, cal.id, [series_id])
            assert isinstance(got, Calendar) and got.subject == "Contract daily"
            found = {(e.original_start, e.deleted) for e in got.exceptions}
            assert found == {(start + timedelta(days=1), True), (start + timedelta(days=2), False)}
            with pytest.raises(ItemNotFound):
                await b.delete_occurrence(u, cal.id, series_id, start + timedelta(days=30))
            # Free/busy of the user's own address: the series, without the deleted day.
            busy = await b.free_busy(u, u, start, start + timedelta(days=5))
            assert busy is not None
            assert [p.start for p in busy] == [start, start + timedelta(days=2, hours=3), start + timedelta(days=3),
                                               start + timedelta(days=4)]
            assert await b.free_busy(u, "nobody-at-all@nowhere.invalid", start, start + timedelta(days=1)) is None

        run(scenario())

    def test_tasks_notes_contacts(self, subject: Subject) -> None:
        from eas.items.contacts import Contact
        from eas.items.notes import Note
        from eas.items.tasks import Task

        async def scenario() -> None:
            b, u = subject.backend, subject.user
            tasks = await folder_of(b, u, FolderType.TASKS)
            open_id, _ = await b.add_item(u, tasks.id, Task(subject="Contract open"))
            done_id, _ = await b.add_item(u, tasks.id, Task(subject="Contract done", complete=True,
                                                            date_completed=datetime(2024, 1, 1, tzinfo=UTC)))
            assert set(await b.item_stamps(u, tasks.id)) == {open_id, done_id}
            assert set(await b.item_stamps(u, tasks.id, incomplete_only=True)) == {open_id}
            notes = await folder_of(b, u, FolderType.NOTES)
            note_id, _ = await b.add_item(u, notes.id, Note(subject="Contract note", body="text"))
            [note] = await b.fetch_items(u, notes.id, [note_id])
            assert isinstance(note, Note) and (note.subject, note.body) == ("Contract note", "text")
            contacts = await folder_of(b, u, FolderType.CONTACTS)
            contact_id, _ = await b.add_item(u, contacts.id, Contact(first_name="Contract", last_name="Person",
                                                                     email1_address="cp@example.org"))
            [contact] = await b.fetch_items(u, contacts.id, [contact_id])
            assert isinstance(contact, Contact)
            assert (contact.first_name, contact.last_name, contact.email1_address) == (
                "Contract", "Person", "cp@example.org")
            await b.empty_folder(u, notes.id, delete_subfolders=False)
            assert await b.item_stamps(u, notes.id) == {}

        run(scenario())


__all__ = ["ATTACHMENT_DATA", "BAD_IDS", "BackendContract", "Subject", "message", "message_with_attachment", "run"]
