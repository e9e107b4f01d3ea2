"""`train plan` and `train freeze-check`: the coming trains, and whether a pull request may merge."""

from __future__ import annotations

import subprocess
from datetime import date, datetime
from pathlib import Path

import click

from release_actions.app.train import parse_now
from release_actions.cli import Session, check_failed, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.core.policy import load_policy
from release_actions.core.train import Train, freeze_check, next_version, plan, train_zone
from release_actions.core.versions import Version
from release_actions.errors import InvalidVersionError


def latest_release(repo: Path) -> Version | None:
    """The highest `vX.Y.Z` tag (no pre-release) of the git checkout at ``repo``, if any."""
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "tag", "--list", "v*"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    versions = []
    for tag in out.split():
        try:
            v = Version.parse(tag, prefix="v")
        except InvalidVersionError:
            continue
        if not v.is_prerelease:
            versions.append(v)
    return max(versions) if versions else None


def _unreleased(changelog: Path) -> str | None:
    from release_actions.core.changelog import read

    if not changelog.is_file():
        return None
    log = read(changelog)
    section = log.find("Unreleased")
    return None if section is None else log.body(section)


def _table(trains: list[Train]) -> list[list[str]]:
    rows = []
    for t in trains:
        moved = "; ".join(
            f"{s.what} {s.from_:%a %m-%d} -> "
            + (f"{s.to:%a %m-%d}" if s.to is not None else "skipped")
            + f" ({s.reason})"
            for s in t.shifts
        )
        rows.append(
            [
                t.branch_version or ("-" if t.skipped else "?"),
                f"{t.cut_at:%a %Y-%m-%d %H:%M}",
                f"{t.staging_at:%a %Y-%m-%d %H:%M}" if t.staging_at else "-",
                f"{t.production_at:%a %Y-%m-%d %H:%M}" if t.production_at else "skipped",
                "; ".join(filter(None, [moved, *t.notes])),
            ]
        )
    return rows


@click.command("plan")
@policy_option
@click.option(
    "--from",
    "start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="First day whose cut is listed, in the policy's time zone (default: today).",
)
@click.option("--weeks", type=click.IntRange(1, 104), default=4, show_default=True)
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Git checkout whose latest `vX.Y.Z` tag and CHANGELOG give the versions.",
)
@click.option(
    "--changelog",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="CHANGELOG whose Unreleased section decides a major bump (default: REPO/CHANGELOG.md).",
)
@json_option
@pass_state
def plan_command(
    state: Session,
    policy_path: Path | None,
    start: datetime | None,
    weeks: int,
    repo: Path,
    changelog: Path | None,
    as_json: bool,
) -> None:
    """The coming trains (source §2.1): version, cut, staging and production, with every shift.

    The release calendar moves a blocked production day to the next allowed weekday of its
    week (never a Friday or a weekend) or skips the train. Versions need the checkout's tags;
    without them they are null.
    """
    from release_actions.gha import markdown_table

    policy = load_policy(policy_path)
    zone = train_zone(policy)
    first_day: date = start.date() if start else datetime.now(zone).date()
    current = latest_release(repo)
    first, why = next_version(
        current, policy.train.bump, _unreleased(changelog or repo / "CHANGELOG.md")
    )
    trains = plan(policy, first_day, weeks, first_version=first)
    if as_json:
        state.emit_json({"trains": [t.to_dict() for t in trains], "version_rule": why})
        return
    head = ["Version", "Cut (freeze)", "Staging", "Production", "Shifts and notes"]
    rows = _table(trains)
    state.runtime.summary(
        f"### Release trains from {first_day} ({zone.key})\n\n" + markdown_table(head, rows) + "\n"
    )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    state.say(f"Release trains from {first_day} ({zone.key}; versions: {why})")
    for row in [head, *rows]:
        state.say(
            "  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
        )


@click.command("freeze-check")
@policy_option
@click.option("--base", required=True, help="The pull request's base branch.")
@click.option("--labels", default="", help="Its labels, comma-separated.")
@click.option("--title", default="", help="Its title.")
@click.option(
    "--approved-by",
    default=None,
    help="Who approved it, comma-separated: users and `org/team` slugs of their teams. "
    "Without it a freeze exception cannot pass.",
)
@click.option(
    "--pull",
    type=click.IntRange(min=1),
    default=None,
    help="The pull request's number: with a freeze-exception label, its approvals are read "
    "from the GitHub API (GITHUB_TOKEN; `org/team` approvers need a token that reads the "
    "organisation's teams).",
)
@click.option("--repo", default=None, help="OWNER/NAME (default: $GITHUB_REPOSITORY).")
@click.option("--now", default=None, help="ISO 8601 time with offset (default: now).")
@json_option
@pass_state
def freeze_check_command(
    state: Session,
    policy_path: Path | None,
    base: str,
    labels: str,
    title: str,
    approved_by: str | None,
    pull: int | None,
    repo: str | None,
    now: str | None,
    as_json: bool,
) -> None:
    """Whether a pull request may merge now (source §2.1's freeze): exit 0 if so, 1 if not.

    Reads only names, labels, a title and approvals, never the pull request's code, so it is
    safe under `pull_request_target`.
    """
    policy = load_policy(policy_path)
    names = [label.strip() for label in labels.split(",") if label.strip()]
    approvals = (
        None if approved_by is None else [a.strip() for a in approved_by.split(",") if a.strip()]
    )
    rules = policy.train.freeze_rules
    if pull is not None and approvals is None and rules.exception_label in names:
        approvals = _read_approvals(state, repo, pull, list(rules.exception_approvers))
    verdict = freeze_check(
        policy,
        base=base,
        labels=names,
        title=title,
        now=parse_now(now, state.env),
        approved_by=approvals,
    )
    state.runtime.set_output("allowed", "true" if verdict.allowed else "false")
    state.runtime.set_output("frozen", "true" if verdict.frozen else "false")
    if as_json:
        state.emit_json(verdict.to_dict())
    else:
        state.say(("allowed: " if verdict.allowed else "blocked: ") + verdict.reason)
    if not verdict.allowed:
        if not as_json:
            state.runtime.annotate("error", verdict.reason, title="Code freeze")
        raise check_failed()
    if verdict.exception:
        state.runtime.annotate("notice", verdict.reason, title="Freeze exception")


def _read_approvals(state: Session, repo: str | None, pull: int, approvers: list[str]) -> list[str]:
    """The pull request's approvals from the API: only names, never its code."""
    from release_actions.app.train import pull_approvals
    from release_actions.integrations import github as gh

    client, repository = gh.open_repo(state.env, repo, state.runtime.mask)
    approvals, notes = pull_approvals(client, repository, pull, approvers)
    for note in notes:
        state.runtime.annotate("warning", note, title="Freeze exception")
    return approvals
