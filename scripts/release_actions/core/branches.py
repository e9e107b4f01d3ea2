"""Branch rules of GitHub Flow with release branches and hotfixes (source sections 2.2, 7)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from release_actions.core.policy import Policy
from release_actions.core.versions import Version
from release_actions.errors import InvalidVersionError

BranchKind = Literal["main", "release", "hotfix", "tag", "other"]


@dataclass(frozen=True)
class BranchResult:
    ref: str
    name: str
    kind: BranchKind
    ok: bool
    reason: str
    version: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "ref": self.ref,
            "name": self.name,
            "kind": self.kind,
            "ok": self.ok,
            "reason": self.reason,
            "version": self.version,
        }


def short_name(ref: str) -> tuple[str, bool]:
    """The branch or tag name of a ref, and whether it is a tag."""
    if ref.startswith("refs/heads/"):
        return ref[len("refs/heads/") :], False
    if ref.startswith("refs/tags/"):
        return ref[len("refs/tags/") :], True
    return ref, False


def check(policy: Policy, ref: str, expect: BranchKind | None = None) -> BranchResult:
    """Classify ``ref`` and check it against the policy's patterns.

    A branch under ``hotfix/`` or ``release/`` must match its pattern in full: a near miss
    (``hotfix/fix-login``) is the mistake this check exists to catch.
    """
    rules = policy.branches
    name, is_tag = short_name(ref)
    if not name or "\x00" in name or any(c in name for c in "\r\n"):
        return BranchResult(
            ref, name, "other", False, "The ref is empty or contains control characters."
        )
    if is_tag:
        kind: BranchKind = "tag"
        try:
            v = Version.parse(name, prefix=policy.tag.prefix)
            result = BranchResult(
                ref, name, kind, True, f"`{name}` is a release tag of {v}.", str(v)
            )
        except InvalidVersionError as exc:
            result = BranchResult(ref, name, kind, False, exc.message)
    elif name == rules.main:
        result = BranchResult(ref, name, "main", True, f"`{name}` is the main branch.")
    elif name.startswith("hotfix/") or (expect == "hotfix"):
        if re.match(rules.hotfix_pattern, name):
            result = BranchResult(ref, name, "hotfix", True, f"`{name}` is a hotfix branch.")
        else:
            result = BranchResult(
                ref,
                name,
                "hotfix",
                False,
                f"`{name}` does not match the hotfix pattern `{rules.hotfix_pattern}`: "
                "name it hotfix/ISSUE-123-description, for example `hotfix/ABC-123-fix-login` "
                "(source §7.3).",
            )
    elif name.startswith("release/") or (expect == "release"):
        m = re.match(rules.release_pattern, name)
        version: str | None = None
        ok = m is not None
        reason = f"`{name}` is a release branch."
        if m is not None and "version" in m.groupdict():
            try:
                version = str(Version.parse(m["version"]))
                reason = f"`{name}` is the release branch of {version}."
            except InvalidVersionError:
                ok = False
        if not ok:
            reason = (
                f"`{name}` does not match the release branch pattern `{rules.release_pattern}` "
                "with a SemVer version: name it release/vX.Y.Z, for example `release/v1.2.0` "
                "(source §2.2)."
            )
        result = BranchResult(ref, name, "release", ok, reason, version)
    else:
        result = BranchResult(ref, name, "other", True, f"`{name}` is a working branch.")
    if expect is not None and result.ok and result.kind != expect:
        return BranchResult(
            ref,
            name,
            result.kind,
            False,
            f"`{name}` is a {result.kind} ref, but a {expect} {'tag' if expect == 'tag' else 'branch'} "
            "was expected here.",
            result.version,
        )
    return result
