"""The Contacts item class (MS-ASCNTC, with the Contacts2 code page) and its conversion to
and from nodes for every protocol version."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(slots=True)
class Contact:
    """A contact (MS-ASCNTC 2.2.2). Field names follow the protocol's element names in
    snake case; ``picture`` is the photo's bytes (JPEG), base64 on the wire; ``body`` is
    plain text. Birthday and anniversary are aware datetimes (the protocol sends them as
    UTC instants; clients use the date)."""

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
