"""LaunchDarklyKillSwitch with a real requests session against the LaunchDarkly REST fake."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from release_actions.errors import IntegrationError
from release_actions.integrations.launchdarkly import API_VERSION, LaunchDarklyKillSwitch
from release_actions.metrics.retry import RetryPolicy
from tests.fakes.launchdarkly import API_TOKEN, PROJECT, READ_ONLY_TOKEN, LaunchDarklyFake

pytestmark = pytest.mark.integration

FLAG = "ai-trip-suggestions"


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def fake() -> Iterator[LaunchDarklyFake]:
    with LaunchDarklyFake() as server:
        server.add_flag(FLAG)
        yield server


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make(fake: LaunchDarklyFake, sleeps: Sleeps, **kw: Any) -> LaunchDarklyKillSwitch:
    kw.setdefault("api_token", API_TOKEN)
    kw.setdefault("project", PROJECT)
    policy = RetryPolicy(
        attempts=4, total_seconds=60, backoff_initial=0.5, jitter=0.0, retry_after_cap=30,
        sleep=sleeps.sleep, clock=sleeps.clock,
    )  # fmt: skip
    return LaunchDarklyKillSwitch(None, base_url=fake.url, retry=policy, timeout=5, **kw)


def test_turn_off_sends_the_documents_json_patch(fake: LaunchDarklyFake, sleeps: Sleeps) -> None:
    result = make(fake, sleeps).turn_off(FLAG, "production", comment="RB-2026-001: error rate 5.2%")

    assert result.changed and result.version == 2
    assert (result.project, result.flag_key, result.environment) == (PROJECT, FLAG, "production")
    assert not fake.is_on(FLAG, "production")
    assert fake.is_on(FLAG, "staging"), "other environments are left alone"
    patch = [r for r in fake.requests if r.method == "PATCH"][-1]
    assert patch.path == f"/api/v2/flags/{PROJECT}/{FLAG}"
    assert patch.headers["authorization"] == API_TOKEN, "the token goes as is, with no scheme"
    assert patch.headers["content-type"] == "application/json"
    assert patch.headers["ld-api-version"] == API_VERSION
    assert patch.body["comment"] == "RB-2026-001: error rate 5.2%"
    assert {"op": "replace", "path": "/environments/production/on", "value": False} in (
        patch.body["patch"]
    )
    assert fake.audit[-1]["comment"] == "RB-2026-001: error rate 5.2%"


def test_already_off_reports_unchanged_and_writes_nothing(
    fake: LaunchDarklyFake, sleeps: Sleeps
) -> None:
    switch = make(fake, sleeps)
    assert switch.turn_off(FLAG, "production").changed

    again = switch.turn_off(FLAG, "production")

    assert not again.changed and "already off" in again.detail
    assert [r.method for r in fake.requests].count("PATCH") == 1
    assert len(fake.audit) == 1


def test_a_flag_turned_off_between_read_and_write_is_not_changed_twice(
    fake: LaunchDarklyFake, sleeps: Sleeps
) -> None:
    fake.toggle_before_next_patch(FLAG, "production", on=False)

    result = make(fake, sleeps).turn_off(FLAG, "production")

    assert not result.changed  # the `test` op failed, the re-read found it off
    assert not fake.is_on(FLAG, "production")
    assert fake.audit == []


def test_unauthorized_names_the_token(fake: LaunchDarklyFake, sleeps: Sleeps) -> None:
    with pytest.raises(IntegrationError, match=r"rejected the API token \(HTTP 401") as info:
        make(fake, sleeps, api_token="api-wrong").turn_off(FLAG, "production")
    assert "LD_API_KEY" in (info.value.hint or "")
    assert "api-wrong" not in str(info.value) + (info.value.hint or "")
    assert fake.is_on(FLAG, "production")


def test_forbidden_names_the_role(fake: LaunchDarklyFake, sleeps: Sleeps) -> None:
    with pytest.raises(IntegrationError, match="HTTP 403") as info:
        make(fake, sleeps, api_token=READ_ONLY_TOKEN).turn_off(FLAG, "production")
    assert "Writer" in (info.value.hint or "")


def test_unknown_flag_names_flag_and_project(fake: LaunchDarklyFake, sleeps: Sleeps) -> None:
    with pytest.raises(
        IntegrationError, match=r"no flag `no-such-flag` in project `triptrip`.*404"
    ):
        make(fake, sleeps).turn_off("no-such-flag", "production")
    with pytest.raises(IntegrationError, match="HTTP 404"):
        make(fake, sleeps, project="other").turn_off(FLAG, "production")


def test_unknown_environment_is_named(fake: LaunchDarklyFake, sleeps: Sleeps) -> None:
    with pytest.raises(IntegrationError, match="has no environment `prod`"):
        make(fake, sleeps).turn_off(FLAG, "prod")


def test_rate_limit_waits_until_the_reset_then_succeeds(
    fake: LaunchDarklyFake, sleeps: Sleeps
) -> None:
    fake.rate_limit_next("PATCH", reset_in=2.0)
    switch = make(fake, sleeps, now=time.time)

    result = switch.turn_off(FLAG, "production")

    assert result.changed and not fake.is_on(FLAG, "production")
    assert len(sleeps.waits) == 1 and 1.0 < sleeps.waits[0] <= 2.0  # epoch ms, not seconds


def test_retry_after_is_preferred_and_server_errors_back_off(
    fake: LaunchDarklyFake, sleeps: Sleeps
) -> None:
    fake.rate_limit_next("GET", reset_in=20.0, retry_after=3)
    fake.fail_next("PATCH", 503)
    assert make(fake, sleeps).turn_off(FLAG, "production").changed
    assert sleeps.waits == [3.0, 0.5]


def test_rate_limit_that_never_lifts_gives_up(fake: LaunchDarklyFake, sleeps: Sleeps) -> None:
    fake.rate_limit_next("GET", reset_in=1.0, times=10)
    with pytest.raises(IntegrationError, match=r"after 4 attempt\(s\): HTTP 429") as info:
        make(fake, sleeps).turn_off(FLAG, "production")
    assert "rate limiting" in (info.value.hint or "")


def test_sdk_keys_are_refused_before_any_request(fake: LaunchDarklyFake, sleeps: Sleeps) -> None:
    with pytest.raises(IntegrationError, match="SDK or mobile key"):
        make(fake, sleeps, api_token="sdk-0000-1111")
    assert fake.requests == []


def test_from_env_reads_the_documents_variable(fake: LaunchDarklyFake) -> None:
    switch = LaunchDarklyKillSwitch.from_env(
        {"LD_API_KEY": API_TOKEN, "LAUNCHDARKLY_PROJECT": PROJECT}, base_url=fake.url
    )
    assert switch.is_on(FLAG, "production")
    with pytest.raises(IntegrationError, match="No LaunchDarkly API token") as info:
        LaunchDarklyKillSwitch.from_env({})
    assert "secrets.LD_API_KEY" in (info.value.hint or "")
