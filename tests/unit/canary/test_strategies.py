"""Blue-green and shadow on the engine: the preview's smoke checks, the switch and its hold, the
mirror judged against stable, what a crash leaves, and what users saw (source §4.1)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from release_actions.canary.judge import make_judge
from release_actions.canary.model import Decision, StepStatus
from release_actions.canary.rollout import CanaryEngine
from release_actions.canary.simulator import Rehearsal, build
from release_actions.canary.smoke import Answer, SimulatedProber
from release_actions.core.policy import Policy, default_policy, default_policy_data
from release_actions.core.settings import Overrides, Settings, resolve
from release_actions.errors import TargetError
from release_actions.simulation.scenario import load_scenario
from release_actions.targets.base import RollbackResult
from tests.conftest import RunCli


def settings_for(strategy: str, policy: Policy | None = None) -> Settings:
    return resolve(policy or default_policy(), Overrides(strategy=strategy))


def rehearsal(scenario: str, state_file: Path | None = None) -> Rehearsal:
    name, sc = load_scenario(scenario)
    return build(sc, name=name, state_file=state_file)


def engine_for(r: Rehearsal, settings: Settings, **kw: Any) -> CanaryEngine:
    return CanaryEngine(
        r.target,
        r.provider,
        make_judge(settings.analysis),
        settings,
        r.clock,
        prober=SimulatedProber(r.simulation),
        **kw,
    )


# -- the command line of the issue: rehearse --strategy ... --json ---------------------------


def rehearse_json(run_cli: RunCli, strategy: str, scenario: str) -> tuple[int, dict[str, Any]]:
    r = run_cli("rehearse", "--strategy", strategy, "--scenario", scenario, "--json")
    return r.code, json.loads(r.stdout)


def test_bad_preview_aborts_before_any_user_request(run_cli: RunCli) -> None:
    code, out = rehearse_json(run_cli, "blue-green", "blue-green-bad-preview")
    assert code == 1
    assert out["strategy"] == "blue-green"
    assert out["decision"] == "aborted"
    assert out["user_requests_to_new"] == 0
    assert out["switched_at_s"] is None
    assert out["detected_at_s"] == 0.0
    assert out["rollback"] is None  # nothing was released, so nothing is a rollback
    assert [s["op"] for s in out["steps"]] == ["preview"]
    smoke = out["steps"][0]["evidence"]["smoke"]
    assert smoke["passed"] is False
    assert smoke["checks"][-1]["status"] == 503
    assert out["seed"] == 1


def test_regression_after_switch_switches_back_within_one_interval(run_cli: RunCli) -> None:
    code, out = rehearse_json(run_cli, "blue-green", "blue-green-regression-after-switch")
    assert code == 1
    assert out["decision"] == "rolled_back"
    assert out["switched_at_s"] is not None
    detected = out["detected_at_s"]
    assert detected is not None and detected > out["switched_at_s"]
    interval = default_policy().monitor.interval_seconds
    # The old version is still at full size: the switch back waits for nothing.
    assert out["rolled_back_at_s"] - detected <= interval
    assert out["rollback"]["id"].startswith("RB-")
    assert out["steps"][-1]["op"] == "switch"
    assert out["steps"][-1]["result"] == "triggered"
    assert out["user_requests_to_new"] > 0  # users were on it between the switch and back


def test_healthy_blue_green_switches_and_holds_for_the_watch(run_cli: RunCli) -> None:
    code, out = rehearse_json(run_cli, "blue-green", "blue-green-healthy")
    assert code == 0
    assert out["decision"] == "switched"
    switch = out["steps"][-1]
    assert switch["op"] == "switch" and switch["result"] == "passed"
    # The hold defaults to the watch period (source §6.3: 5 minutes).
    assert switch["ended_at_s"] - switch["started_at_s"] == pytest.approx(300, abs=1)
    assert "monitor" not in out  # the hold was the watch


def test_shadow_errors_fail_with_no_user_exposed(run_cli: RunCli) -> None:
    code, out = rehearse_json(run_cli, "shadow", "shadow-errors")
    assert code == 1
    assert out["decision"] == "failed"
    assert out["user_requests_to_new"] == 0
    assert out["switched_at_s"] is None
    assert out["rollback"] is None
    step = out["steps"][0]
    assert step["op"] == "mirror" and step["result"] == "failed"
    # The judge saw the mirrored copies: about as many as stable served.
    assert step["evidence"]["canary"]["requests"] > 0.8 * step["evidence"]["stable"]["requests"]


def test_healthy_shadow_passes_and_is_never_promoted(run_cli: RunCli) -> None:
    code, out = rehearse_json(run_cli, "shadow", "shadow-healthy")
    assert code == 0
    assert out["decision"] == "passed"
    assert out["user_requests_to_new"] == 0
    assert out["evidence"]["taken_away"]["changed"] is True


# -- the engine itself ---------------------------------------------------------------------------


def test_shadow_leaves_stable_serving_and_the_shadow_gone() -> None:
    r = rehearsal("shadow-healthy")
    outcome = engine_for(r, settings_for("shadow")).run("v1.5.2")
    assert outcome.decision is Decision.PASSED
    status = r.target.status()
    assert status.stable_version == "v1.5.1"
    assert status.canary_version is None
    assert status.mirror_percent == 0
    assert r.target.rollbacks == 0  # taking a shadow away is not a rollback
    assert [m[1] for m in r.target.mirrors][-2:] == [100, 0]


def test_blue_green_switch_is_one_change_and_the_old_stays_stable_until_promoted() -> None:
    r = rehearsal("blue-green-healthy")
    outcome = engine_for(r, settings_for("blue-green")).run("v1.5.2")
    assert outcome.decision is Decision.SWITCHED
    weights = [w for _, _, c, w in r.target.history if c == "v1.5.2"]
    assert weights == [0, 100]  # begin at 0 %, then all at once: no step in between
    assert r.target.status().stable_version == "v1.5.2"


def test_preview_without_a_url_is_not_a_pass(tmp_path: Path) -> None:
    class NoPreview:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def preview(self) -> None:
            return None

    r = rehearsal("blue-green-healthy")
    settings = settings_for("blue-green")
    engine = engine_for(r, settings)
    engine.target = NoPreview(r.target)  # type: ignore[assignment]
    outcome = engine.run("v1.5.2")
    assert outcome.decision is Decision.ABORTED
    assert "preview_url" in outcome.reason


class CrashOnce:
    """The simulated target, with one call failing as a killed job would leave it."""

    def __init__(self, inner: Any, method: str) -> None:
        self.inner = inner
        self.method = method
        self.crashed = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name == self.method and not self.crashed:

            def boom(*args: Any, **kwargs: Any) -> Any:
                self.crashed = True
                raise KeyboardInterrupt(f"killed during {name}")

            return boom
        return attr


def test_crash_between_switch_and_record_resumes_to_one_rollback(tmp_path: Path) -> None:
    state = tmp_path / "target.json"
    r = rehearsal("blue-green-regression-after-switch", state)
    settings = settings_for("blue-green")
    engine = engine_for(r, settings)
    engine.roller.target = CrashOnce(r.target, "rollback")  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt):
        engine.run("v1.5.2")
    saved = r.target.status().state or {}
    assert saved["phase"] == "rolling_back"
    assert r.target.status().canary_weight == 100  # still switched: the kill came first

    again = rehearsal("blue-green-regression-after-switch", state)
    outcome = engine_for(again, settings).run("v1.5.2")
    assert outcome.resumed
    assert outcome.decision is Decision.ROLLED_BACK
    assert outcome.record is not None
    status = again.target.status()
    assert status.stable_version == "v1.5.1" and status.canary_version is None
    assert again.target.rollbacks == 1

    # Run a third time: the rollout is over, nothing changes, no second record.
    third = rehearsal("blue-green-regression-after-switch", state)
    before = third.target.rollbacks
    outcome = engine_for(third, settings).run("v1.5.2")
    assert outcome.resumed and third.target.rollbacks == before
    assert third.target.rollback() == RollbackResult(
        changed=False,
        from_version=None,
        to_version="v1.5.1",
        detail="already on the known-good version v1.5.1",
    )


def test_crash_during_the_preview_is_taken_away_without_a_record(tmp_path: Path) -> None:
    state = tmp_path / "target.json"
    r = rehearsal("blue-green-healthy", state)
    settings = settings_for("blue-green")
    engine = engine_for(r, settings)
    engine.prober = CrashOnce(engine.prober, "request")  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt):
        engine.run("v1.5.2")
    assert r.target.status().canary_version == "v1.5.2"

    # The next release (another version) finds the dead preview and takes it away.
    again = rehearsal("blue-green-healthy", state)
    outcome = engine_for(again, settings).run("v1.5.3")
    assert outcome.decision is Decision.SWITCHED
    notes = [e.message for e in outcome.events if e.kind == "note"]
    assert any("taking it away" in n for n in notes)
    assert again.target.rollbacks == 0
    assert (again.target.status().state or {}).get("record") is None


def test_a_passed_shadow_hands_over_to_the_release_of_the_same_version(
    run_cli: RunCli, tmp_path: Path
) -> None:
    r = run_cli(
        "canary",
        "run",
        "--version",
        "v1.5.2",
        "--strategy",
        "shadow",
        "--scenario",
        "shadow-healthy",
        "--json",
    )
    assert r.code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] is True
    assert out["decision"] == "promoted"
    assert out["strategy"] == "canary"  # `deploy.shadow.then` (default: canary)
    assert out["shadow"]["decision"] == "passed"


def test_a_shadow_with_then_none_ends_with_its_verdict(run_cli: RunCli, tmp_path: Path) -> None:
    data = default_policy_data()
    policy = tmp_path / "policy.yml"
    policy.write_text("deploy:\n  shadow:\n    then: none\n", encoding="utf-8")
    r = run_cli(
        "canary",
        "run",
        "--version",
        "v1.5.2",
        "--strategy",
        "shadow",
        "--scenario",
        "shadow-healthy",
        "--policy",
        str(policy),
        "--json",
    )
    assert r.code == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["decision"] == "passed"
    assert "shadow" not in out  # no handover: the verdict is the result
    assert data["deploy"]["shadow"]["then"] == "canary"  # the default is the handover


# -- the smoke checks -------------------------------------------------------------------------


class Scripted:
    def __init__(self, answers: list[Answer]) -> None:
        self.answers = answers
        self.urls: list[tuple[str, Mapping[str, str]]] = []

    def request(self, method: str, url: str, headers: Mapping[str, str], timeout: float) -> Answer:
        self.urls.append((url, headers))
        return self.answers[min(len(self.urls) - 1, len(self.answers) - 1)]


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (Answer(500, "", 10.0), "status 500, expected 200"),
        (Answer(200, "degraded", 10.0), "body does not match /ok/"),
        (Answer(200, "ok", 900.0), "900 ms, limit 500 ms"),
        (Answer(None, "", 10_000.0, "ConnectTimeout: timed out"), "no answer (ConnectTimeout"),
    ],
)
def test_each_way_a_smoke_check_fails(answer: Answer, why: str) -> None:
    from release_actions.canary.smoke import run_smoke
    from release_actions.core.policy import SmokeCheck

    check = SmokeCheck(name="health", path="/health", body="ok", max_latency_ms=500)
    prober = Scripted([Answer(200, "ok", 10.0), answer])
    result = run_smoke(
        [check],
        base="http://preview",
        headers={"x-canary": "true"},
        attempts=3,
        timeout=5,
        prober=prober,
    )
    assert not result.passed
    assert why in result.reason
    assert "attempt 2 of 3" in result.reason
    assert prober.urls[0] == ("http://preview/health", {"x-canary": "true"})


def test_no_smoke_check_is_a_failure() -> None:
    from release_actions.canary.smoke import run_smoke

    result = run_smoke(
        [], base="http://preview", headers={}, attempts=3, timeout=5, prober=Scripted([])
    )
    assert not result.passed and "no smoke check" in result.reason


def test_target_without_mirroring_refuses_shadow_before_anything_changes() -> None:
    from release_actions.targets.base import DeployTarget

    class Plain(DeployTarget):
        name = "plain"

        def status(self) -> Any: ...
        def begin(self, version: str) -> None: ...
        def set_weight(self, percent: int) -> None: ...
        def promote(self) -> None: ...
        def rollback(self) -> Any: ...
        def save_state(self, state: Any) -> None: ...
        def health(self, track: Any = None) -> Any: ...

    with pytest.raises(TargetError, match="does not implement the `shadow` strategy"):
        Plain().use_strategy("shadow")


def test_step_status_of_a_failed_preview_is_failed() -> None:
    r = rehearsal("blue-green-bad-preview")
    outcome = engine_for(r, settings_for("blue-green")).run("v1.5.2")
    assert outcome.steps[0].status is StepStatus.FAILED
    assert outcome.steps[0].op == "preview"
    assert r.target.status().canary_version is None


@pytest.mark.parametrize(
    ("strategy", "scenario", "users", "mirrored"),
    [
        ("blue-green", "blue-green-bad-preview", [0], [0]),
        ("blue-green", "blue-green-regression-after-switch", [100, 0], [0]),
        ("shadow", "shadow-errors", [0], [100, 0]),
    ],
)
def test_the_summary_draws_each_strategy_s_traffic_split(
    strategy: str, scenario: str, users: list[int], mirrored: list[int]
) -> None:
    from release_actions.canary.report import split_points

    r = rehearsal(scenario)
    outcome = engine_for(r, settings_for(strategy)).run("v1.5.2")
    points = split_points(outcome.events)

    def changes(values: list[int]) -> list[int]:
        return [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]

    assert changes([u for _, u, _ in points])[-len(users) :] == users
    assert changes([m for _, _, m in points])[-len(mirrored) :] == mirrored
    assert max(u for _, u, _ in points) == max(users)


def test_status_names_the_strategy_steps(run_cli: RunCli, tmp_path: Path) -> None:
    state = tmp_path / "target.json"
    r = rehearsal("blue-green-healthy", state)
    assert engine_for(r, settings_for("blue-green")).run("v1.5.2").decision is Decision.SWITCHED
    shown = run_cli("status", "--target", "simulated", "--state-file", str(state), actions=False)
    assert shown.code == 0, shown.stderr
    assert "steps: preview" in shown.stdout and "switch" in shown.stdout
    data = json.loads(
        run_cli("status", "--target", "simulated", "--state-file", str(state), "--json").stdout
    )
    assert [p["op"] for p in data["plan"]] == ["preview", "switch"]
