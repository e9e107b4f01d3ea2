"""The canary engine and the monitor: steps, verdicts, faults that are never health, resume, rollback."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from release_actions.canary.analysis import analyze_window
from release_actions.canary.judge import Judgement, Verdict, make_judge
from release_actions.canary.measure import check_sample
from release_actions.canary.model import Decision, StepStatus, next_record_id
from release_actions.canary.monitor import DeployMonitor
from release_actions.canary.rollout import CanaryEngine
from release_actions.canary.simulator import Rehearsal, build
from release_actions.core.policy import Policy, RolloutStep, default_policy, default_policy_data
from release_actions.core.settings import Overrides, Settings, resolve, with_steps
from release_actions.errors import MetricsError, NoDataError
from release_actions.metrics.base import MetricsProvider, Track, TrafficSample
from release_actions.simulation.clock import VirtualClock
from release_actions.simulation.scenario import Scenario, load_scenario
from release_actions.targets.simulated import SimulatedTarget

STEPS = [
    RolloutStep(weight=10, pause_seconds=120),
    RolloutStep(weight=50, pause_seconds=120),
    RolloutStep(weight=100, pause_seconds=0, analysis=False),
]


def settings_of(policy: Policy, steps: list[RolloutStep] | None = None) -> Settings:
    settings = resolve(policy)
    return settings if steps is None else with_steps(settings, steps, "test")


def policy_with(**analysis: Any) -> Policy:
    data = default_policy_data()
    data["canary"]["analysis"].update(analysis)
    return Policy.model_validate(data)


class ScriptedJudge:
    """A judge that says what the test tells it to, and remembers what it saw."""

    name = "scripted"

    def __init__(self, verdicts: list[str] | str, *, early: bool = False) -> None:
        self.verdicts = verdicts
        self.early = early
        self.seen: list[tuple[TrafficSample, TrafficSample]] = []
        self.resets = 0

    def observe(self, stable: TrafficSample, canary: TrafficSample) -> Judgement:
        n = len(self.seen)
        self.seen.append((stable, canary))
        if isinstance(self.verdicts, str):
            verdict = self.verdicts
        else:
            verdict = self.verdicts[min(n, len(self.verdicts) - 1)]
        return Judgement(
            Verdict(verdict), f"scripted {verdict} #{n}", {"n": n}, "scripted", early=self.early
        )

    def reset_step(self) -> None:
        self.resets += 1


Answer = Callable[[Track | None, float, float], TrafficSample]


def sample(
    track: Track | None,
    start: float,
    end: float,
    *,
    requests: float = 1000,
    errors: float = 0.3,
    p99: float | None = 300.0,
) -> TrafficSample:
    return TrafficSample(track, start, end, requests, errors, p99)


class FakeProvider(MetricsProvider):
    name = "fake"

    def __init__(self, answer: Answer = sample) -> None:
        self.answer = answer
        self.calls = 0

    def query(
        self, track: Track | None, start: float, end: float, *, slow_ms: float | None = None
    ) -> TrafficSample:
        self.calls += 1
        return self.answer(track, start, end)

    def is_online(self) -> bool:
        return True


class Rig:
    def __init__(
        self,
        judge: ScriptedJudge | None = None,
        provider: FakeProvider | None = None,
        policy: Policy | None = None,
        steps: list[RolloutStep] | None = None,
    ) -> None:
        self.clock = VirtualClock()
        self.start = self.clock.now()
        self.target = SimulatedTarget(self.clock, stable_version="v1")
        self.judge = judge or ScriptedJudge("pass")
        self.provider = provider or FakeProvider()
        self.policy = policy or default_policy()
        self.saved: list[dict[str, Any]] = []
        save = self.target.save_state

        def recording_save(state: Any) -> None:
            self.saved.append(json.loads(json.dumps(state)))
            save(state)

        self.target.save_state = recording_save  # type: ignore[method-assign]
        self.engine = CanaryEngine(
            self.target,
            self.provider,
            self.judge,
            settings_of(self.policy, steps or STEPS),
            self.clock,
        )


# -- the happy path and the judge's verdicts ------------------------------------------------


def test_all_pass_promotes_each_step_once_after_its_pause() -> None:
    rig = Rig()
    out = rig.engine.run("v2")
    assert out.decision is Decision.PROMOTED
    assert [(s.weight, s.status) for s in out.steps] == [
        (10, StepStatus.PASSED),
        (50, StepStatus.PASSED),
        (100, StepStatus.PASSED),
    ]
    assert [s.ended_at - s.started_at for s in out.steps] == [120, 120, 0]
    assert rig.target.status().stable_version == "v2"
    assert rig.target.rollbacks == 0
    assert out.record is None and out.detected_at_s is None
    assert rig.judge.resets == 3


def test_a_pass_marked_early_ends_the_step_early() -> None:
    rig = Rig(judge=ScriptedJudge("pass", early=True))
    out = rig.engine.run("v2")
    assert out.decision is Decision.PROMOTED
    assert [s.ended_at - s.started_at for s in out.steps] == [60, 60, 0]
    assert out.steps[0].evidence["early"] is True


def test_fail_rolls_back_with_a_record() -> None:
    rig = Rig(judge=ScriptedJudge(["pass", "pass", "inconclusive", "fail"]))
    out = rig.engine.run("v2")
    assert out.decision is Decision.ROLLED_BACK
    assert out.detected_at_s == 240
    assert [s.status for s in out.steps] == [StepStatus.PASSED, StepStatus.FAILED]
    assert rig.target.rollbacks == 1
    assert rig.target.status().canary_version is None
    record = out.record
    assert record is not None
    assert record["id"] == "RB-2026-001"
    assert (record["from_version"], record["to_version"]) == ("v2", "v1")
    assert record["trigger"]["type"] == "automatic"
    assert "scripted fail" in record["trigger"]["reason"]
    assert record["duration"]["detection_time"] == "4 minutes"
    assert record["duration"]["rollback_time"] == "30 seconds"
    assert record["timestamp"].endswith("+09:00")
    assert record["recovered"] is True and out.recovery is not None and out.recovery.recovered


def test_inconclusive_is_never_promoted() -> None:
    rig = Rig(judge=ScriptedJudge("inconclusive"))
    out = rig.engine.run("v2")
    assert out.decision is Decision.ROLLED_BACK
    [step] = out.steps
    assert step.status is StepStatus.INCONCLUSIVE
    # Past the pause it kept measuring, up to two whole analyses (2 x 300 s).
    assert out.detected_at_s == 600
    assert "never promoted on no evidence" in out.reason


# -- faults are never health ------------------------------------------------------------------


def outage(track: Track | None, start: float, end: float) -> TrafficSample:
    raise MetricsError("connection refused")


@pytest.mark.parametrize(
    ("on_error", "decision", "rollbacks"),
    [
        ("rollback", Decision.ROLLED_BACK, 1),
        ("fail", Decision.FAILED, 1),
        ("hold", Decision.HELD, 0),
    ],
)
def test_consecutive_errors_go_to_on_error(
    on_error: str, decision: Decision, rollbacks: int
) -> None:
    rig = Rig(provider=FakeProvider(outage), policy=policy_with(on_error=on_error))
    out = rig.engine.run("v2")
    assert out.decision is decision
    assert rig.target.rollbacks == rollbacks
    assert "4 measurement errors in a row" in out.reason
    assert rig.judge.seen == []  # the judge never saw an outage as data
    if decision is Decision.HELD:
        status = rig.target.status()
        assert (status.canary_version, status.canary_weight) == ("v2", 10)
        assert status.state is not None and status.state["phase"] == "held"
        assert out.record is None
    else:
        assert out.detected_at_s == 240


class SequentialScript(ScriptedJudge):
    name = "sequential"  # measured at the sequential judge's cadence


def test_the_sequential_cadence_keeps_the_outage_tolerance_in_time() -> None:
    rig = Rig(judge=SequentialScript("pass"), provider=FakeProvider(outage))
    out = rig.engine.run("v2")
    assert out.decision is Decision.ROLLED_BACK
    # 10 s looks: 24 errors in a row are the same 4 minutes as 4 at the §4.4 1m.
    assert "24 measurement errors in a row (24 at 10 s: consecutive_error_limit 4" in out.reason
    assert out.detected_at_s == 240


def test_the_sequential_judge_looks_every_ten_seconds() -> None:
    rig = Rig(judge=SequentialScript("pass"))
    rig.engine.run("v2")
    windows = {round(c.end - c.start) for _, c in rig.judge.seen}
    assert windows == {10}


class CoarseProvider(FakeProvider):
    """A provider whose data cannot be counted over less than 30 s (Prometheus, 15 s scrapes)."""

    def shortest_window_seconds(self) -> float:
        return 30.0


def test_the_cadence_is_raised_to_what_the_provider_can_count() -> None:
    rig = Rig(judge=SequentialScript("pass"), provider=CoarseProvider())
    out = rig.engine.run("v2")
    assert out.decision is Decision.PROMOTED
    assert {round(c.end - c.start) for _, c in rig.judge.seen} == {30}
    assert any("measuring every 30 s, not every 10 s" in e.message for e in out.events)
    # Coarser than the threshold judge's 1m is never made finer.
    slow = Rig(provider=CoarseProvider())
    slow.engine.run("v2")
    assert {round(c.end - c.start) for _, c in slow.judge.seen} == {60}


def test_the_recovery_check_counts_over_a_window_the_provider_can_resolve() -> None:
    class MinuteScrapes(FakeProvider):
        def __init__(self) -> None:
            super().__init__()
            self.whole: list[float] = []

        def query(
            self, track: Track | None, start: float, end: float, *, slow_ms: float | None = None
        ) -> TrafficSample:
            if track is None:
                self.whole.append(end - start)
            return super().query(track, start, end, slow_ms=slow_ms)

        def shortest_window_seconds(self) -> float:
            return 120.0  # Prometheus scraping every minute

    provider = MinuteScrapes()
    rig = Rig(judge=ScriptedJudge(["fail"]), provider=provider)
    out = rig.engine.run("v2")
    assert out.decision is Decision.ROLLED_BACK and out.recovery is not None
    assert out.recovery.recovered
    assert provider.whole and set(provider.whole) == {120.0}


def test_errors_not_in_a_row_do_not_abort() -> None:
    def three_bad_one_good(track: Track | None, start: float, end: float) -> TrafficSample:
        if track is not None and round(end - rig.start) // 60 % 4 != 0:
            raise MetricsError("503")
        return sample(track, start, end)

    rig = Rig(provider=FakeProvider(three_bad_one_good))
    out = rig.engine.run("v2")
    assert out.decision is Decision.PROMOTED
    assert out.steps[0].evidence["measurement_errors"] == 3


@pytest.mark.parametrize(
    "bad",
    [
        {"requests": math.nan},
        {"errors": math.inf},
        {"p99": math.nan},
        {"requests": 0, "errors": 0},
    ],
    ids=["nan-requests", "inf-errors", "nan-p99", "empty"],
)
def test_nan_and_empty_are_no_data(bad: dict[str, float]) -> None:
    def answer(track: Track | None, start: float, end: float) -> TrafficSample:
        if track is Track.CANARY:
            return sample(track, start, end, **bad)
        return sample(track, start, end)

    rig = Rig(provider=FakeProvider(answer))
    out = rig.engine.run("v2")
    assert out.decision is Decision.ROLLED_BACK
    assert rig.judge.seen == []
    assert "no data" in out.reason


def test_check_sample_refuses_inconsistent_counts() -> None:
    with pytest.raises(MetricsError, match="inconsistent"):
        check_sample(sample(Track.CANARY, 0, 60, requests=10, errors=11), "canary")
    with pytest.raises(NoDataError):
        check_sample(sample(Track.CANARY, 0, 60, requests=-1, errors=0), "canary")


def test_an_adapter_bug_is_an_error_not_a_crash() -> None:
    def buggy(track: Track | None, start: float, end: float) -> TrafficSample:
        raise KeyError("series")

    rig = Rig(provider=FakeProvider(buggy))
    out = rig.engine.run("v2")
    assert out.decision is Decision.ROLLED_BACK and "KeyError" in out.reason


def scenario(**data: Any) -> Scenario:
    return Scenario.model_validate(data)


def test_outage_during_a_bad_canary_still_rolls_back() -> None:
    sc = scenario(
        events=[
            {"at": 150, "track": "canary", "error_rate": 0.08},
            {"at": 150, "provider": "down", "for": 3600},
        ]
    )
    world = build(sc)
    engine = CanaryEngine(
        world.target,
        world.provider,
        make_judge(default_policy().canary.analysis),
        settings_of(default_policy()),
        world.clock,
    )
    out = engine.run("v2")
    assert out.decision is Decision.ROLLED_BACK
    assert world.target.rollbacks == 1
    assert out.record is not None and out.record["to_version"] == "v1.5.1"
    # Recovery cannot be confirmed with the provider down: said so, never assumed.
    assert out.recovery is not None and not out.recovery.recovered
    assert out.record["duration"]["recovery_time"] is None


def test_a_metrics_outage_never_blocks_a_trigger_rollback() -> None:
    sc = scenario(
        events=[
            {"at": 0, "provider": "down", "for": 3600},
            {"at": 30, "track": "canary", "restarts": 8, "ramp": 60},
        ]
    )
    world = build(sc)
    policy = policy_with(consecutive_error_limit=50)
    engine = CanaryEngine(
        world.target, world.provider, ScriptedJudge("pass"), settings_of(policy), world.clock
    )
    out = engine.run("v2")
    assert out.decision is Decision.ROLLED_BACK
    assert out.steps[-1].status is StepStatus.TRIGGERED
    assert "restarts" in out.reason
    assert world.target.rollbacks == 1


def test_triggers_are_checked_during_the_rollout() -> None:
    def both_bad(track: Track | None, start: float, end: float) -> TrafficSample:
        return sample(track, start, end, errors=80)  # 8 %, on both tracks alike

    rig = Rig(judge=ScriptedJudge("inconclusive"), provider=FakeProvider(both_bad))
    out = rig.engine.run("v2")
    assert out.decision is Decision.ROLLED_BACK
    assert out.steps[0].status is StepStatus.TRIGGERED
    assert out.detected_at_s == 120  # two 60-second samples above 5 %: 2 minutes
    assert out.steps[0].evidence["trigger"]["name"] == "error_rate"


# -- state, resume, and rolling back exactly once ---------------------------------------------


def test_state_is_saved_after_every_step() -> None:
    rig = Rig()
    rig.engine.run("v2")
    for i in range(len(STEPS)):
        assert any(s["step_index"] == i + 1 and len(s["steps"]) == i + 1 for s in rig.saved)
    assert rig.saved[-1]["phase"] == "done" and rig.saved[-1]["decision"] == "promoted"
    # Saved before acting: the state naming a step exists before its weight is set.
    first_50 = next(i for i, s in enumerate(rig.saved) if s["weight"] == 50)
    assert rig.saved[first_50]["phase"] == "running"


class Killed(Exception):
    pass


class KillingClock:
    """The world's clock, but the process dies the first time ``when()`` holds."""

    def __init__(self, clock: VirtualClock, when: Callable[[], bool]) -> None:
        self.clock = clock
        self.when = when
        self.fired = False

    def now(self) -> float:
        return self.clock.now()

    def sleep(self, seconds: float) -> None:
        if not self.fired and self.when():
            self.fired = True
            raise Killed
        self.clock.sleep(seconds)


