"""KubernetesTarget through the official client against the Kubernetes fake: canary, promote, rollback."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from release_actions.errors import TargetError
from release_actions.metrics.base import Track
from release_actions.targets.base import DeployTarget
from release_actions.targets.k8s_util import KNOWN_GOOD, RetryPolicy
from release_actions.targets.kubernetes import KubernetesTarget
from tests.fakes.kubernetes import (
    KubernetesFake,
    PodBehaviour,
    conflict,
    document_objects,
    server_error,
    slow,
    unavailable,
)

pytestmark = pytest.mark.integration

NS, NAME = "triptrip", "triptrip-api"
REPO = "asia-northeast1-docker.pkg.dev/triptrip-production/triptrip-api"
GOOD, NEW = f"{REPO}:v1.2.0", f"{REPO}:v1.3.0"
FAST = RetryPolicy(attempts=5, backoff=0.01, max_backoff=0.05, request_timeout=2.0)
DEPLOYMENT_PATH = f"/apis/apps/v1/namespaces/{NS}/deployments/{NAME}"


@pytest.fixture
def fake() -> Iterator[KubernetesFake]:
    with KubernetesFake() as fake:
        fake.add_namespace(NS)
        fake.cluster.deadline_scale = 0.001  # a 600 s progress deadline passes in 0.6 s
        yield fake


def seed(fake: KubernetesFake, *, istio: bool = True, replicas: int = 4, limit: int = 10) -> None:
    for obj in document_objects(NS, replicas=replicas, istio=istio, revision_history_limit=limit):
        fake.apply(obj)


def make_target(fake: KubernetesFake, *, istio: bool = True, **options: Any) -> KubernetesTarget:
    options.setdefault("retry", FAST)
    return KubernetesTarget(
        fake.api_client(),
        namespace=NS,
        deployment=NAME,
        istio_virtual_service=NAME if istio else None,
        poll_interval=0.01,
        rollout_timeout=5,
        **options,
    )


def stable(fake: KubernetesFake) -> dict[str, Any]:
    return fake.get("deployments", NS, NAME)


def image_of(d: dict[str, Any]) -> str:
    return str(d["spec"]["template"]["spec"]["containers"][0]["image"])


def http_routes(fake: KubernetesFake) -> list[dict[str, Any]]:
    return list(fake.get("virtualservices", NS, NAME, group="networking.istio.io")["spec"]["http"])


def weights(fake: KubernetesFake) -> dict[str, int]:
    (weighted,) = [r for r in http_routes(fake) if "match" not in r]
    return {d["destination"]["subset"]: d["weight"] for d in weighted["route"]}


def revisions(fake: KubernetesFake) -> dict[str, int]:
    uid = stable(fake)["metadata"]["uid"]
    return {
        image_of(rs): int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
        for rs in fake.list("replicasets", NS)
        if any(r["uid"] == uid for r in rs["metadata"]["ownerReferences"])
    }


def record_of(fake: KubernetesFake) -> dict[str, Any]:
    return dict(json.loads(stable(fake)["metadata"]["annotations"][KNOWN_GOOD]))


# --------------------------------------------------------------------------- canary flows


def test_istio_canary_flow_moves_weights_and_promotes(fake: KubernetesFake) -> None:
    seed(fake)
    target = make_target(fake)
    assert isinstance(target, DeployTarget)
    original = stable(fake)["spec"]["template"]
    target.begin("v1.3.0")
    status = target.status()
    assert (
        status.stable_version,
        status.canary_version,
        status.canary_weight,
        status.known_good,
    ) == ("v1.2.0", "v1.3.0", 0, "v1.2.0")
    canary = fake.get("deployments", NS, f"{NAME}-canary")
    labels = canary["spec"]["template"]["metadata"]["labels"]
    assert labels == {"app": NAME, "track": "canary"}
    assert canary["spec"]["selector"]["matchLabels"] == {"app": NAME, "track": "canary"}
    assert canary["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "DEPLOYMENT_TRACK", "value": "canary"}
    ]
    record = record_of(fake)
    assert record["template"] == original and record["image"] == GOOD and record["revision"] == 1
    assert record["digests"] and record["digests"][0].startswith("sha256:")
    for weight, pods in ((5, 1), (20, 1), (50, 2), (100, 4)):
        target.set_weight(weight)
        assert weights(fake) == {"stable": 100 - weight, "canary": weight}
        assert fake.get("deployments", NS, f"{NAME}-canary")["spec"]["replicas"] == pods
        assert stable(fake)["spec"]["replicas"] == 4  # Istio moves traffic; stable keeps its size
        assert target.status().canary_weight == weight
    header, _ = http_routes(fake)
    assert header["match"] == [{"headers": {"x-canary": {"exact": "true"}}}]  # §4.2's own, kept
    target.promote()
    assert image_of(stable(fake)) == NEW
    assert stable(fake)["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "DEPLOYMENT_TRACK", "value": "stable"}
    ]
    assert fake.find("deployments", NS, f"{NAME}-canary") is None
    assert weights(fake) == {"stable": 100, "canary": 0}
    assert target.status().canary_version is None and target.status().stable_version == "v1.3.0"
    target.promote()  # twice is harmless
    assert revisions(fake) == {GOOD: 1, NEW: 2}


def test_replica_canary_flow_scales_tracks_and_promotes(fake: KubernetesFake) -> None:
    seed(fake, istio=False)
    target = make_target(fake, istio=False)
    target.begin("v1.3.0")
    for weight, canary_pods, stable_pods in (
        (5, 1, 3),
        (20, 1, 3),
        (50, 2, 2),
        (100, 4, 0),
        (50, 2, 2),
    ):
        target.set_weight(weight)
        assert fake.get("deployments", NS, f"{NAME}-canary")["spec"]["replicas"] == canary_pods
        assert stable(fake)["spec"]["replicas"] == stable_pods
        assert len(fake.list("pods", NS, "track=canary")) == canary_pods
        assert target.status().canary_weight == weight
    target.promote()
    assert (image_of(stable(fake)), stable(fake)["spec"]["replicas"]) == (NEW, 4)
    assert fake.find("deployments", NS, f"{NAME}-canary") is None
    assert len(fake.list("pods", NS, f"app={NAME}")) == 4


def test_begin_resumes_the_same_version_and_refuses_another(fake: KubernetesFake) -> None:
    seed(fake)
    target = make_target(fake)
    target.begin("v1.3.0")
    target.set_weight(20)
    recorded = stable(fake)["metadata"]["annotations"][KNOWN_GOOD]
    target.begin("v1.3.0")  # resumes: the weight and the record stay
    assert weights(fake)["canary"] == 20
    assert stable(fake)["metadata"]["annotations"][KNOWN_GOOD] == recorded
    with pytest.raises(TargetError, match="still in progress"):
        target.begin("v1.4.0")
    target.promote()
    with pytest.raises(TargetError, match="already the stable version"):
        target.begin("v1.3.0")


def test_header_route_is_added_for_the_canary_and_removed_after(fake: KubernetesFake) -> None:
    seed(fake)
    vs = fake.get("virtualservices", NS, NAME, group="networking.istio.io")
    vs["spec"]["http"] = [
        {
            "name": "legacy",
            "match": [{"uri": {"prefix": "/v0"}}],
            "route": [{"destination": {"host": "legacy"}}],
        },
        {"route": [{"destination": {"host": NAME, "subset": "stable", "port": {"number": 80}}}]},
    ]
    fake.apply(vs)
    target = make_target(fake)
    target.begin("v1.3.0")
    target.set_weight(20)
    header, legacy, weighted = http_routes(fake)
    assert header["name"] == "release-actions-canary-header"
    assert header["route"] == [
        {"destination": {"host": NAME, "subset": "canary", "port": {"number": 80}}}
    ]
    assert legacy["name"] == "legacy"  # other routes stay as they were
    assert weighted["route"][1] == {
        "destination": {"host": NAME, "subset": "canary", "port": {"number": 80}},
        "weight": 20,
    }
    target.promote()
    assert [r.get("name") for r in http_routes(fake)] == ["legacy", None]
    assert weights(fake) == {"stable": 100, "canary": 0}


def test_a_destination_rule_without_the_canary_subset_is_refused(fake: KubernetesFake) -> None:
    seed(fake)
    dr = fake.get("destinationrules", NS, NAME, group="networking.istio.io")
    dr["spec"]["subsets"] = dr["spec"]["subsets"][:1]
    fake.apply(dr)
    with pytest.raises(TargetError, match="no subset `canary`") as caught:
        make_target(fake).begin("v1.3.0")
    assert "source document §4.2" in (caught.value.hint or "")


# ------------------------------------------------------------------------------ health


def test_health_counts_restarts_and_readiness_failures_per_track(fake: KubernetesFake) -> None:
    seed(fake)
    target = make_target(fake)
    target.begin("v1.3.0")
    target.set_weight(50)
    assert target.health(Track.CANARY).restarts == 0
    fake.cluster.restart_pods(NS, "track=canary", 3)
    fake.cluster.fail_probes(NS, "track=canary", 2)
    canary = target.health(Track.CANARY)
    assert (canary.restarts, canary.health_check_failures, canary.ready) == (6, 4, True)
    assert canary.details["pods"] == 2
    assert target.health(Track.STABLE).restarts == 0
    whole = target.health()
    assert (whole.restarts, whole.health_check_failures, whole.details["pods"]) == (6, 4, 6)


def test_a_canary_that_never_becomes_ready_fails_begin_with_the_deadline(
    fake: KubernetesFake,
) -> None:
    seed(fake)
    fake.cluster.behaviours[NEW] = PodBehaviour(ready=False)
    target = make_target(fake)
    with pytest.raises(TargetError, match="exceeded its progress deadline"):
        target.begin("v1.3.0")
    health = target.health(Track.CANARY)
    assert not health.ready and health.details["not_ready"]
    time.sleep(0.3)
    assert target.health(Track.CANARY).health_check_failures > 0  # the kubelet's Unhealthy events
    assert target.rollback().to_version == "v1.2.0"
    assert fake.find("deployments", NS, f"{NAME}-canary") is None


# ------------------------------------------------------- kubectl rollout undo --to-revision


def promoted(fake: KubernetesFake) -> KubernetesTarget:
    """A target whose Deployment has two revisions: GOOD (1) and NEW (2), NEW serving."""
    seed(fake, istio=False)
    target = make_target(fake, istio=False)
    target.begin("v1.3.0")
    target.promote()
    assert revisions(fake) == {GOOD: 1, NEW: 2}
    return target


def test_undo_to_revision_reports_kubectls_lines_and_waits_for_the_rollout(
    fake: KubernetesFake,
) -> None:
    target = promoted(fake)
    assert target.wait_rolled_out() == f'deployment "{NAME}" successfully rolled out'
    lines: list[str] = []
    result = target.undo_to_revision(1, report=lines.append)
    assert lines == [
        f"deployment.apps/{NAME} rolled back",
        f'deployment "{NAME}" successfully rolled out',
    ]
    assert (result.changed, result.from_version, result.to_version) == (True, "v1.3.0", "v1.2.0")
    assert result.detail == f"deployment/{NAME} in namespace `{NS}` back on revision 1 (was 2)"
    assert image_of(stable(fake)) == GOOD and revisions(fake) == {GOOD: 3, NEW: 2}
    lines.clear()
    again = target.undo_to_revision(3, report=lines.append)
    assert (again.changed, again.from_version, again.to_version) == (False, None, "v1.2.0")
    assert lines == [
        f"deployment.apps/{NAME} skipped rollback (current template already matches revision 3)"
    ]
    with pytest.raises(TargetError, match="unable to find specified revision 1 in history"):
        target.undo_to_revision(1)


def test_undo_to_revision_shows_the_undo_when_the_rollout_then_times_out(
    fake: KubernetesFake,
) -> None:
    target = promoted(fake)
    fake.cluster.behaviours[GOOD] = PodBehaviour(ready=False)
    lines: list[str] = []
    with pytest.raises(TargetError, match=r"did not finish rolling back within 0\.05s: ") as caught:
        target.undo_to_revision(0, timeout_seconds=0.05, poll=0.01, report=lines.append)
    assert lines == [f"deployment.apps/{NAME} rolled back"]
    assert "kubectl get pods" in (caught.value.hint or "")
    assert image_of(stable(fake)) == GOOD


# ---------------------------------------------------------------------------- rollback


def test_bad_canary_rollback_ends_on_known_good_and_twice_changes_nothing(
    fake: KubernetesFake,
) -> None:
    seed(fake)
    fake.cluster.behaviours[NEW] = PodBehaviour(restart_every=0.05)
    target = make_target(fake)
    original = stable(fake)["spec"]["template"]
    target.begin("v1.3.0")
    target.set_weight(20)
    time.sleep(0.2)
    assert target.health(Track.CANARY).restarts > 0
    result = target.rollback()
    assert (result.changed, result.from_version, result.to_version) == (True, "v1.3.0", "v1.2.0")
    assert stable(fake)["spec"]["template"] == original == record_of(fake)["template"]
    assert weights(fake) == {"stable": 100, "canary": 0}
    assert fake.find("deployments", NS, f"{NAME}-canary") is None
    fake.wait_settled()
    before = stable(fake)["metadata"]
    again = target.rollback()
    assert (again.changed, again.to_version) == (False, "v1.2.0")
    after = stable(fake)["metadata"]
    assert (after["resourceVersion"], after["generation"]) == (
        before["resourceVersion"],
        before["generation"],
    )


def test_rollback_after_promotion_restores_the_recorded_template(fake: KubernetesFake) -> None:
    seed(fake, istio=False)
    target = make_target(fake, istio=False)
    original = stable(fake)["spec"]["template"]
    target.begin("v1.3.0")
    target.set_weight(50)
    target.promote()  # the monitor then finds it bad
    assert revisions(fake) == {GOOD: 1, NEW: 2}
    result = target.rollback()
    assert (result.changed, result.from_version, result.to_version) == (True, "v1.3.0", "v1.2.0")
    assert stable(fake)["spec"]["template"] == original
    # The controller reuses the old ReplicaSet and gives it the next revision, as after kubectl.
    assert revisions(fake) == {GOOD: 3, NEW: 2}
    assert not target.rollback().changed  # `kubectl rollout undo` here would go back to v1.3.0
    assert revisions(fake) == {GOOD: 3, NEW: 2}


def test_rollback_of_a_change_by_hand_goes_to_the_previous_revision_once(
    fake: KubernetesFake,
) -> None:
    seed(fake)
    target = make_target(fake)
    manual = f"{REPO}:v1.2.1-hotfix"
    from kubernetes import client

    client.AppsV1Api(fake.api_client()).patch_namespaced_deployment(
        NAME,
        NS,
        {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": manual}]}}}},
        _content_type="application/strategic-merge-patch+json",
    )
    assert target.status().known_good is None
    result = target.rollback()
    assert (result.changed, result.from_version, result.to_version) == (
        True,
        "v1.2.1-hotfix",
        "v1.2.0",
    )
    assert image_of(stable(fake)) == GOOD
    assert record_of(fake)["version"] == "v1.2.0"
    assert not target.rollback().changed
    assert revisions(fake) == {GOOD: 3, manual: 2}


def test_rollback_works_from_the_record_with_revision_history_limit_zero(
    fake: KubernetesFake,
) -> None:
    seed(fake, istio=False, limit=0)
    target = make_target(fake, istio=False)
    target.begin("v1.3.0")
    target.set_weight(100)
    target.promote()
    assert set(revisions(fake)) == {NEW}  # Kubernetes kept nothing to undo to
    result = target.rollback()
    assert (result.changed, result.to_version) == (True, "v1.2.0")
    assert image_of(stable(fake)) == GOOD


@pytest.mark.parametrize("recorded", [True, False], ids=["known-good", "change-by-hand"])
def test_concurrent_rollbacks_end_on_known_good_with_one_undo(
    fake: KubernetesFake, recorded: bool
) -> None:
    seed(fake, istio=recorded)
    if recorded:
        first = make_target(fake)
        first.begin("v1.3.0")
        first.set_weight(50)
        first.promote()
    else:
        fake.apply(
            {
                **stable(fake),
                "spec": {
                    **stable(fake)["spec"],
                    "template": {
                        **stable(fake)["spec"]["template"],
                        "spec": {
                            **stable(fake)["spec"]["template"]["spec"],
                            "containers": [
                                {
                                    **stable(fake)["spec"]["template"]["spec"]["containers"][0],
                                    "image": NEW,
                                }
                            ],
                        },
                    },
                },
            }
        )
    fake.wait_settled()
    revision_before = int(
        stable(fake)["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
    )
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def run() -> None:
        target = make_target(
            fake, istio=recorded, retry=RetryPolicy(attempts=10, backoff=0.01, max_backoff=0.05)
        )
        barrier.wait()
        results.append(target.rollback())

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert len(results) == 2 and all(r.to_version == "v1.2.0" for r in results)
    assert image_of(stable(fake)) == GOOD
    fake.wait_settled()
    revision_after = int(
        stable(fake)["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
    )
    assert revision_after == revision_before + 1  # one undo, not two
    assert sum(r.changed for r in results) >= 1


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


@pytest.mark.parametrize(
    "istio", [True, False], ids=["istio-known-good", "replicas-change-by-hand"]
)
def test_a_rollback_killed_after_its_first_write_is_finished_by_the_next_run(
    fake: KubernetesFake, istio: bool
) -> None:
    seed(fake, istio=istio)
    if istio:
        make_target(fake).begin("v1.3.0")
        make_target(fake).set_weight(20)
    else:
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": NEW}]}}}}
        from kubernetes import client

        client.AppsV1Api(fake.api_client()).patch_namespaced_deployment(
            NAME, NS, patch, _content_type="application/strategic-merge-patch+json"
        )
    fake.wait_settled()
    revision_before = revisions(fake).get(GOOD)
    dying = make_target(fake, istio=istio)
    kill_after_first_write(dying)
    with pytest.raises(Killed):
        dying.rollback()
    if istio:
        assert weights(fake) == {
            "stable": 100,
            "canary": 0,
        }  # the first write: traffic off the canary
        assert fake.find("deployments", NS, f"{NAME}-canary") is not None
    else:
        assert image_of(stable(fake)) == GOOD  # the first write: template and record together
    result = make_target(fake, istio=istio).rollback()
    assert result.to_version == "v1.2.0"
    assert image_of(stable(fake)) == GOOD
    assert fake.find("deployments", NS, f"{NAME}-canary") is None
    fake.wait_settled()
    after = revisions(fake)
    assert after[GOOD] == (revision_before if istio else 3)  # restored once, never undone twice
    assert not make_target(fake, istio=istio).rollback().changed


# ------------------------------------------------------------------------------- retries


def test_conflicts_server_errors_and_timeouts_are_retried(fake: KubernetesFake) -> None:
    seed(fake)
    policy = RetryPolicy(attempts=6, backoff=0.01, max_backoff=0.05, request_timeout=0.5)
    target = make_target(fake, retry=policy)
    target.begin("v1.3.0")
    target.set_weight(50)
    vs_path = f"/apis/networking.istio.io/v1beta1/namespaces/{NS}/virtualservices/{NAME}"
    # The promotion's write to the stable Deployment meets a 409, a 503, then an answer
    # that comes after the client gave up although the write was applied.
    fake.inject("PATCH", DEPLOYMENT_PATH, conflict(), server_error(503), slow(1.0))
    fake.inject("GET", DEPLOYMENT_PATH, unavailable(), server_error(500))
    fake.inject("PATCH", vs_path, conflict(), unavailable())
    vs_patches = len(fake.requests_to("PATCH", vs_path))
    target.promote()
    assert image_of(stable(fake)) == NEW and weights(fake) == {"stable": 100, "canary": 0}
    template_writes = [
        p
        for p in fake.requests_to("PATCH", DEPLOYMENT_PATH)
        if any(op["path"] == "/spec/template" for op in p.body)
    ]
    # 409, 503, the late one, and the retry of it: whichever lands second carries a stale
    # resourceVersion and is refused, so the template is written once.
    assert len(template_writes) >= 3
    assert len(fake.requests_to("PATCH", vs_path)) - vs_patches == 3
    fake.wait_settled()
    assert revisions(fake) == {GOOD: 1, NEW: 2}  # applied once
    fake.inject("DELETE", f"/apis/apps/v1/namespaces/{NS}/deployments/*", unavailable())
    fake.inject("PATCH", DEPLOYMENT_PATH, slow(1.0))
    result = target.rollback()
    assert (result.changed, result.to_version) == (True, "v1.2.0")
    fake.wait_settled()
    assert revisions(fake) == {GOOD: 3, NEW: 2}


def test_retries_give_up_with_a_clear_error(fake: KubernetesFake) -> None:
    seed(fake)
    target = make_target(fake, retry=RetryPolicy(attempts=3, backoff=0.01, request_timeout=1))
    fake.inject("GET", DEPLOYMENT_PATH, *[unavailable()] * 12)
    with pytest.raises(TargetError) as caught:
        target.status()
    assert "HTTP 503 ServiceUnavailable" in str(caught.value)
    assert "Tried 3 times" in (caught.value.hint or "")


def test_forbidden_is_not_retried_and_says_which_rbac_is_missing(fake: KubernetesFake) -> None:
    seed(fake)
    from tests.fakes.kubernetes import Fault

    fake.inject(
        "GET",
        DEPLOYMENT_PATH,
        Fault(403, "Forbidden", 'deployments.apps "triptrip-api" is forbidden'),
    )
    with pytest.raises(TargetError, match="HTTP 403 Forbidden") as caught:
        make_target(fake).status()
    assert "`deployments`" in (caught.value.hint or "")
    assert len(fake.requests_to("GET", DEPLOYMENT_PATH)) == 1


# ------------------------------------------------------------------------ state and setup


def test_engine_state_is_saved_next_to_the_deployment(fake: KubernetesFake) -> None:
    seed(fake)
    target = make_target(fake)
    generation = stable(fake)["metadata"]["generation"]
    target.save_state({"version": "v1.3.0", "phase": "running", "step_index": 2})
    assert make_target(fake).status().state == {
        "version": "v1.3.0",
        "phase": "running",
        "step_index": 2,
    }
    assert stable(fake)["metadata"]["generation"] == generation  # an annotation starts no rollout
    target.save_state(None)
    assert target.status().state is None


def test_paused_deployment_is_refused_with_the_resume_command(fake: KubernetesFake) -> None:
    seed(fake)
    fake.apply({**stable(fake), "spec": {**stable(fake)["spec"], "paused": True}})
    target = make_target(fake)
    with pytest.raises(TargetError, match="paused") as caught:
        target.begin("v1.3.0")
    assert "kubectl rollout resume deployment/triptrip-api -n triptrip" in (caught.value.hint or "")
    with pytest.raises(TargetError, match="you cannot rollback a paused deployment"):
        target.rollback()


def test_from_env_reads_the_kubeconfig(fake: KubernetesFake, tmp_path: Path) -> None:
    seed(fake)
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig", namespace=NS)
    target = KubernetesTarget.from_env(
        {"KUBECONFIG": str(kubeconfig)}, deployment=NAME, namespace=NS
    )
    assert target.status().stable_version == "v1.2.0"
    with pytest.raises(TargetError, match="No Kubernetes credentials"):
        KubernetesTarget.from_env({"HOME": str(tmp_path)}, deployment=NAME)


def test_a_mark_written_between_a_read_and_a_save_survives_the_save(
    fake: KubernetesFake,
) -> None:
    """The engine reads its state, an operator's `abort` lands, the engine saves its progress.

    Before, the save was a plain merge patch of the whole state: the abort mark was dropped and
    the canary went on. Now the save keeps a mark it has not read, and a mark it has read (or
    wrote itself) stays as it says.
    """
    seed(fake)
    engine = make_target(fake)
    operator = make_target(fake)
    engine.begin("v1.3.0")
    engine.save_state({"version": "v1.3.0", "step": 1})
    assert engine.status().state == {"version": "v1.3.0", "step": 1}

    # The operator reads the state and leaves an abort mark.
    seen = operator.status().state or {}
    operator.save_state({**seen, "abort": {"id": "op-1", "reason": "errors", "by": "ann"}})

    # The engine saves the progress it computed from its older read: the mark survives.
    engine.save_state({"version": "v1.3.0", "step": 2})
    state = engine.status().state or {}
    assert state["step"] == 2 and state["abort"]["id"] == "op-1"

    # Having read it, the engine may drop it (a new rollout's state), and it stays dropped.
    engine.save_state({"version": "v1.4.0", "step": 1})
    assert "abort" not in (operator.status().state or {})

    # A mark the engine writes itself wins over one it has not read.
    operator.save_state({"version": "v1.4.0", "step": 1, "promote": {"id": "op-2"}})
    engine.save_state({"version": "v1.4.0", "step": 1, "promote": {"id": "eng-1"}})
    assert (engine.status().state or {})["promote"]["id"] == "eng-1"
