"""The gatherer's rules that need no GitHub: the window, the scope, the links, the blockers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from release_actions.app.metrics_gather import (
    _blocker_version,
    _in_scope,
    _link_records,
    _Release,
    parse_window,
)
from release_actions.errors import ReleaseActionsError

TOKYO = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 12, 6, 7, 0, tzinfo=UTC)


def release(
    ident: int,
    version: str,
    day: int,
    *,
    environment: str = "production",
    stage: str = "production",
) -> _Release:
    started = datetime(2026, 3, day, 1, 0, tzinfo=UTC)
    payload: dict[str, Any] = {"version": version, "stage": stage, "sha": "a" * 40}
    return _Release(ident, environment, payload, started, started + timedelta(minutes=20))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("365d", NOW - timedelta(days=365)),
        ("12w", NOW - timedelta(weeks=12)),
        ("48h", NOW - timedelta(hours=48)),
        ("2026-04-01", datetime(2026, 4, 1, tzinfo=TOKYO)),
        ("2026-04-01T10:00:00+00:00", datetime(2026, 4, 1, 10, tzinfo=UTC)),
    ],
)
def test_since_is_an_age_or_a_date(text: str, expected: datetime) -> None:
    assert parse_window(text, TOKYO, NOW) == expected


def test_since_that_is_neither_says_both_forms() -> None:
    with pytest.raises(ReleaseActionsError, match="neither an age nor a date: use `365d`"):
        parse_window("a year", TOKYO, NOW)


def test_every_release_types_production_deploys_count_for_the_reporting_environment() -> None:
    hotfix = release(1, "v1.0.1", 2, environment="production-hotfix")
    staged = release(2, "v1.1.0-rc.1", 3, environment="staging", stage="staging")
    assert _in_scope(hotfix, "production", "production")
    assert not _in_scope(staged, "production", "production")
    assert _in_scope(staged, "staging", "production")
    # Asked for one environment that is not the reporting one: that one only.
    assert _in_scope(hotfix, "production-hotfix", "production")
    assert not _in_scope(release(3, "v1.1.0", 4), "production-hotfix", "production")


def test_a_record_goes_to_the_latest_release_of_its_version_before_it() -> None:
    first = release(1, "v1.1.0", 2)
    again = release(2, "v1.1.0", 5)  # redeployed after a fix elsewhere
    other = release(3, "v1.2.0", 6)
    at = datetime(2026, 3, 5, 3, 0, tzinfo=UTC)
    records = [
        {"id": "RB-2026-001", "from_version": "v1.1.0", "environment": "production", "at": at},
        # Before v1.2.0 started: not its record.
        {"id": "RB-2026-002", "from_version": "v1.2.0", "environment": "production", "at": at},
    ]
    linked = _link_records([first, again, other], records, "production")
    assert {k: v["id"] for k, v in linked.items()} == {2: "RB-2026-001"}


def test_the_record_a_release_names_wins_over_the_version_rule() -> None:
    named = release(1, "v1.1.0", 2)
    named.payload["record"] = "RB-2026-P-4242-1-abcdef"
    at = datetime(2026, 3, 3, tzinfo=UTC)
    records = [
        {
            "id": "RB-2026-003",
            "provisional_id": "RB-2026-P-4242-1-abcdef",
            "from_version": "v0.9.0",
            "environment": "production",
            "at": at,
        }
    ]
    assert _link_records([named], records, "production")[1]["id"] == "RB-2026-003"


def test_a_blocker_belongs_to_the_staging_window_else_the_next_production_release() -> None:
    staging = [release(1, "v1.1.0-rc.1", 3, stage="staging"), release(2, "v1.2.0-rc.1", 10)]
    production = [release(3, "v1.1.0", 5), release(4, "v1.2.0", 12)]
    assert _blocker_version(datetime(2026, 3, 4, tzinfo=UTC), staging, production) == "v1.1.0-rc.1"
    assert _blocker_version(datetime(2026, 3, 11, tzinfo=UTC), staging, production) == "v1.2.0-rc.1"
    assert _blocker_version(datetime(2026, 3, 1, tzinfo=UTC), staging, production) == "v1.1.0"
    assert _blocker_version(datetime(2026, 3, 1, tzinfo=UTC), [], production) == "v1.1.0"
    assert _blocker_version(datetime(2026, 3, 20, tzinfo=UTC), [], production) is None
