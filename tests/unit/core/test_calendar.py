"""The calendar gate: periods, year boundary, time zones, release types, and reasons."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from release_actions.core.calendar import Decision, check, in_period
from release_actions.core.policy import DatePeriod, default_policy, parse_policy

JST = ZoneInfo("Asia/Tokyo")
POLICY = default_policy()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("when", "rtype", "decision", "staged"),
    [
        ("2026-12-01T10:00+09:00", "regular", Decision.ALLOWED, False),  # Tuesday slot
        ("2026-12-01T09:59+09:00", "regular", Decision.CAUTION, False),  # before 10:00
        ("2026-12-02T10:00+09:00", "regular", Decision.CAUTION, False),  # Wednesday
        ("2026-12-02T10:00+09:00", "hotfix", Decision.ALLOWED, False),
        ("2026-12-29T10:00+09:00", "regular", Decision.BLOCKED, True),  # New Year + travel
        ("2027-01-04T10:00+09:00", "regular", Decision.BLOCKED, True),  # last blocked day
        ("2027-01-05T10:00+09:00", "regular", Decision.CAUTION, True),  # blocked over, travel on
        ("2026-12-29T10:00+09:00", "hotfix", Decision.CAUTION, True),
        ("2026-12-29T10:00+09:00", "security", Decision.CAUTION, True),
        ("2026-12-29T10:00+09:00", "infrastructure", Decision.BLOCKED, True),
        ("2026-12-29T10:00+09:00", "config", Decision.CAUTION, True),
        ("2026-05-05T10:00+09:00", "regular", Decision.BLOCKED, False),  # Golden Week end
        ("2026-05-06T10:00+09:00", "regular", Decision.CAUTION, False),  # Wednesday after
        ("2026-08-13T10:00+09:00", "regular", Decision.BLOCKED, True),  # Obon in summer
        ("2026-11-29T02:00+09:00", "regular", Decision.BLOCKED, False),  # Sunday maintenance
        ("2026-11-29T06:00+09:00", "regular", Decision.CAUTION, False),  # maintenance over
        ("2026-11-29T03:00+09:00", "hotfix", Decision.CAUTION, False),
        ("2026-03-17T10:00+09:00", "regular", Decision.CAUTION, True),  # spring travel
    ],
)
def test_decisions(when: str, rtype: str, decision: Decision, staged: bool) -> None:
    result = check(POLICY, rtype, at(when))
    assert result.decision is decision, result.reasons
    assert result.require_staged_rollout is staged
    assert result.reasons  # every decision carries its reason


def test_time_zone_is_the_policys() -> None:
    # Monday 2026-11-30 at 01:00 UTC is Tuesday? No: 10:00 JST on Tuesday is 01:00 UTC Tuesday.
    assert check(POLICY, "regular", at("2026-12-01T01:00+00:00")).decision is Decision.ALLOWED
    assert check(POLICY, "regular", at("2026-12-01T00:59+00:00")).decision is Decision.CAUTION
    # 2026-12-27 20:00 UTC is already 12-28 in Tokyo: blocked.
    blocked = check(POLICY, "regular", at("2026-12-27T20:00+00:00"))
    assert blocked.decision is Decision.BLOCKED
    assert "New Year" in blocked.reasons[0]


def test_naive_time_is_read_in_the_policy_zone() -> None:
    assert check(POLICY, "regular", datetime(2026, 12, 1, 10, 0)).decision is Decision.ALLOWED


def test_reasons_name_the_period_and_the_rule() -> None:
    result = check(POLICY, "regular", at("2026-12-29T10:00+09:00"))
    assert "New Year holidays 12-28..01-04" in result.reasons[0]
    assert "calendar.blocked_periods" in result.reasons[0]
    assert result.periods == ["New Year holidays", "Travel season: year end and New Year"]


def test_unknown_type_lists_the_known_ones() -> None:
    with pytest.raises(Exception, match="`regular`, `hotfix`"):
        check(POLICY, "weekly", at("2026-12-01T10:00+09:00"))


def test_public_holidays_block_when_configured() -> None:
    policy = parse_policy({"calendar": {"holidays": {"country": "JP"}}}, "p.yml")
    # 2026-11-23 is Labour Thanksgiving Day in Japan (a Monday).
    result = check(policy, "regular", at("2026-11-23T10:00+09:00"))
    assert result.decision is Decision.BLOCKED
    assert any("public holiday in JP" in r for r in result.reasons)
    assert check(policy, "hotfix", at("2026-11-23T10:00+09:00")).decision is Decision.CAUTION


@given(
    # The oracle looks at the year before `day`, which year 1 does not have.
    st.dates(min_value=date(2, 1, 1), max_value=date(9998, 12, 31)),
    st.sampled_from(POLICY.calendar.blocked_periods + POLICY.calendar.high_traffic_periods),
)
def test_in_period_matches_a_day_by_day_walk(day, period: DatePeriod) -> None:  # type: ignore[no-untyped-def]
    # An independent oracle: walk from the period's start in the right year.
    sm, sd = (int(x) for x in period.start.split("-"))
    em, ed = (int(x) for x in period.end.split("-"))
    wraps = (em, ed) < (sm, sd)
    inside = False
    for year in (day.year - 1, day.year):
        start = datetime(year, sm, sd).date()
        end = datetime(year + (1 if wraps else 0), em, ed).date()
        if start <= day <= end:
            inside = True
    assert in_period(day, period) == inside


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(["regular", "hotfix", "security", "config", "infrastructure"]),
)
def test_blocked_only_for_types_that_block(when: datetime, rtype: str) -> None:
    result = check(POLICY, rtype, when)
    if rtype in ("hotfix", "security", "config"):
        assert result.decision is not Decision.BLOCKED
    local = when.astimezone(JST)
    if result.decision is Decision.ALLOWED:
        assert local.weekday() == 1 or rtype != "regular"
    assert result.at.utcoffset() == timedelta(hours=9)
