"""The release train's week end to end under act, on one consumer's real git repository.

The issue "The release train" is done when "a cut, a blocked feature pull request, an
allowed fix, staging and production run end to end in a test on a real git repository":

- Wednesday, the freeze + 5 minutes (the scheduled run): `due` -> `cut` puts `release/v1.4.0`
  at the last commit on main before the freeze (main has one a minute before and one a
  minute after), opens the CHANGELOG pull request and the release-train issue, and Slack gets
  the scheduled notice.
- The frozen branch (`pull_request_target`): a feature pull request into it fails the
  `Code freeze` job with the reason; a `fix:` one passes. The CHANGELOG pull request and the
  reviewed fix then merge.
- Thursday (scheduled): `due` -> `stage` tags `v1.4.0-rc.1` at the branch head; the release
  starter template, on a push of that tag, deploys it to staging and stops there.
- Tuesday (a run dispatched with the template's `now` input): `due` -> `ship` tags `v1.4.0`;
  the release template, on a push of that tag, promotes the production canary on the
  simulated target and publishes the GitHub Release with the CHANGELOG section's body.

GitHub is the HTTP fake (tests/fakes/github.py) that the real PyGithub talks to, and Slack
the webhook fake. The fake's git objects and the consumer's checkout are kept in step as a
push and a fetch would: the consumer's first commit goes to the fake with the same blob and
tree ids (the Git Data API), and every commit the fake gets afterwards (the developers', the
train's) is fetched back into the checkout with its tree, message and dates, the tree's id
checked equal. The tags the train puts through the API are then made with `git tag` in the
checkout at the fetched commit, and each tag's release run works in the checkout at that tag.

What act (0.2.89) cannot do here: it does not start a reusable workflow that another
reusable workflow calls, so release-train.yml's own `Staging` and `Production` jobs (each a
call of release.yml) are not run by the train's runs: act leaves them out without a word.
The consumer's release template runs that part on the tag's push instead, as it would on
GitHub for a tag pushed by a person. Its copy here sets `stop-after` and `readiness` from the
tag (an rc stops after staging, without the checklist), as the train's own staging call does.

The week's steps share one consumer and one pair of fakes (module scope) and run once, in
order, whichever test asks first: a test of a later day runs the days before it.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from github import Auth, Github, InputGitAuthor, InputGitTreeElement

from tests.e2e.act_harness import (
    ActRun,
    act_binary,
    make_consumer,
    run_act,
)
from tests.e2e.act_harness import starter_template as template
from tests.fakes.github import GitHubFake
from tests.fakes.slack import SlackFake

pytestmark = pytest.mark.e2e

REPO = "triptrip/webapp"
TOKEN = "ghs_e2etoken"
# The train cut Wed 2027-01-06 10:00 JST: staging Thu 01-07, production Tue 01-12 10:00.
BEFORE_FREEZE = "2027-01-06T09:59:00+09:00"
AFTER_FREEZE = "2027-01-06T10:01:00+09:00"
WEDNESDAY = "2027-01-06T10:05:00+09:00"  # the freeze + 5 minutes: the cron line's time
CHANGELOG_MERGED_AT = "2027-01-06T10:30:00+09:00"
FEATURE_AT = "2027-01-06T11:00:00+09:00"
FIX_AT = "2027-01-06T11:30:00+09:00"
FIX_MERGED_AT = "2027-01-06T13:00:00+09:00"
THURSDAY = "2027-01-07T10:05:00+09:00"
TUESDAY = "2027-01-12T10:20:00+09:00"  # a catch-up run dispatched by hand, in the window
RELEASE_AT = "2027-01-12T10:25:00+09:00"  # the release calendar's time in the tags' runs

BRANCH = "release/v1.4.0"
CHANGELOG_BRANCH = "train/changelog-v1.4.0"
RC = "v1.4.0-rc.1"
FINAL = "v1.4.0"
SHIPPED = "### Added\n\n- Trip sharing with friends."

CHANGELOG = """\
# Changelog

## [Unreleased]
{unreleased}
## [1.3.0] - 2026-12-01

### Added

