"""Settings end to end (MS-ASCMD 2.2.1.18) over the reference store and SQLite state:
Oof set then get (text and HTML), DeviceInformation on the device record, UserInformation
per version, the recovery password under the policy, RightsManagementInformation; bad
operations get their own status and change nothing, malformed bodies get Status 2."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from eas.core import ActiveSync, PolicyDecision
from eas.protocol.versions import Version
from eas.state.model import DeviceRecord
from eas.store import ReferenceStore
from eas.tags import RightsManagement as RM
from eas.tags import Settings as S
from eas.testing.client import Client, Reply, elements_outside
from eas.testing.harness import USERS, client, make_app
from eas.wbxml import Writer

ALICE, ALICE_PW = USERS[0]
DEVICE = "TestDevice0001"


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def settings(inner: str) -> str:
    return f'<Settings xmlns="Settings:">{inner}</Settings>'


def checked(reply: Reply, version: str) -> Reply:
    """The reply, once every element in it is known to exist in ``version``."""
    assert reply.status == 200, reply
    assert reply.node is not None
    outside = elements_outside(reply.node, version)
    assert not outside, f"{outside} not in {version}"
    return reply


def new_app(tmp_path: Path, policy: dict[str, Any] | None = None) -> tuple[ActiveSync, ReferenceStore]:
    """A real app for alice (the core remembers her login, so scrypt runs once)."""
    app, store = make_app(tmp_path, users=(USERS[0],))
    if policy is not None:
        async def hook(user: str, device: DeviceRecord) -> PolicyDecision:
            return PolicyDecision(settings=dict(policy))

        app.policy = hook
    return app, store


async def send(c: Client, inner: str) -> Reply:
    return await c.command("Settings", settings(inner))


def op_status(reply: Reply, tag: int) -> str | None:
    return reply.text(tag, S.Status)


# -- Oof -----------------------------------------------------------------------------------

OOF_SET = ("<Oof><Set><OofState>2</OofState><StartTime>2030-01-01T08:00:00.000Z</StartTime>"
           "<EndTime>2030-01-15T17:30:00.000Z</EndTime>"
           "<OofMessage><AppliesToInternal/><Enabled>1</Enabled><ReplyMessage>Away until the 15th.\n"
           "Ask Bob &lt;bob@example.com&gt;.</ReplyMessage><BodyType>Text</BodyType></OofMessage>"
           "<OofMessage><AppliesToExternalKnown/><Enabled>1</Enabled><ReplyMessage>Out of office.</ReplyMessage>"
           "<BodyType>Text</BodyType></OofMessage>"
           "<OofMessage><AppliesToExternalUnknown/><Enabled>0</Enabled></OofMessage></Set></Oof>")


def oof_get(body_type: str = "Text") -> str:
    return f"<Oof><Get><BodyType>{body_type}</BodyType></Get></Oof>"


def messages(reply: Reply) -> dict[int, dict[int, str | None]]:
    """Per AppliesTo tag: the OofMessage's leaves by tag."""
    assert reply.node is not None
    get = reply.node.find(S.Oof, S.Get)
    assert get is not None, reply.xml
    out: dict[int, dict[int, str | None]] = {}
    for message in get.findall(S.OofMessage):
        leaves = {n.tag: n.text for n in message.children}
        audience = next(t for t in leaves if t in (S.AppliesToInternal, S.AppliesToExternalKnown,
                                                   S.AppliesToExternalUnknown))
        out[audience] = leaves  # type: ignore[assignment]
    return out


@pytest.mark.parametrize("version", ["12.0", "14.1", "16.1"])
def test_oof_set_then_get(tmp_path: Path, version: str) -> None:
    app, store = new_app(tmp_path)
    c = client(app, version=version)

    async def scenario() -> None:
        reply = checked(await send(c, OOF_SET), version)
        assert reply.text(S.Status) == "1" and op_status(reply, S.Oof) == "1"
        assert reply.node is not None and reply.node.find(S.Oof, S.Get) is None
        oof = await store.get_oof(ALICE)
        assert oof.state == 2 and oof.start == datetime(2030, 1, 1, 8, tzinfo=UTC)
        assert oof.end == datetime(2030, 1, 15, 17, 30, tzinfo=UTC)
        assert oof.internal_message == "Away until the 15th.\nAsk Bob <bob@example.com>."
        assert (oof.internal_enabled, oof.external_known_enabled, oof.external_unknown_enabled) == (True, True, False)

        text = checked(await send(c, oof_get()), version)
        assert op_status(text, S.Oof) == "1"
        assert text.text(S.Oof, S.Get, S.OofState) == "2"
        assert text.text(S.Oof, S.Get, S.StartTime) == "2030-01-01T08:00:00.000Z"
        assert text.text(S.Oof, S.Get, S.EndTime) == "2030-01-15T17:30:00.000Z"
        got = messages(text)
        assert got[S.AppliesToInternal][S.ReplyMessage] == "Away until the 15th.\nAsk Bob <bob@example.com>."
        assert got[S.AppliesToInternal][S.Enabled] == "1" and got[S.AppliesToInternal][S.BodyType] == "Text"
        assert got[S.AppliesToExternalKnown][S.ReplyMessage] == "Out of office."
        assert got[S.AppliesToExternalUnknown][S.Enabled] == "0"

        rich = checked(await send(c, oof_get("HTML")), version)
        internal = messages(rich)[S.AppliesToInternal]
        assert internal[S.BodyType] == "HTML"
        assert "Ask Bob &lt;bob@example.com&gt;." in str(internal[S.ReplyMessage])
        assert "<br>" in str(internal[S.ReplyMessage])

    run(scenario())


