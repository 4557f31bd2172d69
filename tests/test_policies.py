"""Provisioning policies (``eas.access.policies``): the EASProvisionDoc written per version
against the element versions MS-ASPROV gives; user over group over global over default,
key by key; the hash (and so the policy key) changing for exactly the accounts a change
reaches; the cache on a clock; invalid stored levels refusing only their accounts; the
admin API audited and storing nothing for bad input; and end to end through the real
core: 143 / 449 after a change, re-provisioning with the new EASProvisionDoc, group
policies reaching members only, non-provisionable devices allowed or refused, partial
enforcement allowed or refused (139), and the 2.5 WAP form of the combined policy."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from eas import policy, tags
from eas.access import PolicyDecision, change_setting, mobile
from eas.access.policies import (
    CACHE_SECONDS,
    FLAGS,
    MAX_LIST,
    PolicyConfigError,
    PolicyEngine,
    check_policy,
    clear_values,
    set_values,
)
from eas.core import ActiveSync
from eas.protocol.versions import Version
from eas.state.memory import MemoryStateStore
from eas.state.model import DeviceRecord
from eas.tags import FolderHierarchy as FH
from eas.tags import Provision as P
from eas.testing.client import Client, Reply
from eas.testing.harness import client, make_app
from eas.wbxml import Writer, decode

pytestmark = pytest.mark.kernel_independent

A, B = "alice@example.com", "bob@example.com"
FOLDERSYNC = '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>'


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


# -- the EASProvisionDoc per protocol version (MS-ASPROV 2.2.2.x, "Protocol Versions") ------

# The first protocol version in which each EASProvisionDoc element exists, as the element's
# section of MS-ASPROV states it (each is supported in every later version, none in 2.5).
SPEC_FIRST_VERSION = {
    **dict.fromkeys(("DevicePasswordEnabled", "AlphanumericDevicePasswordRequired", "PasswordRecoveryEnabled",
                     "AttachmentsEnabled", "MinDevicePasswordLength", "MaxInactivityTimeDeviceLock",
                     "MaxDevicePasswordFailedAttempts", "MaxAttachmentSize", "AllowSimpleDevicePassword",
                     "DevicePasswordExpiration", "DevicePasswordHistory"), "12.0"),
    **dict.fromkeys(("RequireStorageCardEncryption", "AllowStorageCard", "AllowCamera", "RequireDeviceEncryption",
                     "AllowUnsignedApplications", "AllowUnsignedInstallationPackages",
                     "MinDevicePasswordComplexCharacters", "AllowWiFi", "AllowTextMessaging", "AllowPOPIMAPEmail",
                     "AllowBluetooth", "AllowIrDA", "RequireManualSyncWhenRoaming", "AllowDesktopSync",
                     "MaxCalendarAgeFilter", "AllowHTMLEmail", "MaxEmailAgeFilter", "MaxEmailBodyTruncationSize",
                     "MaxEmailHTMLBodyTruncationSize", "RequireSignedSMIMEMessages", "RequireEncryptedSMIMEMessages",
                     "RequireSignedSMIMEAlgorithm", "RequireEncryptionSMIMEAlgorithm",
                     "AllowSMIMEEncryptionAlgorithmNegotiation", "AllowSMIMESoftCerts", "AllowBrowser",
                     "AllowConsumerEmail", "AllowRemoteDesktop", "AllowInternetSharing",
                     "UnapprovedInROMApplicationList", "ApprovedApplicationList"), "12.1"),
}

# Types and values as the sections give them: (type, lowest, highest or choices, may be empty).
SPEC_VALUES: dict[str, tuple[str, int, int | tuple[int, ...], bool]] = {
    "MinDevicePasswordLength": ("unsigned", 1, 16, True),
    "MaxDevicePasswordFailedAttempts": ("unsigned", 4, 16, True),
    "MaxInactivityTimeDeviceLock": ("unsigned", 0, 0xFFFFFFFF, True),
    "MaxAttachmentSize": ("unsigned", 0, 0xFFFFFFFF, True),
    "DevicePasswordExpiration": ("unsigned", 0, 0xFFFFFFFF, True),
    "DevicePasswordHistory": ("unsigned", 0, 0xFFFFFFFF, False),
    "MinDevicePasswordComplexCharacters": ("unsigned", 1, 4, False),
    "AllowBluetooth": ("unsigned", 0, 2, False),
    "MaxCalendarAgeFilter": ("unsigned", 0, (0, 4, 5, 6, 7), False),
    "MaxEmailAgeFilter": ("unsigned", 0, 5, False),
    "MaxEmailBodyTruncationSize": ("integer", -1, 2**31 - 1, False),
    "MaxEmailHTMLBodyTruncationSize": ("integer", -1, 2**31 - 1, False),
    "RequireSignedSMIMEAlgorithm": ("integer", 0, 1, False),
    "RequireEncryptionSMIMEAlgorithm": ("integer", 0, 4, False),
    "AllowSMIMEEncryptionAlgorithmNegotiation": ("integer", 0, 2, False),
}


def test_the_model_has_every_element_of_the_spec_with_its_type() -> None:
    assert set(SPEC_FIRST_VERSION) == set(policy.BY_NAME) and len(SPEC_FIRST_VERSION) == 42
    for element in policy.ELEMENTS:
        if element.name in SPEC_VALUES:
            kind, low, high, empty = SPEC_VALUES[element.name]
            assert (element.kind, element.low, element.empty) == (kind, low, empty), element.name
            if isinstance(high, tuple):
                assert element.choices == high, element.name
                bad = next(v for v in range(low, max(high)) if v not in high)
                with pytest.raises(policy.PolicyError):
                    element.check(bad)
            else:
                assert element.high == high, element.name
                element.check(low)
                element.check(high)
                for outside in (low - 1, high + 1):
                    with pytest.raises(policy.PolicyError):
                        element.check(outside)
        elif element.kind != "list":
            assert element.kind == "boolean", element.name
            assert element.check(True) == 1 and element.check(0) == 0
            with pytest.raises(policy.PolicyError):
                element.check(2)


@pytest.mark.parametrize("version", ["12.0", "12.1", "14.0", "14.1", "16.0", "16.1"])
def test_provision_doc_per_version_follows_the_spec(version: str) -> None:
    """Every element (each given a value other than its default, so that nothing is left
    out for being empty) is written exactly in the versions MS-ASPROV gives it."""
    settings: dict[str, Any] = {
        "DevicePasswordEnabled": 1, "MinDevicePasswordLength": 6, "MaxInactivityTimeDeviceLock": 300,
        "MaxDevicePasswordFailedAttempts": 8, "MaxAttachmentSize": 1000, "DevicePasswordExpiration": 90,
        "UnapprovedInROMApplicationList": ["solitaire.exe"], "ApprovedApplicationList": ["a" * 40],
    }
    w = Writer()
    policy.write_provision_doc(w, settings, version)
    doc = decode(w.getvalue())
    written = {tags.BY_TAG[n.tag].name for n in doc.children}
    expected = {name for name, first in SPEC_FIRST_VERSION.items() if Version(version) >= Version(first)}
    assert written == expected
    assert (len(written), version) in ((11, "12.0"), (42, version))
    assert doc.findtext(P.MinDevicePasswordLength) == "6"
    if version != "12.0":
        apps = doc.find(P.UnapprovedInROMApplicationList)
        assert apps is not None and [n.text for n in apps.children] == ["solitaire.exe"]


# -- combining the levels --------------------------------------------------------------------


async def _store(levels: dict[str, dict[str, Any]], groups: list[tuple[str, list[str]]] = ()  # type: ignore[assignment]
                 ) -> MemoryStateStore:
    store = MemoryStateStore()
    for name, members in groups:
        await mobile.group_add(store, name, members, actor="test")
    for name, value in levels.items():
        await change_setting(store, name, value, actor="test")
    return store


def test_user_over_groups_in_order_over_global_over_default_key_by_key() -> None:
    async def scenario() -> None:
        store = await _store({
            "policy.global": {"DevicePasswordEnabled": 1, "MinDevicePasswordLength": 4, "AllowCamera": 0,
                              "allow_partial": False},
            "policy.group:first": {"MinDevicePasswordLength": 8, "MaxAttachmentSize": 5000},
            "policy.group:second": {"MinDevicePasswordLength": 12, "AllowBluetooth": 1, "MaxAttachmentSize": 1},
            "policy.user:" + A: {"AllowCamera": 1, "allow_non_provisionable": True},  # back to the default
        }, groups=[("first", ["@example.com"]), ("second", [A, B])])
        engine = PolicyEngine(store)
        alice = await engine.explain("Alice@Example.com")
        assert alice.decision.settings == {"DevicePasswordEnabled": 1, "MinDevicePasswordLength": 8,
                                           "MaxAttachmentSize": 5000, "AllowBluetooth": 1}
        assert alice.sources == {"DevicePasswordEnabled": "global", "MinDevicePasswordLength": "group first",
                                 "MaxAttachmentSize": "group first", "AllowBluetooth": "group second",
                                 "AllowCamera": "user " + A, "allow_non_provisionable": "user " + A,
                                 "allow_partial": "global"}
        d = alice.decision
        assert (d.required, d.allow_non_provisionable, d.allow_partial, d.allow_externally_managed) == (
            True, True, False, True)
        assert d.source.startswith(f"user {A} (AllowCamera, allow_non_provisionable); group first (")
        carol = await engine.explain("carol@example.org")  # in no group: the global policy
        assert carol.decision.settings == {"DevicePasswordEnabled": 1, "MinDevicePasswordLength": 4, "AllowCamera": 0}
        assert carol.decision.source == "global (AllowCamera, DevicePasswordEnabled, MinDevicePasswordLength, " \
                                        "allow_partial)"
        # An embedder's hook: its groups in mobile.groups order first, unknown ones after.
        engine = PolicyEngine(store, groups=lambda account: ["other", "second", "first"])
        await change_setting(store, "policy.group:other", {"MaxAttachmentSize": 7}, actor="test")
        assert (await engine.explain(B)).decision.settings["MaxAttachmentSize"] == 5000

        async def hook(account: str) -> list[str]:
            return ["other", "second"]

        explained = await PolicyEngine(store, groups=hook).explain(B)
        assert explained.decision.settings["MaxAttachmentSize"] == 1
        assert explained.sources["MaxAttachmentSize"] == "group second"
        # Nothing set anywhere: the permissive policy the core had before.
        empty = await PolicyEngine(MemoryStateStore()).explain(A)
        assert empty.decision == PolicyDecision(source="default") and empty.sources == {}

    run(scenario())


def test_the_hash_changes_for_exactly_the_accounts_a_change_reaches() -> None:
    now = [50.0]

    async def scenario() -> None:
        store = await _store({}, groups=[("staff", [A])])
        engine = PolicyEngine(store, clock=lambda: now[0])
        accounts = (A, B, "carol@example.org")

        async def hashes() -> dict[str, str]:
            return {a: (await engine(a, DeviceRecord(user=a, device_id="D"))).hash for a in accounts}

        async def change(name: str, value: dict[str, Any] | None) -> dict[str, bool]:
            before = await hashes()
            await change_setting(store, name, value, actor="test")
            assert await hashes() == before  # cached
            now[0] += CACHE_SECONDS
            after = await hashes()
            return {a: after[a] != before[a] for a in accounts}

        assert await change("policy.group:staff", {"AllowCamera": 0}) == {A: True, B: False, "carol@example.org": False}
        assert await change("policy.user:" + B, {"AllowWiFi": 0}) == {A: False, B: True, "carol@example.org": False}
        assert await change("policy.global", {"AllowBrowser": 0}) == dict.fromkeys(accounts, True)
        # Flags and values equal to what applies anyway change no policy key.
        assert await change("policy.global", {"AllowBrowser": 0, "allow_partial": False,
                                              "AllowCamera": 1}) == dict.fromkeys(accounts, False)
        assert await change("policy.user:" + A, {"AllowCamera": 0}) == dict.fromkeys(accounts, False)
        assert await change("policy.group:staff", None) == dict.fromkeys(accounts, False)  # the user's own says 0
        assert await change("policy.user:" + A, None) == {A: True, B: False, "carol@example.org": False}

    run(scenario())


def test_an_invalid_stored_level_refuses_only_its_accounts() -> None:
    async def scenario() -> None:
        store = await _store({}, groups=[("staff", [A])])
        await store.set_setting("policy.group:staff", {"AllowTeleportation": 1})  # past the checks
        engine = PolicyEngine(store)
        with pytest.raises(PolicyConfigError) as e:
            await engine.explain(A)
        assert e.value.status == 110 and "policy.group:staff" in str(e.value)
        assert (await engine.explain(B)).decision.settings == {}
        await store.set_setting("policy.global", ["not", "an", "object"])
        with pytest.raises(PolicyConfigError):
            await PolicyEngine(store).explain(B)

    run(scenario())


def test_admin_api_audited_and_bad_input_stores_nothing() -> None:
    async def scenario() -> None:
        store = MemoryStateStore()
        assert await set_values(store, "group", "Staff", {"AllowCamera": False, "allow_partial": False},
                                actor="admin") == {"AllowCamera": 0, "allow_partial": False}
        await set_values(store, "group", "staff", {"MinDevicePasswordLength": 6}, actor="admin")
        await set_values(store, "user", "Alice@example.com", {"MaxAttachmentSize": None}, actor="admin")
        await set_values(store, "global", None, {"DevicePasswordEnabled": 1}, actor="admin")
        assert await store.get_setting("policy.group:staff") == {"AllowCamera": 0, "MinDevicePasswordLength": 6,
                                                                 "allow_partial": False}
        before = (await store.settings("policy."), len(await store.events(limit=1000)))
        hostile: list[tuple[str, Any, Any]] = [
            ("user", A, {"NoSuchElement": 1}), ("user", A, {"MinDevicePasswordLength": 17}),
            ("user", A, {"DevicePasswordEnabled": "yes"}), ("user", A, {"allow_partial": 1}),
            ("user", A, {"ApprovedApplicationList": ["x"] * (MAX_LIST + 1)}), ("user", A, {}),
            ("user", A, {"ApprovedApplicationList": "abc"}), ("user", A, {"MaxAttachmentSize": 2**40}),
            ("user", "@example.com", {"AllowCamera": 0}), ("user", "nobody", {"AllowCamera": 0}),
            ("user", "a b@example.com", {"AllowCamera": 0}), ("user", "x" * 300 + "@example.com", {"AllowCamera": 0}),
            ("group", "", {"AllowCamera": 0}), ("group", "a\nb", {"AllowCamera": 0}), ("group", None, {"AllowCamera": 0}),
            ("global", "name", {"AllowCamera": 0}), ("planet", None, {"AllowCamera": 0}),
        ]
        for level, name, values in hostile:
            with pytest.raises((ValueError, TypeError)):
                await set_values(store, level, name, values, actor="admin")
        for keys in (["NoSuchElement"], ["AllowCamera", "\u202e"]):
            with pytest.raises(ValueError):
                await clear_values(store, "group", "staff", keys, actor="admin")
        for bad in ({"NoSuchElement": 1}, "AllowCamera=0", [1], {"AllowCamera": 2}, {"required": "no"}):
            with pytest.raises((ValueError, TypeError)):
                await change_setting(store, "policy.user:" + A, bad, actor="admin")
        assert (await store.settings("policy."), len(await store.events(limit=1000))) == before
        assert await clear_values(store, "group", "staff", ["AllowCamera"], actor="admin") == {
            "MinDevicePasswordLength": 6, "allow_partial": False}
        assert await clear_values(store, "user", A, [], actor="admin") is None
        assert await store.get_setting("policy.user:" + A) is None
        events = [(e.action, e.actor, e.user) for e in reversed(await store.events(limit=1000))]
        assert events == [("policy.set", "admin", ""), ("policy.set", "admin", ""), ("policy.set", "admin", A),
                          ("policy.set", "admin", ""), ("policy.clear", "admin", ""), ("policy.clear", "admin", A)]
        assert check_policy({"allow_partial": True, "AllowCamera": True}) == {"AllowCamera": 1, "allow_partial": True}
        assert set(FLAGS) == {"required", "allow_non_provisionable", "allow_partial", "allow_externally_managed"}

    run(scenario())


# -- end to end through the core -----------------------------------------------------------


def new_app(tmp_path: Path) -> tuple[ActiveSync, list[float]]:
    """A real app (reference store, SQLite state) whose policy engine and group membership
    (mobile access's cached groups) run on a test clock."""
    app, _ = make_app(tmp_path)
    now = [1000.0]
    app.policies.clock = app.mobile.clock = lambda: now[0]
    return app, now


async def changed(app: ActiveSync, now: list[float], name: str, value: dict[str, Any] | None) -> None:
    await change_setting(app.store, name, value, actor="test")
    now[0] += CACHE_SECONDS


def refresh_status(reply: Reply, version: str) -> str | int:
    """What the core answered a command: the FolderSync status from 14.0, the HTTP status before."""
    if Version(version) < Version("14.0"):
        return reply.status
    assert reply.status == 200
    return reply.text(FH.Status) or ""


def phase1(version: str, device_info: str = "") -> str:
    ptype = "MS-WAP-Provisioning-XML" if version == "2.5" else "MS-EAS-Provisioning-WBXML"
    return (f'<Provision xmlns="Provision:">{device_info}<Policies><Policy><PolicyType>{ptype}</PolicyType></Policy>'
            "</Policies></Provision>")


def phase2(version: str, key: object, status: int = 1) -> str:
    ptype = "MS-WAP-Provisioning-XML" if version == "2.5" else "MS-EAS-Provisioning-WBXML"
    return (f'<Provision xmlns="Provision:"><Policies><Policy><PolicyType>{ptype}</PolicyType>'
            f"<PolicyKey>{key}</PolicyKey><Status>{status}</Status></Policy></Policies></Provision>")


async def reprovision(c: Client) -> dict[str, str | None]:
    """Both phases again; the EASProvisionDoc received, element name -> text."""
    c.policy_key = None
    first = await c.command("Provision", phase1(c.version))
    node = first.node
    assert node is not None and first.text(P.Status) == "1", first.xml
    doc = node.find(P.Policies, P.Policy, P.Data, P.EASProvisionDoc)
    assert doc is not None
    temporary = first.text(P.Policies, P.Policy, P.PolicyKey)
    second = await c.command("Provision", phase2(c.version, temporary))
    c.policy_key = int(second.text(P.Policies, P.Policy, P.PolicyKey))  # type: ignore[arg-type]
    return {tags.BY_TAG[n.tag].name: n.text if isinstance(n.text, str) or n.text is None else None
            for n in doc.children}


@pytest.mark.parametrize("version", ["12.1", "14.1"])
def test_a_users_change_makes_only_that_users_devices_reprovision(tmp_path: Path, version: str) -> None:
    app, now = new_app(tmp_path)
    alice, bob = client(app, version=version), client(app, B, "bob-secret", version=version)
    ok = 200 if version == "12.1" else "1"
    refresh = 449 if version == "12.1" else "143"

    async def scenario() -> None:
        for c in (alice, bob):
            await c.provision()
            assert refresh_status(await c.command("FolderSync", FOLDERSYNC), version) == ok
        await changed(app, now, "policy.user:" + A, {"DevicePasswordEnabled": 1, "MinDevicePasswordLength": 6,
                                                      "AllowCamera": 0})
        assert refresh_status(await alice.command("FolderSync", FOLDERSYNC), version) == refresh
        assert refresh_status(await bob.command("FolderSync", FOLDERSYNC), version) == ok
        doc = await reprovision(alice)
        assert (doc["DevicePasswordEnabled"], doc["MinDevicePasswordLength"], doc["AllowCamera"]) == ("1", "6", "0")
        assert refresh_status(await alice.command("FolderSync", FOLDERSYNC), version) == ok
        record = await app.store.get_device(A, alice.device_id)
        assert record is not None and record.policy_hash == (await app.policies.explain(A)).decision.hash
        # Clearing it asks for a refresh again, back to the default policy.
        await changed(app, now, "policy.user:" + A, None)
        assert refresh_status(await alice.command("FolderSync", FOLDERSYNC), version) == refresh
        assert (await reprovision(alice))["AllowCamera"] == "1"
        assert refresh_status(await bob.command("FolderSync", FOLDERSYNC), version) == ok

    run(scenario())


def test_group_policy_reaches_members_only_and_user_beats_group_beats_global(tmp_path: Path) -> None:
    app, now = new_app(tmp_path)
    alice, bob = client(app, version="14.1"), client(app, B, "bob-secret", version="14.1")

    async def scenario() -> None:
        for c in (alice, bob):
            await c.provision()
        await mobile.group_add(app.store, "board", [A], actor="test")
        await changed(app, now, "policy.group:board", {"DevicePasswordEnabled": 1, "MinDevicePasswordLength": 10,
                                                        "MaxDevicePasswordFailedAttempts": 6})
        assert (await alice.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "143"
        assert (await bob.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "1"
        await reprovision(alice)
        await changed(app, now, "policy.global", {"DevicePasswordEnabled": 1, "MinDevicePasswordLength": 4,
                                                   "AllowCamera": 0, "MaxDevicePasswordFailedAttempts": 10})
        await changed(app, now, "policy.user:" + A, {"MaxDevicePasswordFailedAttempts": 4})
        for c in (alice, bob):
            assert (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "143"
        doc = await reprovision(alice)
        assert (doc["MinDevicePasswordLength"], doc["MaxDevicePasswordFailedAttempts"], doc["AllowCamera"]) == (
            "10", "4", "0")  # group, user, global
        doc = await reprovision(bob)
        assert (doc["MinDevicePasswordLength"], doc["MaxDevicePasswordFailedAttempts"], doc["AllowCamera"]) == (
            "4", "10", "0")
        for c in (alice, bob):
            assert (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "1"
        # Leaving the group is a policy change for alice only.
        await mobile.group_remove(app.store, "board", [A], actor="test")
        now[0] += CACHE_SECONDS
        assert (await alice.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "143"
        assert (await bob.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "1"

    run(scenario())


@pytest.mark.parametrize("version", ["12.1", "14.1"])
def test_non_provisionable_devices_allowed_or_refused(tmp_path: Path, version: str) -> None:
    app, now = new_app(tmp_path)
    legacy = client(app, version=version, device_id="NoPolicyKey1")  # never sends X-MS-PolicyKey
    not_provisioned = 449 if version == "12.1" else "142"
    ok = 200 if version == "12.1" else "1"

    async def scenario() -> None:
        assert refresh_status(await legacy.command("FolderSync", FOLDERSYNC), version) == not_provisioned
        await changed(app, now, "policy.global", {"allow_non_provisionable": True, "DevicePasswordEnabled": 1})
        assert refresh_status(await legacy.command("FolderSync", FOLDERSYNC), version) == ok
        # One that provisioned must keep presenting its key.
        modern = client(app, version=version, device_id="WithPolicyKey")
        await modern.provision()
        modern.policy_key = None
        assert refresh_status(await modern.command("FolderSync", FOLDERSYNC), version) == not_provisioned
        # A user's own policy refuses them again, for that user only.
        await changed(app, now, "policy.user:" + A, {"allow_non_provisionable": False})
        assert refresh_status(await legacy.command("FolderSync", FOLDERSYNC), version) == not_provisioned
        bobs = client(app, B, "bob-secret", version=version, device_id="NoPolicyKey2")
        assert refresh_status(await bobs.command("FolderSync", FOLDERSYNC), version) == ok

    run(scenario())


@pytest.mark.parametrize(("client_status", "refused_with"), [(2, "139"), (3, "139"), (4, "145")])
def test_partial_enforcement_allowed_or_refused(tmp_path: Path, client_status: int, refused_with: str) -> None:
    app, now = new_app(tmp_path)
    c = client(app, version="14.1")
    flag = "allow_externally_managed" if client_status == 4 else "allow_partial"

    async def scenario() -> None:
        assert await _acknowledge(c, client_status) == "1"  # allowed: the default
        await mobile.group_add(app.store, "strict", ["@example.com"], actor="test")
        await changed(app, now, "policy.group:strict", {flag: False})
        c.device_id = "SecondDevice"
        assert await _acknowledge(c, client_status) == refused_with
        record = await app.store.get_device(A, "SecondDevice")
        assert record is not None and record.policy_key == 0
        await changed(app, now, "policy.user:" + A, {flag: True})  # the user's own policy allows it
        assert await _acknowledge(c, client_status) == "1"

    run(scenario())


async def _acknowledge(c: Client, status: int) -> str:
    """Phase 1, then phase 2 with ``status``: the Provision status, or the Policy status on success."""
    first = await c.command("Provision", phase1(c.version, '<DeviceInformation xmlns="Settings:"><Set><Model>M</Model>'
                                                           "</Set></DeviceInformation>"))
    temporary = first.text(P.Policies, P.Policy, P.PolicyKey)
    second = await c.command("Provision", phase2(c.version, temporary, status))
    if second.text(P.Status) != "1":
        return second.text(P.Status) or ""
    return second.text(P.Policies, P.Policy, P.Status) or ""


def test_the_2_5_wap_form_carries_the_combined_password_settings(tmp_path: Path) -> None:
    app, now = new_app(tmp_path)
    c = client(app, version="2.5")

    async def scenario() -> None:
        await mobile.group_add(app.store, "staff", [A], actor="test")
        await changed(app, now, "policy.global", {"DevicePasswordEnabled": 1, "MaxInactivityTimeDeviceLock": 900})
        await changed(app, now, "policy.group:staff", {"MaxDevicePasswordFailedAttempts": 8,
                                                        "AlphanumericDevicePasswordRequired": 1})
        await changed(app, now, "policy.user:" + A, {"MinDevicePasswordLength": 7})
        first = await c.command("Provision", phase1("2.5"))
        data = first.text(P.Policies, P.Policy, P.Data)
        assert data is not None
        parms = {p.get("name"): p.get("value") for p in ET.fromstring(data).iter("parm")}
        assert parms["4131"] == "0" and parms["MinimumPasswordLength"] == "7"
        assert parms["DeviceWipeThreshold"] == "8" and parms["PasswordComplexity"] == "0"
        assert parms["AEFrequencyType"] == "1" and parms["AEFrequencyValue"] == "15"
        second = await c.command("Provision", phase2("2.5", first.text(P.Policies, P.Policy, P.PolicyKey)))
        c.policy_key = int(second.text(P.Policies, P.Policy, P.PolicyKey))  # type: ignore[arg-type]
        assert (await c.command("FolderSync", FOLDERSYNC)).status == 200
        await changed(app, now, "policy.user:" + A, {"MinDevicePasswordLength": 9})
        assert (await c.command("FolderSync", FOLDERSYNC)).status == 449

    run(scenario())


def test_an_invalid_stored_policy_is_a_server_error_for_its_accounts(tmp_path: Path) -> None:
    app, now = new_app(tmp_path)

    async def scenario() -> None:
        await app.store.set_setting("policy.user:" + A, {"AllowCamera": "maybe"})
        now[0] += CACHE_SECONDS
        reply = await client(app, version="14.1").command("FolderSync", FOLDERSYNC)
        assert reply.status == 200 and reply.text(FH.Status) == "110"
        assert (await client(app, version="12.1").command("Provision", phase1("12.1"))).status == 500
        bob = client(app, B, "bob-secret", version="14.1")
        await bob.provision()
        assert (await bob.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "1"

    run(scenario())
