"""PlayRelease, PlayVitals and PlayReviews with the real google-api-python-client against the Play fake."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.oauth2.credentials import Credentials

from release_actions.errors import MetricsError, NoDataError, TargetError
from release_actions.metrics.retry import RetryPolicy
from release_actions.mobile.base import StoreState
from release_actions.mobile.play import PlayRelease, PlayReviews, PlayVitals, play_clients
from tests.fakes.play import PACKAGE, TOKEN, PlayFake, Slow, fault, hours_ago
from tests.support.sleeps import Sleeps

pytestmark = pytest.mark.integration


@pytest.fixture
def fake() -> Iterator[PlayFake]:
    with PlayFake() as server:
        server.release("production", 100)
        server.release("internal", 101)
        yield server


def clients(fake: PlayFake, token: str = TOKEN, timeout: float = 5.0) -> tuple[Any, Any]:
    return play_clients(Credentials(token=token), endpoint=fake.url, timeout=timeout)


def release(fake: PlayFake, policy: RetryPolicy, **kw: Any) -> PlayRelease:
    publisher, _ = clients(fake, timeout=kw.pop("timeout", 5.0))
    kw.setdefault("version_code", "101")
    return PlayRelease(publisher, package_name=PACKAGE, retry=policy, **kw)


def test_promote_stage_halt_resume_complete(fake: PlayFake, policy: RetryPolicy) -> None:
    play = release(fake, policy)
    assert play.status().state == StoreState.DRAFT

    assert play.promote("internal", 0.01).changed
    status = play.status()
    assert (status.state, status.fraction, status.previous_version_code) == (
        StoreState.IN_PROGRESS,
        0.01,
        "100",
    )
    assert fake.committed("production") == [
        {"versionCodes": ["101"], "status": "inProgress", "userFraction": 0.01},
        {"versionCodes": ["100"], "status": "completed"},
    ]
    assert play.set_fraction(0.2).changed
    assert play.halt().changed
    halted = fake.committed("production")[0]
    assert (halted["status"], halted["userFraction"]) == ("halted", 0.2)
    assert play.resume().changed
    assert fake.committed("production")[0]["status"] == "inProgress"
    assert play.complete().changed
    # Play keeps one completed release: the old baseline goes.
    assert fake.committed("production") == [{"versionCodes": ["101"], "status": "completed"}]
    assert play.status().state == StoreState.COMPLETED


def test_edits_flow_calls_in_order(fake: PlayFake, policy: RetryPolicy) -> None:
    play = release(fake, policy)
    fake.requests.clear()
    play.set_fraction(0.05)
    calls = [f"{r.method} {r.path.split(PACKAGE)[-1]}" for r in fake.requests]
    edit = fake.commits[-1]["edit"]
    assert calls == [
        "POST /edits",
        f"GET /edits/{edit}/tracks/production",
        f"GET /edits/{edit}/bundles",  # is the version code uploaded?
        f"PUT /edits/{edit}/tracks/production",
        f"POST /edits/{edit}:commit",
    ]


def test_rerun_changes_nothing_and_commits_nothing(fake: PlayFake, policy: RetryPolicy) -> None:
    play = release(fake, policy)
    assert play.set_fraction(0.1).changed
    commits = len(fake.commits)
    again = play.set_fraction(0.1)
    assert not again.changed
    assert "nothing was changed" in again.message
    assert len(fake.commits) == commits
    assert not fake.calls("PUT", "/tracks/")[1:]  # only the first run updated the track
    assert not fake.edits  # the second run's edit was deleted, not left open
    assert play.halt().changed
    assert not play.halt().changed
    assert play.resume().changed
    assert not play.resume().changed
    assert play.complete().changed
    assert not play.complete().changed


def test_release_notes_set_on_the_track_release(fake: PlayFake, policy: RetryPolicy) -> None:
    play = release(fake, policy, release_notes={"en-US": "Faster search", "de-DE": "Schneller"})
    play.set_fraction(0.05)
    notes = fake.committed("production")[0]["releaseNotes"]
    assert notes == [
        {"language": "de-DE", "text": "Schneller"},
        {"language": "en-US", "text": "Faster search"},
    ]
    assert not play.set_release_notes({"en-US": "Faster search", "de-DE": "Schneller"}).changed
    assert play.set_release_notes({"en-US": "Faster search!"}).changed
    assert fake.committed("production")[0]["releaseNotes"] == [
        {"language": "en-US", "text": "Faster search!"}
    ]
    assert fake.committed("production")[0]["userFraction"] == 0.05


def test_promote_carries_name_and_notes_and_is_idempotent(
    fake: PlayFake, policy: RetryPolicy
) -> None:
    fake.tracks["beta"] = [
        {
            "versionCodes": ["101"],
            "status": "completed",
            "name": "4.2.0",
            "releaseNotes": [{"language": "en-US", "text": "Beta notes"}],
        }
    ]
    play = release(fake, policy)
    assert play.promote("beta").changed
    assert fake.committed("production") == [
        {
            "versionCodes": ["101"],
            "status": "completed",
            "name": "4.2.0",
            "releaseNotes": [{"language": "en-US", "text": "Beta notes"}],
        }
    ]
    assert not play.promote("beta").changed


def test_a_version_missing_from_the_source_track(fake: PlayFake, policy: RetryPolicy) -> None:
    play = release(fake, policy, version_code="999")
    with pytest.raises(TargetError, match="999 is not on the `internal` track"):
        play.promote("internal", 0.01)
    with pytest.raises(TargetError, match="no bundle with version code 999") as info:
        play.set_fraction(0.01)
    assert "upload" in (info.value.hint or "").lower()
    assert not fake.commits


def test_bundle_uploaded_in_the_same_edit(
    fake: PlayFake, policy: RetryPolicy, tmp_path: Path
) -> None:
    aab = tmp_path / "app-release.aab"
    aab.write_bytes(b"PK\x03\x04 fake bundle versionCode=102")
    play = release(fake, policy, version_code="102", bundle=str(aab))
    assert play.set_fraction(0.01).changed
    uploads = [r for r in fake.requests if r.path.startswith("/upload/")]
    assert len(uploads) == 1 and uploads[0].params["uploadType"] == ["media"]
    assert fake.commits[-1]["tracks"]["production"][0]["versionCodes"] == ["102"]
    # A rerun finds the bundle in Play and does not upload it again.
    play.set_fraction(0.01)
    assert len([r for r in fake.requests if r.path.startswith("/upload/")]) == 1


def test_wrong_bundle_version_code_is_refused(
    fake: PlayFake, policy: RetryPolicy, tmp_path: Path
) -> None:
    aab = tmp_path / "app-release.aab"
    aab.write_bytes(b"versionCode=103")
    play = release(fake, policy, version_code="102", bundle=str(aab))
    with pytest.raises(TargetError, match="has version code 103, not 102"):
        play.set_fraction(0.01)
    assert not fake.commits


def test_crash_between_update_and_commit(fake: PlayFake, policy: RetryPolicy) -> None:
    # A runner killed after tracks.update: the edit is never committed.
    publisher, _ = clients(fake)
    edits = publisher.edits()
    edit = edits.insert(packageName=PACKAGE, body={}).execute()["id"]
    edits.tracks().update(
        packageName=PACKAGE,
        editId=edit,
        track="production",
        body={
            "track": "production",
            "releases": [
                {"versionCodes": ["101"], "status": "inProgress", "userFraction": 0.05},
                {"versionCodes": ["100"], "status": "completed"},
            ],
        },
    ).execute()
    assert fake.committed("production") == [{"versionCodes": ["100"], "status": "completed"}]
    # The next run starts a fresh edit and gets to the same end.
    play = release(fake, policy)
    assert play.status().state == StoreState.DRAFT
    assert play.set_fraction(0.05).changed
    assert fake.committed("production")[0] == {
        "versionCodes": ["101"],
        "status": "inProgress",
        "userFraction": 0.05,
    }
    # The abandoned edit is stale now: its commit is refused, and it changes nothing.
    with pytest.raises(Exception, match="409"):
        edits.commit(packageName=PACKAGE, editId=edit).execute()


def test_commit_failing_abandons_the_edit_and_a_rerun_finishes(
    fake: PlayFake, sleeps: Sleeps
) -> None:
    fake.faults.append(fault(500, times=2, path_contains=":commit"))
    policy = RetryPolicy(
        attempts=2, total_seconds=30, backoff_initial=0.1, jitter=0.0, sleep=sleeps
    )
    play = release(fake, policy)
    with pytest.raises(TargetError, match="gave up after 2 attempt"):
        play.set_fraction(0.05)
    assert not fake.commits
    assert fake.committed("production") == [{"versionCodes": ["100"], "status": "completed"}]
    assert play.set_fraction(0.05).changed
    assert len(fake.commits) == 1


def test_expired_edit_is_not_applied(fake: PlayFake, policy: RetryPolicy) -> None:
    publisher, _ = clients(fake)
    edit = publisher.edits().insert(packageName=PACKAGE, body={}).execute()["id"]
    fake.now = lambda: time.time() + 7200
    with pytest.raises(Exception, match="deleted"):
        publisher.edits().commit(packageName=PACKAGE, editId=edit).execute()
    assert release(fake, policy).set_fraction(0.01).changed


def test_another_staged_version_is_not_replaced(fake: PlayFake, policy: RetryPolicy) -> None:
    fake.release("production", 99, status="inProgress", userFraction=0.3)
    fake.bundles.add(101)
    with pytest.raises(TargetError, match="already stages version code"):
        release(fake, policy).set_fraction(0.01)


def test_halt_of_a_version_not_rolling_out(fake: PlayFake, policy: RetryPolicy) -> None:
    with pytest.raises(TargetError, match="nothing to halt"):
        release(fake, policy).halt()


@pytest.mark.parametrize(
    ("status", "hint"),
    [
        (401, "PLAY_SERVICE_ACCOUNT_JSON"),
        (403, "Release to production"),
        (404, "package-name"),
        (400, "rerunning would not help"),
    ],
)
def test_errors_become_target_errors_with_hints(
    fake: PlayFake, policy: RetryPolicy, status: int, hint: str
) -> None:
    fake.faults.append(fault(status, path_contains="/edits", times=5))
    with pytest.raises(TargetError) as info:
        release(fake, policy).set_fraction(0.01)
    assert f"HTTP {status}" in info.value.message
    assert hint in (info.value.hint or "")
    assert not fake.commits


def test_wrong_token_is_401(fake: PlayFake, policy: RetryPolicy) -> None:
    publisher, _ = clients(fake, token="ya29.someone-else")
    play = PlayRelease(publisher, package_name=PACKAGE, version_code="101", retry=policy)
    with pytest.raises(TargetError, match="HTTP 401 UNAUTHENTICATED"):
        play.status()


def test_rate_limit_and_outage_are_retried(
    fake: PlayFake, policy: RetryPolicy, sleeps: Sleeps
) -> None:
    fake.faults.append(fault(429, retry_after=7, path_contains="/tracks/production", method="PUT"))
    fake.faults.append(fault(503, path_contains=":commit"))
    assert release(fake, policy).set_fraction(0.01).changed
    assert sleeps.waits[0] == 7.0
    assert len(fake.commits) == 1
    assert fake.committed("production")[0]["userFraction"] == 0.01


def test_conflict_restarts_from_a_fresh_edit(fake: PlayFake, policy: RetryPolicy) -> None:
    fake.faults.append(fault(409, path_contains=":commit"))
    assert release(fake, policy).set_fraction(0.01).changed
    assert len(fake.calls("POST", "/edits")) - len(fake.calls("POST", ":commit")) >= 1
    assert len(fake.commits) == 1


def test_timeout_is_retried_then_reported(fake: PlayFake, sleeps: Sleeps) -> None:
    fake.slow.append(Slow(2.0, "/edits", times=10))
    policy = RetryPolicy(
        attempts=2, total_seconds=30, backoff_initial=0.1, jitter=0.0, sleep=sleeps
    )
    play = release(fake, policy, timeout=0.3)
    with pytest.raises(TargetError, match="gave up after 2 attempt"):
        play.status()
    fake.slow.clear()
    assert len(sleeps.waits) == 1


# -- vitals ---------------------------------------------------------------------------------------


def vitals(fake: PlayFake, policy: RetryPolicy, **kw: Any) -> PlayVitals:
    _, reporting = clients(fake)
    return PlayVitals(reporting, package_name=PACKAGE, retry=policy, **kw)


def test_hourly_vitals_per_version_code(fake: PlayFake, policy: RetryPolicy) -> None:
    fake.add_vitals(101, hours_ago(3), users=1000, crash_rate=0.01, anr_rate=0.002)
    fake.add_vitals(101, hours_ago(2), users=2000, crash_rate=0.005, anr_rate=0.001)
    fake.add_vitals(100, hours_ago(2), users=90000, crash_rate=0.001)
    fake.add_vitals(101, hours_ago(9), users=5000, crash_rate=0.5)  # outside the window
    source = vitals(fake, policy)
    now = time.time()
    got = source.vitals("101", now - 3 * 3600 - 60, now)
    assert (got.users, got.crashed_users, got.anr_users) == (3000, 20, 4)
    assert source.finest_window_seconds() == 3600.0
    query = next(r for r in fake.requests if r.path.endswith(":query")).body
    assert query["timelineSpec"]["aggregationPeriod"] == "HOURLY"
    assert query["dimensions"] == ["versionCode"]
    assert query["metrics"] == ["crashRate", "distinctUsers"]
    assert query["filter"] == "versionCode = 101"
    assert "minutes" not in query["timelineSpec"]["startTime"]


def test_user_perceived_metric(fake: PlayFake, policy: RetryPolicy) -> None:
    for h in range(1, 5):
        fake.add_vitals(101, hours_ago(h), users=1000, crash_rate=0.01)
    source = vitals(fake, policy, crash_metric="userPerceivedCrashRate", anr_metric=None)
    now = time.time()
    got = source.vitals("101", now - 5 * 3600, now)
    assert (got.users, got.crashed_users, got.anr_users) == (4000, 32, None)
    assert not [r for r in fake.requests if "anrRate" in r.path]


def test_rows_span_pages(fake: PlayFake, policy: RetryPolicy) -> None:
    for h in range(1, 6):
        fake.add_vitals(101, hours_ago(h), users=100, crash_rate=0.1, anr_rate=0.0)
    fake.max_page_size = 2
    now = time.time()
    got = vitals(fake, policy).vitals("101", now - 6 * 3600, now)
    assert (got.users, got.crashed_users) == (500, 50)
    queries = [r for r in fake.requests if r.path.endswith("crashRateMetricSet:query")]
    assert len(queries) == 3
    assert queries[1].body["pageToken"] == "2"


def test_daily_where_hourly_is_not_offered(fake: PlayFake, policy: RetryPolicy) -> None:
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    fake.periods = ["DAILY"]
    pacific = ZoneInfo("America/Los_Angeles")
    yesterday = (datetime.now(pacific) - timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    fake.latest_end = yesterday + timedelta(days=1)
    fake.add_vitals(101, yesterday, users=10000, crash_rate=0.002, anr_rate=0.001, period="DAILY")
    source = vitals(fake, policy)
    got = source.vitals("101", yesterday.timestamp(), datetime.now(UTC).timestamp())
    assert (got.users, got.crashed_users, got.anr_users) == (10000, 20, 10)
    assert source.finest_window_seconds() == 86400.0
    spec = next(r for r in fake.requests if r.path.endswith(":query")).body["timelineSpec"]
    assert spec["aggregationPeriod"] == "DAILY"
    assert spec["startTime"]["timeZone"] == {"id": "America/Los_Angeles"}
    assert "hours" not in spec["startTime"]


def test_no_rows_for_the_version_is_no_data(fake: PlayFake, policy: RetryPolicy) -> None:
    fake.add_vitals(100, hours_ago(2), users=90000, crash_rate=0.001)
    now = time.time()
    with pytest.raises(NoDataError, match="no crashRate rows for version code 101"):
        vitals(fake, policy).vitals("101", now - 3 * 3600, now)


@pytest.mark.parametrize(
    ("status", "hint"), [(403, "View app information"), (401, "workload identity")]
)
def test_reporting_errors(fake: PlayFake, policy: RetryPolicy, status: int, hint: str) -> None:
    fake.faults.append(fault(status, path_contains="MetricSet", times=3))
    now = time.time()
    with pytest.raises(MetricsError) as info:
        vitals(fake, policy).vitals("101", now - 3600, now)
    assert not isinstance(info.value, NoDataError)
    assert hint in (info.value.hint or "")


def test_reporting_rate_limit_is_retried(
    fake: PlayFake, policy: RetryPolicy, sleeps: Sleeps
) -> None:
    fake.add_vitals(101, hours_ago(1), users=100, crash_rate=0.0, anr_rate=0.0)
    fake.faults.append(fault(429, retry_after=3, path_contains=":query"))
    now = time.time()
    got = vitals(fake, policy).vitals("101", now - 2 * 3600, now)
    assert (got.users, got.crashed_users) == (100, 0)
    assert sleeps.waits == [3.0]


def test_reporting_outage_is_an_error_not_health(fake: PlayFake, policy: RetryPolicy) -> None:
    fake.faults.append(fault(503, path_contains="MetricSet", times=10))
    source = vitals(fake, policy)
    assert not source.is_online()
    now = time.time()
    with pytest.raises(MetricsError, match="gave up"):
        source.vitals("101", now - 3600, now)


# -- reviews --------------------------------------------------------------------------------------


def test_reviews_follow_page_tokens(fake: PlayFake, policy: RetryPolicy) -> None:
    now = time.time()
    for i in range(7):
        fake.add_review(
            stars=1 + i % 5,
            text=f"review {i}",
            at=now - 100 * i,
            version_code=101 if i % 2 else 100,
        )
    fake.add_review(stars=5, text="no version", at=now - 50, version_code=None)
    fake.add_review(stars=2, text="old", at=now - 10**6, version_code=99)
    publisher, _ = clients(fake)
    got = PlayReviews(publisher, package_name=PACKAGE, page_size=3, retry=policy).reviews(
        now - 1000
    )
    assert [r.text for r in got][:3] == ["review 0", "no version", "review 1"]
    assert len(got) == 8
    assert {r.version_code for r in got} == {"100", "101", None}
    assert got[0].stars == 1 and got[0].language == "en"
    listed = [r for r in fake.requests if r.path.endswith("/reviews")]
    assert len(listed) == 3
    assert listed[1].params["token"] == ["tok-3"]


def test_reviews_permission_error(fake: PlayFake, policy: RetryPolicy) -> None:
    from release_actions.errors import IntegrationError

    fake.faults.append(fault(403, path_contains="/reviews"))
    publisher, _ = clients(fake)
    with pytest.raises(IntegrationError, match="HTTP 403") as info:
        PlayReviews(publisher, package_name=PACKAGE, retry=policy).reviews(0)
    assert "Reply to reviews" in (info.value.hint or "")
