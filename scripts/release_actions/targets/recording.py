"""A DeployTarget wrapper that records which version served where, so simulated traffic can follow a real target."""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable, Mapping
from typing import Any

from release_actions.metrics.base import Track
from release_actions.simulation.clock import Clock
from release_actions.targets.base import (
    DeployTarget,
    HealthSample,
    Preview,
    RollbackResult,
    TargetStatus,
)


class RecordingTarget(DeployTarget):
    """Passes every call to ``inner`` and, after each change, records what the target reports.

    The history is ``(time, stable, canary, weight)`` read back from the real target's
    ``status()`` (not from what was asked), which is what the simulator's ``Deployment.at``
    needs: ``canary run --target kubernetes --provider simulated`` rehearses a real cluster
    under simulated traffic whose split follows the weights the cluster really has.

    ``health_model`` (the simulation's health) is added to the real target's counters, so
    a scenario's restarts and failing probes reach the triggers as on the simulated target.
    With ``virtual_clock`` a rollback moves the clock on by the real time the target took,
    so the record's rollback time is the real target's, not zero.
    """

    def __init__(
        self,
        inner: DeployTarget,
        clock: Clock,
        *,
        deployment: str | None = None,
        virtual_clock: bool = False,
    ) -> None:
        self.inner = inner
        self.clock = clock
        self.virtual_clock = virtual_clock
        self.name = inner.name
        self.deployment = deployment or getattr(inner, "deployment", None) or inner.name
        self.health_model: Callable[[Track | None], HealthSample] | None = None
        self.history: list[tuple[float, str | None, str | None, int]] = []
        self.mirrors: list[tuple[float, int]] = []
        self.snapshot()

    def snapshot(self) -> TargetStatus:
        """Read the target's status and add it to the history when it changed."""
        status = self.inner.status()
        weight = status.canary_weight if status.canary_version is not None else 0
        entry = (self.clock.now(), status.stable_version, status.canary_version, weight)
        if not self.history or self.history[-1][1:] != entry[1:]:
            self.history.append(entry)
        mirror = status.mirror_percent if status.canary_version is not None else 0
        if not self.mirrors or self.mirrors[-1][1] != mirror:
            self.mirrors.append((self.clock.now(), mirror))
        return status

    def at(self, t: float) -> tuple[str | None, str | None, int]:
        """Stable version, canary version and weight at time ``t`` (the simulator's Deployment)."""
        times = [h[0] for h in self.history]
        _, stable, canary, weight = self.history[max(0, bisect_right(times, t) - 1)]
        return stable, canary, weight

    def mirror_at(self, t: float) -> int:
        """The share copied to the canary at time ``t``, as the real target reported it."""
        times = [m[0] for m in self.mirrors]
        return self.mirrors[max(0, bisect_right(times, t) - 1)][1] if self.mirrors else 0

    # -- DeployTarget ------------------------------------------------------------------------

    def status(self) -> TargetStatus:
        return self.inner.status()

    def begin(self, version: str) -> None:
        self.inner.begin(version)
        self.snapshot()

    def set_weight(self, percent: int) -> None:
        self.inner.set_weight(percent)
        self.snapshot()

    def promote(self) -> None:
        self.inner.promote()
        self.snapshot()

    def rollback(self) -> RollbackResult:
        began = time.monotonic()
        result = self.inner.rollback()
        if self.virtual_clock:
            self.clock.sleep(time.monotonic() - began)
        self.snapshot()
        return result

    def refusal(self, strategy: str) -> str | None:
        return self.inner.refusal(strategy)

    def use_strategy(self, strategy: str) -> None:
        self.inner.use_strategy(strategy)
        self.strategy = strategy

    def preview(self) -> Preview | None:
        return self.inner.preview()

    def switch(self) -> None:
        self.inner.switch()
        self.snapshot()

    def mirror(self, percent: int) -> None:
        self.inner.mirror(percent)
        self.snapshot()

    def withdraw(self) -> RollbackResult:
        result = self.inner.withdraw()
        self.snapshot()
        return result

    def save_state(self, state: Mapping[str, Any] | None) -> None:
        self.inner.save_state(state)

    def health(self, track: Track | None = None) -> HealthSample:
        real = self.inner.health(track)
        if self.health_model is None:
            return real
        simulated = self.health_model(track)
        return HealthSample(
            ready=real.ready,
            restarts=real.restarts + simulated.restarts,
            health_check_failures=real.health_check_failures + simulated.health_check_failures,
            details={**dict(real.details), "simulated": dict(simulated.details)},
        )
