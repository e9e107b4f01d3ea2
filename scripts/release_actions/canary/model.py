"""The rollout's words: decisions, step results, events, outcomes, rollback records and the saved state."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

# The one Clock protocol lives beside the virtual clock, below the engine and the simulated
# adapters alike, so a target can name it without importing the engine.
from release_actions.simulation.clock import Clock as Clock

STATE_SCHEMA = 1


class RealClock:
    """The wall clock: ``sleep`` really waits."""

    pace = 1.0

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class Decision(StrEnum):
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    HELD = "held"
    FAILED = "failed"  # rolled back because of errors, with on_error: fail; a failed shadow
    STABLE = "stable"  # the monitor watched its whole duration and saw nothing
    SWITCHED = "switched"  # blue-green: all traffic on the new version, the hold passed
    ABORTED = "aborted"  # blue-green: the preview failed, no user request reached it
    PASSED = "passed"  # shadow: the mirrored traffic found nothing; never a promotion


SUCCESS = frozenset({Decision.PROMOTED, Decision.STABLE, Decision.SWITCHED, Decision.PASSED})
"""The decisions a job reports as success (exit 0)."""
RELEASED = frozenset({Decision.PROMOTED, Decision.SWITCHED})
"""The decisions after which the new version serves every user."""


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
    op: str = "weight"

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "op": self.op,
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
            op=str(data.get("op") or "weight"),
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
    """``RB-YYYY-NNN`` (source §6.4): the year's next number after those already recorded.

    The local sequence, for a rehearsal with no record store; with one, the store numbers
    and this is only its floor (integrations/records.py)."""
    prefix = f"RB-{when.year:04d}-"
    used = [
        int(r[len(prefix) :])
        for r in existing
        if r.startswith(prefix) and r[len(prefix) :].isdigit()
    ]
    return f"{prefix}{max(used, default=0) + 1:03d}"


# No metrics provider of this project counts users (Prometheus, Datadog and the simulator
# count requests), so affected users are said to be unmeasured rather than guessed.
USERS_NOT_MEASURED = "not measured"
USERS_NOTE = (
    "no metrics provider here can count users (Prometheus, Datadog and the simulator count "
    "requests); take the number from product analytics for the postmortem"
)


def impact(
    requests: float | None, errors: float | None, source: str | None = None
) -> dict[str, Any]:
    """Source §6.4's impact: requests the bad version served and the errors among them."""
    return {
        "affected_users": USERS_NOT_MEASURED,
        "affected_users_note": USERS_NOTE,
        "affected_requests": None if requests is None else round(requests),
        "failed_requests": None if errors is None else round(errors),
        "source": source or "not measured: no metrics were read before the rollback",
    }


@dataclass
class RollbackRecord:
    """A rollback as source §6.4 records it, every field; root cause, follow-ups and the
    postmortem link come later (`rollback records annotate`)."""

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
    impact: dict[str, Any] = field(default_factory=lambda: impact(None, None))
    root_cause: str | None = None
    follow_up_actions: list[str] = field(default_factory=list)
    postmortem_link: str | None = None

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
            "impact": dict(self.impact),
            "root_cause": self.root_cause,
            "follow_up_actions": list(self.follow_up_actions),
            "postmortem_link": self.postmortem_link,
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
        return self.decision in SUCCESS

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


def jsonable(value: Any) -> Any:
    """Evidence goes into a JSON state file: keep numbers finite and keys strings."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class RunState:
    """The rollout's saved progress; a run that dies resumes from here, never from zero."""

    def __init__(self, version: str, known_good: str | None, started_at: float) -> None:
        self.version = version
        self.known_good = known_good
        self.started_at = started_at
        # running, held, promoting, rolling_back, recovering, aborting, withdrawing, done
        self.phase = "running"
        self.strategy = "canary"
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
        # A manual rollback's request to stop (`release-actions rollback` writes it before it
        # rolls back): id, by, at, at_s, reason, run. The engine and the monitor re-read it
        # at each interval and stop without rolling back a second time.
        self.abort: dict[str, Any] | None = None
        # An operator's request to skip the pause of step ``promote["step"]`` (or, with
        # ``full``, every remaining step): `release-actions promote` writes it; id, by, at,
        # at_s, reason, run, full, step, version, started_at. The engine reads it where it
        # reads the abort mark and lists each one it acted on in ``promotions``.
        self.promote: dict[str, Any] | None = None
        self.promotions: list[dict[str, Any]] = []
        # What `release-actions status` shows: the steps planned, the judge's cadence, the
        # last look at the canary (figures, verdict, looks so far in the step) and the
        # engine's clock when it saved (``at``, the wall time ``wall``, its ``pace``).
        self.plan: list[dict[str, Any]] = []
        self.cadence_s: float | None = None
        self.look: dict[str, Any] | None = None
        self.clock: dict[str, Any] | None = None
        # A gate's step in progress (`Settings.gate`): where the step began, where the last
        # look ended, the step's tally and last judgement, the judge's evidence, the triggers,
        # the measurement errors in a row, and the looks so far (bounded, for the chart).
        self.gate: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        # A run that is no gate's saves what it always saved.
        data = {k: v for k, v in vars(self).items() if not (k == "gate" and v is None)}
        return {"schema": STATE_SCHEMA, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunState:
        state = cls(str(data["version"]), data.get("known_good"), float(data["started_at"]))
        for key in vars(state):
            if key in data:
                setattr(state, key, data[key])
        return state
