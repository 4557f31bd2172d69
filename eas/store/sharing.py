"""Folders one user shares with another, and which of them the other user syncs.

An owner grants a share of one folder (its subfolders are not part of it; or of the whole
account) to a grantee with rights ``r`` (read) or ``rw`` (read and write, deletes
included). The grantee *mounts* the
shares they want on their devices: a mounted share is listed by ``folders()`` as a
top-level folder named "Calendar (Bob)", of the user twin of its type
(user-calendar, ...), with the owner's folder id as its id, so its server id stays as
long as it stays mounted. Item operations a grantee asks on that id run as the owner
(``SharingStore.__init_subclass__`` routes them); a change in the owner's folder is also
announced for each grantee who mounted it (``_tell_grantees``), so their Pings wake.

Refused mounts, as Carbonio's mobile module refuses them (docs "Shared Folders"):

- a whole account: ActiveSync has no notion of another mailbox inside one's own;
- a folder inside (or above) a folder already shared with the grantee: a partial tree;
- a read-only share: EAS has no read-only folders, and a device whose changes are
  refused retries them forever, then loses them at its next full resync.

Unmounting or revoking takes the folder out of ``folders()``: the next FolderSync sends
the device a Delete, and a Sync of it meanwhile gets status 12.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eas.backend import BackendError, Folder, FolderNotFound, FolderType, ItemNotFound, SpecialFolder

if TYPE_CHECKING:
    import contextlib
    import threading

RIGHTS = ("r", "rw")
"""The rights a share may carry: read, or read and write."""

# Backend methods whose second argument is a folder id: called by a grantee on a mounted
# share, they run as the share's owner.
_ROUTED = ("item_stamps", "fetch_items", "add_item", "change_item", "delete_occurrence", "fetch_emails",
           "add_email", "change_email", "delete_item", "empty_folder")
# Folder changes a device may not make to a share (its owner renames and deletes it).
_REFUSED = ("update_folder", "delete_folder")


class ShareError(ValueError):
    """A share operation refused; the message says why (the CLI prints it)."""


@dataclass(frozen=True, slots=True)
class Share:
    """One share: ``folder`` is the folder's path in the owner's mailbox (``""`` for the
    whole account)."""

    id: int
    owner: str
    folder: str
    folder_id: str
    grantee: str
    rights: str
    mounted: bool


class SharingStore:
    """The sharing part of ``ReferenceStore`` (which supplies the connection, its lock,
    ``_tx``, ``_read`` and ``_folder_by_path``)."""

    if TYPE_CHECKING:
        _conn: sqlite3.Connection
        _lock: threading.Lock
        _tx: Callable[..., contextlib.AbstractContextManager[sqlite3.Connection]]
        _read: Callable[[], contextlib.AbstractContextManager[sqlite3.Connection]]
        _folder_by_path: Callable[[sqlite3.Connection, int, str], int]

    def __init_subclass__(cls, **kw: Any) -> None:
        """Wrap the store's folder-id methods so that a grantee's call on a mounted share
        runs as its owner (once per class: a subclass of the store is not wrapped again)."""
        super().__init_subclass__(**kw)
        for name in _ROUTED + _REFUSED:
            method = getattr(cls, name, None)
            if method is None or getattr(method, "_shares_routed", False):
                continue
            setattr(cls, name, _routed(method, refuse=name in _REFUSED))
        for name, wrap in (("move_item", _routed_move), ("attachment", _routed_attachment)):
            method = getattr(cls, name, None)
            if method is not None and not getattr(method, "_shares_routed", False):
                setattr(cls, name, wrap(method))

    # -- administration (synchronous) ----------------------------------------------------

    def grant(self, owner: str, folder: str, grantee: str, rights: str) -> Share:
        """Share ``owner``'s folder (a name or ``a/b`` path; ``""`` or ``/`` the whole
        account) with ``grantee``; granting again changes the rights. Lowering them to
        read-only unmounts it. ``ShareError`` for unknown users or folders, bad rights."""
        if rights not in RIGHTS:
            raise ShareError(f"rights must be one of {', '.join(RIGHTS)}, not {rights!r}")
        changed: dict[str, set[str]] = {}
        with self._tx(changed) as conn:
            owner_id, grantee_id = _account(conn, owner), _account(conn, grantee)
            if owner_id == grantee_id:
                raise ShareError("a user cannot share a folder with themselves")
            folder_id = None if folder.strip() in ("", "/") else self._path(conn, owner_id, folder)
            row = conn.execute("INSERT INTO shares (owner_id, folder_id, grantee_id, rights) VALUES (?, ?, ?, ?) "
                               "ON CONFLICT (grantee_id, owner_id, coalesce(folder_id, 0)) DO UPDATE SET "
                               "rights = excluded.rights, mounted = mounted AND excluded.rights = 'rw' "
                               "RETURNING id", (owner_id, folder_id, grantee_id, rights)).fetchone()
            changed[grantee.lower()] = set()  # the grantee's hierarchy may have changed
            return self._share(conn, int(row[0]))

    def revoke(self, owner: str, folder: str, grantee: str) -> None:
        """End a share; ``ShareError`` when there is none."""
        changed: dict[str, set[str]] = {}
        with self._tx(changed) as conn:
            owner_id, grantee_id = _account(conn, owner), _account(conn, grantee)
            folder_id = None if folder.strip() in ("", "/") else self._path(conn, owner_id, folder)
            if conn.execute("DELETE FROM shares WHERE grantee_id = ? AND owner_id = ? "
                            "AND coalesce(folder_id, 0) = ?", (grantee_id, owner_id, folder_id or 0)).rowcount != 1:
                raise ShareError(f"{owner.lower()} does not share {folder!r} with {grantee.lower()}")
            changed[grantee.lower()] = set()

    def shares(self, user: str) -> list[Share]:
        """The shares ``user`` was granted and those ``user`` granted, by id."""
        with self._read() as conn:
            user_id = _account(conn, user)
            ids = [int(r[0]) for r in conn.execute(
                "SELECT id FROM shares WHERE grantee_id = ? OR owner_id = ? ORDER BY id", (user_id, user_id))]
            return [self._share(conn, i) for i in ids]

    def mount(self, user: str, share_id: int) -> Share:
        """Sync a share granted to ``user`` on their devices; ``ShareError`` saying why not."""
        return self._set_mounted(user, share_id, True)

    def unmount(self, user: str, share_id: int) -> Share:
        """Stop syncing a share: the devices delete the folder at their next FolderSync."""
        return self._set_mounted(user, share_id, False)

    def _set_mounted(self, user: str, share_id: int, mounted: bool) -> Share:
        changed: dict[str, set[str]] = {}
        with self._tx(changed) as conn:
            user_id = _account(conn, user)
            row = conn.execute("SELECT owner_id, folder_id, rights FROM shares WHERE id = ? AND grantee_id = ?",
                               (share_id, user_id)).fetchone()
            if row is None:
                raise ShareError(f"no share {share_id} granted to {user.lower()} (eas share list {user.lower()})")
            if mounted:
                _check_mountable(conn, user_id, row[1], row[2])
            conn.execute("UPDATE shares SET mounted = ? WHERE id = ?", (int(mounted), share_id))
            changed[user.lower()] = set()
            return self._share(conn, share_id)

    def _path(self, conn: sqlite3.Connection, user_id: int, folder: str) -> int:
        try:
            return self._folder_by_path(conn, user_id, folder)
        except ValueError:
            raise ShareError(f"no folder {folder!r}") from None

    @staticmethod
    def _share(conn: sqlite3.Connection, share_id: int) -> Share:
        row = conn.execute(
            "SELECT s.id, o.email, s.folder_id, g.email, s.rights, s.mounted FROM shares s "
            "JOIN users o ON o.id = s.owner_id JOIN users g ON g.id = s.grantee_id WHERE s.id = ?",
            (share_id,)).fetchone()
        folder_id = row[2]
        path = "" if folder_id is None else "/".join(name for _, name in _ancestry(conn, folder_id))
        return Share(int(row[0]), str(row[1]), path, "" if folder_id is None else str(folder_id),
                     str(row[3]), str(row[4]), bool(row[5]))

    # -- what the Backend methods use ----------------------------------------------------

    @staticmethod
    def _mounted_folders(conn: sqlite3.Connection, user_id: int) -> list[Folder]:
        """The shares ``user_id`` mounted, as top-level folders of their own."""
        from eas.store.reference import _USER_TYPE  # that module imports this one

        rows = conn.execute(
            "SELECT f.id, f.name, f.type, o.email, o.display_name, o.local_part FROM shares s "
            "JOIN folders f ON f.id = s.folder_id JOIN users o ON o.id = s.owner_id "
            "WHERE s.grantee_id = ? AND s.mounted = 1 ORDER BY s.id", (user_id,)).fetchall()
        out = []
        for fid, name, type_, email, display_name, local_part in rows:
            try:
                kind = FolderType(type_)
            except ValueError:
                kind = FolderType.USER_GENERIC
            out.append(Folder(str(fid), "", f"{name} ({display_name or local_part})", _USER_TYPE.get(kind, kind),
                              owner=str(email)))
        return out

    def _watch_shares(self, conn: sqlite3.Connection) -> None:
        """Note the grantee of every mounted share that goes away, however it goes
        (revoked, unmounted, its folder or an account deleted: foreign-key cascades
        fire triggers too), for ``_tell_grantees``. Call once per connection."""
        self._lost_shares: list[int] = []
        conn.create_function("eas_share_lost", 1, self._lost_shares.append)
        conn.execute("CREATE TEMP TRIGGER IF NOT EXISTS eas_share_lost AFTER DELETE ON shares WHEN old.mounted "
                     "BEGIN SELECT eas_share_lost(old.grantee_id); END")
        conn.execute("CREATE TEMP TRIGGER IF NOT EXISTS eas_share_unmounted AFTER UPDATE OF mounted ON shares "
                     "WHEN old.mounted AND NOT new.mounted BEGIN SELECT eas_share_lost(old.grantee_id); END")

    def _tell_grantees(self, conn: sqlite3.Connection, changed: dict[str, set[str]]) -> None:
        """Add to ``changed`` the grantees who mounted a changed folder (a write of its
        owner, or of another grantee), so that their Pings wake as the owner's do, and
        the grantees who lost a mounted share in this transaction (their hierarchy
        changed: every Ping of theirs wakes, and answers 7)."""
        lost = getattr(self, "_lost_shares", None)
        if lost:
            marks = ",".join("?" * len(lost))
            for (email,) in conn.execute(f"SELECT email FROM users WHERE id IN ({marks})", tuple(lost)):
                changed[str(email)] = set()
            lost.clear()
        ids = {int(f) for folders in changed.values() for f in folders if f.isdigit()}
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        for fid, email in conn.execute(
                f"SELECT s.folder_id, g.email FROM shares s JOIN users g ON g.id = s.grantee_id "
                f"WHERE s.mounted = 1 AND s.folder_id IN ({marks})", tuple(ids)):
            changed.setdefault(str(email), set()).add(str(fid))

    def _owner_of(self, user: str, folder_id: object) -> str | None:
        """The owner of ``folder_id`` when it is a share ``user`` mounted, else None."""
        if not isinstance(folder_id, str) or not folder_id.isascii() or not folder_id.isdigit() \
                or len(folder_id) > 18:
            return None
        # One statement, no explicit transaction: this runs before every item call.
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT o.email FROM shares s JOIN users g ON g.id = s.grantee_id "
                    "JOIN users o ON o.id = s.owner_id WHERE s.folder_id = ? AND s.mounted = 1 AND g.email = ?",
                    (int(folder_id), user.lower())).fetchone()
            except sqlite3.Error as exc:
                raise BackendError(f"mail store: {exc}") from None
        return None if row is None else str(row[0])


def _routed(method: Callable[..., Any], *, refuse: bool) -> Callable[..., Any]:
    @functools.wraps(method)
    async def run(self: SharingStore, user: str, folder_id: str, *args: Any, **kw: Any) -> Any:
        owner = self._owner_of(user, folder_id)
        if owner is not None:
            if refuse:
                raise SpecialFolder("a shared folder is renamed and deleted by its owner; unmount it instead")
            user = owner
        return await method(self, user, folder_id, *args, **kw)

    run._shares_routed = True  # type: ignore[attr-defined]
    return run


def _routed_move(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    async def run(self: SharingStore, user: str, item_id: str, src: str, dst: str) -> Any:
        src_owner, dst_owner = self._owner_of(user, src), self._owner_of(user, dst)
        if src_owner != dst_owner:
            raise FolderNotFound("items do not move between accounts")
        return await method(self, src_owner or user, item_id, src, dst)

    run._shares_routed = True  # type: ignore[attr-defined]
    return run


def _routed_attachment(method: Callable[..., Any]) -> Callable[..., Any]:
    """An attachment of a mail in a mounted share is fetched as the share's owner."""
    @functools.wraps(method)
    async def run(self: SharingStore, user: str, file_reference: str) -> Any:
        try:
            return await method(self, user, file_reference)
        except ItemNotFound:
            item = file_reference.partition(":")[0]
            if not item.isascii() or not item.isdigit() or len(item) > 18:
                raise
            with self._lock:
                row = self._conn.execute("SELECT folder_id FROM messages WHERE id = ?", (int(item),)).fetchone()
            owner = None if row is None else self._owner_of(user, str(row[0]))
            if owner is None:
                raise
            return await method(self, owner, file_reference)

    run._shares_routed = True  # type: ignore[attr-defined]
    return run


