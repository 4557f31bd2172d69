"""``eas import`` / ``eas export`` as a subprocess on a real data dir: round trips of .ics
and .vcf files, the wake-up of a running server, and every refusal."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from eas.cli import main
from eas.cli import pim as cli_pim
from eas.items import ical, vcard
from eas.items.calendar import Calendar
from eas.notify import UnixSocketNotifier
from eas.server import open_store

pytestmark = pytest.mark.kernel_independent

ALICE, BOB = "alice@example.com", "bob@example.com"

EVENTS_AND_TASKS = """BEGIN:VCALENDAR
PRODID:-//Mozilla.org/NONSGML Mozilla Calendar V1.1//EN
VERSION:2.0
BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:DAYLIGHT
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
END:STANDARD
END:VTIMEZONE
BEGIN:VEVENT
UID:series-1
DTSTAMP:20240301T080000Z
SUMMARY:Weekly review
DTSTART;TZID=Europe/Berlin:20240304T090000
DTEND;TZID=Europe/Berlin:20240304T100000
RRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=10
EXDATE;TZID=Europe/Berlin:20240318T090000
ORGANIZER;CN=Ann:mailto:ann@example.com
ATTENDEE;PARTSTAT=ACCEPTED;ROLE=REQ-PARTICIPANT;CN=Alice:mailto:alice@example.com
END:VEVENT
BEGIN:VEVENT
UID:series-1
DTSTAMP:20240301T080000Z
RECURRENCE-ID;TZID=Europe/Berlin:20240311T090000
SUMMARY:Weekly review (moved)
DTSTART;TZID=Europe/Berlin:20240311T140000
DTEND;TZID=Europe/Berlin:20240311T150000
END:VEVENT
BEGIN:VEVENT
UID:edges-1
DTSTAMP:20240301T080000Z
SUMMARY:First and last workday
DTSTART:20240101T090000Z
DTEND:20240101T093000Z
RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1,-1
END:VEVENT
BEGIN:VEVENT
UID:day-1
DTSTAMP:20240301T080000Z
SUMMARY:Holiday
DTSTART;VALUE=DATE:20240501
DTEND;VALUE=DATE:20240502
TRANSP:TRANSPARENT
END:VEVENT
BEGIN:VTODO
UID:todo-1
DTSTAMP:20240301T080000Z
SUMMARY:File taxes
DUE:20240415T160000Z
PRIORITY:1
END:VTODO
END:VCALENDAR
"""

CONTACTS = """BEGIN:VCARD
VERSION:3.0
N:Lovelace;Ada;;;
FN:Ada Lovelace
EMAIL;TYPE=INTERNET,WORK:ada@example.org
TEL;TYPE=CELL:+44 20 1234
ORG:Analytical Engines
UID:ada-1
END:VCARD
BEGIN:VCARD
VERSION:4.0
FN:Charles Babbage
N:Babbage;Charles;;;
EMAIL:charles@example.org
UID:charles-1
END:VCARD
"""


def eas(data: Path, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eas.cli", *args, "--data-dir", str(data)], input=stdin.decode(),
                          capture_output=True, check=False, text=True, timeout=120, env=dict(os.environ))


@pytest.fixture
def data(tmp_path: Path) -> Path:
    store = open_store(tmp_path / "data")
    for user in (ALICE, BOB):
        store.add_user(user, "secret")
    store.close()
    return tmp_path / "data"


def events_of(text: str) -> list[Calendar]:
    """The events of an .ics without what differs between two imports (ids)."""
    return sorted((replace(e, id="") for e in ical.read_ical(text) if isinstance(e, Calendar)), key=lambda e: e.uid)


def test_import_export_import_gives_the_same_items(data: Path, tmp_path: Path) -> None:
    source = tmp_path / "thunderbird.ics"
    source.write_text(EVENTS_AND_TASKS)
    done = eas(data, "import", ALICE, str(source))
    assert done.returncode == 0, done.stderr
    assert "imported 3 items into alice@example.com Calendar" in done.stdout
    assert "imported 1 item into alice@example.com Tasks" in done.stdout
    first = tmp_path / "alice.ics"
    out = eas(data, "export", ALICE, "calendar", "-o", str(first))
    assert out.returncode == 0, out.stderr
    assert events_of(first.read_text()) == events_of(EVENTS_AND_TASKS)
    assert "BYSETPOS=1,-1" in first.read_text()  # the rule EAS cannot express, as imported
    assert eas(data, "import", BOB, str(first)).returncode == 0
    second = eas(data, "export", BOB, "Calendar")
    assert second.returncode == 0
    assert events_of(second.stdout) == events_of(first.read_text())
    tasks = eas(data, "export", ALICE, "Tasks")
    [task] = ical.read_ical(tasks.stdout)
    assert task.subject == "File taxes" and task.importance == 2  # type: ignore[union-attr]


def test_vcard_round_trip(data: Path, tmp_path: Path) -> None:
    source = tmp_path / "phone.vcf"
    source.write_text(CONTACTS.rstrip("\n"))  # no line break after the last END:VCARD
    done = eas(data, "import", ALICE, str(source))
    assert done.returncode == 0, done.stderr
    assert "imported 2 items into alice@example.com Contacts" in done.stdout
    exported = eas(data, "export", ALICE, "Contacts")
    assert exported.returncode == 0
    assert eas(data, "import", BOB, "-", stdin=exported.stdout.encode()).returncode == 0
    again = eas(data, "export", BOB, "Contacts").stdout
    names = [(c.first_name, c.last_name, c.email1_address) for c in vcard.read_vcards(again)]
    assert names == [("Ada", "Lovelace", "ada@example.org"), ("Charles", "Babbage", "charles@example.org")]
    assert vcard.read_vcards(again) == vcard.read_vcards(exported.stdout) == vcard.read_vcards(CONTACTS)


def test_import_wakes_a_running_server(data: Path, tmp_path: Path) -> None:
    source = tmp_path / "one.ics"
    source.write_text(EVENTS_AND_TASKS)
    store = open_store(data)
    calendar_id, tasks_id = store.folder_id(ALICE, "Calendar"), store.folder_id(ALICE, "Tasks")
    store.close()

    async def scenario() -> list[tuple[str, tuple[str, ...]]]:
        got: list[tuple[str, tuple[str, ...]]] = []
        arrived = asyncio.Event()

        def callback(user: str, folders: object) -> None:
            got.append((user, tuple(folders)))  # type: ignore[arg-type]
            arrived.set()

        listener = UnixSocketNotifier(data / "notify.sock")
        await listener.subscribe(callback)
        try:
            done = await asyncio.to_thread(eas, data, "import", ALICE, str(source))
            assert done.returncode == 0, done.stderr
            await asyncio.wait_for(arrived.wait(), 10)
        finally:
            await listener.close()
        return got

    got = asyncio.run(scenario())
    assert got == [(ALICE, tuple(sorted([calendar_id, tasks_id], key=lambda v: (len(v), v))))]


@pytest.mark.parametrize(("args", "content", "message"), [
    (("nobody@example.com",), EVENTS_AND_TASKS, "no such user"),
    ((ALICE, "--folder", "No such folder"), EVENTS_AND_TASKS.replace("BEGIN:VTODO", "BEGIN:X-NOTHING")
     .replace("END:VTODO", "END:X-NOTHING"), "no folder"),
    ((ALICE, "--folder", "Inbox"), CONTACTS, "holds mail"),
    ((ALICE, "--folder", "Calendar"), EVENTS_AND_TASKS, "one kind of item"),
    ((ALICE, "--folder", "Tasks"), CONTACTS, "nothing imported"),
    ((ALICE,), "just some text\n", "neither iCalendar"),
    ((ALICE,), "", "empty"),
    ((ALICE,), "BEGIN:VCALENDAR\nVERSION:2.0\nEND:VCALENDAR\n", "holds no event"),
    ((ALICE,), "BEGIN:VCARD\nFN:x\n", "without END:VCARD"),
    ((ALICE,), EVENTS_AND_TASKS.replace("DTSTART;VALUE=DATE:20240501", "DTSTART;VALUE=DATE:2024-05-01x"),
     "bad DTSTART"),
])
def test_refusals_import_nothing(data: Path, tmp_path: Path, args: tuple[str, ...], content: str,
                                 message: str) -> None:
    source = tmp_path / "in.ics"
    source.write_text(content)
    done = eas(data, "import", args[0], str(source), *args[1:])
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert stored(data) == 0


def stored(data: Path) -> int:
    """How many items alice's calendar, tasks and contacts hold."""
    store = open_store(data)
    try:
        return sum(len(store.export_items(ALICE, folder)) for folder in ("Calendar", "Tasks", "Contacts"))
    finally:
        store.close()