def test_oof_set_keeps_what_it_does_not_name(tmp_path: Path) -> None:
    app, store = new_app(tmp_path)
    c = client(app, version="14.1")

    async def scenario() -> None:
        await send(c, OOF_SET)
        reply = await send(c, "<Oof><Set><OofState>0</OofState></Set></Oof>")
        assert op_status(reply, S.Oof) == "1"
        oof = await store.get_oof(ALICE)
        assert oof.state == 0 and oof.external_known_message == "Out of office." and oof.internal_enabled
        reply = await send(c, "<Oof><Set><OofMessage><AppliesToExternalKnown/><Enabled>0</Enabled></OofMessage>"
                              "</Set></Oof>")
        oof = await store.get_oof(ALICE)
        assert op_status(reply, S.Oof) == "1" and not oof.external_known_enabled
        assert oof.external_known_message == "Out of office."
        # scheduled again without times: the stored ones still hold
        assert op_status(await send(c, "<Oof><Set><OofState>2</OofState></Set></Oof>"), S.Oof) == "1"
        assert (await store.get_oof(ALICE)).state == 2

    run(scenario())


def test_oof_html_message_keeps_its_markup(tmp_path: Path) -> None:
    app, store = new_app(tmp_path)
    c = client(app, version="16.1")
    html = "<html><body><p>Away</p><p>Back <b>Monday</b> &amp; later</p></body></html>"

    async def scenario() -> None:
        await send(c, OOF_SET)
        body = (f"<Oof><Set><OofMessage><AppliesToInternal/><Enabled>1</Enabled><ReplyMessage>"
                f"{html.replace('&', '&amp;').replace('<', '&lt;')}</ReplyMessage><BodyType>html</BodyType>"
                "</OofMessage></Set></Oof>")
        assert op_status(await send(c, body), S.Oof) == "1"
        oof = await store.get_oof(ALICE)
        assert oof.body_type == "HTML" and oof.internal_message == html
        assert "Out of office." in oof.external_known_message  # converted to HTML, not lost
        got = messages(await send(c, oof_get("HTML")))
        assert got[S.AppliesToInternal][S.ReplyMessage] == html
        got = messages(await send(c, oof_get("Text")))
        assert got[S.AppliesToInternal][S.ReplyMessage] == "Away\nBack Monday & later"
        assert got[S.AppliesToExternalKnown][S.ReplyMessage] == "Out of office."

    run(scenario())


