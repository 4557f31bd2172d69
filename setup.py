"""Builds the C kernels with cffi; metadata lives in pyproject.toml.

EAS_PURE_PYTHON=1 skips the build. A failed build warns and leaves the pure-Python twin.
"""

import os

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def run(self) -> None:
        try:
            super().run()
        except Exception as e:  # no compiler, no headers: the twin still works
            self.warn(f"eas: the C codec was not built ({e}); the pure-Python twin will be used")

    def build_extension(self, ext) -> None:
        try:
            super().build_extension(ext)
        except Exception as e:
            self.warn(f"eas: the C codec was not built ({e}); the pure-Python twin will be used")


pure = os.environ.get("EAS_PURE_PYTHON", "") not in ("", "0")
setup(
    cffi_modules=[] if pure else ["eas/_wbxml_build.py:ffibuilder"],
    cmdclass={"build_ext": OptionalBuildExt},
)
