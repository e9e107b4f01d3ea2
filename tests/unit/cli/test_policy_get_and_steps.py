"""`policy get` for scripts, `canary run --steps` overrides, and a kubeconfig from a secret."""

from __future__ import annotations

import base64
import json

import pytest

from release_actions.errors import TargetError
from release_actions.targets.k8s_util import _kubeconfig_dict
from tests.conftest import RunCli

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "http://127.0.0.1:1"}
users:
- name: u
  user: {token: t}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
"""


def test_policy_get_prints_scalars_and_json(run_cli: RunCli) -> None:
    assert (
        run_cli("policy", "get", "release_types.hotfix.monitor_seconds", actions=False).stdout
        == "1800\n"
    )
    assert run_cli("policy", "get", "deploy.kubernetes.container", actions=False).stdout == "\n"
    steps = run_cli("policy", "get", "calendar.release_window.days", actions=False)
    assert json.loads(steps.stdout) == ["tuesday"]
    assert (
        run_cli("policy", "get", "calendar.blocked_periods.0.start", actions=False).stdout
        == "12-28\n"
    )
    missing = run_cli("policy", "get", "deploy.nope")
    assert missing.code == 2 and "has no `deploy.nope`" in missing.stdout


@pytest.mark.parametrize(
    "how", [["--release-type", "hotfix", "--steps", "direct"], ["--stage", "staging"]]
)
def test_canary_run_steps_direct_goes_straight_to_100(run_cli: RunCli, how: list[str]) -> None:
    result = run_cli(
        "canary",
        "run",
        "--target",
        "simulated",
        "--version",
        "v9.9.9",
        *how,
        "--json",
        actions=False,
    )
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["decision"] == "promoted"
    assert [s["weight"] for s in data["steps"]] == [100]


def test_canary_run_refuses_direct_steps_where_the_type_requires_a_canary(
    run_cli: RunCli,
) -> None:
    """Source §3.3: a regular release always goes out as a canary; `direct` would skip it."""
    result = run_cli(
        "canary",
        "run",
        "--target",
        "simulated",
        "--version",
        "v9.9.9",
        "--steps",
        "direct",
        actions=False,
    )
    assert result.code == 2
    assert "Release type `regular` requires a canary" in result.stderr


def test_canary_run_target_defaults_to_the_policy(run_cli: RunCli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "p.yml"
    policy.write_text("deploy:\n  target: simulated\n")
    result = run_cli(
        "canary", "run", "--version", "v9.9.9", "--policy", str(policy), "--json", actions=False
    )
    assert result.code == 0 and json.loads(result.stdout)["target"] == "simulated"


@pytest.mark.parametrize("encode", [lambda t: t, lambda t: base64.b64encode(t.encode()).decode()])
def test_kube_config_secret_as_text_or_base64(encode) -> None:  # type: ignore[no-untyped-def]
    assert _kubeconfig_dict(encode(KUBECONFIG))["current-context"] == "x"


@pytest.mark.parametrize(
    "bad", ["not: a kubeconfig", "%%%", base64.b64encode(b"- a\n- b").decode()]
)
def test_kube_config_secret_that_is_not_a_kubeconfig(bad: str) -> None:
    with pytest.raises(TargetError, match="KUBE_CONFIG"):
        _kubeconfig_dict(bad)
