"""`release-actions notify`: Slack when configured, the job summary otherwise, never a failed step."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from release_actions.cli.notify import parse_vars
from tests.conftest import RunCli
from tests.fakes.slack import BOT_TOKEN, CHANNELS, SlackFake


@pytest.fixture
def slack() -> Iterator[SlackFake]:
    with SlackFake() as fake:
        yield fake


def test_without_slack_the_message_goes_to_the_summary(run_cli: RunCli) -> None:
    r = run_cli(
        "notify",
        "--event",
        "rolled_back",
        "--var",
        "from_version=v1.6.0",
        "--var",
        "to_version=v1.5.2",
        "--var",
        "reason=error rate 5.2%",
        "--var",
        'flags_turned_off=["ai-trip-suggestions"]',
    )
    assert r.code == 0, r.stdout + r.stderr
    assert (r.outputs["delivered"], r.outputs["via"]) == ("true", "summary")
    assert "v1.6.0 → v1.5.2" in r.summary and "`ai-trip-suggestions`" in r.summary


def test_with_a_webhook_the_message_goes_to_slack(
    run_cli: RunCli, slack: SlackFake, tmp_path: Path
) -> None:
    context = tmp_path / "context.json"
    context.write_text(json.dumps({"version": "v1.6.0", "steps": [5, 20, 50, 100]}))
    r = run_cli(
        "notify",
        "--event",
        "release_started",
        "--context-file",
        str(context),
        "--var",
        "service=triptrip-api",
        env={"SLACK_WEBHOOK_URL": slack.webhook_url, "GITHUB_REPOSITORY": "octo/app",
             "GITHUB_RUN_ID": "7"},
    )  # fmt: skip
    assert r.code == 0, r.stdout + r.stderr
    assert (r.outputs["delivered"], r.outputs["via"]) == ("true", "webhook")
    (message,) = slack.messages
    assert "Release v1.6.0 deployment starting" in message.text
    assert "5% → 20% → 50% → 100%" in message.text
    assert "https://github.com/octo/app/actions/runs/7" in message.text
    assert f"::add-mask::{slack.webhook_url}" in r.stdout, "the webhook is masked"
    assert r.summary == ""


def test_a_bot_token_posts_to_the_policys_channel_per_event(
    run_cli: RunCli, slack: SlackFake, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yml"
    policy.write_text(
        "notifications:\n  slack:\n    channel: releases\n    channels: {rolled_back: incidents}\n"
    )
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": slack.api_url}
    r = run_cli(
        "notify", "--event", "rolled_back", "--policy", str(policy),
        "--var", "from_version=v2", "--var", "to_version=v1", "--var", "reason=p99",
        env=env,
    )  # fmt: skip
    assert r.code == 0, r.stdout + r.stderr
    assert r.outputs["via"] == "chat.postMessage"
    assert slack.messages[-1].channel == CHANNELS["incidents"]


def test_a_failed_delivery_is_a_warning_and_lands_in_the_summary(
    run_cli: RunCli, slack: SlackFake
) -> None:
    slack.fail_webhook(404, "no_service")
    r = run_cli(
        "notify", "--event", "release_completed", "--var", "version=v1.6.0",
        env={"SLACK_WEBHOOK_URL": slack.webhook_url},
    )  # fmt: skip
    assert r.code == 0
    assert (r.outputs["delivered"], r.outputs["via"]) == ("false", "webhook")
    assert "::warning title=Slack notification failed::" in r.stdout
    assert "Release v1.6.0 completed" in r.summary


def test_a_missing_variable_is_a_warning_not_a_failure(run_cli: RunCli) -> None:
    r = run_cli("notify", "--event", "rolled_back", "--var", "from_version=v2")
    assert r.code == 0
    assert r.outputs["delivered"] == "false"
    assert "`to_version`" in r.stdout and "::warning" in r.stdout


def test_event_and_vars_are_checked(run_cli: RunCli) -> None:
    assert run_cli("notify").code == 2
    bad = run_cli("notify", "--event", "release_started", "--var", "version")
    assert bad.code == 2 and "KEY=VALUE" in bad.stderr
    unknown = run_cli("notify", "--event", "release_party")
    assert unknown.code == 2


def test_check_templates(run_cli: RunCli, tmp_path: Path) -> None:
    ok = run_cli("notify", "--check-templates")
    assert (ok.code, ok.outputs["valid"]) == (0, "true")
    broken = tmp_path / "templates"
    broken.mkdir()
    (broken / "rolled_back.slack.j2").write_text("{{ from_verison }} rolled back\n")
    bad = run_cli("notify", "--check-templates", "--templates-dir", str(broken))
    assert (bad.code, bad.outputs["valid"]) == (1, "false")
    assert "from_verison" in bad.stdout and "rolled_back.slack.j2" in bad.stdout


def test_dry_run_sends_nothing(run_cli: RunCli, slack: SlackFake) -> None:
    r = run_cli(
        "--dry-run", "notify", "--event", "release_completed", "--var", "version=v1",
        env={"SLACK_WEBHOOK_URL": slack.webhook_url},
    )  # fmt: skip
    assert r.code == 0 and "Would send" in r.stdout and slack.messages == []


def test_the_events_are_the_integrations() -> None:
    from release_actions.cli.notify import EVENT_NAMES
    from release_actions.integrations.notify import EVENTS

    assert set(EVENT_NAMES) == set(EVENTS)


def test_var_values_are_json_where_they_can_be() -> None:
    assert parse_vars(("steps=[5, 20]", "version=v1.6.0", "error_rate=0.02", "x=")) == {
        "steps": [5, 20],
        "version": "v1.6.0",
        "error_rate": 0.02,
        "x": "",
    }
