"""A device's Sync Change of a contact, event, task or note merged into the stored item:
ghosted elements (MS-ASCMD 2.2.3.179 Supported, 12.x/14.x), the 16.x calendar rule that
every element left out keeps its value (MS-ASCAL 3.1.5.3), the task and note rules
(MS-ASTASK, MS-ASNOTE 3.2.5.3), truncated bodies echoed back, and 16.x Changes of one
occurrence. Each step is checked in the store and in what a second device receives."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from test_sync import ALICE, Device, cheap_scrypt, coll, collection, commands, device, responses, run
from test_sync_classes import SOON, compact

from eas.items import calendar, contacts, pim
from eas.items.calendar import Attendee, Calendar, EventException, Recurrence
from eas.items.contacts import Contact
from eas.items.email import parse_date
from eas.items.notes import Note
from eas.items.tasks import Task
from eas.items.timezone import to_wire
from eas.tags import AirSync as A
from eas.tags import AirSyncBase as B
from eas.tags import Calendar as CAL
from eas.tags import Contacts as C
from eas.tags import Notes as N
from eas.tags import Tasks as T
from eas.wbxml import Node

__all__ = ["cheap_scrypt"]
NS = ('xmlns="AirSync:" xmlns:b="AirSyncBase:" xmlns:c="Contacts:" xmlns:t="Tasks:" xmlns:n="Notes:" '
      'xmlns:cal="Calendar:"')
LONG_BODY = "Met at the conference in Basel; follow up about the offer. " * 4  # 240 characters
PICTURE = b"\xff\xd8\xff\xe0 not really a JPEG"


class Pair:
    """The device under test and a second device of the same user (what others see)."""

    def __init__(self, dev: Device, other: Device, folder: str) -> None:
        self.dev, self.other, self.folder = dev, other, folder
        self.key = self.other_key = ""

    @property
    def cid(self) -> str:
        return self.dev.folders[self.folder]

    async def sync(self, dev: Device, key: str, inner: str = "") -> tuple[str, Node | None]:
        reply = await dev.send(f"<Sync {NS}><Collections>{coll(dev.folders[self.folder], key, inner)}"
                               f"</Collections></Sync>")
        if reply.node is None:
            return key, None
        c = collection(reply, dev.folders[self.folder])
        return str(c.findtext(A.SyncKey)), c

    async def change(self, item: str, data: str, inner: str = "", instance: str = "") -> list[tuple[str, str]]:
        """The device's Change of ``item``: the (command, Status) of its Responses (none
        when it was applied) and no server commands (the device has the item as it is)."""
        iid = f"<b:InstanceId>{instance}</b:InstanceId>" if instance else ""
        cmd = f"<Change><ServerId>{self.cid}:{item}</ServerId>{iid}<ApplicationData>{data}</ApplicationData></Change>"
        self.key, c = await self.sync(self.dev, self.key, f"{inner}<Commands>{cmd}</Commands>")
        if c is None:
            return []
        assert c.findtext(A.Status) == "1" and not commands(c)
        return [(w, str(n.findtext(A.Status))) for w, n in responses(c)]

    async def seen(self) -> Node:
        """The ApplicationData the second device gets for the one item changed."""
        self.other_key, c = await self.sync(self.other, self.other_key)
        assert c is not None
        (cmd, _, node), = commands(c)
        assert cmd == "Change"
        data = node.find(A.ApplicationData)
        assert data is not None
        return data

    async def stored(self, item: str) -> Any:
        (found,) = await self.dev.store.fetch_items(ALICE, self.dev.backend[self.folder], [item])
        return found


async def pair(tmp_path: Path, version: str, folder: str, item: Any, initial: str = "",
               other_version: str = "14.1") -> tuple[Pair, str]:
    """Both devices past their initial Sync of ``folder`` holding ``item``; ``initial``
    goes into the device's SyncKey 0 request (Supported, Options)."""
    dev = await device(tmp_path, version)
    other = await device(tmp_path, other_version, app=(dev.app, dev.store), device_id="OtherDevice")
    item_id, _ = await dev.store.add_item(ALICE, dev.backend[folder], item)
    p = Pair(dev, other, folder)
    p.key, c = await p.sync(dev, "0", initial)
    assert c is not None and c.findtext(A.Status) == "1"
    p.key, c = await p.sync(dev, p.key)
    assert c is not None and [cmd for cmd, _, _ in commands(c)] == ["Add"]
    p.other_key, _ = await p.sync(other, "0")
    p.other_key, c = await p.sync(other, p.other_key)
    assert c is not None and [cmd for cmd, _, _ in commands(c)] == ["Add"]
    return p, item_id


