"""An operator's `status --watch`, `promote` and `abort` against rollouts in progress.

Two places where a rollout really runs beside the commands: a rehearsal in real time
(`rehearse --speed`, its own process, sharing its state file), and the Kubernetes API's
HTTP fake with the engine in a thread held at step 2 and the commands run as the CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from release_actions.canary.model import Decision, Outcome
from tests.e2e.test_rollback_during_release import HeldClock, start_rollout
from tests.integration.deploys import GOOD, Cli, Deploy, Stack, start_target
from tests.unit.canary.test_engine import ScriptedJudge

pytestmark = pytest.mark.integration

# Three short steps: 10 virtual seconds a look; at 20x a look every half second.
SCENARIO = """\
description: a short healthy rollout for the control tests
stable: {error_rate: 0.0003, latency_ms: {p50: 80, p99: 300}}
canary: {error_rate: 0.0003, latency_ms: {p50: 80, p99: 300}}
steps:
  - {weight: 10, pause_seconds: 60}
  - {weight: 50, pause_seconds: 600}
  - {weight: 100, pause_seconds: 0, analysis: false}
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **extra}


def cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "release_actions", *args],
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def rehearsal(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    scenario = tmp_path / "short.yml"
    scenario.write_text(SCENARIO)
    state = tmp_path / "state.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "release_actions",
            "rehearse",
            "--scenario-file",
            str(scenario),
            "--state-file",
            str(state),
            "--speed",
            "20",
            "--no-monitor",
            "--json",
        ],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        yield proc, state
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def _status(tmp_path: Path, state: Path) -> dict[str, Any]:
    done = cli(tmp_path, "status", "--target", "simulated", "--state-file", str(state), "--json")
    assert done.returncode in (0, 1), done.stderr
    return dict(json.loads(done.stdout))