- Search.
"""
UNRELEASED_BEFORE = f"\n{SHIPPED}\n"
UNRELEASED_AFTER = f"\n{SHIPPED}\n- Offline maps.\n"

T = TypeVar("T")


def once(step: Callable[[Week], T]) -> Callable[[Week], T]:
    """A day runs once per module; its result, or its failure, answers every later ask (a
    failed act run is not run again by the next test)."""
    name = step.__name__

    def run(week: Week) -> T:
        if name not in week.done:
            try:
                week.done[name] = (True, step(week))
            except BaseException as exc:  # pytest's Failed and Skipped too
                week.done[name] = (False, exc)
        ok, value = week.done[name]
        if not ok:
            raise value
        result: T = value
        return result

    return run


def git_date(stamp: str) -> str:
    """An ISO 8601 time (the fake's `...Z` too) in git's own `<seconds> <offset>`."""
    return f"{int(datetime.fromisoformat(stamp.replace('Z', '+00:00')).timestamp())} +0000"


def github_date(stamp: str) -> str:
    return datetime.fromisoformat(stamp).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tail(run: ActRun, chars: int = 8000) -> str:
    return run.log[-chars:]


def job_log(run: ActRun, job: str) -> str:
    """The lines act printed for ``job`` (`caller/workflow/Job name`; act pads the name)."""
    pattern = re.compile(rf"^\[{re.escape(job)}\s*\](.*)$", re.MULTILINE)
    return "\n".join(m.group(1) for m in pattern.finditer(run.log))


def succeeded(run: ActRun, job: str) -> bool:
    return "🏁  Job succeeded" in job_log(run, job)


class Week:
    """The consumer's checkout, the fakes, and the week's runs in the order they happen."""

    def __init__(self, work: Path, github: GitHubFake, slack: SlackFake) -> None:
        self.work = work
        self.github = github
        self.slack = slack
        self.done: dict[str, tuple[bool, Any]] = {}
        # The fake's commit ids to the checkout's (the commits' trees are the same objects).
        self.local: dict[str, str] = {}
        self.api = Github(
            base_url=github.url,
            auth=Auth.Token(TOKEN),
            seconds_between_requests=0,
            seconds_between_writes=0,
        ).get_repo(REPO)
        self.consumer = make_consumer(
            work,
            "release",
            repo=REPO,
            files={
                ".github/workflows/release-train.yml": template(
                    "release-train", {"policy": ".github/release-policy.yml"}
                ),
                ".github/workflows/release.yml": template(
                    "release",
                    {
                        "policy": ".github/release-policy.yml",
                        "at": RELEASE_AT,
                        # An rc stops after staging without the checklist, as the train's
                        # own staging call of release.yml does.
                        "stop-after": (
                            "${{ contains(github.ref_name, '-rc.') && 'staging' || 'production' }}"
                        ),
                        "readiness": "${{ !contains(github.ref_name, '-rc.') }}",
                    },
                ),
                ".github/release-policy.yml": b"deploy:\n  target: simulated\n",
                "CHANGELOG.md": CHANGELOG.format(unreleased="").encode(),
                "app.py": b"search\n",
            },
        )
        self.push_first_commit()

    # -- the checkout and the fake in step ----------------------------------------------------

    def git(self, *args: str, env: dict[str, str] | None = None, stdin: bytes = b"") -> str:
        done = subprocess.run(
            ["git", *args],
            cwd=self.consumer,
            input=stdin,
            capture_output=True,
            check=True,
            env={**os.environ, **(env or {})},
        )
        return done.stdout.decode().strip()

    def push_first_commit(self) -> None:
        """The consumer's first commit becomes the fake's main, released as v1.3.0: the same
        blobs and tree through the Git Data API, with its author and date."""
        elements = []
        for line in filter(None, self.git("ls-tree", "-r", "-z", "HEAD").split("\0")):
            meta, path = line.split("\t", 1)
            mode, _, sha = meta.split()
            text = subprocess.run(
                ["git", "cat-file", "blob", sha], cwd=self.consumer, capture_output=True, check=True
            ).stdout.decode()
            assert self.api.create_git_blob(text, "utf-8").sha == sha, path
            elements.append(InputGitTreeElement(path, mode, "blob", sha=sha))
        tree = self.api.create_git_tree(elements)
        assert tree.sha == self.git("rev-parse", "HEAD^{tree}")
        name, email, date, message = self.git(
            "log", "-1", "--format=%an%x00%ae%x00%cI%x00%B"
        ).split("\0")
        who = InputGitAuthor(name, email, github_date(date))
        first = self.api.create_git_commit(message, tree, [], author=who, committer=who)
        self.github.set_ref("main", first.sha, repo=REPO)
        self.github.set_ref("v1.3.0", first.sha, tag=True, repo=REPO)
        self.local[first.sha] = self.git("rev-parse", "HEAD")
        self.git("tag", "v1.3.0", "HEAD")
        # Detached, so that a fetch may move any branch.
        self.git("checkout", "-q", "--detach")

    def fetch(self, *names: str) -> None:
        """`git fetch` from the fake: each commit of the named branches and tags that the
        checkout lacks, with the fake's tree (the same object id), message, authors and
        dates; then the branches, and the tags made with `git tag`."""
        repo = self.github.repo(REPO)
        for name in names:
            for record in reversed(self.github.log(name, repo=REPO)):  # parents first
                if record["sha"] in self.local:
                    continue
                parents = [arg for p in record["parents"] for arg in ("-p", self.local[p])]
                author, committer = record["author"], record["committer"]
                env = {
                    "GIT_AUTHOR_NAME": author["name"],
                    "GIT_AUTHOR_EMAIL": author["email"],
                    "GIT_AUTHOR_DATE": git_date(author["date"]),
                    "GIT_COMMITTER_NAME": committer["name"],
                    "GIT_COMMITTER_EMAIL": committer["email"],
                    "GIT_COMMITTER_DATE": git_date(committer["date"]),
                }
                tree = self.write_tree(record["tree"])
                self.local[record["sha"]] = self.git(
                    "commit-tree", tree, *parents, "-m", record["message"], env=env
                )
            target = self.local[repo.refs[name]]
            if name in repo.tags:
                self.git("tag", name, target)
            else:
                self.git("update-ref", f"refs/heads/{name}", target)

    def write_tree(self, tree: str) -> str:
        """The fake's tree ``tree`` written into the checkout's object store, same id."""
        repo = self.github.repo(REPO)
        lines, folders = [], [("", tree)]
        while folders:
            prefix, sha = folders.pop()
            for entry in repo.trees[sha]:
                path = prefix + entry["name"]
                if entry["type"] == "tree":
                    folders.append((path + "/", entry["sha"]))
                    continue
                text = repo.blobs[entry["sha"]].encode()
                assert self.git("hash-object", "-w", "--stdin", stdin=text) == entry["sha"], path
                lines.append(f"{entry['mode']} {entry['sha']}\t{path}\n")
        index = self.work / "fetch-index"
        index.unlink(missing_ok=True)
        env = {"GIT_INDEX_FILE": str(index)}
        self.git("update-index", "--index-info", env=env, stdin="".join(lines).encode())
        written = self.git("write-tree", env=env)
        assert written == tree, f"the fake's tree {tree} is {written} in git"
        return written

    def check_out(self, ref: str) -> None:
        """The working tree at ``ref``: a branch, or a tag detached, as a tag's run has it."""
        if ref in self.github.repo(REPO).tags:
            self.git("checkout", "-q", "--detach", ref)
        else:
            self.git("checkout", "-q", ref)

    # -- GitHub, as the team uses it ----------------------------------------------------------

    def pull(self, number: int) -> dict[str, Any]:
        return next(p for p in self.github.repo(REPO).pulls if p["number"] == number)

    def merge(self, number: int, at: str) -> str:
        """The merge button on an up-to-date pull request: a merge commit dated ``at`` whose
        tree is the head's, on the base branch; the pull request is then merged."""
        pull = self.pull(number)
        refs = self.github.repo(REPO).refs
        base, head = refs[pull["base_ref"]], refs[pull["head_ref"]]
        assert base in {c["sha"] for c in self.github.log(head, repo=REPO)}, "not up to date"
        who = InputGitAuthor("carol", "carol@example.com", github_date(at))
        commit = self.api.create_git_commit(
            f"Merge pull request #{number} from {pull['head_ref']}\n\n{pull['title']}",
            self.api.get_git_commit(head).tree,
            [self.api.get_git_commit(base), self.api.get_git_commit(head)],
            author=who,
            committer=who,
        )
        self.api.get_git_ref(f"heads/{pull['base_ref']}").edit(commit.sha)
        pull.update(
            state="closed",
            merged=True,
            merged_at=github_date(at),
            closed_at=github_date(at),
            merge_commit_sha=commit.sha,
        )
        return commit.sha

    # -- act ------------------------------------------------------------------------------------

    def act(
        self,
        name: str,
        *,
        event_name: str,
        event: dict[str, Any],
        workflow: str,
        env: dict[str, str] | None = None,
    ) -> ActRun:
        run = run_act(
            self.consumer,
            event_name=event_name,
            event={"repository": {"full_name": REPO, "default_branch": "main"}, **event},
            workflow=workflow,
            env={"GITHUB_API_URL": self.github.url, **(env or {})},
            secrets={"GITHUB_TOKEN": TOKEN, "SLACK_WEBHOOK_URL": self.slack.webhook_url},
        )
        (self.work / f"{name}.log").write_text(run.log)  # kept under pytest's basetemp
        return run

    def train(self, name: str, **kwargs: Any) -> ActRun:
        """The consumer's release-train.yml, run on its default branch."""
        self.check_out("main")
        return self.act(name, workflow=".github/workflows/release-train.yml", **kwargs)

    def release(self, name: str, tag: str) -> tuple[ActRun, dict[str, str]]:
        """The consumer's release.yml on the push of ``tag``, in the checkout at the tag; with
        what its build and smoke scripts wrote (the results folder is shared)."""
        for written in ("build.log", "smoke.log"):
            (self.consumer.parent / "results" / written).unlink(missing_ok=True)
        self.check_out(tag)
        run = self.act(
            name,
            event_name="push",
            event={"ref": f"refs/tags/{tag}"},
            workflow=".github/workflows/release.yml",
        )
        return run, {f: run.result(f) for f in ("build.log", "smoke.log")}

    def freeze_check(self, name: str, pull: dict[str, Any], labels: list[str], at: str) -> ActRun:
        return self.train(
            name,
            event_name="pull_request_target",
            event={
                "action": "opened",
                "number": pull["number"],
                "pull_request": {
                    "number": pull["number"],
                    "title": pull["title"],
                    "labels": [{"name": label} for label in labels],
                    "base": {"ref": BRANCH, "repo": {"full_name": REPO}},
                    "head": {"ref": pull["head"]["ref"], "repo": {"full_name": REPO}},
                },
            },
            env={"RELEASE_ACTIONS_NOW": at},
        )

    # -- the week -------------------------------------------------------------------------------

    @once
    def wednesday(self) -> dict[str, Any]:
        """main: a feature a minute before the freeze and one a minute after; the cut."""
        act_binary()  # under CI=true a missing act fails the test, before anything runs
        before = self.github.commit(
            "main",
            {"CHANGELOG.md": CHANGELOG.format(unreleased=UNRELEASED_BEFORE), "app.py": "share\n"},
            message="feat: trip sharing",
            author="Carol",
            date=BEFORE_FREEZE,
            repo=REPO,
        )
        after = self.github.commit(
            "main",
            {"CHANGELOG.md": CHANGELOG.format(unreleased=UNRELEASED_AFTER), "app.py": "maps\n"},
            message="feat: offline maps",
            author="Dave",
            date=AFTER_FREEZE,
            repo=REPO,
        )
        self.fetch("main")
        run = self.train(
            "wednesday",
            event_name="schedule",
            event={"schedule": "5 1 * * 3"},
            env={"RELEASE_ACTIONS_NOW": WEDNESDAY},
        )
        assert run.returncode == 0, tail(run)
        self.fetch(BRANCH, CHANGELOG_BRANCH)
        repo = self.github.repo(REPO)
        return {
            "run": run,
            "before": before,
            "after": after,
            "refs": dict(repo.refs),
            "pulls": [dict(p) for p in repo.pulls],
            "issues": self.github.issues(repo=REPO),
            "slack": [m.text for m in self.slack.messages],
        }

    @once
    def frozen(self) -> dict[str, Any]:
        """The CHANGELOG merges; a feature and a fix ask to merge into the frozen branch; the
        reviewed fix merges (with its CI's check run), the feature stays out."""
        (changelog_pull,) = self.wednesday()["pulls"]
        self.merge(changelog_pull["number"], CHANGELOG_MERGED_AT)
        writes = len(self.github.writes())
        self.github.commit(
            "feature/comments",
            {"app.py": "share\ncomments\n"},
            message="feat: trip comments",
            base=BRANCH,
            author="Erin",
            date=FEATURE_AT,
            repo=REPO,
        )
        feature = self.github.add_pull(
            "feature/comments", base=BRANCH, title="feat: trip comments", user="erin", repo=REPO
        )
        blocked = self.freeze_check("feature-pull", feature, ["enhancement"], FEATURE_AT)
        self.github.commit(
            "fix/login",
            {"app.py": "share\nlogin fixed\n"},
            message="fix: crash on login",
            base=BRANCH,
            author="Carol",
            date=FIX_AT,
            repo=REPO,
        )
        fix = self.github.add_pull(
            "fix/login", base=BRANCH, title="fix: crash on login", user="carol", repo=REPO
        )
        allowed = self.freeze_check("fix-pull", fix, ["bug"], FIX_AT)
        checks_wrote = self.github.writes()[writes:]
        assert allowed.returncode == 0, tail(allowed)
        for login in ("ann", "bob"):
            self.github.add_review(fix["number"], "APPROVED", user=login, repo=REPO)
        head = self.merge(fix["number"], FIX_MERGED_AT)
        self.github.add_check_run(head, "unit", repo=REPO)
        self.fetch(BRANCH, "feature/comments", "fix/login")
        return {
            "feature": feature,
            "fix": fix,
            "blocked": blocked,
            "allowed": allowed,
            "checks_wrote": checks_wrote,
            "head": head,
        }

    @once
    def thursday(self) -> dict[str, Any]:
        """`stage` tags the rc at the branch head; the rc's push deploys it to staging."""
        head = self.frozen()["head"]
        run = self.train(
            "thursday",
            event_name="schedule",
            event={"schedule": "5 1 * * 4"},
            env={"RELEASE_ACTIONS_NOW": THURSDAY},
        )
        assert run.returncode == 0, tail(run)
        assert self.github.repo(REPO).refs.get(RC) == head, tail(run)
        self.fetch(RC)
        slack = len(self.slack.messages)
        staging, wrote = self.release("rc", RC)
        return {
            "run": run,
            "head": head,
            "staging": staging,
            "wrote": wrote,
            "slack": [m.text for m in self.slack.messages[slack:]],
            "releases": list(self.github.releases),
            "deployments": [dict(d) for d in self.github.repo(REPO).deployments],
        }

    @once
    def tuesday(self) -> dict[str, Any]:
        """`ship` tags the release at the branch head; the tag's push goes to production."""
        head = self.thursday()["head"]
        run = self.train(
            "tuesday", event_name="workflow_dispatch", event={"inputs": {"now": TUESDAY}}
        )
        assert run.returncode == 0, tail(run)
        assert self.github.repo(REPO).refs.get(FINAL) == head, tail(run)
        self.fetch(FINAL)
        slack = len(self.slack.messages)
        production, wrote = self.release("final", FINAL)
        return {
            "run": run,
            "head": head,
            "production": production,
            "wrote": wrote,
            "slack": [m.text for m in self.slack.messages[slack:]],
        }


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Week]:
    with GitHubFake(repos=(REPO,), token=TOKEN) as github, SlackFake() as slack:
        yield Week(tmp_path_factory.mktemp("train-week"), github, slack)


