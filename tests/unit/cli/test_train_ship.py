"""`train due` and `train schedule` on a fixed clock (source §2.1, §2.4): one cron drives the train."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from release_actions.app.train_ship import due, schedule, train_of
from release_actions.core.policy import Policy, default_policy, parse_policy
from release_actions.core.yamlpos import load_yaml
from tests.conftest import RunCli

JST = ZoneInfo("Asia/Tokyo")


def policy_of(text: str) -> Policy:
    located = load_yaml(text, "policy.yml")
    return parse_policy(located.data, "policy.yml", located.lines)


@pytest.mark.parametrize(
    ("now", "step"),
    [
        # Train cut Wed 2026-12-30, staging Thu 12-31, production Tue 2027-01-05 10:00 JST.
        ("2026-12-30T09:59:00+09:00", "none"),
        ("2026-12-30T10:00:00+09:00", "cut"),
        ("2026-12-30T11:29:00+09:00", "cut"),
        ("2026-12-30T11:30:00+09:00", "none"),  # the 90-minute window has passed
        ("2026-12-31T10:05:00+09:00", "stage"),
        ("2027-01-05T00:59:00Z", "none"),  # 09:59 JST
        ("2027-01-05T01:00:00Z", "ship"),  # 10:00 JST, given in UTC
        ("2027-01-05T11:29:59+09:00", "ship"),
    ],
)
def test_due_to_the_minute(run_cli: RunCli, now: str, step: str) -> None:
    r = run_cli("train", "due", "--now", now)
    assert r.code == 0, r.stdout + r.stderr
    assert r.outputs["step"] == step
    assert r.outputs["steps"] == ("[]" if step == "none" else f'["{step}"]')
    if step == "none":
        assert r.outputs["at"] == "" and r.outputs["branch"] == ""
    # No tags are read here: the step reads the version from the release branch.
    assert r.outputs["version"] == ""


def test_the_skipped_train_of_2026_12_23_is_never_due(run_cli: RunCli) -> None:
    # Its production (Tue 12-29) falls in the New Year block with no weekday left that week.
    for now in (
        "2026-12-23T10:05:00+09:00",  # its cut
        "2026-12-24T10:05:00+09:00",  # its staging
        "2026-12-29T10:05:00+09:00",  # its planned production
        "2026-12-30T09:00:00+09:00",
    ):
        r = run_cli("train", "due", "--now", now)
        assert (r.code, r.outputs["step"]) == (0, "none"), now
    # The train before it still ships on its Tuesday.
    assert run_cli("train", "due", "--now", "2026-12-22T10:05:00+09:00").outputs["step"] == "ship"


def test_golden_week_moves_production_to_thursday_where_it_meets_the_next_staging(
    run_cli: RunCli,
) -> None:
    # Cut Wed 2027-04-28; Tue 05-04 is in Golden Week (04-29..05-05): production moves to
    # Thu 05-06, the minute the train cut on Wed 05-05 goes to staging.
    assert run_cli("train", "due", "--now", "2027-05-04T10:05:00+09:00").outputs["step"] == "none"
    assert run_cli("train", "due", "--now", "2027-05-05T10:05:00+09:00").outputs["step"] == "cut"
    r = run_cli("train", "due", "--now", "2027-05-06T10:05:00+09:00", "--json")
    assert r.code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["step"] == "ship" and data["at"] == "2027-05-06T10:00:00+09:00"
    assert [(s["step"], s["train_cut_at"], s["newer_trains"]) for s in data["steps"]] == [
        ("ship", "2027-04-28T10:00:00+09:00", 1),  # one branch was cut after its own
        ("stage", "2027-05-05T10:00:00+09:00", 0),
    ]
    assert r.outputs["steps"] == '["ship", "stage"]'


def test_the_train_a_step_acts_on_follows_the_shift() -> None:
    policy = default_policy()
    now = datetime(2027, 5, 6, 10, 7, tzinfo=JST)
    ship = train_of(policy, "ship", now)
    stage = train_of(policy, "stage", now)
    assert ship is not None and stage is not None
    assert (ship[0].cut_at.date().isoformat(), ship[1]) == ("2027-04-28", 1)
    assert (stage[0].cut_at.date().isoformat(), stage[1]) == ("2027-05-05", 0)
    # By hand on Friday the Tuesday train of that week is the one shipped: one cut since.
    friday = train_of(policy, "ship", datetime(2027, 1, 8, 15, 0, tzinfo=JST))
    assert friday is not None and friday[0].production_at == datetime(2027, 1, 5, 10, 0, tzinfo=JST)
    assert friday[1] == 1


def test_a_shorter_window_and_a_policy_in_another_zone(run_cli: RunCli, tmp_path: Path) -> None:
    r = run_cli("train", "due", "--now", "2026-12-30T10:05:00+09:00", "--window-minutes", "5")
    assert r.outputs["step"] == "none"
    policy = tmp_path / "policy.yml"
    policy.write_text("calendar:\n  timezone: Europe/Berlin\n")
    # 10:00 in Berlin in summer is 08:00 UTC.
    r = run_cli("train", "due", "--policy", str(policy), "--now", "2026-07-01T08:01:00Z")
    assert (r.outputs["step"], r.outputs["at"]) == ("cut", "2026-07-01T10:00:00+02:00")


def test_due_takes_the_clock_from_the_environment_and_refuses_a_time_without_zone(
    run_cli: RunCli,
) -> None:
    env = {"RELEASE_ACTIONS_NOW": "2026-12-31T10:05:00+09:00"}
    assert run_cli("train", "due", env=env).outputs["step"] == "stage"
    r = run_cli("train", "due", "--now", "2026-12-31T10:05:00")
    assert r.code == 2 and "no UTC offset" in r.stdout + r.stderr


def test_due_lists_every_step_in_its_window() -> None:
    # A production moved to Wednesday shares the minute with the next train's cut.
    policy = policy_of("calendar:\n  blocked_periods:\n    - {name: X, start: 06-02, end: 06-02}\n")
    found = due(policy, datetime(2026, 6, 3, 10, 5, tzinfo=JST), timedelta(minutes=90))
    assert [(d.step, d.at.date().isoformat(), d.newer) for d in found] == [
        ("ship", "2026-06-03", 1),
        ("cut", "2026-06-03", 0),
    ]


def test_schedule_for_asia_tokyo(run_cli: RunCli) -> None:
    r = run_cli("train", "schedule")
    assert r.code == 0, r.stderr
    assert r.stdout.splitlines() == [
        "5 1 * * 3  # Wednesday 10:05 Asia/Tokyo: cut; ship when the calendar moves it",
        "5 1 * * 4  # Thursday 10:05 Asia/Tokyo: stage; ship when the calendar moves it",
        "5 1 * * 2  # Tuesday 10:05 Asia/Tokyo: ship",
    ]


def test_schedule_for_europe_berlin_has_summer_and_winter_lines(
    run_cli: RunCli, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text("train:\n  timezone: Europe/Berlin\n")
    r = run_cli("train", "schedule", "--policy", str(policy), "--year", "2026")
    assert r.code == 0, r.stderr
    summer = "Europe/Berlin, summer time (CEST, UTC+02:00)"
    winter = "Europe/Berlin, winter time (CET, UTC+01:00)"
    moved = "ship when the calendar moves it"
    assert r.stdout.splitlines() == [
        f"5 8 * * 3  # Wednesday 10:05 {summer}: cut; {moved}",
        f"5 9 * * 3  # Wednesday 10:05 {winter}: cut; {moved}",
        f"5 8 * * 4  # Thursday 10:05 {summer}: stage; {moved}",
        f"5 9 * * 4  # Thursday 10:05 {winter}: stage; {moved}",
        f"5 8 * * 2  # Tuesday 10:05 {summer}: ship",
        f"5 9 * * 2  # Tuesday 10:05 {winter}: ship",
    ]
    yaml = run_cli("train", "schedule", "--policy", str(policy), "--year", "2026", "--yaml")
    assert yaml.stdout.splitlines()[:3] == [
        "on:",
        "  schedule:",
        f'    - cron: "5 8 * * 3" # Wednesday 10:05 {summer}: cut; {moved}',
    ]


def test_schedule_crosses_midnight_into_the_day_before_in_utc() -> None:
    policy = policy_of(
        "train:\n  freeze: {day: wednesday, time: '08:00'}\n"
        "  staging: {day: thursday, time: '08:00'}\n"
        "  production: {day: tuesday, time: '08:00'}\n"
    )
    lines = schedule(policy, year=2026, offset_minutes=0)
    # 08:00 JST on Wednesday is 23:00 UTC on Tuesday.
    assert lines[0].cron == "0 23 * * 2" and lines[0].weekday == "wednesday"
    assert lines[0].to_dict()["steps"] == [
        "cut",
        "ship when the calendar moves it",
    ]


def test_schedule_json(run_cli: RunCli) -> None:
    r = run_cli("train", "schedule", "--json")
    data = json.loads(r.stdout)
    assert data["timezone"] == "Asia/Tokyo"
    assert data["crons"][2] == {
        "cron": "5 1 * * 2",
        "weekday": "tuesday",
        "local": "10:05",
        "timezone": "Asia/Tokyo",
        "season": None,
        "steps": ["ship"],
    }
