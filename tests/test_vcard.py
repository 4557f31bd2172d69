"""eas.items.vcard: Contact -> vCard 4.0 -> Contact, and cards as phones and servers
export them (2.1 quoted-printable, 3.0, 4.0; samples written after what each emits)."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eas.items.contacts import Contact
from eas.items.vcard import NO_YEAR, VCardError, from_vcard, read_vcards, to_vcard

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 2 + b"\xff\xd9"
_SLOTS = [f.name for f in dataclasses.fields(Contact) if f.type == "str" and f.name != "id"]


def full_contact() -> Contact:
    values: dict[str, Any] = {name: f"{name}, \u00e9; \u4e2d\\" for name in _SLOTS}
    values.update(
        body="Line one\nLine two; with, punctuation", birthday=datetime(1980, 4, 15, tzinfo=UTC),
        anniversary=datetime(2005, 6, 30, 22, 0, tzinfo=UTC), children=["Tom", "Ann, Jr."],
        categories=["Family", "A;B", "C,D"], picture=JPEG, weighted_rank=12,
    )
    return Contact(**values)


def test_full_contact_round_trips() -> None:
    contact = full_contact()
    assert from_vcard(to_vcard(contact)) == contact


def test_output_is_folded_vcard_40() -> None:
    text = to_vcard(full_contact())
    assert text.startswith("BEGIN:VCARD\r\nVERSION:4.0\r\n")
    assert text.endswith("END:VCARD\r\n")
    for line in text.split("\r\n"):
        assert len(line.encode("utf-8")) <= 75
    assert "ANNIVERSARY:20050630T220000Z" in text
    assert "BDAY:19800415" in text
    assert "PHOTO:data:image/jpeg;base64," in text.replace("\r\n ", "")


def test_fn_is_always_present() -> None:
    assert "\r\nFN:Acme\r\n" in to_vcard(Contact(company_name="Acme"))
    assert "\r\nFN:\r\n" in to_vcard(Contact())
    assert from_vcard(to_vcard(Contact(company_name="Acme"))) == Contact(company_name="Acme")


IOS = """BEGIN:VCARD
VERSION:3.0
PRODID:-//Apple Inc.//iPhone OS 17.4//EN
N:Appleseed;Johnny;Q.;Dr.;Jr.
FN:Dr. Johnny Q. Appleseed Jr.
NICKNAME:Jay
X-PHONETIC-FIRST-NAME:Jonii
ORG:Apple Inc.;Engineering;
TITLE:Engineer
EMAIL;type=INTERNET;type=WORK;type=pref:johnny@apple.example
EMAIL;type=INTERNET;type=HOME:jq@home.example
TEL;type=CELL;type=VOICE;type=pref:+1 408 555 0100
TEL;type=WORK;type=VOICE:+1 408 555 0101
TEL;type=MAIN:+1 408 555 0000
TEL;type=HOME;type=FAX:+1 408 555 0102
item1.ADR;type=WORK;type=pref:;;1 Apple Park Way;Cupertino;CA;95014;United States
item1.X-ABADR:us
item2.ADR;type=HOME:;;12 Elm St\\nApt 4;Palo Alto;CA;94301;USA
item3.URL;type=pref:https://apple.example
item3.X-ABLabel:_$!<HomePage>!$_
item4.X-ABRELATEDNAMES:Jane Appleseed
item4.X-ABLabel:_$!<Spouse>!$_
item5.X-ABDATE;type=pref:2010-09-12
item5.X-ABLabel:_$!<Anniversary>!$_
IMPP;X-SERVICE-TYPE=Skype;type=HOME;type=pref:skype:johnny.q
BDAY;value=date:1975-06-01
NOTE:Met at WWDC\\, 2019.\\nVegetarian.
PHOTO;ENCODING=b;TYPE=JPEG:""" + base64.b64encode(JPEG).decode() + """
CATEGORIES:Work,Friends
END:VCARD
"""


def test_ios_export() -> None:
    c = from_vcard(IOS.replace("\n", "\r\n"))
    assert (c.title, c.first_name, c.middle_name, c.last_name, c.suffix) == ("Dr.", "Johnny", "Q.", "Appleseed", "Jr.")
    assert c.nick_name == "Jay" and c.yomi_first_name == "Jonii"
    assert (c.company_name, c.department, c.job_title) == ("Apple Inc.", "Engineering", "Engineer")
    assert (c.email1_address, c.email2_address) == ("johnny@apple.example", "jq@home.example")
    assert c.mobile_phone_number == "+1 408 555 0100"
    assert c.business_phone_number == "+1 408 555 0101"
    assert c.company_main_phone == "+1 408 555 0000"
    assert c.home_fax_number == "+1 408 555 0102"
    assert (c.business_address_street, c.business_address_city, c.business_address_postal_code) == (
        "1 Apple Park Way", "Cupertino", "95014")
    assert c.home_address_street == "12 Elm St\nApt 4"
    assert c.web_page == "https://apple.example"
    assert c.spouse == "Jane Appleseed"
    assert c.anniversary == datetime(2010, 9, 12, tzinfo=UTC)
    assert c.im_address == "skype:johnny.q"
    assert c.birthday == datetime(1975, 6, 1, tzinfo=UTC)
    assert c.body == "Met at WWDC, 2019.\nVegetarian."
    assert c.picture == JPEG
    assert c.categories == ["Work", "Friends"]


# Android's contacts app exports 2.1: quoted-printable UTF-8 with soft line breaks, bare types.
ANDROID = (
    "BEGIN:VCARD\r\nVERSION:2.1\r\n"
    "N;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:M=C3=BCller;J=C3=BCrgen;;;\r\n"
    "FN;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:J=C3=BCrgen M=C3=BCller\r\n"
    "TEL;CELL:+49 170 1234567\r\nTEL;HOME:+49 30 123456\r\nTEL;WORK:+49 30 999\r\n"
    "TEL;X-Assistant:+49 30 998\r\n"
    "EMAIL;HOME:juergen@example.de\r\n"
    "ADR;HOME;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:;;Stra=C3=9Fe 1;Berlin;;10115;Deutschland\r\n"
    "NOTE;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:Erste Zeile=0D=0AZweite Zeile mit einem sehr langen Text, =\r\n"
    "der umbrochen wird=\r\n"
    "=2E\r\n"
    "BDAY:1988-11-30\r\n"
    "PHOTO;ENCODING=BASE64;JPEG:" + base64.b64encode(JPEG[:120]).decode() + "\r\n"
    "  " + base64.b64encode(JPEG[120:]).decode() + "\r\n"
    "\r\n"
    "END:VCARD\r\n"
)


def test_android_21_export() -> None:
    c = from_vcard(ANDROID)
    assert (c.first_name, c.last_name) == ("J\u00fcrgen", "M\u00fcller")
    assert c.mobile_phone_number == "+49 170 1234567"
    assert c.home_phone_number == "+49 30 123456"
    assert c.business_phone_number == "+49 30 999"
    assert c.assistant_phone_number == "+49 30 998"
    assert c.email1_address == "juergen@example.de"
    assert (c.home_address_street, c.home_address_city, c.home_address_country) == (
        "Stra\u00dfe 1", "Berlin", "Deutschland")
    assert c.body == "Erste Zeile\r\nZweite Zeile mit einem sehr langen Text, der umbrochen wird."
    assert c.birthday == datetime(1988, 11, 30, tzinfo=UTC)
    assert c.picture == JPEG


# Outlook (desktop) exports 2.1 with LANGUAGE parameters, X-MS- properties and a
# quoted-printable NOTE in Windows-1252.
OUTLOOK = (
    "BEGIN:VCARD\r\nVERSION:2.1\r\nN;LANGUAGE=de-de:Schr\u00f6der;Karl;;Herr;\r\nFN:Karl Schr\u00f6der\r\n"
    "ORG:Beispiel GmbH;Vertrieb\r\nTITLE:Leiter\r\n"
    "TEL;WORK;VOICE:+49 89 100\r\nTEL;WORK;VOICE:+49 89 101\r\nTEL;HOME;VOICE:+49 89 200\r\n"
    "TEL;CELL;VOICE:+49 151 300\r\nTEL;CAR;VOICE:+49 151 301\r\nTEL;PAGER;VOICE:+49 151 302\r\n"
    "TEL;WORK;FAX:+49 89 109\r\nTEL;HOME;FAX:+49 89 209\r\nX-MS-TEL;VOICE;COMPANY:+49 89 0\r\n"
    "X-MS-TEL;VOICE;ASSISTANT:+49 89 102\r\nX-MS-TEL;VOICE;RADIO:+49 89 103\r\n"
    "ADR;WORK;PREF:;;Hauptstr. 1;M\u00fcnchen;Bayern;80331;Deutschland\r\n"
    "LABEL;WORK;PREF;ENCODING=QUOTED-PRINTABLE:Hauptstr. 1=0D=0AM=FCnchen\r\n"
    "X-MS-OL-DEFAULT-POSTAL-ADDRESS:2\r\nURL;WORK:http://www.beispiel.example\r\n"
    "EMAIL;PREF;INTERNET:karl@beispiel.example\r\nX-MS-IMADDRESS:karl@im.example\r\n"
    "BDAY:19700101\r\nX-MS-ANNIVERSARY:19951007\r\nX-MS-SPOUSE;N:Erika\r\nX-MS-MANAGER;N:Frau Chefin\r\n"
    "NOTE;CHARSET=Windows-1252;ENCODING=QUOTED-PRINTABLE:Gr=FC=DFe an die Familie\r\n"
    "X-MS-OL-DESIGN;CHARSET=utf-8:<card xmlns=\"http://schemas.microsoft.com/office/outlook/12/electronicbusinesscards\"/>\r\n"
    "REV:20240101T120000Z\r\nEND:VCARD\r\n"
)


def test_outlook_export() -> None:
    c = from_vcard(OUTLOOK)
    assert (c.title, c.first_name, c.last_name) == ("Herr", "Karl", "Schr\u00f6der")
    assert (c.company_name, c.department, c.job_title) == ("Beispiel GmbH", "Vertrieb", "Leiter")
    assert (c.business_phone_number, c.business2_phone_number, c.home_phone_number) == (
        "+49 89 100", "+49 89 101", "+49 89 200")
    assert (c.mobile_phone_number, c.car_phone_number, c.pager_number) == ("+49 151 300", "+49 151 301", "+49 151 302")
    assert (c.business_fax_number, c.home_fax_number) == ("+49 89 109", "+49 89 209")
    assert (c.company_main_phone, c.assistant_phone_number, c.radio_phone_number) == (
        "+49 89 0", "+49 89 102", "+49 89 103")
    assert (c.business_address_street, c.business_address_city, c.business_address_state) == (
        "Hauptstr. 1", "M\u00fcnchen", "Bayern")
    assert c.web_page == "http://www.beispiel.example"
    assert (c.email1_address, c.im_address) == ("karl@beispiel.example", "karl@im.example")
    assert (c.birthday, c.anniversary) == (datetime(1970, 1, 1, tzinfo=UTC), datetime(1995, 10, 7, tzinfo=UTC))
    assert (c.spouse, c.manager_name) == ("Erika", "Frau Chefin")
    assert c.body == "Gr\u00fc\u00dfe an die Familie"


def test_po_box_and_extended_address_join_the_street() -> None:
    c = from_vcard("BEGIN:VCARD\nVERSION:3.0\nN:A;;;;\nADR;TYPE=work:PO Box 7;Suite 100;1 Main St;Springfield;IL;62701;USA\n"
                   "END:VCARD\n")
    assert c.business_address_street == "1 Main St\nSuite 100\nPO Box 7"
    assert (c.business_address_city, c.business_address_state, c.business_address_postal_code) == (
        "Springfield", "IL", "62701")


def test_latin1_quoted_printable() -> None:
    card = "BEGIN:VCARD\nVERSION:2.1\nN;CHARSET=ISO-8859-1;ENCODING=QUOTED-PRINTABLE:G=F6del;Kurt\nEND:VCARD\n"
    assert from_vcard(card).last_name == "G\u00f6del"


# Google Contacts export (3.0), two cards with a grouped custom label, folded lines.
GOOGLE = """BEGIN:VCARD
VERSION:3.0
FN:Ada Lovelace
N:Lovelace;Ada;;;
EMAIL;TYPE=INTERNET;TYPE=HOME:ada@example.org
EMAIL;TYPE=INTERNET:ada.l@example.org
EMAIL;TYPE=INTERNET:third@example.org
EMAIL;TYPE=INTERNET:fourth@example.org
TEL;TYPE=CELL:+44 20 7946 0000
item1.TEL:+44 20 7946 0001
item1.X-ABLabel:Lab
ADR;TYPE=HOME:;;12 St James's Square;London;;SW1Y 4JH;United Kingdom
ORG:Analytical Engines Ltd
NOTE:A very long note that a server folds because the line is longer than seventy
 -five octets.
