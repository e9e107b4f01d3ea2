"""The cut at the freeze (source §2.1, §2.2): branch, CHANGELOG pull request, issue, notice."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from release_actions.app.session import Session
from release_actions.core import changelog as cl
from release_actions.core.policy import Policy
from release_actions.core.train import (
    Train,
    branch_name,
    current_train,
    next_version,
    plan,
    train_zone,
)
from release_actions.core.versions import Version
from release_actions.errors import ChangelogError, InvalidVersionError, ReleaseActionsError

if TYPE_CHECKING:
    from github.Issue import Issue
    from github.PullRequest import PullRequest
    from github.Repository import Repository

TRACKING_LABEL = "release-train"
TRACKING_LABEL_COLOR = "0e8a16"
CHANGELOG_BRANCH = "train/changelog-{tag}"
DEFAULT_CHANGELOG = "CHANGELOG.md"


class TrainError(ReleaseActionsError):
    """Raised when a train cannot be cut: no version to start from, no commit on the main
    branch before the freeze, or a release branch that already points at another commit."""


# -- which train -----------------------------------------------------------------------------


def parse_now(text: str | None, env: Mapping[str, str]) -> datetime:
    """`--now`, else `RELEASE_ACTIONS_NOW`, else the clock. A time without an offset is
    refused: a freeze read in the wrong zone is hours off."""
    raw = (text or env.get("RELEASE_ACTIONS_NOW") or "").strip()
    if not raw:
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise TrainError(
            f"`{raw}` is not an ISO 8601 time (`--now` or `RELEASE_ACTIONS_NOW`).",
            hint="Such as `2026-01-14T10:05:00+09:00`.",
        ) from None
    if at.tzinfo is None:
        raise TrainError(
            f"`{raw}` has no UTC offset (`--now` or `RELEASE_ACTIONS_NOW`).",
            hint="Add one, such as `+09:00` or `Z`.",
        )
    return at


@dataclass(frozen=True)
class Decision:
    """The train a cut at ``now`` is for, or why there is nothing to cut."""

    now: datetime
    train: Train | None
    reason: str | None = None
    """Set when nothing is cut: the train is skipped, has shipped, or there is none."""
    carried_by: Train | None = None
    """For a skipped train: the next train, which carries its changes."""

    @property
    def cut(self) -> bool:
        return self.reason is None


def decide(policy: Policy, now: datetime) -> Decision:
    """The train whose cut is the latest at or before ``now``, if it is still to ship."""
    zone = train_zone(policy)
    local = now.astimezone(zone)
    train = current_train(policy, now)
    if train is None:
        return Decision(now, None, f"no train has cut in the two weeks before {shown_time(local)}")
    if train.skipped:
        carried = _next_running(policy, train.cut_at.astimezone(zone).date() + timedelta(days=1))
        why = "; ".join(s.reason for s in train.shifts) or "the release calendar"
        where = (
            f"the changes ride the train cut {shown_time(carried.cut_at)} (production "
            f"{shown_time(carried.production_at)})"
            if carried is not None and carried.production_at is not None
            else "the changes ride the next train"
        )
        return Decision(
            now,
            train,
            f"the train cut {shown_time(train.cut_at)} is skipped: {why}. No branch is cut; "
            f"{where}.",
            carried,
        )
    if train.production_at is not None and train.production_at <= now:
        coming = next((t for t in plan(policy, local.date(), 6) if t.cut_at > now), None)
        after = f" The next cut is {shown_time(coming.cut_at)}." if coming is not None else ""
        return Decision(
            now,
            train,
            f"the train cut {shown_time(train.cut_at)} was due in production "
            f"{shown_time(train.production_at)}; nothing is left to cut before the next "
            f"freeze.{after}",
        )
    return Decision(now, train)


def _next_running(policy: Policy, start: date) -> Train | None:
    return next((t for t in plan(policy, start, 6) if not t.skipped), None)


def shown_time(when: datetime | None) -> str:
    return "-" if when is None else f"{when:%a %Y-%m-%d %H:%M} {when.tzname() or ''}".rstrip()


# -- the result ------------------------------------------------------------------------------


@dataclass
class Step:
    """One thing the cut did, found, or (dry run) would do."""

    what: str
    action: str  # created, exists, updated, merged, would create, skipped, sent, not sent
    detail: str
    number: int | None = None
    url: str | None = None

    @property
    def changed(self) -> bool:
        return self.action in ("created", "updated")

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "detail": self.detail,
            "number": self.number,
            "url": self.url,
        }


@dataclass
class CutResult:
    decision: Decision
    dry_run: bool = False
    repo: str | None = None
    version: Version | None = None
    tag: str | None = None
    previous: str | None = None
    version_rule: str = ""
    branch: str | None = None
    sha: str | None = None
    commit_date: str | None = None
    commit_subject: str | None = None
    steps: dict[str, Step] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return any(s.changed for s in self.steps.values())

    def step(self, what: str) -> Step | None:
        return self.steps.get(what)

    def number(self, what: str) -> int | None:
        s = self.steps.get(what)
        return None if s is None else s.number

    def to_dict(self) -> dict[str, Any]:
        d = self.decision
        train = None
        if d.train is not None:
            train = {
                **d.train.to_dict(),
                "version": None if self.version is None else str(self.version),
            }
        return {
            "dry_run": self.dry_run,
            "now": d.now.isoformat(),
            "cut": d.cut,
            "reason": d.reason,
            "train": train,
            "carried_by": None if d.carried_by is None else d.carried_by.to_dict(),
            "repository": self.repo,
            "version": None if self.version is None else str(self.version),
            "tag": self.tag,
            "previous": self.previous,
            "version_rule": self.version_rule,
            "branch": self.branch,
            "commit": None
            if self.sha is None
            else {"sha": self.sha, "date": self.commit_date, "subject": self.commit_subject},
            "steps": {k: v.to_dict() for k, v in self.steps.items()},
            "changed": self.changed,
        }


# -- the cut ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CutRequest:
    version: str | None = None
    """The train's version; needed when the repository has no release tag yet."""
    changelog: str = DEFAULT_CHANGELOG
    """The CHANGELOG's path in the repository."""


