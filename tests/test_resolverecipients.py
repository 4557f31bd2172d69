"""ResolveRecipients (MS-ASCMD 2.2.1.15) over the reference store: addresses and names
against the GAL and the user's contacts (Type 1/2), ambiguity (Status 2/3 with
MaxAmbiguousRecipients), S/MIME certificates made with ``cryptography`` (full and
"mini", MaxCertificates), free/busy across a meeting (14.0+), pictures (14.1+), and
Status 5 for bad requests in every version."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eas.backend import BusyPeriod
from eas.commands.resolverecipients import merged_free_busy
from eas.core import ActiveSync
from eas.items.calendar import Calendar
from eas.items.contacts import Contact
from eas.store import ReferenceStore
from eas.tags import ResolveRecipients as RR
from eas.testing.client import Client, Reply
from eas.testing.harness import client, make_app
from eas.wbxml import Node, Writer
from eas.wbxml._writer import write_node

ALICE, BOB = "alice@example.com", "bob@example.com"
JPEG = b"\xff\xd8\xff\xe0" + b"face" * 30


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def certificate(email: str) -> bytes:
    """A real self-signed S/MIME certificate for ``email``, DER."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, email),
                      x509.NameAttribute(NameOID.EMAIL_ADDRESS, email)])
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def resolve(*to: str, options: str = "") -> str:
    tos = "".join(f"<To>{escape(t)}</To>" for t in to)
    opts = f"<Options>{options}</Options>" if options else ""
    return f'<ResolveRecipients xmlns="ResolveRecipients:">{tos}{opts}</ResolveRecipients>'


def responses(r: Reply) -> list[Node]:
    assert r.status == 200 and r.node is not None and r.node.tag == RR.ResolveRecipients, (r.status, r.body[:60])
    assert r.text(RR.Status) == "1", r.xml
    return r.node.findall(RR.Response)


def recipients(response: Node) -> list[tuple[str, str, str]]:
    """``(Type, DisplayName, EmailAddress)`` of each Recipient."""
    return [(str(n.findtext(RR.Type)), str(n.findtext(RR.DisplayName)), str(n.findtext(RR.EmailAddress)))
            for n in response.findall(RR.Recipient)]


@pytest.fixture
def app(tmp_path: Path) -> tuple[ActiveSync, ReferenceStore]:
    made, store = make_app(tmp_path)
    store.set_display_name(ALICE, "Alice Anders")
    store.set_display_name(BOB, "Bob Brown")
    return made, store


async def ready(app: tuple[ActiveSync, ReferenceStore], version: str) -> Client:
    c = client(app[0], version=version)
    await c.provision()
    return c


async def add_contact(store: ReferenceStore, owner: str, contact: Contact) -> None:
    await store.add_item(owner, store.folder_id(owner, "Contacts"), contact)


@pytest.mark.parametrize("version", ["2.5", "12.1", "14.0", "14.1", "16.1"])
def test_address_name_and_contact(app: tuple[ActiveSync, ReferenceStore], version: str) -> None:
    store = app[1]

    async def scenario() -> None:
        await add_contact(store, ALICE, Contact(first_name="Erin", last_name="External",
                                                email1_address='"Erin E." <erin@elsewhere.net>'))
        c = await ready(app, version)
        r = await c.command("ResolveRecipients", resolve(BOB, "Bob Brown", "erin", "nobody@nowhere.example",
                                                          "Bob Brown <BOB@example.com>"))
        by_to = {str(n.findtext(RR.To)): n for n in responses(r)}
        assert recipients(by_to[BOB]) == [("1", "Bob Brown", BOB)]
        assert by_to[BOB].findtext(RR.Status) == "1" and by_to[BOB].findtext(RR.RecipientCount) == "1"
        assert recipients(by_to["Bob Brown"]) == [("1", "Bob Brown", BOB)]
        assert recipients(by_to["erin"]) == [("2", "Erin External", "erin@elsewhere.net")]
        assert by_to["nobody@nowhere.example"].findtext(RR.Status) == "4"
        assert recipients(by_to["nobody@nowhere.example"]) == []
        assert recipients(by_to["Bob Brown <BOB@example.com>"]) == [("1", "Bob Brown", BOB)]
        # bob's own contacts are not alice's
        other = await c.command("ResolveRecipients", resolve("erin"))
        assert recipients(responses(other)[0])  # still alice
        c_bob = client(app[0], user=BOB, password="bob-secret", version=version, device_id="BobDevice")
        await c_bob.provision()
        assert responses(await c_bob.command("ResolveRecipients", resolve("erin")))[0].findtext(RR.Status) == "4"

    run(scenario())


