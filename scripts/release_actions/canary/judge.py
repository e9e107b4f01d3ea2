"""The canary judge: compares canary and stable traffic each interval and says pass, fail or wait."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from typing import Any, Protocol, runtime_checkable

from release_actions.canary.model import jsonable
from release_actions.canary.stats import (
    RATIO_ONE,
    ProportionBelow,
    RatioEvidence,
    grid_index,
    grid_ratio,
    logsumexp,
    share_terms,
)
from release_actions.core.policy import AnalysisPolicy
from release_actions.errors import ReleaseActionsError
from release_actions.metrics.base import Track, TrafficSample


class Verdict(StrEnum):
    """Argo Rollouts' measurement phases, so the engine can treat both judges alike."""

    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


@dataclass(frozen=True)
class Judgement:
    """One interval's answer.

    ``reason`` is written for the job summary and carries the numbers; ``evidence`` carries
    them again as data (counts, rates, statistic, threshold, the providers' queries) for
    records and for tests; ``check`` names the check that decided.
    """

    verdict: Verdict
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    check: str = ""
    early: bool = False
    """On a pass: the evidence shows the canary is not worse, so the step may end before its
    pause. False on a pass that only found no harm on enough data: that one waits for the pause."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "evidence": jsonable(self.evidence),
            "check": self.check,
            "early": self.early,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Judgement:
        return cls(
            Verdict(data["verdict"]),
            str(data.get("reason") or ""),
            dict(data.get("evidence") or {}),
            str(data.get("check") or ""),
            bool(data.get("early")),
        )


@runtime_checkable
class Judge(Protocol):
    """What the canary engine needs from a judge.

    ``observe`` gets one interval's counts (not cumulative) and may keep state across
    intervals. ``fail`` means roll back now. ``pass`` means the step may be promoted when
    its pause ends, and at once if ``Judgement.early`` is set. ``inconclusive`` means not
    enough evidence either way: keep watching. ``error`` means the data cannot be judged.
    ``reset_step`` is called when the rollout moves to a new weight.
    """

    name: str

    def observe(self, stable: TrafficSample, canary: TrafficSample) -> Judgement: ...

    def reset_step(self) -> None: ...


@runtime_checkable
class ResumableJudge(Judge, Protocol):
    """A judge whose evidence outlives the process: the scheduled gate looks once per run.

    ``snapshot`` is everything ``observe`` has accumulated, as JSON; ``restore`` on a new
    judge of the same kind and policy makes it the same judge, so a look in the next run
    decides exactly as a look in the same run would have, and the sequential judge's
    guarantee holds across runs (one e-process, however many processes fed it).
    """

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, data: Mapping[str, Any]) -> None: ...


def sample_to_dict(sample: TrafficSample) -> dict[str, Any]:
    return {
        "track": None if sample.track is None else sample.track.value,
        "start": sample.start,
        "end": sample.end,
        "requests": sample.requests,
        "errors": sample.errors,
        "p99_ms": sample.p99_ms,
        "slow": sample.slow,
        "queries": dict(sample.queries),
    }


def sample_from_dict(data: Mapping[str, Any]) -> TrafficSample:
    track = data.get("track")
    p99, slow = data.get("p99_ms"), data.get("slow")
    return TrafficSample(
        track=None if track is None else Track(track),
        start=float(data["start"]),
        end=float(data["end"]),
        requests=float(data["requests"]),
        errors=float(data["errors"]),
        p99_ms=None if p99 is None else float(p99),
        slow=None if slow is None else float(slow),
        queries={str(k): str(v) for k, v in (data.get("queries") or {}).items()},
    )


def _restoring(judge: str, data: Mapping[str, Any]) -> None:
    if data.get("judge") != judge:
        raise ReleaseActionsError(
            f"The saved evidence is the `{data.get('judge')}` judge's, not the `{judge}` "
            "judge's: a rollout keeps the judge it started with.",
            hint="Set `canary.analysis.judge` back to the one the rollout started with, or "
            "start the rollout afresh.",
        )


# The sequential judge's two margins are policy fields (canary.analysis.pass_error_ratio
# and practical_error_ratio); why their defaults are what they are:
#
# pass_error_ratio = 1.5: A step may pass early once the error-rate ratio is shown below this.
#
# 0.5 points, the source document's tolerance (§4.3), is a ratio of 1.5 at the 1 % error
# rate its success-rate condition allows (§4.4, 99 %). A ratio, unlike a fixed difference,
# stays meaningful at a 0.2 % base rate, where 0.5 points would wave through a 3.5x regression.
#
# practical_error_ratio = 1.1: A regression is not rolled back unless its estimated ratio is at least this.
#
# At thousands of errors a minute the test can prove a 3 % difference; that is more likely
# cold caches on fresh pods than a defect. 10 % is the tolerance the source document gives
# latency (§4.3). Requiring it of the estimate, not of the null, costs no power against real
# regressions: when the test first rejects on little data the estimate is far above 1.1.

SLOW_FRACTION = 0.01
"""p99 below the latency limit means fewer than 1 % of requests are slower than it."""


def _fmt_count(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _fmt_pct(value: float | Fraction | None) -> str:
    return "n/a" if value is None else f"{float(value) * 100:.2f} %"


def _fmt_ratio(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return "∞" if math.isinf(value) else f"{value:.2f}"


def _fmt_e(log_e: float) -> str:
    if log_e > math.log(1e6):
        return f"{math.exp(min(log_e, 700.0)):.1e}"
    return f"{math.exp(log_e):.3g}"


def _finite(value: float) -> float | None:
    """Evidence is saved as JSON, which has no infinity: unbounded is None."""
    return value if math.isfinite(value) else None


def _float(value: Fraction | float) -> float:
    """An exact ratio as a float; one beyond a float's range (a stable p99 of 1e-309 ms) is
    infinite, not an OverflowError that would crash the judge."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _e_value(log_e: float) -> float:
    return math.exp(min(log_e, math.log(1e300)))