BAD_OOF = [
    ("<Oof><Set><OofState>7</OofState></Set></Oof>", "5"),
    ("<Oof><Set><OofState>on</OofState></Set></Oof>", "5"),
    (("<Oof><Set><OofState>2</OofState><StartTime>2030-02-01T00:00:00.000Z</StartTime>"
     "<EndTime>2030-01-01T00:00:00.000Z</EndTime></Set></Oof>"), "6"),
    (("<Oof><Set><OofState>2</OofState><StartTime>yesterday</StartTime>"
     "<EndTime>2030-01-01T00:00:00.000Z</EndTime></Set></Oof>"), "5"),
    ("<Oof><Set><StartTime>2030-13-45T00:00:00.000Z</StartTime></Set></Oof>", "5"),
    ("<Oof><Set><OofMessage><Enabled>1</Enabled></OofMessage></Set></Oof>", "2"),
    ("<Oof><Set><OofMessage><AppliesToInternal/><AppliesToExternalKnown/></OofMessage></Set></Oof>", "2"),
    ("<Oof><Set><OofMessage><AppliesToInternal/><ReplyMessage>x</ReplyMessage></OofMessage></Set></Oof>", "2"),
    (("<Oof><Set><OofMessage><AppliesToInternal/><ReplyMessage>x</ReplyMessage><BodyType>RTF</BodyType>"
     "</OofMessage></Set></Oof>"), "5"),
    ("<Oof><Set><OofMessage><AppliesToInternal/><Enabled>yes</Enabled></OofMessage></Set></Oof>", "5"),
    (("<Oof><Set><OofMessage><AppliesToInternal/><Enabled>0</Enabled></OofMessage>"
     "<OofMessage><AppliesToInternal/><Enabled>1</Enabled></OofMessage></Set></Oof>"), "6"),
    ("<Oof><Set><OofState>0</OofState><OofState>1</OofState></Set></Oof>", "2"),
    ("<Oof><Set><Model>x</Model></Set></Oof>", "2"),
    ("<Oof><Get/></Oof>", "2"),
    ("<Oof><Get><BodyType>RTF</BodyType></Get></Oof>", "5"),
    ("<Oof><Get><BodyType>Text</BodyType></Get><Set><OofState>0</OofState></Set></Oof>", "2"),
    ("<Oof/>", "2"),
    ("<Oof><Set><OofMessage><AppliesToInternal/><ReplyMessage>" + "x" * (128 * 1024 + 1)
     + "</ReplyMessage><BodyType>Text</BodyType></OofMessage></Set></Oof>", "5"),
]


def test_bad_oof_requests_get_their_status_and_change_nothing(tmp_path: Path) -> None:
    app, store = new_app(tmp_path)
    c = client(app, version="14.1")

    async def scenario() -> None:
        await send(c, OOF_SET)
        before = await store.get_oof(ALICE)
        for body, status in BAD_OOF:
            reply = checked(await send(c, body), "14.1")
            assert reply.text(S.Status) == "1", body
            assert op_status(reply, S.Oof) == status, body[:120]
            assert reply.node is not None and reply.node.find(S.Oof, S.Get) is None
            assert await store.get_oof(ALICE) == before, body[:120]

    run(scenario())


def test_scheduled_oof_needs_times(tmp_path: Path) -> None:
    app, store = new_app(tmp_path)
    c = client(app, version="14.1")

    async def scenario() -> None:
        reply = await send(c, "<Oof><Set><OofState>2</OofState></Set></Oof>")
        assert op_status(reply, S.Oof) == "5"
        assert (await store.get_oof(ALICE)).state == 0

    run(scenario())


# -- DeviceInformation ---------------------------------------------------------------------

DEVICE_SET = ("<DeviceInformation><Set><Model>iPhone16,2</Model><IMEI>353263000000000</IMEI>"
              "<FriendlyName>Alice’s iPhone</FriendlyName><OS>iOS 18.1</OS><OSLanguage>en-GB</OSLanguage>"
              "<PhoneNumber>+447700900123</PhoneNumber><UserAgent>Apple-iPhone16C2/2208.100</UserAgent>"
              "{extra}</Set></DeviceInformation>")


@pytest.mark.parametrize("version", ["12.0", "14.0", "16.1"])
def test_device_information_is_stored_on_the_device_record(tmp_path: Path, version: str) -> None:
    app, _ = new_app(tmp_path)
    c = client(app, version=version)
    extra = "<EnableOutboundSMS>1</EnableOutboundSMS><MobileOperator>EE</MobileOperator>"

    async def scenario() -> None:
        body = DEVICE_SET.format(extra=extra if Version(version) >= Version("14.0") else "")
        reply = checked(await send(c, body), version)
        assert reply.text(S.Status) == "1" and op_status(reply, S.DeviceInformation) == "1"
        record = await app.store.get_device(ALICE, DEVICE)
        assert record is not None
        assert (record.model, record.imei, record.friendly_name, record.os, record.os_language) == (
            "iPhone16,2", "353263000000000", "Alice’s iPhone", "iOS 18.1", "en-GB")
        assert record.phone_number == "+447700900123" and record.user_agent == "Apple-iPhone16C2/2208.100"
        if Version(version) >= Version("14.0"):
            assert record.enable_outbound_sms and record.mobile_operator == "EE"
        # a later Set changes only what it names
        await send(c, "<DeviceInformation><Set><OS>iOS 18.2</OS></Set></DeviceInformation>")
        record = await app.store.get_device(ALICE, DEVICE)
        assert record is not None and record.os == "iOS 18.2" and record.model == "iPhone16,2"

    run(scenario())


