"""PrometheusProvider against a real Prometheus server holding backfilled, exactly known traffic."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from release_actions.canary.judge import make_judge
from release_actions.canary.model import Decision
from release_actions.canary.rollout import CanaryEngine
from release_actions.core.policy import default_policy
from release_actions.core.settings import resolve
from release_actions.errors import MetricsError, NoDataError, ReleaseActionsError
from release_actions.metrics.base import MetricsProvider, Track
from release_actions.metrics.prometheus import PrometheusProvider
from release_actions.metrics.retry import RetryPolicy
from release_actions.simulation.clock import VirtualClock
from release_actions.targets.simulated import SimulatedTarget
from tests.integration.prometheus_server import (
    Family,
    PrometheusServer,
    Series,
    backfill,
    free_port,
    openmetrics,
    running_prometheus,
)

pytestmark = pytest.mark.integration

# 2026-01-20 14:00 JST; the data runs 20 minutes at 10-second steps.
T0 = 1768885200
STEP = 10
STEPS = 120
# The window the tests ask about: 300 s = 30 steps, well inside the data.
START, END = T0 + 600, T0 + 900
WINDOW_STEPS = (END - START) // STEP

LE = ("0.05", "0.1", "0.25", "0.5", "1.0", "2.5", "5.0", "+Inf")


def _buckets(*cumulative: float) -> dict[str, float]:
    return dict(zip(LE, cumulative, strict=True))


def _labels(service: str, track: str, **extra: str) -> dict[str, str]:
    return {"namespace": "triptrip", "service": service, "track": track, **extra}


# Per step: stable serves 100 requests (96 ok, 3 not found, 1 unavailable), the canary
# 20 (17 ok, 1 not found, 2 server errors). 404s must not count as errors.
REQUESTS = Family(
    "http_requests",
    "counter",
    [
        Series(_labels("triptrip-api", "stable", code="200"), 96),
        Series(_labels("triptrip-api", "stable", code="404"), 3),
        Series(_labels("triptrip-api", "stable", code="503"), 1),
        Series(_labels("triptrip-api", "canary", code="200"), 17),
        Series(_labels("triptrip-api", "canary", code="404"), 1),
        Series(_labels("triptrip-api", "canary", code="500"), 2),
        # A service that never failed: it has no 5xx series at all.
        Series(_labels("search-api", "stable", code="200"), 50),
        # A service whose series exist but whose traffic has stopped.
        Series(_labels("idle-api", "stable", code="200"), 0),
        # A service that labels its status `status`, not `code`: failing 1 in 4.
        Series(_labels("status-api", "stable", status="200"), 30),
        Series(_labels("status-api", "stable", status="500"), 10),
    ],
)
LATENCY = Family(
    "http_request_duration_seconds",
    "histogram",
    [
        # p99: rank 99 of 100 falls in (0.5, 1.0] holding 2 → 0.5 + 0.5 * 1/2 = 0.75 s.
        Series(_labels("triptrip-api", "stable"), _buckets(40, 70, 90, 98, 100, 100, 100, 100), 12),
        # p99: rank 19.8 of 20 falls in (2.5, 5.0] holding 1 → 2.5 + 2.5 * 0.8 = 4.5 s.
        Series(_labels("triptrip-api", "canary"), _buckets(4, 10, 14, 16, 18, 19, 20, 20), 9),
        # p99: rank 49.5 of 50 falls in (0.05, 0.1] holding 5 → 0.05 + 0.05 * 4.5/5 = 0.095 s.
        Series(_labels("search-api", "stable"), _buckets(45, 50, 50, 50, 50, 50, 50, 50), 2),
        Series(_labels("idle-api", "stable"), _buckets(0, 0, 0, 0, 0, 0, 0, 0), 0),
    ],
)

FAST = RetryPolicy(
    attempts=3, total_seconds=3.0, backoff_initial=0.01, backoff_max=0.05, jitter=0.01
)


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    workdir = tmp_path_factory.mktemp("prometheus")
    data_dir = workdir / "data"
    backfill(openmetrics([REQUESTS, LATENCY], t0=T0, steps=STEPS, step=STEP), data_dir)
    with running_prometheus(workdir, data_dir=data_dir) as server:
        yield server


def provider(server: PrometheusServer, **kw: Any) -> PrometheusProvider:
    kw.setdefault("service", "triptrip-api")
    kw.setdefault("retry", FAST)
    return PrometheusProvider(requests.Session(), server.url, **kw)


def test_is_a_metrics_provider(prometheus: PrometheusServer) -> None:
    assert isinstance(provider(prometheus), MetricsProvider)


def test_stable_counts_are_exact(prometheus: PrometheusServer) -> None:
    sample = provider(prometheus).query(Track.STABLE, START, END, slow_ms=500)
    assert sample.track is Track.STABLE
    assert (sample.start, sample.end) == (START, END)
    assert sample.requests == 100 * WINDOW_STEPS
    assert sample.errors == 1 * WINDOW_STEPS
    assert sample.p99_ms == pytest.approx(750.0)
    assert sample.slow == 2 * WINDOW_STEPS
    assert sample.error_rate == pytest.approx(0.01)


def test_canary_counts_are_exact(prometheus: PrometheusServer) -> None:
    sample = provider(prometheus).query(Track.CANARY, START, END, slow_ms=500)
    assert sample.requests == 20 * WINDOW_STEPS
    assert sample.errors == 2 * WINDOW_STEPS
    assert sample.p99_ms == pytest.approx(4500.0)
    assert sample.slow == 4 * WINDOW_STEPS


def test_resolved_queries_are_kept_as_evidence(prometheus: PrometheusServer) -> None:
    sample = provider(prometheus, namespace="triptrip").query(Track.CANARY, START, END, slow_ms=500)
    assert sample.queries["requests"] == (
        'sum(increase(http_requests_total{service="triptrip-api",namespace="triptrip",'
        'track="canary"}[300s]))'
    )
    assert 'code=~"5.."' in sample.queries["errors"]
    assert 'le="0.5"' in sample.queries["slow"]
    assert set(sample.queries) == {"requests", "errors", "p99", "buckets", "slow"}


def test_whole_deployment_drops_the_track_matcher(prometheus: PrometheusServer) -> None:
    sample = provider(prometheus).query(None, START, END, slow_ms=500)
    assert sample.track is None
    assert "track=" not in sample.queries["requests"]
    assert sample.requests == 120 * WINDOW_STEPS
    assert sample.errors == 3 * WINDOW_STEPS
    # Both tracks' buckets together: rank 118.8 of 120 in (1.0, 2.5] holding 1 → 2.2 s.
    assert sample.p99_ms == pytest.approx(2200.0)
    assert sample.slow == 6 * WINDOW_STEPS


def test_no_5xx_series_with_traffic_is_zero_errors(prometheus: PrometheusServer) -> None:
    sample = provider(prometheus, service="search-api").query(Track.STABLE, START, END)
    assert sample.requests == 50 * WINDOW_STEPS
    assert sample.errors == 0
    assert sample.p99_ms == pytest.approx(95.0)
    assert sample.slow is None


def test_a_wrong_status_label_is_no_data_not_zero_errors(prometheus: PrometheusServer) -> None:
    """`code=~"5.."` on a service that labels `status` matches nothing: that must not read
    as "0 of 12,000 requests failed" (the service fails 1 in 4), as Flagger and Argo treat
    no values as an error."""
    with pytest.raises(NoDataError) as info:
        provider(prometheus, service="status-api").query(Track.STABLE, START, END)
    assert "neither" in info.value.message and "code" in info.value.message


def test_slow_threshold_between_buckets_uses_the_next_boundary(
    prometheus: PrometheusServer,
) -> None:
    # 300 ms is not a boundary: the next one up is 0.5 s.
    assert provider(prometheus).query(Track.STABLE, START, END, slow_ms=300).slow == 60
    assert provider(prometheus).query(Track.STABLE, START, END, slow_ms=1000).slow == 0
    configured = provider(prometheus, slow_buckets=["0.25", "0.5", "1.0", "+Inf"])
    sample = configured.query(Track.CANARY, START, END, slow_ms=400)
    assert sample.slow == 4 * WINDOW_STEPS
    assert "buckets" not in sample.queries


def test_slow_threshold_above_every_bucket_is_an_error(prometheus: PrometheusServer) -> None:
    with pytest.raises(MetricsError, match=r"No latency bucket boundary is at or above 10000 ms"):
        provider(prometheus).query(Track.STABLE, START, END, slow_ms=10_000)


def test_unknown_service_is_no_data(prometheus: PrometheusServer) -> None:
    with pytest.raises(NoDataError, match=r'service="no-such-api"') as info:
        provider(prometheus, service="no-such-api").query(Track.CANARY, START, END)
    assert "not receiving traffic" in str(info.value)


def test_wrong_namespace_is_no_data(prometheus: PrometheusServer) -> None:
    with pytest.raises(NoDataError):
        provider(prometheus, namespace="elsewhere").query(Track.CANARY, START, END)


def test_window_without_data_is_no_data(prometheus: PrometheusServer) -> None:
    # Ten minutes after the data ends, the lookback has nothing.
    late = T0 + STEPS * STEP + 3600
    with pytest.raises(NoDataError):
        provider(prometheus).query(Track.CANARY, late - 300, late)


def test_stopped_traffic_has_no_p99_and_is_no_data(prometheus: PrometheusServer) -> None:
    # The counters exist but stand still: requests are 0 and histogram_quantile is NaN.
    with pytest.raises(NoDataError, match=r"NaN|nan"):
        provider(prometheus, service="idle-api").query(Track.STABLE, START, END)


def test_stopped_traffic_without_latency_is_zero_requests(prometheus: PrometheusServer) -> None:
    sample = provider(prometheus, service="idle-api", queries={"p99": None}).query(
        Track.STABLE, START, END
    )
    assert (sample.requests, sample.errors, sample.p99_ms) == (0, 0, None)


class CountingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        self.calls += 1
        return super().request(*args, **kwargs)


def test_promql_syntax_error_is_a_metrics_error_and_not_retried(
    prometheus: PrometheusServer,
) -> None:
    session = CountingSession()
    broken = "sum(increase(http_requests_total{ {{- selector -}} }[{{ interval }}])"
    metrics = PrometheusProvider(
        session, prometheus.url, service="triptrip-api", queries={"requests": broken}, retry=FAST
    )
    with pytest.raises(MetricsError, match=r"HTTP 400: bad_data") as info:
        metrics.query(Track.CANARY, START, END)
    assert not isinstance(info.value, NoDataError)
    assert 'track="canary"}[300s])`' in str(info.value)
    assert session.calls == 1


def test_series_that_are_not_aggregated_are_an_error(prometheus: PrometheusServer) -> None:
    ungrouped = "increase(http_requests_total{ {{- selector -}} }[{{ interval }}])"
    with pytest.raises(MetricsError, match=r"returned 3 series"):
        provider(prometheus, queries={"requests": ungrouped}).query(Track.STABLE, START, END)


def test_range_vector_is_an_error(prometheus: PrometheusServer) -> None:
    with pytest.raises(MetricsError, match=r"returned a matrix"):
        provider(prometheus, queries={"requests": "http_requests_total[1m]"}).query(
            Track.STABLE, START, END
        )


def test_template_typo_names_the_variable(prometheus: PrometheusServer) -> None:
    typo = 'sum(increase(http_requests_total{ {{- selectr -}} ,code=~"5.."}[{{ interval }}]))'
    with pytest.raises(ReleaseActionsError, match=r"undefined variable `selectr`") as info:
        provider(prometheus, queries={"errors": typo})
    assert "`errors`" in str(info.value)


def test_track_in_a_template_fails_for_the_whole_deployment(prometheus: PrometheusServer) -> None:
    custom = 'sum(increase(http_requests_total{track="{{ track }}"}[{{ interval }}]))'
    metrics = provider(prometheus, queries={"requests": custom})
    assert metrics.query(Track.CANARY, START, END).requests == 20 * WINDOW_STEPS
    with pytest.raises(MetricsError, match=r"'track' is undefined"):
        metrics.query(None, START, END)


def test_is_online(prometheus: PrometheusServer) -> None:
    assert provider(prometheus).is_online() is True
    closed = PrometheusProvider(None, f"http://127.0.0.1:{free_port()}", service="x", timeout=1)
    assert closed.is_online() is False


class StubSession(requests.Session):
    """Answers each path with a fixed status, as a query frontend without `/-/ready` does."""

    def __init__(self, statuses: dict[str, int]) -> None:
        super().__init__()
        self.statuses = statuses
        self.paths: list[str] = []

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kw: Any
    ) -> requests.Response:
        path = "/" + str(url).split("/", 3)[3]
        self.paths.append(path)
        response = requests.Response()
        response.status_code = self.statuses.get(path, 404)
        return response


def test_is_online_falls_back_to_buildinfo() -> None:
    frontend = StubSession({"/api/v1/status/buildinfo": 200})
    assert PrometheusProvider(frontend, "http://thanos:9090", service="x").is_online() is True
    assert frontend.paths == ["/-/ready", "/api/v1/status/buildinfo"]
    starting = StubSession({"/-/ready": 503, "/api/v1/status/buildinfo": 200})
    assert PrometheusProvider(starting, "http://prom:9090", service="x").is_online() is False
    assert PrometheusProvider(StubSession({}), "http://p", service="x").is_online() is False


def test_unreachable_prometheus_is_an_error_after_retries() -> None:
    session = CountingSession()
    metrics = PrometheusProvider(
        session, f"http://127.0.0.1:{free_port()}", service="triptrip-api", retry=FAST, timeout=1
    )
    started = time.monotonic()
    with pytest.raises(MetricsError, match=r"did not answer after 3 attempt") as info:
        metrics.query(Track.CANARY, START, END)
    assert not isinstance(info.value, NoDataError)
    assert session.calls == 3
    assert time.monotonic() - started < 3


def test_live_scrape_of_a_prometheus_client_exporter(tmp_path: Path) -> None:
    """One end-to-end run: real instrumentation, real scrapes, the provider's default queries."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

    registry = CollectorRegistry()
    requests_total = Counter(
        "http_requests", "Requests", ["service", "track", "code"], registry=registry
    )
    latency = Histogram(
        "http_request_duration_seconds",
        "Latency",
        ["service", "track"],
        buckets=(0.1, 0.5, 1.0),
        registry=registry,
    )
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with running_prometheus(tmp_path, scrape_targets=[f"127.0.0.1:{port}"]) as prom:
            metrics = provider(prom, service="live-api", queries={"p99": None})
            deadline = time.monotonic() + 15
            sample = None
            while time.monotonic() < deadline:
                # Ten requests a tick, one of them a 500 and one slow.
                requests_total.labels("live-api", "canary", "200").inc(9)
                requests_total.labels("live-api", "canary", "500").inc(1)
                for _ in range(9):
                    latency.labels("live-api", "canary").observe(0.05)
                latency.labels("live-api", "canary").observe(0.8)
                now = time.time()
                try:
                    sample = metrics.query(Track.CANARY, now - 30, now, slow_ms=500)
                except NoDataError:
                    time.sleep(0.5)
                    continue
                if sample.requests > 0:
                    break
                time.sleep(0.5)
            assert sample is not None and sample.requests > 0, prom.log()
            assert sample.errors > 0
            assert sample.error_rate == pytest.approx(0.1, rel=0.5)
            assert sample.slow is not None and math.isfinite(sample.slow)
            assert sample.slow / sample.requests == pytest.approx(0.1, rel=0.5)
            assert 'le="0.5"' in sample.queries["slow"]
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_shortest_window_is_two_scrapes_of_the_server(prometheus: PrometheusServer) -> None:
    # The session server scrapes every second (global.scrape_interval: 1s).
    assert provider(prometheus).shortest_window_seconds() == 2.0
    # A setting wins over the server and needs no request.
    closed = PrometheusProvider(
        None, f"http://127.0.0.1:{free_port()}", service="x", scrape_interval_seconds="15"
    )
    assert closed.shortest_window_seconds() == 30.0


