"""The notifier (``eas.access.notifier``): quarantine notices and jail alerts mailed over
real SMTP on loopback to ``SMTPSink``, parsed back with the email package, with the real
SQLite state store and the real rate jail on clocks the tests control."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import socket
import socketserver
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Self

import pytest

from eas.access import change_setting
from eas.access import notifier as notifier_module
from eas.access.jail import Jail
from eas.access.notifier import STATE_SETTING, Notifier, load_state
from eas.protocol.errors import EASError
from eas.state.model import DeviceRecord
from eas.state.sqlite import SQLiteStateStore

pytestmark = pytest.mark.kernel_independent  # no WBXML here: one pass is enough

ADMINS = ["admin@example.com", "security@example.org"]


class SMTPSink:
    """A small SMTP receiver on loopback, written for these tests: no MTA runs on this
    machine, so the notifier's mail is received here over real SMTP (RFC 5321 greeting,
    EHLO/HELO, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT) and kept as
    ``(mail from, recipients, parsed message)``. ``refuse`` answers every MAIL FROM with
    554, as a server that will not take the mail."""

    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], EmailMessage]] = []
        self.refuse = False
        self.arrived = threading.Condition()
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self) -> None:
                self.reply("220 sink ESMTP")
                sender, recipients = "", []
                for raw in self.rfile:
                    command = raw.decode("ascii", "replace").strip()
                    verb = command[:4].upper()
                    address = command.partition("<")[2].partition(">")[0]
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 sink")
                    elif verb == "MAIL":
                        if sink.refuse:
                            self.reply("554 5.7.1 not today")
                            continue
                        sender, recipients = address, []
                        self.reply("250 ok")
                    elif verb == "RCPT":
                        recipients.append(address)
                        self.reply("250 ok")
                    elif verb == "DATA":
                        self.reply("354 go on")
                        lines = []
                        for line in self.rfile:
                            if line == b".\r\n":
                                break
                            lines.append(line[1:] if line.startswith(b".") else line)
                        message = email.message_from_bytes(b"".join(lines), policy=email.policy.default)
                        with sink.arrived:
                            sink.received.append((sender, recipients, message))  # type: ignore[arg-type]
                            sink.arrived.notify_all()
                        self.reply("250 queued")
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 ok")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not here")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, count: int, timeout: float = 10) -> list[EmailMessage]:
        """The messages once ``count`` have arrived (fewer after ``timeout``)."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
            return [m for _, _, m in self.received]

    @property
    def messages(self) -> list[EmailMessage]:
        return [m for _, _, m in self.received]


