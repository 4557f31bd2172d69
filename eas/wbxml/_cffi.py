"""The C kernels (``eas._wbxml``, built by cffi) behind the same interface as ``_pure``.

``decode`` and ``Writer`` are the module's CPython glue (``_wbxml_py.c``), which
``eas_install`` adds at import; ``decode_tape``/``encode_tape`` call the kernels through
cffi so that the tests can compare them with the twin's.
"""

from __future__ import annotations

from eas._wbxml import ffi, lib  # type: ignore[import-not-found]
from eas.wbxml._errors import DEPTH_CAP, E_TAPE_FULL, Limits, encode_error, error
from eas.wbxml._tape import NPAGES, VALID

_VALID = ffi.new("uint64_t[]", VALID)
assert lib.EAS_WBXML_DEPTH_CAP == DEPTH_CAP
if lib.eas_install() != 0:
    raise ImportError("eas._wbxml: the CPython glue did not install (the error is printed above)")

from eas._wbxml import Writer, decode

__all__ = ["Writer", "decode", "decode_tape", "encode_tape"]


def decode_tape(data: bytes, limits: Limits) -> tuple[list[int], int]:
    """(tape, charset) for a whole document, or WBXMLError.

    The tape starts at a size that fits ordinary messages; a denser one (at most one
    record per token) is decoded again into a tape of its upper bound."""
    n = len(data)
    records = n // 8 + 64
    info = ffi.new("size_t[2]")
    src = ffi.from_buffer(data)
    while True:
        tape = ffi.new("uint32_t[]", 3 * records)
        r = lib.eas_wbxml_decode(
            src, n, _VALID, NPAGES,
            min(limits.max_depth, DEPTH_CAP), limits.max_tokens, limits.max_string_length,
            tape, 3 * records, info,
        )
        if r >= 0:
            return ffi.unpack(tape, r), info[1]
        if r != -E_TAPE_FULL:
            raise error(-r, info[0])
        records = min(n, limits.max_tokens) + 1


def encode_tape(ops: list[int], strs: bytes, blobs: bytes) -> bytes:
    """WBXML 1.3 bytes for a Writer tape, or WBXMLError naming the op at fault."""
    cap = 4 + 5 * len(ops) + len(strs) + len(blobs)
    out = ffi.new("uint8_t[]", cap)
    index = ffi.new("size_t *")
    r = lib.eas_wbxml_encode(
        ffi.new("uint32_t[]", ops), len(ops), ffi.from_buffer(strs), len(strs),
        ffi.from_buffer(blobs), len(blobs), _VALID, NPAGES, out, cap, index,
    )
    if r < 0:
        raise encode_error(-r, index[0])
    result: bytes = ffi.buffer(out, r)[:]
    return result
