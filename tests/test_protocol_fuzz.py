"""Structure-aware fuzzing of every command through the whole core: valid requests of
each command, mutated (text replaced by hostile values, elements dropped, repeated or
added from the same code page, opaque where text belongs), sent by a provisioned device
of a real app (reference store, SQLite state).

Whatever arrives, the server must answer with the protocol's status codes and no
unhandled error (nothing logged at ERROR), send nothing outside the negotiated version
(the test client checks every response), and keep the device's state usable: after the
run the same device re-synchronises from SyncKey 0 and gets every mail there is.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eas import tags
from eas.core import ActiveSync
from eas.items.calendar import Attendee, Calendar
from eas.items.contacts import Contact
from eas.items.notes import Note
from eas.items.tasks import Task
from eas.items.timezone import to_wire
from eas.protocol.http import HTTPRequest, HTTPResponse
from eas.store import ReferenceStore
from eas.tags import AirSync as A
from eas.tags import FolderHierarchy as FH
from eas.testing.client import Client, Reply
from eas.testing.harness import client, make_app
from eas.wbxml import Node, decode, encode, from_xml

pytestmark = pytest.mark.kernel_independent  # the server under test runs one kernel per pass anyway

MAIL = (b"From: Bob <bob@example.com>\r\nTo: alice@example.com\r\nSubject: fuzz {n}\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nbody {n}\r\n")
SEND_MIME = base64.b64encode(b"From: alice@example.com\r\nTo: bob@example.com\r\nSubject: hi\r\n\r\nhi\r\n").decode()
CERT = base64.b64encode(b"\x30\x82\x01\x0a\x02\x01\x01" + bytes(range(40))).decode()  # not a certificate
REPLY_MIME = base64.b64encode(b"To: bob@example.com\r\nSubject: re\r\n\r\nok\r\n").decode()


def _pim_sync(folder: str, data: str) -> str:
    """A Sync of a calendar, contacts, tasks or notes collection: an Add and a Change of
    full ApplicationData (the mutations go mostly into it) and a Fetch."""
    return ('<Sync xmlns="AirSync:" xmlns:b="AirSyncBase:" xmlns:c="Calendar:" xmlns:p="Contacts:" '
            'xmlns:t="Tasks:" xmlns:n="Notes:"><Collections><Collection>'
            f"<SyncKey>{{{folder}_key}}</SyncKey><CollectionId>{{{folder}}}</CollectionId>"
            "<GetChanges>1</GetChanges><WindowSize>50</WindowSize><Options><b:BodyPreference><b:Type>1</b:Type>"
            "</b:BodyPreference></Options><Commands>"
            f"<Add><ClientId>fuzz-{{n}}</ClientId><ApplicationData>{data}</ApplicationData></Add>"
            f"<Change><ServerId>{{{folder}_item}}</ServerId><ApplicationData>{data}</ApplicationData></Change>"
            f"<Fetch><ServerId>{{{folder}_item}}</ServerId></Fetch></Commands></Collection></Collections></Sync>")


TEMPLATES: dict[str, str] = {
    "FolderSync": '<FolderSync xmlns="FolderHierarchy:"><SyncKey>{fkey}</SyncKey></FolderSync>',
    "FolderCreate": ('<FolderCreate xmlns="FolderHierarchy:"><SyncKey>{fkey}</SyncKey><ParentId>0</ParentId>'
                     "<DisplayName>Fuzz</DisplayName><Type>12</Type></FolderCreate>"),
    "FolderUpdate": ('<FolderUpdate xmlns="FolderHierarchy:"><SyncKey>{fkey}</SyncKey><ServerId>{inbox}</ServerId>'
                     "<ParentId>0</ParentId><DisplayName>Renamed</DisplayName></FolderUpdate>"),
    "FolderDelete": ('<FolderDelete xmlns="FolderHierarchy:"><SyncKey>{fkey}</SyncKey><ServerId>{inbox}</ServerId>'
                     "</FolderDelete>"),
    "Sync": ('<Sync xmlns="AirSync:" xmlns:b="AirSyncBase:" xmlns:e="Email:"><Collections><Collection>'
             "<SyncKey>{skey}</SyncKey><CollectionId>{inbox}</CollectionId><DeletesAsMoves>1</DeletesAsMoves>"
             "<GetChanges>1</GetChanges><WindowSize>5</WindowSize><Options><FilterType>0</FilterType>"
             "<b:BodyPreference><b:Type>2</b:Type><b:TruncationSize>100</b:TruncationSize>"
             "<b:AllOrNone>0</b:AllOrNone></b:BodyPreference></Options><Commands>"
             "<Change><ServerId>{item}</ServerId><ApplicationData><e:Read>1</e:Read></ApplicationData></Change>"
             "<Fetch><ServerId>{item}</ServerId></Fetch></Commands></Collection></Collections>"
             "<HeartbeatInterval>1</HeartbeatInterval></Sync>"),
    "GetItemEstimate": ('<GetItemEstimate xmlns="GetItemEstimate:" xmlns:a="AirSync:"><Collections><Collection>'
                        "<a:SyncKey>{skey}</a:SyncKey><CollectionId>{inbox}</CollectionId>"
                        "<a:Options><a:FilterType>0</a:FilterType></a:Options></Collection></Collections>"
                        "</GetItemEstimate>"),
    "Ping": ('<Ping xmlns="Ping:"><HeartbeatInterval>1</HeartbeatInterval><Folders><Folder><Id>{inbox}</Id>'
             "<Class>Email</Class></Folder></Folders></Ping>"),
    "ItemOperations": ('<ItemOperations xmlns="ItemOperations:" xmlns:a="AirSync:" xmlns:b="AirSyncBase:">'
                       "<Fetch><Store>Mailbox</Store><a:CollectionId>{inbox}</a:CollectionId>"
                       "<a:ServerId>{item}</a:ServerId><Options><b:BodyPreference><b:Type>1</b:Type>"
                       "</b:BodyPreference></Options></Fetch></ItemOperations>"),
    "MoveItems": ('<MoveItems xmlns="Move:"><Move><SrcMsgId>{item}</SrcMsgId><SrcFldId>{inbox}</SrcFldId>'
                  "<DstFldId>{other}</DstFldId></Move></MoveItems>"),
    "SendMail": ('<SendMail xmlns="ComposeMail:"><ClientId>fuzz1</ClientId><SaveInSentItems/>'
                 "<Mime>{send_mime}</Mime></SendMail>"),
    "SmartReply": ('<SmartReply xmlns="ComposeMail:"><ClientId>fuzz2</ClientId><Source><FolderId>{inbox}</FolderId>'
                   "<ItemId>{item}</ItemId></Source><Mime>{reply_mime}</Mime></SmartReply>"),
    "Settings": ('<Settings xmlns="Settings:"><Oof><Get><BodyType>Text</BodyType></Get></Oof>'
                 "<UserInformation><Get/></UserInformation><DeviceInformation><Set><Model>X</Model>"
                 "</Set></DeviceInformation></Settings>"),
    "Provision": ('<Provision xmlns="Provision:"><Policies><Policy><PolicyType>MS-EAS-Provisioning-WBXML'
                  "</PolicyType><PolicyKey>{pkey}</PolicyKey><Status>1</Status></Policy></Policies></Provision>"),
    "Search/GAL": ('<Search xmlns="Search:"><Store><Name>GAL</Name><Query>bob</Query><Options><Range>0-9</Range>'
                   "<Picture><MaxSize>100</MaxSize><MaxPictures>2</MaxPictures></Picture></Options></Store></Search>"),
    "Search/Mailbox": ('<Search xmlns="Search:" xmlns:a="AirSync:"><Store><Name>Mailbox</Name><Query><And>'
                       "<a:Class>Email</a:Class><a:CollectionId>{inbox}</a:CollectionId><FreeText>fuzz</FreeText>"
                       "</And></Query><Options><Range>0-4</Range><DeepTraversal/><RebuildResults/></Options>"
                       "</Store></Search>"),
    "Find": ('<Find xmlns="Find:" xmlns:a="AirSync:"><SearchId>0f8fad5b-d9cb-469f-a165-70867728950e</SearchId>'
             "<ExecuteSearch><MailBoxSearchCriterion><Query><a:Class>Email</a:Class>"
             "<a:CollectionId>{inbox}</a:CollectionId><FreeText>fuzz</FreeText></Query><Options>"
             "<Range>0-9</Range><DeepTraversal/></Options></MailBoxSearchCriterion></ExecuteSearch></Find>"),
    "Find/GAL": ('<Find xmlns="Find:"><SearchId>0f8fad5b-d9cb-469f-a165-70867728950f</SearchId><ExecuteSearch>'
                 "<GalSearchCriterion><Query>bob</Query><Options><Range>0-9</Range></Options></GalSearchCriterion>"
                 "</ExecuteSearch></Find>"),
    "ResolveRecipients": ('<ResolveRecipients xmlns="ResolveRecipients:"><To>bob@example.com</To><To>bo</To><Options>'
                          "<CertificateRetrieval>2</CertificateRetrieval><MaxCertificates>3</MaxCertificates>"
                          "<MaxAmbiguousRecipients>2</MaxAmbiguousRecipients><Availability>"
                          "<StartTime>2030-01-01T00:00:00.000Z</StartTime><EndTime>2030-01-01T05:00:00.000Z</EndTime>"
                          "</Availability><Picture><MaxSize>100</MaxSize></Picture></Options></ResolveRecipients>"),
    "MeetingResponse": ('<MeetingResponse xmlns="MeetingResponse:"><Request><UserResponse>1</UserResponse>'
                        "<CollectionId>{calendar}</CollectionId><RequestId>{calendar_item}</RequestId></Request>"
                        "</MeetingResponse>"),
    "ValidateCert": ('<ValidateCert xmlns="ValidateCert:"><CertificateChain><Certificate>{cert}</Certificate>'
                     "</CertificateChain><Certificates><Certificate>{cert}</Certificate></Certificates>"
                     "<CheckCRL>1</CheckCRL></ValidateCert>"),
    "Sync/Calendar": _pim_sync("calendar", (
        "<c:Timezone>{utc_zone}</c:Timezone><c:AllDayEvent>0</c:AllDayEvent><c:StartTime>20300107T090000Z"
        "</c:StartTime><c:EndTime>20300107T100000Z</c:EndTime><c:Subject>Fuzz</c:Subject><c:UID>fuzz-{n}</c:UID>"
        "<c:BusyStatus>2</c:BusyStatus><c:Sensitivity>0</c:Sensitivity><c:Reminder>15</c:Reminder>"
        "<c:MeetingStatus>1</c:MeetingStatus><c:Attendees><c:Attendee><c:Email>bob@example.com</c:Email>"
        "<c:Name>Bob</c:Name><c:AttendeeType>1</c:AttendeeType></c:Attendee></c:Attendees><c:Recurrence>"
        "<c:Type>1</c:Type><c:Interval>1</c:Interval><c:DayOfWeek>2</c:DayOfWeek><c:Occurrences>5</c:Occurrences>"
        "</c:Recurrence><c:Exceptions><c:Exception>{exception_start}<c:Deleted>1</c:Deleted></c:Exception></c:Exceptions><c:Categories><c:Category>Work</c:Category>"
        "</c:Categories><b:Body><b:Type>1</b:Type><b:Data>agenda</b:Data></b:Body>")),
    "Sync/Contacts": _pim_sync("contacts", (
        "<p:FirstName>Ada</p:FirstName><p:LastName>Lovelace</p:LastName><p:Email1Address>ada@example.org"
        "</p:Email1Address><p:Birthday>1815-12-10T00:00:00.000Z</p:Birthday><p:MobilePhoneNumber>+44 1"
        "</p:MobilePhoneNumber><p:HomeAddressStreet>1 Road</p:HomeAddressStreet><p:Children><p:Child>Byron"
        "</p:Child></p:Children><p:Categories><p:Category>Friends</p:Category></p:Categories>"
        "<p:Picture>/9j/4AAQ</p:Picture><b:Body><b:Type>1</b:Type><b:Data>note</b:Data></b:Body>")),
    "Sync/Tasks": _pim_sync("tasks", (
        "<t:Subject>Report</t:Subject><t:Importance>2</t:Importance><t:UtcStartDate>2030-01-01T00:00:00.000Z"
        "</t:UtcStartDate><t:StartDate>2030-01-01T00:00:00.000Z</t:StartDate><t:UtcDueDate>2030-01-02T00:00:00.000Z"
        "</t:UtcDueDate><t:DueDate>2030-01-02T00:00:00.000Z</t:DueDate><t:Complete>0</t:Complete>"
        "<t:ReminderSet>1</t:ReminderSet><t:ReminderTime>2030-01-01T08:00:00.000Z</t:ReminderTime>"
        "<t:Recurrence><t:Type>1</t:Type><t:Start>2030-01-01T00:00:00.000Z</t:Start><t:Interval>1</t:Interval>"
        "<t:DayOfWeek>2</t:DayOfWeek></t:Recurrence><b:Body><b:Type>1</b:Type><b:Data>due</b:Data></b:Body>")),
    "Sync/Notes": _pim_sync("notes", (
        "<n:Subject>Ideas</n:Subject><n:MessageClass>IPM.StickyNote</n:MessageClass><n:Categories>"
        "<n:Category>Blue</n:Category></n:Categories><b:Body><b:Type>1</b:Type><b:Data>more</b:Data></b:Body>")),
}
HOSTILE = ["", "0", "1", "-1", "2147483648", "99999999999999999999", "abc", "1:1", "{inbox}:999999", "9999:1",
           "{inbox}:", ":1", "\x01", "é" * 300, "../../etc/passwd", "%00", "1e9", " 1 ", "0x10", "<x/>"]


class _Mutator:
    """Mutations of a request tree, drawn by hypothesis."""

    def __init__(self, draw: st.DrawFn, values: dict[str, str]) -> None:
        self.draw, self.values = draw, values

    def nodes(self, root: Node) -> list[tuple[Node | None, Node]]:
        out: list[tuple[Node | None, Node]] = [(None, root)]
        for parent, node in out:
            out.extend((node, child) for child in node.children)
        return out

    def mutate(self, root: Node) -> None:
        nodes = self.nodes(root)
        inside: list[tuple[Node | None, Node]] = [
            (p, n) for p, n in nodes if p is not None and _under(root, p, A.ApplicationData)]
        if inside and self.draw(st.booleans()):  # an item's fields are where the class codecs are
            nodes = inside
        parent, node = self.draw(st.sampled_from(nodes))
        op = self.draw(st.sampled_from(["text", "text", "drop", "repeat", "add", "opaque"]))
        if op == "text" and not node.children:
            node.text = self.draw(st.sampled_from(HOSTILE)).format(**self.values)
        elif op == "drop" and parent is not None:
            parent.children.remove(node)
        elif op == "repeat" and parent is not None:
            parent.children.append(Node(node.tag, node.text, list(node.children)))
        elif op == "add" and node.children:
            page = tags.PAGES[node.tag >> 8]
            info = self.draw(st.sampled_from(page.tags))
            node.children.insert(self.draw(st.integers(0, len(node.children))),
                                 Node(info.tag, self.draw(st.sampled_from(HOSTILE)).format(**self.values)))
        elif op == "opaque" and not node.children:
            node.text = self.draw(st.binary(max_size=8))


def _under(root: Node, node: Node, tag: int) -> bool:
    """Whether ``node`` is ``tag`` or lies inside one (a walk from the root)."""
    def walk(n: Node, inside: bool) -> bool:
        inside = inside or n.tag == tag
        return (n is node and inside) or any(walk(c, inside) for c in n.children)
    return walk(root, False)


@st.composite
def requests(draw: st.DrawFn, values: dict[str, dict[str, str]]) -> tuple[str, str, bytes]:
    """(label, version, body): ``values`` holds each version's device's ids and keys as
    they are now (the PIM sync keys move on with every successful Sync)."""
    label = draw(st.sampled_from(sorted(TEMPLATES)))
    version = draw(st.sampled_from(sorted(values)))
    ids = values[version]
    ids["n"] = str(int(ids.get("n", "0")) + 1)
    root = decode(from_xml(TEMPLATES[label].format(**ids)))
    mutator = _Mutator(draw, ids)
    for _ in range(draw(st.integers(0 if "/" in label else 1, 3))):
        mutator.mutate(root)
    return label, version, encode(root)


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


PIM = {"calendar": ("8", "Calendar"), "contacts": ("9", "Contacts"), "tasks": ("7", "Tasks"), "notes": ("10", "Notes")}


def _sync_xml(version: str, collection: str, key: str, klass: str = "Email") -> str:
    class_xml = f"<Class>{klass}</Class>" if version in ("2.5", "12.0", "12.1") else ""
    return (f'<Sync xmlns="AirSync:"><Collections><Collection>{class_xml}<SyncKey>{key}</SyncKey>'
            f"<CollectionId>{collection}</CollectionId><WindowSize>512</WindowSize></Collection></Collections></Sync>")


async def _settle(c: Client, collection: str, klass: str) -> tuple[str, list[str]]:
    """Sync a collection from SyncKey 0 to the end: its key and the ServerIds of its items."""
    r = await c.command("Sync", _sync_xml(c.version, collection, "0", klass))
    key = str(r.text(A.Collections, A.Collection, A.SyncKey))
    items: list[str] = []
    while True:
        r = await c.command("Sync", _sync_xml(c.version, collection, key, klass))
        node = r.node.find(A.Collections, A.Collection) if r.node is not None else None
        if node is None:
            return key, items  # nothing more (an empty response)
        assert node.findtext(A.Status) == "1", r.xml
        key = str(node.findtext(A.SyncKey))
        items += [str(a.findtext(A.ServerId)) for a in node.find(A.Commands) or [] if a.tag == A.Add]
        if node.find(A.MoreAvailable) is None:
            return key, items


async def _ready(app: object, version: str, device: str) -> tuple[Client, dict[str, str]]:
    c = client(app, version=version, device_id=device)  # type: ignore[arg-type]
    await c.provision()
    r = await c.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>')
    assert r.node is not None
    adds = r.node.find(FH.Changes).findall(FH.Add)  # type: ignore[union-attr]
    by_type = {a.findtext(FH.Type): str(a.findtext(FH.ServerId)) for a in adds}
    inbox, other = by_type["2"], by_type["4"]
    skey, items = await _settle(c, inbox, "Email")
    values = {"inbox": inbox, "other": other, "item": items[0], "fkey": str(r.text(FH.SyncKey)),
              "skey": skey, "pkey": str(c.policy_key), "send_mime": SEND_MIME, "reply_mime": REPLY_MIME,
              "cert": CERT, "utc_zone": to_wire("UTC"),
              "exception_start": ("<b:InstanceId>2030-01-14T09:00:00.000Z</b:InstanceId>" if version.startswith("16.")
                                  else "<c:ExceptionStartTime>20300114T090000Z</c:ExceptionStartTime>")}
    for name, (folder_type, klass) in PIM.items():
        collection = by_type[folder_type]
        values[name] = collection
        if klass == "Notes" and version in ("2.5", "12.0", "12.1"):
            values[f"{name}_key"], values[f"{name}_item"] = "1", f"{collection}:1"  # no Notes class yet
            continue
        key, pim_items = await _settle(c, collection, klass)
        values[f"{name}_key"], values[f"{name}_item"] = key, (pim_items or [f"{collection}:1"])[0]
    return c, values


def _follow(c: Client, values: dict[str, str], reply: Reply) -> None:
    """A Sync that succeeded moved its collection's key on: the next request uses it. One
    that refused the key (3) or the item (8) has the collection synced afresh, so that the
    next mutations reach the items' fields again."""
    if reply.node is None or reply.node.tag != A.Sync:
        return
    for collection in reply.node.find(A.Collections) or []:
        cid, key, status = (str(collection.findtext(A.CollectionId)), str(collection.findtext(A.SyncKey) or ""),
                            collection.findtext(A.Status))
        for name, (_, klass) in PIM.items():
            if cid != values[name] or (klass == "Notes" and c.version in ("2.5", "12.0", "12.1")):
                continue
            gone = any(r.findtext(A.Status) == "8" for r in collection.find(A.Responses) or [])
            if status == "3" or gone:
                key, items = asyncio.run(_settle(c, cid, klass))
                values[f"{name}_item"] = (items or [f"{cid}:1"])[0]
            if key and status in ("1", "3"):
                values[f"{name}_key"] = key


