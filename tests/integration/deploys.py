"""The targets' fakes as `canary run` and `rollback` meet them, and the CLI run beside GitHub's fake.

Shared by test_canary_targets.py, test_rollback_cli.py and test_records.py; their fixtures
(``stack``, ``github``, ``slack``, ``cli``) are in conftest.py.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from release_actions.cli import main
from release_actions.core.policy import default_policy
from release_actions.targets.factory import make_target
from tests.conftest import CliResult
from tests.fakes.cloudrun import CloudRunFake
from tests.fakes.github import GitHubFake
from tests.fakes.kubernetes import KubernetesFake, document_objects
from tests.integration.fake_github import fake_github_env
from tests.support.runner_files import parse_file_commands

NS, NAME = "triptrip", "triptrip-api"
REPO = "asia-northeast1-docker.pkg.dev/triptrip-production/triptrip-api"
GOOD, NEW = f"{REPO}:v1.2.0", f"{REPO}:v1.3.0"
RUN_URL = "https://github.com/octo/app/actions/runs/4242"
CLOUDRUN_OLD = "triptrip-api-00001-abc"
CLOUDRUN_NEW = "triptrip-api-v1-3-0"


def github_env(github: GitHubFake) -> dict[str, str]:
    """The fake as a workflow run's GitHub: run 4242 of ``octo/app``, started by octocat."""
    return fake_github_env(
        github.url,
        "ghs_fake",
        GITHUB_SERVER_URL="https://github.com",
        GITHUB_RUN_ID="4242",
        GITHUB_ACTOR="octocat",
        RELEASE_ACTIONS_GITHUB_TIMEOUT="5",
    )


@dataclass
class Cli:
    """The CLI with a cleared environment plus the fakes' settings; files in one folder."""

    folder: Path
    env: dict[str, str] = field(default_factory=dict)
    count: int = 0

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> CliResult:
        self.count += 1
        output = self.folder / f"gh-output-{self.count}"
        summary = self.folder / f"gh-summary-{self.count}"
        full = {
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
            "GITHUB_ACTIONS": "true",
            "HOME": str(self.folder),
            **self.env,
            **(env or {}),
        }
        out, err = io.StringIO(), io.StringIO()
        code = main(list(args), env=full, out=out, err=err)
        result = CliResult(code, out.getvalue(), err.getvalue(), output, summary)
        if output.exists():
            result.outputs = dict(parse_file_commands(output.read_text("utf-8")))
        return result


def rollback_deployments(github: GitHubFake) -> list[dict[str, Any]]:
    return [d for d in github.repo().deployments if d["task"] == "rollback"]


def statuses(github: GitHubFake, dep: dict[str, Any]) -> list[dict[str, Any]]:
    return list(github.repo().deployment_statuses[dep["id"]])


def github_writes(github: GitHubFake) -> list[str]:
    return [f"{r.method} {r.path}" for r in github.requests if r.method != "GET"]


def k8s_writes(fake: KubernetesFake) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.requests if r.method not in ("GET",)]


def rollout_object(image: str = GOOD) -> dict[str, Any]:
    """Source §4.4's Rollout as a team wrote it."""
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
                    "steps": [
                        {"setWeight": 5},
                        {"pause": {"duration": "2m"}},
                        {"setWeight": 50},
                        {"pause": {"duration": "10m"}},
                        {"setWeight": 100},
                    ],
                    "trafficRouting": {
                        "istio": {"virtualService": {"name": NAME, "routes": ["primary"]}}
                    },
                }
            },
        },
    }


@dataclass
class Deploy:
    """One target's fake, seeded with v1.2.0 live, and how to read what it serves."""

    kind: str
    args: list[str]
    env: dict[str, str]
    live: Callable[[], dict[str, Any]]
    writes: Callable[[], list[str]]
    target: Callable[[], Any]


def _kubernetes(
    stack: Any, tmp_path: Path, objects: list[dict[str, Any]]
) -> tuple[KubernetesFake, dict[str, str]]:
    """A started fake with ``objects`` applied and settled, and the env of its kubeconfig."""
    fake: KubernetesFake = stack.enter(KubernetesFake())
    fake.add_namespace(NS)
    for obj in objects:
        fake.apply(obj)
    fake.wait_settled()
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
    return fake, {"KUBECONFIG": str(kubeconfig)}