def cut(
    session: Session,
    policy: Policy,
    repo: Repository,
    decision: Decision,
    request: CutRequest | None = None,
) -> CutResult:
    """Cut ``decision``'s train in ``repo``: every step finds what an earlier run made first.

    The order keeps a refusal harmless: everything is read and checked (the commit, the
    version, the CHANGELOG, the branch) before the first write.
    """
    request = request or CutRequest()
    train = decision.train
    if train is None or train.production_at is None or not decision.cut:
        raise TrainError(f"Nothing to cut: {decision.reason or 'the train does not ship'}.")
    result = CutResult(decision, dry_run=session.dry_run, repo=repo.full_name)
    main = policy.branches.main
    prefix = policy.tag.prefix

    sha, when, subject = last_commit_before(repo, main, train.cut_at)
    result.sha, result.commit_date, result.commit_subject = sha, when, subject
    found = _read(repo, request.changelog, sha)
    if found is None:
        raise ChangelogError(
            f"`{request.changelog}` is not in {repo.full_name} at {sha[:12]} (the cut commit).",
            hint="Pass its path with `--changelog PATH`.",
        )
    log = cl.parse(found[0], request.changelog)
    unreleased = log.find(cl.UNRELEASED)
    body = None if unreleased is None else log.body(unreleased)
    latest = latest_release(repo, prefix)
    result.previous = None if latest is None else f"{prefix}{latest}"
    version, why = _version(policy, latest, body, request.version, repo.full_name)
    result.version, result.version_rule = version, why
    result.tag = tag = f"{prefix}{version}"
    result.branch = branch = branch_name(policy.train, version)
    on = train.production_at.date()
    repo_url = None if cl.UNRELEASED.lower() in log.links else repo.html_url
    # Refused here, before anything is written: no Unreleased section, an empty one, a
    # version the file already has or one that is not higher than its latest.
    cl.release(log, version, on=on, repo_url=repo_url, tag_prefix=prefix)

    result.steps["branch"] = ensure_branch(repo, branch, sha, main=main, dry_run=session.dry_run)
    result.steps["pull_request"] = ensure_changelog_pull(
        repo,
        release_branch=branch,
        head=CHANGELOG_BRANCH.format(tag=tag),
        path=request.changelog,
        version=version,
        on=on,
        prefix=prefix,
        title=f"Release {tag}: CHANGELOG",
        body=_pull_body(train, tag, branch),
        fallback=found[0],
        dry_run=session.dry_run,
    )
    issue = ensure_issue(
        repo,
        title=f"Release {tag}",
        body=issue_body(train, tag, branch, sha, main, result.steps["pull_request"]),
        dry_run=session.dry_run,
    )
    result.steps["issue"] = issue
    result.steps["notice"] = _notify(session, policy, result, train, body, issue)
    return result


