"""The one exception hierarchy of release-actions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ReleaseActionsError(Exception):
    """Raised when release-actions cannot do what it was asked; the base of every error here.

    ``hint`` says what to do about it; ``file`` and ``line`` point at the input at fault so
    that Actions can annotate it.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        file: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.file = file
        self.line = line

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        return f"{where}{self.message}"


class InvalidVersionError(ReleaseActionsError):
    """Raised when a version or tag is not SemVer 2.0.0 (with the policy's tag prefix)."""


class ChangelogError(ReleaseActionsError):
    """Raised when a CHANGELOG cannot be read, lacks a section, or would be written wrongly."""


@dataclass(frozen=True)
class PolicyIssue:
    """One problem in a policy file, with where it is."""

    path: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        loc = f"{self.path}:{self.line}" if self.line else self.path
        return f"{loc}: `{self.key}`: {self.message}"


class PolicyWarning(UserWarning):
    """Raised (as a warning) when a policy file sets a key that nothing in use reads.

    The command goes on; the CLI turns each into a `::warning file=...,line=...::` line.
    """

    def __init__(self, issue: PolicyIssue) -> None:
        super().__init__(str(issue))
        self.issue = issue


class PolicyError(ReleaseActionsError):
    """Raised when a release policy file is missing, is not YAML, or does not validate."""

    title = "Invalid release policy"

    def __init__(self, message: str, issues: list[PolicyIssue] | None = None, **kw: object) -> None:
        self.issues = issues or []
        first = self.issues[0] if self.issues else None
        kw.setdefault("file", first.path if first else None)
        kw.setdefault("line", first.line if first else None)
        super().__init__(message, **kw)  # type: ignore[arg-type]

    def __str__(self) -> str:
        if not self.issues:
            return super().__str__()
        return self.message + "\n" + "\n".join(f"  {i}" for i in self.issues)


class ScenarioError(PolicyError):
    """Raised when a rehearsal scenario is unknown, unreadable, not YAML, or does not validate."""

    title = "Invalid rehearsal scenario"


class OutputError(ReleaseActionsError):
    """Raised when a value cannot be written safely to a GitHub Actions file command."""


class IntegrationError(ReleaseActionsError):
    """Raised when an outside service (GitHub, a cloud, a metrics provider) refuses or fails."""


class MissingExtraError(ReleaseActionsError):
    """Raised when a command needs an optional SDK that is not installed."""

    def __init__(self, extra: str, module: str) -> None:
        super().__init__(
            f"This command needs the `{module}` package, which is not installed.",
            hint=f"Install the extra: pip install 'release-actions[{extra}]'",
        )


def require(module: str, extra: str) -> object:
    """Import an optional SDK lazily, turning its absence into an error that says the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(extra, module) from exc


class MetricsError(IntegrationError):
    """Raised when a metrics provider cannot answer: timeout, refused, 4xx/5xx, bad response.

    ``query`` keeps the resolved query, as evidence in the decision that follows.
    """

    def __init__(self, message: str, *, query: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.query = query


class NoDataError(MetricsError):
    """Raised when a metrics provider answers with no values, or NaN/Inf: no data is never health."""


class TargetError(IntegrationError):
    """Raised when a deploy target refuses or fails an operation (deploy, weight, rollback)."""


class TargetChangedError(TargetError):
    """Raised when a gate (one look per run) finds its target moved by someone else since its
    last look: it stops, changing nothing, rather than overwrite a person's change."""

    exit_code = 1

    def __init__(self, message: str, *, live: int, expected: int, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.live = live
        self.expected = expected


class StateConflictError(TargetError):
    """Raised when another run saved a rollout's state after this run read it: nothing of this
    run was written (two scheduled gate runs overlapping; the first one's look stands)."""

    exit_code = 1
