"""SentryVitals with requests against the Sentry sessions API fake."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from release_actions.errors import MetricsError, NoDataError, ReleaseActionsError
from release_actions.metrics.retry import RetryPolicy
from release_actions.mobile.sentry import SentryVitals
from tests.fakes.sentry import ORG, PROJECT_ID, TOKEN, SentryFake, fault
from tests.support.sleeps import Sleeps

pytestmark = pytest.mark.integration

RELEASE = "com.triptrip.app@4.2.0+{version_code}"


def hour(n: int) -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=n)


@pytest.fixture
def fake() -> Iterator[SentryFake]:
    with SentryFake() as server:
        server.add("com.triptrip.app@4.2.0+421", hour(2), users=800, crashed=4)
        server.add("com.triptrip.app@4.2.0+421", hour(1), users=1200, crashed=6)
        server.add("com.triptrip.app@4.1.0+410", hour(1), users=50000, crashed=20)
        yield server


def source(fake: SentryFake, policy: RetryPolicy, **kw: Any) -> SentryVitals:
    kw.setdefault("token", TOKEN)
    kw.setdefault("release", RELEASE)
    return SentryVitals(
        requests.Session(),
        org=ORG,
        project=PROJECT_ID,
        base_url=fake.url,
        retry=policy,
        **kw,
    )


def test_crashed_users_per_release(fake: SentryFake, policy: RetryPolicy) -> None:
    now = time.time()
    got = source(fake, policy).vitals("421", now - 3 * 3600, now)
    assert (got.users, got.crashed_users, got.anr_users) == (2000, 10, None)
    assert got.crash_free_rate == pytest.approx(0.995)
    sent = fake.requests[-1]
    assert sent.path == f"/api/0/organizations/{ORG}/sessions/"
    assert sent.params["field"] == ["count_unique(user)", "crash_free_rate(user)"]
    assert sent.params["groupBy"] == ["release"]
    assert sent.params["project"] == [PROJECT_ID]
    assert sent.params["query"] == ['release:"com.triptrip.app@4.2.0+421"']
    assert sent.params["interval"] == ["1h"]


def test_no_sessions_is_no_data(fake: SentryFake, policy: RetryPolicy) -> None:
    now = time.time()
    with pytest.raises(NoDataError, match=r"no sessions for release `com.triptrip.app@4.2.0\+999`"):
        source(fake, policy).vitals("999", now - 3600, now)


def test_release_template_must_name_the_version_code() -> None:
    with pytest.raises(ReleaseActionsError, match="must contain"):
        SentryVitals(requests.Session(), org=ORG, project=PROJECT_ID, token=TOKEN, release="4.2.0")


def test_release_template_refuses_an_unknown_placeholder() -> None:
    with pytest.raises(ReleaseActionsError, match=r"`\{build\}` is not one of them"):
        SentryVitals(
            requests.Session(), org=ORG, project=PROJECT_ID, token=TOKEN,
            release="app@{version}+{build}",
        )  # fmt: skip


def test_version_string_names_each_versions_release(fake: SentryFake, policy: RetryPolicy) -> None:
    # The store fills the mapping as it is read: the new build and the previous version's.
    versions = {"421": "4.2.0", "410": "4.1.0"}
    s = source(fake, policy, versions=versions, release="com.triptrip.app@{version}+{version_code}")
    now = time.time()
    assert s.vitals("410", now - 3 * 3600, now).users == 50000
    assert s.vitals("421", now - 3 * 3600, now).users == 2000
    queries = [rq.params["query"] for rq in fake.requests]
    assert queries == [
        ['release:"com.triptrip.app@4.1.0+410"'],
        ['release:"com.triptrip.app@4.2.0+421"'],
    ]
    # A build the store never reported is not guessed at: the gate holds and reads again.
    with pytest.raises(MetricsError, match="version string of build 999"):
        s.vitals("999", now - 3600, now)
    assert len(fake.requests) == 2


def test_invalid_token(fake: SentryFake, policy: RetryPolicy) -> None:
    now = time.time()
    s = source(fake, policy, token="sntrys_wrong")
    with pytest.raises(MetricsError, match="HTTP 401: Invalid token") as info:
        s.vitals("421", now - 3600, now)
    assert "SENTRY_AUTH_TOKEN" in (info.value.hint or "")
    assert not s.is_online()


def test_forbidden(fake: SentryFake, policy: RetryPolicy) -> None:
    fake.faults.append(fault(403))
    now = time.time()
    with pytest.raises(MetricsError, match="HTTP 403"):
        source(fake, policy).vitals("421", now - 3600, now)


def test_rate_limit_retried_then_answers(
    fake: SentryFake, policy: RetryPolicy, sleeps: Sleeps
) -> None:
    fake.faults.append(fault(429, retry_after=2))
    now = time.time()
    assert source(fake, policy).vitals("421", now - 3 * 3600, now).users == 2000
    assert sleeps.waits == [2.0]


def test_outage_is_an_error_not_health(fake: SentryFake, policy: RetryPolicy) -> None:
    fake.faults.append(fault(500, times=5))
    now = time.time()
    with pytest.raises(MetricsError, match="did not answer after 3 attempt") as info:
        source(fake, policy).vitals("421", now - 3600, now)
    assert not isinstance(info.value, NoDataError)


def test_timeout(fake: SentryFake, sleeps: Sleeps) -> None:
    fake.delay = 1.0
    policy = RetryPolicy(
        attempts=2, total_seconds=30, backoff_initial=0.1, jitter=0.0, sleep=sleeps
    )
    now = time.time()
    with pytest.raises(MetricsError, match="did not answer after 2"):
        source(fake, policy, timeout=0.2).vitals("421", now - 3600, now)


def test_online(fake: SentryFake, policy: RetryPolicy) -> None:
    assert source(fake, policy).is_online()
