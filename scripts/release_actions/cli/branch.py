"""`release-actions branch`: branch and tag names against the policy (source §2.2, §7.3)."""

from __future__ import annotations

from pathlib import Path

import click

from release_actions.cli import Session, check_failed, json_option, pass_state
from release_actions.core.branches import check as check_ref
from release_actions.core.policy import load_policy

policy_option = click.option(
    "--policy",
    "policy_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Release policy file (default: .github/release-policy.yml, else the source document's).",
)


@click.group("branch")
def group() -> None:
    """Check branch and tag names."""


@group.command("check")
@click.argument("ref")
@click.option(
    "--expect",
    type=click.Choice(["main", "release", "hotfix", "tag"]),
    default=None,
    help="Require this kind of ref.",
)
@policy_option
@json_option
@pass_state
def check(
    state: Session, ref: str, expect: str | None, policy_path: Path | None, as_json: bool
) -> None:
    """Exit 0 if REF (a branch, `refs/heads/...` or `refs/tags/...`) follows the rules, 1 if not."""
    result = check_ref(load_policy(policy_path), ref, expect)  # type: ignore[arg-type]
    state.runtime.set_output("kind", result.kind)
    state.runtime.set_output("name", result.name)
    state.runtime.set_output("valid", result.ok)
    if as_json:
        state.emit_json(result.to_dict())
    elif result.ok:
        state.say(result.reason)
    else:
        state.runtime.annotate("error", result.reason, title="Branch check")
    if not result.ok:
        raise check_failed()
