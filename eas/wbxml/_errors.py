"""The codec's one error class and its limits, shared by the C kernels and the pure twin."""

from __future__ import annotations

from dataclasses import dataclass

DEPTH_CAP = 256  # EAS_WBXML_DEPTH_CAP in _wbxml.h: the C decoder's fixed per-depth array


class WBXMLError(ValueError):
    """Malformed or unencodable WBXML. ``offset`` is the byte offset at fault, when known."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.offset = offset
        super().__init__(message if offset is None else f"{message} at offset {offset}")


@dataclass(frozen=True)
class Limits:
    """Bounds on what ``decode`` accepts; each refusal is a ``WBXMLError``.

    The defaults fit the largest real EAS messages (a SendMail with a 40 MB attachment,
    a Sync window of 512 contacts) while keeping a hostile message's decoded tree to a
    few hundred bytes per input token.
    """

    max_depth: int = 64
    max_tokens: int = 1_000_000
    max_string_length: int = 64 * 1024 * 1024
    max_message_size: int = 64 * 1024 * 1024

    def __post_init__(self) -> None:
        for name in ("max_depth", "max_tokens", "max_string_length", "max_message_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 < value <= 0xFFFFFFFF:
                raise ValueError(f"Limits.{name} must be a positive 32-bit int, not {value!r}")
        if self.max_depth > DEPTH_CAP:
            raise ValueError(f"Limits.max_depth is at most {DEPTH_CAP}")


DEFAULT_LIMITS = Limits()

# Error codes of both kernels (the E_* enum in _wbxml.c) and what they mean.
MESSAGES = {
    1: "unexpected end of data",
    2: "unsupported WBXML version (1.1 to 1.3 are read)",
    3: "multi-byte integer overflows 32 bits",
    4: "unsupported charset (UTF-8, US-ASCII and ISO-8859-1 are read)",
    5: "string table longer than the message",
    6: "unknown code page",
    7: "unknown tag on this code page",
    8: "attributes are not used by ActiveSync",
    9: "LITERAL tokens are not used by ActiveSync",
    10: "EXT tokens are not used by ActiveSync",
    11: "processing instructions are not used by ActiveSync",
    12: "END without a start tag",
    13: "content outside the root element",
    14: "mixed content (text, opaque data and child elements in one element)",
    15: "elements nested deeper than the limit",
    16: "more tokens than the limit",
    17: "string or opaque data longer than the limit",
    18: "string without its terminating NUL",
    19: "string table reference out of range",
    20: "opaque length exceeds the message",
    21: "entity is not a valid character",
    22: "data after the root element",
    23: "decode tape full",  # internal: the wrapper retries with a larger tape
    24: "message larger than the limit",  # checked before the kernel runs
    40: "invalid writer operation",
    41: "tag not in the code page table",
    42: "unbalanced start and end of elements",
    43: "strings do not match the writer's operations",
    44: "opaque data does not match the writer's operations",
    45: "a document has exactly one root element",
    46: "output buffer too small",
}
E_TAPE_FULL = 23
E_SIZE = 24
E_BAD_OP = 40


def error(code: int, offset: int | None) -> WBXMLError:
    return WBXMLError(MESSAGES.get(code, f"error {code}"), offset)


def encode_error(code: int, index: int) -> WBXMLError:
    return WBXMLError(f"{MESSAGES.get(code, f'error {code}')} (writer operation {index})")