def service_object(selector: dict[str, str] | None = None) -> dict[str, Any]:
    """The Service in front of the Deployment: what a blue-green switch moves without Istio."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME, "namespace": NS},
        "spec": {
            "selector": selector or {"app": NAME},
            "ports": [{"name": "http", "port": 80, "targetPort": 3000}],
        },
    }


def start_kubernetes(stack: Any, tmp_path: Path, *, istio: bool, service: bool = False) -> Deploy:
    objects = list(document_objects(NS, replicas=4, istio=istio))
    fake, env = _kubernetes(stack, tmp_path, objects + ([service_object()] if service else []))

    def live() -> dict[str, Any]:
        stable = fake.get("deployments", NS, NAME)
        out: dict[str, Any] = {
            "image": stable["spec"]["template"]["spec"]["containers"][0]["image"],
            "canary": fake.find("deployments", NS, f"{NAME}-canary") is not None,
            "replicas": stable["spec"]["replicas"],
        }
        if istio:
            vs = fake.get("virtualservices", NS, NAME, group="networking.istio.io")
            (weighted,) = [r for r in vs["spec"]["http"] if "match" not in r]
            out["weights"] = {d["destination"]["subset"]: d["weight"] for d in weighted["route"]}
            out["mirror"] = weighted.get("mirror")
        if service:
            out["selector"] = fake.get("services", NS, NAME)["spec"]["selector"]
        return out

    args = ["--target", "kubernetes", "--poll-interval", "0.02"]
    if not istio:
        args.append("--no-istio")

    def target() -> Any:
        return make_target(
            "kubernetes",
            default_policy(),
            {},
            api_client=fake.api_client(),
            poll_interval=0.02,
            istio=None if istio else False,
        )

    return Deploy(
        "kubernetes",
        args,
        env,
        live,
        lambda: k8s_writes(fake),
        target,
    )


def start_argo(stack: Any, tmp_path: Path) -> Deploy:
    fake, env = _kubernetes(stack, tmp_path, [rollout_object()])

    def live() -> dict[str, Any]:
        ro = fake.get("rollouts", NS, NAME, group="argoproj.io")
        status = ro["status"]
        return {
            "image": ro["spec"]["template"]["spec"]["containers"][0]["image"],
            "in_progress": status.get("currentPodHash") != status.get("stableRS"),
            "phase": status.get("phase"),
            "steps": ro["spec"]["strategy"]["canary"]["steps"],
        }

    def target() -> Any:
        return make_target(
            "argo", default_policy(), {}, api_client=fake.api_client(), poll_interval=0.02
        )

    return Deploy(
        "argo",
        ["--target", "argo", "--poll-interval", "0.02"],
        env,
        live,
        lambda: k8s_writes(fake),
        target,
    )


def start_cloudrun(stack: Any, tmp_path: Path) -> Deploy:
    fake = stack.enter(CloudRunFake(op_polls=0))
    fake.add_service(NAME, image=f"{REPO}/api:v1.2.0", revision=CLOUDRUN_OLD, traffic="pinned")
    args = [
        "--target",
        "cloudrun",
        "--cloudrun-endpoint",
        fake.url,
        "--project",
        fake.project,
        "--region",
        fake.location,
        "--poll-interval",
        "0.01",
    ]

    def live() -> dict[str, Any]:
        svc = fake.service(NAME)
        return {"serving": fake.serving(NAME), "image": svc["template"]["containers"][0]["image"]}

    def target() -> Any:
        return make_target(
            "cloudrun",
            default_policy(),
            {},
            cloudrun_endpoint=fake.url,
            project=fake.project,
            region=fake.location,
            poll_interval=0.01,
        )

    return Deploy(
        "cloudrun",
        args,
        {},
        live,
        lambda: [f"{r.method} {r.path}" for r in fake.requests if r.method != "GET"],
        target,
    )


class Stack:
    """Fakes started for one test and stopped after it."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def enter(self, item: Any) -> Any:
        started = item.start()
        self.items.append(item)
        return started if started is not None else item

    def close(self) -> None:
        for item in reversed(self.items):
            item.stop()


TARGETS = ["kubernetes-istio", "kubernetes-replicas", "argo", "cloudrun"]


def start_target(which: str, stack: Stack, tmp_path: Path, *, service: bool = False) -> Deploy:
    if which == "kubernetes-istio":
        return start_kubernetes(stack, tmp_path, istio=True, service=service)
    if which == "kubernetes-replicas":
        return start_kubernetes(stack, tmp_path, istio=False, service=service)
    if which == "argo":
        return start_argo(stack, tmp_path)
    return start_cloudrun(stack, tmp_path)


def _assert_settled(which: str, live: dict[str, Any], image: str, revision: str) -> None:
    """No canary left: ``image`` (on Cloud Run ``revision``) serves everything."""
    if which.startswith("kubernetes"):
        assert live["image"] == image and not live["canary"] and live["replicas"] == 4
        if which == "kubernetes-istio":
            assert live["weights"] == {"stable": 100, "canary": 0}
    elif which == "argo":
        assert live["image"] == image and not live["in_progress"] and live["phase"] == "Healthy"
        assert live["steps"] == rollout_object()["spec"]["strategy"]["canary"]["steps"]
    else:
        assert live["serving"] == {revision: 100}


def assert_known_good(which: str, live: dict[str, Any]) -> None:
    _assert_settled(which, live, GOOD, CLOUDRUN_OLD)


def assert_promoted(which: str, live: dict[str, Any]) -> None:
    _assert_settled(which, live, NEW, CLOUDRUN_NEW)
    if which == "cloudrun":
        assert live["image"].endswith(":v1.3.0")
