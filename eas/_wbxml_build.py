"""cffi builder for ``eas._wbxml`` (API mode, out of line).

``_wbxml.h`` is the cdef; ``_wbxml.c`` (the kernels) and ``_wbxml_py.c`` (their CPython
glue, installed by ``eas_install``) are the source: one place for the prototypes.
``setup.py`` names this file in ``cffi_modules``.
"""

from __future__ import annotations

import pathlib

from cffi import FFI

HERE = pathlib.Path(__file__).parent

ffibuilder = FFI()
ffibuilder.cdef((HERE / "_wbxml.h").read_text())
ffibuilder.set_source(
    "eas._wbxml",
    '#include "_wbxml.c"\n#include "_wbxml_py.c"',
    include_dirs=[str(HERE)],
    py_limited_api=False,  # the glue uses the full C API (buffers, type slots, __slots__ offsets)
    extra_compile_args=["-O2", "-std=c99", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