def test_wednesday_cuts_the_release_branch_at_the_last_commit_before_the_freeze(
    week: Week,
) -> None:
    wed = week.wednesday()
    run, refs = wed["run"], wed["refs"]
    assert '::set-output:: steps=["cut"]' in job_log(run, "train/release-train/What is due")
    assert succeeded(run, "train/release-train/Cut the release branch"), tail(run)
    assert refs[BRANCH] == wed["before"], tail(run)
    assert refs["main"] == wed["after"]
    # The CHANGELOG pull request: 1.4.0 dated the production day, without the late feature.
    (pull,) = wed["pulls"]
    assert (pull["title"], pull["head_ref"], pull["base_ref"], pull["state"]) == (
        "Release v1.4.0: CHANGELOG",
        CHANGELOG_BRANCH,
        BRANCH,
        "open",
    )
    changelog = week.github.file_at(pull["head_sha"], "CHANGELOG.md", repo=REPO)
    assert changelog is not None
    assert f"## [Unreleased]\n\n## [1.4.0] - 2027-01-12\n\n{SHIPPED}\n\n## [1.3.0]" in changelog
    assert "Offline maps" not in changelog
    (issue,) = wed["issues"]
    assert issue["title"] == "Release v1.4.0" and issue["state"] == "open"
    assert [label["name"] for label in issue["labels"]] == ["release-train"]
    assert wed["before"] in issue["body"] and f"#{pull['number']}" in issue["body"]
    assert "Tue 2027-01-12 10:00 JST" in issue["body"]
    (notice,) = wed["slack"]
    assert "Release v1.4.0 scheduled" in notice and "2027-01-12 (Tue) 10:00 JST" in notice
    assert "Trip sharing with friends" in notice and "Offline maps" not in notice
    # Nothing else was due: no tag, and the other jobs never started.
    assert not [name for name in refs if name.startswith("v1.4")]
    for job in ("Tag the release", "Code freeze", "Staging", "Production"):
        assert f"[train/release-train/{job}" not in run.log, job
    # In the checkout, the fetched branch is main's commit before the freeze, same tree.
    assert week.git("rev-parse", BRANCH) == week.git("rev-parse", "main~1")
    assert week.git("log", "-1", "--format=%s %cI", BRANCH) == (
        "feat: trip sharing 2027-01-06T00:59:00+00:00"
    )


