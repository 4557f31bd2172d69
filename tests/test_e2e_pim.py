"""Calendar, contacts, tasks and notes end to end over real HTTPS: ``eas serve`` in a
subprocess, items put in with ``eas import`` (an .ics with a recurring event that has a
moved and a deleted occurrence in a VTIMEZONE, an all-day event, a task; a .vcf) and read
back with ``eas export``, driven by the independent client pyactivesync 0.17.0 (EAS 16.1:
``sync_folder``, ``get_item_estimate``, ``fetch_item``, ``create_contact``,
``apply_contact_changes``) and by our own test client in 2.5, 12.1, 14.1 and 16.1.

Each session gets the checks of tests/test_e2e_search.py: libwbxml's ``wbxml2xml`` reads
every response as we do, and no element is outside the session's version.

pyactivesync 0.17.0 has no names for the Calendar and Notes code pages (it reports
``page4.0x26``)
and flattens nested containers into one dict, so an event's Exceptions overwrite its own
Subject and times there; the tests read calendar fields from the recorded responses.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import icalendar
import pytest
from test_cli_pim import CONTACTS, EVENTS_AND_TASKS
from test_cli_server import serving
from test_e2e import PASSWORD, Server, Session, https, pyas_client, pyas_session, run
from test_e2e_search import admin, check

from eas.items import vcard
from eas.items.timezone import to_wire as zone_blob
from eas.tags import AirSync, AirSyncBase
from eas.tags import Calendar as C
from eas.tags import Contacts as CT
from eas.tags import FolderHierarchy as FH
from eas.tags import ItemOperations as IO
from eas.tags import Notes as N
from eas.tags import Tasks as T
from eas.testing.client import Client, Reply
from eas.wbxml import Node

pytestmark = pytest.mark.kernel_independent  # the server runs its own (C) codec

NOTES = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//eas tests//EN
BEGIN:VJOURNAL
UID:note-1
DTSTAMP:20240301T080000Z
SUMMARY:Shopping
DESCRIPTION:Milk\\, eggs
END:VJOURNAL
END:VCALENDAR
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("e2e-pim")
    data = base / "data"
    with serving(data) as running:
        yield Server(running.port, data, data / "tls" / "cert.pem")
    assert running.process.returncode == 0, running.stderr.decode(errors="replace")
    assert b"Traceback" not in running.stderr, running.stderr.decode(errors="replace")


def import_all(server: Server, user: str, tmp: Path) -> None:
    """The .ics (events, a task), the notes and the .vcf, each with ``eas import``."""
    server.add_user(user)
    for name, text in (("events.ics", EVENTS_AND_TASKS), ("notes.ics", NOTES), ("people.vcf", CONTACTS)):
        path = tmp / name
        path.write_text(text)
        admin(server, "import", user, str(path))


def export(server: Server, user: str, folder: str) -> str:
    from test_cli_server import eas

    r = eas("export", user, folder, data_dir=server.data)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode()


def vevents(text: str) -> dict[tuple[str, Any], Any]:
    """An export's VEVENTs by (UID, RECURRENCE-ID or None)."""
    out: dict[tuple[str, Any], Any] = {}
    for event in icalendar.Calendar.from_ical(text).walk("VEVENT"):
        rid = event.get("RECURRENCE-ID")
        out[(str(event["UID"]), rid.dt if rid is not None else None)] = event
    return out


# -- pyactivesync (16.1) -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def pyas() -> Any:
    return pytest.importorskip("pyactivesync")


def _fetched(session: Session) -> Node:
    """The Properties of the last ItemOperations Fetch recorded in the session."""
    node = session.exchanges[-1].response_node()
    assert node is not None and node.findtext(IO.Response, IO.Fetch, IO.Status) == "1"
    properties = node.find(IO.Response, IO.Fetch, IO.Properties)
    assert properties is not None
    return properties


