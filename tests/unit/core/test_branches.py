"""Branch and tag rules (source sections 2.2 and 7.3)."""

from __future__ import annotations

import pytest

from release_actions.core.branches import check
from release_actions.core.policy import default_policy

POLICY = default_policy()


@pytest.mark.parametrize(
    ("ref", "kind", "ok"),
    [
        ("refs/heads/main", "main", True),
        ("main", "main", True),
        ("refs/heads/hotfix/ABC-123-fix-login", "hotfix", True),
        ("refs/heads/hotfix/fix-login", "hotfix", False),
        ("refs/heads/hotfix/abc-123-fix", "hotfix", False),
        ("refs/heads/hotfix/ABC-123-", "hotfix", False),
        ("refs/heads/release/v1.2.0", "release", True),
        ("refs/heads/release/v1.2", "release", False),
        ("refs/heads/release/1.2.0", "release", False),
        ("refs/heads/feat/search", "other", True),
        ("refs/tags/v1.2.3", "tag", True),
        ("refs/tags/v1.2.3-rc.1", "tag", True),
        ("refs/tags/1.2.3", "tag", False),
        ("refs/tags/v1.2.3$(id)", "tag", False),
    ],
)
def test_refs(ref: str, kind: str, ok: bool) -> None:
    result = check(POLICY, ref)
    assert (result.kind, result.ok) == (kind, ok), result.reason


def test_release_branch_carries_its_version() -> None:
    assert check(POLICY, "refs/heads/release/v1.2.0").version == "1.2.0"


def test_expectation_is_enforced() -> None:
    result = check(POLICY, "refs/heads/feat/x", expect="hotfix")
    assert not result.ok and "hotfix pattern" in result.reason
    wrong = check(POLICY, "refs/heads/main", expect="hotfix")
    assert not wrong.ok and "main ref" in wrong.reason


def test_wrong_hotfix_name_explains_the_pattern() -> None:
    reason = check(POLICY, "hotfix/fix-login").reason
    assert "hotfix/ABC-123-fix-login" in reason and "§7.3" in reason


@pytest.mark.parametrize("ref", ["", "refs/heads/", "hotfix/ABC-1-x\nmain", "a\x00b"])
def test_control_characters_and_empty_refs_fail(ref: str) -> None:
    assert not check(POLICY, ref).ok
