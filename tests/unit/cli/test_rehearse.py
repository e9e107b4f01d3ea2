"""`release-actions rehearse`, `canary` and `monitor`, driven with a cleared environment."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CliResult, RunCli


def rehearse(
    run_cli: RunCli, *args: str, actions: bool = False
) -> tuple[CliResult, dict[str, Any]]:
    r = run_cli("rehearse", *args, "--json", actions=actions)
    assert r.code in (0, 1), r.stdout + r.stderr
    return r, json.loads(r.stdout)


# scenario -> (decision, exit code, detected_at_s range or None)
EXPECTED: dict[str, tuple[str, int, tuple[float, float] | None]] = {
    "healthy": ("promoted", 0, None),
    # Event at 3:00 during the 20 % step: caught at the next minute or the one after.
    "error-spike": ("rolled_back", 1, (180, 300)),
    "latency-regression": ("rolled_back", 1, (180, 300)),
    # The ramp starts at 2:00 and crosses 0.5 points around 4:30.
    "slow-burn": ("rolled_back", 1, (180, 900)),
    # Restarts from 2:30, the 6th about 2:15 later.
    "crash-loop": ("rolled_back", 1, (240, 420)),
    # Down at 2:30: the 4th error in a row, 4 minutes later at the latest.
    "provider-down": ("rolled_back", 1, (150, 150 + 5 * 60)),
    "flaky-provider": ("promoted", 0, None),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builtin_scenarios_decide(run_cli: RunCli, name: str) -> None:
    decision, code, window = EXPECTED[name]
    r, data = rehearse(run_cli, "--scenario", name)
    assert (data["decision"], r.code) == (decision, code), data["reason"]
    assert data["scenario"] == name and data["seed"] == 1 and data["judge"] == "sequential"
    if window is None:
        assert data["detected_at_s"] is None and data["rollback"] is None
        assert [s["weight"] for s in data["steps"]] == [5, 20, 50, 100]
        assert all(s["result"] == "passed" for s in data["steps"])
        assert data["monitor"]["decision"] == "stable"
    else:
        lo, hi = window
        assert lo < data["detected_at_s"] <= hi, data["detected_at_s"]
        record = data["rollback"]
        assert record["id"] == "RB-2026-001"
        assert (record["from_version"], record["to_version"]) == ("v1.5.2", "v1.5.1")
        assert record["trigger"]["type"] == "automatic"
        assert set(record["duration"]) >= {"detection_time", "rollback_time", "recovery_time"}
        assert record["deployment"] == "triptrip-api"
        assert record["timestamp"].startswith("2026-01-20T10:")


def test_error_spike_evidence(run_cli: RunCli) -> None:
    _, data = rehearse(run_cli, "--scenario", "error-spike")
    failed = data["steps"][-1]
    assert (failed["weight"], failed["result"]) == (20, "failed")
    judge = failed["evidence"]["judge"]
    assert judge["verdict"] == "fail" and judge["check"] == "error-rate"
    assert judge["evidence"]["canary_errors"] > judge["evidence"]["stable_errors"] / 10
    assert data["recovery"]["recovered"] is True
    assert data["timeline"][0]["kind"] == "start"


def test_latency_regression_is_caught_by_latency(run_cli: RunCli) -> None:
    _, data = rehearse(run_cli, "--scenario", "latency-regression")
    assert data["steps"][-1]["evidence"]["judge"]["check"] == "latency"


def test_crash_loop_is_caught_by_the_restart_trigger(run_cli: RunCli) -> None:
    _, data = rehearse(run_cli, "--scenario", "crash-loop")
    assert data["steps"][-1]["result"] == "triggered"
    assert "restarts" in data["rollback"]["trigger"]["reason"]


def test_low_traffic_never_promotes_on_no_evidence(run_cli: RunCli) -> None:
    for judge in ("sequential", "threshold"):
        r, data = rehearse(run_cli, "--scenario", "low-traffic", "--judge", judge)
        assert data["decision"] != "promoted" and r.code == 1
        assert data["steps"][-1]["result"] == "inconclusive"
        assert "no evidence" in data["reason"]


def test_flaky_provider_still_decides(run_cli: RunCli) -> None:
    _, data = rehearse(run_cli, "--scenario", "flaky-provider")
    errors = sum(s["evidence"]["measurement_errors"] for s in data["steps"])
    assert data["decision"] == "promoted" and errors > 0
    # ...and a bad canary behind the same flaky provider is still rolled back.
    for seed in ("1", "2", "3"):
        _, bad = rehearse(run_cli, "--scenario-file", str(flaky_spike_file()), "--seed", seed)
        assert bad["decision"] == "rolled_back", (seed, bad["reason"])


def flaky_spike_file() -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "flaky-spike.yml"
    path.write_text(
        "events:\n"
        "  - {at: 180, track: canary, error_rate: 0.05}\n"
        "  - {at: 0, provider: flaky, probability: 0.3, for: 3600}\n",
        encoding="utf-8",
    )
    return path


def hold_policy(tmp_path: Path) -> Path:
    path = tmp_path / "release-policy.yml"
    path.write_text("canary:\n  analysis:\n    on_error: hold\n", encoding="utf-8")
    return path


def test_provider_down_holds_with_on_error_hold(run_cli: RunCli, tmp_path: Path) -> None:
    r = run_cli(
        "rehearse", "--scenario", "provider-down", "--policy", str(hold_policy(tmp_path)), "--json"
    )
    data = json.loads(r.stdout)
    assert (data["decision"], r.code) == ("held", 1)
    assert data["rollback"] is None and data["detected_at_s"] is None
    assert r.outputs == {"decision": "held", "detected-at-s": "", "record-id": ""}


@pytest.mark.parametrize("name", ["error-spike", "latency-regression", "healthy"])
def test_threshold_judge(run_cli: RunCli, name: str) -> None:
    _, data = rehearse(run_cli, "--scenario", name, "--judge", "threshold")
    assert data["judge"] == "threshold"
    assert data["decision"] == EXPECTED[name][0]


def test_outputs_and_job_summary(run_cli: RunCli) -> None:
    r = run_cli("rehearse", "--scenario", "error-spike")
    assert r.code == 1
    assert r.outputs["decision"] == "rolled_back"
    assert r.outputs["record-id"] == "RB-2026-001"
    assert 180 < float(r.outputs["detected-at-s"]) <= 300
    summary = r.summary
    assert "```mermaid\n%%{init:" in summary and "\nxychart-beta\n" in summary
    assert "plotColorPalette" in summary and "canary red, stable blue" in summary
    assert "| Step | Weight |" in summary and "| 2 | 20% |" in summary
    assert "### Rollback record" in summary and "RB-2026-001" in summary
    # Actions: a group per step, and the rollback as an annotation.
    assert "::group::step 1/4: canary at 5%" in r.stdout and "::endgroup::" in r.stdout
    assert "::warning title=Rehearsal `error-spike`::rolled_back" in r.stdout


def test_terminal_output_is_a_timeline(run_cli: RunCli) -> None:
    r = run_cli("rehearse", "--scenario", "error-spike", actions=False)
    lines = r.stdout.splitlines()
    assert any(line.startswith("[  1:00]") and "5% canary" in line for line in lines)
    assert any("!! rolled_back" in line for line in lines)
    assert "decision: rolled_back" in r.stdout
    assert "rollback record RB-2026-001: v1.5.2 -> v1.5.1" in r.stdout


def test_same_seed_same_rehearsal(run_cli: RunCli) -> None:
    _, a = rehearse(run_cli, "--scenario", "slow-burn", "--seed", "5")
    _, b = rehearse(run_cli, "--scenario", "slow-burn", "--seed", "5")
    _, c = rehearse(run_cli, "--scenario", "slow-burn", "--seed", "6")
    assert a == b
    assert a["timeline"] != c["timeline"]


def test_a_rehearsal_takes_about_a_second(run_cli: RunCli) -> None:
    started = time.perf_counter()
    r = run_cli("rehearse", "--scenario", "healthy", actions=False)
    assert r.code == 0
    assert time.perf_counter() - started < 2.0


def test_scenario_and_scenario_file_exclude_each_other(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "s.yml"
    path.write_text("{}\n", encoding="utf-8")
    r = run_cli("rehearse", "--scenario", "healthy", "--scenario-file", str(path))
    assert r.code == 2 and "Only one of `--scenario` or `--scenario-file`" in r.stdout + r.stderr


def test_bad_scenario_file_names_file_line_and_key(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("traffic: {rps: 200}\nevents:\n  - {at: 60, track: canary, eror_rate: 0.1}\n")
    r = run_cli("rehearse", "--scenario-file", str(path))
    assert r.code == 2
    assert f"::error file={path},line=3" in r.stdout
    assert "events.0.eror_rate" in r.stdout


def test_unknown_scenario_lists_the_builtins(run_cli: RunCli) -> None:
    r = run_cli("rehearse", "--scenario", "nope", actions=False)
    assert r.code == 2 and "healthy" in r.stderr and "error-spike" in r.stderr


def test_custom_scenario_with_its_own_steps(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "two-steps.yml"
    path.write_text(
        "traffic: {rps: 400, canary_weight_override: null}\n"
        "steps:\n  - {weight: 25, pause_seconds: 180}\n  - {weight: 100}\n",
        encoding="utf-8",
    )
    _, data = rehearse(run_cli, "--scenario-file", str(path), "--no-monitor")
    assert data["decision"] == "promoted" and "monitor" not in data
    assert [s["weight"] for s in data["steps"]] == [25, 100]


# -- canary analyze / run ------------------------------------------------------------------


def test_canary_analyze(run_cli: RunCli) -> None:
    ok = run_cli("canary", "analyze", "--scenario", "healthy", "--json", actions=False)
    assert ok.code == 0 and json.loads(ok.stdout)["verdict"] == "pass"
    bad = run_cli("canary", "analyze", "--scenario", "error-spike", "--at", "480")
    assert bad.code == 1 and bad.outputs["verdict"] == "fail"
    down = run_cli("canary", "analyze", "--scenario", "provider-down", "--at", "500")
    assert down.code == 1 and down.outputs["verdict"] == "error"


def test_canary_analyze_real_provider_needs_its_settings(run_cli: RunCli) -> None:
    r = run_cli("canary", "analyze", "--provider", "prometheus", actions=False)
    assert r.code == 2 and "url" in r.stderr


def test_canary_analyze_against_an_unreachable_provider_answers_at_once(run_cli: RunCli) -> None:
    """Before: every 10 s interval retried its queries, and the answer came after 3.5 minutes."""
    started = time.monotonic()
    r = run_cli(
        "canary",
        "analyze",
        "--provider",
        "prometheus",
        "--provider-setting",
        "url=http://127.0.0.1:9",
        "--provider-setting",
        "service=api",
        "--json",
        actions=False,
    )
    elapsed = time.monotonic() - started
    data = json.loads(r.stdout)
    assert r.code == 1 and data["verdict"] == "error"
    assert "does not answer its health check" in data["reason"]
    assert elapsed < 30, f"{elapsed:.0f} s"


def test_the_policy_s_provider_section_is_used(run_cli: RunCli, tmp_path: Path) -> None:
    # The url comes from the policy (no "needs url"), and so does the broken template.
    policy = tmp_path / "policy.yml"
    policy.write_text(
        "metrics:\n  prometheus:\n    url: http://127.0.0.1:9\n"
        '    queries:\n      requests: "sum({{ nope }})"\n'
    )
    args = ("canary", "analyze", "--provider", "prometheus", "--policy", str(policy))
    r = run_cli(*args, actions=False)
    assert r.code == 2 and "undefined variable `nope`" in r.stderr


def test_canary_run_resumes_from_its_state_file(run_cli: RunCli, tmp_path: Path) -> None:
    state = str(tmp_path / "target.json")
    args = ("canary", "run", "--target", "simulated", "--version", "v2.0.0", "--state-file", state)
    first = run_cli(*args, "--json", actions=False)
    data = json.loads(first.stdout)
    assert (first.code, data["decision"], data["resumed"]) == (0, "promoted", False)
    again = run_cli(*args, "--json", actions=False)
    data = json.loads(again.stdout)
    assert (again.code, data["decision"], data["resumed"]) == (0, "promoted", True)
    saved = json.loads(Path(state).read_text())
    assert saved["stable_version"] == "v2.0.0" and saved["rollbacks"] == 0


def test_canary_run_rolls_back(run_cli: RunCli) -> None:
    r = run_cli(
        "canary", "run", "--target", "simulated", "--version", "v2", "--scenario", "error-spike"
    )
    assert r.code == 1 and r.outputs["decision"] == "rolled_back"
    assert "::error title=Canary rollout of v2::rolled_back" in r.stdout


def test_canary_run_refuses_a_real_provider_on_the_simulator(run_cli: RunCli) -> None:
    r = run_cli(
        "canary", "run", "--target", "simulated", "--version", "v2", "--provider", "datadog"
    )
    assert r.code == 2 and "--provider simulated" in r.stdout + r.stderr


def test_canary_run_dry_run_changes_nothing(run_cli: RunCli, tmp_path: Path) -> None:
    state = tmp_path / "target.json"
    r = run_cli(
        "--dry-run",
        "canary",
        "run",
        "--target",
        "simulated",
        "--version",
        "v2",
        "--state-file",
        str(state),
        actions=False,
    )
    assert r.code == 0 and "Would roll v2 out" in r.stdout
    assert json.loads(state.read_text())["canary_version"] is None


# -- monitor ---------------------------------------------------------------------------------


def test_monitor_healthy(run_cli: RunCli) -> None:
    r = run_cli("monitor", "--target", "simulated", "--json", actions=False)
    data = json.loads(r.stdout)
    assert (r.code, data["decision"], data["duration_s"]) == (0, "stable", 300)


def test_monitor_rolls_back_and_checks_recovery(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "bad-deploy.yml"
    path.write_text("events:\n  - {at: 30, track: canary, error_rate: 0.07}\n", encoding="utf-8")
    r = run_cli(
        "monitor", "--target", "simulated", "--scenario-file", str(path), "--json", actions=False
    )
    data = json.loads(r.stdout)
    assert (r.code, data["decision"]) == (1, "rolled_back")
    assert data["detected_at_s"] == 150
    assert data["rollback"]["trigger"]["reason"].startswith("Error rate")
    assert data["rollback"]["recovered"] is True


def test_monitor_provider_down_is_not_a_pass(run_cli: RunCli) -> None:
    r = run_cli(
        "monitor", "--target", "simulated", "--scenario", "provider-down", "--json", actions=False
    )
    data = json.loads(r.stdout)
    assert (r.code, data["decision"]) == (1, "rolled_back")
    assert "measurement errors in a row" in data["reason"]


def test_monitor_hotfix_preset(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "one-percent.yml"
    path.write_text("canary: {error_rate: 0.01}\n", encoding="utf-8")
    regular = run_cli(
        "monitor", "--target", "simulated", "--scenario-file", str(path), "--json", actions=False
    )
    assert json.loads(regular.stdout)["decision"] == "stable"
    hotfix = run_cli(
        "monitor",
        "--target",
        "simulated",
        "--scenario-file",
        str(path),
        "--preset",
        "hotfix",
        "--json",
        actions=False,
    )
    data = json.loads(hotfix.stdout)
    assert data["duration_s"] < 1800  # rolled back well before the 30 minutes were up
    assert (data["preset"], data["error_rate_threshold_percent"]) == ("hotfix", 0.5)
    assert data["decision"] == "rolled_back"
    healthy = run_cli(
        "monitor", "--target", "simulated", "--preset", "hotfix", "--json", actions=False
    )
    assert json.loads(healthy.stdout)["duration_s"] == 1800


def test_monitor_unknown_preset(run_cli: RunCli) -> None:
    r = run_cli("monitor", "--target", "simulated", "--preset", "hotfx", actions=False)
    assert r.code == 2 and "hotfix" in r.stderr


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_in_a_terminal_for_real_time_rollouts() -> None:
    from release_actions.app.session import Session
    from release_actions.canary.model import Event
    from release_actions.cli.rehearse import ProgressPrinter
    from release_actions.gha import Runtime

    out = Terminal()
    printer = ProgressPrinter(Session(Runtime(env={}, out=out, err=out)), real_time=True)
    assert printer.bar_mode
    printer(Event("step", 0, "step 1/2: canary at 5% (120s pause)", 0, {"pause_seconds": 120}))
    printer(Event("interval", 60, "5% canary ok", 0, {"remaining_s": 60.0}))
    printer(Event("interval", 120, "5% canary ok", 0, {"remaining_s": 0.0}))
    printer(Event("step_end", 120, "step 1: passed", 0, {}))
    printer.close()
    text = out.getvalue()
    assert "step 1/2: canary at 5%" in text and "step 1: passed" in text
