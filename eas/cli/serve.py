"""``eas serve``: the reference server on uvicorn (see ``eas.server``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from eas import server

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def serve(args: argparse.Namespace) -> int:
    from eas.cli.admin import UsageError

    if (args.cert is None) != (args.key is None):
        raise UsageError("--cert and --key go together")
    if args.no_tls and args.cert is not None:
        raise UsageError("--no-tls and --cert exclude each other")
    if args.port is not None and not 0 < args.port < 65536:
        raise UsageError(f"port out of range: {args.port}")
    if args.cert is not None:
        for path in (args.cert, args.key):
            with open(path, "rb"):  # unreadable: an I/O error now, not deep inside uvicorn
                pass
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    options = server.ServeOptions(
        data_dir=server.data_dir(args.data_dir), host=args.host, port=args.port, tls=not args.no_tls,
        cert=Path(args.cert) if args.cert else None, key=Path(args.key) if args.key else None,
        demo=args.demo, log_level=args.log_level)
    server.run(options)
    return 0


def add_parser(verbs: Any, data_dir_parent: argparse.ArgumentParser) -> None:
    p = verbs.add_parser("serve", parents=[data_dir_parent], help="run the reference ActiveSync server",
                         description="Run the reference server: ActiveSync over the reference mail store.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8443 with TLS, 8080 without)")
    p.add_argument("--no-tls", action="store_true", help="plain HTTP (behind a TLS-terminating proxy)")
    p.add_argument("--cert", help="PEM certificate (chain) instead of the generated self-signed one")
    p.add_argument("--key", help="PEM private key of --cert")
    p.add_argument("--demo", action="store_true",
                   help="create demo@example.com with sample mail (its password is printed once)")
    p.add_argument("--log-level", default="info", choices=LOG_LEVELS, type=str.lower)
    p.set_defaults(run=serve)
