"""The release and hotfix starter templates under act, as a consumer uses them.

The consumer copies workflow-templates/*.yml and sets its own `with:` values; here those
point the deploy at the built-in simulator and the calendar at a fixed time. GitHub and
Slack are HTTP fakes the real clients talk to. act does not enforce `environment:`
protection rules or `concurrency:`; the workflows' YAML checks (tests/test_repository.py)
cover those keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.act_harness import ActRun, make_consumer, run_act
from tests.e2e.act_harness import starter_template as template
from tests.fakes.github import GitHubFake
from tests.fakes.slack import SlackFake

pytestmark = pytest.mark.e2e

REPO = "triptrip/webapp"
TOKEN = "ghs_e2etoken"
ALLOWED_AT = "2026-12-01T10:00:00+09:00"  # Tuesday 10:00 JST
BLOCKED_AT = "2026-12-29T10:00:00+09:00"  # New Year holidays

CHANGELOG = """\
# Changelog

## [Unreleased]

## [{version}] - 2026-11-30

{body}

## [1.5.0] - 2026-11-01

### Added

- Search.
"""


@pytest.fixture
def github() -> Iterator[GitHubFake]:
    with GitHubFake(repos=(REPO,), token=TOKEN) as fake:
        yield fake


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


def seed_tag(github: GitHubFake, tag: str) -> None:
    """The tagged commit's pull request (2 approvals) and passing checks, for readiness."""
    pull = github.add_pull(
        "feature/share", title="Trip sharing", merged=True, user="carol", repo=REPO
    )
    github.set_ref(tag, pull["merge_commit_sha"], tag=True, repo=REPO)
    for login in ("ann", "bob"):
        github.add_review(pull["number"], "APPROVED", user=login, repo=REPO)
    github.add_check_run(tag, "unit", repo=REPO)


def release(
    tmp_path: Path,
    github: GitHubFake,
    slack: SlackFake,
    tag: str,
    *,
    body: str,
    scenario: str = "healthy",
    at: str = ALLOWED_AT,
    with_: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    policy: str = "deploy:\n  target: simulated\n",
) -> ActRun:
    version = tag.removeprefix("v")
    workflow = template(
        "release",
        {
            "policy": ".github/release-policy.yml",
            "simulation-scenario": scenario,
            "at": at,
            **(with_ or {}),
        },
    )
    consumer = make_consumer(
        tmp_path,
        "release",
        repo=REPO,
        files={
            ".github/workflows/release.yml": workflow,
            ".github/release-policy.yml": policy.encode(),
            "CHANGELOG.md": CHANGELOG.format(version=version, body=body).encode(),
        },
    )
    return run_act(
        consumer,
        event_name="push",
        event={"ref": f"refs/tags/{tag}", "repository": {"full_name": REPO}},
        workflow=".github/workflows/release.yml",
        env={"GITHUB_API_URL": github.url, **(env or {})},
        secrets={"GITHUB_TOKEN": TOKEN, "SLACK_WEBHOOK_URL": slack.webhook_url},
    )


def test_a_good_tag_is_promoted_and_released(
    tmp_path: Path, github: GitHubFake, slack: SlackFake
) -> None:
    seed_tag(github, "v1.6.0")
    body = "### Added\n\n- Trip sharing with friends."
    # The build files an earlier job of the caller uploaded as the artifact `dist`.
    artifacts = tmp_path / "artifacts"
    (artifacts / "dist").mkdir(parents=True)
    (artifacts / "dist" / "webapp-1.6.0.tar.gz").write_bytes(b"the build of 1.6.0\n")
    run = release(
        tmp_path,
        github,
        slack,
        "v1.6.0",
        body=body,
        with_={"release-artifact": "dist", "release-checksums": "asset"},
        env={"E2E_ARTIFACTS": str(artifacts)},
    )
    assert run.returncode == 0, run.log[-6000:]
    published = github.release("v1.6.0", REPO)
    assert published["body"] == body and published["prerelease"] is False
    assert sorted(a["name"] for a in github.assets("v1.6.0", REPO)) == [
        "SHA256SUMS",
        "webapp-1.6.0.tar.gz",
    ]
    assert github.asset_bytes("v1.6.0", "webapp-1.6.0.tar.gz", REPO) == b"the build of 1.6.0\n"
    sums = github.asset_bytes("v1.6.0", "SHA256SUMS", REPO).decode()
    assert sums.endswith("  webapp-1.6.0.tar.gz\n"), sums
    assert "promoted" in run.log
    assert "Run Main Watch the release" in run.log  # a canary's promotion is then watched
    assert (run.results / "build.log").read_text() == "built 1.6.0\n"
    assert (run.results / "smoke.log").read_text() == "smoke 1.6.0\n"
    texts = [m.text for m in slack.messages]
    assert any("v1.6.0" in t and "start" in t.lower() for t in texts), texts
    assert any(
        "v1.6.0" in t and ("complete" in t.lower() or "success" in t.lower()) for t in texts
    ), texts
    assert [d for d in github.repo(REPO).deployments if d.get("task") == "rollback"] == []


