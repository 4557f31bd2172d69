"""The notifier: mail to administrators about newly quarantined devices and jailings.

Each round (``Notifier.tick``, once a minute while ``service.notifier`` is true, and at
once on ``eas service restart notifier``) does two things:

1. Quarantine notices, every ``notifier.interval`` minutes (0: never): one mail listing
   every device in quarantine (or discovery, which is quarantine while the device has
   not said what it is) that no earlier notice listed, none when there are none. What
   was listed is kept by device and decision time (``DeviceRecord.access_time``), not
   by a time window, so a device committed late by a slow request is still listed, and
   a device whose decision changed (released and quarantined again, a new reason, or
   discovery settled into quarantine) is listed again. The first notice ever lists
   every device in quarantine then.
2. Jail alerts: one mail per jailing of the audit trail (action ``jail``, recorded by
   ``eas.access.jail``) since the last round; more than ``JAIL_MAILS_PER_ROUND`` at once
   go in one mail, so a flood does not become a flood of mail. Jailings older than
   ``JAIL_LOOKBACK`` seconds are history, not news: they are not alerted.

What was sent is kept in the state store under ``STATE_SETTING``, an internal name that
``eas config`` neither shows nor changes, so each device and each jailing is in exactly
one mail across restarts. A mail that cannot be sent (SMTP refuses, the port is
closed) is logged and its content stays pending for the next round; each mail sent is
audited (``notifier.sent``). With no recipients nothing is sent and nothing is marked
as sent. The state is one server's: two servers over one PostgreSQL store would each
send (the notifier has no lock of its own).

Mail goes out with smtplib in a thread, to ``notifier.smtp_host`` (plain, STARTTLS or
TLS, with the system's CA certificates), with a login when ``notifier.smtp_user`` is
set. ``notifier.smtp_password`` is kept in the state store (state.db) in clear, like
every setting: protect the data dir (it is 0700), or use a relay on localhost that needs
no login. An embedder replaces delivery with ``Notifier(send=...)``.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import logging
import smtplib
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from email.message import EmailMessage
from typing import Any

from eas.access import SETTINGS, get_setting, register
from eas.state.model import AuditEvent, DeviceRecord
from eas.state.store import StateStore

log = logging.getLogger("eas.notifier")

ROUND_SECONDS = 60.0  # between rounds of run()
STATE_SETTING = "internal:notifier"  # what was sent; not registered, so not an eas config setting
SMTP_TIMEOUT = 30.0
MAX_RECIPIENTS = 50
MAX_LISTED = 200  # devices described in one notice; the rest are counted
JAIL_MAILS_PER_ROUND = 10  # beyond, the round's jailings go in one mail
JAIL_LOOKBACK = 86400.0  # seconds: older jailings are not alerted
EVENTS_READ = 10_000  # audit events read per round at most
QUARANTINED = ("quarantined", "discovery")

Sender = Callable[[EmailMessage, Mapping[str, Any]], Awaitable[None]]
"""``send(message, settings)``: deliver the mail or raise; ``settings`` are the
``notifier.*`` settings in force."""


# -- settings -------------------------------------------------------------------------------

def _minutes(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10080:
        raise ValueError("expected minutes from 0 (no notices) to 10080 (a week)")
    return value


def check_address(value: Any) -> str:
    """A mail address as SMTP takes it: ``local@domain``, ASCII local part (no SMTPUTF8
    needed), the domain in A-labels (``ValueError`` naming what is wrong)."""
    if not isinstance(value, str):
        raise TypeError("a mail address is a string")
    text = value.strip()
    local, at, domain = text.rpartition("@")
    if (not at or not local or not domain or len(text) > 254 or not text.isprintable()
            or any(c.isspace() or c in '<>(),;:"[]\\' for c in text) or "@" in local):
        raise ValueError(f"not a mail address: {text[:254]!r}")
    if not local.isascii():
        raise ValueError(f"the part before @ must be ASCII: {text[:254]!r}")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"not a mail domain: {domain[:254]!r}") from None
    return f"{local}@{domain.lower()}"


def _recipients(value: Any) -> list[str]:
    """A list of addresses; one string may hold several, separated by commas."""
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, list):
        raise TypeError('expected a list of mail addresses, such as ["admin@example.com"]')
    if len(value) > MAX_RECIPIENTS:
        raise ValueError(f"at most {MAX_RECIPIENTS} recipients")
    return list(dict.fromkeys(check_address(v) for v in value))


def _sender(value: Any) -> str:
    return "" if value == "" else check_address(value)


def _host(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("a host name is a string")
    text = value.strip()
    if not text or len(text) > 253 or not text.isprintable() or any(c.isspace() for c in text):
        raise ValueError(f"not a host name: {text[:253]!r}")
    return text


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError("expected a port from 1 to 65535")
    return value


def _tls(value: Any) -> str:
    if value not in ("none", "starttls", "tls"):
        raise ValueError('expected "none", "starttls" (port 587) or "tls" (port 465)')
    return str(value)


def _credential(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    if len(value) > 1024 or not value.isprintable():
        raise ValueError("expected printable text of at most 1024 characters")
    return value


# 15 minutes: a quarantined user waits for an administrator, so the first device of a
# quiet spell is mailed within a round (a minute) and the wait stays short, while a burst
# (a new phone model rolled out to a team) becomes a few mails, not one per device.
register("notifier.interval", _minutes, 15, "minutes between mails listing newly quarantined devices (0: none)")
register("notifier.recipients", _recipients, [], "addresses of the administrators the notifier mails")
register("notifier.from", _sender, "", "the notifier's From address (empty: eas@ this machine's name)")
register("notifier.smtp_host", _host, "localhost", "the SMTP server the notifier sends through")
register("notifier.smtp_port", _port, 25, "its port (25 plain, 587 with starttls, 465 with tls)")
register("notifier.smtp_tls", _tls, "none", "none, starttls or tls (certificates checked against the system's CAs)")
register("notifier.smtp_user", _credential, "", "login at the SMTP server (empty: no login)")
register("notifier.smtp_password", _credential, "", "its password, kept in clear in the state store",
         secret=True)


async def mail_settings(store: StateStore) -> dict[str, Any]:
    """The ``notifier.*`` settings in force; an invalid stored value (written past
    ``eas config``) counts as the default."""
    stored = await store.settings("notifier.")
    out: dict[str, Any] = {}
    for name, setting in SETTINGS.items():
        if name.startswith("notifier."):
            value = stored.get(name)
            try:
                out[name] = setting.default if value is None else setting.check(value)
            except (TypeError, ValueError):
                log.warning("notifier: ignored the invalid setting %s", name)
                out[name] = setting.default
    return out


# -- what was sent -------------------------------------------------------------------------

def _empty_state() -> dict[str, Any]:
    # notified: [user, device id, access_time] listed by a notice and still quarantined;
    # jail_mark: time of the newest jailing alerted, jail_at_mark: [user, device id,
    # detail] of the jailings alerted at exactly that time (the trail's times can tie).
    return {"last_notice": None, "notified": [], "jail_mark": 0.0, "jail_at_mark": []}


async def load_state(store: StateStore) -> dict[str, Any]:
    """What the notifier has sent (``STATE_SETTING``); a damaged value starts afresh."""
    state = _empty_state()
    stored = await store.get_setting(STATE_SETTING)
    if isinstance(stored, dict):
        try:
            last = stored.get("last_notice")
            state["last_notice"] = None if last is None else float(last)
            state["notified"] = [[str(u), str(d), float(t)] for u, d, t in stored.get("notified", [])]
            state["jail_mark"] = float(stored.get("jail_mark", 0.0))
            state["jail_at_mark"] = [[str(u), str(d), str(x)] for u, d, x in stored.get("jail_at_mark", [])]
        except (TypeError, ValueError):
            log.warning("notifier: its state in %s was damaged; starting afresh", STATE_SETTING)
            state = _empty_state()
    return state


# -- the engine ------------------------------------------------------------------------------

class Notifier:
    """The built-in notifier. ``clock`` (seconds since the epoch, as the audit trail's
    times and ``DeviceRecord.access_time`` are) and ``send`` are injectable."""

    def __init__(self, store: StateStore, *, clock: Callable[[], float] = time.time,
                 send: Sender | None = None) -> None:
        self.store = store
        self.clock = clock
        self.send: Sender = send or send_smtp
        self._wake = asyncio.Event()

    async def tick(self) -> None:
        """One round (the module docstring). Never raises: a failure is logged, and what
        was not sent is sent by a later round."""
        try:
            s = await mail_settings(self.store)
            if not s["notifier.recipients"]:
                return
            state = await load_state(self.store)
            now = self.clock()
            await self._quarantine_notice(s, state, now)
            await self._jail_alerts(s, state, now)
        except Exception:
            log.exception("notifier: the round failed; the next one tries again")

    async def run(self) -> None:
        """A round every ``ROUND_SECONDS`` while ``service.notifier`` is true, and one at
        once on ``restart``, until cancelled."""
        while True:
            try:
                enabled = await get_setting(self.store, "service.notifier")
            except Exception:
                log.exception("notifier: cannot read service.notifier")
                enabled = False
            if enabled is True:
                await self.tick()
            try:
                async with asyncio.timeout(ROUND_SECONDS):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    def restart(self) -> None:
        """Run a round now (``eas service restart notifier``)."""
        self._wake.set()

    async def _quarantine_notice(self, s: dict[str, Any], state: dict[str, Any], now: float) -> None:
        interval = s["notifier.interval"]
        last = state["last_notice"]
        if not interval or (last is not None and now - last < interval * 60):
            return
        devices = [d for d in await self.store.list_devices() if d.access in QUARANTINED]
        in_quarantine = {(d.user, d.device_id): d.access_time for d in devices}
        # what stays notified: devices still in the same quarantine decision
        notified = {(u, d): t for u, d, t in state["notified"] if in_quarantine.get((u, d)) == t}
        new = sorted((d for d in devices if (d.user, d.device_id) not in notified),
                     key=lambda d: (d.access_time, d.user, d.device_id))
        if not new:
            return
        message = _message(s, f"eas: {_count(len(new), 'device')} quarantined", _notice_body(new, last), now)
        if await self._deliver(s, message, f"quarantine notice of {_count(len(new), 'device')}"):
            notified.update(((d.user, d.device_id), d.access_time) for d in new)
            state["notified"] = [[u, d, t] for (u, d), t in notified.items()]
            state["last_notice"] = now
            await self.store.set_setting(STATE_SETTING, state)

    async def _jail_alerts(self, s: dict[str, Any], state: dict[str, Any], now: float) -> None:
        mark = state["jail_mark"]
        at_mark = {tuple(k) for k in state["jail_at_mark"]}
        events = await self.store.events(since=max(mark, now - JAIL_LOOKBACK), limit=EVENTS_READ)
        if len(events) >= EVENTS_READ:
            log.warning("notifier: more than %d audit events since the last round; older jailings not alerted",
                        EVENTS_READ)
        jailings = [e for e in reversed(events)  # oldest first
                    if e.action == "jail" and not (e.time == mark and _jail_key(e) in at_mark)]
        if len(jailings) > JAIL_MAILS_PER_ROUND:
            batches = [jailings]
        else:
            batches = [[e] for e in jailings]
        for batch in batches:
            if len(batch) == 1:
                e = batch[0]
                who = f"device {_clean(e.device_id, 64)} of {e.user}" if e.device_id else f"account {e.user}"
                subject, what = f"eas: {_clean(who, 200)} jailed", f"jail alert for {who}"
            else:
                subject = what = f"eas: {len(batch)} jailings"
            if not await self._deliver(s, _message(s, subject, _jail_body(batch), now), what):
                return  # the rest wait for the next round, in order
            newest = batch[-1].time
            keys = {_jail_key(e) for e in batch if e.time == newest}
            at_mark = keys | at_mark if newest == mark else keys
            state["jail_mark"], state["jail_at_mark"] = newest, sorted(map(list, at_mark))
            mark = newest
            await self.store.set_setting(STATE_SETTING, state)

    async def _deliver(self, s: dict[str, Any], message: EmailMessage, what: str) -> bool:
        """Send; whether it went. A failure is logged (the caller keeps what it lists)."""
        try:
            await self.send(message, s)
        except Exception as e:  # noqa: BLE001 (an embedder's sender may raise anything; retried)
            log.warning("notifier: %s not sent (tried again next round): %s", what, e)
            return False
        await self.store.record_event(AuditEvent("notifier.sent", actor="notifier",
                                                 detail=f"{what} to {', '.join(s['notifier.recipients'])}"))
        return True


def _jail_key(e: AuditEvent) -> tuple[str, ...]:
    return (e.user, e.device_id, e.detail)


# -- the mail --------------------------------------------------------------------------------

def _clean(text: str, limit: int = 200) -> str:
    """Client-supplied text (device ids, user agents) made safe for one line of a mail:
    control characters shown as ``?``, bounded, so a device cannot forge lines."""
    out = "".join(c if c.isprintable() else "?" for c in str(text))
    return out if len(out) <= limit else out[:limit - 1] + "…"


def _when(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _notice_body(devices: list[DeviceRecord], last: float | None) -> str:
    since = f"since the last notice ({_when(last)})" if last is not None else "(the notifier's first notice)"
    lines = [f"{_count(len(devices), 'device')} entered quarantine {since} and are still in it:", ""]
    for d in devices[:MAX_LISTED]:
        state = "quarantined" if d.access == "quarantined" else "in discovery (quarantined until it says what it is)"
        lines += [f"{d.user}  device {_clean(d.device_id, 64)}",
                  (f"    type: {_clean(d.device_type, 64) or '-'}  model: {_clean(d.model, 64) or '-'}"
                   f"  OS: {_clean(d.os, 64) or '-'}"),
                  f"    user agent: {_clean(d.user_agent) or '-'}",
                  f"    {state} since {_when(d.access_time)}, reason: {_clean(d.access_reason, 64) or '-'}",
                  ""]
    if len(devices) > MAX_LISTED:
        lines += [f"... and {len(devices) - MAX_LISTED} more, not listed here.", ""]
    lines.append("'eas device list' shows every device with its access state.")
    return "\n".join(lines) + "\n"


def _jail_body(events: list[AuditEvent]) -> str:
    lines = []
    for e in events:
        who = f"device {_clean(e.device_id, 64)} of {e.user}" if e.device_id else f"account {e.user} (all devices)"
        lines.append(f"{_when(e.time)}: {who}: {_clean(e.detail)}")
    lines += ["", "Requests of a jailed device or account get 503 until the jail ends;",
              "'eas service restart anti-dos' releases every jail at once."]
    return "\n".join(lines) + "\n"


def _message(s: Mapping[str, Any], subject: str, body: str, now: float) -> EmailMessage:
    """An RFC 5322 message from the notifier to the recipients, marked auto-generated
    (RFC 3834) so that vacation responders leave it alone."""
    sender = s["notifier.from"] or f"eas@{socket.gethostname() or 'localhost'}"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(s["notifier.recipients"])
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(now, usegmt=True)
    message["Message-ID"] = email.utils.make_msgid("eas", domain=sender.rpartition("@")[2])
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body, cte="quoted-printable")
    return message


async def send_smtp(message: EmailMessage, settings: Mapping[str, Any]) -> None:
    """The default sender: SMTP per the ``notifier.smtp_*`` settings, in a thread."""
    await asyncio.to_thread(_send_smtp, message, settings)


def _send_smtp(message: EmailMessage, s: Mapping[str, Any]) -> None:
    host, port, tls = s["notifier.smtp_host"], s["notifier.smtp_port"], s["notifier.smtp_tls"]
    context = ssl.create_default_context()
    client = (smtplib.SMTP_SSL(host, port, timeout=SMTP_TIMEOUT, context=context) if tls == "tls"
              else smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT))
    with client:
        if tls == "starttls":
            client.starttls(context=context)
        if s["notifier.smtp_user"]:
            client.login(s["notifier.smtp_user"], s["notifier.smtp_password"])
        refused = client.send_message(message)
    if refused:
        log.warning("notifier: recipients refused: %s", ", ".join(refused))


async def status(store: StateStore) -> dict[str, Any]:
    """What ``eas service list`` shows: the settings in force and the last notice's time."""
    return {**await mail_settings(store), "last_notice": (await load_state(store))["last_notice"]}