def got_or(value: Any, default: Any) -> Any:
    return default if value is None else value


def body_of(data: Node) -> str | None:
    text = data.findtext(B.Body, B.Data)
    return text if isinstance(text, str) else None


# -- Contacts ---------------------------------------------------------------------------------


def full_contact() -> Contact:
    return Contact(first_name="Ann", last_name="Lee", email1_address="ann@example.com", job_title="Engineer",
                   office_location="B2", home_phone_number="+41 44 000 00 00", categories=["Friends"],
                   picture=PICTURE, body=LONG_BODY)


SUPPORTED_CONTACT = ("<Supported><c:FirstName/><c:LastName/><c:JobTitle/><c:Email1Address/>"
                     "<c:HomePhoneNumber/></Supported>")


@pytest.mark.parametrize("version", ["12.1", "14.1", "16.1"])
@pytest.mark.parametrize("supported", [True, False], ids=["Supported", "no-Supported"])
def test_contact_change(tmp_path: Path, version: str, supported: bool) -> None:
    """With Supported, what it does not name is ghosted: a Change leaving it out keeps it
    (picture, notes, categories, office); what it names and the Change leaves out is
    cleared. Without Supported nothing is ghosted: the Change is the whole contact."""

    async def scenario() -> None:
        p, item = await pair(tmp_path, version, "Contacts", full_contact(), SUPPORTED_CONTACT if supported else "")
        assert await p.change(item, "<c:FirstName>Anna</c:FirstName><c:LastName>Lee</c:LastName>") == []
        got = await p.stored(item)
        assert (got.first_name, got.last_name) == ("Anna", "Lee")
        assert (got.job_title, got.email1_address, got.home_phone_number) == ("", "", "")  # named: cleared
        ghosted = (got.office_location, got.categories, got.picture, got.body)
        if supported:
            assert ghosted == ("B2", ["Friends"], PICTURE, LONG_BODY)
        else:
            assert ghosted == ("", [], None, "")
        data = await p.seen()
        assert data.findtext(C.FirstName) == "Anna" and data.find(C.JobTitle) is None
        assert data.findtext(C.OfficeLocation) == ("B2" if supported else None)
        assert (data.find(C.Picture) is not None) == supported
        assert body_of(data) == (LONG_BODY if supported else None)
        # A ghosted element the device does send is changed; one sent empty is cleared.
        if supported:
            assert await p.change(item, "<c:FirstName>Anna</c:FirstName><c:OfficeLocation>C3</c:OfficeLocation>"
                                        "<c:Categories/><c:Picture/>") == []
            got = await p.stored(item)
            assert (got.office_location, got.categories, got.picture, got.body) == ("C3", [], None, LONG_BODY)
            data = await p.seen()
            assert data.findtext(C.OfficeLocation) == "C3" and data.find(C.Categories) is None
            assert body_of(data) == LONG_BODY
    run(scenario)


