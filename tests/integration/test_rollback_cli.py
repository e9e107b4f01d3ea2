"""`release-actions rollback` against the target fakes: known-good, twice-safe, kubectl's undo, flags, safety."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.fakes.github import GitHubFake
from tests.fakes.kubernetes import KubernetesFake
from tests.fakes.launchdarkly import API_TOKEN, LaunchDarklyFake
from tests.fakes.slack import SlackFake
from tests.integration.deploys import (
    GOOD,
    RUN_URL,
    Cli,
    Stack,
    assert_known_good,
    github_writes,
    rollback_deployments,
    start_target,
    statuses,
)
from tests.integration.fake_github import fake_github_env
from tests.support.kubectl import Kubectl, deployment_history, revisions

pytestmark = pytest.mark.integration

YEAR = datetime.now(ZoneInfo("Asia/Tokyo")).year
FLAG = "ai-trip-suggestions"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "migrations"
CONTRACT = "20260301000000_contract_email_verified"


# -- back to the known-good version, and only once ------------------------------------------------


@pytest.mark.parametrize("which", ["kubernetes-istio", "argo", "cloudrun"])
def test_rollback_returns_to_known_good_and_a_second_run_changes_nothing(
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
    target.set_weight(20)
    record_file = tmp_path / "rb.json"

    first = cli(
        "rollback",
        *deploy.args,
        "--reason",
        "error rate 7.2% after the deploy",
        "--record-file",
        str(record_file),
        env=deploy.env,
    )

    assert first.code == 0, first.stdout + first.stderr
    assert_known_good(which, deploy.live())
    assert first.outputs["changed"] == "true"
    assert (first.outputs["from-version"], first.outputs["to-version"]) == ("v1.3.0", "v1.2.0")
    record = json.loads(record_file.read_text())
    assert first.outputs["record-id"] == record["id"] == f"RB-{YEAR}-001"
    assert record["trigger"] == {
        "type": "manual",
        "reason": "error rate 7.2% after the deploy",
        "metrics": {},
    }
    assert record["run_url"] == RUN_URL and record["target"] == deploy.kind
    from release_actions import version

    assert record["tool_version"] == version() and version()[0].isdigit()
    (dep,) = rollback_deployments(github)
    assert statuses(github, dep)[0]["description"] == f"RB-{YEAR}-001: v1.3.0 -> v1.2.0"
    assert any("Rollback" in m.text and "v1.3.0 → v1.2.0" in m.text for m in slack.messages)
    assert f"### Rollback record RB-{YEAR}-001" in first.summary

    target_writes, gh_writes, messages = deploy.writes(), github_writes(github), len(slack.messages)
    second = cli("rollback", *deploy.args, env=deploy.env)

    assert second.code == 0, second.stdout + second.stderr
    assert second.outputs["changed"] == "false" and second.outputs["record-id"] == ""
    assert "Nothing to roll back" in second.stdout
    assert deploy.writes() == target_writes, "the second run wrote nothing to the target"
    assert github_writes(github) == gh_writes and len(slack.messages) == messages
    assert_known_good(which, deploy.live())


def test_rollback_of_the_simulated_target_through_its_state_file(tmp_path: Path) -> None:
    run = Cli(tmp_path)
    state = str(tmp_path / "target.json")
    rolled = run(
        "canary", "run", "--target", "simulated", "--version", "v2.0.0", "--state-file", state
    )
    assert rolled.code == 0
    first = run(
        "rollback", "--target", "simulated", "--state-file", state,
        "--provider", "simulated", "--scenario", "healthy", "--json",
    )  # fmt: skip
    data = json.loads(first.stdout)
    assert (first.code, data["changed"]) == (0, True)
    record = data["record"]
    assert (record["from_version"], record["to_version"]) == ("v2.0.0", "v1.5.1")
    # The recovery check of source §6.2 step 3 ran on the simulator's clock.
    assert record["recovered"] is True
    assert record["duration"]["rollback_time"] == "30 seconds"
    assert record["duration"]["recovery_time"] == "1 minute"
    assert record["id"].startswith("RB-2026-") and record["timestamp"].startswith("2026-01-20T")
    assert json.loads(Path(state).read_text())["stable_version"] == "v1.5.1"
    again = run("rollback", "--target", "simulated", "--state-file", state)
    assert (again.code, again.outputs["changed"]) == (0, "false")


# -- kubectl rollout undo --to-revision ---------------------------------------------------------------


@pytest.mark.parametrize("to_revision", [1, 0])
def test_to_revision_leaves_what_kubectl_leaves(
    kubectl_binary: str, tmp_path: Path, stack: Stack, to_revision: int
) -> None:
    theirs, ours = stack.enter(KubernetesFake()), stack.enter(KubernetesFake())
    k_theirs, k_ours = Kubectl(theirs, tmp_path / "a"), Kubectl(ours, tmp_path / "b")
    images = ["nginx:1", "nginx:2", "nginx:3"]
    deployment_history(k_theirs, images)
    deployment_history(k_ours, images)

    out = k_theirs("rollout", "undo", "deployment/web", f"--to-revision={to_revision}")
    r = Cli(tmp_path, {"KUBECONFIG": str(k_ours.kubeconfig)})(
        "rollback",
        "--target",
        "kubernetes",
        "--namespace",
        "default",
        "--deployment",
        "web",
        "--no-istio",
        "--to-revision",
        str(to_revision),
        "--poll-interval",
        "0.02",
    )

    assert r.code == 0, r.stdout + r.stderr
    assert "rolled back" in out.stdout and "deployment.apps/web rolled back" in r.stdout
    theirs.wait_settled()
    ours.wait_settled()
    a, b = theirs.get("deployments", "default", "web"), ours.get("deployments", "default", "web")
    assert a["spec"]["template"] == b["spec"]["template"]
    assert revisions(theirs, "default", "web") == revisions(ours, "default", "web")
    assert r.outputs["changed"] == "true"
    expected = "1" if to_revision == 1 else "2"
    assert (r.outputs["from-version"], r.outputs["to-version"]) == ("3", expected)


def test_to_revision_never_flips_back_to_a_version_the_known_good_replaced(
    kubectl_binary: str, tmp_path: Path, stack: Stack
) -> None:
    """`kubectl rollout undo`'s flip: v1 -> v2, rolled back to v1; then `--to-revision 0` (the
    previous one) and `--to-revision` of v2's revision must both leave v1 live."""
    fake = stack.enter(KubernetesFake())
    k = Kubectl(fake, tmp_path / "k")
    deployment_history(k, ["nginx:v1.0.0", "nginx:v2.0.0"])
    cli = Cli(tmp_path, {"KUBECONFIG": str(k.kubeconfig)})
    args = ["rollback", "--target", "kubernetes", "--namespace", "default", "--deployment", "web",
            "--no-istio", "--poll-interval", "0.02"]  # fmt: skip

    def live() -> str:
        fake.wait_settled()
        out = k("get", "deployment/web", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
        return out.stdout.strip()

    back = cli(*args, "--to-revision", "1")
    assert back.code == 0, back.stdout + back.stderr
    assert live() == "nginx:v1.0.0"
    for revision in ("0", "2"):
        flip = cli(*args, "--to-revision", revision)
        assert flip.code == 2, flip.stdout + flip.stderr
        assert "v2.0.0 is newer than the known-good v1.0.0" in flip.stdout
        assert "--force" in flip.stdout + flip.stderr
        assert live() == "nginx:v1.0.0", revision
    # On purpose, with --force: done, and recorded as not known-good.
    forced = cli(*args, "--to-revision", "0", "--force", "--json")
    assert forced.code == 0, forced.stdout + forced.stderr
    assert live() == "nginx:v2.0.0"
    # In Actions, annotations share standard output with the JSON document.
    record = json.loads(forced.stdout[forced.stdout.index("{\n") :])["record"]
    assert (record["from_version"], record["to_version"]) == ("v1.0.0", "v2.0.0")
    assert "not known-good" in record["detail"]
    # The known-good stays v1.0.0: the safe rollback goes back there.
    safe = cli(*args)
    assert safe.code == 0, safe.stdout + safe.stderr
    assert live() == "nginx:v1.0.0"


def test_to_revision_errors_are_kubectls(kubectl_binary: str, tmp_path: Path, stack: Stack) -> None:
    fake = stack.enter(KubernetesFake())
    k = Kubectl(fake, tmp_path / "k")
    deployment_history(k, ["nginx:1", "nginx:2"])
    theirs = k("rollout", "undo", "deployment/web", "--to-revision=7", ok=False)
    r = Cli(tmp_path, {"KUBECONFIG": str(k.kubeconfig)})(
        "rollback", "--target", "kubernetes", "--namespace", "default", "--deployment", "web",
        "--no-istio", "--to-revision", "7",
    )  # fmt: skip
    assert r.code == 2
    message = "unable to find specified revision 7 in history"
    assert message in theirs.stderr and message in r.stdout + r.stderr


def test_to_revision_is_for_kubernetes_only(tmp_path: Path) -> None:
    r = Cli(tmp_path)("rollback", "--target", "argo", "--to-revision", "2")
    assert r.code == 2 and "`--to-revision` belongs to `--target kubernetes`" in r.stdout + r.stderr


# -- option C: flags off ------------------------------------------------------------------------------


@pytest.fixture
def launchdarkly() -> Iterator[LaunchDarklyFake]:
    with LaunchDarklyFake() as fake:
        fake.add_flag(FLAG)
        fake.add_flag("new-search")
        yield fake


def test_flags_only_turns_the_kill_switch_off(
    tmp_path: Path, cli: Cli, launchdarkly: LaunchDarklyFake, github: GitHubFake
) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(f"feature_flags:\n  launchdarkly:\n    kill_switch: [{FLAG}]\n")
    env = {"LD_API_KEY": API_TOKEN, "LAUNCHDARKLY_BASE_URL": launchdarkly.url}

    r = cli(
        "rollback", "--flags-only", "--policy", str(policy), "--reason", "checkout errors", env=env
    )

    assert r.code == 0, r.stdout + r.stderr
    assert not launchdarkly.is_on(FLAG, "production")
    assert launchdarkly.is_on(FLAG, "staging") and launchdarkly.is_on("new-search", "production")
    assert r.outputs["flags-turned-off"] == FLAG
    (dep,) = rollback_deployments(github)
    assert dep["payload"]["flags_turned_off"] == [FLAG]
    assert statuses(github, dep)[0]["description"] == f"{dep['payload']['id']}: flags off: {FLAG}"
    again = cli("rollback", "--flags-only", "--policy", str(policy), env=env)
    assert (again.code, again.outputs["changed"]) == (0, "false")
    assert len(rollback_deployments(github)) == 1


def test_flags_alongside_a_kubernetes_rollback(
    stack: Stack, tmp_path: Path, cli: Cli, launchdarkly: LaunchDarklyFake
) -> None:
    deploy = start_target("kubernetes-istio", stack, tmp_path)
    target = deploy.target()
    target.begin("v1.3.0")
    env = {**deploy.env, "LD_API_KEY": API_TOKEN, "LAUNCHDARKLY_BASE_URL": launchdarkly.url}

    r = cli("rollback", *deploy.args, "--flag", FLAG, "--flag", "new-search", env=env)

    assert r.code == 0, r.stdout + r.stderr
    assert_known_good("kubernetes-istio", deploy.live())
    assert not launchdarkly.is_on(FLAG, "production")
    assert not launchdarkly.is_on("new-search", "production")
    assert r.outputs["flags-turned-off"] == f"{FLAG},new-search"


def test_a_flag_that_stays_on_fails_the_step_after_the_rollback(
    stack: Stack, tmp_path: Path, cli: Cli, launchdarkly: LaunchDarklyFake
) -> None:
    deploy = start_target("kubernetes-istio", stack, tmp_path)
    deploy.target().begin("v1.3.0")
    env = {**deploy.env, "LD_API_KEY": API_TOKEN, "LAUNCHDARKLY_BASE_URL": launchdarkly.url}

    r = cli("rollback", *deploy.args, "--flag", "no-such-flag", env=env)

    assert r.code == 1
    assert_known_good("kubernetes-istio", deploy.live())
    assert "no-such-flag" in r.stdout and r.outputs["changed"] == "true"


# -- rollback safety across code and schema ---------------------------------------------------------


def test_refuses_to_roll_back_past_a_contract_migration(
    stack: Stack, tmp_path: Path, cli: Cli, github: GitHubFake
) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(FIXTURES / "prisma" / "base", migrations)
    shutil.copytree(FIXTURES / "cases" / "contract" / CONTRACT, migrations / CONTRACT)
    policy = tmp_path / "policy.yml"
    policy.write_text(f"migrations:\n  dir: {migrations}\n")
    deploy = start_target("kubernetes-istio", stack, tmp_path)
    deploy.target().begin("v1.3.0")
    before = deploy.writes()
    applied = json.dumps([CONTRACT])
    args = ["rollback", *deploy.args, "--policy", str(policy), "--applied-migrations", applied]

    refused = cli(*args, env=deploy.env)

    assert refused.code == 2
    assert "Refusing to roll the application back" in refused.stdout
    assert CONTRACT in refused.stdout and "drop column" in refused.stdout
    assert "--allow-contract" in refused.stderr
    assert deploy.writes() == before and rollback_deployments(github) == []
    assert deploy.live()["canary"], "nothing was touched"

    allowed = cli(*args, "--allow-contract", env=deploy.env)

    assert allowed.code == 0, allowed.stdout + allowed.stderr
    assert "::warning" in allowed.stdout and CONTRACT in allowed.stdout
    assert deploy.live()["image"] == GOOD


# -- records must not be lost ----------------------------------------------------------------------------


def test_github_down_is_a_warning_and_the_record_file_is_written(
    stack: Stack, tmp_path: Path, slack: SlackFake
) -> None:
    deploy = start_target("kubernetes-istio", stack, tmp_path)
    deploy.target().begin("v1.3.0")
    record_file = tmp_path / "rb.json"
    down = fake_github_env(
        "http://127.0.0.1:9",
        "ghs_fake",
        RELEASE_ACTIONS_GITHUB_TIMEOUT="2",
        SLACK_WEBHOOK_URL=slack.webhook_url,
    )

    r = Cli(tmp_path, down)(
        "rollback", *deploy.args, "--record-file", str(record_file), env=deploy.env
    )

    assert r.code == 0, r.stdout + r.stderr
    assert_known_good("kubernetes-istio", deploy.live())
    record = json.loads(record_file.read_text())
    # GitHub could not number it: a provisional id that cannot clash, filed by `records sync`.
    assert record["id"] == r.outputs["record-id"]
    assert record["id"].startswith(f"RB-{YEAR}-P-")
    assert "github" not in record
    assert "::warning title=Rollback record::" in r.stdout and "not attached to GitHub" in r.stdout
    assert "cannot reach GitHub" in r.stdout
    assert any("v1.3.0 → v1.2.0" in m.text for m in slack.messages), "messages still go out"
