"""``DirectoryStore``: the reference store's address lists and mailbox search (a mixin of
``ReferenceStore``).

The global address list (GAL) a user searches is made of the address books the
administrator chose (table ``address_books``): those of scope ``global`` and those of the
user's own domain, in their order. A book's source is ``users`` (the accounts of this
store; for a domain scope only those of that domain) or ``USER/FOLDER``, a contacts
folder of some account (a company directory kept as contacts). With no book at all for
a user, the GAL is the accounts of the user's own domain. Entries are deduplicated by
address, the first book that has one winning.

An account's GAL entry is its display name and address plus the details an
administrator set (``users.details``: title, phones, office, company, ...), its picture
(``users.picture``, JPEG) and its S/MIME certificates (table ``certificates``, DER).

``search_mailbox`` looks for every word of the text in the subject, the addresses and
the body text of the mail folders asked for; matching is case-insensitive for all of
Unicode (a Python function registered on the connection: SQLite's own ``lower`` only
folds ASCII).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import getaddresses
from typing import TYPE_CHECKING, Any

from eas.backend import FOLDER_CLASS, FolderNotFound, FolderType, MailboxQuery, Person

if TYPE_CHECKING:
    import contextlib
    from collections.abc import Sequence

    from eas.backend import Item
    from eas.items.contacts import Contact

SCOPE_GLOBAL = "global"
SOURCE_USERS = "users"

# The Person fields an administrator may set on an account (``eas user set``).
DETAIL_FIELDS = ("first_name", "last_name", "phone", "mobile_phone", "home_phone", "office", "title", "company")
MAX_DETAIL = 256
MAX_PICTURE = 1024 * 1024
MAX_CERTIFICATE = 64 * 1024

_MAIL_TYPES = tuple(int(t) for t, c in FOLDER_CLASS.items() if c == "Email")
_CONTACT_TYPES = (int(FolderType.CONTACTS), int(FolderType.USER_CONTACTS))
_MAX_TERMS = 16  # words of a FreeText that are matched; the rest are ignored


def _fold(value: object) -> str:
    return value.casefold() if isinstance(value, str) else ""


class DirectoryStore:
    """Address books, GAL details and mailbox search of ``ReferenceStore``."""

    if TYPE_CHECKING:  # supplied by ReferenceStore
        _tx: Callable[..., contextlib.AbstractContextManager[sqlite3.Connection]]
        _read: Callable[[], contextlib.AbstractContextManager[sqlite3.Connection]]
        _folder_by_path: Callable[[sqlite3.Connection, int, str], int]
        _user_id: Callable[[sqlite3.Connection, str], int]
        _descendants: Callable[[sqlite3.Connection, int], list[int]]

        async def fetch_items(self, user: str, folder_id: str, item_ids: Sequence[str]) -> list[Item]: ...

    # -- administration (synchronous) ----------------------------------------------------

    def add_address_book(self, scope: str, source: str) -> None:
        """Add a book at the end of a scope (``global`` or a domain); ValueError when the
        scope or source is malformed, names an unknown account or a folder that is not a
        contacts folder, or is there already."""
        scope, source = _scope(scope), source.strip()
        with self._tx() as conn:
            if source != SOURCE_USERS:
                self._contacts_folder(conn, source)
            if conn.execute("SELECT 1 FROM address_books WHERE scope = ? AND source = ?",
                            (scope, source)).fetchone():
                raise ValueError(f"{scope} already has {source}")
            position = conn.execute("SELECT coalesce(max(position), 0) + 1 FROM address_books WHERE scope = ?",
                                    (scope,)).fetchone()[0]
            conn.execute("INSERT INTO address_books (scope, source, position) VALUES (?, ?, ?)",
                         (scope, source, position))

    def remove_address_book(self, scope: str, source: str) -> None:
        """ValueError when the scope has no such book."""
        with self._tx() as conn:
            if conn.execute("DELETE FROM address_books WHERE scope = ? AND source = ?",
                            (_scope(scope), source.strip())).rowcount != 1:
                raise ValueError(f"{scope} has no address book {source}")

    def address_books(self) -> list[tuple[str, str]]:
        """``(scope, source)`` of every book, global first, each scope in its order."""
        with self._read() as conn:
            rows = conn.execute("SELECT scope, source FROM address_books "
                                "ORDER BY scope != 'global', scope, position").fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def set_user_details(self, email: str, **details: str) -> None:
        """Set GAL fields of an account (``DETAIL_FIELDS``; "" clears one); ValueError for
        an unknown account, field or a value with control characters or too long."""
        for name, value in details.items():
            if name not in DETAIL_FIELDS:
                raise ValueError(f"no GAL field {name!r}")
            if len(value) > MAX_DETAIL or any(ord(c) < 32 for c in value):
                raise ValueError(f"{name}: at most {MAX_DETAIL} characters, no control characters")
        with self._tx() as conn:
            row = conn.execute("SELECT details FROM users WHERE email = ?", (email.lower(),)).fetchone()
            if row is None:
                raise ValueError(f"no user {email}")
            current = {k: v for k, v in json.loads(row[0]).items() if k in DETAIL_FIELDS}
            current.update(details)
            current = {k: v for k, v in current.items() if v}
            conn.execute("UPDATE users SET details = ? WHERE email = ?", (json.dumps(current), email.lower()))

    def set_user_picture(self, email: str, picture: bytes | None) -> None:
        """Set (None: remove) an account's picture, a JPEG; ValueError for an unknown
        account, bytes that are not a JPEG, or more than ``MAX_PICTURE`` bytes."""
        if picture is not None and (not picture.startswith(b"\xff\xd8\xff") or len(picture) > MAX_PICTURE):
            raise ValueError(f"a picture is a JPEG file of at most {MAX_PICTURE} bytes")
        with self._tx() as conn:
            if conn.execute("UPDATE users SET picture = ? WHERE email = ?",
                            (picture, email.lower())).rowcount != 1:
                raise ValueError(f"no user {email}")

    def add_user_certificate(self, email: str, der: bytes) -> None:
        """Add an S/MIME certificate (DER) to an account's GAL entry; ValueError for an
        unknown account or bytes that are not one DER structure (a SEQUENCE)."""
        if not _is_der_sequence(der) or len(der) > MAX_CERTIFICATE:
            raise ValueError("not a DER-encoded certificate")
        with self._tx() as conn:
            user_id = self._user_id_or_none(conn, email)
            if user_id is None:
                raise ValueError(f"no user {email}")
            conn.execute("INSERT INTO certificates (user_id, der) VALUES (?, ?)", (user_id, der))

    def user_entry(self, email: str) -> Person:
        """An account's GAL entry (the ``eas user show`` view); ValueError for an unknown one."""
        with self._read() as conn:
            people = self._user_people(conn, "email = ?", (email.lower(),))
        if not people:
            raise ValueError(f"no user {email}")
        return people[0]

    # -- Backend: search ---------------------------------------------------------------------

    async def search_directory(self, user: str, text: str, limit: int, *, contacts: bool = False) -> list[Person]:
        wanted = _fold(text).strip()
        if not wanted or limit <= 0:
            return []
        folders: list[tuple[str, int, bool]] = []  # (owner, folder id, as contacts of the user)
        found: list[Person] = []
        with self._read() as conn:
            user_id = self._user_id(conn, user)
            domain = user.lower().rpartition("@")[2]
            for scope, source in self._books(conn, domain):
                if source == SOURCE_USERS:
                    where, args = ("1", ()) if scope == SCOPE_GLOBAL else ("domain = ?", (scope,))
                    found.extend(p for p in self._user_people(conn, where, args) if _matches(p, wanted))
                else:
                    located = self._contacts_folder_or_none(conn, source)
                    if located is not None:
                        folders.append((located[0], located[1], False))
            if contacts:
                folders.extend((user.lower(), int(r[0]), True) for r in conn.execute(
                    f"SELECT id FROM folders WHERE user_id = ? AND type IN ({_marks(_CONTACT_TYPES)}) ORDER BY id",
                    (user_id, *_CONTACT_TYPES)))
            candidates = [(owner, fid, mine, [str(r[0]) for r in conn.execute(
                "SELECT id FROM items WHERE folder_id = ? AND instr(search, ?) ORDER BY id", (fid, wanted))])
                for owner, fid, mine in folders]
        for owner, fid, mine, ids in candidates:
            if ids:
                items = await self.fetch_items(owner, str(fid), ids)
                found.extend(p for p in _contact_people(items, wanted, mine) if _matches(p, wanted))
        seen: set[str] = set()
        unique: list[Person] = []
        for person in found:
            key = person.email.lower()
            if key not in seen:
                seen.add(key)
                unique.append(person)
        gal = [p for p in unique if not p.contact]
        mine_only = [p for p in unique if p.contact]
        ranked = sorted(gal, key=lambda p: _rank(p, wanted)) + sorted(mine_only, key=lambda p: _rank(p, wanted))
        return ranked[:limit]

    async def search_mailbox(self, user: str, query: MailboxQuery, limit: int) -> list[tuple[str, str]]:
        terms = _fold(query.text).split()[:_MAX_TERMS]
        with self._read() as conn:
            conn.create_function("eas_fold", 1, _fold, deterministic=True)
            user_id = self._user_id(conn, user)
            folder_ids = self._mail_folders(conn, user_id, query)
            if not folder_ids or limit <= 0:
                return []
            sql = [f"SELECT folder_id, id FROM messages WHERE user_id = ? AND folder_id IN ({_marks(folder_ids)})"]
            args: list[Any] = [user_id, *folder_ids]
            if query.received_after is not None:
                sql.append("AND date_received > ?")
                args.append(_seconds(query.received_after))
            if query.received_before is not None:
                sql.append("AND date_received < ?")
                args.append(_seconds(query.received_before))
            if query.conversation_id:
                sql.append("AND conversation_id = ?")
                args.append(query.conversation_id)
            for term in terms:
                sql.append("AND instr(eas_fold(subject || ' ' || sender || ' ' || to_addr || ' ' || cc || ' ' || "
                           "bcc || ' ' || display_to || ' ' || coalesce(body_text, body_html, '')), ?)")
                args.append(term)
            sql.append("ORDER BY date_received DESC, id DESC LIMIT ?")
            args.append(limit)
            rows = conn.execute(" ".join(sql), args).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _user_id_or_none(conn: sqlite3.Connection, email: str) -> int | None:
        row = conn.execute("SELECT id FROM users WHERE email = ?", (email.strip().lower(),)).fetchone()
        return None if row is None else int(row[0])

    def _contacts_folder(self, conn: sqlite3.Connection, source: str) -> tuple[str, int]:
        """``(owner, folder id)`` of a ``USER/FOLDER`` source; ValueError if it is none."""
        owner, slash, path = source.partition("/")
        owner = owner.strip().lower()
        user_id = self._user_id_or_none(conn, owner) if slash and path else None
        if user_id is None:
            raise ValueError(f"an address book is 'users' or ACCOUNT/FOLDER of an existing account: {source!r}")
        folder_id = self._folder_by_path(conn, user_id, path)
        kind = conn.execute("SELECT type FROM folders WHERE id = ?", (folder_id,)).fetchone()[0]
        if int(kind) not in _CONTACT_TYPES:
            raise ValueError(f"{source} is not a contacts folder")
        return owner, folder_id

    def _contacts_folder_or_none(self, conn: sqlite3.Connection, source: str) -> tuple[str, int] | None:
        """The folder of a configured book, None once its account or folder is gone."""
        try:
            return self._contacts_folder(conn, source)
        except ValueError:
            return None

    @staticmethod
    def _books(conn: sqlite3.Connection, domain: str) -> list[tuple[str, str]]:
        rows = conn.execute("SELECT scope, source FROM address_books WHERE scope IN ('global', ?) "
                            "ORDER BY scope != 'global', position", (domain,)).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows] or [(domain, SOURCE_USERS)]

    @staticmethod
    def _user_people(conn: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> list[Person]:
        rows = conn.execute(f"SELECT id, email, local_part, display_name, details, picture FROM users "
                            f"WHERE {where} ORDER BY email", args).fetchall()
        certificates: dict[int, list[bytes]] = {}
        ids = [int(r[0]) for r in rows]
        for start in range(0, len(ids), 900):
            chunk = ids[start:start + 900]
            for user_id, der in conn.execute(f"SELECT user_id, der FROM certificates WHERE user_id IN "
                                             f"({_marks(chunk)}) ORDER BY id", chunk):
                certificates.setdefault(int(user_id), []).append(bytes(der))
        people = []
        for user_id, email, local, display_name, details, picture in rows:
            person = Person(display_name=display_name or local, email=email, alias=local,
                            picture=bytes(picture) if picture is not None else None,
                            certificates=certificates.get(int(user_id), []))
            for key, value in json.loads(details or "{}").items():
                if key in DETAIL_FIELDS:
                    setattr(person, key, str(value))
            people.append(person)
        return people

    def _mail_folders(self, conn: sqlite3.Connection, user_id: int, query: MailboxQuery) -> list[int]:
        """The mail folders a query covers; ``FolderNotFound`` for one not of this user."""
        mail = {int(r[0]) for r in conn.execute(
            f"SELECT id FROM folders WHERE user_id = ? AND type IN ({_marks(_MAIL_TYPES)})", (user_id, *_MAIL_TYPES))}
        if not query.folder_ids:
            return sorted(mail)
        chosen: set[int] = set()
        for folder_id in query.folder_ids:
            number = int(folder_id) if folder_id.isascii() and folder_id.isdigit() and len(folder_id) < 19 else 0
            if conn.execute("SELECT 1 FROM folders WHERE id = ? AND user_id = ?", (number, user_id)).fetchone() is None:
                raise FolderNotFound(f"no folder {folder_id!r}")
            chosen.add(number)
            if query.deep_traversal:
                chosen.update(self._descendants(conn, number))
        return sorted(chosen & mail)


def _scope(scope: str) -> str:
    """``global`` or a domain name, lower-case; ValueError otherwise."""
    scope = scope.strip().lower()
    if scope == SCOPE_GLOBAL:
        return scope
    labels = scope.split(".")
    if len(scope) > 253 or len(labels) < 2 or not all(
            label and len(label) <= 63 and all(c.isalnum() or c == "-" for c in label) for label in labels):
        raise ValueError(f"a scope is 'global' or a domain: {scope!r}")
    return scope


def _marks(values: Sequence[object] | set[int]) -> str:
    return ", ".join("?" * len(values))


def _seconds(value: datetime) -> float:
    return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).timestamp()


