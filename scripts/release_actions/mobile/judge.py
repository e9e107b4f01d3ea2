"""The mobile judge: new version against the previous one, hour by hour, and the source's rule."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from release_actions.canary.stats import (
    _DISTANCES,
    _LOG_PRIOR,
    GRID_STEP,
    RATIO_ONE,
    RatioEvidence,
    logsumexp,
    share_terms,
)
from release_actions.errors import ReleaseActionsError
from release_actions.mobile.policy import MobilePolicy


class Verdict(StrEnum):
    OK = "ok"  # nothing against advancing once the stage's time has passed
    HOLD = "hold"  # do not advance; not a reason to halt either
    HALT = "halt"


@dataclass(frozen=True)
class HourCounts:
    """One hour of both versions' vitals: users (user-days) and the users who crashed or hit an ANR."""

    start: float
    new_users: int
    new_crashed: int
    new_anr: int | None
    prev_users: int
    prev_crashed: int
    prev_anr: int | None
    missing: tuple[str, ...] = ()
    """The sides (``new``, ``prev``) the source never reported for the hour: counted as no
    users, which is no evidence either way."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "start": self.start,
            "new": [self.new_users, self.new_crashed, self.new_anr],
            "prev": [self.prev_users, self.prev_crashed, self.prev_anr],
        }
        if self.missing:
            out["missing"] = list(self.missing)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HourCounts:
        n, p = data["new"], data["prev"]
        return cls(
            float(data["start"]),
            int(n[0]),
            int(n[1]),
            n[2],
            int(p[0]),
            int(p[1]),
            p[2],
            tuple(data.get("missing") or ()),
        )


@dataclass(frozen=True)
class ReviewTally:
    """Reviews since the rollout started, per version: count, stars, critical ones."""

    new_count: int = 0
    new_stars: int = 0
    new_critical: int = 0
    prev_count: int = 0
    prev_stars: int = 0
    examples: tuple[str, ...] = ()

    @property
    def new_rating(self) -> float | None:
        return self.new_stars / self.new_count if self.new_count else None

    @property
    def prev_rating(self) -> float | None:
        return self.prev_stars / self.prev_count if self.prev_count else None


@dataclass
class Check:
    """One criterion's state at a look: passed, failed, waiting (no evidence yet) or not checked."""

    name: str
    status: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail}


@dataclass
class Judgement:
    verdict: Verdict
    reason: str
    check: str = ""
    checks: list[Check] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)


class MobileJudge(Protocol):
    name: str

    def observe(self, hour: HourCounts) -> None: ...

    def judge(self, stage_hours: Sequence[HourCounts], reviews: ReviewTally) -> Judgement: ...


class ProportionAbove:
    """Sequential evidence that a rate is above ``limit``: H0 q <= limit, mixing over q = limit e^d.

    For any per-user probability q <= limit, each user's likelihood-ratio factor against a
    larger q' has mean <= 1, so the product is a test supermartingale even while q drifts
    between hours and stages; the mixture (the canary's half-normal prior) is an e-process.
    Alternatives at or past a rate of 1 are dropped: a sub-probability mixture stays valid.
    """

    def __init__(self, limit: float) -> None:
        if not 0 < limit < 1:
            raise ValueError(f"limit must be in (0, 1), got {limit!r}")
        self.limit = limit
        self.events = 0.0
        self.trials = 0.0
        kept = [
            (w, limit * math.exp(m * GRID_STEP))
            for w, m in zip(_LOG_PRIOR, _DISTANCES, strict=True)
            if limit * math.exp(m * GRID_STEP) < 1
        ]
        self._w = [w for w, _ in kept]
        self._lq = [math.log(q / limit) for _, q in kept]
        self._lnq = [math.log1p(-q) - math.log1p(-limit) for _, q in kept]

    def update(self, events: float, trials: float) -> None:
        self.events += events
        self.trials += trials

    def log_e(self) -> float:
        s, f = self.events, self.trials - self.events
        return logsumexp(
            [w + s * a + f * b for w, a, b in zip(self._w, self._lq, self._lnq, strict=True)]
        )


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f} %"


def _e(log_e: float) -> float:
    return math.exp(min(log_e, math.log(1e300)))


