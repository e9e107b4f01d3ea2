"""Which maintenance work that begins now belongs to, and how `--end` reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from release_actions.app.status_page import maintenance_for_now, parse_end
from release_actions.core.policy import default_policy
from release_actions.core.status_page import maintenance_marker, parse_span
from release_actions.errors import ReleaseActionsError

JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 1, 25, 2, 30, tzinfo=JST)


def _m(ident: str, start: datetime, hours: float = 4, *, ours: bool = True) -> dict[str, Any]:
    marker = maintenance_marker(start) if ours else None
    return {
        "id": ident,
        # As Statuspage answers: UTC with milliseconds and a Z.
        "scheduled_for": start.astimezone(UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "scheduled_until": (start + timedelta(hours=hours)).astimezone(UTC).isoformat(),
        "metadata": {"release_actions": {"marker": marker}} if ours else {},
    }


def test_one_in_progress_comes_first_the_latest_begun() -> None:
    older = _m("old", NOW - timedelta(days=1))
    tonight = _m("tonight", NOW - timedelta(minutes=30))
    covering = _m("upcoming", NOW - timedelta(minutes=5))

    assert maintenance_for_now([older, tonight], [covering], NOW) == tonight


def test_an_upcoming_window_that_covers_now_or_begins_within_15_minutes() -> None:
    covering = _m("covering", NOW - timedelta(minutes=30))
    soon = _m("soon", NOW + timedelta(minutes=15))
    later = _m("later", NOW + timedelta(minutes=16))
    ended = _m("ended", NOW - timedelta(hours=2), hours=2)

    assert maintenance_for_now([], [later, soon, covering], NOW) == covering
    assert maintenance_for_now([], [later, soon], NOW) == soon
    assert maintenance_for_now([], [later, ended], NOW) is None


def test_only_maintenance_release_actions_scheduled() -> None:
    someone_elses = _m("theirs", NOW - timedelta(minutes=5), ours=False)
    rollback = _m("incident", NOW - timedelta(minutes=5))
    rollback["metadata"]["release_actions"]["marker"] = "release-actions:rollback:api@v1"

    assert maintenance_for_now([someone_elses], [someone_elses, rollback], NOW) is None


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        (" 45min ", timedelta(minutes=45)),
        ("0m", None),
        ("", None),
        ("2026-01-25T06:00", None),
        ("30", None),
        ("30s", None),
    ],
)
def test_a_length_of_time(text: str, span: timedelta | None) -> None:
    assert parse_span(text) == span


def test_an_end_is_a_length_from_now_or_a_time_in_the_calendar_zone() -> None:
    policy = default_policy()

    assert parse_end("30m", policy, NOW, "--end") == NOW + timedelta(minutes=30)
    assert parse_end("2026-01-25T06:00", policy, NOW, "--end") == datetime(
        2026, 1, 25, 6, 0, tzinfo=JST
    )
    assert parse_end("2026-01-24T21:00Z", policy, NOW, "--end") == datetime(
        2026, 1, 25, 6, 0, tzinfo=JST
    )
    with pytest.raises(ReleaseActionsError, match="neither a length of time nor"):
        parse_end("half an hour", policy, NOW, "--end")
