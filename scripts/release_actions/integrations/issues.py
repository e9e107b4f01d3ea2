"""Issues found again by a marker in their body: one issue per key, however often a job runs."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from github.Issue import Issue
    from github.Repository import Repository


def marked_issues(repo: Repository, label: str, marker: re.Pattern[str]) -> dict[str, list[Issue]]:
    """The ``label`` issues (open and closed) by the key in their ``marker`` (its group 1).

    The title is no key: a person may retitle an issue, and GitHub does not keep titles
    unique. In each list the open issue comes first, then the lowest number, so that a rerun
    always finds the same one.
    """
    out: dict[str, list[Issue]] = {}
    for issue in repo.get_issues(state="all", labels=[label]):
        if issue.pull_request is not None:
            continue
        m = marker.search(issue.body or "")
        if m:
            out.setdefault(m[1], []).append(issue)
    for issues in out.values():
        issues.sort(key=lambda i: (i.state != "open", i.number))
    return out


def ensure_label(repo: Repository, name: str, color: str, description: str) -> None:
    """The label ``name`` exists afterwards: created unless it is there already."""
    from github import GithubException

    try:
        repo.get_label(name)
        return
    except GithubException as exc:
        if exc.status != 404:
            raise
    try:
        repo.create_label(name, color, description)
    except GithubException as exc:
        if exc.status != 422:  # created by another run a moment ago
            raise


@dataclass(frozen=True)
class MarkedIssue:
    """What `upsert_marked` did about the issue of one key, or (dry run) would do."""

    key: str
    action: str  # created, updated, unchanged, would create, would update
    title: str
    number: int | None = None
    url: str | None = None

    @property
    def changed(self) -> bool:
        return self.action in ("created", "updated")

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "action": self.action,
            "title": self.title,
            "number": self.number,
            "url": self.url,
        }


def upsert_marked(
    repo: Repository,
    *,
    label: tuple[str, str, str],
    marker: re.Pattern[str],
    key: str,
    title: str,
    body: str,
    dry_run: bool,
    keep: Callable[[str, str], str] | None = None,
) -> MarkedIssue:
    """The one issue of ``key`` holds ``body`` (which must carry the marker): updated when it
    exists (open or closed, its state left as a person set it), opened otherwise.

    ``label`` is (name, color, description). ``keep(body, previous)`` carries over what a
    person changed in the issue (ticked items). A body and title equal to the issue's write
    nothing, so a rerun with the same figures changes nothing.
    """
    from release_actions.integrations.github import github_errors

    name, color, description = label
    where = repo.full_name
    found = marker.search(body)
    if found is None or found[1] != key:
        raise ValueError(f"the body of the issue of {key!r} does not carry its marker")
    with github_errors(f"Listing the `{name}` issues", repo=where):
        existing = marked_issues(repo, name, marker).get(key, [])
    if existing:
        issue = existing[0]
        if keep is not None:
            body = keep(body, issue.body or "")
        changes: dict[str, Any] = {}
        if title != (issue.title or ""):
            changes["title"] = title
        if body != (issue.body or ""):
            changes["body"] = body
        if not changes:
            return MarkedIssue(key, "unchanged", title, issue.number, issue.html_url)
        if dry_run:
            return MarkedIssue(key, "would update", title, issue.number, issue.html_url)
        with github_errors(f"Updating the issue #{issue.number}", repo=where):
            issue.edit(**changes)
        return MarkedIssue(key, "updated", title, issue.number, issue.html_url)
    if dry_run:
        return MarkedIssue(key, "would create", title)
    with github_errors(f"Creating the label `{name}`", repo=where):
        ensure_label(repo, name, color, description)
    with github_errors(f"Opening the issue {title!r}", repo=where):
        created = repo.create_issue(title=title, body=body, labels=[name])
    return MarkedIssue(key, "created", title, created.number, created.html_url)


_TICKED = re.compile(r"^- \[[xX]\] (.+?)\s*$", re.MULTILINE)
_OPEN = re.compile(r"^- \[ \] (.+?)\s*$", re.MULTILINE)


def keep_ticks(body: str, previous: str) -> str:
    """``body`` with the task-list items that ``previous`` had ticked ticked again."""
    ticked = set(_TICKED.findall(previous))
    return _OPEN.sub(lambda m: f"- [x] {m[1]}" if m[1] in ticked else m[0], body)
