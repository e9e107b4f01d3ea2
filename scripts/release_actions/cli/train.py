"""`release-actions train`: the release train (source §2.1, §2.2): plan, cut, freeze check."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from release_actions.cli import Session, json_option, pass_state
from release_actions.cli.branch import policy_option

if TYPE_CHECKING:
    from release_actions.app.train import CutResult


@click.group("train")
def group() -> None:
    """The release train (source §2.1, §2.2): a weekly freeze and cut, staging, production."""


def _add_commands() -> None:
    # Each in its own module; imported here so that `train --help` lists them all.
    from release_actions.cli.train_plan import freeze_check_command, plan_command
    from release_actions.cli.train_ship import (
        due_command,
        schedule_command,
        ship_command,
        stage_command,
    )

    for command in (
        plan_command,
        freeze_check_command,
        due_command,
        schedule_command,
        stage_command,
        ship_command,
    ):
        group.add_command(command)


_add_commands()


# -- train cut -------------------------------------------------------------------------------


@group.command("cut")
@click.option(
    "--now",
    default=None,
    metavar="TIME",
    help="The time to cut at, ISO 8601 with an offset, such as `2026-01-14T10:05:00+09:00` "
    "[default: $RELEASE_ACTIONS_NOW, else the clock].",
)
@click.option(
    "--version",
    "version",
    default=None,
    metavar="X.Y.Z",
    help="The train's version [default: the latest release tag `vX.Y.Z` bumped by "
    "`train.bump`]; required while the repository has no release tag.",
)
@click.option(
    "--changelog",
    default="CHANGELOG.md",
    show_default=True,
    metavar="PATH",
    help="The CHANGELOG's path in the repository, read at the cut commit.",
)
@click.option("--repo", default=None, metavar="OWNER/NAME", help="[default: $GITHUB_REPOSITORY]")
@policy_option
@json_option
@pass_state
def cut(
    state: Session,
    now: str | None,
    version: str | None,
    changelog: str,
    repo: str | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Cut the train at its code freeze: branch, CHANGELOG pull request, issue and notice.

    The train is the one whose freeze is the latest at or before `--now`. Its release branch
    (`train.branch`, such as `release/v1.7.0`) starts at the last commit on the main branch
    committed at or before the freeze, read through the GitHub API (no checkout needed).
    Then a pull request `Release vX.Y.0: CHANGELOG` into that branch turns the CHANGELOG's
    Unreleased section into the version, dated the production day; an issue `Release
    vX.Y.0` (label `release-train`) holds the release checklist (source §3.1) and the dates;
    and the `release_scheduled` notice goes out, once. A rerun finds all of it and changes
    nothing. A train the calendar skips cuts nothing (exit 0, with the reason).

    Outputs: `branch`, `version` (`1.7.0`), `pull-request` and `issue` (numbers; each empty
    when nothing was cut) and `changed` (`true` when this run created or wrote anything).
    """
    from release_actions.app import train as app
    from release_actions.core.policy import load_policy

    policy = load_policy(policy_path)
    decision = app.decide(policy, app.parse_now(now, state.env))
    if not decision.cut:
        result = app.CutResult(decision, dry_run=state.dry_run)
    else:
        from release_actions.integrations import github as gh

        _, repository = gh.open_repo(state.env, repo, state.runtime.mask)
        request = app.CutRequest(version=version, changelog=changelog)
        result = app.cut(state, policy, repository, decision, request)

    out = state.runtime.set_output
    out("branch", result.branch if decision.cut and result.branch else "")
    out("version", str(result.version) if result.version is not None else "")
    out("pull-request", _number(result, "pull_request"))
    out("issue", _number(result, "issue"))
    out("changed", "true" if result.changed else "false")
    state.runtime.summary(_summary(result))
    if not decision.cut and decision.train is not None and decision.train.skipped:
        state.runtime.annotate("notice", str(decision.reason), title="Release train skipped")
    if as_json:
        state.emit_json(result.to_dict())
        return
    for line in _lines(result):
        state.say(line)


def _number(result: CutResult, what: str) -> str:
    number = result.number(what)
    return "" if number is None else str(number)


def _lines(result: CutResult) -> list[str]:
    from release_actions.app.train import shown_time as _at

    d = result.decision
    if not d.cut:
        return [f"Nothing to cut: {d.reason}"]
    assert d.train is not None
    head = "Train" + (" (dry run, nothing written)" if result.dry_run else "")
    lines = [
        f"{head} {result.tag}: freeze {_at(d.train.cut_at)}, staging {_at(d.train.staging_at)}, "
        f"production {_at(d.train.production_at)}",
        f"  {'version':<13} {result.version} ({result.version_rule})",
        f"  {'commit':<13} {result.sha} {result.commit_subject!r} ({result.commit_date})",
    ]
    for what, step in result.steps.items():
        where = f" #{step.number}" if step.number is not None else ""
        url = f" {step.url}" if step.url else ""
        lines.append(f"  {what.replace('_', ' '):<13} {step.action}{where}: {step.detail}{url}")
    lines.append("  changed" if result.changed else "  nothing changed")
    return lines


def _summary(result: CutResult) -> str:
    from release_actions.app.train import shown_time as _at
    from release_actions.gha import markdown_table

    d = result.decision
    title = "### Release train cut" + (" (dry run)" if result.dry_run else "")
    if not d.cut:
        return f"{title}\n\nNothing to cut: {d.reason}\n"
    assert d.train is not None
    rows = [
        ["Version", f"{result.tag} ({result.version_rule})"],
        ["Freeze and cut", _at(d.train.cut_at)],
        ["Staging", _at(d.train.staging_at)],
        ["Production", _at(d.train.production_at)],
        ["Commit", f"{result.sha} {result.commit_subject or ''}".strip()],
    ]
    for what, step in result.steps.items():
        shown = f"[#{step.number}]({step.url})" if step.url else ""
        rows.append([what.replace("_", " ").capitalize(), f"{step.action}: {step.detail} {shown}"])
    return f"{title} of {result.tag}\n\n" + markdown_table(["Step", "Result"], rows)