def test_second_import_of_the_same_events_is_refused_whole(data: Path, tmp_path: Path) -> None:
    source = tmp_path / "in.ics"
    source.write_text(EVENTS_AND_TASKS)
    assert eas(data, "import", ALICE, str(source)).returncode == 0
    before = eas(data, "export", ALICE, "Tasks").stdout
    again = eas(data, "import", ALICE, str(source))
    assert again.returncode == 2 and "UID 'series-1' exists" in again.stderr
    assert eas(data, "export", ALICE, "Tasks").stdout == before  # the task of the refused file is not there


def test_other_errors(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> None:
    missing = eas(data, "import", ALICE, str(tmp_path / "missing.ics"))
    assert missing.returncode == 1 and "No such file" in missing.stderr
    assert eas(data, "export", ALICE, "Inbox").returncode == 2
    assert eas(data, "export", "nobody@example.com", "Calendar").returncode == 2
    not_utf8 = tmp_path / "latin1.vcf"
    not_utf8.write_bytes(b"BEGIN:VCARD\nFN:J\xfcrgen\nEND:VCARD\n")
    refused = eas(data, "import", ALICE, str(not_utf8))
    assert refused.returncode == 2 and "not UTF-8" in refused.stderr
    # Oversized input is refused before it is parsed (the limit made small here).
    big = tmp_path / "big.ics"
    big.write_text(EVENTS_AND_TASKS)
    monkeypatch.setattr(cli_pim, "MAX_IMPORT", 100)
    assert main(["import", ALICE, str(big), "--data-dir", str(data)]) == 2
    assert "larger than" in capsys.readouterr().err
    assert stored(data) == 0


def test_export_of_device_events_carries_their_vtimezone(data: Path) -> None:
    from datetime import UTC, datetime

    store = open_store(data)
    start = datetime(2024, 7, 1, 7, tzinfo=UTC)
    asyncio.run(store.add_item(ALICE, store.folder_id(ALICE, "Calendar"),
                               Calendar(subject="From a phone", start=start, end=start.replace(hour=8),
                                        timezone="America/New_York")))
    store.close()
    out = eas(data, "export", ALICE, "Calendar")
    assert out.returncode == 0, out.stderr
    assert "BEGIN:VTIMEZONE\nTZID:America/New_York\n" in out.stdout  # (text mode reads CRLF as LF)
    assert "DTSTART;TZID=America/New_York:20240701T030000" in out.stdout
    [event] = ical.read_ical(out.stdout)
    assert isinstance(event, Calendar) and event.start == start and event.timezone == "America/New_York"