def test_a_feature_into_the_frozen_branch_is_blocked_and_a_fix_passes(week: Week) -> None:
    frozen = week.frozen()
    blocked, allowed = frozen["blocked"], frozen["allowed"]
    check = "train/release-train/Code freeze"
    assert blocked.returncode != 0, tail(blocked)
    assert "🏁  Job failed" in job_log(blocked, check), tail(blocked)
    reason = f"frozen: only fixes merge into `{BRANCH}` until 2027-01-12 10:00 JST"
    assert f"::error title=Code freeze::{reason}" in job_log(blocked, check), tail(blocked)
    assert succeeded(allowed, check), tail(allowed)
    assert "allowed: a fix (its title): allowed during the freeze" in job_log(allowed, check)
    for run in (blocked, allowed):  # a pull request never runs the train
        assert "[train/release-train/What is due" not in run.log
    assert frozen["checks_wrote"] == []  # the freeze check only reads
    # The release branch in the checkout: the CHANGELOG and the fix merged, the feature not.
    assert week.git("show", f"{BRANCH}:app.py") == "share\nlogin fixed"
    assert "## [1.4.0] - 2027-01-12" in week.git("show", f"{BRANCH}:CHANGELOG.md")
    merged = week.git("log", "--format=%s", BRANCH).splitlines()
    assert "fix: crash on login" in merged and "feat: trip comments" not in merged
    assert "feat: offline maps" not in merged


