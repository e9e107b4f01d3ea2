"""Hotfix cherry-picks (source §7): a hotfix's commits back onto main and the release branch.

A real cherry-pick, done with the Git Data API so no clone is needed: for each commit, the
files it changed (tree of its parent against its own tree) are applied to the target's
tree, and a commit with the same message, author and `(cherry picked from commit ...)`
line that `git cherry-pick -x` writes is made on top. Conflicts are found per file: a file
the target holds neither as the commit's parent had it (so the change applies) nor as the
commit left it (already there) conflicts. That is stricter than git, which merges lines
within a file, so a "conflict" here may still pick cleanly by hand, and the pull request
says how. Merging the commit instead (POST /merges) would be simpler but wrong for a
release branch: it brings along every ancestor of the commit, that is all of main.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from release_actions.errors import ReleaseActionsError

if TYPE_CHECKING:
    from github.PullRequest import PullRequest
    from github.Repository import Repository

    from release_actions.core.policy import Policy

BRANCH_PREFIX = "cherry-pick/"
MAX_FILES = 3000  # GitHub lists at most this many files of one commit
_SHA = re.compile(r"^[0-9a-fA-F]{7,40}$")
_PICKED = re.compile(r"^\(cherry picked from commit ([0-9a-f]{40})\)$", re.MULTILINE)
_MARKER = re.compile(r"^Cherry-pick-conflict: ([0-9a-f]{40})$", re.MULTILINE)

Entry = tuple[str, str, str]  # mode, type, sha
Status = Literal["applied", "already", "conflict", "pending"]


class CherryPickError(ReleaseActionsError):
    """Raised when a cherry-pick cannot start: a bad SHA or branch, a merge commit."""


def check_ref_name(name: str, what: str) -> str:
    """A branch name that git accepts (check-ref-format --branch); else an error naming it."""
    short = name.removeprefix("refs/heads/")
    bad = (
        not short
        or short.startswith(("-", "/"))
        or short.endswith(("/", ".", ".lock"))
        or short == "@"
        or any(part.startswith(".") or not part for part in short.split("/"))
        or any(s in short for s in ("..", "@{", "//"))
        or any(c in short for c in " ~^:?*[\\\x7f")
        or any(ord(c) < 32 for c in short)
    )
    if bad:
        raise CherryPickError(
            f"{what} {short!r} is not a valid git branch name.",
            hint="Branch names cannot contain spaces, `~ ^ : ? * [ \\`, `..`, `@{` or control "
            "characters, nor start with `-` or end with `/`, `.` or `.lock`.",
        )
    return short


def pick_branch(source: str, target: str) -> str:
    """`cherry-pick/<hotfix name>-to-<target>`; `hotfix/` is dropped from the name."""
    name = source.removeprefix("hotfix/") or source
    return check_ref_name(f"{BRANCH_PREFIX}{name}-to-{target}", "The cherry-pick branch")


# -- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceCommit:
    sha: str
    parent: str
    tree: str
    parent_tree: str
    message: str
    author: dict[str, str]
    paths: tuple[str, ...]

    @property
    def subject(self) -> str:
        return self.message.splitlines()[0] if self.message.strip() else "(no message)"


@contextmanager
def _errors(action: str, repo: str) -> Iterator[None]:
    from release_actions.integrations.github import github_errors

    with github_errors(action, repo=repo):
        yield


def branch_commits(repo: Repository, base: str, branch: str) -> list[str]:
    """The commits of ``branch`` that ``base`` lacks, oldest first (GitHub's compare)."""
    with _errors(f"Comparing {base}...{branch}", repo.full_name):
        comparison = repo.compare(base, branch)
        return [c.sha for c in comparison.commits]


def read_commits(repo: Repository, shas: Sequence[str]) -> list[SourceCommit]:
    """The hotfix's commits in the order given, each checked to have exactly one parent."""
    out: list[SourceCommit] = []
    seen: set[str] = set()
    for given in shas:
        if not _SHA.match(given):
            raise CherryPickError(
                f"`{given}` is not a commit SHA (7 to 40 hexadecimal characters).",
                hint="Pass each commit of the hotfix with `--sha`.",
            )
        with _errors(f"Reading commit {given}", repo.full_name):
            commit = repo.get_commit(given.lower())
            parents = [p.sha for p in commit.parents]
            files = list(commit.files)
            message = commit.commit.message
            author = commit.commit.author
            tree = commit.commit.tree.sha
        if commit.sha in seen:
            continue
        seen.add(commit.sha)
        if len(parents) != 1:
            kind = "a merge commit" if parents else "a root commit"
            raise CherryPickError(
                f"`{commit.sha[:12]}` is {kind}; only commits with one parent are picked.",
                hint="Pass the commits the merge brought in instead.",
            )
        if len(files) >= MAX_FILES:
            raise CherryPickError(
                f"`{commit.sha[:12]}` changes {len(files)} or more files, more than GitHub "
                "lists; cherry-pick it by hand."
            )
        with _errors(f"Reading commit {parents[0][:12]}", repo.full_name):
            _, parent = repo.requester.requestJsonAndCheck(
                "GET", f"{repo.url}/git/commits/{parents[0]}"
            )
        paths: list[str] = []
        for f in files:
            for path in (f.previous_filename, f.filename):
                if path and path not in paths:
                    paths.append(path)
        out.append(
            SourceCommit(
                sha=commit.sha,
                parent=parents[0],
                tree=tree,
                parent_tree=str(parent["tree"]["sha"]),
                message=message,
                author={
                    "name": author.name,
                    "email": author.email,
                    "date": author.date.strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
                paths=tuple(paths),
            )
        )
    return out


class Trees:
    """Tree entries read one directory at a time and cached: trees never change."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._cache: dict[str, dict[str, Entry]] = {}

    def entries(self, sha: str) -> dict[str, Entry]:
        if sha not in self._cache:
            with _errors(f"Reading tree {sha[:12]}", self.repo.full_name):
                _, data = self.repo.requester.requestJsonAndCheck(
                    "GET", f"{self.repo.url}/git/trees/{sha}"
                )
            self._cache[sha] = {
                str(e["path"]): (str(e["mode"]), str(e["type"]), str(e["sha"]))
                for e in data.get("tree") or []
            }
        return self._cache[sha]

    def lookup(self, root: str, path: str) -> Entry | None:
        """The entry at ``path`` under tree ``root``, or None when there is none."""
        sha = root
        parts = path.split("/")
        for i, part in enumerate(parts):
            entry = self.entries(sha).get(part)
            if entry is None:
                return None
            if i == len(parts) - 1:
                return entry
            if entry[1] != "tree":
                return None
            sha = entry[2]
        return None


# -- deciding ------------------------------------------------------------------------------


@dataclass
class Pick:
    """What happens to one commit on one target."""

    commit: SourceCommit
    status: Status
    changes: dict[str, Entry | None] = field(default_factory=dict)  # None: deleted
    conflicts: list[str] = field(default_factory=list)
    removed: dict[str, Entry] = field(default_factory=dict)  # what a deletion takes away


def plan_picks(trees: Trees, commits: Sequence[SourceCommit], target_tree: str) -> list[Pick]:
    """Apply the commits one after another to a tree, without writing; stop at a conflict."""
    overlay: dict[str, Entry | None] = {}
    picks: list[Pick] = []
    blocked = False
    for commit in commits:
        if blocked:
            picks.append(Pick(commit, "pending"))
            continue
        pick = _pick(trees, commit, target_tree, overlay)
        picks.append(pick)
        if pick.status == "conflict":
            blocked = True
        else:
            overlay.update(pick.changes)
    return picks


def _pick(
    trees: Trees, commit: SourceCommit, target_tree: str, overlay: dict[str, Entry | None]
) -> Pick:
    changes: dict[str, Entry | None] = {}
    removed: dict[str, Entry] = {}
    conflicts: list[str] = []
    for path in commit.paths:
        before = trees.lookup(commit.parent_tree, path)
        after = trees.lookup(commit.tree, path)
        if before == after:
            continue
        now = overlay[path] if path in overlay else trees.lookup(target_tree, path)
        if now == after:
            continue  # the target has it already
        if now == before:
            changes[path] = after
            if after is None and before is not None:
                removed[path] = before
        else:
            conflicts.append(path)
    if conflicts:
        return Pick(commit, "conflict", {}, conflicts)
    return Pick(commit, "applied" if changes else "already", changes, [], removed)


# -- writing ---------------------------------------------------------------------------------


def picked_message(commit: SourceCommit) -> str:
    """The commit's message with the line `git cherry-pick -x` adds."""
    return f"{commit.message.rstrip()}\n\n(cherry picked from commit {commit.sha})"


def marker_message(pick: Pick, target: str) -> str:
    files = "\n".join(f"  {p!r}" if "\n" in p else f"  {p}" for p in pick.conflicts)
    return (
        f"Cherry-pick of {pick.commit.sha[:12]} to {target} needs a hand\n\n"
        f"It conflicts in:\n{files}\n\n"
        "This empty commit holds the pull request open; the commit itself is to be picked\n"
        "with git (see the pull request).\n\n"
        f"Cherry-pick-conflict: {pick.commit.sha}"
    )


def write_picks(repo: Repository, picks: Sequence[Pick], target: str, head: str, tree: str) -> str:
    """Commits for the picks (and a marker for a conflict) on ``head``; the new head SHA."""
    base = f"{repo.url}/git"
    for pick in picks:
        if pick.status == "applied":
            entries = []
            for path, entry in sorted(pick.changes.items()):
                if entry is None:
                    # A deletion: a null sha, with the mode and type of what it removes.
                    old = pick.removed[path]
                    entries.append({"path": path, "mode": old[0], "type": old[1], "sha": None})
                else:
                    entries.append(
                        {"path": path, "mode": entry[0], "type": entry[1], "sha": entry[2]}
                    )
            with _errors(f"Writing the tree of {pick.commit.sha[:12]}", repo.full_name):
                _, made = repo.requester.requestJsonAndCheck(
                    "POST", f"{base}/trees", input={"base_tree": tree, "tree": entries}
                )
                tree = str(made["sha"])
                _, made = repo.requester.requestJsonAndCheck(
                    "POST",
                    f"{base}/commits",
                    input={
                        "message": picked_message(pick.commit),
                        "tree": tree,
                        "parents": [head],
                        "author": pick.commit.author,
                    },
                )
                head = str(made["sha"])
        elif pick.status == "conflict":
            with _errors("Writing the conflict marker", repo.full_name):
                _, made = repo.requester.requestJsonAndCheck(
                    "POST",
                    f"{base}/commits",
                    input={
                        "message": marker_message(pick, target),
                        "tree": tree,
                        "parents": [head],
                    },
                )
            head = str(made["sha"])
            break
    return head


# -- per target ----------------------------------------------------------------------------


@dataclass
class TargetResult:
    target: str
    branch: str
    status: Literal["opened", "exists", "up-to-date"]
    conflict: bool
    number: int | None = None
    url: str | None = None
    state: str | None = None  # of the pull request: open, closed, merged
    picks: list[Pick] = field(default_factory=list)

    def to_output(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "number": self.number,
            "url": self.url,
            "conflict": self.conflict,
            "branch": self.branch,
            "status": self.status,
        }


def _head_of(repo: Repository, branch: str) -> str | None:
    from github import GithubException

    with _errors(f"Reading branch {branch}", repo.full_name):
        try:
            _, data = repo.requester.requestJsonAndCheck(
                "GET", f"{repo.url}/git/ref/heads/{_quote(branch)}"
            )
        except GithubException as exc:
            if exc.status == 404:
                return None
            raise
    obj = data.get("object") if isinstance(data, dict) else None
    return str(obj["sha"]) if isinstance(obj, dict) else None


def _quote(ref: str) -> str:
    from urllib.parse import quote

    return quote(ref, safe="/")


def _find_pull(repo: Repository, branch: str, target: str) -> PullRequest | None:
    with _errors(f"Listing pull requests of {branch}", repo.full_name):
        pulls = list(repo.get_pulls(state="all", head=f"{repo.owner.login}:{branch}", base=target))
    # An open one first, then a merged one, then the newest.
    pulls.sort(key=lambda p: (p.state != "open", not p.merged, -p.number))
    return pulls[0] if pulls else None


def _branch_picks(
    repo: Repository, trees: Trees, commits: Sequence[SourceCommit], target: str, branch: str
) -> tuple[list[Pick], int]:
    """What an existing cherry-pick branch holds: from the lines its commits carry."""
    with _errors(f"Comparing {branch} with {target}", repo.full_name):
        comparison = repo.compare(target, branch)
        ahead = comparison.ahead_by
        listed = list(comparison.commits)  # oldest first
        messages = [c.commit.message for c in listed]
        head_tree = listed[-1].commit.tree.sha if listed else None
    done = {sha for m in messages for sha in _PICKED.findall(m)}
    marked = {sha for m in messages for sha in _MARKER.findall(m)}
    picks: list[Pick] = []
    blocked = False
    for commit in commits:
        if commit.sha in done:
            picks.append(Pick(commit, "applied"))
        elif blocked:
            picks.append(Pick(commit, "pending"))
        elif commit.sha in marked and head_tree is not None:
            # Which files: the commit against the branch as it stands (reads only).
            redo = _pick(trees, commit, head_tree, {})
            picks.append(Pick(commit, "conflict", {}, redo.conflicts or list(commit.paths)))
            blocked = True
        elif head_tree is not None and _pick(trees, commit, head_tree, {}).status == "already":
            picks.append(Pick(commit, "already"))
        else:
            picks.append(Pick(commit, "pending"))
            blocked = True
    return picks, ahead


def cherry_pick_to(
    repo: Repository,
    commits: Sequence[SourceCommit],
    source: str,
    target: str,
    *,
    trees: Trees | None = None,
    dry_run: bool = False,
) -> TargetResult:
    """Open (or find) the pull request that brings ``commits`` to ``target``."""
    from github import GithubException

    trees = trees or Trees(repo)
    branch = pick_branch(source, target)
    existing = _find_pull(repo, branch, target)
    if existing is not None:
        return _from_pull(repo, trees, commits, target, branch, existing)
    head = _head_of(repo, branch)
    created = False
    picks: list[Pick] = []
    if head is None:
        target_head = _head_of(repo, target)
        if target_head is None:
            raise CherryPickError(
                f"The target branch `{target}` does not exist in {repo.full_name}.",
                hint="Check `--to` and `--to-release-branch`.",
            )
        with _errors(f"Reading commit {target_head[:12]}", repo.full_name):
            _, top = repo.requester.requestJsonAndCheck(
                "GET", f"{repo.url}/git/commits/{target_head}"
            )
        target_tree = str(top["tree"]["sha"])
        picks = plan_picks(trees, commits, target_tree)
        if all(p.status == "already" for p in picks):
            return TargetResult(target, branch, "up-to-date", False, picks=picks)
        if dry_run:
            conflict = any(p.status == "conflict" for p in picks)
            return TargetResult(target, branch, "opened", conflict, picks=picks)
        new_head = write_picks(repo, picks, target, target_head, target_tree)
        with _errors(f"Creating branch {branch}", repo.full_name):
            try:
                repo.requester.requestJsonAndCheck(
                    "POST",
                    f"{repo.url}/git/refs",
                    input={"ref": f"refs/heads/{branch}", "sha": new_head},
                )
                created = True
            except GithubException as exc:
                if exc.status != 422 or "already exists" not in str(exc.data):
                    raise
                # Another run made it between our look and our create: use theirs.
    if not created:
        picks, ahead = _branch_picks(repo, trees, commits, target, branch)
        if ahead == 0:
            return TargetResult(target, branch, "up-to-date", False, picks=picks)
    conflict = any(p.status in ("conflict", "pending") for p in picks)
    if dry_run:
        return TargetResult(target, branch, "opened", conflict, picks=picks)
    title = f"Cherry-pick {source} to {target}"
    body = pull_body(repo, source, target, branch, picks)
    with _errors(f"Opening the pull request of {branch}", repo.full_name):
        try:
            pull = repo.create_pull(
                base=target, head=branch, title=title, body=body, draft=conflict
            )
        except GithubException as exc:
            if exc.status != 422 or "already exists" not in str(exc.data):
                raise
            found = _find_pull(repo, branch, target)
            if found is None:
                raise
            return _from_pull(repo, trees, commits, target, branch, found)
    return TargetResult(
        target, branch, "opened", conflict, pull.number, pull.html_url, "open", picks
    )


def _from_pull(
    repo: Repository,
    trees: Trees,
    commits: Sequence[SourceCommit],
    target: str,
    branch: str,
    pull: PullRequest,
) -> TargetResult:
    state = "merged" if pull.merged else pull.state
    picks: list[Pick] = []
    conflict = False
    if state == "open" and _head_of(repo, branch) is not None:
        picks, _ = _branch_picks(repo, trees, commits, target, branch)
        conflict = any(p.status in ("conflict", "pending") for p in picks)
    return TargetResult(
        target, branch, "exists", conflict, pull.number, pull.html_url, state, picks
    )


# -- targets -------------------------------------------------------------------------------


def latest_release_branch(repo: Repository, policy: Policy) -> str | None:
    """The release branch of the highest `X.Y.Z` (SemVer precedence), or None.

    Pre-release versions (`release/v2.0.0-rc.1`) are not release branches a hotfix goes to.
    """
    from release_actions.core.versions import Version
    from release_actions.errors import InvalidVersionError

    pattern = re.compile(policy.branches.release_pattern)
    best: tuple[Version, str] | None = None
    with _errors("Listing branches", repo.full_name):
        names = [b.name for b in repo.get_branches()]
    for name in names:
        m = pattern.match(name)
        if m is None:
            continue
        try:
            version = Version.parse(m.groupdict().get("version") or "")
        except InvalidVersionError:
            continue
        if version.is_prerelease:
            continue
        if best is None or version > best[0]:
            best = (version, name)
    return best[1] if best else None


# -- the pull request's text -----------------------------------------------------------------


def code_span(text: str) -> str:
    """Text as an inert Markdown code span (no HTML, links or mentions), on one line."""
    text = text.replace("\r", " ").replace("\n", " ")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


_RESULT = {
    "applied": "✅ applied",
    "already": "➖ already on the target",
    "conflict": "⚠️ conflicts",
    "pending": "⏸ not applied yet",
}


def pull_body(
    repo: Repository, source: str, target: str, branch: str, picks: Sequence[Pick]
) -> str:
    """The pull request's body; names from input are code spans, commands shell-quoted."""
    from release_actions.gha import markdown_table

    rows = []
    for p in picks:
        result = _RESULT[p.status]
        if p.conflicts:
            result += " in " + ", ".join(code_span(f) for f in p.conflicts)
        rows.append([f"{p.commit.sha[:12]} {code_span(p.commit.subject)}", result])
    out = [
        f"Brings the hotfix {code_span(source)} to {code_span(target)}, as source §7 asks: a hotfix "
        "goes back to main and to the release branch.\n\n",
        markdown_table(["Commit", "Result"], rows),
    ]
    todo = [p for p in picks if p.status in ("conflict", "pending")]
    if todo:
        first = todo[0]
        why = (
            f"`{first.commit.sha[:12]}` changes files that differ on {code_span(target)}"
            if first.status == "conflict"
            else "some commits are not on this branch yet"
        )
        remote = f"origin/{branch}"
        lines = [
            f"git fetch origin {shlex.quote(branch)}",
            f"git checkout -b {shlex.quote(branch)} {shlex.quote(remote)}",
            f"git cherry-pick -x {first.commit.sha}",
        ]
        if first.status == "conflict":
            lines.append("# resolve the conflicts, `git add` the files, then:")
            lines.append("git cherry-pick --continue")
        rest = [p.commit.sha for p in todo[1:]]
        if rest:
            lines.append("git cherry-pick -x " + " ".join(rest))
        lines.append(f"git push origin {shlex.quote(branch)}")
        applied = sum(p.status == "applied" for p in picks)
        holds = [f"the {applied} commit(s) that applied cleanly"] if applied else []
        if first.status == "conflict":
            holds.append("an empty marker commit")
        held = " and ".join(holds) or "no commits of the hotfix yet"
        out.append(
            "\n### Finishing by hand\n\n"
            f"This pull request is a draft: {why}. The branch holds {held}. Finish with git, "
            "then mark the pull request ready for review:\n\n"
            # `~` cannot occur in a branch name, so nothing in the block can close this fence.
            "~~~sh\n" + "\n".join(lines) + "\n~~~\n"
        )
    out.append(
        f"\n<sub>Opened by `release-actions hotfix cherry-pick` in {repo.full_name}; a rerun "
        "finds this pull request instead of opening another.</sub>\n"
    )
    return "".join(out)
