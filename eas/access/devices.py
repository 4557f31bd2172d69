"""Device management: the admin API behind ``eas device`` and the admin web page.

List devices with filters, show one with its history, remove a partnership, reset its
sync state, order a remote wipe (or an account-only wipe, 16.1) and cancel it, suspend
and resume a device's sync, and run a simulated sync of an account (``simulate_sync``).

Every change is made on the stored record in one transaction of the store
(``StateStore.update_device``: never a stale copy written back over what a request of
the device committed meanwhile) and audited as ``device.<action>`` with the actor given (``cli``, ``web:<name>``); then
``wake(account)`` is called, if given, so that a running server ends the account's
waiting long polls and its devices meet the change at once. A request of the device
running meanwhile keeps the change (``eas.state.session.ADMIN_FIELDS``).

Wipe, as settled from MS-ASPROV 3.2.5.1 and Exchange's documented behaviour:

- ``wipe`` sets the record to "pending" ("account-pending" for an account-only wipe,
  which only a device speaking 16.1 can be told: refused otherwise). The device's next
  request gets status 140 (HTTP 449 before 14.0), its Provision the directive, and its
  acknowledgment is recorded ("wiped"/"account-wiped" with the time, or "failed").
- A wiped device that connects again with the same device id is wiped again, every
  time, until the partnership is removed (``eas.commands.provision.WIPE_DUE``). This is
  what Exchange does; removing the partnership is how an administrator lets a wiped
  device (handed back, reset) sync again.
- A wipe ordered again while one is pending of the same kind, or of a device already
  wiped that way, is refused (nothing would change); an account-only wipe after a full
  one is refused (the full wipe covers it); a full wipe over a pending or done
  account-only wipe replaces it; after a failed wipe, a new one is pending again.
- ``cancel_wipe`` works while the wipe is pending (not acknowledged); once the device
  has acknowledged it, the wipe happened (or failed on the device) and cannot be
  undone: remove the partnership instead.
- ``remove`` of a device with a wipe pending is refused: removing would drop the wipe
  and let the device start over as a new one, syncing everything. Cancel the wipe first
  to forget the device, or wait for its acknowledgment.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from eas.access import STATES
from eas.access.abq import check_account, check_device_id
from eas.commands.provision import WIPE_PENDING
from eas.loops import skipped_items
from eas.protocol.versions import Version
from eas.state.model import AuditEvent, DeviceRecord

if TYPE_CHECKING:
    from eas.core import ActiveSync
    from eas.state.store import StateStore

Wake = Callable[[str], None]

# What ``list_devices(state=...)`` takes: an ABQ state, or one of these.
STATE_FILTERS = (*STATES, "suspended", "wipe-pending", "wiped", "wipe-failed")
HISTORY_LIMIT = 200
ACCOUNT_ONLY_VERSION = Version("16.1")


class NoSuchDevice(KeyError):
    """The account has no device of that id."""

    def __str__(self) -> str:
        user, device_id = self.args
        return f"{user} has no device {device_id}"


def device_states(device: DeviceRecord) -> set[str]:
    """The words ``list_devices(state=...)`` matches for ``device``: its ABQ state, and
    "suspended", "wipe-pending", "wiped" or "wipe-failed" where they apply."""
    states = {device.access}
    if device.suspended:
        states.add("suspended")
    if device.wipe in WIPE_PENDING:
        states.add("wipe-pending")
    elif device.wipe in ("wiped", "account-wiped"):
        states.add("wiped")
    elif device.wipe in ("failed", "account-failed"):
        states.add("wipe-failed")
    return states


def state_of(device: DeviceRecord) -> str:
    """One word for a device in a list: the wipe, else the suspension, else ABQ."""
    for word in ("wipe-pending", "wiped", "wipe-failed", "suspended"):
        if word in device_states(device):
            return word
    return device.access


def _account(user: Any) -> str:
    account = check_account(user)
    if not account:
        raise ValueError("an account is user@domain, not empty")
    return account


async def list_devices(store: StateStore, *, user: str | None = None, state: str | None = None,
                       device_type: str | None = None, seen_since: float | None = None,
                       seen_before: float | None = None) -> list[DeviceRecord]:
    """The devices that pass every filter given: the account, a state of
    ``STATE_FILTERS``, the DeviceType (any case), last seen at or after ``seen_since``
    and before ``seen_before`` (epoch seconds). By account, most recently seen first."""
    if state is not None and state not in STATE_FILTERS:
        raise ValueError(f"unknown state {state[:32]!r}: one of {', '.join(STATE_FILTERS)}")
    if device_type is not None and (not device_type or len(device_type) > 64 or not device_type.isprintable()):
        raise ValueError(f"not a device type: {device_type[:64]!r}")
    devices = await store.list_devices(_account(user) if user is not None else None)
    wanted_type = device_type.casefold() if device_type is not None else None
    out = [d for d in devices
           if (state is None or state in device_states(d))
           and (wanted_type is None or d.device_type.casefold() == wanted_type)
           and (seen_since is None or d.last_seen >= seen_since)
           and (seen_before is None or d.last_seen < seen_before)]
    out.sort(key=lambda d: (d.user, -d.last_seen, d.device_id))
    return out


@dataclass(slots=True)
class DeviceDetails:
    """One device for the admin: its record (DeviceInformation, policy, wipe, access),
    its audit history newest first (ABQ decisions ``access.*`` and ``abq.*``, the
    ``device.*`` changes and acknowledgments) and what loop detection skipped."""

    device: DeviceRecord
    history: list[AuditEvent] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    @property
    def policy(self) -> str:
        """The provisioning status in words."""
        d = self.device
        if not d.policy_key:
            return "not provisioned" + (" (policy handed out, not acknowledged)" if d.pending_policy_key else "")
        how = {1: "applied", 2: "applied in part", 3: "not applied", 4: "externally managed"}
        return f"provisioned, policy {how.get(d.policy_status, 'status ' + str(d.policy_status))}"


async def _get(store: StateStore, user: str, device_id: str) -> DeviceRecord:
    user, device_id = _account(user), check_device_id(device_id)
    device = await store.get_device(user, device_id)
    if device is None:
        raise NoSuchDevice(user, device_id)
    return device


async def _update(store: StateStore, user: str, device_id: str,
                  change: Callable[[DeviceRecord], None]) -> DeviceRecord:
    """``change`` applied to the stored record in one transaction (it raises
    ``ValueError`` to refuse: nothing is written); ``NoSuchDevice``: no record."""
    user, device_id = _account(user), check_device_id(device_id)
    device = await store.update_device(user, device_id, change)
    if device is None:
        raise NoSuchDevice(user, device_id)
    return device


async def device_details(store: StateStore, user: str, device_id: str) -> DeviceDetails:
    device = await _get(store, user, device_id)
    history = await store.events(user=device.user, device_id=device.device_id, limit=HISTORY_LIMIT)
    return DeviceDetails(device, history, await skipped_items(store, device.user, device.device_id))


async def _changed(store: StateStore, device: DeviceRecord, action: str, actor: str, wake: Wake | None,
                   detail: str = "") -> None:
    """Audit ``action`` on ``device`` and wake its account."""
    await store.record_event(AuditEvent(action, actor=actor, user=device.user, device_id=device.device_id,
                                        detail=detail))
    if wake is not None:
        wake(device.user)


async def remove(store: StateStore, user: str, device_id: str, *, actor: str, wake: Wake | None = None) -> bool:
    """Forget the partnership and all its state (False: there was none). Its next
    request starts over as a new device: ABQ decides anew, it provisions and syncs
    everything. Refused (``ValueError``) while a wipe is pending."""
    try:
        device = await _get(store, user, device_id)
    except NoSuchDevice:
        return False
    if device.wipe in WIPE_PENDING:
        raise ValueError(f"a wipe of {device.device_id} is pending: removing it would drop the wipe "
                         "(cancel the wipe first, or wait for the device to acknowledge it)")
    await store.delete_device(device.user, device.device_id)
    await _changed(store, device, "device.remove", actor, wake, f"{device.device_type} {device.model}".strip())
    return True


async def reset(store: StateStore, user: str, device_id: str, *, actor: str, wake: Wake | None = None) -> bool:
    """Drop the device's sync state, keeping its record (access, policy, wipe): its next
    FolderSync or Sync is told to start over, and it syncs everything again (False:
    no such device)."""
    try:
        device = await _get(store, user, device_id)
    except NoSuchDevice:
        return False
    await store.reset_device(device.user, device.device_id)
    await _changed(store, device, "device.reset", actor, wake)
    return True


async def wipe(store: StateStore, user: str, device_id: str, *, account_only: bool = False, actor: str,
               wake: Wake | None = None) -> DeviceRecord:
    """Order a remote wipe, or an account-only wipe (16.1): see the module docstring for
    a wipe ordered again. ``ValueError`` says why one is refused."""
    kind = "account-" if account_only else ""
    previous = ""

    def order(device: DeviceRecord) -> None:
        nonlocal previous
        if account_only and (not device.protocol_version
                             or Version(device.protocol_version) < ACCOUNT_ONLY_VERSION):
            raise ValueError(f"an account-only wipe needs a device speaking 16.1; {device.device_id} speaks "
                             f"{device.protocol_version or 'no version yet'} (a full wipe is possible)")
        when = _when(device.wipe_requested)
        if device.wipe == kind + "pending":
            raise ValueError(f"a{'n account-only' if account_only else ''} wipe of {device.device_id} is already "
                             f"pending since {when}")
        if device.wipe == kind + "wiped" or (account_only and device.wipe == "wiped"):
            raise ValueError(f"{device.device_id} was wiped at {_when(device.wipe_acknowledged)} and is wiped "
                             "again whenever it connects, until the partnership is removed")
        if account_only and device.wipe == "pending":
            raise ValueError(f"a full wipe of {device.device_id} is pending since {when}: it covers the account")
        previous = device.wipe
        device.wipe = kind + "pending"
        device.wipe_requested = time.time()
        device.wipe_acknowledged = 0.0

    device = await _update(store, user, device_id, order)
    await _changed(store, device, "device.wipe", actor, wake,
                   ("account only" if account_only else "full") + (f", was {previous}" if previous else ""))
    return device


async def cancel_wipe(store: StateStore, user: str, device_id: str, *, actor: str,
                      wake: Wake | None = None) -> DeviceRecord:
    """Call off a wipe the device has not acknowledged (``ValueError`` otherwise)."""
    was = ""

    def cancel(device: DeviceRecord) -> None:
        nonlocal was
        if device.wipe not in WIPE_PENDING:
            if not device.wipe:
                raise ValueError(f"no wipe of {device.device_id} to cancel")
            raise ValueError(f"the wipe of {device.device_id} was acknowledged at "
                             f"{_when(device.wipe_acknowledged)} ({device.wipe}) and cannot be cancelled; "
                             "remove the partnership to let it sync again")
        was = device.wipe
        device.wipe = ""
        device.wipe_requested = 0.0

    device = await _update(store, user, device_id, cancel)
    await _changed(store, device, "device.wipe.cancel", actor, wake, was)
    return device


async def suspend(store: StateStore, user: str, device_id: str, *, actor: str, wake: Wake | None = None) -> bool:
    """Stop the device's sync (status 129, 403 before 14.0) until ``resume``; a wipe
    still reaches it. False: it was suspended already (nothing audited)."""
    return await _suspension(store, user, device_id, True, actor, wake)


async def resume(store: StateStore, user: str, device_id: str, *, actor: str, wake: Wake | None = None) -> bool:
    """Let a suspended device sync again. False: it was not suspended."""
    return await _suspension(store, user, device_id, False, actor, wake)


async def _suspension(store: StateStore, user: str, device_id: str, suspended: bool, actor: str,
                      wake: Wake | None) -> bool:
    changed = False

    def switch(device: DeviceRecord) -> None:
        nonlocal changed
        changed = device.suspended != suspended
        device.suspended = suspended

    device = await _update(store, user, device_id, switch)
    if not changed:
        return False
    await _changed(store, device, "device.suspend" if suspended else "device.resume", actor, wake)
    return True


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch)) if epoch else "an unknown time"


# -- simulated sync ---------------------------------------------------------------------------------

# A virtual device of an account: FolderSync, then every folder synced in full through
# the real handlers of a second ActiveSync over the same mail store, whose state lives
# in memory and is dropped at the end. Nothing of it reaches the state store, and the
# mail store is read only (a write would be a bug of the handlers: it fails, and shows).

SIM_DEVICE_ID = "EASSimulation"
SIM_DEVICE_TYPE = "EASSimulator"
MAX_WINDOW = 512  # MS-ASCMD 2.2.3.199
MAX_PROBES = 2000  # items fetched one by one to name the one a failed Sync choked on
_WRITES = frozenset({"create_folder", "update_folder", "delete_folder", "add_item", "change_item", "delete_occurrence",
                     "add_email", "change_email", "delete_item", "move_item", "send_mail", "empty_folder", "set_oof"})


@dataclass(slots=True)
class Failure:
    """What went wrong: ``what`` is short ("HTTP 500", "Status 6", "does not decode",
    "not in 14.1", "item", "skipped": the Sync handler left out an item the backend
    could not read), ``item_id`` the backend item when one could be named."""

    what: str
    detail: str = ""
    item_id: str = ""


@dataclass(slots=True)
class FolderReport:
    """One folder as the virtual device received it: items (Adds), WBXML bytes, seconds."""

    name: str
    item_class: str
    collection_id: str
    items: int = 0
    bytes: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)


@dataclass(slots=True)
class SimulationReport:
    user: str
    version: str
    folders: list[FolderReport] = field(default_factory=list)
    hierarchy_failures: list[Failure] = field(default_factory=list)  # FolderSync's
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.hierarchy_failures and not any(f.failures for f in self.folders)


class _ReadOnly:
    """The mail store as the virtual device sees it: reads pass, writes fail with a
    BackendError (the handler reports it), and no change watch is registered."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def watch(self, callback: Any) -> None:
        """The simulation waits for nothing: no watcher is left on the real store."""

    def __getattr__(self, name: str) -> Any:
        if name in _WRITES:
            async def refused(*args: Any, **kw: Any) -> Any:
                from eas.backend import BackendError

                raise BackendError(f"a simulated sync changes nothing ({name} refused)")
            return refused
        return getattr(self._backend, name)


