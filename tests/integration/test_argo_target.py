"""ArgoRolloutsTarget against the fake's Argo Rollouts controller, and the rendered Rollout YAML."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from ruamel.yaml import YAML

from release_actions.core.policy import default_policy, parse_policy
from release_actions.errors import TargetError
from release_actions.metrics.base import Track
from release_actions.targets.argo import ArgoRolloutsTarget, driven_steps, render_argo
from release_actions.targets.base import DeployTarget
from release_actions.targets.k8s_util import KNOWN_GOOD, RetryPolicy
from tests.fakes.kubernetes import KubernetesFake, unavailable

pytestmark = pytest.mark.integration

NS, NAME = "triptrip", "triptrip-api"
REPO = "asia-northeast1-docker.pkg.dev/triptrip-production/triptrip-api"
GOOD, NEW = f"{REPO}:v1.2.0", f"{REPO}:v1.3.0"
ROLLOUT_PATH = f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/rollouts/{NAME}"
# Source §4.4's steps, as a team wrote them (the analysis steps succeed in the fake).
AUTHORED = [
    {"setWeight": 5},
    {"pause": {"duration": "2m"}},
    {"analysis": {"templates": [{"templateName": "success-rate"}]}},
    {"setWeight": 20},
    {"pause": {"duration": "5m"}},
    {"setWeight": 50},
    {"pause": {"duration": "10m"}},
    {"setWeight": 100},
]


def rollout_object(image: str = GOOD) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": NAME}},
            "template": {
                "metadata": {"labels": {"app": NAME}},
                "spec": {"containers": [{"name": "api", "image": image}]},
            },
            "strategy": {
                "canary": {
                    "steps": AUTHORED,
                    "abortScaleDownDelaySeconds": 30,
                    "trafficRouting": {
                        "istio": {"virtualService": {"name": NAME, "routes": ["primary"]}}
                    },
                }
            },
        },
    }


@pytest.fixture
def fake() -> Iterator[KubernetesFake]:
    with KubernetesFake() as fake:
        fake.add_namespace(NS)
        fake.apply(rollout_object())
        fake.wait_settled()
        yield fake


def make_target(fake: KubernetesFake, **options: Any) -> ArgoRolloutsTarget:
    options.setdefault(
        "retry", RetryPolicy(attempts=5, backoff=0.01, max_backoff=0.05, request_timeout=2)
    )
    return ArgoRolloutsTarget(
        fake.api_client(),
        namespace=NS,
        rollout=NAME,
        poll_interval=0.01,
        rollout_timeout=5,
        **options,
    )


def rollout(fake: KubernetesFake) -> dict[str, Any]:
    return fake.get("rollouts", NS, NAME, group="argoproj.io")


def image_of(template: dict[str, Any]) -> str:
    return str(template["spec"]["containers"][0]["image"])


def test_the_fake_controller_deploys_the_first_version_as_stable(fake: KubernetesFake) -> None:
    status = rollout(fake)["status"]
    assert status["phase"] == "Healthy"
    assert status["stableRS"] == status["currentPodHash"]
    assert status["currentStepIndex"] == len(AUTHORED)
    assert len(fake.list("pods", NS, f"rollouts-pod-template-hash={status['stableRS']}")) == 4


def test_begin_weights_and_promote(fake: KubernetesFake) -> None:
    target = make_target(fake)
    assert isinstance(target, DeployTarget)
    target.begin("v1.3.0")
    ro = rollout(fake)
    assert ro["spec"]["strategy"]["canary"]["steps"] == driven_steps(0)
    assert image_of(ro["spec"]["template"]) == NEW
    record = json.loads(ro["metadata"]["annotations"][KNOWN_GOOD])
    assert record["steps"] == AUTHORED and record["version"] == "v1.2.0"
    assert record["pod_template_hash"] == ro["status"]["stableRS"]
    status = target.status()
    assert (
        status.stable_version,
        status.canary_version,
        status.canary_weight,
        status.known_good,
    ) == ("v1.2.0", "v1.3.0", 0, "v1.2.0")
    for weight, canary_pods in ((5, 1), (20, 1), (50, 2)):
        target.set_weight(weight)
        ro = rollout(fake)
        assert ro["status"]["canary"]["weights"]["canary"]["weight"] == weight
        assert ro["status"]["phase"] == "Paused"
        hash_ = ro["status"]["currentPodHash"]
        assert len(fake.list("pods", NS, f"rollouts-pod-template-hash={hash_}")) == canary_pods
        assert target.status().canary_weight == weight
    assert target.health(Track.CANARY).details["pods"] == 2
    assert target.health(Track.STABLE).details["pods"] == 4
    before = len(fake.requests)
    target.promote()
    # As `kubectl argo rollouts promote --full`: a merge patch of the status subresource.
    promote = next(
        r for r in fake.requests[before:] if r.method == "PATCH" and r.path.endswith("/status")
    )
    assert (promote.path, promote.content_type, promote.body) == (
        f"{ROLLOUT_PATH}/status",
        "application/merge-patch+json",
        {"status": {"promoteFull": True}},
    )
    ro = rollout(fake)
    assert (
        ro["status"]["stableRS"] == ro["status"]["currentPodHash"]
        and ro["status"]["phase"] == "Healthy"
    )
    assert ro["spec"]["strategy"]["canary"]["steps"] == AUTHORED  # back as authored, for GitOps
    assert target.status().stable_version == "v1.3.0" and target.status().canary_version is None
    target.promote()  # twice is harmless


def test_abort_alone_leaves_the_new_template_and_rollback_restores_the_stable_one(
    fake: KubernetesFake,
) -> None:
    target = make_target(fake)
    stable_template = rollout(fake)["spec"]["template"]
    target.begin("v1.3.0")
    target.set_weight(20)
    before = len(fake.requests)
    target.abort()
    abort = fake.requests[before]
    assert (abort.path, abort.body) == (f"{ROLLOUT_PATH}/status", {"status": {"abort": True}})
    ro = rollout(fake)
    assert ro["status"]["phase"] == "Degraded" and ro["status"]["abort"] is True
    assert ro["status"]["canary"]["weights"]["canary"]["weight"] == 0
    assert image_of(ro["spec"]["template"]) == NEW  # §6.2 option B's trap: still the new version
    with pytest.raises(TargetError, match="aborted"):
        target.set_weight(50)
    result = target.rollback()
    assert (result.changed, result.from_version, result.to_version) == (True, "v1.3.0", "v1.2.0")
    ro = rollout(fake)
    assert ro["spec"]["template"] == stable_template
    assert ro["spec"]["strategy"]["canary"]["steps"] == AUTHORED
    assert ro["status"]["phase"] == "Healthy" and not ro["status"].get("abort")
    assert (
        ro["status"]["currentPodHash"]
        == ro["status"]["stableRS"]
        == json.loads(ro["metadata"]["annotations"][KNOWN_GOOD])["pod_template_hash"]
    )
    fake.wait_settled()
    rv = rollout(fake)["metadata"]["resourceVersion"]
    again = target.rollback()
    assert (again.changed, again.to_version) == (False, "v1.2.0")
    assert rollout(fake)["metadata"]["resourceVersion"] == rv


def test_rollback_of_an_unaborted_canary_aborts_first(fake: KubernetesFake) -> None:
    target = make_target(fake)
    target.begin("v1.3.0")
    target.set_weight(50)
    fake.inject("PATCH", ROLLOUT_PATH, unavailable())
    before = len(fake.requests)
    result = target.rollback()
    assert result.changed and result.to_version == "v1.2.0"
    patches = [r for r in fake.requests[before:] if r.method == "PATCH"]
    assert patches[0].body == {"status": {"abort": True}}  # traffic back to stable first
    assert image_of(rollout(fake)["spec"]["template"]) == GOOD


def test_rollback_after_promotion_returns_to_the_recorded_version(fake: KubernetesFake) -> None:
    target = make_target(fake)
    target.begin("v1.3.0")
    target.set_weight(50)
    target.promote()
    result = target.rollback()
    assert (result.changed, result.from_version, result.to_version) == (True, "v1.3.0", "v1.2.0")
    ro = rollout(fake)
    assert image_of(ro["spec"]["template"]) == GOOD
    assert (
        ro["status"]["phase"] == "Healthy"
        and ro["status"]["stableRS"] == ro["status"]["currentPodHash"]
    )
    assert not target.rollback().changed  # `kubectl argo rollouts undo` twice would flip back


def test_rollback_without_a_record_goes_to_the_previous_revision(fake: KubernetesFake) -> None:
    ro = rollout(fake)
    ro["spec"]["template"]["spec"]["containers"][0]["image"] = NEW
    ro["spec"]["strategy"]["canary"]["steps"] = []  # an update by hand, straight through
    fake.apply(ro)
    fake.wait_settled()
    assert rollout(fake)["status"]["phase"] == "Healthy"
    target = make_target(fake)
    result = target.rollback()
    assert (result.changed, result.to_version) == (True, "v1.2.0")
    assert image_of(rollout(fake)["spec"]["template"]) == GOOD
    assert not target.rollback().changed


def test_begin_refuses_while_another_version_is_in_progress(fake: KubernetesFake) -> None:
    target = make_target(fake)
    target.begin("v1.3.0")
    target.begin("v1.3.0")  # resumes
    with pytest.raises(TargetError, match="still in progress"):
        target.begin("v1.4.0")
    target.save_state({"version": "v1.3.0", "phase": "running"})
    assert target.status().state == {"version": "v1.3.0", "phase": "running"}


# -------------------------------------------------------------------------------- render


def _load(text: str) -> list[dict[str, Any]]:
    return list(YAML(typ="safe").load_all(io.StringIO(text)))


def test_render_argo_has_the_documents_steps_and_thresholds() -> None:
    rollout_doc, template, vs, dr = _load(
        render_argo(default_policy(), name=NAME, namespace=NS, provider="datadog", service=NAME)
    )
    assert (rollout_doc["kind"], template["kind"]) == ("Rollout", "AnalysisTemplate")
    steps = rollout_doc["spec"]["strategy"]["canary"]["steps"]
    assert [s["setWeight"] for s in steps if "setWeight" in s] == [5, 20, 50, 100]
    assert [s["pause"]["duration"] for s in steps if "pause" in s] == ["2m", "5m", "10m"]
    assert [list(s) for s in steps] == [["setWeight"], ["pause"], ["analysis"]] * 3 + [
        ["setWeight"]
    ]
    assert steps[2]["analysis"] == {
        "templates": [{"templateName": "success-rate"}],
        "args": [{"name": "service-name", "value": NAME}],
    }
    canary = rollout_doc["spec"]["strategy"]["canary"]
    assert canary["trafficRouting"] == {
        "istio": {
            "virtualService": {"name": NAME, "routes": ["primary"]},
            "destinationRule": {
                "name": NAME,
                "canarySubsetName": "canary",
                "stableSubsetName": "stable",
            },
        }
    }
    assert rollout_doc["spec"]["analysis"] == {
        "successfulRunHistoryLimit": 3,
        "unsuccessfulRunHistoryLimit": 3,
    }
    # Source §4.2: the VirtualService and DestinationRule the Rollout names.
    assert (vs["kind"], vs["metadata"]["name"]) == ("VirtualService", NAME)
    assert [r.get("name") for r in vs["spec"]["http"]] == ["canary-header", "primary"]
    assert (dr["kind"], [s["name"] for s in dr["spec"]["subsets"]]) == (
        "DestinationRule",
        ["stable", "canary"],
    )
    assert canary["abortScaleDownDelaySeconds"] == 30
    metrics = {m["name"]: m for m in template["spec"]["metrics"]}
    assert metrics["success-rate"]["successCondition"] == "result[0] >= 0.99"
    assert metrics["latency-p99"]["successCondition"] == "result[0] < 500"
    assert {m["interval"] for m in metrics.values()} == {"1m"}
    assert {m["failureLimit"] for m in metrics.values()} == {3}
    # One analysis window (source §4.3, 5m) of 1m looks: a step's analysis must end.
    assert {m["count"] for m in metrics.values()} == {5}
    assert (
        "triptrip.http.request.count{service:{{args.service-name}},status_class:2xx}"
        in metrics["success-rate"]["provider"]["datadog"]["query"]
    )
    assert template["spec"]["args"] == [{"name": "service-name"}]


def test_render_argo_follows_the_policy_and_speaks_prometheus() -> None:
    policy = parse_policy(
        {
            "canary": {
                "steps": [{"weight": 10, "pause_seconds": 90}, {"weight": 100, "analysis": False}],
                "analysis": {"min_success_rate": 0.995, "max_p99_ms": 300, "interval_seconds": 30},
            }
        },
        "policy.yml",
    )
    rollout_doc, template = _load(
        render_argo(
            policy,
            name="api",
            namespace="shop",
            provider="prometheus",
            service="api",
            virtual_service="",
        )
    )
    assert rollout_doc["spec"]["strategy"]["canary"]["steps"][:2] == [
        {"setWeight": 10},
        {"pause": {"duration": "90s"}},
    ]
    assert "trafficRouting" not in rollout_doc["spec"]["strategy"]["canary"]
    metrics = {m["name"]: m for m in template["spec"]["metrics"]}
    assert metrics["success-rate"]["successCondition"] == "result[0] >= 0.995"
    assert metrics["latency-p99"]["successCondition"] == "result[0] < 300"
    query = metrics["latency-p99"]["provider"]["prometheus"]["query"]
    assert "histogram_quantile(0.99" in query and "[30s]" in query
    with pytest.raises(TargetError, match="Unknown analysis provider"):
        render_argo(policy, name="api", namespace="shop", provider="newrelic", service="api")  # type: ignore[arg-type]