def test_ambiguous_names(app: tuple[ActiveSync, ReferenceStore]) -> None:
    store = app[1]
    for name in ("dana", "dave", "dora"):
        store.add_user(f"{name}@example.com", "pw", f"{name.title()} Dee")

    async def scenario() -> None:
        c = await ready(app, "14.1")
        [response] = responses(await c.command("ResolveRecipients", resolve("dee")))
        assert response.findtext(RR.Status) == "2" and response.findtext(RR.RecipientCount) == "3"
        assert sorted(a for _, _, a in recipients(response)) == [f"{n}@example.com" for n in ("dana", "dave", "dora")]
        [response] = responses(await c.command("ResolveRecipients", resolve(
            "dee", options="<MaxAmbiguousRecipients>2</MaxAmbiguousRecipients>")))
        assert response.findtext(RR.Status) == "3" and response.findtext(RR.RecipientCount) == "3"
        assert len(recipients(response)) == 2
        [response] = responses(await c.command("ResolveRecipients", resolve(
            "dee", options="<MaxAmbiguousRecipients>0</MaxAmbiguousRecipients>")))
        assert response.findtext(RR.Status) == "3" and recipients(response) == []
        # an exact name among several partial matches resolves
        [response] = responses(await c.command("ResolveRecipients", resolve("Dave Dee")))
        assert response.findtext(RR.Status) == "1"
        assert recipients(response) == [("1", "Dave Dee", "dave@example.com")]

    run(scenario())


@pytest.mark.parametrize("version", ["2.5", "12.1", "16.1"])
def test_certificates(app: tuple[ActiveSync, ReferenceStore], version: str) -> None:
    store = app[1]
    first, second = certificate(BOB), certificate(BOB)
    store.add_user_certificate(BOB, first)
    store.add_user_certificate(BOB, second)
    store.add_user("dan@example.com", "pw", "Dan")
    store.add_user_certificate("dan@example.com", certificate("dan@example.com"))

    def certs(response: Node) -> Node:
        found = response.find(RR.Recipient, RR.Certificates)
        assert found is not None
        return found

    async def scenario() -> None:
        c = await ready(app, version)
        full = "<CertificateRetrieval>2</CertificateRetrieval>"
        [bob, alice] = responses(await c.command("ResolveRecipients", resolve(BOB, ALICE, options=full)))
        assert certs(bob).findtext(RR.Status) == "1" and certs(bob).findtext(RR.CertificateCount) == "2"
        sent = [base64.b64decode(str(n.text)) for n in certs(bob).findall(RR.Certificate)]
        assert sent == [first, second]
        assert x509.load_der_x509_certificate(sent[0]).subject.rfc4514_string().endswith(f"CN={BOB}")
        assert certs(alice).findtext(RR.Status) == "7" and certs(alice).findtext(RR.CertificateCount) == "0"
        mini = "<CertificateRetrieval>3</CertificateRetrieval>"
        [bob] = responses(await c.command("ResolveRecipients", resolve(BOB, options=mini)))
        assert [base64.b64decode(str(n.text)) for n in certs(bob).findall(RR.MiniCertificate)] == [first, second]
        assert certs(bob).find(RR.Certificate) is None
        limited = full + "<MaxCertificates>2</MaxCertificates>"
        [dan, bob] = responses(await c.command("ResolveRecipients", resolve("dan@example.com", BOB, options=limited)))
        assert certs(dan).findtext(RR.Status) == "1" and len(certs(dan).findall(RR.Certificate)) == 1
        assert certs(bob).findtext(RR.Status) == "8" and certs(bob).findall(RR.Certificate) == []
        [bob] = responses(await c.command("ResolveRecipients", resolve(BOB)))  # none asked
        assert bob.find(RR.Recipient, RR.Certificates) is None

    run(scenario())


