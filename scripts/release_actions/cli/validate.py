"""`release-actions validate`: the release gate in one step (tag, CHANGELOG, calendar, branch)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from release_actions.cli import State, check_failed, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.cli.calendar import parse_at
from release_actions.core import changelog as cl
from release_actions.core.branches import check as check_ref
from release_actions.core.calendar import Decision
from release_actions.core.calendar import check as check_calendar
from release_actions.core.policy import load_policy
from release_actions.core.versions import Version
from release_actions.errors import ChangelogError, InvalidVersionError
from release_actions.gha import markdown_table


@dataclass
class Check:
    name: str
    status: str  # pass, warn, fail, skip
    detail: str
    file: str | None = None
    line: int | None = None


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
    state: State,
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
    policy = load_policy(policy_path)
    rules = policy.release_type(release_type)
    ref = ref or state.env.get("GITHUB_REF") or None
    if tag is None and ref and ref.startswith("refs/tags/"):
        tag = ref[len("refs/tags/") :]
    checks: list[Check] = []
    version: Version | None = None
    out = state.runtime

    if "tag" in skip:
        checks.append(Check("tag", "skip", "skipped by --skip tag"))
    elif not tag:
        checks.append(
            Check(
                "tag",
                "fail",
                "No tag: pass --tag, or run on a tag push (GITHUB_REF=refs/tags/...).",
            )
        )
    else:
        try:
            version = Version.parse(tag, prefix=policy.tag.prefix)
            if version.build and not policy.tag.allow_build_metadata:
                raise InvalidVersionError(
                    f"`{tag}` has build metadata, which the policy does not allow in release "
                    "tags (tag.allow_build_metadata)."
                )
            kind = "pre-release" if version.is_prerelease else "release"
            checks.append(Check("tag", "pass", f"`{tag}` is a SemVer {kind} ({version})."))
        except InvalidVersionError as exc:
            version = None
            checks.append(Check("tag", "fail", exc.message))

    section_line: int | None = None
    if "changelog" in skip:
        checks.append(Check("changelog", "skip", "skipped by --skip changelog"))
    elif version is None:
        checks.append(
            Check(
                "changelog",
                "fail",
                "Not checked: the tag is not a valid version.",
                str(changelog_path),
            )
        )
    else:
        try:
            log = cl.read(changelog_path)
            section = cl.require_released(log, version)
            section_line = section.line
            checks.append(
                Check(
                    "changelog",
                    "pass",
                    f"`## [{section.label}] - {section.date}` at line {section.line}.",
                    str(changelog_path),
                    section.line,
                )
            )
        except ChangelogError as exc:
            detail = exc.message + (f" {exc.hint}" if exc.hint else "")
            checks.append(Check("changelog", "fail", detail, exc.file, exc.line))

    decision: Decision | None = None
    staged = False
    if "calendar" in skip:
        checks.append(Check("calendar", "skip", "skipped by --skip calendar"))
    else:
        result = check_calendar(policy, release_type, parse_at(at))
        decision, staged = result.decision, result.require_staged_rollout
        status = {"allowed": "pass", "caution": "warn", "blocked": "fail"}[decision.value]
        checks.append(Check("calendar", status, f"{decision.value}: " + "; ".join(result.reasons)))

    if "branch" in skip:
        checks.append(Check("branch", "skip", "skipped by --skip branch"))
    elif not ref:
        checks.append(Check("branch", "skip", "No ref given and GITHUB_REF is not set."))
    else:
        br = check_ref(
            policy,
            ref,
            "hotfix" if release_type == "hotfix" and not ref.startswith("refs/tags/") else None,
        )
        checks.append(Check("branch", "pass" if br.ok else "fail", br.reason))

    ok = all(c.status != "fail" for c in checks)
    if version is not None:
        for key, value in version.to_dict().items():
            out.set_output(key.replace("_", "-"), value)
        out.set_output("tag", tag)
    out.set_output("valid", ok)
    out.set_output("release-type", release_type)
    out.set_output("decision", decision.value if decision else "")
    out.set_output("require-staged-rollout", staged)
    out.set_output("environment", rules.environment)
    out.set_output("canary", "required" if staged and rules.canary != "required" else rules.canary)
    out.set_output("monitor-seconds", rules.monitor_seconds)
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