def test_supported_is_kept_from_synckey_0_only(tmp_path: Path) -> None:
    """Supported counts in the SyncKey 0 request (MS-ASCMD 2.2.3.179): later Options do
    not drop it, and a later Supported does not change it."""

    async def scenario() -> None:
        p, item = await pair(tmp_path, "14.1", "Contacts", full_contact(), SUPPORTED_CONTACT)
        later = ("<Supported><c:OfficeLocation/></Supported>"
                 "<Options><b:BodyPreference><b:Type>1</b:Type></b:BodyPreference></Options>")
        assert await p.change(item, "<c:FirstName>Anna</c:FirstName>", later) == []
        got = await p.stored(item)
        assert got.office_location == "B2" and got.body == LONG_BODY and got.last_name == ""
        # A new SyncKey 0 without Supported: nothing is ghosted from then on.
        p.key, _ = await p.sync(p.dev, "0")
        p.key, _ = await p.sync(p.dev, p.key)
        assert await p.change(item, "<c:FirstName>Anna</c:FirstName>") == []
        got = await p.stored(item)
        assert got.office_location == "" and got.body == "" and got.picture is None
    run(scenario)


def test_empty_supported_ghosts_everything(tmp_path: Path) -> None:
    """An empty Supported: every element that can be ghosted is (2.2.3.179 rule 3)."""

    async def scenario() -> None:
        p, item = await pair(tmp_path, "14.1", "Contacts", full_contact(), "<Supported/>")
        assert await p.change(item, "<c:JobTitle>Manager</c:JobTitle>") == []
        got = await p.stored(item)
        assert (got.first_name, got.last_name, got.email1_address, got.job_title) == (
            "Ann", "Lee", "ann@example.com", "Manager")
        assert got.picture == PICTURE and got.body == LONG_BODY
        data = await p.seen()
        assert data.findtext(C.JobTitle) == "Manager" and data.findtext(C.FirstName) == "Ann"
    run(scenario)


def test_hostile_supported(tmp_path: Path) -> None:
    """Elements of other classes, AirSync elements and text in Supported are not
    elements of this class: they name nothing (so, here, everything is ghosted); the
    state stays usable and holds only tags of the class."""

    async def scenario() -> None:
        junk = "<Supported>" + "<cal:Subject/><t:Subject/><SyncKey>9</SyncKey><b:Type>1</b:Type>" * 200 + "</Supported>"
        p, item = await pair(tmp_path, "14.1", "Contacts", full_contact(), junk)
        raw = await p.dev.app.store.load(ALICE, p.dev.client.device_id, f"collection:{p.cid}")
        assert raw is not None and json.loads(raw)["options"]["supported"] == []
        assert await p.change(item, "<c:JobTitle>Manager</c:JobTitle>") == []
        got = await p.stored(item)
        assert (got.first_name, got.job_title, got.body) == ("Ann", "Manager", LONG_BODY)
    run(scenario)


def test_change_of_an_item_gone_is_8(tmp_path: Path) -> None:
    """Conflict 0 (no stamp check): an item deleted on the server meanwhile is status 8,
    and nothing is created."""

    async def scenario() -> None:
        p, item = await pair(tmp_path, "14.1", "Contacts", full_contact(), SUPPORTED_CONTACT)
        await p.dev.store.delete_item(ALICE, p.dev.backend["Contacts"], item, permanently=True)
        cmd = f"<Change><ServerId>{p.cid}:{item}</ServerId><ApplicationData><c:FirstName>Anna</c:FirstName>" \
              f"</ApplicationData></Change>"
        _, c = await p.sync(p.dev, p.key, f"<Options><Conflict>0</Conflict></Options><Commands>{cmd}</Commands>")
        assert c is not None
        assert [(w, n.findtext(A.Status)) for w, n in responses(c)] == [("Change", "8")]
        assert [w for w, _, _ in commands(c)] == ["Delete"]  # and the deletion goes out
        assert await p.dev.store.item_stamps(ALICE, p.dev.backend["Contacts"]) == {}
    run(scenario)


# -- Calendar ---------------------------------------------------------------------------------


def full_event() -> Calendar:
    return Calendar(subject="Review", start=SOON, end=SOON + timedelta(hours=1), location="Room 1",
                    body=LONG_BODY, reminder=15, categories=["Work"],
                    attendees=[Attendee("bob@example.com", "Bob", type=1)])