def last_commit_before(repo: Repository, branch: str, at: datetime) -> tuple[str, str, str]:
    """The newest commit of ``branch`` committed at or before ``at``: its SHA, date, subject."""
    from release_actions.integrations.github import github_errors

    # PyGithub writes `until` with a literal `Z` and no conversion: it must be UTC already.
    until = at.astimezone(UTC)
    with github_errors(f"Listing the commits of `{branch}`", repo=repo.full_name):
        first = next(iter(repo.get_commits(sha=branch, until=until)), None)
        if first is None:
            raise TrainError(
                f"`{branch}` has no commit at or before the freeze ({shown_time(at)}).",
                hint="Check `branches.main` in the policy, and the train's freeze time.",
            )
        committed = first.commit.committer.date
        message = first.commit.message or ""
    return first.sha, committed.astimezone(UTC).isoformat(), message.split("\n", 1)[0]


def latest_release(repo: Repository, prefix: str) -> Version | None:
    """The highest release tag `{prefix}X.Y.Z` of ``repo`` that is no pre-release, if any."""
    from release_actions.integrations.github import github_errors

    versions = []
    with github_errors(f"Listing the `{prefix}*` tags", repo=repo.full_name):
        refs = list(repo.get_git_matching_refs(f"tags/{prefix}"))
    for ref in refs:
        try:
            v = Version.parse(ref.ref.removeprefix("refs/tags/"), prefix=prefix)
        except InvalidVersionError:
            continue
        if not v.is_prerelease:
            versions.append(v)
    return max(versions) if versions else None


def _version(
    policy: Policy, latest: Version | None, unreleased: str | None, given: str | None, repo: str
) -> tuple[Version, str]:
    prefix = policy.tag.prefix
    if given is not None:
        try:
            version = Version.parse(
                given.strip(), prefix=prefix if given.startswith(prefix) else ""
            )
        except InvalidVersionError as exc:
            raise TrainError(f"`--version {given}` is not a version: {exc.message}") from None
        if version.is_prerelease or version.build:
            raise TrainError(
                f"`--version {given}` is a pre-release or has build metadata; a train ships a "
                "release, such as `1.7.0`."
            )
        if latest is not None and not version > latest:
            raise TrainError(
                f"`--version {given}` is not higher than the latest release {prefix}{latest}.",
                hint="Leave `--version` out to take the next version from the tags.",
            )
        return version, "`--version`"
    computed, why = next_version(latest, policy.train.bump, unreleased)
    if computed is None:
        raise TrainError(
            f"{repo} has no release tag `{prefix}X.Y.Z` to take the next version from: pass "
            "`--version`.",
            hint="Such as `--version 1.0.0` for the first train; later trains count from the tags.",
        )
    return computed, f"{prefix}{latest} + {why}"


def _read(repo: Repository, path: str, ref: str) -> tuple[str, str] | None:
    from release_actions.integrations.github import read_file

    return read_file(repo, path, ref)


def _missing(exc: Exception) -> bool:
    return getattr(exc, "status", None) == 404


def _taken(exc: Exception) -> bool:
    """A 422 for something another run made a moment ago (a ref, a pull request, a label)."""
    return getattr(exc, "status", None) == 422


def _ref_sha(repo: Repository, branch: str) -> str | None:
    try:
        return str(repo.get_git_ref(f"heads/{branch}").object.sha)
    except Exception as exc:  # PyGithub raises UnknownObjectException for a 404
        if not _missing(exc):
            raise
        return None