def _stock(store: ReferenceStore) -> None:
    """Mail, and an item of each class with a meeting among the events."""
    for n in range(6):
        store.deliver("alice@example.com", MAIL.replace(b"{n}", str(n).encode()))
    start = datetime(2030, 1, 7, 9, tzinfo=UTC)
    items: dict[str, Calendar | Contact | Task | Note] = {"Calendar": Calendar(subject="Planning", start=start, end=start + timedelta(hours=1),
                                  organizer_email="bob@example.com", organizer_name="Bob", meeting_status=3,
                                  attendees=[Attendee(email="alice@example.com", name="Alice")]),
             "Contacts": Contact(first_name="Bob", last_name="Brown", email1_address="bob@example.com"),
             "Tasks": Task(subject="Report", utc_due_date=start),
             "Notes": Note(subject="Ideas", body="more")}
    for folder, item in items.items():
        asyncio.run(store.add_item("alice@example.com", store.folder_id("alice@example.com", folder), item))


async def _resync(c: Client, store: ReferenceStore) -> None:
    """The device starts over and gets every item of every folder it syncs."""
    r = await c.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>')
    assert r.text(FH.Status) == "1", r.xml
    folders = {str(f.name): f for f in await store.folders("alice@example.com")}
    for add in r.node.find(FH.Changes).findall(FH.Add):  # type: ignore[union-attr]
        name, kind = str(add.findtext(FH.DisplayName)), str(add.findtext(FH.Type))
        klass = {"8": "Calendar", "9": "Contacts", "7": "Tasks", "10": "Notes", "2": "Email"}.get(kind)
        if klass is None or name not in folders or (klass == "Notes" and c.version in ("2.5", "12.0", "12.1")):
            continue
        _, items = await _settle(c, str(add.findtext(FH.ServerId)), klass)
        stored = await store.item_stamps("alice@example.com", folders[name].id)
        assert len(items) == len(stored), (c.version, name, len(items), len(stored))


