"""``eas addressbook add|list|remove`` and ``eas user set|show|cert``: the reference
store's global address list (``eas.store.directory``).

A scope is ``global`` (every user) or a domain (its users); a source is ``users`` (the
accounts of the store, or of that domain) or ``ACCOUNT/FOLDER``, a contacts folder of some
account. Nothing needs telling a running server: every search reads the store afresh.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from eas.cli.admin import UsageError, existing_store, known_user

# ``eas user set`` options and the GAL field each sets.
_DETAILS = {"first_name": "--first-name", "last_name": "--last-name", "title": "--title", "company": "--company",
            "office": "--office", "phone": "--phone", "mobile_phone": "--mobile-phone", "home_phone": "--home-phone"}


def _run(action: Any, *args: Any, **kw: Any) -> Any:
    try:
        return action(*args, **kw)
    except ValueError as e:
        raise UsageError(str(e)) from None


def addressbook_add(args: argparse.Namespace) -> int:
    _run(existing_store(args).add_address_book, args.scope, args.source)
    print(f"{args.scope.lower()}: added {args.source}")
    return 0


def addressbook_remove(args: argparse.Namespace) -> int:
    _run(existing_store(args).remove_address_book, args.scope, args.source)
    print(f"{args.scope.lower()}: removed {args.source}")
    return 0


def addressbook_list(args: argparse.Namespace) -> int:
    books = existing_store(args).address_books()
    for scope, source in books:
        print(f"{scope}\t{source}")
    scopes = {scope for scope, _ in books}
    if not books:
        print("(none: each user searches the users of their own domain)")
    elif "global" not in scopes:
        print("(domains without a book: their users search the users of their own domain)")
    return 0


def user_set(args: argparse.Namespace) -> int:
    store = existing_store(args)
    email = known_user(store, args.email)
    details = {name: getattr(args, name) for name in _DETAILS if getattr(args, name) is not None}
    if args.display_name is not None:
        store.set_display_name(email, args.display_name)
    if details:
        _run(store.set_user_details, email, **details)
    if args.picture is not None:
        _run(store.set_user_picture, email, Path(args.picture).read_bytes())
    elif args.no_picture:
        store.set_user_picture(email, None)
    print(f"{email} updated")
    return 0


def user_show(args: argparse.Namespace) -> int:
    store = existing_store(args)
    person = _run(store.user_entry, known_user(store, args.email))
    for label, value in (("display name", person.display_name), ("email", person.email),
                         *((option.lstrip("-").replace("-", " "), getattr(person, name))
                           for name, option in _DETAILS.items())):
        if value:
            print(f"{label}: {value}")
    if person.picture:
        print(f"picture: {len(person.picture)} bytes")
    for der in person.certificates:
        print(f"certificate: {_subject(der)}")
    return 0


def user_cert_add(args: argparse.Namespace) -> int:
    store = existing_store(args)
    email = known_user(store, args.email)
    certificates = _certificates(Path(args.file).read_bytes())
    for der in certificates:
        _run(store.add_user_certificate, email, der)
    print(f"{email}: {len(certificates)} certificate(s) added")
    return 0


def _certificates(data: bytes) -> list[bytes]:
    """The DER of each certificate of a PEM file (one or more), or of a DER file."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        if b"-----BEGIN" in data:
            return [c.public_bytes(Encoding.DER) for c in x509.load_pem_x509_certificates(data)]
        return [x509.load_der_x509_certificate(data).public_bytes(Encoding.DER)]
    except ValueError as e:
        raise UsageError(f"not an X.509 certificate (PEM or DER): {e}") from None


def _subject(der: bytes) -> str:
    from cryptography import x509

    try:
        return x509.load_der_x509_certificate(der).subject.rfc4514_string()
    except ValueError:
        return f"(unreadable, {len(der)} bytes)"


def _subparsers(parser: argparse.ArgumentParser) -> Any:
    """The sub-command table of a parser that has one (``eas user``'s, from admin.py)."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def add_parsers(verbs: Any, data_dir_parent: argparse.ArgumentParser) -> None:
    """Add ``addressbook``, and ``set``, ``show`` and ``cert`` to ``eas user``."""
    book = verbs.add_parser("addressbook", help="choose the address books of the global address list")
    ops = book.add_subparsers(dest="op", required=True, metavar="OP")
    for name, run, text in (("add", addressbook_add, "add a book at the end of a scope"),
                            ("remove", addressbook_remove, "remove a book from a scope")):
        op = ops.add_parser(name, parents=[data_dir_parent], help=text)
        op.add_argument("scope", help="'global' or a domain")
        op.add_argument("source", help="'users' or ACCOUNT/FOLDER (a contacts folder)")
        op.set_defaults(run=run)
    ops.add_parser("list", parents=[data_dir_parent], help="list the books").set_defaults(run=addressbook_list)

    user_ops = _subparsers(verbs.choices["user"])
    update = user_ops.add_parser("set", parents=[data_dir_parent], help="set what the address list shows of a user")
    update.add_argument("email")
    update.add_argument("--display-name")
    for name, option in _DETAILS.items():
        update.add_argument(option, dest=name, metavar="TEXT")
    picture = update.add_mutually_exclusive_group()
    picture.add_argument("--picture", metavar="FILE.jpg", help="a JPEG picture of the user")
    picture.add_argument("--no-picture", action="store_true", help="remove the picture")
    update.set_defaults(run=user_set)
    show = user_ops.add_parser("show", parents=[data_dir_parent], help="show a user's address list entry")
    show.add_argument("email")
    show.set_defaults(run=user_show)
    cert = user_ops.add_parser("cert", help="S/MIME certificates the address list gives out")
    cert_ops = cert.add_subparsers(dest="cert_op", required=True, metavar="OP")
    add = cert_ops.add_parser("add", parents=[data_dir_parent], help="add the certificates of a PEM or DER file")
    add.add_argument("email")
    add.add_argument("file", metavar="FILE.pem|FILE.der")
    add.set_defaults(run=user_cert_add)