def _totals(hours: Sequence[HourCounts]) -> dict[str, Any]:
    # An hour nobody was seen in (a gap the source never filled) says nothing about ANRs.
    seen = [h for h in hours if h.new_users or h.prev_users]
    anr_known = bool(seen) and all(h.new_anr is not None and h.prev_anr is not None for h in seen)
    out: dict[str, Any] = {
        "new_users": sum(h.new_users for h in hours),
        "new_crashed": sum(h.new_crashed for h in hours),
        "prev_users": sum(h.prev_users for h in hours),
        "prev_crashed": sum(h.prev_crashed for h in hours),
        "new_anr": sum(h.new_anr or 0 for h in hours) if anr_known else None,
        "prev_anr": sum(h.prev_anr or 0 for h in hours) if anr_known else None,
    }
    for side in ("new", "prev"):
        users = out[f"{side}_users"]
        out[f"{side}_crash_free"] = None if not users else 1 - out[f"{side}_crashed"] / users
        anr = out[f"{side}_anr"]
        out[f"{side}_anr_rate"] = None if not users or anr is None else anr / users
    return out


def _review_checks(policy: MobilePolicy, reviews: ReviewTally, alpha: float) -> list[Check]:
    """The source's review conditions: a rating drop of more than 0.5 stars, more than 10
    critical reports. The count is the source's rule as written; the rating is compared on
    a Hoeffding bound (stars span 4), so twenty reviews of a small app cannot halt it alone."""
    halt = policy.halt
    out = [
        Check(
            "critical reviews",
            "failed" if reviews.new_critical > halt.critical_reviews_above else "passed",
            f"{reviews.new_critical} critical of {reviews.new_count} reviews of the new version "
            f"(halt above {halt.critical_reviews_above})",
        )
    ]
    new, prev = reviews.new_rating, reviews.prev_rating
    need = policy.min_rating_reviews
    if new is None or prev is None or reviews.new_count < need or reviews.prev_count < need:
        out.append(
            Check(
                "rating",
                "waiting",
                f"{reviews.new_count} reviews of the new version, {reviews.prev_count} of the "
                f"previous; compared from {need} each",
            )
        )
        return out
    # A time-uniform Hoeffding margin (stitched, Howard et al. 2021): looking every hour
    # costs the log-log term, not a false halt.
    n = min(reviews.new_count, reviews.prev_count)
    spend = math.log(1 / alpha) + 2 * math.log(1 + math.log2(max(n, 2)))
    margin = 4 * math.sqrt(spend * (1 / reviews.new_count + 1 / reviews.prev_count) / 2)
    drop = prev - new
    status = "failed" if drop - margin > halt.rating_drop_above else "passed"
    out.append(
        Check(
            "rating",
            status,
            f"{new:.2f} stars vs {prev:.2f} for the previous version (drop {drop:.2f}, "
            f"± {margin:.2f}; halt above {halt.rating_drop_above:g})",
        )
    )
    return out


def _not_checked(policy: MobilePolicy) -> list[Check]:
    out = []
    for name, criterion in (("retention", policy.retention), ("business metrics", policy.business)):
        if criterion is None:
            out.append(
                Check(
                    name,
                    "not checked",
                    "no source configured (`mobile."
                    + ("retention" if name == "retention" else "business")
                    + "`)",
                )
            )
    return out


