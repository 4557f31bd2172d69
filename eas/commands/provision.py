"""Provision (MS-ASCMD 2.2.1.14, MS-ASPROV 3.2.5.1): the two phases that give a device
its policy and its policy key, and the remote wipe directive with its acknowledgment.

What a request is, and what it gets, as a table (MS-ASPROV 3.1.5.1 / 3.2.5.1):

======================================  =================================================
request                                 response and record
======================================  =================================================
RemoteWipe / AccountOnlyRemoteWipe      wipe requested (or failed before): Status 1 and
  with Status 1 or 2                    wipe "wiped"/"account-wiped", or Status 2 with the
                                        directive again and wipe "failed"/"account-failed";
                                        the keys are void either way (audited as
                                        device.wipe.acknowledged). Wiped already:
                                        Status 1. None requested: Status 2.
anything else, a wipe due (WIPE_DUE:    Status 1 + RemoteWipe (account-only:
  pending, failed or done)              AccountOnlyRemoteWipe); nothing else is read.
                                        Account-only before 16.1: refused (common status
                                        130 / HTTP 403), never a full wipe
Policy without Status (phase 1)         Status 1, Policy Status 1, a temporary PolicyKey
                                        (pending_policy_key) and the policy in Data;
                                        14.1+ without DeviceInformation: common status 165
Policy with the temporary key and       Status 1, Policy Status 1 and the permanent
  Status 1-4 (phase 2)                  PolicyKey (policy_key, policy_hash, policy_status)
Policy with another key (phase 2)       Policy Status 5; nothing changes
PolicyType not the version's            Policy Status 3
policy not required for the device      Policy Status 2 (no policy for this client)
anything not in the schema              Status 2 (protocol error); nothing changes
======================================  =================================================

A client that applied the policy only in part (Status 2), not at all (3) or that is
managed by a third party (4) gets its key unless the policy decision says otherwise
(``allow_partial`` / ``allow_externally_managed`` of the PolicyDecision): then the common status 139 or 145.

A wiped device is wiped again whenever it connects with the same device id, until
an administrator removes the partnership (``eas device remove``): Exchange documents
the same (the device stays in the wipe state until the partnership is deleted), and a
device that lost or ignored the directive must not sync its way back. The core lets a
device in ``WIPE_DUE`` through to Provision whatever its access or suspension, and
answers its other commands with status 140 (449 before 14.0).

The hash of the policy handed out in phase 1 is kept in the device cache and becomes
``policy_hash`` in phase 2, so a policy that changes between the phases (or after) makes
the core ask for a refresh (143).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eas import policy
from eas.commands.settings import Invalid, Malformed, read_device_information, store_device_information
from eas.protocol import status as st
from eas.protocol.errors import AccessDenied, EASError
from eas.protocol.versions import Version
from eas.state.model import AuditEvent
from eas.tags import Provision as P
from eas.tags import Settings as S
from eas.wbxml import Node, Writer

if TYPE_CHECKING:
    from eas.context import Context
    from eas.protocol.http import HTTPResponse

log = logging.getLogger("eas.provision")

# Provision/Status from the server (MS-ASPROV 2.2.2.54.1)
SUCCESS = 1
PROTOCOL_ERROR = 2
SERVER_ERROR = 3
# Policy/Status from the server (MS-ASPROV 2.2.2.54.2)
POLICY_SUCCESS = 1
NO_POLICY = 2
UNKNOWN_POLICY_TYPE = 3
POLICY_DATA_CORRUPT = 4
WRONG_POLICY_KEY = 5
# Policy/Status from the client (MS-ASPROV 2.2.2.54.2): applied, partly, not at all,
# by a third party.
CLIENT_APPLIED, CLIENT_PARTIAL, CLIENT_NOT_APPLIED, CLIENT_EXTERNAL = 1, 2, 3, 4

PENDING_HASH_KEY = "provision_policy_hash"  # in the device cache
MAX_POLICY_TYPE = 64
MAX_POLICY_KEY = 64  # MS-ASPROV 2.2.2.42
# Wipe states (DeviceRecord.wipe) in which every connection gets the wipe directive.
WIPE_DUE = frozenset({"pending", "account-pending", "failed", "account-failed", "wiped", "account-wiped"})
WIPE_PENDING = ("pending", "account-pending")  # asked for, not yet acknowledged


@dataclass(slots=True)
class _Request:
    """A Provision request, read: ``wipe_ack`` is ``(element tag, status)``."""

    device_information: Node | None = None
    policy_type: str | None = None
    policy_key: str | None = None
    client_status: int | None = None
    wipe_ack: tuple[int, int] | None = None


async def handle(ctx: Context) -> HTTPResponse:
    """MS-ASCMD 2.2.1.14."""
    try:
        request = _read(ctx.body)
    except Malformed as e:
        log.info("Provision from %s/%s: %s", ctx.user, ctx.request.device_id, e)
        return _respond(ctx, PROTOCOL_ERROR)
    device = ctx.state.device
    if request.wipe_ack is not None:
        return await _acknowledge_wipe(ctx, *request.wipe_ack)
    if device.wipe in WIPE_DUE:
        return _wipe_directive(ctx)
    if request.policy_type is None:  # an empty Provision, no wipe to deliver
        return _respond(ctx, PROTOCOL_ERROR)
    if request.client_status is None:
        return await _download(ctx, request)
    return await _acknowledge(ctx, request)


def _read(body: Node | None) -> _Request:
    """The request, or ``Malformed`` when it is not what the Provision schema allows."""
    if body is None or body.tag != P.Provision or body.text:
        raise Malformed("the body is not a Provision element")
    request = _Request()
    seen: set[int] = set()
    for child in body.children:
        if child.tag in seen:
            raise Malformed("repeated element in Provision")
        seen.add(child.tag)
        if child.tag == S.DeviceInformation:
            request.device_information = child
        elif child.tag == P.Policies:
            _read_policy(child, request)
        elif child.tag in (P.RemoteWipe, P.AccountOnlyRemoteWipe):
            status = _children(child, {P.Status})
            if status.get(P.Status) not in ("1", "2"):
                raise Malformed("a wipe acknowledgment carries Status 1 or 2")
            request.wipe_ack = (child.tag, int(status[P.Status]))
        else:
            raise Malformed(f"unexpected element 0x{child.tag:04X} in Provision")
    if P.RemoteWipe in seen and P.AccountOnlyRemoteWipe in seen:
        raise Malformed("two wipe acknowledgments")
    return request


def _read_policy(policies: Node, request: _Request) -> None:
    if policies.text or len(policies.children) != 1 or policies.children[0].tag != P.Policy:
        raise Malformed("Policies holds one Policy")
    values = _children(policies.children[0], {P.PolicyType, P.PolicyKey, P.Status})
    policy_type = values.get(P.PolicyType)
    if not policy_type or len(policy_type) > MAX_POLICY_TYPE:
        raise Malformed("Policy without a PolicyType")
    request.policy_type = policy_type.strip()
    key = values.get(P.PolicyKey)
    if key is not None and len(key) > MAX_POLICY_KEY:
        raise Malformed("PolicyKey longer than 64 characters")
    request.policy_key = key
    if P.Status in values:
        status = values[P.Status].strip()
        if status not in ("1", "2", "3", "4"):
            raise Malformed(f"client Policy Status {status[:8]!r} is not 1-4")
        request.client_status = int(status)


def _children(node: Node, allowed: set[int]) -> dict[int, str]:
    """The text leaves of ``node`` by tag, each at most once and among ``allowed``."""
    if node.text:
        raise Malformed("container with text")
    out: dict[int, str] = {}
    for child in node.children:
        if child.tag not in allowed or child.tag in out or child.children or isinstance(child.text, bytes):
            raise Malformed(f"unexpected element 0x{child.tag:04X}")
        out[child.tag] = child.text or ""
    return out


# -- phase 1: the policy -------------------------------------------------------------------


async def _download(ctx: Context, request: _Request) -> HTTPResponse:
    """MS-ASPROV 3.2.5.1.1."""
    device = ctx.state.device
    info_status: int | None = None
    if request.device_information is not None:
        try:
            values = read_device_information(request.device_information)
        except Malformed as e:
            log.info("Provision DeviceInformation from %s/%s: %s", ctx.user, device.device_id, e)
            return _respond(ctx, PROTOCOL_ERROR)
        except Invalid as e:
            log.info("Provision DeviceInformation from %s/%s: %s", ctx.user, device.device_id, e)
            info_status = e.status
        else:
            store_device_information(device, values)
            info_status = 1
    elif ctx.version >= Version("14.1") and not (device.model or device.os or device.imei or device.friendly_name):
        # Required in the device's initial Provision (MS-ASPROV 3.1.5.1); a device that
        # told us before may re-provision (a policy refresh) without repeating it.
        raise EASError("Provision without DeviceInformation", status=st.Common.DeviceInformationRequired)
    expected = policy.policy_type(ctx.version)
    if request.policy_type != expected:
        return _respond(ctx, SUCCESS, info_status=info_status, policy_type=request.policy_type,
                        policy_status=UNKNOWN_POLICY_TYPE)
    decision = await ctx.server.policy(ctx.user, device)
    if not decision.required:
        return _respond(ctx, SUCCESS, info_status=info_status, policy_type=expected, policy_status=NO_POLICY)
    try:  # a policy that does not check out is a server error, not a broken response
        policy.effective(decision.settings)
    except policy.PolicyError as e:
        log.error("the policy of %s is not valid: %s", ctx.user, e)
        return _respond(ctx, SERVER_ERROR, info_status=info_status)
    key = _new_key(device.policy_key)
    device.pending_policy_key = key
    cache = await ctx.state.cache()
    cache[PENDING_HASH_KEY] = decision.hash
    ctx.state.cache_changed()
    w = Writer()
    with w.tag(P.Provision):
        _write_device_information(ctx, w, info_status)
        w.leaf(P.Status, SUCCESS)
        with w.tag(P.Policies), w.tag(P.Policy):
            w.leaf(P.PolicyType, expected)
            w.leaf(P.Status, POLICY_SUCCESS)
            w.leaf(P.PolicyKey, key)
            if expected == policy.WAP_POLICY_TYPE:
                w.leaf(P.Data, policy.wap_provisioning_xml(decision.settings))
            else:
                with w.tag(P.Data):
                    policy.write_provision_doc(w, decision.settings, ctx.version)
    return ctx.respond(w)


# -- phase 2: the acknowledgment -----------------------------------------------------------


async def _acknowledge(ctx: Context, request: _Request) -> HTTPResponse:
    """MS-ASPROV 3.2.5.1.2.1."""
    device = ctx.state.device
    expected = policy.policy_type(ctx.version)
    if request.policy_type != expected:
        return _respond(ctx, SUCCESS, policy_type=request.policy_type, policy_status=UNKNOWN_POLICY_TYPE)
    key = _parse_key(request.policy_key) if request.policy_key is not None else ctx.request.policy_key
    if not device.pending_policy_key or key != device.pending_policy_key:
        log.info("Provision from %s/%s acknowledges a policy key not handed out", ctx.user, device.device_id)
        return _respond(ctx, SUCCESS, policy_type=expected, policy_status=WRONG_POLICY_KEY)
    decision = await ctx.server.policy(ctx.user, device)
    status = request.client_status
    if status in (CLIENT_PARTIAL, CLIENT_NOT_APPLIED) and not decision.allow_partial:
        raise EASError("the device cannot apply the whole policy", status=st.Common.DeviceNotFullyProvisionable,
                       http_status=st.FORBIDDEN)
    if status == CLIENT_EXTERNAL and not decision.allow_externally_managed:
        raise EASError("externally managed devices are refused",
                       status=st.Common.ExternallyManagedDevicesNotAllowed, http_status=st.FORBIDDEN)
    cache = await ctx.state.cache()
    pending_hash = cache.pop(PENDING_HASH_KEY, None)
    ctx.state.cache_changed()
    permanent = _new_key(device.pending_policy_key, device.policy_key)
    device.policy_key = permanent
    device.pending_policy_key = 0
    device.policy_status = status or CLIENT_APPLIED
    device.policy_hash = pending_hash if isinstance(pending_hash, str) else decision.hash
    return _respond(ctx, SUCCESS, policy_type=expected, policy_status=POLICY_SUCCESS, policy_key=permanent)


def _parse_key(text: str) -> int | None:
    """A policy key of ours is a decimal uint32; anything else cannot match."""
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 10 or int(text) > policy.UINT32_MAX:
        return None
    return int(text)


def _new_key(*avoid: int) -> int:
    """A random nonzero uint32 (MS-ASPROV 2.2.2.42), not one of ``avoid``."""
    while True:
        key = secrets.randbelow(policy.UINT32_MAX) + 1
        if key not in avoid:
            return key


# -- remote wipe ---------------------------------------------------------------------------


def _wipe_directive(ctx: Context) -> HTTPResponse:
    """MS-ASPROV 3.2.5.1: RemoteWipe, or AccountOnlyRemoteWipe for an account-only wipe
    (16.1). A client older than 16.1 cannot wipe only the account: it is refused rather
    than told to wipe everything."""
    account_only = ctx.state.device.wipe.startswith("account-")
    if account_only and not ctx.has(P.AccountOnlyRemoteWipe):
        raise AccessDenied("an account-only wipe is due and this protocol version cannot carry it",
                           status=st.Common.AccessDenied)
    w = Writer()
    with w.tag(P.Provision):
        w.leaf(P.Status, SUCCESS)
        w.empty(P.AccountOnlyRemoteWipe if account_only else P.RemoteWipe)
    return ctx.respond(w)


async def _acknowledge_wipe(ctx: Context, element: int, status: int) -> HTTPResponse:
    """MS-ASPROV 3.2.5.1.2.2: record what the device reports."""
    device = ctx.state.device
    if device.wipe in ("wiped", "account-wiped"):  # the acknowledgment again: its answer got lost
        return _respond(ctx, SUCCESS)
    if device.wipe not in ("pending", "account-pending", "failed", "account-failed"):
        log.warning("%s/%s acknowledges a wipe that was not requested", ctx.user, device.device_id)
        return _respond(ctx, PROTOCOL_ERROR)
    account_only = device.wipe.startswith("account-")
    device.wipe_acknowledged = time.time()
    # Whatever happened, the keys the device held are void: it provisions anew if it
    # ever comes back.
    device.policy_key = 0
    device.pending_policy_key = 0
    kind = "account-" if account_only else ""
    device.wipe = kind + ("wiped" if status == 1 else "failed")
    await ctx.server.store.record_event(AuditEvent("device.wipe.acknowledged", actor="device", user=device.user,
                                                   device_id=device.device_id, detail=device.wipe))
    if status == 1:
        log.warning("%s/%s reports the %swipe done", ctx.user, device.device_id, "account " if account_only else "")
        return _respond(ctx, SUCCESS)
    log.warning("%s/%s reports the wipe failed", ctx.user, device.device_id)
    w = Writer()
    with w.tag(P.Provision):
        w.leaf(P.Status, PROTOCOL_ERROR)
        w.empty(P.AccountOnlyRemoteWipe if account_only and ctx.has(P.AccountOnlyRemoteWipe) else P.RemoteWipe)
    return ctx.respond(w)


# -- writing -------------------------------------------------------------------------------


def _write_device_information(ctx: Context, w: Writer, status: int | None) -> None:
    """DeviceInformation's Status, where there is one and the version has the element."""
    if status is not None and ctx.has(S.DeviceInformation):
        with w.tag(S.DeviceInformation):
            w.leaf(S.Status, status)


def _respond(ctx: Context, status: int, *, info_status: int | None = None, policy_type: str | None = None,
             policy_status: int | None = None, policy_key: int | None = None) -> HTTPResponse:
    """A Provision response without policy data (MS-ASPROV 6.3 order)."""
    w = Writer()
    with w.tag(P.Provision):
        _write_device_information(ctx, w, info_status)
        w.leaf(P.Status, status)
        if policy_status is not None:
            with w.tag(P.Policies), w.tag(P.Policy):
                w.leaf(P.PolicyType, policy_type or "")
                w.leaf(P.Status, policy_status)
                if policy_key is not None:
                    w.leaf(P.PolicyKey, policy_key)
    return ctx.respond(w)
