"""ResolveRecipients (MS-ASCMD 2.2.1.15): each ``To`` (an address, a name or a part of
one) looked up in the address lists the user may search and in the user's own contacts
(``Backend.search_directory(contacts=True)``), with, for each recipient found, its S/MIME
certificates, its free/busy (14.0+) and its picture (14.1+) when the Options ask.

Resolution: an address resolves to the entry with exactly that address; a name to the
one entry whose name or alias is exactly it, else to the only entry containing it; more
entries make it ambiguous (Status 2, all of them as suggestions; 3, only the first
MaxAmbiguousRecipients, RecipientCount the total); none, Status 4. Recipient Type 1 is a
GAL entry, 2 a contact.

Options: CertificateRetrieval (1 none, 2 full certificates, 3 mini certificates: this
server has no mini form, so the full DER goes in MiniCertificate), MaxCertificates (over
the whole response; a recipient whose certificates no longer fit gets Certificates Status
8), MaxAmbiguousRecipients (0-9999, default 20), Availability StartTime/EndTime (EndTime
defaults to StartTime + 7 days; less than 30 minutes or more than 42 days is Status 5),
Picture MaxSize/MaxPictures.

MergedFreeBusy (2.2.3.107) has one digit per 30 minutes from StartTime, the span rounded
up: 0 free, 1 tentative, 2 busy, 3 out of office, 4 no data (an address this server
holds no calendar for); where periods overlap a slot the highest digit wins. The spec has
no digit for "working elsewhere" (BusyStatus 4): such time counts as free, the person
being at work and reachable.

Status (2.2.3.177.12): top 1 success, 5 protocol error (no To or more than 100, an
option out of range, a bad time span), 6 server error; Response 1-4 as above;
Certificates 1, 7 no valid certificate, 8 the MaxCertificates limit reached;
Availability 1, 162 free/busy could not be read; Picture 1, 173 none, 174 too large,
175 MaxPictures reached.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr

from eas.backend import BackendError, BusyPeriod, Person
from eas.commands import text
from eas.commands.search import PICTURE_OK, Pictures
from eas.context import Context
from eas.items.email import parse_date
from eas.protocol import status as st
from eas.protocol.errors import ProtocolError
from eas.protocol.http import HTTPResponse
from eas.tags import ResolveRecipients as RR
from eas.wbxml import Node, Writer

SUCCESS = 1
PROTOCOL_ERROR = 5
SERVER_ERROR = 6

RESOLVED = 1
AMBIGUOUS = 2
AMBIGUOUS_PARTIAL = 3
NOT_RESOLVED = 4

NO_VALID_CERTIFICATE = 7
CERTIFICATE_LIMIT = 8
FREE_BUSY_UNAVAILABLE = 162

TYPE_GAL = 1
TYPE_CONTACT = 2

MAX_TO = 100
MAX_TO_LENGTH = 256
DEFAULT_AMBIGUOUS = 20
SLOT = timedelta(minutes=30)
DEFAULT_SPAN = timedelta(days=7)
MAX_SPAN = timedelta(days=42)
_DIGITS = {1: "1", 2: "2", 3: "3"}  # BusyStatus -> MergedFreeBusy digit; the rest count as free
NO_DATA = "4"


class _Invalid(Exception):
    """The request cannot be answered: top-level Status 5."""


@dataclass(slots=True)
class _Options:
    certificates: int = 1  # CertificateRetrieval
    max_certificates: int | None = None
    max_ambiguous: int = DEFAULT_AMBIGUOUS
    span: tuple[datetime, datetime] | None = None
    pictures: Pictures | None = None
    certificates_left: int | None = None


async def handle(ctx: Context) -> HTTPResponse:
    """MS-ASCMD 2.2.1.15."""
    body = ctx.body
    if body is None or body.tag != RR.ResolveRecipients:
        raise ProtocolError("not a ResolveRecipients request", status=st.Common.InvalidXML)
    w = Writer()
    with w.tag(RR.ResolveRecipients):
        try:
            recipients = [text(n) for n in body.findall(RR.To)]
            if not 1 <= len(recipients) <= MAX_TO:
                raise _Invalid
            options = _options(ctx, body.find(RR.Options))
            answers = [await _lookup(ctx, to, options) for to in recipients]
        except _Invalid:
            w.leaf(RR.Status, PROTOCOL_ERROR)
        except BackendError:
            w.leaf(RR.Status, SERVER_ERROR)
        else:
            w.leaf(RR.Status, SUCCESS)
            for to, (status, total, people) in zip(recipients, answers, strict=True):
                with w.tag(RR.Response):
                    w.leaf(RR.To, to[:MAX_TO_LENGTH])
                    w.leaf(RR.Status, status)
                    w.leaf(RR.RecipientCount, total if status == AMBIGUOUS_PARTIAL else len(people))
                    for person in people:
                        await _write_recipient(ctx, w, person, options, resolved=status == RESOLVED)
    return ctx.respond(w)


def _number(node: Node | None, lo: int, hi: int) -> int | None:
    if node is None:
        return None
    value = text(node).strip()
    if not value.isascii() or not value.isdigit() or len(value) > 9 or not lo <= int(value) <= hi:
        raise _Invalid
    return int(value)


def _options(ctx: Context, node: Node | None) -> _Options:
    options = _Options()
    if node is None:
        return options
    options.certificates = _number(node.find(RR.CertificateRetrieval), 1, 3) or 1
    options.max_certificates = _number(node.find(RR.MaxCertificates), 0, 9999)
    options.certificates_left = options.max_certificates
    ambiguous = _number(node.find(RR.MaxAmbiguousRecipients), 0, 9999)
    options.max_ambiguous = DEFAULT_AMBIGUOUS if ambiguous is None else ambiguous
    availability = node.find(RR.Availability)
    if availability is not None and ctx.has(RR.Availability):
        options.span = _span(availability)
    picture = node.find(RR.Picture)
    if picture is not None and ctx.has(RR.Picture):
        try:
            options.pictures = Pictures.parse(picture, RR.MaxSize, RR.MaxPictures)
        except ProtocolError:
            raise _Invalid from None
    return options


def _span(node: Node) -> tuple[datetime, datetime]:
    """StartTime and EndTime of an Availability element (2.2.3.176.1, 2.2.3.61.1)."""
    try:
        start = parse_date(text(node.find(RR.StartTime)).strip())
        end_node = node.find(RR.EndTime)
        end = parse_date(text(end_node).strip()) if end_node is not None else start + DEFAULT_SPAN
    except ProtocolError:
        raise _Invalid from None
    if end < start + SLOT or end - start > MAX_SPAN:
        raise _Invalid
    return start, end


async def _lookup(ctx: Context, to: str, options: _Options) -> tuple[int, int, list[Person]]:
    """``(Response Status, number of entries found, the entries to write)``."""
    wanted = to.strip()
    if not wanted or len(wanted) > MAX_TO_LENGTH:
        return NOT_RESOLVED, 0, []
    address = parseaddr(wanted)[1] if "@" in wanted else ""
    found = await ctx.backend.search_directory(ctx.user, address or wanted, ctx.config.search_match_limit,
                                               contacts=True)
    if address:
        exact = [p for p in found if p.email.casefold() == address.casefold()]
        return (RESOLVED, 1, exact[:1]) if exact else (NOT_RESOLVED, 0, [])
    folded = wanted.casefold()
    exact = [p for p in found if folded in (p.display_name.casefold(), p.alias.casefold())]
    if len(exact) == 1:
        return RESOLVED, 1, exact
    if len(found) == 1:
        return RESOLVED, 1, found
    if not found:
        return NOT_RESOLVED, 0, []
    shown = found[:options.max_ambiguous]
    return (AMBIGUOUS if len(shown) == len(found) else AMBIGUOUS_PARTIAL), len(found), shown


async def _write_recipient(ctx: Context, w: Writer, person: Person, options: _Options, *, resolved: bool) -> None:
    with w.tag(RR.Recipient):
        w.leaf(RR.Type, TYPE_CONTACT if person.contact else TYPE_GAL)
        w.leaf(RR.DisplayName, person.display_name or person.email)
        w.leaf(RR.EmailAddress, person.email)
        if resolved and options.span is not None:
            await _write_availability(ctx, w, person, options.span)
        if resolved and options.certificates > 1:
            _write_certificates(w, person, options)
        if options.pictures is not None:
            status = options.pictures.status(person.picture)
            with w.tag(RR.Picture):
                w.leaf(RR.Status, status)
                if status == PICTURE_OK and person.picture:
                    w.opaque(RR.Data, person.picture)


async def _write_availability(ctx: Context, w: Writer, person: Person, span: tuple[datetime, datetime]) -> None:
    start, end = span
    try:
        periods = await ctx.backend.free_busy(ctx.user, person.email, start, end)
    except BackendError:
        with w.tag(RR.Availability):
            w.leaf(RR.Status, FREE_BUSY_UNAVAILABLE)
        return
    with w.tag(RR.Availability):
        w.leaf(RR.Status, SUCCESS)
        w.leaf(RR.MergedFreeBusy, merged_free_busy(start, end, periods))


def merged_free_busy(start: datetime, end: datetime, periods: list[BusyPeriod] | None) -> str:
    """One digit per 30 minutes from ``start`` (the span rounded up); ``periods`` None
    when the server has no calendar for the address (all "no data")."""
    slots = math.ceil((end - start) / SLOT)
    if periods is None:
        return NO_DATA * slots
    digits = ["0"] * slots
    for period in periods:
        digit = _DIGITS.get(period.status)
        p_start, p_end = max(period.start, start), min(period.end, end)
        if digit is None or p_end <= p_start:
            continue
        first = int((p_start - start) // SLOT)
        last = math.ceil((p_end - start) / SLOT)
        for slot in range(first, min(last, slots)):
            digits[slot] = max(digits[slot], digit)
    return "".join(digits)


def _write_certificates(w: Writer, person: Person, options: _Options) -> None:
    certificates = person.certificates
    left = options.certificates_left
    with w.tag(RR.Certificates):
        if not certificates:
            w.leaf(RR.Status, NO_VALID_CERTIFICATE)
            w.leaf(RR.CertificateCount, 0)
            return
        if left is not None and len(certificates) > left:
            w.leaf(RR.Status, CERTIFICATE_LIMIT)
            w.leaf(RR.CertificateCount, len(certificates))
            return
        if left is not None:
            options.certificates_left = left - len(certificates)
        w.leaf(RR.Status, SUCCESS)
        w.leaf(RR.CertificateCount, len(certificates))
        tag = RR.Certificate if options.certificates == 2 else RR.MiniCertificate
        for der in certificates:
            w.leaf(tag, base64.b64encode(der).decode("ascii"))