def healthy() -> Scenario:
    return load_scenario("healthy")[1]


def test_killed_mid_rollout_resumes_without_repeating_a_step(tmp_path: Path) -> None:
    path = tmp_path / "target.json"
    policy = default_policy()
    world = build(healthy(), state_file=path)
    killer = KillingClock(world.clock, lambda: world.target.canary_weight == 50)
    engine = CanaryEngine(
        world.target,
        world.provider,
        make_judge(policy.canary.analysis),
        settings_of(policy),
        killer,
    )
    with pytest.raises(Killed):
        engine.run("v1.5.2")
    assert world.target.status().state["step_index"] == 2  # type: ignore[index]

    again = build(healthy(), state_file=path)  # a new process: everything from the file
    assert again.target.status().canary_weight == 50
    engine2 = CanaryEngine(
        again.target,
        again.provider,
        make_judge(policy.canary.analysis),
        settings_of(policy),
        again.clock,
    )
    out = engine2.run("v1.5.2")
    assert out.resumed
    assert out.decision is Decision.PROMOTED
    assert [s.weight for s in out.steps] == [5, 20, 50, 100]
    assert again.target.rollbacks == 0
    weights = [w for _, _, c, w in again.target.history if c == "v1.5.2"]
    assert weights == [0, 5, 20, 50, 100]  # each weight set once, even across the two processes
    assert any(e.kind == "resume" for e in out.events)