def test_availability_across_a_meeting(app: tuple[ActiveSync, ReferenceStore]) -> None:
    store = app[1]
    day = datetime(2030, 3, 4, 8, 0, tzinfo=UTC)

    async def scenario() -> None:
        calendar = store.folder_id(BOB, "Calendar")
        await store.add_item(BOB, calendar, Calendar(uid="m1", subject="Review", start=day + timedelta(hours=1),
                                                     end=day + timedelta(hours=2), busy_status=2))
        await store.add_item(BOB, calendar, Calendar(uid="m2", subject="Maybe", start=day + timedelta(hours=1, minutes=45),
                                                     end=day + timedelta(hours=2, minutes=10), busy_status=1))
        await store.add_item(BOB, calendar, Calendar(uid="m3", subject="Away", start=day + timedelta(hours=3),
                                                     end=day + timedelta(hours=3, minutes=20), busy_status=3))
        c = await ready(app, "14.1")
        window = ("<Availability><StartTime>2030-03-04T08:00:00.000Z</StartTime>"
                  "<EndTime>2030-03-04T12:00:00.000Z</EndTime></Availability>")
        [bob, erin] = responses(await c.command("ResolveRecipients", resolve(BOB, "erin@elsewhere.net",
                                                                             options=window)))
        availability = bob.find(RR.Recipient, RR.Availability)
        assert availability is not None and availability.findtext(RR.Status) == "1"
        # 8:00-12:00 in half hours: busy 9-10, tentative 9:45-10:10 (busy wins, then tentative
        # alone 10:00-10:30), out of office 11:00-11:20
        assert availability.findtext(RR.MergedFreeBusy) == "00221030"
        assert erin.findtext(RR.Status) == "4" and erin.find(RR.Recipient) is None
        # without EndTime: seven days of slots
        [bob] = responses(await c.command("ResolveRecipients", resolve(BOB, options=(
            "<Availability><StartTime>2030-03-04T08:00:00.000Z</StartTime></Availability>"))))
        assert len(str(bob.findtext(RR.Recipient, RR.Availability, RR.MergedFreeBusy))) == 7 * 48

    run(scenario())


def test_availability_not_before_14_0(app: tuple[ActiveSync, ReferenceStore]) -> None:
    async def scenario() -> None:
        c = await ready(app, "12.1")
        c.check_versions = True  # the response must hold nothing 14.0 has
        [bob] = responses(await c.command("ResolveRecipients", resolve(BOB, options=(
            "<Availability><StartTime>2030-03-04T08:00:00.000Z</StartTime></Availability>"))))
        assert bob.find(RR.Recipient, RR.Availability) is None

    run(scenario())


def test_merged_free_busy_rounds_up_and_keeps_the_highest() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    end = start + timedelta(minutes=95)  # four slots, the last one partly
    periods = [BusyPeriod(start + timedelta(minutes=25), start + timedelta(minutes=31), 1),
               BusyPeriod(start + timedelta(minutes=29), start + timedelta(minutes=30), 3),
               BusyPeriod(start + timedelta(minutes=90), start + timedelta(hours=5), 2),
               BusyPeriod(start - timedelta(hours=1), start + timedelta(minutes=1), 4),
               BusyPeriod(start + timedelta(minutes=40), start + timedelta(minutes=40), 2)]
    assert merged_free_busy(start, end, periods) == "3102"
    assert merged_free_busy(start, end, None) == "4444"
    assert merged_free_busy(start, end, []) == "0000"


def test_pictures_from_14_1(app: tuple[ActiveSync, ReferenceStore]) -> None:
    store = app[1]
    store.set_user_picture(BOB, JPEG)

    async def scenario() -> None:
        c = await ready(app, "14.1")
        [bob, alice] = responses(await c.command("ResolveRecipients", resolve(BOB, ALICE, options="<Picture/>")))
        picture = bob.find(RR.Recipient, RR.Picture)
        assert picture is not None and picture.findtext(RR.Status) == "1" and picture.findtext(RR.Data) == JPEG
        assert alice.findtext(RR.Recipient, RR.Picture, RR.Status) == "173"
        [bob] = responses(await c.command("ResolveRecipients", resolve(
            BOB, options="<Picture><MaxSize>10</MaxSize></Picture>")))
        assert bob.findtext(RR.Recipient, RR.Picture, RR.Status) == "174"
        [bob] = responses(await c.command("ResolveRecipients", resolve(
            BOB, options="<Picture><MaxPictures>0</MaxPictures></Picture>")))
        assert bob.findtext(RR.Recipient, RR.Picture, RR.Status) == "175"

    run(scenario())


