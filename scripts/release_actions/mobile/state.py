"""Where the mobile gate keeps its state between hourly runs: one JSON file per app on a branch.

The gate's state (``GateState``: the stage, every hour's counts it judged, the decision) must
outlive the job, reach the next scheduled run an hour later, and never be written by two
runs on top of each other. The choices, and why this one:

- A GitHub deployment per look: its ``payload`` is set at creation and immutable, and a
  status's ``description`` holds 140 characters, so every look would be a new deployment:
  168 a week per app, in the list where the rollback records live. No.
- The Actions cache: entries are immutable and evicted (7 days unused, or the repository's
  10 GB filled by other caches), so a rollout's evidence could vanish mid-rollout; restoring
  picks the newest key by prefix, which is no compare-and-swap. No.
- Artifacts: another run's artifact needs its run id and `actions: read`, and nothing stops
  two uploads. No.
- A file on a dedicated branch (``release-actions/mobile-state``), written through the Git
  Data API: kept until someone deletes the branch, readable by any run, and each write is a
  commit whose ref moves only as a fast-forward from the commit that was read. A second
  writer that read the same commit is refused (``GateStateConflict``) instead of silently
  overwriting; the CLI then reads again and repeats its look, which is idempotent. The
  branch's history is the gate's log: one commit per look that changed something or took
  in new hours. The cost is `contents: write` for the gate's job, on a branch that holds
  nothing but these files (the workflow's concurrency group per app already keeps to one
  writer; the fast-forward rule is the guard when another workflow, a person's halt, say,
  writes at the same moment).

``FileStateStore`` (``--state-file``) is the same for a local run and for tests.
"""

from __future__ import annotations

import base64
import json
import re
from typing import TYPE_CHECKING, Any

from release_actions.errors import IntegrationError, require

if TYPE_CHECKING:
    from github.Repository import Repository

DEFAULT_BRANCH = "release-actions/mobile-state"
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class GateStateConflict(IntegrationError):
    """Raised when another run saved the gate's state after this one read it."""


def state_path(platform: str, app: str) -> str:
    """The file of one app's gate state on the branch: ``mobile/android/com.example.app.json``."""
    return f"mobile/{platform}/{_SAFE.sub('_', app)}.json"


class BranchStateStore:
    """The gate's state as a file on a branch, written only as a fast-forward of what was read."""

    def __init__(self, repo: Repository, *, branch: str, path: str) -> None:
        self.repo = repo
        self.branch = branch
        self.path = path
        self._read = False
        self._commit: str | None = None
        self._tree: str | None = None
        self._text: str | None = None
        self.commits: list[str] = []

    @classmethod
    def from_env(
        cls,
        env: dict[str, str],
        *,
        branch: str,
        path: str,
        repository: str | None = None,
    ) -> BranchStateStore:
        from release_actions.integrations.github import client, get_repo

        name = repository or env.get("GITHUB_REPOSITORY")
        if not name:
            raise IntegrationError(
                "No repository for the mobile gate's state: `GITHUB_REPOSITORY` is not set.",
                hint="Pass `--repo OWNER/NAME`, or keep the state in a file with "
                "`--state-file PATH` (a local run).",
            )
        return cls(get_repo(client(env), name), branch=branch, path=path)

    def _errors(self, action: str) -> Any:
        from release_actions.integrations.github import github_errors

        return github_errors(action, repo=self.repo.full_name)

    def load(self) -> dict[str, Any] | None:
        github: Any = require("github", "github")
        self._read = True
        self._text = None
        with self._errors(f"Reading the mobile gate's state from branch `{self.branch}`"):
            try:
                # PyGithub reads a ref lazily: the attribute, not the call, asks GitHub.
                self._commit = self.repo.get_git_ref(f"heads/{self.branch}").object.sha
            except github.GithubException as exc:
                if exc.status != 404:
                    raise
                self._commit = self._tree = None
                return None
            commit = self.repo.get_git_commit(self._commit)
            self._tree = commit.tree.sha
            tree = self.repo.get_git_tree(self._tree, recursive=True)
            blob_sha = next(
                (e.sha for e in tree.tree if e.path == self.path and e.type == "blob"), None
            )
            if blob_sha is None:
                return None
            blob = self.repo.get_git_blob(blob_sha)
        raw = base64.b64decode(blob.content) if blob.encoding == "base64" else blob.content
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        self._text = text
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IntegrationError(
                f"`{self.path}` on branch `{self.branch}` is not JSON ({exc.msg}).",
                hint="Fix or delete the file on that branch; the gate then starts the "
                "version's state afresh from the store.",
            ) from None
        return data if isinstance(data, dict) else None

    def save(self, data: dict[str, Any]) -> None:
        github: Any = require("github", "github")
        if not self._read:
            self.load()
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        if text == self._text:
            return  # a look in the same hour as the last: no commit that says nothing
        message = (
            f"mobile gate: {data.get('platform')} {data.get('version_code')} "
            f"{data.get('decision')} at stage {data.get('stage_index')}"
        )
        element = github.InputGitTreeElement(self.path, "100644", "blob", content=text)
        action = f"Saving the mobile gate's state on branch `{self.branch}`"
        with self._errors(action):
            if self._tree is not None:
                tree = self.repo.create_git_tree([element], self.repo.get_git_tree(self._tree))
            else:
                tree = self.repo.create_git_tree([element])
            parents = [] if self._commit is None else [self.repo.get_git_commit(self._commit)]
            commit = self.repo.create_git_commit(message, tree, parents)
            try:
                if self._commit is None:
                    self.repo.create_git_ref(f"refs/heads/{self.branch}", commit.sha)
                else:
                    ref = self.repo.get_git_ref(f"heads/{self.branch}")
                    if ref.object.sha != self._commit:
                        raise _conflict(self.branch)
                    ref.edit(commit.sha, force=False)  # refused unless a fast-forward
            except github.GithubException as exc:
                if exc.status == 422:
                    raise _conflict(self.branch) from exc
                raise
        self._commit, self._tree, self._text = commit.sha, tree.sha, text
        self.commits.append(commit.sha)


def _conflict(branch: str) -> GateStateConflict:
    return GateStateConflict(
        f"Another run saved the mobile gate's state on branch `{branch}` after this one read "
        "it; nothing of this run's state was written.",
        hint="Rerun: a look is idempotent, and the next one starts from the state the other "
        "run saved.",
    )
