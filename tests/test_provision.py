"""Provision end to end (MS-ASPROV): both phases in every protocol version, also with the
base64 query; the core's provisioning gate before and after (449 / 142, 144, 143, 140);
remote wipe and its acknowledgment; every status path, with bad requests leaving the
device record as it was. Plus the policy model (eas.policy) on its own."""

from __future__ import annotations

import asyncio
import base64
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from eas import policy, tags
from eas.core import ActiveSync, PolicyDecision
from eas.protocol.http import HTTPRequest
from eas.protocol.versions import Version, has_tag
from eas.state.model import DeviceRecord
from eas.state.sqlite import SQLiteStateStore
from eas.store import ReferenceStore
from eas.tags import FolderHierarchy as FH
from eas.tags import Provision as P
from eas.tags import Settings as S
from eas.testing.client import Reply, elements_outside
from eas.testing.harness import USERS, client, make_app
from eas.wbxml import Node, Writer, decode, from_xml

ALICE, ALICE_PW = USERS[0]
VERSIONS = ("2.5", "12.0", "12.1", "14.0", "14.1", "16.0", "16.1")
FOLDERSYNC = '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>'
DEVICE_INFO = ('<DeviceInformation xmlns="Settings:"><Set><Model>Pixel 9</Model><IMEI>356938035643809</IMEI>'
               "<FriendlyName>Alice's phone</FriendlyName><OS>Android 15</OS><OSLanguage>de-DE</OSLanguage>"
               "<PhoneNumber>+4930123456</PhoneNumber><UserAgent>Android-Mail/2025</UserAgent>"
               "<EnableOutboundSMS>1</EnableOutboundSMS><MobileOperator>Telekom</MobileOperator></Set>"
               "</DeviceInformation>")


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from walk(child)


def assert_in_version(reply: Reply, version: str) -> None:
    """No element of the response is missing from the negotiated version."""
    if reply.node is None:
        return
    outside = elements_outside(reply.node, version)
    assert not outside, f"{outside} not in {version}"


def policy_type(version: str) -> str:
    return "MS-WAP-Provisioning-XML" if version == "2.5" else "MS-EAS-Provisioning-WBXML"


def phase1(version: str, *, device_info: bool | None = None, ptype: str | None = None) -> str:
    info = DEVICE_INFO if (device_info if device_info is not None else version in ("14.1", "16.0", "16.1")) else ""
    return (f'<Provision xmlns="Provision:">{info}<Policies><Policy><PolicyType>{ptype or policy_type(version)}'
            "</PolicyType></Policy></Policies></Provision>")


def phase2(version: str, key: object, status: int = 1, *, ptype: str | None = None) -> str:
    return (f'<Provision xmlns="Provision:"><Policies><Policy><PolicyType>{ptype or policy_type(version)}</PolicyType>'
            f"<PolicyKey>{key}</PolicyKey><Status>{status}</Status></Policy></Policies></Provision>")


def policy_node(reply: Reply) -> Node:
    assert reply.node is not None
    node = reply.node.find(P.Policies, P.Policy)
    assert node is not None, reply.xml
    return node


async def device(app: ActiveSync, device_id: str = "TestDevice0001") -> DeviceRecord:
    record = await app.store.get_device(ALICE, device_id)
    assert record is not None
    return record


def provisioning_fields(record: DeviceRecord) -> tuple[Any, ...]:
    return (record.policy_key, record.pending_policy_key, record.policy_status, record.policy_hash, record.wipe,
            record.wipe_acknowledged, record.model, record.imei, record.os)


def new_app(tmp_path: Path, hook: Callable[[str, DeviceRecord], Awaitable[PolicyDecision]] | None = None,
            ) -> ActiveSync:
    """A real app (reference store, SQLite state) for alice, with a policy hook if given."""
    if hook is None:
        app, _ = make_app(tmp_path, users=(USERS[0],))
        return app
    store = ReferenceStore(tmp_path / "mail.db")
    store.add_user(ALICE, ALICE_PW)
    return ActiveSync(store, SQLiteStateStore(tmp_path / "state.db"), authenticate=store.authenticate, policy=hook)