def ensure_branch(repo: Repository, branch: str, sha: str, *, main: str, dry_run: bool) -> Step:
    """``branch`` at ``sha``: created, or found there (or forked from ``main`` there and moved
    on with commits of its own); refused when it points anywhere else, never forced."""
    from release_actions.integrations.github import github_errors

    where = repo.full_name
    with github_errors(f"Reading branch `{branch}`", repo=where):
        current = _ref_sha(repo, branch)
    if current is None and dry_run:
        return Step("branch", "would create", f"`{branch}` at {sha[:12]}")
    if current is None:
        with github_errors(f"Creating branch `{branch}`", repo=where):
            try:
                repo.create_git_ref(f"refs/heads/{branch}", sha)
                return Step("branch", "created", f"`{branch}` at {sha[:12]}")
            except Exception as exc:
                if not _taken(exc):
                    raise
                # Another run created it between our read and our write.
                current = _ref_sha(repo, branch)
                if current is None:
                    raise
    if current != sha and _forked_at(repo, main, branch) == sha:
        # Cut here by an earlier run and moved on since: the CHANGELOG merged, a fix picked.
        return Step("branch", "exists", f"`{branch}`, cut at {sha[:12]}, now at {current[:12]}")
    if current != sha:
        raise TrainError(
            f"Branch `{branch}` already exists at {current[:12]}, not at {sha[:12]}, the last "
            "commit on the main branch at or before the freeze. It is never moved by force.",
            hint="If the branch was cut by hand on purpose, leave it; if it is left from a train "
            "whose tag was never made, tag that release or delete the branch, then rerun.",
        )
    return Step("branch", "exists", f"`{branch}` at {sha[:12]}")


def _pull_body(train: Train, tag: str, branch: str) -> str:
    return (
        f"Moves the CHANGELOG's Unreleased section under **{tag}** on `{branch}`, dated the "
        "production day.\n\n"
        + _dates(train)
        + "\n\nOpened by `release-actions train cut`; merge it before the release is tagged."
    )


def _dates(train: Train) -> str:
    rows = [
        ("Code freeze and branch cut", train.cut_at),
        ("Staging", train.staging_at),
        ("Production", train.production_at),
    ]
    lines = [f"- **{what}**: {shown_time(when)}" for what, when in rows]
    for s in train.shifts:
        moved = "dropped" if s.to is None else f"moved to {shown_time(s.to)}"
        lines.append(f"- {s.what.capitalize()} {moved} from {shown_time(s.from_)}: {s.reason}")
    lines += [f"- {note[:1].upper()}{note[1:]}" for note in train.notes]
    return "\n".join(lines)


def ensure_changelog_pull(
    repo: Repository,
    *,
    release_branch: str,
    head: str,
    path: str,
    version: Version,
    on: date,
    prefix: str,
    title: str,
    body: str,
    fallback: str,
    dry_run: bool,
) -> Step:
    """The pull request into ``release_branch`` that releases the CHANGELOG's Unreleased section.

    Found by its head and base when open; none is opened when the release branch already
    has the version's section (merged). The file is written from the release branch's own
    CHANGELOG, with the blob SHA it was read with; a write that loses a race reads again.
    """
    from release_actions.integrations.github import github_errors

    where = repo.full_name
    with github_errors(f"Listing the pull requests of `{head}`", repo=where):
        pulls = _pulls(repo, head, release_branch)
    open_pull = next((p for p in pulls if p.state == "open"), None)
    if open_pull is not None:
        return Step("pull_request", "exists", title, open_pull.number, open_pull.html_url)
    with github_errors(f"Reading `{path}` on `{release_branch}`", repo=where):
        base_sha = _ref_sha(repo, release_branch)
    on_base = _read(repo, path, release_branch) if base_sha is not None else None
    text = fallback if on_base is None else on_base[0]
    log = cl.parse(text, path)
    if log.find(version) is not None:
        merged = next((p for p in pulls if p.merged), None)
        return Step(
            "pull_request",
            "merged",
            f"`{path}` on `{release_branch}` already has {prefix}{version}",
            None if merged is None else merged.number,
            None if merged is None else merged.html_url,
        )
    repo_url = None if cl.UNRELEASED.lower() in log.links else repo.html_url
    released = cl.release(log, version, on=on, repo_url=repo_url, tag_prefix=prefix)
    if dry_run or base_sha is None:
        return Step("pull_request", "would create", f"{title} (`{head}` into `{release_branch}`)")
    with github_errors(f"Creating branch `{head}`", repo=where):
        if _ref_sha(repo, head) is None:
            try:
                repo.create_git_ref(f"refs/heads/{head}", base_sha)
            except Exception as exc:
                if not _taken(exc):
                    raise
    message = f"Release {prefix}{version}: CHANGELOG"
    with github_errors(f"Writing `{path}` on `{head}`", repo=where):
        for attempt in (1, 2, 3):
            current = _read(repo, path, head)
            if current is not None and current[0] == released:
                break
            try:
                if current is None:
                    repo.create_file(path, message, released, branch=head)
                else:
                    repo.update_file(path, message, released, current[1], branch=head)
                break
            except Exception as exc:
                # 409 (or 422 for a file that appeared): another run wrote it meanwhile.
                if getattr(exc, "status", None) not in (409, 422) or attempt == 3:
                    raise
    with github_errors(f"Opening the pull request from `{head}`", repo=where):
        try:
            pull = repo.create_pull(title=title, body=body, head=head, base=release_branch)
            action = "created"
        except Exception as exc:
            if not _taken(exc):
                raise
            # "A pull request already exists": another run opened it a moment ago.
            found = next((p for p in _pulls(repo, head, release_branch) if p.state == "open"), None)
            if found is None:
                raise
            pull, action = found, "exists"
    return Step("pull_request", action, title, pull.number, pull.html_url)


