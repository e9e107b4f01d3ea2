"""The stale-flag audit (source §5.5): the export, the code references, one issue per stale flag."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from release_actions.app.session import Session
from release_actions.core import flag_audit as rules
from release_actions.core.policy import DEFAULT_POLICY_PATH, Policy
from release_actions.errors import ReleaseActionsError

if TYPE_CHECKING:
    from github.Issue import Issue
    from github.Repository import Repository

LABEL = "stale-flag"
LABEL_COLOR = "d93f0b"
MARKER = "<!-- release-actions:stale-flag {key} -->"
_MARKER = re.compile(r"<!-- release-actions:stale-flag (\S+) -->")
CHECKLIST = (
    "Remove the flag's checks from the code (each reference below)",
    "Remove the flag's default value",
    "Remove or update the tests of both variations",
    "Archive the flag in LaunchDarkly",
)
_ARCHIVE_ITEM = CHECKLIST[-1]
# An issue body is at most 65,536 characters; the rest of a long list is counted, not shown.
MAX_LISTED_REFERENCES = 100
PERMISSIONS_YAML = "permissions:\n  issues: write\n  contents: read"


class FlagAuditError(ReleaseActionsError):
    """Raised when the audit cannot run: a bad `--now`, an export file that cannot be read,
    or a checkout that `git grep` cannot search."""


# -- inputs ----------------------------------------------------------------------------------


def parse_now(text: str | None, env: Mapping[str, str]) -> datetime:
    """`--now`, else `RELEASE_ACTIONS_NOW`, else the clock; a time without an offset is
    refused, as it would be read hours off."""
    raw = (text or env.get("RELEASE_ACTIONS_NOW") or "").strip()
    if not raw:
        return datetime.now(UTC)
    try:
        at = rules.parse_time(raw)
    except ValueError as exc:
        raise FlagAuditError(
            f"`--now` (or `RELEASE_ACTIONS_NOW`): {exc}.",
            hint="Such as `2026-04-01T09:00:00+09:00` or `2026-04-01T00:00:00Z`.",
        ) from None
    assert at is not None
    return at


def policy_zone(policy: Policy) -> ZoneInfo:
    """The zone a bare date of the export or the catalog is read in: the calendar's."""
    return ZoneInfo(policy.calendar.timezone)


def load_flags(
    session: Session, policy: Policy, input_path: Path | None
) -> tuple[list[rules.ExportedFlag], str]:
    """The flags to audit and where they came from: ``input_path``, or LaunchDarkly through
    `flags export` (a request); the catalog fills in what the export leaves empty."""
    zone = policy_zone(policy)
    if input_path is not None:
        source = str(input_path)
        try:
            text = input_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise FlagAuditError(
                f"Cannot read the flag export {source}: {exc.strerror or exc}.",
                hint="Write it with `release-actions flags export --json > flags.json`, or "
                "leave `--input` out to ask LaunchDarkly.",
                file=source,
            ) from None
        except UnicodeDecodeError:
            raise FlagAuditError(
                f"The flag export {source} is not UTF-8 text.", file=source
            ) from None
        flags = rules.parse_export_text(text, source, zone=zone)
    else:
        # `flags export` lives in its own module; imported only when the audit asks for it.
        from release_actions.app.flag_lifecycle import export_flags

        source = f"LaunchDarkly project `{policy.feature_flags.launchdarkly.project}`"
        document = export_flags(session, policy, None)
        # What the export noticed (kinds that disagree, catalog entries gone) goes on the log.
        for warning in document.get("warnings") or []:
            session.runtime.annotate("warning", str(warning), title="Flag export")
        flags = rules.parse_export(document, source, zone=zone)
    return rules.with_catalog(flags, policy.feature_flags.catalog, zone), source


# -- code references -------------------------------------------------------------------------


def code_references(
    checkout: Path, keys: Iterable[str], *, exclude: Iterable[Path] = ()
) -> dict[str, list[str]]:
    """Each key's `path:line` in the checkout's tracked files, every language (`git grep -F`).

    ``exclude``: files that name every flag without using one, such as the policy's catalog
    and the export itself, when they sit inside the checkout.
    """
    root = checkout.resolve()
    skipped = []
    for path in exclude:
        full = path.resolve() if path.is_absolute() else (Path.cwd() / path).resolve()
        if full.is_relative_to(root):
            skipped.append(f":(exclude,literal){full.relative_to(root).as_posix()}")
    return {key: _grep(root, key, skipped) for key in keys}