def test_a_bad_canary_rolls_back_records_and_fails(
    tmp_path: Path, github: GitHubFake, slack: SlackFake
) -> None:
    seed_tag(github, "v1.6.0")
    run = release(
        tmp_path, github, slack, "v1.6.0", body="### Added\n\n- x", scenario="error-spike"
    )
    assert run.returncode != 0
    assert github.releases == []  # nothing published
    records = [d for d in github.repo(REPO).deployments if d.get("task") == "rollback"]
    assert len(records) == 1, github.repo(REPO).deployments
    payload = records[0]["payload"]
    record = payload if isinstance(payload, dict) else json.loads(payload)
    assert record["id"].startswith("RB-") and record["from_version"] == "v1.6.0"
    assert any(
        "rolled back" in m.text.lower() or "rollback" in m.text.lower() for m in slack.messages
    )
    assert "rolled_back" in run.log


def test_a_security_release_goes_blue_green_from_the_policy(
    tmp_path: Path, github: GitHubFake, slack: SlackFake
) -> None:
    """The consumer's YAML names no strategy: the release type's `strategy` in the policy does."""
    seed_tag(github, "v1.6.0")
    run = release(
        tmp_path,
        github,
        slack,
        "v1.6.0",
        body="### Security\n\n- Patched the session cookie.",
        scenario="blue-green-healthy",
        with_={"release-type": "security"},
        policy="deploy:\n  target: simulated\nrelease_types:\n  security:\n    strategy: blue-green\n",
    )
    assert run.returncode == 0, run.log[-6000:]
    assert "blue-green rollout of v1.6.0" in run.log
    assert "switched v1.6.0" in run.log
    assert github.release("v1.6.0", REPO)["tag_name"] == "v1.6.0"
    # The hold was the watch: the monitor step did not run a second one.
    assert "Run Main Watch the release" not in run.log


def test_a_shadow_alone_passes_and_publishes_no_release(
    tmp_path: Path, github: GitHubFake, slack: SlackFake
) -> None:
    seed_tag(github, "v1.6.0")
    run = release(
        tmp_path,
        github,
        slack,
        "v1.6.0",
        body="### Changed\n\n- The new search backend.",
        scenario="shadow-healthy",
        with_={"strategy": "shadow"},
        policy="deploy:\n  target: simulated\n  shadow:\n    then: none\n",
    )
    assert run.returncode == 0, run.log[-6000:]
    assert "shadow rollout of v1.6.0" in run.log
    assert "passed: " in run.log
    assert github.releases == []  # nothing reached users, so nothing is released
    assert [d for d in github.repo(REPO).deployments if d.get("task") == "rollback"] == []


def test_a_tag_in_a_blocked_period_is_refused_before_deploying(
    tmp_path: Path, github: GitHubFake, slack: SlackFake
) -> None:
    seed_tag(github, "v1.6.0")
    run = release(tmp_path, github, slack, "v1.6.0", body="### Added\n\n- x", at=BLOCKED_AT)
    assert run.returncode != 0
    assert "New Year holidays" in run.log
    assert not (run.results / "build.log").exists()
    assert github.releases == [] and github.repo(REPO).deployments == []
    assert slack.messages == []