async def simulate_sync(app: ActiveSync, user: str, *, version: str = "16.1", window: int = 100) -> SimulationReport:
    """FolderSync, then a full Sync of every Email, Calendar, Contacts, Tasks and Notes
    folder of ``user`` as a virtual device speaking ``version``, ``window`` items per
    response; what it received and every failure (see ``Failure``). ``KeyError``: no
    such account; ``ValueError``: a bad version or window."""
    from eas.core import ActiveSync, allow_all
    from eas.state.memory import MemoryStateStore
    from eas.testing.client import Client, InProcess

    account = _account(user)
    Version(version)  # ValueError for an unknown one
    if not isinstance(window, int) or not 1 <= window <= MAX_WINDOW:
        raise ValueError(f"a window is 1 to {MAX_WINDOW} items")
    if account not in await _accounts(app, account):
        raise KeyError(account)
    token = secrets.token_urlsafe(24)

    async def authenticate(login: str, password: str) -> str | None:
        return account if login.lower() == account and secrets.compare_digest(password, token) else None

    async def no_policy(user: str, device: DeviceRecord) -> Any:
        from eas.access import PolicyDecision

        return PolicyDecision(required=False)

    state = MemoryStateStore()
    sim = ActiveSync(_ReadOnly(app.backend), state, authenticate=authenticate, access=allow_all,
                     policy=no_policy, config=app.config)
    device = Client(InProcess(sim), account, token, device_id=SIM_DEVICE_ID, device_type=SIM_DEVICE_TYPE,
                    version=version, user_agent="eas-simulation/1.0", check_versions=False)
    report = SimulationReport(account, version)
    started = time.perf_counter()
    try:
        folders = await _folder_sync(device, report)
        for server_id, name, item_class in folders:
            folder = FolderReport(name, item_class, server_id)
            report.folders.append(folder)
            t0 = time.perf_counter()
            received = await _sync_folder(device, folder, window)
            if folder.failures:
                await _probe(app, state, account, folder, received, Version(version))
            record = await state.get_device(account, SIM_DEVICE_ID)
            folder.failures += [Failure("skipped", str(s.get("reason", "")), str(s.get("item_id", "")))
                                for s in (record.skipped_items if record else ())
                                if s.get("collection_id") == server_id]
            folder.seconds = time.perf_counter() - t0
    finally:
        await state.close()
    report.seconds = time.perf_counter() - started
    return report