# -- both phases, every version ------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_both_phases_then_the_key_opens_other_commands(tmp_path: Path, version: str) -> None:
    app = new_app(tmp_path)
    c = client(app, version=version)

    async def scenario() -> None:
        before = await c.command("FolderSync", FOLDERSYNC)
        if Version(version) < Version("14.0"):
            assert before.status == 449 and not before.body
        else:
            assert before.status == 200 and before.text(FH.Status) == "142"

        first = await c.command("Provision", phase1(version))
        assert first.status == 200, first
        assert_in_version(first, version)
        assert first.text(P.Status) == "1"
        pol = policy_node(first)
        assert pol.findtext(P.PolicyType) == policy_type(version)
        assert pol.findtext(P.Status) == "1"
        temporary = int(pol.findtext(P.PolicyKey))  # type: ignore[arg-type]
        assert 0 < temporary <= 0xFFFFFFFF
        record = await device(app)
        assert record.pending_policy_key == temporary and record.policy_key == 0
        data = pol.find(P.Data)
        assert data is not None
        if version == "2.5":
            assert isinstance(data.text, str) and not data.children
            doc = ET.fromstring(data.text)
            assert doc.tag == "wap-provisioningdoc"
            parms = {p.get("name"): p.get("value") for p in doc.iter("parm")}
            assert parms == {"4131": "1", "4133": "1"}  # no password, desktop unlock allowed
        else:
            doc_node = data.find(P.EASProvisionDoc)
            assert doc_node is not None
            names = [tags.BY_TAG[n.tag].name for n in doc_node.children]
            assert names == [e.name for e in policy.ELEMENTS if has_tag(e.tag, Version(version))]
            assert ("AllowCamera" in names) == (version != "12.0")
            assert doc_node.findtext(P.DevicePasswordEnabled) == "0"
            assert doc_node.findtext(P.AttachmentsEnabled) == "1"
            assert doc_node.find(P.MaxAttachmentSize) is not None and doc_node.findtext(P.MaxAttachmentSize) == ""
        if version in ("14.1", "16.0", "16.1"):
            assert first.text(S.DeviceInformation, S.Status) == "1"
        else:
            assert first.node is not None and first.node.find(S.DeviceInformation) is None

        second = await c.command("Provision", phase2(version, temporary))
        assert second.status == 200
        assert_in_version(second, version)
        assert second.text(P.Status) == "1"
        pol = policy_node(second)
        assert pol.findtext(P.Status) == "1" and pol.find(P.Data) is None
        permanent = int(pol.findtext(P.PolicyKey))  # type: ignore[arg-type]
        assert permanent not in (0, temporary)
        record = await device(app)
        assert record.policy_key == permanent and record.pending_policy_key == 0
        assert record.policy_status == 1 and record.policy_hash == PolicyDecision().hash

        c.policy_key = permanent
        after = await c.command("FolderSync", FOLDERSYNC)
        assert after.status == 200 and after.text(FH.Status) == "1"
        c.policy_key = temporary  # the temporary key is spent
        spent = await c.command("FolderSync", FOLDERSYNC)
        if Version(version) < Version("14.0"):
            assert spent.status == 449
        else:
            assert spent.text(FH.Status) == "144"

    run(scenario())


def test_device_information_in_provision_is_stored(tmp_path: Path) -> None:
    app = new_app(tmp_path)

    async def scenario() -> None:
        reply = await client(app, version="16.1").command("Provision", phase1("16.1"))
        assert reply.text(S.DeviceInformation, S.Status) == "1"
        record = await device(app)
        assert (record.model, record.imei, record.friendly_name, record.os, record.os_language) == (
            "Pixel 9", "356938035643809", "Alice's phone", "Android 15", "de-DE")
        assert (record.phone_number, record.mobile_operator, record.enable_outbound_sms) == (
            "+4930123456", "Telekom", True)

    run(scenario())


def test_invalid_device_information_in_provision_still_provisions(tmp_path: Path) -> None:
    app = new_app(tmp_path)
    body = phase1("14.1", device_info=False).replace(
        "<Policies>", f'<DeviceInformation xmlns="Settings:"><Set><Model>{"x" * 1025}</Model></Set>'
                      "</DeviceInformation><Policies>")

    async def scenario() -> None:
        reply = await client(app, version="14.1").command("Provision", body)
        assert reply.text(S.DeviceInformation, S.Status) == "5"
        assert policy_node(reply).findtext(P.Status) == "1"
        assert (await device(app)).model == ""

    run(scenario())


