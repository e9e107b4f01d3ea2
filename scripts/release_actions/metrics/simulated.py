"""A metrics provider that reads the rehearsal simulator's traffic, outages and flakiness included."""

from __future__ import annotations

from release_actions.errors import MetricsError, NoDataError
from release_actions.metrics.base import MetricsProvider, Track, TrafficSample
from release_actions.simulation.traffic import Simulation


class SimulatedProvider(MetricsProvider):
    """Answers like a real provider, faults included: an outage raises, no traffic raises.

    Windows that reach into the future are cut at the clock's now, as a real store has
    nothing there yet.
    """

    name = "simulated"

    def __init__(self, simulation: Simulation) -> None:
        self.simulation = simulation
        self.queries = 0

    def query(
        self, track: Track | None, start: float, end: float, *, slow_ms: float | None = None
    ) -> TrafficSample:
        self.queries += 1
        now = self.simulation.clock.now()
        fault = self.simulation.provider_fault(now)
        label = "the whole deployment" if track is None else f"track `{track.value}`"
        if fault is not None:
            raise MetricsError(
                f"The simulated metrics provider failed to answer for {label}: {fault}.",
                hint="This is a scenario event; a real provider would be retried next interval.",
            )
        end = min(end, now)
        if end <= start:
            raise NoDataError(
                f"No values for {label}: the window [{start:.0f}, {end:.0f}) is empty."
            )
        sample = self.simulation.sample(track, start, end, slow_ms=slow_ms)
        if sample.requests <= 0:
            raise NoDataError(
                f"No values for {label} between +{start - self.simulation.origin:.0f}s and "
                f"+{end - self.simulation.origin:.0f}s: probably no traffic."
            )
        return sample

    def is_online(self) -> bool:
        return self.simulation.provider_fault(self.simulation.clock.now()) is None
