"""The engine's gate mode (`Settings.gate`, one look per run): the judge's evidence, the triggers
and the step's looks carried from one run to the next through the saved state."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from typing import Any

import pytest

from release_actions.canary.flag_simulator import build_flag, flag_settings
from release_actions.canary.judge import (
    ResumableJudge,
    SequentialJudge,
    ThresholdJudge,
    make_judge,
)
from release_actions.canary.model import RunState
from release_actions.canary.rollout import CanaryEngine
from release_actions.canary.step import keep_looks, look_entry
from release_actions.canary.triggers import Triggers
from release_actions.core.policy import Policy, default_policy, default_policy_data
from release_actions.core.settings import Overrides, Settings, resolve
from release_actions.errors import ReleaseActionsError, TargetChangedError
from release_actions.metrics.base import Track, TrafficSample
from release_actions.simulation.scenario import load_scenario

DAY = 86_400
HOUR = 3_600


def day_policy() -> Policy:
    data = default_policy_data()
    data["feature_flags"]["guard"]["step_seconds"] = DAY
    return Policy.model_validate(data)


def gate_settings(policy: Policy | None = None) -> Settings:
    s = resolve(
        policy or day_policy(),
        Overrides(strategy="canary", target="simulated", provider="simulated"),
    )
    return replace(flag_settings(s), gate=True)


# -- the judge's evidence outlives the process --------------------------------------------------


def sample(track: Track, start: float, requests: float, errors: float) -> TrafficSample:
    return TrafficSample(
        track, start, start + 60, requests, errors, p99_ms=250.0, slow=requests / 500
    )


def samples(seed: int, n: int, canary_rate: float) -> list[tuple[TrafficSample, TrafficSample]]:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        s_req, c_req = float(rng.randint(800, 1200)), float(rng.randint(150, 400))
        s_err = float(sum(rng.random() < 0.01 for _ in range(int(s_req))))
        c_err = float(sum(rng.random() < canary_rate for _ in range(int(c_req))))
        out.append(
            (
                sample(Track.STABLE, 60.0 * k, s_req, s_err),
                sample(Track.CANARY, 60.0 * k, c_req, c_err),
            )
        )
    return out


@pytest.mark.parametrize("kind", ["sequential", "threshold"])
@pytest.mark.parametrize("canary_rate", [0.01, 0.03])
def test_a_judge_restored_in_each_run_decides_as_one_that_lived_through_them(
    kind: str, canary_rate: float
) -> None:
    policy = default_policy().canary.analysis
    alive = make_judge(policy, kind)
    saved: dict[str, Any] | None = None
    for k, (stable, canary) in enumerate(samples(7, 40, canary_rate)):
        if k % 10 == 0:
            alive.reset_step()  # a new step every ten looks
        again = make_judge(policy, kind)
        assert isinstance(again, ResumableJudge)
        if saved is not None:
            again.restore(json.loads(json.dumps(saved)))  # through the flag's JSON
        if k % 10 == 0:
            again.reset_step()
        one, other = alive.observe(stable, canary), again.observe(stable, canary)
        assert (one.verdict, one.reason, one.check, one.early) == (
            other.verdict,
            other.reason,
            other.check,
            other.early,
        )
        assert json.dumps(one.evidence, default=str) == json.dumps(other.evidence, default=str)
        saved = again.snapshot()
    assert isinstance(alive, ResumableJudge)
    assert json.dumps(alive.snapshot()) == json.dumps(saved)


def test_the_sequential_judge_keeps_the_rollouts_evidence_and_resets_the_steps() -> None:
    judge = SequentialJudge(default_policy().canary.analysis)
    for stable, canary in samples(3, 5, 0.01):
        judge.observe(stable, canary)
    snap = judge.snapshot()
    judge.reset_step()
    after = judge.snapshot()
    assert after["errors"] == snap["errors"] and after["totals"] == snap["totals"]
    assert after["step_requests"] == 0 and after["step_intervals"] == 0


def test_a_judge_refuses_evidence_of_the_other_kind() -> None:
    policy = default_policy().canary.analysis
    with pytest.raises(ReleaseActionsError, match="keeps the judge it started with"):
        ThresholdJudge(policy).restore(SequentialJudge(policy).snapshot())


def test_triggers_restored_keep_a_breach_that_began_in_an_earlier_run() -> None:
    rules = default_policy().monitor.triggers
    first = Triggers(rules)
    bad = TrafficSample(Track.CANARY, 0.0, 60.0, 1000.0, 100.0, p99_ms=200.0)
    assert first.observe_traffic(bad) is None  # 60 s of the 120 s window
    second = Triggers(rules)
    second.restore(json.loads(json.dumps(first.snapshot())))
    fired = second.observe_traffic(replace(bad, start=60.0, end=120.0))
    assert fired is not None and fired.name == "error_rate"
    assert Triggers(rules).observe_traffic(replace(bad, start=60.0, end=120.0)) is None


# -- the looks kept for the chart -----------------------------------------------------------------


def entry(k: int, step: int) -> dict[str, Any]:
    c = TrafficSample(Track.CANARY, 0, 1, 100.0, 1.0, p99_ms=None)
    s = TrafficSample(Track.STABLE, 0, 1, 300.0, 3.0, p99_ms=None)
    return look_entry(HOUR * k, HOUR * (k + 1), step, 25 * (step + 1), c, s, "pass")


def test_the_looks_kept_are_bounded_and_merged_exactly() -> None:
    looks: list[dict[str, Any]] = []
    for k in range(100):
        looks = keep_looks(looks, entry(k, k // 25), cap=20)
    assert len(looks) == 20
    # Every look is still counted, merged within its step, and the hours stay contiguous.
    assert sum(x["canary"][0] for x in looks) == 100 * 100.0
    assert sum(x["stable"][1] for x in looks) == 100 * 3.0
    assert looks[0]["from"] == 0 and looks[-1]["to"] == 100 * HOUR
    assert all(a["to"] == b["from"] for a, b in zip(looks, looks[1:], strict=False))
    for x in looks:
        assert x["from"] // (25 * HOUR) == (x["to"] - 1) // (25 * HOUR)  # never across steps


def test_a_look_without_data_is_never_merged_into_one_with_data() -> None:
    none = look_entry(0, HOUR, 0, 25, None, None, "error")
    looks = keep_looks([none], entry(1, 0), cap=1)
    assert looks == [entry(1, 0)]


# -- the engine, one look per run -------------------------------------------------------------------


def test_run_state_saves_no_gate_key_outside_a_gate() -> None:
    assert "gate" not in RunState("on", None, 0.0).to_dict()


def test_a_gate_needs_the_canary_strategy() -> None:
    name, scenario = load_scenario("flag-healthy")
    r = build_flag(scenario, name=name)
    s = replace(gate_settings(), strategy="blue-green")
    with pytest.raises(ReleaseActionsError, match="runs the canary strategy"):
        CanaryEngine(r.target, r.provider, make_judge(s.analysis), s, r.clock)


def test_a_weight_changed_by_hand_stops_the_gate_without_a_change() -> None:
    name, scenario = load_scenario("flag-healthy")
    r = build_flag(scenario, name=name)
    s = gate_settings()

    def run() -> Any:
        return CanaryEngine(r.target, r.provider, make_judge(s.analysis), s, r.clock).run("on")

    run()
    r.clock.sleep(HOUR)
    run()
    r.target.set_weight(10)  # a person, in the UI
    state = json.dumps(r.target.state)
    r.clock.sleep(HOUR)
    with pytest.raises(TargetChangedError) as caught:
        run()
    assert caught.value.live == 10 and caught.value.expected == 25
    assert "is at 10% now, but the rollout left it at 25% (step 1/4" in caught.value.message
    assert json.dumps(r.target.state) == state
    assert r.target.canary_weight == 10


def test_a_hold_keeps_the_flag_and_the_next_run_begins_the_step_again() -> None:
    """No data is never health: four failed looks in a row are an error; with `on_error:
    hold` the flag stays at 50 %, and the runs after it begin the step again until the
    metrics are back, then the rollout goes on."""
    data = default_policy_data()
    data["feature_flags"]["guard"]["step_seconds"] = 600
    data["canary"]["analysis"]["on_error"] = "hold"
    s = gate_settings(Policy.model_validate(data))
    name, scenario = load_scenario("flag-provider-down")  # down from +700 s for 600 s
    r = build_flag(scenario, name=name)
    origin = r.clock.now()
    actions: list[tuple[int, str, int]] = []
    for _ in range(80):
        engine = CanaryEngine(r.target, r.provider, make_judge(s.analysis), s, r.clock)
        outcome = engine.run("on")
        gate = [e for e in outcome.events if e.kind == "gate"]
        phase = (r.target.state or {}).get("phase")
        action = str(gate[-1].data["action"]) if gate else str(phase)
        actions.append((round(r.clock.now() - origin), action, r.target.canary_weight))
        if phase == "done":
            break
        r.clock.sleep(60)
    assert actions[-1][1] == "done"
    held = [a for a in actions if a[1] == "held"]
    # Four looks with no data at 50 % (+720 to +900), then held there.
    assert held[0][0] == 900 and held[0][2] == 50
    # While the provider is down each run begins the step again, and its first look fails.
    assert ("restarted" in {a[1] for a in actions}) and all(a[2] == 50 for a in held)
    restarts = [a for a in actions if a[1] == "restarted"]
    assert restarts[0][0] == 960
    # Back after +1300: the step begins once more and runs its whole 600 s, then on.
    last = restarts[-1][0]
    assert 1300 <= last < 1400
    assert [a[1] for a in actions if a[0] > last][:9] == ["holding"] * 9
    assert r.target.exposure() == 100