BAD_DEVICE_INFORMATION = [
    ("<DeviceInformation><Set><Model>" + "m" * 1025 + "</Model></Set></DeviceInformation>", "5"),
    ("<DeviceInformation><Set><Model>x</Model><EnableOutboundSMS>2</EnableOutboundSMS></Set></DeviceInformation>",
     "5"),
    ("<DeviceInformation><Set><Model>x</Model><Model>y</Model></Set></DeviceInformation>", "2"),
    ("<DeviceInformation><Set><Model>x</Model><OofState>1</OofState></Set></DeviceInformation>", "2"),
    ("<DeviceInformation><Model>x</Model></DeviceInformation>", "2"),
    ("<DeviceInformation/>", "2"),
    ("<DeviceInformation><Set><Model><OS>x</OS></Model></Set></DeviceInformation>", "2"),
]


def test_bad_device_information_changes_nothing(tmp_path: Path) -> None:
    app, _ = new_app(tmp_path)
    c = client(app, version="14.1")

    async def scenario() -> None:
        await send(c, DEVICE_SET.format(extra=""))
        before = await app.store.get_device(ALICE, DEVICE)
        assert before is not None
        for body, status in BAD_DEVICE_INFORMATION:
            reply = checked(await send(c, body), "14.1")
            assert reply.text(S.Status) == "1" and op_status(reply, S.DeviceInformation) == status, body[:100]
            after = await app.store.get_device(ALICE, DEVICE)
            assert after is not None
            assert (after.model, after.os, after.imei, after.enable_outbound_sms) == (
                before.model, before.os, before.imei, before.enable_outbound_sms)

    run(scenario())


# -- UserInformation -----------------------------------------------------------------------


@pytest.mark.parametrize("version", ["12.0", "12.1", "14.0", "14.1", "16.0", "16.1"])
def test_user_information_per_version(tmp_path: Path, version: str) -> None:
    app, store = new_app(tmp_path)
    store.set_display_name(ALICE, "Alice Liddell")
    c = client(app, version=version)

    async def scenario() -> None:
        reply = checked(await send(c, "<UserInformation><Get/></UserInformation>"), version)
        assert op_status(reply, S.UserInformation) == "1"
        assert reply.node is not None
        get = reply.node.find(S.UserInformation, S.Get)
        assert get is not None
        if Version(version) < Version("14.1"):
            assert [n.tag for n in get.children] == [S.EmailAddresses]
            assert [n.text for n in get.children[0].children] == [ALICE]
            assert all(n.tag == S.SMTPAddress for n in get.children[0].children)
        else:
            account = get.find(S.Accounts, S.Account)
            assert [n.tag for n in get.children] == [S.Accounts] and account is not None
            assert account.find(S.AccountId) is None  # the primary account has none
            assert account.findtext(S.UserDisplayName) == "Alice Liddell"
            assert account.findtext(S.AccountName) == "Alice Liddell"
            assert account.findtext(S.SendDisabled) == "0"
            assert account.findtext(S.EmailAddresses, S.SMTPAddress) == ALICE
            assert account.findtext(S.EmailAddresses, S.PrimarySmtpAddress) == ALICE

    run(scenario())


# -- DevicePassword ------------------------------------------------------------------------


async def cache(app: ActiveSync) -> dict[str, Any]:
    data = await app.store.load(ALICE, DEVICE, "cache")
    return json.loads(data) if data else {}


def test_recovery_password_is_refused_without_recovery_in_the_policy(tmp_path: Path) -> None:
    app, _ = new_app(tmp_path)
    c = client(app, version="14.1")

    async def scenario() -> None:
        reply = checked(await send(c, "<DevicePassword><Set><Password>1234-5678</Password></Set></DevicePassword>"),
                        "14.1")
        assert reply.text(S.Status) == "1" and op_status(reply, S.DevicePassword) == "7"
        assert "recovery_password" not in await cache(app)

    run(scenario())


def test_recovery_password_is_kept_when_the_policy_enables_recovery(tmp_path: Path) -> None:
    app, _ = new_app(tmp_path, policy={"PasswordRecoveryEnabled": 1, "DevicePasswordEnabled": 1})
    c = client(app, version="12.1")

    async def scenario() -> None:
        reply = checked(await send(c, "<DevicePassword><Set><Password>r3cover-Me</Password></Set></DevicePassword>"),
                        "12.1")
        assert op_status(reply, S.DevicePassword) == "1"
        assert (await cache(app))["recovery_password"] == "r3cover-Me"
        too_long = await send(c, f"<DevicePassword><Set><Password>{'p' * 256}</Password></Set></DevicePassword>")
        assert op_status(too_long, S.DevicePassword) == "5"
        missing = await send(c, "<DevicePassword><Set/></DevicePassword>")
        assert op_status(missing, S.DevicePassword) == "2"
        assert (await cache(app))["recovery_password"] == "r3cover-Me"

    run(scenario())


