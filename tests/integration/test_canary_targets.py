"""`canary run` end to end on each real target's fake, under simulated traffic: records, messages, live state."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from release_actions.cli import main
from release_actions.errors import ReleaseActionsError
from release_actions.integrations import github as gh
from release_actions.targets.factory import make_target
from tests.conftest import CliResult
from tests.fakes.cloudrun import CloudRunFake
from tests.fakes.github import GitHubFake
from tests.fakes.kubernetes import KubernetesFake, document_objects
from tests.fakes.slack import SlackFake
from tests.support.runner_files import parse_file_commands

pytestmark = pytest.mark.integration

NS, NAME = "triptrip", "triptrip-api"
REPO = "asia-northeast1-docker.pkg.dev/triptrip-production/triptrip-api"
GOOD, NEW = f"{REPO}:v1.2.0", f"{REPO}:v1.3.0"
RUN_URL = "https://github.com/octo/app/actions/runs/4242"
CLOUDRUN_OLD = "triptrip-api-00001-abc"
CLOUDRUN_NEW = "triptrip-api-v1-3-0"


# -- shared with test_rollback_cli.py and test_records.py ---------------------------------------


def unpaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """No pause between requests: PyGithub's pacing is for github.com, not for the fake."""
    original = gh.ClientSettings.from_env.__func__  # type: ignore[attr-defined]

    def fast(cls: type[gh.ClientSettings], env: Any) -> gh.ClientSettings:
        settings: gh.ClientSettings = original(cls, env)
        return replace(settings, seconds_between_requests=0, seconds_between_writes=0)

    monkeypatch.setattr(gh.ClientSettings, "from_env", classmethod(fast))


def github_env(github: GitHubFake) -> dict[str, str]:
    return {
        "GITHUB_TOKEN": "ghs_fake",
        "GITHUB_API_URL": github.url,
        "GITHUB_REPOSITORY": "octo/app",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_ACTOR": "octocat",
        "RELEASE_ACTIONS_GITHUB_RETRIES": "0",
        "RELEASE_ACTIONS_GITHUB_TIMEOUT": "5",
    }


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


def start_kubernetes(stack: Any, tmp_path: Path, *, istio: bool) -> Deploy:
    fake = stack.enter(KubernetesFake())
    fake.add_namespace(NS)
    for obj in document_objects(NS, replicas=4, istio=istio):
        fake.apply(obj)
    fake.wait_settled()
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")

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
        return out

    args = ["--target", "kubernetes", "--poll-interval", "0.02"]
    if not istio:
        args.append("--no-istio")

    def target() -> Any:
        from release_actions.core.policy import default_policy

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
        {"KUBECONFIG": str(kubeconfig)},
        live,
        lambda: k8s_writes(fake),
        target,
    )