def _forked_at(repo: Repository, main: str, branch: str) -> str:
    """Where ``branch`` leaves ``main``: their merge base."""
    from release_actions.integrations.github import github_errors

    with github_errors(f"Comparing `{main}` with `{branch}`", repo=repo.full_name):
        return str(repo.compare(main, branch).merge_base_commit.sha)


def _pulls(repo: Repository, head: str, base: str) -> list[PullRequest]:
    found = repo.get_pulls(state="all", head=f"{repo.owner.login}:{head}", base=base)
    # The open one first, then a merged one, then the newest.
    return sorted(found, key=lambda p: (p.state != "open", not p.merged, -p.number))


def checklist() -> str:
    """Source §3.1's checklist as a Markdown task list, with what `readiness` checks marked."""
    from release_actions.integrations.readiness import CHECKLIST

    out = []
    for heading, entries in CHECKLIST:
        out.append(f"**{heading}**\n")
        for title, key in entries:
            note = f" (checked by `release-actions readiness`: `{key}`)" if key else ""
            out.append(f"- [ ] {title}{note}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def issue_body(train: Train, tag: str, branch: str, sha: str, main: str, pull: Step) -> str:
    if pull.number is not None:
        changelog = f"#{pull.number}"
    elif pull.action == "merged":
        changelog = "already on the branch"
    else:
        changelog = "(not opened yet)"
    return (
        f"The release train **{tag}** (source §2.1): `{branch}` is cut from `{main}` at "
        f"{sha}.\n\n" + _dates(train) + f"\n- **CHANGELOG pull request**: {changelog}\n\n"
        "### Release checklist (source §3.1)\n\n"
        + checklist()
        + "\nOpened by `release-actions train cut`; close it when the release is out.\n"
    )


def ensure_issue(repo: Repository, *, title: str, body: str, dry_run: bool) -> Step:
    """The one open tracking issue titled ``title`` with the `release-train` label.

    GitHub cannot create an issue only if none exists, so two runs at once can both create
    one: each looks again after creating, the lowest number stays, and a run whose issue is
    not it closes its own as a duplicate and reports the other.
    """
    from release_actions.integrations.github import github_errors

    where = repo.full_name
    with github_errors("Listing the release-train issues", repo=where):
        found = _tracking_issues(repo, title)
    if found:
        return Step("issue", "exists", title, found[0].number, found[0].html_url)
    if dry_run:
        return Step("issue", "would create", title)
    with github_errors(f"Creating the label `{TRACKING_LABEL}`", repo=where):
        _ensure_label(repo)
    with github_errors(f"Opening the issue {title!r}", repo=where):
        mine = repo.create_issue(title=title, body=body, labels=[TRACKING_LABEL])
        same = _tracking_issues(repo, title)
        keeper = same[0] if same else mine
        if keeper.number != mine.number:
            mine.create_comment(
                f"Duplicate of #{keeper.number}: two `train cut` runs opened it at once."
            )
            mine.edit(state="closed", state_reason="not_planned")
            return Step("issue", "exists", title, keeper.number, keeper.html_url)
    return Step("issue", "created", title, mine.number, mine.html_url)


def _tracking_issues(repo: Repository, title: str) -> list[Issue]:
    listed = repo.get_issues(state="open", labels=[TRACKING_LABEL])
    same = [i for i in listed if i.pull_request is None and i.title == title]
    return sorted(same, key=lambda i: i.number)


def _ensure_label(repo: Repository) -> None:
    try:
        repo.get_label(TRACKING_LABEL)
        return
    except Exception as exc:
        if not _missing(exc):
            raise
    try:
        repo.create_label(
            TRACKING_LABEL,
            TRACKING_LABEL_COLOR,
            "Tracking issue of a release train (release-actions train cut)",
        )
    except Exception as exc:
        if not _taken(exc):  # created by another run a moment ago
            raise


# -- the notice ------------------------------------------------------------------------------

_ITEM = re.compile(r"^[-*+]\s+(?P<text>\S.*)$")


def main_changes(unreleased: str | None, limit: int = 10) -> list[str]:
    """The Unreleased section's top-level entries, for the notice's list of main changes."""
    items = [
        m["text"].strip() for line in (unreleased or "").splitlines() if (m := _ITEM.match(line))
    ]
    return items[:limit] + ([f"... and {len(items) - limit} more"] if len(items) > limit else [])


def _notify(
    session: Session,
    policy: Policy,
    result: CutResult,
    train: Train,
    unreleased: str | None,
    issue: Step,
) -> Step:
    """The `release_scheduled` notice, sent by the run that opened the issue: once a train."""
    assert train.production_at is not None
    if issue.action == "would create":
        return Step("notice", "would send", "release_scheduled, with the new issue")
    if issue.action != "created":
        return Step("notice", "skipped", "sent when the issue was opened")
    from release_actions.app.notify import send
    from release_actions.integrations.records import run_url

    links = [
        {
            "title": f"{s.detail} (#{s.number})"
            if s.what == "pull_request"
            else f"Tracking issue #{s.number}",
            "url": s.url,
        }
        for s in (result.steps.get("issue"), result.steps.get("pull_request"))
        if s is not None and s.url
    ]
    notes = [f"Code freeze: {shown_time(train.cut_at)}; branch `{result.branch}`"]
    if train.staging_at is not None:
        notes.append(f"Staging: {shown_time(train.staging_at)}")
    notes += [
        f"{s.what.capitalize()} moved from {shown_time(s.from_)}: {s.reason}" for s in train.shifts
    ]
    notes += list(train.notes)
    context = {
        "version": result.tag,
        "scheduled_at": f"{train.production_at:%Y-%m-%d (%a) %H:%M} {train.production_at.tzname()}",
        "release_type": "regular",
        "changes": main_changes(unreleased),
        "notices": notes,
        "links": links,
        "repository": result.repo,
        "run_url": run_url(session.env),
    }
    sent = send(session, policy, "release_scheduled", context)
    where = f" to {sent.channel}" if sent.channel else ""
    if sent.delivered:
        return Step("notice", "sent", f"release_scheduled{where} ({sent.via})")
    return Step("notice", "not sent", f"release_scheduled: {sent.error or 'not delivered'}")


def pull_approvals(
    gh: Any, repo: Any, number: int, approvers: list[str]
) -> tuple[list[str], list[str]]:
    """Who approved pull request ``number`` (each reviewer's latest review), and the teams of
    ``approvers`` (`org/team`) that one of them belongs to; with notes on what could not be
    read. A later "changes requested" from the same person withdraws an approval.
    """
    from release_actions.integrations.github import github_errors

    with github_errors(f"Reading the reviews of pull request #{number}", repo=repo.full_name):
        latest: dict[str, str] = {}
        for review in repo.get_pull(number).get_reviews():
            if review.user is None or review.state in ("COMMENTED", "PENDING"):
                continue
            latest[review.user.login] = review.state
    approved = sorted(login for login, state in latest.items() if state == "APPROVED")
    out = list(approved)
    notes: list[str] = []
    for slug in (a for a in approvers if "/" in a):
        org_name, team_slug = slug.split("/", 1)
        try:
            with github_errors(f"Reading the members of team `{slug}`", repo=repo.full_name):
                team = gh.get_organization(org_name).get_team_by_slug(team_slug)
                if any(_active_member(team, login) for login in approved):
                    out.append(slug)
        except ReleaseActionsError as exc:
            # A GITHUB_TOKEN cannot read an organisation's teams: say so, never pass on it.
            notes.append(f"team `{slug}` could not be read ({exc.message})")
    return out, notes


def _active_member(team: Any, login: str) -> bool:
    """An active member of ``team``; GitHub answers 404 for anyone else."""
    from github import UnknownObjectException

    try:
        return bool(team.get_team_membership(login).state == "active")
    except UnknownObjectException:
        return False