def test_killed_during_recovery_resumes_without_a_second_rollback(tmp_path: Path) -> None:
    path = tmp_path / "target.json"
    policy = default_policy()
    spike = load_scenario("error-spike")[1]
    world = build(spike, state_file=path)
    killer = KillingClock(world.clock, lambda: world.target.rollbacks == 1)
    engine = CanaryEngine(
        world.target,
        world.provider,
        make_judge(policy.canary.analysis),
        settings_of(policy),
        killer,
    )
    with pytest.raises(Killed):
        engine.run("v1.5.2")
    saved = world.target.status().state
    assert saved is not None and saved["phase"] == "recovering"

    again = build(spike, state_file=path)
    engine2 = CanaryEngine(
        again.target,
        again.provider,
        make_judge(policy.canary.analysis),
        settings_of(policy),
        again.clock,
    )
    out = engine2.run("v1.5.2")
    assert out.decision is Decision.ROLLED_BACK and out.resumed
    assert again.target.rollbacks == 1
    assert out.record is not None and out.record["id"] == saved["record"]["id"]
    assert out.recovery is not None and out.recovery.recovered

    # A third run of the same version only reports: no weight, no rollback.
    history = list(again.target.history)
    engine3 = CanaryEngine(
        again.target,
        again.provider,
        make_judge(policy.canary.analysis),
        settings_of(policy),
        again.clock,
    )
    out3 = engine3.run("v1.5.2")
    assert out3.decision is Decision.ROLLED_BACK and out3.resumed
    assert again.target.rollbacks == 1 and again.target.history == history


