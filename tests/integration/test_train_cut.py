"""`train cut` (source §2.1, §2.2) against the GitHub fake (git, pulls, issues) and Slack's."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from github import Auth, Github

from tests.conftest import CliResult
from tests.fakes.github import GitHubFake
from tests.fakes.slack import SlackFake
from tests.integration.deploys import Cli

pytestmark = pytest.mark.integration

JST = ZoneInfo("Asia/Tokyo")
FREEZE = datetime(2026, 1, 14, 10, 0, tzinfo=JST)  # a Wednesday; production Tue 2026-01-20
NOW = "2026-01-14T10:05:00+09:00"
BRANCH = "release/v1.7.0"
HEAD = "train/changelog-v1.7.0"

CHANGELOG = """\
# Changelog

## [Unreleased]

### Added

{entries}

## [1.6.0] - 2026-01-13

### Added

- Hotel search

[unreleased]: https://github.com/octo/app/compare/v1.6.0...HEAD
[1.6.0]: https://github.com/octo/app/compare/v1.5.0...v1.6.0
"""


@dataclass
class Seeded:
    released: str  # v1.6.0
    before: str  # a minute before the freeze: the cut
    after: str  # a minute after it: not in the train


def seed(
    fake: GitHubFake, *, entries: str = "- AI trip suggestions\n- Real-time pricing"
) -> Seeded:
    """main: v1.6.0 a week ago, a feature a minute before the freeze and one a minute after."""
    released = fake.commit(
        "main",
        {"CHANGELOG.md": CHANGELOG.format(entries="- Nothing yet"), "app.py": "v = 1\n"},
        message="Release 1.6.0",
        date=FREEZE - timedelta(days=7),
    )
    fake.set_ref("v1.6.0", released, tag=True)
    fake.set_ref("v2.0.0-rc.1", released, tag=True)  # a pre-release: never the base
    before = fake.commit(
        "main",
        {"CHANGELOG.md": CHANGELOG.format(entries=entries), "app.py": "v = 2\n"},
        message="Add AI trip suggestions",
        date=FREEZE - timedelta(minutes=1),
    )
    after = fake.commit(
        "main",
        {"CHANGELOG.md": CHANGELOG.format(entries=entries + "\n- Too late"), "app.py": "v = 3\n"},
        message="Add a feature after the freeze",
        date=FREEZE + timedelta(minutes=1),
    )
    return Seeded(released, before, after)


@pytest.fixture
def policy(tmp_path: Path) -> str:
    path = tmp_path / "release-policy.yml"
    path.write_text("version: 1\n", encoding="utf-8")
    return str(path)


def cut(cli: Cli, policy: str, *args: str, now: str = NOW) -> CliResult:
    return cli("train", "cut", "--policy", policy, "--now", now, *args)


def open_pulls(fake: GitHubFake) -> list[dict[str, object]]:
    return [p for p in fake.repo().pulls if p["state"] == "open"]


def open_issues(fake: GitHubFake) -> list[dict[str, object]]:
    return [i for i in fake.issues() if i["state"] == "open"]


def test_cut_at_the_freeze(github: GitHubFake, slack: SlackFake, cli: Cli, policy: str) -> None:
    s = seed(github)
    result = cut(cli, policy, "--json")
    assert result.code == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["version"] == "1.7.0"
    assert data["previous"] == "v1.6.0"
    assert data["commit"]["sha"] == s.before
    # The branch starts at the last commit before 10:00 JST, not the one a minute later.
    assert github.repo().refs[BRANCH] == s.before
    assert result.outputs == {
        "branch": BRANCH,
        "version": "1.7.0",
        "pull-request": "1",
        "issue": "2",
        "changed": "true",
    }

    (pull,) = open_pulls(github)
    assert (pull["title"], pull["head_ref"], pull["base_ref"]) == (
        "Release v1.7.0: CHANGELOG",
        HEAD,
        BRANCH,
    )
    body = str(pull["body"])
    assert "Wed 2026-01-14 10:00 JST" in body
    assert "Thu 2026-01-15 10:00 JST" in body
    assert "Tue 2026-01-20 10:00 JST" in body
    text = github.file_at(HEAD, "CHANGELOG.md")
    assert text is not None
    assert "## [Unreleased]\n\n## [1.7.0] - 2026-01-20\n\n### Added\n\n- AI trip" in text
    assert "Too late" not in text
    assert "[1.7.0]: https://github.com/octo/app/compare/v1.6.0...v1.7.0" in text
    assert "[unreleased]: https://github.com/octo/app/compare/v1.7.0...HEAD" in text
    # The release branch itself keeps the cut commit's CHANGELOG until the pull request merges.
    assert github.file_at(BRANCH, "CHANGELOG.md") == CHANGELOG.format(
        entries="- AI trip suggestions\n- Real-time pricing"
    )

    (issue,) = github.issues()
    assert issue["title"] == "Release v1.7.0"
    assert [label["name"] for label in issue["labels"]] == ["release-train"]
    ibody = issue["body"]
    assert "- [ ] All tests pass (unit, integration, E2E)" in ibody
    assert "- [ ] Code coverage 80 % or more (checked by `release-actions readiness`" in ibody
    assert "- [ ] On-call team told" in ibody
    assert "Tue 2026-01-20 10:00 JST" in ibody and "Wed 2026-01-14 10:00 JST" in ibody
    assert s.before in ibody and "#1" in ibody

    (message,) = slack.messages
    assert "Release v1.7.0 scheduled" in message.text
    assert "2026-01-20 (Tue) 10:00 JST" in message.text
    assert "AI trip suggestions" in message.text


def test_a_second_run_changes_nothing(
    github: GitHubFake, slack: SlackFake, cli: Cli, policy: str
) -> None:
    seed(github)
    first = cut(cli, policy)
    assert first.code == 0, first.stdout + first.stderr
    writes = len(github.writes())
    second = cut(cli, policy, now="2026-01-15T09:00:00+09:00")
    assert second.code == 0, second.stdout + second.stderr
    assert len(github.writes()) == writes
    assert len(slack.messages) == 1
    assert second.outputs["changed"] == "false"
    assert (second.outputs["pull-request"], second.outputs["issue"]) == ("1", "2")
    assert "nothing changed" in second.stdout


def test_the_merged_changelog_pull_request_is_not_opened_again(
    github: GitHubFake, slack: SlackFake, cli: Cli, policy: str
) -> None:
    seed(github)
    assert cut(cli, policy).code == 0
    # The pull request merges: the release branch gets the released CHANGELOG.
    released = github.file_at(HEAD, "CHANGELOG.md")
    assert released is not None
    github.commit(BRANCH, {"CHANGELOG.md": released}, message="Merge #1")
    github.repo().pulls[0].update(state="closed", merged=True)
    writes = len(github.writes())
    again = cut(cli, policy, "--json")
    assert again.code == 0, again.stdout + again.stderr
    assert len(github.writes()) == writes
    assert json.loads(again.stdout)["steps"]["pull_request"]["action"] == "merged"


def test_two_runs_at_once_make_one_of_each(
    github: GitHubFake, slack: SlackFake, cli: Cli, policy: str, tmp_path: Path
) -> None:
    seed(github)
    # Both runs list the issues before either opens one, so both open one: one must give way.
    github.inject("GET", "/repos/octo/app/issues", delay=1.0, times=2)
    clis = [Cli(tmp_path / name, dict(cli.env)) for name in ("a", "b")]
    for c in clis:
        c.folder.mkdir()
    results: list[CliResult] = []
    gate = threading.Barrier(2)

    def run(c: Cli) -> None:
        gate.wait()
        results.append(cut(c, policy))

    threads = [threading.Thread(target=run, args=(c,)) for c in clis]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [r.code for r in results] == [0, 0], [r.stdout + r.stderr for r in results]
    assert [n for n in github.repo().refs if n.startswith("release/")] == [BRANCH]
    assert len(open_pulls(github)) == 1
    (kept,) = open_issues(github)
    assert {r.outputs["issue"] for r in results} == {str(kept["number"])}
    assert {r.outputs["pull-request"] for r in results} == {"1"}
    # GitHub cannot refuse a second issue of the same title: the later one is closed as such.
    for other in github.issues():
        if other["number"] != kept["number"]:
            assert other["state"] == "closed" and other["state_reason"] == "not_planned"
    assert len(slack.messages) == 1


def test_a_skipped_train_cuts_nothing(
    github: GitHubFake, slack: SlackFake, cli: Cli, policy: str
) -> None:
    seed(github)
    # The cut of 2026-12-23 would ship Tue 12-29, in the New Year block through 01-04, and
    # no later weekday of that week is allowed: skipped.
    result = cli(
        "train",
        "cut",
        "--policy",
        policy,
        "--json",
        env={"RELEASE_ACTIONS_NOW": "2026-12-23T10:05:00+09:00"},
    )
    assert result.code == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["cut"] is False and data["train"]["skipped"] is True
    assert "New Year holidays" in data["reason"]
    assert "Wed 2026-12-30 10:00 JST" in data["reason"]  # the train that carries the changes
    assert data["carried_by"]["production_at"].startswith("2027-01-05T10:00")
    assert result.outputs == {
        "branch": "",
        "version": "",
        "pull-request": "",
        "issue": "",
        "changed": "false",
    }
    assert github.requests == []
    assert slack.messages == []


def test_breaking_in_unreleased_is_a_major_version(
    github: GitHubFake, slack: SlackFake, cli: Cli, policy: str
) -> None:
    s = seed(github, entries="- BREAKING: the v1 search API is gone\n- Real-time pricing")
    result = cut(cli, policy)
    assert result.code == 0, result.stdout + result.stderr
    assert result.outputs["version"] == "2.0.0"
    assert github.repo().refs["release/v2.0.0"] == s.before
    assert [i["title"] for i in github.issues()] == ["Release v2.0.0"]
    assert "BREAKING" in result.stdout


def test_a_branch_at_another_commit_is_refused(
    github: GitHubFake, slack: SlackFake, cli: Cli, policy: str
) -> None:
    s = seed(github)
    github.set_ref(BRANCH, s.after)
    result = cut(cli, policy)
    assert result.code == 2, result.stdout + result.stderr
    said = result.stdout + result.stderr
    assert s.after[:12] in said and s.before[:12] in said
    assert "never moved by force" in said
    assert github.writes() == []
    assert github.repo().refs[BRANCH] == s.after
    assert github.issues() == [] and github.repo().pulls == []
    assert slack.messages == []
    assert not result.outputs  # an error writes no outputs


def test_no_release_tag_needs_a_version(
    github: GitHubFake, slack: SlackFake, cli: Cli, policy: str
) -> None:
    s = seed(github)
    for tag in ("v1.6.0", "v2.0.0-rc.1"):
        del github.repo().refs[tag]
        github.repo().tags.discard(tag)
    refused = cut(cli, policy)
    assert refused.code == 2
    assert "pass `--version`" in refused.stdout
    assert github.writes() == []
    result = cut(cli, policy, "--version", "1.7.0")
    assert result.code == 0, result.stdout + result.stderr
    assert github.repo().refs[BRANCH] == s.before


def test_dry_run_writes_nothing(
    github: GitHubFake, slack: SlackFake, cli: Cli, policy: str
) -> None:
    seed(github)
    result = cli("--dry-run", "train", "cut", "--policy", policy, "--now", NOW)
    assert result.code == 0, result.stdout + result.stderr
    assert github.writes() == []
    assert slack.messages == []
    assert "would create" in result.stdout and "would send" in result.stdout
    assert result.outputs["changed"] == "false"


def test_before_the_first_freeze_of_the_week_the_previous_train_is_cut(
    github: GitHubFake, slack: SlackFake, cli: Cli, policy: str
) -> None:
    seed(github)
    # 09:59 on the Wednesday: the previous train (cut 01-07) was due out on Tue 01-13.
    result = cut(cli, policy, "--json", now="2026-01-14T09:59:00+09:00")
    assert result.code == 0, result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["cut"] is False and "due in production Tue 2026-01-13" in data["reason"]
    assert "Wed 2026-01-14 10:00 JST" in data["reason"]
    assert github.requests == []


def test_now_without_an_offset_is_refused(
    github: GitHubFake, slack: SlackFake, cli: Cli, policy: str
) -> None:
    result = cut(cli, policy, now="2026-01-14T10:05:00")
    assert result.code == 2
    assert "has no UTC offset" in result.stdout


# -- what the fake grew for this: the commits listing, issues and labels ---------------------


def test_the_fake_lists_commits_by_committer_time_and_issues_with_pull_requests(
    github: GitHubFake,
) -> None:
    s = seed(github)
    gh = Github(
        base_url=github.url,
        auth=Auth.Token("t"),
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
    )
    repo = gh.get_repo("octo/app")
    # `until` includes a commit made at that very second; `since` as well.
    at = (FREEZE - timedelta(minutes=1)).astimezone(UTC)
    # (below them, the root commit the fake's `main` starts from)
    assert [c.sha for c in repo.get_commits(sha="main", until=at)][:2] == [s.before, s.released]
    assert [c.sha for c in repo.get_commits(sha="main", since=at)] == [s.after, s.before]
    assert [c.sha for c in repo.get_commits(sha="v1.6.0")][:1] == [s.released]
    github.add_pull("feature", title="A feature")
    issue = repo.create_issue(title="Release v9.0.0", body="b", labels=["release-train"])
    assert issue.number == 2  # pull requests and issues share their numbers
    listed = {(i.number, i.pull_request is not None) for i in repo.get_issues(state="open")}
    assert listed == {(1, True), (2, False)}
    assert [i.number for i in repo.get_issues(labels=["Release-Train"])] == [2]
    assert repo.get_label("release-train").color == "ededed"  # made by the issue, as GitHub does
    issue.create_comment("Duplicate of #1")
    issue.edit(state="closed", state_reason="not_planned")
    (closed,) = github.issues()
    assert (closed["state"], closed["state_reason"], closed["comments"]) == (
        "closed",
        "not_planned",
        1,
    )
