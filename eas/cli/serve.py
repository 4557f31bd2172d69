"""``eas serve``: the reference server on uvicorn (see ``eas.server``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from eas import server
from eas.config import Config, default

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def serve(args: argparse.Namespace) -> int:
    from eas.cli.admin import UsageError

    if (args.cert is None) != (args.key is None):
        raise UsageError("--cert and --key go together")
    if args.no_tls and args.cert is not None:
        raise UsageError("--no-tls and --cert exclude each other")
    for port in (args.port, args.admin_port):
        if port is not None and not 0 < port < 65536:
            raise UsageError(f"port out of range: {port}")
    if args.admin_port is not None and args.admin_port == (args.port or (8080 if args.no_tls else 8443)):
        raise UsageError("--admin-port must differ from the ActiveSync port")
    if args.cert is not None:
        for path in (args.cert, args.key):
            with open(path, "rb"):  # unreadable: an I/O error now, not deep inside uvicorn
                pass
    config = Config(max_heartbeat=args.max_heartbeat, min_heartbeat=args.min_heartbeat,
                    instant_notifications=not args.no_instant_notifications,
                    notification_latency=args.notification_latency, max_window_size=args.max_window_size,
                    public_url=_url(args.public_url, "--public-url"),
                    trust_forwarded_proto=args.trust_forwarded_proto,
                    autodiscover_redirects=_redirects(args.autodiscover_redirect),
                    autodiscover_get_redirect=_url(args.autodiscover_get_redirect, "--autodiscover-get-redirect"),
                    trust_store=args.trust_store or "", crl_file=args.crl_file or "",
                    merge_folders_for=tuple(args.merge_folders_for or ()),
                    loop_detection=not args.no_loop_detection)
    for path in (config.trust_store, config.crl_file):
        if path:
            with open(path, "rb"):  # unreadable: an I/O error now, not a Status 17 on every ValidateCert
                pass
    if not 1 <= config.min_heartbeat <= config.max_heartbeat:
        raise UsageError("need 1 <= --min-heartbeat <= --max-heartbeat")
    if config.notification_latency < 0 or config.max_window_size < 1:
        raise UsageError("--notification-latency must be >= 0 and --max-window-size >= 1")
    config.default_window_size = min(config.default_window_size, config.max_window_size)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    options = server.ServeOptions(
        data_dir=server.data_dir(args.data_dir), host=args.host, port=args.port, tls=not args.no_tls,
        cert=Path(args.cert) if args.cert else None, key=Path(args.key) if args.key else None,
        demo=args.demo, log_level=args.log_level, config=config, admin_port=args.admin_port,
        admin_host=args.admin_host)
    server.run(options)
    return 0


def _url(value: str | None, flag: str) -> str:
    from eas.cli.admin import UsageError

    if not value:
        return ""
    if not value.startswith(("https://", "http://")) or any(c.isspace() or ord(c) < 32 for c in value):
        raise UsageError(f"{flag} needs an http(s) URL: {value!r}")
    return value


def _redirects(values: list[str] | None) -> dict[str, str]:
    """``DOMAIN=TARGET`` pairs (TARGET an Autodiscover URL or another domain)."""
    from eas.cli.admin import UsageError

    out: dict[str, str] = {}
    for value in values or ():
        domain, sep, target = value.partition("=")
        if not sep or not domain.strip() or not target.strip():
            raise UsageError(f"--autodiscover-redirect needs DOMAIN=URL or DOMAIN=DOMAIN: {value!r}")
        target = target.strip()
        out[domain.strip().lower()] = _url(target, "--autodiscover-redirect") if "://" in target else target
    return out


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
    p.add_argument("--admin-port", type=int, metavar="PORT",
                   help="serve the admin web page on this port too (off by default; eas web user add NAME)")
    p.add_argument("--admin-host", default="127.0.0.1", metavar="HOST",
                   help="address of the admin page (default 127.0.0.1: this machine only)")
    tuning = p.add_argument_group("push and sync tuning")
    tuning.add_argument("--max-heartbeat", type=int, default=default("max_heartbeat"), metavar="S",
                        help="longest Ping/Sync wait a device may ask for (default %(default)s s)")
    tuning.add_argument("--min-heartbeat", type=int, default=default("min_heartbeat"), metavar="S",
                        help="shortest one (default %(default)s s)")
    tuning.add_argument("--no-instant-notifications", action="store_true",
                        help="wake waiting devices only --notification-latency after a change")
    tuning.add_argument("--notification-latency", type=float, default=default("notification_latency"),
                        metavar="S", help="that delay (default %(default)s s)")
    tuning.add_argument("--max-window-size", type=int, default=default("max_window_size"), metavar="N",
                        help="most items per collection in one Sync response (default %(default)s)")
    tuning.add_argument("--merge-folders-for", action="append", metavar="PATTERN",
                        help="show all calendars, address books, task and note lists as one folder each to "
                             "devices whose DeviceType or User-Agent starts with PATTERN (case-insensitive "
                             "regular expression; repeatable), for clients that sync one folder per type")
    tuning.add_argument("--no-loop-detection", action="store_true",
                        help="do not narrow the window for, nor skip items of, devices that repeat a SyncKey")
    discovery = p.add_argument_group("autodiscover and certificates")
    discovery.add_argument("--public-url", metavar="URL",
                           help="the ActiveSync URL Autodiscover gives out (default: from the request's Host, https)")
    discovery.add_argument("--trust-forwarded-proto", action="store_true",
                           help="take the scheme from X-Forwarded-Proto (only behind a proxy that sets it)")
    discovery.add_argument("--autodiscover-redirect", action="append", metavar="DOMAIN=TARGET",
                           help="a domain served elsewhere: TARGET is that server's Autodiscover URL, or "
                                "another domain the same addresses move to (repeatable)")
    discovery.add_argument("--autodiscover-get-redirect", metavar="URL",
                           help="answer GET /autodiscover/autodiscover.xml with a 302 to this https URL")
    discovery.add_argument("--trust-store", metavar="PEM",
                           help="trusted roots for ValidateCert (default: the system bundle)")
    discovery.add_argument("--crl-file", metavar="FILE", help="CRLs (PEM or DER) ValidateCert checks against")
    p.set_defaults(run=serve)