def test_held_rollout_resumes_at_the_held_step() -> None:
    flaky = {"down": True}

    def answer(track: Track | None, start: float, end: float) -> TrafficSample:
        if flaky["down"]:
            raise MetricsError("down")
        return sample(track, start, end)

    rig = Rig(provider=FakeProvider(answer), policy=policy_with(on_error="hold"))
    assert rig.engine.run("v2").decision is Decision.HELD
    flaky["down"] = False
    engine = CanaryEngine(
        rig.target, rig.provider, ScriptedJudge("pass"), settings_of(rig.policy, STEPS), rig.clock
    )
    out = engine.run("v2")
    assert out.decision is Decision.PROMOTED and out.resumed
    assert [s.weight for s in out.steps] == [10, 50, 100]


def test_an_abandoned_rollout_of_another_version_is_rolled_back_first() -> None:
    rig = Rig()
    killer = KillingClock(rig.clock, lambda: rig.target.canary_weight == 50)
    dying = CanaryEngine(
        rig.target, rig.provider, ScriptedJudge("pass"), settings_of(rig.policy, STEPS), killer
    )
    with pytest.raises(Killed):
        dying.run("v2")
    out = rig.engine.run("v3")
    assert out.decision is Decision.PROMOTED
    assert rig.target.rollbacks == 1  # v2, once
    status = rig.target.status()
    assert (status.stable_version, status.known_good) == ("v3", "v1")
    assert any("rolling it back" in e.message for e in out.events)


