"""The ``eas`` command: ``eas serve`` (``eas.cli.serve``), ``eas user ...`` and ``eas mail
deliver`` (``eas.cli.admin``), ``eas wbxml decode|encode`` (here).

Exit codes: 0 success, 2 bad input or usage (one line on stderr naming what is at fault,
such as the offset or line), 1 an I/O failure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from eas import __version__
from eas.cli import (
    abq,
    access,
    admin,
    config,
    devices,
    directory,
    filters,
    logger,
    pim,
    policy,
    serve,
    service,
    sharing,
)
from eas.cli import web as web_admin
from eas.protocol.errors import EASError
from eas.server import DATA_DIR_ENV, CertificateError

# The codec (and lxml) is imported by the verbs that use it: ``eas mail deliver`` runs
# as a new process per message, and its start-up is part of the wake-up latency.


def _read(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as f:
        return f.read()


def _wbxml_decode(args: argparse.Namespace) -> int:
    from eas.wbxml import WBXMLError, decode, to_xml

    try:
        sys.stdout.write(to_xml(decode(_read(args.file))))
    except WBXMLError as e:
        raise admin.UsageError(str(e)) from None
    return 0


def _wbxml_encode(args: argparse.Namespace) -> int:
    from eas.wbxml import WBXMLError, from_xml

    try:
        sys.stdout.buffer.write(from_xml(_read(args.file)))
    except WBXMLError as e:
        raise admin.UsageError(str(e)) from None
    sys.stdout.buffer.flush()
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


class _Version(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kw: object) -> None:
        from eas.wbxml import IMPLEMENTATION

        print(f"eas {__version__} (WBXML codec: {IMPLEMENTATION})")
        parser.exit()


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="eas", description="Exchange ActiveSync for any mail server.")
    p.add_argument("--version", action=_Version, nargs=0, help="show the version and the codec in use, and exit")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument("--data-dir", metavar="DIR",
                          help=f"the server's data (default ${DATA_DIR_ENV} or ./eas-data)")
    serve.add_parser(verbs, data_dir)
    admin.add_parsers(verbs, data_dir)
    directory.add_parsers(verbs, data_dir)
    sharing.add_parsers(verbs, data_dir)
    pim.add_parsers(verbs, data_dir)
    devices.add_parsers(verbs, data_dir)
    config.add_parsers(verbs, data_dir)
    service.add_parsers(verbs, data_dir)
    filters.add_parsers(verbs, data_dir)
    logger.add_parsers(verbs, data_dir)
    access.add_parsers(verbs, data_dir)
    abq.add_parsers(verbs, data_dir)
    policy.add_parsers(verbs, data_dir)
    web_admin.add_parsers(verbs, data_dir)
    wbxml = verbs.add_parser("wbxml", help="decode and encode ActiveSync WBXML")
    ops = wbxml.add_subparsers(dest="op", required=True, metavar="OP")
    dec = ops.add_parser("decode", help="WBXML in, pretty XML out")
    dec.add_argument("file", nargs="?", default="-", help="WBXML file; stdin when absent or -")
    dec.set_defaults(run=_wbxml_decode)
    enc = ops.add_parser("encode", help="XML in (namespaces AirSync:, Email: ...), WBXML out")
    enc.add_argument("file", nargs="?", default="-", help="XML file; stdin when absent or -")
    enc.set_defaults(run=_wbxml_encode)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (admin.UsageError, CertificateError) as e:
        print(f"eas: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except OSError as e:
        print(f"eas: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
    except EASError as e:  # the mail or state store failed (an unreadable or foreign file)
        print(f"eas: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
