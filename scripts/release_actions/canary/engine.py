"""The canary rollout loop and the post-deploy monitor: measure, judge, then promote, hold or roll back."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from release_actions.canary.triggers import Firing, Triggers
from release_actions.core.policy import AnalysisPolicy, Policy, RolloutStep
from release_actions.errors import MetricsError, NoDataError, ReleaseActionsError
from release_actions.metrics.base import MetricsProvider, Track, TrafficSample
from release_actions.targets.base import DeployTarget, HealthSample

if TYPE_CHECKING:
    from release_actions.canary.judge import Judge, Judgement

STATE_SCHEMA = 1
# Recovery (source §6.2 step 3) is judged over a full minute after the rollback, so one
# lucky 10-second interval cannot declare the service recovered.
RECOVERY_WINDOW_SECONDS = 60


class Clock(Protocol):
    """Wall time in epoch seconds; the simulator's virtual clock and the real one both fit."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class Decision(StrEnum):
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    HELD = "held"
    FAILED = "failed"  # rolled back because of errors, with on_error: fail
    STABLE = "stable"  # the monitor watched its whole duration and saw nothing


class StepStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"  # the judge said the canary is worse
    TRIGGERED = "triggered"  # a rollback trigger of source §6.1 fired
    ERROR = "error"  # too many measurement errors in a row
    INCONCLUSIVE = "inconclusive"  # not enough evidence by the bound: never promote on none


@dataclass
class Event:
    """One line of the timeline: a step, an interval's measurement, a decision."""

    kind: str
    at_s: float
    message: str
    step: int | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "at_s": round(self.at_s, 3),
            "message": self.message,
        }
        if self.step is not None:
            out["step"] = self.step
        if self.data:
            out["data"] = self.data
        return out


@dataclass
class StepResult:
    index: int
    weight: int
    pause_seconds: int
    analysis: bool
    status: StepStatus
    reason: str
    started_at: float
    ended_at: float
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "weight": self.weight,
            "pause_seconds": self.pause_seconds,
            "analysis": self.analysis,
            "result": self.status.value,
            "reason": self.reason,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "evidence": self.evidence,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepResult:
        return cls(
            index=int(data["index"]),
            weight=int(data["weight"]),
            pause_seconds=int(data["pause_seconds"]),
            analysis=bool(data["analysis"]),
            status=StepStatus(data["result"]),
            reason=str(data["reason"]),
            started_at=float(data["started_at"]),
            ended_at=float(data["ended_at"]),
            evidence=dict(data.get("evidence") or {}),
        )


@dataclass
class Recovery:
    """Source §6.2 step 3: error rate, p99 and success rate back to normal after a rollback."""

    recovered: bool
    seconds: float | None
    reason: str
    checks: int
    last: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "recovered": self.recovered,
            "seconds": self.seconds,
            "reason": self.reason,
            "checks": self.checks,
            "last": self.last,
        }


def human_duration(seconds: float | None) -> str | None:
    """Durations the way source §6.4 writes them: "2 minutes", "3 minutes 10 seconds"."""
    if seconds is None:
        return None
    total = round(seconds)
    minutes, secs = divmod(total, 60)
    parts = []
    if minutes:
        parts.append(f"{minutes} minute" + ("s" if minutes != 1 else ""))
    if secs or not minutes:
        parts.append(f"{secs} second" + ("s" if secs != 1 else ""))
    return " ".join(parts)


def next_record_id(when: datetime, existing: Iterable[str] = ()) -> str:
    """``RB-YYYY-NNN`` (source §6.4): the year's next number after those already recorded."""
    prefix = f"RB-{when.year:04d}-"
    used = [
        int(r[len(prefix) :])
        for r in existing
        if r.startswith(prefix) and r[len(prefix) :].isdigit()
    ]
    return f"{prefix}{max(used, default=0) + 1:03d}"


@dataclass
class RollbackRecord:
    """A rollback as source §6.4 records it; impact and root cause are for the postmortem."""

    id: str
    timestamp: str
    deployment: str
    from_version: str | None
    to_version: str | None
    trigger_type: str
    reason: str
    metrics: dict[str, Any]
    detection_seconds: float | None
    rollback_seconds: float
    recovery_seconds: float | None = None
    recovered: bool | None = None
    changed: bool = True
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "timestamp": self.timestamp,
            "deployment": self.deployment,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "trigger": {"type": self.trigger_type, "reason": self.reason, "metrics": self.metrics},
            "duration": {
                "detection_time": human_duration(self.detection_seconds),
                "rollback_time": human_duration(self.rollback_seconds),
                "recovery_time": human_duration(self.recovery_seconds),
                "detection_seconds": self.detection_seconds,
                "rollback_seconds": self.rollback_seconds,
                "recovery_seconds": self.recovery_seconds,
            },
            "recovered": self.recovered,
            "changed": self.changed,
            "detail": self.detail,
        }