def test_14_1_phase_one_without_device_information_gets_165(tmp_path: Path) -> None:
    app = new_app(tmp_path)

    async def scenario() -> None:
        for version in ("14.1", "16.1"):
            c = client(app, version=version, device_id="Dev" + version.replace(".", ""))
            reply = await c.command("Provision", phase1(version, device_info=False))
            assert reply.status == 200 and reply.text(P.Status) == "165"
            assert reply.node is not None and reply.node.find(P.Policies) is None
            record = await app.store.get_device(ALICE, c.device_id)
            assert record is None or record.pending_policy_key == 0
        # 14.0 has no such requirement
        c = client(app, version="14.0", device_id="Dev140")
        assert policy_node(await c.command("Provision", phase1("14.0"))).findtext(P.Status) == "1"
        # Once a device has told its DeviceInformation, it may re-provision without it.
        c = client(app, version="16.1", device_id="Dev161")
        assert policy_node(await c.command("Provision", phase1("16.1"))).findtext(P.Status) == "1"
        reply = await c.command("Provision", phase1("16.1", device_info=False))
        assert reply.text(P.Status) == "1" and policy_node(reply).findtext(P.Status) == "1"

    run(scenario())


# -- the base64 query ----------------------------------------------------------------------


def base64_request(version: str, command_code: int, body: bytes, key: bytes = b"", device_id: bytes = b"B64Device",
                   device_type: bytes = b"SmartPhone") -> HTTPRequest:
    """MS-ASHTTP 2.2.1.1.1.1: version byte, command code, locale (LE), device id, policy
    key (0 or 4 bytes), device type; then the User parameter (tag 8)."""
    user = ALICE.encode()
    raw = (bytes([int(float(version) * 10), command_code]) + (0x0409).to_bytes(2, "little")
           + bytes([len(device_id)]) + device_id + bytes([len(key)]) + key
           + bytes([len(device_type)]) + device_type + bytes([8, len(user)]) + user)
    auth = base64.b64encode(f"{ALICE}:{ALICE_PW}".encode()).decode()
    headers = [("authorization", f"Basic {auth}"), ("content-type", "application/vnd.ms-sync.wbxml")]
    return HTTPRequest("POST", "/Microsoft-Server-ActiveSync", base64.b64encode(raw).decode(), headers, body)


@pytest.mark.parametrize("version", ["12.1", "14.0", "14.1", "16.1"])
def test_both_phases_with_the_base64_query(tmp_path: Path, version: str) -> None:
    app = new_app(tmp_path)
    c = client(app, version=version)

    async def scenario() -> None:
        first = await c.send(base64_request(version, 20, from_xml(phase1(version))))
        assert first.status == 200 and first.text(P.Status) == "1"
        assert_in_version(first, version)
        temporary = int(policy_node(first).findtext(P.PolicyKey))  # type: ignore[arg-type]
        # the client may already carry the temporary key in the key field
        second = await c.send(base64_request(version, 20, from_xml(phase2(version, temporary)),
                                             key=temporary.to_bytes(4, "little")))
        permanent = int(policy_node(second).findtext(P.PolicyKey))  # type: ignore[arg-type]
        assert (await device(app, "B64Device")).policy_key == permanent

        ok = await c.send(base64_request(version, 9, from_xml(FOLDERSYNC), key=permanent.to_bytes(4, "little")))
        assert ok.status == 200 and ok.text(FH.Status) == "1"
        # the key field is little-endian: the same number big-endian is another key
        swapped = permanent.to_bytes(4, "big")
        if swapped != permanent.to_bytes(4, "little"):
            wrong = await c.send(base64_request(version, 9, from_xml(FOLDERSYNC), key=swapped))
            if version == "12.1":
                assert wrong.status == 449
            else:
                assert wrong.text(FH.Status) == "144"
        none = await c.send(base64_request(version, 9, from_xml(FOLDERSYNC)))
        assert none.status == 449 if version == "12.1" else none.text(FH.Status) == "142"

    run(scenario())


# -- the core's provisioning gate ----------------------------------------------------------


