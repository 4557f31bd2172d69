"""Config: the settings of the protocol core, every one with a safe default.

Its own module, importing nothing heavy, so that the ``eas`` command can show the
defaults in its help without loading the core (``eas mail deliver`` starts a process per
message, and that start-up is part of the wake-up latency of the devices it notifies).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eas.protocol.versions import Version
    from eas.wbxml import Limits


def _all_versions() -> tuple[Version, ...]:
    from eas.protocol.versions import SUPPORTED_VERSIONS

    return SUPPORTED_VERSIONS


def _default_limits() -> Limits:
    from eas.wbxml import Limits

    return Limits()


@dataclass(slots=True)
class Config:
    """Settings of the core."""

    path: str = "/Microsoft-Server-ActiveSync"
    versions: tuple[Version, ...] = field(default_factory=_all_versions)
    server_version: str = "16.1"  # the MS-Server-ActiveSync header
    max_request_body: int = 50 * 1024 * 1024
    wbxml_limits: Limits = field(default_factory=_default_limits)
    # Ping and Sync long polls (seconds); MS-ASCMD 2.2.3.79: 60..3540 are the spec's bounds.
    min_heartbeat: int = 60
    max_heartbeat: int = 3540
    max_ping_folders: int = 300
    instant_notifications: bool = True
    notification_latency: float = 60.0  # with instant notifications off
    # Sync
    default_window_size: int = 100
    max_window_size: int = 512
    max_sync_collections: int = 1000
    # Loop detection (eas.loops): on, and how often an item sent alone may be asked for
    # again before it is skipped.
    loop_detection: bool = True
    loop_strikes: int = 3
    # Search and Find count matches (their Total) up to this many.
    search_match_limit: int = 1000
    # Gzip responses larger than this when the client accepts gzip.
    gzip_min_size: int = 1024
    # Successful logins are remembered this long (seconds; 0 = ask the hook every time):
    # devices send credentials with every request, and a slow password hash (scrypt)
    # per request would cap the server at a few dozen requests per second.
    auth_cache_seconds: float = 300.0
    # Clients that sync one folder per type get all calendars as the default Calendar
    # (contacts, tasks, notes likewise; eas.merge): patterns matched, ignoring case, at
    # the start of DeviceType or User-Agent, e.g. ("SAMSUNG",).
    merge_folders_for: tuple[str, ...] = ()
    # Autodiscover (eas.autodiscover). The ActiveSync URL it gives out: public_url, else
    # derived from the request's Host (https; X-Forwarded-Proto only from a trusted proxy).
    public_url: str = ""
    trust_forwarded_proto: bool = False
    # Domains served elsewhere: domain -> an https URL (redirectUrl: that server's
    # Autodiscover) or another domain (redirectAddr: the same local part there).
    autodiscover_redirects: dict[str, str] = field(default_factory=dict)
    # Where a GET of /autodiscover/autodiscover.xml (the plain-HTTP probe of
    # autodiscover.DOMAIN) is sent with a 302; "" answers it with the error form.
    autodiscover_get_redirect: str = ""
    # ValidateCert: PEM bundle of trusted roots ("" = the system bundle) and an optional
    # PEM/DER file of CRLs checked when a client asks CheckCRL (no network is used).
    trust_store: str = ""
    crl_file: str = ""


def default(name: str) -> object:
    """The default of one setting, without making a Config."""
    return Config.__dataclass_fields__[name].default
