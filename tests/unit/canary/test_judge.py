"""The canary judges: the document's rule to the letter, and the sequential test's guarantees."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from release_actions.canary.judge import (
    Judge,
    Judgement,
    SequentialJudge,
    ThresholdJudge,
    Verdict,
    make_judge,
)
from release_actions.core.policy import AnalysisPolicy, default_policy
from release_actions.errors import ReleaseActionsError
from release_actions.metrics.base import Track, TrafficSample

POLICY = default_policy().canary.analysis


def policy(**changes: Any) -> AnalysisPolicy:
    return POLICY.model_copy(update=changes)


def pair(
    t: int,
    stable: tuple[float, float],
    canary: tuple[float, float],
    *,
    p99: tuple[float | None, float | None] = (200.0, 200.0),
    slow: tuple[float | None, float | None] = (None, None),
    seconds: float = 60,
) -> tuple[TrafficSample, TrafficSample]:
    """One interval: (requests, errors) per track, stable first."""
    start, end = t * seconds, (t + 1) * seconds
    q = {"errors": f"sum:errors{{track}}[{start:.0f},{end:.0f}]"}
    return (
        TrafficSample(Track.STABLE, start, end, *stable, p99[0], slow[0], q),
        TrafficSample(Track.CANARY, start, end, *canary, p99[1], slow[1], q),
    )


def binomial(rng: random.Random, n: int, p: float) -> int:
    """Binomial(n, p) by inversion: the tests stay free of numpy."""
    assert n * p < 600, "(1 - p)^n would underflow"
    u, k = rng.random(), 0
    pmf = (1 - p) ** n
    cdf = pmf
    while u > cdf and k < n:
        pmf *= (n - k) / (k + 1) * p / (1 - p)
        k += 1
        cdf += pmf
    return k


def traffic(
    rng: random.Random, t: int, requests: int, weight: float, base: float, ratio: float = 1.0
) -> tuple[TrafficSample, TrafficSample]:
    n_c = round(requests * weight)
    n_s = requests - n_c
    return pair(t, (n_s, binomial(rng, n_s, base)), (n_c, binomial(rng, n_c, base * ratio)))


def run(judge: Judge, intervals: list[tuple[TrafficSample, TrafficSample]]) -> list[Judgement]:
    return [judge.observe(s, c) for s, c in intervals]


# -- the document's rule (§4.3) ---------------------------------------------------------------


def test_threshold_collects_until_the_window_is_covered() -> None:
    judge = ThresholdJudge(POLICY)
    out = run(judge, [pair(t, (9000, 90), (1000, 10)) for t in range(5)])
    assert [j.verdict for j in out[:4]] == [Verdict.INCONCLUSIVE] * 4
    assert {j.check for j in out[:4]} == {"window"}
    assert "Collecting: 240 of 300 s" in out[3].reason
    assert out[4].verdict is Verdict.PASS
    assert out[4].evidence["canary_requests"] == 5000


def test_threshold_error_rate_exactly_half_a_point_passes() -> None:
    # 7 % - 6.5 % is 0.5000000000000004 points in floating point; the rule says "above".
    [j] = run(ThresholdJudge(POLICY), [pair(0, (1000, 65), (100, 7), seconds=300)])
    assert j.verdict is Verdict.PASS, j.reason
    assert j.evidence["error_rate_diff_points"] == pytest.approx(0.5)


def test_threshold_error_rate_just_above_half_a_point_fails() -> None:
    [j] = run(ThresholdJudge(POLICY), [pair(0, (1000, 65), (10000, 701), seconds=300)])
    assert j.verdict is Verdict.FAIL
    assert j.check == "error-rate"
    assert "7.01 %" in j.reason and "6.50 %" in j.reason and "+0.51 points" in j.reason
    assert j.evidence["statistic"] == pytest.approx(0.51)
    assert j.evidence["threshold"] == 0.5
    assert j.evidence["queries"]["canary"]["errors"].startswith("sum:errors")


def test_threshold_p99_exactly_ten_percent_passes() -> None:
    # (7.7 - 7) / 7 * 100 is 10.000000000000002 in floating point.
    [j] = run(ThresholdJudge(POLICY), [pair(0, (1000, 0), (1000, 0), p99=(7.0, 7.7), seconds=300)])
    assert j.verdict is Verdict.PASS, j.reason


def test_threshold_p99_above_ten_percent_fails() -> None:
    [j] = run(ThresholdJudge(POLICY), [pair(0, (1000, 0), (1000, 0), p99=(7.0, 7.71), seconds=300)])
    assert j.verdict is Verdict.FAIL
    assert j.check == "latency"
    assert j.evidence["statistic"] == pytest.approx(10.142857, rel=1e-6)


def test_threshold_needs_min_requests_and_then_keeps_the_window_growing() -> None:
    judge = ThresholdJudge(POLICY)
    [first] = run(judge, [pair(0, (1000, 0), (99, 0), seconds=300)])
    assert first.verdict is Verdict.INCONCLUSIVE
    assert first.check == "min-requests"
    assert "99 canary requests" in first.reason
    [second] = run(judge, [pair(1, (10, 0), (1, 0), seconds=60)])
    assert second.verdict is Verdict.PASS
    assert second.evidence["canary_requests"] == 100


def test_threshold_argo_failure_limit_counts_failed_intervals() -> None:
    judge = ThresholdJudge(policy(analysis_seconds=3600))
    bad = (1000.0, 20.0)  # 98 % success, under the 99 % condition
    out = run(judge, [pair(t, (1000, 0), bad) for t in range(4)])
    assert [j.verdict for j in out] == [Verdict.INCONCLUSIVE] * 3 + [Verdict.FAIL]
    assert out[3].check == "success-rate"
    assert out[3].evidence["failures"] == 4


def test_threshold_argo_p99_condition() -> None:
    judge = ThresholdJudge(policy(analysis_seconds=3600))
    out = run(judge, [pair(t, (1000, 0), (1000, 0), p99=(200.0, 500.0)) for t in range(4)])
    assert out[-1].verdict is Verdict.FAIL
    assert out[-1].check == "latency-p99"


def test_threshold_reset_step_starts_a_new_analysis_run() -> None:
    judge = ThresholdJudge(policy(analysis_seconds=3600))
    run(judge, [pair(t, (1000, 0), (1000, 20)) for t in range(3)])
    judge.reset_step()
    out = run(judge, [pair(t, (1000, 0), (1000, 20)) for t in range(3, 6)])
    assert Verdict.FAIL not in [j.verdict for j in out]


def test_threshold_pass_stands_while_the_next_window_collects() -> None:
    judge = ThresholdJudge(POLICY)
    out = run(judge, [pair(t, (9000, 90), (1000, 10)) for t in range(7)])
    assert [j.verdict for j in out[4:]] == [Verdict.PASS] * 3
    assert "Collecting the next window: 120 of 300 s" in out[6].reason
    assert not any(j.early for j in out)


def test_threshold_without_any_p99_compares_errors_only() -> None:
    [j] = run(
        ThresholdJudge(POLICY), [pair(0, (1000, 0), (1000, 0), p99=(None, None), seconds=300)]
    )
    assert j.verdict is Verdict.PASS
    assert j.evidence["p99"] == "not measured by the provider"


def test_threshold_with_p99_on_one_track_only_holds() -> None:
    [j] = run(
        ThresholdJudge(POLICY), [pair(0, (1000, 0), (1000, 0), p99=(None, 200.0), seconds=300)]
    )
    assert j.verdict is Verdict.INCONCLUSIVE
    assert "stable" in j.reason


# -- data that cannot be judged, for both judges ----------------------------------------------

JUDGES = [ThresholdJudge, SequentialJudge]


@pytest.mark.parametrize("cls", JUDGES)
def test_zero_canary_requests_is_no_data(cls: type[Judge]) -> None:
    judge = cls(POLICY)  # type: ignore[call-arg]
    [j] = run(judge, [pair(0, (1000, 10), (0, 0))])
    assert j.verdict is Verdict.INCONCLUSIVE
    assert j.check == "data"
    assert "no data" in j.reason


@pytest.mark.parametrize("cls", JUDGES)
@pytest.mark.parametrize(
    ("stable", "canary", "words"),
    [
        ((1000, 10), (100, 101), "more errors"),
        ((1000, -1), (100, 1), "negative"),
        ((1000, 10), (math.inf, 1), "inf"),
        ((1000, math.nan), (100, 1), "nan"),
    ],
)
def test_bad_numbers_are_an_error(
    cls: type[Judge], stable: tuple[float, float], canary: tuple[float, float], words: str
) -> None:
    [j] = run(cls(POLICY), [pair(0, stable, canary)])  # type: ignore[call-arg]
    assert j.verdict is Verdict.ERROR
    assert j.check == "data"
    assert words in j.reason


@pytest.mark.parametrize("cls", JUDGES)
def test_swapped_tracks_are_an_error(cls: type[Judge]) -> None:
    stable, canary = pair(0, (1000, 10), (100, 1))
    j = cls(POLICY).observe(canary, stable)  # type: ignore[call-arg]
    assert j.verdict is Verdict.ERROR
    assert "swapped" in j.reason


FIELDS = ["start", "end", "requests", "errors", "p99_ms", "slow"]


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(JUDGES),
    st.sampled_from(["stable", "canary"]),
    st.sampled_from(FIELDS),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.integers(0, 3),
)
def test_nan_or_inf_anywhere_is_an_error(
    cls: type[Judge], track: str, field: str, value: float, before: int
) -> None:
    judge = cls(POLICY)  # type: ignore[call-arg]
    run(judge, [pair(t, (1000, 5), (200, 1), slow=(1, 0)) for t in range(before)])
    stable, canary = pair(before, (1000, 5), (200, 1), slow=(1, 0))
    change: dict[str, Any] = {field: value}
    if track == "stable":
        stable = dataclasses.replace(stable, **change)
    else:
        canary = dataclasses.replace(canary, **change)
    j = judge.observe(stable, canary)
    assert j.verdict is Verdict.ERROR, j.reason


counts = st.floats(0, 1e7, allow_nan=False, allow_infinity=False)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(JUDGES),
    st.lists(
        st.tuples(
            counts,
            st.floats(0, 1),
            counts,
            st.floats(0, 1),
            st.one_of(st.none(), st.floats(0, 1e5)),
            st.one_of(st.none(), st.floats(0, 1e5)),
            st.one_of(st.none(), st.floats(0, 1)),
        ),
        min_size=1,
        max_size=8,
    ),
)
def test_any_valid_counts_give_a_verdict_and_json_evidence(
    cls: type[Judge],
    intervals: list[tuple[float, float, float, float, float | None, float | None, float | None]],
) -> None:
    judge = cls(POLICY)  # type: ignore[call-arg]
    for t, (n_s, e_s, n_c, e_c, p_s, p_c, slow) in enumerate(intervals):
        stable, canary = pair(
            t,
            (n_s, n_s * e_s),
            (n_c, n_c * e_c),
            p99=(p_s, p_c),
            slow=(None, None) if slow is None else (n_s * slow, n_c * slow),
        )
        j = judge.observe(stable, canary)
        assert j.verdict in set(Verdict)
        assert j.verdict is not Verdict.ERROR, j.reason
        assert j.reason
        json.dumps(j.evidence, allow_nan=False)
        if t == 0 and n_c == 0:
            assert j.verdict is Verdict.INCONCLUSIVE


# -- the sequential judge -----------------------------------------------------------------------


def test_peeking_every_interval_keeps_false_rollbacks_under_alpha() -> None:
    # 1000 seeded A/A rollouts, 10 intervals each, judged after every interval. At alpha
    # 5 % (the check is sharper than at 1 %) the rollbacks stay under 5 % plus sampling
    # slack, while a z-test peeked at in the same way rolls back far more often.
    alpha, rollouts = 0.05, 1000
    rng = random.Random(20240611)
    judged = naive = 0
    for _ in range(rollouts):
        judge = SequentialJudge(policy(false_rollback_rate=alpha))
        peeked = False
        totals = [0, 0, 0, 0]
        failed = False
        for t in range(10):
            stable, canary = traffic(rng, t, 1000, 0.10, 0.02)
            if not failed and judge.observe(stable, canary).verdict is Verdict.FAIL:
                failed = True
            totals = [
                totals[0] + int(canary.errors),
                totals[1] + int(canary.requests),
                totals[2] + int(stable.errors),
                totals[3] + int(stable.requests),
            ]
            rc, rs = totals[0] / totals[1], totals[2] / totals[3]
            pooled = (totals[0] + totals[2]) / (totals[1] + totals[3])
            se = math.sqrt(pooled * (1 - pooled) * (1 / totals[1] + 1 / totals[3])) or 1.0
            peeked |= (rc - rs) / se > 1.645
        judged += failed
        naive += peeked
    # P(Binomial(1000, 0.05) > 72) < 0.1 %.
    assert judged / rollouts <= alpha + 0.022, judged
    assert naive / rollouts > 0.12, naive


def test_weights_changing_between_steps_keep_the_guarantee() -> None:
    alpha, rollouts = 0.05, 300
    rng = random.Random(5)
    steps = [(0.05, 3), (0.20, 4), (0.50, 5)]
    failed = 0
    for _ in range(rollouts):
        judge = SequentialJudge(policy(false_rollback_rate=alpha))
        t = 0
        verdicts = []
        for weight, count in steps:
            judge.reset_step()
            for _ in range(count):
                verdicts.append(judge.observe(*traffic(rng, t, 1500, weight, 0.01)).verdict)
                t += 1
        failed += Verdict.FAIL in verdicts
    # P(Binomial(300, 0.05) > 26) < 0.1 %.
    assert failed / rollouts <= alpha + 0.038, failed


def test_a_doubled_error_rate_is_caught_within_five_minutes() -> None:
    # 200 rps, 10 % canary, 1 % -> 2 % errors: the benchmark's target cell.
    rng = random.Random(3)
    times = []
    for _ in range(100):
        judge = SequentialJudge(POLICY)
        for t in range(10):
            j = judge.observe(*traffic(rng, t, 12000, 0.10, 0.01, ratio=2.0))
            if j.verdict is Verdict.FAIL:
                times.append(t + 1)
                assert j.check == "error-rate"
                break
    assert len(times) == 100
    assert sum(t <= 5 for t in times) >= 95
    assert sorted(times)[49] <= 2


def test_regression_evidence_carries_over_when_the_weight_changes() -> None:
    # Canary errors at 1.8x: at 5 % the evidence builds without deciding; at 20 % a
    # judge that kept it decides no later than one that starts afresh.
    def at(t: int, weight: float) -> tuple[TrafficSample, TrafficSample]:
        n_c = round(6000 * weight)
        return pair(t, (6000 - n_c, (6000 - n_c) * 0.01), (n_c, n_c * 0.018))

    kept = SequentialJudge(POLICY)
    early = run(kept, [at(t, 0.05) for t in range(3)])
    assert Verdict.FAIL not in [j.verdict for j in early]
    kept.reset_step()
    fresh = SequentialJudge(POLICY)
    later = [at(t, 0.20) for t in range(3, 12)]
    kept_at = next(i for i, j in enumerate(run(kept, later)) if j.verdict is Verdict.FAIL)
    fresh_at = next(i for i, j in enumerate(run(fresh, later)) if j.verdict is Verdict.FAIL)
    assert kept_at < fresh_at


def test_a_regression_0_2_to_0_4_percent_is_caught() -> None:
    # 1000 rps, 10 % canary: the document's 0.5-point rule never fires on this.
    judge = SequentialJudge(POLICY)
    out = run(judge, [pair(t, (54000, 108), (6000, 24)) for t in range(5)])
    assert out[-1].verdict is Verdict.FAIL
    assert out[-1].evidence["error_ratio"] == pytest.approx(2.0, rel=0.05)
    doc = ThresholdJudge(POLICY)
    assert run(doc, [pair(0, (270000, 540), (30000, 120), seconds=300)])[0].verdict is Verdict.PASS


def test_healthy_high_traffic_passes_early() -> None:
    judge = SequentialJudge(POLICY)
    [j] = run(judge, [pair(0, (30000, 600), (30000, 600), slow=(3, 3))])
    assert j.verdict is Verdict.PASS
    assert j.early
    assert "Shown not worse" in j.reason
    assert j.evidence["pass_e_value"] >= 100


def test_healthy_moderate_traffic_passes_but_waits_for_the_pause() -> None:
    judge = SequentialJudge(POLICY)
    [j] = run(judge, [pair(0, (10800, 108), (1200, 12))])
    assert j.verdict is Verdict.PASS
    assert not j.early
    assert "full pause" in j.reason
    assert j.evidence["error_ratio_lower"] < 1 < j.evidence["error_ratio_upper"]


def test_early_pass_needs_evidence_at_this_weight() -> None:
    judge = SequentialJudge(POLICY)
    assert run(judge, [pair(0, (30000, 600), (30000, 600))])[0].early
    judge.reset_step()
    [j] = run(judge, [pair(1, (30000, 600), (60, 1))])
    assert j.verdict is Verdict.INCONCLUSIVE
    assert j.check == "min-requests"


def test_never_decides_on_fewer_than_min_requests() -> None:
    judge = SequentialJudge(POLICY)
    [first] = run(judge, [pair(0, (950, 5), (50, 50))])
    assert first.verdict is Verdict.INCONCLUSIVE
    assert first.check == "min-requests"
    assert "50 of 100" in first.reason
    [second] = run(judge, [pair(1, (950, 5), (60, 60))])
    assert second.verdict is Verdict.FAIL


def test_a_proven_but_negligible_difference_is_not_a_rollback() -> None:
    # 2.12 % vs 2.00 % on a million requests a minute: certain, and 6 %.
    judge = SequentialJudge(POLICY)
    out = run(judge, [pair(t, (1_000_000, 20_000), (1_000_000, 21_200)) for t in range(5)])
    assert Verdict.FAIL not in [j.verdict for j in out]
    assert out[-1].evidence["error_e_value"] > 1e6
    assert out[-1].evidence["error_ratio"] == pytest.approx(1.06, abs=0.002)
    assert out[-1].evidence["below_practical_ratio"] == 1.1
    judge = SequentialJudge(POLICY)
    [j] = run(judge, [pair(0, (1_000_000, 20_000), (1_000_000, 24_000))])
    assert j.verdict is Verdict.FAIL


def test_slow_requests_are_tested_like_errors() -> None:
    judge = SequentialJudge(POLICY)
    out = run(judge, [pair(t, (9000, 9), (1000, 1), slow=(9, 50)) for t in range(3)])
    assert out[-1].verdict is Verdict.FAIL
    assert out[-1].check == "latency"
    assert "slower than 500 ms" in out[-1].reason
    assert out[-1].evidence["latency_mode"] == "slow"
    # alpha is shared by the two tests: the weighted average of the e-values (0.9 errors,
    # 0.1 latency) must reach 1/alpha.
    ev = out[-1].evidence
    assert ev["statistic"] == pytest.approx(0.9 * ev["error_e_value"] + 0.1 * ev["latency_e_value"])
    assert ev["statistic"] >= ev["threshold"] == 100


def test_without_slow_counts_latency_falls_back_to_consecutive_p99() -> None:
    judge = SequentialJudge(POLICY)
    slow = [pair(t, (9000, 9), (1000, 1), p99=(300.0, 600.0)) for t in range(4)]
    out = run(judge, slow)
    assert [j.verdict for j in out] == [Verdict.INCONCLUSIVE] * 3 + [Verdict.FAIL]
    assert out[-1].check == "latency-p99"
    assert out[-1].evidence["statistic"] == 240 and out[-1].evidence["threshold"] == 180
    # At a 10 s cadence the rule still wants more than 3 minutes over, not 4 looks.
    judge = SequentialJudge(POLICY)
    fast = [pair(t, (1500, 1), (200, 0), p99=(300.0, 600.0), seconds=10) for t in range(19)]
    out = run(judge, fast)
    assert [j.verdict for j in out].index(Verdict.FAIL) == 18  # 190 s > 180 s
    assert "190 s (19 intervals) in a row" in out[-1].reason
    # An interval back under the limit starts the count again.
    judge = SequentialJudge(POLICY)
    calm = pair(17, (1500, 1), (200, 0), seconds=10)
    again = [pair(t, (1500, 1), (200, 0), p99=(300.0, 600.0), seconds=10) for t in (18, 19)]
    out = run(judge, [*fast[:17], calm, *again])
    assert Verdict.FAIL not in [j.verdict for j in out]
    # A slower canary that stays within the p99 limit is not rolled back on p99 alone.
    judge = SequentialJudge(POLICY)
    out = run(judge, [pair(t, (9000, 9), (1000, 1), p99=(300.0, 450.0)) for t in range(8)])
    assert Verdict.FAIL not in [j.verdict for j in out]


def test_the_fail_reason_carries_the_numbers() -> None:
    judge = SequentialJudge(POLICY)
    out = run(judge, [pair(t, (10800, 108), (1200, 36)) for t in range(3)])
    j = next(j for j in out if j.verdict is Verdict.FAIL)
    assert j.check == "error-rate"
    assert "canary 3.00 % (36/1,200) vs stable 1.00 % (108/10,800)" in j.reason
    assert "interval" in j.reason and "E-value" in j.reason
    assert j.evidence["queries"]["stable"]["errors"].startswith("sum:errors")
    assert j.evidence["threshold"] == 100


# -- the factory -----------------------------------------------------------------------------


def test_make_judge() -> None:
    assert isinstance(make_judge(POLICY), SequentialJudge)
    assert isinstance(make_judge(POLICY, "threshold"), ThresholdJudge)
    assert isinstance(make_judge(policy(judge="threshold")), ThresholdJudge)
    assert isinstance(make_judge(POLICY), Judge)
    with pytest.raises(ReleaseActionsError, match="`sequential`, `threshold`") as err:
        make_judge(POLICY, "bayesian")
    assert "Unknown judge `bayesian`" in str(err.value)


def test_a_stable_p99_near_zero_is_an_unbounded_difference_not_a_crash() -> None:
    # Hypothesis found it: 1000 / 2.2e-309 overflowed a float and the judge raised.
    judge = ThresholdJudge(POLICY)
    for t in range(6):  # a whole analysis window of 60 s intervals
        stable, canary = pair(t, (5000, 0), (5000, 0), p99=(2.2e-309, 120.0))
        j = judge.observe(stable, canary)
        if j.verdict is not Verdict.INCONCLUSIVE:
            break
    assert j.verdict is Verdict.FAIL, j.reason
    assert j.evidence["p99_diff_percent"] is None  # unbounded; JSON has no infinity
    json.dumps(j.evidence, allow_nan=False)
