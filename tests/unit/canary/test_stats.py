"""The e-processes behind the sequential judge: exact expectations, coverage, search."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from release_actions.canary.stats import (
    RATIO_ONE,
    THETAS,
    ProportionBelow,
    RatioEvidence,
    grid_index,
    grid_ratio,
    logsumexp,
    share_terms,
)


def binomial_pmf(n: int, p: float) -> list[float]:
    return [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]


def hypergeometric_pmf(population: int, marked: int, draws: int) -> list[float]:
    total = math.comb(population, draws)
    return [
        math.comb(marked, k) * math.comb(population - marked, draws - k) / total
        for k in range(draws + 1)
    ]


def evidence(*intervals: tuple[int, int, float]) -> RatioEvidence:
    """Evidence from (canary events, stable events, canary share) per interval."""
    ev = RatioEvidence()
    for canary, stable, share in intervals:
        ev.update(float(canary), float(stable), share_terms(share))
    return ev


def share_at(ratio: float, share: float) -> float:
    """The canary's share of events when its rate is ``ratio`` times stable's."""
    return ratio * share / (ratio * share + 1 - share)


# -- exact expectations: an e-value has mean <= 1 under its null --------------------------------


@pytest.mark.parametrize(("events", "share"), [(1, 0.5), (12, 0.05), (40, 0.2), (25, 0.9)])
def test_the_not_worse_e_value_has_mean_one_at_ratio_one(events: int, share: float) -> None:
    pmf = binomial_pmf(events, share)
    mean = sum(
        p * math.exp(evidence((x, events - x, share)).log_e_worse(RATIO_ONE))
        for x, p in enumerate(pmf)
    )
    assert mean == pytest.approx(1.0, abs=1e-9)


def test_changing_weights_keep_the_e_value_a_martingale() -> None:
    # Two intervals at different splits (5 % then 50 %): the product stays fair.
    (e1, s1), (e2, s2) = (8, 0.05), (10, 0.5)
    mean = 0.0
    for x1, p1 in enumerate(binomial_pmf(e1, s1)):
        for x2, p2 in enumerate(binomial_pmf(e2, s2)):
            ev = evidence((x1, e1 - x1, s1), (x2, e2 - x2, s2))
            mean += p1 * p2 * math.exp(ev.log_e_worse(RATIO_ONE))
    assert mean == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("ratio", [0.2, 0.5, 0.9])
def test_a_better_canary_has_mean_below_one(ratio: float) -> None:
    events, share = 30, 0.1
    pmf = binomial_pmf(events, share_at(ratio, share))
    mean = sum(
        p * math.exp(evidence((x, events - x, share)).log_e_worse(RATIO_ONE))
        for x, p in enumerate(pmf)
    )
    assert mean < 1.0


def test_per_request_errors_are_covered_too() -> None:
    # With Bernoulli errors at equal rates, canary errors given the total are
    # hypergeometric: dominated by the binomial in convex order, so the mean stays <= 1.
    canary, stable, draws = 60, 240, 25
    pmf = hypergeometric_pmf(canary + stable, canary, draws)
    share = canary / (canary + stable)
    mean = sum(
        p * math.exp(evidence((x, draws - x, share)).log_e_worse(RATIO_ONE))
        for x, p in enumerate(pmf)
    )
    assert mean <= 1.0


def test_the_pass_e_value_is_fair_at_the_margin() -> None:
    margin = grid_index(1.5, round_down=True)
    events, share = 40, 0.2
    pmf = binomial_pmf(events, share_at(grid_ratio(margin), share))
    mean = sum(
        p * math.exp(evidence((x, events - x, share)).log_e_better(margin))
        for x, p in enumerate(pmf)
    )
    assert mean <= 1.0 + 1e-9


@pytest.mark.parametrize("fraction", [0.01, 0.02])
def test_proportion_e_value_has_mean_at_most_one_when_the_limit_is_broken(fraction: float) -> None:
    n = 300
    mean = 0.0
    for s, p in enumerate(binomial_pmf(n, fraction)):
        ev = ProportionBelow(0.01)
        ev.update(float(s), float(n))
        mean += p * math.exp(ev.log_e())
    assert mean <= 1.0 + 1e-9


def test_proportion_below_the_limit_is_shown() -> None:
    ev = ProportionBelow(0.01)
    ev.update(0.0, 2000.0)
    assert ev.log_e() > math.log(100)


# -- time-uniform guarantees by simulation ------------------------------------------------------


def test_peeking_every_interval_keeps_false_rejections_under_alpha() -> None:
    # 2000 seeded A/A runs of 20 intervals, weights moving 5 -> 20 -> 50 %, looked at after
    # every interval: the share that ever reaches 1/alpha stays under alpha.
    alpha, runs = 0.01, 2000
    rng = random.Random(7)
    shares = [0.05] * 4 + [0.2] * 6 + [0.5] * 10
    rejected = 0
    for _ in range(runs):
        ev = RatioEvidence()
        for share in shares:
            total = 15
            x = sum(rng.random() < share for _ in range(total))
            ev.update(float(x), float(total - x), share_terms(share))
            if ev.log_e_worse(RATIO_ONE) >= math.log(1 / alpha):
                rejected += 1
                break
    # Ville's bound is alpha; 2000 runs at 1 % would exceed 34 with probability < 0.1 %.
    assert rejected / runs <= alpha + 0.007, rejected


def test_bounds_cover_the_true_ratio_at_all_times() -> None:
    alpha, runs = 0.05, 400
    true_index = grid_index(2.0)
    ratio = grid_ratio(true_index)
    rng = random.Random(11)
    low_miss = high_miss = 0
    for _ in range(runs):
        ev = RatioEvidence()
        missed_low = missed_high = False
        for share in [0.1] * 15:
            total = 30
            x = sum(rng.random() < share_at(ratio, share) for _ in range(total))
            ev.update(float(x), float(total - x), share_terms(share))
            b = ev.bounds(alpha)
            missed_low |= b.lower >= ratio
            missed_high |= b.upper <= ratio
        low_miss += missed_low
        high_miss += missed_high
    assert low_miss / runs <= alpha + 0.03
    assert high_miss / runs <= alpha + 0.03


# -- the grid and the search ---------------------------------------------------------------------


def test_grid_round_trip() -> None:
    assert grid_ratio(RATIO_ONE) == 1.0
    assert grid_index(1.0) == RATIO_ONE
    assert grid_ratio(grid_index(2.0)) == pytest.approx(2.0, rel=0.03)
    assert grid_ratio(grid_index(1.5, round_down=True)) <= 1.5
    assert grid_index(1e9) == len(THETAS) - 1


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_grid_rejects_ratios_that_are_not_positive_and_finite(bad: float) -> None:
    with pytest.raises(ValueError, match="positive and finite"):
        grid_index(bad)


def test_logsumexp() -> None:
    assert logsumexp([]) == -math.inf
    assert logsumexp([-math.inf, -math.inf]) == -math.inf
    assert logsumexp([1000.0, 1000.0]) == pytest.approx(1000.0 + math.log(2))
    assert logsumexp([0.0, math.log(3)]) == pytest.approx(math.log(4))


def test_no_data_is_no_evidence() -> None:
    ev = RatioEvidence()
    assert ev.log_e_worse(RATIO_ONE) == pytest.approx(0.0, abs=1e-12)
    b = ev.bounds(0.01)
    assert (b.lower, b.upper) == (0.0, math.inf)
    ev.update(0.0, 0.0, share_terms(0.3))
    assert ev.events == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 300),
            st.integers(0, 3000),
            st.floats(0.01, 0.99),
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([0.2, 0.01, 1e-4]),
)
def test_bounds_search_matches_a_full_scan(
    intervals: list[tuple[int, int, float]], alpha: float
) -> None:
    ev = evidence(*intervals)
    for _ in range(2):  # the second call starts from the first call's edges
        b = ev.bounds(alpha)
        need = math.log(1 / alpha)
        mle = ev.estimate_index()
        lows = [k for k in range(mle + 1) if ev.log_e_worse(k) >= need]
        highs = [k for k in range(mle, len(THETAS)) if ev.log_e_better(k) >= need]
        assert lows == list(range(len(lows)))  # rejection is monotone, as the search assumes
        assert highs == list(range(len(THETAS) - len(highs), len(THETAS)))
        assert b.lower == (grid_ratio(lows[-1]) if lows else 0.0)
        assert b.upper == (grid_ratio(highs[0]) if highs else math.inf)
