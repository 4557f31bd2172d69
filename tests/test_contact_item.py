"""eas.items.contacts: a Contact written for each protocol version, through the real
codec, and read back as a device's Add would be; bounds and bad values."""

from __future__ import annotations

import base64
import dataclasses
import html
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eas.items import contacts
from eas.items.contacts import MAX_PICTURE_BASE64, Contact
from eas.items.email import parse_body_options
from eas.protocol.errors import ProtocolError
from eas.protocol.versions import Version
from eas.tags import AirSync, AirSyncBase
from eas.tags import Contacts as C
from eas.tags import Contacts2 as C2
from eas.testing.client import elements_outside
from eas.wbxml import Node, Writer, decode, from_xml

VERSIONS = ("2.5", "12.0", "12.1", "14.0", "14.1", "16.0", "16.1")
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4 + b"\xff\xd9"


def render(contact: Contact, version: str, options: dict[str, Any] | None = None) -> Node:
    """The ApplicationData written for ``contact``, encoded and decoded, checked against
    the version."""
    v = Version(version)
    w = Writer()
    with w.tag(AirSync.ApplicationData):
        contacts.write(w, contact, v, options if options is not None else parse_body_options(None, v))
    node = decode(w.getvalue())
    assert elements_outside(node, version) == []
    return node


def full_contact() -> Contact:
    """A contact with every field set to a distinct value."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Contact):
        if f.type == "str" and f.name not in ("id", "uid"):
            values[f.name] = f"{f.name} \u00e9\u4e2d"
    values.update(
        birthday=datetime(1980, 4, 15, tzinfo=UTC), anniversary=datetime(2005, 6, 30, tzinfo=UTC),
        children=["Tom", "Ann"], categories=["Family", "VIP"], picture=JPEG, weighted_rank=7,
        body="Met at the conference.\nLikes tea.",
    )
    return Contact(**values)


def expected_back(contact: Contact, version: str) -> Contact:
    """What a device's echo of ``contact`` gives: Alias and WeightedRank are the server's."""
    return dataclasses.replace(contact, alias="", weighted_rank=None)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_field_round_trips(version: str) -> None:
    contact = full_contact()
    node = render(contact, version)
    assert contacts.parse(node, Version(version)) == expected_back(contact, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_alias_and_weighted_rank_only_from_14(version: str) -> None:
    node = render(full_contact(), version)
    has = Version(version) >= Version("14.0")
    assert (node.find(C.Alias) is not None) == has
    assert (node.find(C.WeightedRank) is not None) == has
    if has:
        assert node.findtext(C.WeightedRank) == "7"


@pytest.mark.parametrize("version", VERSIONS)
def test_body_per_version(version: str) -> None:
    node = render(Contact(body="x" * 3000), version)
    if version == "2.5":
        assert node.findtext(C.Body) == "x" * 3000
        assert node.find(AirSyncBase.Body) is None
    else:
        assert node.find(C.Body) is None
        assert node.findtext(AirSyncBase.Body, AirSyncBase.Data) == "x" * 3000
        assert node.findtext(AirSyncBase.Body, AirSyncBase.Type) == "1"


def test_body_truncation_25() -> None:
    options = parse_body_options(decode(from_xml("<Options xmlns='AirSync:'><Truncation>1</Truncation></Options>")),
                                 Version("2.5"))
    node = render(Contact(body="y" * 2000), "2.5", options)
    assert node.findtext(C.Body) == "y" * 512
    assert node.findtext(C.BodySize) == "2000"
    assert node.findtext(C.BodyTruncated) == "1"


def test_body_preference_truncation() -> None:
    xml = ("<Options xmlns='AirSync:' xmlns:B='AirSyncBase:'><B:BodyPreference><B:Type>1</B:Type>"
           "<B:TruncationSize>100</B:TruncationSize></B:BodyPreference></Options>")
    options = parse_body_options(decode(from_xml(xml)), Version("14.1"))
    node = render(Contact(body="\u00e9" * 200), "14.1", options)
    body = node.find(AirSyncBase.Body)
    assert body is not None
    assert body.findtext(AirSyncBase.Truncated) == "1"
    assert body.findtext(AirSyncBase.EstimatedDataSize) == "400"
    assert body.findtext(AirSyncBase.Data) == "\u00e9" * 50  # 100 bytes of UTF-8


def test_empty_contact_writes_nothing_and_reads_back() -> None:
    node = render(Contact(), "16.1")
    assert node.children == []
    assert contacts.parse(node, Version("16.1")) == Contact()


@pytest.mark.parametrize(("contact", "file_as"), [
    (Contact(file_as="Boss", first_name="Ann", last_name="Lee"), "Boss"),
    (Contact(first_name="Ann", last_name="Lee", company_name="Acme"), "Lee, Ann"),
    (Contact(first_name="Ann", company_name="Acme"), "Ann"),
    (Contact(company_name="Acme", email1_address="a@acme.example"), "Acme"),
    (Contact(email2_address="b@acme.example", nick_name="B"), "b@acme.example"),
    (Contact(nick_name="B"), "B"),
])
def test_file_as_is_always_sent(contact: Contact, file_as: str) -> None:
    """Thunderbird (TbSync) shows FileAs as the name: a contact without one gets Outlook's."""
    node = render(contact, "14.1")
    assert node.findtext(C.FileAs) == file_as
    assert len(node.findall(C.FileAs)) == 1


