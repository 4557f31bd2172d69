"""``eas user add|passwd|list`` and ``eas mail deliver``: administration of a data dir's
reference mail store from outside the server.

These open the store directly (SQLite lets the server have it open at the same time) and
announce what they changed on the data dir's notify socket, so a running ``eas serve``
wakes the Pings of that user at once.
"""

from __future__ import annotations

import argparse
import getpass
import re
import secrets
import sys
from typing import TYPE_CHECKING, Any

from eas import notify, server

if TYPE_CHECKING:
    from eas.store import ReferenceStore

# A deliberately plain address check: local@domain, printable ASCII or UTF-8 without
# spaces, a dotted domain of letters, digits and hyphens (or an address literal).
_LOCAL = re.compile(r"[^\s@\"(),:;<>\[\\\]\x00-\x1f\x7f]{1,64}")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9\-\u0080-\U0010ffff]{1,63}(?<!-)")


class UsageError(Exception):
    """Bad input from the user: one line on stderr, exit status 2."""


def valid_email(address: str) -> bool:
    """Whether ``address`` looks like ``local@domain`` and can name an account."""
    if len(address) > 254 or address.count("@") != 1:
        return False
    local, domain = address.split("@")
    if not _LOCAL.fullmatch(local) or local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    if domain.startswith("[") and domain.endswith("]"):
        return bool(re.fullmatch(r"\[\d{1,3}(\.\d{1,3}){3}\]", domain))
    labels = domain.split(".")
    return len(labels) >= 2 and all(_LABEL.fullmatch(label) for label in labels)


def read_password(args: argparse.Namespace) -> str:
    """The new password: --password, --generate (printed), a prompt on a terminal, or
    one line of standard input."""
    password: str
    if args.password is not None:
        password = str(args.password)
    elif getattr(args, "generate", False):
        password = secrets.token_urlsafe(12)
        print(f"password: {password}")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise UsageError("the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("empty password")
    if len(password) > 1024:
        raise UsageError("password longer than 1024 characters")
    return password


def user_add(args: argparse.Namespace) -> int:
    email = args.email.strip()
    if not valid_email(email):
        raise UsageError(f"not an email address: {args.email!r}")
    store = server.open_store(server.data_dir(args.data_dir))
    if email.lower() in store.list_users():
        raise UsageError(f"user {email.lower()} exists (eas user passwd changes the password)")
    try:
        store.add_user(email, read_password(args))
    except ValueError as e:  # created meanwhile by someone else
        raise UsageError(str(e)) from None
    print(f"added {email.lower()}")
    return 0


def existing_store(args: argparse.Namespace) -> ReferenceStore:
    try:
        return server.open_store(server.data_dir(args.data_dir), create=False)
    except server.NoStore as e:
        raise UsageError(str(e)) from None


def user_passwd(args: argparse.Namespace) -> int:
    store = existing_store(args)
    email = known_user(store, args.email)
    try:
        store.set_password(email, read_password(args))
    except ValueError as e:  # deleted meanwhile
        raise UsageError(str(e)) from None
    # A running server has the old password's logins cached: it forgets them now.
    server.notifier(server.data_dir(args.data_dir)).publish_account(email)
    print(f"password of {email} changed")
    return 0


def user_list(args: argparse.Namespace) -> int:
    store = existing_store(args)
    for email in store.list_users():
        print(email)
    return 0


def known_user(store: ReferenceStore, email: str) -> str:
    """The account as the store spells it; ``UsageError`` when there is none."""
    wanted = email.strip().lower()
    if wanted not in store.list_users():
        raise UsageError(f"no such user: {email}")
    return wanted


def _read_message(path: str) -> bytes:
    if path == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(path, "rb") as f:
            data = f.read()
    if data.startswith(b"From "):  # an mbox envelope line, as MTAs pipe to a delivery agent
        data = data.partition(b"\n")[2]
    if not data.strip():
        raise UsageError(f"empty message{' on standard input' if path == '-' else ': ' + path}")
    first = data.split(b"\n", 1)[0]
    if not re.match(rb"[\x21-\x39\x3b-\x7e]+[ \t]*:", first):
        raise UsageError("not an RFC 5322 message: it does not begin with a header field")
    return data


def mail_deliver(args: argparse.Namespace) -> int:
    folder = server.data_dir(args.data_dir)
    store = existing_store(args)
    mime = _read_message(args.file)
    email = known_user(store, args.email)
    # The store calls its watchers once the delivery is committed; the datagram goes then.
    notify.publish_changes(store, server.notifier(folder))
    try:
        item_id = store.deliver(email, mime, folder=args.folder)
    except ValueError as e:  # no such folder (or user, deleted meanwhile)
        raise UsageError(str(e)) from None
    print(f"delivered to {email} {args.folder}: {item_id}")
    return 0


def add_parsers(verbs: Any, data_dir_parent: argparse.ArgumentParser) -> None:
    """Add ``user`` and ``mail`` to the ``eas`` command."""
    user = verbs.add_parser("user", help="manage the accounts of the reference store")
    ops = user.add_subparsers(dest="op", required=True, metavar="OP")
    add = ops.add_parser("add", parents=[data_dir_parent], help="create an account")
    _email_and_password(add, "the password")
    add.set_defaults(run=user_add)
    pw = ops.add_parser("passwd", parents=[data_dir_parent], help="change an account's password")
    _email_and_password(pw, "the new password")
    pw.set_defaults(run=user_passwd)
    ls = ops.add_parser("list", parents=[data_dir_parent], help="list the accounts")
    ls.set_defaults(run=user_list)

    mail = verbs.add_parser("mail", help="put mail into the reference store")
    ops = mail.add_subparsers(dest="op", required=True, metavar="OP")
    deliver = ops.add_parser("deliver", parents=[data_dir_parent],
                             help="deliver an RFC 5322 message and wake the user's devices")
    deliver.add_argument("email")
    deliver.add_argument("file", nargs="?", default="-", help="the message; stdin when absent or -")
    deliver.add_argument("--folder", default="Inbox", help="folder name (default Inbox)")
    deliver.set_defaults(run=mail_deliver)


def _email_and_password(parser: argparse.ArgumentParser, what: str) -> None:
    """The arguments of ``user add`` and ``user passwd``: the account, and where its
    password comes from (``what`` names it in the help)."""
    parser.add_argument("email")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--password", help=f"{what} (else prompted, or one line of stdin)")
    how.add_argument("--generate", action="store_true", help="make a random password and print it")