def test_pyactivesync_pim(server: Server, pyas: Any, tmp_path: Path) -> None:
    user = "pyas-pim@example.com"
    import_all(server, user, tmp_path)
    models = pyas.models
    session = pyas_session("pyactivesync-pim")
    with pyas_client(pyas, server, session, user, "E2EPim01") as c:
        folders = {int(f.type): f.id for f in c.list_folders()}
        calendar, contacts, tasks, notes = folders[8], folders[9], folders[7], folders[10]
        keys: dict[str, str] = {}
        added: dict[str, list[Any]] = {}
        for folder, count in ((calendar, 3), (contacts, 2), (tasks, 1), (notes, 1)):
            first = c.sync_folder(folder)
            assert first.sync_key != "0" and not first.added
            assert c.get_item_estimate(folder, first.sync_key) == count, folder
            synced = c.sync_folder(folder, first.sync_key)
            assert len(synced.added) == count and not synced.more_available
            assert c.get_item_estimate(folder, synced.sync_key) == 0
            keys[folder], added[folder] = synced.sync_key, synced.added
        assert {a.fields.get("Contacts.Email1Address") for a in added[contacts]} == {
            "ada@example.org", "charles@example.org"}
        [task] = added[tasks]
        assert (task.fields.get("Tasks.Subject"), task.fields.get("Tasks.DueDate")) == (
            "File taxes", "2024-04-15T16:00:00.000Z")
        [note] = added[notes]
        assert (note.fields.get("page23.0x05"), note.fields.get("AirSyncBase.Data")) == (  # Notes.Subject
            "Shopping", "Milk, eggs")

        # the recurring event with its moved and deleted occurrence, by ItemOperations
        series = next(a for a in added[calendar] if a.fields.get("page4.0x28") == "series-1")  # Calendar.UID
        fetched = c.fetch_item(calendar, series.server_id)
        assert fetched.fields
        props = _fetched(session)
        assert (props.findtext(C.Subject), props.findtext(C.StartTime), props.findtext(C.EndTime)) == (
            "Weekly review", "20240304T080000Z", "20240304T090000Z")  # 09:00 CET
        rec = props.find(C.Recurrence)
        assert rec is not None
        assert (rec.findtext(C.Type), rec.findtext(C.Occurrences), rec.findtext(C.DayOfWeek)) == ("1", "10", "2")
        exceptions = props.find(C.Exceptions)
        assert exceptions is not None
        by_instance = {e.findtext(AirSyncBase.InstanceId): e for e in exceptions.findall(C.Exception)}
        moved = by_instance["2024-03-11T08:00:00.000Z"]
        assert (moved.findtext(C.Subject), moved.findtext(C.StartTime)) == ("Weekly review (moved)",
                                                                           "20240311T130000Z")  # 14:00 CET
        assert by_instance["2024-03-18T08:00:00.000Z"].findtext(C.Deleted) == "1"
        # the VTIMEZONE's rules as a TIME_ZONE_INFORMATION (MS-ASCAL 2.2.2.42), read by hand:
        # bias -60, October's last Sunday 03:00 to standard, March's last Sunday 02:00 to daylight
        blob = base64.b64decode(str(props.findtext(C.Timezone)))
        assert len(blob) == 172
        bias, standard, standard_bias = struct.unpack_from("<i", blob)[0], blob[68:84], blob[84:88]
        daylight, daylight_bias = blob[152:168], struct.unpack_from("<i", blob, 168)[0]
        assert (bias, standard_bias, daylight_bias) == (-60, bytes(4), -60)
        assert struct.unpack("<8H", standard)[1:5] == (10, 0, 5, 3)
        assert struct.unpack("<8H", daylight)[1:5] == (3, 0, 5, 2)

        # a contact made on the device, then changed there: both reach the store
        grace = models.Contact(first_name="Grace", last_name="Hopper", email1_address="grace@example.org",
                               mobile_phone_number="+1 555 0199")
        made = c.create_contact(contacts, keys[contacts], grace)
        assert made.status == "1" and made.server_id
        changed = c.apply_contact_changes(contacts, made.sync_key, [models.ContactChange(
            server_id=made.server_id, contact=models.Contact(
                first_name="Grace", last_name="Hopper", email1_address="grace@example.org",
                company_name="US Navy", job_title="Rear Admiral"))])
        assert changed.statuses == {made.server_id: "1"}
        after = c.sync_folder(contacts, changed.sync_key)  # the device's own changes are not echoed
        assert not after.added and not after.changed and not after.deleted
    check(session)
    people = {card.email1_address: card for card in vcard.read_vcards(export(server, user, "Contacts"))}
    assert set(people) == {"ada@example.org", "charles@example.org", "grace@example.org"}
    g = people["grace@example.org"]
    assert (g.first_name, g.last_name, g.company_name, g.job_title) == ("Grace", "Hopper", "US Navy", "Rear Admiral")
    assert not g.mobile_phone_number, "a 16.1 Change replaces the contact: the phone left off is gone"


# -- Our own client, 2.5 to 16.1 -----------------------------------------------------------------

def _collection(reply: Reply) -> Node:
    assert reply.status == 200 and reply.node is not None, reply
    collection = reply.node.find(AirSync.Collections, AirSync.Collection)
    assert collection is not None and collection.findtext(AirSync.Status) == "1", reply.xml
    return collection


