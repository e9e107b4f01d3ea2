"""Hotfix cherry-picks (source §7) through the Git Data API, against the GitHub fake's git."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from github import Auth, Github

from release_actions.integrations.cherry_pick import CherryPickError, check_ref_name, pick_branch
from tests.conftest import RunCli
from tests.fakes.github import EMPTY_TREE, GitHubFake
from tests.integration.fake_github import fake_github_env, raw

pytestmark = pytest.mark.integration

HOTFIX = "hotfix/ABC-123-fix-login"


@dataclass
class Repo:
    fake: GitHubFake
    base: str
    fix: str  # changes app.py
    more: str  # adds new.py, deletes README, changes lib/util.py

    def env(self, **extra: str) -> dict[str, str]:
        return fake_github_env(self.fake.url, "ghs_token", **extra)


def build(fake: GitHubFake, hotfix: str = HOTFIX) -> Repo:
    """main with release branches cut from it, a feature after them, and a two-commit hotfix."""
    base = fake.commit(
        "main",
        {"app.py": "a\nb\nc\n", "README": "hi\n", "lib/util.py": "u\n"},
        message="Initial",
    )
    for version in ("1.2.0", "1.10.0", "1.9.0", "2.0.0-rc.1", "next"):
        fake.set_ref(f"release/v{version}", base)
    fake.set_ref("release/v2.0.0-rc.1", fake.commit("release/v2.0.0-rc.1", {"rc": "1\n"}))
    fake.commit("main", {"feature.py": "f\n"}, message="Feature for the next release")
    fix = fake.commit(
        hotfix,
        {"app.py": "a\nB\nc\n"},
        message="Fix login\n\nABC-123",
        base="main",
        author="Tech Lead",
    )
    more = fake.commit(
        hotfix,
        {"new.py": "n\n", "README": None, "lib/util.py": "U\n"},
        message="Add a test",
        author="Tech Lead",
    )
    return Repo(fake, base, fix, more)


@pytest.fixture
def repo() -> Iterator[Repo]:
    with GitHubFake() as fake:
        yield build(fake)


def pick(repo: Repo, run_cli: RunCli, *args: str, source: str = HOTFIX, **kw: Any) -> Any:
    return run_cli(
        "hotfix",
        "cherry-pick",
        "--sha",
        repo.fix,
        "--sha",
        repo.more,
        "--source-branch",
        source,
        *args,
        env=repo.env(),
        **kw,
    )


def pulls(fake: GitHubFake) -> dict[str, dict[str, Any]]:
    return {p["base_ref"]: p for p in fake.repo().pulls}


# -- clean picks -----------------------------------------------------------------------------


def test_clean_to_main_and_the_latest_release_branch(repo: Repo, run_cli: RunCli) -> None:
    fake = repo.fake
    result = pick(repo, run_cli)
    assert result.code == 0, result.stdout + result.stderr
    listed = json.loads(result.outputs["pull-requests"])
    # 1.10 > 1.9 > 1.2 by SemVer; a pre-release branch and `release/vnext` are not candidates.
    assert [(p["target"], p["conflict"], p["number"]) for p in listed] == [
        ("main", False, 1),
        ("release/v1.10.0", False, 2),
    ]
    assert listed[0]["url"] == f"{fake.root}/octo/app/pull/1"
    prs = pulls(fake)
    to_main, to_release = prs["main"], prs["release/v1.10.0"]
    assert to_main["head_ref"] == "cherry-pick/ABC-123-fix-login-to-main"
    assert to_release["head_ref"] == "cherry-pick/ABC-123-fix-login-to-release/v1.10.0"
    assert to_main["title"] == f"Cherry-pick {HOTFIX} to main"
    assert not to_main["draft"] and not to_release["draft"]
    branch = to_release["head_ref"]
    # The hotfix's changes, and nothing of main's newer feature: a cherry-pick, not a merge.
    assert fake.file_at(branch, "app.py") == "a\nB\nc\n"
    assert fake.file_at(branch, "new.py") == "n\n"
    assert fake.file_at(branch, "lib/util.py") == "U\n"
    assert fake.file_at(branch, "README") is None
    assert fake.file_at(branch, "feature.py") is None
    assert fake.file_at(to_main["head_ref"], "feature.py") == "f\n"
    log = fake.log(branch)
    assert [c["message"] for c in log[:2]] == [
        f"Add a test\n\n(cherry picked from commit {repo.more})",
        f"Fix login\n\nABC-123\n\n(cherry picked from commit {repo.fix})",
    ]
    assert log[0]["author"]["name"] == "Tech Lead"
    assert log[2]["sha"] == repo.base and log[1]["parents"] == [repo.base]
    assert "| ✅ applied |" in to_release["body"]
    assert "Finishing by hand" not in to_release["body"]
    assert "| main | [#1](" in result.summary and "✅ clean" in result.summary


def test_to_release_branch_none_or_named(repo: Repo, run_cli: RunCli) -> None:
    only_main = pick(repo, run_cli, "--to-release-branch", "none")
    assert [p["target"] for p in json.loads(only_main.outputs["pull-requests"])] == ["main"]
    named = pick(repo, run_cli, "--to-release-branch", "release/v1.2.0", "--to", "main")
    assert [p["target"] for p in json.loads(named.outputs["pull-requests"])] == [
        "main",
        "release/v1.2.0",
    ]
    missing = pick(repo, run_cli, "--to-release-branch", "release/v9.9.9", actions=False)
    assert missing.code == 2 and "`release/v9.9.9` does not exist" in missing.stderr


def test_no_release_branch_warns_and_picks_to_main(run_cli: RunCli) -> None:
    with GitHubFake() as fake:
        r = build(fake)
        for name in [n for n in fake.repo().refs if n.startswith("release/")]:
            del fake.repo().refs[name]
        result = pick(r, run_cli)
        assert result.code == 0
        assert "::warning::No release branch matches" in result.stdout
        assert [p["target"] for p in json.loads(result.outputs["pull-requests"])] == ["main"]


# -- conflicts -----------------------------------------------------------------------------


def test_a_conflict_opens_a_draft_with_the_files_and_the_commands(
    repo: Repo, run_cli: RunCli
) -> None:
    fake = repo.fake
    fake.commit("release/v1.10.0", {"app.py": "a\nX\nc\n"}, message="Release-only change")
    result = pick(repo, run_cli, "--to-release-branch", "release/v1.10.0")
    assert result.code == 0, result.stderr
    listed = {p["target"]: p for p in json.loads(result.outputs["pull-requests"])}
    assert listed["main"]["conflict"] is False
    assert listed["release/v1.10.0"]["conflict"] is True
    pr = pulls(fake)["release/v1.10.0"]
    assert pr["draft"] is True
    body = pr["body"]
    assert f"| {repo.fix[:12]} `Fix login` | ⚠️ conflicts in `app.py` |" in body
    assert f"| {repo.more[:12]} `Add a test` | ⏸ not applied yet |" in body
    branch = "cherry-pick/ABC-123-fix-login-to-release/v1.10.0"
    assert (
        "~~~sh\n"
        f"git fetch origin {branch}\n"
        f"git checkout -b {branch} origin/{branch}\n"
        f"git cherry-pick -x {repo.fix}\n"
        "# resolve the conflicts, `git add` the files, then:\n"
        "git cherry-pick --continue\n"
        f"git cherry-pick -x {repo.more}\n"
        f"git push origin {branch}\n"
        "~~~\n"
    ) in body
    # The branch: the release head plus an empty marker, so the pull request can exist.
    head = fake.log(branch)[0]
    assert head["message"].endswith(f"Cherry-pick-conflict: {repo.fix}")
    assert head["tree"] == fake.log("release/v1.10.0")[0]["tree"]
    assert fake.file_at(branch, "app.py") == "a\nX\nc\n"
    assert "::warning title=Hotfix cherry-pick conflict::" in result.stdout
    assert "⚠️ conflicts, draft" in result.summary


def test_clean_commits_before_a_conflict_are_applied(repo: Repo, run_cli: RunCli) -> None:
    fake = repo.fake
    fake.commit("release/v1.10.0", {"lib/util.py": "release\n"}, message="Release-only change")
    result = pick(repo, run_cli, "--to-release-branch", "release/v1.10.0")
    assert result.code == 0
    pr = pulls(fake)["release/v1.10.0"]
    assert pr["draft"] is True
    assert f"| {repo.fix[:12]} `Fix login` | ✅ applied |" in pr["body"]
    assert "⚠️ conflicts in `lib/util.py`" in pr["body"]
    branch = pr["head_ref"]
    assert fake.file_at(branch, "app.py") == "a\nB\nc\n"
    assert "-x " + repo.fix not in pr["body"]


def test_a_change_the_target_has_already_counts_as_applied(repo: Repo, run_cli: RunCli) -> None:
    fake = repo.fake
    fake.commit(
        "release/v1.10.0",
        {"app.py": "a\nB\nc\n", "new.py": "n\n", "README": None, "lib/util.py": "U\n"},
        message="Same fix, by hand",
    )
    result = pick(repo, run_cli, "--to-release-branch", "release/v1.10.0", actions=False)
    assert result.code == 0
    assert "release/v1.10.0: already has the hotfix; nothing to open" in result.stdout
    assert [p["target"] for p in json.loads(result.outputs["pull-requests"])] == ["main"]


# -- idempotence ---------------------------------------------------------------------------


def test_a_rerun_opens_nothing_and_writes_nothing(repo: Repo, run_cli: RunCli) -> None:
    fake = repo.fake
    fake.commit("release/v1.10.0", {"app.py": "a\nX\nc\n"}, message="Release-only change")
    first = pick(repo, run_cli, "--to-release-branch", "release/v1.10.0")
    writes = len(fake.writes())
    again = pick(repo, run_cli, "--to-release-branch", "release/v1.10.0", actions=False)
    assert again.code == 0
    assert len(fake.writes()) == writes
    assert len(fake.repo().pulls) == 2
    assert json.loads(again.outputs["pull-requests"]) == [
        {**p, "status": "exists"} for p in json.loads(first.outputs["pull-requests"])
    ]
    assert "main: pull request #1 (open) exists" in again.stdout


def test_a_branch_left_without_its_pull_request_gets_one(repo: Repo, run_cli: RunCli) -> None:
    fake = repo.fake
    fake.commit("release/v1.10.0", {"app.py": "a\nX\nc\n"}, message="Release-only change")
    args = ("--to", "release/v1.10.0", "--to-release-branch", "none")
    fake.inject("POST", "/repos/octo/app/pulls", status=502)
    broken = pick(repo, run_cli, *args, actions=False)
    assert broken.code == 2 and fake.repo().pulls == []
    branch = "cherry-pick/ABC-123-fix-login-to-release/v1.10.0"
    head = fake.repo().refs[branch]
    writes = len(fake.writes())
    result = pick(repo, run_cli, *args)
    assert result.code == 0, result.stderr
    # Only the pull request was written; the branch was taken as it was.
    assert [(q.method, q.path) for q in fake.writes()[writes:]] == [
        ("POST", "/repos/octo/app/pulls")
    ]
    assert fake.repo().refs[branch] == head
    pr = pulls(fake)["release/v1.10.0"]
    assert pr["draft"] is True and "⚠️ conflicts in `app.py`" in pr["body"]
    assert f"git cherry-pick -x {repo.fix}" in pr["body"]


def test_a_finished_conflict_is_no_longer_reported(repo: Repo, run_cli: RunCli) -> None:
    fake = repo.fake
    fake.commit("release/v1.10.0", {"app.py": "a\nX\nc\n"}, message="Release-only change")
    pick(repo, run_cli, "--to-release-branch", "release/v1.10.0")
    branch = "cherry-pick/ABC-123-fix-login-to-release/v1.10.0"
    # Someone finishes by hand, as the pull request says (git cherry-pick -x writes the line).
    fake.commit(
        branch,
        {"app.py": "a\nXB\nc\n"},
        message=f"Fix login\n\n(cherry picked from commit {repo.fix})",
    )
    fake.commit(
        branch,
        {"new.py": "n\n", "README": None, "lib/util.py": "U\n"},
        message=f"Add a test\n\n(cherry picked from commit {repo.more})",
    )
    again = pick(repo, run_cli, "--to-release-branch", "release/v1.10.0")
    listed = {p["target"]: p for p in json.loads(again.outputs["pull-requests"])}
    assert listed["release/v1.10.0"]["conflict"] is False


# -- untrusted names ---------------------------------------------------------------------------


def test_a_hostile_branch_name_passes_through_inertly(run_cli: RunCli) -> None:
    source = "hotfix/ABC-1-$(id)-`whoami`-<img>"
    assert check_ref_name(source, "x") == source  # `$ ( ) \u0060 < >` are all allowed in refs
    with GitHubFake() as fake:
        r = build(fake, hotfix=source)
        fake.commit("release/v1.10.0", {"app.py": "a\nX\nc\n"}, message="Release-only change")
        result = pick(r, run_cli, "--to-release-branch", "release/v1.10.0", source=source)
        assert result.code == 0, result.stderr
        branch = "cherry-pick/ABC-1-$(id)-`whoami`-<img>-to-release/v1.10.0"
        pr = pulls(fake)["release/v1.10.0"]
        assert pr["head_ref"] == branch and branch in fake.repo().refs
        assert pr["title"] == f"Cherry-pick {source} to release/v1.10.0"
        body = pr["body"]
        # In prose: a code span longer than any backtick run in the name.
        assert "Brings the hotfix ``hotfix/ABC-1-$(id)-`whoami`-<img>`` to" in body
        # In the commands: single-quoted, so a shell pasting them runs nothing.
        assert f"git fetch origin '{branch}'\n" in body
        assert f"git checkout -b '{branch}' 'origin/{branch}'\n" in body
        assert f"git push origin '{branch}'\n" in body
        rest = body.replace(f"``{source}``", "")
        for quoted in (f"'{branch}'", f"'origin/{branch}'"):
            rest = rest.replace(quoted, "")
        assert "$(id)" not in rest and "<img>" not in rest and "whoami" not in rest


@pytest.mark.parametrize(
    "bad", ["hotfix/a b", "hotfix/a..b", "hotfix/x~1", "-rf", "hotfix/a:b", "hotfix/x.lock"]
)
def test_invalid_branch_names_are_refused_before_any_request(
    repo: Repo, run_cli: RunCli, bad: str
) -> None:
    before = len(repo.fake.requests)
    result = pick(repo, run_cli, source=bad, actions=False)
    assert result.code == 2 and "is not a valid git branch name" in result.stderr
    assert len(repo.fake.requests) == before


def test_bad_shas_and_merge_commits_are_refused(repo: Repo, run_cli: RunCli) -> None:
    fake = repo.fake
    result = run_cli(
        "hotfix",
        "cherry-pick",
        "--sha",
        "not-a-sha",
        "--source-branch",
        HOTFIX,
        env=repo.env(),
        actions=False,
    )
    assert result.code == 2 and "`not-a-sha` is not a commit SHA" in result.stderr
    status, body = raw(fake, "POST", "/repos/octo/app/merges", {"base": "main", "head": HOTFIX})
    assert status == 201
    merge = body["sha"]
    result = run_cli(
        "hotfix",
        "cherry-pick",
        "--sha",
        merge,
        "--source-branch",
        HOTFIX,
        env=repo.env(),
        actions=False,
    )
    assert result.code == 2 and "is a merge commit" in result.stderr
    assert fake.repo().pulls == []


def test_dry_run_writes_nothing(repo: Repo, run_cli: RunCli) -> None:
    dry = run_cli(
        "--dry-run",
        "hotfix",
        "cherry-pick",
        "--sha",
        repo.fix,
        "--source-branch",
        HOTFIX,
        env=repo.env(),
        actions=False,
    )
    assert dry.code == 0, dry.stderr
    assert "main: would open cherry-pick/ABC-123-fix-login-to-main cleanly (dry run" in dry.stdout
    assert dry.outputs == {"pull-requests": "[]"}
    assert repo.fake.writes() == []


def test_branch_names() -> None:
    assert pick_branch(HOTFIX, "main") == "cherry-pick/ABC-123-fix-login-to-main"
    assert pick_branch("fix/x", "release/v1.2.0") == "cherry-pick/fix/x-to-release/v1.2.0"
    with pytest.raises(CherryPickError):
        check_ref_name("", "`--source-branch`")


# -- the fake's git ---------------------------------------------------------------------------


def test_fake_merges_201_204_and_409(repo: Repo) -> None:
    fake = repo.fake
    status, body = raw(
        fake, "POST", "/repos/octo/app/merges", {"base": "release/v1.2.0", "head": repo.fix}
    )
    assert status == 201 and len(body["parents"]) == 2
    assert fake.file_at("release/v1.2.0", "app.py") == "a\nB\nc\n"
    # The merge brought the commit's ancestors too: main's feature is now on the branch.
    assert fake.file_at("release/v1.2.0", "feature.py") == "f\n"
    status, body = raw(
        fake, "POST", "/repos/octo/app/merges", {"base": "release/v1.2.0", "head": repo.fix}
    )
    assert (status, body) == (204, None)
    fake.commit("release/v1.9.0", {"app.py": "a\nX\nc\n"})
    status, body = raw(
        fake, "POST", "/repos/octo/app/merges", {"base": "release/v1.9.0", "head": repo.fix}
    )
    assert status == 409 and body["message"] == "Merge conflict"
    assert (
        raw(fake, "POST", "/repos/octo/app/merges", {"base": "nope", "head": "main"})[1]["message"]
        == "Base does not exist"
    )
    assert (
        raw(fake, "POST", "/repos/octo/app/merges", {"base": "main", "head": "nope"})[1]["message"]
        == "Head does not exist"
    )


def test_fake_refs_branches_commits_and_compare_through_pygithub(repo: Repo) -> None:
    fake = repo.fake
    gh_repo = Github(
        base_url=fake.url,
        auth=Auth.Token("t"),
        retry=None,
        per_page=2,
        seconds_between_requests=None,
        seconds_between_writes=None,
    ).get_repo("octo/app")
    names = [b.name for b in gh_repo.get_branches()]  # three pages of two
    assert names == sorted(names) and HOTFIX in names and "release/v1.10.0" in names
    assert sum(q.path.endswith("/branches") for q in fake.requests) == 4
    branch = gh_repo.get_branch("release/v1.10.0")
    assert branch.commit.sha == repo.base and branch.protected is False
    ref = gh_repo.create_git_ref("refs/heads/x/y", repo.base)
    assert ref.ref == "refs/heads/x/y" and ref.object.sha == repo.base
    with pytest.raises(Exception) as info:
        gh_repo.create_git_ref("refs/heads/x/y", repo.base)
    assert info.value.data["message"] == "Reference already exists"  # type: ignore[attr-defined]
    commit = gh_repo.get_commit(repo.more)
    assert [p.sha for p in commit.parents] == [repo.fix]
    assert sorted((f.filename, f.status) for f in commit.files) == [
        ("README", "removed"),
        ("lib/util.py", "modified"),
        ("new.py", "added"),
    ]
    assert (
        next(f for f in commit.files if f.filename == "lib/util.py").patch == "@@ -1 +1 @@\n-u\n+U"
    )
    comparison = gh_repo.compare("main", HOTFIX)
    assert (comparison.status, comparison.ahead_by, comparison.behind_by) == ("ahead", 2, 0)
    assert [c.sha for c in comparison.commits] == [repo.fix, repo.more]
    behind = gh_repo.compare("release/v1.2.0", "main")
    assert behind.status == "ahead" and behind.merge_base_commit.sha == repo.base
    diverged = gh_repo.compare("release/v2.0.0-rc.1", HOTFIX)
    assert diverged.status == "diverged" and diverged.behind_by == 1
    tree = gh_repo.get_git_tree(repo.base, recursive=True)
    assert {(e.path, e.type) for e in tree.tree} == {
        ("README", "blob"),
        ("app.py", "blob"),
        ("lib", "tree"),
        ("lib/util.py", "blob"),
    }
    # Git's own object ids: the empty tree, and a blob as `git hash-object` computes it.
    assert raw(fake, "GET", f"/repos/octo/app/git/trees/{EMPTY_TREE}")[1]["tree"] == []
    util = next(e for e in tree.tree if e.path == "lib/util.py")
    assert util.sha == hashlib.sha1(b"blob 2\x00u\n").hexdigest()
    status, body = raw(
        fake, "PATCH", "/repos/octo/app/git/refs/heads/release/v1.9.0", {"sha": repo.fix}
    )
    assert status == 200
    status, body = raw(
        fake, "PATCH", "/repos/octo/app/git/refs/heads/release/v1.9.0", {"sha": repo.base}
    )
    assert (status, body["message"]) == (422, "Update is not a fast forward")


def test_without_sha_the_branch_commits_main_lacks_are_picked(repo: Repo, run_cli: RunCli) -> None:
    result = run_cli("hotfix", "cherry-pick", "--source-branch", HOTFIX, env=repo.env())
    assert result.code == 0, result.stdout + result.stderr
    branch = "cherry-pick/ABC-123-fix-login-to-release/v1.10.0"
    assert [c["message"].split("\n")[0] for c in repo.fake.log(branch)[:2]] == [
        "Add a test",
        "Fix login",
    ]
    nothing = run_cli("hotfix", "cherry-pick", "--source-branch", "main", env=repo.env())
    assert nothing.code == 2 and "nothing to cherry-pick" in nothing.stdout
