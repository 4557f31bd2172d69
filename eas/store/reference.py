"""``ReferenceStore``: a complete mail store in one SQLite file, for the demo server, the
tests, and as a worked example of the ``Backend`` interface.

It owns users (scrypt password hashes), folders, mail (the RFC 5322 bytes plus the fields
a device needs, extracted once at delivery), out-of-office settings and a log of
submitted mail. It has no SMTP relay: ``send_mail`` delivers to users of this store and
records every submission, local or not, in the ``outgoing`` table.

Change stamps come from one counter per store (a modseq): every insert and every change
of a row takes the next value. One connection, guarded by a lock; the SQLite calls are
short, so the async methods run them inline. Watchers are called after each commit,
outside the lock. ``sqlite3`` errors never leave this module: they become
``BackendError``.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

from eas.backend import (
    Attachment,
    BackendError,
    ChangeCallback,
    Email,
    EmailChange,
    Flag,
    Folder,
    FolderExists,
    FolderNotFound,
    FolderType,
    ItemNotFound,
    Oof,
    SendFailed,
    SpecialFolder,
    UserInformation,
)
from eas.store import mime as mimeparse
from eas.store import passwords
from eas.store.directory import DirectoryStore
from eas.store.pim import PimStore
from eas.store.schema import migrate
from eas.store.sharing import SharingStore

if TYPE_CHECKING:
    from eas.items.calendar import Calendar

log = logging.getLogger(__name__)

STANDARD_FOLDERS: tuple[tuple[str, FolderType], ...] = (
    ("Inbox", FolderType.INBOX),
    ("Drafts", FolderType.DRAFTS),
    ("Deleted Items", FolderType.DELETED_ITEMS),
    ("Sent Items", FolderType.SENT_ITEMS),
    ("Outbox", FolderType.OUTBOX),
    ("Calendar", FolderType.CALENDAR),
    ("Contacts", FolderType.CONTACTS),
    ("Tasks", FolderType.TASKS),
    ("Notes", FolderType.NOTES),
)

# A device may only create user folders; a default type it asks for maps to its user twin.
_USER_TYPE: dict[FolderType, FolderType] = {
    FolderType.INBOX: FolderType.USER_MAIL,
    FolderType.DRAFTS: FolderType.USER_MAIL,
    FolderType.DELETED_ITEMS: FolderType.USER_MAIL,
    FolderType.SENT_ITEMS: FolderType.USER_MAIL,
    FolderType.OUTBOX: FolderType.USER_MAIL,
    FolderType.TASKS: FolderType.USER_TASKS,
    FolderType.CALENDAR: FolderType.USER_CALENDAR,
    FolderType.CONTACTS: FolderType.USER_CONTACTS,
    FolderType.NOTES: FolderType.USER_NOTES,
    FolderType.JOURNAL: FolderType.USER_JOURNAL,
}

_CREATABLE = frozenset({FolderType.USER_GENERIC, FolderType.USER_MAIL, FolderType.USER_CALENDAR,
                        FolderType.USER_CONTACTS, FolderType.USER_TASKS, FolderType.USER_JOURNAL,
                        FolderType.USER_NOTES})

MAX_FOLDER_NAME = 256
_CHUNK = 900  # ids per IN (...) list: under the 999 variables of old SQLite builds, and a Sync window (512) in one query

_EMAIL_COLUMNS = ("m.id, m.modseq, m.date_received, m.read, m.flag, m.categories, m.is_draft, m.subject, "
                  "m.sender, m.to_addr, m.cc, m.bcc, m.reply_to, m.display_to, m.importance, m.message_id, "
                  "m.message_class, m.thread_topic, m.conversation_id, m.conversation_index, m.body_text, "
                  "m.body_html, m.size, m.attachments, m.meeting")


class ReferenceStore(SharingStore, DirectoryStore, PimStore):
    """The reference mail store (implements ``eas.backend.Backend``).

    ``path`` is the SQLite file, created if missing. Administration (users, delivery) is
    synchronous; the Backend methods are async. Safe to share between threads.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._watchers: list[ChangeCallback] = []
        self._writes = 0  # own write transactions so far (other processes' show in PRAGMA data_version)
        self._stamps: OrderedDict[int, _Stamps] = OrderedDict()
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10.0)
        except sqlite3.Error as exc:
            raise BackendError(f"cannot open mail store {self.path}: {exc}") from None
        try:
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            _retry_locked(lambda: self._conn.execute("PRAGMA journal_mode = WAL"))
            _retry_locked(lambda: migrate(self._conn))
            self._watch_shares(self._conn)
        except (sqlite3.Error, RuntimeError) as exc:
            self._conn.close()
            raise BackendError(f"cannot open mail store {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self, changed: dict[str, set[str]] | None = None) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock; ``changed`` (user -> folder ids) is
        filled by the body and announced to watchers after the commit."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise BackendError(f"mail store: {exc}") from None
            try:
                yield self._conn
                if changed:
                    self._tell_grantees(self._conn, changed)
                self._conn.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise BackendError(f"mail store: {exc}") from None
                raise
            finally:
                self._writes += 1
        if changed:
            self._announce(changed)

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """Reads under the lock, in one read transaction: a fetch in several chunks sees
        one snapshot even while another process writes."""
        with self._lock:
            try:
                self._conn.execute("BEGIN")
            except sqlite3.Error as exc:
                raise BackendError(f"mail store: {exc}") from None
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise BackendError(f"mail store: {exc}") from None
            finally:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("COMMIT")

    def _announce(self, changed: dict[str, set[str]]) -> None:
        for user, folder_ids in changed.items():
            for callback in list(self._watchers):
                try:
                    callback(user, sorted(folder_ids, key=_sort_key))
                except Exception:  # a broken watcher must not undo a committed change
                    log.exception("change watcher failed")

    @staticmethod
    def _next_stamp(conn: sqlite3.Connection) -> int:
        row = conn.execute("UPDATE counter SET value = value + 1 WHERE name = 'modseq' RETURNING value").fetchone()
        return int(row[0])

    @staticmethod
    def _user_id(conn: sqlite3.Connection, user: str) -> int:
        row = conn.execute("SELECT id FROM users WHERE email = ?", (user.lower(),)).fetchone()
        if row is None:
            raise BackendError(f"no such user {user!r}", http_status=403)
        return int(row[0])

    @staticmethod
    def _folder(conn: sqlite3.Connection, user_id: int, folder_id: str) -> tuple[int, int | None, str, int, bool]:
        """``(id, parent_id, name, type, special)`` of a folder of this user, else FolderNotFound."""
        fid = _int_id(folder_id)
        row = None if fid is None else conn.execute(
            "SELECT id, parent_id, name, type, special FROM folders WHERE id = ? AND user_id = ?",
            (fid, user_id)).fetchone()
        if row is None:
            raise FolderNotFound(f"no folder {folder_id!r}")
        return int(row[0]), row[1], str(row[2]), int(row[3]), bool(row[4])

    @staticmethod
    def _special(conn: sqlite3.Connection, user_id: int, type: FolderType) -> int:
        row = conn.execute("SELECT id FROM folders WHERE user_id = ? AND type = ? AND special = 1 ORDER BY id",
                           (user_id, int(type))).fetchone()
        if row is None:
            raise FolderNotFound(f"the user has no {type.name} folder")
        return int(row[0])

    @staticmethod
    def _descendants(conn: sqlite3.Connection, folder_id: int) -> list[int]:
        rows = conn.execute(
            "WITH RECURSIVE sub(id) AS (SELECT id FROM folders WHERE parent_id = ? "
            "UNION SELECT f.id FROM folders f JOIN sub ON f.parent_id = sub.id) SELECT id FROM sub",
            (folder_id,)).fetchall()
        return [int(r[0]) for r in rows]

    def _insert_mail(self, conn: sqlite3.Connection, user_id: int, folder_id: int, data: bytes, *,
                     read: bool = False, flag: Flag | None = None, categories: Sequence[str] = (),
                     is_draft: bool = False, parsed: mimeparse.Parsed | None = None) -> tuple[int, int]:
        p = parsed or mimeparse.parse(data)
        stamp = self._next_stamp(conn)
        assert p.date is not None
        row = conn.execute(
            "INSERT INTO messages (user_id, folder_id, modseq, date_received, read, flag, categories, is_draft, "
            "subject, sender, to_addr, cc, bcc, reply_to, display_to, importance, message_id, message_class, "
            "thread_topic, conversation_id, conversation_index, body_text, body_html, size, attachments, meeting) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (user_id, folder_id, stamp, int(p.date.timestamp()), int(read), _flag_json(flag),
             json.dumps(_clean_categories(categories)), int(is_draft), p.subject, p.sender, p.to, p.cc, p.bcc,
             p.reply_to, p.display_to, p.importance, p.message_id, p.message_class, p.thread_topic,
             p.conversation_id, p.conversation_index, p.body_text, p.body_html, p.size,
             json.dumps([asdict(a) for a in p.attachments]), p.meeting)).fetchone()
        item_id = int(row[0])
        conn.execute("INSERT INTO mime (message_id, data) VALUES (?, ?)", (item_id, data))
        return item_id, stamp

    # -- administration (synchronous) ----------------------------------------------------

    def add_user(self, email: str, password: str, display_name: str = "") -> None:
        """A new account with the standard folders; ValueError if it exists or is malformed."""
        address = _canonical(email)
        hashed = passwords.hash_password(password)
        local, _, domain = address.partition("@")
        with self._tx() as conn:
            if conn.execute("SELECT 1 FROM users WHERE email = ?", (address,)).fetchone():
                raise ValueError(f"user {address} exists")
            user_id = conn.execute(
                "INSERT INTO users (email, local_part, domain, display_name, password, created) "
                "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (address, local, domain, display_name, hashed, int(time.time()))).fetchone()[0]
            conn.executemany("INSERT INTO folders (user_id, parent_id, name, type, special) VALUES (?, NULL, ?, ?, 1)",
                             [(user_id, name, int(type)) for name, type in STANDARD_FOLDERS])

    def set_password(self, email: str, password: str) -> None:
        """Replace a user's password; ValueError for an unknown user."""
        hashed = passwords.hash_password(password)
        with self._tx() as conn:
            if conn.execute("UPDATE users SET password = ? WHERE email = ?", (hashed, email.lower())).rowcount != 1:
                raise ValueError(f"no user {email}")

    def set_display_name(self, email: str, display_name: str) -> None:
        with self._tx() as conn:
            if conn.execute("UPDATE users SET display_name = ? WHERE email = ?",
                            (display_name, email.lower())).rowcount != 1:
                raise ValueError(f"no user {email}")

    def list_users(self) -> list[str]:
        with self._read() as conn:
            return [str(r[0]) for r in conn.execute("SELECT email FROM users ORDER BY email")]

    def delete_user(self, email: str) -> None:
        """Delete an account and all its mail; ValueError for an unknown user."""
        changed: dict[str, set[str]] = {}
        with self._tx(changed) as conn:
            if conn.execute("DELETE FROM users WHERE email = ?", (email.lower(),)).rowcount != 1:
                raise ValueError(f"no user {email}")
            changed[email.lower()] = set()

    def deliver(self, email: str, mime: bytes, folder: str = "Inbox") -> str:
        """Put a message into a user's folder (by name, case-insensitive; ``a/b`` for a
        subfolder): the new item id. ValueError for an unknown user or folder."""
        parsed = mimeparse.parse(mime)
        if parsed.meeting is not None:  # iMIP: the calendar first, an unknown folder refused before
            from eas.store import scheduling  # meeting mail only

            self.folder_id(email, folder)
            parsed = scheduling.scheduled(self, email, parsed)
        changed: dict[str, set[str]] = {}
        with self._tx(changed) as conn:
            row = conn.execute("SELECT id FROM users WHERE email = ?", (email.lower(),)).fetchone()
            if row is None:
                raise ValueError(f"no user {email}")
            user_id = int(row[0])
            folder_id = self._folder_by_path(conn, user_id, folder)
            item_id, _ = self._insert_mail(conn, user_id, folder_id, mime, parsed=parsed)
            changed[email.lower()] = {str(folder_id)}
        return str(item_id)

    def folder_id(self, email: str, name: str) -> str:
        """The id of a folder by name or ``a/b`` path (case-insensitive); ValueError if none."""
        with self._read() as conn:
            row = conn.execute("SELECT id FROM users WHERE email = ?", (email.lower(),)).fetchone()
            if row is None:
                raise ValueError(f"no user {email}")
            return str(self._folder_by_path(conn, int(row[0]), name))

    def outgoing(self, email: str | None = None) -> list[tuple[str, list[str], bytes]]:
        """Submitted mail, oldest first: ``(sender account, recipients, mime)``."""
        query = ("SELECT u.email, o.recipients, o.data FROM outgoing o JOIN users u ON u.id = o.user_id"
                 + (" WHERE u.email = ?" if email else "") + " ORDER BY o.id")
        with self._read() as conn:
            rows = conn.execute(query, (email.lower(),) if email else ()).fetchall()
        return [(str(r[0]), list(json.loads(r[1])), bytes(r[2])) for r in rows]

    @staticmethod
    def _folder_by_path(conn: sqlite3.Connection, user_id: int, path: str) -> int:
        """A folder by its name at the top, else by an ``a/b`` path (names may hold "/")."""
        query = ("SELECT id FROM folders WHERE user_id = ? AND coalesce(parent_id, 0) = ? "
                 "AND name = ? COLLATE NOCASE")
        row = conn.execute(query, (user_id, 0, path.strip())).fetchone()
        if row is not None:
            return int(row[0])
        parent = 0
        for name in [p.strip() for p in path.split("/")]:
            row = conn.execute(query, (user_id, parent, name)).fetchone()
            if row is None:
                raise ValueError(f"no folder {path!r}")
            parent = int(row[0])
        return parent

    # -- authentication ------------------------------------------------------------------

    async def authenticate(self, login: str, password: str) -> str | None:
        """The account (lower-case e-mail) for ``user@domain``, ``DOMAIN\\user`` or a bare
        ``user`` whose local part is unique; None when refused. Usable as the
        ``authenticate`` hook of ``eas.core.ActiveSync``."""
        found = self._lookup_login(login)
        if found is None:
            await _in_thread(passwords.dummy_verify, password)
            return None
        account, stored = found
        if not await _in_thread(passwords.verify_password, password, stored):
            return None
        if passwords.needs_rehash(stored):  # parameters raised since: renew while the password is at hand
            hashed = await _in_thread(passwords.hash_password, password)
            with self._tx() as conn:
                conn.execute("UPDATE users SET password = ? WHERE email = ? AND password = ?", (hashed, account, stored))
        return account

    def _lookup_login(self, login: str) -> tuple[str, str] | None:
        login = login.strip().lower()
        if not login or len(login) > 320:
            return None
        netbios = ""
        if "\\" in login:
            netbios, _, login = login.partition("\\")
        with self._read() as conn:
            if "@" in login:
                rows = conn.execute("SELECT email, password, domain FROM users WHERE email = ?", (login,)).fetchall()
            else:
                rows = conn.execute("SELECT email, password, domain FROM users WHERE local_part = ?",
                                    (login,)).fetchall()
        if netbios:
            rows = [r for r in rows if netbios in (r[2], r[2].split(".")[0])]
        if len(rows) != 1:
            return None
        return str(rows[0][0]), str(rows[0][1])

    # -- Backend: folders ----------------------------------------------------------------

    def watch(self, callback: ChangeCallback) -> None:
        self._watchers.append(callback)

    async def folders(self, user: str) -> list[Folder]:
        with self._read() as conn:
            user_id = self._user_id(conn, user)
            rows = conn.execute("SELECT id, parent_id, name, type FROM folders WHERE user_id = ? ORDER BY id",
                                (user_id,)).fetchall()
            shared = self._mounted_folders(conn, user_id)
        children: dict[int, list[tuple[Any, ...]]] = {}
        for row in rows:
            children.setdefault(row[1] or 0, []).append(row)
        out: list[Folder] = []
        stack = list(reversed(children.get(0, [])))
        while stack:  # depth first, so every parent precedes its children
            fid, parent, name, type = stack.pop()
            out.append(Folder(str(fid), str(parent) if parent else "", name, _folder_type(type)))
            stack.extend(reversed(children.get(fid, [])))
        return out + shared

    async def create_folder(self, user: str, parent_id: str, name: str, type: FolderType) -> Folder:
        name = _folder_name(name)
        requested = _folder_type(int(type))
        folder_type = _USER_TYPE.get(requested, requested)
        if folder_type not in _CREATABLE:
            folder_type = FolderType.USER_GENERIC
        changed: dict[str, set[str]] = {}
        with self._tx(changed) as conn:
            user_id = self._user_id(conn, user)
            parent = self._folder(conn, user_id, parent_id)[0] if parent_id not in ("", "0") else None
            self._check_free(conn, user_id, parent, name, None)
            fid = conn.execute("INSERT INTO folders (user_id, parent_id, name, type) VALUES (?, ?, ?, ?) RETURNING id",
                               (user_id, parent, name, int(folder_type))).fetchone()[0]
            changed[user.lower()] = {str(fid)}
        return Folder(str(fid), str(parent) if parent else "", name, folder_type)

    async def update_folder(self, user: str, folder_id: str, parent_id: str, name: str) -> None:
        name = _folder_name(name)
        changed: dict[str, set[str]] = {}
        with self._tx(changed) as conn:
            user_id = self._user_id(conn, user)
            fid, _, _, _, special = self._folder(conn, user_id, folder_id)
            if special:
                raise SpecialFolder("a standard folder cannot be renamed or moved")
            parent = self._folder(conn, user_id, parent_id)[0] if parent_id not in ("", "0") else None
            if parent is not None and (parent == fid or parent in self._descendants(conn, fid)):
                raise BackendError("a folder cannot move into itself", http_status=400)
            self._check_free(conn, user_id, parent, name, fid)
            conn.execute("UPDATE folders SET parent_id = ?, name = ? WHERE id = ?", (parent, name, fid))
            changed[user.lower()] = {str(fid)}

    async def delete_folder(self, user: str, folder_id: str) -> None:
        changed: dict[str, set[str]] = {}
        with self._tx(changed) as conn:
            user_id = self._user_id(conn, user)
            fid, _, _, _, special = self._folder(conn, user_id, folder_id)
            if special:
                raise SpecialFolder("a standard folder cannot be deleted")
            doomed = [fid, *self._descendants(conn, fid)]
            self._delete_folders(conn, doomed)
            changed[user.lower()] = {str(f) for f in doomed}

    @staticmethod
    def _delete_folders(conn: sqlite3.Connection, ids: list[int]) -> None:
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            conn.execute(f"DELETE FROM messages WHERE folder_id IN ({marks})", chunk)
        # Children first, so no row ever points at a deleted parent.
        for fid in reversed(ids):
            conn.execute("DELETE FROM folders WHERE id = ?", (fid,))

    @staticmethod
    def _check_free(conn: sqlite3.Connection, user_id: int, parent: int | None, name: str, own: int | None) -> None:
        row = conn.execute("SELECT id FROM folders WHERE user_id = ? AND coalesce(parent_id, 0) = ? "
                           "AND name = ? COLLATE NOCASE", (user_id, parent or 0, name)).fetchone()
        if row is not None and row[0] != own:
            raise FolderExists(f"a folder named {name!r} exists there")

    # -- Backend: items ------------------------------------------------------------------

    async def item_stamps(self, user: str, folder_id: str, since: datetime | None = None, *,
                          incomplete_only: bool = False) -> dict[str, str]:
        """In date order. Large folders' answers are kept until the store changes: an
        initial Sync asks for the same folder's stamps once per window, and every Ping
        check asks again (10,000 rows cost milliseconds to read, a copy microseconds)."""
        if self.is_pim_folder(user, folder_id):
            return await self._pim_item_stamps(user, folder_id, since, incomplete_only=incomplete_only)
        start = None if since is None else _epoch(since)
        with self._read() as conn:
            fid = self._folder(conn, self._user_id(conn, user), folder_id)[0]
            # Read inside the read transaction, after its first read: the version of the
            # snapshot the rows below come from. Own commits do not change it: _writes does.
            version = (conn.execute("PRAGMA data_version").fetchone()[0], self._writes)
            kept = self._stamps.get(fid)
            if kept is not None and kept.version == version and (
                    kept.start is None or (start is not None and start >= kept.start)):
                self._stamps.move_to_end(fid)
                return kept.select(start)
            query = ("SELECT date_received, CAST(id AS TEXT), CAST(modseq AS TEXT) FROM messages "
                     "WHERE folder_id = ?")
            if start is None:
                rows = conn.execute(query + " ORDER BY date_received, modseq, id", (fid,)).fetchall()
            else:
                rows = conn.execute(query + " AND date_received >= ? ORDER BY date_received, modseq, id",
                                    (fid, start)).fetchall()
            if len(rows) < _STAMPS_KEPT_FROM:
                return {i: s for _, i, s in rows}
            found = self._stamps[fid] = _Stamps(version, start, rows)
            self._stamps.move_to_end(fid)
            while len(self._stamps) > _STAMPS_KEPT_FOLDERS:
                self._stamps.popitem(last=False)
        return found.select(start)

    async def fetch_emails(self, user: str, folder_id: str, item_ids: Sequence[str], *,
                           mime: bool = False) -> list[Email]:
        wanted = [i for i in (_int_id(x) for x in item_ids) if i is not None]
        found: dict[int, Email] = {}
        columns = _EMAIL_COLUMNS + (", x.data" if mime else "")
        join = " JOIN mime x ON x.message_id = m.id" if mime else ""
        with self._read() as conn:
            fid = self._folder(conn, self._user_id(conn, user), folder_id)[0]
            for chunk in _chunks(list(dict.fromkeys(wanted))):
                marks = ",".join("?" * len(chunk))
                for row in conn.execute(f"SELECT {columns} FROM messages m{join} "
                                        f"WHERE m.folder_id = ? AND m.id IN ({marks})", (fid, *chunk)):
                    found[int(row[0])] = _email(row, mime)
        return [found[i] for i in wanted if i in found]

    async def add_email(self, user: str, folder_id: str, mime: bytes, *, read: bool = True,
                        flag: Flag | None = None, categories: Sequence[str] = (),
                        is_draft: bool = False) -> tuple[str, str]:
        parsed = mimeparse.parse(mime)
        changed: dict[str, set[str]] = {}
        with self._tx(changed) as conn:
            user_id = self._user_id(conn, user)
            fid = self._folder(conn, user_id, folder_id)[0]
            item_id, stamp = self._insert_mail(conn, user_id, fid, mime, read=read, flag=flag,
                                               categories=categories, is_draft=is_draft, parsed=parsed)
            changed[user.lower()] = {str(fid)}
        return str(item_id), str(stamp)

    async def change_email(self, user: str, folder_id: str, item_id: str, change: EmailChange) -> str:
        changed: dict[str, set[str]] = {}
        with self._tx(changed) as conn:
            user_id = self._user_id(conn, user)
            fid = self._folder(conn, user_id, folder_id)[0]
            iid = self._item(conn, fid, item_id)
            sets: list[str] = []
            values: list[Any] = []
            if change.read is not None:
                sets.append("read = ?")
                values.append(int(change.read))
            if change.flag is not None:
                sets.append("flag = ?")
                values.append(_flag_json(change.flag))
            if change.categories is not None:
                sets.append("categories = ?")
                values.append(json.dumps(_clean_categories(change.categories)))
            if not sets:
                return str(conn.execute("SELECT modseq FROM messages WHERE id = ?", (iid,)).fetchone()[0])
            stamp = self._next_stamp(conn)
            conn.execute(f"UPDATE messages SET {', '.join(sets)}, modseq = ? WHERE id = ?", (*values, stamp, iid))
            changed[user.lower()] = {str(fid)}
        return str(stamp)

    @staticmethod
    def _item(conn: sqlite3.Connection, folder_id: int, item_id: str) -> int:
        iid = _int_id(item_id)
        if iid is None or conn.execute("SELECT 1 FROM messages WHERE id = ? AND folder_id = ?",
                                       (iid, folder_id)).fetchone() is None:
            raise ItemNotFound(f"no item {item_id!r} in that folder")
        return iid

    async def delete_item(self, user: str, folder_id: str, item_id: str, *, permanently: bool) -> None:
        if self.is_pim_folder(user, folder_id):  # calendar, contact, task, note deletes are permanent
            return await self._pim_delete(user, folder_id, item_id)
        changed: dict[str, set[str]] = {}
        with self._tx(changed) as conn:
            user_id = self._user_id(conn, user)
            fid = self._folder(conn, user_id, folder_id)[0]
            iid = self._item(conn, fid, item_id)
            trash = None if permanently else self._special_or_none(conn, user_id, FolderType.DELETED_ITEMS)
            if trash is None or trash == fid:
                conn.execute("DELETE FROM messages WHERE id = ?", (iid,))
                changed[user.lower()] = {str(fid)}
            else:
                conn.execute("UPDATE messages SET folder_id = ?, modseq = ? WHERE id = ?",
                             (trash, self._next_stamp(conn), iid))
                changed[user.lower()] = {str(fid), str(trash)}

    def _special_or_none(self, conn: sqlite3.Connection, user_id: int, type: FolderType) -> int | None:
        try:
            return self._special(conn, user_id, type)
        except FolderNotFound:
            return None

    async def move_item(self, user: str, item_id: str, src_folder: str, dst_folder: str) -> str:
        if self.is_pim_folder(user, src_folder):
            return await self._pim_move(user, item_id, src_folder, dst_folder)
        changed: dict[str, set[str]] = {}
        with self._tx(changed) as conn:
            user_id = self._user_id(conn, user)
            src = self._folder(conn, user_id, src_folder)[0]
            iid = self._item(conn, src, item_id)
            dst = self._folder(conn, user_id, dst_folder)[0]
            conn.execute("UPDATE messages SET folder_id = ?, modseq = ? WHERE id = ?",
                         (dst, self._next_stamp(conn), iid))
            changed[user.lower()] = {str(src), str(dst)}
        return str(iid)

    async def empty_folder(self, user: str, folder_id: str, *, delete_subfolders: bool) -> None:
        changed: dict[str, set[str]] = {}
        with self._tx(changed) as conn:
            user_id = self._user_id(conn, user)
            fid = self._folder(conn, user_id, folder_id)[0]
            conn.execute("DELETE FROM messages WHERE folder_id = ?", (fid,))
            conn.execute("DELETE FROM items WHERE folder_id = ?", (fid,))
            touched = {str(fid)}
            if delete_subfolders:
                below = self._descendants(conn, fid)
                special = {int(r[0]) for r in conn.execute(
                    "SELECT id FROM folders WHERE user_id = ? AND special = 1", (user_id,))}
                below = [f for f in below if f not in special]
                self._delete_folders(conn, below)
                touched.update(str(f) for f in below)
            changed[user.lower()] = touched

    async def attachment(self, user: str, file_reference: str) -> tuple[str, bytes]:
        item, sep, index = file_reference.partition(":")
        iid, number = _int_id(item), _int_id(index)
        if not sep or iid is None or number is None:
            raise ItemNotFound(f"bad file reference {file_reference!r}")
        with self._read() as conn:
            user_id = self._user_id(conn, user)
            row = conn.execute("SELECT x.data, m.attachments FROM messages m JOIN mime x ON x.message_id = m.id "
                               "WHERE m.id = ? AND m.user_id = ?", (iid, user_id)).fetchone()
        if row is None or number not in {a["index"] for a in json.loads(row[1])}:
            raise ItemNotFound(f"no attachment {file_reference!r}")
        try:
            found = mimeparse.attachment_data(bytes(row[0]), number)
        except Exception:  # noqa: BLE001 - stored bytes that no longer parse
            found = None
        if found is None:
            raise ItemNotFound(f"no attachment {file_reference!r}")
        return found

    # -- Backend: sending ----------------------------------------------------------------

    async def send_mail(self, user: str, mime: bytes, *, save_in_sent: bool) -> None:
        """Deliver to the recipients that are users of this store and record the submission
        in ``outgoing``; there is no SMTP relay for the others. ``SendFailed`` without any
        recipient or for bytes that are no message at all."""
        prepared = _prepare_outgoing(user, mime)
        parsed = mimeparse.parse(prepared)
        recipients = parsed.recipients
        if not recipients:
            raise SendFailed("the message has no recipient")
        delivered = _strip_bcc(prepared)
        parsed_delivered = mimeparse.parse(delivered)
        local: dict[str, mimeparse.Parsed] = {}
        if parsed_delivered.meeting is not None:  # iMIP: the calendars first
            from eas.store import scheduling

            local = {a: await scheduling.scheduled_async(self, a, parsed_delivered) for a in dict.fromkeys(recipients)}
        changed: dict[str, set[str]] = {}
        with self._tx(changed) as conn:
            user_id = self._user_id(conn, user)
            conn.execute("INSERT INTO outgoing (user_id, submitted, recipients, data) VALUES (?, ?, ?, ?)",
                         (user_id, int(time.time()), json.dumps(recipients), prepared))
            for address in dict.fromkeys(recipients):
                row = conn.execute("SELECT id FROM users WHERE email = ?", (address,)).fetchone()
                if row is None:
                    continue
                inbox = self._special_or_none(conn, int(row[0]), FolderType.INBOX)
                if inbox is not None:
                    self._insert_mail(conn, int(row[0]), inbox, delivered, parsed=local.get(address, parsed_delivered))
                    changed.setdefault(address, set()).add(str(inbox))
            if save_in_sent:
                sent = self._special(conn, user_id, FolderType.SENT_ITEMS)
                self._insert_mail(conn, user_id, sent, prepared, read=True, parsed=parsed)
                changed.setdefault(user.lower(), set()).add(str(sent))

    # -- Backend: settings ---------------------------------------------------------------

    async def get_oof(self, user: str) -> Oof:
        with self._read() as conn:
            row = conn.execute("SELECT settings FROM oof WHERE user_id = ?",
                               (self._user_id(conn, user),)).fetchone()
        if row is None:
            return Oof()
        data = json.loads(row[0])
        for key in ("start", "end"):
            if data.get(key):
                data[key] = datetime.fromisoformat(data[key])
        known = {f.name for f in fields(Oof)}
        return Oof(**{k: v for k, v in data.items() if k in known})

    async def set_oof(self, user: str, oof: Oof) -> None:
        data = asdict(oof)
        for key in ("start", "end"):
            if data[key] is not None:
                data[key] = _aware(data[key]).isoformat()
        with self._tx() as conn:
            conn.execute("INSERT INTO oof (user_id, settings) VALUES (?, ?) "
                         "ON CONFLICT (user_id) DO UPDATE SET settings = excluded.settings",
                         (self._user_id(conn, user), json.dumps(data)))

    async def user_information(self, user: str) -> UserInformation:
        with self._read() as conn:
            row = conn.execute("SELECT email, display_name, local_part FROM users WHERE email = ?",
                               (user.lower(),)).fetchone()
        if row is None:
            raise BackendError(f"no such user {user!r}", http_status=403)
        return UserInformation(display_name=row[1] or row[2], emails=[row[0]])


# -- helpers ------------------------------------------------------------------------------

# item_stamps answers are kept for this many folders, those of at least this many mails.
_STAMPS_KEPT_FOLDERS = 16
_STAMPS_KEPT_FROM = 256


class _Stamps:
    """One folder's ``(date_received, id, modseq)`` rows from ``start`` on (None: all),
    in date order, as read at ``version``."""

    __slots__ = ("dates", "full", "rows", "start", "version")

    def __init__(self, version: tuple[int, int], start: int | None, rows: list[tuple[int, str, str]]) -> None:
        self.version = version
        self.start = start
        self.rows = rows
        self.dates = [r[0] for r in rows]
        self.full = {i: s for _, i, s in rows}

    def select(self, start: int | None) -> dict[str, str]:
        """A new dict (callers may change it) of the rows dated ``start`` or later."""
        first = 0 if start is None else bisect.bisect_left(self.dates, start)
        if first == 0:
            return dict(self.full)
        return {i: s for _, i, s in self.rows[first:]}



def _retry_locked(step: Callable[[], object], timeout: float = 10.0) -> None:
    """Run ``step``, again while another process holds the lock: switching a new file to
    WAL can fail at once with "database is locked" (no busy handler covers it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _canonical(email: str) -> str:
    address = email.strip().lower()
    local, at, domain = address.partition("@")
    if not at or not local or not domain or "@" in domain or "\\" in address or any(c.isspace() for c in address):
        raise ValueError(f"not an e-mail address: {email!r}")
    return address


def _int_id(value: str) -> int | None:
    """A row id from an id string, or None for anything that is not a plain positive integer."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 18:
        return None
    number = int(value)
    return number if number > 0 else None


def _sort_key(value: str) -> tuple[int, str]:
    return (len(value), value)


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start:start + _CHUNK]