class Device:
    """Our test client with one SyncKey per collection."""

    def __init__(self, client: Client, version: str) -> None:
        self.c, self.version = client, version
        self.keys: dict[str, str] = {}
        self.folders: dict[str, str] = {}

    async def start(self) -> None:
        await self.c.provision()
        r = await self.c.command("FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>')
        changes = r.node.find(FH.Changes) if r.node is not None else None
        assert changes is not None, r.xml
        self.folders = {str(a.findtext(FH.Type)): str(a.findtext(FH.ServerId)) for a in changes.findall(FH.Add)}

    async def sync(self, folder: str, klass: str, commands: str = "") -> Node:
        """One Sync of the collection (SyncKey 0 first); its Collection element."""
        if folder not in self.keys:
            self.keys[folder] = str(_collection(await self._sync(folder, klass, "0", "")).findtext(AirSync.SyncKey))
        collection = _collection(await self._sync(folder, klass, self.keys[folder], commands))
        self.keys[folder] = str(collection.findtext(AirSync.SyncKey))
        return collection

    def _sync(self, folder: str, klass: str, key: str, commands: str) -> Any:
        class_element = f"<Class>{klass}</Class>" if self.version in ("2.5", "12.1") else ""
        body = f"<GetChanges/><WindowSize>50</WindowSize><Commands>{commands}</Commands>" if key != "0" else ""
        if key != "0" and not commands:
            body = "<GetChanges/><WindowSize>50</WindowSize>"
        return self.c.command("Sync", f'<Sync xmlns="AirSync:"><Collections><Collection>{class_element}'
                                      f"<SyncKey>{key}</SyncKey><CollectionId>{folder}</CollectionId>{body}"
                                      "</Collection></Collections></Sync>")


def _adds(collection: Node) -> dict[str, Node]:
    """ApplicationData of the Adds by ServerId."""
    commands = collection.find(AirSync.Commands)
    adds = commands.findall(AirSync.Add) if commands is not None else []
    return {str(a.findtext(AirSync.ServerId)): a.find(AirSync.ApplicationData) for a in adds}  # type: ignore[misc]


@pytest.mark.parametrize("version", ["2.5", "12.1", "14.1", "16.1"])
def test_own_client_import_sync_change_export(server: Server, version: str, tmp_path: Path) -> None:
    tag = version.replace(".", "")
    user = f"pim{tag}@example.com"
    import_all(server, user, tmp_path)
    session = Session(f"own-client-pim-{version}", "eas.testing.client", version)
    device = Device(Client(session.transport(https(server)), user, PASSWORD, device_id=f"E2EPimOwn{tag}",
                           device_type="E2ETest", version=version), version)

    async def scenario() -> None:
        await device.start()
        calendar, contacts, tasks = device.folders["8"], device.folders["9"], device.folders["7"]
        events = _adds(await device.sync(calendar, "Calendar"))
        assert sorted(str(e.findtext(C.UID)) for e in events.values()) == ["day-1", "edges-1", "series-1"]
        holiday_id = next(i for i, e in events.items() if e.findtext(C.UID) == "day-1")
        holiday = events[holiday_id]
        assert (holiday.findtext(C.AllDayEvent), holiday.findtext(C.Subject)) == ("1", "Holiday")
        series = next(e for e in events.values() if e.findtext(C.UID) == "series-1")
        exceptions = series.find(C.Exceptions)
        assert exceptions is not None and len(exceptions.findall(C.Exception)) == 2
        people = _adds(await device.sync(contacts, "Contacts"))
        ada_id = next(i for i, p in people.items() if p.findtext(CT.Email1Address) == "ada@example.org")
        [(task_id, task)] = _adds(await device.sync(tasks, "Tasks")).items()
        assert task.findtext(T.Subject) == "File taxes"
        if version in ("14.1", "16.1"):  # Notes exist from 14.0
            [note] = _adds(await device.sync(device.folders["10"], "Notes")).values()
            assert note.findtext(N.Subject) == "Shopping"

        # changes on the device: the all-day event renamed, Ada's company, the task done
        start, end, zone = (str(holiday.findtext(t)) for t in (C.StartTime, C.EndTime, C.Timezone))
        changed = await device.sync(calendar, "Calendar", (
            f"<Change><ServerId>{holiday_id}</ServerId><ApplicationData xmlns:c=\"Calendar:\">"
            f"<c:Timezone>{zone}</c:Timezone><c:AllDayEvent>1</c:AllDayEvent><c:StartTime>{start}</c:StartTime>"
            f"<c:EndTime>{end}</c:EndTime><c:Subject>May Day</c:Subject><c:BusyStatus>0</c:BusyStatus>"
            "</ApplicationData></Change>"))
        _no_failed_responses(changed)
        changed = await device.sync(contacts, "Contacts", (
            f"<Change><ServerId>{ada_id}</ServerId><ApplicationData xmlns:p=\"Contacts:\">"
            "<p:FirstName>Ada</p:FirstName><p:LastName>Lovelace</p:LastName>"
            "<p:Email1Address>ada@example.org</p:Email1Address><p:CompanyName>Difference Engines</p:CompanyName>"
            "</ApplicationData></Change>"))
        _no_failed_responses(changed)
        changed = await device.sync(tasks, "Tasks", (
            f"<Change><ServerId>{task_id}</ServerId><ApplicationData xmlns:t=\"Tasks:\">"
            "<t:Subject>File taxes</t:Subject><t:Complete>1</t:Complete>"
            "<t:DateCompleted>2024-04-10T12:00:00.000Z</t:DateCompleted></ApplicationData></Change>"))
        _no_failed_responses(changed)

        # new items made on the device (a UID is the device's to give before 16.0)
        uid = "" if version == "16.1" else "<c:UID>device-1</c:UID>"
        added = await device.sync(calendar, "Calendar", (
            "<Add><ClientId>dev-event-1</ClientId><ApplicationData xmlns:c=\"Calendar:\">"
            f"<c:Timezone>{zone_blob('Europe/Berlin')}</c:Timezone><c:AllDayEvent>0</c:AllDayEvent>"
            "<c:StartTime>20240610T070000Z</c:StartTime><c:EndTime>20240610T080000Z</c:EndTime>"
            f"<c:Subject>Device meeting</c:Subject>{uid}<c:BusyStatus>2</c:BusyStatus></ApplicationData></Add>"))
        _added_ok(added)
        added = await device.sync(contacts, "Contacts", (
            "<Add><ClientId>dev-contact-1</ClientId><ApplicationData xmlns:p=\"Contacts:\">"
            "<p:FirstName>Grace</p:FirstName><p:LastName>Hopper</p:LastName>"
            "<p:Email1Address>grace@example.org</p:Email1Address><p:MobilePhoneNumber>+1 555 0199"
            "</p:MobilePhoneNumber></ApplicationData></Add>"))
        _added_ok(added)

    run(scenario())
    check(session)

    exported = vevents(export(server, user, "Calendar"))
    day = exported[("day-1", None)]
    assert str(day["SUMMARY"]) == "May Day"
    assert (day["DTSTART"].dt, day["DTEND"].dt) == (date(2024, 5, 1), date(2024, 5, 2))
    assert not isinstance(day["DTSTART"].dt, datetime), "still an all-day event"
    master = exported[("series-1", None)]
    assert str(master["SUMMARY"]) == "Weekly review" and str(master["DTSTART"].dt.tzinfo) == "Europe/Berlin"
    assert master["RRULE"]["FREQ"] == ["WEEKLY"] and master["RRULE"]["COUNT"] == [10]
    moved = [e for (uid, rid), e in exported.items() if uid == "series-1" and rid is not None]
    assert [str(e["SUMMARY"]) for e in moved] == ["Weekly review (moved)"]
    cards = {c.email1_address: c for c in vcard.read_vcards(export(server, user, "Contacts"))}
    assert cards["ada@example.org"].company_name == "Difference Engines"
    assert cards["charles@example.org"].last_name == "Babbage"
    grace = cards["grace@example.org"]
    assert (grace.first_name, grace.last_name, grace.mobile_phone_number) == ("Grace", "Hopper", "+1 555 0199")
    [made] = [e for e in exported.values() if str(e["SUMMARY"]) == "Device meeting"]
    assert made["DTSTART"].dt == datetime(2024, 6, 10, 7, tzinfo=UTC)
    assert made["DTEND"].dt == datetime(2024, 6, 10, 8, tzinfo=UTC)
    [todo] = icalendar.Calendar.from_ical(export(server, user, "Tasks")).walk("VTODO")
    assert str(todo["SUMMARY"]) == "File taxes" and str(todo.get("STATUS")) == "COMPLETED"


def _added_ok(collection: Node) -> None:
    """The device's one Add was taken: Status 1 and a ServerId for it."""
    responses = collection.find(AirSync.Responses)
    assert responses is not None
    [add] = responses.findall(AirSync.Add)
    assert add.findtext(AirSync.Status) == "1" and add.findtext(AirSync.ServerId), add


def _no_failed_responses(collection: Node) -> None:
    """A successful Change has no Responses entry, or one with Status 1."""
    responses = collection.find(AirSync.Responses)
    if responses is not None:
        statuses = [r.findtext(AirSync.Status) for r in responses.children]
        assert all(s == "1" for s in statuses), statuses