@pytest.mark.parametrize(("sent", "kept"), [
    ('"Hans Muster" <hans.muster@example.com>', "hans.muster@example.com"),  # Android
    ("Hans Muster <hans@example.com>", "hans@example.com"),
    ("hans@example.com", "hans@example.com"),
    ("not <an address>", "not <an address>"),
])
def test_named_addresses_keep_the_address(sent: str, kept: str) -> None:
    node = device_data(f"<C:Email2Address>{html.escape(sent)}</C:Email2Address>")
    assert contacts.parse(node, Version("12.1")).email2_address == kept


def test_dates_use_the_asdtype_form() -> None:
    node = render(Contact(birthday=datetime(1980, 4, 15, tzinfo=UTC)), "12.1")
    assert node.findtext(C.Birthday) == "1980-04-15T00:00:00.000Z"


@pytest.mark.parametrize(("sent", "day"), [
    ("1980-04-15T00:00:00.000Z", 15),
    ("1980-04-14T22:00:00.000Z", 15),  # a device at UTC+2 (iOS, Android)
    ("1980-04-14T12:00:00.000Z", 15),  # UTC+12
    ("1980-04-15T05:00:00.000Z", 15),  # UTC-5
    ("1980-04-15T11:00:00.000Z", 15),  # UTC-11
    ("1980-04-15T10:00:00.000Z", 15),  # BlackBerry: local noon at UTC+2
    ("1980-04-15T12:00:00.000Z", 16),  # UTC-12 (no one lives there): the one zone it gets wrong
])
def test_birthday_is_the_date_the_device_meant(sent: str, day: int) -> None:
    contact = contacts.parse(device_data(f"<C:Birthday>{sent}</C:Birthday><C:Anniversary>{sent}</C:Anniversary>"),
                             Version("14.1"))
    assert contact.birthday == contact.anniversary == datetime(1980, 4, day, tzinfo=UTC)


def test_last_day_there_is() -> None:
    contact = contacts.parse(device_data("<C:Birthday>9999-12-31T23:00:00Z</C:Birthday>"), Version("14.1"))
    assert contact.birthday == datetime(9999, 12, 31, tzinfo=UTC)


