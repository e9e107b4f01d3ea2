"""The Kubernetes fake checked by the real kubectl, and `rollout_undo` checked against kubectl's undo."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from release_actions.errors import TargetError
from release_actions.targets.kubernetes import rollout_undo
from tests.fakes.kubernetes import KubernetesFake, PodBehaviour, document_objects
from tests.support.kubectl import REVISION, Kubectl, deployment_history, revisions

pytestmark = pytest.mark.integration


def _start(minor: int = 30) -> KubernetesFake:
    return KubernetesFake(minor=minor).start()


@pytest.fixture
def fake() -> Iterator[KubernetesFake]:
    fake = _start()
    yield fake
    fake.stop()


@pytest.fixture
def kubectl(kubectl_binary: str, fake: KubernetesFake, tmp_path: Path) -> Kubectl:
    return Kubectl(fake, tmp_path / "home")


# ----------------------------------------------------------------------- kubectl accepts it


@pytest.mark.parametrize("minor", [27, 30, 33])
def test_kubectl_release_and_rollback_commands(
    kubectl_binary: str, tmp_path: Path, minor: int
) -> None:
    # The dispatcher picks the bundled kubectl by the server's minor version; 1.33 sends
    # `create` as protobuf, which the fake decodes.
    fake = _start(minor)
    try:
        k = Kubectl(fake, tmp_path / "home")
        k("create", "deployment", "web", "--image=nginx:1")
        k("set", "image", "deployment/web", "nginx=nginx:2")
        assert (
            "successfully rolled out"
            in k("rollout", "status", "deployment/web", "--timeout=10s").stdout
        )
        history = k("rollout", "history", "deployment/web").stdout.split()
        assert history[history.index("CHANGE-CAUSE") + 1 :] == ["1", "<none>", "2", "<none>"]
        assert "rolled back" in k("rollout", "undo", "deployment/web").stdout
        assert revisions(fake, "default", "web") == {"nginx:1": 3, "nginx:2": 2}
        assert "rolled back" in k("rollout", "undo", "deployment/web", "--to-revision=2").stdout
        assert revisions(fake, "default", "web") == {"nginx:1": 3, "nginx:2": 4}
        listed = k.json("get", "deploy,rs")
        kinds = sorted(item["kind"] for item in listed["items"])
        assert kinds == ["Deployment", "ReplicaSet", "ReplicaSet"]
        deployment = next(i for i in listed["items"] if i["kind"] == "Deployment")
        assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"
        assert deployment["metadata"]["annotations"][REVISION] == "4"
        assert (
            deployment["status"]["observedGeneration"] == deployment["metadata"]["generation"] == 4
        )
        for rs in (i for i in listed["items"] if i["kind"] == "ReplicaSet"):
            (owner,) = rs["metadata"]["ownerReferences"]
            assert owner == {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "web",
                "uid": deployment["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
            assert rs["metadata"]["name"] == f"web-{rs['metadata']['labels']['pod-template-hash']}"
        reused = next(
            i for i in listed["items"] if i["kind"] == "ReplicaSet" and i["spec"]["replicas"] == 1
        )
        # The reused ReplicaSet keeps its old revisions, as the controller records them.
        assert reused["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "2"
    finally:
        fake.stop()


def test_kubectl_request_flow_of_rollout_undo(kubectl: Kubectl, fake: KubernetesFake) -> None:
    kubectl("create", "deployment", "web", "--image=nginx:1")
    kubectl("set", "image", "deployment/web", "nginx=nginx:2")
    before = len(fake.requests)
    kubectl("rollout", "undo", "deployment/web")
    flow = [str(r).split("?")[0] for r in fake.requests[before:] if r.path != "/version"]
    assert flow[-2:] == [
        "GET /apis/apps/v1/namespaces/default/replicasets",
        "PATCH /apis/apps/v1/namespaces/default/deployments/web",
    ]
    patch = fake.requests[-1]
    assert patch.content_type == "application/json-patch+json"
    assert [op["path"] for op in patch.body] == ["/spec/template", "/metadata/annotations"]
    assert fake.requests[-2].param("labelSelector") == "app=web"


def test_kubectl_rollout_status_waits_and_reports_a_stuck_rollout(
    kubectl: Kubectl, fake: KubernetesFake
) -> None:
    fake.cluster.behaviours["nginx:slow"] = PodBehaviour(ready_after=0.4)
    fake.cluster.behaviours["nginx:bad"] = PodBehaviour(ready=False)
    fake.cluster.deadline_scale = 0.001  # 600 s of progress deadline pass in 0.6 s
    kubectl("create", "deployment", "web", "--image=nginx:1", "--replicas=2")
    kubectl("set", "image", "deployment/web", "nginx=nginx:slow")
    waited = kubectl("rollout", "status", "deployment/web", "--timeout=10s")
    assert "Waiting for deployment" in waited.stdout
    assert 'deployment "web" successfully rolled out' in waited.stdout
    kubectl("set", "image", "deployment/web", "nginx=nginx:bad")
    stuck = kubectl("rollout", "status", "deployment/web", "--timeout=10s", ok=False)
    assert stuck.returncode == 1
    assert 'deployment "web" exceeded its progress deadline' in stuck.stderr
    condition = next(
        c
        for c in fake.get("deployments", "default", "web")["status"]["conditions"]
        if c["type"] == "Progressing"
    )
    assert (condition["status"], condition["reason"]) == ("False", "ProgressDeadlineExceeded")
    # The old pods keep serving while the new ones never become ready.
    table = kubectl("get", "pods").stdout
    assert table.count("1/1") == 2 and table.count("0/1") == 2


# --------------------------------------------------- rollout_undo does what kubectl's undo does


@pytest.mark.parametrize("to_revision", [None, 1, 2])
def test_rollout_undo_leaves_the_state_kubectl_leaves(
    kubectl_binary: str, tmp_path: Path, to_revision: int | None
) -> None:
    images = ["nginx:1", "nginx:2", "nginx:3"]
    theirs, ours = _start(), _start()
    try:
        k_theirs, k_ours = Kubectl(theirs, tmp_path / "a"), Kubectl(ours, tmp_path / "b")
        deployment_history(k_theirs, images)
        deployment_history(k_ours, images)
        flag = [] if to_revision is None else [f"--to-revision={to_revision}"]
        out = k_theirs("rollout", "undo", "deployment/web", *flag)
        result = rollout_undo(ours.api_client(), "default", "web", to_revision)
        theirs.wait_settled()
        ours.wait_settled()
        a, b = (
            theirs.get("deployments", "default", "web"),
            ours.get("deployments", "default", "web"),
        )
        assert a["spec"]["template"] == b["spec"]["template"]
        assert revisions(theirs, "default", "web") == revisions(ours, "default", "web")
        assert a["metadata"]["annotations"][REVISION] == b["metadata"]["annotations"][REVISION]
        assert ("rolled back" in out.stdout) == result.changed
        # The same again: kubectl now flips back to the version it just left; so does
        # rollout_undo, which keeps kubectl's semantics (KubernetesTarget.rollback does not).
        k_theirs("rollout", "undo", "deployment/web")
        rollout_undo(ours.api_client(), "default", "web")
        assert (
            theirs.get("deployments", "default", "web")["spec"]["template"]
            == ours.get("deployments", "default", "web")["spec"]["template"]
        )
        assert revisions(theirs, "default", "web") == revisions(ours, "default", "web")
    finally:
        theirs.stop()
        ours.stop()


def _kubectl_error(k: Kubectl, *args: str) -> str:
    result = k("rollout", "undo", "deployment/web", *args, ok=False)
    assert result.returncode != 0
    return result.stderr.strip().removeprefix("error: ")


def test_rollout_undo_refuses_a_paused_deployment_as_kubectl_does(
    kubectl: Kubectl, fake: KubernetesFake
) -> None:
    deployment_history(kubectl, ["nginx:1", "nginx:2"])
    kubectl("rollout", "pause", "deployment/web")
    theirs = _kubectl_error(kubectl)
    with pytest.raises(TargetError) as caught:
        rollout_undo(fake.api_client(), "default", "web")
    assert theirs.startswith("you cannot rollback a paused deployment; resume it first")
    assert str(caught.value).startswith("you cannot rollback a paused deployment; resume it first")
    assert "kubectl rollout resume deployment/web" in str(caught.value)


def test_rollout_undo_missing_revision_as_kubectl(kubectl: Kubectl, fake: KubernetesFake) -> None:
    deployment_history(kubectl, ["nginx:1", "nginx:2"])
    theirs = _kubectl_error(kubectl, "--to-revision=7")
    with pytest.raises(TargetError) as caught:
        rollout_undo(fake.api_client(), "default", "web", 7)
    assert theirs == str(caught.value) == "unable to find specified revision 7 in history"


def test_rollout_undo_with_revision_history_limit_zero(
    kubectl: Kubectl, fake: KubernetesFake
) -> None:
    deployment_history(kubectl, ["nginx:1", "nginx:2"], limit=0)
    assert len(fake.list("replicasets", "default")) == 1  # the old one was cleaned up
    theirs = _kubectl_error(kubectl)
    with pytest.raises(TargetError) as caught:
        rollout_undo(fake.api_client(), "default", "web")
    assert theirs == str(caught.value) == 'no rollout history found for deployment "web"'
    assert "revisionHistoryLimit: 0" in (caught.value.hint or "")


def test_rollout_undo_records_known_good_but_keeps_kubectl_annotations(
    fake: KubernetesFake,
) -> None:
    fake.apply(next(document_objects("default", name="web", image="nginx:1", istio=False)))
    api = fake.api_client()
    from kubernetes import client

    client.AppsV1Api(api).patch_namespaced_deployment(
        "web",
        "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "nginx:2"}]}}}},
        _content_type="application/strategic-merge-patch+json",
    )
    result = rollout_undo(api, "default", "web")
    assert (result.changed, result.from_revision, result.to_revision) == (True, 2, 1)
    d = fake.get("deployments", "default", "web")
    record = json.loads(d["metadata"]["annotations"]["release-actions.dev/known-good"])
    assert record["version"] == "1" and record["rollout"] == "2" and record["revision"] == 1


# ------------------------------------------------------------ the fake as an API server


def test_api_errors_have_the_status_shape(fake: KubernetesFake) -> None:
    url = f"{fake.url}/apis/apps/v1/namespaces/default/deployments"
    missing = requests.get(f"{url}/nope", timeout=5)
    assert missing.status_code == 404
    assert missing.json() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "group": "apps", "kind": "deployments"},
        "code": 404,
    }
    body = next(document_objects("default", name="web", image="nginx:1", istio=False))
    created = requests.post(url, json=body, timeout=5).json()
    again = requests.post(url, json=body, timeout=5)
    assert (again.status_code, again.json()["reason"]) == (409, "AlreadyExists")
    stale = dict(created, metadata={**created["metadata"], "resourceVersion": "1"})
    conflict = requests.put(f"{url}/web", json=stale, timeout=5)
    assert (conflict.status_code, conflict.json()["reason"]) == (409, "Conflict")
    assert "the object has been modified" in conflict.json()["message"]
    bad = json.loads(json.dumps(body))
    bad["metadata"]["name"] = "other"
    bad["spec"]["template"]["metadata"]["labels"] = {"app": "different"}
    invalid = requests.post(url, json=bad, timeout=5)
    assert (invalid.status_code, invalid.json()["reason"]) == (422, "Invalid")
    assert invalid.json()["details"]["causes"][0]["field"] == "spec.template.metadata.labels"
    dry = requests.post(f"{url}?dryRun=All", json={**bad, "spec": body["spec"]}, timeout=5)
    assert dry.status_code == 201 and fake.find("deployments", "default", "other") is None
    vs = f"{fake.url}/apis/networking.istio.io/v1beta1/namespaces/default/virtualservices"
    requests.post(
        vs,
        json={
            "apiVersion": "networking.istio.io/v1beta1",
            "kind": "VirtualService",
            "metadata": {"name": "x"},
            "spec": {},
        },
        timeout=5,
    )
    smp = requests.patch(
        f"{vs}/x",
        data="{}",
        headers={"Content-Type": "application/strategic-merge-patch+json"},
        timeout=5,
    )
    assert (smp.status_code, smp.json()["reason"]) == (415, "UnsupportedMediaType")


def test_spec_changes_bump_generation_and_metadata_changes_do_not(fake: KubernetesFake) -> None:
    body = next(document_objects("default", name="web", image="nginx:1", istio=False))
    fake.apply(body)
    url = f"{fake.url}/apis/apps/v1/namespaces/default/deployments/web"
    merge = {"Content-Type": "application/merge-patch+json"}
    one = requests.patch(
        url, json={"metadata": {"annotations": {"a": "b"}}}, headers=merge, timeout=5
    ).json()
    assert one["metadata"]["generation"] == 1
    two = requests.patch(url, json={"spec": {"replicas": 3}}, headers=merge, timeout=5).json()
    assert two["metadata"]["generation"] == 2
    fake.wait_settled()
    before = requests.get(url, timeout=5).json()["metadata"]["resourceVersion"]
    same = requests.patch(url, json={"spec": {"replicas": 3}}, headers=merge, timeout=5).json()
    assert same["metadata"]["resourceVersion"] == before  # a no-op write is not a write


def test_watch_streams_changes_from_a_resource_version(fake: KubernetesFake) -> None:
    body = next(document_objects("default", name="web", image="nginx:1", istio=False))
    rv = fake.apply(body)["metadata"]["resourceVersion"]
    url = f"{fake.url}/apis/apps/v1/namespaces/default/deployments"
    merge = {"Content-Type": "application/merge-patch+json"}
    requests.patch(f"{url}/web", json={"spec": {"replicas": 2}}, headers=merge, timeout=5)
    with requests.get(
        url,
        params={
            "watch": "true",
            "resourceVersion": rv,
            "fieldSelector": "metadata.name=web",
            "timeoutSeconds": "1",
        },
        stream=True,
        timeout=5,
    ) as stream:
        events = []
        for line in stream.iter_lines():
            events.append(json.loads(line))
            if events[-1]["object"]["spec"]["replicas"] == 2:
                break
    assert events and {e["type"] for e in events} == {"MODIFIED"}
    assert events[-1]["object"]["kind"] == "Deployment"
    assert any(e["object"]["spec"]["replicas"] == 2 for e in events)


def test_the_fake_runs_on_its_own(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.kubernetes",
            "--port",
            "0",
            "--seed-document",
            "--kubeconfig",
            str(kubeconfig),
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split(" at ")[-1].strip()
        assert process.stdout.readline().strip() == f"kubeconfig: {kubeconfig}"
        config = json.loads(kubeconfig.read_text())
        assert config["clusters"][0]["cluster"]["server"] == url
        assert requests.get(f"{url}/version", timeout=5).json()["minor"] == "30"
        seeded = requests.get(
            f"{url}/apis/apps/v1/namespaces/triptrip/deployments/triptrip-api", timeout=5
        )
        assert seeded.json()["status"]["availableReplicas"] == 10
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_patches_follow_the_api_servers_rules(fake: KubernetesFake) -> None:
    body = next(document_objects("default", name="web", image="nginx:1", istio=False))
    body["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "envoy:1"})
    fake.apply(body)
    url = f"{fake.url}/apis/apps/v1/namespaces/default/deployments/web"
    smp = {"Content-Type": "application/strategic-merge-patch+json"}
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "api"}],
                    "containers": [
                        {"name": "api", "env": [{"name": "EXTRA", "value": "1"}]},
                        {"name": "sidecar", "image": "envoy:2"},
                    ],
                }
            },
            "strategy": {"$retainKeys": ["type"], "type": "Recreate"},
        }
    }
    spec = requests.patch(url, json=patch, headers=smp, timeout=5).json()["spec"]
    api, sidecar = (
        spec["template"]["spec"]["containers"][1],
        spec["template"]["spec"]["containers"][0],
    )
    assert (sidecar["name"], sidecar["image"]) == ("sidecar", "envoy:2")
    assert [e["name"] for e in api["env"]] == ["DEPLOYMENT_TRACK", "EXTRA"]  # merged by name
    assert api["image"] == "nginx:1" and api["ports"] == [
        {"containerPort": 3000, "protocol": "TCP"}
    ]
    assert spec["strategy"] == {"type": "Recreate"}
    deleted = {
        "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}
    }
    spec = requests.patch(url, json=deleted, headers=smp, timeout=5).json()["spec"]
    assert [c["name"] for c in spec["template"]["spec"]["containers"]] == ["api"]
    json_patch = {"Content-Type": "application/json-patch+json"}
    failed = requests.patch(
        url,
        json=[{"op": "test", "path": "/spec/replicas", "value": 99}],
        headers=json_patch,
        timeout=5,
    )
    assert (failed.status_code, failed.json()["reason"]) == (422, "Invalid")
    merged = requests.patch(
        url,
        json={"spec": {"template": {"spec": {"containers": [{"name": "x", "image": "y"}]}}}},
        headers={"Content-Type": "application/merge-patch+json"},
        timeout=5,
    )
    assert [c["name"] for c in merged.json()["spec"]["template"]["spec"]["containers"]] == [
        "x"
    ]  # lists replace
