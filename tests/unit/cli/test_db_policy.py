"""The db commands take their defaults from the policy's `migrations` section."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.conftest import RunCli

PLAIN = Path(__file__).resolve().parents[2] / "fixtures" / "migrations" / "plain"


def test_layout_and_dir_come_from_the_policy(run_cli: RunCli, tmp_path: Path) -> None:
    # A copy outside any git repository: with no base to compare with, every one is new.
    plain = tmp_path / "plain"
    shutil.copytree(PLAIN, plain)
    policy = tmp_path / "policy.yml"
    policy.write_text(f"migrations:\n  layout: plain\n  dir: {plain}\n")
    env = {"GIT_CEILING_DIRECTORIES": str(tmp_path)}
    from_policy = run_cli("db", "--policy", str(policy), "lint", "--no-squawk", env=env)
    given = run_cli("db", "lint", "--layout", "plain", "--dir", str(plain), "--no-squawk", env=env)
    assert from_policy.code == given.code == 0, from_policy.stdout + from_policy.stderr
    assert from_policy.outputs == given.outputs
    assert "3 new of 3 migration(s)" in from_policy.stdout
    # Without the policy the Prisma layout is looked for, and finds none in this folder.
    prisma = run_cli("db", "lint", "--dir", str(PLAIN), "--no-squawk")
    assert "0 new of 0 migration(s)" in prisma.stdout


def test_a_bad_migrations_section_names_its_line(run_cli: RunCli, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text("migrations:\n  layout: flyway\n")
    result = run_cli("db", "--policy", str(policy), "lint")
    assert result.code == 2
    assert f"file={policy},line=2" in result.stdout and "migrations.layout" in result.stdout
