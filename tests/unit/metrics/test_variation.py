"""A flag's users split by variation: the guard's templates, their checks, and the providers' context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from release_actions.errors import ReleaseActionsError
from release_actions.metrics.base import Track
from release_actions.metrics.factory import guard_template_problems, make_provider
from release_actions.metrics.prometheus import PrometheusProvider
from release_actions.metrics.variation import flag_context, guard_queries
from tests.conftest import RunCli

LABEL = 'flag_variation_new_booking_flow="{{ variation }}"'
PROMETHEUS = {
    "requests": "sum(increase(http_requests_total{ {{- selector -}} ,"
    + LABEL
    + "}[{{ interval }}]))",
    "errors": "sum(increase(http_requests_total{ {{- selector -}} ,"
    + LABEL
    + ',code=~"5.."}[{{ interval }}]))',
}
DATADOG = {
    "requests": "sum:http.count{ {{- scope -}} ,flag:{{ flag }},variation:{{ variation }}}",
    "errors": "sum:http.count{ {{- scope -}} ,variation:{{ variation }},status_class:5xx}",
}


def test_the_variation_of_each_track() -> None:
    assert flag_context("f", Track.CANARY) == {"flag": "f", "variation": "on"}
    assert flag_context("f", Track.STABLE) == {"flag": "f", "variation": "off"}
    # The whole service: no variation, so a template that names it fails loudly.
    assert flag_context("f", None) == {"flag": "f"}


def test_good_templates_pass() -> None:
    assert guard_template_problems({"prometheus": PROMETHEUS, "datadog": DATADOG}) == []
    assert guard_queries({"prometheus": PROMETHEUS}, "prometheus") == PROMETHEUS


@pytest.mark.parametrize(
    ("queries", "key", "words"),
    [
        (
            {"prometheus": {**PROMETHEUS, "errors": "sum(x{code=~'5..'})"}},
            "feature_flags.guard.queries.prometheus.errors",
            "does not use `{{ variation }}`",
        ),
        (
            {"prometheus": {"requests": PROMETHEUS["requests"]}},
            "feature_flags.guard.queries.prometheus.errors",
            "is missing",
        ),
        ({"prometheus": "sum(x)"}, "feature_flags.guard.queries.prometheus", "must be a mapping"),
        ({"graphite": PROMETHEUS}, "feature_flags.guard.queries.graphite", "not a metrics"),
        (
            {"prometheus": {**PROMETHEUS, "requests": "{{ variation }} {{ varaition }}"}},
            "feature_flags.guard.queries.prometheus.requests",
            "undefined variable `varaition`",
        ),
    ],
)
def test_refused_templates_name_the_policy_key(
    queries: dict[str, Any], key: str, words: str
) -> None:
    problems = {".".join(k): m for k, m in guard_template_problems(queries)}
    assert key in problems and words in problems[key], problems


def test_guard_queries_raise_with_the_key_and_an_example() -> None:
    with pytest.raises(ReleaseActionsError) as caught:
        guard_queries({"prometheus": {**PROMETHEUS, "errors": "sum(x)"}}, "prometheus")
    assert "`feature_flags.guard.queries.prometheus.errors` does not use" in caught.value.message
    assert 'flag_variation="{{ variation }}"' in (caught.value.hint or "")
    with pytest.raises(ReleaseActionsError, match="is not set"):
        guard_queries({}, "datadog")


class _Answers:
    """A requests session that answers every instant query with one value, keeping the queries."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    def get(self, url: str, params: dict[str, str] | None = None, **_: Any) -> Any:
        import requests

        self.queries.append((params or {}).get("query", ""))
        response = requests.Response()
        response.status_code = 200
        response._content = (
            b'{"status":"success","data":{"resultType":"vector",'
            b'"result":[{"metric":{},"value":[1,"4"]}]}}'
        )
        return response


def test_prometheus_splits_by_variation_without_the_track_label() -> None:
    session = _Answers()
    provider = make_provider(
        "prometheus",
        url="http://prometheus:9090",
        session=session,
        service="api",
        queries=PROMETHEUS,
        flag="new-booking-flow",
    )
    assert isinstance(provider, PrometheusProvider)
    sample = provider.query(Track.CANARY, 0, 60)
    assert sample.requests == 4 and sample.p99_ms is None and sample.slow is None
    assert sample.queries["requests"] == (
        'sum(increase(http_requests_total{service="api",'
        'flag_variation_new_booking_flow="on"}[60s]))'
    )
    provider.query(Track.STABLE, 0, 60)
    assert all("track=" not in q for q in session.queries)
    assert any('flag_variation_new_booking_flow="off"' in q for q in session.queries)


def test_datadog_scope_has_no_track_tag() -> None:
    from release_actions.metrics.datadog import DatadogProvider

    provider = DatadogProvider(
        api_key="k", app_key="a", service="api", queries=DATADOG, flag="new-booking-flow"
    )
    context = provider._context(Track.STABLE, 0, 60, None)
    assert context["scope"] == "service:api"
    assert provider.templates.render("requests", **context) == (
        "sum:http.count{service:api,flag:new-booking-flow,variation:off}"
    )
    assert not provider.templates.enabled("p99")


def test_policy_validate_checks_the_guard(run_cli: RunCli, tmp_path: Path) -> None:
    policy = tmp_path / "release-policy.yml"
    policy.write_text("feature_flags:\n  guard:\n    queries:\n      prometheus: 'sum(x)'\n")
    r = run_cli("policy", "validate", str(policy))
    assert r.code == 2, r.stdout + r.stderr
    assert "feature_flags.guard.queries.prometheus" in r.stdout + r.stderr
    # The policy's schema refuses it, at its line, before the templates are looked at.
    assert "line=4" in r.stdout and "valid dictionary" in r.stdout


def test_a_policy_file_holds_the_guard_s_templates_per_provider(
    run_cli: RunCli, tmp_path: Path
) -> None:
    """The guard's queries are a mapping per provider in the file, checked by `policy validate`."""
    good = 'sum(increase(http_requests_total{flag="{{ flag }}",variation="{{ variation }}"}[{{ interval }}]))'
    blind = 'sum(increase(http_requests_total{flag="{{ flag }}"}[{{ interval }}]))'
    policy = tmp_path / "policy.yml"
    text = "feature_flags:\n  guard:\n    queries:\n      prometheus:\n        requests: '{r}'\n        errors: '{e}'\n"
    policy.write_text(text.format(r=good, e=good), encoding="utf-8")
    assert run_cli("policy", "validate", str(policy), actions=False).code == 0
    policy.write_text(text.format(r=good, e=blind), encoding="utf-8")
    r = run_cli("policy", "validate", str(policy), actions=False)
    assert r.code == 2
    assert ":6: error: `feature_flags.guard.queries.prometheus.errors`" in r.stderr + r.stdout
    policy.write_text(
        "feature_flags:\n  guard:\n    queries:\n      graphite: {requests: x}\n", encoding="utf-8"
    )
    r = run_cli("policy", "validate", str(policy), actions=False)
    assert r.code == 2 and "feature_flags.guard.queries" in r.stderr + r.stdout
