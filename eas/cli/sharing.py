"""``eas share grant|revoke|list|mount|unmount``: folders shared between accounts of the
reference store (``eas.store.sharing``). A running server is told, so that the grantee's
devices see a mounted or removed share at their next FolderSync (waiting Pings answer 7).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from eas import notify, server
from eas.cli.admin import UsageError, existing_store

if TYPE_CHECKING:
    from eas.store import ReferenceStore
    from eas.store.sharing import Share


def _store(args: argparse.Namespace) -> ReferenceStore:
    """The data dir's store, publishing its changes to a running server."""
    store = existing_store(args)
    notify.publish_changes(store, server.notifier(server.data_dir(args.data_dir)))
    return store


def _run(action: Any, *args: Any) -> Any:
    from eas.store.sharing import ShareError

    try:
        return action(*args)
    except ShareError as e:
        raise UsageError(str(e)) from None


def _describe(share: Share) -> str:
    folder = share.folder or "(whole account)"
    state = "mounted" if share.mounted else "not mounted"
    return f"{share.id}\t{share.owner}\t{folder}\t-> {share.grantee}\t{share.rights}\t{state}"


def share_grant(args: argparse.Namespace) -> int:
    share = _run(_store(args).grant, args.owner, args.folder, args.grantee, args.rights)
    print(f"share {share.id}: {share.owner} {share.folder or '(whole account)'} -> {share.grantee} ({share.rights})")
    return 0


def share_revoke(args: argparse.Namespace) -> int:
    _run(_store(args).revoke, args.owner, args.folder, args.grantee)
    print(f"revoked: {args.owner.lower()} {args.folder} -> {args.grantee.lower()}")
    return 0


def share_list(args: argparse.Namespace) -> int:
    for share in _run(existing_store(args).shares, args.user):
        print(_describe(share))
    return 0


def share_mount(args: argparse.Namespace) -> int:
    print(_describe(_run(_store(args).mount, args.user, args.share)))
    return 0


def share_unmount(args: argparse.Namespace) -> int:
    print(_describe(_run(_store(args).unmount, args.user, args.share)))
    return 0


def add_parsers(verbs: Any, data_dir_parent: argparse.ArgumentParser) -> None:
    """Add ``share`` to the ``eas`` command."""
    from eas.store.sharing import RIGHTS

    share = verbs.add_parser("share", help="share folders between accounts and choose which ones sync")
    ops = share.add_subparsers(dest="op", required=True, metavar="OP")
    grant = ops.add_parser("grant", parents=[data_dir_parent], help="share a folder (or, with /, the account)")
    grant.add_argument("owner")
    grant.add_argument("folder", help="name or a/b path in the owner's mailbox; / for the whole account")
    grant.add_argument("grantee")
    grant.add_argument("--rights", choices=RIGHTS, default="r",
                       help="r read-only (cannot be synced), rw read and write (default r)")
    grant.set_defaults(run=share_grant)
    revoke = ops.add_parser("revoke", parents=[data_dir_parent], help="end a share")
    revoke.add_argument("owner")
    revoke.add_argument("folder")
    revoke.add_argument("grantee")
    revoke.set_defaults(run=share_revoke)
    ls = ops.add_parser("list", parents=[data_dir_parent], help="shares granted to and by a user")
    ls.add_argument("user")
    ls.set_defaults(run=share_list)
    for name, run, what in (("mount", share_mount, "sync a share on the user's devices"),
                            ("unmount", share_unmount, "stop syncing a share")):
        op = ops.add_parser(name, parents=[data_dir_parent], help=what)
        op.add_argument("user")
        op.add_argument("share", type=int, help="the share's number (eas share list)")
        op.set_defaults(run=run)
