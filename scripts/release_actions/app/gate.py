"""The release gate (source §2.3, §2.4, §3.2): tag, CHANGELOG entry, calendar and branch, in one pass."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from release_actions.core import changelog as cl
from release_actions.core.branches import check as check_ref
from release_actions.core.calendar import Decision
from release_actions.core.calendar import check as check_calendar
from release_actions.core.policy import Policy
from release_actions.core.versions import Version
from release_actions.errors import ChangelogError, InvalidVersionError


@dataclass
class Check:
    name: str
    status: str  # pass, warn, fail, skip
    detail: str
    file: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class GateRequest:
    tag: str | None = None
    """None: the tag of GITHUB_REF."""
    changelog: Path = Path("CHANGELOG.md")
    release_type: str = "regular"
    at: datetime | None = None
    ref: str | None = None
    skip: tuple[str, ...] = ()


@dataclass
class GateResult:
    tag: str | None
    release_type: str
    checks: list[Check] = field(default_factory=list)
    version: Version | None = None
    decision: Decision | None = None
    staged: bool = False
    changelog_line: int | None = None

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)


def check_release(policy: Policy, request: GateRequest, env: Mapping[str, str]) -> GateResult:
    """Every check runs, so one run reports every problem, not only the first."""
    r = request
    release_type, skip, changelog_path = r.release_type, r.skip, r.changelog
    policy.release_type(release_type)  # an unknown type is an error before any check
    ref = r.ref or env.get("GITHUB_REF") or None
    tag = r.tag
    if tag is None and ref and ref.startswith("refs/tags/"):
        tag = ref[len("refs/tags/") :]
    checks: list[Check] = []
    version: Version | None = None

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
                    f"`## {section.heading.strip()}` at line {section.line}.",
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
        result = check_calendar(policy, release_type, r.at or datetime.now(UTC))
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

    return GateResult(tag, release_type, checks, version, decision, staged, section_line)
