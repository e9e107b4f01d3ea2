"""One rollout step's bookkeeping: the totals kept as its evidence, and the line each interval logs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from release_actions.canary.judge import Verdict
from release_actions.canary.measure import brief_line
from release_actions.canary.model import jsonable
from release_actions.canary.triggers import Firing, Triggers
from release_actions.core.policy import RolloutStep
from release_actions.metrics.base import TrafficSample

if TYPE_CHECKING:
    from release_actions.canary.judge import Judgement


class Tally:
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

    def count(self, verdict: Verdict) -> None:
        key = str(verdict)
        self.verdicts[key] = self.verdicts.get(key, 0) + 1

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
                "evidence": jsonable(last.evidence),
            }
        out["triggers"] = triggers.state(origin)
        out.update(jsonable(dict(extra)))
        return out


def interval_line(
    step: RolloutStep,
    canary: TrafficSample | None,
    stable: TrafficSample | None,
    verdict: Verdict | None,
    reason: str,
    error: str | None,
    firing: Firing | None,
    remaining: float,
    to_limit: float,
    judged: bool,
) -> str:
    track = "shadow" if step.op == "mirror" else "canary"
    head = f"{step.weight:>3}% {track} {brief_line(canary)}"
    if judged:
        head += f" | stable {brief_line(stable)}"
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
    elif judged and verdict is not Verdict.PASS:
        left = f"pause over, waiting for evidence ({max(0.0, to_limit):.0f}s until on_error)"
    else:
        left = "pause over"
    return f"{head} | {tail} | {left}"
