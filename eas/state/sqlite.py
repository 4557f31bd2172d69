"""The SQLite StateStore, the default engine: device records and state blobs in one file.

One connection per store object, guarded by a lock (the core may call it from several
event-loop threads when embedded through WSGI). The file is in WAL mode with a busy
timeout, so several processes can open it at once: readers never block, writers queue
for the write lock. Every ``commit`` is one ``BEGIN IMMEDIATE ... COMMIT``; anything that
fails inside it rolls the whole transaction back.

The schema is versioned with ``PRAGMA user_version``: ``MIGRATIONS[n]`` takes a file from
version ``n`` to ``n + 1``, applied in order, each in its own write transaction that
re-reads the version first (two processes opening a new file do not both migrate it).

sqlite3's exceptions never leave this module: they become ``StateError`` with a message
that says what was being done.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from eas.protocol.errors import StateError
from eas.state.model import AuditEvent, DeviceRecord

T = TypeVar("T")

# Each entry is one schema version step; never edit a released step, append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # The record is DeviceRecord's JSON; the other columns copy fields of it that
        # administration lists filter and sort by.
        """CREATE TABLE devices (
            user        TEXT NOT NULL,
            device_id   TEXT NOT NULL,
            device_type TEXT NOT NULL DEFAULT '',
            last_seen   REAL NOT NULL DEFAULT 0,
            access      TEXT NOT NULL DEFAULT 'allowed',
            record      TEXT NOT NULL,
            PRIMARY KEY (user, device_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX devices_last_seen ON devices (last_seen)",
        "CREATE INDEX devices_access ON devices (access, user)",
        "CREATE INDEX devices_type ON devices (device_type)",
        """CREATE TABLE blobs (
            user      TEXT NOT NULL,
            device_id TEXT NOT NULL,
            key       TEXT NOT NULL,
            value     BLOB NOT NULL,
            PRIMARY KEY (user, device_id, key)
        ) WITHOUT ROWID""",
    ),
    (
        # Settings of the access-control engines (JSON values) and the audit trail.
        """CREATE TABLE settings (
            name  TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE audit (
            id        INTEGER PRIMARY KEY,
            time      REAL NOT NULL,
            actor     TEXT NOT NULL,
            action    TEXT NOT NULL,
            user      TEXT NOT NULL,
            device_id TEXT NOT NULL,
            detail    TEXT NOT NULL
        )""",
        "CREATE INDEX audit_device ON audit (user, device_id, time)",
        "CREATE INDEX audit_time ON audit (time)",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)

# SQLite primary result codes (https://sqlite.org/rescode.html)
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CORRUPT, _SQLITE_NOTADB = 5, 6, 11, 26


class SQLiteStateStore:
    """State in the SQLite file at ``path`` (created when missing; its folder must exist).
    ``busy_timeout`` is how many seconds a writer waits for another process's write."""

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 10.0) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        try:
            # isolation_level=None: no implicit transactions, ours are explicit.
            db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            raise StateError(f"cannot open state database {self.path!r}: {e}") from None
        deadline = time.monotonic() + busy_timeout
        try:
            if self.path != ":memory:":
                mode = _retry_busy(lambda: db.execute("PRAGMA journal_mode = WAL").fetchone()[0], deadline)
                if str(mode).lower() != "wal":
                    raise StateError(f"state database {self.path!r} cannot use WAL (journal mode {mode})")
            db.execute("PRAGMA synchronous = NORMAL")  # safe with WAL: a crash loses no committed state
            _retry_busy(lambda: _migrate(db, self.path), deadline)
        except sqlite3.Error as e:
            db.close()
            code = e.sqlite_errorcode & 0xFF if isinstance(e, sqlite3.DatabaseError) and e.sqlite_errorcode else 0
            if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
                raise StateError(f"{self.path!r} is not an eas state database, or is corrupt: {e}") from None
            if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
                raise StateError(f"state database {self.path!r} stayed locked by another process for "
                                 f"{busy_timeout} s: {e}") from None
            raise StateError(f"cannot open state database {self.path!r}: {e}") from None
        except BaseException:
            db.close()
            raise
        self._db = db

    # -- the StateStore protocol ---------------------------------------------------------

    async def get_device(self, user: str, device_id: str) -> DeviceRecord | None:
        row = self._run("reading a device record", lambda db: db.execute(
            "SELECT record FROM devices WHERE user = ? AND device_id = ?", (user, device_id)).fetchone())
        return _record(row[0]) if row else None

    async def load(self, user: str, device_id: str, key: str) -> bytes | None:
        row = self._run("reading a state blob", lambda db: db.execute(
            "SELECT value FROM blobs WHERE user = ? AND device_id = ? AND key = ?", (user, device_id, key)).fetchone())
        return bytes(row[0]) if row else None

    async def commit(self, device: DeviceRecord, blobs: Mapping[str, bytes | None]) -> None:
        def write(db: sqlite3.Connection) -> None:
            with _transaction(db):
                self._write_device(db, device)
                for key, value in blobs.items():
                    self._write_blob(db, device.user, device.device_id, key, value)

        self._run("committing device state", write)

    async def list_devices(self, user: str | None = None) -> list[DeviceRecord]:
        if user is None:
            rows = self._run("listing devices", lambda db: db.execute(
                "SELECT record FROM devices ORDER BY user, device_id").fetchall())
        else:
            rows = self._run("listing devices", lambda db: db.execute(
                "SELECT record FROM devices WHERE user = ? ORDER BY device_id", (user,)).fetchall())
        return [_record(r[0]) for r in rows]

    async def delete_device(self, user: str, device_id: str) -> None:
        def delete(db: sqlite3.Connection) -> None:
            with _transaction(db):
                db.execute("DELETE FROM blobs WHERE user = ? AND device_id = ?", (user, device_id))
                db.execute("DELETE FROM devices WHERE user = ? AND device_id = ?", (user, device_id))

        self._run("deleting a device", delete)

    async def reset_device(self, user: str, device_id: str) -> None:
        self._run("resetting a device", lambda db: db.execute(
            "DELETE FROM blobs WHERE user = ? AND device_id = ?", (user, device_id)))

    async def get_setting(self, name: str) -> Any:
        row = self._run("reading a setting", lambda db: db.execute(
            "SELECT value FROM settings WHERE name = ?", (name,)).fetchone())
        return None if row is None else json.loads(row[0])

    async def set_setting(self, name: str, value: Any) -> None:
        if value is None:
            self._run("removing a setting", lambda db: db.execute("DELETE FROM settings WHERE name = ?", (name,)))
            return
        text = json.dumps(value)  # before the lock: a value that is not JSON fails here, storing nothing
        self._run("writing a setting", lambda db: db.execute(
            "INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)", (name, text)))

    async def update_device(self, user: str, device_id: str,
                            change: Callable[[DeviceRecord], None]) -> DeviceRecord | None:
        def update(db: sqlite3.Connection) -> DeviceRecord | None:
            with _transaction(db):
                row = db.execute("SELECT record FROM devices WHERE user = ? AND device_id = ?",
                                 (user, device_id)).fetchone()
                if row is None:
                    return None
                device = _record(row[0])
                change(device)
                self._write_device(db, device)
                return device

        return self._run("updating a device record", update)

    async def update_setting(self, name: str, change: Callable[[Any], Any]) -> Any:
        def update(db: sqlite3.Connection) -> Any:
            with _transaction(db):  # BEGIN IMMEDIATE: other processes' writers wait
                row = db.execute("SELECT value FROM settings WHERE name = ?", (name,)).fetchone()
                value = change(None if row is None else json.loads(row[0]))
                if value is None:
                    db.execute("DELETE FROM settings WHERE name = ?", (name,))
                else:
                    db.execute("INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)", (name, json.dumps(value)))
                return value

        return self._run("updating a setting", update)

    async def settings(self, prefix: str = "") -> dict[str, Any]:
        # substr, not LIKE: a prefix holding % or _ is text, not a pattern.
        rows = self._run("listing settings", lambda db: db.execute(
            "SELECT name, value FROM settings WHERE substr(name, 1, ?) = ? ORDER BY name",
            (len(prefix), prefix)).fetchall())
        return {str(name): json.loads(value) for name, value in rows}

    async def record_event(self, event: AuditEvent) -> None:
        self._run("recording an audit event", lambda db: db.execute(
            "INSERT INTO audit (time, actor, action, user, device_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
            (event.time, event.actor, event.action, event.user, event.device_id, event.detail)))

    async def events(self, *, user: str | None = None, device_id: str | None = None,
                     since: float | None = None, limit: int = 100) -> list[AuditEvent]:
        where, args = [], []
        for column, value in (("user = ?", user), ("device_id = ?", device_id), ("time >= ?", since)):
            if value is not None:
                where.append(column)
                args.append(value)
        sql = ("SELECT action, actor, user, device_id, detail, time FROM audit"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY time DESC, id DESC LIMIT ?")
        rows = self._run("reading the audit trail", lambda db: db.execute(sql, (*args, max(0, limit))).fetchall())
        return [AuditEvent(*row) for row in rows]

    async def close(self) -> None:
        with self._lock:
            db, self._db = self._db, None
            if db is not None:
                try:
                    db.close()
                except sqlite3.Error as e:
                    raise StateError(f"closing state database {self.path!r}: {e}") from None

    # -- inside a transaction (subclasses in tests override these to inject failures) ----

    def _write_device(self, db: sqlite3.Connection, device: DeviceRecord) -> None:
        db.execute(
            "INSERT INTO devices (user, device_id, device_type, last_seen, access, record) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (user, device_id) DO UPDATE SET device_type = excluded.device_type,"
            " last_seen = excluded.last_seen, access = excluded.access, record = excluded.record",
            (device.user, device.device_id, device.device_type, device.last_seen, device.access, device.to_json()))

    def _write_blob(self, db: sqlite3.Connection, user: str, device_id: str, key: str, value: bytes | None) -> None:
        if value is None:
            db.execute("DELETE FROM blobs WHERE user = ? AND device_id = ? AND key = ?", (user, device_id, key))
        else:
            db.execute("INSERT OR REPLACE INTO blobs (user, device_id, key, value) VALUES (?, ?, ?, ?)",
                       (user, device_id, key, sqlite3.Binary(bytes(value))))

    # -- plumbing ------------------------------------------------------------------------

    def _run(self, what: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)`` under the lock, with driver errors turned into StateError."""
        with self._lock:
            if self._db is None:
                raise StateError(f"state database {self.path!r} is closed")
            try:
                return work(self._db)
            except sqlite3.Error as e:
                raise StateError(f"{what} in {self.path!r} failed: {e}") from None


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE takes the write lock up front, so a transaction never fails
    half-way on a lock upgrade; any exception inside rolls everything back."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the original error says more; SQLite has rolled back on its own
        raise


def _migrate(db: sqlite3.Connection, path: str) -> None:
    """Bring the file to SCHEMA_VERSION, one step per transaction."""
    while True:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            # Touch the schema so that a file with a valid header but no readable
            # catalogue fails now, not on the first request.
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return
        if version > SCHEMA_VERSION:
            raise StateError(f"state database {path!r} has schema version {version}, newer than this library's "
                             f"({SCHEMA_VERSION}): upgrade eas")
        with _transaction(db):
            # Another process may have migrated between our read and our lock.
            if db.execute("PRAGMA user_version").fetchone()[0] == version:
                if version == 0 and db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    raise StateError(f"{path!r} is an SQLite database of something else (it has tables "
                                     "but no eas schema version)")
                for statement in MIGRATIONS[version]:
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {version + 1}")


def _retry_busy(work: Callable[[], T], deadline: float) -> T:
    """``work()``, again while another connection holds a lock it needs, until
    ``deadline``. Changing the journal mode of a new file takes an exclusive lock that
    SQLite's busy handler does not wait for, so processes opening a new file together
    would fail without this."""
    while True:
        try:
            return work()
        except sqlite3.OperationalError as e:
            if (e.sqlite_errorcode or 0) & 0xFF not in (_SQLITE_BUSY, _SQLITE_LOCKED) or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


def _record(text: str) -> DeviceRecord:
    try:
        return DeviceRecord.from_json(text)
    except (ValueError, TypeError, AttributeError) as e:
        raise StateError(f"a stored device record is unreadable: {e}") from None