def hotfix(
    tmp_path: Path, github: GitHubFake, slack: SlackFake, branch: str, **with_: str
) -> ActRun:
    workflow = template(
        "hotfix",
        {
            "policy": ".github/release-policy.yml",
            "lint-command": "./scripts/lint.sh",
            "test-command": "true",
            **with_,
        },
    )
    consumer = make_consumer(
        tmp_path,
        "release",
        repo=REPO,
        files={
            ".github/workflows/hotfix.yml": workflow,
            ".github/release-policy.yml": b"deploy:\n  target: simulated\n",
            "CHANGELOG.md": b"# Changelog\n",
        },
    )
    return run_act(
        consumer,
        event_name="push",
        event={"ref": f"refs/heads/{branch}", "repository": {"full_name": REPO}},
        workflow=".github/workflows/hotfix.yml",
        env={"GITHUB_API_URL": github.url, "GITHUB_REF_NAME": branch},
        secrets={"GITHUB_TOKEN": TOKEN, "SLACK_WEBHOOK_URL": slack.webhook_url},
    )


def seed_hotfix(github: GitHubFake, branch: str) -> None:
    base = github.commit("main", {"app.py": "a\nb\n"}, message="Initial", repo=REPO)
    github.set_ref("release/v1.6.0", base, repo=REPO)
    github.commit("main", {"feature.py": "f\n"}, message="Next feature", repo=REPO)
    github.commit(
        branch, {"app.py": "a\nB\n"}, message="Fix login", base="release/v1.6.0", repo=REPO
    )


def test_a_hotfix_branch_with_a_wrong_name_is_refused(
    tmp_path: Path, github: GitHubFake, slack: SlackFake
) -> None:
    run = hotfix(tmp_path, github, slack, "hotfix/fix-login")
    assert run.returncode != 0
    assert "hotfix/ABC-123-fix-login" in run.log  # the error shows the expected form
    assert not (run.results / "lint.log").exists()
    assert github.repo(REPO).pulls == []


def test_a_good_hotfix_deploys_and_opens_the_cherry_picks(
    tmp_path: Path, github: GitHubFake, slack: SlackFake
) -> None:
    branch = "hotfix/ABC-123-fix-login"
    seed_hotfix(github, branch)
    run = hotfix(tmp_path, github, slack, branch)
    assert run.returncode == 0, run.log[-6000:]
    assert (run.results / "lint.log").read_text() == "lint\n"
    pulls = {p["base_ref"]: p for p in github.repo(REPO).pulls}
    assert set(pulls) == {"main", "release/v1.6.0"}
    assert pulls["main"]["head_ref"] == "cherry-pick/ABC-123-fix-login-to-main"
    assert github.file_at(pulls["main"]["head_ref"], "app.py", repo=REPO) == "a\nB\n"
    assert "1800" in run.log or "30 minutes" in run.log  # the hotfix watch (source §7)


def test_hostile_changelog_text_passes_through_the_release_workflow_inertly(
    tmp_path: Path, github: GitHubFake, slack: SlackFake
) -> None:
    marker = tmp_path / "pwned-release"
    seed_tag(github, "v1.7.0")
    body = (
        "### Fixed\n\n"
        f'- $(touch {marker}) `touch {marker}` ";touch {marker};#\n'
        "EOF\n"
        "pwned=1\n"
        "::set-output name=pwned::1\n"
        "- ${{ github.token }} ${{ secrets.GITHUB_TOKEN }}"
    )
    run = release(tmp_path, github, slack, "v1.7.0", body=body)
    assert run.returncode == 0, run.log[-6000:]
    assert not marker.exists()
    assert github.release("v1.7.0", REPO)["body"] == body
    assert TOKEN not in run.log


def test_a_hostile_hotfix_branch_name_passes_through_inertly(
    tmp_path: Path, github: GitHubFake, slack: SlackFake
) -> None:
    marker = tmp_path / "pwned-branch"
    branch = f"hotfix/ABC-1-$(touch${{IFS}}{marker})`id`"
    seed_hotfix(github, branch)
    run = hotfix(tmp_path, github, slack, branch)
    assert run.returncode == 0, run.log[-6000:]
    assert not marker.exists()
    titles = sorted(p["title"] for p in github.repo(REPO).pulls)
    assert titles == [f"Cherry-pick {branch} to main", f"Cherry-pick {branch} to release/v1.6.0"]


def test_a_hotfix_version_that_could_forge_an_output_is_refused(
    tmp_path: Path, github: GitHubFake, slack: SlackFake
) -> None:
    branch = "hotfix/ABC-123-fix-login"
    seed_hotfix(github, branch)
    run = hotfix(tmp_path, github, slack, branch, version="1.0\nenvironment=staging")
    assert run.returncode != 0
    assert "must be letters, digits" in run.log
    assert not (run.results / "lint.log").exists()
    assert github.repo(REPO).pulls == []
