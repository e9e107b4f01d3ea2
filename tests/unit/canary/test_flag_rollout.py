"""A flag's guarded gradual rollout (source §5.5) on the canary engine: `on` users are the canary
track, `off` users the stable one, and a regression sets the flag back to the last safe percentage."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from release_actions.canary.flag_simulator import build_flag, flag_settings, flag_steps
from release_actions.canary.judge import make_judge
from release_actions.canary.model import Decision, StepStatus
from release_actions.canary.rollout import CanaryEngine
from release_actions.canary.simulator import Rehearsal
from release_actions.core.policy import default_policy, default_policy_data
from release_actions.core.settings import Overrides, Settings, resolve
from release_actions.errors import TargetError
from release_actions.simulation.clock import VirtualClock
from release_actions.simulation.scenario import load_scenario
from release_actions.targets.simulated_flag import (
    SimulatedFlagTarget,
    last_passed_percent,
)
from tests.conftest import RunCli


def settings() -> Settings:
    return flag_settings(resolve(default_policy(), Overrides(strategy="canary")))


def rehearsal(scenario: str, state_file: Path | None = None, **kw: Any) -> Rehearsal:
    name, sc = load_scenario(scenario)
    return build_flag(sc, name=name, state_file=state_file, **kw)


def engine_for(r: Rehearsal, s: Settings | None = None) -> CanaryEngine:
    s = s or settings()
    return CanaryEngine(r.target, r.provider, make_judge(s.analysis), s, r.clock)


def flag_target(r: Rehearsal) -> SimulatedFlagTarget:
    assert isinstance(r.target, SimulatedFlagTarget)
    return r.target


def rehearse_json(run_cli: RunCli, *args: str) -> tuple[int, dict[str, Any]]:
    r = run_cli("rehearse", "--flag", *args, "--json")
    return r.code, json.loads(r.stdout)


# -- the command line ------------------------------------------------------------------------


def test_healthy_flag_reaches_100_percent(run_cli: RunCli) -> None:
    code, out = rehearse_json(run_cli, "--scenario", "flag-healthy")
    assert code == 0
    assert out["decision"] == "promoted"
    assert out["strategy"] == "flag"
    assert out["target"] == "simulated-flag"
    assert [s["weight"] for s in out["steps"]] == [25, 50, 75, 100]
    assert all(s["result"] == "passed" for s in out["steps"])
    # Every step below 100 % was judged on `on` against `off` for its whole 10 minutes.
    assert [s["analysis"] for s in out["steps"]] == [True, True, True, False]
    for step in out["steps"]:
        assert step["ended_at_s"] - step["started_at_s"] == pytest.approx(600, abs=1)
    flag = out["flag"]
    assert flag["key"] == "new-booking-flow"
    assert flag["stages"] == [25, 50, 75, 100]
    assert flag["percent"] == 100
    assert flag["last_safe_percent"] == 100
    assert flag["rolled_back_to_percent"] is None
    assert flag["percent_history"] == [25, 50, 75, 100]
    assert out["rollback"] is None
    assert "monitor" not in out


def test_the_default_flag_scenario_is_the_healthy_one(run_cli: RunCli) -> None:
    code, out = rehearse_json(run_cli)
    assert code == 0
    assert out["scenario"] == "flag-healthy"


def test_regression_during_50_percent_goes_back_to_25(run_cli: RunCli) -> None:
    code, out = rehearse_json(run_cli, "--scenario", "flag-regression")
    assert code == 1
    assert out["decision"] == "rolled_back"
    assert [(s["weight"], s["result"]) for s in out["steps"]] == [(25, "passed"), (50, "failed")]
    assert "error rate is higher" in out["reason"]
    flag = out["flag"]
    assert flag["last_safe_percent"] == 25
    assert flag["rolled_back_to_percent"] == 25
    assert flag["percent"] == 25
    assert flag["percent_history"] == [25, 50, 25]
    record = out["rollback"]
    assert record["id"].startswith("RB-")
    assert record["from_version"] == "new-booking-flow on for 50%"
    assert record["to_version"] == "new-booking-flow on for 25%"
    # Detected during the 50 % step, after the `on` variation started failing at 14:00.
    assert 840 < out["detected_at_s"] < 1200
    # The fault is in `on` itself: the 25 % still served it keep the service from recovering.
    assert out["recovery"]["recovered"] is False


def test_provider_down_during_a_step_is_never_health(run_cli: RunCli) -> None:
    code, out = rehearse_json(run_cli, "--scenario", "flag-provider-down")
    assert code == 1
    assert out["decision"] == "rolled_back"
    assert [(s["weight"], s["result"]) for s in out["steps"]] == [(25, "passed"), (50, "error")]
    assert "measurement errors in a row" in out["reason"]
    assert out["flag"]["rolled_back_to_percent"] == 25
    assert out["flag"]["percent_history"] == [25, 50, 25]
    assert out["recovery"]["recovered"] is False  # nor is the recovery read from no data


def test_flag_excludes_strategy_and_mobile(run_cli: RunCli) -> None:
    for other in (("--strategy", "canary"), ("--mobile",)):
        r = run_cli("rehearse", "--flag", *other)
        assert r.code == 2
        assert "excludes" in r.stderr and other[0] in r.stderr


def test_a_scenario_with_its_own_steps_is_refused(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "steps.yml"
    path.write_text("steps: workflow\n", "utf-8")
    r = run_cli("rehearse", "--flag", "--scenario-file", str(path))
    assert r.code != 0
    assert "feature_flags.stages.gradual" in r.stdout + r.stderr


def test_person_facing_output_names_the_percentages(run_cli: RunCli) -> None:
    r = run_cli("rehearse", "--flag", "--scenario", "flag-regression")
    assert r.code == 1
    assert "25% → 50% → 25%; last safe 25%" in r.stdout
    assert r.outputs["flag-percent"] == "25"
    assert r.outputs["decision"] == "rolled_back"


# -- the engine on the flag ------------------------------------------------------------------------


def test_steps_come_from_the_policy() -> None:
    data = default_policy_data()
    data["feature_flags"]["stages"]["gradual"] = [10, 100]
    data["feature_flags"]["guard"]["step_seconds"] = 120
    from release_actions.core.policy import Policy

    s = resolve(Policy.model_validate(data), Overrides(strategy="canary"))
    assert [(st.weight, st.pause_seconds) for st in flag_steps(s)] == [(10, 120), (100, 120)]


def test_on_regression_off_turns_the_flag_off() -> None:
    r = rehearsal("flag-regression", on_regression="off")
    outcome = engine_for(r).run("on")
    assert outcome.decision is Decision.ROLLED_BACK
    target = flag_target(r)
    assert target.exposure() == 0
    assert target.percent_history() == [25, 50, 0]
    assert outcome.record is not None
    assert outcome.record["to_version"] == "new-booking-flow off"
    # Off, nobody is served the failing variation: the service recovers.
    assert outcome.recovery is not None and outcome.recovery.recovered


def test_killed_before_the_rollback_resumes_to_one_rollback(tmp_path: Path) -> None:
    state = tmp_path / "flag.json"
    r = rehearsal("flag-regression", state)
    engine = engine_for(r)
    engine.roller.target = CrashAround(flag_target(r), before=True)  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt):
        engine.run("on")
    saved = r.target.status().state or {}
    assert saved["phase"] == "rolling_back"
    assert flag_target(r).exposure() == 50  # the kill came first

    again = rehearsal("flag-regression", state)
    outcome = engine_for(again).run("on")
    assert outcome.resumed
    assert outcome.decision is Decision.ROLLED_BACK
    assert outcome.record is not None and outcome.record["changed"] is True
    target = flag_target(again)
    assert target.rollbacks == 1
    assert target.percent_history() == [25, 50, 25]


def test_killed_after_the_rollback_does_not_set_back_twice(tmp_path: Path) -> None:
    state = tmp_path / "flag.json"
    r = rehearsal("flag-regression", state)
    engine = engine_for(r)
    engine.roller.target = CrashAround(flag_target(r), before=False)  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt):
        engine.run("on")
    assert (r.target.status().state or {})["phase"] == "rolling_back"
    assert flag_target(r).exposure() == 25  # set back, but the engine never saved that

    again = rehearsal("flag-regression", state)
    outcome = engine_for(again).run("on")
    assert outcome.resumed and outcome.decision is Decision.ROLLED_BACK
    target = flag_target(again)
    # Not 25 -> 0: what is live now is the last safe percentage, not the step that failed.
    assert target.exposure() == 25
    assert target.rollbacks == 1
    assert target.percent_history() == [25, 50, 25]
    assert outcome.record is not None and outcome.record["changed"] is False

    third = rehearsal("flag-regression", state)
    outcome = engine_for(third).run("on")
    assert outcome.resumed and flag_target(third).rollbacks == 1


def test_a_failure_at_the_first_step_turns_the_flag_off() -> None:
    clock = VirtualClock()
    target = SimulatedFlagTarget(clock)
    target.begin("on")
    target.set_weight(25)
    target.save_state({"steps": [{"weight": 25, "result": "failed", "op": "weight"}]})
    done = target.rollback()
    assert done.changed and done.to_version == "new-booking-flow off"
    assert target.exposure() == 0
    assert not target.rollback().changed


def test_after_promotion_a_rollback_goes_to_the_last_step_below_100() -> None:
    target = SimulatedFlagTarget(VirtualClock())
    target.begin("on")
    for p in (25, 50, 75, 100):
        target.set_weight(p)
    target.promote()
    assert target.exposure() == 100
    target.save_state(
        {"steps": [{"weight": p, "result": "passed", "op": "weight"} for p in (25, 50, 75, 100)]}
    )
    assert target.rollback().to_version == "new-booking-flow on for 75%"
    assert target.exposure() == 75


def test_a_flag_serves_only_its_on_variation() -> None:
    target = SimulatedFlagTarget(VirtualClock())
    with pytest.raises(TargetError, match="`on` variation"):
        target.begin("v1.5.2")
    with pytest.raises(TargetError, match="does not implement the `blue-green`"):
        target.use_strategy("blue-green")


def test_last_passed_percent_reads_the_engine_s_steps() -> None:
    steps = [
        {"weight": 25, "result": "passed"},
        {"weight": 50, "result": "passed"},
        {"weight": 75, "result": "inconclusive"},
    ]
    assert last_passed_percent({"steps": steps}) == 50
    assert last_passed_percent({"steps": steps}, below=50) == 25
    assert last_passed_percent(None) == 0


def test_the_on_users_are_the_canary_track() -> None:
    r = rehearsal("flag-healthy")
    s = replace(settings(), steps=settings().steps[:1])
    outcome = engine_for(r, s).run("on")
    step = outcome.steps[0]
    assert step.status is StepStatus.PASSED
    canary, stable = step.evidence["canary"], step.evidence["stable"]
    # 25 % of the users served `on`, 75 % `off`.
    share = canary["requests"] / (canary["requests"] + stable["requests"])
    assert share == pytest.approx(0.25, abs=0.02)


class CrashAround:
    """The flag target, with its rollback killed just before or just after it acts."""

    def __init__(self, inner: SimulatedFlagTarget, *, before: bool) -> None:
        self.inner = inner
        self.before = before
        self.crashed = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name != "rollback" or self.crashed:
            return attr

        def rollback() -> Any:
            self.crashed = True
            if not self.before:
                self.inner.rollback()
            raise KeyboardInterrupt("killed around the rollback")

        return rollback
