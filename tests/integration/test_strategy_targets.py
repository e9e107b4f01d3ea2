"""Blue-green and shadow through `canary run` on each real target's fake, under simulated traffic.

The engine, the real client of each target and the simulated users meet here: what the
cluster or Cloud Run ends on, what is recorded, and that a preview or a shadow never counts
as a rollback.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.fakes.github import GitHubFake
from tests.integration.deploys import (
    Cli,
    Stack,
    assert_known_good,
    assert_promoted,
    rollback_deployments,
    start_target,
)

pytestmark = pytest.mark.integration

NS_ARGO = "triptrip"
BLUE_GREEN_TARGETS = ["kubernetes-istio", "kubernetes-replicas", "cloudrun"]
POLICY = """\
deploy:
  blue_green:
    preview_url: http://triptrip-api.preview.test
  shadow:
    then: none
"""


def run(cli: Cli, deploy: Any, tmp_path: Path, strategy: str, scenario: str) -> Any:
    policy = tmp_path / "policy.yml"
    policy.write_text(POLICY, encoding="utf-8")
    return cli(
        "canary",
        "run",
        *deploy.args,
        "--version",
        "v1.3.0",
        "--strategy",
        strategy,
        "--provider",
        "simulated",
        "--scenario",
        scenario,
        "--policy",
        str(policy),
        env=deploy.env,
    )


@pytest.mark.parametrize("which", BLUE_GREEN_TARGETS)
def test_blue_green_switches_and_ends_on_the_new_version(
    which: str, stack: Stack, tmp_path: Path, cli: Cli, github: GitHubFake
) -> None:
    deploy = start_target(which, stack, tmp_path, service=True)
    r = run(cli, deploy, tmp_path, "blue-green", "blue-green-healthy")
    assert r.code == 0, r.stdout + r.stderr
    assert r.outputs["decision"] == "switched"
    assert_promoted(which, deploy.live())
    assert rollback_deployments(github) == []


@pytest.mark.parametrize("which", BLUE_GREEN_TARGETS)
def test_a_regression_after_the_switch_switches_back_with_a_record(
    which: str, stack: Stack, tmp_path: Path, cli: Cli, github: GitHubFake
) -> None:
    deploy = start_target(which, stack, tmp_path, service=True)
    r = run(cli, deploy, tmp_path, "blue-green", "blue-green-regression-after-switch")
    assert r.code == 1, r.stdout + r.stderr
    assert r.outputs["decision"] == "rolled_back"
    live = deploy.live()
    assert_known_good(which, live)
    if which == "kubernetes-replicas":
        assert live["selector"] == {"app": "triptrip-api"}  # switched back, then restored
    (dep,) = rollback_deployments(github)
    assert dep["payload"]["from_version"] == "v1.3.0"
    # Run again: the rollout is over; nothing changes and nothing more is recorded.
    writes = len(deploy.writes())
    again = run(cli, deploy, tmp_path, "blue-green", "blue-green-regression-after-switch")
    assert again.outputs["decision"] == "rolled_back"
    assert len(rollback_deployments(github)) == 1
    assert_known_good(which, deploy.live())
    assert deploy.writes()[writes:] == []  # the second run changed nothing


@pytest.mark.parametrize("which", BLUE_GREEN_TARGETS)
def test_a_bad_preview_aborts_with_the_old_version_untouched(
    which: str, stack: Stack, tmp_path: Path, cli: Cli, github: GitHubFake
) -> None:
    deploy = start_target(which, stack, tmp_path, service=True)
    r = run(cli, deploy, tmp_path, "blue-green", "blue-green-bad-preview")
    assert r.code == 1, r.stdout + r.stderr
    assert r.outputs["decision"] == "aborted"
    assert_known_good(which, deploy.live())
    assert rollback_deployments(github) == []  # nothing was released, nothing rolled back


@pytest.mark.parametrize(
    ("scenario", "decision"), [("shadow-errors", "failed"), ("shadow-healthy", "passed")]
)
def test_a_shadow_on_istio_leaves_users_on_stable(
    scenario: str, decision: str, stack: Stack, tmp_path: Path, cli: Cli, github: GitHubFake
) -> None:
    deploy = start_target("kubernetes-istio", stack, tmp_path)
    r = run(cli, deploy, tmp_path, "shadow", scenario)
    assert r.code == (0 if decision == "passed" else 1), r.stdout + r.stderr
    assert r.outputs["decision"] == decision
    assert_known_good("kubernetes-istio", deploy.live())
    assert rollback_deployments(github) == []
    assert deploy.live()["mirror"] is None  # the mirror was taken away with the shadow
    assert any("virtualservices" in w for w in deploy.writes())  # and it had been set


def test_blue_green_without_a_service_is_refused_before_anything_changes(
    stack: Stack, tmp_path: Path, cli: Cli, slack: Any
) -> None:
    deploy = start_target("kubernetes-replicas", stack, tmp_path)  # no Service in front
    r = run(cli, deploy, tmp_path, "blue-green", "blue-green-healthy")
    assert r.code == 2, r.stdout + r.stderr
    assert "Pre-flight check `strategy` failed" in r.stdout + r.stderr
    assert "Service `triptrip-api` does not exist" in r.stdout + r.stderr
    assert deploy.writes() == []
    assert slack.messages == []  # no "release started" for a release that cannot start


def test_shadow_is_refused_on_cloud_run_before_anything_changes(
    stack: Stack, tmp_path: Path, cli: Cli
) -> None:
    deploy = start_target("cloudrun", stack, tmp_path)
    r = run(cli, deploy, tmp_path, "shadow", "shadow-healthy")
    assert r.code == 2, r.stdout + r.stderr
    assert "Cloud Run has no traffic mirroring" in r.stdout + r.stderr
    assert deploy.writes() == []


@pytest.mark.parametrize(
    ("scenario", "decision", "code", "serving"),
    [
        ("blue-green-healthy", "switched", 0, "v1.3.0"),
        ("blue-green-regression-after-switch", "rolled_back", 1, "v1.2.0"),
        ("blue-green-bad-preview", "aborted", 1, "v1.2.0"),
    ],
)
def test_an_argo_blue_green_rollout_through_the_engine(
    scenario: str,
    decision: str,
    code: int,
    serving: str,
    stack: Stack,
    tmp_path: Path,
    cli: Cli,
    github: GitHubFake,
) -> None:
    from tests.fakes.kubernetes import KubernetesFake
    from tests.integration.test_argo_bluegreen import ACTIVE, HASH, blue_green_rollout, start

    fake: KubernetesFake = stack.enter(KubernetesFake())
    start(fake, blue_green_rollout())
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig")
    deploy = SimpleNamespace(
        args=["--target", "argo", "--poll-interval", "0.02"],
        env={"KUBECONFIG": str(kubeconfig)},
    )
    r = run(cli, deploy, tmp_path, "blue-green", scenario)
    assert r.code == code, r.stdout + r.stderr
    assert r.outputs["decision"] == decision
    ro = fake.get("rollouts", NS_ARGO, "triptrip-api", group="argoproj.io")
    active = fake.get("services", NS_ARGO, ACTIVE)["spec"]["selector"].get(HASH)
    live = [
        rs
        for rs in fake.list("replicasets", NS_ARGO)
        if rs["metadata"]["labels"].get(HASH) == active
    ]
    assert live and live[0]["spec"]["template"]["spec"]["containers"][0]["image"].endswith(
        f":{serving}"
    ), ro["status"]
    records = rollback_deployments(github)
    assert len(records) == (1 if decision == "rolled_back" else 0)