async def _accounts(app: ActiveSync, account: str) -> list[str]:
    """``[account]`` when the mail store knows it."""
    from eas.backend import BackendError

    try:
        await app.backend.folders(account)
    except BackendError:
        return []
    return [account]


async def _exchange(device: Any, command: str, xml: str, failures: list[Failure]) -> Any:
    """Send one request; None (and a failure noted) when the answer is not a good one."""
    from eas.testing.client import elements_outside
    from eas.wbxml import WBXMLError

    try:
        reply = await device.command(command, xml)
    except WBXMLError as e:
        failures.append(Failure("does not decode", f"{command}: {e}"))
        return None
    if reply.status != 200:
        failures.append(Failure(f"HTTP {reply.status}", command))
        return None
    if reply.node is not None:
        outside = elements_outside(reply.node, device.version)
        if outside:
            failures.append(Failure(f"not in {device.version}", f"{command}: {', '.join(sorted(set(outside)))}"))
    return reply


async def _folder_sync(device: Any, report: SimulationReport) -> list[tuple[str, str, str]]:
    """``(server id, name, class)`` of the folders to sync, parents' names before."""
    from eas.hierarchy import folder_class
    from eas.pending import supported_class
    from eas.tags import FolderHierarchy as FH

    reply = await _exchange(device, "FolderSync", '<FolderSync xmlns="FolderHierarchy:"><SyncKey>0</SyncKey>'
                                                  "</FolderSync>", report.hierarchy_failures)
    if reply is None:
        return []
    status = reply.text(FH.Status)
    if status != "1" or reply.node is None:
        report.hierarchy_failures.append(Failure(f"Status {status}", "FolderSync"))
        return []
    changes = reply.node.find(FH.Changes)
    adds = [] if changes is None else changes.findall(FH.Add)
    names = {str(a.findtext(FH.ServerId)): str(a.findtext(FH.DisplayName)) for a in adds}
    out = []
    for add in adds:
        item_class = folder_class(int(add.findtext(FH.Type) or 0))
        if item_class is None or not supported_class(item_class, Version(device.version)):
            continue
        sid, parent = str(add.findtext(FH.ServerId)), str(add.findtext(FH.ParentId))
        name = names[sid] if parent not in names else f"{names[parent]}/{names[sid]}"
        out.append((sid, name, item_class))
    return out


