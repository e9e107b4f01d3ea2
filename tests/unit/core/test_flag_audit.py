"""Source §5.5's retention as rules: stale, review due, due_at, at the boundaries and across zones."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from release_actions.core.flag_audit import (
    ExportedFlag,
    FlagExportError,
    audit,
    check_failed,
    iso,
    judge,
    owner_kind,
    parse_export,
    parse_export_text,
    with_catalog,
)
from release_actions.core.policy import FlagEntry, FlagRetention

RETENTION = FlagRetention(release_days=90, experiment_days=30, review_days=365)
JST = ZoneInfo("Asia/Tokyo")
# A GA at 10:00 JST on a Tuesday: 01:00 UTC, so a day boundary in one zone is not in the other.
GA = datetime(2026, 1, 6, 10, 0, tzinfo=JST)


def flag(kind: str | None = "release", **fields: object) -> ExportedFlag:
    return ExportedFlag(key=f"{kind}-flag", kind=kind, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("days", "stale"), [(89, False), (90, True), (91, True)])
def test_a_release_flag_is_stale_from_90_days_after_ga(days: int, stale: bool) -> None:
    v = judge(flag(ga_at=GA), RETENTION, GA + timedelta(days=days))
    assert v.stale is stale
    assert v.review_due is False
    assert v.status == ("stale" if stale else "ok")
    assert v.due_at == GA + timedelta(days=90)
    assert iso(v.due_at) == "2026-04-06T01:00:00Z"


def test_one_second_before_the_90th_day_is_not_stale() -> None:
    assert judge(flag(ga_at=GA), RETENTION, GA + timedelta(days=90, seconds=-1)).stale is False


@pytest.mark.parametrize(("days", "stale"), [(29, False), (30, True), (31, True)])
def test_an_experiment_flag_is_stale_from_30_days_after_its_end(days: int, stale: bool) -> None:
    ended = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    v = judge(flag("experiment", experiment_ended_at=ended), RETENTION, ended + timedelta(days))
    assert v.stale is stale
    assert v.due_at == ended + timedelta(days=30)
    assert ("stale since 2026-03-31" in v.reason) is stale


@pytest.mark.parametrize("kind", ["ops", "permission"])
@pytest.mark.parametrize(("days", "due"), [(364, False), (365, False), (366, True)])
def test_a_permanent_flag_is_due_for_review_more_than_365_days_after_the_last(
    kind: str, days: int, due: bool
) -> None:
    reviewed = datetime(2025, 2, 1, 9, 0, tzinfo=JST)
    created = datetime(2020, 1, 1, tzinfo=UTC)  # long ago: the review counts, not the creation
    v = judge(
        flag(kind, last_reviewed_at=reviewed, created_at=created),
        RETENTION,
        reviewed + timedelta(days=days),
    )
    assert v.stale is False
    assert v.review_due is due
    assert v.status == ("review_due" if due else "ok")
    assert v.due_at == reviewed + timedelta(days=365)


@pytest.mark.parametrize(("days", "due"), [(364, False), (365, False), (366, True)])
def test_a_flag_never_reviewed_counts_from_its_creation(days: int, due: bool) -> None:
    created = datetime(2025, 2, 1, tzinfo=UTC)
    v = judge(flag("ops", created_at=created), RETENTION, created + timedelta(days=days))
    assert v.review_due is due
    assert "never reviewed" in v.reason


def test_a_permanent_flag_with_no_date_at_all_is_due_for_review() -> None:
    v = judge(flag("permission"), RETENTION, GA)
    assert (v.review_due, v.due_at, v.stale) == (True, None, False)


def test_ops_and_permission_flags_are_never_stale() -> None:
    long_after = GA + timedelta(days=10_000)
    for kind in ("ops", "permission"):
        assert judge(flag(kind, ga_at=GA, created_at=GA), RETENTION, long_after).stale is False


@pytest.mark.parametrize("kind", ["release", "experiment", "ops", "permission", None])
def test_an_archived_flag_is_never_stale_nor_due(kind: str | None) -> None:
    archived = flag(
        kind, archived=True, ga_at=GA, experiment_ended_at=GA, created_at=GA - timedelta(999)
    )
    v = judge(archived, RETENTION, GA + timedelta(days=1000))
    assert (v.status, v.stale, v.review_due, v.due_at) == ("archived", False, False, None)


def test_an_archived_flag_says_how_many_references_are_left() -> None:
    v = judge(flag(archived=True), RETENTION, GA, ["lib/a.dart:3"])
    assert "1 code reference(s) left" in v.reason


def test_a_flag_of_unknown_kind_is_reported_and_fails_the_check() -> None:
    v = judge(flag(None, ga_at=GA), RETENTION, GA + timedelta(days=200))
    assert v.status == "unknown_kind"
    assert v.stale is None and v.review_due is None
    assert "feature_flags.catalog" in v.reason
    assert check_failed([v])


def test_a_release_flag_before_ga_and_a_running_experiment_are_not_stale() -> None:
    now = GA + timedelta(days=1000)
    before_ga = judge(flag(stage="beta"), RETENTION, now)
    assert (before_ga.stale, before_ga.due_at) == (False, None)
    assert "not generally available yet" in before_ga.reason
    assert "stage beta" in before_ga.reason
    running = judge(flag("experiment"), RETENTION, now)
    assert (running.stale, running.due_at) == (False, None)


def test_now_in_utc_and_in_jst_at_the_same_instant_give_the_same_verdicts() -> None:
    flags = [
        flag(ga_at=GA),
        flag("experiment", experiment_ended_at=datetime(2026, 3, 7, 0, 30, tzinfo=JST)),
        flag("ops", last_reviewed_at=datetime(2025, 4, 6, 9, 0, tzinfo=JST)),
    ]
    # 2026-04-06 00:30 UTC is 09:30 JST: before the GA's 90th day ends at 10:00 JST.
    utc = datetime(2026, 4, 6, 0, 30, tzinfo=UTC)
    jst = utc.astimezone(JST)
    assert jst.hour == 9 and jst.utcoffset() == timedelta(hours=9)
    one = [v.to_dict() for v in audit(flags, RETENTION, utc)]
    other = [v.to_dict() for v in audit(flags, RETENTION, jst)]
    assert one == other
    by_key = {d["key"]: d for d in one}
    assert by_key["release-flag"]["stale"] is False  # 30 minutes to go
    assert by_key["release-flag"]["due_at"] == "2026-04-06T01:00:00Z"
    assert by_key["experiment-flag"]["stale"] is True  # ended 03-06 15:30 UTC, + 30 days
    assert by_key["ops-flag"]["review_due"] is True  # 2025-04-06 00:00 UTC + 365 days
    later = audit(flags, RETENTION, datetime(2026, 4, 6, 10, 0, tzinfo=JST))
    assert [v.key for v in later if v.stale] == ["experiment-flag", "release-flag"]


def test_stale_flags_come_first_then_unknown_kinds_then_reviews() -> None:
    now = GA + timedelta(days=400)
    flags = [
        ExportedFlag("ok-ops", "ops", last_reviewed_at=now - timedelta(days=1)),
        ExportedFlag("archived", "release", archived=True),
        ExportedFlag("review", "permission", created_at=GA - timedelta(days=400)),
        ExportedFlag("mystery", None),
        ExportedFlag("stale-late", "release", ga_at=GA + timedelta(days=10)),
        ExportedFlag("stale-early", "release", ga_at=GA),
    ]
    order = [v.key for v in audit(flags, RETENTION, now)]
    assert order == ["stale-early", "stale-late", "mystery", "review", "ok-ops", "archived"]


def test_references_merge_the_grep_and_the_export_once_each() -> None:
    f = ExportedFlag("k", "release", code_references=("api/app.ts:4", "lib/a.dart:2"))
    (v,) = audit([f], RETENTION, GA, {"k": ["lib/a.dart:2", "lib/b.dart:9"]})
    assert v.code_references == ("lib/a.dart:2", "lib/b.dart:9", "api/app.ts:4")


# -- the export document --------------------------------------------------------------------


def export(*flags: dict[str, object]) -> dict[str, object]:
    return {"flags": list(flags)}


def test_an_export_document_is_read_with_its_times_aware() -> None:
    (f,) = parse_export(
        export(
            {
                "key": "new-booking-flow",
                "kind": "release",
                "owner": "@alice",
                "archived": False,
                "created_at": "2025-12-01T00:00:00Z",
                "ga_at": "2026-01-06T10:00:00+09:00",
                "experiment_ended_at": None,
                "last_reviewed_at": None,
                "code_references": ["api/booking.ts:12", {"path": "lib/flags.dart", "line": 3}],
                "environments": {"production": {"on": True}},
            }
        ),
        "flags.json",
    )
    assert f.ga_at == GA
    assert f.owner == "alice"
    assert f.code_references == ("api/booking.ts:12", "lib/flags.dart:3")


def test_every_bad_field_is_named_by_file_index_and_key() -> None:
    with pytest.raises(FlagExportError) as caught:
        parse_export(
            export(
                {"key": "a", "kind": "release", "ga_at": "2026-01-06T10:00:00"},
                {"key": "b", "kind": "feature"},
                {"kind": "ops"},
                {"key": "a", "kind": "ops"},
                {"key": "c", "kind": "ops", "archived": "yes", "code_references": [3]},
            ),
            "flags.json",
        )
    err = caught.value
    fields = [(i.path, i.key) for i in err.issues]
    assert fields == [
        ("flags.json", "flags[0].ga_at"),
        ("flags.json", "flags[1].kind"),
        ("flags.json", "flags[2].key"),
        ("flags.json", "flags[3].key"),
        ("flags.json", "flags[4].archived"),
        ("flags.json", "flags[4].code_references[0]"),
    ]
    assert "has no UTC offset" in err.issues[0].message
    assert "listed twice (first at flags[0])" in err.issues[3].message
    assert err.file == "flags.json"
    assert err.exit_code == 2
    assert "`flags[0].ga_at`" in err.message


def test_a_document_that_is_not_json_or_has_no_flags_list_is_refused() -> None:
    with pytest.raises(FlagExportError, match=r"not JSON: .* at line 1"):
        parse_export_text("{nope", "flags.json")
    with pytest.raises(FlagExportError, match="`flags` list"):
        parse_export_text(json.dumps([{"key": "a"}]), "flags.json")


def test_a_bare_date_is_midnight_in_the_zone_given_and_refused_without_one() -> None:
    doc = export({"key": "x", "kind": "experiment", "experiment_ended_at": "2026-03-01"})
    (f,) = parse_export(doc, "f", zone=JST)
    assert f.experiment_ended_at == datetime(2026, 3, 1, tzinfo=JST)
    with pytest.raises(FlagExportError, match="date without a time zone"):
        parse_export(doc, "f")


def test_the_catalog_fills_in_kind_owner_and_an_experiments_end() -> None:
    flags = [ExportedFlag("checkout-ui-variant", None), ExportedFlag("elsewhere", None)]
    catalog = [
        FlagEntry(
            key="checkout-ui-variant",
            kind="experiment",
            owner="triptrip/checkout",
            experiment_ends="2026-03-01",
        )
    ]
    known, unknown = with_catalog(flags, catalog, JST)
    assert known.kind == "experiment" and known.owner == "triptrip/checkout"
    assert known.experiment_ended_at == datetime(2026, 3, 1, tzinfo=JST)
    assert unknown.kind is None


def test_the_export_wins_over_the_catalog() -> None:
    ended = datetime(2026, 2, 1, tzinfo=timezone.utc)  # noqa: UP017 - another tzinfo on purpose
    (f,) = with_catalog(
        [ExportedFlag("x", "release", owner="bob", experiment_ended_at=ended)],
        [FlagEntry(key="x", kind="ops", owner="alice", experiment_ends="2026-03-01")],
        JST,
    )
    assert (f.kind, f.owner, f.experiment_ended_at) == ("release", "bob", ended)


@pytest.mark.parametrize(
    ("owner", "kind"),
    [
        ("alice", "user"),
        ("alice-b", "user"),
        ("triptrip/checkout-team", "team"),
        (None, "none"),
        ("", "none"),
        ("not a login", "invalid"),
        ("-alice", "invalid"),
    ],
)
def test_an_owner_is_a_user_to_assign_or_a_team_to_mention(owner: str | None, kind: str) -> None:
    assert owner_kind(owner) == kind
