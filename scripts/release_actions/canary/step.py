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

    def to_dict(self) -> dict[str, Any]:
        return {
            "canary_requests": self.canary_requests,
            "canary_errors": self.canary_errors,
            "stable_requests": self.stable_requests,
            "stable_errors": self.stable_errors,
            "intervals": self.intervals,
            "errors": self.errors,
            "verdicts": dict(self.verdicts),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tally:
        out = cls()
        for key in ("canary_requests", "canary_errors", "stable_requests", "stable_errors"):
            setattr(out, key, float(data.get(key) or 0.0))
        out.intervals = int(data.get("intervals") or 0)
        out.errors = int(data.get("errors") or 0)
        out.verdicts = {str(k): int(v) for k, v in (data.get("verdicts") or {}).items()}
        return out

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


LOOKS_KEPT = 48
"""How many looks a gate keeps for its chart: a day-long step looked at hourly fills it twice."""


def look_entry(
    start: float,
    end: float,
    step: int,
    weight: int,
    canary: TrafficSample | None,
    stable: TrafficSample | None,
    outcome: str | None,
) -> dict[str, Any]:
    """One look as the gate keeps it: the counts per track (None: no data), not the rates,
    so that two looks merge exactly."""

    def counts(sample: TrafficSample | None) -> list[float] | None:
        return None if sample is None else [sample.requests, sample.errors]

    return {
        "from": start,
        "to": end,
        "step": step,
        "weight": weight,
        "canary": counts(canary),
        "stable": counts(stable),
        "outcome": outcome,
    }


def keep_looks(
    looks: list[dict[str, Any]], entry: dict[str, Any], cap: int = LOOKS_KEPT
) -> list[dict[str, Any]]:
    """``looks`` with ``entry`` added, at most ``cap`` of them.

    Past the cap the two neighbours of one step that together span the least time become
    one (their counts added), so the chart keeps the whole rollout at an even resolution
    instead of forgetting its first day. A look with no data stays one of its own.
    """
    out = [*looks, entry]
    while len(out) > cap:
        best: int | None = None
        for k in range(len(out) - 1):
            a, b = out[k], out[k + 1]
            if a["step"] != b["step"] or None in (
                a["canary"],
                b["canary"],
                a["stable"],
                b["stable"],
            ):
                continue
            span = b["to"] - a["from"]
            if best is None or span < out[best + 1]["to"] - out[best]["from"]:
                best = k
        if best is None:
            out.pop(0)  # nothing merges: the oldest look goes
            continue
        a, b = out[best], out[best + 1]
        out[best : best + 2] = [
            {
                **b,
                "from": a["from"],
                "canary": [x + y for x, y in zip(a["canary"], b["canary"], strict=True)],
                "stable": [x + y for x, y in zip(a["stable"], b["stable"], strict=True)],
            }
        ]
    return out