def test_rollback_twice_through_the_engine_is_a_no_op() -> None:
    rig = Rig(judge=ScriptedJudge("fail"))
    rig.engine.run("v2")
    second = rig.target.rollback()
    assert not second.changed and rig.target.rollbacks == 1


def test_record_ids() -> None:
    when = datetime(2026, 1, 20, 14, 30, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert next_record_id(when) == "RB-2026-001"
    assert (
        next_record_id(when, ["RB-2026-001", "RB-2026-007", "RB-2025-044", "junk"]) == "RB-2026-008"
    )


# -- the monitor ------------------------------------------------------------------------------


def monitor(sc: Scenario, policy: Policy | None = None, **kw: Any) -> tuple[Rehearsal, Any]:
    world = build(sc, live_version="v2")
    settings = resolve(policy or default_policy(), Overrides(**kw))
    out = DeployMonitor(world.target, world.provider, settings, world.clock).run()
    return world, out


def test_monitor_healthy_is_stable_after_five_minutes() -> None:
    world, out = monitor(scenario())
    assert out.decision is Decision.STABLE
    assert out.ended_at - out.started_at == 300
    assert world.target.rollbacks == 0


def test_monitor_rolls_back_on_a_sustained_error_rate() -> None:
    world, out = monitor(scenario(events=[{"at": 60, "track": "canary", "error_rate": 0.08}]))
    assert out.decision is Decision.ROLLED_BACK
    assert out.detected_at_s == 180  # 60 s of onset + the 2-minute window
    assert world.target.status().stable_version == "v1.5.1"
    assert out.record["trigger"]["reason"].startswith("Error rate")
    assert out.recovery.recovered and out.record["duration"]["recovery_time"] == "1 minute"


@pytest.mark.parametrize(
    ("on_error", "decision", "rollbacks"),
    [("rollback", Decision.ROLLED_BACK, 1), ("hold", Decision.HELD, 0)],
)
def test_monitor_provider_down_is_never_stable(
    on_error: str, decision: Decision, rollbacks: int
) -> None:
    # The source document's script caught every error and watched on: a silent pass.
    world, out = monitor(
        scenario(events=[{"at": 100, "provider": "down", "for": 1000}]),
        policy_with(on_error=on_error),
    )
    assert out.decision is decision
    assert world.target.rollbacks == rollbacks
    assert out.ended_at - out.started_at >= 130  # errors at 100, 110, 120, 130
    assert "4 measurement errors in a row" in out.reason


def test_monitor_does_not_end_on_a_failed_measurement() -> None:
    _, out = monitor(scenario(events=[{"at": 285, "provider": "down", "for": 30}]))
    assert out.decision is Decision.STABLE
    assert out.ended_at - out.started_at == 320  # watched on until a measurement succeeded


def test_monitor_hotfix_threshold() -> None:
    one_percent = scenario(canary={"error_rate": 0.01})
    assert monitor(one_percent)[1].decision is Decision.STABLE
    _, out = monitor(one_percent, release_type="hotfix")
    assert out.decision is Decision.ROLLED_BACK
    assert out.detected_at_s == 120


# -- one analysis ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "verdict"),
    [
        ([], "pass"),
        ([{"at": 0, "track": "canary", "error_rate": 0.05}], "fail"),
        ([{"at": 0, "provider": "down", "for": 1000}], "error"),
    ],
)
def test_analyze_window(events: list[dict[str, Any]], verdict: str) -> None:
    world = build(scenario(events=events))
    world.target.begin("v2")
    world.target.set_weight(20)
    world.clock.sleep(300)
    policy = default_policy()
    result = analyze_window(
        world.provider,
        make_judge(policy.canary.analysis),
        policy.canary.analysis,
        world.clock.now(),
    )
    assert result.verdict == verdict
    assert result.end - result.start == 300