def _times(start: Any = SOON) -> str:
    return (f"<cal:Timezone>{to_wire('UTC')}</cal:Timezone><cal:StartTime>{compact(start)}</cal:StartTime>"
            f"<cal:EndTime>{compact(start + timedelta(hours=1))}</cal:EndTime>")


@pytest.mark.parametrize("version", ["12.1", "14.1"])
@pytest.mark.parametrize("supported", [True, False], ids=["Supported", "no-Supported"])
def test_event_change_before_16(tmp_path: Path, version: str, supported: bool) -> None:

    async def scenario() -> None:
        initial = ("<Supported><cal:Timezone/><cal:StartTime/><cal:EndTime/><cal:Subject/><cal:Location/>"
                   "<cal:Reminder/></Supported>") if supported else ""
        p, item = await pair(tmp_path, version, "Calendar", full_event(), initial)
        assert await p.change(item, _times() + "<cal:Subject>Review v2</cal:Subject>") == []
        got = await p.stored(item)
        assert got.subject == "Review v2" and got.start == SOON
        assert (got.location, got.reminder) == ("", None)  # named in Supported (or no Supported): cleared
        kept = ([a.email for a in got.attendees], got.categories, got.body)
        assert kept == ((["bob@example.com"], ["Work"], LONG_BODY) if supported else ([], [], ""))
        data = await p.seen()
        assert data.findtext(CAL.Subject) == "Review v2" and data.find(CAL.Location) is None
        assert (data.find(CAL.Attendees) is not None) == supported
        assert body_of(data) == (LONG_BODY if supported else None)
    run(scenario)


@pytest.mark.parametrize("supported", [True, False], ids=["Supported", "no-Supported"])
def test_event_change_16(tmp_path: Path, supported: bool) -> None:
    """16.x: every top-level element a Change leaves out keeps its value, whether or not
    Supported named it; one sent empty is cleared."""

    async def scenario() -> None:
        initial = "<Supported><cal:Subject/><b:Location/><cal:Reminder/></Supported>" if supported else ""
        p, item = await pair(tmp_path, "16.1", "Calendar", full_event(), initial, other_version="16.1")
        before = await p.stored(item)
        assert await p.change(item, "<cal:Subject>Review v2</cal:Subject>") == []
        got = await p.stored(item)
        assert got.subject == "Review v2"
        assert (got.start, got.end, got.location, got.reminder, got.categories, got.body, got.uid) == (
            before.start, before.end, "Room 1", 15, ["Work"], LONG_BODY, before.uid)
        assert [a.email for a in got.attendees] == ["bob@example.com"]
        data = await p.seen()
        assert data.findtext(CAL.Subject) == "Review v2"
        assert data.findtext(B.Location, B.DisplayName) == "Room 1" and body_of(data) == LONG_BODY
        # Sent empty: cleared.
        assert await p.change(item, "<b:Location/><cal:Categories/>") == []
        got = await p.stored(item)
        assert (got.subject, got.location, got.categories, got.body) == ("Review v2", "", [], LONG_BODY)
        data = await p.seen()
        assert data.find(B.Location) is None and data.find(CAL.Categories) is None
        assert data.findtext(CAL.Subject) == "Review v2"
    run(scenario)


