"""Search, Find and ResolveRecipients end to end over real HTTPS: ``eas serve`` in a
subprocess, its directory set up with the ``eas`` command in other processes (``eas user
add|set|cert add``, ``eas addressbook add``, ``eas mail deliver``), driven by the
independent client pyactivesync 0.17.0 (EAS 16.1: ``search_gal``, ``search_mailbox``,
``find_mailbox``, ``find_gal``, ``resolve_recipients``) and by our own test client for
2.5 and 12.1, which pyactivesync cannot speak.

Each session gets the checks of tests/test_e2e.py except the golden transcript: every
WBXML response is read by libwbxml as well and must give the same tree, and no element
is outside the session's version. (Search's LongId holds the store's item numbers, which
depend on what else the server holds, and test_e2e's transcript normaliser, not ours,
leaves LongId as it is.)
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_cli_server import eas, serving
from test_e2e import (
    PASSWORD,
    Server,
    Session,
    _tags,
    _versions,
    have_wbxml2xml,
    https,
    libwbxml,
    mail,
    pyas_client,
    pyas_session,
    run,
)

from eas import tags
from eas.tags import GAL, Search
from eas.tags import FolderHierarchy as FH
from eas.tags import ResolveRecipients as RR
from eas.testing.client import Client

pytestmark = pytest.mark.kernel_independent  # the server runs its own (C) codec

SEARCH_ID = "0f8fad5b-d9cb-469f-a165-70867728950e"
JPEG = b"\xff\xd8\xff\xe0" + b"portrait" * 16

REPORT = b"""From: Dave <dave@example.net>\r
To: {to}\r
Subject: Quarterly budget\r
Date: Tue, 7 Jan 2025 09:30:00 +0000\r
Message-ID: <budget@example.net>\r
Content-Type: text/plain; charset=utf-8\r
\r
The budget numbers are up.\r
"""
LUNCH = b"""From: Carol <carol@example.org>\r
To: {to}\r
Subject: Lunch?\r
Date: Mon, 6 Jan 2025 12:00:00 +0000\r
Message-ID: <lunch@example.org>\r
\r
At noon? Bring the budget.\r
"""


def check(session: Session) -> None:
    """libwbxml reads every response as we do; nothing outside the session's version."""
    assert session.exchanges, "nothing was recorded"
    cross_check = have_wbxml2xml()
    for n, exchange in enumerate(session.exchanges, 1):
        node = exchange.response_node()
        if node is None:
            continue
        where = f"{session.name} exchange {n} ({exchange.command})"
        assert exchange.status == 200, where
        # Find (code page 25, EAS 16.1) came to libwbxml after the 0.11.8 Debian ships:
        # it cannot name those tags, so those responses are checked by our reading only.
        if cross_check and not any(t in libwbxml.EXCLUDED for t in _tags(node)):
            theirs = libwbxml.from_libwbxml_xml(libwbxml.wbxml2xml(exchange.response).replace(b"\r", b"&#13;"))
            assert libwbxml.canon(theirs) == libwbxml.canon(node), f"libwbxml reads {where} differently"
        foreign = sorted({tags.name(t) for t in _tags(node) if session.version not in _versions(t)})
        assert not foreign, f"{where}: elements outside {session.version}: {foreign}"


