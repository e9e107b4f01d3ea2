"""Rolling back to the known-good revision: the rollback itself, its record (source §6.4) and the recovery check (§6.2)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from release_actions.canary.measure import measure, ms, resolvable_cadence
from release_actions.canary.model import (
    Clock,
    Event,
    Recovery,
    RollbackRecord,
    StepResult,
    human_duration,
    impact,
    next_record_id,
)
from release_actions.canary.watch import Timeline, Watch
from release_actions.core.settings import Settings
from release_actions.metrics.base import MetricsProvider
from release_actions.targets.base import DeployTarget

# Recovery (source §6.2 step 3) is judged over a full minute after the rollback, so one
# lucky 10-second interval cannot declare the service recovered.
RECOVERY_WINDOW_SECONDS = 60


class Roller:
    """Rolls ``target`` back, records it and checks recovery, telling ``timeline`` as it goes.

    The rollout and the monitor each hold one; ``deployment`` is what the records name.
    """

    def __init__(
        self,
        target: DeployTarget,
        provider: MetricsProvider,
        settings: Settings,
        clock: Clock,
        timeline: Timeline,
        *,
        record_id: Callable[[datetime, Iterable[str]], str] | None = None,
        deployment: str | None = None,
    ) -> None:
        self.target = target
        self.provider = provider
        self.settings = settings
        self.clock = clock
        self.timeline = timeline
        self.record_id = record_id or next_record_id
        self.deployment = deployment or target.deployment

    def rollback(
        self, *, detected_at: float, reason: str, metrics: dict[str, Any], version: str | None
    ) -> tuple[dict[str, Any], float]:
        """Roll back to the known-good version; returns the record and when it finished.

        No metrics are needed to roll back: an outage of the provider can delay the
        recovery check, never the rollback itself.
        """
        self.timeline.emit("rollback", f"rolling back: {reason}")
        began = self.clock.now()
        result = self.target.rollback()
        finished = self.clock.now()
        when = datetime.fromtimestamp(began, self.settings.policy.calendar.tz)
        origin = self.timeline.origin
        record = RollbackRecord(
            id=self.record_id(when, self.record_ids()),
            timestamp=when.isoformat(timespec="seconds"),
            deployment=self.deployment,
            from_version=result.from_version or version,
            to_version=result.to_version,
            trigger_type="automatic",
            reason=reason,
            metrics=metrics,
            detection_seconds=None if origin is None else round(detected_at - origin, 3),
            rollback_seconds=round(finished - began, 3),
            changed=result.changed,
            detail=result.detail,
        )
        self.timeline.emit(
            "rollback",
            f"{record.id}: {result.detail or 'rolled back'} in {human_duration(finished - began)}",
            record=record.id,
            changed=result.changed,
        )
        return record.to_dict(), finished

    def record_ids(self) -> list[str]:
        """Ids already recorded on this target, so the next one continues the year's sequence."""
        try:
            saved = self.target.status().state or {}
        except Exception:
            return []
        ids = [str(i) for i in saved.get("record_ids") or []]
        record = saved.get("record")
        if isinstance(record, Mapping) and record.get("id"):
            ids.append(str(record["id"]))
        return ids

    def check_recovery(self, since: float) -> Recovery:
        mon = self.settings.monitor
        rec = mon.recovery
        deadline = since + mon.duration_seconds
        # A minute, or longer where the provider cannot count over a minute (a 1m scrape).
        window, _ = resolvable_cadence(RECOVERY_WINDOW_SECONDS, self.provider)
        checks = 0
        reason = "no measurement yet"
        last: dict[str, Any] = {}
        while self.clock.now() < deadline:
            self.clock.sleep(mon.interval_seconds)
            now = self.clock.now()
            if now - since < window:
                continue
            checks += 1
            sample, error = measure(self.provider, None, now - window, now)
            if sample is None:
                reason = f"cannot confirm recovery: {error}"
                self.timeline.emit("recovery", reason)
                continue
            error_pct = 100 * sample.error_rate
            success = 100 - error_pct
            p99 = sample.p99_ms
            last = {
                "error_rate_percent": round(error_pct, 4),
                "success_rate_percent": round(success, 4),
                "p99_ms": None if p99 is None else round(p99, 1),
                "requests": sample.requests,
            }
            failing = []
            if not error_pct < rec.max_error_rate_percent:
                failing.append(f"error rate {error_pct:.3f}% >= {rec.max_error_rate_percent}%")
            if p99 is None or not p99 < rec.max_p99_ms:
                failing.append(f"p99 {ms(p99)} >= {rec.max_p99_ms:.0f}ms")
            if not success >= rec.min_success_rate_percent:
                failing.append(f"success rate {success:.2f}% < {rec.min_success_rate_percent}%")
            if not failing:
                seconds = round(now - since, 3)
                text = (
                    f"recovered after {human_duration(seconds)}: error rate {error_pct:.3f}%, "
                    f"p99 {ms(p99)}, success {success:.2f}%"
                )
                self.timeline.emit("recovery", text, **last)
                return Recovery(True, seconds, text, checks, last)
            reason = "not recovered yet: " + "; ".join(failing)
            self.timeline.emit("recovery", reason, **last)
        return Recovery(
            False,
            None,
            f"recovery not confirmed within {human_duration(mon.duration_seconds)} ({reason}); "
            "check the service by hand (source §6.2 step 3)",
            checks,
            last,
        )