def _grep(root: Path, key: str, skipped: Sequence[str]) -> list[str]:
    # -z: a path may hold `:`; -I: binary files are no references.
    command = ["git", "-C", str(root), "grep", "-n", "-z", "-I", "-F", "--no-color", "-e", key]
    try:
        done = subprocess.run(
            [*command, "--", ".", *skipped],
            capture_output=True,
            check=False,
            timeout=120,
        )
    except FileNotFoundError:
        raise FlagAuditError(
            "`git` is not installed: the audit needs it to find the flags' code references.",
            hint="Run it on a runner with git (GitHub's runners have it).",
        ) from None
    except subprocess.TimeoutExpired:
        raise FlagAuditError(f"`git grep` for `{key}` took over 120 s in {root}.") from None
    if done.returncode == 1:
        return []
    if done.returncode != 0:
        error = done.stderr.decode("utf-8", "replace").strip()
        raise FlagAuditError(
            f"`git grep` cannot search {root} for the flags' code references: {error}",
            hint="Check the repository out first (`actions/checkout`), or pass "
            "`--checkout DIR` with a git checkout.",
        )
    found = []
    for line in done.stdout.decode("utf-8", "replace").splitlines():
        path, _, rest = line.partition("\0")
        number, _, _ = rest.partition("\0")
        found.append(f"{path}:{number}")
    return found


def excluded_files(policy_path: Path | None, input_path: Path | None) -> list[Path]:
    """The files that list the flags' keys without using them."""
    policy = policy_path or (DEFAULT_POLICY_PATH if DEFAULT_POLICY_PATH.exists() else None)
    return [p for p in (policy, input_path) if p is not None]


# -- the audit -------------------------------------------------------------------------------


@dataclass
class IssueStep:
    """What `--open-issues` did about one flag's issue, or (dry run) would do."""

    key: str
    action: str  # created, updated, reopened, closed, unchanged, left open, dismissed, would ...
    detail: str
    number: int | None = None
    url: str | None = None

    @property
    def changed(self) -> bool:
        return self.action in ("created", "updated", "reopened", "closed")

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "action": self.action,
            "detail": self.detail,
            "number": self.number,
            "url": self.url,
        }


@dataclass
class AuditResult:
    now: datetime
    source: str
    verdicts: list[rules.Verdict]
    issues: list[IssueStep] | None = None
    dry_run: bool = False
    repository: str | None = None
    retention: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return rules.check_failed(self.verdicts)

    def keys(self, status: str) -> list[str]:
        return [v.key for v in self.verdicts if v.status == status]

    @property
    def changed(self) -> bool:
        return any(step.changed for step in self.issues or [])

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": rules.iso(self.now),
            "source": self.source,
            "retention": self.retention,
            "flags": [v.to_dict() for v in self.verdicts],
            "stale": self.keys("stale"),
            "review_due": self.keys("review_due"),
            "unknown_kind": self.keys("unknown_kind"),
            "dry_run": self.dry_run,
            "repository": self.repository,
            "issues": None if self.issues is None else [s.to_dict() for s in self.issues],
            "changed": self.changed,
        }


@dataclass(frozen=True)
class AuditRequest:
    input_path: Path | None
    now: datetime
    checkout: Path
    policy_path: Path | None = None
    open_issues: bool = False
    repo: str | None = None


def run(session: Session, policy: Policy, request: AuditRequest) -> AuditResult:
    """The audit: the flags, their references in the checkout, the verdicts; with
    ``open_issues``, each stale flag's issue opened or updated and finished ones closed."""
    flags, source = load_flags(session, policy, request.input_path)
    exclude = excluded_files(request.policy_path, request.input_path)
    found = code_references(request.checkout, [f.key for f in flags], exclude=exclude)
    retention = policy.feature_flags.retention
    result = AuditResult(
        now=request.now,
        source=source,
        verdicts=rules.audit(flags, retention, request.now, found),
        dry_run=session.dry_run,
        retention=retention.model_dump(),
    )
    if request.open_issues:
        from release_actions.integrations import github as gh

        _, repository = gh.open_repo(session.env, request.repo, session.runtime.mask)
        result.repository = repository.full_name

        def references(key: str) -> list[str]:
            return code_references(request.checkout, [key], exclude=exclude)[key]

        result.issues = sync_issues(
            session, repository, result.verdicts, references, dry_run=session.dry_run
        )
    return result


# -- the issues ------------------------------------------------------------------------------


