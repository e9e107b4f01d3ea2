"""Operator control: reasons cleaned, the status view, marks kept across processes, no-state errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

from release_actions.app.control import clean_text, view_of
from release_actions.cli import main
from release_actions.simulation.clock import VirtualClock
from release_actions.targets.base import TargetStatus
from release_actions.targets.simulated import SimulatedTarget


def test_reasons_lose_control_characters_and_are_capped() -> None:
    assert clean_text("a\nb\t c\x1b[31m d\u202e e\x00", 200) == "a b c[31m d e"
    long = clean_text("x" * 500, 200)
    assert len(long) == 200 and long.endswith("…")
    assert clean_text(" \n\t ", 200) == ""


def _state(**extra: object) -> dict[str, object]:
    return {
        "version": "v2",
        "started_at": 1000.0,
        "phase": "running",
        "step_index": 1,
        "weight": 50,
        "step_started_at": 1100.0,
        "plan": [
            {"weight": 10, "pause_seconds": 60, "analysis": True},
            {"weight": 50, "pause_seconds": 600, "analysis": True},
            {"weight": 100, "pause_seconds": 0, "analysis": False},
        ],
        "cadence_s": 10,
        "clock": {"at": 1200.0, "wall": 50.0, "pace": 1.0},
        "look": {
            "at": 1200.0,
            "looks": 10,
            "judged": True,
            "canary": {"requests": 1000, "errors": 2, "error_rate_percent": 0.2, "p99_ms": 310.0},
            "stable": {"requests": 1000, "errors": 1, "error_rate_percent": 0.1, "p99_ms": 300.0},
            "verdict": "inconclusive",
            "reason": "Not enough evidence yet. More text.",
        },
        **extra,
    }


def test_the_view_counts_down_on_the_engines_clock() -> None:
    status = TargetStatus("v1", "v2", 50, "v1", _state())
    view = view_of("api", status, wall=80.0)  # 30 s after the save, at pace 1
    assert (view.phase, view.step, view.steps, view.weight) == ("analysing", 2, 3, 50)
    assert view.next_step_in_s == 470.0 and view.look_age_s == 30.0
    lines = view.lines()
    assert lines[1].startswith("step 2/3 at 50% — analysing, paused until ")
    assert "(next step in 7m 50s)" in lines[1]
    assert lines[2] == "steps: 10% ✓ → [50%] → 100%"
    assert "canary 0.20% errors (2/1000), p99 310ms | stable 0.10%" in lines[3]
    assert lines[3].endswith("judge: inconclusive, Not enough evidence yet")
    assert view.ok and not view.ended
    assert json.loads(json.dumps(view.to_dict()))["next_step_in_s"] == 470.0
    assert "| phase |" in view.markdown()


def test_the_view_of_a_promote_waiting_and_of_an_end() -> None:
    mark = {"id": "m1", "by": "alice", "reason": "ok", "step": 1, "full": False}
    mark |= {"version": "v2", "started_at": 1000.0}
    waiting = view_of("api", TargetStatus("v1", "v2", 50, "v1", _state(promote=mark)), wall=80)
    assert waiting.phase == "promote-requested" and "alice" in waiting.summary
    done = view_of(
        "api",
        TargetStatus("v1", None, 0, "v1", _state(phase="done", decision="rolled_back")),
        wall=80,
    )
    assert done.ended and not done.ok and done.phase == "rolled-back"
    none = view_of("api", TargetStatus("v1", None, 0, None, None))
    assert none.phase == "none"


def test_a_mark_written_by_another_process_survives_a_stale_save(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    engine = SimulatedTarget(VirtualClock(), stable_version="v1", state_file=path)
    engine.begin("v2")
    engine.save_state({"version": "v2", "phase": "running"})
    stale = dict(engine.status().state or {})
    other = SimulatedTarget(VirtualClock(), state_file=path)  # `promote` in another process
    other.save_state({**stale, "promote": {"id": "p1", "by": "alice"}})
    engine.save_state({**stale, "step_index": 1})  # prepared before the mark was written
    engine.set_weight(20)
    saved = json.loads(path.read_text())["state"]
    assert saved["promote"]["id"] == "p1" and saved["step_index"] == 1
    assert engine.status().state["promote"]["by"] == "alice"  # type: ignore[index]
    other.rollback()  # `abort` in another process: the running one sees it at its next look
    assert engine.status().canary_version is None and engine.status().stable_version == "v1"


def _run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), env={"HOME": "/nonexistent"}, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_no_saved_rollout_is_exit_2_with_what_to_check(tmp_path: Path) -> None:
    missing = str(tmp_path / "none.json")
    code, _, err = _run("status", "--target", "simulated", "--state-file", missing)
    assert code == 2 and "does not exist" in err and "rehearse --state-file" in err
    assert not (tmp_path / "none.json").exists(), "status created nothing"
    SimulatedTarget(VirtualClock(), state_file=tmp_path / "idle.json")
    idle = str(tmp_path / "idle.json")
    code, _, err = _run("status", "--target", "simulated", "--state-file", idle)
    assert code == 2 and "No rollout saved on triptrip-api" in err
    code, _, err = _run("promote", "--target", "simulated", "--state-file", idle, "--reason", "x")
    assert code == 2 and "No rollout is in progress" in err
    code, _, err = _run("abort", "--target", "simulated", "--state-file", idle, "--reason", "x")
    assert code == 2 and "No rollout is in progress" in err
    code, _, err = _run("promote", "--target", "simulated", "--state-file", idle, "--reason", "\n")
    assert code == 2 and "`--reason` is empty" in err