# -- RightsManagementInformation -----------------------------------------------------------


def test_rights_management_information(tmp_path: Path) -> None:
    app, _ = new_app(tmp_path)

    async def scenario() -> None:
        for version in ("14.1", "16.1"):
            c = client(app, version=version, device_id="Dev" + version.replace(".", ""))
            reply = checked(await send(c, "<RightsManagementInformation><Get/></RightsManagementInformation>"),
                            version)
            assert op_status(reply, S.RightsManagementInformation) == "1"
            assert reply.node is not None
            templates = reply.node.find(S.RightsManagementInformation, S.Get, RM.RightsManagementTemplates)
            assert templates is not None and not templates.children
        # 14.0 has no such element: a protocol error, not an answer in a tag 14.0 lacks
        c = client(app, version="14.0", device_id="Dev140")
        reply = checked(await send(c, "<RightsManagementInformation><Get/></RightsManagementInformation>"), "14.0")
        assert reply.text(S.Status) == "2" and reply.node is not None and len(reply.node.children) == 1

    run(scenario())


# -- the request as a whole ----------------------------------------------------------------


def test_several_operations_answer_in_request_order(tmp_path: Path) -> None:
    app, _ = new_app(tmp_path)
    c = client(app, version="16.1")
    body = ("<UserInformation><Get/></UserInformation>" + DEVICE_SET.format(extra="") + oof_get()
            + "<DevicePassword><Set><Password>x</Password></Set></DevicePassword>"
            + "<RightsManagementInformation><Get/></RightsManagementInformation>")

    async def scenario() -> None:
        reply = checked(await send(c, body), "16.1")
        assert reply.node is not None
        assert [n.tag for n in reply.node.children] == [S.Status, S.UserInformation, S.DeviceInformation, S.Oof,
                                                        S.DevicePassword, S.RightsManagementInformation]
        statuses = [n.findtext(S.Status) for n in reply.node.children[1:]]
        assert statuses == ["1", "1", "1", "7", "1"]
        record = await app.store.get_device(ALICE, DEVICE)
        assert record is not None and record.model == "iPhone16,2"

    run(scenario())


MALFORMED = [
    '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey></FolderSync>',
    settings(oof_get() + oof_get()),
    settings(DEVICE_SET.format(extra="") + '<SyncKey xmlns="AirSync:">1</SyncKey>'),
    settings("<Status>1</Status>"),
    settings("<Model>x</Model>"),
]


@pytest.mark.parametrize("version", ["12.1", "16.1"])
def test_malformed_bodies_get_status_2_and_change_nothing(tmp_path: Path, version: str) -> None:
    app, store = new_app(tmp_path)
    c = client(app, version=version)

    async def scenario() -> None:
        await send(c, OOF_SET)
        await send(c, DEVICE_SET.format(extra=""))
        oof = await store.get_oof(ALICE)
        record = await app.store.get_device(ALICE, DEVICE)
        assert record is not None
        for body in MALFORMED:
            reply = checked(await c.command("Settings", body), version)
            assert reply.node is not None and [n.tag for n in reply.node.children] == [S.Status], body
            assert reply.text(S.Status) == "2"
        w = Writer()
        with w.tag(S.Settings), w.tag(S.DeviceInformation), w.tag(S.Set):
            w.opaque(S.Model, b"\x00\x01")
        assert op_status(checked(await c.raw("Settings", w.getvalue()), version), S.DeviceInformation) == "2"
        garbage = await c.raw("Settings", b"\x03\x01\x6a\x00\x45\x46")
        if version == "12.1":
            assert garbage.status == 400
        else:
            assert garbage.text(S.Status) == "102"
        after = await app.store.get_device(ALICE, DEVICE)
        assert after is not None and (after.model, after.os, after.imei) == (record.model, record.os, record.imei)
        assert await store.get_oof(ALICE) == oof

    run(scenario())


def test_empty_settings_and_version_2_5(tmp_path: Path) -> None:
    app, _ = new_app(tmp_path)

    async def scenario() -> None:
        reply = checked(await client(app, version="14.0").command("Settings", settings("")), "14.0")
        assert reply.node is not None and [n.tag for n in reply.node.children] == [S.Status]
        assert reply.text(S.Status) == "1"
        old = await client(app, version="2.5", device_id="Dev25").command("Settings", settings(oof_get()))
        assert old.status == 400  # Settings is not a 2.5 command

    run(scenario())
