"""`argo render` emits what Argo Rollouts accepts: its CRD schemas and its validation rules.

The CRDs in tests/fixtures/argo/ are Argo Rollouts v1.9.1's. The rules checked by hand are
the controller's, cited by file and line of argo-rollouts at tag v1.9.1.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from ruamel.yaml import YAML

from tests.conftest import RunCli

FIXTURES = Path(__file__).parent.parent / "fixtures" / "argo"
CRDS = {"Rollout": "rollout-crd.yaml", "AnalysisTemplate": "analysis-template-crd.yaml"}

PROMETHEUS_POLICY = """\
canary:
  steps:
    - {weight: 10, pause_seconds: 90}
    - {weight: 100, analysis: false}
  analysis:
    judge: threshold
    interval_seconds: 30
    failure_limit: 2
    min_success_rate: 0.995
    max_p99_ms: 300
deploy:
  kubernetes:
    istio:
      virtual_service: shop-vs
      destination_rule: shop-dr
      stable_subset: old
      canary_subset: new
"""

# (policy file text or None for the defaults, extra arguments)
CASES = {
    "datadog-threshold": (None, ["--provider", "datadog"]),
    "prometheus-threshold": (PROMETHEUS_POLICY, ["--provider", "prometheus"]),
    "datadog-sequential": (None, ["--provider", "datadog", "--judge", "sequential"]),
    "prometheus-sequential": (
        PROMETHEUS_POLICY,
        ["--provider", "prometheus", "--judge", "sequential", "--analysis-image", "reg.local/ra:1"],
    ),
    "no-traffic-routing": (None, ["--provider", "prometheus", "--virtual-service", ""]),
    "host-level": (
        None,
        [
            "--provider",
            "datadog",
            "--canary-service",
            "api-canary",
            "--stable-service",
            "api-stable",
        ],
    ),
}


def _strict(schema: Any) -> Any:
    """The schema with unknown fields refused, as the API server's strict field validation does.

    A CRD schema leaves ``additionalProperties`` open and the server prunes unknown fields,
    silently with ``kubectl apply --validate=false`` and as an error with the default strict
    field validation; either way a misplaced field is lost, so the test refuses it.
    """
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if "properties" in out and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


def _schema(kind: str) -> dict[str, Any]:
    crd = YAML(typ="safe").load((FIXTURES / CRDS[kind]).read_text(encoding="utf-8"))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema: dict[str, Any] = _strict(version["schema"]["openAPIV3Schema"])
    return schema


def _render(run_cli: RunCli, tmp_path: Path, case: str) -> list[dict[str, Any]]:
    policy_text, args = CASES[case]
    policy = tmp_path / "policy.yml"
    policy.write_text(policy_text or "{}\n", encoding="utf-8")
    result = run_cli("argo", "render", "--policy", str(policy), *args, actions=False)
    assert result.code == 0, result.stderr
    return [d for d in YAML(typ="safe").load_all(io.StringIO(result.stdout)) if d]


def _by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


@pytest.fixture(params=sorted(CASES))
def rendered(
    request: pytest.FixtureRequest, run_cli: RunCli, tmp_path: Path
) -> list[dict[str, Any]]:
    return _render(run_cli, tmp_path, request.param)


def _errors(kind: str, doc: dict[str, Any]) -> Iterator[str]:
    for error in Draft7Validator(_schema(kind)).iter_errors(doc):
        yield f"{'.'.join(str(p) for p in error.absolute_path)}: {error.message}"


def test_every_argo_document_validates_against_its_crd(rendered: list[dict[str, Any]]) -> None:
    argo = [d for d in rendered if d["apiVersion"].startswith("argoproj.io/")]
    assert {d["kind"] for d in argo} == {"Rollout", "AnalysisTemplate"}
    for doc in argo:
        assert list(_errors(doc["kind"], doc)) == [], doc["kind"]


def test_the_history_limits_are_under_spec_analysis(rendered: list[dict[str, Any]]) -> None:
    # Rollout spec: spec.analysis is AnalysisRunStrategy (the limits); canary.analysis is a
    # background analysis (templates, args) and has no such fields.
    (rollout,) = _by_kind(rendered, "Rollout")
    assert rollout["spec"]["analysis"] == {
        "successfulRunHistoryLimit": 3,
        "unsuccessfulRunHistoryLimit": 3,
    }
    assert "analysis" not in rollout["spec"]["strategy"]["canary"]


def test_the_steps_follow_argo_step_rules(rendered: list[dict[str, Any]]) -> None:
    (rollout,) = _by_kind(rendered, "Rollout")
    for step in rollout["spec"]["strategy"]["canary"]["steps"]:
        # validation.go:314 hasMultipleStepsType (:488): exactly one kind per step.
        assert len(step) == 1, step
        if "setWeight" in step:  # validation.go:325: 0 <= setWeight <= max weight (100).
            assert 0 <= step["setWeight"] <= 100


def test_istio_routing_names_services_or_a_destination_rule(
    rendered: list[dict[str, Any]],
) -> None:
    (rollout,) = _by_kind(rendered, "Rollout")
    canary = rollout["spec"]["strategy"]["canary"]
    istio = (canary.get("trafficRouting") or {}).get("istio")
    if istio is None:
        return
    # validation.go:238-258 requireCanaryStableServices, :284-291: with Istio and no
    # destinationRule, canaryService and stableService are both required; :264: different.
    if "destinationRule" not in istio:
        assert canary.get("canaryService") and canary.get("stableService")
        assert canary["canaryService"] != canary["stableService"]
    else:
        # A subset-level split: the rendered DestinationRule has both subsets.
        rule = istio["destinationRule"]
        (dr,) = [
            d
            for d in _by_kind(rendered, "DestinationRule")
            if d["metadata"]["name"] == rule["name"]
        ]
        subsets = {s["name"] for s in dr["spec"]["subsets"]}
        assert {rule["canarySubsetName"], rule["stableSubsetName"]} <= subsets


def test_every_route_the_rollout_names_is_a_named_http_route_of_the_virtual_service(
    rendered: list[dict[str, Any]],
) -> None:
    (rollout,) = _by_kind(rendered, "Rollout")
    canary = rollout["spec"]["strategy"]["canary"]
    istio = (canary.get("trafficRouting") or {}).get("istio")
    if istio is None:
        assert not _by_kind(rendered, "VirtualService")
        return
    ref = istio["virtualService"]
    (vs,) = [
        d for d in _by_kind(rendered, "VirtualService") if d["metadata"]["name"] == ref["name"]
    ]
    assert vs["metadata"]["namespace"] == rollout["metadata"]["namespace"]
    http = {r.get("name"): r for r in vs["spec"]["http"]}
    assert ref["routes"], "a VirtualService with several routes needs them named"
    for name in ref["routes"]:
        # istio.go:955-981 getHttpRouteIndexesToPatch: "HTTP Route '%s' is not found".
        assert name in http, name
        hosts = {d["destination"]["host"] for d in http[name]["route"]}
        subsets = {d["destination"].get("subset") for d in http[name]["route"]}
        # istio.go:1176-1218: the route has both the stable and the canary destination.
        if "destinationRule" in istio:
            rule = istio["destinationRule"]
            assert {rule["canarySubsetName"], rule["stableSubsetName"]} <= subsets
        else:
            assert {canary["canaryService"], canary["stableService"]} <= hosts


def _metrics(rendered: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    (template,) = [
        d for d in _by_kind(rendered, "AnalysisTemplate") if d["metadata"]["name"] == name
    ]
    metrics: list[dict[str, Any]] = template["spec"]["metrics"]
    return metrics


def test_every_step_analysis_resolves_and_ends(rendered: list[dict[str, Any]]) -> None:
    (rollout,) = _by_kind(rendered, "Rollout")
    templates = {d["metadata"]["name"]: d for d in _by_kind(rendered, "AnalysisTemplate")}
    for step in rollout["spec"]["strategy"]["canary"]["steps"]:
        if "analysis" not in step:
            continue
        given = {a["name"] for a in step["analysis"].get("args", [])}
        for ref in step["analysis"]["templates"]:
            template = templates[ref["templateName"]]
            # validation_references.go:131 NewAnalysisRunFromTemplates: every argument
            # without a value is given by the step, and every {{args.x}} is declared.
            declared = {a["name"] for a in template["spec"]["args"]}
            assert {a["name"] for a in template["spec"]["args"] if "value" not in a} <= given
            used = set(re.findall(r"\{\{\s*args\.([\w-]+)\s*\}\}", str(template["spec"])))
            assert used <= declared
            names = [m["name"] for m in template["spec"]["metrics"]]
            assert len(names) == len(set(names))  # factory.go:137 duplicate name
            for metric in _metrics(rendered, ref["templateName"]):
                count = metric.get("count", 0)
                failure_limit = metric.get("failureLimit", 0)
                # validation_references.go:177-181 and analysis_types.go:159 EffectiveCount:
                # a step's metric with an interval and no count "runs indefinitely".
                assert count > 0 or "interval" not in metric, metric["name"]
                # factory.go:193: count >= failureLimit + consecutiveSuccessLimit;
                # factory.go:206: an interval when count > 1.
                if count:
                    assert count >= failure_limit
                if count > 1:
                    assert metric.get("interval")
                # Ours, not Argo's: more looks than the failure limit, or it can never fail.
                assert max(count, 1) > failure_limit
                assert len(metric["provider"]) == 1  # factory.go:258-262: one provider


def test_the_sequential_judge_is_a_job_that_runs_canary_analyze(
    run_cli: RunCli, tmp_path: Path
) -> None:
    docs = _render(run_cli, tmp_path, "prometheus-sequential")
    (rollout,) = _by_kind(docs, "Rollout")
    (template,) = _by_kind(docs, "AnalysisTemplate")
    (metric,) = template["spec"]["metrics"]
    assert "interval" not in metric and metric.get("failureLimit", 0) == 0
    job = metric["provider"]["job"]["spec"]
    assert job["backoffLimit"] == 0  # a failed analysis is not retried into a pass
    (container,) = job["template"]["spec"]["containers"]
    assert container["image"] == "reg.local/ra:1"
    command = container["command"] + container["args"]
    assert command[:3] == ["release-actions", "canary", "analyze"]
    joined = " ".join(command)
    assert "--provider prometheus" in joined and "--judge sequential" in joined
    assert "--provider-setting service={{args.service-name}}" in joined
    assert "--provider-setting url=http://prometheus.monitoring.svc:9090" in joined
    # The job reads the same policy: rendered into a ConfigMap it mounts.
    (config,) = _by_kind(docs, "ConfigMap")
    policy_arg = command[command.index("--policy") + 1]
    mount = container["volumeMounts"][0]["mountPath"]
    assert policy_arg.startswith(mount)
    policy = YAML(typ="safe").load(next(iter(config["data"].values())))
    assert policy["canary"]["analysis"]["false_rollback_rate"] == 0.01
    # The project's queries tell the tracks apart by label: Argo puts it on the pods.
    canary = rollout["spec"]["strategy"]["canary"]
    assert canary["canaryMetadata"] == {"labels": {"track": "canary"}}
    assert canary["stableMetadata"] == {"labels": {"track": "stable"}}


def test_the_default_image_is_the_projects_at_this_version(run_cli: RunCli, tmp_path: Path) -> None:
    from release_actions import __version__

    docs = _render(run_cli, tmp_path, "datadog-sequential")
    (template,) = _by_kind(docs, "AnalysisTemplate")
    (container,) = template["spec"]["metrics"][0]["provider"]["job"]["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["image"] == f"ghcr.io/triptrip/release-actions:{__version__}"
    # DD_API_KEY and DD_APP_KEY come from a Secret, never from the rendered YAML.
    assert container["envFrom"] == [
        {"secretRef": {"name": "release-actions-metrics", "optional": True}}
    ]


def test_the_policy_istio_settings_shape_the_virtual_service(
    run_cli: RunCli, tmp_path: Path
) -> None:
    docs = _render(run_cli, tmp_path, "prometheus-threshold")
    (rollout,) = _by_kind(docs, "Rollout")
    istio = rollout["spec"]["strategy"]["canary"]["trafficRouting"]["istio"]
    assert istio["virtualService"] == {"name": "shop-vs", "routes": ["primary"]}
    assert istio["destinationRule"] == {
        "name": "shop-dr",
        "canarySubsetName": "new",
        "stableSubsetName": "old",
    }
    (vs,) = _by_kind(docs, "VirtualService")
    # Source §4.2: the header route to the canary comes first, then the weighted route.
    assert [r.get("name") for r in vs["spec"]["http"]] == ["canary-header", "primary"]
    assert vs["spec"]["http"][0]["match"] == [{"headers": {"x-canary": {"exact": "true"}}}]


# -- blue-green ------------------------------------------------------------------------------

BLUE_GREEN_POLICY = """\
monitor:
  duration_seconds: 420