def test_occurrence_change_16_merges_into_the_occurrence(tmp_path: Path) -> None:
    """A 16.x Change with InstanceId changes the occurrence as it stands: an exception
    keeps its own values for what the Change leaves out, a plain occurrence the series'."""

    async def scenario() -> None:
        third, fourth = SOON + timedelta(days=2), SOON + timedelta(days=3)
        series = Calendar(subject="Standup", start=SOON, end=SOON + timedelta(minutes=15), location="Room 1",
                          body="Daily", reminder=5, recurrence=Recurrence(type=0, occurrences=5),
                          exceptions=[EventException(original_start=third, subject="Moved standup",
                                                     location="Room 2", start=third + timedelta(hours=1),
                                                     end=third + timedelta(hours=1, minutes=15))])
        p, item = await pair(tmp_path, "16.1", "Calendar", series, other_version="16.1")
        assert await p.change(item, "<cal:Reminder>30</cal:Reminder>", instance=compact(third)) == []
        assert await p.change(item, "<cal:Subject>Retro</cal:Subject>", instance=compact(fourth)) == []
        got = await p.stored(item)
        assert got.subject == "Standup" and got.reminder == 5 and got.recurrence is not None
        by_start = {e.original_start: e for e in got.exceptions}
        ex3, ex4 = by_start[third], by_start[fourth]
        assert (ex3.subject, ex3.location, ex3.reminder, ex3.start) == (
            "Moved standup", "Room 2", 30, third + timedelta(hours=1))
        assert ex3.end == third + timedelta(hours=1, minutes=15)
        # An exception's None fields are the series' (as the store reads them back).
        values = {name: got_or(getattr(ex4, name), getattr(got, name)) for name in ("location", "reminder", "body")}
        assert ex4.subject == "Retro" and values == {"location": "Room 1", "reminder": 5, "body": "Daily"}
        assert (got_or(ex4.start, fourth), got_or(ex4.end, fourth + timedelta(minutes=15))) == (
            fourth, fourth + timedelta(minutes=15))
        data = await p.seen()
        seen = {parse_date(str(e.findtext(B.InstanceId))): e for e in data.find(CAL.Exceptions) or []}
        assert seen[third].findtext(CAL.Subject) == "Moved standup" and seen[third].findtext(CAL.Reminder) == "30"
        assert seen[fourth].findtext(CAL.Subject) == "Retro"
    run(scenario)


# -- Tasks and notes ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["14.1", "16.1"])
def test_task_change(tmp_path: Path, version: str) -> None:
    """A task Change is the whole task, but a Body left out is not a delete."""

    async def scenario() -> None:
        task = Task(subject="Report", body=LONG_BODY, importance=2, categories=["Work"])
        p, item = await pair(tmp_path, version, "Tasks", task)
        assert await p.change(item, "<t:Subject>Report v2</t:Subject><t:Complete>0</t:Complete>") == []
        got = await p.stored(item)
        assert (got.subject, got.body, got.importance, got.categories) == ("Report v2", LONG_BODY, 1, [])
        data = await p.seen()
        assert data.findtext(T.Subject) == "Report v2" and body_of(data) == LONG_BODY
        assert data.find(T.Categories) is None and data.findtext(T.Importance) == "1"
        # A Body sent (even empty) replaces it.
        assert await p.change(item, "<t:Subject>Report v2</t:Subject><b:Body><b:Type>1</b:Type><b:Data/></b:Body>"
                                    "<t:Complete>0</t:Complete>") == []
        assert (await p.stored(item)).body == ""
        assert body_of(await p.seen()) is None
    run(scenario)


@pytest.mark.parametrize("version", ["14.1", "16.1"])
def test_note_change(tmp_path: Path, version: str) -> None:
    """MS-ASNOTE 3.2.5.3: Subject and Body left out are not deletes; Categories are."""

    async def scenario() -> None:
        note = Note(subject="Idea", body=LONG_BODY, categories=["Ideas"])
        p, item = await pair(tmp_path, version, "Notes", note)
        assert await p.change(item, "<n:MessageClass>IPM.StickyNote</n:MessageClass>") == []
        got = await p.stored(item)
        assert (got.subject, got.body, got.categories) == ("Idea", LONG_BODY, [])
        data = await p.seen()
        assert data.findtext(N.Subject) == "Idea" and body_of(data) == LONG_BODY and data.find(N.Categories) is None
        assert await p.change(item, "<n:Subject>Better idea</n:Subject><n:Categories><n:Category>A</n:Category>"
                                    "</n:Categories>") == []
        got = await p.stored(item)
        assert (got.subject, got.body, got.categories) == ("Better idea", LONG_BODY, ["A"])
        assert (await p.seen()).findtext(N.Subject) == "Better idea"
    run(scenario)


