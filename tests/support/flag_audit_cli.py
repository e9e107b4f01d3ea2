"""Fixtures of `flags audit`'s tests: export documents as `flags export` writes them, and git
checkouts whose code references the flags."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def write_export(path: Path, flags: Iterable[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"flags": list(flags)}, indent=2) + "\n", encoding="utf-8")
    return path


def exported(key: str, kind: str | None = "release", **fields: Any) -> dict[str, Any]:
    """One flag as `flags export` writes it; every field present."""
    base: dict[str, Any] = {
        "key": key,
        "kind": kind,
        "owner": None,
        "archived": False,
        "created_at": "2025-10-01T00:00:00Z",
        "ga_at": None,
        "experiment_ended_at": None,
        "last_reviewed_at": None,
        "code_references": [],
        "environments": {"production": {"on": True}},
    }
    return {**base, **fields}


def git_checkout(folder: Path, files: dict[str, str]) -> Path:
    """A git repository at ``folder`` with ``files`` committed."""
    folder.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    git = ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=folder, check=True)
    subprocess.run([*git, "add", "-A"], cwd=folder, check=True)
    subprocess.run([*git, "commit", "-qm", "code", "--allow-empty"], cwd=folder, check=True)
    return folder


def commit_all(folder: Path, message: str = "change") -> None:
    git = ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    subprocess.run([*git, "add", "-A"], cwd=folder, check=True)
    subprocess.run([*git, "commit", "-qm", message, "--allow-empty"], cwd=folder, check=True)
