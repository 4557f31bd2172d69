"""Protocol versions (MS-ASHTTP 2.2.1.1.2.6) and the commands each offers (MS-ASCMD 2.2.1)."""

from __future__ import annotations

from functools import total_ordering

from eas import tags


@total_ordering
class Version:
    """A protocol version such as ``16.1``; compares as a number, prints as the header value."""

    __slots__ = ("major", "minor")

    def __init__(self, text: str) -> None:
        if text not in tags.VERSIONS:
            raise ValueError(f"unknown ActiveSync protocol version {text!r}")
        major, minor = text.split(".")
        self.major, self.minor = int(major), int(minor)

    @classmethod
    def from_byte(cls, value: int) -> Version:
        """The version byte of the base64 query: version x 10 (MS-ASHTTP 2.2.1.1.1.1)."""
        return cls(f"{value // 10}.{value % 10}")

    @property
    def text(self) -> str:
        return f"{self.major}.{self.minor}"

    def _key(self) -> tuple[int, int]:
        return (self.major, self.minor)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            other = Version(other)
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: Version | str) -> bool:
        if isinstance(other, str):
            other = Version(other)
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Version({self.text!r})"


SUPPORTED_VERSIONS: tuple[Version, ...] = tuple(Version(v) for v in tags.VERSIONS)
LATEST = SUPPORTED_VERSIONS[-1]

# MS-ASCMD 2.2.1: command -> versions that have it (all when None).
_ALL = None
COMMAND_VERSIONS: dict[str, tuple[str, ...] | None] = {
    "Sync": _ALL,
    "SendMail": _ALL,
    "SmartForward": _ALL,
    "SmartReply": _ALL,
    "GetAttachment": ("2.5", "12.0", "12.1"),
    "FolderSync": _ALL,
    "FolderCreate": _ALL,
    "FolderDelete": _ALL,
    "FolderUpdate": _ALL,
    "MoveItems": _ALL,
    "GetItemEstimate": _ALL,
    "MeetingResponse": _ALL,
    "Search": _ALL,
    "Settings": ("12.0", "12.1", "14.0", "14.1", "16.0", "16.1"),
    "Ping": _ALL,
    "ItemOperations": ("12.0", "12.1", "14.0", "14.1", "16.0", "16.1"),
    "Provision": _ALL,
    "ResolveRecipients": _ALL,
    "ValidateCert": _ALL,
    "Find": ("16.1",),
}

# The command codes of the base64 query (MS-ASHTTP 2.2.1.1.1.1.2).
COMMAND_CODES: dict[int, str] = {
    0: "Sync",
    1: "SendMail",
    2: "SmartForward",
    3: "SmartReply",
    4: "GetAttachment",
    9: "FolderSync",
    10: "FolderCreate",
    11: "FolderDelete",
    12: "FolderUpdate",
    13: "MoveItems",
    14: "GetItemEstimate",
    15: "MeetingResponse",
    16: "Search",
    17: "Settings",
    18: "Ping",
    19: "ItemOperations",
    20: "Provision",
    21: "ResolveRecipients",
    22: "ValidateCert",
    23: "Find",
}


def command_in_version(command: str, version: Version) -> bool:
    """Whether ``command`` exists in ``version``."""
    versions = COMMAND_VERSIONS.get(command, ())
    return versions is None or version.text in versions


def has_tag(tag: int, version: Version) -> bool:
    """Whether the negotiated version has ``tag`` (so that it may be sent)."""
    info = tags.BY_TAG.get(tag)
    return info is not None and version.text in info.versions
