"""ReferenceStore.item_stamps keeps large folders' answers: they must never be stale,
whichever connection or process changed the store, and must come in the same order
as a fresh query."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from eas.backend import EmailChange, Flag, FolderType
from eas.store import ReferenceStore
from eas.testing.backend_contract import message

ALICE = "alice@example.com"
pytestmark = pytest.mark.kernel_independent


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReferenceStore]:
    s = ReferenceStore(tmp_path / "mail.db")
    s.add_user(ALICE, "pw")
    s.deliver(ALICE, message("seed"))
    # 600 more rows, cloned in SQL (a date every 10 minutes back from the seed's): over
    # the size from which answers are kept.
    s._conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600) "
        "INSERT INTO messages (user_id, folder_id, modseq, date_received, subject) "
        "SELECT m.user_id, m.folder_id, 1000 + n.i, m.date_received - n.i * 600, 'clone' FROM messages m, n")
    yield s
    s.close()


def fresh(store: ReferenceStore, folder: str, since: datetime | None = None) -> list[tuple[str, str]]:
    """What a query of its own gives, in the order the index gives (date, modseq, id)."""
    fid = int(folder)
    if since is None:
        rows = store._conn.execute("SELECT id, modseq FROM messages WHERE folder_id = ? "
                                   "ORDER BY date_received, modseq, id", (fid,)).fetchall()
    else:
        rows = store._conn.execute("SELECT id, modseq FROM messages WHERE folder_id = ? AND date_received >= ? "
                                   "ORDER BY date_received, modseq, id", (fid, int(since.timestamp()))).fetchall()
    return [(str(i), str(s)) for i, s in rows]


def stamps(store: ReferenceStore, folder: str, since: datetime | None = None) -> list[tuple[str, str]]:
    return list(asyncio.run(store.item_stamps(ALICE, folder, since)).items())


def test_same_answer_and_order_as_a_query(store: ReferenceStore) -> None:
    inbox = store.folder_id(ALICE, "Inbox")
    first = stamps(store, inbox)
    assert len(first) == 601
    assert first == fresh(store, inbox)
    assert stamps(store, inbox) == first  # kept
    newest = datetime.fromtimestamp(int(store._conn.execute("SELECT max(date_received) FROM messages")
                                        .fetchone()[0]), UTC)
    for hours in (0, 1, 5, 24, 24 * 7, 24 * 365):
        since = newest - timedelta(hours=hours)
        assert stamps(store, inbox, since) == fresh(store, inbox, since), hours


def test_callers_may_change_what_they_get(store: ReferenceStore) -> None:
    inbox = store.folder_id(ALICE, "Inbox")
    got = asyncio.run(store.item_stamps(ALICE, inbox))
    got.clear()
    assert len(stamps(store, inbox)) == 601


def test_own_changes_are_seen(store: ReferenceStore) -> None:
    inbox = store.folder_id(ALICE, "Inbox")
    trash = store.folder_id(ALICE, "Deleted Items")
    before = dict(stamps(store, inbox))
    new = store.deliver(ALICE, message("new"))
    after = dict(stamps(store, inbox))
    assert set(after) == set(before) | {new}
    stamp = asyncio.run(store.change_email(ALICE, inbox, new, EmailChange(flag=Flag(status=2))))
    assert dict(stamps(store, inbox))[new] == stamp
    asyncio.run(store.delete_item(ALICE, inbox, new, permanently=False))
    assert new not in dict(stamps(store, inbox))
    assert stamps(store, inbox) == fresh(store, inbox)
    assert [i for i, _ in stamps(store, trash)] == [new]


def test_changes_of_another_connection_are_seen(store: ReferenceStore, tmp_path: Path) -> None:
    inbox = store.folder_id(ALICE, "Inbox")
    stamps(store, inbox)
    other = ReferenceStore(tmp_path / "mail.db")
    try:
        new = other.deliver(ALICE, message("from elsewhere"))
        assert new in dict(stamps(store, inbox))
        victim = fresh(store, inbox)[0][0]
        asyncio.run(other.delete_item(ALICE, inbox, victim, permanently=True))
        assert victim not in dict(stamps(store, inbox))
        assert stamps(store, inbox) == fresh(store, inbox)
    finally:
        other.close()


def test_changes_of_another_process_are_seen(store: ReferenceStore, tmp_path: Path) -> None:
    inbox = store.folder_id(ALICE, "Inbox")
    before = stamps(store, inbox)
    script = ("import asyncio, sys; from eas.store import ReferenceStore; s = ReferenceStore(sys.argv[1]); "
              "asyncio.run(s.empty_folder(sys.argv[2], sys.argv[3], delete_subfolders=False))")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "mail.db"), ALICE, inbox], check=True)
    assert before and stamps(store, inbox) == []


def test_a_wider_window_after_a_narrower_one_is_read_again(store: ReferenceStore) -> None:
    inbox = store.folder_id(ALICE, "Inbox")
    newest = datetime.fromtimestamp(int(store._conn.execute("SELECT max(date_received) FROM messages")
                                        .fetchone()[0]), UTC)
    narrow = stamps(store, inbox, newest - timedelta(hours=50))  # 300 mails: kept
    assert len(narrow) == 301
    wide = stamps(store, inbox, newest - timedelta(hours=80))
    assert len(wide) == 481 and wide == fresh(store, inbox, newest - timedelta(hours=80))
    assert len(stamps(store, inbox)) == 601


def test_many_folders_keep_a_bounded_number(store: ReferenceStore) -> None:
    folders: list[str] = []
    for n in range(20):
        made = asyncio.run(store.create_folder(ALICE, "", f"Box {n}", FolderType.USER_MAIL))
        folders.append(made.id)
        store._conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) "
            "INSERT INTO messages (user_id, folder_id, modseq, date_received, subject) "
            "SELECT 1, ?, 5000 + i, i, 'x' FROM n", (int(made.id),))
    for f in folders:
        assert len(stamps(store, f)) == 300
    assert len(store._stamps) <= 16
    for f in folders:
        assert stamps(store, f) == fresh(store, f)