def start_argo(stack: Any, tmp_path: Path) -> Deploy:
    fake = stack.enter(KubernetesFake())
    fake.add_namespace(NS)
    fake.apply(rollout_object())
    fake.wait_settled()
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")

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
        from release_actions.core.policy import default_policy

        return make_target(
            "argo", default_policy(), {}, api_client=fake.api_client(), poll_interval=0.02
        )

    return Deploy(
        "argo",
        ["--target", "argo", "--poll-interval", "0.02"],
        {"KUBECONFIG": str(kubeconfig)},
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
        from release_actions.core.policy import default_policy

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


def start_target(which: str, stack: Stack, tmp_path: Path) -> Deploy:
    if which == "kubernetes-istio":
        return start_kubernetes(stack, tmp_path, istio=True)
    if which == "kubernetes-replicas":
        return start_kubernetes(stack, tmp_path, istio=False)
    if which == "argo":
        return start_argo(stack, tmp_path)
    return start_cloudrun(stack, tmp_path)


def assert_known_good(which: str, live: dict[str, Any]) -> None:
    if which.startswith("kubernetes"):
        assert live["image"] == GOOD and not live["canary"] and live["replicas"] == 4
        if which == "kubernetes-istio":
            assert live["weights"] == {"stable": 100, "canary": 0}
    elif which == "argo":
        assert live["image"] == GOOD and not live["in_progress"] and live["phase"] == "Healthy"
        assert live["steps"] == rollout_object()["spec"]["strategy"]["canary"]["steps"]
    else:
        assert live["serving"] == {CLOUDRUN_OLD: 100}


def assert_promoted(which: str, live: dict[str, Any]) -> None:
    if which.startswith("kubernetes"):
        assert live["image"] == NEW and not live["canary"] and live["replicas"] == 4
        if which == "kubernetes-istio":
            assert live["weights"] == {"stable": 100, "canary": 0}
    elif which == "argo":
        assert live["image"] == NEW and not live["in_progress"] and live["phase"] == "Healthy"
        assert live["steps"] == rollout_object()["spec"]["strategy"]["canary"]["steps"]
    else:
        assert live["serving"] == {CLOUDRUN_NEW: 100}
        assert live["image"].endswith(":v1.3.0")


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _unpaced(monkeypatch: pytest.MonkeyPatch) -> None:
    unpaced(monkeypatch)


@pytest.fixture
def stack() -> Iterator[Stack]:
    s = Stack()
    yield s
    s.close()


@pytest.fixture
def github() -> Iterator[GitHubFake]:
    with GitHubFake() as fake:
        yield fake


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


@pytest.fixture
def cli(tmp_path: Path, github: GitHubFake, slack: SlackFake) -> Cli:
    return Cli(tmp_path, {**github_env(github), "SLACK_WEBHOOK_URL": slack.webhook_url})


# -- canary run on every target -------------------------------------------------------------------


@pytest.mark.parametrize("which", TARGETS)
def test_a_bad_canary_ends_on_the_known_good_version_with_a_record(
    which: str,
    stack: Stack,
    tmp_path: Path,
    cli: Cli,
    github: GitHubFake,
    slack: SlackFake,
) -> None:
    deploy = start_target(which, stack, tmp_path)
    record_file = tmp_path / "record.json"

    r = cli(
        "canary",
        "run",
        *deploy.args,
        "--version",
        "v1.3.0",
        "--provider",
        "simulated",
        "--scenario",
        "error-spike",
        "--record-file",
        str(record_file),
        env=deploy.env,
    )

    assert r.code == 1, r.stdout + r.stderr
    assert r.outputs["decision"] == "rolled_back"
    assert_known_good(which, deploy.live())
    record = json.loads(record_file.read_text())
    assert r.outputs["record-id"] == record["id"] == "RB-2026-001"
    assert r.outputs["record-file"] == str(record_file)
    assert (record["from_version"], record["to_version"]) == ("v1.3.0", "v1.2.0")
    assert record["trigger"]["type"] == "automatic"
    assert record["duration"]["detection_time"] and record["recovered"] is True
    assert (record["release"], record["target"], record["actor"], record["run_url"]) == (
        "v1.3.0",
        deploy.kind,
        "octocat",
        RUN_URL,
    )
    assert record["timestamp"].endswith("+09:00"), "the policy's time zone (JST)"
    (dep,) = rollback_deployments(github)
    assert dep["payload"]["id"] == "RB-2026-001" and dep["environment"] == "production"
    assert record["github"]["deployment_id"] == dep["id"]
    (status,) = statuses(github, dep)
    assert status["state"] == "success"
    assert status["description"] == "RB-2026-001: v1.3.0 -> v1.2.0"
    assert status["log_url"] == RUN_URL
    texts = [m.text for m in slack.messages]
    assert any("Release v1.3.0 deployment starting" in t for t in texts)
    assert any("AUTO ROLLBACK" in t and "RB-2026-001" in t for t in texts)
    assert "### Rollback record" in r.summary and "RB-2026-001" in r.summary


@pytest.mark.parametrize("which", TARGETS)
def test_a_healthy_canary_is_promoted(
    which: str,
    stack: Stack,
    tmp_path: Path,
    cli: Cli,
    github: GitHubFake,
    slack: SlackFake,
) -> None:
    deploy = start_target(which, stack, tmp_path)

    r = cli(
        "canary",
        "run",
        *deploy.args,
        "--version",
        "v1.3.0",
        "--provider",
        "simulated",
        "--scenario",
        "healthy",
        env=deploy.env,
    )

    assert r.code == 0, r.stdout + r.stderr
    assert (r.outputs["decision"], r.outputs["record-id"]) == ("promoted", "")
    assert_promoted(which, deploy.live())
    assert rollback_deployments(github) == []
    assert any("Release v1.3.0 deployed successfully" in m.text for m in slack.messages)


@pytest.mark.parametrize("which", ["kubernetes-istio", "cloudrun"])
def test_monitor_rolls_a_bad_live_version_back(
    which: str,
    stack: Stack,
    tmp_path: Path,
    cli: Cli,
    github: GitHubFake,
    slack: SlackFake,
) -> None:
    deploy = start_target(which, stack, tmp_path)
    target = deploy.target()
    target.begin("v1.3.0")
    target.promote()
    scenario = tmp_path / "bad-deploy.yml"
    scenario.write_text("events:\n  - {at: 30, track: canary, error_rate: 0.07}\n")

    r = cli(
        "monitor",
        *deploy.args,
        "--provider",
        "simulated",
        "--scenario-file",
        str(scenario),
        env=deploy.env,
    )

    assert r.code == 1, r.stdout + r.stderr
    assert (r.outputs["decision"], r.outputs["record-id"]) == ("rolled_back", "RB-2026-001")
    assert_known_good(which, deploy.live())
    (dep,) = rollback_deployments(github)
    assert dep["payload"]["trigger"]["reason"].startswith("Error rate")
    assert (dep["payload"]["from_version"], dep["payload"]["to_version"]) == ("v1.3.0", "v1.2.0")
    assert any("AUTO ROLLBACK" in m.text for m in slack.messages)


def test_a_real_target_needs_the_simulated_provider_by_name(
    stack: Stack, tmp_path: Path, cli: Cli
) -> None:
    deploy = start_target("kubernetes-istio", stack, tmp_path)
    r = cli("canary", "run", *deploy.args, "--version", "v1.3.0", env=deploy.env)
    assert r.code == 2 and "--provider simulated" in r.stderr
    assert deploy.writes() == [], "nothing was touched"


def test_an_unknown_target_lists_the_valid_ones() -> None:
    from release_actions.core.policy import default_policy

    with pytest.raises(ReleaseActionsError) as info:
        make_target("nomad", default_policy(), {})
    assert "`simulated`, `kubernetes`, `argo`, `cloudrun`" in info.value.message


def test_kubernetes_without_credentials_says_how_to_get_them(tmp_path: Path) -> None:
    r = Cli(tmp_path)(
        "canary",
        "run",
        "--target",
        "kubernetes",
        "--version",
        "v1.3.0",
        "--provider",
        "simulated",
    )
    assert r.code == 2 and "No Kubernetes credentials" in r.stdout + r.stderr


def test_policy_settings_and_flags_reach_the_target(tmp_path: Path) -> None:
    from release_actions.core.policy import parse_policy

    policy = parse_policy(
        {
            "deploy": {
                "kubernetes": {"namespace": "shop", "deployment": "api", "replicas_total": 6},
                "cloudrun": {"project": "p1", "region": "us-central1", "service": "svc"},
            }
        },
        "policy.yml",
    )
    k8s: Any = make_target(
        "kubernetes", policy, {}, api_client=object(), deployment="web", istio=False
    )
    assert (k8s.namespace, k8s.deployment, k8s.virtual_service, k8s.replicas_total) == (
        "shop",
        "web",
        None,
        6,
    )
    with_istio: Any = make_target("kubernetes", policy, {}, api_client=object())
    assert with_istio.virtual_service == "triptrip-api"
    run: Any = make_target(
        "cloudrun",
        policy,
        {"CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN": "http://127.0.0.1:9/"},
        service="other",
    )
    assert (run.project, run.region, run.service) == ("p1", "us-central1", "other")
    assert run.services._transport._host.startswith("http://127.0.0.1:9")


# -- argo render ------------------------------------------------------------------------------------


def test_argo_render_writes_the_policys_rollout(tmp_path: Path) -> None:
    out = tmp_path / "rollout.yml"
    r = Cli(tmp_path)(
        "argo", "render", "--provider", "prometheus", "--service", "api", "--output", str(out)
    )
    assert r.code == 0, r.stderr
    rollout, template = YAML(typ="safe").load_all(out.read_text())
    assert rollout["kind"] == "Rollout" and rollout["metadata"]["name"] == NAME
    weights = [
        s["setWeight"] for s in rollout["spec"]["strategy"]["canary"]["steps"] if "setWeight" in s
    ]
    assert weights == [5, 20, 50, 100]
    assert template["kind"] == "AnalysisTemplate"
    assert "prometheus" in template["spec"]["metrics"][0]["provider"]
    assert r.outputs["file"] == str(out)
    shown = Cli(tmp_path)("argo", "render", "--provider", "datadog", "--name", "web")
    assert shown.code == 0 and "name: web" in shown.stdout and "datadog" in shown.stdout
