"""The reference store's directory (``eas.store.directory``) and its commands: address
books per scope (``users`` and contacts folders of a directory account), the default
book, GAL details, pictures and certificates of accounts and their validation, mailbox
search over folders and dates; ``eas addressbook`` and ``eas user set|show|cert`` run
through ``eas.cli.main``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from eas.backend import FolderNotFound, FolderType, MailboxQuery
from eas.cli import main
from eas.items.contacts import Contact
from eas.server import open_store
from eas.store import ReferenceStore

ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@other.org"
DIRECTORY = "directory@example.com"
JPEG = b"\xff\xd8\xff\xe0" + b"jpeg" * 10


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def certificate(email: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, email)])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))


@pytest.fixture
def store(tmp_path: Path) -> ReferenceStore:
    s = ReferenceStore(tmp_path / "mail.db")
    for email, name in ((ALICE, "Alice Anders"), (BOB, "Bob Brown"), (CAROL, "Carol Brown"), (DIRECTORY, "")):
        s.add_user(email, "pw", name)
    return s


def addresses(store: ReferenceStore, user: str, text: str, *, contacts: bool = False) -> list[str]:
    return [p.email for p in run(store.search_directory(user, text, 50, contacts=contacts))]


def test_books_per_scope_and_default(store: ReferenceStore) -> None:
    assert store.address_books() == []
    assert addresses(store, ALICE, "brown") == [BOB]
    assert addresses(store, CAROL, "brown") == [CAROL]
    store.add_address_book("GLOBAL", "users")
    assert sorted(addresses(store, ALICE, "brown")) == [BOB, CAROL]
    store.add_address_book("other.org", "users")
    assert store.address_books() == [("global", "users"), ("other.org", "users")]
    with pytest.raises(ValueError, match="already"):
        store.add_address_book("global", "users")
    store.remove_address_book("global", "users")
    # a domain with a book of its own no longer gets the default; others still do
    assert addresses(store, CAROL, "brown") == [CAROL]
    assert addresses(store, ALICE, "brown") == [BOB]
    with pytest.raises(ValueError):
        store.remove_address_book("global", "users")


@pytest.mark.parametrize(("scope", "source"), [
    ("", "users"), ("not a domain", "users"), ("example", "users"), ("global", "nobody@example.com/Contacts"),
    ("global", f"{ALICE}/Inbox"), ("global", f"{ALICE}/No such folder"), ("global", "users/x"),
    ("global", ""), ("ex ample.com", "users"), ("a" * 300 + ".com", "users"),
])
def test_bad_books_are_refused(store: ReferenceStore, scope: str, source: str) -> None:
    with pytest.raises(ValueError):
        store.add_address_book(scope, source)
    assert store.address_books() == []


def test_contacts_folder_book(store: ReferenceStore) -> None:
    async def scenario() -> None:
        folder = store.folder_id(DIRECTORY, "Contacts")
        await store.add_item(DIRECTORY, folder, Contact(first_name="Frank", last_name="Founder",
                                                        company_name="Example", job_title="CEO",
                                                        email1_address="frank@example.com",
                                                        business_phone_number="+1 555 0001"))
        await store.add_item(DIRECTORY, folder, Contact(first_name="No", last_name="Address"))
        await store.add_item(DIRECTORY, folder, Contact(first_name="Bob", last_name="Again",
                                                        email1_address=BOB))  # BOB is in 'users' too

    run(scenario())
    store.add_address_book("example.com", "users")
    store.add_address_book("example.com", f"{DIRECTORY}/contacts")
    [frank] = run(store.search_directory(ALICE, "founder", 10))
    assert (frank.email, frank.display_name, frank.company, frank.title, frank.phone, frank.contact) == (
        "frank@example.com", "Frank Founder", "Example", "CEO", "+1 555 0001", False)
    assert addresses(store, ALICE, "address") == []  # a contact without an address is no entry
    found = run(store.search_directory(ALICE, "bob", 10))
    assert [p.email for p in found] == [BOB] and found[0].display_name == "Bob Brown"  # the first book wins
    assert addresses(store, CAROL, "founder") == []  # another domain's books
    store.delete_user(DIRECTORY)  # the book's folder is gone: the book is skipped, not an error
    assert addresses(store, ALICE, "founder") == [] and addresses(store, ALICE, "bob") == [BOB]
    assert (("example.com", f"{DIRECTORY}/contacts")) in store.address_books()


def test_own_contacts_come_after_the_gal(store: ReferenceStore) -> None:
    async def scenario() -> None:
        folder = store.folder_id(ALICE, "Contacts")
        await store.add_item(ALICE, folder, Contact(first_name="Brownie", email1_address="brownie@bakery.example"))

    run(scenario())
    assert addresses(store, ALICE, "brown") == [BOB]
    found = run(store.search_directory(ALICE, "brown", 10, contacts=True))
    assert [(p.email, p.contact) for p in found] == [(BOB, False), ("brownie@bakery.example", True)]
    assert addresses(store, BOB, "brownie", contacts=True) == []  # alice's contacts are hers


def test_details_pictures_certificates(store: ReferenceStore) -> None:
    store.set_user_details(BOB, title="Engineer", phone="+1 555", company="Example")
    store.set_user_details(BOB, phone="")  # "" clears
    cert = certificate(BOB).public_bytes(serialization.Encoding.DER)
    store.add_user_certificate(BOB, cert)
    store.set_user_picture(BOB, JPEG)
    entry = store.user_entry(BOB)
    assert (entry.title, entry.phone, entry.company, entry.picture, entry.certificates) == (
        "Engineer", "", "Example", JPEG, [cert])
    store.set_user_picture(BOB, None)
    assert store.user_entry(BOB).picture is None
    for bad in ({"title": "x" * 300}, {"title": "a\nb"}, {"password": "x"}):
        with pytest.raises(ValueError):
            store.set_user_details(BOB, **bad)
    for picture in (b"GIF89a", b"\xff\xd8\xff" + b"x" * (2 * 1024 * 1024)):
        with pytest.raises(ValueError):
            store.set_user_picture(BOB, picture)
    for der in (b"", b"\x30", b"\x30\x05abc", cert + b"x", b"\x31\x00", b"\x30\x84\xff\xff\xff\xff"):
        with pytest.raises(ValueError):
            store.add_user_certificate(BOB, der)
    with pytest.raises(ValueError):
        store.set_user_details("nobody@example.com", title="x")
    with pytest.raises(ValueError):
        store.add_user_certificate("nobody@example.com", cert)
    assert store.user_entry(BOB).certificates == [cert]  # nothing else stored


def test_search_mailbox(store: ReferenceStore) -> None:
    def mail(subject: str, day: int) -> bytes:
        return (f"From: x@y.example\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
                f"Date: {day} Jan 2024 10:00:00 +0000\r\n\r\nbody\r\n").encode()

    inbox = store.folder_id(ALICE, "Inbox")
    sub = run(store.create_folder(ALICE, inbox, "Sub", FolderType.USER_MAIL)).id
    one = store.deliver(ALICE, mail("alpha one", 1))
    two = store.deliver(ALICE, mail("alpha two", 2), folder="Inbox/Sub")
    store.deliver(BOB, mail("alpha bob", 3))
    search = store.search_mailbox
    assert run(search(ALICE, MailboxQuery(text="ALPHA"), 10)) == [(sub, two), (inbox, one)]
    assert run(search(ALICE, MailboxQuery(text="alpha", folder_ids=[inbox]), 10)) == [(inbox, one)]
    assert run(search(ALICE, MailboxQuery(text="alpha", folder_ids=[inbox], deep_traversal=True), 10)) == [
        (sub, two), (inbox, one)]
    assert run(search(ALICE, MailboxQuery(text="alpha"), 1)) == [(sub, two)]
    jan2 = datetime(2024, 1, 2, 10, tzinfo=UTC)
    assert run(search(ALICE, MailboxQuery(received_after=jan2), 10)) == []  # exclusive
    assert run(search(ALICE, MailboxQuery(received_before=jan2), 10)) == [(inbox, one)]
    calendar = store.folder_id(ALICE, "Calendar")
    assert run(search(ALICE, MailboxQuery(text="alpha", folder_ids=[calendar]), 10)) == []
    bobs_inbox = store.folder_id(BOB, "Inbox")
    for bad in (bobs_inbox, "0", "-1", "x", "9" * 40):
        with pytest.raises(FolderNotFound):
            run(search(ALICE, MailboxQuery(folder_ids=[bad]), 10))


# -- the command line ----------------------------------------------------------------------------


def test_cli_addressbook_and_user(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path)
    s = open_store(tmp_path)
    s.add_user(ALICE, "pw", "Alice")
    s.add_user(BOB, "pw", "Bob Brown")
    assert main(["addressbook", "list", "--data-dir", data]) == 0
    assert "users of their own domain" in capsys.readouterr().out
    assert main(["addressbook", "add", "global", "users", "--data-dir", data]) == 0
    assert main(["addressbook", "add", "global", "users", "--data-dir", data]) == 2
    assert main(["addressbook", "add", "nowhere", "users", "--data-dir", data]) == 2
    assert main(["addressbook", "add", "example.com", f"{ALICE}/Inbox", "--data-dir", data]) == 2
    capsys.readouterr()
    assert main(["addressbook", "list", "--data-dir", data]) == 0
    assert capsys.readouterr().out == "global\tusers\n"
    assert main(["addressbook", "remove", "global", "users", "--data-dir", data]) == 0
    assert s.address_books() == []

    picture = tmp_path / "bob.jpg"
    picture.write_bytes(JPEG)
    assert main(["user", "set", BOB, "--title", "Engineer", "--phone", "+1 555", "--picture", str(picture),
                 "--display-name", "Robert Brown", "--data-dir", data]) == 0
    entry = s.user_entry(BOB)
    assert (entry.display_name, entry.title, entry.phone, entry.picture) == ("Robert Brown", "Engineer", "+1 555", JPEG)
    not_jpeg = tmp_path / "x.jpg"
    not_jpeg.write_bytes(b"GIF89a")
    assert main(["user", "set", BOB, "--picture", str(not_jpeg), "--data-dir", data]) == 2
    assert main(["user", "set", "nobody@example.com", "--title", "x", "--data-dir", data]) == 2

    cert = certificate(BOB)
    pem = tmp_path / "bob.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM) * 2)
    der = tmp_path / "bob.der"
    der.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    assert main(["user", "cert", "add", BOB, str(pem), "--data-dir", data]) == 0
    assert main(["user", "cert", "add", BOB, str(der), "--data-dir", data]) == 0
    assert main(["user", "cert", "add", BOB, str(not_jpeg), "--data-dir", data]) == 2
    assert s.user_entry(BOB).certificates == [cert.public_bytes(serialization.Encoding.DER)] * 3
    capsys.readouterr()
    assert main(["user", "show", BOB, "--data-dir", data]) == 0
    shown = capsys.readouterr().out
    assert "title: Engineer" in shown and f"picture: {len(JPEG)} bytes" in shown
    assert shown.count(f"certificate: CN={BOB}") == 3
    assert main(["user", "set", BOB, "--no-picture", "--data-dir", data]) == 0
    assert s.user_entry(BOB).picture is None