def _sync_xml(device: Any, folder: FolderReport, key: str, window: int) -> str:
    version = Version(device.version)
    klass = f"<Class>{folder.item_class}</Class>" if version < Version("14.0") else ""
    if key == "0":
        return (f'<Sync xmlns="AirSync:"><Collections><Collection>{klass}<SyncKey>0</SyncKey>'
                f"<CollectionId>{folder.collection_id}</CollectionId></Collection></Collections></Sync>")
    options = ""
    if version >= Version("12.0"):  # the whole body: HTML for mail, text for the rest
        body_type = 2 if folder.item_class == "Email" else 1
        options = f'<Options><BodyPreference xmlns="AirSyncBase:"><Type>{body_type}</Type></BodyPreference></Options>'
    return (f'<Sync xmlns="AirSync:"><Collections><Collection>{klass}<SyncKey>{key}</SyncKey>'
            f"<CollectionId>{folder.collection_id}</CollectionId><GetChanges>1</GetChanges>"
            f"<WindowSize>{window}</WindowSize>{options}</Collection></Collections></Sync>")


async def _sync_folder(device: Any, folder: FolderReport, window: int) -> set[str]:
    """Sync the folder from SyncKey 0 until nothing more comes; the ServerIds received."""
    from eas.tags import AirSync as A

    received: set[str] = set()
    key = "0"
    while True:
        initial = key == "0"
        reply = await _exchange(device, "Sync", _sync_xml(device, folder, key, window), folder.failures)
        if reply is None:
            return received
        folder.bytes += len(reply.body)
        if reply.node is None:  # 12.1+: an empty response, nothing (more) to send
            if initial:
                folder.failures.append(Failure("empty response", "Sync with SyncKey 0"))
            return received
        collection = reply.node.find(A.Collections, A.Collection)
        status = reply.node.findtext(A.Status) if collection is None else collection.findtext(A.Status)
        if status != "1" or collection is None:
            folder.failures.append(Failure(f"Status {status}", f"Sync with SyncKey {key}"))
            return received
        previous, key = key, str(collection.findtext(A.SyncKey))
        commands = collection.find(A.Commands)
        sent = [] if commands is None else [c for c in commands.children if c.tag in (A.Add, A.Change)]
        for command in sent:
            received.add(str(command.findtext(A.ServerId)))
        folder.items = len(received)
        if initial:
            continue
        if collection.find(A.MoreAvailable) is None:
            return received
        if not sent and key == previous:  # (a new key without items: an item was skipped)
            folder.failures.append(Failure("no progress", "MoreAvailable without items"))
            return received


