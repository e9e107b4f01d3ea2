"""DORA's figures submitted with the real datadog-api-client to the Datadog fake's v2 intake."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from release_actions.errors import IntegrationError
from release_actions.integrations.dora_datadog import metric_name, submit
from tests.fakes.datadog import API_KEY, DatadogFake

pytestmark = pytest.mark.integration


@pytest.fixture
def fake() -> Iterator[DatadogFake]:
    with DatadogFake() as server:
        yield server


def test_each_figure_is_one_gauge_point_with_the_tags(fake: DatadogFake) -> None:
    sent = submit(
        {"deployment_frequency_per_day": 1.2, "lead_time_seconds": 5400.0, "mttr_seconds": None},
        ["repository:octo/app", "environment:production"],
        {"DD_API_KEY": API_KEY},
        host=fake.url,
        now=1_780_000_000,
    )

    assert sent == [
        "release_actions.dora.deployment_frequency_per_day",
        "release_actions.dora.lead_time_seconds",
    ], "a figure with no value is left out, never sent as 0"
    assert fake.series == [
        {
            "metric": "release_actions.dora.deployment_frequency_per_day",
            "type": 3,
            "points": [{"timestamp": 1_780_000_000, "value": 1.2}],
            "tags": ["repository:octo/app", "environment:production"],
        },
        {
            "metric": "release_actions.dora.lead_time_seconds",
            "type": 3,
            "points": [{"timestamp": 1_780_000_000, "value": 5400.0}],
            "tags": ["repository:octo/app", "environment:production"],
        },
    ]
    (request,) = fake.requests
    assert (request.method, request.path, request.headers["dd-api-key"]) == (
        "POST",
        "/api/v2/series",
        API_KEY,
    )


def test_a_wrong_key_is_an_integration_error_naming_it(fake: DatadogFake) -> None:
    with pytest.raises(IntegrationError, match="`DD_API_KEY` is not valid"):
        submit({"x": 1.0}, [], {"DD_API_KEY": "wrong"}, host=fake.url)
    assert fake.series == []


def test_no_key_is_said_before_any_request(fake: DatadogFake) -> None:
    with pytest.raises(IntegrationError, match="`DD_API_KEY` is not set"):
        submit({"x": 1.0}, [], {}, host=fake.url)
    assert fake.requests == []


def test_an_unreachable_intake_is_an_integration_error() -> None:
    with pytest.raises(IntegrationError, match="Cannot reach Datadog"):
        submit({"x": 1.0}, [], {"DD_API_KEY": API_KEY}, host="http://127.0.0.1:9", timeout=2)


def test_metric_names_are_what_datadog_takes() -> None:
    assert metric_name("Change failure rate %") == "release_actions.dora.change_failure_rate"
    assert metric_name("lead_time.p50") == "release_actions.dora.lead_time.p50"