BAD = [
    resolve(),
    resolve(*[f"user{i}" for i in range(101)]),
    resolve(BOB, options="<CertificateRetrieval>4</CertificateRetrieval>"),
    resolve(BOB, options="<CertificateRetrieval>x</CertificateRetrieval>"),
    resolve(BOB, options="<MaxAmbiguousRecipients>10000</MaxAmbiguousRecipients>"),
    resolve(BOB, options="<MaxCertificates>-1</MaxCertificates>"),
]
BAD_14 = [
    resolve(BOB, options="<Availability><EndTime>2030-03-04T12:00:00Z</EndTime></Availability>"),
    resolve(BOB, options="<Availability><StartTime>soon</StartTime></Availability>"),
    resolve(BOB, options="<Availability><StartTime>2030-03-04T08:00:00Z</StartTime>"
                         "<EndTime>2030-03-04T08:20:00Z</EndTime></Availability>"),
    resolve(BOB, options="<Availability><StartTime>2030-03-04T08:00:00Z</StartTime>"
                         "<EndTime>2030-05-04T08:00:00Z</EndTime></Availability>"),
]


@pytest.mark.parametrize(("version", "body"), [(v, b) for v in ("2.5", "14.1") for b in BAD]
                         + [("14.1", b) for b in BAD_14])
def test_bad_requests_get_status_5(app: tuple[ActiveSync, ReferenceStore], version: str, body: str) -> None:
    async def scenario() -> None:
        c = await ready(app, version)
        r = await c.command("ResolveRecipients", body)
        assert r.status == 200 and r.text(RR.Status) == "5", r.xml
        assert r.node is not None and r.node.find(RR.Response) is None

    run(scenario())


def test_hostile_recipients(app: tuple[ActiveSync, ReferenceStore]) -> None:
    async def scenario() -> None:
        c = await ready(app, "16.1")
        hostile = ["%", "_", "' OR 1=1 --", "x" * 300, "@@@@", "\ufffd", "   "]
        r = await c.command("ResolveRecipients", resolve(*hostile))
        found = responses(r)
        assert [n.findtext(RR.Status) for n in found] == ["4"] * len(hostile)
        assert [n.findtext(RR.To) for n in found][3] == "x" * 256

    run(scenario())


# -- random requests ---------------------------------------------------------------------------

_TAGS = [RR.To, RR.Options, RR.CertificateRetrieval, RR.MaxCertificates, RR.MaxAmbiguousRecipients,
         RR.Availability, RR.StartTime, RR.EndTime, RR.Picture, RR.MaxSize, RR.MaxPictures]
_TEXTS = st.sampled_from(["", "0", "1", "2", "3", "9999", "-1", "x", BOB, "bob", "2030-03-04T08:00:00Z",
                          "2030-03-05T08:00:00Z", "\ufffd", "%", "9" * 20])


def _nodes(depth: int) -> st.SearchStrategy[Node]:
    leaf = st.builds(Node, st.sampled_from(_TAGS), st.one_of(st.none(), _TEXTS, st.binary(max_size=8)))
    if depth == 0:
        return leaf
    return st.one_of(leaf, st.builds(lambda tag, children: Node(tag, None, children),
                                     st.sampled_from(_TAGS), st.lists(_nodes(depth - 1), max_size=4)))


@pytest.fixture
def device(app: tuple[ActiveSync, ReferenceStore]) -> tuple[ActiveSync, int]:
    async def setup() -> int:
        c = await ready(app, "14.1")
        assert c.policy_key is not None
        return c.policy_key

    return app[0], run(setup())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(_nodes(3), max_size=5))
def test_random_requests_get_a_status(device: tuple[ActiveSync, int], parts: list[Node]) -> None:
    """Whatever the request holds: a ResolveRecipients response with Status 1 or 5."""
    w = Writer()
    with w.tag(RR.ResolveRecipients):
        for part in parts:
            write_node(w, part)
    c = client(device[0], version="14.1")
    c.policy_key = device[1]
    r = run(c.raw("ResolveRecipients", w.getvalue()))
    assert r.status == 200 and r.text(RR.Status) in {"1", "5"}, r.xml