def test_mutated_requests_get_protocol_answers_and_leave_state_usable() -> None:
    folder = Path(tempfile.mkdtemp(prefix="eas-fuzz-"))
    app, store = make_app(folder)
    app.config.min_heartbeat = 1  # long polls of Ping and Sync end within a second
    _stock(store)
    errors = _Errors()
    logging.getLogger("eas").addHandler(errors)
    devices: dict[str, tuple[Client, dict[str, str]]] = {}
    for version in ("2.5", "12.1", "14.1", "16.1"):
        devices[version] = asyncio.run(_ready(app, version, "Fuzz" + version.replace(".", "")))
    values = {version: ids for version, (_, ids) in devices.items()}
    seen: set[tuple[str, int]] = set()

    def exchange(label: str, version: str, body: bytes) -> Reply:
        command = label.partition("/")[0]
        c, ids = devices[version]
        reply = asyncio.run(c.raw(command, body))
        seen.add((label, reply.status))
        assert reply.status in (200, 400, 403, 449, 500, 501), (label, reply.status)
        if reply.status == 500:  # only where the protocol says so: legacy sends and attachments
            assert version in ("2.5", "12.1") and command in ("SendMail", "SmartReply"), (command, version)
        assert not errors.records, [r.getMessage() for r in errors.records]
        _follow(c, ids, reply)
        return reply

    @settings(max_examples=int(os.environ.get("EAS_FUZZ_EXAMPLES", "300")), deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(requests(values))
    def one(request: tuple[str, str, bytes]) -> None:
        exchange(*request)

    try:
        for version, ids in values.items():  # every request as written first: the items go in
            for label, template in TEMPLATES.items():
                ids["n"] = str(int(ids.get("n", "0")) + 1)
                reply = exchange(label, version, from_xml(template.format(**ids)))
                if label.startswith("Sync/") and version in ("14.1", "16.1"):
                    assert reply.text(A.Collections, A.Collection, A.Responses, A.Add, A.Status) == "1", (version, reply.xml)
        one()
    finally:
        logging.getLogger("eas").removeHandler(errors)
    for c, _ in devices.values():
        asyncio.run(_resync(c, store))


async def _autodiscover(app: ActiveSync, body: bytes) -> HTTPResponse:
    token = base64.b64encode(b"alice@example.com:alice-secret").decode()
    return await app.handle(HTTPRequest("POST", "/Autodiscover/Autodiscover.xml", "",
                                        [("authorization", f"Basic {token}"), ("content-type", "text/xml"),
                                         ("host", "mail.example.com")],
                                        body, "127.0.0.1"))


AUTODISCOVER = ('<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="http://schemas.microsoft.com/'
                'exchange/autodiscover/mobilesync/requestschema/2006"><Request><EMailAddress>alice@example.com'
                "</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/"
                "mobilesync/responseschema/2006</AcceptableResponseSchema></Request></Autodiscover>")


@st.composite
def autodiscover_bodies(draw: st.DrawFn) -> bytes:
    """The POX request with its text, tags or bytes mutated."""
    text = AUTODISCOVER
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["value", "cut", "insert", "bytes", "entity"]))
        if op == "value":
            old = draw(st.sampled_from(["alice@example.com", "Request", "EMailAddress", "2006</Accept", "utf-8",
                                        "Autodiscover"]))
            text = text.replace(old, draw(st.sampled_from(HOSTILE + ["x@y", "<", "&amp;", "]]>", "a" * 5000])), 1)
        elif op == "cut":
            at = draw(st.integers(0, len(text)))
            text = text[:at] + text[at + draw(st.integers(1, 40)):]
        elif op == "insert":
            at = draw(st.integers(0, len(text)))
            text = text[:at] + draw(st.text(max_size=20)) + text[at:]
        elif op == "entity":  # the billion laughs and external entities stay unexpanded
            text = text.replace('<?xml version="1.0" encoding="utf-8"?>', draw(st.sampled_from([
                '<!DOCTYPE a [<!ENTITY e "eeeeeeeeee"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">]>',
                '<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]>']))).replace(
                "alice@example.com</EMail", "&f;&x;</EMail")
    body = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        body = draw(st.binary(max_size=8)) + body[draw(st.integers(0, 20)):]
    return body


