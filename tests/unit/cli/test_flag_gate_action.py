"""The flags action's `command: rollout-gate`: the scheduled gate over every rollout in progress."""

from __future__ import annotations

from release_actions.cli.action import arguments, extras


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
        *("flags", "rollout", "--gate", "--all", "--provider", "prometheus"),
        *("--project", "triptrip"),
        *("--provider-setting", "url=http://prometheus:9090"),
        *("--provider-setting", "service=api"),
    ]
    # The records (GitHub) and the notices (Slack) of a rollback; Datadog's SDK when named.
    assert extras("flags", env) == ["github", "slack"]
    assert extras("flags", {**env, "INPUT_PROVIDER": "datadog"}) == ["datadog", "github", "slack"]


def test_the_audit_is_still_the_default() -> None:
    for command in ("", "audit"):
        env = {"INPUT_COMMAND": command, "INPUT_INPUT": "flags.json", "INPUT_OPEN_ISSUES": "false"}
        assert arguments("flags", env) == ["flags", "audit", "--input", "flags.json"]
        assert extras("flags", env) == []