@pytest.mark.parametrize("version", ["12.1", "14.1"])
def test_wrong_key_is_refused(tmp_path: Path, version: str) -> None:
    app = new_app(tmp_path)
    c = client(app, version=version)

    async def scenario() -> None:
        key = await c.provision()
        c.policy_key = key ^ 0x5A5A
        reply = await c.command("FolderSync", FOLDERSYNC)
        if version == "12.1":
            assert reply.status == 449
        else:
            assert reply.status == 200 and reply.text(FH.Status) == "144"
        assert (await device(app)).policy_key == key

    run(scenario())


@pytest.mark.parametrize("version", ["12.1", "14.1"])
def test_policy_change_asks_for_a_refresh_and_reprovisioning_works(tmp_path: Path, version: str) -> None:
    current: dict[str, Any] = {"settings": {}}

    async def hook(user: str, record: DeviceRecord) -> PolicyDecision:
        return PolicyDecision(settings=dict(current["settings"]))

    app = new_app(tmp_path, hook)
    c = client(app, version=version)

    async def scenario() -> None:
        await c.provision()
        assert (await c.command("FolderSync", FOLDERSYNC)).status == 200
        current["settings"] = {"DevicePasswordEnabled": 1, "MinDevicePasswordLength": 6,
                               "MaxDevicePasswordFailedAttempts": 8}
        refresh = await c.command("FolderSync", FOLDERSYNC)
        if version == "12.1":
            assert refresh.status == 449
        else:
            assert refresh.text(FH.Status) == "143"
        c.policy_key = None
        first = await c.command("Provision", phase1(version))
        doc = policy_node(first).find(P.Data, P.EASProvisionDoc)
        assert doc is not None
        assert doc.findtext(P.DevicePasswordEnabled) == "1" and doc.findtext(P.MinDevicePasswordLength) == "6"
        assert doc.findtext(P.MaxDevicePasswordFailedAttempts) == "8"
        temporary = policy_node(first).findtext(P.PolicyKey)
        second = await c.command("Provision", phase2(version, temporary))
        c.policy_key = int(policy_node(second).findtext(P.PolicyKey))  # type: ignore[arg-type]
        after = await c.command("FolderSync", FOLDERSYNC)
        assert after.status == 200 and after.text(FH.Status) == "1"
        assert (await device(app)).policy_hash == PolicyDecision(settings=current["settings"]).hash

    run(scenario())


