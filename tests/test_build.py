"""Building the package: the C codec is optional, and its absence is said, not hidden.

Each case builds a real wheel from a copy of the source with pip, installs it into a
private directory and imports it in a fresh interpreter.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def build_and_import(tmp: pathlib.Path, **env: str) -> tuple[list[str], str, str]:
    """(files in the wheel, pip's output, IMPLEMENTATION seen by a fresh interpreter)."""
    src = tmp / "src"
    shutil.copytree(ROOT / "eas", src / "eas", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    full_env = {k: v for k, v in os.environ.items() if k != "EAS_PURE_PYTHON"} | env  # each case says
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp / "dist"), str(src)],
        capture_output=True, text=True, env=full_env, timeout=600,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    wheel = next((tmp / "dist").glob("eas-*.whl"))
    files = zipfile.ZipFile(wheel).namelist()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(tmp / "site"), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )
    env_run = {k: v for k, v in os.environ.items() if k != "EAS_PURE_PYTHON"}
    # -S: no .pth files, so an editable install of the checkout cannot shadow the wheel.
    env_run["PYTHONPATH"] = os.pathsep.join([str(tmp / "site"), sysconfig.get_paths()["purelib"]])
    probe = subprocess.run(
        [sys.executable, "-S", "-c", "import eas.wbxml as w; print(w.IMPLEMENTATION, w.decode(bytes.fromhex('03016a004b033000 01'.replace(' ', ''))))"],
        capture_output=True, text=True, env=env_run, cwd=tmp, timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    return files, build.stdout + build.stderr, probe.stdout.strip()


# Building does not depend on the kernel the suite runs on: one pass is enough.
pytestmark = pytest.mark.kernel_independent


def test_default_build_has_the_c_codec(tmp_path: pathlib.Path) -> None:
    files, _, seen = build_and_import(tmp_path)
    assert any(f.startswith("eas/_wbxml") and f.endswith(".so") for f in files)
    assert seen == "c Node(AirSync:SyncKey, '0')"


def test_pure_build_skips_the_c_codec(tmp_path: pathlib.Path) -> None:
    files, _, seen = build_and_import(tmp_path, EAS_PURE_PYTHON="1")
    assert not any(f.endswith(".so") for f in files)
    assert "eas/wbxml/_pure.py" in files and "eas/tags.py" in files
    assert seen == "python Node(AirSync:SyncKey, '0')"


def test_failed_c_build_warns_and_falls_back(tmp_path: pathlib.Path) -> None:
    files, output, seen = build_and_import(tmp_path, CC="false", LDSHARED="false")
    assert not any(f.endswith(".so") for f in files)
    assert "the C codec was not built" in output
    assert seen == "python Node(AirSync:SyncKey, '0')"
