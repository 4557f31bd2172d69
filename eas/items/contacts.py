"""The Contacts item class (MS-ASCNTC, with the Contacts2 code page) and its conversion to
and from nodes for every protocol version."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from eas.items import pim
from eas.items.email import format_date, write_item_body
from eas.protocol.versions import Version
from eas.tags import AirSyncBase
from eas.tags import Contacts as C
from eas.tags import Contacts2 as C2
from eas.wbxml import Node, Writer


@dataclass(slots=True)
class Contact:
    """A contact (MS-ASCNTC 2.2.2). Field names follow the protocol's element names in
    snake case; ``picture`` is the photo's bytes (JPEG), base64 on the wire; ``body`` is
    plain text. Birthday and anniversary are aware datetimes (the protocol sends them as
    UTC instants; clients use the date): what a device sends is read as UTC midnight of
    the date it meant (``_day``). ``alias`` and ``weighted_rank`` are the server's (14.0+)."""

    id: str = ""
    uid: str = ""
    file_as: str = ""
    first_name: str = ""
    middle_name: str = ""
    last_name: str = ""
    title: str = ""
    suffix: str = ""
    nick_name: str = ""
    yomi_first_name: str = ""
    yomi_last_name: str = ""
    yomi_company_name: str = ""
    company_name: str = ""
    department: str = ""
    job_title: str = ""
    office_location: str = ""
    manager_name: str = ""
    assistant_name: str = ""
    assistant_phone_number: str = ""
    spouse: str = ""
    children: list[str] = field(default_factory=list)
    email1_address: str = ""
    email2_address: str = ""
    email3_address: str = ""
    im_address: str = ""
    im_address2: str = ""
    im_address3: str = ""
    business_phone_number: str = ""
    business2_phone_number: str = ""
    business_fax_number: str = ""
    company_main_phone: str = ""
    home_phone_number: str = ""
    home2_phone_number: str = ""
    home_fax_number: str = ""
    mobile_phone_number: str = ""
    car_phone_number: str = ""
    pager_number: str = ""
    radio_phone_number: str = ""
    mms: str = ""
    business_address_street: str = ""
    business_address_city: str = ""
    business_address_state: str = ""
    business_address_postal_code: str = ""
    business_address_country: str = ""
    home_address_street: str = ""
    home_address_city: str = ""
    home_address_state: str = ""
    home_address_postal_code: str = ""
    home_address_country: str = ""
    other_address_street: str = ""
    other_address_city: str = ""
    other_address_state: str = ""
    other_address_postal_code: str = ""
    other_address_country: str = ""
    web_page: str = ""
    birthday: datetime | None = None
    anniversary: datetime | None = None
    customer_id: str = ""
    government_id: str = ""
    account_name: str = ""
    alias: str = ""
    weighted_rank: int | None = None
    categories: list[str] = field(default_factory=list)
    picture: bytes | None = None
    body: str = ""
    # The fields a device's ApplicationData carried (set by ``parse``, not compared): on
    # a Change, a ghosted element left out keeps its stored value (``merge_change``).
    sent: frozenset[str] | None = field(default=None, compare=False, repr=False)


# -- Conversion (MS-ASCNTC 2.2.2) ------------------------------------------------------------

