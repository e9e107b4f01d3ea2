"""`flags audit` on the root command before the `flags` group is wired: a stand-in group.

The root group finds its groups through `release_actions.cli.COMMANDS`; tests put `flags`
there, pointing at this group, so that `main()` runs the command with its real error
handling, JSON envelope and outputs.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click
import pytest

from release_actions.cli.flag_audit import audit_command

group = click.Group("flags", help="Feature flags (stand-in for tests).")
group.add_command(audit_command)


def wire(monkeypatch: pytest.MonkeyPatch) -> None:
    """`release-actions flags audit` for this test, through the stand-in group."""
    from release_actions import cli

    monkeypatch.setitem(
        cli.COMMANDS, "flags", ("tests.support.flag_audit_cli:group", "Feature flags.")
    )


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