def test_picture_over_the_limit_is_not_sent() -> None:
    big = b"\x00" * (MAX_PICTURE_BASE64 // 4 * 3 + 3)  # one base64 quantum over the limit
    assert render(Contact(picture=big), "14.0").find(C.Picture) is None
    ok = b"\x00" * (MAX_PICTURE_BASE64 // 4 * 3)
    assert render(Contact(picture=ok), "14.0").findtext(C.Picture) == base64.b64encode(ok).decode()


def test_lists_are_bounded_on_write() -> None:
    node = render(Contact(categories=[f"c{i}" for i in range(10_000)], children=["k"] * 1000), "14.1")
    assert len(node.find(C.Categories) or []) == 300
    assert len(node.find(C.Children) or []) == 300


def device_data(body: str) -> Node:
    return decode(from_xml(f"<ApplicationData xmlns='AirSync:' xmlns:C='Contacts:' xmlns:C2='Contacts2:' "
                    f"xmlns:B='AirSyncBase:'>{body}</ApplicationData>"))


def test_parse_a_device_add() -> None:
    """As an Android or iOS device sends a new contact (16.1)."""
    node = device_data("<C:FirstName>Ana</C:FirstName><C:LastName>Lopez</C:LastName>"
                       "<C:FileAs>Lopez, Ana</C:FileAs><C:MobilePhoneNumber>+34 600 111 222</C:MobilePhoneNumber>"
                       "<C2:NickName>Anita</C2:NickName><C:Birthday>1990-02-03T00:00:00.000Z</C:Birthday>"
                       "<B:Body><B:Type>2</B:Type><B:Data>&lt;p&gt;Hola&lt;/p&gt;</B:Data></B:Body>"
                       "<C:Picture></C:Picture><C:Alias>ignored</C:Alias><C:WeightedRank>3</C:WeightedRank>")
    contact = contacts.parse(node, Version("16.1"))
    assert (contact.first_name, contact.last_name, contact.file_as) == ("Ana", "Lopez", "Lopez, Ana")
    assert contact.mobile_phone_number == "+34 600 111 222"
    assert contact.nick_name == "Anita"
    assert contact.birthday == datetime(1990, 2, 3, tzinfo=UTC)
    assert contact.body == "Hola"
    assert contact.picture is None
    assert contact.alias == "" and contact.weighted_rank is None


def test_picture_with_line_breaks_is_read() -> None:
    encoded = base64.encodebytes(JPEG).decode()  # 76-character lines, as some devices send
    contact = contacts.parse(device_data(f"<C:Picture>{encoded}</C:Picture>"), Version("14.0"))
    assert contact.picture == JPEG


@pytest.mark.parametrize("body", [
    "<C:Birthday>yesterday</C:Birthday>",
    "<C:Anniversary>2024-13-45T00:00:00.000Z</C:Anniversary>",
    "<C:Birthday>0001-01-01T00:00:00+05:00</C:Birthday>",  # leaves the years datetime has
    "<C:Picture>not base64!</C:Picture>",
    "<C:Picture>" + "A" * (MAX_PICTURE_BASE64 + 4) + "</C:Picture>",
    "<C:Categories>" + "<C:Category>x</C:Category>" * 301 + "</C:Categories>",
    "<C:Categories><C:Category>" + "x" * 256 + "</C:Category></C:Categories>",
    "<C:Children>" + "<C:Child>x</C:Child>" * 10_000 + "</C:Children>",
    "<C:FirstName>" + "x" * 40_000 + "</C:FirstName>",
    "<B:Body><B:Type>9</B:Type><B:Data>x</B:Data></B:Body>",
])
def test_bad_values_are_status_6(body: str) -> None:
    with pytest.raises(ProtocolError) as e:
        contacts.parse(device_data(body), Version("14.1"))
    assert e.value.status == 6


def test_opaque_where_text_belongs_is_status_6() -> None:
    node = Node(AirSync.ApplicationData, children=[Node(C2.CustomerId, b"\x00\x01")])
    with pytest.raises(ProtocolError) as e:
        contacts.parse(node, Version("14.1"))
    assert e.value.status == 6


def test_25_body_in_its_page() -> None:
    node = device_data("<C:Body>note text</C:Body><C:BodyTruncated>0</C:BodyTruncated>")
    assert contacts.parse(node, Version("2.5")).body == "note text"


# -- Property: any contact survives write -> encode -> decode -> parse ------------------------

_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)
_dates = st.dates(min_value=datetime(1900, 1, 1).date(), max_value=datetime(2100, 1, 1).date()).map(
    lambda d: datetime(d.year, d.month, d.day, tzinfo=UTC))
_TEXT_NAMES = [f.name for f in dataclasses.fields(Contact) if f.type == "str" and f.name not in ("id", "uid")]


@st.composite
def random_contacts(draw: st.DrawFn) -> Contact:
    values: dict[str, Any] = {name: draw(_text) for name in draw(st.sets(st.sampled_from(_TEXT_NAMES)))}
    values["birthday"] = draw(st.none() | _dates)
    values["anniversary"] = draw(st.none() | _dates)
    values["children"] = draw(st.lists(_text.filter(bool), max_size=4))
    values["categories"] = draw(st.lists(_text.filter(bool), max_size=4))
    values["picture"] = draw(st.none() | st.binary(min_size=1, max_size=300))
    values["weighted_rank"] = draw(st.none() | st.integers(0, 1000))
    return Contact(**values)


@settings(max_examples=60, deadline=None)
@given(contact=random_contacts(), version=st.sampled_from(VERSIONS))
def test_property_round_trip(contact: Contact, version: str) -> None:
    node = render(contact, version)
    back = contacts.parse(node, Version(version))
    if not contact.file_as:  # a FileAs is always sent (test_file_as_is_always_sent)
        assert back.file_as or not node.find(C.FileAs)
        back.file_as = ""
    assert back == expected_back(contact, version)