def test_policy_changed_between_the_phases_is_refreshed_after(tmp_path: Path) -> None:
    current: dict[str, Any] = {"settings": {}}

    async def hook(user: str, record: DeviceRecord) -> PolicyDecision:
        return PolicyDecision(settings=dict(current["settings"]))

    app = new_app(tmp_path, hook)
    c = client(app, version="14.1")

    async def scenario() -> None:
        first = await c.command("Provision", phase1("14.1"))
        current["settings"] = {"AllowCamera": 0}  # the device acknowledges the old policy
        second = await c.command("Provision", phase2("14.1", policy_node(first).findtext(P.PolicyKey)))
        c.policy_key = int(policy_node(second).findtext(P.PolicyKey))  # type: ignore[arg-type]
        assert (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "143"

    run(scenario())


def test_no_policy_required(tmp_path: Path) -> None:
    async def hook(user: str, record: DeviceRecord) -> PolicyDecision:
        return PolicyDecision(required=False)

    app = new_app(tmp_path, hook)
    c = client(app, version="14.1")

    async def scenario() -> None:
        assert (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "1"
        reply = await c.command("Provision", phase1("14.1"))
        pol = policy_node(reply)
        assert reply.text(P.Status) == "1" and pol.findtext(P.Status) == "2"
        assert pol.find(P.PolicyKey) is None and pol.find(P.Data) is None

    run(scenario())


def test_invalid_policy_is_a_server_error(tmp_path: Path) -> None:
    async def hook(user: str, record: DeviceRecord) -> PolicyDecision:
        return PolicyDecision(settings={"AllowTeleportation": 1})

    app = new_app(tmp_path, hook)

    async def scenario() -> None:
        reply = await client(app, version="14.0").command("Provision", phase1("14.0"))
        assert reply.text(P.Status) == "3" and reply.node is not None and reply.node.find(P.Policies) is None
        assert (await device(app)).pending_policy_key == 0

    run(scenario())


def test_password_policy_reaches_a_2_5_device_as_wap_xml(tmp_path: Path) -> None:
    async def hook(user: str, record: DeviceRecord) -> PolicyDecision:
        return PolicyDecision(settings={"DevicePasswordEnabled": True, "MinDevicePasswordLength": 6,
                                        "MaxInactivityTimeDeviceLock": 300, "MaxDevicePasswordFailedAttempts": 10,
                                        "AlphanumericDevicePasswordRequired": True})

    app = new_app(tmp_path, hook)

    async def scenario() -> None:
        reply = await client(app, version="2.5").command("Provision", phase1("2.5"))
        doc = ET.fromstring(policy_node(reply).findtext(P.Data))  # type: ignore[arg-type]
        parms = {p.get("name"): p.get("value") for p in doc.iter("parm")}
        assert parms["4131"] == "0" and parms["MinimumPasswordLength"] == "6"
        assert parms["AEFrequencyType"] == "1" and parms["AEFrequencyValue"] == "5"
        assert parms["DeviceWipeThreshold"] == "10" and parms["PasswordComplexity"] == "0"

    run(scenario())


# -- phase 2 status paths ------------------------------------------------------------------


def test_acknowledging_another_key_gets_policy_status_5(tmp_path: Path) -> None:
    app = new_app(tmp_path)
    c = client(app, version="14.0")

    async def scenario() -> None:
        # no phase 1 at all
        reply = await c.command("Provision", phase2("14.0", 12345))
        assert reply.text(P.Status) == "1" and policy_node(reply).findtext(P.Status) == "5"
        assert policy_node(reply).find(P.PolicyKey) is None
        first = await c.command("Provision", phase1("14.0"))
        temporary = int(policy_node(first).findtext(P.PolicyKey))  # type: ignore[arg-type]
        before = provisioning_fields(await device(app))
        for wrong in (temporary + 1, "not-a-number", 2**40, ""):
            reply = await c.command("Provision", phase2("14.0", wrong))
            assert policy_node(reply).findtext(P.Status) == "5", wrong
        assert provisioning_fields(await device(app)) == before
        reply = await c.command("Provision", phase2("14.0", temporary))
        assert policy_node(reply).findtext(P.Status) == "1"
        # the same acknowledgment again: the temporary key is spent
        again = await c.command("Provision", phase2("14.0", temporary))
        assert policy_node(again).findtext(P.Status) == "5"

    run(scenario())


@pytest.mark.parametrize("version", ["2.5", "12.1"])
def test_acknowledgment_with_the_key_in_the_header(tmp_path: Path, version: str) -> None:
    """Older clients may send the temporary key as X-MS-PolicyKey and leave it out of
    the body."""
    app = new_app(tmp_path)
    c = client(app, version=version)

    async def scenario() -> None:
        first = await c.command("Provision", phase1(version))
        c.policy_key = int(policy_node(first).findtext(P.PolicyKey))  # type: ignore[arg-type]
        body = (f'<Provision xmlns="Provision:"><Policies><Policy><PolicyType>{policy_type(version)}</PolicyType>'
                "<Status>1</Status></Policy></Policies></Provision>")
        second = await c.command("Provision", body)
        assert policy_node(second).findtext(P.Status) == "1"
        c.policy_key = int(policy_node(second).findtext(P.PolicyKey))  # type: ignore[arg-type]
        assert (await device(app)).policy_key == c.policy_key
        assert (await c.command("FolderSync", FOLDERSYNC)).status == 200

    run(scenario())


@pytest.mark.parametrize("client_status", [2, 3, 4])
def test_partial_refused_and_external_are_accepted_and_recorded(tmp_path: Path, client_status: int) -> None:
    app = new_app(tmp_path)
    c = client(app, version="14.1")

    async def scenario() -> None:
        first = await c.command("Provision", phase1("14.1"))
        second = await c.command("Provision", phase2("14.1", policy_node(first).findtext(P.PolicyKey),
                                                     client_status))
        assert policy_node(second).findtext(P.Status) == "1"
        record = await device(app)
        assert record.policy_status == client_status
        assert record.policy_key == int(policy_node(second).findtext(P.PolicyKey))  # type: ignore[arg-type]

    run(scenario())


@dataclass(slots=True)
class StrictDecision(PolicyDecision):
    allow_partial: bool = False
    allow_externally_managed: bool = False


@pytest.mark.parametrize(("client_status", "expected"), [(2, "139"), (3, "139"), (4, "145")])
def test_strict_policy_refuses_partial_and_external(tmp_path: Path, client_status: int, expected: str) -> None:
    async def hook(user: str, record: DeviceRecord) -> PolicyDecision:
        return StrictDecision()

    app = new_app(tmp_path, hook)
    c = client(app, version="14.1")

    async def scenario() -> None:
        first = await c.command("Provision", phase1("14.1"))
        temporary = int(policy_node(first).findtext(P.PolicyKey))  # type: ignore[arg-type]
        second = await c.command("Provision", phase2("14.1", temporary, client_status))
        assert second.text(P.Status) == expected
        record = await device(app)
        assert record.policy_key == 0 and record.pending_policy_key == temporary
        fully = await c.command("Provision", phase2("14.1", temporary, 1))
        assert policy_node(fully).findtext(P.Status) == "1"

    run(scenario())


@pytest.mark.parametrize(("version", "ptype"), [("14.1", "MS-WAP-Provisioning-XML"),
                                                ("2.5", "MS-EAS-Provisioning-WBXML"),
                                                ("12.0", "MS-EAS-Provisioning-XML")])
def test_unknown_policy_type_gets_policy_status_3(tmp_path: Path, version: str, ptype: str) -> None:
    app = new_app(tmp_path)
    c = client(app, version=version)

    async def scenario() -> None:
        for body in (phase1(version, ptype=ptype), phase2(version, 1, ptype=ptype)):
            reply = await c.command("Provision", body)
            assert_in_version(reply, version)
            pol = policy_node(reply)
            assert reply.text(P.Status) == "1" and pol.findtext(P.Status) == "3"
            assert pol.findtext(P.PolicyType) == ptype and pol.find(P.PolicyKey) is None
        assert (await device(app)).pending_policy_key == 0

    run(scenario())


WBXML_TYPE = "<PolicyType>MS-EAS-Provisioning-WBXML</PolicyType>"


def prov(inner: str) -> str:
    return f'<Provision xmlns="Provision:">{inner}</Provision>'


MALFORMED = [
    '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>',
    prov(f"<Policies><Policy>{WBXML_TYPE}</Policy><Policy>{WBXML_TYPE}</Policy></Policies>"),
    prov("<Policies/>"),
    prov("<Policies><Policy><PolicyKey>1</PolicyKey></Policy></Policies>"),
    prov(f"<Policies><Policy>{WBXML_TYPE}<PolicyKey>1</PolicyKey><Status>9</Status></Policy></Policies>"),
    prov(f"<Policies><Policy>{WBXML_TYPE}<Data>x</Data></Policy></Policies>"),
    prov("<RemoteWipe/>"),
    prov("<RemoteWipe><Status>3</Status></RemoteWipe>"),
    prov("<Status>1</Status>"),
    prov(""),
    prov(f'<DeviceInformation xmlns="Settings:"><Model>x</Model></DeviceInformation>'
         f"<Policies><Policy>{WBXML_TYPE}</Policy></Policies>"),
    prov(f'<DeviceInformation xmlns="Settings:"><Set><Oof/></Set></DeviceInformation>'
         f"<Policies><Policy>{WBXML_TYPE}</Policy></Policies>"),
    prov(f"<Policies><Policy><PolicyType>{'x' * 65}</PolicyType></Policy></Policies>"),
]


@pytest.mark.parametrize("version", ["12.1", "16.1"])
def test_malformed_requests_get_status_2_and_change_nothing(tmp_path: Path, version: str) -> None:
    app = new_app(tmp_path)
    c = client(app, version=version)

    async def scenario() -> None:
        key = await c.provision()
        before = provisioning_fields(await device(app))
        for body in MALFORMED:
            reply = await c.command("Provision", body)
            assert reply.status == 200 and reply.text(P.Status) == "2", body
            assert reply.node is not None and [n.tag for n in reply.node.children] == [P.Status]
        opaque = Writer()
        with opaque.tag(P.Provision), opaque.tag(P.Policies), opaque.tag(P.Policy):
            opaque.opaque(P.PolicyType, b"MS-EAS-Provisioning-WBXML")
        assert (await c.raw("Provision", opaque.getvalue())).text(P.Status) == "2"
        garbage = await c.raw("Provision", b"\x03\x01\x6a\x00\x45\x46\x47")
        if version == "12.1":
            assert garbage.status == 400
        else:
            assert garbage.status == 200 and garbage.text(P.Status) == "102"
        assert provisioning_fields(await device(app)) == before
        c.policy_key = key
        assert (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "1"

    run(scenario())


# -- remote wipe ---------------------------------------------------------------------------


async def request_wipe(app: ActiveSync, kind: str = "pending", device_id: str = "TestDevice0001") -> None:
    record = await device(app, device_id)
    record.wipe = kind
    await app.store.commit(record, {})


@pytest.mark.parametrize("version", ["2.5", "12.1", "14.1", "16.1"])
def test_remote_wipe_is_delivered_and_its_acknowledgment_recorded(tmp_path: Path, version: str) -> None:
    app = new_app(tmp_path)
    c = client(app, version=version)

    async def scenario() -> None:
        await c.provision()
        await request_wipe(app)
        blocked = await c.command("FolderSync", FOLDERSYNC)
        if Version(version) < Version("14.0"):
            assert blocked.status == 449
        else:
            assert blocked.text(FH.Status) == "140"
        c.policy_key = None
        for body in ('<Provision xmlns="Provision:"/>', phase1(version)):  # empty, or a normal phase 1
            directive = await c.command("Provision", body)
            assert_in_version(directive, version)
            assert directive.node is not None
            assert [n.tag for n in directive.node.children] == [P.Status, P.RemoteWipe]
            assert directive.text(P.Status) == "1"
        assert (await device(app)).wipe == "pending"
        ack = await c.command("Provision", '<Provision xmlns="Provision:"><RemoteWipe><Status>1</Status>'
                                           "</RemoteWipe></Provision>")
        assert ack.text(P.Status) == "1" and ack.node is not None and ack.node.find(P.RemoteWipe) is None
        record = await device(app)
        assert record.wipe == "wiped" and record.wipe_acknowledged > 0
        assert record.policy_key == 0 and record.pending_policy_key == 0
        again = await c.command("Provision", '<Provision xmlns="Provision:"><RemoteWipe><Status>1</Status>'
                                             "</RemoteWipe></Provision>")
        assert again.text(P.Status) == "1"
        assert (await device(app)).wipe_acknowledged == record.wipe_acknowledged

    run(scenario())


def test_account_only_wipe_in_16_1(tmp_path: Path) -> None:
    app = new_app(tmp_path)
    c = client(app, version="16.1")

    async def scenario() -> None:
        await c.provision()
        await request_wipe(app, "account-pending")
        assert (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "140"
        directive = await c.command("Provision", '<Provision xmlns="Provision:"/>')
        assert directive.node is not None
        assert [n.tag for n in directive.node.children] == [P.Status, P.AccountOnlyRemoteWipe]
        ack = await c.command("Provision", '<Provision xmlns="Provision:"><AccountOnlyRemoteWipe><Status>1</Status>'
                                           "</AccountOnlyRemoteWipe></Provision>")
        assert ack.text(P.Status) == "1"
        record = await device(app)
        assert record.wipe == "account-wiped" and record.wipe_acknowledged > 0 and record.policy_key == 0

    run(scenario())


def test_account_only_wipe_is_never_turned_into_a_full_wipe(tmp_path: Path) -> None:
    app = new_app(tmp_path)

    async def scenario() -> None:
        for version in ("12.1", "14.1", "16.0"):
            c = client(app, version=version, device_id="Dev" + version.replace(".", ""))
            await c.provision()
            await request_wipe(app, "account-pending", c.device_id)
            reply = await c.command("Provision", phase1(version))
            assert reply.node is None or all(n.tag != P.RemoteWipe for n in walk(reply.node))
            if version == "12.1":
                assert reply.status == 403
            else:
                assert reply.text(P.Status) == "130"
            assert (await device(app, c.device_id)).wipe == "account-pending"

    run(scenario())


def test_failed_wipe_is_recorded_and_the_directive_repeated(tmp_path: Path) -> None:
    app = new_app(tmp_path)
    c = client(app, version="14.1")

    async def scenario() -> None:
        await c.provision()
        await request_wipe(app)
        await c.command("Provision", '<Provision xmlns="Provision:"/>')
        ack = await c.command("Provision", '<Provision xmlns="Provision:"><RemoteWipe><Status>2</Status>'
                                           "</RemoteWipe></Provision>")
        assert ack.text(P.Status) == "2" and ack.node is not None and ack.node.find(P.RemoteWipe) is not None
        record = await device(app)
        assert record.wipe == "failed" and record.wipe_acknowledged > 0 and record.policy_key == 0
        # a later success is still taken
        ok = await c.command("Provision", '<Provision xmlns="Provision:"><RemoteWipe><Status>1</Status>'
                                          "</RemoteWipe></Provision>")
        assert ok.text(P.Status) == "1" and (await device(app)).wipe == "wiped"

    run(scenario())


def test_unrequested_wipe_acknowledgment_changes_nothing(tmp_path: Path) -> None:
    app = new_app(tmp_path)
    c = client(app, version="16.1")

    async def scenario() -> None:
        key = await c.provision()
        before = provisioning_fields(await device(app))
        for element in ("RemoteWipe", "AccountOnlyRemoteWipe"):
            reply = await c.command("Provision", f'<Provision xmlns="Provision:"><{element}><Status>1</Status>'
                                                 f"</{element}></Provision>")
            assert reply.text(P.Status) == "2"
            assert reply.node is not None and [n.tag for n in reply.node.children] == [P.Status]
        assert provisioning_fields(await device(app)) == before
        c.policy_key = key
        assert (await c.command("FolderSync", FOLDERSYNC)).text(FH.Status) == "1"

    run(scenario())


# -- the policy model ----------------------------------------------------------------------


def test_policy_model_matches_the_code_page() -> None:
    assert {e.tag for e in policy.ELEMENTS} == {
        t.tag for t in tags.PAGES[14].tags if t.token >= 0x0E and t.name not in ("ApplicationName", "Hash",
                                                                                 "AccountOnlyRemoteWipe")}
    assert set(policy.DEFAULT_POLICY) == set(policy.BY_NAME)
    assert policy.effective({}) == policy.DEFAULT_POLICY


@pytest.mark.parametrize("settings", [
    {"NoSuchElement": 1}, {"DevicePasswordEnabled": 2}, {"DevicePasswordEnabled": "1"},
    {"MinDevicePasswordLength": 17}, {"MinDevicePasswordLength": 0}, {"MaxDevicePasswordFailedAttempts": 3},
    {"MaxCalendarAgeFilter": 2}, {"AllowBluetooth": 3}, {"MaxEmailBodyTruncationSize": -2},
    {"MaxAttachmentSize": 2**32}, {"MaxAttachmentSize": True}, {"ApprovedApplicationList": "abc"},
    {"ApprovedApplicationList": [""]}, {"UnapprovedInROMApplicationList": [1]}, {"DevicePasswordHistory": None},
])
def test_policy_values_are_checked(settings: dict[str, Any]) -> None:
    if settings == {"DevicePasswordHistory": None}:  # None is allowed: the element is left out
        w = Writer()
        policy.write_provision_doc(w, settings, "14.1")
        assert decode(w.getvalue()).find(P.DevicePasswordHistory) is None
        return
    with pytest.raises(policy.PolicyError):
        policy.effective(settings)


def test_provision_doc_lists_and_empty_values() -> None:
    w = Writer()
    policy.write_provision_doc(w, {"ApprovedApplicationList": ["a" * 40, "b" * 40], "MaxAttachmentSize": 1000,
                                   "AllowCamera": False, "MinDevicePasswordLength": None}, "16.1")
    doc = decode(w.getvalue())
    approved = doc.find(P.ApprovedApplicationList)
    assert approved is not None and [n.text for n in approved.children] == ["a" * 40, "b" * 40]
    assert doc.findtext(P.MaxAttachmentSize) == "1000" and doc.findtext(P.AllowCamera) == "0"
    empty = doc.find(P.MinDevicePasswordLength)
    assert empty is not None and empty.text is None and not empty.children
    unapproved = doc.find(P.UnapprovedInROMApplicationList)
    assert unapproved is not None and not unapproved.children
    w = Writer()
    policy.write_provision_doc(w, {}, "12.0")
    assert decode(w.getvalue()).find(P.ApprovedApplicationList) is None
