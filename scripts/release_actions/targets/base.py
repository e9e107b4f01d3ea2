"""The deploy-target interface: what the canary engine may ask of Kubernetes, Argo, Cloud Run or the simulator."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from release_actions.metrics.base import Track


@dataclass(frozen=True)
class TargetStatus:
    """Where the target is now.

    ``known_good`` is the version recorded when the current rollout began; rollback goes
    there and nowhere else, so running it twice cannot flip back to the bad version.
    ``state`` is the engine's saved progress (None when no rollout is under way).
    """

    stable_version: str | None
    canary_version: str | None
    canary_weight: int
    known_good: str | None
    state: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class HealthSample:
    """Cumulative counters: triggers take differences over their windows."""

    ready: bool
    restarts: int
    health_check_failures: int
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RollbackResult:
    changed: bool
    from_version: str | None
    to_version: str | None
    detail: str = ""


# The saved state's keys that another process writes (`rollback`, `abort`, `promote`), each a
# dict with an ``id``: a save must never drop one it has not read.
MARKS = ("abort", "promote")


def keep_unread_marks(
    stored: Mapping[str, Any] | None, state: Mapping[str, Any], seen: set[str]
) -> dict[str, Any]:
    """``state`` with each mark of ``stored`` that this process has not read put back.

    A mark another process wrote between this process's read and its save (an operator's
    `abort` or `promote`) survives the save; a mark this process wrote itself (its id is
    new) or has already read stays as ``state`` has it.
    """
    out = dict(state)
    for key in MARKS:
        theirs = (stored or {}).get(key)
        if not isinstance(theirs, Mapping) or not theirs.get("id"):
            continue
        if str(theirs["id"]) in seen:
            continue
        ours = out.get(key)
        ours_is_new = isinstance(ours, Mapping) and ours.get("id") and str(ours["id"]) not in seen
        if not ours_is_new:
            out[key] = dict(theirs)
    return out


def mark_ids(state: Mapping[str, Any] | None) -> set[str]:
    return {
        str(mark["id"])
        for key in MARKS
        if isinstance(mark := (state or {}).get(key), Mapping) and mark.get("id")
    }


class DeployTarget(ABC):
    """A place to deploy to and roll back from; every method is idempotent.

    Methods raise ``TargetError`` on failure. ``begin`` records the current stable version
    as known-good and starts ``version`` as a canary at 0 %; calling it again for the same
    version resumes instead of restarting.
    """

    name: str
    _deployment: str | None = None

    @property
    def deployment(self) -> str:
        """What events and records call the deployed thing: the target's ``name`` unless the
        adapter names it (the Deployment, the Rollout, the simulated service)."""
        return self._deployment or self.name

    @deployment.setter
    def deployment(self, value: str) -> None:
        self._deployment = value

    @abstractmethod
    def status(self) -> TargetStatus: ...

    @abstractmethod
    def begin(self, version: str) -> None: ...

    @abstractmethod
    def set_weight(self, percent: int) -> None: ...

    @abstractmethod
    def promote(self) -> None: ...

    @abstractmethod
    def rollback(self) -> RollbackResult: ...

    @abstractmethod
    def save_state(self, state: Mapping[str, Any] | None) -> None: ...

    @abstractmethod
    def health(self, track: Track | None = None) -> HealthSample: ...