async def _probe(app: ActiveSync, state: StateStore, account: str, folder: FolderReport, received: set[str],
                 version: Version) -> None:
    """A Sync of the folder failed: fetch and write its items not yet received one by
    one, as the handler does, and note each that fails with its id."""
    from eas.commands.sync import write_item
    from eas.items import split_server_id
    from eas.items.email import mime_mode, parse_body_options
    from eas.state.model import CollectionState, HierarchyState
    from eas.tags import AirSync as A
    from eas.wbxml import Writer

    data = await state.load(account, SIM_DEVICE_ID, "hierarchy")
    backend_id = HierarchyState.from_json(data).backend_id(folder.collection_id) if data else None
    if backend_id is None:
        return
    blob = await state.load(account, SIM_DEVICE_ID, "collection:" + folder.collection_id)
    options = CollectionState.from_json(blob).options if blob else {}
    options = options or parse_body_options(None, version, default_class=folder.item_class)
    have = {pair[1] for pair in map(split_server_id, received) if pair is not None}
    stamps = await app.backend.item_stamps(account, backend_id)
    mail = folder.item_class == "Email"
    for item_id in [i for i in stamps if i not in have][:MAX_PROBES]:
        try:
            if mail:
                items: list[Any] = await app.backend.fetch_emails(account, backend_id, [item_id],
                                                                  mime=mime_mode(options, version) == 2)
            else:
                items = await app.backend.fetch_items(account, backend_id, [item_id])
            for item in items:
                w = Writer()
                with w.tag(A.ApplicationData):
                    write_item(w, None if mail else folder.item_class, item, version, options)
                w.getvalue()
        except Exception as e:  # noqa: BLE001 - whatever breaks the handler is what we are after
            folder.failures.append(Failure("item", f"{type(e).__name__}: {e}"[:500], item_id))
