"""What a rollout and a monitor both keep while they watch: the timeline, and what was measured."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from release_actions.canary.measure import measure, ms, pct
from release_actions.canary.model import Clock, Event
from release_actions.errors import ReleaseActionsError
from release_actions.metrics.base import MetricsProvider, Track, TrafficSample
from release_actions.targets.base import DeployTarget, HealthSample


class Timeline:
    """The events of one rollout or watch, timed from ``origin`` and passed on as they happen.

    Without an ``origin`` an event is timed from its own moment (zero), as before a run starts.
    """

    def __init__(
        self,
        clock: Clock,
        on_event: Callable[[Event], None] | None = None,
        *,
        origin: float | None = None,
    ) -> None:
        self.clock = clock
        self.on_event = on_event
        self.origin = origin
        self.events: list[Event] = []

    def emit(self, kind: str, message: str, step: int | None = None, **data: Any) -> Event:
        origin = self.origin if self.origin is not None else self.clock.now()
        event = Event(kind, self.clock.now() - origin, message, step, data)
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)
        return event


class Watch:
    """Samples and health as they come in, the measurement errors in a row, and the last samples."""

    def __init__(self, target: DeployTarget, provider: MetricsProvider) -> None:
        self.target = target
        self.provider = provider
        self.error_streak = 0
        self.last_canary: TrafficSample | None = None
        self.last_stable: TrafficSample | None = None
        self.last_errors: list[str] = []

    def measure(
        self, track: Track | None, start: float, end: float, slow_ms: float | None = None
    ) -> tuple[TrafficSample | None, str | None]:
        return measure(self.provider, track, start, end, slow_ms)

    def health(self, track: Track | None) -> tuple[HealthSample | None, str | None]:
        try:
            return self.target.health(track), None
        except Exception as exc:
            message = (
                exc.message
                if isinstance(exc, ReleaseActionsError)
                else f"{type(exc).__name__}: {exc}"
            )
            return None, f"health unavailable: {message}"

    def count_error(self, error: str | None) -> None:
        if error is None:
            self.error_streak = 0
            return
        self.error_streak += 1
        self.last_errors = [*self.last_errors[-3:], error]

    def record_metrics(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The trigger metrics of a rollback record (source §6.4): the last samples seen."""
        canary, stable = self.last_canary, self.last_stable
        out: dict[str, Any] = {
            "error_rate": pct(None if canary is None else 100 * canary.error_rate),
            "p99_latency": ms(None if canary is None else canary.p99_ms),
        }
        if stable is not None:
            out["stable_error_rate"] = pct(100 * stable.error_rate)
            out["stable_p99_latency"] = ms(stable.p99_ms)
        if canary is not None:
            out["requests"] = round(canary.requests)
        if self.error_streak:
            out["measurement_errors_in_a_row"] = self.error_streak
        if extra:
            out.update(extra)
        return out