def _folder_type(value: int) -> FolderType:
    try:
        return FolderType(value)
    except ValueError:
        return FolderType.UNKNOWN


def _folder_name(name: str) -> str:
    """A folder name as given, without surrounding blanks; no control characters."""
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > MAX_FOLDER_NAME or any(ord(c) < 32 or 0xD800 <= ord(c) < 0xE000 for c in name):
        raise BackendError(f"invalid folder name {name!r}", http_status=400)
    return name


def _epoch(value: datetime) -> int:
    return int(_aware(value).timestamp())


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _clean_categories(categories: Sequence[str]) -> list[str]:
    return [mimeparse.clean(str(c))[:255] for c in categories][:300]


def _flag_json(flag: Flag | None) -> str | None:
    if flag is None or flag.status == 0:
        return None
    data = asdict(flag)
    for key, value in data.items():
        if isinstance(value, datetime):
            data[key] = _aware(value).isoformat()
    return json.dumps(data)


def _flag(text: str | None) -> Flag | None:
    if not text:
        return None
    data = json.loads(text)
    for key in ("start_date", "due_date", "complete_time", "reminder_time"):
        if data.get(key):
            data[key] = datetime.fromisoformat(data[key])
    known = {f.name for f in fields(Flag)}
    return Flag(**{k: v for k, v in data.items() if k in known})