def test_shortest_window_of_a_fifteen_second_scrape(tmp_path: Path) -> None:
    with running_prometheus(tmp_path, scrape_interval="15s") as server:
        metrics = provider(server)
        assert metrics.shortest_window_seconds() == 30.0
        # Asked once: the answer is kept for the run.
        assert metrics.shortest_window_seconds() == 30.0


def test_a_frontend_without_a_configuration_leaves_the_window_to_the_policy() -> None:
    frontend = StubSession({"/api/v1/query": 200})
    thanos = PrometheusProvider(frontend, "http://thanos:9090", service="x")
    assert thanos.shortest_window_seconds() is None
    assert thanos.shortest_window_seconds() is None
    assert frontend.paths == ["/api/v1/status/config"]


@pytest.mark.parametrize("bad", ["0", "-5", "soon", "inf"])
def test_a_scrape_interval_setting_must_be_positive_seconds(bad: str) -> None:
    with pytest.raises(ReleaseActionsError, match="scrape_interval_seconds"):
        PrometheusProvider(None, "http://p:9090", service="x", scrape_interval_seconds=bad)


def test_the_policy_s_prometheus_settings_reach_the_provider(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    """`metrics.prometheus` in the policy file builds the provider; flags still win."""
    from release_actions.app.world import policy_provider_settings
    from release_actions.core.policy import load_policy
    from release_actions.metrics.factory import make_provider

    policy_file = tmp_path / "release-policy.yml"
    policy_file.write_text(
        "metrics:\n"
        "  service: triptrip-api\n"
        "  timeout_seconds: 4\n"
        "  prometheus:\n"
        f"    url: {prometheus.url}\n"
        "    scrape_interval_seconds: 20\n"
        "    queries:\n"
        "      p99: null\n"
    )
    settings = policy_provider_settings(load_policy(policy_file), "prometheus")
    metrics = make_provider("prometheus", **settings, retry=FAST)
    assert isinstance(metrics, PrometheusProvider)
    assert (metrics.base_url, metrics.service, metrics.timeout) == (
        prometheus.url,
        "triptrip-api",
        4,
    )
    assert metrics.shortest_window_seconds() == 40.0
    sample = metrics.query(Track.STABLE, START, END, slow_ms=500)
    assert sample.p99_ms is None and "p99" not in sample.queries
    assert sample.requests == 100 * WINDOW_STEPS


def _rollout(server: PrometheusServer) -> tuple[Any, SimulatedTarget, list[str]]:
    policy = default_policy()
    clock = VirtualClock(T0 + 60)
    target = SimulatedTarget(clock, stable_version="v1")
    events: list[str] = []
    engine = CanaryEngine(
        target,
        provider(server),
        make_judge(policy.canary.analysis),
        resolve(policy),
        clock,
        on_event=lambda e: events.append(e.message),
    )
    return engine.run("v2"), target, events


def test_a_canary_rollout_judged_on_a_real_prometheus(prometheus: PrometheusServer) -> None:
    """The engine, the sequential judge and the provider together, on the backfilled data.

    The canary fails 10 % of its requests (2 of 20 a step) against stable's 1 %, and 20 %
    of them are slower than 500 ms against 2 %: the rollout is rolled back at the first
    weight as soon as the canary has its 100 requests, with the server's own 1 s scrape
    leaving the judge its 10 s cadence.
    """
    out, target, events = _rollout(prometheus)
    assert out.decision is Decision.ROLLED_BACK
    assert not any("measuring every" in m for m in events)  # 2 s of scrapes allow 10 s
    (step,) = out.steps
    assert step.weight == 5
    evidence = step.evidence["judge"]["evidence"]
    assert evidence["canary_requests"] == 100 and evidence["canary_errors"] == 10
    assert evidence["stable_requests"] == 500 and evidence["stable_errors"] == 5
    canary_errors = evidence["queries"]["canary"]["errors"]
    assert 'track="canary"' in canary_errors and "[10s]" in canary_errors
    assert out.detected_at_s == 50  # five 10 s looks of 20 canary requests
    assert target.status().canary_version is None and target.rollbacks == 1


def test_a_fifteen_second_scrape_slows_the_judge_to_thirty_second_windows(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    backfill(openmetrics([REQUESTS, LATENCY], t0=T0, steps=STEPS, step=STEP), data_dir)
    with running_prometheus(tmp_path, data_dir=data_dir, scrape_interval="15s") as server:
        out, _, events = _rollout(server)
    assert out.decision is Decision.ROLLED_BACK
    assert any("measuring every 30 s, not every 10 s" in m for m in events)
    evidence = out.steps[0].evidence["judge"]["evidence"]
    assert "[30s]" in evidence["queries"]["canary"]["errors"]
    # Two 30 s looks hold the 100 canary requests the judge waits for (120).
    assert evidence["canary_requests"] == 120 and out.detected_at_s == 60
