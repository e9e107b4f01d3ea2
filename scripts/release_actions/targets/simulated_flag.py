"""A simulated feature flag whose percentage rollout is a canary: `on` users are the canary track."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from release_actions.errors import TargetError
from release_actions.simulation.clock import Clock
from release_actions.targets.base import RollbackResult
from release_actions.targets.simulated import SimulatedTarget

OFF = "off"
"""The flag's `off` variation: the simulated world's good version (the stable track)."""
ON = "on"
"""The flag's `on` variation: the version on trial (the canary track)."""

OnRegression = Literal["last_safe", "off"]


def last_passed_percent(state: Mapping[str, Any] | None, *, below: int = 101) -> int:
    """The weight of the last step the engine saved as passed under ``below`` %; 0 when none.

    The engine keeps every step it ended in the saved state's ``steps``, in order, the
    failed one included: this reads the rollout's own account, not a copy of it.
    """
    passed = [
        int(s.get("weight") or 0)
        for s in (state or {}).get("steps") or []
        if isinstance(s, Mapping)
        and s.get("result") == "passed"
        and s.get("op", "weight") == "weight"
    ]
    safe = [p for p in passed if p < below]
    return safe[-1] if safe else 0


def exposure_of(stable: str | None, canary: str | None, weight: int) -> int:
    """The share of users served `on`, from what the simulated target runs."""
    if stable == ON:
        return 100
    return weight if canary == ON else 0


class SimulatedFlagTarget(SimulatedTarget):
    """A flag's gradual rollout on the simulator: ``set_weight(p)`` serves `on` to p % of users.

    The stable track is the users served `off`, the canary track those served `on`, so
    the canary engine, its judge and its triggers run unchanged. What differs is the
    rollback: with ``on_regression="last_safe"`` it goes back to the last percentage the
    engine saved as passed (0, the flag off, when none passed), with ``"off"`` it turns
    the flag off. The percentage it went back to is kept with the deployment, so a second
    rollback (a resumed run) changes nothing.
    """

    name = "simulated-flag"
    strategies = frozenset({"canary"})

    def __init__(
        self,
        clock: Clock,
        *,
        flag: str = "new-booking-flow",
        on_regression: OnRegression = "last_safe",
        state_file: Path | None = None,
        rollback_seconds: float = 1.0,
    ) -> None:
        # A flag change reaches the SDKs by streaming within a second or so: nothing to scale.
        super().__init__(
            clock,
            stable_version=OFF,
            state_file=state_file,
            rollback_seconds=rollback_seconds,
            deployment=flag,
        )
        self.flag = flag
        self.on_regression: OnRegression = on_regression

    # -- what a flag reports -------------------------------------------------------------

    def exposure(self) -> int:
        """The share of users served `on` now, in percent."""
        return exposure_of(self.stable_version, self.canary_version, self.canary_weight)

    def percent_history(self) -> list[int]:
        """Each share of users served `on` in turn since the rollout began (0 = off)."""
        out: list[int] = []
        for _, stable, canary, weight in self.history:
            if canary is None and stable != ON and not out:
                continue  # before begin: nothing was rolling out yet
            p = exposure_of(stable, canary, weight)
            if not out or out[-1] != p:
                out.append(p)
        if out and out[0] == 0:
            out = out[1:]  # begin serves nobody `on`: the first step is the first share
        return out

    @property
    def rolled_back_to(self) -> int | None:
        value = (self.world.get("flag") or {}).get("rolled_back_to")
        return None if value is None else int(value)

    def describe(self, percent: int) -> str:
        return f"{self.flag} off" if percent == 0 else f"{self.flag} on for {percent}%"

    # -- DeployTarget ----------------------------------------------------------------------

    def _begin(self, version: str) -> None:
        if version != ON:
            raise TargetError(
                f"A flag rollout serves the `{ON}` variation, not {version!r}.",
                hint=f"Run the engine with version `{ON}`.",
            )
        if self.canary_version != version:
            self.world["flag"] = {}  # a new rollout: no rollback of it yet
        super()._begin(version)

    def _rollback(self) -> RollbackResult:
        live = self.exposure()
        done = self.rolled_back_to
        if done is not None and live == done:
            return RollbackResult(
                changed=False,
                from_version=self.describe(live),
                to_version=self.describe(live),
                detail=f"already set back to {self.describe(live)}",
            )
        if live == 0:
            return RollbackResult(
                changed=False,
                from_version=self.describe(0),
                to_version=self.describe(0),
                detail=f"{self.flag} already serves `off` to everyone",
            )
        safe = 0
        if self.on_regression == "last_safe":
            # What is live failed: the last safe share is a passed one below it.
            safe = last_passed_percent(self.state, below=live)
        self._record_mirror(0)
        if safe == 0:
            self.stable_version, self.canary_version, self.canary_weight = OFF, None, 0
        else:
            self.stable_version, self.canary_version, self.canary_weight = OFF, ON, safe
        self.world["flag"] = {"rolled_back_to": safe, "from": live}
        self.rollbacks += 1
        self._record()
        self._write()
        why = (
            "the last safe percentage"
            if safe
            else ("no step passed: the flag off" if self.on_regression == "last_safe" else "off")
        )
        return RollbackResult(
            changed=True,
            from_version=self.describe(live),
            to_version=self.describe(safe),
            detail=f"{self.flag} set back from {live}% to {safe}% on ({why})",
        )