def test_supported_for_notes_is_4(tmp_path: Path) -> None:
    """MS-ASNOTE 3.2.5.3: Supported in a Notes collection is status 4, state untouched."""

    async def scenario() -> None:
        dev = await device(tmp_path, "14.1")
        cid = dev.folders["Notes"]
        reply = await dev.send(f"<Sync {NS}><Collections>{coll(cid, '0', '<Supported><n:Subject/></Supported>')}"
                               f"</Collections></Sync>")
        c = collection(reply, cid)
        assert c.findtext(A.Status) == "4" and c.findtext(A.SyncKey) == "0"
        assert await dev.app.store.load(ALICE, dev.client.device_id, f"collection:{cid}") is None
        assert await dev.initial("Notes") != "0"  # without it, fine
    run(scenario)


# -- Truncated bodies echoed back -------------------------------------------------------------


def _options(size: int) -> str:
    return f"<Options><b:BodyPreference><b:Type>1</b:Type><b:TruncationSize>{size}</b:TruncationSize>" \
           f"</b:BodyPreference></Options>"


@pytest.mark.parametrize("marked", [True, False], ids=["Truncated-1", "length-of-truncation"])
@pytest.mark.parametrize(("folder", "version", "item", "data"), [
    ("Contacts", "14.1", full_contact(), "<c:FirstName>Anna</c:FirstName>"),
    ("Calendar", "14.1", full_event(), _times() + "<cal:Subject>Review v2</cal:Subject>"),
    ("Calendar", "16.1", full_event(), "<cal:Subject>Review v2</cal:Subject>"),
    ("Tasks", "14.1", Task(subject="Report", body=LONG_BODY), "<t:Subject>Report v2</t:Subject>"),
    ("Notes", "16.1", Note(subject="Idea", body=LONG_BODY), "<n:Subject>Report v2</n:Subject>"),
], ids=["Contacts-14.1", "Calendar-14.1", "Calendar-16.1", "Tasks-14.1", "Notes-16.1"])
def test_truncated_body_echo_keeps_the_stored_body(tmp_path: Path, folder: str, version: str, item: Any, data: str,
                                                   marked: bool) -> None:
    """A device that got a body cut at TruncationSize and sends it back in a Change (with
    Truncated 1, or just that long) does not cut the stored body; a shorter body it
    sends is an edit and is applied."""

    async def scenario() -> None:
        p, iid = await pair(tmp_path, version, folder, item, _options(40), other_version=version)
        cut = LONG_BODY[:40]
        flag = "<b:Truncated>1</b:Truncated>" if marked else ""
        echo = f"<b:Body><b:Type>1</b:Type>{flag}<b:Data>{cut}</b:Data></b:Body>"
        assert await p.change(iid, data + echo) == []
        got = await p.stored(iid)
        assert got.body == LONG_BODY
        assert (getattr(got, "subject", None) or got.first_name) in ("Review v2", "Report v2", "Anna")
        assert body_of(await p.seen()) == LONG_BODY  # the other device asked for whole bodies
        # An edit shorter than the truncation is the device's new body.
        edit = "<b:Body><b:Type>1</b:Type><b:Data>Short now</b:Data></b:Body>"
        assert await p.change(iid, data + edit) == []
        assert (await p.stored(iid)).body == "Short now"
        assert body_of(await p.seen()) == "Short now"
    run(scenario)