# The string properties: element -> field. Every one exists in every version (eas.tags).
_TEXT_FIELDS: dict[int, str] = {
    C.FileAs: "file_as",
    C.FirstName: "first_name",
    C.MiddleName: "middle_name",
    C.LastName: "last_name",
    C.Title: "title",
    C.Suffix: "suffix",
    C2.NickName: "nick_name",
    C.YomiFirstName: "yomi_first_name",
    C.YomiLastName: "yomi_last_name",
    C.YomiCompanyName: "yomi_company_name",
    C.CompanyName: "company_name",
    C.Department: "department",
    C.JobTitle: "job_title",
    C.OfficeLocation: "office_location",
    C2.ManagerName: "manager_name",
    C.AssistantName: "assistant_name",
    C.AssistantPhoneNumber: "assistant_phone_number",
    C.Spouse: "spouse",
    C.Email1Address: "email1_address",
    C.Email2Address: "email2_address",
    C.Email3Address: "email3_address",
    C2.IMAddress: "im_address",
    C2.IMAddress2: "im_address2",
    C2.IMAddress3: "im_address3",
    C.BusinessPhoneNumber: "business_phone_number",
    C.Business2PhoneNumber: "business2_phone_number",
    C.BusinessFaxNumber: "business_fax_number",
    C2.CompanyMainPhone: "company_main_phone",
    C.HomePhoneNumber: "home_phone_number",
    C.Home2PhoneNumber: "home2_phone_number",
    C.HomeFaxNumber: "home_fax_number",
    C.MobilePhoneNumber: "mobile_phone_number",
    C.CarPhoneNumber: "car_phone_number",
    C.PagerNumber: "pager_number",
    C.RadioPhoneNumber: "radio_phone_number",
    C2.MMS: "mms",
    C.BusinessAddressStreet: "business_address_street",
    C.BusinessAddressCity: "business_address_city",
    C.BusinessAddressState: "business_address_state",
    C.BusinessAddressPostalCode: "business_address_postal_code",
    C.BusinessAddressCountry: "business_address_country",
    C.HomeAddressStreet: "home_address_street",
    C.HomeAddressCity: "home_address_city",
    C.HomeAddressState: "home_address_state",
    C.HomeAddressPostalCode: "home_address_postal_code",
    C.HomeAddressCountry: "home_address_country",
    C.OtherAddressStreet: "other_address_street",
    C.OtherAddressCity: "other_address_city",
    C.OtherAddressState: "other_address_state",
    C.OtherAddressPostalCode: "other_address_postal_code",
    C.OtherAddressCountry: "other_address_country",
    C.WebPage: "web_page",
    C2.CustomerId: "customer_id",
    C2.GovernmentId: "government_id",
    C2.AccountName: "account_name",
}

# MS-ASCNTC 2.2.2.58: at most 48 KB of base64; a device that sends more gets status 6, a
# larger stored photo is not sent.
MAX_PICTURE_BASE64 = 48 * 1024
_BODY_25 = (C.Body, C.BodySize, C.BodyTruncated)


def write(w: Writer, contact: Contact, version: Version, options: dict[str, Any]) -> None:
    """The ApplicationData children of ``contact`` for ``version``: every non-empty
    property, the body as the options ask (AirSyncBase from 12.0, the page's own in 2.5).
    FileAs is always sent (``file_as_of``): clients show and sort by it."""
    leaf = w.leaf
    file_as = file_as_of(contact)
    if file_as:
        leaf(C.FileAs, file_as)
    for tag, name in _TEXT_FIELDS.items():
        value = getattr(contact, name)
        if value and tag != C.FileAs:
            leaf(tag, value)
    if contact.birthday is not None:
        leaf(C.Birthday, format_date(contact.birthday))
    if contact.anniversary is not None:
        leaf(C.Anniversary, format_date(contact.anniversary))
    pim.write_strings(w, C.Children, C.Child, contact.children)
    pim.write_strings(w, C.Categories, C.Category, contact.categories)
    if contact.picture and (len(contact.picture) + 2) // 3 * 4 <= MAX_PICTURE_BASE64:  # its base64 length
        leaf(C.Picture, base64.b64encode(contact.picture).decode("ascii"))
    if pim.has(C.Alias, version):
        if contact.alias:
            leaf(C.Alias, contact.alias)
        if contact.weighted_rank is not None:
            leaf(C.WeightedRank, max(0, contact.weighted_rank))
    if pim.has(AirSyncBase.Body, version):
        write_item_body(w, contact.body, None, options, version)
    else:
        pim.write_body_25(w, contact.body, options, _BODY_25)