def sync_issues(
    session: Session,
    repo: Repository,
    verdicts: Sequence[rules.Verdict],
    references: Callable[[str], list[str]],
    *,
    dry_run: bool,
) -> list[IssueStep]:
    """One open issue per stale flag, found again by its marker; an issue whose flag is
    archived (or gone from the export) with no reference left is closed.

    ``references(key)`` searches the code for a flag the export no longer lists.
    """
    from release_actions.integrations.github import github_errors

    where = repo.full_name
    with github_errors(f"Listing the `{LABEL}` issues", repo=where):
        marked = _marked_issues(repo)
    steps: list[IssueStep] = []
    by_key = {v.key: v for v in verdicts}
    assignable: dict[str, bool] = {}
    for stale in (v for v in verdicts if v.stale):
        steps.append(_ensure_open(repo, stale, marked.get(stale.key, []), assignable, dry_run))
    for key, issues in sorted(marked.items()):
        verdict = by_key.get(key)
        if verdict is not None and verdict.stale:
            continue
        for issue in (i for i in issues if i.state == "open"):
            if verdict is None:
                refs = references(key)
                if refs:
                    steps.append(
                        IssueStep(
                            key,
                            "left open",
                            f"not in the export any more, {len(refs)} code reference(s) left",
                            issue.number,
                            issue.html_url,
                        )
                    )
                else:
                    steps.append(
                        _close(
                            issue,
                            key,
                            "is no longer in LaunchDarkly and no code reference is left",
                            dry_run,
                        )
                    )
            elif verdict.flag.archived and not verdict.code_references:
                steps.append(
                    _close(issue, key, "is archived and no code reference is left", dry_run)
                )
            elif verdict.flag.archived:
                steps.append(_refresh(issue, verdict, assignable, repo, dry_run))
            else:
                steps.append(
                    IssueStep(
                        key,
                        "left open",
                        f"not stale now ({verdict.reason})",
                        issue.number,
                        issue.html_url,
                    )
                )
    for step in steps:
        session.note(f"flag {step.key}: issue {step.action}: {step.detail}")
    return steps


def _marked_issues(repo: Repository) -> dict[str, list[Issue]]:
    """The `stale-flag` issues (open and closed) by the key in their marker, open first."""
    from release_actions.integrations.issues import marked_issues

    return marked_issues(repo, LABEL, _MARKER)


def _ensure_open(
    repo: Repository,
    verdict: rules.Verdict,
    found: list[Issue],
    assignable: dict[str, bool],
    dry_run: bool,
) -> IssueStep:
    from release_actions.integrations.github import github_errors

    key, where = verdict.key, repo.full_name
    issue = found[0] if found else None
    if issue is not None and issue.state == "open":
        return _refresh(issue, verdict, assignable, repo, dry_run)
    if issue is not None and issue.state_reason == "not_planned":
        # A person closed it as not planned: that is their answer until they reopen it.
        return IssueStep(
            key, "dismissed", "closed as not planned; reopen it to track the cleanup",
            issue.number, issue.html_url,
        )  # fmt: skip
    login = _assignee(repo, verdict.flag.owner, assignable)
    if issue is not None:
        if dry_run:
            return IssueStep(key, "would reopen", "still stale", issue.number, issue.html_url)
        body = issue_body(verdict, login is not None, issue.body)
        with github_errors(f"Reopening the stale-flag issue #{issue.number}", repo=where):
            issue.edit(state="open", body=body)
            issue.create_comment(f"Still stale: {verdict.reason}. Reopened.")
        return IssueStep(key, "reopened", "still stale", issue.number, issue.html_url)
    title = f"Clean up the stale feature flag `{key}`"
    if dry_run:
        return IssueStep(key, "would create", title)
    body = issue_body(verdict, login is not None)
    with github_errors(f"Creating the label `{LABEL}`", repo=where):
        _ensure_label(repo)
    with github_errors(f"Opening the issue {title!r}", repo=where):
        if login is not None:
            created = repo.create_issue(title=title, body=body, labels=[LABEL], assignees=[login])
        else:
            created = repo.create_issue(title=title, body=body, labels=[LABEL])
    return IssueStep(key, "created", title, created.number, created.html_url)


