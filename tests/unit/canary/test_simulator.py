"""The simulator: seeded traffic, events, provider faults, scenario files, the simulated target."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from release_actions.canary.simulator import Rehearsal, build
from release_actions.errors import MetricsError, NoDataError, ScenarioError, TargetError
from release_actions.metrics.base import MetricsProvider, Track
from release_actions.simulation.clock import VirtualClock
from release_actions.simulation.draws import binomial, lognormal, mixture_quantile, poisson
from release_actions.simulation.scenario import Scenario, builtin_scenarios, load_scenario
from release_actions.targets.base import DeployTarget
from release_actions.targets.simulated import SimulatedTarget

REQUIRED = {
    "healthy",
    "error-spike",
    "latency-regression",
    "slow-burn",
    "low-traffic",
    "flaky-provider",
    "provider-down",
}


def scenario(**data: Any) -> Scenario:
    return Scenario.model_validate(data)


# -- clock and random counts -----------------------------------------------------------


def test_virtual_clock_only_moves_when_slept() -> None:
    clock = VirtualClock(1000.0)
    clock.sleep(1200)
    assert clock.now() == 2200.0
    with pytest.raises(ValueError, match="negative"):
        clock.sleep(-1)


@pytest.mark.parametrize("lam", [0.5, 10, 200])
def test_poisson_mean(lam: float) -> None:
    rng = random.Random(7)
    n = 3000
    mean = sum(poisson(rng, lam) for _ in range(n)) / n
    assert mean == pytest.approx(lam, rel=0.08, abs=0.05)


@pytest.mark.parametrize(("n", "p"), [(20, 0.3), (5000, 0.001), (5000, 0.2), (100, 0.9)])
def test_binomial_mean_and_bounds(n: int, p: float) -> None:
    rng = random.Random(3)
    draws = [binomial(rng, n, p) for _ in range(2000)]
    assert all(0 <= d <= n for d in draws)
    assert sum(draws) / len(draws) == pytest.approx(n * p, rel=0.1, abs=0.1)


def test_lognormal_matches_p50_and_p99() -> None:
    mu, sigma = lognormal(80, 300)
    assert mixture_quantile(0.5, [(1.0, mu, sigma)]) == pytest.approx(80, rel=1e-6)
    assert mixture_quantile(0.99, [(1.0, mu, sigma)]) == pytest.approx(300, rel=1e-6)


# -- traffic ------------------------------------------------------------------------------


def canary_world(weight: int = 20, **data: Any) -> Rehearsal:
    world = build(scenario(**data))
    world.target.begin("v2")
    world.target.set_weight(weight)
    return world


def test_same_seed_same_traffic_and_windows_add_up() -> None:
    a, b = canary_world(), canary_world()
    a.clock.sleep(600)
    b.clock.sleep(600)
    t0 = a.simulation.origin
    whole = a.provider.query(Track.CANARY, t0, t0 + 600)
    assert whole == b.provider.query(Track.CANARY, t0, t0 + 600)
    halves = [a.provider.query(Track.CANARY, t0 + s, t0 + s + 300) for s in (0, 300)]
    assert whole.requests == sum(h.requests for h in halves)
    assert whole.errors == sum(h.errors for h in halves)


def test_weight_splits_the_traffic() -> None:
    world = canary_world(weight=20, traffic={"rps": 100})
    world.clock.sleep(600)
    t0 = world.simulation.origin
    canary = world.provider.query(Track.CANARY, t0, t0 + 600)
    stable = world.provider.query(Track.STABLE, t0, t0 + 600)
    both = world.provider.query(None, t0, t0 + 600)
    assert canary.requests / (canary.requests + stable.requests) == pytest.approx(0.2, abs=0.02)
    assert both.requests == canary.requests + stable.requests


def test_weight_override() -> None:
    world = canary_world(weight=5, traffic={"rps": 100, "canary_weight_override": 50})
    world.clock.sleep(300)
    t0 = world.simulation.origin
    c = world.provider.query(Track.CANARY, t0, t0 + 300)
    s = world.provider.query(Track.STABLE, t0, t0 + 300)
    assert c.requests / (c.requests + s.requests) == pytest.approx(0.5, abs=0.03)


def test_jump_and_slow_burn() -> None:
    world = canary_world(
        events=[
            {"at": 100, "track": "canary", "error_rate": 0.05},
            {"at": 200, "track": "canary", "error_rate": 0.15, "ramp": 100},
        ]
    )
    s = world.simulation
    assert s.error_rate("canary", 50) == pytest.approx(0.0003)
    assert s.error_rate("canary", 150) == pytest.approx(0.05)
    assert s.error_rate("canary", 250) == pytest.approx(0.10)  # halfway up the ramp
    assert s.error_rate("canary", 400) == pytest.approx(0.15)
    assert s.error_rate("stable", 400) == pytest.approx(0.0003)


def test_latency_event_raises_p99_and_slow_counts() -> None:
    world = canary_world(
        events=[{"at": 0, "track": "canary", "latency_ms": {"p50": 150, "p99": 1200}}]
    )
    world.clock.sleep(300)
    t0 = world.simulation.origin
    canary = world.provider.query(Track.CANARY, t0, t0 + 300, slow_ms=500)
    stable = world.provider.query(Track.STABLE, t0, t0 + 300, slow_ms=500)
    assert canary.p99_ms is not None and stable.p99_ms is not None
    assert canary.p99_ms == pytest.approx(1200, rel=0.15)
    assert stable.p99_ms == pytest.approx(300, rel=0.1)
    assert canary.slow is not None and stable.slow is not None
    assert canary.slow / canary.requests > 10 * stable.slow / stable.requests


def test_provider_outage_raises_and_flaky_raises_sometimes() -> None:
    world = canary_world(
        events=[
            {"at": 60, "provider": "down", "for": 60},
            {"at": 200, "provider": "flaky", "probability": 0.3, "for": 10000},
        ]
    )
    t0 = world.simulation.origin
    world.clock.sleep(90)
    with pytest.raises(MetricsError, match="provider down"):
        world.provider.query(Track.CANARY, t0, t0 + 60)
    assert not world.provider.is_online()
    world.clock.sleep(60)
    assert world.provider.query(Track.CANARY, t0, t0 + 60).requests > 0
    failures = 0
    for _ in range(400):
        world.clock.sleep(10)
        try:
            world.provider.query(Track.CANARY, world.clock.now() - 10, world.clock.now())
        except MetricsError:
            failures += 1
    assert failures / 400 == pytest.approx(0.3, abs=0.07)


def test_no_traffic_is_no_data_never_zero() -> None:
    world = build(scenario())  # no canary running: its track has no requests
    world.clock.sleep(120)
    t0 = world.simulation.origin
    with pytest.raises(NoDataError, match="probably no traffic"):
        world.provider.query(Track.CANARY, t0, t0 + 120)
    with pytest.raises(NoDataError):
        world.provider.query(Track.STABLE, t0 + 200, t0 + 300)  # all of it in the future


def test_restarts_and_health_check_failures_per_track() -> None:
    world = canary_world(
        events=[
            {"at": 100, "track": "canary", "restarts": 6, "ramp": 60},
            {"at": 100, "track": "stable", "health_check_failures": 2},
        ]
    )
    world.clock.sleep(130)
    h = world.target.health(Track.CANARY)
    assert (h.restarts, h.health_check_failures) == (3, 0)
    world.clock.sleep(100)
    assert world.target.health(Track.CANARY).restarts == 6
    assert world.target.health(Track.STABLE).health_check_failures == 2
    assert world.target.health(None).restarts == 6
    world.target.rollback()  # the crash-looping version no longer runs
    assert world.target.health(None).restarts == 0


# -- scenario files --------------------------------------------------------------------------


def test_builtin_scenarios_all_load() -> None:
    names = set(builtin_scenarios())
    assert names >= REQUIRED
    for name in names:
        loaded_name, sc = load_scenario(name)
        assert loaded_name == name and sc.description


def test_scenario_defaults_and_steps() -> None:
    sc = scenario(steps=[{"weight": 10, "pause_seconds": 60}, {"weight": 100}])
    steps = sc.resolved_steps()
    assert steps is not None and [s.weight for s in steps] == [10, 100]
    assert scenario(steps="workflow").resolved_steps() is not None
    assert scenario().resolved_steps() is None


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yml"
    path.write_text(text, encoding="utf-8")
    return path


def issues(exc: ScenarioError) -> list[tuple[int | None, str, str]]:
    return [(i.line, i.key, i.message) for i in exc.issues]


def test_unknown_key_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "traffic: {rps: 200}\ncanary:\n  error_rate: 0.01\n  eror_rate: 0.02\n",
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(path=path)
    [(line, key, message)] = issues(info.value)
    assert (line, key) == (4, "canary.eror_rate")
    assert "unknown key: did you mean 'error_rate'?" in message
    assert info.value.file == str(path) and info.value.line == 4


@pytest.mark.parametrize(
    ("text", "line", "key", "fragment"),
    [
        ("events:\n  - {at: 10, track: canary}\n", 2, "events.0", "needs one of"),
        ("events:\n  - {at: 10, provider: down}\n", 2, "events.0", "needs `for`"),
        ("events:\n  - {at: 10, provider: flaky, for: 5}\n", 2, "events.0", "probability"),
        ("events:\n  - {at: 1, provider: down, for: 5, track: canary}\n", 2, "events.0", "only"),
        ("canary:\n  latency_ms: {p50: 300, p99: 200}\n", 2, "canary.latency_ms.p99", "above"),
        ("steps: canary\n", 1, "steps", "unknown preset"),
        ("steps:\n  - {weight: 50}\n  - {weight: 10}\n", 1, "steps", "rise and end at 100"),
        ("traffic:\n  rps: -1\n", 2, "traffic.rps", "greater than 0"),
        ("events:\n  - {at: 1, track: canary, error_rate: 2}\n", 2, "events.0.error_rate", "1"),
    ],
)
def test_invalid_scenarios(tmp_path: Path, text: str, line: int, key: str, fragment: str) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path=write(tmp_path, text))
    found = issues(info.value)
    assert any(n == line and k == key and fragment in m for n, k, m in found), found


def test_missing_file_and_unknown_builtin(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="does not exist"):
        load_scenario(path=tmp_path / "nope.yml")
    with pytest.raises(ScenarioError, match="no built-in scenario") as info:
        load_scenario("error_spike")
    assert info.value.hint is not None and "error-spike" in info.value.hint


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="not valid YAML"):
        load_scenario(path=write(tmp_path, "traffic: {rps: 200\n"))
    with pytest.raises(ScenarioError, match="must be a mapping"):
        load_scenario(path=write(tmp_path, "- 1\n- 2\n"))


# -- the simulated target --------------------------------------------------------------------


def test_simulated_parts_implement_the_interfaces() -> None:
    world = build(scenario())
    assert isinstance(world.target, DeployTarget)
    assert isinstance(world.provider, MetricsProvider)


def test_target_begin_weight_promote() -> None:
    target = SimulatedTarget(VirtualClock(), stable_version="v1")
    target.begin("v2")
    target.begin("v2")  # the same version resumes
    target.set_weight(20)
    s = target.status()
    assert (s.stable_version, s.canary_version, s.canary_weight, s.known_good) == (
        "v1",
        "v2",
        20,
        "v1",
    )
    with pytest.raises(TargetError, match="still in progress"):
        target.begin("v3")
    with pytest.raises(TargetError, match="0 to 100"):
        target.set_weight(120)
    target.promote()
    target.promote()  # twice is harmless
    s = target.status()
    assert (s.stable_version, s.canary_version, s.known_good) == ("v2", None, "v1")
    with pytest.raises(TargetError, match="No canary"):
        target.set_weight(10)


def test_rollback_twice_is_a_no_op() -> None:
    target = SimulatedTarget(VirtualClock(), stable_version="v1")
    target.begin("v2")
    target.set_weight(50)
    first = target.rollback()
    second = target.rollback()
    assert (first.changed, first.from_version, first.to_version) == (True, "v2", "v1")
    assert (second.changed, second.to_version) == (False, "v1")
    assert target.rollbacks == 1
    assert target.status().stable_version == "v1"


def test_rollback_after_promote_goes_to_known_good_once() -> None:
    target = SimulatedTarget(VirtualClock(), stable_version="v1")
    target.begin("v2")
    target.promote()
    assert target.rollback().to_version == "v1"
    assert not target.rollback().changed  # `rollout undo` twice would flip back to v2
    assert target.status().stable_version == "v1"


def test_state_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "target.json"
    clock = VirtualClock()
    target = SimulatedTarget(clock, stable_version="v1", state_file=path)
    target.begin("v2")
    clock.sleep(60)
    target.set_weight(20)
    target.save_state({"version": "v2", "step_index": 1})
    again = SimulatedTarget(VirtualClock(), state_file=path)
    assert again.status() == target.status()
    assert again.history == target.history
    assert again.at(clock.now() - 30)[2] == 0 and again.at(clock.now())[2] == 20
    assert json.loads(path.read_text())["world"]["now"] == clock.now()
    assert not (tmp_path / "target.json.tmp").exists()


def test_state_must_be_json(tmp_path: Path) -> None:
    target = SimulatedTarget(VirtualClock())
    with pytest.raises(TypeError):
        target.save_state({"when": object()})


def test_corrupt_state_file(tmp_path: Path) -> None:
    path = tmp_path / "target.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(TargetError, match="Cannot read") as info:
        SimulatedTarget(VirtualClock(), state_file=path)
    assert info.value.hint is not None and "Delete the file" in info.value.hint
    assert info.value.file == str(path)
    path.write_text('{"schema": 99}', encoding="utf-8")
    with pytest.raises(TargetError, match="schema"):
        SimulatedTarget(VirtualClock(), state_file=path)


def test_p99_is_never_nan() -> None:
    world = canary_world(weight=1, traffic={"rps": 2})
    world.clock.sleep(3600)
    t0 = world.simulation.origin
    for start in range(0, 3600, 60):
        try:
            sample = world.provider.query(Track.CANARY, t0 + start, t0 + start + 60)
        except NoDataError:
            continue
        assert sample.p99_ms is not None and math.isfinite(sample.p99_ms)
