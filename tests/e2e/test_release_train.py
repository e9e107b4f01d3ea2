"""The release-train starter template under act: the code freeze on pull_request_target, and a
scheduled run that finds production due, tags the release branch and releases the tag.

The consumer copies workflow-templates/release-train.yml; the clock is fixed by
RELEASE_ACTIONS_NOW (the freeze check) or the template's `now` input (the schedule, whose
release calendar check reads it too). GitHub is the HTTP fake the real PyGithub talks to.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.act_harness import ActRun, make_consumer, run_act, starter_template
from tests.fakes.github import GitHubFake

pytestmark = pytest.mark.e2e

REPO = "triptrip/webapp"
TOKEN = "ghs_e2etoken"
# Thursday after the cut of Wed 2027-01-06 (release/v1.4.0), before its production on Tue 01-12.
FROZEN = "2027-01-07T12:00:00+09:00"
SHIP_AT = "2027-01-12T10:06:00+09:00"  # that Tuesday, a minute after the 10:05 cron

CHANGELOG = """\
# Changelog

## [Unreleased]

## [1.4.0] - 2027-01-12

### Added

- Trip sharing with friends.

## [1.3.0] - 2026-12-01

### Added

- Search.
"""


@pytest.fixture
def github() -> Iterator[GitHubFake]:
    with GitHubFake(repos=(REPO,), token=TOKEN) as fake:
        yield fake


def template(with_: dict[str, Any]) -> bytes:
    return starter_template("release-train", with_)


def train(
    tmp_path: Path,
    github: GitHubFake,
    *,
    event_name: str,
    event: dict[str, Any],
    with_: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> ActRun:
    consumer = make_consumer(
        tmp_path,
        "release",
        repo=REPO,
        files={
            ".github/workflows/release-train.yml": template(
                {"policy": ".github/release-policy.yml", **(with_ or {})}
            ),
            ".github/release-policy.yml": b"deploy:\n  target: simulated\n",
            "CHANGELOG.md": CHANGELOG.encode(),
        },
    )
    return run_act(
        consumer,
        event_name=event_name,
        event={"repository": {"full_name": REPO, "default_branch": "main"}, **event},
        workflow=".github/workflows/release-train.yml",
        env={"GITHUB_API_URL": github.url, **(env or {})},
        secrets={"GITHUB_TOKEN": TOKEN},
    )


def pull_request(title: str, labels: list[str], base: str = "release/v1.4.0") -> dict[str, Any]:
    return {
        "action": "opened",
        "number": 7,
        "pull_request": {
            "number": 7,
            "title": title,
            "labels": [{"name": name} for name in labels],
            "base": {"ref": base, "repo": {"full_name": REPO}},
            "head": {"ref": "feature/x", "repo": {"full_name": "mallory/webapp"}},
        },
    }


def test_a_feature_into_the_frozen_release_branch_is_blocked_and_a_fix_passes(
    tmp_path: Path, github: GitHubFake
) -> None:
    blocked = train(
        tmp_path / "feature",
        github,
        event_name="pull_request_target",
        event=pull_request("feat: share trips $(touch /tmp/pwned-train)", ["enhancement"]),
        env={"RELEASE_ACTIONS_NOW": FROZEN},
    )
    assert blocked.returncode != 0
    assert "frozen: only fixes merge into `release/v1.4.0`" in blocked.log, blocked.log[-4000:]
    assert "until 2027-01-12 10:00 JST" in blocked.log
    assert "Run Main What is due" not in blocked.log  # a pull request never runs the train
    assert not Path("/tmp/pwned-train").exists()
    fixed = train(
        tmp_path / "fix",
        github,
        event_name="pull_request_target",
        event=pull_request("fix: crash on login", []),
        env={"RELEASE_ACTIONS_NOW": FROZEN},
    )
    assert fixed.returncode == 0, fixed.log[-6000:]
    assert "allowed: a fix (its title): allowed during the freeze" in fixed.log
    assert github.writes() == []


def test_a_scheduled_run_on_tuesday_tags_the_release_branch_for_production(
    tmp_path: Path, github: GitHubFake
) -> None:
    """due -> ship under act. act (0.2.89) does not start the release.yml call nested in the
    reusable workflow, so production itself is covered by tests/e2e/test_release_workflows.py
    on a pushed tag, and here only up to the tag."""
    pull = github.add_pull(
        "feature/share", title="Trip sharing", merged=True, user="carol", repo=REPO
    )
    head = github.set_ref("release/v1.4.0", pull["merge_commit_sha"], repo=REPO)
    github.set_ref("release/v1.3.0", repo=REPO)
    github.set_ref("v1.4.0-rc.1", head, tag=True, repo=REPO)
    run = train(
        tmp_path,
        github,
        event_name="schedule",
        event={"schedule": "5 1 * * 2"},
        with_={"now": SHIP_AT},
    )
    assert run.returncode == 0, run.log[-8000:]
    assert github.repo(REPO).refs["v1.4.0"] == head
    assert "ship: the train cut Wed 2027-01-06, due since 2027-01-12T10:00:00+09:00" in run.log
    assert "Tagged v1.4.0 at `release/v1.4.0`" in run.log
    for job in ("Cut the release branch", "Tag the release candidate", "Code freeze"):
        assert f"[train/release-train/{job}" not in run.log, job
    # A second run in the same window finds the tag and changes nothing.
    again = train(
        tmp_path / "again",
        github,
        event_name="schedule",
        event={"schedule": "5 1 * * 2"},
        with_={"now": SHIP_AT},
    )
    assert again.returncode == 0, again.log[-8000:]
    assert "v1.4.0 is already at the head of `release/v1.4.0`" in again.log