def _refresh(
    issue: Issue,
    verdict: rules.Verdict,
    assignable: dict[str, bool],
    repo: Repository,
    dry_run: bool,
) -> IssueStep:
    """The open issue's body (references, checklist) and assignee brought up to date."""
    from release_actions.integrations.github import github_errors

    login = _assignee(repo, verdict.flag.owner, assignable)
    body = issue_body(verdict, login is not None, issue.body)
    current = [a.login.lower() for a in issue.assignees]
    changes: dict[str, Any] = {}
    if body != (issue.body or ""):
        changes["body"] = body
    if login is not None and login.lower() not in current:
        changes["assignees"] = [*(a.login for a in issue.assignees), login]
    if not changes:
        return IssueStep(verdict.key, "unchanged", "up to date", issue.number, issue.html_url)
    what = " and ".join("the assignee" if k == "assignees" else "the body" for k in changes)
    if dry_run:
        return IssueStep(
            verdict.key, "would update", what, issue.number, issue.html_url
        )  # fmt: skip
    with github_errors(f"Updating the stale-flag issue #{issue.number}", repo=repo.full_name):
        issue.edit(**changes)
    return IssueStep(verdict.key, "updated", what, issue.number, issue.html_url)


def _close(issue: Issue, key: str, why: str, dry_run: bool) -> IssueStep:
    from release_actions.integrations.github import github_errors

    if dry_run:
        return IssueStep(key, "would close", f"`{key}` {why}", issue.number, issue.html_url)
    with github_errors(f"Closing the stale-flag issue #{issue.number}"):
        issue.create_comment(
            f"The flag `{key}` {why}: done. Closed by `release-actions flags audit`."
        )
        issue.edit(state="closed", state_reason="completed")
    return IssueStep(key, "closed", f"`{key}` {why}", issue.number, issue.html_url)


def _assignee(repo: Repository, owner: str | None, known: dict[str, bool]) -> str | None:
    """The owner's login when GitHub can assign them here; a team is mentioned instead."""
    from release_actions.integrations.github import github_errors

    if rules.owner_kind(owner) != "user":
        return None
    assert owner is not None
    if owner.lower() not in known:
        with github_errors(f"Checking whether `{owner}` can be assigned", repo=repo.full_name):
            known[owner.lower()] = repo.has_in_assignees(owner)
    return owner if known[owner.lower()] else None


def _ensure_label(repo: Repository) -> None:
    from release_actions.integrations.issues import ensure_label

    ensure_label(
        repo, LABEL, LABEL_COLOR, "A feature flag past its retention (release-actions flags audit)"
    )


def issue_body(verdict: rules.Verdict, assigned: bool, previous: str | None = None) -> str:
    """The issue's text: the marker, why, the owner, the cleanup checklist, the references.

    Nothing in it changes from run to run unless the flag does, so a rerun writes nothing;
    items a person ticked stay ticked.
    """
    flag = verdict.flag
    ticked = set(re.findall(r"^- \[[xX]\] (.+?)\s*$", previous or "", flags=re.MULTILINE))
    if flag.archived:
        ticked.add(_ARCHIVE_ITEM)
    owner = _owner_line(flag.key, flag.owner, assigned)
    lines = [
        MARKER.format(key=flag.key),
        f"The feature flag `{flag.key}` is past its retention (source §5.5).",
        "",
        f"- **Why**: {verdict.reason}",
        f"- **Kind**: {flag.kind or 'unknown'}",
        f"- **Owner**: {owner}",
    ]
    if verdict.due_at is not None:
        lines.append(f"- **Stale since**: {rules.iso(verdict.due_at)}")
    if flag.stage:
        lines.append(f"- **Stage**: {flag.stage}")
    lines += ["", "### Cleanup checklist", ""]
    lines += [f"- [{'x' if item in ticked else ' '}] {item}" for item in CHECKLIST]
    refs = verdict.code_references
    lines += ["", f"### Code references ({len(refs)})", ""]
    if refs:
        lines += [f"- `{ref}`" for ref in refs[:MAX_LISTED_REFERENCES]]
        if len(refs) > MAX_LISTED_REFERENCES:
            lines.append(f"- and {len(refs) - MAX_LISTED_REFERENCES} more")
    else:
        lines.append("None found: archive the flag in LaunchDarkly and this issue closes.")
    lines += [
        "",
        "Kept up to date by `release-actions flags audit --open-issues`; it closes this issue "
        "once the flag is archived and no code reference is left.",
    ]
    return "\n".join(lines) + "\n"


def _owner_line(key: str, owner: str | None, assigned: bool) -> str:
    kind = rules.owner_kind(owner)
    if kind == "user":
        return f"@{owner}" + ("" if assigned else " (cannot be assigned in this repository)")
    if kind == "team":
        return f"@{owner}"
    if kind == "invalid":
        return f"`{owner}` (not a GitHub user or `org/team`)"
    return f"nobody named: set `owner` of `{key}` in `feature_flags.catalog`"
