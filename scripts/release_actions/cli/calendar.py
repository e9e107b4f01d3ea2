"""`release-actions calendar`: may this type of release go out now (source §2.4)?"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from release_actions.cli import Session, check_failed, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.core.calendar import Decision
from release_actions.core.calendar import check as check_calendar
from release_actions.core.policy import load_policy


def parse_at(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        return datetime.fromisoformat(
            value.replace("Z", "+00:00") if value.endswith("Z") else value
        )
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time, such as 2026-12-01T10:00:00+09:00.",
            param_hint="--at",
        ) from None


@click.group("calendar")
def group() -> None:
    """The release calendar gate."""


@group.command("check")
@click.option(
    "--type",
    "release_type",
    default="regular",
    show_default=True,
    help="Release type from the policy: regular, hotfix, security, config, infrastructure.",
)
@click.option(
    "--at",
    "at",
    default=None,
    help="ISO 8601 time to check (default: now); no zone means the policy's.",
)
@policy_option
@json_option
@pass_state
def check(
    state: Session, release_type: str, at: str | None, policy_path: Path | None, as_json: bool
) -> None:
    """Print allowed, caution or blocked with the reasons; exit 1 only when blocked."""
    result = check_calendar(load_policy(policy_path), release_type, parse_at(at))
    state.runtime.set_output("decision", result.decision.value)
    state.runtime.set_output("require-staged-rollout", result.require_staged_rollout)
    state.runtime.set_output("reasons", "\n".join(result.reasons))
    if as_json:
        state.emit_json(result.to_dict())
    else:
        state.say(f"{result.decision.value}: {release_type} release at {result.at.isoformat()}")
        for reason in result.reasons:
            state.say(f"  - {reason}")
        if result.require_staged_rollout:
            state.say("  staged rollout required")
    if result.decision is Decision.CAUTION:
        state.runtime.annotate(
            "warning", "; ".join(result.reasons), title="Release calendar: caution"
        )
    if result.decision is Decision.BLOCKED:
        if not as_json:
            state.runtime.annotate("error", result.reasons[0], title="Release calendar: blocked")
        raise check_failed()