def certificate_pem(email: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, email)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def admin(server: Server, *args: str) -> None:
    r = eas(*args, data_dir=server.data)
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One ``eas serve`` for this file, with a directory made by the ``eas`` command."""
    base = tmp_path_factory.mktemp("e2e-search")
    data = base / "data"
    with serving(data) as running:
        s = Server(running.port, data, data / "tls" / "cert.pem")
        for user in ("searcher@example.com", "bob.brown@example.com", "beth.brown@example.com",
                     "carl@partner.org"):
            s.add_user(user)
        picture = base / "bob.jpg"
        picture.write_bytes(JPEG)
        admin(s, "user", "set", "bob.brown@example.com", "--display-name", "Bob Brown", "--title", "Engineer",
              "--phone", "+1 555 0100", "--company", "Example", "--picture", str(picture))
        admin(s, "user", "set", "beth.brown@example.com", "--display-name", "Beth Brown")
        admin(s, "user", "set", "carl@partner.org", "--display-name", "Carl Brown")
        pem = base / "bob.pem"
        pem.write_bytes(certificate_pem("bob.brown@example.com"))
        admin(s, "user", "cert", "add", "bob.brown@example.com", str(pem))
        s.deliver("searcher@example.com", mail(REPORT, "searcher@example.com"))
        s.deliver("searcher@example.com", mail(LUNCH, "searcher@example.com"))
        yield s
    assert running.process.returncode == 0, running.stderr.decode(errors="replace")
    assert b"Traceback" not in running.stderr, running.stderr.decode(errors="replace")


@pytest.fixture(scope="module")
def pyas() -> Any:
    return pytest.importorskip("pyactivesync")


def test_pyactivesync_gal_and_recipients(server: Server, pyas: Any) -> None:
    session = pyas_session("pyactivesync-search-gal")
    with pyas_client(pyas, server, session, "searcher@example.com", "E2ESearch01") as c:
        entries = c.search_gal("brown", max_results=10)
        by_address = {e.email_address: e for e in entries}
        assert set(by_address) == {"bob.brown@example.com", "beth.brown@example.com"}  # own domain only
        bob = by_address["bob.brown@example.com"]
        assert (bob.display_name, bob.title, bob.phone, bob.company, bob.alias) == (
            "Bob Brown", "Engineer", "+1 555 0100", "Example", "bob.brown")
        assert [e.email_address for e in c.search_gal("brown", max_results=1)] == [entries[0].email_address]
        found = c.find_gal("brown", search_id=SEARCH_ID)
        assert found.status == "1"
        assert {i.fields.get("GAL.EmailAddress") for i in found.items} == set(by_address)
        [recipient] = c.resolve_recipients("bob.brown@example.com")
        assert (recipient.type, recipient.display_name, recipient.email_address) == (
            "1", "Bob Brown", "bob.brown@example.com")
        assert len(c.resolve_recipients("brown")) == 2  # ambiguous: both suggested
        assert c.resolve_recipients("nobody@nowhere.example") == []
        # the administrator adds every user: the partner shows up at once
        admin(server, "addressbook", "add", "global", "users")
        try:
            assert {e.email_address for e in c.search_gal("brown")} == set(by_address) | {"carl@partner.org"}
        finally:
            admin(server, "addressbook", "remove", "global", "users")
    check(session)


def test_pyactivesync_mailbox(server: Server, pyas: Any) -> None:
    session = pyas_session("pyactivesync-search-mailbox")
    with pyas_client(pyas, server, session, "searcher@example.com", "E2ESearch02") as c:
        inbox = next(f for f in c.list_folders() if int(f.type) == 2)
        found = c.search_mailbox(inbox.id, date_received_after="2025-01-07T00:00:00.000Z")
        assert [r.get("Email.Subject") for r in found] == ["Quarterly budget"]
        assert [r.get("Email.Subject") for r in c.search_mailbox(inbox.id,
                                                                  date_received_after="2025-01-01T00:00:00.000Z")] == [
            "Quarterly budget", "Lunch?"]
        result = c.find_mailbox("budget", folder_id=inbox.id, search_id=SEARCH_ID)
        assert result.status == "1" and result.range == "0-1"
        assert [i.fields.get("Email.Subject") for i in result.items] == ["Quarterly budget", "Lunch?"]
        assert all(i.collection_id == inbox.id and str(i.server_id).startswith(f"{inbox.id}:")
                   for i in result.items)
        assert result.items[0].fields.get("Find.Preview") == "The budget numbers are up."
        # free text through search_mailbox goes to Find in pyactivesync
        assert [r.get("Email.Subject") for r in c.search_mailbox(inbox.id, free_text="noon")] == ["Lunch?"]
        # the item Find names can be fetched
        fetched = c.fetch_item(inbox.id, str(result.items[1].server_id))
        assert fetched.fields.get("Email.Subject") == "Lunch?"
    check(session)


@pytest.mark.parametrize("version", ["2.5", "12.1"])
def test_own_client_older_versions(server: Server, version: str) -> None:
    session = Session(f"own-client-search-{version}", "eas.testing.client", version)
    c = Client(session.transport(https(server)), "searcher@example.com", PASSWORD,
               device_id=f"E2ESearchOwn{version.replace('.', '')}", device_type="E2ETest", version=version)

    async def scenario() -> None:
        await c.provision()
        r = await c.command("Search", '<Search xmlns="Search:"><Store><Name>GAL</Name><Query>bob</Query>'
                                      "<Options><Range>0-9</Range></Options></Store></Search>")
        store = r.node.find(Search.Response, Search.Store) if r.node is not None else None
        assert store is not None and store.findtext(Search.Status) == "1", r.xml
        assert [n.findtext(Search.Properties, GAL.EmailAddress) for n in store.findall(Search.Result)] == [
            "bob.brown@example.com"]
        r = await c.command("ResolveRecipients", '<ResolveRecipients xmlns="ResolveRecipients:">'
                                                 "<To>bob.brown@example.com</To><Options>"
                                                 "<CertificateRetrieval>2</CertificateRetrieval></Options>"
                                                 "</ResolveRecipients>")
        certs = r.node.find(RR.Response, RR.Recipient, RR.Certificates) if r.node is not None else None
        assert certs is not None and certs.findtext(RR.Status) == "1", r.xml
        [der] = [base64.b64decode(str(n.text)) for n in certs.findall(RR.Certificate)]
        from cryptography import x509

        assert x509.load_der_x509_certificate(der).subject.rfc4514_string() == "CN=bob.brown@example.com"
        if version == "12.1":
            r = await c.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>')
            changes = r.node.find(FH.Changes) if r.node is not None else None
            assert changes is not None
            inbox = next(a.findtext(FH.ServerId) for a in changes.findall(FH.Add) if a.findtext(FH.Type) == "2")
            r = await c.command("Search", '<Search xmlns="Search:" xmlns:airsync="AirSync:"><Store>'
                                          "<Name>Mailbox</Name><Query><And><airsync:Class>Email</airsync:Class>"
                                          f"<airsync:CollectionId>{inbox}</airsync:CollectionId>"
                                          "<FreeText>noon</FreeText></And></Query></Store></Search>")
            store = r.node.find(Search.Response, Search.Store) if r.node is not None else None
            assert store is not None and store.findtext(Search.Total) == "1", r.xml

    run(scenario())
    check(session)


def test_data_dir_is_the_servers(server: Server) -> None:
    """The directory the server answers from is the one the commands wrote."""
    with server.store() as store:
        entry = store.user_entry("bob.brown@example.com")
    assert entry.picture == JPEG and len(entry.certificates) == 1
    assert Path(server.data / "mail.db").is_file()
