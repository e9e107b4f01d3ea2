"""The mobile gate, judges and simulator: decisions per built-in scenario, idempotent looks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from release_actions.errors import ScenarioError
from release_actions.mobile.base import StoreState
from release_actions.mobile.judge import (
    HourCounts,
    ProportionAbove,
    ReviewTally,
    SequentialMobileJudge,
    Verdict,
)
from release_actions.mobile.policy import MobilePolicy
from release_actions.mobile.rollout import HOUR, FileStateStore, MemoryStateStore, MobileGate
from release_actions.mobile.simulator import (
    MobileWorld,
    SimulatedReviews,
    SimulatedStore,
    SimulatedVitals,
    builtin_mobile_scenarios,
    load_mobile_scenario,
    simulate,
)

POLICY = MobilePolicy()

# scenario -> (decision, stage fraction it halts at, or None)
EXPECTED: dict[str, tuple[str, tuple[float, ...] | None]] = {
    "healthy": ("completed", None),
    "crash-spike": ("halted", (0.01,)),
    "anr-regression": ("halted", (0.01, 0.05, 0.2)),
    "subtle-crash-regression": ("halted", (0.01, 0.05, 0.2)),
    "bad-reviews": ("halted", (0.05,)),
    "small-app": ("completed", None),
    "ios-healthy": ("completed", None),
    "ios-crash-spike": ("halted", (0.02, 0.05)),
}


def test_every_builtin_scenario_is_expected() -> None:
    assert set(builtin_mobile_scenarios()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_builtin_scenarios_decide_as_described(name: str, seed: int) -> None:
    decision, fractions = EXPECTED[name]
    _, scenario = load_mobile_scenario(name)
    run = simulate(scenario, POLICY, seed=seed)
    assert run.decision == decision, run.gate.state.reason if run.gate.state else ""
    if fractions is None:
        assert run.halted_at_fraction is None
    else:
        assert run.halted_at_fraction in fractions


def test_the_source_rule_halts_a_healthy_release_on_noise() -> None:
    # One crash among a few dozen users at 1 % is below 99 % crash-free: the reason the
    # default judge asks for evidence.
    _, scenario = load_mobile_scenario("healthy")
    halted = sum(
        simulate(scenario, POLICY, seed=s, judge="threshold").decision == "halted"
        for s in range(1, 6)
    )
    assert halted >= 3


def test_subtle_regression_passes_the_source_rule_but_not_the_comparison() -> None:
    # 0.3 % -> 0.6 % crashes: crash-free 99.4 % never crosses the 99 % halt line.
    counts = [HourCounts(i * HOUR, 4000, 24, 2, 40000, 120, 30) for i in range(24)]
    judge = SequentialMobileJudge(POLICY)
    for c in counts:
        judge.observe(c)
    j = judge.judge(counts, ReviewTally())
    assert j.verdict is Verdict.HALT
    assert j.check == "crash ratio"


def test_one_crash_among_twenty_users_waits() -> None:
    judge = SequentialMobileJudge(POLICY)
    hour = HourCounts(0.0, 20, 1, 0, 20000, 80, 16)
    judge.observe(hour)
    assert judge.judge([hour], ReviewTally()).verdict is Verdict.OK


def test_proportion_above_is_evidence_only_past_the_limit() -> None:
    low, high = ProportionAbove(0.01), ProportionAbove(0.01)
    low.update(8, 1000)
    high.update(40, 1000)
    assert low.log_e() < 0 < high.log_e()
    assert high.log_e() > 4.6  # e-value past 100


def _gate(tmp_path: Path) -> tuple[MobileWorld, MobileGate, FileStateStore]:
    _, scenario = load_mobile_scenario("healthy")
    world = MobileWorld(scenario, 7)
    store = FileStateStore(tmp_path / "gate.json")
    gate = MobileGate(
        SimulatedStore(world), SimulatedVitals(world), SimulatedReviews(world), POLICY, store
    )
    return world, gate, store


def test_looking_twice_in_the_same_hour_changes_nothing(tmp_path: Path) -> None:
    world, gate, store = _gate(tmp_path)
    assert gate.advance(world.now).action == "started"
    for _ in range(5):
        world.step()
        gate.advance(world.now)
    before = store.load()
    again = gate.advance(world.now + 1800)
    assert again.action == "held" and not again.changes
    assert store.load()["hours"] == before["hours"]  # type: ignore[index]
    assert store.load()["reviews"] == before["reviews"]  # type: ignore[index]


def test_a_new_process_rebuilds_the_same_evidence(tmp_path: Path) -> None:
    world, gate, store = _gate(tmp_path)
    gate.advance(world.now)
    for _ in range(30):
        world.step()
        gate.advance(world.now)
    world.step()
    fresh = MobileGate(gate.store, gate.vitals, gate.reviews, POLICY, FileStateStore(store.path))
    a = fresh.advance(world.now)
    assert a.judgement is not None
    assert a.judgement.evidence["hours"] == 31
    assert a.judgement.evidence["new_users"] == sum(h["new"][0] for h in store.load()["hours"])  # type: ignore[index]


def test_advances_only_after_the_stage_time(tmp_path: Path) -> None:
    world, gate, _ = _gate(tmp_path)
    gate.advance(world.now)
    actions = []
    for _ in range(25):
        world.step()
        actions.append(gate.advance(world.now).action)
    assert actions[:23] == ["held"] * 23
    assert actions[23] == "advanced" and world.fraction == 0.05


def test_halted_stays_halted_and_a_person_resumes() -> None:
    _, scenario = load_mobile_scenario("crash-spike")
    run = simulate(scenario, POLICY, seed=1)
    assert run.world.state is StoreState.HALTED
    look = run.gate.advance(run.world.now + 2 * HOUR)
    assert look.action == "none" and not look.changes
    resumed = run.gate.resume(run.world.now + 3 * HOUR, by="octocat", reason="fixed server side")
    assert resumed.changes[0].changed and run.world.state is StoreState.IN_PROGRESS


def test_memory_state_store_copies() -> None:
    store = MemoryStateStore()
    data = {"a": [1]}
    store.save(data)
    data["a"].append(2)
    assert store.load() == {"a": [1]}


def test_scenario_file_errors_name_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("platform: android\ndau: 1000\nnew: {crash_rat: 0.01}\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as info:
        load_mobile_scenario(None, path)
    issue = info.value.issues[0]
    assert issue.line == 3 and "crash_rat" in issue.key


def test_critical_patterns_in_english_and_japanese() -> None:
    critical = POLICY.critical()
    assert critical.search("Crashes on launch")
    assert critical.search("起動しない。最悪")
    assert not critical.search("Great app, love it")


def test_state_is_json(tmp_path: Path) -> None:
    world, gate, store = _gate(tmp_path)
    gate.advance(world.now)
    world.step()
    gate.advance(world.now)
    json.loads(store.path.read_text(encoding="utf-8"))