class SequentialMobileJudge:
    """New vs previous version over the same hours, with the canary's anytime-valid test.

    Each hour's crashed users on both versions update a RatioEvidence (canary/stats.py),
    with the new version's share of the hour's users as the split, so a busy weekend
    that raises both versions' crashes cancels out, and the e-value may be read every hour
    at no cost in false halts (Ville's inequality). ANR users get their own. The source's
    absolute halt limits are tested on evidence too (ProportionAbove): crash-free below
    99 % is a halt only once the data shows it, so one crash among 20 users waits. The four
    tests share ``false_halt_rate`` as a weighted average of e-processes (0.4 per ratio,
    0.1 per absolute limit; with no ANR data the crash tests get 0.8 and 0.2).

    The advance criteria (crash-free >= 99.5 %, ANR < 0.1 %) hold a stage, never halt it,
    when the data shows the rate past them at the same alpha. A stage advances when its
    time has passed and nothing holds or halts it: halting needs evidence, so a small
    healthy app completes its rollout.
    """

    name = "sequential"

    def __init__(self, policy: MobilePolicy) -> None:
        self.policy = policy
        self.alpha = policy.false_halt_rate
        self.crash = RatioEvidence()
        self.anr = RatioEvidence()
        self.anr_seen = False
        self.crash_halt = ProportionAbove(1 - policy.halt.crash_free_below_percent / 100)
        self.anr_halt = ProportionAbove(policy.halt.anr_above_percent / 100)
        self.crash_hold = ProportionAbove(1 - policy.advance.min_crash_free_percent / 100)
        self.anr_hold = ProportionAbove(policy.advance.max_anr_percent / 100)
        self.hours: list[HourCounts] = []

    def observe(self, hour: HourCounts) -> None:
        self.hours.append(hour)
        users = hour.new_users + hour.prev_users
        if users <= 0:
            return
        share = hour.new_users / users
        terms: list[float] | None = None
        if hour.new_crashed + hour.prev_crashed > 0 and hour.new_users > 0:
            terms = list(share_terms(share))
            self.crash.update(hour.new_crashed, hour.prev_crashed, terms)
        self.crash_halt.update(hour.new_crashed, hour.new_users)
        self.crash_hold.update(hour.new_crashed, hour.new_users)
        if hour.new_anr is not None and hour.prev_anr is not None:
            self.anr_seen = True
            if hour.new_anr + hour.prev_anr > 0 and hour.new_users > 0:
                self.anr.update(hour.new_anr, hour.prev_anr, terms or share_terms(share))
            self.anr_halt.update(hour.new_anr, hour.new_users)
            self.anr_hold.update(hour.new_anr, hour.new_users)

    def _weights(self) -> dict[str, float]:
        if self.anr_seen:
            return {"crash ratio": 0.4, "ANR ratio": 0.4, "crash-free": 0.1, "ANR rate": 0.1}
        return {"crash ratio": 0.8, "crash-free": 0.2}

    def judge(self, stage_hours: Sequence[HourCounts], reviews: ReviewTally) -> Judgement:
        p = self.policy
        total = _totals(self.hours)
        stage = _totals(stage_hours)
        weights = self._weights()
        logs = {
            "crash ratio": self.crash.log_e_worse(RATIO_ONE) if self.crash.events else 0.0,
            "crash-free": self.crash_halt.log_e(),
            "ANR ratio": self.anr.log_e_worse(RATIO_ONE) if self.anr.events else 0.0,
            "ANR rate": self.anr_halt.log_e(),
        }
        parts = {k: math.log(w) + logs[k] for k, w in weights.items()}
        log_all = logsumexp(list(parts.values()))
        need = math.log(1 / self.alpha)
        crash_ratio = self.crash.estimate() if self.crash.events else None
        anr_ratio = self.anr.estimate() if self.anr.events else None
        evidence: dict[str, Any] = {
            "judge": self.name,
            "hours": len(self.hours),
            **total,
            "stage": stage,
            "crash_ratio": crash_ratio,
            "anr_ratio": anr_ratio,
            "e_value": _e(log_all),
            "threshold": 1 / self.alpha,
            "e_values": {k: _e(v) for k, v in logs.items() if k in weights},
            "reviews": vars(reviews) | {"examples": list(reviews.examples)},
        }
        rates = (
            f"new crash-free {_pct(total['new_crash_free'])} of {total['new_users']:,} users "
            f"vs previous {_pct(total['prev_crash_free'])} of {total['prev_users']:,}"
        )
        if total["new_anr_rate"] is not None:
            rates += f"; ANR {_pct(total['new_anr_rate'])} vs {_pct(total['prev_anr_rate'])}"
        checks: list[Check] = []
        halted: tuple[str, str] | None = None
        if log_all >= need:
            lead = max(parts, key=lambda k: parts[k])
            ratio = {"crash ratio": crash_ratio, "ANR ratio": anr_ratio}.get(lead)
            if ratio is not None and ratio < p.practical_ratio:
                evidence["below_practical_ratio"] = p.practical_ratio
            else:
                what = {
                    "crash ratio": f"more of its users crash than the previous version's "
                    f"(ratio {crash_ratio:.2f})"
                    if crash_ratio
                    else "",
                    "ANR ratio": f"more of its users hit ANRs than the previous version's "
                    f"(ratio {anr_ratio:.2f})"
                    if anr_ratio
                    else "",
                    "crash-free": f"crash-free users are shown below "
                    f"{p.halt.crash_free_below_percent:g} %",
                    "ANR rate": f"the ANR rate is shown above {p.halt.anr_above_percent:g} %",
                }[lead]
                halted = (
                    lead,
                    f"The new version is worse: {what}; {rates}. E-value {_e(log_all):.3g} "
                    f"reached {1 / self.alpha:g} (1/false_halt_rate).",
                )
        checks.append(
            Check(
                "crash and ANR vs previous",
                "failed" if halted else "passed",
                f"{rates}; e-value {_e(log_all):.3g} of {1 / self.alpha:g} to halt",
            )
        )
        hold_reasons = []
        if self.crash_hold.log_e() >= need:
            hold_reasons.append(
                f"crash-free users shown below {p.advance.min_crash_free_percent:g} %"
            )
        if self.anr_seen and self.anr_hold.log_e() >= need:
            hold_reasons.append(f"ANR rate shown at or above {p.advance.max_anr_percent:g} %")
        checks.append(
            Check(
                "advance criteria",
                "failed" if hold_reasons else "passed",
                "; ".join(hold_reasons)
                or f"not shown past crash-free {p.advance.min_crash_free_percent:g} % / ANR "
                f"{p.advance.max_anr_percent:g} %",
            )
        )
        review_checks = _review_checks(p, reviews, self.alpha)
        checks += review_checks + _not_checked(p)
        if halted:
            return Judgement(Verdict.HALT, halted[1], halted[0], checks, evidence)
        for c in review_checks:
            if c.status == "failed":
                return Judgement(Verdict.HALT, f"Reviews: {c.detail}.", c.name, checks, evidence)
        if hold_reasons:
            return Judgement(
                Verdict.HOLD,
                f"Held: {'; '.join(hold_reasons)} ({rates}).",
                "advance criteria",
                checks,
                evidence,
            )
        return Judgement(
            Verdict.OK,
            f"No regression shown: {rates}; e-value {_e(log_all):.3g} of "
            f"{1 / self.alpha:g} to halt.",
            "crash and ANR vs previous",
            checks,
            evidence,
        )


