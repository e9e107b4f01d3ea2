"""`canary run` end to end on each real target's fake, under simulated traffic: records, messages, live state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from release_actions.errors import ReleaseActionsError
from release_actions.targets.factory import make_target
from tests.fakes.github import GitHubFake
from tests.fakes.slack import SlackFake
from tests.integration.deploys import (
    NAME,
    RUN_URL,
    TARGETS,
    Cli,
    Stack,
    assert_known_good,
    assert_promoted,
    rollback_deployments,
    start_target,
    statuses,
)

pytestmark = pytest.mark.integration


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


def test_a_dead_metrics_provider_stops_the_rollout_before_traffic_moves(
    stack: Stack, tmp_path: Path, cli: Cli
) -> None:
    """Pre-flight: a wrong Prometheus URL is found before the canary, not after 4 minutes."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    deploy = start_target("kubernetes-istio", stack, tmp_path)
    r = cli(
        "canary", "run", *deploy.args, "--version", "v1.3.0", "--provider", "prometheus",
        "--provider-setting", f"url=http://127.0.0.1:{closed}", env=deploy.env,
    )  # fmt: skip
    assert r.code == 2, r.stdout + r.stderr
    assert "Pre-flight check `metrics` failed" in r.stdout + r.stderr
    assert "does not answer its health check" in r.stdout + r.stderr
    assert "nothing was changed" in r.stdout + r.stderr
    assert deploy.writes() == [], "no traffic moved"


def test_a_real_target_needs_the_simulated_provider_by_name(
    stack: Stack, tmp_path: Path, cli: Cli
) -> None:
    deploy = start_target("kubernetes-istio", stack, tmp_path)
    r = cli("canary", "run", *deploy.args, "--version", "v1.3.0", env=deploy.env)
    assert r.code == 2 and "--provider simulated" in r.stdout + r.stderr
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
    docs = {d["kind"]: d for d in YAML(typ="safe").load_all(out.read_text())}
    rollout, template = docs["Rollout"], docs["AnalysisTemplate"]
    assert rollout["metadata"]["name"] == NAME
    weights = [
        s["setWeight"] for s in rollout["spec"]["strategy"]["canary"]["steps"] if "setWeight" in s
    ]
    assert weights == [5, 20, 50, 100]
    assert template["kind"] == "AnalysisTemplate"
    assert "prometheus" in template["spec"]["metrics"][0]["provider"]
    assert r.outputs["file"] == str(out)
    shown = Cli(tmp_path)("argo", "render", "--provider", "datadog", "--name", "web")
    assert shown.code == 0 and "name: web" in shown.stdout and "datadog" in shown.stdout


@pytest.mark.parametrize("ld_up", [True, False])
def test_an_automatic_rollback_turns_the_kill_switch_off(
    ld_up: bool, stack: Stack, tmp_path: Path, cli: Cli, github: GitHubFake
) -> None:
    """Option C of §6.2 alongside A: the canary's rollback turns the policy's flags off; an
    outage of LaunchDarkly during the rollout (it answered the pre-flight check) leaves them
    on, says so, and never undoes the rollback."""
    from tests.fakes.launchdarkly import API_TOKEN, LaunchDarklyFake

    launchdarkly = stack.enter(LaunchDarklyFake())
    launchdarkly.add_flag("new-checkout")
    if not ld_up:
        # Every write fails, through all of the client's retries.
        launchdarkly.fail_next("PATCH", 503, times=100)
    policy = tmp_path / "policy.yml"
    policy.write_text("feature_flags:\n  launchdarkly:\n    kill_switch: [new-checkout]\n")
    deploy = start_target("kubernetes-istio", stack, tmp_path)
    record_file = tmp_path / "record.json"
    env = {**deploy.env, "LD_API_KEY": API_TOKEN, "LAUNCHDARKLY_BASE_URL": launchdarkly.url}
    r = cli(
        "canary", "run", *deploy.args, "--version", "v1.3.0", "--provider", "simulated",
        "--scenario", "error-spike", "--policy", str(policy), "--record-file", str(record_file),
        env=env,
    )  # fmt: skip
    assert r.code == 1, r.stdout + r.stderr
    assert_known_good("kubernetes-istio", deploy.live())
    record = json.loads(record_file.read_text())
    if ld_up:
        assert not launchdarkly.is_on("new-checkout", "production")
        assert record["flags_turned_off"] == ["new-checkout"]
    else:
        assert launchdarkly.is_on("new-checkout", "production")
        assert not record.get("flags_turned_off")
        assert "not every kill-switch flag is off" in r.stdout
    (dep,) = rollback_deployments(github)
    assert dep["payload"].get("flags_turned_off") == record.get("flags_turned_off")


