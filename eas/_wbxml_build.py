"""cffi builder for ``eas._wbxml`` (API mode, out of line).

``_wbxml.h`` is the cdef and ``_wbxml.c`` the source: one place for the prototypes.
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
    '#include "_wbxml.c"',
    include_dirs=[str(HERE)],
    extra_compile_args=["-O2", "-std=c99", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