def _account(conn: sqlite3.Connection, email: str) -> int:
    row = conn.execute("SELECT id FROM users WHERE email = ?", (email.strip().lower(),)).fetchone()
    if row is None:
        raise ShareError(f"no such user: {email}")
    return int(row[0])


def _ancestry(conn: sqlite3.Connection, folder_id: int) -> Iterator[tuple[int, str]]:
    """``(id, name)`` from the top of the mailbox down to ``folder_id``."""
    chain: list[tuple[int, str]] = []
    current: int | None = folder_id
    while current is not None and len(chain) < 1000:  # a parent loop never hangs us
        row = conn.execute("SELECT parent_id, name FROM folders WHERE id = ?", (current,)).fetchone()
        if row is None:
            break
        chain.append((current, str(row[1])))
        current = row[0]
    return reversed(chain)


def _check_mountable(conn: sqlite3.Connection, grantee_id: int, folder_id: int | None, rights: str) -> None:
    """``ShareError`` for the mounts Carbonio refuses too (see the module docstring)."""
    if folder_id is None:
        raise ShareError("a whole account cannot be synced as a folder; ask for shares of its folders")
    if "w" not in rights:
        raise ShareError("a read-only share cannot be synced: ActiveSync has no read-only folders, and a "
                         "device would lose the changes the server refuses; ask the owner for rw")
    above = [fid for fid, _ in _ancestry(conn, folder_id) if fid != folder_id]
    if above:
        marks = ",".join("?" * len(above))
        row = conn.execute(f"SELECT f.name FROM shares s JOIN folders f ON f.id = s.folder_id "
                           f"WHERE s.grantee_id = ? AND s.folder_id IN ({marks})", (grantee_id, *above)).fetchone()
        if row is not None:
            raise ShareError(f"this folder lies inside {row[0]!r}, which is shared with you too: syncing it "
                             "apart would give your devices part of a tree")
    below = conn.execute(
        "WITH RECURSIVE sub(id) AS (SELECT id FROM folders WHERE parent_id = ? "
        "UNION SELECT f.id FROM folders f JOIN sub ON f.parent_id = sub.id) "
        "SELECT f.name FROM shares s JOIN folders f ON f.id = s.folder_id "
        "WHERE s.grantee_id = ? AND s.mounted = 1 AND s.folder_id IN (SELECT id FROM sub)",
        (folder_id, grantee_id)).fetchone()
    if below is not None:
        raise ShareError(f"you already sync {below[0]!r}, a folder inside this one: unmount it first")