DD_REQUESTS = "sum:preflight.requests{*}.as_count()"
DD_ERRORS = "sum:preflight.errors{*}.as_count()"


@pytest.mark.parametrize(
    ("traffic", "flags", "check"),
    [
        (False, "", "stable traffic"),
        (True, "no-such-flag", "kill switch"),
        (True, "new-checkout", None),
    ],
)
def test_pre_flight_names_the_check_that_failed_before_any_traffic_moves(
    traffic: bool, flags: str, check: str | None, stack: Stack, tmp_path: Path, cli: Cli
) -> None:
    """Source §6.1 needs stable traffic to compare with and §6.2 option C needs its flags:
    both are checked before the first weight change, and a failure is exit 2."""
    from tests.fakes.datadog import API_KEY, APP_KEY, DatadogFake, ok
    from tests.fakes.launchdarkly import API_TOKEN, LaunchDarklyFake

    datadog = stack.enter(DatadogFake())
    if traffic:
        datadog.script(DD_REQUESTS, ok([600, 600, 600, 600, 600], interval=60))
        datadog.script(DD_ERRORS, ok([0, 0, 0, 0, 0], interval=60))
    launchdarkly = stack.enter(LaunchDarklyFake())
    launchdarkly.add_flag("new-checkout")
    policy = tmp_path / "policy.yml"
    policy.write_text(
        "metrics:\n  datadog:\n    queries:\n"
        f"      requests: '{DD_REQUESTS}'\n      errors: '{DD_ERRORS}'\n      p99: null\n"
        + (f"feature_flags:\n  launchdarkly:\n    kill_switch: [{flags}]\n" if flags else "")
    )
    deploy = start_target("kubernetes-istio", stack, tmp_path)
    env = {
        **deploy.env,
        "DD_API_KEY": API_KEY,
        "DD_APP_KEY": APP_KEY,
        "LD_API_KEY": API_TOKEN,
        "LAUNCHDARKLY_BASE_URL": launchdarkly.url,
    }
    r = cli(
        "--dry-run", "canary", "run", *deploy.args, "--version", "v1.3.0", "--provider",
        "datadog", "--provider-setting", f"host={datadog.url}", "--policy", str(policy), env=env,
    )  # fmt: skip
    if check is None:
        assert r.code == 0, r.stdout + r.stderr
        assert "Would roll v1.3.0 out" in r.stdout
    else:
        assert r.code == 2, r.stdout + r.stderr
        assert f"Pre-flight check `{check}` failed" in r.stdout
        assert "nothing was changed" in r.stdout
    assert deploy.writes() == [], "no traffic moved"


def test_staging_needs_neither_stable_traffic_nor_production_flags(
    stack: Stack, tmp_path: Path, cli: Cli
) -> None:
    """A staging deploy goes straight to 100 % with no judge, on staging's own target: the
    pre-flight asks neither for stable traffic to compare with nor for production's flags."""
    from tests.fakes.datadog import API_KEY, APP_KEY, DatadogFake

    datadog = stack.enter(DatadogFake())  # answers its health check, serves no series
    deploy = start_target("kubernetes-istio", stack, tmp_path)
    policy = tmp_path / "policy.yml"
    policy.write_text(
        "deploy:\n  environments:\n    staging: {}\n"
        "feature_flags:\n  launchdarkly:\n    kill_switch: [new-checkout]\n"
    )
    env = {**deploy.env, "DD_API_KEY": API_KEY, "DD_APP_KEY": APP_KEY}  # no LD_API_KEY
    r = cli(
        "--dry-run", "canary", "run", *deploy.args, "--version", "v1.3.0", "--stage", "staging",
        "--provider", "datadog", "--provider-setting", f"host={datadog.url}",
        "--policy", str(policy), env=env,
    )  # fmt: skip
    assert r.code == 0, r.stdout + r.stderr
    assert "Would roll v1.3.0 out" in r.stdout and "stage `staging`" in r.stdout
    production = cli(
        "--dry-run", "canary", "run", *deploy.args, "--version", "v1.3.0", "--provider",
        "datadog", "--provider-setting", f"host={datadog.url}", "--policy", str(policy), env=env,
    )  # fmt: skip
    assert production.code == 2, "production still needs both"
    assert "Pre-flight check `stable traffic` failed" in production.stdout