def _wait_for(tmp_path: Path, state: Path, ok: Any, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        if state.exists():
            view = _status(tmp_path, state)
            if ok(view):
                return view
        assert time.monotonic() < deadline, "the rehearsal never got there"
        time.sleep(0.2)


def test_status_watch_and_promote_on_a_rehearsal_in_progress(
    rehearsal: tuple[subprocess.Popen[str], Path], tmp_path: Path
) -> None:
    proc, state = rehearsal
    view = _wait_for(tmp_path, state, lambda v: v["step"] == 2 and v["last_look"])
    assert view["phase"] == "analysing" and view["weight"] == 50 and view["steps"] == 3
    assert view["next_step_in_s"] > 0 and view["last_look"]["canary"]["requests"] > 0
    assert view["last_look"]["verdict"] in ("pass", "inconclusive")

    asked = time.monotonic()
    done = cli(
        tmp_path,
        "promote",
        "--target",
        "simulated",
        "--state-file",
        str(state),
        "--reason",
        "dashboards\nlook fine\x1b[2J",
        "--by",
        "alice",
    )
    assert done.returncode == 0, done.stderr
    assert "skips the pause of step 2" in done.stdout
    watch = cli(
        tmp_path,
        "status",
        "--target",
        "simulated",
        "--state-file",
        str(state),
        "--watch",
        "--interval",
        "0.1",
    )
    took = time.monotonic() - asked
    out, _ = proc.communicate(timeout=60)
    assert watch.returncode == 0, watch.stdout + watch.stderr
    lines = watch.stdout.splitlines()
    assert lines[-1].endswith("promoted"), lines
    assert any("step 3/3 100%" in line for line in lines) or "promoted" in lines[-1]
    # Ten virtual minutes of pause were left: a look is half a second at 20x.
    assert took < 10, took
    report = json.loads(out)
    assert proc.returncode == 0 and report["decision"] == "promoted"
    step2 = report["steps"][1]
    assert step2["reason"].startswith("promoted by alice at ")
    assert step2["reason"].endswith(": dashboards look fine[2J")  # no control characters
    assert "step 2's pause skipped, promoted by alice" in report["reason"]
    final = _status(tmp_path, state)
    assert final["phase"] == "promoted" and final["promotions"][0]["by"] == "alice"


def test_abort_rolls_a_rehearsal_in_progress_back_as_manual(
    rehearsal: tuple[subprocess.Popen[str], Path], tmp_path: Path
) -> None:
    proc, state = rehearsal
    _wait_for(tmp_path, state, lambda v: v["step"] == 2 and v["last_look"])
    record = tmp_path / "record.json"
    done = cli(
        tmp_path,
        "abort",
        "--target",
        "simulated",
        "--state-file",
        str(state),
        "--reason",
        "p99 creeping up",
        "--record-file",
        str(record),
        GITHUB_ACTOR="bob",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "aborted, rolled back v1.5.2 -> v1.5.1" in done.stdout
    out, _ = proc.communicate(timeout=30)
    report = json.loads(out)
    assert proc.returncode == 1 and report["decision"] == "rolled_back"
    assert report["reason"].startswith("a manual rollback took over (by bob at ")
    assert report["rollback"] is None, "the engine did not roll back a second time"
    saved = json.loads(record.read_text())
    assert saved["trigger"] == {"type": "manual", "reason": "p99 creeping up", "metrics": {}}
    view = _status(tmp_path, state)
    assert view["phase"] == "aborted" and view["stable_version"] == "v1.5.1"
    again = cli(
        tmp_path, "abort", "--target", "simulated", "--state-file", str(state), "--reason", "x"
    )
    assert again.returncode == 0 and "already aborted by bob" in again.stdout


# -- the Kubernetes fake ----------------------------------------------------------------------------


@pytest.fixture
def deploy(tmp_path: Path) -> Iterator[Deploy]:
    stack = Stack()
    try:
        yield start_target("kubernetes-istio", stack, tmp_path)
    finally:
        stack.close()


def _cli(deploy: Deploy, tmp_path: Path) -> Cli:
    return Cli(tmp_path, env={**deploy.env, "GITHUB_ACTOR": "oncall"})


def _outcome(thread: Any, result: dict[str, Any]) -> Outcome:
    thread.join(60)
    outcome = result["outcome"]
    assert isinstance(outcome, Outcome), outcome
    return outcome


def test_status_and_promote_on_kubernetes(deploy: Deploy, tmp_path: Path) -> None:
    clock = HeldClock(130)  # step 2 (50 %) began at 120 s
    thread, (result, _) = start_rollout(deploy, clock, ScriptedJudge("pass"))
    assert clock.reached.wait(60), result
    run = _cli(deploy, tmp_path)

    shown = run("status", *deploy.args, "--json")
    assert shown.code == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert (view["version"], view["step"], view["weight"]) == ("v1.3.0", 2, 50)
    assert view["last_look"]["looks"] >= 1 and view["phase"] == "analysing"
    assert "### Rollout status" in shown.summary

    promoted = run("promote", *deploy.args, "--reason", "traffic is low, go on", "--full")
    assert promoted.code == 0, promoted.stderr
    assert promoted.outputs["changed"] == "true"
    twice = run("promote", *deploy.args, "--reason", "again", "--full")
    assert twice.code == 0 and twice.outputs["changed"] == "false"
    waiting = json.loads(run("status", *deploy.args, "--json").stdout)
    assert waiting["phase"] == "promote-requested"

    clock.go.set()
    outcome = _outcome(thread, result)
    assert outcome.decision is Decision.PROMOTED
    assert outcome.reason.startswith("promoted by oncall at ")
    assert "traffic is low, go on (full: 2 of 3 steps passed, the rest skipped)" in outcome.reason
    assert [s.weight for s in outcome.steps] == [10, 50]
    assert outcome.evidence["manual_promotions"][0]["reason"] == "traffic is low, go on"
    assert deploy.live()["image"].endswith(":v1.3.0") and not deploy.live()["canary"]
    done = run("status", *deploy.args)
    assert done.code == 0 and "promoted" in done.stdout


def test_abort_on_kubernetes_stops_the_running_rollout(deploy: Deploy, tmp_path: Path) -> None:
    clock = HeldClock(130)
    thread, (result, engine_rollbacks) = start_rollout(deploy, clock, ScriptedJudge("pass"))
    assert clock.reached.wait(60), result
    run = _cli(deploy, tmp_path)

    aborted = run(
        "abort", *deploy.args, "--reason", "errors on checkout", "--no-flags", "--provider", "none"
    )
    assert aborted.code == 0, aborted.stdout + aborted.stderr
    assert aborted.outputs["changed"] == "true" and aborted.outputs["record-id"]
    assert deploy.live()["image"] == GOOD and not deploy.live()["canary"]
    clock.go.set()
    outcome = _outcome(thread, result)
    assert outcome.decision is Decision.ROLLED_BACK and engine_rollbacks == []
    assert "by oncall" in outcome.reason and "errors on checkout" in outcome.reason
    shown = run("status", *deploy.args, "--json")
    assert shown.code == 1 and json.loads(shown.stdout)["phase"] == "aborted"
    refused = run("promote", *deploy.args, "--reason", "too late")
    assert refused.code == 2 and "No rollout is in progress" in refused.stdout