def test_thursday_tags_the_release_candidate_and_deploys_it_to_staging_only(week: Week) -> None:
    thu = week.thursday()
    run, staging = thu["run"], thu["staging"]
    assert '::set-output:: steps=["stage"]' in job_log(run, "train/release-train/What is due")
    assert f"Tagged {RC} at `{BRANCH}`" in job_log(
        run, "train/release-train/Tag the release candidate"
    ), tail(run)
    # The tag made with git in the checkout is the fetched branch head, the same tree.
    assert week.git("rev-parse", f"{RC}^{{commit}}") == week.local[thu["head"]]
    assert week.git("rev-parse", f"{RC}^{{commit}}") == week.git("rev-parse", BRANCH)
    assert week.git("rev-parse", f"{RC}^{{tree}}") == week.github.log(RC, repo=REPO)[0]["tree"]
    # The release template on the rc's push: staging, then nothing.
    assert staging.returncode == 0, tail(staging)
    assert succeeded(staging, "release/release/Validate the release"), tail(staging)
    deploy = job_log(staging, "release/release/Staging")
    assert f">> rolling rollout of {RC} on triptrip-api: 100%" in deploy, tail(staging)
    assert f"!! promoted {RC}" in deploy
    simulated = "**target**: `simulated` · **provider**: `simulated` · **version**: `{}`"
    assert simulated.format(RC) + " · **strategy**: `rolling`" in staging.log
    assert "✅  Success - Main Deploy to staging" in deploy
    assert succeeded(staging, "release/release/Staging")
    assert thu["wrote"] == {"build.log": "built 1.4.0-rc.1\n", "smoke.log": "smoke 1.4.0-rc.1\n"}
    for job in ("Pre-release checklist", "Production canary", "GitHub Release"):
        assert f"[release/release/{job}" not in staging.log, job
    assert thu["releases"] == []
    assert thu["slack"] == []  # production's notices, not sent
    assert thu["deployments"] == []  # no rollback record either


