"""A freeze exception read from the pull request's reviews (users and `org/team` approvers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakes.github import GitHubFake
from tests.integration.deploys import Cli

pytestmark = pytest.mark.integration

NOW = "2026-12-30T10:30:00+09:00"  # after the cut of release/v1.4.0


def open_pull(github: GitHubFake) -> int:
    """A feature pull request into the frozen release branch."""
    github.set_ref("release/v1.4.0", "main")
    github.set_ref("feature/fares")
    return int(
        github.add_pull("feature/fares", base="release/v1.4.0", title="feat: fares")["number"]
    )


def check(cli: Cli, github: GitHubFake, pull: int, policy: Path | None = None) -> tuple[int, dict]:  # type: ignore[type-arg]
    args = [
        "train",
        "freeze-check",
        "--base",
        "release/v1.4.0",
        "--labels",
        "freeze-exception",
        "--title",
        "feat: the new fare table",
        "--pull",
        str(pull),
        "--now",
        NOW,
        "--json",
    ]
    if policy is not None:
        args += ["--policy", str(policy)]
    r = cli(*args, env={"GITHUB_REPOSITORY": github.repo().full_name})
    return r.code, json.loads(r.stdout)


def test_an_exception_passes_once_a_listed_user_approved_it(cli: Cli, github: GitHubFake) -> None:
    pull = open_pull(github)
    code, out = check(cli, github, pull)
    assert code == 1 and not out["allowed"] and "not approved yet" in out["reason"]
    github.add_review(pull, "APPROVED", user="carol")
    assert check(cli, github, pull)[0] == 1  # carol is not a listed approver
    github.add_review(pull, "APPROVED", user="tech-lead")
    code, out = check(cli, github, pull)
    assert code == 0 and out["exception"] and out["approved_by"] == ["tech-lead"]
    # A later "changes requested" withdraws the approval.
    github.add_review(pull, "CHANGES_REQUESTED", user="tech-lead")
    assert check(cli, github, pull)[0] == 1
    # Nothing was written: the check only reads.
    assert github.writes() == []


def test_a_team_approver_is_a_member_s_approval(
    cli: Cli, github: GitHubFake, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(
        "train:\n  freeze_rules:\n    exception_approvers: [triptrip/release-managers]\n",
        encoding="utf-8",
    )
    github.add_team("triptrip", "release-managers", members=["dana"])
    pull = open_pull(github)
    github.add_review(pull, "APPROVED", user="erin")
    assert check(cli, github, pull, policy)[0] == 1  # erin is not in the team
    github.add_review(pull, "APPROVED", user="dana")
    code, out = check(cli, github, pull, policy)
    assert code == 0 and out["approved_by"] == ["triptrip/release-managers"]
