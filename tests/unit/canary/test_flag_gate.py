"""The guarded flag rollout's scheduled gate rehearsed: separate runs of the engine on a simulated
flag and a virtual clock, with day-long steps (app/flag_gate.py, `rehearse --flag --gate`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from release_actions.app.flag_gate import GateRehearsal, rehearse_flag_gate
from release_actions.app.world import WorldRequest
from release_actions.canary.model import Decision
from release_actions.core.policy import Policy, default_policy_data
from release_actions.core.settings import Overrides, resolve
from release_actions.errors import ReleaseActionsError
from tests.conftest import RunCli

DAY = 86_400
HOUR = 3_600


def day_policy() -> Policy:
    data = default_policy_data()
    data["feature_flags"]["guard"]["step_seconds"] = DAY
    return Policy.model_validate(data)


def rehearse(tmp_path: Path, scenario: str | None = None, **events: Any) -> GateRehearsal:
    path = None
    if events:
        path = tmp_path / "scenario.yml"
        path.write_text(
            json.dumps(
                {
                    "description": "day-long steps",
                    "traffic": {"rps": 200},
                    "stable": {"error_rate": 0.0003, "latency_ms": {"p50": 80, "p99": 300}},
                    "canary": {"error_rate": 0.0003, "latency_ms": {"p50": 80, "p99": 300}},
                    "events": [events],
                }
            ),
            "utf-8",
        )
    return rehearse_flag_gate(
        resolve(day_policy(), Overrides(strategy="canary")),
        WorldRequest(scenario_name=scenario, scenario_file=path),
        every=HOUR,
    )


# -- the rehearsal: separate runs on a virtual clock, steps of a day -------------------------------


def test_a_healthy_flag_reaches_100_percent_after_four_days_of_hourly_runs(
    tmp_path: Path,
) -> None:
    gate = rehearse(tmp_path, "flag-healthy")
    looks = gate.looks
    assert gate.outcome.decision is Decision.PROMOTED
    # One run starts it; every run after it makes exactly one look.
    assert looks[0].action == "started" and looks[0].looked == 0
    assert all(g.looked == 1 for g in looks[1:])
    actions = [g.action for g in looks]
    assert actions.count("advanced") == 3
    assert actions[-1] == "promoted"
    assert set(actions[1:-1]) == {"holding", "advanced"}
    # Each step held for its whole day (24 hourly looks), then moved on: 4 days, 97 runs.
    assert [g.percent for g in looks if g.action in ("started", "advanced")] == [25, 50, 75, 100]
    assert [k for k, a in enumerate(actions) if a == "advanced"] == [24, 48, 72]
    assert len(looks) == 97
    assert [s.weight for s in gate.outcome.steps] == [25, 50, 75, 100]
    for step in gate.outcome.steps:
        assert step.ended_at - step.started_at == pytest.approx(DAY)
    assert gate.context["flag"]["percent_history"] == [25, 50, 75, 100]
    holding, first = looks[5], looks[0]
    assert first.since is not None
    assert holding.until == pytest.approx(first.since + DAY)
    # The looks kept for the chart cover the four days within the bound.
    assert len(looks[-1].looks) == 48
    assert sum(x["canary"][0] for x in looks[-1].looks) > 0


def test_a_regression_on_the_second_day_sets_the_flag_back_to_25_percent(
    tmp_path: Path,
) -> None:
    gate = rehearse(tmp_path, at=DAY + 4 * HOUR, track="canary", error_rate=0.02)
    outcome = gate.outcome
    assert outcome.decision is Decision.ROLLED_BACK
    assert [(s.weight, s.status.value) for s in outcome.steps] == [(25, "passed"), (50, "failed")]
    last = gate.looks[-1]
    assert last.action == "rolled_back" and last.looked == 1 and last.exit_code == 1
    # Caught by the first look after the fault began, four hours into the 50 % day.
    assert outcome.detected_at is not None
    assert outcome.detected_at - outcome.started_at == pytest.approx(DAY + 5 * HOUR)
    assert len(gate.looks) == 30
    flag = gate.context["flag"]
    assert flag["last_safe_percent"] == 25
    assert flag["rolled_back_to_percent"] == 25
    assert flag["percent_history"] == [25, 50, 25]
    record = outcome.record
    assert record is not None and record["id"].startswith("RB-")
    assert record["from_version"] == "new-booking-flow on for 50%"
    assert record["to_version"] == "new-booking-flow on for 25%"


def test_the_rehearsal_refuses_a_scenario_with_steps(tmp_path: Path) -> None:
    path = tmp_path / "steps.yml"
    path.write_text("steps: workflow\n", "utf-8")
    with pytest.raises(ReleaseActionsError, match=r"feature_flags\.stages\.gradual"):
        rehearse_flag_gate(
            resolve(day_policy(), Overrides(strategy="canary")),
            WorldRequest(scenario_file=path),
        )


# -- rehearse --flag --gate ---------------------------------------------------------------------


def short_policy(tmp_path: Path) -> str:
    """Two-hour steps and a run every half hour: the command's shape, quickly."""
    path = tmp_path / "policy.yml"
    path.write_text("feature_flags:\n  guard:\n    step_seconds: 7200\n", "utf-8")
    return str(path)


def test_rehearse_flag_gate_reports_each_run(run_cli: RunCli, tmp_path: Path) -> None:
    args = ("rehearse", "--flag", "--gate", "--every", "1800", "--policy", short_policy(tmp_path))
    r = run_cli(*args)
    assert r.code == 0, r.stderr
    assert "run   1 (+0h, 0 looks): started, 25% on: holding until" in r.stdout
    assert "run   2 (+0.5h, 1 look): holding, 25% on" in r.stdout
    assert "flag `new-booking-flow` on: 25% → 50% → 75% → 100%" in r.stdout
    assert r.outputs["decision"] == "promoted"
    assert r.outputs["flag-percent"] == "100"
    assert "## Flag gate rehearsal `flag-healthy`" in r.summary
    assert "xychart-beta" in r.summary


def test_rehearse_flag_gate_as_json(run_cli: RunCli, tmp_path: Path) -> None:
    r = run_cli(
        "rehearse",
        "--flag",
        "--gate",
        "--every",
        "1800",
        "--scenario",
        "flag-regression",
        "--policy",
        short_policy(tmp_path),
        "--json",
    )
    assert r.code == 1
    body = json.loads(r.stdout)
    assert body["ok"] is False
    assert body["decision"] == "rolled_back"
    assert body["gate"] == {"every_seconds": 1800, "runs": len(body["runs"])}
    assert [run["looked"] for run in body["runs"]] == [0] + [1] * (len(body["runs"]) - 1)
    # The fault at +14 min is inside the first two-hour step: nothing passed, so off again.
    assert body["flag"]["rolled_back_to_percent"] == 0
    assert body["rollback"]["id"].startswith("RB-")
    assert r.outputs["record-id"] == body["rollback"]["id"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--gate",), "add `--flag`"),
        (("--flag", "--gate", "--speed", "60"), "excludes `--speed`"),
        (("--flag", "--gate", "--state-file", "s.json"), "excludes `--state-file`"),
    ],
)
def test_rehearse_gate_usage(run_cli: RunCli, args: tuple[str, ...], message: str) -> None:
    r = run_cli("rehearse", *args)
    assert r.code == 2
    assert message in r.stderr