def _email(row: sqlite3.Row | tuple[Any, ...], with_mime: bool) -> Email:
    # Called for every mail a Sync sends: most have no category and no attachment, and
    # json.loads("[]") twice was a quarter of the time here.
    (iid, _modseq, date_received, read, flag, categories, is_draft, subject, sender, to, cc, bcc, reply_to,
     display_to, importance, message_id, message_class, thread_topic, conversation_id, conversation_index,
     body_text, body_html, size, attachments) = row[:24]
    return Email(
        id=str(iid), subject=subject, sender=sender, to=to, cc=cc, bcc=bcc, reply_to=reply_to,
        display_to=display_to, date_received=datetime.fromtimestamp(date_received, UTC), importance=importance,
        read=bool(read), flag=_flag(flag), categories=[] if categories == "[]" else list(json.loads(categories)),
        message_class=message_class,
        thread_topic=thread_topic, conversation_id=bytes(conversation_id),
        conversation_index=bytes(conversation_index), message_id=message_id, body_text=body_text,
        body_html=body_html, size=size, is_draft=bool(is_draft),
        attachments=[Attachment(file_reference=f"{iid}:{a['index']}", display_name=a["name"], size=a["size"],
                                content_type=a["content_type"], content_id=a["content_id"],
                                content_location=a["content_location"], is_inline=a["is_inline"],
                                method=a["method"]) for a in (() if attachments == "[]" else json.loads(attachments))],
        mime=bytes(row[25]) if with_mime else None,
        meeting_request=_meeting_request(message_class, row[24]),
    )