def test_mutated_autodiscover_bodies_get_answers() -> None:
    """Autodiscover POX requests, mutated: an XML answer (a response or an Error), never
    a server error, and the account still answers a good request afterwards."""
    from lxml import etree  # type: ignore[import-untyped]

    app, _ = make_app(Path(tempfile.mkdtemp(prefix="eas-fuzz-ad-")))
    errors = _Errors()
    logging.getLogger("eas").addHandler(errors)

    @settings(max_examples=int(os.environ.get("EAS_FUZZ_EXAMPLES", "300")), deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(autodiscover_bodies())
    def one(body: bytes) -> None:
        response = asyncio.run(_autodiscover(app, body))
        assert response.status in (200, 400, 401, 413), response.status
        if response.status == 200:
            etree.fromstring(response.body)  # well-formed XML
        assert b"/etc/passwd" not in response.body and b"root:" not in response.body
        assert not errors.records, [r.getMessage() for r in errors.records]

    try:
        one()
    finally:
        logging.getLogger("eas").removeHandler(errors)
    good = asyncio.run(_autodiscover(app, AUTODISCOVER.encode()))
    assert good.status == 200 and b"https://mail.example.com/Microsoft-Server-ActiveSync" in good.body, good.body


def test_opaque_ids_holding_nul_are_answered_not_crashed_on() -> None:
    """Found by the fuzz above: an id sent as opaque data holding NUL was echoed into the
    response, which WBXML strings cannot carry (an unhandled error, HTTP 500)."""
    from eas.tags import ItemOperations as IO
    from eas.tags import Move
    from eas.wbxml import Writer

    folder = Path(tempfile.mkdtemp(prefix="eas-fuzz-"))
    app, store = make_app(folder)
    store.deliver("alice@example.com", MAIL.replace(b"{n}", b"0"))

    async def scenario() -> None:
        c, ids = await _ready(app, "14.1", "NulDevice")
        w = Writer()
        with w.tag(IO.ItemOperations), w.tag(IO.Fetch):
            w.leaf(IO.Store, "Mailbox")
            w.leaf(A.CollectionId, ids["inbox"])
            w.opaque(A.ServerId, b"1:\x00")
        fetched = await c.raw("ItemOperations", w.getvalue())
        assert fetched.status == 200 and fetched.text(IO.Status) == "1"
        assert fetched.node is not None and fetched.node.find(IO.Response, IO.Fetch, IO.Status) is not None
        w = Writer()
        with w.tag(Move.MoveItems), w.tag(Move.Move):
            w.opaque(Move.SrcMsgId, b"\x00")
            w.leaf(Move.SrcFldId, ids["inbox"])
            w.leaf(Move.DstFldId, ids["other"])
        moved = await c.raw("MoveItems", w.getvalue())
        assert moved.status == 200 and moved.text(Move.Response, Move.Status) not in (None, "3")

    asyncio.run(scenario())