def parse(node: Node, version: Version) -> Contact:
    """The contact a device's ApplicationData describes (Add, Change). Alias and
    WeightedRank are the server's and ignored; an empty Picture means none."""
    contact = Contact()
    pim.parse_fields(node, contact, _PARSERS, _NAMES)
    for child in node.children:
        if child.tag == AirSyncBase.Body and pim.has(AirSyncBase.Body, version):
            contact.body = pim.parse_body(child)[0]
        elif child.tag == C.Body and not pim.has(AirSyncBase.Body, version):
            contact.body = pim.text(child, pim.MAX_BODY)
    contact.sent = pim.sent_fields(node, ATTRIBUTES)
    return contact


def merge_change(old: Contact, new: Contact, ghosted: Collection[int] | None = None, *,
                 keep_body: bool = False) -> Contact:
    """The contact after a device's Change: ``new`` (from ``parse``) with ``old``'s value
    for each ghosted element it leaves out (None: every element) and, with ``keep_body``
    (a truncated body echoed), ``old``'s body. Alias and WeightedRank stay the server's."""
    merged = pim.merge(old, new, ATTRIBUTES, ghosted, keep_body)
    merged.alias, merged.weighted_rank = old.alias, old.weighted_rank
    return merged


def file_as_of(contact: Contact) -> str:
    """The contact's FileAs, else what Outlook files a contact as: "Last, First",
    else the name, company or first e-mail address there is (Thunderbird's TbSync shows
    FileAs as the display name, blank when a server leaves it out)."""
    c = contact
    if c.file_as:
        return c.file_as
    if c.last_name and c.first_name:
        return f"{c.last_name}, {c.first_name}"
    return (c.last_name or c.first_name or c.middle_name or c.company_name or c.email1_address or c.email2_address
            or c.email3_address or c.nick_name)


# A device's address with a display name ("Hans Muster" <hans@example.com>, as Android
# sends it): only the address is kept, as in any address book.
_NAMED_ADDRESS = re.compile(r'^\s*(?:"[^"]*"|[^"<>]*)\s*<([^<>@\s]+@[^<>\s]+)>\s*$')


def _address(node: Node) -> str:
    value = pim.text(node)
    m = _NAMED_ADDRESS.match(value)
    return m.group(1) if m else value


def _picture(node: Node) -> bytes | None:
    value = pim.text(node, MAX_PICTURE_BASE64 + 4096)  # room for line breaks some devices add
    compact = "".join(value.split())
    if not compact:
        return None
    if len(compact) > MAX_PICTURE_BASE64:
        raise pim.bad(f"Picture is over {MAX_PICTURE_BASE64} bytes of base64")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise pim.bad("Picture is not base64") from None


def _day(node: Node) -> datetime:
    """Birthday and Anniversary (MS-ASCNTC 2.2.2.6, 2.2.2.2): only the date counts, and
    devices send their local midnight in UTC (1980-04-14T22:00Z for the 15th at UTC+2,
    1980-04-15T05:00Z at UTC-5). The nearest UTC midnight is that date for every zone
    from UTC-11 to UTC+12 (BlackBerry's local noon only east of UTC)."""
    value = pim.date(node)
    midnight = value.replace(hour=0, minute=0, second=0, microsecond=0)
    if value - midnight < timedelta(hours=12) or midnight.date() == date.max:
        return midnight
    return midnight + timedelta(days=1)


_PARSERS: dict[int, Callable[[Node], Any]] = {tag: pim.text for tag in _TEXT_FIELDS}
_PARSERS.update({
    C.Email1Address: _address,
    C.Email2Address: _address,
    C.Email3Address: _address,
    C.Birthday: _day,
    C.Anniversary: _day,
    C.Children: lambda n: pim.strings(n, C.Child),
    C.Categories: lambda n: pim.strings(n, C.Category, pim.MAX_CATEGORY),
    C.Picture: _picture,
})
_NAMES: dict[int, str] = {
    **_TEXT_FIELDS, C.Birthday: "birthday", C.Anniversary: "anniversary", C.Children: "children",
    C.Categories: "categories", C.Picture: "picture",
}
# The fields each element carries (for ``sent``, ``merge_change`` and Supported).
ATTRIBUTES: dict[int, tuple[str, ...]] = {
    **{tag: (name,) for tag, name in _NAMES.items()}, C.Body: ("body",), AirSyncBase.Body: ("body",),
}
