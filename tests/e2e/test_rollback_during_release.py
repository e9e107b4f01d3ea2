"""A manual rollback in another process while a rollout runs: the rollback completes, the rollout reports it.

Not under act. Here the state is shared through the Kubernetes API (its HTTP fake), with the
rollout in this process (its clock held at step 2) and `release-actions rollback` as a second
process. The same join on the simulated target, whose state file is now shared between
processes, is tests/e2e/test_rollout_control.py's abort of a rehearsal paced in real time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from release_actions.canary.model import Decision, Outcome
from release_actions.canary.rollout import CanaryEngine
from release_actions.core.policy import default_policy
from release_actions.simulation.clock import VirtualClock
from tests.integration.deploys import GOOD, Deploy, Stack, start_target
from tests.support.runner_files import parse_file_commands
from tests.unit.canary.test_engine import STEPS, FakeProvider, ScriptedJudge, settings_of

pytestmark = pytest.mark.integration


class HeldClock(VirtualClock):
    """A virtual clock that stops at ``at`` until the test lets it go on."""

    def __init__(self, at_offset: float) -> None:
        super().__init__()
        self.at = self.now() + at_offset
        self.reached = threading.Event()
        self.go = threading.Event()

    def sleep(self, seconds: float) -> None:
        if not self.reached.is_set() and self.now() >= self.at:
            self.reached.set()
            assert self.go.wait(120), "the test never let the rollout go on"
        super().sleep(seconds)


@pytest.fixture
def deploy(tmp_path: Path) -> Iterator[Deploy]:
    stack = Stack()
    try:
        yield start_target("kubernetes-istio", stack, tmp_path)
    finally:
        stack.close()


def rollback_process(
    deploy: Deploy, tmp_path: Path, reason: str
) -> tuple[int, str, dict[str, str]]:
    """`release-actions rollback` as its own process, as the rollback workflow runs it."""
    output = tmp_path / "rollback-output"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "rollback-summary"),
        "GITHUB_ACTOR": "oncall",
        **deploy.env,
    }
    args = [*deploy.args, "--reason", reason, "--no-flags"]
    args += ["--record-file", str(tmp_path / "record.json")]
    done = subprocess.run(
        [sys.executable, "-m", "release_actions", "rollback", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    outputs = dict(parse_file_commands(output.read_text("utf-8"))) if output.exists() else {}
    return done.returncode, done.stdout + done.stderr, outputs


def start_rollout(deploy: Deploy, clock: HeldClock, judge: ScriptedJudge) -> tuple[Any, Any]:
    target = deploy.target()
    rollbacks: list[Any] = []
    real_rollback = target.rollback

    def counted() -> Any:
        rollbacks.append(clock.now())
        return real_rollback()

    target.rollback = counted
    engine = CanaryEngine(
        target, FakeProvider(), judge, settings_of(default_policy(), STEPS), clock
    )
    result: dict[str, Outcome | BaseException] = {}

    def run() -> None:
        try:
            result["outcome"] = engine.run("v1.3.0")
        except BaseException as exc:  # reported by the test, not lost in the thread
            result["outcome"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, (result, rollbacks)


def test_a_rollback_from_another_process_stops_the_running_rollout(
    deploy: Deploy, tmp_path: Path
) -> None:
    clock = HeldClock(130)  # step 2 (50 %) begins at 120 s
    thread, (result, engine_rollbacks) = start_rollout(deploy, clock, ScriptedJudge("pass"))
    assert clock.reached.wait(60), result
    assert deploy.live()["canary"], "the rollout is under way"

    code, log, outputs = rollback_process(deploy, tmp_path, "p99 over 5 s on checkout")

    assert code == 0, log
    assert outputs["changed"] == "true" and outputs["to-version"] == "v1.2.0"
    assert "marked the saved state" in log
    assert deploy.live()["image"] == GOOD and not deploy.live()["canary"]
    clock.go.set()
    thread.join(60)
    outcome = result["outcome"]
    assert isinstance(outcome, Outcome), outcome
    assert outcome.decision is Decision.ROLLED_BACK and not outcome.ok
    assert outcome.reason.startswith("a manual rollback took over (by oncall at ")
    assert "p99 over 5 s on checkout" in outcome.reason
    assert outcome.record is None and engine_rollbacks == []
    assert [s.weight for s in outcome.steps] == [10]
    assert deploy.live()["image"] == GOOD and not deploy.live()["canary"]
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["trigger"]["type"] == "manual"
    assert (record["from_version"], record["to_version"]) == ("v1.3.0", "v1.2.0")


def test_a_rollback_after_the_engines_own_finds_nothing_to_do(
    deploy: Deploy, tmp_path: Path
) -> None:
    clock = HeldClock(10_000)  # never held: the judge fails in step 1
    thread, (result, engine_rollbacks) = start_rollout(deploy, clock, ScriptedJudge("fail"))
    thread.join(60)
    outcome = result["outcome"]
    assert isinstance(outcome, Outcome), outcome
    assert outcome.decision is Decision.ROLLED_BACK and len(engine_rollbacks) == 1
    writes = deploy.writes()

    code, log, outputs = rollback_process(deploy, tmp_path, "late page")

    assert code == 0, log
    assert outputs["changed"] == "false" and "Nothing to roll back" in log
    assert deploy.writes() == writes, "no mark, no rollback: nothing written"
