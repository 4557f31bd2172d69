"""The reference store's calendar, contact, task and note items (eas/store/pim.py) against
real SQLite: FilterType windows, free/busy, occurrences, UIDs, moves, deletes, imports and
hostile input."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from eas.backend import BackendError, BusyPeriod, FolderNotFound, FolderType, ItemNotFound, QuotaExceeded
from eas.items.calendar import Calendar, EventException, Recurrence
from eas.items.contacts import Contact
from eas.items.notes import Note
from eas.items.tasks import Task
from eas.store import ReferenceStore
from eas.store import pim as pimstore
from eas.store.pim import UidExists
from eas.testing.backend_contract import BAD_IDS, run

pytestmark = pytest.mark.kernel_independent

ALICE, BOB = "alice@example.com", "bob@example.com"
BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)  # type: ignore[misc]


@pytest.fixture
def store(tmp_path: Path) -> ReferenceStore:
    s = ReferenceStore(tmp_path / "mail.db")
    s.add_user(ALICE, "a")
    s.add_user(BOB, "b")
    return s


def folder(store: ReferenceStore, name: str, user: str = ALICE) -> str:
    return store.folder_id(user, name)


def event(subject: str, start: datetime, hours: float = 1, **kw: object) -> Calendar:
    return Calendar(subject=subject, start=start, end=start + timedelta(hours=hours), **kw)  # type: ignore[arg-type]


def test_each_class_round_trips_through_the_store(store: ReferenceStore) -> None:
    items = {
        "Calendar": event("Dentist", berlin(2024, 5, 2, 8), timezone="Europe/Berlin", location="Main St", reminder=30),
        "Tasks": Task(subject="Report", due_date=datetime(2024, 5, 3, 17), utc_due_date=berlin(2024, 5, 3, 17),
                      importance=2, categories=["Work"]),
        "Notes": Note(subject="Idea", body="Write it down", categories=["x"]),
        "Contacts": Contact(first_name="Ada", last_name="Lovelace", email1_address="ada@example.org",
                            company_name="Engines", mobile_phone_number="+44 1"),
    }
    for name, item in items.items():
        fid = folder(store, name)
        item_id, stamp = run(store.add_item(ALICE, fid, item))
        assert run(store.item_stamps(ALICE, fid)) == {item_id: stamp}
        [got] = run(store.fetch_items(ALICE, fid, [item_id]))
        assert got.id == item_id and got.uid
        for field in ("subject", "location", "reminder", "importance", "categories", "due_date", "utc_due_date",
                      "body", "first_name", "last_name", "email1_address", "company_name", "mobile_phone_number"):
            if hasattr(item, field):
                assert getattr(got, field) == getattr(item, field), (name, field)
        # A device's change replaces the item; the UID stays.
        changed = type(item)()
        if hasattr(changed, "subject"):
            changed.subject = "Changed"  # type: ignore[union-attr]
        else:
            changed.first_name = "Changed"  # type: ignore[union-attr]
        new_stamp = run(store.change_item(ALICE, fid, item_id, changed))
        assert int(new_stamp) > int(stamp)
        [again] = run(store.fetch_items(ALICE, fid, [item_id]))
        assert again.uid == got.uid
        assert getattr(again, "subject", getattr(again, "first_name", None)) == "Changed"
        run(store.delete_item(ALICE, fid, item_id, permanently=False))
        assert run(store.item_stamps(ALICE, fid)) == {}
        assert run(store.fetch_items(ALICE, fid, [item_id])) == []
    # Deletes of these items are permanent: nothing went to Deleted Items.
    assert run(store.item_stamps(ALICE, folder(store, "Deleted Items"))) == {}


def test_filter_windows(store: ReferenceStore) -> None:
    cal = folder(store, "Calendar")
    now = datetime.now(UTC).replace(microsecond=0)
    since = now - timedelta(weeks=2)

    def add(item: Calendar) -> str:
        return run(store.add_item(ALICE, cal, item))[0]

    running = add(event("old weekly, still running", now - timedelta(days=730), timezone="Europe/Berlin",
                        recurrence=Recurrence(type=1)))
    ended = add(event("weekly, ended last year", now - timedelta(days=800),
                      recurrence=Recurrence(type=1, until=now - timedelta(days=400))))
    counted = add(event("daily, last one 6 days ago", now - timedelta(days=60),
                        recurrence=Recurrence(type=0, occurrences=55)))
    counted_out = add(event("daily, last one 20 days ago", now - timedelta(days=60),
                            recurrence=Recurrence(type=0, occurrences=41)))
    yesterday = add(event("yesterday", now - timedelta(days=1)))
    old = add(event("three weeks ago", now - timedelta(days=21)))
    long_all_day = add(Calendar(subject="holiday into the window", all_day=True, timezone="Europe/Berlin",
                                start=now - timedelta(days=16), end=now - timedelta(days=12)))
    old_all_day = add(Calendar(subject="holiday before it", all_day=True, start=now - timedelta(days=20),
                               end=now - timedelta(days=15)))
    undated = add(Calendar(subject="no start at all"))
    in_window = run(store.item_stamps(ALICE, cal, since))
    assert set(in_window) == {running, counted, yesterday, long_all_day, undated}
    assert {ended, counted_out, old, old_all_day}.isdisjoint(in_window)
    assert len(run(store.item_stamps(ALICE, cal))) == 9


def test_window_uses_the_last_occurrence_in_local_time_across_dst(store: ReferenceStore) -> None:
    cal = folder(store, "Calendar")
    # Mondays 09:00 Berlin from March 11 2024, four times: the last (April 1) is in summer
    # time, 07:00-08:00 UTC (in winter time it would end 09:00 UTC).
    item_id = run(store.add_item(ALICE, cal, event("weekly", berlin(2024, 3, 11, 9), timezone="Europe/Berlin",
                                                   recurrence=Recurrence(type=1, occurrences=4))))[0]
    assert item_id in run(store.item_stamps(ALICE, cal, datetime(2024, 4, 1, 7, 59, tzinfo=UTC)))
    assert item_id not in run(store.item_stamps(ALICE, cal, datetime(2024, 4, 1, 8, 0, 1, tzinfo=UTC)))
    # An all-day event ends at local midnight: 22:00 UTC in summer.
    day = run(store.add_item(ALICE, cal, Calendar(subject="day", all_day=True, timezone="Europe/Berlin",
                                                  start=berlin(2024, 7, 1, 0), end=berlin(2024, 7, 2, 0))))[0]
    assert day in run(store.item_stamps(ALICE, cal, datetime(2024, 7, 1, 21, 59, tzinfo=UTC)))
    assert day not in run(store.item_stamps(ALICE, cal, datetime(2024, 7, 1, 22, 0, 1, tzinfo=UTC)))


def test_incomplete_tasks_only(store: ReferenceStore) -> None:
    tasks = folder(store, "Tasks")
    open_id = run(store.add_item(ALICE, tasks, Task(subject="open")))[0]
    done_id = run(store.add_item(ALICE, tasks, Task(subject="done", complete=True,
                                                    date_completed=datetime(2024, 1, 1, tzinfo=UTC))))[0]
    assert set(run(store.item_stamps(ALICE, tasks, incomplete_only=True))) == {open_id}
    assert set(run(store.item_stamps(ALICE, tasks))) == {open_id, done_id}
    run(store.change_item(ALICE, tasks, open_id, Task(subject="open", complete=True)))
    assert run(store.item_stamps(ALICE, tasks, incomplete_only=True)) == {}


def test_free_busy_across_a_recurrence_with_exceptions(store: ReferenceStore) -> None:
    cal = folder(store, "Calendar")
    series = event("daily", berlin(2024, 3, 4, 9), timezone="Europe/Berlin",
                   recurrence=Recurrence(type=0, occurrences=5), exceptions=[
                       EventException(original_start=berlin(2024, 3, 5, 9), start=berlin(2024, 3, 5, 14),
                                      end=berlin(2024, 3, 5, 15), busy_status=1),
                       EventException(original_start=berlin(2024, 3, 6, 9), deleted=True),
                       EventException(original_start=berlin(2024, 3, 7, 9), busy_status=0),
                   ])
    run(store.add_item(ALICE, cal, series))
    run(store.add_item(ALICE, cal, event("free", berlin(2024, 3, 4, 12), busy_status=0)))
    run(store.add_item(ALICE, cal, event("cancelled", berlin(2024, 3, 4, 13), meeting_status=5,
                                         organizer_email=ALICE)))
    run(store.add_item(ALICE, cal, event("out of office", berlin(2024, 3, 8, 12), hours=4, busy_status=3)))
    run(store.add_item(ALICE, cal, event("after the window", berlin(2024, 3, 20, 9))))
    run(store.add_item(BOB, folder(store, "Calendar", BOB), event("bob's", berlin(2024, 3, 4, 10))))
    second = run(store.create_folder(ALICE, "", "Side calendar", FolderType.USER_CALENDAR))
    run(store.add_item(ALICE, second.id, event("side", berlin(2024, 3, 6, 16), busy_status=4)))
    found = run(store.free_busy(BOB, "Alice@Example.com", berlin(2024, 3, 4, 0), berlin(2024, 3, 9, 0)))
    assert found == [
        BusyPeriod(berlin(2024, 3, 4, 9), berlin(2024, 3, 4, 10), 2),
        BusyPeriod(berlin(2024, 3, 5, 14), berlin(2024, 3, 5, 15), 1),
        BusyPeriod(berlin(2024, 3, 6, 16), berlin(2024, 3, 6, 17), 4),
        BusyPeriod(berlin(2024, 3, 8, 9), berlin(2024, 3, 8, 10), 2),
        BusyPeriod(berlin(2024, 3, 8, 12), berlin(2024, 3, 8, 16), 3),
    ]
    assert run(store.free_busy(BOB, "nobody@example.com", berlin(2024, 3, 4), berlin(2024, 3, 9))) is None
    assert run(store.free_busy(ALICE, BOB, berlin(2024, 3, 5), berlin(2024, 3, 9))) == []


def test_occurrence_change_and_delete(store: ReferenceStore) -> None:
    cal = folder(store, "Calendar")
    item_id, stamp = run(store.add_item(ALICE, cal, event("standup", berlin(2024, 1, 1, 9), hours=0.25,
                                                          timezone="Europe/Berlin",
                                                          recurrence=Recurrence(type=0, occurrences=5))))
    one = Calendar(subject="standup, late", start=berlin(2024, 1, 2, 11), end=berlin(2024, 1, 2, 11, 30),
                   instance_id=berlin(2024, 1, 2, 9))
    stamp2 = run(store.change_item(ALICE, cal, item_id, one))
    stamp3 = run(store.delete_occurrence(ALICE, cal, item_id, berlin(2024, 1, 4, 9)))
    assert int(stamp) < int(stamp2) < int(stamp3)
    [got] = run(store.fetch_items(ALICE, cal, [item_id]))
    assert got.subject == "standup" and got.recurrence is not None
    assert [(e.original_start, e.deleted, e.subject, e.start) for e in got.exceptions] == [
        (berlin(2024, 1, 2, 9), False, "standup, late", berlin(2024, 1, 2, 11)),
        (berlin(2024, 1, 4, 9), True, None, None)]
    with pytest.raises(ItemNotFound):
        run(store.delete_occurrence(ALICE, cal, item_id, berlin(2024, 1, 9, 9)))  # past the last one
    with pytest.raises(ItemNotFound):
        run(store.change_item(ALICE, cal, item_id, Calendar(subject="x", instance_id=berlin(2024, 1, 3, 10))))
    single = run(store.add_item(ALICE, cal, event("once", berlin(2024, 1, 1, 9))))[0]
    with pytest.raises(ItemNotFound):
        run(store.delete_occurrence(ALICE, cal, single, berlin(2024, 1, 1, 9)))
    [after] = run(store.fetch_items(ALICE, cal, [item_id]))
    assert after == got  # the refused changes changed nothing


def test_uid_is_unique_per_user_among_events(store: ReferenceStore) -> None:
    cal = folder(store, "Calendar")
    item_id = run(store.add_item(ALICE, cal, event("a", berlin(2024, 1, 1, 9), uid="same-uid")))[0]
    assert run(store.find_event(ALICE, "same-uid")) == (cal, item_id)
    assert run(store.find_event(ALICE, "other")) is None
    assert run(store.find_event(BOB, "same-uid")) is None
    side = run(store.create_folder(ALICE, "", "Side", FolderType.USER_CALENDAR))
    for fid in (cal, side.id):
        with pytest.raises(UidExists):
            run(store.add_item(ALICE, fid, event("b", berlin(2024, 1, 2, 9), uid="same-uid")))
    # Another user, and a task, may carry the same UID.
    run(store.add_item(BOB, folder(store, "Calendar", BOB), event("c", berlin(2024, 1, 1, 9), uid="same-uid")))
    run(store.add_item(ALICE, folder(store, "Tasks"), Task(subject="t", uid="same-uid")))
    assert len(run(store.item_stamps(ALICE, cal))) == 1


def test_move_between_folders_of_one_class(store: ReferenceStore) -> None:
    cal = folder(store, "Calendar")
    side = run(store.create_folder(ALICE, "", "Side", FolderType.USER_CALENDAR))
    item_id = run(store.add_item(ALICE, cal, event("moving", berlin(2024, 1, 1, 9), uid="mv")))[0]
    seen: list[tuple[str, list[str]]] = []

    def watcher(user: str, folder_ids: Collection[str]) -> None:
        seen.append((user, list(folder_ids)))

    store.watch(watcher)
    new_id = run(store.move_item(ALICE, item_id, cal, side.id))
    assert run(store.item_stamps(ALICE, cal)) == {}
    assert list(run(store.item_stamps(ALICE, side.id))) == [new_id]
    assert run(store.find_event(ALICE, "mv")) == (side.id, new_id)
    assert seen == [(ALICE, sorted([cal, side.id], key=lambda v: (len(v), v)))]
    with pytest.raises(FolderNotFound):
        run(store.move_item(ALICE, new_id, side.id, folder(store, "Tasks")))
    with pytest.raises(FolderNotFound):
        run(store.move_item(ALICE, new_id, side.id, folder(store, "Inbox")))
    assert list(run(store.item_stamps(ALICE, side.id))) == [new_id]


def test_empty_and_delete_folder(store: ReferenceStore) -> None:
    notes = folder(store, "Notes")
    for n in range(3):
        run(store.add_item(ALICE, notes, Note(subject=f"n{n}")))
    run(store.empty_folder(ALICE, notes, delete_subfolders=False))
    assert run(store.item_stamps(ALICE, notes)) == {}
    side = run(store.create_folder(ALICE, "", "Side", FolderType.USER_CALENDAR))
    run(store.add_item(ALICE, side.id, event("gone", berlin(2024, 1, 1, 9), uid="gone")))
    run(store.delete_folder(ALICE, side.id))
    assert run(store.find_event(ALICE, "gone")) is None
    run(store.add_item(ALICE, folder(store, "Calendar"), event("again", berlin(2024, 1, 1, 9), uid="gone")))


def test_hostile_input(store: ReferenceStore, tmp_path: Path) -> None:
    cal = folder(store, "Calendar")
    item_id = run(store.add_item(ALICE, cal, event("keep", berlin(2024, 1, 1, 9))))[0]
    before = run(store.fetch_items(ALICE, cal, [item_id]))
    for bad in BAD_IDS:
        assert run(store.fetch_items(ALICE, cal, [bad])) == []
        with pytest.raises(ItemNotFound):
            run(store.change_item(ALICE, cal, bad, event("x", berlin(2024, 1, 1, 9))))
        with pytest.raises(ItemNotFound):
            run(store.delete_item(ALICE, cal, bad, permanently=True))
        with pytest.raises(FolderNotFound):
            run(store.add_item(ALICE, bad, event("x", berlin(2024, 1, 1, 9))))
    # Another user's item and folder are unknown here.
    with pytest.raises(ItemNotFound):
        run(store.delete_item(BOB, folder(store, "Calendar", BOB), item_id, permanently=True))
    with pytest.raises(FolderNotFound):
        run(store.item_stamps(BOB, cal))
    # A task is no event; a mail folder holds no items.
    with pytest.raises(BackendError) as info:
        run(store.add_item(ALICE, cal, Task(subject="wrong")))
    assert info.value.http_status == 400
    with pytest.raises(FolderNotFound):
        run(store.add_item(ALICE, folder(store, "Inbox"), Note(subject="n")))
    with pytest.raises(QuotaExceeded):
        run(store.add_item(ALICE, cal, event("big", berlin(2024, 1, 1, 9), body="x" * (pimstore.MAX_ITEM + 1))))
    # Control characters and odd text survive as text.
    odd = "line\r\nbreak; comma, colon: \\ back\x00slash \udcff"
    odd_id = run(store.add_item(ALICE, cal, event(odd, berlin(2024, 1, 1, 9), location=odd)))[0]
    [got] = run(store.fetch_items(ALICE, cal, [odd_id]))
    assert got.subject == got.location == "line\nbreak; comma, colon: \\ backslash ?"  # one kind of line break
    assert run(store.fetch_items(ALICE, cal, [item_id])) == before


def test_search_column_and_contacts(store: ReferenceStore, tmp_path: Path) -> None:
    contacts = folder(store, "Contacts")
    run(store.add_item(ALICE, contacts, Contact(first_name="Ada", last_name="LOVELACE",
                                                email1_address="Ada@Example.org", company_name="Engines")))
    with sqlite3.connect(tmp_path / "mail.db") as conn:
        [(search,)] = conn.execute("SELECT search FROM items").fetchall()
    assert set(search.split("\n")) >= {"ada", "lovelace", "ada@example.org", "engines", "ada lovelace"}


def test_import_is_all_or_nothing_and_keeps_what_eas_cannot_express(store: ReferenceStore) -> None:
    odd = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:edges\r\nDTSTAMP:20240101T000000Z\r\n"
           "DTSTART:20240101T090000Z\r\nDTEND:20240101T100000Z\r\n"
           "RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1,-1\r\nSUMMARY:Edges\r\nX-GOOGLE-CONFERENCE:x\r\n"
           "END:VEVENT\r\nEND:VCALENDAR\r\n")
    broken = odd.replace("UID:edges", "UID:broken").replace("DTSTART:20240101T090000Z", "DTSTART:2024")
    with pytest.raises(ValueError):
        store.import_items(ALICE, "Calendar", [odd, broken])
    assert store.export_items(ALICE, "Calendar") == []
    with pytest.raises(ValueError):
        store.import_items(ALICE, "Inbox", [odd])
    with pytest.raises(ValueError):
        store.import_items("nobody@example.com", "Calendar", [odd])
    [item_id] = store.import_items(ALICE, "Calendar", [odd])
    assert store.export_items(ALICE, "Calendar") == [odd]
    cal = folder(store, "Calendar")
    # The device sees the closest pattern; its change of the subject keeps the real rule.
    [got] = run(store.fetch_items(ALICE, cal, [item_id]))
    assert got.recurrence is not None and got.recurrence.type == 3
    got.subject = "Edges, renamed"
    run(store.change_item(ALICE, cal, item_id, got))
    [text] = store.export_items(ALICE, "Calendar")
    assert "BYSETPOS=1,-1" in text and "Edges\\, renamed" in text
    # Endless: in every window.
    assert item_id in run(store.item_stamps(ALICE, cal, datetime.now(UTC)))