class ThresholdMobileJudge:
    """The source's rule as written (§8.3): the stage's crash-free and ANR rates as they are.

    Halts when the stage's crash-free users fall below 99 % or its ANR rate passes 0.5 %;
    advances when crash-free >= 99.5 % and ANR < 0.1 %; a stage with no users holds.
    """

    name = "threshold"

    def __init__(self, policy: MobilePolicy) -> None:
        self.policy = policy
        self.hours: list[HourCounts] = []

    def observe(self, hour: HourCounts) -> None:
        self.hours.append(hour)

    def judge(self, stage_hours: Sequence[HourCounts], reviews: ReviewTally) -> Judgement:
        p = self.policy
        s = _totals(stage_hours)
        evidence: dict[str, Any] = {"judge": self.name, "hours": len(self.hours), "stage": s}
        evidence.update(_totals(self.hours))
        evidence["reviews"] = vars(reviews) | {"examples": list(reviews.examples)}
        cf, anr = s["new_crash_free"], s["new_anr_rate"]
        rates = f"stage crash-free {_pct(cf)} of {s['new_users']:,} users, ANR {_pct(anr)}"
        checks: list[Check] = []
        halt = None
        if cf is not None and cf * 100 < p.halt.crash_free_below_percent:
            halt = ("crash-free", f"crash-free below {p.halt.crash_free_below_percent:g} %")
        elif anr is not None and anr * 100 > p.halt.anr_above_percent:
            halt = ("ANR rate", f"ANR above {p.halt.anr_above_percent:g} %")
        checks.append(Check("halt conditions", "failed" if halt else "passed", rates))
        hold = []
        if cf is None:
            hold.append("no users of the new version in this stage yet")
        elif cf * 100 < p.advance.min_crash_free_percent:
            hold.append(f"crash-free below {p.advance.min_crash_free_percent:g} %")
        if anr is not None and anr * 100 >= p.advance.max_anr_percent:
            hold.append(f"ANR at or above {p.advance.max_anr_percent:g} %")
        checks.append(
            Check("advance criteria", "failed" if hold else "passed", "; ".join(hold) or rates)
        )
        review_checks = _review_checks(p, reviews, p.false_halt_rate)
        checks += review_checks + _not_checked(p)
        if halt:
            return Judgement(
                Verdict.HALT, f"Halted: {halt[1]} ({rates}).", halt[0], checks, evidence
            )
        for c in review_checks:
            if c.status == "failed":
                return Judgement(Verdict.HALT, f"Reviews: {c.detail}.", c.name, checks, evidence)
        if hold:
            return Judgement(
                Verdict.HOLD,
                f"Held: {'; '.join(hold)} ({rates}).",
                "advance criteria",
                checks,
                evidence,
            )
        return Judgement(
            Verdict.OK, f"Criteria met: {rates}.", "advance criteria", checks, evidence
        )


def make_mobile_judge(policy: MobilePolicy, name: str | None = None) -> MobileJudge:
    kind = name or policy.judge
    if kind == "sequential":
        return SequentialMobileJudge(policy)
    if kind == "threshold":
        return ThresholdMobileJudge(policy)
    raise ReleaseActionsError(
        f"Unknown mobile judge `{kind}`: use `sequential` or `threshold`.",
        hint="Set `mobile.judge` in the release policy.",
    )
