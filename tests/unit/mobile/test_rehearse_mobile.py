"""`release-actions rehearse --mobile`, driven with a cleared environment."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import RunCli


def test_crash_spike_halts_at_one_percent_with_a_record(run_cli: RunCli) -> None:
    r = run_cli("rehearse", "--mobile", "--scenario", "crash-spike", "--json", actions=True)
    assert r.code == 1, r.stderr
    data = json.loads(r.stdout)
    assert data["decision"] == "halted"
    assert data["halted_at_fraction"] == 0.01
    assert 0 < data["halted_at_hours"] <= 24
    assert data["exposed_users"] > 0
    assert data["stages"][-1]["result"] == "halted"
    assert data["stages"][-1]["evidence"]["checks"]
    assert data["rollback"]["id"].startswith("RB-2026-")
    assert "higher version code" in data["next_step"]
    assert data["seed"] == 1
    assert r.outputs["decision"] == "halted"
    assert "xychart-beta" in r.summary or "halted" in r.summary
    assert "Automatic rollback" in r.summary  # the rolled_back notice, in the job summary


def test_healthy_completes_and_exits_zero(run_cli: RunCli) -> None:
    r = run_cli("rehearse", "--mobile", "--scenario", "healthy", "--json", actions=True)
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["decision"] == "completed"
    assert data["halted_at_fraction"] is None and data["halted_at_hours"] is None
    assert [s["fraction"] for s in data["stages"]] == [0.01, 0.05, 0.2, 0.5, 1.0]
    assert [s["hours"] for s in data["stages"][:4]] == [24, 24, 48, 48]
    assert "xychart-beta" in r.summary


def test_threshold_judge_and_seed(run_cli: RunCli) -> None:
    r = run_cli(
        "rehearse",
        "--mobile",
        "--scenario",
        "healthy",
        "--judge",
        "threshold",
        "--seed",
        "3",
        "--json",
    )
    data = json.loads(r.stdout)
    assert data["judge"] == "threshold" and data["seed"] == 3


def test_scenario_file(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "spike.yml"
    path.write_text(
        "platform: android\n"
        "dau: 200000\n"
        "update_per_day: 0.35\n"
        "previous: {crash_rate: 0.004, anr_rate: 0.0008, rating: 4.5}\n"
        "new: {crash_rate: 0.004, anr_rate: 0.0008, rating: 4.5}\n"
        "events:\n"
        "  - {at_hours: 30, track: new, crash_rate: 0.02}\n"
        '  - {at_hours: 50, reviews: {stars: 1, count: 12, text: "crashes on launch"}}\n',
        encoding="utf-8",
    )
    r = run_cli("rehearse", "--mobile", "--scenario-file", str(path), "--json")
    data = json.loads(r.stdout)
    assert r.code == 1 and data["decision"] == "halted"
    assert 30 < data["halted_at_hours"] <= 51


def test_bad_scenario_file_names_file_line_and_field(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(
        "dau: 1000\nevents:\n  - {at_hours: 3, track: newest, crash_rate: 0.1}\n", encoding="utf-8"
    )
    r = run_cli("rehearse", "--mobile", "--scenario-file", str(path))
    assert r.code == 2
    both = r.stdout + r.stderr
    assert "bad.yml,line=3" in both and "events.0.track" in both


def test_unknown_scenario_says_the_nearest(run_cli: RunCli) -> None:
    r = run_cli("rehearse", "--mobile", "--scenario", "crash-spik")
    assert r.code == 2
    assert "crash-spike" in r.stderr
