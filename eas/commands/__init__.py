"""The EAS commands: one module per command, each with ``async def handle(ctx) -> HTTPResponse``.

``COMMANDS`` says, per command, which module handles it, the response's top element and
Status element (where the core writes a common status code for 14.0 and later), whether
the provisioning check applies (MS-ASPROV: not to Provision and Ping) and what the body
is. Modules are imported on first use.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eas.tags import (
    AirSync,
    Find,
    FolderHierarchy,
    GetItemEstimate,
    ItemOperations,
    Move,
    Ping,
    Provision,
    ResolveRecipients,
    Search,
    Settings,
)
from eas.tags import ComposeMail as CM
from eas.tags import MeetingResponse as MR
from eas.tags import ValidateCert as VC
from eas.wbxml import Node

if TYPE_CHECKING:
    from eas.context import Context
    from eas.protocol.http import HTTPResponse

Handler = Callable[["Context"], Awaitable["HTTPResponse"]]


def text(node: Node | None) -> str:
    """A request element's text ("" when absent). Opaque content where the protocol has
    text is read as UTF-8; bytes that are not, and NUL (which a WBXML string cannot
    carry), become U+FFFD, so the value can be echoed in a response and simply matches
    no id."""
    if node is None or node.text is None:
        return ""
    value = node.text
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").replace("\0", "\ufffd")
    return value


@dataclass(frozen=True, slots=True)
class CommandInfo:
    module: str
    root: int | None  # top element of the response
    status: int | None  # its Status child, for common status codes (14.0+)
    provisioning: bool = True  # the provisioning check applies
    empty_body: bool = False  # an empty request body is allowed
    mime_before_14: bool = False  # 2.5-12.1 post raw MIME, not WBXML


COMMANDS: dict[str, CommandInfo] = {
    "Sync": CommandInfo("sync", AirSync.Sync, AirSync.Status, empty_body=True),
    "SendMail": CommandInfo("sendmail", CM.SendMail, CM.Status, mime_before_14=True),
    "SmartForward": CommandInfo("sendmail", CM.SmartForward, CM.Status, mime_before_14=True),
    "SmartReply": CommandInfo("sendmail", CM.SmartReply, CM.Status, mime_before_14=True),
    "GetAttachment": CommandInfo("getattachment", None, None, empty_body=True),
    "FolderSync": CommandInfo("foldersync", FolderHierarchy.FolderSync, FolderHierarchy.Status),
    "FolderCreate": CommandInfo("folders", FolderHierarchy.FolderCreate, FolderHierarchy.Status),
    "FolderDelete": CommandInfo("folders", FolderHierarchy.FolderDelete, FolderHierarchy.Status),
    "FolderUpdate": CommandInfo("folders", FolderHierarchy.FolderUpdate, FolderHierarchy.Status),
    "MoveItems": CommandInfo("moveitems", Move.MoveItems, None),
    "GetItemEstimate": CommandInfo("getitemestimate", GetItemEstimate.GetItemEstimate, GetItemEstimate.Status),
    "Settings": CommandInfo("settings", Settings.Settings, Settings.Status, provisioning=False),
    "Ping": CommandInfo("ping", Ping.Ping, Ping.Status, provisioning=False, empty_body=True),
    "ItemOperations": CommandInfo("itemoperations", ItemOperations.ItemOperations, ItemOperations.Status),
    "Provision": CommandInfo("provision", Provision.Provision, Provision.Status, provisioning=False),
    "MeetingResponse": CommandInfo("meetingresponse", MR.MeetingResponse, MR.Status),
    "ValidateCert": CommandInfo("validatecert", VC.ValidateCert, VC.Status),
    "Search": CommandInfo("search", Search.Search, Search.Status),
    "Find": CommandInfo("find", Find.Find, Find.Status),
    "ResolveRecipients": CommandInfo("resolverecipients", ResolveRecipients.ResolveRecipients,
                                     ResolveRecipients.Status),
}


@functools.cache
def handler(command: str) -> Handler | None:
    """The handler of a command, or None when this server does not implement it (the
    module is imported on first use, so tools that never serve do not load it)."""
    info = COMMANDS.get(command)
    if info is None:
        return None
    found: Handler = importlib.import_module(f"eas.commands.{info.module}").handle
    return found
