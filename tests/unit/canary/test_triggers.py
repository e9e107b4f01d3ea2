"""Rollback triggers of source §6.1: sustained over their windows, and missing data never clears them."""

from __future__ import annotations

import math

import pytest

from release_actions.canary.triggers import CountTrigger, SustainedTrigger, Triggers
from release_actions.core.policy import default_policy
from release_actions.core.settings import Overrides, resolve
from release_actions.metrics.base import Track, TrafficSample
from release_actions.targets.base import HealthSample


def error_trigger() -> SustainedTrigger:
    return SustainedTrigger("error_rate", "Error rate", "%", 5.0, 120)


def feed(trigger: SustainedTrigger, values: list[float | None], step: float = 10) -> list[float]:
    """Feed one value per ``step`` seconds; returns the end times at which it fired."""
    fired = []
    for i, v in enumerate(values):
        if trigger.observe(v, i * step, (i + 1) * step) is not None:
            fired.append((i + 1) * step)
    return fired


def test_error_rate_fires_only_after_two_full_minutes() -> None:
    fired = feed(error_trigger(), [7.0] * 15)
    assert fired[0] == 120  # 12 samples of 10 s: the whole window is covered
    assert 110 not in fired


def test_a_single_spike_never_fires() -> None:
    assert feed(error_trigger(), [50.0] + [1.0] * 20) == []


def test_threshold_is_strictly_above() -> None:
    assert feed(error_trigger(), [5.0] * 20) == []


def test_a_healthy_sample_clears_the_breach() -> None:
    values = [7.0] * 11 + [4.0] + [7.0] * 12
    fired = feed(error_trigger(), values)
    assert fired == [240]  # the clock restarted after the healthy sample at 110-120


@pytest.mark.parametrize("missing", [None, math.nan, math.inf])
def test_missing_data_neither_clears_nor_fires(missing: float | None) -> None:
    values: list[float | None] = [7.0] * 6 + [missing] * 3 + [7.0] * 3
    fired = feed(error_trigger(), values)
    # The gap (60-90 s) did not reset the breach that began at 0: it fires at 120.
    assert fired == [120]
    # ...and data that is all missing never fires.
    assert feed(error_trigger(), [missing] * 30) == []


def test_p99_over_five_seconds_for_five_minutes() -> None:
    policy = default_policy().monitor.triggers
    triggers = Triggers(policy)
    fired_at = None
    for i in range(40):
        sample = TrafficSample(Track.CANARY, i * 10, (i + 1) * 10, 1000, 0, 6000.0)
        firing = triggers.observe_traffic(sample)
        if firing is not None:
            fired_at = (i + 1) * 10
            assert firing.name == "p99_latency"
            assert "5 minutes" in firing.reason
            break
    assert fired_at == 300


def test_samples_without_requests_are_missing_not_healthy() -> None:
    triggers = Triggers(default_policy().monitor.triggers)
    for i in range(6):
        triggers.observe_traffic(TrafficSample(None, i * 10, (i + 1) * 10, 100, 10, 100.0))
    assert triggers.error_rate.since == 0
    assert triggers.observe_traffic(TrafficSample(None, 60, 70, 0, 0, None)) is None
    assert triggers.error_rate.since == 0  # an empty interval did not clear the breach


def test_hotfix_threshold_override() -> None:
    hotfix = resolve(default_policy(), Overrides(release_type="hotfix"))
    triggers = Triggers(hotfix.monitor.triggers)
    fired = None
    for i in range(13):
        fired = fired or triggers.observe_traffic(
            TrafficSample(None, i * 10, (i + 1) * 10, 1000, 8, 100.0)
        )
    assert fired is not None and fired.threshold == 0.5


def health(restarts: int = 0, failures: int = 0) -> HealthSample:
    return HealthSample(ready=True, restarts=restarts, health_check_failures=failures)


def test_health_check_failures_more_than_three_within_a_minute() -> None:
    trigger = CountTrigger("health_check_failures", "health-check failures", 3, 60)
    trigger.baseline(0)
    assert trigger.observe(2, 10) is None
    assert trigger.observe(3, 20) is None  # exactly 3 is not more than 3
    firing = trigger.observe(4, 30)
    assert firing is not None and firing.value == 4


def test_health_check_failures_spread_over_two_minutes_do_not_fire() -> None:
    trigger = CountTrigger("health_check_failures", "health-check failures", 3, 60)
    trigger.baseline(0)
    assert trigger.observe(2, 10) is None
    assert trigger.observe(4, 90) is None  # the first two left the window at 70
    assert trigger.observe(5, 100) is None


def test_restart_counter_reset_counts_the_new_value() -> None:
    trigger = CountTrigger("pod_restarts", "restarts", 5, 300)
    trigger.baseline(10)
    assert trigger.observe(13, 60) is None  # +3
    # Pods replaced: the counter starts again from 0; its 3 are new restarts (3+3 > 5).
    firing = trigger.observe(3, 120)
    assert firing is not None and firing.value == 6


def test_missing_health_is_skipped_not_zero() -> None:
    triggers = Triggers(default_policy().monitor.triggers)
    triggers.baseline_health(health(restarts=0))
    assert triggers.observe_health(health(restarts=3), 60) is None
    assert triggers.observe_health(None, 120) is None
    firing = triggers.observe_health(health(restarts=6), 180)
    assert firing is not None and firing.name == "pod_restarts"


def test_the_reason_shows_the_breach_not_the_threshold() -> None:
    """A window at 0.8 % whose last interval was 0.504 % must not read "0.50% > 0.50%"."""
    trigger = SustainedTrigger("error_rate", "Error rate", "%", 0.5, 120)
    fired = None
    values = [0.8] * 11 + [0.504]
    for i, value in enumerate(values):
        fired = trigger.observe(value, i * 10, (i + 1) * 10)
    assert fired is not None
    assert "0.50% > 0.50%" not in fired.reason
    assert fired.reason.startswith("Error rate 0.78% over the window (lowest 0.504%) > 0.50%")
