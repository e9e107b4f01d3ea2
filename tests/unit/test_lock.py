"""The actions' hash-locked requirements (actions/_lib/lock) are current with pyproject.toml."""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lock_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lock_tool", ROOT / "tools" / "lock.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entries(path: Path) -> dict[str, str]:
    """Each pinned package's block (name==version and its hashes) in one lock file."""
    text = path.read_text()
    return {
        m.group(1): m.group(0)
        for m in re.finditer(r"^([a-z0-9._-]+)==\S+.*?(?=^\S|\Z)", text, re.M | re.S)
    }


def test_the_lock_is_current_with_pyproject() -> None:
    assert _lock_tool().problems() == []


def test_a_dependency_changed_in_pyproject_makes_the_lock_out_of_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = _lock_tool()
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(tool.LOCK_DIR, tmp_path / "lock")
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    monkeypatch.setattr(tool, "LOCK_DIR", tmp_path / "lock")
    assert tool.problems() == []
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"kubernetes>=29.0"', '"kubernetes>=30.0"'))
    assert tool.problems() == ["lock/kubernetes.txt was made from other requirements"]


def test_every_requirement_is_pinned_and_hashed_and_agrees_across_files() -> None:
    seen: dict[str, str] = {}
    files = sorted((ROOT / "actions" / "_lib" / "lock").glob("*.txt"))
    assert {p.stem for p in files} >= {"base", "build", "kubernetes", "github"}
    for path in files:
        entries = _entries(path)
        assert entries, path
        for name, block in entries.items():
            assert "--hash=sha256:" in block, f"{path.name}: {name} has no hash"
            # The same version and hashes in every file, so any union of files installs.
            assert seen.setdefault(name, block) == block, f"{name} differs in {path.name}"
    # `play` is back for mobile releases (issue 17): only its own lock file brings it.
    assert all("google-api-python-client" not in p.read_text() for p in files if p.stem != "play")


def test_each_extra_file_holds_the_whole_core() -> None:
    lock = ROOT / "actions" / "_lib" / "lock"
    core = set(_entries(lock / "base.txt"))
    for path in lock.glob("*.txt"):
        if path.stem != "build":
            assert core <= set(_entries(path)), path.name