def _exact(value: float) -> Fraction:
    # The decimal a person wrote: 0.5 points must compare equal to 0.5 points, not to
    # 0.5000000000000001 after a float division.
    return Fraction(repr(float(value)))


def _invalid(stable: TrafficSample, canary: TrafficSample) -> str | None:
    """Why these samples cannot be judged, or None. Bad data is an error, never health."""
    if stable.track is Track.CANARY or canary.track is Track.STABLE:
        return "the stable and canary samples are swapped"
    for label, s in (("stable", stable), ("canary", canary)):
        values = {"start": s.start, "end": s.end, "requests": s.requests, "errors": s.errors}
        if s.p99_ms is not None:
            values["p99_ms"] = s.p99_ms
        if s.slow is not None:
            values["slow"] = s.slow
        for key, v in values.items():
            if not math.isfinite(v):
                return f"the {label} sample's `{key}` is {v!r}"
        for key in ("requests", "errors", "slow", "p99_ms"):
            v = values.get(key, 0.0)
            if v < 0:
                return f"the {label} sample's `{key}` is negative ({v!r})"
        if s.errors > s.requests:
            return f"the {label} sample has more errors ({s.errors}) than requests ({s.requests})"
        if s.slow is not None and s.slow > s.requests:
            return (
                f"the {label} sample has more slow requests ({s.slow}) than requests ({s.requests})"
            )
        if s.end <= s.start:
            return f"the {label} sample's interval is empty (start {s.start}, end {s.end})"
    return None


def _queries(stable: TrafficSample, canary: TrafficSample) -> dict[str, dict[str, str]]:
    return {"stable": dict(stable.queries), "canary": dict(canary.queries)}


def _data_judgement(stable: TrafficSample, canary: TrafficSample) -> Judgement | None:
    """The answer for samples that carry no comparison: invalid, or no canary traffic."""
    bad = _invalid(stable, canary)
    evidence: dict[str, Any] = {
        "start": canary.start,
        "end": canary.end,
        "queries": _queries(stable, canary),
    }
    if bad is not None:
        return Judgement(
            Verdict.ERROR,
            f"Metrics for {canary.start:.0f}-{canary.end:.0f} are unusable: {bad}. "
            "A metric that cannot be read is not a healthy one.",
            evidence,
            "data",
        )
    if canary.requests == 0:
        return Judgement(
            Verdict.INCONCLUSIVE,
            f"The canary served no requests in {canary.end - canary.start:.0f} s: no data, "
            "which is not health. Is traffic routed to it?",
            {**evidence, "canary_requests": 0.0},
            "data",
        )
    if stable.requests == 0:
        return Judgement(
            Verdict.INCONCLUSIVE,
            f"The stable track served no requests in {stable.end - stable.start:.0f} s: "
            "there is nothing to compare the canary with.",
            {**evidence, "stable_requests": 0.0},
            "data",
        )
    return None


