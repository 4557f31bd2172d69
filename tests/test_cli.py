"""The ``eas wbxml`` command, run as a real process."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from eas.wbxml import decode

SAMPLE = pathlib.Path(__file__).resolve().parents[1] / "eas" / "samples" / "sync-request.wbxml"


def run(*args: str, stdin: bytes = b"", implementation: str = "c") -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ)
    if implementation == "python":
        env["EAS_PURE_PYTHON"] = "1"
    return subprocess.run([sys.executable, "-m", "eas.cli", *args], input=stdin, capture_output=True, env=env, timeout=60)


def test_decode_file_and_stdin(implementation: str) -> None:
    by_file = run("wbxml", "decode", str(SAMPLE), implementation=implementation)
    by_stdin = run("wbxml", "decode", stdin=SAMPLE.read_bytes(), implementation=implementation)
    by_dash = run("wbxml", "decode", "-", stdin=SAMPLE.read_bytes(), implementation=implementation)
    assert by_file.returncode == 0, by_file.stderr
    assert by_file.stdout == by_stdin.stdout == by_dash.stdout
    assert by_file.stdout.startswith(b'<?xml version="1.0" encoding="utf-8"?>\n<Sync xmlns="AirSync:"')
    assert b"<SyncKey>1</SyncKey>" in by_file.stdout


def test_encode_round_trip(implementation: str, tmp_path: pathlib.Path) -> None:
    xml = run("wbxml", "decode", str(SAMPLE), implementation=implementation).stdout
    (tmp_path / "in.xml").write_bytes(xml)
    out = run("wbxml", "encode", str(tmp_path / "in.xml"), implementation=implementation)
    assert out.returncode == 0, out.stderr
    assert out.stdout == SAMPLE.read_bytes()
    assert run("wbxml", "encode", stdin=xml, implementation=implementation).stdout == SAMPLE.read_bytes()


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("wbxml", "decode"), b"\x03\x01\x6a\x00\x45\x03ab", b"eas: string without its terminating NUL at offset 5\n"),
        (("wbxml", "decode"), b"\x03\x01\x6a\x00\x45\x4b\x030\x00\x01", b"eas: unexpected end of data at offset 10\n"),
        (("wbxml", "decode"), b"", b"eas: unexpected end of data at offset 0\n"),
        (("wbxml", "encode"), b"<Sync xmlns='AirSync:'><Bogus/></Sync>", b"eas: line 1: no tag Bogus on code page AirSync\n"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    args: tuple[str, ...], stdin: bytes, message: bytes, implementation: str
) -> None:
    r = run(*args, stdin=stdin, implementation=implementation)
    assert r.returncode == 2
    assert r.stderr == message
    assert r.stdout == b""


def test_missing_file_and_usage() -> None:
    r = run("wbxml", "decode", "/nonexistent/file")
    assert r.returncode == 1 and b"No such file" in r.stderr and r.stderr.count(b"\n") == 1
    assert run("wbxml").returncode == 2
    assert run("--version").stdout.startswith(b"eas ")


def test_sample_is_a_sync_request() -> None:
    from eas.tags import AirSync

    assert decode(SAMPLE.read_bytes()).tag == AirSync.Sync
