"""The post-deploy monitor (source §6.3): watch a finished deploy, roll back on a trigger of §6.1."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from release_actions.canary.measure import brief, brief_line, error_limit_text, resolvable_cadence
from release_actions.canary.model import Clock, Decision, Event, Outcome, human_duration, jsonable
from release_actions.canary.rollback import watch_parts, with_recovery
from release_actions.canary.rollout import abort_mark, takeover_reason
from release_actions.canary.triggers import Triggers
from release_actions.core.settings import Settings
from release_actions.metrics.base import MetricsProvider
from release_actions.targets.base import DeployTarget


class DeployMonitor:
    """Watches a finished deploy (source §6.3) and rolls back on a trigger of source §6.1.

    Unlike the source document's script, a failing provider is never skipped silently:
    errors in a row for as long as a canary analysis tolerates them (``error_limit_seconds``,
    4 minutes, counted at the monitor's own cadence) go to ``on_error``, and the watch does
    not end as stable while the last measurement failed. Length, cadence and triggers come
    whole from ``settings.monitor``. A manual rollback's abort mark on the saved state
    (see CanaryEngine) stops the watch at its next interval, without a second rollback.
    """

    def __init__(
        self,
        target: DeployTarget,
        provider: MetricsProvider,
        settings: Settings,
        clock: Clock,
        *,
        on_event: Callable[[Event], None] | None = None,
        record_id: Callable[[datetime, Iterable[str]], str] | None = None,
        origin: float | None = None,
        deployment: str | None = None,
    ) -> None:
        self.target = target
        self.provider = provider
        self.settings = settings
        self.clock = clock
        self.timeline, self.watch, self.roller = watch_parts(
            target,
            provider,
            settings,
            clock,
            on_event=on_event,
            record_id=record_id,
            deployment=deployment,
            origin=origin,
        )
        self.duration = settings.monitor.duration_seconds
        asked = settings.monitor.interval_seconds
        self.interval, self._cadence_note = resolvable_cadence(asked, provider)
        self.triggers = Triggers(settings.monitor.triggers)
        self._old_abort: str | None = None

    def run(self) -> Outcome:
        analysis = self.settings.analysis
        limit = self.settings.error_limit(self.interval)
        status = self.target.status()
        version = status.canary_version or status.stable_version
        # A mark already there belongs to an earlier rollback, not to this watch.
        old = abort_mark(status.state)
        self._old_abort = None if old is None else old.get("id")
        start = self.clock.now()
        if self.timeline.origin is None:
            self.timeline.origin = start
        end_at = start + self.duration
        er = self.triggers.error_rate
        if self._cadence_note:
            self.timeline.emit("note", self._cadence_note)
        self.timeline.emit(
            "monitor",
            f"watching {self.roller.deployment} ({version}) for {human_duration(self.duration)} every "
            f"{self.interval:g}s: error rate > {er.threshold:g}% for {human_duration(er.window)}, "
            f"p99 > {self.triggers.p99.threshold:g}ms, health checks, restarts",
        )
        health, _ = self.watch.health(None)
        self.triggers.baseline_health(health)
        prev = start
        intervals = 0
        extended = False
        while True:
            now = self.clock.now()
            pending = self.triggers.pending() if now >= end_at else []
            if pending and not extended:
                extended = True
                first = pending[0]
                self.timeline.emit(
                    "note",
                    f"watch goes on: {first.label} over {first.threshold:g}{first.unit} since "
                    f"+{(first.since or now) - (self.timeline.origin or start):.0f}s is pending; "
                    f"it fires once it has held for {human_duration(first.window)}, or clears",
                )
            if now >= end_at and self.watch.error_streak == 0 and intervals and not pending:
                reason = f"no trigger in {human_duration(now - start)} ({intervals} measurements)"
                self.timeline.emit("decision", f"stable: {reason}")
                return Outcome(
                    Decision.STABLE,
                    version,
                    reason,
                    start,
                    now,
                    events=self.timeline.events,
                    evidence={
                        "triggers": self.triggers.state(self.timeline.origin or start),
                        "intervals": intervals,
                    },
                )
            self.clock.sleep(self.interval)
            taken = self._taken_over(version, start)
            if taken is not None:
                return taken
            end = self.clock.now()
            intervals += 1
            sample, error = self.watch.measure(None, prev, end)
            health, health_error = self.watch.health(None)
            error = error or health_error
            prev = end
            if sample is not None:
                self.watch.last_canary = sample
            firing = self.triggers.observe_traffic(sample)
            firing = self.triggers.observe_health(health, end) or firing
            self.watch.count_error(error)
            line = f"all {brief_line(sample)}"
            if firing is not None:
                line += f" | TRIGGER {firing.reason}"
            elif error is not None:
                line += f" | ERROR {error} ({self.watch.error_streak}/{limit})"
            self.timeline.emit(
                "interval",
                line + f" | {max(0.0, end_at - end):.0f}s left",
                all=brief(sample),
                error=error,
                trigger=firing.name if firing else None,
                remaining_s=max(0.0, end_at - end),
            )
            if firing is not None:
                return self._roll_back(
                    version,
                    start,
                    Decision.ROLLED_BACK,
                    firing.reason,
                    {"trigger": firing.to_dict()},
                )
            if self.watch.error_streak >= limit:
                reason = (
                    f"{self.watch.error_streak} measurement errors in a row "
                    f"({error_limit_text(analysis, self.interval)}); last: {error}; on_error is "
                    f"`{analysis.on_error}`"
                )
                if analysis.on_error == "hold":
                    self.timeline.emit("decision", f"held: {reason}")
                    return Outcome(
                        Decision.HELD,
                        version,
                        reason,
                        start,
                        self.clock.now(),
                        events=self.timeline.events,
                        evidence={"errors": list(self.watch.last_errors)},
                    )
                decision = Decision.FAILED if analysis.on_error == "fail" else Decision.ROLLED_BACK
                return self._roll_back(
                    version, start, decision, reason, {"errors": list(self.watch.last_errors)}
                )

    def _taken_over(self, version: str | None, start: float) -> Outcome | None:
        """The end of the watch when a manual rollback marked the saved state since it began."""
        mark = abort_mark(self.target.status().state, ignore=self._old_abort)
        if mark is None:
            return None
        reason = takeover_reason(mark)
        self.timeline.emit("decision", f"{Decision.ROLLED_BACK.value}: {reason}")
        now = self.clock.now()
        return Outcome(
            Decision.ROLLED_BACK,
            version,
            reason,
            start,
            now,
            detected_at=now,
            evidence=jsonable({"manual_rollback": mark}),
            events=self.timeline.events,
        )

    def _remember_record(self, record_id: str) -> None:
        """Add the monitor's record to the target's saved state, for the next number."""
        saved = dict(self.target.status().state or {})
        saved["record_ids"] = [*(saved.get("record_ids") or []), record_id]
        self.target.save_state(saved)

    def _roll_back(
        self,
        version: str | None,
        start: float,
        decision: Decision,
        reason: str,
        evidence: dict[str, Any],
    ) -> Outcome:
        taken = self._taken_over(version, start)
        if taken is not None:
            return taken  # a manual rollback got there first: never twice
        detected = self.clock.now()
        self.timeline.emit("decision", f"{decision.value}: {reason}")
        record, finished = self.roller.rollback(
            detected_at=detected,
            reason=reason,
            metrics=self.watch.record_metrics(),
            version=version,
        )
        self._remember_record(str(record["id"]))
        recovery = self.roller.check_recovery(finished)
        record = with_recovery(record, recovery)
        return Outcome(
            decision,
            version,
            reason,
            start,
            self.clock.now(),
            detected_at=detected,
            evidence=jsonable(evidence),
            record=record,
            recovery=recovery,
            events=self.timeline.events,
        )
