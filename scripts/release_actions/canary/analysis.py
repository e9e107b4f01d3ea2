"""One canary analysis over a window, as `release-actions canary analyze` runs it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from release_actions.canary.judge import Judge, Judgement, Verdict
from release_actions.canary.measure import brief, error_limit_text, measure, resolvable_cadence
from release_actions.canary.model import jsonable
from release_actions.core.policy import AnalysisPolicy
from release_actions.metrics.base import MetricsProvider, Track


@dataclass
class Analysis:
    """One canary analysis over a window (``release-actions canary analyze``)."""

    verdict: Verdict
    reason: str
    start: float
    end: float
    judgement: dict[str, Any] | None
    intervals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.PASS

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "start": self.start,
            "end": self.end,
            "judgement": self.judgement,
            "intervals": self.intervals,
        }


def analyze_window(
    provider: MetricsProvider,
    judge: Judge,
    analysis: AnalysisPolicy,
    end: float,
    *,
    slow_ms: float | None = None,
) -> Analysis:
    """Judge the last ``analysis_seconds`` before ``end``, interval by interval, as one step would.

    A fail anywhere fails; otherwise the last judgement decides. Measurement errors count
    as in a rollout: ``consecutive_error_limit`` in a row, or no judgement at all, is `error`.
    """
    a = analysis
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
            "canary": brief(canary),
            "stable": brief(stable),
        }
        t = t2
        if error is None and canary is not None and stable is not None:
            last = judge.observe(stable, canary)
            entry |= {"verdict": str(last.verdict), "reason": last.reason}
            if last.verdict is Verdict.ERROR:
                error = f"judge: {last.reason}"
        streak = streak + 1 if error else 0
        entry["error"] = error
        intervals.append(entry)
        if streak >= error_limit:
            return Analysis(
                Verdict.ERROR,
                f"{streak} measurement errors in a row ({error_limit_text(a, cadence)}); "
                f"last: {error}",
                start,
                end,
                None,
                intervals,
            )
        if last is not None and last.verdict is Verdict.FAIL:
            break
    if last is None:
        return Analysis(
            Verdict.ERROR,
            "no interval of the window could be measured",
            start,
            end,
            None,
            intervals,
        )
    judged = {
        "verdict": str(last.verdict),
        "check": last.check,
        "reason": last.reason,
        "evidence": jsonable(last.evidence),
    }
    return Analysis(last.verdict, last.reason, start, end, judged, intervals)
