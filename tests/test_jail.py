"""The request-rate jail and the per-account cap on requests in progress
(``eas.access.jail``), through the real core on SQLite with a clock the tests control:
triggering, Retry-After, expiry, per device vs per account, disabled, bounded memory,
the cap with held Pings, and the audit trail."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from test_foldersync import ALICE, folder_sync, folder_sync_xml, ids_by_name, put_collection, quick_app, run
from test_ping import ping_xml

from eas.access import jail as jail_module
from eas.config import Config
from eas.core import ActiveSync, PolicyDecision
from eas.state.model import CollectionState, DeviceRecord
from eas.store import ReferenceStore
from eas.tags import Ping
from eas.testing.client import Client, Reply
from eas.testing.harness import USERS, client

BOB, BOB_PW = USERS[1]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def no_policy(user: str, device: DeviceRecord) -> PolicyDecision:
    return PolicyDecision(required=False)


async def jailed_app(tmp_path: Path, config: Config | None = None, **settings: Any) -> tuple[ActiveSync, Clock]:
    """An app with the jail on (small numbers unless given) and a clock of our own."""
    app, _ = quick_app(tmp_path, config)
    app.policy = no_policy
    clock = Clock()
    app.jail.clock = clock
    values = {"enabled": True, "window": 10, "max_requests": 5, "duration": 60, **settings}
    for name, value in values.items():
        await app.store.set_setting(f"jail.{name}", value)
    app.jail.reload()
    return app, clock


async def hit(c: Client) -> Reply:
    return await c.command("FolderSync", folder_sync_xml("0"))


def test_jail_triggers_with_retry_after_then_expires(tmp_path: Path) -> None:
    async def main() -> None:
        app, clock = await jailed_app(tmp_path)
        c = client(app)
        for _ in range(5):
            assert (await hit(c)).status == 200
            clock.now += 1
        before = await app.store.get_device(ALICE, c.device_id)
        r = await hit(c)  # the sixth in 10 s
        assert r.status == 503 and r.headers["retry-after"] == "60"
        after = await app.store.get_device(ALICE, c.device_id)
        assert before is not None and after is not None and after.last_seen == before.last_seen
        clock.now += 20.5
        r = await hit(c)
        assert r.status == 503 and r.headers["retry-after"] == "40"  # 39.5 left, rounded up
        events = await app.store.events(user=ALICE)
        assert [(e.action, e.actor, e.device_id) for e in events] == [("jail", "jail", c.device_id)]
        clock.now += 40
        assert (await hit(c)).status == 200
        assert len(await app.store.events(user=ALICE)) == 1  # alerted once per jailing

    run(main())


def test_requests_spread_over_the_window_are_not_jailed(tmp_path: Path) -> None:
    async def main() -> None:
        app, clock = await jailed_app(tmp_path)
        c = client(app)
        for _ in range(40):  # one every 2.5 s: 4 per window, under 5
            assert (await hit(c)).status == 200
            clock.now += 2.5
        assert await app.store.events() == []

    run(main())


def test_per_device_and_per_account(tmp_path: Path) -> None:
    async def main() -> None:
        app, _ = await jailed_app(tmp_path, max_requests=4)
        phone, tablet = client(app, device_id="Phone1"), client(app, device_id="Tablet1")
        bob = client(app, BOB, BOB_PW, device_id="Phone1")
        for _ in range(4):
            assert (await hit(phone)).status == 200
        assert (await hit(phone)).status == 503
        # a refused request is not counted for the account: the tablet's first request is
        # the account's fifth in the window, so the account is jailed now as well
        r = await hit(tablet)
        assert r.status == 503 and r.headers["retry-after"] == "60"
        # another account with the same device id is not touched
        assert (await hit(bob)).status == 200
        events = await app.store.events(user=ALICE)
        assert sorted(e.device_id for e in events) == ["", "Phone1"]

    run(main())


def test_disabled(tmp_path: Path) -> None:
    async def main() -> None:
        app, _ = await jailed_app(tmp_path, enabled=False, max_requests=1, max_concurrent=1)
        c = client(app)
        for _ in range(10):
            assert (await hit(c)).status == 200
        assert app.jail.state()["counters"] == 0 and await app.store.events() == []

    run(main())


def test_settings_change_reaches_the_engine_and_bad_values_fall_back(tmp_path: Path) -> None:
    async def main() -> None:
        app, _ = await jailed_app(tmp_path, max_requests=2)
        c = client(app)
        await app.store.set_setting("jail.max_requests", "many")  # not through eas config
        await app.store.set_setting("jail.window", -5)
        app.jail.reload()
        s = await app.jail.settings()
        assert (s["jail.max_requests"], s["jail.window"]) == (150, 30)
        for _ in range(10):
            assert (await hit(c)).status == 200

    run(main())


def test_clear_releases_every_jail(tmp_path: Path) -> None:
    async def main() -> None:
        app, _ = await jailed_app(tmp_path, max_requests=1)
        c = client(app)
        assert (await hit(c)).status == 200
        assert (await hit(c)).status == 503
        assert app.jail.state()["jailed"] == [f"{ALICE} {c.device_id}"]
        assert app.jail.clear() == 1
        assert app.jail.state()["jailed"] == []
        assert (await hit(c)).status == 200

    run(main())


def test_a_flood_of_made_up_device_ids_keeps_memory_bounded(tmp_path: Path, monkeypatch: Any) -> None:
    async def main() -> None:
        monkeypatch.setattr(jail_module, "MAX_KEYS", 200)
        app, clock = await jailed_app(tmp_path, max_requests=1000)
        jail = app.jail
        for i in range(3000):
            (await jail.admit(ALICE, f"random{i}"))()
        assert len(jail._counters) <= 200
        # every key also expires when idle: two windows later a sweep drops all of them
        clock.now += 25
        for i in range(250):
            (await jail.admit(BOB, f"other{i}"))()
        assert len(jail._counters) <= 200
        assert not any(k[1].startswith(ALICE) for k in jail._counters)  # the idle ones went first

    run(main())


async def ping_device(app: ActiveSync, store: ReferenceStore, device_id: str) -> tuple[Client, str]:
    """A device of alice whose Inbox is synced, so a Ping on it waits; its Inbox id."""
    c = client(app, device_id=device_id, version="14.1")
    ids = ids_by_name(await folder_sync(c, "0"))
    inbox = next(f for f in await store.folders(ALICE) if f.name == "Inbox")
    stamps = await store.item_stamps(ALICE, inbox.id)
    await put_collection(app, c, CollectionState(ids["Inbox"], inbox.id, sync_key=2, snapshot=stamps,
                                                 options={"class": "Email", "filter_type": 0}))
    return c, ids["Inbox"]


async def held(app: ActiveSync, c: Client, inbox: str) -> asyncio.Task[Reply]:
    task = asyncio.create_task(c.command("Ping", ping_xml(300, inbox)))
    for _ in range(200):
        if (ALICE, c.device_id) in app._superseders:
            return task
        await asyncio.sleep(0.005)
    raise AssertionError("the Ping does not wait")


def test_concurrency_cap_with_held_pings(tmp_path: Path) -> None:
    async def main() -> None:
        config = Config(min_heartbeat=1, max_heartbeat=600)
        app, _ = await jailed_app(tmp_path, config, max_requests=1000)
        store = app.backend
        assert isinstance(store, ReferenceStore)
        phone, phone_inbox = await ping_device(app, store, "Phone1")
        tablet, tablet_inbox = await ping_device(app, store, "Tablet1")
        # default cap (16): a phone and a tablet, each holding a Ping and syncing, are served
        pings = [await held(app, phone, phone_inbox), await held(app, tablet, tablet_inbox)]
        assert app.jail.state()["running"] == 2
        assert (await hit(tablet)).status == 200  # ends the tablet's Ping, takes its slot
        r = await pings[1]
        assert r.status == 200 and r.text(Ping.Status) == "1"
        assert app.jail.state()["running"] == 1  # the phone's Ping
        # cap 1: the phone's held Ping fills it
        await app.store.set_setting("jail.max_concurrent", 1)
        app.jail.reload()
        r = await hit(tablet)
        assert r.status == 503 and r.headers["retry-after"] == "1"
        # bob is another account: not refused
        assert (await hit(client(app, BOB, BOB_PW, device_id="Phone1"))).status == 200
        # a newer request of the phone ends its Ping and is served
        assert (await hit(phone)).status == 200
        assert (await pings[0]).text(Ping.Status) == "1"
        assert app.jail.state()["running"] == 0
        assert (await hit(tablet)).status == 200
        assert await app.store.events() == []  # the cap jails nobody

    run(main())


# -- over HTTP, with a real eas serve and the eas command ----------------------------------

def test_end_to_end_jail_list_and_restart(tmp_path: Path) -> None:
    """A device flooding a real server is jailed (503, Retry-After); ``eas service list``
    shows it; ``eas service restart anti-dos`` frees it at once; ``eas config set`` turns
    the jail off within a second or two."""
    from test_cli_server import eas, http, serving

    data = tmp_path / "data"
    assert eas("user", "add", ALICE, "--password", "pw", data_dir=data).returncode == 0
    for name, value in (("enabled", "true"), ("max_requests", "5"), ("window", "600"), ("duration", "900")):
        r = eas("config", "set", f"jail.{name}", value, data_dir=data)
        assert r.returncode == 0, r.stderr
    r = eas("service", "restart", "anti-dos", data_dir=data)
    assert (r.returncode, r.stdout) == (0, b"anti-dos: no server running (its jails end with it)\n")
    with serving(data, "--no-tls") as server:
        async def scenario() -> None:
            c = Client(http(server.port), ALICE, "pw", version="14.1")
            await c.provision()  # two requests
            for _ in range(3):
                assert (await hit(c)).status == 200
            r = await hit(c)
            assert r.status == 503 and 899 <= int(r.headers["retry-after"]) <= 900, r
            listed = await asyncio.to_thread(eas, "service", "list", data_dir=data)
            assert listed.returncode == 0, listed.stderr
            assert b"anti-dos: enabled: more than 5 requests in 600 s" in listed.stdout
            assert f"jailed: {ALICE} {c.device_id}, ".encode() in listed.stdout
            restart = await asyncio.to_thread(eas, "service", "restart", "anti-dos", data_dir=data)
            assert (restart.returncode, restart.stdout) == (0, b"anti-dos: restarted, every jail cleared\n")
            for _ in range(40):  # the datagram is read by the server's loop: a moment
                r = await hit(c)
                if r.status != 503:
                    break
                await asyncio.sleep(0.05)
            assert r.status == 200
            listed = await asyncio.to_thread(eas, "service", "list", data_dir=data)
            assert b"jailed:" not in listed.stdout
            # the counting starts afresh: four more pass, the fifth after them is refused
            for _ in range(4):
                assert (await hit(c)).status == 200
            assert (await hit(c)).status == 503
            off = await asyncio.to_thread(eas, "config", "set", "jail.enabled", "false", data_dir=data)
            assert off.returncode == 0, off.stderr
            await asyncio.sleep(1.2)  # the engine reads the settings at most once a second
            for _ in range(8):
                assert (await hit(c)).status == 200

        asyncio.run(scenario())
    assert b"jail: " in server.stderr and b"anti-dos restarted: 1 jails released" in server.stderr


def test_service_bad_input(tmp_path: Path) -> None:
    from test_cli_server import eas

    data = tmp_path / "data"
    r = eas("service", "restart", "nonesuch", data_dir=data)
    assert r.returncode == 2 and b"unknown service 'nonesuch'" in r.stderr
    r = eas("service", "list", data_dir=data)
    assert r.returncode == 0 and b"anti-dos: disabled (no server running)" in r.stdout


def test_service_datagram_round_trip() -> None:
    from eas import notify

    assert notify.decode(notify.encode_service("anti-dos")) == notify.Message("service", "anti-dos")
    assert notify.decode(notify.encode("!service", ())) == notify.Message("change", "!service")
    for bad in (b"!service\t", b"!restart\tanti-dos"):
        try:
            notify.decode(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_jail_triggers_and_expires_over_http_on_a_clock_the_test_controls(tmp_path: Path) -> None:
    """The same rules through uvicorn on loopback (the ASGI adapter, real HTTP): the
    sixth request in the window gets 503 with the jail time left as Retry-After; moving
    the engine's clock past the jail frees the device, without waiting in real time."""
    from test_adapters import uvicorn_server
    from test_cli_server import http

    from eas.asgi import ASGIApp

    app, clock = asyncio.run(jailed_app(tmp_path, duration=60))
    with uvicorn_server(ASGIApp(app)) as port:
        async def scenario() -> None:
            c = Client(http(port), ALICE, "alice-secret", version="14.1")
            for _ in range(5):
                assert (await hit(c)).status == 200
            r = await hit(c)
            assert r.status == 503 and r.headers["retry-after"] == "60"
            clock.now += 59
            r = await hit(c)
            assert r.status == 503 and r.headers["retry-after"] == "1"
            clock.now += 1.5
            assert (await hit(c)).status == 200
            events = await app.store.events()  # before the server's shutdown closes the store
            assert [(e.action, e.user) for e in events if e.action == "jail"] == [("jail", ALICE)]

        asyncio.run(scenario())