def test_tuesday_ships_to_production_and_publishes_the_release(week: Week) -> None:
    tue = week.tuesday()
    run, production = tue["run"], tue["production"]
    assert '::set-output:: steps=["ship"]' in job_log(run, "train/release-train/What is due")
    assert f"Tagged {FINAL} at `{BRANCH}`" in job_log(run, "train/release-train/Tag the release")
    assert week.git("rev-parse", f"{FINAL}^{{commit}}") == week.local[tue["head"]]
    assert week.git("rev-parse", f"{FINAL}^{{commit}}") == week.git("rev-parse", f"{RC}^{{commit}}")
    # The release template on the final tag's push: the whole release.
    assert production.returncode == 0, tail(production)
    gate = job_log(production, "release/release/Validate the release")
    assert "✅ pass       changelog  `## [1.4.0] - 2027-01-12`" in gate, tail(production)
    assert "✅ pass       calendar   allowed: 2027-01-12 (Tue) 10:25" in gate
    checklist = job_log(production, "release/release/Pre-release checklist")
    assert f"{FINAL} ({tue['head'][:12]}) in {REPO}: ready" in checklist, tail(production)
    assert "#4 has 2 approval(s) (ann, bob)" in checklist
    assert f"!! promoted {FINAL}" in job_log(production, "release/release/Staging")
    canary = job_log(production, "release/release/Production canary")
    assert f">> canary rollout of {FINAL} on triptrip-api: 5% → 20% → 50% → 100%" in canary
    assert f"!! promoted {FINAL}: all 4 steps passed" in canary, tail(production)
    assert f"Summary - ## Canary rollout of {FINAL}: ✅ promoted" in canary
    simulated = "**target**: `simulated` · **provider**: `simulated` · **version**: `{}`"
    assert simulated.format(FINAL) + " · **strategy**: `canary`" in production.log
    assert "decision: stable" in canary  # the watch after the promotion
    assert succeeded(production, "release/release/GitHub Release"), tail(production)
    assert tue["wrote"] == {"build.log": "built 1.4.0\n", "smoke.log": "smoke 1.4.0\n"}
    published = week.github.release(FINAL, REPO)
    assert published["body"] == SHIPPED
    assert (published["prerelease"], published["draft"]) == (False, False)
    assert [r["tag_name"] for r in week.github.releases] == [FINAL]
    assert any("v1.4.0" in t and "start" in t.lower() for t in tue["slack"]), tue["slack"]
    assert any("v1.4.0" in t and "complete" in t.lower() for t in tue["slack"]), tue["slack"]
    assert [d for d in week.github.repo(REPO).deployments if d.get("task") == "rollback"] == []
