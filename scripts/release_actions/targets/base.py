"""The deploy-target interface: what the canary engine may ask of Kubernetes, Argo, Cloud Run or the simulator."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from release_actions.errors import TargetError
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
    mirror_percent: int = 0
    """Share of the requests copied to the new version (shadow); its answers are discarded."""


@dataclass(frozen=True)
class HealthSample:
    """Cumulative counters: triggers take differences over their windows."""

    ready: bool
    restarts: int
    health_check_failures: int
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Preview:
    """Where smoke checks reach the new version before any user does (blue-green).

    ``url`` reaches only the new version (a Cloud Run tag URL); ``headers`` are a header
    route to it on the service's own host (Istio's ``x-canary: true``). Either may be empty:
    the policy's ``blue_green.preview_url`` then names the host.
    """

    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    detail: str = ""


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


STRATEGIES = ("canary", "blue-green", "shadow", "rolling")
"""Source §4.1's four ways to release; `rolling` is the canary's one 100 % step."""


class DeployTarget(ABC):
    """A place to deploy to and roll back from; every method is idempotent.

    Methods raise ``TargetError`` on failure. ``begin`` records the current stable version
    as known-good and starts ``version`` as a canary at 0 %; calling it again for the same
    version resumes instead of restarting.

    The strategy (``use_strategy``, before ``begin``) changes what the same calls mean:

    - ``canary`` and ``rolling``: ``set_weight`` moves a share of the traffic.
    - ``blue-green``: ``begin`` brings the new version up at full size with no user
      traffic (``preview`` says how to reach it); ``switch`` moves all traffic to it in one
      update, the old version kept at full size; ``rollback`` moves all traffic back in
      one update before anything else; ``promote`` (after the hold) makes the new version
      stable and scales the old one down.
    - ``shadow``: ``begin`` brings the new version up with no user traffic; ``mirror``
      copies a share of the requests to it (answers discarded); ``withdraw`` removes the
      mirror and the new version. A shadow is never promoted, and withdrawing it is not
      a rollback.
    """

    name: str
    _deployment: str | None = None
    strategies: ClassVar[frozenset[str]] = frozenset({"canary", "rolling"})
    """The strategies this kind of target can run at all; ``refusal`` says why not."""
    strategy: str = "canary"

    @property
    def deployment(self) -> str:
        """What events and records call the deployed thing: the target's ``name`` unless the
        adapter names it (the Deployment, the Rollout, the simulated service)."""
        return self._deployment or self.name

    @deployment.setter
    def deployment(self, value: str) -> None:
        self._deployment = value

    def refusal(self, strategy: str) -> str | None:
        """Why this target cannot run ``strategy``; None when it can."""
        if strategy in self.strategies:
            return None
        return f"the {self.name} target does not implement the `{strategy}` strategy"

    def use_strategy(self, strategy: str) -> None:
        """Run the next rollout as ``strategy``; refused before anything changes."""
        why = self.refusal(strategy)
        if why is not None:
            raise TargetError(
                f"Cannot release as `{strategy}`: {why}.",
                hint="Choose another strategy (`strategy.default` or the release type's "
                "`strategy` in the policy, or the `strategy` input).",
            )
        self.strategy = strategy

    def preview(self) -> Preview | None:
        """How to reach the new version without users (blue-green), or None."""
        return None

    def switch(self) -> None:
        """All traffic to the new version in one update; the old one keeps running."""
        raise TargetError(f"The {self.name} target cannot switch traffic (blue-green).")

    def mirror(self, percent: int) -> None:
        """Copy ``percent`` of the requests to the new version; its answers are discarded."""
        raise TargetError(f"The {self.name} target cannot mirror traffic (shadow).")

    def withdraw(self) -> RollbackResult:
        """Take the new version away without a release having happened (a shadow's end)."""
        return self.rollback()

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