class Clock:
    """Wall-clock seconds the test moves (the audit trail's times are real ones)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once it is closed


async def configure(store: SQLiteStateStore, port: int, **more: Any) -> None:
    values = {"recipients": ADMINS, "smtp_host": "127.0.0.1", "smtp_port": port, "from": "eas@mail.example.com",
              **more}
    for name, value in values.items():
        await change_setting(store, f"notifier.{name}", value, actor="test")


async def quarantine(store: SQLiteStateStore, user: str, device_id: str, when: float, *,
                     access: str = "quarantined", **fields: Any) -> DeviceRecord:
    device = DeviceRecord(user=user, device_id=device_id, device_type="iPhone", model="iPhone15,2",
                          os="iOS 17.1", user_agent="Apple-iPhone15C2/2101.1", access=access,
                          access_reason="global", access_time=when)
    for name, value in fields.items():
        setattr(device, name, value)
    await store.commit(device, {})
    return device


def body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")  # type: ignore[attr-defined]


def listed(message: EmailMessage) -> list[str]:
    """The device ids a notice lists."""
    return re.findall(r"^\S+  device (\S+)$", body(message), re.MULTILINE)


def sent(events: list[Any]) -> list[str]:
    """The details of the ``notifier.sent`` audit events."""
    return [e.detail for e in events if e.action == "notifier.sent"]


# -- quarantine notices ---------------------------------------------------------------------

def test_notice_lists_the_quarantined_devices_then_only_new_ones(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "state.db")
    clock = Clock()
    with SMTPSink() as sink:
        async def main() -> None:
            await configure(store, sink.port)
            await quarantine(store, "alice@example.com", "PHONE1", clock.now - 30, access_reason="rule",
                             user_agent="Outlook-iOS/2.0")
            await quarantine(store, "bob@example.com", "TAB2", clock.now - 20, access="discovery", model="")
            await quarantine(store, "bob@example.com", "OKPHONE", clock.now - 10, access="allowed")
            await quarantine(store, "carol@example.com", "BAD3", clock.now - 5, access="blocked")
            notifier = Notifier(store, clock=clock)
            await notifier.tick()
            assert len(sink.received) == 1
            sender, rcpts, message = sink.received[0]
            assert sender == "eas@mail.example.com" and rcpts == ADMINS
            assert message["To"] == ", ".join(ADMINS) and message["From"] == "eas@mail.example.com"
            assert message["Subject"] == "eas: 2 devices quarantined"
            assert message["Auto-Submitted"] == "auto-generated" and message["Message-ID"].endswith("@mail.example.com>")
            assert listed(message) == ["PHONE1", "TAB2"]
            text = body(message)
            assert "alice@example.com  device PHONE1" in text and "model: iPhone15,2" in text
            assert "OS: iOS 17.1" in text and "user agent: Outlook-iOS/2.0" in text and "reason: rule" in text
            assert "in discovery" in text and "OKPHONE" not in text and "BAD3" not in text
            assert sent(await store.events(limit=100)) == [
                f"quarantine notice of 2 devices to {', '.join(ADMINS)}"]
            # the same devices, the interval passed: no second mail
            clock.now += 16 * 60
            await notifier.tick()
            assert len(sink.received) == 1
            # a new one: only it, in the next notice
            await quarantine(store, "dave@example.com", "NEW4", clock.now - 1)
            clock.now += 15 * 60
            await notifier.tick()
            assert len(sink.received) == 2 and listed(sink.messages[1]) == ["NEW4"]
            assert sink.messages[1]["Subject"] == "eas: 1 device quarantined"
            assert "since the last notice" in body(sink.messages[1])
            # a device released, then quarantined again, is news again
            await quarantine(store, "alice@example.com", "PHONE1", clock.now, access="allowed")
            clock.now += 15 * 60
            await notifier.tick()
            await quarantine(store, "alice@example.com", "PHONE1", clock.now)
            clock.now += 15 * 60
            await notifier.tick()
            assert len(sink.received) == 3 and listed(sink.messages[2]) == ["PHONE1"]
            await store.close()

        asyncio.run(main())


def test_interval_not_passed_then_passed_and_interval_zero(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "state.db")
    clock = Clock()
    with SMTPSink() as sink:
        async def main() -> None:
            await configure(store, sink.port, interval=30)
            notifier = Notifier(store, clock=clock)
            await quarantine(store, "alice@example.com", "ONE", clock.now)
            await notifier.tick()  # the first device of a quiet spell goes at once
            assert [listed(m) for m in sink.messages] == [["ONE"]]
            await quarantine(store, "alice@example.com", "TWO", clock.now + 60)
            clock.now += 29 * 60 + 59
            await notifier.tick()
            assert len(sink.received) == 1  # 30 minutes not yet passed
            clock.now += 1
            await notifier.tick()
            assert [listed(m) for m in sink.messages] == [["ONE"], ["TWO"]]
            # 0: no notices at all, however long it has been
            await change_setting(store, "notifier.interval", 0, actor="test")
            await quarantine(store, "alice@example.com", "THREE", clock.now + 1)
            clock.now += 86400
            await notifier.tick()
            assert len(sink.received) == 2
            # back on: the device held back is listed then
            await change_setting(store, "notifier.interval", 15, actor="test")
            await notifier.tick()
            assert [listed(m) for m in sink.messages] == [["ONE"], ["TWO"], ["THREE"]]
            await store.close()

        asyncio.run(main())


def test_no_recipients_sends_nothing_and_marks_nothing(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "state.db")
    clock = Clock()
    with SMTPSink() as sink:
        async def main() -> None:
            await configure(store, sink.port)
            await change_setting(store, "notifier.recipients", None, actor="test")
            await quarantine(store, "alice@example.com", "ONE", clock.now)
            notifier = Notifier(store, clock=clock)
            await notifier.tick()
            assert sink.received == [] and await store.get_setting(STATE_SETTING) is None
            await change_setting(store, "notifier.recipients", ["admin@example.com"], actor="test")
            await notifier.tick()
            assert [r for _, r, _ in sink.received] == [["admin@example.com"]]
            assert listed(sink.messages[0]) == ["ONE"]
            await store.close()

        asyncio.run(main())


def test_a_refusing_server_or_a_closed_port_loses_nothing(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "state.db")
    clock = Clock()
    with SMTPSink() as sink:
        async def main() -> None:
            await configure(store, closed_port())
            await quarantine(store, "alice@example.com", "ONE", clock.now)
            notifier = Notifier(store, clock=clock)
            await notifier.tick()  # connection refused: logged, not raised
            assert sink.received == [] and (await load_state(store))["last_notice"] is None
            await change_setting(store, "notifier.smtp_port", sink.port, actor="test")
            sink.refuse = True
            await notifier.tick()  # 554 to MAIL FROM
            assert sink.received == []
            assert sent(await store.events(limit=100)) == []
            await quarantine(store, "bob@example.com", "TWO", clock.now + 1)
            sink.refuse = False
            await notifier.tick()  # the next round sends both, once
            assert [listed(m) for m in sink.messages] == [["ONE", "TWO"]]
            await notifier.tick()
            assert len(sink.received) == 1
            await store.close()

        asyncio.run(main())


def test_client_text_cannot_forge_headers_or_lines(tmp_path: Path) -> None:
    """Device ids and user agents come from the device: their control characters are
    shown as ``?`` and they stay out of the headers."""
    store = SQLiteStateStore(tmp_path / "state.db")
    clock = Clock()
    with SMTPSink() as sink:
        async def main() -> None:
            await configure(store, sink.port)
            await quarantine(store, "alice@example.com", "EVIL\r\nBcc: x@evil.example", clock.now,
                             user_agent="UA\r\n\r\nFake line\x00" + "A" * 5000, model="M\nodel")
            await Notifier(store, clock=clock).tick()
            (_, rcpts, message), = sink.received
            assert rcpts == ADMINS and message["Bcc"] is None
            text = body(message)
            assert "device EVIL??Bcc: x@evil.example" in text and "\nFake line" not in text
            assert "model: M?odel" in text and max(len(line) for line in text.splitlines()) < 300
            await store.close()

        asyncio.run(main())


def test_many_devices_are_counted_beyond_the_listed_ones(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "state.db")
    clock = Clock()
    with SMTPSink() as sink:
        async def main() -> None:
            await configure(store, sink.port)
            for i in range(notifier_module.MAX_LISTED + 3):
                await quarantine(store, "alice@example.com", f"D{i:04}", clock.now - 1000 + i)
            await Notifier(store, clock=clock).tick()
            (message,) = sink.messages
            assert message["Subject"] == f"eas: {notifier_module.MAX_LISTED + 3} devices quarantined"
            assert len(listed(message)) == notifier_module.MAX_LISTED and "and 3 more" in body(message)
            await store.close()

        asyncio.run(main())


def test_a_damaged_state_starts_afresh(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "state.db")
    clock = Clock()
    with SMTPSink() as sink:
        async def main() -> None:
            await configure(store, sink.port)
            await store.set_setting(STATE_SETTING, {"notified": [["only two"]], "last_notice": "soon"})
            await quarantine(store, "alice@example.com", "ONE", clock.now)
            await Notifier(store, clock=clock).tick()
            assert [listed(m) for m in sink.messages] == [["ONE"]]
            state = await load_state(store)
            assert state["last_notice"] == clock.now and state["notified"] == [["alice@example.com", "ONE", clock.now]]
            await store.close()

        asyncio.run(main())


# -- jail alerts --------------------------------------------------------------------------------

class JailClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def flood(jail: Jail, user: str, device_id: str, requests: int = 4) -> None:
    """Requests until one is refused (the jailing)."""
    for _ in range(requests):
        try:
            release = await jail.admit(user, device_id)
        except EASError:
            return
        release()
    raise AssertionError("not jailed")


async def jail_for(store: SQLiteStateStore) -> Jail:
    for name, value in (("enabled", True), ("max_requests", 2), ("window", 60), ("duration", 300)):
        await store.set_setting(f"jail.{name}", value)
    return Jail(store, clock=JailClock())


def test_each_jailing_is_alerted_once_even_by_a_new_notifier(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "state.db")
    clock = Clock()
    with SMTPSink() as sink:
        async def main() -> None:
            await configure(store, sink.port, interval=0)  # jail alerts do not wait for notices
            jail = await jail_for(store)
            await flood(jail, "alice@example.com", "PHONE1")
            await Notifier(store, clock=clock).tick()
            (message,) = sink.messages
            assert message["Subject"] == "eas: device PHONE1 of alice@example.com jailed"
            assert "more than 2 requests in 60 s; jailed for 300 s" in body(message)
            await Notifier(store, clock=clock).tick()  # a new notifier, the same store: no repeat
            assert len(sink.received) == 1
            # two more jailings: one mail each, in order
            await flood(jail, "bob@example.com", "TAB")
            await flood(jail, "carol@example.com", "X1")
            clock.now += 60
            notifier = Notifier(store, clock=clock)
            await notifier.tick()
            assert [m["Subject"] for m in sink.messages[1:]] == [
                "eas: device TAB of bob@example.com jailed", "eas: device X1 of carol@example.com jailed"]
            await notifier.tick()
            assert len(sink.received) == 3
            details = sent(await store.events(limit=100))
            assert len(details) == 3 and all(d.startswith("jail alert for device ") for d in details)
            await store.close()

        asyncio.run(main())


def test_an_account_jailing_and_a_failed_alert_is_sent_next_round(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "state.db")
    clock = Clock()
    with SMTPSink() as sink:
        async def main() -> None:
            await configure(store, sink.port, interval=0)
            jail = await jail_for(store)
            for device in ("A", "B"):  # one request each: no device reaches 3, the account does
                (await jail.admit("alice@example.com", device))()
            with pytest.raises(EASError):
                await jail.admit("alice@example.com", "C")
            events = [e for e in await store.events() if e.action == "jail"]
            assert [(e.user, e.device_id) for e in events] == [("alice@example.com", "")]
            sink.refuse = True
            notifier = Notifier(store, clock=clock)
            await notifier.tick()
            assert sink.received == []
            sink.refuse = False
            await notifier.tick()
            (message,) = sink.messages
            assert message["Subject"] == "eas: account alice@example.com jailed"
            assert "account alice@example.com (all devices)" in body(message)
            await store.close()

        asyncio.run(main())


def test_a_flood_of_jailings_is_one_mail(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "state.db")
    clock = Clock()
    with SMTPSink() as sink:
        async def main() -> None:
            await configure(store, sink.port, interval=0)
            jail = await jail_for(store)
            count = notifier_module.JAIL_MAILS_PER_ROUND + 5
            for i in range(count):
                await flood(jail, f"user{i}@example.com", "D")
            notifier = Notifier(store, clock=clock)
            await notifier.tick()
            (message,) = sink.messages
            assert message["Subject"] == f"eas: {count} jailings"
            assert body(message).count(": device D of user") == count
            await flood(jail, "late@example.com", "D")
            await notifier.tick()
            assert [m["Subject"] for m in sink.messages] == [f"eas: {count} jailings",
                                                             "eas: device D of late@example.com jailed"]
            await store.close()

        asyncio.run(main())


def test_old_jailings_are_history_not_alerts(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "state.db")
    clock = Clock()
    with SMTPSink() as sink:
        async def main() -> None:
            await configure(store, sink.port, interval=0)
            await flood(await jail_for(store), "alice@example.com", "OLD")
            clock.now += notifier_module.JAIL_LOOKBACK + 1
            await Notifier(store, clock=clock).tick()
            assert sink.received == []
            await store.close()

        asyncio.run(main())


# -- run(): the loop eas serve starts ----------------------------------------------------------

def test_run_ticks_at_once_restart_wakes_it_and_the_service_switch_stops_it(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "state.db")
    clock = Clock()
    with SMTPSink() as sink:
        async def main() -> None:
            await configure(store, sink.port)
            await quarantine(store, "alice@example.com", "ONE", clock.now)
            notifier = Notifier(store, clock=clock)
            task = asyncio.create_task(notifier.run())
            try:
                for _ in range(100):
                    if sink.received:
                        break
                    await asyncio.sleep(0.05)
                assert [listed(m) for m in sink.messages] == [["ONE"]]
                await quarantine(store, "alice@example.com", "TWO", clock.now + 1)
                clock.now += 15 * 60
                notifier.restart()  # a round now, not in a minute
                for _ in range(100):
                    if len(sink.received) > 1:
                        break
                    await asyncio.sleep(0.05)
                assert [listed(m) for m in sink.messages] == [["ONE"], ["TWO"]]
                await change_setting(store, "service.notifier", False, actor="test")
                await quarantine(store, "alice@example.com", "THREE", clock.now + 1)
                clock.now += 15 * 60
                notifier.restart()
                await asyncio.sleep(0.5)
                assert len(sink.received) == 2  # stopped: no round
            finally:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            await store.close()

        asyncio.run(main())


# -- settings ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "value"), [
    ("notifier.interval", -1), ("notifier.interval", 10081), ("notifier.interval", True),
    ("notifier.interval", "15"), ("notifier.interval", 1.5),
    ("notifier.recipients", "not an address"), ("notifier.recipients", ["a@b.example\r\nBcc: x@y.example"]),
    ("notifier.recipients", ["<a@b.example>"]), ("notifier.recipients", [f"a{i}@b.example" for i in range(51)]),
    ("notifier.recipients", {"a": 1}), ("notifier.recipients", ["é@b.example"]), ("notifier.recipients", [3]),
    ("notifier.recipients", ["x" * 250 + "@b.example"]), ("notifier.from", "nobody"),
    ("notifier.smtp_host", "mail example"), ("notifier.smtp_host", ""), ("notifier.smtp_host", "h\x00"),
    ("notifier.smtp_port", 0), ("notifier.smtp_port", 65536), ("notifier.smtp_port", "25"),
    ("notifier.smtp_tls", "ssl"), ("notifier.smtp_tls", True), ("notifier.smtp_user", "x" * 1025),
    ("notifier.smtp_password", "line\nbreak"), ("notifier.smtp_password", 1234),
])
def test_bad_settings_are_refused_and_store_nothing(tmp_path: Path, name: str, value: Any) -> None:
    store = SQLiteStateStore(tmp_path / "state.db")

    async def main() -> None:
        with pytest.raises((ValueError, TypeError)):
            await change_setting(store, name, value, actor="test")
        assert await store.settings("notifier.") == {} and await store.events() == []
        await store.close()

    asyncio.run(main())


def test_good_settings_are_normalised(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "state.db")

    async def main() -> None:
        got = await change_setting(store, "notifier.recipients", "Admin@Example.COM, ops@bücher.example,"
                                   " Admin@example.com", actor="test")
        assert got == ["Admin@example.com", "ops@xn--bcher-kva.example"]
        assert await change_setting(store, "notifier.from", "", actor="test") == ""
        assert await change_setting(store, "notifier.smtp_tls", "starttls", actor="test") == "starttls"
        assert await change_setting(store, "notifier.interval", 0, actor="test") == 0
        await store.close()

    asyncio.run(main())