def test_record_ids_continue_across_rollouts_and_the_monitor() -> None:
    rig = Rig(judge=ScriptedJudge("fail"))
    assert rig.engine.run("v2").record["id"] == "RB-2026-001"  # type: ignore[index]
    second = CanaryEngine(
        rig.target, rig.provider, ScriptedJudge("pass"), settings_of(rig.policy, STEPS), rig.clock
    )
    assert second.run("v3").decision is Decision.PROMOTED

    def bad(track: Track | None, start: float, end: float) -> TrafficSample:
        return sample(track, start, end, errors=90)

    watch = DeployMonitor(rig.target, FakeProvider(bad), settings_of(rig.policy), rig.clock)
    assert watch.run().record["id"] == "RB-2026-002"  # type: ignore[index]
    third = CanaryEngine(
        rig.target, rig.provider, ScriptedJudge("fail"), settings_of(rig.policy, STEPS), rig.clock
    )
    assert third.run("v4").record["id"] == "RB-2026-003"  # type: ignore[index]


def test_a_step_without_analysis_does_not_pass_on_a_failed_measurement() -> None:
    steps = [
        RolloutStep(weight=10, pause_seconds=120),
        RolloutStep(weight=100, pause_seconds=120, analysis=False),
    ]

    def down_at_the_end(track: Track | None, start: float, end: float) -> TrafficSample:
        if track is not None and 230 <= end - rig.start <= 270:
            raise MetricsError("503")
        return sample(track, start, end)

    rig = Rig(provider=FakeProvider(down_at_the_end), steps=steps)
    out = rig.engine.run("v2")
    assert out.decision is Decision.PROMOTED
    assert out.steps[-1].ended_at - out.steps[-1].started_at == 180  # waited for a good one


