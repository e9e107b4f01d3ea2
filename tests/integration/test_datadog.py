"""DatadogProvider with the real datadog-api-client against the Datadog HTTP fake."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from release_actions.errors import MetricsError, NoDataError, ReleaseActionsError
from release_actions.metrics.base import MetricsProvider, Track
from release_actions.metrics.datadog import DatadogProvider
from release_actions.metrics.retry import RetryPolicy
from tests.fakes.datadog import (
    API_KEY,
    APP_KEY,
    MILLISECOND,
    SECOND,
    DatadogFake,
    Reply,
    all_null,
    bad_query,
    nan,
    no_values,
    ok,
    rate_limited,
    server_error,
    slow,
    unauthorized,
)
from tests.support.sleeps import Sleeps

pytestmark = pytest.mark.integration

START, END = 1768885500.0, 1768885800.0
SCOPE = "service:triptrip-api,track:canary"
REQUESTS = f"sum:triptrip.http.request.count{{{SCOPE}}}.as_count()"
ERRORS = f"sum:triptrip.http.request.count{{{SCOPE},status_class:5xx}}.as_count()"
P99 = f"avg:triptrip.http.request.duration.99percentile{{{SCOPE}}}"


@pytest.fixture
def fake() -> Iterator[DatadogFake]:
    with DatadogFake() as server:
        yield server


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make(fake: DatadogFake, sleeps: Sleeps | None = None, **kw: Any) -> DatadogProvider:
    policy = RetryPolicy(
        attempts=3,
        total_seconds=10,
        backoff_initial=0.2,
        jitter=0.1,
        sleep=sleeps or Sleeps(),
    )
    kw.setdefault("retry", policy)
    kw.setdefault("timeout", 2.0)
    return DatadogProvider(
        None, api_key=API_KEY, app_key=APP_KEY, host=fake.url, service="triptrip-api", **kw
    )


def healthy(fake: DatadogFake, *, errors: Reply | None = None, p99: Reply | None = None) -> None:
    fake.script(REQUESTS, ok([100, 120, 80], unit=None))
    fake.script(ERRORS, errors or ok([1, None, 2]))
    fake.script(P99, p99 or ok([400, 450, 900], unit=MILLISECOND))


def test_is_a_metrics_provider(fake: DatadogFake) -> None:
    assert isinstance(make(fake), MetricsProvider)


def test_ok_sums_counts_and_reads_p99_from_complete_points(fake: DatadogFake) -> None:
    healthy(fake)
    with make(fake) as metrics:
        sample = metrics.query(Track.CANARY, START, END)
    assert (sample.requests, sample.errors) == (300, 3)
    # 900 is the newest, incomplete bucket: the max of the complete ones is 450.
    assert sample.p99_ms == 450
    assert sample.slow is None
    assert sample.queries == {"requests": REQUESTS, "errors": ERRORS, "p99": P99}
    sent = fake.requests[0]
    assert sent.path == "/api/v1/query"
    assert sent.params == {"from": str(int(START)), "to": str(int(END)), "query": REQUESTS}
    assert sent.headers["dd-api-key"] == API_KEY
    assert sent.headers["dd-application-key"] == APP_KEY


def test_p99_in_seconds_is_converted_by_its_unit(fake: DatadogFake) -> None:
    healthy(fake, p99=ok([0.4, 0.5, 0.9], unit=SECOND))
    assert make(fake).query(Track.CANARY, START, END).p99_ms == pytest.approx(500)


def test_counts_of_several_series_are_summed(fake: DatadogFake) -> None:
    healthy(fake)
    fake.script(REQUESTS, ok([10, 20], series=3))
    assert make(fake).query(Track.CANARY, START, END).requests == 90


def test_whole_deployment_drops_the_track_tag(fake: DatadogFake) -> None:
    sample_scope = "service:triptrip-api"
    fake.script(f"sum:triptrip.http.request.count{{{sample_scope}}}.as_count()", ok([7]))
    fake.script(f"avg:triptrip.http.request.duration.99percentile{{{sample_scope}}}", ok([30]))
    sample = make(fake).query(None, START, END)
    assert sample.requests == 7
    assert sample.p99_ms == 30
    assert all("track:" not in q for q in fake.queries())


def test_no_values_is_no_data(fake: DatadogFake) -> None:
    fake.script(REQUESTS, no_values())
    with pytest.raises(NoDataError, match=r"returned no series for requests") as info:
        make(fake).query(Track.CANARY, START, END)
    assert REQUESTS in str(info.value)


def test_no_5xx_series_with_traffic_is_zero_errors(fake: DatadogFake) -> None:
    healthy(fake, errors=no_values())
    assert make(fake).query(Track.CANARY, START, END).errors == 0


def test_all_null_points_are_no_data(fake: DatadogFake) -> None:
    fake.script(REQUESTS, all_null())
    with pytest.raises(NoDataError):
        make(fake).query(Track.CANARY, START, END)


def test_all_null_p99_is_no_data(fake: DatadogFake) -> None:
    healthy(fake, p99=all_null())
    with pytest.raises(NoDataError, match=r"p99 latency"):
        make(fake).query(Track.CANARY, START, END)


def test_nan_is_no_data_never_zero(fake: DatadogFake) -> None:
    healthy(fake, p99=nan())
    with pytest.raises(NoDataError, match=r"nan"):
        make(fake).query(Track.CANARY, START, END)
    fake.script(REQUESTS, ok([5, float("nan"), 5]))
    with pytest.raises(NoDataError):
        make(fake).query(Track.CANARY, START, END)


def test_unauthorized_names_the_keys_and_is_not_retried(fake: DatadogFake) -> None:
    fake.script(REQUESTS, unauthorized())
    with pytest.raises(MetricsError, match=r"HTTP 401: Unauthorized") as info:
        make(fake).query(Track.CANARY, START, END)
    assert not isinstance(info.value, NoDataError)
    assert info.value.hint is not None and "DD_API_KEY" in info.value.hint
    assert "DD_APP_KEY" in info.value.hint
    assert len(fake.requests) == 1


def test_wrong_key_is_forbidden(fake: DatadogFake) -> None:
    metrics = DatadogProvider(
        None, api_key="wrong", app_key=APP_KEY, host=fake.url, service="triptrip-api"
    )
    with pytest.raises(MetricsError, match=r"HTTP 403: Forbidden") as info:
        metrics.query(Track.CANARY, START, END)
    assert info.value.hint is not None and "DD_API_KEY" in info.value.hint


def test_rate_limit_waits_for_retry_after_then_succeeds(fake: DatadogFake, sleeps: Sleeps) -> None:
    healthy(fake)
    fake.script(REQUESTS, rate_limited(retry_after="2", reset=7), ok([50]))
    sample = make(fake, sleeps).query(Track.CANARY, START, END)
    assert sample.requests == 50
    assert sleeps.waits == [2.0]
    assert fake.queries().count(REQUESTS) == 2


def test_rate_limit_without_retry_after_waits_for_the_reset(
    fake: DatadogFake, sleeps: Sleeps
) -> None:
    healthy(fake)
    fake.script(REQUESTS, rate_limited(reset=3), ok([50]))
    assert make(fake, sleeps).query(Track.CANARY, START, END).requests == 50
    assert sleeps.waits == [3.0]


def test_rate_limit_longer_than_the_budget_gives_up(fake: DatadogFake, sleeps: Sleeps) -> None:
    fake.script(REQUESTS, rate_limited(reset=3600))
    with pytest.raises(MetricsError, match=r"HTTP 429") as info:
        make(fake, sleeps).query(Track.CANARY, START, END)
    assert info.value.hint is not None and "rate limiting" in info.value.hint
    assert sleeps.waits == []


def test_server_error_is_retried_then_succeeds(fake: DatadogFake, sleeps: Sleeps) -> None:
    healthy(fake)
    fake.script(REQUESTS, server_error(503), server_error(500), ok([42]))
    assert make(fake, sleeps).query(Track.CANARY, START, END).requests == 42
    assert len(sleeps.waits) == 2
    # Exponential: 0.2 then 0.4, each plus up to 0.1 of jitter.
    assert 0.2 <= sleeps.waits[0] <= 0.3
    assert 0.4 <= sleeps.waits[1] <= 0.5


def test_persistent_server_error_is_a_metrics_error(fake: DatadogFake, sleeps: Sleeps) -> None:
    fake.script(REQUESTS, server_error(502))
    with pytest.raises(MetricsError, match=r"did not answer after 3 attempt.*HTTP 502") as info:
        make(fake, sleeps).query(Track.CANARY, START, END)
    assert not isinstance(info.value, NoDataError)
    assert REQUESTS in str(info.value)
    assert fake.queries().count(REQUESTS) == 3


def test_bad_query_is_not_retried(fake: DatadogFake) -> None:
    fake.script(REQUESTS, bad_query("Error parsing query: unexpected `}`"))
    with pytest.raises(MetricsError, match=r"HTTP 400: Error parsing query"):
        make(fake).query(Track.CANARY, START, END)
    assert len(fake.requests) == 1


def test_timeout_is_retried_then_a_metrics_error(fake: DatadogFake) -> None:
    fake.script(REQUESTS, slow(5, ok([1])))
    policy = RetryPolicy(attempts=2, total_seconds=5, backoff_initial=0.01, jitter=0)
    started = time.monotonic()
    with pytest.raises(MetricsError, match=r"did not answer after 2 attempt.*timed out") as info:
        make(fake, retry=policy, timeout=0.3).query(Track.CANARY, START, END)
    assert not isinstance(info.value, NoDataError)
    # Two attempts of 0.3 s: the SDK's own transport retries are off.
    assert time.monotonic() - started < 2.0
    assert fake.queries().count(REQUESTS) == 2


def test_one_slow_answer_then_success(fake: DatadogFake, sleeps: Sleeps) -> None:
    healthy(fake)
    fake.script(REQUESTS, slow(5, ok([1])), ok([64]))
    assert make(fake, sleeps, timeout=0.3).query(Track.CANARY, START, END).requests == 64


def test_is_online(fake: DatadogFake) -> None:
    assert make(fake).is_online() is True
    wrong = DatadogProvider(None, api_key="wrong", app_key="x", host=fake.url, service="s")
    assert wrong.is_online() is False
    fake.validate_reply = server_error(503)
    assert make(fake).is_online() is False
    assert [r.path for r in fake.requests] == ["/api/v1/validate"] * 3


def test_unreachable_is_offline() -> None:
    with DatadogFake() as gone:
        url = gone.url
    metrics = DatadogProvider(None, api_key="k", app_key="a", host=url, service="s", timeout=0.5)
    assert metrics.is_online() is False


def test_a_client_that_is_passed_in_is_used(fake: DatadogFake) -> None:
    from datadog_api_client import ApiClient, Configuration

    healthy(fake)
    configuration = Configuration(host=fake.url, retry_policy=False, request_timeout=2)  # type: ignore[no-untyped-call]
    configuration.api_key = {"apiKeyAuth": API_KEY, "appKeyAuth": APP_KEY}
    with ApiClient(configuration) as client:
        sample = DatadogProvider(client, service="triptrip-api").query(Track.CANARY, START, END)
    assert sample.requests == 300


def test_keys_come_from_the_constructor_not_the_environment(
    fake: DatadogFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DD_API_KEY", "from-the-environment")
    monkeypatch.setenv("DD_APP_KEY", "from-the-environment")
    monkeypatch.setenv("DD_SITE", "datadoghq.eu")
    healthy(fake)
    assert make(fake).query(Track.CANARY, START, END).requests == 300
    assert {r.headers["dd-api-key"] for r in fake.requests} == {API_KEY}


def test_missing_keys_are_named() -> None:
    with pytest.raises(ReleaseActionsError, match=r"`DD_API_KEY` and `DD_APP_KEY`"):
        DatadogProvider(None, service="triptrip-api")


def test_template_typo_names_the_variable() -> None:
    with pytest.raises(ReleaseActionsError, match=r"undefined variable `scop`"):
        DatadogProvider(
            None,
            api_key="k",
            app_key="a",
            service="s",
            queries={"requests": "sum:m{ {{- scop -}} }.as_count()"},
        )


def test_custom_slow_query_fills_slow(fake: DatadogFake) -> None:
    healthy(fake)
    slow_query = (
        "sum:triptrip.http.request.slow{ {{- scope -}} ,threshold:{{ slow_ms | int }}}.as_count()"
    )
    fake.script(f"sum:triptrip.http.request.slow{{{SCOPE},threshold:500}}.as_count()", ok([4, 6]))
    sample = make(fake, queries={"slow": slow_query}).query(Track.CANARY, START, END, slow_ms=500)
    assert sample.slow == 10


def test_the_cadence_is_never_finer_than_a_minute_of_datadog(fake: DatadogFake) -> None:
    """The newest points arrive late: a 10 s look would be mostly an empty bucket."""
    from release_actions.canary.measure import resolvable_cadence

    datadog = make(fake)
    assert datadog.shortest_window_seconds() == 60.0
    cadence, why = resolvable_cadence(10, datadog)
    assert cadence == 60 and why is not None and "datadog" in why
    assert resolvable_cadence(120, datadog) == (120, None)
    fast = make(fake, min_window_seconds="20")  # a pipeline known to be fresh
    assert resolvable_cadence(10, fast)[0] == 20
    with pytest.raises(ReleaseActionsError, match="min_window_seconds"):
        make(fake, min_window_seconds="0")
    assert fake.requests == []  # asking the window costs no query
