"""Property: whatever items a mailbox holds, no response carries an element the negotiated
protocol version does not have (MS-ASWBXML gives each tag's versions), and every Status
in it is one the command defines (MS-ASCMD 2.2.3.177.x, 2.2.2 common codes).

Random events (recurring, with exceptions and attendees), contacts, tasks and notes
(the strategies of tests/test_*_item.py and tests/strategies.py) are stored through the
backend; a device of a random version 2.5..16.1 then reads them with Sync,
GetItemEstimate, ItemOperations Fetch, Search, ResolveRecipients, MeetingResponse, Find
and ValidateCert, wherever the version has the command and the class. The in-process
client checks every response for elements outside the version as well.

EAS_FUZZ_EXAMPLES sets the number of examples (default 40, a few seconds).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import random_notes
from test_calendar_item import events
from test_contact_item import random_contacts
from test_sync import ALICE, Device, cheap_scrypt, device
from test_task_item import random_tasks

from eas import tags
from eas.items import server_id as make_server_id
from eas.protocol.status import Common
from eas.protocol.versions import Version
from eas.tags import AirSync as A
from eas.tags import GetItemEstimate as G
from eas.tags import ItemOperations as IO
from eas.testing.client import Reply, elements_outside
from eas.testing.harness import make_app
from eas.wbxml import Node

__all__ = ["cheap_scrypt"]

VERSIONS = tags.VERSIONS
CLASSES = {  # class -> (folder, first version, strategy)
    "Calendar": ("Calendar", "2.5", events()),
    "Contacts": ("Contacts", "2.5", random_contacts()),
    "Tasks": ("Tasks", "2.5", random_tasks()),
    "Notes": ("Notes", "14.0", random_notes()),
}
# MS-ASCMD: the Status values of each command's response (2.2.3.177.x), besides the
# common ones of 2.2.2 (14.0 on). Search and ResolveRecipients include the Picture and
# Availability statuses.
DEFINED = {
    "Sync": {1, 3, 4, 5, 6, 7, 8, 9, 12, 13, 14, 15, 16},
    "GetItemEstimate": {1, 2, 3, 4},
    "ItemOperations": set(range(1, 19)) | {155},
    "Search": set(range(1, 18)) | {173, 174, 175},
    "ResolveRecipients": set(range(1, 9)) | {160, 161, 162, 163, 173, 174, 175},
    "MeetingResponse": {1, 2, 3, 4},
    "Find": {1, 2, 3},
    "ValidateCert": set(range(1, 18)),
}
COMMON = {int(c) for c in Common}
NS = ('xmlns:a="AirSync:" xmlns:b="AirSyncBase:" xmlns:s="Search:" xmlns:f="Find:" '
      'xmlns:r="ResolveRecipients:" xmlns:m="MeetingResponse:" xmlns:v="ValidateCert:" '
      'xmlns:g="GetItemEstimate:" xmlns:i="ItemOperations:"')
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: object) -> str:
    """A random value as XML character data (what XML cannot carry is left out)."""
    return escape(_NOT_XML.sub("", str(value or "")))


def has(command: str, version: str) -> bool:
    from eas.protocol.versions import COMMAND_VERSIONS

    allowed = COMMAND_VERSIONS[command]
    return allowed is None or version in allowed


def statuses(node: Node) -> list[tuple[str, str | None]]:
    out = []
    stack = [node]
    while stack:
        n = stack.pop()
        name = tags.name(n.tag)
        if name.endswith(":Status"):
            out.append((name, n.text if isinstance(n.text, str) else None))
        stack.extend(n.children)
    return out


def check(reply: Reply, command: str, version: str) -> Node:
    """HTTP 200, nothing outside the version, every Status a defined one; the tree."""
    assert reply.status == 200, (command, version, reply.status)
    assert reply.node is not None, (command, version)
    assert not elements_outside(reply.node, version), (command, version, elements_outside(reply.node, version))
    allowed = DEFINED[command] | (COMMON if Version(version) >= Version("14.0") else set())
    for name, value in statuses(reply.node):
        assert value is not None and value.isdigit() and int(value) in allowed, (command, version, name, value)
    return reply.node


class World:
    """One app and store; a device per version with its sync key per folder."""

    def __init__(self, folder: Path) -> None:
        self.app, self.store = make_app(folder)
        self.devices: dict[str, Device] = {}
        self.keys: dict[tuple[str, str], str] = {}
        for version in VERSIONS:
            self.devices[version] = asyncio.run(device(folder, version, app=(self.app, self.store),
                                                       device_id="Prop" + version.replace(".", "")))

    async def sync(self, dev: Device, klass: str, folder: str, options: str) -> Node | None:
        cid = dev.folders[folder]
        class_xml = f"<Class>{klass}</Class>" if Version(dev.version) < Version("14.0") else ""
        key = self.keys.get((dev.version, folder), "0")
        while True:
            body = "" if key == "0" else f"<GetChanges/><WindowSize>100</WindowSize>{options}"
            reply = await dev.client.command("Sync", (
                f'<Sync xmlns="AirSync:" {NS}><Collections><Collection>{class_xml}<SyncKey>{key}</SyncKey>'
                f"<CollectionId>{cid}</CollectionId>{body}</Collection></Collections></Sync>"))
            if body and reply.status == 200 and not reply.body and Version(dev.version) >= Version("12.1"):
                return None  # nothing new: an empty response (MS-ASCMD 2.2.1.21)
            node = check(reply, "Sync", dev.version)
            collection = node.find(A.Collections, A.Collection)
            assert collection is not None and collection.findtext(A.Status) == "1", reply.xml
            key = str(collection.findtext(A.SyncKey))
            self.keys[(dev.version, folder)] = key
            if body:
                return collection


def options(version: str, body_type: int, size: int) -> str:
    if version == "2.5":
        return "<Options><FilterType>0</FilterType><Truncation>9</Truncation></Options>"
    return (f"<Options><FilterType>0</FilterType><b:BodyPreference><b:Type>{body_type}</b:Type>"
            f"<b:TruncationSize>{size}</b:TruncationSize></b:BodyPreference></Options>")


def names_in(item: Any) -> list[str]:
    """Texts of the item a search or resolve could be asked for."""
    out = [getattr(item, name, "") for name in ("subject", "first_name", "last_name", "email1_address",
                                                 "organizer_email", "location")]
    out += [a.email for a in getattr(item, "attendees", [])]
    return [xml_text(v) for v in out if v]


async def one_example(world: World, klass: str, item: Any, version: str, body_type: int, size: int,
                      query: str, cert: bytes, filter_type: int = 0) -> None:
    folder = CLASSES[klass][0]
    dev = world.devices[version]
    if klass == "Calendar":  # a UID is unique within the mailbox; the examples share one
        item = dataclasses.replace(item, uid=f"{item.uid}-{uuid.uuid4()}")
    item_id, _ = await world.store.add_item(ALICE, dev.backend[folder], item)
    opts = options(version, body_type, size)
    collection = await world.sync(dev, klass, folder, opts)
    assert collection is not None, f"the stored {klass} reaches the device"
    cid = dev.folders[folder]
    server_id = make_server_id(cid, item_id)
    adds = [n.findtext(A.ServerId) for n in (collection.find(A.Commands) or []) if n.tag == A.Add]
    assert server_id in adds, f"the stored {klass} reaches the device"
    c = dev.client
    key = world.keys[(version, folder)]
    class_xml = f"<a:Class>{klass}</a:Class>" if Version(version) < Version("14.0") else ""
    check(await c.command("GetItemEstimate", (
        f'<GetItemEstimate xmlns="GetItemEstimate:" {NS}><Collections><Collection>{class_xml}'
        f"<a:SyncKey>{key}</a:SyncKey><CollectionId>{cid}</CollectionId>"
        f"<a:Options><a:FilterType>{filter_type}</a:FilterType></a:Options></Collection></Collections>"
        "</GetItemEstimate>")),
          "GetItemEstimate", version).find(G.Response)
    if has("ItemOperations", version):
        node = check(await c.command("ItemOperations", (
            f'<ItemOperations xmlns="ItemOperations:" {NS}><Fetch><Store>Mailbox</Store>'
            f"<a:CollectionId>{cid}</a:CollectionId><a:ServerId>{server_id}</a:ServerId>"
            f"<Options><b:BodyPreference><b:Type>{body_type}</b:Type></b:BodyPreference></Options>"
            "</Fetch></ItemOperations>")), "ItemOperations", version)
        assert node.findtext(IO.Response, IO.Fetch, IO.Status) == "1", "the synced item can be fetched"
    texts = names_in(item) + [xml_text(query)]
    for text in texts[:2] + texts[-1:]:
        if text:
            check(await c.command("Search", f'<Search xmlns="Search:" {NS}><Store><Name>GAL</Name>'
                                            f"<Query>{text}</Query><Options><Range>0-9</Range></Options>"
                                            "</Store></Search>"), "Search", version)
            check(await c.command("ResolveRecipients", (
                f'<ResolveRecipients xmlns="ResolveRecipients:" {NS}><To>{text}</To><Options>'
                "<CertificateRetrieval>2</CertificateRetrieval><MaxAmbiguousRecipients>3</MaxAmbiguousRecipients>"
                "</Options></ResolveRecipients>")), "ResolveRecipients", version)
        if text and version != "2.5":
            check(await c.command("Search", (
                f'<Search xmlns="Search:" {NS}><Store><Name>Mailbox</Name><Query><And>'
                f"<a:Class>{klass}</a:Class><a:CollectionId>{cid}</a:CollectionId><FreeText>{text}</FreeText>"
                "</And></Query><Options><Range>0-9</Range></Options></Store></Search>")), "Search", version)
        if text and has("Find", version):
            check(await c.command("Find", (
                f'<Find xmlns="Find:" {NS}><SearchId>{uuid.uuid4()}</SearchId><ExecuteSearch>'
                f"<MailBoxSearchCriterion><Query><a:Class>{klass}</a:Class><a:CollectionId>{cid}</a:CollectionId>"
                f"<FreeText>{text}</FreeText></Query><Options><Range>0-9</Range></Options>"
                "</MailBoxSearchCriterion></ExecuteSearch></Find>")), "Find", version)
    if klass == "Calendar":
        answer = 1 + len(server_id) % 3
        check(await c.command("MeetingResponse", (
            f'<MeetingResponse xmlns="MeetingResponse:" {NS}><Request><UserResponse>{answer}</UserResponse>'
            f"<CollectionId>{cid}</CollectionId><RequestId>{server_id}</RequestId></Request></MeetingResponse>")),
              "MeetingResponse", version)
    check(await c.command("ValidateCert", (
        f'<ValidateCert xmlns="ValidateCert:"><Certificates><Certificate>{base64.b64encode(cert).decode()}'
        "</Certificate></Certificates></ValidateCert>")), "ValidateCert", version)
    # what the commands may have changed (a meeting answered) still syncs within the version
    await world.sync(dev, klass, folder, opts)


@st.composite
def examples(draw: st.DrawFn) -> tuple[str, Any, str, int, int, str, bytes, int]:
    klass = draw(st.sampled_from(sorted(CLASSES)))
    _, first, strategy = CLASSES[klass]
    version = draw(st.sampled_from([v for v in VERSIONS if Version(v) >= Version(first)]))
    return (klass, draw(strategy), version, draw(st.sampled_from([1, 2])), draw(st.integers(0, 300)),
            draw(st.text(max_size=12)), draw(st.binary(max_size=40)), draw(st.integers(0, 8)))


def test_no_response_has_elements_outside_its_version(cheap_scrypt: None) -> None:
    world = World(Path(tempfile.mkdtemp(prefix="eas-version-prop-")))

    @settings(max_examples=int(os.environ.get("EAS_FUZZ_EXAMPLES", "40")), deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(examples())
    def one(example: tuple[str, Any, str, int, int, str, bytes, int]) -> None:
        asyncio.run(one_example(world, *example))

    one()


@pytest.mark.parametrize("version", VERSIONS)
def test_every_class_in_every_version_once(cheap_scrypt: None, tmp_path: Path, version: str) -> None:
    """The same walk with one plain item of each class the version has (no hypothesis)."""
    from eas.items.calendar import Calendar, Recurrence
    from eas.items.contacts import Contact
    from eas.items.notes import Note
    from eas.items.tasks import Task

    world = World(tmp_path)
    from datetime import UTC, datetime, timedelta

    start = datetime(2030, 1, 7, 9, tzinfo=UTC)
    items = {"Calendar": Calendar(subject="Standup", start=start, end=start + timedelta(minutes=15),
                                  timezone="Europe/Berlin", organizer_email="bob@example.com",
                                  recurrence=Recurrence(type=0, interval=1, occurrences=5)),
             "Contacts": Contact(first_name="Bob", last_name="Brown", email1_address="bob@example.com"),
             "Tasks": Task(subject="Report", utc_due_date=start),
             "Notes": Note(subject="Ideas", body="more tests")}
    walked = []
    for klass, item in items.items():
        if Version(version) >= Version(CLASSES[klass][1]):
            # one_example asserts: nothing outside the version, every Status a defined one.
            asyncio.run(one_example(world, klass, item, version, 2, 100, "bob", b"\x30\x03\x02\x01\x01"))
            walked.append(klass)
    assert walked[:3] == ["Calendar", "Contacts", "Tasks"] and ("Notes" in walked) == (Version(version) >= Version("14.0"))
