"""The release train's dates and its freeze (source §2.1, §2.4, §8.1), on a fixed clock."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from release_actions.core.policy import Policy, default_policy, parse_policy
from release_actions.core.train import (
    FreezeVerdict,
    branch_name,
    branch_pattern,
    freeze_check,
    next_version,
    plan,
)
from release_actions.core.versions import Version
from release_actions.core.yamlpos import load_yaml
from release_actions.errors import PolicyError

JST = ZoneInfo("Asia/Tokyo")


def policy_of(text: str) -> Policy:
    located = load_yaml(text, "policy.yml")
    return parse_policy(located.data, "policy.yml", located.lines)


def test_the_issue_s_two_trains_across_the_year_end_block() -> None:
    skipped, carried = plan(
        default_policy(), date(2026, 12, 21), 2, first_version=Version.parse("1.4.0")
    )
    assert skipped.cut_at == datetime(2026, 12, 23, 10, 0, tzinfo=JST)
    assert skipped.skipped and skipped.production_at is None and skipped.version is None
    (shift,) = skipped.shifts
    assert shift.from_ == datetime(2026, 12, 29, 10, 0, tzinfo=JST) and shift.to is None
    assert "New Year holidays" in shift.reason and "Friday" in shift.reason
    assert carried.cut_at == datetime(2026, 12, 30, 10, 0, tzinfo=JST)
    assert carried.production_at == datetime(2027, 1, 5, 10, 0, tzinfo=JST)
    assert carried.staging_at == datetime(2026, 12, 31, 10, 0, tzinfo=JST)
    assert str(carried.version) == "1.4.0"  # the skipped train's changes ride this one
    assert carried.staged_rollout  # 12-20..01-10 is a high-traffic period (§2.4)
    out = carried.to_dict()
    assert out["production_at"] == "2027-01-05T10:00:00+09:00" and out["shifts"] == []


def test_golden_week_moves_production_to_thursday() -> None:
    (train,) = plan(default_policy(), date(2027, 4, 28), 1)
    assert train.production_at == datetime(2027, 5, 6, 10, 0, tzinfo=JST)
    (shift,) = train.shifts
    assert shift.from_.date() == date(2027, 5, 4) and shift.to is not None
    assert "Golden Week" in shift.reason


def test_a_holiday_tuesday_and_wednesday_move_it_to_thursday() -> None:
    policy = policy_of("calendar:\n  holidays: {country: JP}\n")
    (train,) = plan(policy, date(2026, 9, 16), 1)
    assert train.production_at == datetime(2026, 9, 24, 10, 0, tzinfo=JST)
    assert "public holiday" in train.shifts[0].reason
    # Without the country the same Tuesday is a normal release day.
    (plain,) = plan(default_policy(), date(2026, 9, 16), 1)
    assert plain.production_at == datetime(2026, 9, 22, 10, 0, tzinfo=JST) and not plain.shifts


def test_daylight_saving_keeps_the_wall_clock_time() -> None:
    policy = policy_of(
        "calendar:\n  timezone: Europe/Berlin\n  blocked_periods: []\n  high_traffic_periods: []\n"
    )
    (train,) = plan(policy, date(2027, 3, 24), 1)
    assert train.cut_at.isoformat() == "2027-03-24T10:00:00+01:00"
    assert train.production_at is not None
    assert train.production_at.isoformat() == "2027-03-30T10:00:00+02:00"  # after the change


def test_biweekly_runs_every_other_week_with_its_offset() -> None:
    even = policy_of("train:\n  cadence: biweekly\n")
    odd = policy_of("train:\n  cadence: biweekly\n  offset_weeks: 1\n")
    a = [t.cut_at.date() for t in plan(even, date(2027, 2, 1), 6)]
    b = [t.cut_at.date() for t in plan(odd, date(2027, 2, 1), 6)]
    assert len(a) == len(b) == 3
    assert not set(a) & set(b)  # one week apart (§8.1: mobile and API alternate)
    assert all((y - x).days == 14 for x, y in zip(a, a[1:], strict=False))


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("### Added\n\n- Trip sharing.", "1.5.0"),
        ("### Changed\n\n- BREAKING: the v1 API is gone.", "2.0.0"),
        ("### Removed\n\n- The legacy export.", "2.0.0"),
        ("### Fixed\n\n- Not BREAKINGLY.", "1.5.0"),
    ],
)
def test_the_next_version_reads_the_unreleased_section(text: str, part: str) -> None:
    version, _ = next_version(Version.parse("1.4.2"), "auto", text)
    assert str(version) == part
    assert next_version(None, "auto", text)[0] is None


def test_branch_names_and_pattern() -> None:
    train = default_policy().train
    assert branch_name(train, Version.parse("1.4.0")) == "release/v1.4.0"
    pattern = branch_pattern(train)
    assert pattern.match("release/v1.4.0") and pattern.match("release/v12.0.0")
    assert not pattern.match("release/v1.4.0-x") and not pattern.match("release/latest")
    with pytest.raises(PolicyError):
        policy_of("train:\n  branch: 'release/{version}'\n")


WED = datetime(2026, 12, 30, 10, 0, tzinfo=JST)  # the cut of the train of 1.4.0


def check(policy: Policy, **kw: object) -> FreezeVerdict:
    args: dict[str, object] = {"base": "release/v1.4.0", "labels": [], "title": "", "now": WED}
    args.update(kw)
    return freeze_check(policy, **args)  # type: ignore[arg-type]


def test_a_release_branch_takes_fixes_only() -> None:
    p = default_policy()
    blocked = check(p, title="feat: trip sharing")
    assert not blocked.allowed and blocked.frozen
    assert "`fix`" in blocked.reason and "freeze-exception" in blocked.reason
    assert check(p, labels=["hotfix"]).allowed
    assert check(p, title="fix(api): the timeout").allowed
    assert check(p, title="fix!: drop the broken field").allowed
    assert not check(p, title="fixes a thing").allowed


def test_a_freeze_exception_needs_a_listed_approver() -> None:
    p = default_policy()
    unread = check(p, labels=["freeze-exception"])
    assert not unread.allowed and "not read" in unread.reason
    wrong = check(p, labels=["freeze-exception"], approved_by=["carol"])
    assert not wrong.allowed
    ok = check(p, labels=["freeze-exception"], approved_by=["carol", "tech-lead"])
    assert ok.allowed and ok.exception and ok.approved_by == ("tech-lead",)


@pytest.mark.parametrize(
    ("now", "allowed"),
    [
        (datetime(2026, 12, 30, 9, 59, tzinfo=JST), True),  # a minute before the cut
        (datetime(2026, 12, 30, 1, 0, tzinfo=ZoneInfo("UTC")), False),  # 10:00 JST, in UTC
        (datetime(2027, 1, 5, 9, 59, tzinfo=JST), False),  # until production
        (datetime(2027, 1, 5, 10, 0, tzinfo=JST), True),  # production: main opens again
    ],
)
def test_main_freezes_to_the_minute_when_the_policy_says_so(now: datetime, allowed: bool) -> None:
    p = policy_of("train:\n  freeze_rules:\n    freeze_main: true\n")
    verdict = check(p, base="main", title="feat: x", now=now)
    assert verdict.allowed is allowed
    # Without `freeze_main`, main is never frozen.
    assert check(default_policy(), base="main", title="feat: x", now=now).allowed


def test_other_branches_are_not_frozen() -> None:
    assert check(default_policy(), base="feature/x", title="feat: y").allowed
