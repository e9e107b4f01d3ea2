"""Semantic Versioning 2.0.0: parse, compare with full precedence, bump (source section 2.3)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering
from typing import Literal

from release_actions.errors import InvalidVersionError

# The grammar of semver.org, with [0-9] rather than \d: \d also matches non-ASCII digits
# such as "١", which SemVer does not allow.
_NUM = r"0|[1-9][0-9]*"
_PRE_ID = r"0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*"
_BUILD_ID = r"[0-9A-Za-z-]+"
SEMVER_RE = re.compile(
    rf"(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<prerelease>(?:{_PRE_ID})(?:\.(?:{_PRE_ID}))*))?"
    rf"(?:\+(?P<build>{_BUILD_ID}(?:\.{_BUILD_ID})*))?"
)

BumpPart = Literal["major", "minor", "patch", "prerelease"]
BUMP_PARTS: tuple[BumpPart, ...] = ("major", "minor", "patch", "prerelease")


@total_ordering
@dataclass(frozen=True)
class Version:
    """A SemVer 2.0.0 version; equality and order follow precedence, so build is ignored."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()
    build: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str, *, prefix: str = "") -> Version:
        """Parse ``text``; a ``prefix`` (the tag prefix, such as ``v``) is required when given."""
        raw = text
        if prefix:
            if not text.startswith(prefix):
                raise InvalidVersionError(
                    f"`{_show(raw)}` is not a release tag: it must start with `{prefix}`, "
                    f"as in `{prefix}1.2.3`."
                )
            text = text[len(prefix) :]
        elif text[:1] in ("v", "V") and SEMVER_RE.fullmatch(text[1:]):
            text = text[1:]
        m = SEMVER_RE.fullmatch(text)
        if m is None:
            raise InvalidVersionError(
                f"`{_show(raw)}` is not a SemVer 2.0.0 version: expected "
                "MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD] with no leading zeros, "
                "for example `1.4.0`, `2.0.0-rc.1` or `2.0.0+abc1234`.",
                hint="See https://semver.org/spec/v2.0.0.html (source section 2.3).",
            )
        pre = m.group("prerelease")
        build = m.group("build")
        return cls(
            int(m.group("major")),
            int(m.group("minor")),
            int(m.group("patch")),
            tuple(pre.split(".")) if pre else (),
            tuple(build.split(".")) if build else (),
        )

    @property
    def is_prerelease(self) -> bool:
        # Any pre-release identifier makes a pre-release, `rc` included: the source
        # workflow only looked for "alpha" and "beta" and published rc tags as final.
        return bool(self.prerelease)

    @property
    def core(self) -> Version:
        return Version(self.major, self.minor, self.patch)

    def __str__(self) -> str:
        s = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            s += "-" + ".".join(self.prerelease)
        if self.build:
            s += "+" + ".".join(self.build)
        return s

    def tag(self, prefix: str = "v") -> str:
        return f"{prefix}{self}"

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        # A version without pre-release outranks any with one (rule 11.3); identifiers
        # compare numerically when all digits, numerics sort below alphanumerics (11.4).
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def to_dict(self) -> dict[str, str | int | bool | None]:
        return {
            "version": str(self),
            "major": self.major,
            "minor": self.minor,
            "patch": self.patch,
            "prerelease": ".".join(self.prerelease) or None,
            "build": ".".join(self.build) or None,
            "is_prerelease": self.is_prerelease,
        }

    def bump(self, part: BumpPart, *, pre: str | None = None) -> Version:
        """The next version; ``pre`` makes it a pre-release of that label (``rc`` -> ``rc.1``).

        Bumping a pre-release releases it where the bump fits (``2.0.0-rc.1`` + major ->
        ``2.0.0``), as npm's semver does, so a release candidate graduates to itself.
        """
        if part not in BUMP_PARTS:
            raise InvalidVersionError(f"Unknown bump `{part}`: use one of {', '.join(BUMP_PARTS)}.")
        if pre is not None and not re.fullmatch(rf"(?:{_PRE_ID})(?:\.(?:{_PRE_ID}))*", pre):
            raise InvalidVersionError(f"`{_show(pre)}` is not a valid pre-release label.")
        if part == "prerelease":
            return self._bump_prerelease(pre)
        if part == "major":
            graduates = self.is_prerelease and self.minor == 0 and self.patch == 0
            nxt = self.core if graduates else Version(self.major + 1, 0, 0)
        elif part == "minor":
            graduates = self.is_prerelease and self.patch == 0
            nxt = self.core if graduates else Version(self.major, self.minor + 1, 0)
        else:
            nxt = (
                self.core if self.is_prerelease else Version(self.major, self.minor, self.patch + 1)
            )
        if pre is not None:
            nxt = Version(nxt.major, nxt.minor, nxt.patch, (*pre.split("."), "1"))
        return nxt

    def _bump_prerelease(self, label: str | None) -> Version:
        if not self.is_prerelease:
            base = Version(self.major, self.minor, self.patch + 1)
            return Version(base.major, base.minor, base.patch, (*(label or "rc").split("."), "1"))
        ids = list(self.prerelease)
        current_label = tuple(p for p in ids if not p.isdigit())
        if label is None or tuple(label.split(".")) == current_label:
            if ids[-1].isdigit():
                ids[-1] = str(int(ids[-1]) + 1)
            else:
                ids.append("1")
            return Version(self.major, self.minor, self.patch, tuple(ids))
        candidate = Version(self.major, self.minor, self.patch, (*label.split("."), "1"))
        if candidate <= self:
            raise InvalidVersionError(
                f"`{candidate}` would not be higher than `{self}`: pre-release labels sort "
                "alphabetically (alpha < beta < rc).",
                hint="Bump to a later label, or bump major, minor or patch first.",
            )
        return candidate


def compare(a: Version, b: Version) -> int:
    """-1, 0 or 1 by SemVer precedence."""
    return (a > b) - (a < b)


def _show(text: str, limit: int = 80) -> str:
    """A printable, bounded rendering of untrusted input for error messages."""
    shown = text.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= limit else shown[:limit] + "..."
