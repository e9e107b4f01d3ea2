"""make_provider: known kinds, strict settings, lazy imports."""

from __future__ import annotations

import subprocess
import sys
import types
from typing import Any

import pytest

from release_actions.errors import ReleaseActionsError
from release_actions.metrics.base import MetricsProvider, Track, TrafficSample
from release_actions.metrics.datadog import DatadogProvider
from release_actions.metrics.factory import PROVIDERS, make_provider
from release_actions.metrics.prometheus import PrometheusProvider


def test_unknown_kind_lists_the_valid_ones() -> None:
    with pytest.raises(ReleaseActionsError) as info:
        make_provider("prometeus", url="http://x")
    assert str(info.value) == (
        "Unknown metrics provider `prometeus`: did you mean 'prometheus'? "
        "Use one of `datadog`, `prometheus`, `simulated`."
    )


def test_empty_kind_is_unknown_too() -> None:
    with pytest.raises(ReleaseActionsError, match="Unknown metrics provider"):
        make_provider("")


def test_prometheus() -> None:
    provider = make_provider("Prometheus", url="http://prom:9090/", service="api", timeout=3)
    assert isinstance(provider, PrometheusProvider)
    assert provider.base_url == "http://prom:9090"
    assert (provider.service, provider.timeout) == ("api", 3)


def test_prometheus_bearer_token_and_headers_go_on_the_session() -> None:
    provider = make_provider(
        "prometheus",
        url="http://prom",
        service="api",
        bearer_token="t0ken",
        headers={"X-Scope-OrgID": "team-a"},
    )
    assert isinstance(provider, PrometheusProvider)
    assert provider.session.headers["Authorization"] == "Bearer t0ken"
    assert provider.session.headers["X-Scope-OrgID"] == "team-a"


def test_prometheus_needs_a_url() -> None:
    with pytest.raises(ReleaseActionsError, match="needs `url`"):
        make_provider("prometheus", service="api")


def test_kebab_case_settings_are_accepted() -> None:
    provider = make_provider("prometheus", url="http://p", service="api", **{"track-label": "lane"})
    assert isinstance(provider, PrometheusProvider)
    assert provider.track_label == "lane"


def test_unknown_setting_lists_the_valid_ones() -> None:
    with pytest.raises(ReleaseActionsError) as info:
        make_provider("prometheus", url="http://p", service="api", servise="x")
    message = str(info.value)
    assert "Unknown setting `servise` for the `prometheus` metrics provider" in message
    assert "`service`" in message and "`namespace`" in message
    assert "`url`" in message and "`bearer_token`" in message


def test_missing_required_setting_is_named() -> None:
    with pytest.raises(ReleaseActionsError, match=r"`datadog` metrics provider needs `service`"):
        make_provider("datadog", api_key="k", app_key="a")


def test_datadog_with_the_application_key_alias() -> None:
    provider = make_provider(
        "datadog", api_key="k", application_key="a", site="datadoghq.eu", service="api"
    )
    assert isinstance(provider, DatadogProvider)
    configuration: Any = provider._configuration
    assert configuration.api_key == {"apiKeyAuth": "k", "appKeyAuth": "a"}
    assert configuration.server_variables["site"] == "datadoghq.eu"


def test_datadog_without_keys_names_them() -> None:
    with pytest.raises(ReleaseActionsError, match=r"needs `DD_APP_KEY`"):
        make_provider("datadog", api_key="k", service="api")


class FakeSimulated(MetricsProvider):
    """Stands in for the simulator, written elsewhere, to show the factory finds it by name."""

    name = "simulated"

    def __init__(self, *, seed: int = 0, **scenario: Any) -> None:
        self.seed = seed
        self.scenario = scenario

    def query(
        self, track: Track | None, start: float, end: float, *, slow_ms: float | None = None
    ) -> TrafficSample:
        return TrafficSample(track, start, end, 100, 0, 10.0)

    def is_online(self) -> bool:
        return True


def test_simulated_is_imported_lazily_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("release_actions.metrics.simulated")
    module.SimulatedProvider = FakeSimulated  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "release_actions.metrics.simulated", module)
    provider = make_provider("simulated", seed=7, error_rate=0.02)
    assert isinstance(provider, FakeSimulated)
    assert (provider.seed, provider.scenario) == (7, {"error_rate": 0.02})


def test_something_that_is_no_provider_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("release_actions.metrics.simulated")
    module.SimulatedProvider = type("SimulatedProvider", (), {})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "release_actions.metrics.simulated", module)
    with pytest.raises(ReleaseActionsError, match="does not implement MetricsProvider"):
        make_provider("simulated")


def test_every_kind_names_a_module_of_this_package() -> None:
    assert sorted(PROVIDERS) == ["datadog", "prometheus", "simulated"]
    assert all(m.startswith("release_actions.metrics.") for m, _ in PROVIDERS.values())


def test_importing_the_adapters_does_not_import_the_sdk() -> None:
    code = (
        "import sys\n"
        "import release_actions.metrics.factory, release_actions.metrics.datadog\n"
        "assert 'datadog_api_client' not in sys.modules, 'datadog SDK imported'\n"
        "assert 'requests' not in sys.modules, 'requests imported by the factory'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
