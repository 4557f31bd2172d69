"""Provisioning policies (MS-ASPROV): the model of every EASProvisionDoc element, the
permissive default policy, and the two forms a policy travels in.

A policy is a plain dict of EASProvisionDoc element names to values, so that policies can
come from configuration files, a database or a hook and be hashed (``PolicyDecision.hash``)
as they are. ``effective`` lays a policy over ``DEFAULT_POLICY`` and checks every value
against the element's type (MS-ASPROV 2.2.2.x, with the XSD types of the MS-ASPROV schema).
Values: ``bool`` (or 0/1) for booleans, ``int`` for numbers, ``None`` for "no value" (sent
as an empty element where the type allows one, MS-ASPROV 2.2.3.2/2.2.3.3, left out
otherwise), a list of strings for the two application lists.

The policy is sent as EASProvisionDoc WBXML to 12.0 and later (``write_provision_doc``,
only the elements the negotiated version has: 12.0 lacks most of them) and as a WAP
provisioning XML string to 2.5 (``wap_provisioning_xml``, MS-ASPROV 2.2.2.24.2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from eas.protocol.versions import Version, has_tag
from eas.tags import Provision as P
from eas.wbxml import Writer

PolicyValue: TypeAlias = bool | int | None | Sequence[str]

UINT32_MAX = 0xFFFFFFFF


class PolicyError(ValueError):
    """A policy names an element that does not exist or gives one a value of the wrong
    type; a configuration error, reported when the policy is first used."""


@dataclass(frozen=True, slots=True)
class PolicyElement:
    """One child of EASProvisionDoc: its name and tag, its type (``boolean``, ``unsigned``,
    ``integer`` or ``list``), the values it may take, and whether it may be sent empty."""

    name: str
    tag: int
    kind: str
    section: str
    low: int = 0
    high: int = 1
    choices: tuple[int, ...] = ()
    empty: bool = False  # unsignedByteOrEmpty / unsignedIntOrEmpty
    item: int = 0  # the child tag of a list

    def check(self, value: object) -> PolicyValue:
        """The value normalised (booleans as 0/1), or ``PolicyError``."""
        if self.kind == "list":
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise PolicyError(f"{self.name} must be a list of strings")
            for entry in value:
                if not isinstance(entry, str) or not entry or "\0" in entry or len(entry) > 1024:
                    raise PolicyError(f"{self.name} holds {entry!r}, not a non-empty string")
            return list(value)
        if value is None:
            return None
        if self.kind == "boolean":
            if isinstance(value, bool) or value in (0, 1):
                return 1 if value else 0
            raise PolicyError(f"{self.name} must be a boolean, not {value!r}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise PolicyError(f"{self.name} must be an integer, not {value!r}")
        if self.choices and value not in self.choices:
            raise PolicyError(f"{self.name} must be one of {self.choices}, not {value}")
        if not self.low <= value <= self.high:
            raise PolicyError(f"{self.name} must be within {self.low}..{self.high}, not {value}")
        return value


def _bool(name: str, tag: int, section: str) -> PolicyElement:
    return PolicyElement(name, tag, "boolean", section)


def _uint(name: str, tag: int, section: str, low: int = 0, high: int = UINT32_MAX, *,
          empty: bool = False, choices: tuple[int, ...] = ()) -> PolicyElement:
    return PolicyElement(name, tag, "unsigned", section, low, high, choices, empty)


# MS-ASPROV 2.2.2.x, in the order of the EASProvisionDoc schema sequence (MS-ASPROV 6.1),
# which is not quite token order (PasswordRecoveryEnabled comes before
# RequireStorageCardEncryption). The versions of each element are those of its tag; they
# agree with the "Protocol Versions" table of each element's section (11 elements from
# 12.0, the other 31 from 12.1, none in 2.5), which tests/test_policies.py holds as a table.
ELEMENTS: tuple[PolicyElement, ...] = (
    _bool("DevicePasswordEnabled", P.DevicePasswordEnabled, "2.2.2.25"),
    _bool("AlphanumericDevicePasswordRequired", P.AlphanumericDevicePasswordRequired, "2.2.2.20"),
    _bool("PasswordRecoveryEnabled", P.PasswordRecoveryEnabled, "2.2.2.39"),
    _bool("RequireStorageCardEncryption", P.RequireStorageCardEncryption, "2.2.2.52"),
    _bool("AttachmentsEnabled", P.AttachmentsEnabled, "2.2.2.23"),
    _uint("MinDevicePasswordLength", P.MinDevicePasswordLength, "2.2.2.38", 1, 16, empty=True),
    _uint("MaxInactivityTimeDeviceLock", P.MaxInactivityTimeDeviceLock, "2.2.2.36", empty=True),
    _uint("MaxDevicePasswordFailedAttempts", P.MaxDevicePasswordFailedAttempts, "2.2.2.32", 4, 16, empty=True),
    _uint("MaxAttachmentSize", P.MaxAttachmentSize, "2.2.2.30", empty=True),
    _bool("AllowSimpleDevicePassword", P.AllowSimpleDevicePassword, "2.2.2.12"),
    _uint("DevicePasswordExpiration", P.DevicePasswordExpiration, "2.2.2.26", empty=True),
    _uint("DevicePasswordHistory", P.DevicePasswordHistory, "2.2.2.27"),
    _bool("AllowStorageCard", P.AllowStorageCard, "2.2.2.15"),
    _bool("AllowCamera", P.AllowCamera, "2.2.2.4"),
    _bool("RequireDeviceEncryption", P.RequireDeviceEncryption, "2.2.2.46"),
    _bool("AllowUnsignedApplications", P.AllowUnsignedApplications, "2.2.2.17"),
    _bool("AllowUnsignedInstallationPackages", P.AllowUnsignedInstallationPackages, "2.2.2.18"),
    _uint("MinDevicePasswordComplexCharacters", P.MinDevicePasswordComplexCharacters, "2.2.2.37", 1, 4),
    _bool("AllowWiFi", P.AllowWiFi, "2.2.2.19"),
    _bool("AllowTextMessaging", P.AllowTextMessaging, "2.2.2.16"),
    _bool("AllowPOPIMAPEmail", P.AllowPOPIMAPEmail, "2.2.2.10"),
    _uint("AllowBluetooth", P.AllowBluetooth, "2.2.2.2", 0, 2),  # 0 off, 1 hands-free only, 2 on
    _bool("AllowIrDA", P.AllowIrDA, "2.2.2.9"),
    _bool("RequireManualSyncWhenRoaming", P.RequireManualSyncWhenRoaming, "2.2.2.49"),
    _bool("AllowDesktopSync", P.AllowDesktopSync, "2.2.2.6"),
    _uint("MaxCalendarAgeFilter", P.MaxCalendarAgeFilter, "2.2.2.31", 0, 7, choices=(0, 4, 5, 6, 7)),
    _bool("AllowHTMLEmail", P.AllowHTMLEmail, "2.2.2.7"),
    _uint("MaxEmailAgeFilter", P.MaxEmailAgeFilter, "2.2.2.33", 0, 5),
    PolicyElement("MaxEmailBodyTruncationSize", P.MaxEmailBodyTruncationSize, "integer", "2.2.2.34", -1,
                  2**31 - 1),
    PolicyElement("MaxEmailHTMLBodyTruncationSize", P.MaxEmailHTMLBodyTruncationSize, "integer", "2.2.2.35", -1,
                  2**31 - 1),
    _bool("RequireSignedSMIMEMessages", P.RequireSignedSMIMEMessages, "2.2.2.51"),
    _bool("RequireEncryptedSMIMEMessages", P.RequireEncryptedSMIMEMessages, "2.2.2.47"),
    PolicyElement("RequireSignedSMIMEAlgorithm", P.RequireSignedSMIMEAlgorithm, "integer", "2.2.2.50", 0, 1),
    PolicyElement("RequireEncryptionSMIMEAlgorithm", P.RequireEncryptionSMIMEAlgorithm, "integer", "2.2.2.48",
                  0, 4),
    PolicyElement("AllowSMIMEEncryptionAlgorithmNegotiation", P.AllowSMIMEEncryptionAlgorithmNegotiation,
                  "integer", "2.2.2.13", 0, 2),
    _bool("AllowSMIMESoftCerts", P.AllowSMIMESoftCerts, "2.2.2.14"),
    _bool("AllowBrowser", P.AllowBrowser, "2.2.2.3"),
    _bool("AllowConsumerEmail", P.AllowConsumerEmail, "2.2.2.5"),
    _bool("AllowRemoteDesktop", P.AllowRemoteDesktop, "2.2.2.11"),
    _bool("AllowInternetSharing", P.AllowInternetSharing, "2.2.2.8"),
    PolicyElement("UnapprovedInROMApplicationList", P.UnapprovedInROMApplicationList, "list", "2.2.2.55",
                  item=P.ApplicationName),
    PolicyElement("ApprovedApplicationList", P.ApprovedApplicationList, "list", "2.2.2.22", item=P.Hash),
)

BY_NAME: dict[str, PolicyElement] = {e.name: e for e in ELEMENTS}

# What Exchange's default mobile device mailbox policy sends: everything allowed, no
# device password, no encryption, no size or age limits, no truncation.
DEFAULT_POLICY: dict[str, PolicyValue] = {
    "DevicePasswordEnabled": 0,
    "AlphanumericDevicePasswordRequired": 0,
    "PasswordRecoveryEnabled": 0,
    "RequireStorageCardEncryption": 0,
    "AttachmentsEnabled": 1,
    "MinDevicePasswordLength": None,
    "MaxInactivityTimeDeviceLock": None,
    "MaxDevicePasswordFailedAttempts": None,
    "MaxAttachmentSize": None,
    "AllowSimpleDevicePassword": 1,
    "DevicePasswordExpiration": None,
    "DevicePasswordHistory": 0,
    "AllowStorageCard": 1,
    "AllowCamera": 1,
    "RequireDeviceEncryption": 0,
    "AllowUnsignedApplications": 1,
    "AllowUnsignedInstallationPackages": 1,
    "MinDevicePasswordComplexCharacters": 1,
    "AllowWiFi": 1,
    "AllowTextMessaging": 1,
    "AllowPOPIMAPEmail": 1,
    "AllowBluetooth": 2,
    "AllowIrDA": 1,
    "RequireManualSyncWhenRoaming": 0,
    "AllowDesktopSync": 1,
    "MaxCalendarAgeFilter": 0,
    "AllowHTMLEmail": 1,
    "MaxEmailAgeFilter": 0,
    "MaxEmailBodyTruncationSize": -1,
    "MaxEmailHTMLBodyTruncationSize": -1,
    "RequireSignedSMIMEMessages": 0,
    "RequireEncryptedSMIMEMessages": 0,
    "RequireSignedSMIMEAlgorithm": 0,
    "RequireEncryptionSMIMEAlgorithm": 0,
    "AllowSMIMEEncryptionAlgorithmNegotiation": 2,
    "AllowSMIMESoftCerts": 1,
    "AllowBrowser": 1,
    "AllowConsumerEmail": 1,
    "AllowRemoteDesktop": 1,
    "AllowInternetSharing": 1,
    "UnapprovedInROMApplicationList": [],
    "ApprovedApplicationList": [],
}

# MS-ASPROV 2.2.2.43: the PolicyType of each form.
WAP_POLICY_TYPE = "MS-WAP-Provisioning-XML"  # 2.5
WBXML_POLICY_TYPE = "MS-EAS-Provisioning-WBXML"  # 12.0 and later


def policy_type(version: Version | str) -> str:
    """The PolicyType a client of this version asks for and gets."""
    return WAP_POLICY_TYPE if Version(str(version)) < Version("12.0") else WBXML_POLICY_TYPE


def effective(settings: Mapping[str, object]) -> dict[str, PolicyValue]:
    """``settings`` laid over the default policy, every value checked; ``PolicyError``
    names the first element that does not exist or has a wrong value."""
    out = dict(DEFAULT_POLICY)
    for name, value in settings.items():
        element = BY_NAME.get(name)
        if element is None:
            raise PolicyError(f"{name!r} is not an EASProvisionDoc element")
        out[name] = element.check(value)
    return out


def write_provision_doc(w: Writer, settings: Mapping[str, object], version: Version | str) -> None:
    """EASProvisionDoc (MS-ASPROV 2.2.2.28) of the policy, with only the elements
    ``version`` has; "no value" is an empty element where the type allows one."""
    values = effective(settings)
    version = Version(str(version))
    with w.tag(P.EASProvisionDoc):
        for element in ELEMENTS:
            if not has_tag(element.tag, version):
                continue
            value = values[element.name]
            if element.kind == "list":
                entries = list(value or ())  # type: ignore[arg-type]
                if not entries:
                    w.empty(element.tag)
                    continue
                with w.tag(element.tag):
                    for entry in entries:
                        w.leaf(element.item, entry)
            elif value is None:
                if element.empty:
                    w.empty(element.tag)
            else:
                w.leaf(element.tag, int(value))  # type: ignore[arg-type]


# MS-ASPROV 2.2.2.24.2: the registry keys of the Windows Mobile local authentication
# subsystem that a 2.5 policy sets.
_AE_KEY = "HKLM\\Comm\\Security\\Policy\\LASSD\\AE\\{50C13377-C66D-400C-889E-C316FC4AB374}"
_LASSD_KEY = "HKLM\\Comm\\Security\\Policy\\LASSD"
_LAP_PW_KEY = "HKLM\\Comm\\Security\\Policy\\LASSD\\LAP\\lap_pw"


def wap_provisioning_xml(settings: Mapping[str, object]) -> str:
    """The policy as the 2.5 Data string (MS-ASPROV 2.2.2.24.2): the SecurityPolicy
    characteristic (4131: 0 a device password is required, 1 not; 4133: 0 the device
    may not be unlocked from a desktop, 1 it may) and, with a password, the registry
    values of the inactivity lock (minutes), the wipe threshold, the minimum length and
    the complexity (0 alphanumeric, 2 anything). 2.5 devices know nothing else."""
    values = effective(settings)
    password = bool(values["DevicePasswordEnabled"])
    parts = ['<wap-provisioningdoc><characteristic type="SecurityPolicy">',
             _parm("4131", 0 if password else 1), _parm("4133", 0 if password else 1), "</characteristic>"]
    if password:
        lock = values["MaxInactivityTimeDeviceLock"]
        # >= 9999 seconds means no lock (MS-ASPROV 2.2.2.36).
        locks = isinstance(lock, int) and 0 < lock < 9999
        minutes = min(max(math.ceil(lock / 60), 1), 9999) if locks else 0  # type: ignore[operator]
        threshold = values["MaxDevicePasswordFailedAttempts"]
        wipe = threshold if isinstance(threshold, int) else 0  # 0: never wipe
        codeword = wipe // 2 if wipe else -1  # ask for a codeword halfway to the wipe
        length = values["MinDevicePasswordLength"]
        parts += ['<characteristic type="Registry">',
                  f'<characteristic type="{_AE_KEY}">', _parm("AEFrequencyType", 1 if locks else 0),
                  _parm("AEFrequencyValue", minutes), "</characteristic>",
                  f'<characteristic type="{_LASSD_KEY}">', _parm("DeviceWipeThreshold", wipe), "</characteristic>",
                  f'<characteristic type="{_LASSD_KEY}">', _parm("CodewordFrequency", codeword), "</characteristic>",
                  f'<characteristic type="{_LAP_PW_KEY}">',
                  _parm("MinimumPasswordLength", length if isinstance(length, int) else 1), "</characteristic>",
                  f'<characteristic type="{_LAP_PW_KEY}">',
                  _parm("PasswordComplexity", 0 if values["AlphanumericDevicePasswordRequired"] else 2),
                  "</characteristic>", "</characteristic>"]
    parts.append("</wap-provisioningdoc>")
    return "".join(parts)


def _parm(name: str, value: int) -> str:
    return f'<parm name="{name}" value="{value}"/>'
