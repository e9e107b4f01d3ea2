"""Bounded input: a policy, scenario or CHANGELOG from a tag cannot keep a release job busy."""

from __future__ import annotations

import time
from pathlib import Path

from tests.conftest import RunCli

BOMB = "\n".join(
    ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
)


def test_an_oversized_policy_is_refused_with_the_limit(run_cli: RunCli, tmp_path: Path) -> None:
    policy = tmp_path / "release-policy.yml"
    policy.write_text("# padding\n" * 200_000 + "version: 1\n")  # 2 MB
    started = time.monotonic()
    r = run_cli("policy", "validate", str(policy))
    assert r.code == 2, r.stdout + r.stderr
    assert "the limit is 1 MiB" in r.stdout + r.stderr
    assert time.monotonic() - started < 5


def test_a_yaml_alias_bomb_is_refused(run_cli: RunCli, tmp_path: Path) -> None:
    policy = tmp_path / "release-policy.yml"
    policy.write_text(BOMB + "\n")
    started = time.monotonic()
    r = run_cli("policy", "validate", str(policy))
    assert r.code == 2, r.stdout + r.stderr
    assert "aliases expand to more than" in r.stdout + r.stderr
    assert time.monotonic() - started < 5


def test_a_scenario_file_has_the_same_bounds(run_cli: RunCli, tmp_path: Path) -> None:
    scenario = tmp_path / "s.yml"
    scenario.write_text(BOMB + "\n")
    r = run_cli("rehearse", "--scenario-file", str(scenario))
    assert r.code == 2, r.stdout + r.stderr
    assert "aliases expand to more than" in r.stdout + r.stderr


def test_an_oversized_changelog_is_refused_with_the_limit(run_cli: RunCli, tmp_path: Path) -> None:
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text("# Changelog\n\n## [1.0.0] - 2026-01-01\n\n" + "- x\n" * 1_200_000)
    r = run_cli("changelog", "extract", "1.0.0", "--file", str(changelog))
    assert r.code == 2, r.stdout + r.stderr
    assert "the limit is 4 MiB" in r.stdout + r.stderr
