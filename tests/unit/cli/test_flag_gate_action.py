"""The flags action's `command: rollout-gate`: the scheduled gate over every rollout in progress."""

from __future__ import annotations

import pytest

from release_actions.cli.action import arguments, extras
from tests.conftest import RunCli


def test_rollout_gate_runs_the_gate_over_every_rollout_in_progress() -> None:
    env = {
        "INPUT_COMMAND": "rollout-gate",
        "INPUT_PROVIDER": "prometheus",
        "INPUT_PROVIDER_SETTINGS": "url=http://prometheus:9090\nservice=api\n",
        "INPUT_PROJECT": "triptrip",
        "INPUT_NOW": "",
        "INPUT_POLICY": "",
        # The audit's own inputs reach nothing here.
        "INPUT_INPUT": "flags.json",
        "INPUT_OPEN_ISSUES": "true",
    }
    assert arguments("flags", env) == [
        *("flags", "rollout", "--gate", "--provider", "prometheus"),
        *("--project", "triptrip"),
        *("--provider-setting", "url=http://prometheus:9090"),
        *("--provider-setting", "service=api"),
        "--all",
    ]
    # The records (GitHub) and the notices (Slack) of a rollback; Datadog's SDK when named.
    assert extras("flags", env) == ["github", "slack"]
    assert extras("flags", {**env, "INPUT_PROVIDER": "datadog"}) == ["datadog", "github", "slack"]


def test_the_audit_is_still_the_default() -> None:
    for command in ("", "audit"):
        env = {"INPUT_COMMAND": command, "INPUT_INPUT": "flags.json", "INPUT_OPEN_ISSUES": "false"}
        assert arguments("flags", env) == ["flags", "audit", "--input", "flags.json"]
        assert extras("flags", env) == []


def test_rollout_gate_with_a_flag_starts_or_looks_at_that_one() -> None:
    # A workflow_dispatch's `flag` starts a gated rollout without anyone's token on a laptop;
    # after `--` a key can never be read as an option.
    env = {"INPUT_COMMAND": "rollout-gate", "INPUT_FLAG": " new-booking-flow ", "INPUT_NOW": ""}
    assert arguments("flags", env) == ["flags", "rollout", "--gate", "--", "new-booking-flow"]
    env["INPUT_FLAG"] = "--all"
    assert arguments("flags", env)[-2:] == ["--", "--all"]


@pytest.mark.parametrize("key", ["--all", "..", "a/b", "x y", "-x", ""])
def test_a_key_that_launchdarkly_would_not_allow_is_refused_before_any_request(
    run_cli: RunCli, key: str
) -> None:
    # The key can come from a workflow_dispatch input and goes into LaunchDarkly's URLs
    # under a Writer token.
    r = run_cli(
        "flags", "rollout", "--gate", "--provider", "prometheus", "--", key,
        env={"LD_API_KEY": "api-x"}, actions=False,
    )  # fmt: skip
    assert r.code == 2
    assert "is not a LaunchDarkly flag key" in r.stdout + r.stderr
    assert "LaunchDarkly" in r.stdout + r.stderr and "Traceback" not in r.stdout + r.stderr