@dataclass
class Outcome:
    """How a rollout (or a monitor) ended, with everything needed to explain it."""

    decision: Decision
    version: str | None
    reason: str
    started_at: float
    ended_at: float
    detected_at: float | None = None
    steps: list[StepResult] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] | None = None
    recovery: Recovery | None = None
    resumed: bool = False
    events: list[Event] = field(default_factory=list)

    @property
    def detected_at_s(self) -> float | None:
        return None if self.detected_at is None else round(self.detected_at - self.started_at, 3)

    @property
    def ok(self) -> bool:
        return self.decision in (Decision.PROMOTED, Decision.STABLE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision.value,
            "version": self.version,
            "reason": self.reason,
            "started_at": self.started_at,
            "duration_s": round(self.ended_at - self.started_at, 3),
            "detected_at_s": self.detected_at_s,
            "steps": [s.to_dict() for s in self.steps],
            "evidence": self.evidence,
            "rollback": self.record,
            "recovery": self.recovery.to_dict() if self.recovery else None,
            "resumed": self.resumed,
        }


def check_sample(sample: TrafficSample, label: str) -> TrafficSample:
    """Refuse what a provider should never have returned: NaN, infinities, no requests.

    Adapters already raise ``NoDataError`` for these; checking again here means a faulty
    adapter cannot turn missing data into a healthy-looking zero.
    """
    numbers = {"requests": sample.requests, "errors": sample.errors}
    if sample.p99_ms is not None:
        numbers["p99_ms"] = sample.p99_ms
    for key, value in numbers.items():
        if value is None or not math.isfinite(value):
            raise NoDataError(f"The provider returned {value!r} for `{key}` of {label}: no data.")
    if sample.requests <= 0:
        raise NoDataError(f"No requests for {label} in the interval: probably no traffic.")
    if sample.errors < 0 or sample.errors > sample.requests:
        raise MetricsError(
            f"The provider returned {sample.errors:g} errors for {sample.requests:g} requests "
            f"of {label}: the response is inconsistent."
        )
    return sample


def measure(
    provider: MetricsProvider,
    track: Track | None,
    start: float,
    end: float,
    slow_ms: float | None = None,
) -> tuple[TrafficSample | None, str | None]:
    """A usable sample, or None and why: every failure is data missing, never health."""
    label = "the whole deployment" if track is None else f"the {track.value} track"
    try:
        sample = provider.query(track, start, end, slow_ms=slow_ms)
        return check_sample(sample, label), None
    except NoDataError as exc:
        return None, f"no data: {exc.message}"
    except ReleaseActionsError as exc:
        return None, f"provider error: {exc.message}"
    except Exception as exc:
        # An adapter bug is still an outage to the rollout: counted, and never health.
        return None, f"provider error: {type(exc).__name__}: {exc}"


@dataclass
class Analysis:
    """One canary analysis over a window (``release-actions canary analyze``)."""

    verdict: str
    reason: str
    start: float
    end: float
    judgement: dict[str, Any] | None
    intervals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "start": self.start,
            "end": self.end,
            "judgement": self.judgement,
            "intervals": self.intervals,
        }


def resolvable_cadence(cadence: int, provider: MetricsProvider) -> tuple[int, str | None]:
    """``cadence``, raised to the shortest window ``provider`` can count over, and why.

    A provider that knows its data's resolution says so with ``shortest_window_seconds``
    (optional, so that providers written for the two-method interface keep working).
    Prometheus needs two scrapes in a window: measuring every 10 s against a 15 s scrape
    gets empty answers, which are no data, and a healthy release would be rolled back for
    an outage of the engine's own making.
    """
    ask = getattr(provider, "shortest_window_seconds", None)
    shortest = ask() if callable(ask) else None
    if shortest is None or shortest <= cadence:
        return cadence, None
    raised = math.ceil(shortest)
    return raised, (
        f"measuring every {raised} s, not every {cadence} s: {provider.name} cannot count "
        f"over a window shorter than {shortest:g} s"
    )


def _error_limit_text(analysis: AnalysisPolicy, cadence: int) -> str:
    limit = analysis.error_limit(cadence)
    if limit == analysis.consecutive_error_limit:
        return f"consecutive_error_limit {limit}"
    return (
        f"{limit} at {cadence} s: consecutive_error_limit {analysis.consecutive_error_limit} "
        f"at interval_seconds {analysis.interval_seconds}"
    )


