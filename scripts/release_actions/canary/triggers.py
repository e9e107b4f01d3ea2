"""Automatic rollback triggers (source §6.1), each sustained over its window, never one sample."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from release_actions.core.policy import RollbackTriggers
from release_actions.metrics.base import TrafficSample
from release_actions.targets.base import HealthSample


@dataclass(frozen=True)
class Firing:
    """A trigger that fired: what, how bad, since when, with the samples that made it."""

    name: str
    reason: str
    value: float
    threshold: float
    window_seconds: float
    since: float
    at: float
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reason": self.reason,
            "value": self.value,
            "threshold": self.threshold,
            "window_seconds": self.window_seconds,
            "since": self.since,
            "at": self.at,
            "evidence": self.evidence,
        }


def _minutes(seconds: float) -> str:
    if seconds % 60 == 0:
        n = int(seconds // 60)
        return f"{n} minute" if n == 1 else f"{n} minutes"
    return f"{seconds:g} seconds"


class SustainedTrigger:
    """Fires when every sample over at least ``window_seconds`` is above ``threshold``.

    A sample at or below the threshold clears it; a missing sample (provider down, no
    histogram, NaN) neither clears it nor counts towards it, so an outage in the middle
    of a breach cannot reset the clock and hide the breach, nor fire it on no evidence.
    """

    def __init__(self, name: str, label: str, unit: str, threshold: float, window: float) -> None:
        self.name = name
        self.label = label
        self.unit = unit
        self.threshold = threshold
        self.window = window
        self.since: float | None = None
        self.samples: deque[tuple[float, float, float]] = deque()

    def observe(self, value: float | None, start: float, end: float) -> Firing | None:
        if value is None or not math.isfinite(value):
            return None
        if value <= self.threshold:
            self.since = None
            self.samples.clear()
            return None
        if self.since is None:
            self.since = start
        self.samples.append((start, end, value))
        while self.samples and self.samples[0][1] <= end - self.window:
            self.samples.popleft()
        if end - self.since < self.window:
            return None
        worst = min(v for _, _, v in self.samples)
        spans = [(e - s, v) for s, e, v in self.samples]
        mean = sum(d * v for d, v in spans) / (sum(d for d, _ in spans) or 1.0)
        return Firing(
            name=self.name,
            reason=f"{self.label} {_fmt(mean, self.unit)} over the window (lowest "
            f"{_fmt_above(worst, self.threshold, self.unit)}) > {_fmt(self.threshold, self.unit)} "
            f"for {_minutes(end - self.since)} (threshold: {_minutes(self.window)})",
            value=value,
            threshold=self.threshold,
            window_seconds=self.window,
            since=self.since,
            at=end,
            evidence={
                "samples": [
                    {"start": s, "end": e, "value": round(v, 4)} for s, e, v in self.samples
                ],
                "lowest_in_window": round(worst, 4),
            },
        )

    def state(self, origin: float = 0.0) -> dict[str, Any]:
        since = None if self.since is None else round(self.since - origin, 3)
        return {"breach_since_s": since, "samples_in_breach": len(self.samples)}

    def snapshot(self) -> dict[str, Any]:
        return {"since": self.since, "samples": [list(s) for s in self.samples]}

    def restore(self, data: Mapping[str, Any]) -> None:
        since = data.get("since")
        self.since = None if since is None else float(since)
        self.samples = deque(
            (float(a), float(b), float(v)) for a, b, v in data.get("samples") or []
        )


class CountTrigger:
    """Fires when a cumulative counter grew by more than ``threshold`` within ``window_seconds``.

    Counters are cumulative (pod restarts, failed probes); a counter that goes down was
    reset (pods replaced), so its new value is all new events. The first reading is the
    baseline; a missing reading is skipped, never read as zero.
    """

    def __init__(self, name: str, label: str, threshold: float, window: float) -> None:
        self.name = name
        self.label = label
        self.threshold = threshold
        self.window = window
        self.last: int | None = None
        self.increments: deque[tuple[float, int]] = deque()

    def baseline(self, value: int | None) -> None:
        if value is not None:
            self.last = value

    def observe(self, value: int | None, at: float) -> Firing | None:
        if value is None:
            return None
        if self.last is None:
            self.last = value
            return None
        grew = value - self.last if value >= self.last else value
        self.last = value
        if grew > 0:
            self.increments.append((at, grew))
        while self.increments and self.increments[0][0] <= at - self.window:
            self.increments.popleft()
        count = sum(n for _, n in self.increments)
        if count <= self.threshold:
            return None
        return Firing(
            name=self.name,
            reason=f"{count} {self.label} within {_minutes(self.window)} "
            f"(more than {self.threshold:g} triggers a rollback)",
            value=float(count),
            threshold=self.threshold,
            window_seconds=self.window,
            since=self.increments[0][0],
            at=at,
            evidence={"increments": [{"at": t, "count": n} for t, n in self.increments]},
        )

    def state(self, origin: float = 0.0) -> dict[str, Any]:
        return {"in_window": sum(n for _, n in self.increments)}

    def snapshot(self) -> dict[str, Any]:
        return {"last": self.last, "increments": [list(i) for i in self.increments]}

    def restore(self, data: Mapping[str, Any]) -> None:
        last = data.get("last")
        self.last = None if last is None else int(last)
        self.increments = deque((float(t), int(n)) for t, n in data.get("increments") or [])


def _fmt_above(value: float, threshold: float, unit: str) -> str:
    """``value`` with as many digits as it takes to read above ``threshold``."""
    for digits in (2, 3, 4):
        text = f"{value:.{digits}f}%" if unit == "%" else f"{value:.{digits - 2}f} {unit}"
        if text != (
            f"{threshold:.{digits}f}%" if unit == "%" else f"{threshold:.{digits - 2}f} {unit}"
        ):
            return text
    return _fmt(value, unit)


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.2f}%"
    return f"{value:.0f} {unit}"


class Triggers:
    """The four triggers of source §6.1 over one track (or the whole deployment)."""

    def __init__(self, policy: RollbackTriggers) -> None:
        er = policy.error_rate_percent
        lat = policy.p99_latency_ms
        hc = policy.health_check_failures
        rs = policy.pod_restarts
        self.error_rate = SustainedTrigger(
            "error_rate",
            "Error rate",
            "%",
            er.threshold,
            er.window_seconds,
        )
        self.p99 = SustainedTrigger(
            "p99_latency", "p99 latency", "ms", lat.threshold, lat.window_seconds
        )
        self.health_checks = CountTrigger(
            "health_check_failures", "health-check failures", hc.threshold, hc.window_seconds
        )
        self.restarts = CountTrigger("pod_restarts", "restarts", rs.threshold, rs.window_seconds)

    def observe_traffic(self, sample: TrafficSample | None) -> Firing | None:
        """Feed one interval's sample; None means the interval had no usable data."""
        if sample is None or sample.requests <= 0:
            return None
        fired = self.error_rate.observe(
            100 * sample.errors / sample.requests, sample.start, sample.end
        )
        latency = self.p99.observe(sample.p99_ms, sample.start, sample.end)
        return fired or latency

    def baseline_health(self, health: HealthSample | None) -> None:
        if health is not None:
            self.health_checks.baseline(health.health_check_failures)
            self.restarts.baseline(health.restarts)

    def observe_health(self, health: HealthSample | None, at: float) -> Firing | None:
        if health is None:
            return None
        failures = self.health_checks.observe(health.health_check_failures, at)
        restarts = self.restarts.observe(health.restarts, at)
        return failures or restarts

    def pending(self) -> list[SustainedTrigger]:
        """Sustained triggers in breach whose window is not yet met.

        A watch does not end as stable while one is pending: §6.3's 5-minute watch is as
        long as §6.1's p99 window, so a regression from 1:00 could otherwise never fire.
        """
        return [t for t in (self.error_rate, self.p99) if t.since is not None]

    def snapshot(self) -> dict[str, Any]:
        """Each trigger's breach and window, for a run that goes on in another process."""
        return {name: t.snapshot() for name, t in self._each().items()}

    def restore(self, data: Mapping[str, Any]) -> None:
        for name, trigger in self._each().items():
            if isinstance(data.get(name), Mapping):
                trigger.restore(data[name])

    def _each(self) -> dict[str, SustainedTrigger | CountTrigger]:
        return {
            "error_rate": self.error_rate,
            "p99_latency": self.p99,
            "health_check_failures": self.health_checks,
            "pod_restarts": self.restarts,
        }

    def state(self, origin: float = 0.0) -> dict[str, Any]:
        """Where each trigger stands; times in seconds after ``origin``."""
        return {
            "error_rate": self.error_rate.state(origin),
            "p99_latency": self.p99.state(origin),
            "health_check_failures": self.health_checks.state(origin),
            "pod_restarts": self.restarts.state(origin),
        }
