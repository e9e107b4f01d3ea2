"""The shared retry policy, status sorting, value checks and strict query templates."""

from __future__ import annotations

import math
from email.utils import formatdate

import pytest

from release_actions.errors import MetricsError, NoDataError, ReleaseActionsError
from release_actions.metrics.retry import (
    QueryTemplates,
    RetryPolicy,
    TransientError,
    call_with_retry,
    check_status,
    finite,
    header,
    parse_float,
    retry_after_seconds,
)


class Clock:
    """A virtual clock whose sleep moves time on, so deadlines can be tested without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def policy(
    clock: Clock,
    *,
    attempts: int = 4,
    total_seconds: float = 30.0,
    backoff_initial: float = 0.5,
    retry_after_cap: float = 30.0,
) -> RetryPolicy:
    return RetryPolicy(
        attempts=attempts,
        total_seconds=total_seconds,
        backoff_initial=backoff_initial,
        backoff_max=8.0,
        jitter=0.0,
        retry_after_cap=retry_after_cap,
        sleep=clock.sleep,
        clock=clock,
    )


class Flaky:
    """Raises the given errors in turn, then returns ``value``."""

    def __init__(self, *errors: Exception, value: str = "answer") -> None:
        self.errors = list(errors)
        self.calls = 0
        self.value = value

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value


def run(fn: Flaky, retry: RetryPolicy) -> str:
    return call_with_retry(fn, policy=retry, provider="Prom", query="up{job='x'}")


# -- backoff -------------------------------------------------------------------------


def test_backoff_is_exponential_and_capped() -> None:
    retry = RetryPolicy(backoff_initial=0.5, backoff_max=3.0, jitter=0)
    assert [retry.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_backoff_adds_jitter_within_bounds() -> None:
    seen: list[tuple[float, float]] = []

    def rng(low: float, high: float) -> float:
        seen.append((low, high))
        return high

    retry = RetryPolicy(backoff_initial=1.0, jitter=0.25, rng=rng)
    assert retry.backoff(2) == 2.25
    assert seen == [(0.0, 0.25)]
    for n in range(1, 5):
        assert 0.5 * 2 ** (n - 1) <= RetryPolicy(jitter=0.5).backoff(n) <= 0.5 * 2 ** (n - 1) + 0.5


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="total_seconds"):
        RetryPolicy(total_seconds=0)


# -- call_with_retry -------------------------------------------------------------------


def test_success_needs_no_retry() -> None:
    clock = Clock()
    fn = Flaky()
    assert run(fn, policy(clock)) == "answer"
    assert (fn.calls, clock.waits) == (1, [])


def test_transient_errors_are_retried_with_backoff() -> None:
    clock = Clock()
    fn = Flaky(TransientError("HTTP 503", status=503), TransientError("timed out"))
    assert run(fn, policy(clock)) == "answer"
    assert fn.calls == 3
    assert clock.waits == [0.5, 1.0]


def test_final_errors_are_not_retried() -> None:
    clock = Clock()
    fn = Flaky(MetricsError("HTTP 400 bad_data"))
    with pytest.raises(MetricsError, match="bad_data"):
        run(fn, policy(clock))
    assert fn.calls == 1


def test_no_data_passes_through_unretried() -> None:
    fn = Flaky(NoDataError("empty"))
    with pytest.raises(NoDataError):
        run(fn, policy(Clock()))
    assert fn.calls == 1


def test_exhausted_attempts_raise_a_metrics_error_with_status_and_query() -> None:
    clock = Clock()
    fn = Flaky(*[TransientError("Service Unavailable", status=503) for _ in range(10)])
    with pytest.raises(MetricsError) as info:
        run(fn, policy(clock, attempts=3))
    error = info.value
    assert not isinstance(error, TransientError | NoDataError)
    assert "after 3 attempt(s)" in str(error)
    assert "HTTP 503" in str(error)
    assert "`up{job='x'}`" in str(error)
    assert error.hint is not None and "never read as a healthy canary" in error.hint
    assert fn.calls == 3
    assert len(clock.waits) == 2


def test_retry_after_is_honoured_and_capped() -> None:
    clock = Clock()
    fn = Flaky(
        TransientError("slow down", status=429, retry_after=4.0),
        TransientError("slow down", status=429, retry_after=25.0),
    )
    assert run(fn, policy(clock, retry_after_cap=10.0)) == "answer"
    assert clock.waits == [4.0, 10.0]


def test_rate_limit_exhaustion_says_so() -> None:
    fn = Flaky(*[TransientError("Too many requests", status=429, retry_after=1) for _ in range(5)])
    with pytest.raises(MetricsError) as info:
        run(fn, policy(Clock(), attempts=2))
    assert info.value.hint is not None and "rate limiting" in info.value.hint


def test_total_time_bounds_the_retries() -> None:
    clock = Clock()
    fn = Flaky(*[TransientError("HTTP 502", status=502) for _ in range(20)])
    with pytest.raises(MetricsError):
        run(fn, policy(clock, attempts=20, total_seconds=4.0, backoff_initial=1.0))
    # Waits 1 and 2 fit in 4 s; the next one (4) would end past the deadline, so it stops.
    assert clock.waits == [1.0, 2.0]
    assert fn.calls == 3


def test_a_retry_after_past_the_deadline_gives_up_at_once() -> None:
    clock = Clock()
    fn = Flaky(TransientError("slow down", status=429, retry_after=60))
    with pytest.raises(MetricsError, match="HTTP 429"):
        run(fn, policy(clock, total_seconds=5, retry_after_cap=120))
    assert (fn.calls, clock.waits) == (1, [])


def test_a_shared_deadline_spans_several_calls() -> None:
    clock = Clock()
    retry = policy(clock, total_seconds=3.0, backoff_initial=1.0)
    deadline = retry.deadline()
    clock.now += 2.5  # an earlier query of the same measurement took most of the budget
    fn = Flaky(TransientError("HTTP 503", status=503))
    with pytest.raises(MetricsError):
        call_with_retry(fn, policy=retry, provider="P", query="q", deadline=deadline)
    assert fn.calls == 1
    assert retry.remaining(deadline) == pytest.approx(0.5)


# -- Retry-After and statuses ---------------------------------------------------------


def test_retry_after_in_seconds() -> None:
    assert retry_after_seconds({"Retry-After": "7"}) == 7.0
    assert retry_after_seconds({"retry-after": " 2.5 "}) == 2.5
    assert retry_after_seconds({"Retry-After": "-3"}) == 0.0


def test_retry_after_as_an_http_date() -> None:
    now = 1_768_885_200.0
    value = formatdate(now + 12, usegmt=True)
    assert retry_after_seconds({"Retry-After": value}, now=lambda: now) == pytest.approx(12.0)
    past = formatdate(now - 60, usegmt=True)
    assert retry_after_seconds({"Retry-After": past}, now=lambda: now) == 0.0


def test_datadog_rate_limit_reset_is_the_fallback() -> None:
    assert retry_after_seconds({"X-RateLimit-Reset": "9"}) == 9.0
    assert retry_after_seconds({"Retry-After": "3", "X-RateLimit-Reset": "9"}) == 3.0
    assert retry_after_seconds({"Retry-After": "soon", "x-ratelimit-reset": "4"}) == 4.0


def test_no_usable_header_is_none() -> None:
    assert retry_after_seconds(None) is None
    assert retry_after_seconds({}) is None
    assert retry_after_seconds({"Retry-After": "whenever"}) is None
    assert retry_after_seconds({"X-RateLimit-Reset": "later"}) is None


def test_header_lookup_ignores_case() -> None:
    assert header({"Content-Type": "a"}, "content-type") == "a"
    assert header({}, "x") is None


def check(status: int, **kw: object) -> None:
    check_status(
        status,
        provider="Datadog",
        query="sum:m{*}",
        detail="detail",
        auth_hint="check DD_API_KEY",
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("status", [200, 204])
def test_success_statuses_pass(status: int) -> None:
    check(status)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses(status: int) -> None:
    with pytest.raises(TransientError) as info:
        check(status)
    assert info.value.status == status


def test_rate_limit_carries_its_wait() -> None:
    with pytest.raises(TransientError) as info:
        check(429, headers={"X-RateLimit-Reset": "5"})
    assert info.value.retry_after == 5.0


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_final_and_hint_at_the_key(status: int) -> None:
    with pytest.raises(MetricsError) as info:
        check(status)
    assert not isinstance(info.value, TransientError)
    assert f"HTTP {status}" in str(info.value)
    assert "`sum:m{*}`" in str(info.value)
    assert info.value.hint == "check DD_API_KEY"


@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_client_errors_are_final(status: int) -> None:
    with pytest.raises(MetricsError, match="rejected the query") as info:
        check(status)
    assert not isinstance(info.value, TransientError | NoDataError)


# -- values ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf])
def test_nan_inf_and_none_are_no_data(value: float | None) -> None:
    with pytest.raises(NoDataError, match="`q`"):
        finite(value, provider="P", what="p99", query="q")


def test_zero_is_a_value() -> None:
    assert finite(0.0, provider="P", what="errors", query="q") == 0.0


def test_parse_float() -> None:
    assert parse_float("12.5", provider="P", what="x", query="q") == 12.5
    assert math.isnan(parse_float("NaN", provider="P", what="x", query="q"))
    assert parse_float("+Inf", provider="P", what="x", query="q") == math.inf
    with pytest.raises(MetricsError) as info:
        parse_float("twelve", provider="P", what="x", query="q")
    assert not isinstance(info.value, NoDataError)


# -- templates ------------------------------------------------------------------------

DEFAULTS = {"requests": 'm{ {{- selector -}} ,code="5xx"}[{{ interval }}]', "p99": None}


def test_templates_render_strictly_without_escaping() -> None:
    templates = QueryTemplates("P", DEFAULTS, None, ["selector", "interval", "track"])
    text = templates.render("requests", selector='service="a"', interval="60s")
    assert text == 'm{service="a",code="5xx"}[60s]'
    assert not templates.enabled("p99")


def test_overrides_replace_defaults_and_none_switches_off() -> None:
    templates = QueryTemplates(
        "P", DEFAULTS, {"requests": None, "p99": "q{{ interval }}"}, ["interval", "selector"]
    )
    assert not templates.enabled("requests")
    assert templates.render("p99", interval="5m") == "q5m"


def test_unknown_query_name_lists_the_valid_ones() -> None:
    with pytest.raises(ReleaseActionsError, match=r"Unknown P query `p95`.*`requests`, `p99`"):
        QueryTemplates("P", DEFAULTS, {"p95": "x"}, ["interval"])


def test_a_typo_names_the_variable_and_the_query() -> None:
    with pytest.raises(ReleaseActionsError) as info:
        QueryTemplates("P", DEFAULTS, {"p99": "x{{ intervall }}"}, ["interval", "selector"])
    message = str(info.value)
    assert "`intervall`" in message
    assert "`p99`" in message
    assert "`interval`, `selector`" in message


def test_a_syntax_error_names_the_query() -> None:
    with pytest.raises(ReleaseActionsError, match=r"`p99` is not a valid template"):
        QueryTemplates("P", DEFAULTS, {"p99": "x{{ interval "}, ["interval", "selector"])


def test_a_missing_value_at_render_time_is_a_metrics_error() -> None:
    templates = QueryTemplates("P", {"requests": "{{ track }}"}, None, ["track"])
    with pytest.raises(MetricsError, match=r"'track' is undefined") as info:
        templates.render("requests")
    assert info.value.hint is not None and "selector" in info.value.hint
