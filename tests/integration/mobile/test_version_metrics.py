"""Retention and business criteria against a real Prometheus (backfilled per version) and the Datadog fake."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from release_actions.errors import MetricsError, NoDataError
from release_actions.metrics.datadog import DatadogProvider
from release_actions.metrics.prometheus import PrometheusProvider
from release_actions.metrics.retry import RetryPolicy
from release_actions.mobile.metrics import VersionMetrics, VersionRef
from release_actions.mobile.policy import MobilePolicy
from release_actions.mobile.report import MobileReport, summary_markdown
from release_actions.mobile.rollout import HOUR, MemoryStateStore, MobileGate
from release_actions.mobile.simulator import (
    MobileWorld,
    SimulatedReviews,
    SimulatedStore,
    SimulatedVitals,
    load_mobile_scenario,
)
from release_actions.simulation.clock import DEFAULT_EPOCH
from tests.fakes.datadog import (
    API_KEY,
    APP_KEY,
    DatadogFake,
    forbidden,
    no_values,
    ok,
    server_error,
)
from tests.integration.prometheus_server import (
    PrometheusServer,
    backfill,
    free_port,
    running_prometheus,
)
from tests.support.sleeps import Sleeps

pytestmark = pytest.mark.integration

# Hourly points from a day before the simulator's epoch to ten days after it, so every
# stage of a simulated rollout has data behind it.
T0 = int(DEFAULT_EPOCH) - 24 * 3600
STEPS = 11 * 24
STEP = 3600

# Per version: D1 retention (a gauge, in %), revenue in yen and sessions per hour.
# 1051 is the previous version; 1052 keeps 1.5 points fewer users and earns 5 % less
# per session; 1053 is better on both.
VERSIONS = {
    "1051": (40.0, 12000, 1000),
    "1052": (38.5, 11400, 1000),
    "1053": (40.4, 12600, 1000),
}
RETENTION = (
    "avg(avg_over_time(app_d1_retention_percent"
    '{version_code="{{ version_code }}",platform="{{ platform }}"}[{{ interval }}]))'
)
REVENUE_PER_SESSION = (
    'sum(increase(app_revenue_yen_total{version_code="{{ version_code }}"}[{{ interval }}]))'
    ' / sum(increase(app_sessions_total{version_code="{{ version_code }}"}[{{ interval }}]))'
)
FAST = RetryPolicy(
    attempts=3, total_seconds=3.0, backoff_initial=0.01, backoff_max=0.05, jitter=0.0
)


def _exposition() -> str:
    lines = ["# TYPE app_d1_retention_percent gauge"]
    for code, (retention, _, _) in VERSIONS.items():
        labels = f'{{version_code="{code}",platform="android"}}'
        lines += [
            f"app_d1_retention_percent{labels} {retention} {T0 + i * STEP}" for i in range(STEPS)
        ]
    for family, index in (("app_revenue_yen", 1), ("app_sessions", 2)):
        lines.append(f"# TYPE {family} counter")
        for code, figures in VERSIONS.items():
            labels = f'{{version_code="{code}"}}'
            lines += [
                f"{family}_total{labels} {figures[index] * i} {T0 + i * STEP}" for i in range(STEPS)
            ]
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    workdir = tmp_path_factory.mktemp("prometheus-mobile")
    backfill(_exposition(), workdir / "data")
    with running_prometheus(workdir, data_dir=workdir / "data") as server:
        yield server


def prom(server: PrometheusServer | str) -> PrometheusProvider:
    url = server if isinstance(server, str) else server.url
    return PrometheusProvider(requests.Session(), url, service="triptrip-app", retry=FAST)


def mobile_policy(**criteria: Any) -> MobilePolicy:
    return MobilePolicy.model_validate(criteria)


# The 20 % stage of a simulated rollout: its second and third days.
START, END = DEFAULT_EPOCH + 48 * HOUR, DEFAULT_EPOCH + 96 * HOUR


def readings(metrics: VersionMetrics, new: str, fraction: float = 0.5) -> list[Any]:
    return metrics.readings(
        fraction=fraction,
        start=START,
        end=END,
        platform="android",
        new=VersionRef(new, None),
        previous=VersionRef("1051", "1.5.1"),
    )


def test_scalar_reads_one_value_per_version(prometheus: PrometheusServer) -> None:
    provider = prom(prometheus)
    text = 'avg(avg_over_time(app_d1_retention_percent{version_code="1052"}[172800s]))'
    assert provider.scalar(text, START, END, what="retention") == pytest.approx(38.5)
    with pytest.raises(NoDataError, match="no series for retention"):
        provider.scalar(text.replace("1052", "9999"), START, END, what="retention")
    with pytest.raises(MetricsError, match="returned 3 series where one was expected"):
        provider.scalar("avg_over_time(app_d1_retention_percent[1h])", START, END, what="retention")


def test_a_retention_drop_holds_and_a_gain_passes(prometheus: PrometheusServer) -> None:
    policy = mobile_policy(
        retention={"provider": "prometheus", "query": RETENTION, "max_drop": 1.0}
    )
    metrics = VersionMetrics(policy, {"prometheus": prom(prometheus)})
    (worse,) = readings(metrics, "1052")
    assert worse.status == "failed" and worse.holds and not worse.halts
    assert (worse.new, worse.previous) == (pytest.approx(38.5), pytest.approx(40.0))
    assert worse.drop == pytest.approx(1.5)
    assert worse.queries["new"] == (
        "avg(avg_over_time(app_d1_retention_percent"
        '{version_code="1052",platform="android"}[172800s]))'
    )
    (better,) = readings(metrics, "1053")
    assert better.status == "passed" and better.drop == pytest.approx(-0.4)


def test_revenue_per_session_in_percent(prometheus: PrometheusServer) -> None:
    policy = mobile_policy(
        business={
            "name": "revenue per session",
            "provider": "prometheus",
            "query": REVENUE_PER_SESSION,
            "max_drop": 2,
        }
    )
    metrics = VersionMetrics(policy, {"prometheus": prom(prometheus)})
    (r,) = readings(metrics, "1052")
    assert r.name == "revenue per session"
    assert (r.new, r.previous) == (pytest.approx(11.4), pytest.approx(12.0))
    assert r.status == "failed" and r.drop == pytest.approx(5.0)
    assert "drop 5 %; hold past 2 %" in r.detail
    (r,) = readings(metrics, "1053")
    assert r.status == "passed"


def test_a_version_without_series_is_not_measured(prometheus: PrometheusServer) -> None:
    metrics = VersionMetrics(
        mobile_policy(retention={"provider": "prometheus", "query": RETENTION}),
        {"prometheus": prom(prometheus)},
    )
    (r,) = readings(metrics, "2000")
    assert r.status == "not measured" and r.holds
    assert r.detail.startswith("no data for the new version (2000): Prometheus returned no series")


def test_prometheus_down_is_not_measured(tmp_path: Path) -> None:
    metrics = VersionMetrics(
        mobile_policy(retention={"provider": "prometheus", "query": RETENTION, "halt": True}),
        {"prometheus": prom(f"http://127.0.0.1:{free_port()}")},
    )
    (r,) = readings(metrics, "1052")
    assert r.status == "not measured" and not r.halts
    assert "the query failed for the new version" in r.detail
    assert "did not answer after 3 attempt(s)" in r.detail


def test_the_gate_holds_at_20_percent_on_prometheus_figures(prometheus: PrometheusServer) -> None:
    """The simulator's store and vitals (new version 1052, healthy), Prometheus's retention."""
    policy = mobile_policy(retention={"provider": "prometheus", "query": RETENTION})
    _, scenario = load_mobile_scenario("healthy")
    world = MobileWorld(scenario, 5)
    gate = MobileGate(
        SimulatedStore(world),
        SimulatedVitals(world),
        SimulatedReviews(world),
        policy,
        MemoryStateStore(),
        metrics=VersionMetrics(policy, {"prometheus": prom(prometheus)}),
    )
    gate.advance(world.now)
    for _ in range(24 * 7):
        world.step()
        look = gate.advance(world.now)
    state = gate.state
    assert state is not None and state.decision == "running"
    assert [s["fraction"] for s in state.stages] == [0.01, 0.05]
    assert look.action == "held" and look.judgement is not None
    (reading,) = look.judgement.evidence["metrics"]
    assert reading["status"] == "failed"
    assert (reading["new"], reading["previous"]) == (pytest.approx(38.5), pytest.approx(40.0))
    md = summary_markdown(MobileReport(state, "held"), title="Rollout")
    assert "| retention | current (last look) | failed | 38.5 | 40 | 1.5 | 0 |" in md


# -- Datadog -----------------------------------------------------------------------------

DD_RETENTION = "avg:app.d1_retention{version_code:{{ version_code }},platform:{{ platform }}}"


@pytest.fixture
def datadog() -> Iterator[DatadogFake]:
    with DatadogFake() as fake:
        yield fake


def dd(fake: DatadogFake) -> DatadogProvider:
    policy = RetryPolicy(
        attempts=3, total_seconds=10, backoff_initial=0.1, jitter=0.0, sleep=Sleeps()
    )
    return DatadogProvider(
        None,
        api_key=API_KEY,
        app_key=APP_KEY,
        host=fake.url,
        service="triptrip-app",
        retry=policy,
        timeout=2.0,
    )


def dd_query(code: str) -> str:
    return f"avg:app.d1_retention{{version_code:{code},platform:android}}"


@pytest.mark.parametrize(
    ("reduce", "expected"),
    [("avg", 39.0), ("sum", 117.0), ("last", 40.0), ("min", 38.0), ("max", 40.0)],
)
def test_datadog_points_are_folded_by_reduce(
    datadog: DatadogFake, reduce: str, expected: float
) -> None:
    datadog.script(dd_query("1052"), ok([38.0, None, 39.0, 40.0]))
    with dd(datadog) as provider:
        value = provider.scalar(dd_query("1052"), START, END, what="retention", reduce=reduce)
    assert value == pytest.approx(expected)


def test_datadog_retention_drop_holds_with_figures(datadog: DatadogFake) -> None:
    datadog.script(dd_query("1052"), ok([38.0, 38.4, 38.2]))
    datadog.script(dd_query("1051"), ok([40.0, 40.2, 40.1]))
    policy = mobile_policy(retention={"provider": "datadog", "query": DD_RETENTION})
    with dd(datadog) as provider:
        (r,) = readings(VersionMetrics(policy, {"datadog": provider}), "1052")
    assert r.status == "failed"
    assert (r.new, r.previous) == (pytest.approx(38.2), pytest.approx(40.1))
    sent = datadog.requests[0]
    assert sent.params == {"from": str(int(START)), "to": str(int(END)), "query": dd_query("1052")}


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (no_values(), "no data for the previous version (1051): Datadog returned no series"),
        (ok([None, None]), "every point is null"),
        (server_error(), "the query failed for the previous version (1051)"),
        (forbidden(), "Datadog refused the credentials"),
        (ok([40.0], series=2), "returned 2 series where one was expected"),
    ],
)
def test_datadog_faults_are_not_measured(datadog: DatadogFake, reply: Any, why: str) -> None:
    datadog.script(dd_query("1052"), ok([41.0]))
    datadog.script(dd_query("1051"), reply)
    policy = mobile_policy(retention={"provider": "datadog", "query": DD_RETENTION, "halt": True})
    with dd(datadog) as provider:
        (r,) = readings(VersionMetrics(policy, {"datadog": provider}), "1052")
    assert r.status == "not measured" and r.holds and not r.halts
    assert why in r.detail
