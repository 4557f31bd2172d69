"""The reference store's SQLite schema, as migrations applied in order.

``PRAGMA user_version`` is the number of migrations a database has had; opening it applies
the rest, each in its own transaction. A migration, once released, is never edited: a
change is a new entry at the end of ``MIGRATIONS``.

Dates are integer seconds since the epoch (UTC). The RFC 5322 bytes live in their own
table, so that listing and fetching mail never reads them.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: users, folders, messages, outgoing submissions, out-of-office, the change counter.
    """
    CREATE TABLE counter (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO counter (name, value) VALUES ('modseq', 0);

    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        local_part TEXT NOT NULL,
        domain TEXT NOT NULL,
        display_name TEXT NOT NULL DEFAULT '',
        password TEXT NOT NULL,
        created INTEGER NOT NULL
    );
    CREATE INDEX users_local_part ON users (local_part);

    -- AUTOINCREMENT: an id is never given twice, since devices keep ids (a reused id
    -- would make a new folder or mail look like a change of a deleted one).
    CREATE TABLE folders (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        parent_id INTEGER REFERENCES folders (id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        type INTEGER NOT NULL,
        special INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX folders_sibling_name ON folders (user_id, coalesce(parent_id, 0), name COLLATE NOCASE);

    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        folder_id INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
        modseq INTEGER NOT NULL,
        date_received INTEGER NOT NULL,
        read INTEGER NOT NULL DEFAULT 0,
        flag TEXT,
        categories TEXT NOT NULL DEFAULT '[]',
        is_draft INTEGER NOT NULL DEFAULT 0,
        subject TEXT NOT NULL DEFAULT '',
        sender TEXT NOT NULL DEFAULT '',
        to_addr TEXT NOT NULL DEFAULT '',
        cc TEXT NOT NULL DEFAULT '',
        bcc TEXT NOT NULL DEFAULT '',
        reply_to TEXT NOT NULL DEFAULT '',
        display_to TEXT NOT NULL DEFAULT '',
        importance INTEGER NOT NULL DEFAULT 1,
        message_id TEXT NOT NULL DEFAULT '',
        message_class TEXT NOT NULL DEFAULT 'IPM.Note',
        thread_topic TEXT NOT NULL DEFAULT '',
        conversation_id BLOB NOT NULL DEFAULT x'',
        conversation_index BLOB NOT NULL DEFAULT x'',
        body_text TEXT,
        body_html TEXT,
        size INTEGER NOT NULL DEFAULT 0,
        attachments TEXT NOT NULL DEFAULT '[]'
    );
    -- item_stamps reads only this index (rowid and modseq are in it).
    CREATE INDEX messages_folder_date ON messages (folder_id, date_received, modseq);

    CREATE TABLE mime (
        message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
        data BLOB NOT NULL
    );

    CREATE TABLE outgoing (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        submitted INTEGER NOT NULL,
        recipients TEXT NOT NULL,
        data BLOB NOT NULL
    );

    CREATE TABLE oof (
        user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
        settings TEXT NOT NULL
    );
    """,
    # 2: calendar, contact, task and note items; meeting requests in mail; address books;
    # folders shared between users; users' directory details and certificates.
    """
    -- An item is its iCalendar (VCALENDAR with one VEVENT, VTODO or VJOURNAL and its
    -- overrides) or vCard text; the columns beside it are what listing needs.
    CREATE TABLE items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        folder_id INTEGER NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
        modseq INTEGER NOT NULL,
        uid TEXT NOT NULL,
        data TEXT NOT NULL,
        starts INTEGER,              -- first start (events, tasks), NULL when none
        ends INTEGER,                -- last end of the last occurrence; NULL: recurs forever or none
        complete INTEGER NOT NULL DEFAULT 0,
        search TEXT NOT NULL DEFAULT ''  -- lower-case names and addresses, for lookups
    );
    CREATE INDEX items_folder ON items (folder_id, ends, modseq);
    CREATE INDEX items_uid ON items (user_id, uid);

    ALTER TABLE messages ADD COLUMN meeting TEXT;  -- the iCalendar of a meeting request

    -- The address lists searched by the users of a scope ('global' or a domain), in order.
    CREATE TABLE address_books (
        scope TEXT NOT NULL,
        source TEXT NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (scope, source)
    );

    -- A folder its owner shares with another user (folder_id NULL: the whole account),
    -- and whether that user syncs it (eas.store.sharing).
    CREATE TABLE shares (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        owner_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        folder_id INTEGER REFERENCES folders (id) ON DELETE CASCADE,
        grantee_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        rights TEXT NOT NULL,
        mounted INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX shares_one ON shares (grantee_id, owner_id, coalesce(folder_id, 0));
    CREATE INDEX shares_folder ON shares (folder_id, mounted);

    ALTER TABLE users ADD COLUMN details TEXT NOT NULL DEFAULT '{}';  -- GAL fields (Person)
    ALTER TABLE users ADD COLUMN picture BLOB;

    CREATE TABLE certificates (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        der BLOB NOT NULL
    );
    """,
)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring ``conn``'s database up to date; the schema version it ends at. Raises
    ``RuntimeError`` for a database written by a newer version of this code."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > len(MIGRATIONS):
        raise RuntimeError(f"database schema version {current} is newer than this code knows "
                           f"({len(MIGRATIONS)})")
    for version in range(current, len(MIGRATIONS)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have migrated meanwhile.
            if conn.execute("PRAGMA user_version").fetchone()[0] != version:
                conn.execute("ROLLBACK")
                return migrate(conn)
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    """Split a migration into statements (``executescript`` would commit on its own)."""
    out: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            out.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        out.append(buffer.strip())
    return out