def analyze_window(
    provider: MetricsProvider,
    judge: Judge,
    policy: Policy,
    end: float,
    *,
    slow_ms: float | None = None,
) -> Analysis:
    """Judge the last ``analysis_seconds`` before ``end``, interval by interval, as one step would.

    A fail anywhere fails; otherwise the last judgement decides. Measurement errors count
    as in a rollout: ``consecutive_error_limit`` in a row, or no judgement at all, is `error`.
    """
    a = policy.canary.analysis
    cadence, _ = resolvable_cadence(a.cadence(judge.name), provider)
    error_limit = a.error_limit(cadence)
    slow = a.max_p99_ms if slow_ms is None else slow_ms
    start = end - a.analysis_seconds
    judge.reset_step()
    intervals: list[dict[str, Any]] = []
    last: Judgement | None = None
    streak = 0
    t = start
    while t < end:
        t2 = min(end, t + cadence)
        canary, error = measure(provider, Track.CANARY, t, t2, slow)
        stable, stable_error = measure(provider, Track.STABLE, t, t2, slow)
        error = error or stable_error
        entry: dict[str, Any] = {
            "start": t,
            "end": t2,
            "canary": _brief(canary),
            "stable": _brief(stable),
        }
        t = t2
        if error is None and canary is not None and stable is not None:
            last = judge.observe(stable, canary)
            entry |= {"verdict": str(last.verdict), "reason": last.reason}
            if str(last.verdict) == "error":
                error = f"judge: {last.reason}"
        streak = streak + 1 if error else 0
        entry["error"] = error
        intervals.append(entry)
        if streak >= error_limit:
            return Analysis(
                "error",
                f"{streak} measurement errors in a row ({_error_limit_text(a, cadence)}); "
                f"last: {error}",
                start,
                end,
                None,
                intervals,
            )
        if last is not None and str(last.verdict) == "fail":
            break
    if last is None:
        return Analysis(
            "error", "no interval of the window could be measured", start, end, None, intervals
        )
    judged = {
        "verdict": str(last.verdict),
        "check": last.check,
        "reason": last.reason,
        "evidence": _jsonable(last.evidence),
    }
    return Analysis(str(last.verdict), last.reason, start, end, judged, intervals)


def _brief(sample: TrafficSample | None) -> dict[str, Any] | None:
    if sample is None:
        return None
    return {
        "requests": sample.requests,
        "errors": sample.errors,
        "error_rate_percent": round(100 * sample.error_rate, 4),
        "p99_ms": None if sample.p99_ms is None else round(sample.p99_ms, 1),
    }


def _pct(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}%"


def _ms(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0f}ms"


class _Watcher:
    """What the rollout and the monitor share: measuring, counting errors, rolling back."""

    def __init__(
        self,
        target: DeployTarget,
        provider: MetricsProvider,
        policy: Policy,
        clock: Clock,
        *,
        on_event: Callable[[Event], None] | None = None,
        record_id: Callable[[datetime, Iterable[str]], str] | None = None,
        origin: float | None = None,
        deployment: str | None = None,
    ) -> None:
        self.target = target
        self.provider = provider
        self.policy = policy
        self.clock = clock
        self.on_event = on_event
        self.record_id = record_id or next_record_id
        self.origin = origin
        self.deployment = deployment or getattr(target, "deployment", None) or target.name
        self.events: list[Event] = []
        self.error_streak = 0
        self.last_canary: TrafficSample | None = None
        self.last_stable: TrafficSample | None = None
        self.last_errors: list[str] = []

    # -- timeline ------------------------------------------------------------------

    def _emit(self, kind: str, message: str, step: int | None = None, **data: Any) -> Event:
        origin = self.origin if self.origin is not None else self.clock.now()
        event = Event(kind, self.clock.now() - origin, message, step, data)
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(event)
        return event

    # -- measuring -----------------------------------------------------------------

    def _measure(
        self, track: Track | None, start: float, end: float, slow_ms: float | None = None
    ) -> tuple[TrafficSample | None, str | None]:
        return measure(self.provider, track, start, end, slow_ms)

    def _health(self, track: Track | None) -> tuple[HealthSample | None, str | None]:
        try:
            return self.target.health(track), None
        except Exception as exc:
            message = (
                exc.message
                if isinstance(exc, ReleaseActionsError)
                else f"{type(exc).__name__}: {exc}"
            )
            return None, f"health unavailable: {message}"

    def _count_error(self, error: str | None) -> None:
        if error is None:
            self.error_streak = 0
            return
        self.error_streak += 1
        self.last_errors = [*self.last_errors[-3:], error]

    # -- rolling back ----------------------------------------------------------------

    def _metrics_for_record(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        canary, stable = self.last_canary, self.last_stable
        out: dict[str, Any] = {
            "error_rate": _pct(None if canary is None else 100 * canary.error_rate),
            "p99_latency": _ms(None if canary is None else canary.p99_ms),
        }
        if stable is not None:
            out["stable_error_rate"] = _pct(100 * stable.error_rate)
            out["stable_p99_latency"] = _ms(stable.p99_ms)
        if canary is not None:
            out["requests"] = round(canary.requests)
        if self.error_streak:
            out["measurement_errors_in_a_row"] = self.error_streak
        if extra:
            out.update(extra)
        return out

    def _rollback(
        self, *, detected_at: float, reason: str, metrics: dict[str, Any], version: str | None
    ) -> tuple[dict[str, Any], float]:
        """Roll back to the known-good version; returns the record and when it finished.

        No metrics are needed to roll back: an outage of the provider can delay the
        recovery check, never the rollback itself.
        """
        self._emit("rollback", f"rolling back: {reason}")
        began = self.clock.now()
        result = self.target.rollback()
        finished = self.clock.now()
        when = datetime.fromtimestamp(began, self.policy.calendar.tz)
        record = RollbackRecord(
            id=self.record_id(when, self._record_ids()),
            timestamp=when.isoformat(timespec="seconds"),
            deployment=self.deployment,
            from_version=result.from_version or version,
            to_version=result.to_version,
            trigger_type="automatic",
            reason=reason,
            metrics=metrics,
            detection_seconds=None if self.origin is None else round(detected_at - self.origin, 3),
            rollback_seconds=round(finished - began, 3),
            changed=result.changed,
            detail=result.detail,
        )
        self._emit(
            "rollback",
            f"{record.id}: {result.detail or 'rolled back'} in {human_duration(finished - began)}",
            record=record.id,
            changed=result.changed,
        )
        return record.to_dict(), finished

    def _record_ids(self) -> list[str]:
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

    def _check_recovery(self, since: float) -> Recovery:
        mon = self.policy.monitor
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
            sample, error = self._measure(None, now - window, now)
            if sample is None:
                reason = f"cannot confirm recovery: {error}"
                self._emit("recovery", reason)
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
                failing.append(f"p99 {_ms(p99)} >= {rec.max_p99_ms:.0f}ms")
            if not success >= rec.min_success_rate_percent:
                failing.append(f"success rate {success:.2f}% < {rec.min_success_rate_percent}%")
            if not failing:
                seconds = round(now - since, 3)
                text = (
                    f"recovered after {human_duration(seconds)}: error rate {error_pct:.3f}%, "
                    f"p99 {_ms(p99)}, success {success:.2f}%"
                )
                self._emit("recovery", text, **last)
                return Recovery(True, seconds, text, checks, last)
            reason = "not recovered yet: " + "; ".join(failing)
            self._emit("recovery", reason, **last)
        return Recovery(
            False,
            None,
            f"recovery not confirmed within {human_duration(mon.duration_seconds)} ({reason}); "
            "check the service by hand (source §6.2 step 3)",
            checks,
            last,
        )


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
    policy: Policy,
    clock: Clock,
    since: float,
    *,
    on_event: Callable[[Event], None] | None = None,
) -> Recovery:
    """Source §6.2 step 3 after a rollback made outside the engine (`release-actions rollback`):
    the same check, over the same window, as after an automatic rollback."""
    watcher = _Watcher(target, provider, policy, clock, on_event=on_event, origin=since)
    return watcher._check_recovery(since)


