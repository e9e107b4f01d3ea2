"""A manual rollback during a rollout or a watch: the abort mark stops the engine, never a second rollback."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest

from release_actions.app.rollback import keep_abort, mark_abort
from release_actions.app.session import Session
from release_actions.canary.model import Decision, RunState
from release_actions.canary.monitor import DeployMonitor
from release_actions.canary.simulator import build
from release_actions.core.policy import default_policy
from release_actions.core.settings import resolve
from release_actions.gha import Runtime
from release_actions.simulation.clock import VirtualClock
from release_actions.targets.base import DeployTarget
from tests.unit.canary.test_engine import Rig, ScriptedJudge, healthy

ENV = {
    "GITHUB_ACTOR": "oncall",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "octo/app",
    "GITHUB_RUN_ID": "77",
}


def session() -> Session:
    return Session(Runtime(env=dict(ENV), out=io.StringIO(), err=io.StringIO()))


def manual_rollback(target: DeployTarget, clock: Any, reason: str = "p99 alert") -> None:
    """What `release-actions rollback` does to the target, in its order: mark, roll back, keep."""
    mark = mark_abort(session(), target, clock, default_policy(), reason)
    target.rollback()
    keep_abort(target, mark)


class HookClock:
    """The rig's clock, running ``hook`` once, in the middle of the sleep that crosses ``at``."""

    def __init__(self, clock: VirtualClock, at: float, hook: Callable[[], None]) -> None:
        self.clock = clock
        self.at = at
        self.hook = hook
        self.fired = False

    def now(self) -> float:
        return self.clock.now()

    def sleep(self, seconds: float) -> None:
        if not self.fired and self.clock.now() + seconds >= self.at:
            self.fired = True
            self.hook()
        self.clock.sleep(seconds)


def rig_with_rollback_at(seconds: float, judge: ScriptedJudge | None = None) -> Rig:
    rig = Rig(judge=judge)
    clock = HookClock(
        rig.clock, rig.start + seconds, lambda: manual_rollback(rig.target, rig.clock)
    )
    rig.engine.clock = rig.engine.timeline.clock = rig.engine.roller.clock = clock
    return rig


def test_a_rollback_marked_mid_rollout_stops_it_at_the_next_interval() -> None:
    rig = rig_with_rollback_at(150)  # in step 2 (50 %), which began at 120 s

    out = rig.engine.run("v2")

    assert out.decision is Decision.ROLLED_BACK
    assert out.reason.startswith("a manual rollback took over (by oncall at ")
    assert "p99 alert" in out.reason and "https://github.com/octo/app/actions/runs/77" in out.reason
    assert "without rolling back a second time" in out.reason
    assert not out.ok, "the CLI exits 1"
    assert rig.target.rollbacks == 1, "the manual rollback's only"
    assert out.record is None, "the manual rollback records itself"
    assert out.evidence["manual_rollback"]["by"] == "oncall"
    # Step 2 began at 120 s; the mark came during its first interval (the simulated rollback
    # takes 30 s on the shared clock), and the check right after that interval stopped it.
    assert out.ended_at - rig.start == 120 + 30 + rig.engine.interval
    assert [s.weight for s in out.steps] == [10]
    status = rig.target.status()
    assert (status.stable_version, status.canary_version) == ("v1", None)
    saved = RunState.from_dict(status.state or {})
    assert (saved.phase, saved.decision) == ("done", "rolled_back")
    assert saved.abort is not None and saved.abort["reason"] == "p99 alert"
    weights = [w for _, _, _, w in rig.target.history]
    assert 100 not in weights, "never set a weight after the mark"


def test_a_mark_lost_to_a_save_from_an_older_read_is_written_again() -> None:
    rig = Rig()

    def mark_clobber_rollback() -> None:
        stale = dict(rig.target.status().state or {})  # the engine read before the mark ...
        mark = mark_abort(session(), rig.target, rig.clock, default_policy(), "by hand")
        rig.target.save_state(stale)  # ... and saved after it: the mark is gone
        rig.target.rollback()
        keep_abort(rig.target, mark)  # the manual rollback's re-read after its rollback

    clock = HookClock(rig.clock, rig.start + 150, mark_clobber_rollback)
    rig.engine.clock = rig.engine.timeline.clock = rig.engine.roller.clock = clock

    out = rig.engine.run("v2")

    assert rig.target.rollbacks == 1
    assert out.decision is Decision.ROLLED_BACK and "manual rollback took over" in out.reason
    assert out.ended_at - rig.start == 120 + 30 + rig.engine.interval


def test_the_engine_does_not_roll_back_when_the_mark_came_first() -> None:
    # The judge fails at 150 s; the manual rollback marked the state at 145 s.
    rig = rig_with_rollback_at(145, judge=ScriptedJudge(["pass", "pass", "pass", "pass", "fail"]))

    out = rig.engine.run("v2")

    assert rig.target.rollbacks == 1
    assert out.decision is Decision.ROLLED_BACK and out.record is None
    assert "manual rollback took over" in out.reason


def test_an_engine_rollback_first_leaves_the_manual_one_nothing_to_do() -> None:
    rig = Rig(judge=ScriptedJudge("fail"))
    out = rig.engine.run("v2")
    assert out.record is not None and rig.target.rollbacks == 1

    result = rig.target.rollback()  # the manual one, arriving second

    assert result.changed is False and rig.target.rollbacks == 1


def test_a_resumed_rollout_that_was_rolled_back_by_hand_does_not_go_on() -> None:
    rig = Rig()
    rig.target.begin("v2")
    state = RunState("v2", "v1", rig.clock.now())
    rig.target.save_state(state.to_dict())
    manual_rollback(rig.target, rig.clock)

    out = rig.engine.run("v2")

    assert out.decision is Decision.ROLLED_BACK and out.resumed
    assert rig.target.rollbacks == 1
    assert rig.target.status().stable_version == "v1"


def test_an_earlier_rollouts_mark_does_not_stop_the_next_rollout() -> None:
    rig = Rig()
    rig.target.begin("v2")
    rig.target.save_state(RunState("v2", "v1", rig.clock.now()).to_dict())
    manual_rollback(rig.target, rig.clock)

    out = rig.engine.run("v3")

    assert out.decision is Decision.PROMOTED
    assert rig.target.status().stable_version == "v3"


@pytest.mark.parametrize("at", [45, 205])
def test_a_watch_stops_at_the_next_interval_without_a_second_rollback(at: float) -> None:
    world = build(healthy(), live_version="v2")
    start = world.clock.now()
    # A promoted rollout's state, as the monitor finds it after `canary run`.
    done = RunState("v2", "v1.5.1", start)
    done.phase, done.decision = "done", "promoted"
    world.target.save_state(done.to_dict())
    clock = HookClock(world.clock, start + at, lambda: manual_rollback(world.target, world.clock))
    settings = resolve(default_policy())

    out = DeployMonitor(world.target, world.provider, settings, clock).run()

    assert out.decision is Decision.ROLLED_BACK
    assert "manual rollback took over" in out.reason
    assert out.record is None and world.target.rollbacks == 1
    assert world.target.status().stable_version == "v1.5.1"
    # The mark came during the interval that crosses `at` (the rollback takes 30 s on the
    # shared clock); the check right after that 10-second interval ended the watch.
    assert out.ended_at - start == (at // 10) * 10 + 30 + 10