deploy:
  strategy: blue-green
"""

# (policy file text or None for the defaults, extra arguments)
BLUE_GREEN_CASES = {
    "policy-datadog-threshold": (BLUE_GREEN_POLICY, ["--provider", "datadog"]),
    "option-prometheus-sequential": (
        PROMETHEUS_POLICY,
        ["--provider", "prometheus", "--judge", "sequential", "--strategy", "blue-green"],
    ),
    "named-services": (
        BLUE_GREEN_POLICY + "  blue_green:\n    hold_seconds: 900\n",
        [
            "--provider",
            "prometheus",
            "--active-service",
            "shop",
            "--preview-service",
            "shop-next",
            "--port",
            "9000",
        ],
    ),
}


def _render_with(
    run_cli: RunCli, tmp_path: Path, policy_text: str | None, args: list[str]
) -> list[dict[str, Any]]:
    policy = tmp_path / "policy.yml"
    policy.write_text(policy_text or "{}\n", encoding="utf-8")
    result = run_cli("argo", "render", "--policy", str(policy), *args, actions=False)
    assert result.code == 0, result.stderr
    return [d for d in YAML(typ="safe").load_all(io.StringIO(result.stdout)) if d]


@pytest.fixture(params=sorted(BLUE_GREEN_CASES))
def blue_green(
    request: pytest.FixtureRequest, run_cli: RunCli, tmp_path: Path
) -> list[dict[str, Any]]:
    policy_text, args = BLUE_GREEN_CASES[request.param]
    return _render_with(run_cli, tmp_path, policy_text, args)


def test_a_blue_green_rollout_validates_against_the_crds(
    blue_green: list[dict[str, Any]],
) -> None:
    argo = [d for d in blue_green if d["apiVersion"].startswith("argoproj.io/")]
    assert {d["kind"] for d in argo} == {"Rollout", "AnalysisTemplate"}
    for doc in argo:
        assert list(_errors(doc["kind"], doc)) == [], doc["kind"]
    (rollout,) = _by_kind(blue_green, "Rollout")
    # validation.go:203-208: exactly one of canary and blueGreen.
    assert list(rollout["spec"]["strategy"]) == ["blueGreen"]
    # Blue-green routes by Services' selectors: no Istio objects to apply.
    assert not _by_kind(blue_green, "VirtualService") and not _by_kind(
        blue_green, "DestinationRule"
    )


def test_a_blue_green_rollout_waits_for_release_actions_and_keeps_the_old_version_for_the_hold(
    blue_green: list[dict[str, Any]],
) -> None:
    (rollout,) = _by_kind(blue_green, "Rollout")
    bg = rollout["spec"]["strategy"]["blueGreen"]
    # bluegreen.go needsBlueGreenControllerPause: false means Argo pauses before the switch
    # until it is promoted (`switch()`), whatever the preview's readiness.
    assert bg["autoPromotionEnabled"] is False
    assert "autoPromotionSeconds" not in bg
    assert bg["scaleDownDelaySeconds"] in (300, 420, 900)
    # validation.go:220 DuplicatedServicesBlueGreenMessage: two different Services.
    assert bg["activeService"] != bg["previewService"]
    services = {d["metadata"]["name"]: d for d in _by_kind(blue_green, "Service")}
    assert set(services) == {bg["activeService"], bg["previewService"]}
    for svc in services.values():
        assert svc["metadata"]["namespace"] == rollout["metadata"]["namespace"]
        # Argo adds rollouts-pod-template-hash (service.go switchServiceSelector); the rest
        # of the selector must match the Rollout's pods.
        assert svc["spec"]["selector"] == rollout["spec"]["selector"]["matchLabels"]


def test_the_blue_green_analyses_are_the_canarys_template_before_and_after_the_switch(
    blue_green: list[dict[str, Any]],
) -> None:
    (rollout,) = _by_kind(blue_green, "Rollout")
    bg = rollout["spec"]["strategy"]["blueGreen"]
    templates = {d["metadata"]["name"]: d for d in _by_kind(blue_green, "AnalysisTemplate")}
    for key in ("prePromotionAnalysis", "postPromotionAnalysis"):
        given = {a["name"] for a in bg[key]["args"]}
        for ref in bg[key]["templates"]:
            template = templates[ref["templateName"]]
            assert {a["name"] for a in template["spec"]["args"] if "value" not in a} <= given
            for metric in template["spec"]["metrics"]:
                # validation_references.go: a pre/post-promotion metric with an interval
                # and no count never ends, and the Rollout would wait on it for ever.
                assert metric.get("count", 0) > 0 or "interval" not in metric, metric["name"]
    assert bg["prePromotionAnalysis"] == bg["postPromotionAnalysis"]
    # The project's queries tell the new version's pods by the track label, as for a canary.
    assert bg["previewMetadata"] == {"labels": {"track": "canary"}}
    assert bg["activeMetadata"] == {"labels": {"track": "stable"}}


def test_the_hold_is_the_blue_green_hold_else_the_monitor_duration(
    run_cli: RunCli, tmp_path: Path
) -> None:
    def hold(policy_text: str, *args: str) -> int:
        docs = _render_with(run_cli, tmp_path, policy_text, ["--provider", "datadog", *args])
        (rollout,) = _by_kind(docs, "Rollout")
        return int(rollout["spec"]["strategy"]["blueGreen"]["scaleDownDelaySeconds"])

    assert hold(BLUE_GREEN_POLICY) == 420
    assert hold(BLUE_GREEN_POLICY + "  blue_green:\n    hold_seconds: 900\n") == 900
    assert hold("{}\n", "--strategy", "blue-green") == 300  # the default monitor period


def test_the_strategy_option_overrides_the_policy(run_cli: RunCli, tmp_path: Path) -> None:
    docs = _render_with(
        run_cli, tmp_path, BLUE_GREEN_POLICY, ["--provider", "datadog", "--strategy", "canary"]
    )
    (rollout,) = _by_kind(docs, "Rollout")
    assert list(rollout["spec"]["strategy"]) == ["canary"]
    assert list(_errors("Rollout", rollout)) == []
    docs = _render_with(run_cli, tmp_path, None, ["--provider", "datadog", "--strategy", "rolling"])
    (rollout,) = _by_kind(docs, "Rollout")
    assert list(rollout["spec"]["strategy"]) == ["canary"]


@pytest.mark.parametrize(
    ("policy_text", "args", "message"),
    [
        ("deploy:\n  strategy: shadow\n", [], "setMirrorRoute"),
        (BLUE_GREEN_POLICY, ["--active-service", "a", "--preview-service", "a"], "needs two"),
        (BLUE_GREEN_POLICY, ["--canary-service", "c", "--stable-service", "s"], "two Services"),
        (None, ["--preview-service", "p"], "blue-green Rollout"),
    ],
)
def test_a_render_that_argo_would_refuse_is_an_error(
    run_cli: RunCli, tmp_path: Path, policy_text: str | None, args: list[str], message: str
) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(policy_text or "{}\n", encoding="utf-8")
    result = run_cli(
        "argo", "render", "--policy", str(policy), "--provider", "datadog", *args, actions=False
    )
    assert result.code != 0
    assert message in result.stderr
    assert "kind: Rollout" not in result.stdout
