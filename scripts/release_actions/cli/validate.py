"""`release-actions validate`: the release gate in one step (tag, CHANGELOG, calendar, branch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from release_actions.cli import Session, check_failed, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.cli.calendar import parse_at
from release_actions.core.policy import load_policy
from release_actions.core.settings import Overrides, resolve
from release_actions.gha import markdown_table

_ICON = {"pass": "✅ pass", "warn": "⚠️ caution", "fail": "❌ fail", "skip": "➖ skipped"}


@click.command("validate")
@click.option("--tag", default=None, help="The release tag (default: the tag of GITHUB_REF).")
@click.option(
    "--changelog",
    "changelog_path",
    type=click.Path(path_type=Path),
    default=Path("CHANGELOG.md"),
    show_default=True,
)
@click.option(
    "--type",
    "release_type",
    default="regular",
    show_default=True,
    help="Release type from the policy.",
)
@click.option("--at", default=None, help="ISO 8601 time for the calendar (default: now).")
@click.option(
    "--ref", default=None, help="Ref to check against the branch rules (default: GITHUB_REF)."
)
@click.option(
    "--skip",
    multiple=True,
    type=click.Choice(["tag", "changelog", "calendar", "branch"]),
    help="Leave a check out (repeatable).",
)
@policy_option
@json_option
@pass_state
def command(
    state: Session,
    tag: str | None,
    changelog_path: Path,
    release_type: str,
    at: str | None,
    ref: str | None,
    skip: tuple[str, ...],
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Check a release before anything deploys; exit 1 when any check fails.

    Every check runs, so one run reports every problem, not only the first.
    """
    from release_actions.app.gate import GateRequest, check_release

    request = GateRequest(
        tag=tag,
        changelog=changelog_path,
        release_type=release_type,
        at=parse_at(at) if at else None,
        ref=ref,
        skip=skip,
    )
    policy = load_policy(policy_path)
    gate = check_release(policy, request, state.env)
    settings = resolve(policy, Overrides(release_type=release_type, staged=gate.staged))
    checks, version, decision, staged = gate.checks, gate.version, gate.decision, gate.staged
    tag, section_line = gate.tag, gate.changelog_line
    out = state.runtime
    ok = gate.ok
    if version is not None:
        for key, value in version.to_dict().items():
            out.set_output(key.replace("_", "-"), value)
        out.set_output("tag", tag)
    out.set_output("valid", ok)
    out.set_output("release-type", release_type)
    out.set_output("decision", decision.value if decision else "")
    out.set_output("require-staged-rollout", staged)
    out.set_output("environment", settings.environment)
    out.set_output("canary", settings.canary)
    out.set_output("monitor-seconds", settings.monitor.duration_seconds)
    out.set_output("changelog-line", section_line or "")

    rows = [[c.name, _ICON[c.status], c.detail] for c in checks]
    title = f"### Release gate: {tag or '(no tag)'} ({release_type}) — {'passed' if ok else 'failed'}\n\n"
    out.summary(title + markdown_table(["Check", "Result", "Detail"], rows))

    if as_json:
        data: dict[str, Any] = {
            "valid": ok,
            "tag": tag,
            "version": version.to_dict() if version else None,
            "release_type": release_type,
            "decision": decision.value if decision else None,
            "require_staged_rollout": staged,
            "checks": [c.__dict__ for c in checks],
        }
        state.emit_json(data)
    else:
        for c in checks:
            state.say(f"{_ICON[c.status]:<12} {c.name:<10} {c.detail}")
    for c in checks if out.in_actions else []:
        if c.status == "fail":
            out.annotate(
                "error", c.detail, file=c.file, line=c.line, title=f"Release gate: {c.name}"
            )
        elif c.status == "warn":
            out.annotate("warning", c.detail, title=f"Release gate: {c.name}")
    if not ok:
        raise check_failed()
