"""Blue-green on ArgoRolloutsTarget against the fake's blueGreen Rollout controller."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from release_actions.errors import TargetError
from release_actions.metrics.base import Track
from release_actions.targets.argo import PROMOTED, ArgoRolloutsTarget
from release_actions.targets.k8s_util import KNOWN_GOOD
from tests.fakes.kubernetes import KubernetesFake
from tests.integration.test_argo_target import (
    GOOD,
    NAME,
    NEW,
    NS,
    ROLLOUT_PATH,
    image_of,
    make_target,
    rollout_object,
)

pytestmark = pytest.mark.integration

ACTIVE, PREVIEW = NAME, f"{NAME}-preview"
HASH = "rollouts-pod-template-hash"


def blue_green_rollout(
    *, scale_down_delay: int = 30, auto: bool = False, analysis: bool = False
) -> dict[str, Any]:
    ro = rollout_object(GOOD)
    strategy: dict[str, Any] = {
        "activeService": ACTIVE,
        "previewService": PREVIEW,
        "autoPromotionEnabled": auto,
        "scaleDownDelaySeconds": scale_down_delay,
    }
    if analysis:
        ref = {"templates": [{"templateName": "success-rate"}]}
        strategy["prePromotionAnalysis"] = ref
        strategy["postPromotionAnalysis"] = ref
    ro["spec"]["strategy"] = {"blueGreen": strategy}
    return ro


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"selector": {"app": NAME}, "ports": [{"port": 80, "targetPort": 8080}]},
    }


def start(fake: KubernetesFake, ro: dict[str, Any]) -> None:
    fake.add_namespace(NS)
    fake.apply(service(ACTIVE))
    fake.apply(service(PREVIEW))
    fake.apply(ro)
    fake.wait_settled()


@pytest.fixture
def fake() -> Iterator[KubernetesFake]:
    with KubernetesFake() as fake:
        start(fake, blue_green_rollout(analysis=True))
        yield fake


def rollout(fake: KubernetesFake) -> dict[str, Any]:
    return fake.get("rollouts", NS, NAME, group="argoproj.io")


def selector(fake: KubernetesFake, name: str) -> str:
    return str(fake.get("services", NS, name)["spec"]["selector"].get(HASH, ""))


def pods(fake: KubernetesFake, pod_hash: str) -> int:
    return len(fake.list("pods", NS, f"{HASH}={pod_hash}"))


def patches(fake: KubernetesFake, since: int) -> list[Any]:
    return [r for r in fake.requests[since:] if r.method == "PATCH"]


def blue_green(fake: KubernetesFake) -> ArgoRolloutsTarget:
    target = make_target(fake)
    target.use_strategy("blue-green")
    return target


def test_the_fake_controller_deploys_the_first_version_behind_both_services(
    fake: KubernetesFake,
) -> None:
    status = rollout(fake)["status"]
    assert status["phase"] == "Healthy"
    stable = status["stableRS"]
    assert stable == status["currentPodHash"]
    assert status["blueGreen"]["activeSelector"] == status["blueGreen"]["previewSelector"] == stable
    assert selector(fake, ACTIVE) == selector(fake, PREVIEW) == stable
    assert pods(fake, stable) == 4


def test_the_rollouts_own_spec_decides_the_strategy() -> None:
    with KubernetesFake() as fake:
        start(fake, blue_green_rollout())
        target = make_target(fake)
        assert {"canary", "blue-green"} <= target.strategies
        target.use_strategy("blue-green")
        for other in ("canary", "rolling"):
            why = target.refusal(other)
            assert why is not None and "blue-green Rollout" in why and "strategy.canary" in why
        with pytest.raises(TargetError, match="setMirrorRoute"):
            target.use_strategy("shadow")
        assert target.strategy == "blue-green"
    with KubernetesFake() as fake:
        start(fake, rollout_object())
        why = make_target(fake).refusal("blue-green")
        assert why is not None and "canary Rollout" in why and "strategy.blueGreen" in why
        make_target(fake).use_strategy("canary")
    with KubernetesFake() as fake:
        start(fake, blue_green_rollout(auto=True))
        with pytest.raises(TargetError, match="autoPromotionEnabled"):
            make_target(fake).use_strategy("blue-green")


def test_begin_brings_the_preview_up_at_full_size_with_no_user_traffic(
    fake: KubernetesFake,
) -> None:
    old = rollout(fake)["status"]["stableRS"]
    target = blue_green(fake)
    target.begin("v1.3.0")

    ro = rollout(fake)
    new = ro["status"]["currentPodHash"]
    assert new != old and image_of(ro["spec"]["template"]) == NEW
    assert (selector(fake, PREVIEW), selector(fake, ACTIVE)) == (new, old)
    assert (pods(fake, new), pods(fake, old)) == (4, 4), "both colours at full size"
    assert ro["status"]["phase"] == "Paused"
    assert [c["reason"] for c in ro["status"]["pauseConditions"]] == ["BlueGreenPause"]
    assert ro["status"]["blueGreen"]["prePromotionAnalysisRunStatus"]["status"] == "Successful"
    # No steps recorded: a rollback of a blueGreen Rollout has none to write back.
    assert json.loads(ro["metadata"]["annotations"][KNOWN_GOOD]).get("steps") is None
    status = target.status()
    assert (status.stable_version, status.canary_version, status.canary_weight) == (
        "v1.2.0", "v1.3.0", 0,
    )  # fmt: skip
    preview = target.preview()
    assert preview is not None
    assert preview.url == f"http://{PREVIEW}.{NS}.svc.cluster.local"
    assert target.health(Track.CANARY).details["pods"] == 4

    before = len(fake.requests)
    blue_green(fake).begin("v1.3.0")  # a resumed run: nothing to write
    assert patches(fake, before) == []
    with pytest.raises(TargetError, match="still in progress"):
        blue_green(fake).begin("v1.4.0")


def test_switch_is_argos_promote_and_a_second_switch_sends_nothing(fake: KubernetesFake) -> None:
    target = blue_green(fake)
    target.begin("v1.3.0")
    old = rollout(fake)["status"]["stableRS"]
    before = len(fake.requests)

    target.switch()

    # As `kubectl argo rollouts promote` for a paused blueGreen Rollout: one merge patch of
    # the status subresource clearing the pause; spec.paused is not set, so no spec patch.
    (promote,) = patches(fake, before)
    assert (promote.path, promote.content_type, promote.body) == (
        f"{ROLLOUT_PATH}/status",
        "application/merge-patch+json",
        {"status": {"pauseConditions": None}},
    )
    ro = rollout(fake)
    new = ro["status"]["currentPodHash"]
    assert selector(fake, ACTIVE) == new
    assert ro["status"]["blueGreen"]["activeSelector"] == new
    assert pods(fake, old) == 4, "the old ReplicaSet stays at full size for the hold"
    status = target.status()
    assert (status.canary_version, status.canary_weight, status.stable_version) == (
        "v1.3.0", 100, "v1.2.0",
    )  # fmt: skip
    assert target.health(Track.STABLE).details["pods"] == 4

    before = len(fake.requests)
    blue_green(fake).switch()
    blue_green(fake).begin("v1.3.0")  # the engine resumes a run in its hold with begin
    assert patches(fake, before) == []
    assert blue_green(fake).status().canary_weight == 100


def test_rollback_after_the_switch_points_the_active_service_back_at_once(
    fake: KubernetesFake,
) -> None:
    target = blue_green(fake)
    target.begin("v1.3.0")
    old = rollout(fake)["status"]["stableRS"]
    target.switch()

    result = blue_green(fake).rollback()  # a new object, as after a crash

    assert (result.changed, result.from_version, result.to_version) == (True, "v1.3.0", "v1.2.0")
    ro = rollout(fake)
    assert image_of(ro["spec"]["template"]) == GOOD
    assert ro["status"]["stableRS"] == ro["status"]["currentPodHash"] == old
    assert selector(fake, ACTIVE) == old and ro["status"]["phase"] == "Healthy"
    status = target.status()
    assert (status.stable_version, status.canary_version, status.canary_weight) == (
        "v1.2.0", None, 0,
    )  # fmt: skip

    fake.wait_settled()
    rv = rollout(fake)["metadata"]["resourceVersion"]
    again = blue_green(fake).rollback()
    assert (again.changed, again.to_version) == (False, "v1.2.0")
    assert rollout(fake)["metadata"]["resourceVersion"] == rv


def test_rollback_before_the_switch_aborts_and_the_active_service_never_moves(
    fake: KubernetesFake,
) -> None:
    old = rollout(fake)["status"]["stableRS"]
    since = fake.cluster.resource_version
    target = blue_green(fake)
    target.begin("v1.3.0")
    before = len(fake.requests)

    result = target.withdraw()  # what the engine calls for a failed preview

    sent = patches(fake, before)
    assert sent[0].body == {"status": {"abort": True}}
    assert result.changed and result.to_version == "v1.2.0"
    ro = rollout(fake)
    assert ro["status"]["stableRS"] == ro["status"]["currentPodHash"] == old
    assert image_of(ro["spec"]["template"]) == GOOD
    active = {
        e.obj["spec"]["selector"].get(HASH)
        for e in fake.cluster.events_since(int(since))
        if e.key == "/services" and e.obj["metadata"]["name"] == ACTIVE
    }
    assert active <= {old}, "no user request reached the new version"
    assert selector(fake, PREVIEW) == old, "the preview follows the restored template"

    fake.wait_settled()
    rv = rollout(fake)["metadata"]["resourceVersion"]
    assert blue_green(fake).rollback().changed is False
    assert rollout(fake)["metadata"]["resourceVersion"] == rv


def test_promote_after_the_hold_ends_the_trial_once(fake: KubernetesFake) -> None:
    target = blue_green(fake)
    target.begin("v1.3.0")
    target.switch()
    new = rollout(fake)["status"]["currentPodHash"]

    target.promote()

    ro = rollout(fake)
    assert ro["status"]["phase"] == "Healthy" and ro["status"]["stableRS"] == new
    assert PROMOTED in ro["metadata"]["annotations"]
    status = target.status()
    assert (status.stable_version, status.canary_version, status.canary_weight) == (
        "v1.3.0", None, 0,
    )  # fmt: skip
    with pytest.raises(TargetError, match="already the stable version"):
        blue_green(fake).begin("v1.3.0")
    before = len(fake.requests)
    blue_green(fake).promote()
    assert patches(fake, before) == []

    # A rollback after the promotion still goes to the version recorded at begin.
    result = blue_green(fake).rollback()
    assert (result.changed, result.to_version) == (True, "v1.2.0")
    assert image_of(rollout(fake)["spec"]["template"]) == GOOD


def test_a_failed_post_promotion_analysis_switches_back_and_fails_the_switch(
    fake: KubernetesFake,
) -> None:
    target = blue_green(fake)
    target.begin("v1.3.0")
    old = rollout(fake)["status"]["stableRS"]
    fake.cluster.argo_analysis_phase = "Failed"

    with pytest.raises(TargetError, match="aborted"):
        target.switch()

    assert selector(fake, ACTIVE) == old
    assert rollout(fake)["status"]["phase"] == "Degraded"
    result = blue_green(fake).rollback()
    assert result.changed and result.to_version == "v1.2.0"
    assert rollout(fake)["status"]["phase"] == "Healthy"


def test_a_failed_pre_promotion_analysis_fails_begin_before_any_switch(
    fake: KubernetesFake,
) -> None:
    old = rollout(fake)["status"]["stableRS"]
    fake.cluster.argo_analysis_phase = "Failed"
    with pytest.raises(TargetError, match="aborted"):
        blue_green(fake).begin("v1.3.0")
    assert selector(fake, ACTIVE) == old
    assert blue_green(fake).withdraw().to_version == "v1.2.0"


def test_rollback_after_argo_scaled_the_old_version_down_brings_it_back() -> None:
    with KubernetesFake() as fake:
        start(fake, blue_green_rollout(scale_down_delay=0))
        old = rollout(fake)["status"]["stableRS"]
        target = blue_green(fake)
        target.begin("v1.3.0")
        target.switch()
        fake.wait_settled()
        assert pods(fake, old) == 0, "scaleDownDelaySeconds 0: the old ReplicaSet is gone"

        result = blue_green(fake).rollback()

        assert result.changed and result.to_version == "v1.2.0"
        ro = rollout(fake)
        assert ro["status"]["stableRS"] == ro["status"]["currentPodHash"] == old
        assert selector(fake, ACTIVE) == old and pods(fake, old) == 4
        assert ro["status"]["phase"] == "Healthy"
