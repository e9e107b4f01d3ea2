"""Blue-green and shadow on KubernetesTarget, through the official client, checked with the real kubectl."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from release_actions.errors import TargetError
from release_actions.targets.k8s_util import SELECTOR, RetryPolicy
from release_actions.targets.kubernetes import KubernetesTarget
from tests.fakes.kubernetes import KubernetesFake, document_objects
from tests.fakes.kubernetes_cluster import BY_KEY
from tests.integration.deploys import service_object
from tests.support.kubectl import Kubectl

pytestmark = pytest.mark.integration

NS, NAME, CANARY = "triptrip", "triptrip-api", "triptrip-api-canary"
REPO = "asia-northeast1-docker.pkg.dev/triptrip-production/triptrip-api"
GOOD, NEW = f"{REPO}:v1.2.0", f"{REPO}:v1.3.0"
FAST = RetryPolicy(attempts=5, backoff=0.01, max_backoff=0.05, request_timeout=2.0)
VS_PATH = f"/apis/networking.istio.io/v1beta1/namespaces/{NS}/virtualservices/{NAME}"
SVC_PATH = f"/api/v1/namespaces/{NS}/services/{NAME}"


@pytest.fixture
def fake() -> Iterator[KubernetesFake]:
    with KubernetesFake() as fake:
        fake.add_namespace(NS)
        fake.cluster.deadline_scale = 0.001
        yield fake


@pytest.fixture
def kubectl(kubectl_binary: str, fake: KubernetesFake, tmp_path: Path) -> Kubectl:
    return Kubectl(fake, tmp_path / "home")


def seed(
    fake: KubernetesFake, *, istio: bool = True, selector: dict[str, str] | None = None
) -> None:
    for obj in document_objects(NS, replicas=4, istio=istio):
        fake.apply(obj)
    fake.apply(service_object(selector))


def make_target(
    fake: KubernetesFake, strategy: str | None = None, *, istio: bool = True, **options: Any
) -> KubernetesTarget:
    target = KubernetesTarget(
        fake.api_client(),
        namespace=NS,
        deployment=NAME,
        istio_virtual_service=NAME if istio else None,
        poll_interval=0.01,
        rollout_timeout=5,
        retry=FAST,
        **options,
    )
    if strategy is not None:
        target.use_strategy(strategy)
    return target


# -------------------------------------------------------------------- what kubectl shows


def get(k: Kubectl, kind: str, name: str = NAME) -> Any:
    return k.json("get", kind, name, "-n", NS)


def gone(k: Kubectl, kind: str, name: str) -> bool:
    result = k("get", kind, name, "-n", NS, ok=False)
    return result.returncode != 0 and "NotFound" in result.stderr


def weighted(vs: dict[str, Any]) -> dict[str, Any]:
    (route,) = [r for r in vs["spec"]["http"] if "match" not in r]
    return dict(route)


def weights(vs: dict[str, Any]) -> dict[str, int]:
    return {d["destination"]["subset"]: d["weight"] for d in weighted(vs)["route"]}


def has_header_route(vs: dict[str, Any]) -> bool:
    return any(
        r.get("match") == [{"headers": {"x-canary": {"exact": "true"}}}]
        and [d["destination"]["subset"] for d in r["route"]] == ["canary"]
        for r in vs["spec"]["http"]
    )


def image_of(d: dict[str, Any]) -> str:
    return str(d["spec"]["template"]["spec"]["containers"][0]["image"])


def writes(fake: KubernetesFake, path: str) -> int:
    return sum(len(fake.requests_to(m, path)) for m in ("PATCH", "PUT"))


def first_write_after(fake: KubernetesFake, start: int) -> str:
    """The first request that changed something, from ``fake.requests[start:]``."""
    return next(
        f"{r.method} {r.path}"
        for r in fake.requests[start:]
        if r.method in ("PATCH", "PUT", "DELETE")
    )


class Killed(BaseException):
    """A process killed mid-operation: no retry loop catches it."""


def kill_after_first_write(target: KubernetesTarget) -> None:
    real = target.kube.call

    def call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        result = real(fn, *args, **kwargs)
        if fn.__name__.startswith(("patch_", "replace_", "create_", "delete_")):
            raise Killed(fn.__name__)
        return result

    target.kube.call = call  # type: ignore[method-assign]


# --------------------------------------------------------------------- blue-green, Istio


def test_blue_green_istio_switches_in_one_update_and_rolls_back_route_first(
    fake: KubernetesFake, kubectl: Kubectl
) -> None:
    seed(fake)
    target = make_target(fake, "blue-green")
    target.begin("v1.3.0")
    canary = get(kubectl, "deployment", CANARY)
    assert (canary["spec"]["replicas"], canary["status"]["readyReplicas"]) == (4, 4)
    assert canary["metadata"]["annotations"]["release-actions.dev/strategy"] == "blue-green"
    assert get(kubectl, "deployment")["spec"]["replicas"] == 4
    vs = get(kubectl, "virtualservice")
    assert weights(vs) == {"stable": 100, "canary": 0} and has_header_route(vs)
    preview = target.preview()
    assert preview is not None and dict(preview.headers) == {"x-canary": "true"}
    assert "v1.3.0" in preview.detail and f"`{NAME}`" in preview.detail

    before = writes(fake, VS_PATH)
    target.switch()
    assert writes(fake, VS_PATH) == before + 1  # 0/100 in one update
    vs = get(kubectl, "virtualservice")
    assert weights(vs) == {"stable": 0, "canary": 100} and has_header_route(vs)
    assert get(kubectl, "deployment")["spec"]["replicas"] == 4  # the old version stays up
    assert target.status().canary_weight == 100
    version = vs["metadata"]["resourceVersion"]
    target.switch()
    assert writes(fake, VS_PATH) == before + 1
    assert get(kubectl, "virtualservice")["metadata"]["resourceVersion"] == version

    start = len(fake.requests)
    result = target.rollback()
    assert first_write_after(fake, start) == f"PATCH {VS_PATH}"  # traffic back before anything
    assert (result.changed, result.from_version, result.to_version) == (True, "v1.3.0", "v1.2.0")
    assert writes(fake, VS_PATH) == before + 2  # back to 100/0 in one update
    assert weights(get(kubectl, "virtualservice")) == {"stable": 100, "canary": 0}
    assert gone(kubectl, "deployment", CANARY)
    assert image_of(get(kubectl, "deployment")) == GOOD
    again = target.rollback()
    assert (again.changed, again.to_version) == (False, "v1.2.0")
    assert writes(fake, VS_PATH) == before + 2


def test_blue_green_istio_promote_after_the_hold_ends_on_the_new_stable(
    fake: KubernetesFake, kubectl: Kubectl
) -> None:
    seed(fake)
    target = make_target(fake, "blue-green")
    target.begin("v1.3.0")
    target.switch()
    start = len(fake.requests)
    target.promote()
    # The stable Deployment rolls to the new image while the new version serves everyone;
    # traffic comes back to it only afterwards, and it is never scaled down.
    changes = [
        r for r in fake.requests[start:] if r.method in ("PATCH", "PUT") and r.path != SVC_PATH
    ]
    stable_path = f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}"
    assert [r.path for r in changes] == [stable_path, VS_PATH]
    assert all(op.get("value", 4) >= 4 for op in changes[0].body if op["path"] == "/spec/replicas")
    stable = get(kubectl, "deployment")
    assert (image_of(stable), stable["spec"]["replicas"]) == (NEW, 4)
    vs = get(kubectl, "virtualservice")
    assert weights(vs) == {"stable": 100, "canary": 0}
    assert gone(kubectl, "deployment", CANARY)
    assert target.status().canary_weight == 0 and target.status().stable_version == "v1.3.0"
    target.promote()  # twice is harmless
    assert (
        get(kubectl, "virtualservice")["metadata"]["resourceVersion"]
        == (vs["metadata"]["resourceVersion"])
    )


def test_blue_green_failed_preview_rolls_back_without_a_switch(fake: KubernetesFake) -> None:
    seed(fake)
    target = make_target(fake, "blue-green")
    target.begin("v1.3.0")
    before = writes(fake, VS_PATH)
    result = target.rollback()
    assert result.changed and fake.find("deployments", NS, CANARY) is None
    # Only the header route this target may have added could change; here §4.2's own stays.
    assert writes(fake, VS_PATH) == before
    assert target.status().canary_weight == 0


def test_a_canary_in_progress_is_not_resumed_as_blue_green(fake: KubernetesFake) -> None:
    seed(fake)
    make_target(fake, "canary").begin("v1.3.0")
    with pytest.raises(TargetError, match=r"`canary` release of v1\.3\.0 is in progress"):
        make_target(fake, "blue-green").begin("v1.3.0")
    with pytest.raises(TargetError, match="not a shadow"):
        make_target(fake).mirror(10)


# ------------------------------------------------------------------ blue-green, a Service


@pytest.mark.parametrize(
    "selector",
    [{"app": NAME}, {"app": NAME, "track": "stable"}],
    ids=["selector-without-track", "selector-on-stable"],
)
def test_blue_green_service_selector_switches_and_rolls_back(
    fake: KubernetesFake, kubectl: Kubectl, selector: dict[str, str]
) -> None:
    seed(fake, istio=False, selector=selector)
    target = make_target(fake, "blue-green", istio=False)
    target.begin("v1.3.0")
    service = get(kubectl, "service")
    assert service["spec"]["selector"] == {"app": NAME, "track": "stable"}
    assert get(kubectl, "deployment", CANARY)["status"]["readyReplicas"] == 4
    assert get(kubectl, "deployment")["spec"]["replicas"] == 4
    assert target.status().canary_weight == 0
    assert target.preview() is None  # no header route without Istio

    target.switch()
    service = get(kubectl, "service")
    assert service["spec"]["selector"] == {"app": NAME, "track": "canary"}
    assert target.status().canary_weight == 100
    assert get(kubectl, "deployment")["spec"]["replicas"] == 4
    version = service["metadata"]["resourceVersion"]
    target.switch()
    assert get(kubectl, "service")["metadata"]["resourceVersion"] == version

    start = len(fake.requests)
    result = target.rollback()
    assert first_write_after(fake, start) == f"PATCH {SVC_PATH}"
    assert (result.changed, result.to_version) == (True, "v1.2.0")
    service = get(kubectl, "service")
    # Back on stable; a selector that had no track gets its own back once the canary is gone.
    assert service["spec"]["selector"] == selector
    assert SELECTOR not in (service["metadata"].get("annotations") or {})
    assert gone(kubectl, "deployment", CANARY)
    assert kubectl.json("get", "pods", "-n", NS, "-l", "track=canary")["items"] == []
    patches = len(fake.requests_to("PATCH", SVC_PATH))
    again = target.rollback()
    assert not again.changed and len(fake.requests_to("PATCH", SVC_PATH)) == patches


def test_blue_green_rollback_moves_the_selector_to_stable_before_the_canary_goes(
    fake: KubernetesFake,
) -> None:
    seed(fake, istio=False)
    target = make_target(fake, "blue-green", istio=False)
    target.begin("v1.3.0")
    target.switch()
    start = len(fake.requests)
    target.rollback()
    changes = [r for r in fake.requests[start:] if r.method in ("PATCH", "DELETE")]
    assert [(r.method, r.path) for r in changes] == [
        ("PATCH", SVC_PATH),  # selector on the stable track
        ("DELETE", f"/apis/apps/v1/namespaces/{NS}/deployments/{CANARY}"),
        ("PATCH", SVC_PATH),  # the Service's own selector back
    ]
    to_stable = {op["path"]: op.get("value") for op in changes[0].body}
    assert to_stable["/spec/selector"] == {"app": NAME, "track": "stable"}


def test_a_crash_after_the_switch_is_rolled_back_by_another_run(
    fake: KubernetesFake, kubectl: Kubectl
) -> None:
    seed(fake, istio=False)
    first = make_target(fake, "blue-green", istio=False)
    first.begin("v1.3.0")
    first.switch()
    # The process dies; the next one was not told the strategy, and the cluster says it.
    second = make_target(fake, istio=False)
    assert second.status().canary_weight == 100
    dying = make_target(fake, istio=False)
    kill_after_first_write(dying)
    with pytest.raises(Killed):
        dying.rollback()
    assert get(kubectl, "service")["spec"]["selector"] == {"app": NAME, "track": "stable"}
    result = second.rollback()
    assert (result.changed, result.to_version) == (True, "v1.2.0")
    assert get(kubectl, "service")["spec"]["selector"] == {"app": NAME}
    assert gone(kubectl, "deployment", CANARY)
    assert not make_target(fake, "blue-green", istio=False).rollback().changed


def test_blue_green_promote_through_the_service(fake: KubernetesFake, kubectl: Kubectl) -> None:
    seed(fake, istio=False)
    target = make_target(fake, "blue-green", istio=False)
    target.begin("v1.3.0")
    target.switch()
    target.promote()
    stable = get(kubectl, "deployment")
    assert (image_of(stable), stable["spec"]["replicas"]) == (NEW, 4)
    assert get(kubectl, "service")["spec"]["selector"] == {"app": NAME}
    assert gone(kubectl, "deployment", CANARY)
    status = target.status()
    assert (status.stable_version, status.canary_version, status.canary_weight) == (
        "v1.3.0",
        None,
        0,
    )
    target.promote()


def test_a_preview_service_of_the_users_reaches_only_the_new_version(
    fake: KubernetesFake,
) -> None:
    seed(fake, istio=False)
    preview = f"{NAME}-preview"
    fake.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": preview, "namespace": NS},
            "spec": {
                "selector": {"app": NAME, "track": "canary"},
                "ports": [{"port": 8080, "targetPort": 3000}],
            },
        }
    )
    target = make_target(fake, "blue-green", istio=False, preview_service=preview)
    assert target.preview() is None  # nothing to preview before begin
    target.begin("v1.3.0")
    found = target.preview()
    assert found is not None and found.url == f"http://{preview}.{NS}.svc.cluster.local:8080"
    assert not found.headers and "v1.3.0" in found.detail
    wrong = fake.get("services", NS, preview)
    wrong["spec"]["selector"] = {"app": NAME}  # would reach the stable pods as well
    fake.apply(wrong)
    with pytest.raises(TargetError, match="does not select only the new version"):
        target.preview()


def test_blue_green_without_istio_refuses_what_it_cannot_switch(fake: KubernetesFake) -> None:
    seed(fake, istio=False)
    fake.cluster.delete(BY_KEY["/services"], NS, NAME)
    with pytest.raises(TargetError, match=f"Service `{NAME}` does not exist"):
        make_target(fake, "blue-green", istio=False).begin("v1.3.0")
    assert fake.find("deployments", NS, CANARY) is None

    unlabelled = next(iter(document_objects(NS, name="web", replicas=2, istio=False)))
    for labels in (
        unlabelled["metadata"]["labels"],
        unlabelled["spec"]["selector"]["matchLabels"],
        unlabelled["spec"]["template"]["metadata"]["labels"],
    ):
        labels.pop("track")
    fake.apply(unlabelled)
    fake.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "namespace": NS},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        }
    )
    target = KubernetesTarget(
        fake.api_client(), namespace=NS, deployment="web", retry=FAST, rollout_timeout=5
    )
    # Refused as the strategy is chosen, before pre-flight lets anything start.
    assert "no `track` label" in (target.refusal("blue-green") or "")
    with pytest.raises(TargetError, match="no `track` label") as caught:
        target.use_strategy("blue-green")
    assert "cannot exclude" in str(caught.value)
    target.strategy = "blue-green"  # as a resumed run that was told the strategy earlier
    with pytest.raises(TargetError, match="no `track` label") as caught:
        target.begin("v1.3.0")
    assert fake.find("deployments", NS, "web-canary") is None
    assert fake.get("services", NS, "web")["spec"]["selector"] == {"app": "web"}
    # The engine cleans up after the refusal: a rollback must not need the missing label.
    changed = fake.get("deployments", NS, "web")
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = f"{REPO}:v1.2.1-hotfix"
    fake.apply(changed)
    fake.wait_settled()
    assert target.rollback().to_version == "v1.2.0"


# ---------------------------------------------------------------------------------- shadow


def test_shadow_mirrors_to_the_new_version_and_withdraws(
    fake: KubernetesFake, kubectl: Kubectl
) -> None:
    seed(fake)
    target = make_target(fake, "shadow", shadow_env=("RELEASE_SHADOW", "true"))
    target.begin("v1.3.0")
    vs = get(kubectl, "virtualservice")
    assert weights(vs) == {"stable": 100, "canary": 0}
    assert not any(r.get("name") == "release-actions-canary-header" for r in vs["spec"]["http"])

    target.mirror(100)
    vs = get(kubectl, "virtualservice")
    route = weighted(vs)
    assert route["mirror"] == {"host": NAME, "subset": "canary"}
    assert route["mirrorPercentage"]["value"] == 100
    assert weights(vs) == {"stable": 100, "canary": 0}  # users stay on stable
    assert get(kubectl, "deployment", CANARY)["spec"]["replicas"] == 4
    pods = kubectl.json("get", "pods", "-n", NS, "-l", "track=canary")["items"]
    assert len(pods) == 4
    for pod in pods:
        env = pod["spec"]["containers"][0]["env"]
        assert {"name": "RELEASE_SHADOW", "value": "true"} in env
    status = target.status()
    assert (status.mirror_percent, status.canary_weight, status.canary_version) == (
        100,
        0,
        "v1.3.0",
    )
    with pytest.raises(TargetError, match="cannot be promoted"):
        target.promote()
    with pytest.raises(TargetError, match="as a shadow"):
        target.switch()

    target.mirror(20)
    assert weighted(get(kubectl, "virtualservice"))["mirrorPercentage"]["value"] == 20
    assert get(kubectl, "deployment", CANARY)["spec"]["replicas"] == 1
    assert target.status().mirror_percent == 20
    before = writes(fake, VS_PATH)
    target.mirror(20)
    assert writes(fake, VS_PATH) == before

    stable_before = fake.get("deployments", NS, NAME)["metadata"]
    result = target.withdraw()
    assert (result.changed, result.from_version, result.to_version) == (True, "v1.3.0", "v1.2.0")
    assert "withdrawn" in result.detail
    vs = get(kubectl, "virtualservice")
    route = weighted(vs)
    assert "mirror" not in route and "mirrorPercentage" not in route
    assert weights(vs) == {"stable": 100, "canary": 0}
    assert gone(kubectl, "deployment", CANARY)
    stable_after = fake.get("deployments", NS, NAME)["metadata"]
    assert stable_after["generation"] == stable_before["generation"]
    again = target.withdraw()
    assert (again.changed, again.to_version) == (False, "v1.2.0")
    assert make_target(fake).withdraw().changed is False  # a run not told the strategy
    assert target.status().mirror_percent == 0


def test_rollback_of_a_shadow_removes_the_mirror_too(fake: KubernetesFake) -> None:
    seed(fake)
    target = make_target(fake, "shadow")
    target.begin("v1.3.0")
    target.mirror(50)
    result = make_target(fake).rollback()
    assert result.changed
    route = weighted(fake.get("virtualservices", NS, NAME, group="networking.istio.io"))
    assert "mirror" not in route and "mirrorPercentage" not in route
    assert fake.find("deployments", NS, CANARY) is None


def test_shadow_keeps_a_mirror_of_the_users_own(fake: KubernetesFake) -> None:
    seed(fake)
    vs = fake.get("virtualservices", NS, NAME, group="networking.istio.io")
    for route in vs["spec"]["http"]:
        if "match" not in route:
            route["mirror"] = {"host": "audit-log"}
    fake.apply(vs)
    target = make_target(fake, "shadow")
    target.begin("v1.3.0")
    with pytest.raises(TargetError, match="already mirrors"):
        target.mirror(10)
    target.withdraw()
    route = weighted(fake.get("virtualservices", NS, NAME, group="networking.istio.io"))
    assert route["mirror"] == {"host": "audit-log"}


def test_shadow_without_istio_is_refused_with_the_reason(fake: KubernetesFake) -> None:
    seed(fake, istio=False)
    target = make_target(fake, istio=False)
    with pytest.raises(TargetError, match="Cannot release as `shadow`") as caught:
        target.use_strategy("shadow")
    assert "Istio VirtualService" in str(caught.value) and "cannot copy" in str(caught.value)
    assert "`deploy.kubernetes.istio`" in str(caught.value)
    with pytest.raises(TargetError, match="Cannot mirror traffic"):
        target.mirror(10)
    assert target.refusal("blue-green") is None and target.refusal("canary") is None


def test_the_fake_refuses_a_mirror_istio_refuses(fake: KubernetesFake, kubectl: Kubectl) -> None:
    seed(fake)
    patch = (
        '[{"op": "add", "path": "/spec/http/1/mirror", "value": {"host": "x"}},'
        ' {"op": "add", "path": "/spec/http/1/mirrorPercentage", "value": {"value": 150}}]'
    )
    result = kubectl(
        "patch", "virtualservice", NAME, "-n", NS, "--type=json", "-p", patch, ok=False
    )
    assert result.returncode != 0
    assert 'admission webhook "validation.istio.io" denied the request' in result.stderr
    assert "percentage 150 is not in range 0..100" in result.stderr