def test_truncated_body_echo_25(tmp_path: Path) -> None:
    """2.5: the class's own Body with BodyTruncated 1, or as long as the Truncation code."""

    async def scenario() -> None:
        full = LONG_BODY * 3  # 720 characters; Truncation 1 keeps 512
        p, item = await pair(tmp_path, "2.5", "Tasks", Task(subject="Report", body=full),
                             "<Options><Truncation>1</Truncation></Options>", other_version="2.5")
        for n, body in enumerate((f"<t:Body>{full[:100]}</t:Body><t:BodyTruncated>1</t:BodyTruncated>",
                                  f"<t:Body>{full[:512]}</t:Body>")):
            assert await p.change(item, f"<t:Subject>Report v{n}</t:Subject>{body}") == []
            got = await p.stored(item)
            assert (got.subject, got.body) == (f"Report v{n}", full)
        assert await p.change(item, "<t:Subject>Report v3</t:Subject><t:Body>Edited</t:Body>"
                                    "<t:BodyTruncated>0</t:BodyTruncated>") == []
        assert (await p.stored(item)).body == "Edited"
    run(scenario)


def test_truncation_cut_inside_a_character(tmp_path: Path) -> None:
    """TruncationSize counts UTF-8 bytes and a cut never splits a character: an echo up
    to 3 bytes short of the size is still the truncated copy."""

    async def scenario() -> None:
        body = "Grüße aus Zürich, schöne Grüße! " * 6
        p, item = await pair(tmp_path, "14.1", "Contacts", Contact(first_name="Ann", body=body),
                             "<Supported><c:FirstName/><c:Body/></Supported>" + _options(41), other_version="14.1")
        cut = body.encode()[:41].decode("utf-8", "ignore")
        assert len(cut.encode()) < 41  # the cut fell inside a character
        echo = f"<b:Body><b:Type>1</b:Type><b:Data>{cut}</b:Data></b:Body>"
        assert await p.change(item, f"<c:FirstName>Anna</c:FirstName>{echo}") == []
        got = await p.stored(item)
        assert (got.first_name, got.body) == ("Anna", body)
        assert body_of(await p.seen()) == body
    run(scenario)


def test_html_note_echo_keeps_the_html(tmp_path: Path) -> None:
    async def scenario() -> None:
        html = "<html><body><p>" + "A long <b>formatted</b> note. " * 10 + "</p></body></html>"
        options = ("<Options><b:BodyPreference><b:Type>2</b:Type><b:TruncationSize>50</b:TruncationSize>"
                   "</b:BodyPreference></Options>")
        p, item = await pair(tmp_path, "16.1", "Notes", Note(subject="Idea", body_html=html), options,
                             other_version="16.1")
        echo = f"<b:Body><b:Type>2</b:Type><b:Truncated>1</b:Truncated><b:Data>{escape(html[:50])}</b:Data></b:Body>"
        assert await p.change(item, f"<n:Subject>Idea 2</n:Subject>{echo}") == []
        got = await p.stored(item)
        assert (got.subject, got.body_html) == ("Idea 2", html)
    run(scenario)


def test_16_change_ending_before_the_kept_start_is_6(tmp_path: Path) -> None:
    """A 16.x Change whose EndTime falls before the start it keeps is status 6; the
    stored event is untouched."""

    async def scenario() -> None:
        p, item = await pair(tmp_path, "16.1", "Calendar", full_event(), other_version="16.1")
        before = await p.stored(item)
        got = await p.change(item, f"<cal:EndTime>{compact(SOON - timedelta(hours=2))}</cal:EndTime>")
        assert got == [("Change", "6")]
        after = await p.stored(item)
        assert (after.start, after.end, after.subject) == (before.start, before.end, before.subject)
    run(scenario)


def test_supported_names_a_field_by_any_of_its_elements() -> None:
    """airsyncbase:Body names the body as calendar:Body does (and the 16.x
    airsyncbase:Location the location): listing either keeps both from being ghosted."""
    ghosted = pim.ghosted(calendar.ATTRIBUTES, [B.Body, CAL.Location])
    assert not {B.Body, CAL.Body, CAL.Location, B.Location} & ghosted
    assert {CAL.Attendees, CAL.Subject, CAL.Recurrence} <= ghosted
    assert pim.ghosted(contacts.ATTRIBUTES, []) == frozenset(contacts.ATTRIBUTES)
    assert C.Picture not in pim.ghosted(contacts.ATTRIBUTES, [C.Picture])
