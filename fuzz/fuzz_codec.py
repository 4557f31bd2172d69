"""atheris harness of the WBXML codec through Python, over both kernels.

Per input:
  - decode with the C kernels (eas.wbxml._cffi) and the pure twin (eas.wbxml._pure), under
    the default limits and under tight limits derived from the input: the two must give
    the same tape and charset, or the same WBXMLError message and offset; nothing but
    WBXMLError may escape;
  - on success, eas.wbxml.decode under each kernel gives the same tree; encode of it gives
    the same bytes under both; decoding those gives the same tree again, whose encoding
    is the same bytes (decode -> encode -> decode is stable);
  - the input also drives both encoders with a raw Writer tape: same bytes or same error.
Any other exception, or any disagreement (AssertionError), is a crash.

Run through fuzz/run, or directly: python fuzz/fuzz_codec.py [libFuzzer flags] CORPUS_DIR.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["eas"]):
    from eas.wbxml import Limits, WBXMLError, _cffi, _impl, _pure, decode, encode
    from eas.wbxml._tape import NPAGES

KERNELS = (("c", _cffi), ("python", _pure))


def _outcome(fn, *args):  # type: ignore[no-untyped-def]
    """("ok", result) or ("error", message, offset); any other exception propagates."""
    try:
        return ("ok", fn(*args))
    except WBXMLError as e:
        assert type(e) is WBXMLError, type(e)
        return ("error", str(e), e.offset)


def _same(what: str, data: bytes, results: list[tuple[str, object]]) -> object:
    (n0, r0), *rest = results
    for n1, r1 in rest:
        if r1 != r0:
            raise AssertionError(f"{what}: {n0} and {n1} disagree on {data[:200]!r}:\n {n0}: {r0!r:.2000}\n {n1}: {r1!r:.2000}")
    return r0


def _limits(data: bytes) -> Limits:
    x = int.from_bytes(data[-3:], "little") if data else 0
    return Limits(max_depth=1 + x % 8, max_tokens=1 + (x >> 3) % 256, max_string_length=1 + (x >> 11) % 64)


def _with(kernel: str, fn, *args):  # type: ignore[no-untyped-def]
    previous = _impl.name
    _impl.select(kernel)
    try:
        return _outcome(fn, *args)
    finally:
        _impl.select(previous)


def check_decode(data: bytes) -> None:
    for limits in (Limits(), _limits(data)):
        _same(f"decode_tape {limits}", data, [(n, _outcome(k.decode_tape, data, limits)) for n, k in KERNELS])

    tree = _same("decode", data, [(n, _with(n, decode, data)) for n, _ in KERNELS])
    if tree[0] != "ok":
        return
    node = tree[1]
    wire = _same("encode", data, [(n, _with(n, encode, node)) for n, _ in KERNELS])
    assert wire[0] == "ok", f"a decoded tree does not encode: {wire!r} {node!r:.2000}"
    again = _same("decode of encode", wire[1], [(n, _with(n, decode, wire[1])) for n, _ in KERNELS])
    assert again == ("ok", node), f"decode(encode(decode(x))) != decode(x):\n {node!r:.2000}\n {again!r:.2000}"
    wire2 = _same("encode of decode of encode", wire[1], [(n, _with(n, encode, again[1])) for n, _ in KERNELS])
    assert wire2 == wire, f"encode is not stable: {wire!r:.2000} {wire2!r:.2000}"


def check_encode(data: bytes) -> None:
    """A Writer tape made from the input, straight into both encode_tape kernels."""
    if len(data) < 2:
        return
    ops = []
    for i in range(0, len(data) - 1, 2):
        b0, b1 = data[i], data[i + 1]
        kind, page = b0 & 7, (b0 >> 3) % (NPAGES + 1)
        if ops and ops[-1] & 7 == 4 and data[i - 1] & 0x80:
            ops.append(b1)  # the blob length after a LEAF_OPAQUE
        else:
            ops.append(2 if kind == 2 else (page << 8 | (b1 & 0x7F)) << 3 | kind)
    last = data.rfind(0)
    strs, blobs = data[: last + 1], data[len(data) // 2 :]
    _same("encode_tape", data, [(n, _outcome(k.encode_tape, ops, strs, blobs)) for n, k in KERNELS])


def TestOneInput(data: bytes) -> None:
    check_decode(data)
    check_encode(data)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