def _meeting_request(message_class: str, ical: str | None) -> Calendar | None:
    """The event of a meeting request or cancellation (responses carry none)."""
    if ical is None or not message_class.startswith(("IPM.Schedule.Meeting.Request", "IPM.Schedule.Meeting.Canceled")):
        return None
    from eas.items.meeting import read_invitation  # only for meeting mail

    return read_invitation(ical)


def _prepare_outgoing(user: str, mime: bytes) -> bytes:
    """The submitted bytes with From, Date and Message-ID added where the device left
    them out (as the core's SendMail does, ``eas.mime``); ``SendFailed`` for input that is
    no message."""
    from eas import mime as mimelib

    try:
        msg = mimelib.parse(mime)
    except mimelib.MimeError as e:
        raise SendFailed(str(e)) from None
    return mimelib.with_missing_headers(mime, msg, user.lower())


def _strip_bcc(mime: bytes) -> bytes:
    """The message without its Bcc header, as recipients get it: header lines are cut
    from the raw bytes, so the rest stays byte for byte what was sent."""
    sep = b"\r\n\r\n" if b"\r\n\r\n" in mime else b"\n\n"
    head, found, body = mime.partition(sep)
    if not found:
        head, body = mime, b""
    lines = head.splitlines(keepends=True)
    out: list[bytes] = []
    skipping = False
    for line in lines:
        if skipping and line[:1] in (b" ", b"\t"):
            continue
        skipping = line.lower().startswith(b"bcc:")
        if not skipping:
            out.append(line)
    return b"".join(out) + found + body


async def _in_thread(function: Callable[..., Any], *args: Any) -> Any:
    """Run a slow password hash off the event loop. asyncio is imported here, not at the
    top: the ``eas`` command opens this store without a loop, and its start-up time is
    part of the wake-up latency of ``eas mail deliver``."""
    import asyncio

    return await asyncio.to_thread(function, *args)
