"""DORA's four keys and the release quality metrics (source §1.2, §11), from the fixture
tests/fixtures/dora/history.json, every figure computed by hand below; the parser's errors;
properties of periods and order."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from release_actions.core import dora
from release_actions.core.policy import load_policy

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "dora" / "history.json"
TOKYO = ZoneInfo("Asia/Tokyo")
REPORTING = load_policy(None).reporting


def history() -> dora.History:
    return dora.parse_history_text(FIXTURE.read_text("utf-8"), str(FIXTURE))


def month(year: int, number: int) -> dora.Figures:
    return dora.compute(history(), dora.month_period(year, number, TOKYO, "Asia/Tokyo"), REPORTING)


# -- April 2026 in Asia/Tokyo, by hand --------------------------------------------------------
#
# Deployments by finished_at in JST:
#   d0   2026-03-31 23:59:59 JST                        -> March (the last second of it)
#   d1   2026-04-01 00:00:00 JST                        -> April (the first second)
#   d3   2026-03-31T16:00:00Z = 2026-04-01 01:00 JST   -> April (March 31 in UTC)
#   d4   04-02, d5 04-08, d6 04-09, d7 04-15, d10 04-16, d8 04-22
#   d9   2026-04-30 23:59:59 JST                        -> April (the last second)
#   d11  2026-04-30T15:30:00Z = 2026-05-01 00:30 JST   -> May (April 30 in UTC)
# April: d1 d3 d4 d5 d6 d7 d10 d8 d9 = 9 deployments in 30 days.
#
# Frequency: 9 / 30 = 0.3 a day; >= 1/7 (0.142...) and not > 1: high.
#
# Lead times (finished_at - committed_at), each commit once at its first deployment:
#   d1:  c11 00:00 - 03-31 12:00 = 43200    c12 00:00 - 23:00 = 3600
#   d3:  c31 01:00 - 03-31 22:00 = 10800    c32 01:00 - 21:00 = 14400
#   d4:  c41 10:15 - 09:00 = 4500           (c31 again: counted at d3, not here)
#   d5:  c51 04-08 14:30 - 04-06 14:30 = 172800
#   d6:  c61 09:20 - 08:00 = 4800
#   d7:  c71 04-15 10:40 - 04-14 10:40 = 86400   c72 10:40 - 09:40 = 3600  (c51: at d5)
#   d10: c101 10:10 - 09:10 = 3600
#   d8:  no commits
#   d9:  c91 23:59:59 - 11:59:59 = 43200
# 11 commits, sorted: 3600 3600 3600 4500 4800 10800 14400 43200 43200 86400 172800.
# Median: the 6th = 10800 (3 h): >= 1 h and < 1 week: high.
# p90 (nearest rank): ceil(0.9 * 11) = 10th = 86400.
#
# Change failure rate: rolled back d3 d5 d6 d10, hotfixes d4 d6 (d6 once) = 5 of 9
#   = 55.555...%: > 45: low.
#
# Time to restore (recovered_at - detected_at) of April's deployments' rollbacks:
#   d3 01:25 - 01:05 = 1200; d6 11:25 - 09:25 = 7200; d10 10:25 - 10:20 = 300;
#   d5 has no recovered_at: left out, counted as 1 unrecovered.
#   sorted 300 1200 7200: median 1200 (< 1 h: elite), mean 8700 / 3 = 2900.
#
# Mean rollback time: the record's rollback_seconds, else detected..recovered:
#   d3 90, d6 150, d10 (none given) 300, d5 (neither) left out: (90 + 150 + 300) / 3 = 180.
#
# Quality (§11.2):
#   success: d1 d4 d7 d9 = 4 / 9 = 44.44...%       (target > 95: not met)
#   canary: passed d1 d5 d7 d10 d9 = 5, failed d3 d6 = 2, none d4 d8: 5 / 7 = 71.43%
#   rollback rate: rolled_back d3 d5 d6 d10 = 4 / 9 = 44.44%   (target < 5: not met)
#   mean rollback 180 < 300: met
#   blockers: 101 and 102 (v1.3.0, d3), 105 ("1.4.0" is v1.4.0, d5) = 3;
#     103 is v1.8.0 (d11, May) and 104 names no version: 3 / 9 = 0.333... < 1: met
#   durations: d1 600, d3 1200, d4 900, d5 1800, d6 1200, d7 2400, d10 600, d8 300, d9 3599;
#     sorted 300 600 600 900 1200 1200 1800 2400 3599: median 1200 < 1800: met
#
# Targets (§1.2): Year 1: >= 1/day no; lead 10800 < 86400 yes; CFR 55.6 < 10 no;
#   restore 1200 <= 1800 yes; rollback 180 <= 300 yes.
#   Year 3: no; 10800 < 3600 no; no; 1200 <= 900 no; 180 <= 120 no.


def test_april_four_keys_by_hand() -> None:
    f = month(2026, 4)
    assert [d.id for d in f.deployments] == ["d1", "d3", "d4", "d5", "d6", "d7", "d10", "d8", "d9"]
    keys = f.key_figures()
    assert keys["deployments"] == 9
    assert keys["days"] == 30
    assert keys["deployment_frequency_per_day"] == pytest.approx(0.3)
    assert keys["lead_time_commits"] == 11
    assert keys["lead_time_median_s"] == 10800
    assert keys["lead_time_p90_s"] == 86400
    assert keys["failed_changes"] == 5
    assert keys["change_failure_rate_percent"] == pytest.approx(500 / 9)
    assert keys["restore_median_s"] == 1200
    assert keys["restore_mean_s"] == pytest.approx(2900)
    assert (keys["restored"], keys["unrecovered"]) == (3, 1)
    assert f.tiers() == {
        "frequency": "high",
        "lead_time": "high",
        "change_failure_rate": "low",
        "restore": "elite",
    }


def test_april_quality_by_hand() -> None:
    quality = month(2026, 4).quality()
    assert quality == {
        "deployment_success_rate_percent": pytest.approx(400 / 9),
        "canary_success_rate_percent": pytest.approx(500 / 7),
        "rollback_rate_percent": pytest.approx(400 / 9),
        "mean_rollback_s": pytest.approx(180),
        "blockers_per_release": pytest.approx(1 / 3),
        "deployment_duration_median_s": 1200,
    }
    assert [b.number for b in month(2026, 4).blockers] == [101, 102, 105]


def test_april_targets_by_hand() -> None:
    data = month(2026, 4).to_dict()
    met = {year: {k: v["met"] for k, v in t.items()} for year, t in data["targets"].items()}
    assert met["year1"] == {
        "deployment_frequency_per_day": False,
        "lead_time_median_s": True,
        "change_failure_rate_percent": False,
        "restore_median_s": True,
        "mean_rollback_s": True,
    }
    assert not any(met["year3"].values())
    assert {k: v["met"] for k, v in data["quality_targets"].items()} == {
        "deployment_success_rate_percent": False,
        "canary_success_rate_percent": False,
        "rollback_rate_percent": False,
        "mean_rollback_s": True,
        "blockers_per_release": True,
        "deployment_duration_median_s": True,
    }
    assert data["targets"]["year1"]["lead_time_median_s"] == {
        "value": 10800,
        "target": 86400,
        "rule": "<",
        "met": True,
    }


def test_april_weekly_series_by_hand() -> None:
    # ISO weeks in JST: W14 Mar 30-Apr 5, W15 Apr 6-12, W16 Apr 13-19, W17 Apr 20-26,
    # W18 Apr 27-May 3 (April 1, 2026 is a Wednesday).
    # W14: d1 d3 d4; leads 43200 3600 10800 14400 4500 -> median 10800; failed d3 d4: 2/3
    # W15: d5 d6; leads 172800 4800 -> median 88800; failed both: 100 %
    # W16: d7 d10; leads 86400 3600 3600 -> 3600; failed d10: 50 %
    # W17: d8; no commits -> None; 0 %
    # W18: d9; 43200; 0 %
    weeks = [w.to_dict() for w in month(2026, 4).weekly()]
    assert weeks == [
        {
            "week": "2026-W14",
            "deployments": 3,
            "lead_time_median_s": 10800,
            "change_failure_rate_percent": pytest.approx(200 / 3),
        },
        {
            "week": "2026-W15",
            "deployments": 2,
            "lead_time_median_s": 88800,
            "change_failure_rate_percent": 100,
        },
        {
            "week": "2026-W16",
            "deployments": 2,
            "lead_time_median_s": 3600,
            "change_failure_rate_percent": 50,
        },
        {
            "week": "2026-W17",
            "deployments": 1,
            "lead_time_median_s": None,
            "change_failure_rate_percent": 0,
        },
        {
            "week": "2026-W18",
            "deployments": 1,
            "lead_time_median_s": 43200,
            "change_failure_rate_percent": 0,
        },
    ]


def test_april_rollbacks_by_trigger_and_the_unrecovered_one() -> None:
    f = month(2026, 4)
    assert f.by_trigger() == [
        {"trigger": "error_rate", "rollbacks": 2, "restored": 2, "restore_median_s": 4200},
        {"trigger": "latency", "rollbacks": 1, "restored": 1, "restore_median_s": 300},
        {"trigger": "manual", "rollbacks": 1, "restored": 0, "restore_median_s": None},
    ]
    (unrecovered,) = f.unrecovered
    assert unrecovered[1].record == "RB-2026-002"
    records = [(r["record"], r["restore_s"], r["rollback_s"]) for r in f.rollback_list()]
    assert records == [
        ("RB-2026-001", 1200, 90),
        ("RB-2026-002", None, None),
        ("RB-2026-003", 7200, 150),
        ("RB-2026-004", 300, 300),
    ]


def test_april_slowest_changes_by_hand() -> None:
    slowest = [(c["sha"], c["version"], c["lead_time_s"]) for c in month(2026, 4).slowest(4)]
    # c11 and c91 tie at 43200: the lower sha first.
    assert slowest == [
        ("c51", "v1.4.0", 172800),
        ("c71", "v1.5.0", 86400),
        ("c11", "v1.1.0", 43200),
        ("c91", "v1.7.0", 43200),
    ]


def test_the_boundary_seconds_fall_in_their_own_months() -> None:
    # March: d0 at 23:59:59 JST only; c01 from 03-30 10:00 to 03-31 23:59:59
    # = 86400 + 13 h 59 m 59 s = 136799. 1 deployment in 31 days is once a month: medium.
    march = month(2026, 3)
    assert [d.id for d in march.deployments] == ["d0"]
    assert march.key_figures()["lead_time_median_s"] == 136799
    assert march.tiers()["frequency"] == "medium"
    assert march.key_figures()["change_failure_rate_percent"] == 0
    # May: d11 (April 30 in UTC, May 1 00:30 in JST); c81 from 04-30 10:00 = 14.5 h = 52200.
    may = month(2026, 5)
    assert [d.id for d in may.deployments] == ["d11"]
    assert may.key_figures()["lead_time_median_s"] == 52200
    assert [b.number for b in may.blockers] == [103]


def test_no_data_gives_null_figures_and_tiers_never_elite() -> None:
    january = month(2026, 1)
    keys = january.key_figures()
    assert keys["deployments"] == 0
    assert keys["deployment_frequency_per_day"] == 0
    assert january.tiers() == {
        "frequency": "low",
        "lead_time": None,
        "change_failure_rate": None,
        "restore": None,
    }
    assert all(value is None for value in january.quality().values())
    targets = january.to_dict()["targets"]["year1"]
    assert targets["lead_time_median_s"]["met"] is None
    assert targets["deployment_frequency_per_day"]["met"] is False
    # March has deployments but no rollback: restore has no data, not "elite".
    march = month(2026, 3)
    assert march.key_figures()["restore_median_s"] is None
    assert march.tiers()["restore"] is None
    assert march.quality()["canary_success_rate_percent"] == 100


def test_the_review_trend_against_the_three_months_before() -> None:
    months = [(f"2026-{m:02d}", month(2026, m)) for m in (1, 2, 3, 4)]
    rows = {row["key"]: row for row in dora.trend(months)}
    lead = rows["lead_time_median_s"]
    # January none, February 86400 (cf1: one day), March 136799, April 10800.
    assert [c["value"] for c in lead["months"]] == [None, 86400, 136799, 10800]
    assert [c["arrow"] for c in lead["months"]] == ["", "", "↑", "↓"]
    assert lead["last_month"] == "better"  # shorter lead time
    deployments = rows["deployments"]
    assert [c["value"] for c in deployments["months"]] == [0, 1, 1, 9]
    assert [c["arrow"] for c in deployments["months"]] == ["", "↑", "→", "↑"]
    assert rows["change_failure_rate_percent"]["last_month"] == "worse"
    assert rows["restore_median_s"]["last_month"] is None  # March had no rollback


# -- tiers at their bounds --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("per_day", "tier"),
    [(1.01, "elite"), (1.0, "high"), (1 / 7, "high"), (1 / 8, "medium"), (1 / 31, "medium"),
     (1 / 32, "low"), (0.0, "low"), (None, None)],
)  # fmt: skip
def test_frequency_tiers(per_day: float | None, tier: str | None) -> None:
    assert dora.frequency_tier(per_day) == tier


@pytest.mark.parametrize(
    ("seconds", "tier"),
    [(3599, "elite"), (3600, "high"), (7 * 86400 - 1, "high"), (7 * 86400, "medium"),
     (31 * 86400, "low"), (None, None)],
)  # fmt: skip
def test_lead_time_tiers(seconds: float | None, tier: str | None) -> None:
    assert dora.lead_time_tier(seconds) == tier


@pytest.mark.parametrize(
    ("rate", "tier"),
    [(14.99, "elite"), (15, "high"), (30, "high"), (30.01, "medium"), (45, "medium"),
     (45.01, "low"), (None, None)],
)  # fmt: skip
def test_failure_rate_tiers(rate: float | None, tier: str | None) -> None:
    assert dora.failure_rate_tier(rate) == tier


@pytest.mark.parametrize(
    ("seconds", "tier"),
    [(3599, "elite"), (3600, "high"), (86399, "high"), (86400, "medium"),
     (7 * 86400, "low"), (None, None)],
)  # fmt: skip
def test_restore_tiers(seconds: float | None, tier: str | None) -> None:
    assert dora.restore_tier(seconds) == tier


# -- periods ----------------------------------------------------------------------------------


def test_since_90d_is_the_90_days_ending_today() -> None:
    period = dora.since_period(dora.parse_since("90d"), date(2026, 4, 30), TOKYO, "Asia/Tokyo")
    assert (period.start, period.end, period.days) == (date(2026, 1, 31), date(2026, 4, 30), 90)
    assert period.since == datetime(2026, 1, 31, tzinfo=TOKYO)
    assert period.until == datetime(2026, 5, 1, tzinfo=TOKYO)


@pytest.mark.parametrize("text", ["90", "0d", "-3d", "d", "3w", ""])
def test_since_refuses_what_is_not_days(text: str) -> None:
    with pytest.raises(dora.PeriodError, match="number of days"):
        dora.parse_since(text)


def test_dates_and_months() -> None:
    period = dora.date_period("2026-04-01", "2026-04-30", TOKYO, "Asia/Tokyo")
    assert period.days == 30
    with pytest.raises(dora.PeriodError, match="before"):
        dora.date_period("2026-04-02", "2026-04-01", TOKYO, "Asia/Tokyo")
    with pytest.raises(dora.PeriodError, match="not a date"):
        dora.date_period("2026-04-31", "2026-05-01", TOKYO, "Asia/Tokyo")
    assert dora.parse_month("2026-11") == (2026, 11)
    with pytest.raises(dora.PeriodError):
        dora.parse_month("2026-13")
    assert dora.month_period(2024, 2, TOKYO, "Asia/Tokyo").days == 29
    assert dora.previous_month(2026, 1, 3) == (2025, 10)


# -- the parser -------------------------------------------------------------------------------


def _doc(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text("utf-8"))
    data["deployments"][3].update(changes)
    return data


def test_a_time_without_an_offset_names_the_file_and_the_path() -> None:
    with pytest.raises(dora.DoraInputError) as info:
        dora.parse_history(_doc(finished_at="2026-04-01T01:00:00"), "history.json")
    issue = info.value.issues[0]
    assert (issue.path, issue.key) == ("history.json", "deployments[3].finished_at")
    assert "no UTC offset" in issue.message
    assert "deployments[3].finished_at" in info.value.message


def test_every_problem_is_reported_at_once() -> None:
    data = _doc(kind="feature", status="ok", canary="maybe")
    data["deployments"][0]["commits"] = [{"sha": "x", "committed_at": "yesterday"}]
    data["deployments"][1]["id"] = "d-feb"
    data["blockers"][0] = {"number": "one", "opened_at": "2026-04-01T00:00:00Z"}
    with pytest.raises(dora.DoraInputError) as info:
        dora.parse_history(data, "h.json")
    keys = [i.key for i in info.value.issues]
    assert keys == [
        "deployments[0].commits[0].committed_at",
        "deployments[1].id",
        "deployments[3].kind",
        "deployments[3].status",
        "deployments[3].canary",
        "blockers[0].number",
    ]
    messages = {i.key: i.message for i in info.value.issues}
    assert "`regular`, `hotfix`" in messages["deployments[3].kind"]
    assert "also the id of deployments[0]" in messages["deployments[1].id"]


@pytest.mark.parametrize(
    ("changes", "key", "words"),
    [
        ({"finished_at": "2026-03-31T15:00:00Z"}, "deployments[3].finished_at", "before"),
        ({"rollback": {"detected_at": "2026-04-01T02:00:00+09:00",
                       "recovered_at": "2026-04-01T01:00:00+09:00", "trigger": None,
                       "record": None}},
         "deployments[3].rollback.recovered_at", "before `detected_at`"),
        ({"rollback": {"recovered_at": None}}, "deployments[3].rollback.detected_at", "missing"),
        ({"commits": [{"sha": "late", "committed_at": "2026-04-02T00:00:00Z"}]},
         "deployments[3].commits[0].committed_at", "after the deployment"),
        ({"commits": "c31"}, "deployments[3].commits", "list of commits"),
        ({"rollback": {"detected_at": "2026-04-01T02:00:00+09:00", "rollback_seconds": -1}},
         "deployments[3].rollback.rollback_seconds", ">= 0"),
        ({"version": ""}, "deployments[3].version", "non-empty"),
    ],
)  # fmt: skip
def test_what_cannot_be_true_is_refused(changes: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(dora.DoraInputError) as info:
        dora.parse_history(_doc(**changes), "h.json")
    assert info.value.issues[0].key == key
    assert words in info.value.issues[0].message


@pytest.mark.parametrize(
    ("text", "words"),
    [("{", "not JSON"), ("[]", "not an object"), ('{"x": 1}', "no `deployments` list")],
)  # fmt: skip
def test_a_document_that_is_not_a_history(text: str, words: str) -> None:
    with pytest.raises(dora.DoraInputError) as info:
        dora.parse_history_text(text, "h.json")
    assert words in info.value.message
    assert "h.json" in info.value.message


def test_unknown_keys_and_missing_blockers_are_fine() -> None:
    data = {"deployments": [], "schema": 3}
    assert dora.parse_history(data, "h.json") == dora.History((), ())


# -- properties -------------------------------------------------------------------------------

OFFSETS = st.sampled_from([0, 9 * 60, -5 * 60, 5 * 60 + 30, 14 * 60, -12 * 60])
BASE = datetime(2026, 1, 1, tzinfo=UTC)


@st.composite
def deployments(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(0, 12))
    shas = [f"c{i}" for i in range(8)]
    out = []
    for index in range(count):
        # Seconds on a 15-minute grid around midnights, so that many land on a day's edge.
        finished = BASE + timedelta(seconds=draw(st.integers(0, 120 * 96)) * 900 - 1)
        zone = timezone(timedelta(minutes=draw(OFFSETS)))
        duration = draw(st.integers(0, 7200))
        commits = []
        for sha in draw(st.lists(st.sampled_from(shas), unique=True, max_size=3)):
            back = draw(st.integers(0, 30 * 86400))
            commits.append(
                {"sha": sha, "committed_at": (finished - timedelta(seconds=back)).isoformat()}
            )
        rollback = None
        if draw(st.booleans()):
            detected = finished + timedelta(seconds=draw(st.integers(0, 3600)))
            recovered = draw(st.one_of(st.none(), st.integers(0, 86400)))
            rollback = {
                "record": f"RB-2026-{index:03d}",
                "detected_at": detected.isoformat(),
                "recovered_at": None
                if recovered is None
                else (detected + timedelta(seconds=recovered)).isoformat(),
                "trigger": draw(st.sampled_from(["error_rate", "manual", None])),
            }
        out.append(
            {
                "id": f"d{index}",
                "version": f"v1.{index}.0",
                "kind": draw(st.sampled_from(dora.KINDS)),
                "sha": f"{index:040d}",
                "started_at": (finished - timedelta(seconds=duration)).astimezone(zone).isoformat(),
                "finished_at": finished.astimezone(zone).isoformat(),
                "status": draw(st.sampled_from(dora.STATUSES)),
                "commits": commits,
                "canary": draw(st.sampled_from([None, "passed", "failed"])),
                "rollback": rollback,
            }
        )
    return out


ZONES = st.sampled_from(["Asia/Tokyo", "UTC", "America/New_York", "Asia/Kolkata"])


@given(deployments(), ZONES, st.integers(0, 100), st.integers(1, 30), st.integers(1, 30))
@settings(max_examples=150, deadline=None)
def test_a_deployment_is_in_exactly_one_of_two_adjacent_periods(
    docs: list[dict[str, Any]], zone: str, offset: int, first_days: int, second_days: int
) -> None:
    h = dora.parse_history({"deployments": docs}, "h.json")
    tz = ZoneInfo(zone)
    start = date(2025, 12, 31) + timedelta(days=offset)
    mid = start + timedelta(days=first_days - 1)
    a = dora.Period(start, mid, tz, zone)
    b = dora.Period(mid + timedelta(days=1), mid + timedelta(days=second_days), tz, zone)
    both = dora.Period(a.start, b.end, tz, zone)
    fa, fb, fboth = (dora.compute(h, p, REPORTING) for p in (a, b, both))
    ids_a, ids_b = {d.id for d in fa.deployments}, {d.id for d in fb.deployments}
    assert not ids_a & ids_b
    assert ids_a | ids_b == {d.id for d in fboth.deployments}
    # Commits and rollbacks split the same way.
    assert len(fa.changes) + len(fb.changes) == len(fboth.changes)
    assert len(fa.rollbacks) + len(fb.rollbacks) == len(fboth.rollbacks)
    # A deployment is inside a period exactly when its local day is.
    for d in h.deployments:
        day = d.finished_at.astimezone(tz).date()
        assert (d.id in ids_a) == (a.start <= day <= a.end)


@given(deployments(), st.randoms(use_true_random=False))
@settings(max_examples=100, deadline=None)
def test_the_figures_do_not_depend_on_the_order_of_the_list(
    docs: list[dict[str, Any]], rnd: random.Random
) -> None:
    period = dora.Period(date(2026, 1, 1), date(2026, 4, 30), TOKYO, "Asia/Tokyo")
    shuffled = list(docs)
    rnd.shuffle(shuffled)
    one = dora.compute(dora.parse_history({"deployments": docs}, "h"), period, REPORTING)
    two = dora.compute(dora.parse_history({"deployments": shuffled}, "h"), period, REPORTING)
    assert one.to_dict() == two.to_dict()


@given(deployments())
@settings(max_examples=100, deadline=None)
def test_each_commit_counts_once_at_its_earliest_deployment(docs: list[dict[str, Any]]) -> None:
    h = dora.parse_history({"deployments": docs}, "h.json")
    reached = dora.first_reach(h.deployments)
    for d in h.deployments:
        for commit in d.commits:
            first = reached[commit.sha].deployment
            assert first.order <= d.order
    assert len(reached) == len({c.sha for d in h.deployments for c in d.commits})
    for change in reached.values():
        assert change.lead_time_seconds >= 0


@given(st.integers(1, 400), st.dates(date(2020, 1, 1), date(2030, 12, 31)), ZONES)
def test_since_n_days_has_n_days_and_ends_today(days: int, today: date, zone: str) -> None:
    period = dora.since_period(days, today, ZoneInfo(zone), zone)
    assert period.days == days and period.end == today
    assert period.contains(period.since) and not period.contains(period.until)
    assert period.contains(period.until - timedelta(microseconds=1))


@given(st.integers(2000, 2100), ZONES)
def test_the_months_of_a_year_tile_it(year: int, zone: str) -> None:
    months = [dora.month_period(year, m, ZoneInfo(zone), zone) for m in range(1, 13)]
    assert months[0].start == date(year, 1, 1) and months[-1].end == date(year, 12, 31)
    for before, after in zip(months, months[1:], strict=False):
        assert after.start == before.end + timedelta(days=1)
    assert sum(m.days for m in months) in (365, 366)


@given(st.datetimes(timezones=st.just(UTC)), OFFSETS)
def test_a_time_with_an_offset_reads_as_the_same_instant(at: datetime, minutes: int) -> None:
    shown = at.astimezone(timezone(timedelta(minutes=minutes))).isoformat()
    assert dora.parse_time(shown) == at
    assert dora.parse_time(at.isoformat().replace("+00:00", "Z")) == at
    with pytest.raises(ValueError, match="no UTC offset"):
        dora.parse_time(at.replace(tzinfo=None).isoformat())


def test_the_gatherers_shapes_read_as_well() -> None:
    # A record's trigger `{type, reason}`, a running deployment (`finished_at` null), no sha.
    data = _doc(
        rollback={
            "record": "RB-2026-001",
            "detected_at": "2026-04-01T01:05:00+09:00",
            "recovered_at": None,
            "trigger": {"type": "automatic", "reason": "error rate 4.2% > 1%"},
        }
    )
    data["deployments"][4].update(finished_at=None, sha=None)
    h = dora.parse_history(data, "h.json")
    assert h.unfinished == ("d4",)
    d3 = next(d for d in h.deployments if d.id == "d3")
    assert d3.rollback is not None
    assert (d3.rollback.trigger, d3.rollback.reason) == ("automatic", "error rate 4.2% > 1%")
    del data["deployments"][5]["finished_at"]
    with pytest.raises(dora.DoraInputError) as info:
        dora.parse_history(data, "h.json")
    assert info.value.issues[0].key == "deployments[5].finished_at"
