"""Contacts as vCards, for the reference store and for import and export.

``to_vcard`` writes vCard 4.0 (RFC 6350): the store is its own reader, and 4.0 has
standard properties for what 3.0 needed extensions for (ANNIVERSARY, RELATED spouse and
child, PHOTO as a data: URI, UTF-8 only, no CHARSET/ENCODING parameters). ``from_vcard``
and ``read_vcards`` read 2.1, 3.0 and 4.0 as phones, Google, Outlook and CardDAV servers
export them: folded lines, QUOTED-PRINTABLE with its soft line breaks and CHARSET (2.1),
bare 2.1 type parameters (``TEL;CELL``), grouped properties (``item1.TEL``), inline
base64 photos and data: URIs, and the common X- properties of Apple, Android, Outlook
and Evolution. Values are read without surrounding blanks; control characters (which
WBXML cannot carry to a device) become U+FFFD both ways.

The EAS fields without a vCard property go out as ``X-EAS-...`` properties. A contact
has fixed slots (three e-mail addresses, two home phones, ...): what a card has beyond
them is not kept. No library is used: vobject (the maintained one on PyPI) fails on
2.1 quoted-printable soft line breaks and splits 4.0 data: URIs at their comma.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from collections.abc import Iterator
from datetime import UTC, datetime

from eas.items.contacts import Contact

__all__ = ["VCardError", "display_name", "from_vcard", "read_vcards", "to_vcard"]


class VCardError(ValueError):
    """The text is not a vCard (no BEGIN:VCARD ... END:VCARD)."""


# A birthday without a year (``--0415``) is given this year, as Apple's apps do: EAS
# dates always have one.
NO_YEAR = 1604

# -- Writing ---------------------------------------------------------------------------------

# Fields with no vCard property: X-EAS-<NAME>.
_X_FIELDS: dict[str, str] = {
    "X-EAS-FILE-AS": "file_as",
    "X-EAS-OFFICE-LOCATION": "office_location",
    "X-EAS-CUSTOMER-ID": "customer_id",
    "X-EAS-GOVERNMENT-ID": "government_id",
    "X-EAS-ACCOUNT-NAME": "account_name",
    "X-EAS-ALIAS": "alias",
    "X-MANAGER": "manager_name",
    "X-ASSISTANT": "assistant_name",
    "X-PHONETIC-FIRST-NAME": "yomi_first_name",  # Apple and Android write these three
    "X-PHONETIC-LAST-NAME": "yomi_last_name",
    "X-PHONETIC-ORG": "yomi_company_name",
}

# Phone fields and the TYPE values they are written with.
_PHONES: tuple[tuple[str, str], ...] = (
    ("mobile_phone_number", "cell"),
    ("business_phone_number", "work,voice"),
    ("business2_phone_number", "work,voice"),
    ("business_fax_number", "work,fax"),
    ("company_main_phone", "work,main"),
    ("home_phone_number", "home,voice"),
    ("home2_phone_number", "home,voice"),
    ("home_fax_number", "home,fax"),
    ("car_phone_number", "car"),
    ("pager_number", "pager"),
    ("radio_phone_number", "x-radio"),
    ("assistant_phone_number", "x-assistant"),
    ("mms", "x-mms"),
)

_ADDRESSES = (("business", "work"), ("home", "home"), ("other", ""))


# What a WBXML string cannot carry (NUL, lone surrogates) and other control characters:
# a contact holding one could not be sent to a device, so cards never hold them.
_UNSENDABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def _clean(value: str) -> str:
    return _UNSENDABLE.sub("\ufffd", value) if _UNSENDABLE.search(value) else value


def _escape(value: str) -> str:
    """RFC 6350 3.4; a bare CR becomes a line break too, so no value can end its line."""
    value = _clean(value)
    return (value.replace("\\", "\\\\").replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
            .replace(",", "\\,").replace(";", "\\;"))


def _fold(line: str) -> str:
    """RFC 6350 3.2: lines of at most 75 octets, continued after CRLF and a space; never
    inside a UTF-8 sequence."""
    if line.isascii():
        if len(line) <= 75:
            return line
        return "\r\n ".join([line[:75], *(line[i:i + 74] for i in range(75, len(line), 74))])
    if len(line.encode("utf-8")) <= 75:
        return line
    parts: list[str] = []
    current = ""
    size = 0
    limit = 75
    for char in line:
        n = len(char.encode("utf-8", "surrogatepass"))
        if size + n > limit:
            parts.append(current)
            current, size, limit = "", 0, 74  # the leading space counts
        current += char
        size += n
    parts.append(current)
    return "\r\n ".join(parts)


def _date(value: datetime) -> str:
    value = value.astimezone(UTC) if value.tzinfo is not None else value
    if (value.hour, value.minute, value.second) == (0, 0, 0):
        return f"{value.year:04d}{value.month:02d}{value.day:02d}"
    return f"{value.year:04d}{value.month:02d}{value.day:02d}T{value.hour:02d}{value.minute:02d}{value.second:02d}Z"


def to_vcard(contact: Contact) -> str:
    """The contact as one vCard 4.0, CRLF line ends, folded."""
    c = contact
    lines = ["BEGIN:VCARD", "VERSION:4.0"]

    def add(name: str, value: str) -> None:
        lines.append(_fold(f"{name}:{value}"))

    if c.uid:
        add("UID", _escape(c.uid))
    add("FN", _escape(display_name(c)))
    add("N", ";".join(_escape(v) for v in (c.last_name, c.first_name, c.middle_name, c.title, c.suffix)))
    if c.nick_name:
        add("NICKNAME", _escape(c.nick_name))
    if c.company_name or c.department:
        add("ORG", f"{_escape(c.company_name)};{_escape(c.department)}" if c.department else _escape(c.company_name))
    if c.job_title:
        add("TITLE", _escape(c.job_title))
    for i, address in enumerate((c.email1_address, c.email2_address, c.email3_address)):
        if address:
            add(f"EMAIL;PREF={i + 1}", _escape(address))
    for name, types in _PHONES:
        value = getattr(c, name)
        if value:
            add(f'TEL;TYPE="{types}"' if "," in types else f"TEL;TYPE={types}", _escape(value))
    for prefix, kind in _ADDRESSES:
        parts = [getattr(c, f"{prefix}_address_{k}") for k in ("street", "city", "state", "postal_code", "country")]
        if any(parts):
            add(f"ADR;TYPE={kind}" if kind else "ADR", ";".join(["", "", *(_escape(p) for p in parts)]))
    for value in (c.im_address, c.im_address2, c.im_address3):
        if value:
            add("IMPP", _escape(value))
    if c.web_page:
        add("URL", _escape(c.web_page))
    if c.birthday is not None:
        add("BDAY", _date(c.birthday))
    if c.anniversary is not None:
        add("ANNIVERSARY", _date(c.anniversary))
    if c.spouse:
        add("RELATED;TYPE=spouse;VALUE=text", _escape(c.spouse))
    for child in c.children:
        add("RELATED;TYPE=child;VALUE=text", _escape(child))
    for name, field in _X_FIELDS.items():
        value = getattr(c, field)
        if value:
            add(name, _escape(value))
    if c.weighted_rank is not None:
        add("X-EAS-WEIGHTED-RANK", str(c.weighted_rank))
    if c.categories:
        add("CATEGORIES", ",".join(_escape(v) for v in c.categories))
    if c.body:
        add("NOTE", _escape(c.body))
    if c.picture:
        add("PHOTO", "data:image/jpeg;base64," + base64.b64encode(c.picture).decode("ascii"))
    lines.append("END:VCARD")
    return "\r\n".join(lines) + "\r\n"


def display_name(c: Contact) -> str:
    """What FN (required in every vCard) says: the name, else FileAs, company or e-mail."""
    name = " ".join(p for p in (c.title, c.first_name, c.middle_name, c.last_name, c.suffix) if p)
    return (name or c.file_as or c.company_name or c.email1_address or c.email2_address or c.email3_address
            or c.nick_name)


# -- Reading ---------------------------------------------------------------------------------

_GROUP_NAME = re.compile(r"^(?:([A-Za-z0-9-]+)\.)?([A-Za-z0-9-]+)$")


class _Property:
    __slots__ = ("group", "name", "params", "types", "value")

    def __init__(self, group: str, name: str, params: dict[str, str], types: set[str], value: str) -> None:
        self.group = group
        self.name = name
        self.params = params
        self.types = types
        self.value = value


def read_vcards(text: str) -> list[Contact]:
    """Every card of a file (an export of a whole address book). Text outside the cards is
    ignored; a file without a card gives an empty list."""
    return [_contact(_properties(lines)) for lines in _cards(text)]


def from_vcard(text: str) -> Contact:
    """The first card of ``text``; ``VCardError`` if there is none."""
    for lines in _cards(text):
        return _contact(_properties(lines))
    raise VCardError("no BEGIN:VCARD ... END:VCARD")


def _cards(text: str) -> Iterator[list[str]]:
    """The lines between each BEGIN:VCARD and its END:VCARD; a BEGIN inside a card starts
    it again (2.1 AGENT cards are not read)."""
    body: list[str] | None = None
    for line in _clean(text.replace("\r\n", "\n").replace("\r", "\n")).split("\n"):
        if line[:1] in "BbEe" and line:
            word = line.strip().upper()
            if word == "BEGIN:VCARD":
                body = []
                continue
            if word == "END:VCARD" and body is not None:
                yield body
                body = None
                continue
        if body is not None:
            body.append(line)


def _logical_lines(lines: list[str]) -> Iterator[str]:
    """Unfolded lines: a line starting with a space or tab continues the one before
    (RFC 6350 3.2, RFC 2425 5.8.1); a quoted-printable line ending in ``=`` continues
    on the next line (vCard 2.1 soft line break, kept as ``=`` and a line break for
    quopri)."""
    current: list[str] = []
    for line in lines:
        if current and line[:1] in (" ", "\t"):
            current.append(line[1:])
        elif current and current[-1].endswith("=") and _is_qp(current[0]):
            current += ("\n", line)
        else:
            if current:
                yield "".join(current)
            current = [line] if line else []
    if current:
        yield "".join(current)


def _is_qp(line: str) -> bool:
    head = line.split(":", 1)[0].upper()
    return "QUOTED-PRINTABLE" in head


def _split_unquoted(text: str, sep: str) -> list[str]:
    if '"' not in text:
        return text.split(sep)
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char == sep and not quoted:
            out.append("".join(current))
            current = []
            continue
        current.append(char)
    out.append("".join(current))
    return out


def _parse_line(line: str) -> _Property | None:
    head_end = _colon(line)
    if head_end < 0:
        return None
    head, value = line[:head_end], line[head_end + 1:]
    pieces = _split_unquoted(head, ";")
    m = _GROUP_NAME.match(pieces[0].strip())
    if m is None:
        return None
    params: dict[str, str] = {}
    types: set[str] = set()
    for piece in pieces[1:]:
        key, eq, pvalue = piece.partition("=")
        key = key.strip().upper()
        if not eq:  # vCard 2.1: a bare type (TEL;CELL;VOICE) or encoding (;QUOTED-PRINTABLE)
            if key in ("QUOTED-PRINTABLE", "BASE64", "B", "8BIT"):
                params["ENCODING"] = key
            else:
                types.add(key.lower())
            continue
        pvalue = pvalue.strip()
        if key == "TYPE":
            for t in _split_unquoted(pvalue, ","):
                types.update(x.strip().strip('"').lower() for x in t.split(",") if x.strip().strip('"'))
        else:
            params[key] = pvalue.strip('"')
    group, name = (m.group(1) or "").lower(), m.group(2).upper()
    return _Property(group, name, params, types, _decode_value(value, params))


def _colon(line: str) -> int:
    """Where the value starts: the first colon outside a quoted parameter value."""
    colon = line.find(":")
    quote = line.find('"')
    if quote < 0 or colon < quote:
        return colon
    quoted = False
    for i, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return i
    return -1


def _decode_value(value: str, params: dict[str, str]) -> str:
    """The value with its transfer encoding undone: quoted-printable in the CHARSET named
    (UTF-8 when none, Latin-1 when the bytes are not what it names)."""
    if params.get("ENCODING", "").upper() != "QUOTED-PRINTABLE":
        return value
    raw = quopri.decodestring(value.encode("utf-8", "surrogateescape"))
    charset = params.get("CHARSET", "utf-8")
    try:
        return _clean(raw.decode(charset))
    except (LookupError, UnicodeDecodeError):
        return _clean(raw.decode("latin-1"))


def _properties(lines: list[str]) -> list[_Property]:
    """The card's properties; Apple's labels (``item1.X-ABLabel:_$!<Spouse>!$_``) are
    added to the types of the properties of their group."""
    out: list[_Property] = []
    labels: dict[str, str] = {}
    for line in _logical_lines(lines):
        prop = _parse_line(line)
        if prop is None:
            continue
        if prop.name == "X-ABLABEL" and prop.group:
            labels[prop.group] = _unescape(prop.value).strip().lower()
        else:
            out.append(prop)
    for prop in out:
        if prop.group in labels:
            prop.types.add(labels[prop.group])
    return out


def _unescape(value: str) -> str:
    """A text value with RFC 6350 3.4 escapes undone."""
    if "\\" not in value:
        return value
    out: list[str] = []
    chars = iter(value)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            out.append("\n" if nxt in ("n", "N") else nxt)
        else:
            out.append(char)
    return "".join(out)


def _split(value: str, sep: str) -> list[str]:
    """The components of a structured value (N, ADR, ORG) or a list (CATEGORIES), split
    at unescaped separators, each unescaped."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in value:
        if escaped:
            current.append("\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [_unescape(p) for p in parts]


def _parse_vcard_date(value: str) -> datetime | None:
    """BDAY/ANNIVERSARY as 4.0 (``19800415``, ``--0415``, ``19800415T220000Z``) or 3.0
    (``1980-04-15``, ``1980-04-15T22:00:00Z``) write them; None for anything else."""
    text = value.strip()
    if text.startswith("--"):
        digits = text[2:].replace("-", "")
        if len(digits) == 4 and digits.isdigit():
            text = f"{NO_YEAR}{digits}"
        else:
            return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        compact = text.replace("-", "").replace(":", "")
        try:
            parsed = datetime.strptime(compact[:8], "%Y%m%d")
            if len(compact) > 8 and compact[8] == "T":
                parsed = datetime.strptime(compact[:15], "%Y%m%dT%H%M%S")
        except ValueError:
            return None
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:  # an offset that leaves years 1-9999
        return None


def _photo(prop: _Property) -> bytes | None:
    value = prop.value.strip()
    if value.lower().startswith("data:"):
        header, _, data = value.partition(",")
        if ";base64" not in header.lower():
            return None
        value = data
    elif prop.params.get("ENCODING", "").upper() not in ("B", "BASE64"):
        return None  # a URL: not fetched
    try:
        return base64.b64decode("".join(value.split()), validate=True) or None
    except (binascii.Error, ValueError):
        return None


# Which phone slot a TEL with these types fills, in order; the first slot still free.
_TEL_SLOTS: tuple[tuple[frozenset[str], tuple[str, ...]], ...] = (
    (frozenset({"fax", "work"}), ("business_fax_number",)),
    (frozenset({"fax"}), ("home_fax_number", "business_fax_number")),
    (frozenset({"cell"}), ("mobile_phone_number",)),
    (frozenset({"mobile"}), ("mobile_phone_number",)),
    (frozenset({"iphone"}), ("mobile_phone_number",)),
    (frozenset({"pager"}), ("pager_number",)),
    (frozenset({"car"}), ("car_phone_number",)),
    (frozenset({"main"}), ("company_main_phone",)),
    (frozenset({"x-company-main"}), ("company_main_phone",)),
    (frozenset({"company"}), ("company_main_phone",)),  # Outlook: X-MS-TEL;VOICE;COMPANY
    (frozenset({"x-assistant"}), ("assistant_phone_number",)),
    (frozenset({"assistant"}), ("assistant_phone_number",)),
    (frozenset({"x-radio"}), ("radio_phone_number",)),
    (frozenset({"radio"}), ("radio_phone_number",)),
    (frozenset({"x-mms"}), ("mms",)),
    (frozenset({"msg"}), ("mms",)),
    (frozenset({"work"}), ("business_phone_number", "business2_phone_number")),
    (frozenset({"home"}), ("home_phone_number", "home2_phone_number")),
    (frozenset(), ("home_phone_number", "home2_phone_number", "business_phone_number", "business2_phone_number")),
)

_IM_X = ("X-MS-IMADDRESS", "X-AIM", "X-ICQ", "X-JABBER", "X-MSN", "X-YAHOO", "X-SKYPE", "X-SKYPE-USERNAME", "X-GOOGLE-TALK",
         "X-GADUGADU", "X-QQ", "X-TWITTER")
_X_ALIASES: dict[str, str] = {
    "X-EVOLUTION-MANAGER": "manager_name", "X-MS-MANAGER": "manager_name",
    "X-KADDRESSBOOK-X-MANAGERSNAME": "manager_name",
    "X-EVOLUTION-ASSISTANT": "assistant_name", "X-MS-ASSISTANT": "assistant_name",
    "X-KADDRESSBOOK-X-ASSISTANTSNAME": "assistant_name",
    "X-EVOLUTION-SPOUSE": "spouse", "X-MS-SPOUSE": "spouse", "X-SPOUSE": "spouse",
    "X-KADDRESSBOOK-X-SPOUSENAME": "spouse",
    "X-EVOLUTION-FILE-AS": "file_as",
    "X-KADDRESSBOOK-X-OFFICE": "office_location",
}
_ANNIVERSARY_X = ("X-ANNIVERSARY", "X-EVOLUTION-ANNIVERSARY", "X-MS-ANNIVERSARY", "X-KADDRESSBOOK-X-ANNIVERSARY")


def _contact(props: list[_Property]) -> Contact:
    c = Contact()
    emails: list[tuple[int, int, str]] = []
    ims: list[str] = []
    fn = ""
    for index, p in enumerate(props):
        name = p.name
        if name == "N":
            parts = [*_split(p.value, ";"), "", "", "", "", ""]
            c.last_name, c.first_name, c.middle_name, c.title, c.suffix = (x.strip() for x in parts[:5])
        elif name == "FN":
            fn = _unescape(p.value).strip()
        elif name == "UID":
            c.uid = _unescape(p.value).strip()
        elif name == "NICKNAME":
            c.nick_name = c.nick_name or _split(p.value, ",")[0].strip()
        elif name == "ORG":
            parts = [*_split(p.value, ";"), ""]
            c.company_name, c.department = parts[0].strip(), parts[1].strip()
        elif name == "TITLE":
            c.job_title = _unescape(p.value).strip()
        elif name == "EMAIL":
            address = _unescape(p.value).strip()
            if address.lower().startswith("mailto:"):
                address = address[7:]
            if address:
                emails.append((_pref(p), index, address))
        elif name == "TEL" or name == "X-MS-TEL":
            _add_phone(c, p)
        elif name == "ADR":
            _add_address(c, p)
        elif name == "IMPP" or name in _IM_X:
            value = _unescape(p.value).strip()
            if value:
                ims.append(value)
        elif name == "URL":
            c.web_page = c.web_page or _unescape(p.value).strip()
        elif name == "BDAY":
            c.birthday = _parse_vcard_date(p.value)
        elif name == "ANNIVERSARY" or name in _ANNIVERSARY_X or (
                name == "X-ABDATE" and "_$!<anniversary>!$_" in p.types):
            c.anniversary = c.anniversary or _parse_vcard_date(p.value)
        elif name == "RELATED" or name == "X-ABRELATEDNAMES":
            _add_related(c, p)
        elif name == "CATEGORIES":
            c.categories += [v.strip() for v in _split(p.value, ",") if v.strip()]
        elif name == "NOTE":
            c.body = _unescape(p.value)
        elif name == "PHOTO":
            c.picture = c.picture or _photo(p)
        elif name == "X-EAS-WEIGHTED-RANK":
            value = p.value.strip()
            c.weighted_rank = int(value) if value.isascii() and value.isdigit() and len(value) < 10 else None
        elif name in _X_FIELDS or name in _X_ALIASES:
            field = _X_FIELDS.get(name) or _X_ALIASES[name]
            if not getattr(c, field):
                setattr(c, field, _unescape(p.value).strip())
    emails.sort()
    c.email1_address, c.email2_address, c.email3_address = ([e[2] for e in emails] + ["", "", ""])[:3]
    c.im_address, c.im_address2, c.im_address3 = (ims + ["", "", ""])[:3]
    if not (c.first_name or c.last_name or c.middle_name) and fn and fn != display_name(c):
        c.first_name = fn  # a card with only FN (some exports): keep the name somewhere visible
    return c


def _pref(p: _Property) -> int:
    pref = p.params.get("PREF", "")
    if pref.isdigit() and len(pref) < 4:
        return int(pref)
    return 1 if "pref" in p.types else 100


def _add_phone(c: Contact, p: _Property) -> None:
    value = _unescape(p.value).strip()
    if p.params.get("VALUE", "").lower() == "uri" and value.lower().startswith("tel:"):
        value = value[4:]  # 4.0 (RFC 3966); a 3.0 text value is kept as written
    if not value:
        return
    for types, slots in _TEL_SLOTS:
        if types <= p.types:
            for slot in slots:
                if not getattr(c, slot):
                    setattr(c, slot, value)
                    return
            if types:
                return  # its slots are full


def _add_address(c: Contact, p: _Property) -> None:
    parts = [*_split(p.value, ";"), "", "", "", "", "", "", ""]
    po_box, extended, street, city, region, postal, country = (x.strip() for x in parts[:7])
    street = "\n".join(x for x in (street, extended, po_box) if x)  # EAS has one street field
    prefix = "business" if "work" in p.types else "home" if "home" in p.types else "other"
    if any(getattr(c, f"{prefix}_address_{k}") for k in ("street", "city", "state", "postal_code", "country")):
        return  # the slot is taken: a contact has one address of each kind
    c_values = {"street": street, "city": city, "state": region, "postal_code": postal, "country": country}
    for key, value in c_values.items():
        setattr(c, f"{prefix}_address_{key}", value)


def _add_related(c: Contact, p: _Property) -> None:
    value = _unescape(p.value).strip()
    if not value:
        return
    if "spouse" in p.types or "_$!<spouse>!$_" in p.types:
        c.spouse = c.spouse or value
    elif "child" in p.types or "_$!<child>!$_" in p.types:
        c.children.append(value)
    elif "manager" in p.types or "_$!<manager>!$_" in p.types:
        c.manager_name = c.manager_name or value
    elif "assistant" in p.types or "_$!<assistant>!$_" in p.types:
        c.assistant_name = c.assistant_name or value
