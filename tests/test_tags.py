"""The vendored code page table equals the project's spec table, and tags.py is generated."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from eas import tags

pytestmark = pytest.mark.kernel_independent

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC = ROOT.parent / "shared" / "spec" / "codepages.json"


@pytest.fixture(scope="module")
def spec() -> dict:
    if not SPEC.exists():
        pytest.fail(f"{SPEC} is missing: the tests need the project's shared/ beside the checkout")
    return json.loads(SPEC.read_text(encoding="utf-8"))


def test_issue_examples() -> None:
    assert tags.AirSync.Sync == 0x0005
    assert tags.Email.Subject == 0x0214
    assert tags.GAL.Data == tags.Gal.Data == 0x1012
    assert tags.name(tags.ComposeMail.Mime) == "ComposeMail:Mime"
    assert tags.name(0x033F) == "Page3:0x3F"


def test_vendored_table_equals_spec(spec: dict) -> None:
    all_versions = tuple(spec["version_values"])
    assert tags.VERSIONS == all_versions
    assert [(p.page, p.name) for p in tags.PAGES] == [(p["page"], p["name"]) for p in spec["pages"]]
    for page, vendored in zip(spec["pages"], tags.PAGES):
        expected = [
            (t["name"], t["token"], all_versions if t["versions"] == "all" else tuple(t["versions"]), t["opaque"])
            for t in page["tags"]
        ]
        assert [(t.name, t.token, t.versions, t.opaque) for t in vendored.tags] == expected, page["name"]
        for t, row in zip(vendored.tags, page["tags"]):
            assert set(t.other_names) == set(row.get("other_names", {}).values()) - {t.name}
            assert getattr(getattr(tags, page["name"]), t.name) == page["page"] << 8 | t.token


def test_table_counts() -> None:
    assert len(tags.BY_TAG) == 608
    assert sum(t.opaque for t in tags.BY_TAG.values()) == 8
    assert all(5 <= t.token <= 0x3F for t in tags.BY_TAG.values())


def test_tags_module_is_generated(spec: dict) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_tags.py"), str(SPEC)], capture_output=True, text=True, check=True
    ).stdout
    assert out == (ROOT / "eas" / "tags.py").read_text(encoding="utf-8"), "regenerate eas/tags.py with tools/gen_tags.py"
