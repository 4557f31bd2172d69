"""The calendar, contact, task and note items of ``ReferenceStore`` (table ``items``).

An item is kept as text: iCalendar (``eas.items.ical``: a VCALENDAR with one VEVENT and
its overrides, one VTODO or one VJOURNAL) or a vCard (``eas.items.vcard``). What a file
import holds beyond EAS (an RRULE EAS cannot express, foreign properties) is kept as
imported until a device changes the item. The columns beside the text are what listing
needs, rewritten on every write: ``starts``/``ends`` the first start and the last end of
an event in epoch seconds (``ends`` NULL for a series without end), ``complete`` for
tasks, ``search`` lower-case names and addresses for directory lookups.

Deletes are permanent (Deleted Items is for mail). A moved item keeps its id.
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from eas.backend import BackendError, BusyPeriod, FolderNotFound, FolderType, ItemNotFound, QuotaExceeded
from eas.store import reference

if TYPE_CHECKING:
    from eas.backend import Item

# The item class a folder type holds (as ``eas.backend.FOLDER_CLASS``, without mail).
PIM_TYPES: dict[int, str] = {
    FolderType.CALENDAR: "Calendar", FolderType.USER_CALENDAR: "Calendar",
    FolderType.CONTACTS: "Contacts", FolderType.USER_CONTACTS: "Contacts",
    FolderType.TASKS: "Tasks", FolderType.USER_TASKS: "Tasks",
    FolderType.NOTES: "Notes", FolderType.USER_NOTES: "Notes",
}
_CALENDAR_TYPES = (int(FolderType.CALENDAR), int(FolderType.USER_CALENDAR))

MAX_ITEM = 8 * 1024 * 1024  # characters of one stored item (a contact's photo is the big part)
MAX_ITEMS_PER_FOLDER = 100_000


class UidExists(BackendError):
    """An event with this UID is already in the user's calendars (the Sync layer decides
    whether that is a repeat or an update)."""

    http_status = 409


class PimStore:
    """The items part of ``ReferenceStore`` (which supplies ``_tx``, ``_read``,
    ``_user_id``, ``_folder``, ``_folder_by_path`` and ``_next_stamp``)."""

    if TYPE_CHECKING:
        _tx: Callable[..., contextlib.AbstractContextManager[sqlite3.Connection]]
        _read: Callable[[], contextlib.AbstractContextManager[sqlite3.Connection]]
        _user_id: Callable[[sqlite3.Connection, str], int]
        _folder: Callable[[sqlite3.Connection, int, str], tuple[int, int | None, str, int, bool]]
        _folder_by_path: Callable[[sqlite3.Connection, int, str], int]
        _next_stamp: Callable[[sqlite3.Connection], int]

    # -- plumbing ------------------------------------------------------------------------

    def _pim_folder(self, conn: sqlite3.Connection, user_id: int, folder_id: str) -> tuple[int, str]:
        """``(folder id, item class)`` of a calendar, contacts, tasks or notes folder."""
        fid, _, _, type, _ = self._folder(conn, user_id, folder_id)
        cls = PIM_TYPES.get(type)
        if cls is None:
            raise FolderNotFound(f"folder {folder_id!r} holds no calendar, contact, task or note items")
        return fid, cls

    def is_pim_folder(self, user: str, folder_id: str) -> bool:
        """Whether this folder of the user holds items of this module (False also for an
        unknown user or folder, whose errors the caller's own path reports)."""
        with self._read() as conn:
            try:
                user_id = self._user_id(conn, user)
                return self._folder(conn, user_id, folder_id)[3] in PIM_TYPES
            except BackendError:
                return False

    @staticmethod
    def _row(conn: sqlite3.Connection, fid: int, item_id: str) -> tuple[int, str, str]:
        """``(id, uid, data)`` of an item of this folder, else ItemNotFound."""
        iid = _int_id(item_id)
        row = None if iid is None else conn.execute(
            "SELECT id, uid, data FROM items WHERE id = ? AND folder_id = ?", (iid, fid)).fetchone()
        if row is None:
            raise ItemNotFound(f"no item {item_id!r} in that folder")
        return int(row[0]), str(row[1]), str(row[2])

    def _write(self, conn: sqlite3.Connection, user_id: int, fid: int, cls: str, text: str, uid: str,
               iid: int | None = None, columns: _Columns | None = None) -> tuple[int, int]:
        """Insert (``iid`` None) or replace an item's text and listing columns (``columns``
        when the caller has them): ``(id, stamp)``."""
        if len(text) > MAX_ITEM:
            raise QuotaExceeded(f"item larger than {MAX_ITEM} characters")
        starts, ends, complete, search, _ = columns or _columns(cls, text)
        stamp = self._next_stamp(conn)
        if iid is None:
            if conn.execute("SELECT count(*) FROM items WHERE folder_id = ?", (fid,)).fetchone()[0] >= \
                    MAX_ITEMS_PER_FOLDER:
                raise QuotaExceeded(f"folder holds {MAX_ITEMS_PER_FOLDER} items")
            if cls == "Calendar":
                self._check_uid(conn, user_id, uid, None)
            iid = int(conn.execute(
                "INSERT INTO items (user_id, folder_id, modseq, uid, data, starts, ends, complete, search) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (user_id, fid, stamp, uid, text, starts, ends, complete, search)).fetchone()[0])
        else:
            conn.execute("UPDATE items SET modseq = ?, uid = ?, data = ?, starts = ?, ends = ?, complete = ?, "
                         "search = ? WHERE id = ?", (stamp, uid, text, starts, ends, complete, search, iid))
        return iid, stamp

    @staticmethod
    def _check_uid(conn: sqlite3.Connection, user_id: int, uid: str, own: int | None) -> None:
        row = conn.execute(
            "SELECT i.id FROM items i JOIN folders f ON f.id = i.folder_id WHERE i.user_id = ? AND i.uid = ? "
            f"AND f.type IN ({','.join('?' * len(_CALENDAR_TYPES))})", (user_id, uid, *_CALENDAR_TYPES)).fetchone()
        if row is not None and row[0] != own:
            raise UidExists(f"an event with UID {uid!r} exists")

    # -- Backend -------------------------------------------------------------------------

    async def _pim_item_stamps(self, user: str, folder_id: str, since: datetime | None = None, *,
                               incomplete_only: bool = False) -> dict[str, str]:
        """Events that end (their last occurrence) on or after ``since``; incomplete tasks
        when asked; every contact and note."""
        with self._read() as conn:
            fid, cls = self._pim_folder(conn, self._user_id(conn, user), folder_id)
            query = "SELECT CAST(id AS TEXT), CAST(modseq AS TEXT) FROM items WHERE folder_id = ?"
            args: list[Any] = [fid]
            if cls == "Calendar" and since is not None:
                query += " AND (ends IS NULL OR ends >= ?)"
                args.append(_epoch(since))
            if cls == "Tasks" and incomplete_only:
                query += " AND complete = 0"
            rows = conn.execute(query + " ORDER BY id", args).fetchall()
        return {i: s for i, s in rows}

    async def fetch_items(self, user: str, folder_id: str, item_ids: Sequence[str]) -> list[Item]:
        wanted = [i for i in (_int_id(x) for x in item_ids) if i is not None]
        found: dict[int, str] = {}
        with self._read() as conn:
            fid, cls = self._pim_folder(conn, self._user_id(conn, user), folder_id)
            for start in range(0, len(wanted), 900):
                chunk = wanted[start:start + 900]
                marks = ",".join("?" * len(chunk))
                for iid, data in conn.execute(f"SELECT id, data FROM items WHERE folder_id = ? AND id IN ({marks})",
                                              (fid, *chunk)):
                    found[int(iid)] = str(data)
        out: list[Item] = []
        for iid in wanted:
            if iid in found:
                item = _parse(cls, found[iid], user.lower())
                item.id = str(iid)
                out.append(item)
        return out

    async def add_item(self, user: str, folder_id: str, item: Item) -> tuple[str, str]:
        changed: dict[str, set[str]] = {}
        with self._tx(changed) as conn:
            user_id = self._user_id(conn, user)
            fid, cls = self._pim_folder(conn, user_id, folder_id)
            text, uid = _text(cls, item)
            iid, stamp = self._write(conn, user_id, fid, cls, text, uid)
            changed[user.lower()] = {str(fid)}
        return str(iid), str(stamp)

    async def change_item(self, user: str, folder_id: str, item_id: str, item: Item) -> str:
        """Replace an item; a ``Calendar`` with ``instance_id`` changes that occurrence
        only (a RECURRENCE-ID override). The item keeps its UID."""
        from eas.items import ical
        from eas.items.calendar import Calendar

        changed: dict[str, set[str]] = {}
        with self._tx(changed) as conn:
            user_id = self._user_id(conn, user)
            fid, cls = self._pim_folder(conn, user_id, folder_id)
            iid, uid, old = self._row(conn, fid, item_id)
            _check_class(cls, item)
            if isinstance(item, Calendar) and item.instance_id is not None:
                try:
                    text = ical.with_occurrence(old, item.instance_id, item)
                except ical.NoSuchOccurrence as e:
                    raise ItemNotFound(str(e)) from None
            else:
                text, _ = _text(cls, item, uid=uid, previous=old)
            _, stamp = self._write(conn, user_id, fid, cls, text, uid, iid)
            changed[user.lower()] = {str(fid)}
        return str(stamp)

    async def delete_occurrence(self, user: str, folder_id: str, item_id: str, instance: datetime) -> str:
        from eas.items import ical

        changed: dict[str, set[str]] = {}
        with self._tx(changed) as conn:
            user_id = self._user_id(conn, user)
            fid, cls = self._pim_folder(conn, user_id, folder_id)
            iid, uid, old = self._row(conn, fid, item_id)
            if cls != "Calendar":
                raise ItemNotFound("only events have occurrences")
            try:
                text = ical.without_occurrence(old, instance)
            except ical.NoSuchOccurrence as e:
                raise ItemNotFound(str(e)) from None
            _, stamp = self._write(conn, user_id, fid, cls, text, uid, iid)
            changed[user.lower()] = {str(fid)}
        return str(stamp)

    async def find_event(self, user: str, uid: str) -> tuple[str, str] | None:
        with self._read() as conn:
            user_id = self._user_id(conn, user)
            row = conn.execute(
                "SELECT i.folder_id, i.id FROM items i JOIN folders f ON f.id = i.folder_id "
                f"WHERE i.user_id = ? AND i.uid = ? AND f.type IN ({','.join('?' * len(_CALENDAR_TYPES))}) "
                "ORDER BY i.id", (user_id, uid, *_CALENDAR_TYPES)).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    async def free_busy(self, user: str, email: str, start: datetime, end: datetime) -> list[BusyPeriod] | None:
        """The owner's calendars expanded over the window: every occurrence that is not
        free and not cancelled, in start order. None for an address that is no user."""
        from eas.items import ical

        lo, hi = _epoch(start), _epoch(end)
        with self._read() as conn:
            row = conn.execute("SELECT id FROM users WHERE email = ?", (email.strip().lower(),)).fetchone()
            if row is None:
                return None
            rows = conn.execute(
                "SELECT i.data FROM items i JOIN folders f ON f.id = i.folder_id WHERE i.user_id = ? "
                f"AND f.type IN ({','.join('?' * len(_CALENDAR_TYPES))}) "
                "AND (i.ends IS NULL OR i.ends > ?) AND (i.starts IS NULL OR i.starts < ?)",
                (int(row[0]), *_CALENDAR_TYPES, lo, hi)).fetchall()
        out: list[BusyPeriod] = []
        for (data,) in rows:
            try:
                found, _ = ical.occurrences(data, _aware(start), _aware(end))
            except ical.ICalError:
                continue  # an item that no longer parses blocks no one's calendar
            for s, e, component in found:
                status = ical.busy_status(component)
                if status:
                    out.append(BusyPeriod(s, max(e, s), status))
        out.sort(key=lambda p: (p.start, p.end))
        return out

    async def _pim_delete(self, user: str, folder_id: str, item_id: str) -> None:
        changed: dict[str, set[str]] = {}
        with self._tx(changed) as conn:
            user_id = self._user_id(conn, user)
            fid, _ = self._pim_folder(conn, user_id, folder_id)
            iid, _, _ = self._row(conn, fid, item_id)
            conn.execute("DELETE FROM items WHERE id = ?", (iid,))
            changed[user.lower()] = {str(fid)}

    async def _pim_move(self, user: str, item_id: str, src_folder: str, dst_folder: str) -> str:
        """Into a folder of the same class only (``FolderNotFound`` for another)."""
        changed: dict[str, set[str]] = {}
        with self._tx(changed) as conn:
            user_id = self._user_id(conn, user)
            src, cls = self._pim_folder(conn, user_id, src_folder)
            iid, _, _ = self._row(conn, src, item_id)
            dst, dst_cls = self._pim_folder(conn, user_id, dst_folder)
            if dst_cls != cls:
                raise FolderNotFound(f"folder {dst_folder!r} holds no {cls} items")
            conn.execute("UPDATE items SET folder_id = ?, modseq = ? WHERE id = ?",
                         (dst, self._next_stamp(conn), iid))
            changed[user.lower()] = {str(src), str(dst)}
        return str(iid)

    # -- administration (synchronous) ----------------------------------------------------

    def import_items(self, user: str, folder_name: str, items: Sequence[Item | str]) -> list[str]:
        """Add items to a folder (by name or ``a/b`` path) in one transaction: all or none.
        A ``str`` is one item's iCalendar (``eas.items.ical.split_ical``) or vCard, kept as
        it is. ValueError for an unknown user or folder, an item of another class or one
        that does not parse; ``UidExists`` for an event already there. The new ids."""
        return self.import_batches(user, [(folder_name, items)])[0]

    def import_batches(self, user: str, batches: Sequence[tuple[str, Sequence[Item | str]]]) -> list[list[str]]:
        """``import_items`` into several folders in one transaction (a Thunderbird export
        holds events and tasks): all or none."""
        changed: dict[str, set[str]] = {}
        out: list[list[str]] = []
        with self._tx(changed) as conn:
            touched: set[str] = set()
            for folder_name, items in batches:
                user_id, fid, cls = self._admin_folder(conn, user, folder_name)
                ids: list[str] = []
                for item in items:
                    columns = None
                    if isinstance(item, str):
                        if len(item) > MAX_ITEM:
                            raise QuotaExceeded(f"item larger than {MAX_ITEM} characters")
                        columns = _columns(cls, item)  # ValueError (ICalError) for bad text
                        text, uid = item, columns[4].uid
                        if not uid:
                            text, uid = _text(cls, columns[4])
                            columns = None
                    else:
                        text, uid = _text(cls, item)
                    ids.append(str(self._write(conn, user_id, fid, cls, text, uid, columns=columns)[0]))
                out.append(ids)
                touched.add(str(fid))
            changed[user.strip().lower()] = touched
        return out

    def export_items(self, user: str, folder_name: str) -> list[str]:
        """The stored text of every item of a folder, oldest first: iCalendar (one
        VCALENDAR each) or vCard, as kept, so that an export loses nothing of an import."""
        with self._read() as conn:
            _, fid, _ = self._admin_folder(conn, user, folder_name)
            return [str(r[0]) for r in conn.execute("SELECT data FROM items WHERE folder_id = ? ORDER BY id", (fid,))]

    def folder_class(self, user: str, folder_name: str) -> str:
        """The item class of a folder by name: Calendar, Contacts, Tasks or Notes; ValueError."""
        with self._read() as conn:
            return self._admin_folder(conn, user, folder_name)[2]

    def _admin_folder(self, conn: sqlite3.Connection, user: str, folder_name: str) -> tuple[int, int, str]:
        row = conn.execute("SELECT id FROM users WHERE email = ?", (user.strip().lower(),)).fetchone()
        if row is None:
            raise ValueError(f"no user {user}")
        user_id = int(row[0])
        fid = self._folder_by_path(conn, user_id, folder_name)
        type = conn.execute("SELECT type FROM folders WHERE id = ?", (fid,)).fetchone()[0]
        if type not in PIM_TYPES:
            raise ValueError(f"folder {folder_name!r} holds mail, not calendar, contact, task or note items")
        return user_id, fid, PIM_TYPES[type]


# -- helpers ------------------------------------------------------------------------------

def _check_class(cls: str, item: object) -> None:
    name = {"Calendar": "Calendar", "Contact": "Contacts", "Task": "Tasks", "Note": "Notes"}.get(type(item).__name__)
    if name != cls:
        raise BackendError(f"a {type(item).__name__} does not belong in a {cls} folder", http_status=400)


def _text(cls: str, item: object, *, uid: str = "", previous: str | None = None) -> tuple[str, str]:
    """``(stored text, uid)`` of an item: ``uid`` (a change keeps the stored one), else the
    item's own, else a new one. ``previous`` is the stored text a device's change replaces."""
    from eas.items import ical

    _check_class(cls, item)
    uid = uid or getattr(item, "uid", "") or getattr(item, "client_uid", "") or str(uuid.uuid4()).upper()
    item = replace(item, uid=uid)  # type: ignore[type-var]  # the caller's object stays as it was
    if cls == "Contacts":
        from eas.items import vcard

        return vcard.to_vcard(item), uid  # type: ignore[arg-type]
    if cls == "Calendar":
        return ical.calendar_to_ical(item, keep_from=previous, vtimezone=False), uid  # type: ignore[arg-type]
    return ical.item_to_ical(item), uid  # type: ignore[arg-type]


def _parse(cls: str, text: Any, owner: str) -> Item:
    """The item of a stored text (or of its parsed VCALENDAR); ValueError (ICalError)
    when it does not parse."""
    if cls == "Contacts":
        from eas.items import vcard

        try:
            return vcard.from_vcard(text)
        except ValueError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure of a foreign file is "does not parse"
            raise ValueError(f"unreadable vCard: {e}") from None
    from eas.items import ical
    from eas.items.calendar import Calendar
    from eas.items.notes import Note
    from eas.items.tasks import Task

    wanted = {"Calendar": Calendar, "Tasks": Task, "Notes": Note}[cls]
    for item in ical.read_ical(text, owner=owner):
        if isinstance(item, wanted):
            return item
    raise ical.ICalError(f"no {cls} item in the text")


_Columns = tuple[int | None, int | None, int, str, "Item"]


def _columns(cls: str, text: str) -> _Columns:
    """``(starts, ends, complete, search, item)`` of a stored text, parsed once."""
    from eas.items import ical

    parsed = text if cls == "Contacts" else ical.parse(text)
    item = _parse(cls, parsed, "")
    starts = ends = None
    complete = 0
    words: list[str] = []
    if cls == "Calendar":
        first, last = ical.event_span(parsed)
        starts = None if first is None else _epoch(first)
        ends = None if last is None else _epoch(last)
        words = [item.subject, item.location, item.organizer_name, item.organizer_email]  # type: ignore[union-attr]
        words += [a.name for a in item.attendees] + [a.email for a in item.attendees]  # type: ignore[union-attr]
    elif cls == "Tasks":
        first = item.utc_start_date or item.utc_due_date  # type: ignore[union-attr]
        starts = None if first is None else _epoch(first)
        due = item.utc_due_date  # type: ignore[union-attr]
        ends = None if due is None else _epoch(due)
        complete = int(bool(item.complete))  # type: ignore[union-attr]
        words = [item.subject]  # type: ignore[union-attr]
    elif cls == "Contacts":
        words = [getattr(item, name, "") for name in (
            "file_as", "first_name", "middle_name", "last_name", "nick_name", "company_name", "alias",
            "email1_address", "email2_address", "email3_address")]
        words.append(" ".join(w for w in (getattr(item, "first_name", ""), getattr(item, "last_name", "")) if w))
    else:
        words = [item.subject]  # type: ignore[union-attr]
    search = "\n".join(dict.fromkeys(w.strip().lower() for w in words if w and w.strip()))
    return starts, ends, complete, search, item


# The store's own id and date conversions (``eas.store`` loads reference.py first, so
# this module sees it whole by the time these are called).
def _int_id(value: str) -> int | None:
    return reference._int_id(value)


def _epoch(value: datetime) -> int:
    return reference._epoch(value)


def _aware(value: datetime) -> datetime:
    return reference._aware(value)