CATEGORIES:myContacts,starred
END:VCARD
BEGIN:VCARD
VERSION:3.0
FN:Charles Babbage
N:Babbage;Charles;;;
END:VCARD
"""


def test_google_export_with_two_cards() -> None:
    cards = read_vcards(GOOGLE)
    assert [c.last_name for c in cards] == ["Lovelace", "Babbage"]
    ada = cards[0]
    assert (ada.email1_address, ada.email2_address, ada.email3_address) == (
        "ada@example.org", "ada.l@example.org", "third@example.org")  # a contact has three
    assert ada.mobile_phone_number == "+44 20 7946 0000"
    assert ada.home_phone_number == "+44 20 7946 0001"  # untyped: the first free phone
    assert ada.company_name == "Analytical Engines Ltd"
    assert ada.body == ("A very long note that a server folds because the line is longer than seventy"
                        "-five octets.")
    assert ada.categories == ["myContacts", "starred"]


# Nextcloud / Sabre 4.0: data: URI photo, quoted multi-type parameter, tel: URIs,
# a birthday without a year, RELATED, ANNIVERSARY.
NEXTCLOUD = """BEGIN:VCARD
VERSION:4.0
PRODID:-//Sabre//Sabre VObject 4.5.4//EN
UID:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1
FN:Grace Hopper
N:Hopper;Grace;Brewster Murray;RAdm.;
TEL;TYPE="work,voice";VALUE=uri:tel:+1-555-555-0100
TEL;TYPE=cell;VALUE=uri:tel:+1-555-555-0101
EMAIL;PREF=2:grace@navy.example
EMAIL;PREF=1:ghopper@example.com
BDAY:--1209
ANNIVERSARY:19300615
RELATED;TYPE=spouse;VALUE=text:Vincent Hopper
RELATED;TYPE=child;VALUE=text:None\\, thankfully
IMPP:xmpp:grace@jabber.example
PHOTO:data:image/jpeg;base64,""" + base64.b64encode(JPEG).decode() + """
X-EVOLUTION-MANAGER:Howard Aiken
END:VCARD
"""


def test_nextcloud_40() -> None:
    c = from_vcard(NEXTCLOUD)
    assert c.uid == "4fbe8971-0bc3-424c-9c26-36c3e1eff6b1"
    assert (c.title, c.middle_name) == ("RAdm.", "Brewster Murray")
    assert c.business_phone_number == "+1-555-555-0100"
    assert c.mobile_phone_number == "+1-555-555-0101"
    assert (c.email1_address, c.email2_address) == ("ghopper@example.com", "grace@navy.example")
    assert c.birthday == datetime(NO_YEAR, 12, 9, tzinfo=UTC)
    assert c.anniversary == datetime(1930, 6, 15, tzinfo=UTC)
    assert c.spouse == "Vincent Hopper" and c.children == ["None, thankfully"]
    assert c.im_address == "xmpp:grace@jabber.example"
    assert c.picture == JPEG
    assert c.manager_name == "Howard Aiken"


def test_a_value_cannot_add_properties() -> None:
    hostile = Contact(last_name="x", body="a\rEND:VCARD\rBEGIN:VCARD\rFN:evil", job_title="b\r\nTEL:1\nTEL:2")
    cards = read_vcards(to_vcard(hostile))
    assert len(cards) == 1
    assert cards[0].body == "a\nEND:VCARD\nBEGIN:VCARD\nFN:evil"
    assert cards[0].job_title == "b\nTEL:1\nTEL:2" and cards[0].home_phone_number == ""


def test_what_a_device_cannot_receive_is_replaced() -> None:
    """NUL and lone surrogates cannot be sent in WBXML: a card never holds them."""
    c = from_vcard(to_vcard(Contact(last_name="a\x00b\udcff", body="x\x01y")))
    assert (c.last_name, c.body) == ("a\ufffdb\ufffd", "x\ufffdy")
    qp = from_vcard("BEGIN:VCARD\nVERSION:2.1\nN;ENCODING=QUOTED-PRINTABLE:A=00B\nFN:\x00\nEND:VCARD\n")
    assert qp.last_name == "A\ufffdB"


def test_card_with_only_fn_keeps_the_name() -> None:
    assert from_vcard("BEGIN:VCARD\nVERSION:3.0\nFN:Plumber Joe\nTEL:123\nEND:VCARD").first_name == "Plumber Joe"


@pytest.mark.parametrize("text", ["", "hello", "BEGIN:VCARD\nFN:x\n", "END:VCARD\nBEGIN:VCARD"])
def test_not_a_vcard(text: str) -> None:
    with pytest.raises(VCardError):
        from_vcard(text)
    assert read_vcards(text) == []


@pytest.mark.parametrize("line", [
    "BDAY:not a date", "BDAY:99999999", "BDAY:0001-01-01T00:00:00+05:00", "BDAY:9999-12-31T23:00:00-05:00", "ANNIVERSARY:--13", "PHOTO;ENCODING=b:!!!",
    "PHOTO:data:image/jpeg,notbase64", "PHOTO;VALUE=uri:https://example.com/a.jpg", "X-EAS-WEIGHTED-RANK:-3",
    "no colon here", ";;;:", "TEL;TYPE=\"unterminated:123", "N", "ADR:;;;;;;;;;;;;;;;;;;;",
    "EMAIL:mailto:", "NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=x-unknown:=FF=FE",
])
def test_hostile_lines_are_ignored_or_bounded(line: str) -> None:
    c = from_vcard(f"BEGIN:VCARD\r\nVERSION:4.0\r\n{line}\r\nFN:Ok\r\nN:Ok;;;;\r\nEND:VCARD\r\n")
    assert c.last_name == "Ok"
    assert c.birthday is None and c.anniversary is None and c.picture is None and c.weighted_rank is None


def test_many_phones_fill_the_slots_and_stop() -> None:
    tels = "".join(f"TEL;TYPE=cell:{i}\r\n" for i in range(10_000))
    c = from_vcard(f"BEGIN:VCARD\r\nVERSION:3.0\r\nN:A;;;;\r\n{tels}END:VCARD\r\n")
    assert c.mobile_phone_number == "0"
    assert c.home_phone_number == ""


_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30).map(str.strip)
_dates = st.datetimes(min_value=datetime(1601, 1, 1), max_value=datetime(9999, 1, 1)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC))


@st.composite
def random_contacts(draw: st.DrawFn) -> Contact:
    values: dict[str, Any] = {name: draw(_text) for name in draw(st.sets(st.sampled_from(_SLOTS)))}
    values["body"] = draw(st.text(st.characters(blacklist_categories=["Cs"]), max_size=60))
    values["birthday"] = draw(st.none() | _dates)
    values["anniversary"] = draw(st.none() | _dates)
    values["children"] = draw(st.lists(_text.filter(bool), max_size=3))
    values["categories"] = draw(st.lists(_text.filter(bool), max_size=3))
    values["picture"] = draw(st.none() | st.binary(min_size=1, max_size=200))
    values["weighted_rank"] = draw(st.none() | st.integers(0, 10**6))
    return Contact(**values)


def _expected(c: Contact) -> Contact:
    """What reading the card gives: phones and e-mails keep their slot only when the
    slots before them of the same kind are filled (a card lists values, not slots)."""
    body = "".join("\ufffd" if (ord(ch) < 32 and ch not in "\t\r\n") or ch == "\x7f" else ch for ch in c.body)
    out = dataclasses.replace(c, body=body.replace("\r\n", "\n").replace("\r", "\n"))
    emails = [e for e in (c.email1_address, c.email2_address, c.email3_address) if e]
    out.email1_address, out.email2_address, out.email3_address = (emails + ["", "", ""])[:3]
    ims = [e for e in (c.im_address, c.im_address2, c.im_address3) if e]
    out.im_address, out.im_address2, out.im_address3 = (ims + ["", "", ""])[:3]
    for first, second in (("business_phone_number", "business2_phone_number"),
                          ("home_phone_number", "home2_phone_number")):
        if not getattr(c, first):
            setattr(out, first, getattr(c, second))
            setattr(out, second, "")
    return out


@settings(max_examples=150, deadline=None)
@given(contact=random_contacts())
def test_property_round_trip(contact: Contact) -> None:
    assert read_vcards(to_vcard(contact) * 2) == [_expected(contact)] * 2