def watch_parts(
    target: DeployTarget,
    provider: MetricsProvider,
    settings: Settings,
    clock: Clock,
    *,
    on_event: Callable[[Event], None] | None = None,
    record_id: Callable[[datetime, Iterable[str]], str] | None = None,
    deployment: str | None = None,
    origin: float | None = None,
) -> tuple[Timeline, Watch, Roller]:
    """What a rollout and a watch each hold: their timeline, the measuring, the rolling back."""
    timeline = Timeline(clock, on_event, origin=origin)
    roller = Roller(
        target, provider, settings, clock, timeline, record_id=record_id, deployment=deployment
    )
    return timeline, Watch(target, provider), roller


def impact_of(steps: Iterable[StepResult], events: Iterable[Event]) -> dict[str, Any]:
    """Source §6.4's impact from what the judge saw: the canary's requests and errors over
    the rollout's steps, else (a monitor, after a full deploy) every sample of the watch.

    Only what was measured: requests served before the first measurement (or between a
    deploy and its monitor) are not counted, so the numbers are a lower bound.
    """
    requests = errors = 0.0
    used = []
    for step in steps:
        canary = step.evidence.get("canary") or {}
        if canary.get("requests") is not None:
            requests += float(canary.get("requests") or 0)
            errors += float(canary.get("errors") or 0)
            used.append(f"{step.weight}%")
    if used:
        return impact(
            requests,
            errors,
            "the canary's requests and errors at " + ", ".join(used) + " (a lower bound)",
        )
    samples = 0
    for event in events:
        sample = event.data.get("all") if event.kind == "interval" else None
        if isinstance(sample, Mapping) and sample.get("requests") is not None:
            requests += float(sample.get("requests") or 0)
            errors += float(sample.get("errors") or 0)
            samples += 1
    if samples:
        return impact(
            requests,
            errors,
            f"the monitor's {samples} samples of the whole service (a lower bound)",
        )
    return impact(None, None)


def with_recovery(record: dict[str, Any], recovery: Recovery) -> dict[str, Any]:
    """The record once the recovery check is over: recovered or not, and how long it took."""
    out = dict(record)
    out["recovered"] = recovery.recovered
    out["duration"] = {
        **record["duration"],
        "recovery_time": human_duration(recovery.seconds),
        "recovery_seconds": recovery.seconds,
    }
    return out


def check_recovery(
    target: DeployTarget,
    provider: MetricsProvider,
    settings: Settings,
    clock: Clock,
    since: float,
    *,
    on_event: Callable[[Event], None] | None = None,
) -> Recovery:
    """Source §6.2 step 3 after a rollback made outside the engine (`release-actions rollback`):
    the same check, over the same window, as after an automatic rollback."""
    timeline = Timeline(clock, on_event, origin=since)
    return Roller(target, provider, settings, clock, timeline).check_recovery(since)