class _RunState:
    """The rollout's saved progress; a run that dies resumes from here, never from zero."""

    def __init__(self, version: str, known_good: str | None, started_at: float) -> None:
        self.version = version
        self.known_good = known_good
        self.started_at = started_at
        self.phase = "running"  # running, held, promoting, rolling_back, recovering, done
        self.step_index = 0
        self.weight = 0
        self.step_started_at: float | None = None
        self.steps: list[dict[str, Any]] = []
        self.decision: str | None = None
        self.reason = ""
        self.detected_at: float | None = None
        self.evidence: dict[str, Any] = {}
        self.record: dict[str, Any] | None = None
        self.rolled_back_at: float | None = None
        self.recovery: dict[str, Any] | None = None
        self.held: dict[str, Any] | None = None
        self.record_ids: list[str] = []  # earlier rollouts' records on this target

    def to_dict(self) -> dict[str, Any]:
        return {"schema": STATE_SCHEMA, **vars(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _RunState:
        state = cls(str(data["version"]), data.get("known_good"), float(data["started_at"]))
        for key in vars(state):
            if key in data:
                setattr(state, key, data[key])
        return state


class CanaryEngine(_Watcher):
    """Runs a canary rollout step by step against any DeployTarget and MetricsProvider.

    Each step sets the weight, then at the judge's cadence (``analysis.cadence``) measures both
    tracks over the interval, feeds the judge and the rollback triggers, and ends when the
    pause has elapsed and the judge passed; a fail or a trigger rolls back; errors and
    missing evidence go to the policy's ``on_error``. Progress is saved through
    ``target.save_state`` before each action, so a killed run resumes where it was.
    """

    def __init__(
        self,
        target: DeployTarget,
        provider: MetricsProvider,
        judge: Judge,
        policy: Policy,
        clock: Clock,
        *,
        steps: list[RolloutStep] | None = None,
        on_event: Callable[[Event], None] | None = None,
        record_id: Callable[[datetime, Iterable[str]], str] | None = None,
        move_on_early: bool = True,
        inconclusive_factor: float = 2.0,
        slow_ms: float | None = None,
        deployment: str | None = None,
    ) -> None:
        super().__init__(
            target,
            provider,
            policy,
            clock,
            on_event=on_event,
            record_id=record_id,
            deployment=deployment,
        )
        self.judge = judge
        self.interval = policy.canary.analysis.cadence(judge.name)
        self._cadence_checked = False
        self.steps = steps if steps is not None else policy.canary.resolved_steps()
        # A step ends before its pause only on a pass the judge marks `early` (it showed
        # the canary is not worse); `move_on_early=False` makes every step run its pause.
        self.move_on_early = move_on_early
        self.inconclusive_factor = inconclusive_factor
        self.slow_ms = policy.canary.analysis.max_p99_ms if slow_ms is None else slow_ms
        self.triggers = Triggers(policy.monitor.triggers)
        self.state: _RunState | None = None

    # -- state ------------------------------------------------------------------------

    def _save(self) -> None:
        assert self.state is not None
        self.target.save_state(self.state.to_dict())

    def _outcome(self, resumed: bool = False) -> Outcome:
        st = self.state
        assert st is not None
        recovery = None
        if st.recovery:
            recovery = Recovery(**st.recovery)
        return Outcome(
            decision=Decision(st.decision or Decision.HELD),
            version=st.version,
            reason=st.reason,
            started_at=st.started_at,
            ended_at=self.clock.now(),
            detected_at=st.detected_at,
            steps=[StepResult.from_dict(s) for s in st.steps],
            evidence=st.evidence,
            record=st.record,
            recovery=recovery,
            resumed=resumed,
            events=self.events,
        )

    # -- the rollout --------------------------------------------------------------------

    def run(self, version: str) -> Outcome:
        """Roll ``version`` out, or resume the saved rollout of it; see the class docstring."""
        saved = self.target.status().state
        if (
            saved
            and "version" in saved
            and saved["version"] != version
            and saved.get("phase") != "done"
        ):
            self._finish_abandoned(saved, version)
            saved = None
        if saved and "version" in saved and saved["version"] == version:
            self.state = _RunState.from_dict(saved)
            self.origin = self.state.started_at
            phase = self.state.phase
            if phase == "done":
                self._emit(
                    "resume", f"the rollout of {version} already ended: {self.state.decision}"
                )
                return self._outcome(resumed=True)
            self._emit(
                "resume",
                f"resuming the rollout of {version} ({phase}) at step "
                f"{self.state.step_index + 1}/{len(self.steps)}",
            )
            if phase in ("rolling_back", "recovering"):
                return self._finish_rollback(resumed=True)
            if phase == "promoting":
                return self._promote(resumed=True)
            self.target.begin(version)  # the same version: the target resumes, not restarts
            return self._loop(resumed=True)
        earlier = self._record_ids()
        self.target.begin(version)
        started = self.clock.now()
        self.origin = started
        self.state = _RunState(version, self.target.status().known_good, started)
        self.state.record_ids = earlier
        self._emit(
            "start",
            f"rollout of {version} on {self.deployment}: "
            + " → ".join(f"{s.weight}%" for s in self.steps)
            + f" (judge: {self.judge.name}, known good: {self.state.known_good})",
        )
        self._save()
        return self._loop(resumed=False)

    def _finish_abandoned(self, saved: Mapping[str, Any], version: str) -> None:
        """A dead run of another version left a canary behind: settle it before starting."""
        other = _RunState.from_dict(saved)
        self.state = other
        self.origin = other.started_at
        if other.phase == "promoting":
            self._emit("note", f"finishing the promotion of {other.version} left by an earlier run")
            self._promote(resumed=True)
        else:
            self._emit(
                "note",
                f"an earlier rollout of {other.version} stopped in phase `{other.phase}`; "
                f"rolling it back before {version} starts",
            )
            if other.phase not in ("rolling_back", "recovering"):
                other.phase = "rolling_back"
                other.decision = Decision.ROLLED_BACK.value
                other.reason = f"abandoned rollout superseded by {version}"
                other.detected_at = self.clock.now()
                self._save()
            self._finish_rollback(resumed=True)
        self.state = None

    def _loop(self, *, resumed: bool) -> Outcome:
        st = self.state
        assert st is not None
        while st.step_index < len(self.steps):
            i = st.step_index
            step = self.steps[i]
            st.phase = "running"
            st.weight = step.weight
            st.step_started_at = self.clock.now()
            st.held = None
            self._save()  # before acting: a kill after set_weight resumes this very step
            self.target.set_weight(step.weight)
            result = self._run_step(i, step)
            if result.status is StepStatus.PASSED:
                st.steps.append(result.to_dict())
                st.step_index = i + 1
                self._save()
                continue
            return self._act(result, resumed=resumed)
        return self._promote(resumed=resumed)

    def _promote(self, *, resumed: bool) -> Outcome:
        st = self.state
        assert st is not None
        st.phase = "promoting"
        self._save()
        self.target.promote()
        st.phase = "done"
        st.decision = Decision.PROMOTED.value
        st.reason = st.reason or f"all {len(self.steps)} steps passed"
        st.weight = 100
        self._save()
        self._emit("decision", f"promoted {st.version}: {st.reason}")
        return self._outcome(resumed)

    def _act(self, result: StepResult, *, resumed: bool) -> Outcome:
        st = self.state
        assert st is not None
        on_error = self.policy.canary.analysis.on_error
        st.evidence = {"step": result.index, "weight": result.weight, **result.evidence}
        if result.status in (StepStatus.ERROR, StepStatus.INCONCLUSIVE) and on_error == "hold":
            st.phase = "held"
            st.decision = Decision.HELD.value
            st.reason = f"{result.reason}; on_error is `hold`: the canary stays at {result.weight}%"
            st.held = result.to_dict()
            self._save()
            self._emit("decision", f"held at {result.weight}%: {st.reason}", step=result.index)
            return self._outcome(resumed)
        st.steps.append(result.to_dict())
        if result.status in (StepStatus.ERROR, StepStatus.INCONCLUSIVE):
            decision = Decision.FAILED if on_error == "fail" else Decision.ROLLED_BACK
            st.reason = f"{result.reason}; on_error is `{on_error}`"
        else:
            decision = Decision.ROLLED_BACK
            st.reason = result.reason
        st.phase = "rolling_back"
        st.decision = decision.value
        st.detected_at = result.ended_at
        self._save()
        self._emit("decision", f"{decision.value}: {st.reason}", step=result.index)
        return self._finish_rollback(resumed=resumed)

    def _finish_rollback(self, *, resumed: bool) -> Outcome:
        """Roll back and check recovery, saving between the two: a resumed run never rolls back twice."""
        st = self.state
        assert st is not None
        if st.phase == "rolling_back":
            metrics = self._metrics_for_record(st.evidence.get("record_metrics"))
            st.record, st.rolled_back_at = self._rollback(
                detected_at=st.detected_at or self.clock.now(),
                reason=st.reason,
                metrics=metrics,
                version=st.version,
            )
            st.phase = "recovering"
            self._save()
        if st.phase == "recovering":
            recovery = self._check_recovery(st.rolled_back_at or self.clock.now())
            st.recovery = recovery.to_dict()
            if st.record is not None:
                st.record = with_recovery(st.record, recovery)
        st.phase = "done"
        self._save()
        return self._outcome(resumed)

    # -- one step ---------------------------------------------------------------------

    def _cadence(self) -> int:
        """The judge's cadence, checked once against what the provider can resolve."""
        if not self._cadence_checked:
            self._cadence_checked = True
            self.interval, why = resolvable_cadence(self.interval, self.provider)
            if why:
                self._emit("note", why)
        return self.interval

    def _run_step(self, i: int, step: RolloutStep) -> StepResult:
        analysis = self.policy.canary.analysis
        interval = self._cadence()
        # At 100 % there is no stable traffic left to compare with: triggers only.
        judged = step.analysis and step.weight < 100
        start = self.clock.now()
        pause_end = start + step.pause_seconds
        # Past the pause an inconclusive step keeps measuring, but not forever: up to twice
        # the pause, and never less than two whole analyses, since the threshold judge
        # needs `analysis_seconds` of good data even at a 2-minute step and intervals lost
        # to a flaky provider do not count towards it.
        limit = (
            start
            + max(self.inconclusive_factor * step.pause_seconds, 2 * analysis.analysis_seconds)
            if judged
            else pause_end
        )
        self.judge.reset_step()
        health, _ = self._health(Track.CANARY)
        self.triggers.baseline_health(health)
        tally = _Tally()
        last: Judgement | None = None
        what = f"{step.pause_seconds}s pause" + (", analysis" if judged else "")
        self._emit(
            "step",
            f"step {i + 1}/{len(self.steps)}: canary at {step.weight}% ({what})",
            step=i,
            weight=step.weight,
            pause_seconds=step.pause_seconds,
            analysis=judged,
        )
        prev = start

        def done(status: StepStatus, reason: str, **extra: Any) -> StepResult:
            result = StepResult(
                index=i,
                weight=step.weight,
                pause_seconds=step.pause_seconds,
                analysis=judged,
                status=status,
                reason=reason,
                started_at=start,
                ended_at=self.clock.now(),
                evidence=tally.summary(last, self.triggers, self.origin or start, extra),
            )
            self._emit(
                "step_end", f"step {i + 1}: {status.value}: {reason}", step=i, result=status.value
            )
            return result

        while True:
            now = self.clock.now()
            if not judged and now >= pause_end and self.error_streak == 0:
                return done(
                    StepStatus.PASSED, f"{step.weight}% for {step.pause_seconds}s, no trigger"
                )
            remaining = pause_end - now
            self.clock.sleep(interval if remaining <= 0 else min(interval, remaining))
            end = self.clock.now()
            canary, error = self._measure(Track.CANARY, prev, end, self.slow_ms)
            stable: TrafficSample | None = None
            if judged:
                stable, stable_error = self._measure(Track.STABLE, prev, end, self.slow_ms)
                error = error or stable_error
            health, health_error = self._health(Track.CANARY)
            error = error or health_error
            window_start, prev = prev, end
            if canary is not None:
                self.last_canary = canary
            if stable is not None:
                self.last_stable = stable
            tally.add(canary, stable)
            firing: Firing | None = self.triggers.observe_traffic(canary)
            firing = self.triggers.observe_health(health, end) or firing
            verdict: str | None = None
            reason = ""
            if firing is None and error is None and judged:
                assert stable is not None
                assert canary is not None
                last = self.judge.observe(stable, canary)
                verdict = str(last.verdict)
                reason = last.reason
                tally.verdicts[verdict] = tally.verdicts.get(verdict, 0) + 1
                if verdict == "error":
                    error = f"judge: {last.reason}"
            self._count_error(error)
            if error is not None:
                tally.errors += 1
            self._emit(
                "interval",
                _interval_line(
                    step,
                    canary,
                    stable,
                    verdict,
                    reason,
                    error,
                    firing,
                    pause_end - end,
                    limit - end,
                    judged,
                ),
                step=i,
                weight=step.weight,
                start=window_start - self.state.started_at if self.state else 0.0,
                canary=_brief(canary),
                stable=_brief(stable),
                verdict=verdict,
                reason=reason,
                error=error,
                trigger=firing.name if firing else None,
                remaining_s=max(0.0, pause_end - end),
            )
            if firing is not None:
                return done(
                    StepStatus.TRIGGERED,
                    f"rollback trigger: {firing.reason}",
                    trigger=firing.to_dict(),
                )
            if self.error_streak >= analysis.error_limit(interval):
                return done(
                    StepStatus.ERROR,
                    f"{self.error_streak} measurement errors in a row "
                    f"({_error_limit_text(analysis, interval)}); last: {error}",
                    errors=list(self.last_errors),
                )
            if verdict == "fail":
                assert last is not None
                return done(StepStatus.FAILED, f"analysis failed: {last.reason}")
            if not judged or verdict != "pass":
                if judged and end >= limit:
                    why = last.reason if last is not None else "no measurement succeeded"
                    return done(
                        StepStatus.INCONCLUSIVE,
                        f"no verdict after {end - start:.0f}s at {step.weight}% ({why}): "
                        "a canary is never promoted on no evidence",
                    )
                continue
            if end >= pause_end:
                assert last is not None
                return done(StepStatus.PASSED, f"analysis passed: {last.reason}")
            if self.move_on_early and getattr(last, "early", False):
                assert last is not None
                return done(
                    StepStatus.PASSED,
                    f"analysis passed early, {pause_end - end:.0f}s before the pause ended: {last.reason}",
                    early=True,
                )


class _Tally:
    """Per-step totals, for the evidence saved with each step."""

    def __init__(self) -> None:
        self.canary_requests = 0.0
        self.canary_errors = 0.0
        self.stable_requests = 0.0
        self.stable_errors = 0.0
        self.intervals = 0
        self.errors = 0
        self.verdicts: dict[str, int] = {}

    def add(self, canary: TrafficSample | None, stable: TrafficSample | None) -> None:
        self.intervals += 1
        if canary is not None:
            self.canary_requests += canary.requests
            self.canary_errors += canary.errors
        if stable is not None:
            self.stable_requests += stable.requests
            self.stable_errors += stable.errors

    def summary(
        self, last: Judgement | None, triggers: Triggers, origin: float, extra: Mapping[str, Any]
    ) -> dict[str, Any]:
        def rate(errors: float, requests: float) -> float | None:
            return round(100 * errors / requests, 4) if requests else None

        out: dict[str, Any] = {
            "intervals": self.intervals,
            "measurement_errors": self.errors,
            "verdicts": dict(self.verdicts),
            "canary": {
                "requests": self.canary_requests,
                "errors": self.canary_errors,
                "error_rate_percent": rate(self.canary_errors, self.canary_requests),
            },
            "stable": {
                "requests": self.stable_requests,
                "errors": self.stable_errors,
                "error_rate_percent": rate(self.stable_errors, self.stable_requests),
            },
        }
        if last is not None:
            out["judge"] = {
                "verdict": str(last.verdict),
                "check": last.check,
                "reason": last.reason,
                "evidence": _jsonable(last.evidence),
            }
        out["triggers"] = triggers.state(origin)
        out.update(_jsonable(dict(extra)))
        return out


def _jsonable(value: Any) -> Any:
    """Evidence goes into a JSON state file: keep numbers finite and keys strings."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _interval_line(
    step: RolloutStep,
    canary: TrafficSample | None,
    stable: TrafficSample | None,
    verdict: str | None,
    reason: str,
    error: str | None,
    firing: Firing | None,
    remaining: float,
    to_limit: float,
    judged: bool,
) -> str:
    def track(sample: TrafficSample | None) -> str:
        if sample is None:
            return "n/a"
        p99 = "" if sample.p99_ms is None else f" p99 {sample.p99_ms:.0f}ms"
        return f"{sample.errors:.0f}/{sample.requests:.0f} ({100 * sample.error_rate:.2f}%){p99}"

    head = f"{step.weight:>3}% canary {track(canary)}"
    if judged:
        head += f" | stable {track(stable)}"
    if firing is not None:
        tail = f"TRIGGER {firing.reason}"
    elif error is not None:
        tail = f"ERROR {error}"
    elif verdict is not None:
        # The first sentence carries the numbers; the whole reason is in the evidence.
        tail = f"{verdict}: {reason.split('. ', 1)[0].rstrip('.')}"
    else:
        tail = "no trigger"
    if remaining > 0:
        left = f"{remaining:.0f}s left"
    elif judged and verdict != "pass":
        left = f"pause over, waiting for evidence ({max(0.0, to_limit):.0f}s until on_error)"
    else:
        left = "pause over"
    return f"{head} | {tail} | {left}"


class DeployMonitor(_Watcher):
    """Watches a finished deploy (source §6.3) and rolls back on a trigger of source §6.1.

    Unlike the source document's script, a failing provider is never skipped silently:
    ``consecutive_error_limit`` errors in a row go to ``on_error``, and the watch does not
    end as stable while the last measurement failed.
    """

    def __init__(
        self,
        target: DeployTarget,
        provider: MetricsProvider,
        policy: Policy,
        clock: Clock,
        *,
        duration_seconds: float | None = None,
        interval_seconds: float | None = None,
        error_rate_percent: float | None = None,
        on_event: Callable[[Event], None] | None = None,
        record_id: Callable[[datetime, Iterable[str]], str] | None = None,
        origin: float | None = None,
        deployment: str | None = None,
    ) -> None:
        super().__init__(
            target,
            provider,
            policy,
            clock,
            on_event=on_event,
            record_id=record_id,
            origin=origin,
            deployment=deployment,
        )
        self.duration = duration_seconds or policy.monitor.duration_seconds
        asked = int(interval_seconds or policy.monitor.interval_seconds)
        self.interval, self._cadence_note = resolvable_cadence(asked, provider)
        self.triggers = Triggers(policy.monitor.triggers, error_rate_percent=error_rate_percent)

    def run(self) -> Outcome:
        analysis = self.policy.canary.analysis
        status = self.target.status()
        version = status.canary_version or status.stable_version
        start = self.clock.now()
        if self.origin is None:
            self.origin = start
        end_at = start + self.duration
        er = self.triggers.error_rate
        if self._cadence_note:
            self._emit("note", self._cadence_note)
        self._emit(
            "monitor",
            f"watching {self.deployment} ({version}) for {human_duration(self.duration)} every "
            f"{self.interval:g}s: error rate > {er.threshold:g}% for {human_duration(er.window)}, "
            f"p99 > {self.triggers.p99.threshold:g}ms, health checks, restarts",
        )
        health, _ = self._health(None)
        self.triggers.baseline_health(health)
        prev = start
        intervals = 0
        while True:
            now = self.clock.now()
            if now >= end_at and self.error_streak == 0 and intervals:
                reason = f"no trigger in {human_duration(now - start)} ({intervals} measurements)"
                self._emit("decision", f"stable: {reason}")
                return Outcome(
                    Decision.STABLE,
                    version,
                    reason,
                    start,
                    now,
                    events=self.events,
                    evidence={
                        "triggers": self.triggers.state(self.origin or start),
                        "intervals": intervals,
                    },
                )
            self.clock.sleep(self.interval)
            end = self.clock.now()
            intervals += 1
            sample, error = self._measure(None, prev, end)
            health, health_error = self._health(None)
            error = error or health_error
            prev = end
            if sample is not None:
                self.last_canary = sample
            firing = self.triggers.observe_traffic(sample)
            firing = self.triggers.observe_health(health, end) or firing
            self._count_error(error)
            line = f"all {_brief_line(sample)}"
            if firing is not None:
                line += f" | TRIGGER {firing.reason}"
            elif error is not None:
                line += f" | ERROR {error} ({self.error_streak}/{analysis.consecutive_error_limit})"
            self._emit(
                "interval",
                line + f" | {max(0.0, end_at - end):.0f}s left",
                all=_brief(sample),
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
            if self.error_streak >= analysis.consecutive_error_limit:
                reason = (
                    f"{self.error_streak} measurement errors in a row (consecutive_error_limit "
                    f"{analysis.consecutive_error_limit}); last: {error}; on_error is "
                    f"`{analysis.on_error}`"
                )
                if analysis.on_error == "hold":
                    self._emit("decision", f"held: {reason}")
                    return Outcome(
                        Decision.HELD,
                        version,
                        reason,
                        start,
                        self.clock.now(),
                        events=self.events,
                        evidence={"errors": list(self.last_errors)},
                    )
                decision = Decision.FAILED if analysis.on_error == "fail" else Decision.ROLLED_BACK
                return self._roll_back(
                    version, start, decision, reason, {"errors": list(self.last_errors)}
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
        detected = self.clock.now()
        self._emit("decision", f"{decision.value}: {reason}")
        record, finished = self._rollback(
            detected_at=detected, reason=reason, metrics=self._metrics_for_record(), version=version
        )
        self._remember_record(str(record["id"]))
        recovery = self._check_recovery(finished)
        record = with_recovery(record, recovery)
        return Outcome(
            decision,
            version,
            reason,
            start,
            self.clock.now(),
            detected_at=detected,
            evidence=_jsonable(evidence),
            record=record,
            recovery=recovery,
            events=self.events,
        )


def _brief_line(sample: TrafficSample | None) -> str:
    if sample is None:
        return "n/a"
    p99 = "" if sample.p99_ms is None else f" p99 {sample.p99_ms:.0f}ms"
    return f"{sample.errors:.0f}/{sample.requests:.0f} ({100 * sample.error_rate:.2f}%){p99}"
