"""`train due`, `train schedule`, `train stage` and `train ship`: one cron drives the train."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import click

from release_actions.app.train import parse_now
from release_actions.cli import Session, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.core.policy import Policy, load_policy
from release_actions.errors import ReleaseActionsError

now_option = click.option(
    "--now",
    default=None,
    help="ISO 8601 time with offset (default: `RELEASE_ACTIONS_NOW`, else the clock).",
)


@click.command("due")
@policy_option
@now_option
@click.option(
    "--window-minutes",
    type=click.IntRange(1, 24 * 60),
    default=90,
    show_default=True,
    help="How long after its time a step is still due: covers GitHub's late scheduled runs.",
)
@json_option
@pass_state
def due_command(
    state: Session, policy_path: Path | None, now: str | None, window_minutes: int, as_json: bool
) -> None:
    """Which step of which train is due now: `cut`, `stage`, `ship` or `none`.

    A step is due from its time (production's after any calendar shift) for
    `--window-minutes`; a skipped train is never due. Outputs: `step`, `version` (empty when
    the train's version is not known here: the step reads it from the branch), `branch`,
    `at` (the step's time), and `steps`, a JSON list of every step due, since a production
    moved to Wednesday or Thursday falls together with the next train's cut or staging.
    """
    from release_actions.app.train_ship import due

    policy = load_policy(policy_path)
    at = parse_now(now, dict(state.env))
    found = due(policy, at, timedelta(minutes=window_minutes))
    first = found[0] if found else None
    step = first.step if first else "none"
    version = first.version if first else None
    branch = first.branch(policy) if first else None
    when = first.at.isoformat() if first else None
    state.runtime.set_output("step", step)
    state.runtime.set_output("version", version)
    state.runtime.set_output("branch", branch)
    state.runtime.set_output("at", when)
    state.runtime.set_output("steps", json.dumps([d.step for d in found]))
    if as_json:
        state.emit_json(
            {
                "step": step,
                "version": version,
                "branch": branch,
                "at": when,
                "now": at.isoformat(),
                "window_minutes": window_minutes,
                "steps": [d.to_dict(policy) for d in found],
            }
        )
        return
    if not found:
        state.say(f"none: no step of a train is due at {at.isoformat()}")
    for d in found:
        what = (
            f"the train of {d.version}"
            if d.version
            else f"the train cut {d.train.cut_at:%a %Y-%m-%d}"
        )
        state.say(f"{d.step}: {what}, due since {d.at.isoformat()}")


@click.command("schedule")
@policy_option
@click.option(
    "--offset-minutes",
    type=click.IntRange(0, 59),
    default=5,
    show_default=True,
    help="Minutes after each step's time: GitHub delays runs on the hour most.",
)
@click.option(
    "--year",
    type=click.IntRange(1970, 9999),
    default=None,
    help="Year whose daylight-saving offsets are used (default: this year).",
)
@click.option("--yaml", "as_yaml", is_flag=True, help="Print an `on: schedule:` block to paste.")
@json_option
@pass_state
def schedule_command(
    state: Session,
    policy_path: Path | None,
    offset_minutes: int,
    year: int | None,
    as_yaml: bool,
    as_json: bool,
) -> None:
    """The cron lines (UTC) that drive the train, each with the local time it stands for.

    One line per step day (cut, staging, production, and the weekdays the calendar may move
    production to); in a zone with daylight saving, one per offset (the extra run finds
    nothing due, or a step that is already done). Cron has no time zone: rerun this when the
    policy's days or zone change.
    """
    from datetime import UTC, datetime

    from release_actions.app.train_ship import schedule
    from release_actions.core.train import train_zone

    policy = load_policy(policy_path)
    lines = schedule(policy, year=year or datetime.now(UTC).year, offset_minutes=offset_minutes)
    if as_json:
        state.emit_json(
            {"timezone": train_zone(policy).key, "crons": [line.to_dict() for line in lines]}
        )
        return
    if as_yaml:
        state.say("on:\n  schedule:")
        for line in lines:
            state.say(f'    - cron: "{line.cron}" # {line.comment}')
        return
    for line in lines:
        state.say(line.line())


def _repo_option(f: click.decorators.FC) -> click.decorators.FC:
    return click.option("--repo", default=None, help="OWNER/NAME [default: $GITHUB_REPOSITORY].")(f)


def _tag_step(
    state: Session,
    step: str,
    policy_path: Path | None,
    version: str | None,
    repo: str | None,
    now: str | None,
    as_json: bool,
) -> None:
    from release_actions.app.train_ship import (
        parse_branch_version,
        pick_branch,
        ship_tag,
        stage_tag,
        train_of,
    )
    from release_actions.integrations import github as gh

    policy = load_policy(policy_path)
    wanted = parse_branch_version(version, policy.tag.prefix) if version else None
    newer = 0
    if wanted is None:
        at = parse_now(now, dict(state.env))
        found = train_of(policy, step, at)  # type: ignore[arg-type]
        if found is None:
            raise ReleaseActionsError(
                f"No train has reached its `{step}` step by {at.isoformat()}.",
                hint="Pass `--version` to name the train's version.",
            )
        newer = found[1]
    _, repository = gh.open_repo(state.env, repo, state.runtime.mask)
    repo_name = repository.full_name
    with gh.github_errors("Reading the release branches and tags", repo=repo_name):
        branch = pick_branch(repository, policy, version=wanted, newer=newer)
    tagger = stage_tag if step == "stage" else ship_tag
    with gh.github_errors(f"Tagging `{branch[1]}`", repo=repo_name):
        result = tagger(repository, policy, branch, dry_run=state.dry_run)
    state.runtime.set_output("tag", result.tag)
    state.runtime.set_output("sha", result.sha)
    state.runtime.set_output("changed", result.changed)
    state.runtime.set_output("branch", result.branch)
    state.runtime.set_output("version", result.version)
    for warning in result.warnings:
        state.runtime.annotate("warning", warning, title=f"Release train: {step}")
    exceptions: list[dict[str, object]] = []
    if step == "ship":
        exceptions = _announce_exceptions(state, policy, repository, result)
    if as_json:
        state.emit_json({**result.to_dict(), "freeze_exceptions": exceptions})
    else:
        state.say(result.reason)


@click.command("stage")
@policy_option
@click.option(
    "--version",
    default=None,
    help="The train's version, such as `1.4.0` (default: the train whose staging came last, "
    "read from the release branches).",
)
@_repo_option
@now_option
@json_option
@pass_state
def stage_command(
    state: Session,
    policy_path: Path | None,
    version: str | None,
    repo: str | None,
    now: str | None,
    as_json: bool,
) -> None:
    """Tag the head of the train's release branch `vX.Y.Z-rc.N` for staging.

    N is one above the highest rc of the version; a head that already carries one keeps it
    (`changed: false`), so a second run is harmless. Outputs: `tag`, `sha`, `changed`,
    `branch`, `version`. Needs `permissions: contents: write`.
    """
    _tag_step(state, "stage", policy_path, version, repo, now, as_json)


@click.command("ship")
@policy_option
@click.option(
    "--version",
    default=None,
    help="The train's version, such as `1.4.0` (default: the train whose production came "
    "last, read from the release branches).",
)
@_repo_option
@now_option
@json_option
@pass_state
def ship_command(
    state: Session,
    policy_path: Path | None,
    version: str | None,
    repo: str | None,
    now: str | None,
    as_json: bool,
) -> None:
    """Tag the head of the train's release branch `vX.Y.Z` for production.

    Idempotent when the tag is already at the head (`changed: false`); refused (exit 2) when
    it is at another commit. Outputs: `tag`, `sha`, `changed`, `branch`, `version`. Needs
    `permissions: contents: write`.
    """
    _tag_step(state, "ship", policy_path, version, repo, now, as_json)


def _announce_exceptions(
    state: Session, policy: Policy, repository: Any, result: Any
) -> list[dict[str, object]]:
    """The release notice of a shipped train names the pull requests merged under a freeze
    exception; sent once, when this run made the tag."""
    from release_actions.app.notify import send
    from release_actions.app.train_ship import freeze_exceptions
    from release_actions.integrations import github as gh

    with gh.github_errors(f"Listing the pull requests merged into `{result.branch}`"):
        exceptions = freeze_exceptions(repository, policy, result.branch)
    state.runtime.set_output("freeze-exceptions", json.dumps([e["number"] for e in exceptions]))
    if exceptions and result.changed:
        send(
            state,
            policy,
            "release_scheduled",
            {
                "version": result.tag,
                "scheduled_at": "now: the production release begins",
                "release_type": "regular (release train)",
                "notices": [
                    f"Freeze exception #{e['number']}: {e['title']} ({e['url']})"
                    for e in exceptions
                ],
                "repository": repository.full_name,
            },
        )
    return exceptions