class ThresholdJudge:
    """The source document's rule (§4.3), plus the Argo Rollouts analysis of §4.4.

    §4.3, over an analysis window of ``analysis_seconds`` made of the current step's
    intervals: fewer than ``min_requests`` canary requests is inconclusive; canary minus
    stable error rate above ``max_error_rate_diff_points`` fails; canary p99 more than
    ``max_p99_diff_percent`` above stable p99 fails; anything else passes. Choices where
    the document is silent:

    - A window shorter than ``analysis_seconds`` answers inconclusive ("collecting").
      Intervals without canary traffic do not count towards it: no data is not time watched.
    - A window that ends with too few requests keeps growing instead of restarting, so a
      quiet service eventually gets an answer; the document only says the result is held.
    - After a window's verdict the next interval starts a new window. While it collects,
      the last pass stands (Argo keeps a successful measurement), so a step whose pause
      outlasts the window is analysed again and again, as the engine does with the rule.
    - The window's p99 is the mean of its intervals' p99, as the document's Datadog
      ``avg:`` query returns; quantiles of intervals cannot be merged exactly.
    - A p99 missing on both tracks means the provider has no latency metric: the latency
      comparison is skipped and the evidence says so; missing on one track only is held.
    - Comparisons are exact on the decimal values (0.5 points is not a failure).

    §4.4, each interval, on the canary: success rate >= ``min_success_rate`` and p99 <
    ``max_p99_ms``; each metric fails once more than ``failure_limit`` of its measurements
    failed in the step, as Argo's ``failureLimit``. The document's template queries the
    whole service; the canary's own traffic is what a canary analysis is about.
    """

    name = "threshold"

    def __init__(self, policy: AnalysisPolicy) -> None:
        self.policy = policy
        self._window: list[tuple[TrafficSample, TrafficSample]] = []
        self._failures: dict[str, int] = {}
        self._passed: Judgement | None = None
        self.reset_step()

    def reset_step(self) -> None:
        # Argo starts a new AnalysisRun at each analysis step, with fresh failure counts.
        self._window = []
        self._failures = {"success-rate": 0, "latency-p99": 0}
        self._passed = None

    def snapshot(self) -> dict[str, Any]:
        return {
            "judge": self.name,
            "window": [[sample_to_dict(s), sample_to_dict(c)] for s, c in self._window],
            "failures": dict(self._failures),
            "passed": None if self._passed is None else self._passed.to_dict(),
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        _restoring(self.name, data)
        self._window = [(sample_from_dict(s), sample_from_dict(c)) for s, c in data["window"]]
        self._failures = {str(k): int(v) for k, v in (data.get("failures") or {}).items()}
        passed = data.get("passed")
        self._passed = None if passed is None else Judgement.from_dict(passed)

    def observe(self, stable: TrafficSample, canary: TrafficSample) -> Judgement:
        held = _data_judgement(stable, canary)
        if held is not None:
            return held
        argo = self._argo(stable, canary)
        self._window.append((stable, canary))
        if argo is not None:
            return argo
        covered = sum(c.end - c.start for _, c in self._window)
        if covered < self.policy.analysis_seconds:
            if self._passed is not None:
                return Judgement(
                    Verdict.PASS,
                    f"{self._passed.reason} Collecting the next window: {covered:.0f} of "
                    f"{self.policy.analysis_seconds} s.",
                    {**self._passed.evidence, "next_window_seconds": covered},
                    self._passed.check,
                )
            return Judgement(
                Verdict.INCONCLUSIVE,
                f"Collecting: {covered:.0f} of {self.policy.analysis_seconds} s of the "
                "analysis window.",
                {
                    "window_seconds": covered,
                    "analysis_seconds": self.policy.analysis_seconds,
                    "argo_failures": dict(self._failures),
                    "queries": _queries(stable, canary),
                },
                "window",
            )
        result = self._rule(stable, canary)
        if result.verdict is not Verdict.INCONCLUSIVE:
            self._window = []
        self._passed = result if result.verdict is Verdict.PASS else None
        return result

    def _argo(self, stable: TrafficSample, canary: TrafficSample) -> Judgement | None:
        p = self.policy
        success = 1 - _exact(canary.errors) / _exact(canary.requests)
        measured: dict[str, Any] = {"success_rate": float(success), "p99_ms": canary.p99_ms}
        if success < _exact(p.min_success_rate):
            self._failures["success-rate"] += 1
        if canary.p99_ms is not None and _exact(canary.p99_ms) >= _exact(p.max_p99_ms):
            self._failures["latency-p99"] += 1
        for check, count in self._failures.items():
            if count > p.failure_limit:
                what = (
                    f"success rate >= {p.min_success_rate:.2%}"
                    if check == "success-rate"
                    else f"p99 < {p.max_p99_ms:g} ms"
                )
                return Judgement(
                    Verdict.FAIL,
                    f"The canary failed the Argo condition `{what}` in {count} intervals of "
                    f"this step, more than the failure limit of {p.failure_limit}; last "
                    f"interval: success {float(success):.2%}, p99 "
                    f"{'n/a' if canary.p99_ms is None else f'{canary.p99_ms:.0f} ms'}.",
                    {
                        "failures": count,
                        "failure_limit": p.failure_limit,
                        "threshold": p.min_success_rate
                        if check == "success-rate"
                        else p.max_p99_ms,
                        "statistic": measured[
                            "success_rate" if check == "success-rate" else "p99_ms"
                        ],
                        "canary_requests": canary.requests,
                        "canary_errors": canary.errors,
                        "queries": _queries(stable, canary),
                    },
                    check,
                )
        return None

    def _rule(self, stable: TrafficSample, canary: TrafficSample) -> Judgement:
        p = self.policy
        cr = sum(_exact(c.requests) for _, c in self._window)
        ce = sum(_exact(c.errors) for _, c in self._window)
        sr = sum(_exact(s.requests) for s, _ in self._window)
        se = sum(_exact(s.errors) for s, _ in self._window)
        covered = sum(c.end - c.start for _, c in self._window)
        evidence: dict[str, Any] = {
            "window_seconds": covered,
            "canary_requests": float(cr),
            "canary_errors": float(ce),
            "stable_requests": float(sr),
            "stable_errors": float(se),
            "argo_failures": dict(self._failures),
            "queries": _queries(stable, canary),
        }
        if cr < p.min_requests:
            return Judgement(
                Verdict.INCONCLUSIVE,
                f"Insufficient traffic: {_fmt_count(float(cr))} canary requests in "
                f"{covered:.0f} s, fewer than {p.min_requests}; the window keeps growing.",
                {**evidence, "statistic": float(cr), "threshold": p.min_requests},
                "min-requests",
            )
        c_rate, s_rate = ce / cr, se / sr
        diff_points = (c_rate - s_rate) * 100
        evidence |= {
            "canary_error_rate": float(c_rate),
            "stable_error_rate": float(s_rate),
            "error_rate_diff_points": float(diff_points),
        }
        rates = (
            f"canary {_fmt_pct(c_rate)} ({_fmt_count(float(ce))}/{_fmt_count(float(cr))}) vs "
            f"stable {_fmt_pct(s_rate)} ({_fmt_count(float(se))}/{_fmt_count(float(sr))})"
        )
        if diff_points > _exact(p.max_error_rate_diff_points):
            return Judgement(
                Verdict.FAIL,
                f"Error rate too high over {covered:.0f} s: {rates}, "
                f"{float(diff_points):+.2f} points, above the limit of "
                f"{p.max_error_rate_diff_points:g}.",
                {
                    **evidence,
                    "statistic": float(diff_points),
                    "threshold": p.max_error_rate_diff_points,
                },
                "error-rate",
            )
        c_p99 = [_exact(c.p99_ms) for _, c in self._window if c.p99_ms is not None]
        s_p99 = [_exact(s.p99_ms) for s, _ in self._window if s.p99_ms is not None]
        if bool(c_p99) != bool(s_p99):
            missing = "stable" if c_p99 else "canary"
            return Judgement(
                Verdict.INCONCLUSIVE,
                f"The {missing} track reported no p99 in the window, so latency cannot be "
                "compared.",
                evidence,
                "latency",
            )
        latency = ""
        if c_p99:
            c_mean, s_mean = sum(c_p99) / len(c_p99), sum(s_p99) / len(s_p99)
            if s_mean > 0:
                diff_pct: Fraction | float = (c_mean - s_mean) / s_mean * 100
            else:
                diff_pct = math.inf if c_mean > 0 else Fraction(0)
            evidence |= {
                "canary_p99_ms": float(c_mean),
                "stable_p99_ms": float(s_mean),
                "p99_diff_percent": _finite(_float(diff_pct)),
            }
            latency = (
                f"p99 canary {float(c_mean):.0f} ms vs stable {float(s_mean):.0f} ms "
                f"({_float(diff_pct):+.1f} %)"
            )
            if diff_pct > _exact(p.max_p99_diff_percent):
                return Judgement(
                    Verdict.FAIL,
                    f"Latency too high over {covered:.0f} s: {latency}, above the limit of "
                    f"{p.max_p99_diff_percent:g} %.",
                    {
                        **evidence,
                        "statistic": _finite(_float(diff_pct)),
                        "threshold": p.max_p99_diff_percent,
                    },
                    "latency",
                )
        else:
            evidence["p99"] = "not measured by the provider"
            latency = "p99 not measured"
        return Judgement(
            Verdict.PASS,
            f"Canary analysis passed over {covered:.0f} s: error rate {rates} "
            f"({float(diff_points):+.2f} points, limit {p.max_error_rate_diff_points:g}); "
            f"{latency}.",
            {
                **evidence,
                "statistic": float(diff_points),
                "threshold": p.max_error_rate_diff_points,
            },
            "error-rate",
        )


class SequentialJudge:
    """Anytime-valid sequential test of canary vs stable: look every interval, pay nothing.

    Errors (Lindon, Sanden and Shirikian, KDD 2022; Lindon and Malek, NeurIPS 2022):
    given an interval's total errors, the canary's share is binomial with a probability
    set by that interval's traffic split and the rate ratio rho. Per-interval likelihood
    ratios multiply into a test martingale whatever the splits, and a half-normal mixture
    over log(rho) > 0 makes an e-process for H0 "canary not worse" (rho <= 1). It fails
    when the e-value reaches 1/alpha (``false_rollback_rate``): by Ville's inequality a
    healthy canary is rolled back with probability <= alpha however often it is looked at
    and however the weights change. The evidence accumulates over the whole rollout;
    ``reset_step`` does not clear it, since the same code runs at every weight.

    Latency: when the provider reports ``slow`` counts (requests over ``max_p99_ms``, from
    histogram buckets), the same test runs on them and alpha is shared by averaging the
    two e-processes, 0.9 for errors and 0.1 for latency (a weighted average of e-processes
    is one). Without slow counts errors get all of alpha and latency falls back to a rule
    outside the guarantee: canary p99 above ``max_p99_ms`` and more than
    ``max_p99_diff_percent`` above stable, in consecutive intervals of at least
    ``min_requests`` requests, for longer than ``failure_limit`` measurements at
    ``interval_seconds`` (more than 3 minutes by default, at any cadence).

    A failing check must also estimate a ratio of at least ``practical_ratio``, so that a
    proven but negligible difference is not a rollback. A step passes early when, on this
    step's traffic alone, an anytime-valid bound puts the error ratio below ``pass_ratio``
    and the canary's slow fraction below 1 % (its p99 under ``max_p99_ms``), each at the
    same alpha. Nothing is decided before ``min_requests`` canary requests.
    """

    name = "sequential"

    def __init__(
        self,
        policy: AnalysisPolicy,
        *,
        pass_ratio: float | None = None,
        practical_ratio: float | None = None,
    ) -> None:
        pass_ratio = policy.pass_error_ratio if pass_ratio is None else pass_ratio
        practical_ratio = (
            policy.practical_error_ratio if practical_ratio is None else practical_ratio
        )
        if not pass_ratio > 1:
            raise ReleaseActionsError(f"`pass_ratio` must be above 1, got {pass_ratio!r}.")
        if not practical_ratio >= 1:
            raise ReleaseActionsError(
                f"`practical_ratio` must be at least 1, got {practical_ratio!r}."
            )
        self.policy = policy
        self.alpha = policy.false_rollback_rate
        # Round the pass margin down to the grid: proving a smaller ratio is the safe side.
        self._pass_index = grid_index(pass_ratio, round_down=True)
        self.pass_ratio = grid_ratio(self._pass_index)
        self.practical_ratio = practical_ratio
        self._errors = RatioEvidence()
        self._slow = RatioEvidence()
        self._totals = {
            "canary_requests": 0.0,
            "canary_errors": 0.0,
            "stable_requests": 0.0,
            "stable_errors": 0.0,
        }
        self._slow_counts = (0.0, 0.0)
        self._latency_mode: str | None = None
        self._p99_streak = 0
        self._p99_streak_s = 0.0  # how long the p99 has been over, in seconds of data
        self._p99_last = (0.0, 0.0)  # the (stable, canary) p99 of the last interval counted
        self._p99_seen = False
        self._intervals = 0
        self._step_errors = RatioEvidence()
        self._step_slow = ProportionBelow(SLOW_FRACTION)
        self._step_requests = 0.0
        self._step_intervals = 0

    def reset_step(self) -> None:
        # Only the pass evidence is per step: passing at 5 % says little about 50 %, where
        # load-dependent faults show. The evidence of harm carries over.
        self._step_errors = RatioEvidence()
        self._step_slow = ProportionBelow(SLOW_FRACTION)
        self._step_requests = 0.0
        self._step_intervals = 0

    def snapshot(self) -> dict[str, Any]:
        # The counts, the mixtures' sufficient statistics and the latency streak: all that
        # `observe` reads. The alpha split (`latency_mode`) stays as it was fixed at the
        # first look, before any outcome, so a restored judge keeps it.
        return {
            "judge": self.name,
            "errors": self._errors.to_dict(),
            "slow": self._slow.to_dict(),
            "totals": dict(self._totals),
            "slow_counts": list(self._slow_counts),
            "latency_mode": self._latency_mode,
            "p99_streak": self._p99_streak,
            "p99_streak_s": self._p99_streak_s,
            "p99_last": list(self._p99_last),
            "p99_seen": self._p99_seen,
            "intervals": self._intervals,
            "step_errors": self._step_errors.to_dict(),
            "step_slow": self._step_slow.to_dict(),
            "step_requests": self._step_requests,
            "step_intervals": self._step_intervals,
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        _restoring(self.name, data)
        self._errors = RatioEvidence.from_dict(data["errors"])
        self._slow = RatioEvidence.from_dict(data["slow"])
        self._totals = {str(k): float(v) for k, v in data["totals"].items()}
        slow_counts = data.get("slow_counts") or (0.0, 0.0)
        self._slow_counts = (float(slow_counts[0]), float(slow_counts[1]))
        mode = data.get("latency_mode")
        self._latency_mode = None if mode is None else str(mode)
        self._p99_streak = int(data.get("p99_streak") or 0)
        self._p99_streak_s = float(data.get("p99_streak_s") or 0.0)
        last = data.get("p99_last") or (0.0, 0.0)
        self._p99_last = (float(last[0]), float(last[1]))
        self._p99_seen = bool(data.get("p99_seen"))
        self._intervals = int(data.get("intervals") or 0)
        self._step_errors = RatioEvidence.from_dict(data["step_errors"])
        self._step_slow = ProportionBelow.from_dict(data["step_slow"])
        self._step_requests = float(data.get("step_requests") or 0.0)
        self._step_intervals = int(data.get("step_intervals") or 0)

    @property
    def _weights(self) -> tuple[float, float]:
        # Errors get the larger share: a latency regression large enough to matter crosses
        # the slow-request threshold by a wide margin and needs little evidence (a p99 past
        # the limit is 5x its slow fraction or more), while a 1.5x-2x error regression is
        # where every bit of alpha buys detection time. In tests/benchmarks/canary_detection.py
        # 0.5/0.5 cost 10-30 s at 200 rps against 0.8/0.2; 0.9/0.1 gains another 3 points of
        # rollouts caught by 80 s at 1 % -> 2 % errors and costs the latency test one 10 s look.
        return (0.9, 0.1) if self._latency_mode == "slow" else (1.0, 0.0)

    def observe(self, stable: TrafficSample, canary: TrafficSample) -> Judgement:
        held = _data_judgement(stable, canary)
        if held is not None:
            return held
        p = self.policy
        if self._latency_mode is None:
            # Fixed before any outcome is seen, so the alpha split stays valid.
            both = stable.slow is not None and canary.slow is not None
            self._latency_mode = "slow" if both else "p99"
        self._update(stable, canary)
        t = self._totals
        w_err, w_lat = self._weights
        log_err = self._errors.log_e_worse(RATIO_ONE)
        log_lat = self._slow.log_e_worse(RATIO_ONE) if w_lat > 0 else -math.inf
        log_all = logsumexp(
            [math.log(w_err) + log_err] + ([math.log(w_lat) + log_lat] if w_lat > 0 else [])
        )
        err_bounds = self._errors.bounds(self.alpha * w_err)
        evidence: dict[str, Any] = {
            "intervals": self._intervals,
            **t,
            "canary_error_rate": t["canary_errors"] / t["canary_requests"],
            "stable_error_rate": t["stable_errors"] / t["stable_requests"],
            "error_ratio": self._estimate(self._errors),
            "error_ratio_lower": err_bounds.lower,
            "error_ratio_upper": _finite(err_bounds.upper),
            "bounds_alpha": err_bounds.alpha,
            "statistic": _e_value(log_all),
            "threshold": 1 / self.alpha,
            "error_e_value": _e_value(log_err),
            "alpha": self.alpha,
            "latency_mode": self._latency_mode,
            "step_canary_requests": self._step_requests,
            "queries": _queries(stable, canary),
        }
        if self._latency_mode == "slow":
            evidence |= {
                "canary_slow": self._slow_counts[0],
                "stable_slow": self._slow_counts[1],
                "slow_ratio": self._estimate(self._slow),
                "latency_e_value": _e_value(log_lat),
            }
        else:
            evidence["p99_streak"] = self._p99_streak
            evidence["p99_streak_seconds"] = self._p99_streak_s
        rates = (
            f"canary {_fmt_pct(evidence['canary_error_rate'])} "
            f"({_fmt_count(t['canary_errors'])}/{_fmt_count(t['canary_requests'])}) vs stable "
            f"{_fmt_pct(evidence['stable_error_rate'])} "
            f"({_fmt_count(t['stable_errors'])}/{_fmt_count(t['stable_requests'])})"
        )
        interval = (
            f"ratio {_fmt_ratio(evidence['error_ratio'])}, anytime-valid "
            f"{1 - 2 * err_bounds.alpha:.0%} interval {_fmt_ratio(err_bounds.lower)}-"
            f"{_fmt_ratio(err_bounds.upper)}"
        )
        if t["canary_requests"] >= p.min_requests:
            failed = self._fail_check(log_all, log_err, log_lat, rates, interval, evidence)
            if failed is not None:
                return failed
        if self._latency_mode == "p99" and self._p99_streak_s > self._p99_limit_s:
            return Judgement(
                Verdict.FAIL,
                f"Canary p99 {self._p99_last[1]:.0f} ms vs stable {self._p99_last[0]:.0f} ms: at or "
                f"above {p.max_p99_ms:g} ms and more than {p.max_p99_diff_percent:g} % over "
                f"stable for {self._p99_streak_s:.0f} s ({self._p99_streak} intervals) in a row, "
                f"more than failure_limit {p.failure_limit} x {p.interval_seconds} s.",
                {
                    **evidence,
                    "statistic": self._p99_streak_s,
                    "threshold": self._p99_limit_s,
                    "canary_p99_ms": self._p99_last[1],
                    "stable_p99_ms": self._p99_last[0],
                },
                "latency-p99",
            )
        if self._step_requests < p.min_requests:
            return Judgement(
                Verdict.INCONCLUSIVE,
                f"Collecting: {_fmt_count(self._step_requests)} of {p.min_requests} canary "
                "requests at this weight; nothing is decided on less.",
                {**evidence, "statistic": self._step_requests, "threshold": p.min_requests},
                "min-requests",
            )
        shown = self._pass_check(evidence)
        if shown is not None:
            return shown
        if self._latency_mode == "p99" and self._p99_streak > 0:
            return Judgement(
                Verdict.INCONCLUSIVE,
                f"Canary p99 {self._p99_last[1]:.0f} ms is over {p.max_p99_ms:g} ms and more than "
                f"{p.max_p99_diff_percent:g} % over stable ({self._p99_last[0]:.0f} ms) for "
                f"{self._p99_streak_s:.0f} s in a row; rollback past {self._p99_limit_s:.0f} s.",
                {**evidence, "statistic": self._p99_streak_s, "threshold": self._p99_limit_s},
                "latency-p99",
            )
        return Judgement(
            Verdict.PASS,
            f"No regression shown: {rates}; {interval}. E-value {_fmt_e(log_all)} of "
            f"{1 / self.alpha:g} needed to roll back. Not yet shown within "
            f"{self.pass_ratio:.2f}x, so the step runs its full pause.",
            evidence,
            "error-rate",
        )

    def _fail_check(
        self,
        log_all: float,
        log_err: float,
        log_lat: float,
        rates: str,
        interval: str,
        evidence: dict[str, Any],
    ) -> Judgement | None:
        if log_all < math.log(1 / self.alpha):
            return None
        w_err, w_lat = self._weights
        errors_lead = w_lat == 0 or math.log(w_err) + log_err >= math.log(w_lat) + log_lat
        estimate = self._estimate(self._errors if errors_lead else self._slow)
        if estimate is None or estimate < self.practical_ratio:
            evidence["below_practical_ratio"] = self.practical_ratio
            return None
        if errors_lead:
            reason = (
                f"The canary's error rate is higher: {rates}; {interval}. E-value "
                f"{_fmt_e(log_all)} reached {1 / self.alpha:g} (1/false_rollback_rate)."
            )
        else:
            t = self._totals
            cs, ss = self._slow_counts
            reason = (
                f"The canary has more requests slower than {self.policy.max_p99_ms:g} ms: "
                f"{_fmt_count(cs)} of {_fmt_count(t['canary_requests'])} vs stable "
                f"{_fmt_count(ss)} of {_fmt_count(t['stable_requests'])}, ratio "
                f"{_fmt_ratio(estimate)}. E-value {_fmt_e(log_all)} reached "
                f"{1 / self.alpha:g} (1/false_rollback_rate)."
            )
        return Judgement(Verdict.FAIL, reason, evidence, "error-rate" if errors_lead else "latency")

    def _update(self, stable: TrafficSample, canary: TrafficSample) -> None:
        self._intervals += 1
        self._step_intervals += 1
        t = self._totals
        t["canary_requests"] += canary.requests
        t["canary_errors"] += canary.errors
        t["stable_requests"] += stable.requests
        t["stable_errors"] += stable.errors
        self._step_requests += canary.requests
        terms = share_terms(canary.requests / (canary.requests + stable.requests))
        self._errors.update(canary.errors, stable.errors, terms)
        self._step_errors.update(canary.errors, stable.errors, terms)
        if self._latency_mode == "slow":
            if canary.slow is not None and stable.slow is not None:
                self._slow.update(canary.slow, stable.slow, terms)
                self._step_slow.update(canary.slow, canary.requests)
                self._slow_counts = (
                    self._slow_counts[0] + canary.slow,
                    self._slow_counts[1] + stable.slow,
                )
        elif (
            canary.p99_ms is not None
            and stable.p99_ms is not None
            and canary.requests >= self.policy.min_requests
        ):
            limit = stable.p99_ms * (1 + self.policy.max_p99_diff_percent / 100)
            slow = canary.p99_ms > limit and canary.p99_ms >= self.policy.max_p99_ms
            self._p99_streak = self._p99_streak + 1 if slow else 0
            self._p99_streak_s = self._p99_streak_s + (canary.end - canary.start) if slow else 0.0
            self._p99_last = (stable.p99_ms, canary.p99_ms)
            self._p99_seen = True

    @property
    def _p99_limit_s(self) -> float:
        # failureLimit counts §4.4's 1m measurements: "more than 3 failed" is more than
        # 3 minutes over, whatever the cadence. Counted in intervals, a 10 s cadence would
        # roll back on 40 s of a noisy p99 from a sixth of the requests.
        return float(self.policy.failure_limit * self.policy.interval_seconds)

    @staticmethod
    def _estimate(evidence: RatioEvidence) -> float | None:
        return None if evidence.events <= 0 else evidence.estimate()

    def _pass_check(self, evidence: dict[str, Any]) -> Judgement | None:
        p = self.policy
        log_need = math.log(1 / self.alpha)
        log_pass = self._step_errors.log_e_better(self._pass_index)
        evidence["pass_e_value"] = _e_value(log_pass)
        evidence["pass_ratio"] = self.pass_ratio
        if log_pass < log_need:
            return None
        latency = "latency not measured"
        if self._latency_mode == "slow":
            log_slow = self._step_slow.log_e()
            evidence["slow_pass_e_value"] = _e_value(log_slow)
            if log_slow < log_need:
                return None
            latency = f"fewer than 1 % of its requests slower than {p.max_p99_ms:g} ms"
        elif self._p99_streak > 0:
            return None
        elif self._p99_seen:
            latency = (
                f"p99 not over {p.max_p99_ms:g} ms and {p.max_p99_diff_percent:g} % above stable"
            )
        return Judgement(
            Verdict.PASS,
            f"Shown not worse at this weight: over {self._step_intervals} intervals "
            f"and {_fmt_count(self._step_requests)} canary requests the error-rate ratio is "
            f"shown below {self.pass_ratio:.2f} (e-value {_fmt_e(log_pass)} >= "
            f"{1 / self.alpha:g}), {latency}.",
            {**evidence, "statistic": _e_value(log_pass), "threshold": 1 / self.alpha},
            "error-rate",
            early=True,
        )


JUDGES: dict[str, type[ThresholdJudge] | type[SequentialJudge]] = {
    "sequential": SequentialJudge,
    "threshold": ThresholdJudge,
}


def make_judge(policy: AnalysisPolicy, mode: str | None = None) -> Judge:
    """The judge ``mode`` names, else the policy's; an unknown name is an error, not a guess."""
    name = policy.judge if mode is None else mode
    try:
        cls = JUDGES[name]
    except KeyError:
        raise ReleaseActionsError(
            f"Unknown judge `{name}`: use one of {', '.join(f'`{n}`' for n in JUDGES)}.",
            hint="Set `canary.analysis.judge` in the release policy, or pass a valid `--judge`.",
        ) from None
    return cls(policy)