@pytest.mark.parametrize(
    ("outage_s", "decision"),
    [(45, Decision.STABLE), (150, Decision.STABLE), (420, Decision.ROLLED_BACK)],
)
def test_the_watch_tolerates_a_metrics_outage_as_long_as_a_rollout_does(
    outage_s: int, decision: Decision
) -> None:
    """The error limit is a length of outage (4 x 60 s), not 4 looks at the monitor's 10 s."""
    world, out = monitor(
        scenario(events=[{"at": 60, "provider": "down", "for": outage_s}]),
    )
    assert out.decision is decision, out.reason
    if decision is Decision.STABLE:
        assert world.target.rollbacks == 0
        assert out.ended_at - out.started_at >= 300
    else:
        # Rolled back once 4 minutes of looks had failed (24 at 10 s), not at the 4th look.
        assert out.detected_at_s is not None and 60 + 220 <= out.detected_at_s <= 60 + 250
        assert out.reason.startswith("24 measurement errors in a row")


@pytest.mark.parametrize(
    ("event", "trigger", "detected"),
    [
        # Error rate > 5 % for 2 minutes, from 1:00: fires at 3:00, inside the watch.
        ({"error_rate": 0.08}, "error_rate", 180),
        # p99 > 5 s for 5 minutes, from 1:00: the 5-minute watch ends at 5:00 with the
        # breach pending, so it goes on until the window is met at 6:00.
        ({"latency_ms": {"p50": 900, "p99": 9000}}, "p99_latency", 360),
        # More than 3 failed health checks within a minute.
        ({"health_check_failures": 6, "ramp": 50}, "health_check_failures", None),
        # More than 5 restarts within 5 minutes.
        ({"restarts": 8, "ramp": 120}, "pod_restarts", None),
    ],
)
def test_every_trigger_can_fire_on_a_regression_that_starts_mid_watch(
    event: dict[str, Any], trigger: str, detected: int | None
) -> None:
    """Source §6.1's four triggers in §6.3's 5-minute watch, each from 1:00."""
    world, out = monitor(scenario(events=[{"at": 60, "track": "canary", **event}]))
    assert out.decision is Decision.ROLLED_BACK, out.reason
    assert out.evidence["trigger"]["name"] == trigger
    assert world.target.rollbacks == 1
    if detected is not None:
        assert out.detected_at_s == detected


def test_a_pending_breach_that_clears_ends_the_watch_stable() -> None:
    """The watch goes on past 5:00 only while a breach is pending; when it clears, stable."""
    world, out = monitor(
        scenario(
            events=[
                {"at": 200, "track": "canary", "latency_ms": {"p50": 900, "p99": 9000}},
                {"at": 330, "track": "canary", "latency_ms": {"p50": 80, "p99": 300}},
            ]
        )
    )
    assert out.decision is Decision.STABLE
    assert 330 <= out.ended_at - out.started_at <= 350
    assert world.target.rollbacks == 0
    assert any("pending" in e.message for e in out.events)