def _is_der_sequence(der: bytes) -> bool:
    """One DER SEQUENCE filling the bytes exactly (a certificate is one)."""
    if len(der) < 2 or der[0] != 0x30:
        return False
    first = der[1]
    if first < 0x80:
        return 2 + first == len(der)
    count = first & 0x7F
    if not 1 <= count <= 4 or len(der) < 2 + count:
        return False
    return 2 + count + int.from_bytes(der[2:2 + count], "big") == len(der)


def _names(person: Person) -> Iterator[str]:
    yield from (person.display_name, person.email, person.alias, person.first_name, person.last_name)


def _matches(person: Person, wanted: str) -> bool:
    return any(wanted in _fold(name) for name in _names(person))


def _rank(person: Person, wanted: str) -> int:
    """0 the address or a name is exactly the text, 1 one starts with it, 2 contains it."""
    names = [_fold(name) for name in _names(person) if name]
    if wanted in names or wanted == _fold(person.email).partition("@")[0]:
        return 0
    if any(name.startswith(wanted) for name in names):
        return 1
    return 2


def _contact_people(items: Sequence[Item], wanted: str, mine: bool) -> Iterator[Person]:
    """A Person per contact with an address (the first one that matches ``wanted``, else
    its first address); contacts without any address are not directory entries."""
    from eas.items.contacts import Contact

    for item in items:
        if not isinstance(item, Contact):
            continue
        addresses = [a for _, a in getaddresses([item.email1_address, item.email2_address, item.email3_address]) if a]
        if not addresses:
            continue
        address = next((a for a in addresses if wanted in _fold(a)), addresses[0])
        yield _person(item, address, mine)


def _person(contact: Contact, address: str, mine: bool) -> Person:
    full = " ".join(n for n in (contact.first_name, contact.last_name) if n)
    return Person(display_name=full or contact.file_as or address, email=address, first_name=contact.first_name,
                  last_name=contact.last_name, phone=contact.business_phone_number,
                  mobile_phone=contact.mobile_phone_number, home_phone=contact.home_phone_number,
                  office=contact.office_location, title=contact.job_title, company=contact.company_name,
                  picture=contact.picture or None, contact=mine)
