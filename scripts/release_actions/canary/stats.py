"""Anytime-valid evidence about canary/stable event-rate ratios, in the standard library only."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The ratio rho = (canary rate) / (stable rate) lives on a grid of log-ratios. A discrete
# mixture over this grid *is* the prior (not an approximation of one), so the e-processes
# below are exactly valid whatever the grid; the grid only limits resolution to 5 %.
GRID_STEP = 0.05
_GRID_HALF = 80  # log-ratios from -4 to 4: ratios from 0.018 to 55
THETAS: tuple[float, ...] = tuple(k * GRID_STEP for k in range(-_GRID_HALF, _GRID_HALF + 1))
_RATIO_MINUS_ONE: tuple[float, ...] = tuple(math.expm1(t) for t in THETAS)
_ORIGIN = _GRID_HALF  # index of log-ratio 0, a ratio of exactly 1

# Prior on how far the alternative lies from the null, in log-ratio: half-normal with
# scale 1 (median ratio 2, 95 % below 7x). Mass at small distances keeps 1.2x-1.5x
# regressions detectable; the tail keeps 6x regressions fast. It sits on every other grid
# point (0.1 apart, 40 alternatives up to 4.0): finer spacing changes no decision and
# would double the cost. A null near the grid edge sees fewer alternatives, which only
# makes its e-value smaller (a sub-probability mixture is still valid).
PRIOR_SCALE = 1.0
_STRIDE = 2
_DISTANCES = tuple(range(_STRIDE, _GRID_HALF + 1, _STRIDE))  # in grid steps


def _half_normal_log_weights(scale: float) -> tuple[float, ...]:
    raw = [math.exp(-((m * GRID_STEP) ** 2) / (2 * scale * scale)) for m in _DISTANCES]
    total = sum(raw)
    return tuple(math.log(w / total) for w in raw)


_LOG_PRIOR = _half_normal_log_weights(PRIOR_SCALE)


def logsumexp(values: Sequence[float]) -> float:
    """log(sum(exp(v))) without overflow: e-values of a fast regression reach e^1000."""
    top = max(values, default=-math.inf)
    if top == -math.inf:
        return -math.inf
    exp = math.exp
    return top + math.log(sum([exp(v - top) for v in values]))


def grid_index(ratio: float, *, round_down: bool = False) -> int:
    """The grid point of a ratio; ``round_down`` when a smaller ratio is the safe side."""
    if not ratio > 0 or math.isinf(ratio):
        raise ValueError(f"a rate ratio must be positive and finite, got {ratio!r}")
    pos = math.log(ratio) / GRID_STEP
    k = math.floor(pos + 1e-9) if round_down else round(pos)
    return max(-_GRID_HALF, min(_GRID_HALF, k)) + _ORIGIN


def grid_ratio(index: int) -> float:
    return math.exp(THETAS[index])


def share_terms(canary_share: float) -> tuple[float, ...]:
    """log(1 + (rho - 1) p0) on the grid: the per-event normaliser of one interval's split.

    Computed once per interval and shared by every count measured on that split (errors,
    slow requests), because it is the only costly part of an update.
    """
    return tuple(math.log1p(c * canary_share) for c in _RATIO_MINUS_ONE)


@dataclass(frozen=True)
class Bounds:
    """An anytime-valid interval for the ratio: each side holds with probability 1 - alpha."""

    lower: float
    upper: float
    alpha: float


class RatioEvidence:
    """Sequential evidence about rho = canary rate / stable rate of one kind of event.

    Model (Lindon, Sanden and Shirikian, KDD 2022): in an interval where the canary served
    n_c and the stable n_s requests, events on each track are Poisson with means
    lambda_c n_c and lambda_s n_s, so given the interval's total E the canary's share is
    Binomial(E, p(rho)) with p(rho) = rho n_c / (rho n_c + n_s). The likelihood ratio of
    rho against rho* multiplies across intervals whatever each interval's split, so the
    product is a test martingale under rho* and a mixture of them over a prior is an
    e-process (Ville's inequality: it ever exceeds 1/alpha with probability <= alpha).
    Conditioning on the totals removes the unknown, drifting base rate: a traffic peak
    or a shared downstream outage raises both tracks and cancels out.

    If errors are per-request Bernoulli rather than Poisson, the conditional law at rho = 1
    is hypergeometric, which is dominated by the binomial in convex order (Hoeffding,
    1963), so the test of "not worse" stays valid; the bounds away from 1 treat the rate
    ratio and the odds ratio as equal, which is within 2 % at error rates up to 2 %.

    Only sufficient statistics are kept: the canary's count X and, per grid point,
    A(rho) = sum over intervals of E log(1 + (rho - 1) p0), so
    log LR(rho vs rho*) = X (theta - theta*) - (A(rho) - A(rho*)).
    """

    def __init__(self) -> None:
        self.canary_events = 0.0
        self.events = 0.0
        self._a = [0.0] * len(THETAS)
        self._profile: list[float] | None = None
        self._edges = (_ORIGIN, _ORIGIN)

    def to_dict(self) -> dict[str, Any]:
        """The sufficient statistics, exactly (JSON keeps a float's every digit), so that
        evidence saved by one process and restored by another is the same e-process."""
        empty = self.events <= 0 and not any(self._a)
        return {
            "canary_events": self.canary_events,
            "events": self.events,
            "a": [] if empty else list(self._a),
            "edges": list(self._edges),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RatioEvidence:
        out = cls()
        a = [float(v) for v in data.get("a") or []]
        if a and len(a) != len(THETAS):
            raise ValueError(f"saved evidence has {len(a)} grid points, not {len(THETAS)}")
        out.canary_events = float(data.get("canary_events") or 0.0)
        out.events = float(data.get("events") or 0.0)
        out._a = a or [0.0] * len(THETAS)
        low, high = data.get("edges") or (_ORIGIN, _ORIGIN)
        out._edges = (int(low), int(high))
        return out

    def update(self, canary_events: float, stable_events: float, terms: Sequence[float]) -> None:
        total = canary_events + stable_events
        if total <= 0:
            return
        self.canary_events += canary_events
        self.events += total
        self._a = [a + total * t for a, t in zip(self._a, terms, strict=True)]
        self._profile = None

    @property
    def profile(self) -> list[float]:
        """log-likelihood of each grid ratio up to a constant: X theta - A(theta)."""
        if self._profile is None:
            x = self.canary_events
            self._profile = [x * t - a for t, a in zip(THETAS, self._a, strict=True)]
        return self._profile

    def log_e_worse(self, null: int = _ORIGIN) -> float:
        """log e-value against H0: rho <= ratio at ``null``, mixing over larger ratios."""
        prof = self.profile
        # Near the top of the grid fewer alternatives remain: a sub-probability mixture.
        above = prof[null + _STRIDE : null + _GRID_HALF + 1 : _STRIDE]
        base = prof[null]
        return logsumexp([w + v - base for w, v in zip(_LOG_PRIOR, above, strict=False)])

    def log_e_better(self, null: int) -> float:
        """log e-value against H0: rho >= ratio at ``null``, mixing over smaller ratios."""
        prof = self.profile
        below = [prof[null - m] for m in _DISTANCES if m <= null]
        base = prof[null]
        return logsumexp([w + v - base for w, v in zip(_LOG_PRIOR, below, strict=False)])

    def estimate_index(self) -> int:
        """The grid's maximum-likelihood ratio (the split may differ per interval)."""
        prof = self.profile
        return prof.index(max(prof))

    def estimate(self) -> float:
        """The maximum-likelihood ratio, between grid points.

        The profile log-likelihood is concave and smooth, so a parabola through the grid's
        best point and its neighbours places the maximum well inside one step; the
        practical-margin check needs that precision (1.06 must not round up to 1.10).
        """
        if self.events <= 0:
            return math.nan
        k = self.estimate_index()
        prof = self.profile
        if 0 < k < len(prof) - 1:
            left, mid, right = prof[k - 1], prof[k], prof[k + 1]
            curve = left - 2 * mid + right
            if curve < 0:
                return math.exp(THETAS[k] + GRID_STEP * (left - right) / (2 * curve))
        return grid_ratio(k)

    def bounds(self, alpha: float) -> Bounds:
        """Invert the one-sided tests at every grid ratio (Howard et al. 2021, section 3).

        The lower bound is the largest ratio r whose "rho <= r" is rejected, so "rho > lower"
        holds at all times with probability >= 1 - alpha; likewise the upper bound. Rejection
        falls off monotonically away from the estimate, so a search finds each edge; it
        starts from the last interval's edge, which rarely moves more than a step or two.
        """
        need = math.log(1 / alpha)
        mle = self.estimate_index()
        top = len(THETAS) - 1
        low = _last_true(lambda k: self.log_e_worse(k) >= need, 0, mle, self._edges[0])
        high = _last_true(
            lambda k: self.log_e_better(top - k) >= need, 0, top - mle, top - self._edges[1]
        )
        self._edges = (mle if low is None else low, mle if high is None else top - high)
        return Bounds(
            0.0 if low is None else grid_ratio(low),
            math.inf if high is None else grid_ratio(top - high),
            alpha,
        )


def _last_true(pred: Callable[[int], bool], lo: int, hi: int, guess: int) -> int | None:
    """The largest k in [lo, hi] with pred(k), for pred true up to some k and false after."""
    guess = max(lo, min(hi, guess))
    step = 1
    if pred(guess):
        yes = guess
        while yes + step <= hi and pred(yes + step):
            yes += step
            step *= 2
        no = min(yes + step, hi + 1)
    else:
        no = guess
        while no - step >= lo and not pred(no - step):
            no -= step
            step *= 2
        if no - step < lo:
            if no == lo or not pred(lo):
                return None
            yes = lo
        else:
            yes = no - step
    while no - yes > 1:
        mid = (yes + no) // 2
        if pred(mid):
            yes = mid
        else:
            no = mid
    return yes


RATIO_ONE = _ORIGIN


class ProportionBelow:
    """Sequential evidence that a track's fraction of some event is below ``limit``.

    Tests H0: q >= limit with a likelihood-ratio mixture over q = limit * e^-d, d with the
    same half-normal prior. Each request's factor has mean <= 1 for any per-request
    probability >= limit, so the product is a test supermartingale even when q drifts over
    time (Howard et al. 2021; Robbins' conjugate mixture, without needing conjugacy).
    """

    def __init__(self, limit: float) -> None:
        if not 0 < limit < 1:
            raise ValueError(f"limit must be in (0, 1), got {limit!r}")
        self.limit = limit
        self.events = 0.0
        self.trials = 0.0
        ds = [m * GRID_STEP for m in _DISTANCES]
        self._log_q = [math.log(limit) - d for d in ds]
        self._log_not_q = [math.log1p(-limit * math.exp(-d)) for d in ds]
        self._log_limit = math.log(limit)
        self._log_not_limit = math.log1p(-limit)

    def update(self, events: float, trials: float) -> None:
        self.events += events
        self.trials += trials

    def to_dict(self) -> dict[str, Any]:
        return {"limit": self.limit, "events": self.events, "trials": self.trials}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProportionBelow:
        out = cls(float(data["limit"]))
        out.events = float(data.get("events") or 0.0)
        out.trials = float(data.get("trials") or 0.0)
        return out

    def log_e(self) -> float:
        s, f = self.events, self.trials - self.events
        ll, lnl = self._log_limit, self._log_not_limit
        return logsumexp(
            [
                w + s * (lq - ll) + f * (lnq - lnl)
                for w, lq, lnq in zip(_LOG_PRIOR, self._log_q, self._log_not_q, strict=True)
            ]
        )
