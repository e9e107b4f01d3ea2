"""Release notifications through the real slack-sdk clients against the Slack fake."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from release_actions.errors import ReleaseActionsError
from release_actions.gha import Runtime
from release_actions.integrations.notify import (
    SAMPLES,
    NotifySettings,
    notify,
    render_message,
    validate_templates,
)
from release_actions.integrations.slack import SlackNotifier
from tests.fakes.slack import BOT_TOKEN, CHANNELS, WEBHOOK_PATH, SlackFake
from tests.support.sleeps import Sleeps

pytestmark = pytest.mark.integration

STARTED = {
    "version": "v1.6.0",
    "service": "triptrip-api",
    "commit": "0123456789abcdef",
    "actor": "octocat",
}
ROLLED_BACK = SAMPLES["rolled_back"]


@pytest.fixture
def fake() -> Iterator[SlackFake]:
    with SlackFake() as server:
        yield server


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def runtime(actions: bool = True) -> Runtime:
    env = {"GITHUB_ACTIONS": "true"} if actions else {}
    return Runtime(env=env, out=io.StringIO(), err=io.StringIO())


def output(rt: Runtime) -> str:
    """What the runtime printed, through its guarded streams (redacted, commands defused)."""
    return rt.out.getvalue() + rt.err.getvalue()


def webhook(fake: SlackFake, **kw: Any) -> NotifySettings:
    return NotifySettings(webhook_url=fake.webhook_url, **kw)


def bot(fake: SlackFake, **kw: Any) -> NotifySettings:
    return NotifySettings(bot_token=BOT_TOKEN, api_url=fake.api_url, **kw)


def notifier(settings: NotifySettings, sleeps: Sleeps) -> SlackNotifier:
    return SlackNotifier(
        webhook_url=settings.webhook_url,
        bot_token=settings.bot_token,
        api_url=settings.api_url,
        timeout=5,
        retries=2,
        max_wait=settings.max_wait,
        sleep=sleeps,
    )


# -- delivered -----------------------------------------------------------------------------


def test_webhook_delivers_the_release_started_message(fake: SlackFake) -> None:
    rt = runtime()
    result = notify("release_started", STARTED, runtime=rt, settings=webhook(fake))

    assert result.delivered and result.via == "webhook" and result.error is None
    [message] = fake.messages
    assert message.text.startswith(
        ":rocket: *Release v1.6.0 deployment starting* on `triptrip-api`"
    )
    assert "• Commit: `0123456789ab`" in message.text
    assert message.payload["unfurl_links"] is False
    assert "::warning" not in output(rt)
    assert rt.summary_text == ""


def test_bot_token_posts_to_the_events_channel(fake: SlackFake) -> None:
    rt = runtime()
    settings = bot(fake)

    started = notify("release_started", STARTED, runtime=rt, settings=settings)
    rolled = notify("rolled_back", ROLLED_BACK, runtime=rt, settings=settings)

    assert started.delivered and started.via == "chat.postMessage"
    assert started.channel == CHANNELS["releases"] and started.ts
    # §6.3: rollbacks go to #incidents, the rest to #releases.
    assert rolled.channel == CHANNELS["incidents"]
    assert fake.messages[1].text.startswith(
        ":rotating_light: *AUTO ROLLBACK of `triptrip-api`*: v1.6.0 → v1.5.2"
    )
    request = next(r for r in fake.requests if r.path == "/api/chat.postMessage")
    assert request.headers["authorization"] == f"Bearer {BOT_TOKEN}"


def test_messages_are_escaped_for_slack(fake: SlackFake) -> None:
    context = {**ROLLED_BACK, "reason": "<!channel> error rate > 5% & rising"}
    notify("rolled_back", context, runtime=runtime(), settings=webhook(fake))
    assert "• Reason: &lt;!channel&gt; error rate &gt; 5% &amp; rising" in fake.messages[0].text


def test_no_slack_setting_sends_the_markdown_to_the_job_summary(fake: SlackFake) -> None:
    rt = runtime()
    result = notify(
        "release_completed", SAMPLES["release_completed"], runtime=rt, settings=NotifySettings()
    )

    assert result.delivered and result.via == "summary" and result.in_summary
    assert rt.summary_text.startswith("### ✅ Release v1.6.0 completed")
    assert "- P99 latency: 180 ms" in rt.summary_text
    assert "- Close watch for the next 30 minutes" in rt.summary_text
    assert fake.requests == []


# -- failures are warnings ------------------------------------------------------------------


def test_a_dead_webhook_is_a_warning_and_the_message_goes_to_the_summary(fake: SlackFake) -> None:
    rt = runtime()
    dead = fake.url + "/services/T0TRIPTRIP/B0GONE/deadHookSecret999"
    result = notify(
        "rolled_back", ROLLED_BACK, runtime=rt, settings=NotifySettings(webhook_url=dead)
    )

    assert not result.delivered and result.error == "no_service" and result.in_summary
    out = output(rt)
    assert "::warning title=Slack notification failed::" in out
    assert "no_service" in out and "create a new one" in out
    shown = [line for line in out.splitlines() if not line.startswith("::add-mask::")]
    assert shown and not any("deadHookSecret999" in line for line in shown)
    assert f"::add-mask::{dead}" in out
    assert "### 🚨 Automatic rollback" in rt.summary_text


def test_bot_errors_are_warnings(fake: SlackFake) -> None:
    rt = runtime(actions=False)
    settings = bot(fake, channel="#no-such-channel", channels={})
    result = notify("release_started", STARTED, runtime=rt, settings=settings)
    assert not result.delivered and result.error == "channel_not_found"
    assert "warning: The Slack message `release_started` to #no-such-channel" in output(rt)
    assert "invite the bot" in output(rt)

    bad_token = NotifySettings(bot_token="xoxb-revoked", api_url=fake.api_url)
    result = notify("release_started", STARTED, runtime=rt, settings=bad_token)
    assert result.error == "invalid_auth"
    assert "xoxb-revoked" not in output(rt)


def test_invalid_payload_and_archived_channel(fake: SlackFake, sleeps: Sleeps) -> None:
    fake.fail_webhook(400, "invalid_payload")
    settings = webhook(fake)
    result = notify("release_started", STARTED, runtime=runtime(), settings=settings,
                    notifier=notifier(settings, sleeps))  # fmt: skip
    assert result.error == "invalid_payload" and sleeps.waits == []

    fake.archived_webhooks.add(WEBHOOK_PATH)
    result = notify("release_started", STARTED, runtime=runtime(), settings=settings)
    assert result.error == "channel_is_archived"


def test_slack_unreachable_is_a_warning_without_the_url(sleeps: Sleeps) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = NotifySettings(webhook_url=f"http://127.0.0.1:{port}{WEBHOOK_PATH}")
    rt = runtime(actions=False)

    result = notify("release_started", STARTED, runtime=rt, settings=settings,
                    notifier=notifier(settings, sleeps))  # fmt: skip

    assert not result.delivered and "no answer from Slack" in (result.error or "")
    assert WEBHOOK_PATH not in output(rt) and "xyzSecretHookToken123" not in output(rt)
    assert len(sleeps.waits) == 2  # two retries, then it gives up


def test_rate_limit_is_waited_out_when_short(fake: SlackFake, sleeps: Sleeps) -> None:
    fake.rate_limit("/services/", retry_after=2)
    fake.rate_limit("/api/", retry_after=1)
    for settings in (webhook(fake), bot(fake)):
        result = notify("release_started", STARTED, runtime=runtime(), settings=settings,
                        notifier=notifier(settings, sleeps))  # fmt: skip
        assert result.delivered
    assert sleeps.waits == [2.0, 1.0]
    assert len(fake.messages) == 2


def test_a_long_rate_limit_is_not_waited_for(fake: SlackFake, sleeps: Sleeps) -> None:
    fake.rate_limit("/services/", retry_after=600)
    settings = webhook(fake, max_wait=10)
    rt = runtime()
    result = notify("release_started", STARTED, runtime=rt, settings=settings,
                    notifier=notifier(settings, sleeps))  # fmt: skip
    assert not result.delivered and result.error == "rate_limited"
    assert sleeps.waits == []
    assert "::warning" in output(rt)


def test_server_errors_are_retried(fake: SlackFake, sleeps: Sleeps) -> None:
    fake.server_error("/services/", 500)
    fake.server_error("/api/", 503)
    for settings in (webhook(fake), bot(fake)):
        result = notify("release_started", STARTED, runtime=runtime(), settings=settings,
                        notifier=notifier(settings, sleeps))  # fmt: skip
        assert result.delivered
    assert sleeps.waits == [0.5, 0.5]


# -- templates -------------------------------------------------------------------------------


def test_a_templates_dir_shadows_the_builtin_template_by_name(
    fake: SlackFake, tmp_path: Path
) -> None:
    (tmp_path / "release_started.slack.j2").write_text(
        ":ship: {{ service }} を {{ version }} にリリース開始します（担当: {{ actor }}）\n"
    )
    rt = runtime()
    settings = webhook(fake, templates_dir=tmp_path)

    notify("release_started", STARTED, runtime=rt, settings=settings)
    notify("release_completed", {"version": "v1.6.0"}, runtime=rt, settings=settings)

    assert (
        fake.messages[0].text
        == ":ship: triptrip-api を v1.6.0 にリリース開始します（担当: octocat）\n"
    )
    assert fake.messages[1].text.startswith(":white_check_mark: *Release v1.6.0 deployed")


def test_a_template_typo_names_the_variable_file_and_line(fake: SlackFake, tmp_path: Path) -> None:
    template = tmp_path / "release_started.slack.j2"
    template.write_text(":rocket: Release {{ version }}\nCommit: {{ comit }}\n")

    with pytest.raises(ReleaseActionsError, match="uses `comit`, which is not defined") as info:
        render_message("release_started", STARTED, templates_dir=tmp_path)
    assert info.value.file == str(template) and info.value.line == 2
    assert "`commit`" in info.value.message  # the valid names are listed

    rt = runtime()
    result = notify(
        "release_started", STARTED, runtime=rt, settings=webhook(fake, templates_dir=tmp_path)
    )

    assert not result.delivered and "comit" in (result.error or "")
    out = output(rt)
    assert f"::warning file={template},line=2,title=Notification template::" in out
    assert fake.messages == [], "nothing half-rendered reaches Slack"
    assert rt.summary_text.startswith("### 🚀 Release v1.6.0"), "the Markdown variant still lands"
    problems = validate_templates(tmp_path)
    assert [p.line for p in problems] == [2]


def test_missing_context_and_unknown_event_are_named() -> None:
    with pytest.raises(ReleaseActionsError, match="needs `reason`"):
        render_message("rolled_back", {"from_version": "v1.6.0", "to_version": "v1.5.2"})
    with pytest.raises(
        ReleaseActionsError, match=r"Unknown notification event `deployed`.*`rolled_back`"
    ):
        render_message("deployed", {})
    rt = runtime(actions=False)
    result = notify(
        "rolled_back", {"from_version": "v1.6.0"}, runtime=rt, settings=NotifySettings()
    )
    assert not result.delivered and "needs `to_version`, `reason`" in output(rt)


def test_builtin_templates_render_with_the_documents_examples() -> None:
    assert validate_templates() == []
    for event, context in SAMPLES.items():
        for fmt in ("slack", "md"):
            assert render_message(event, context, fmt).strip()  # type: ignore[arg-type]


def test_a_missing_templates_dir_is_a_warning(fake: SlackFake, tmp_path: Path) -> None:
    rt = runtime()
    result = notify("release_started", STARTED, runtime=rt,
                    settings=webhook(fake, templates_dir=tmp_path / "nope"))  # fmt: skip
    assert not result.delivered and "does not exist" in (result.error or "")
    assert fake.messages == []


# -- secrets ----------------------------------------------------------------------------------


def test_webhook_url_and_token_are_masked_first(fake: SlackFake) -> None:
    rt = runtime()
    settings = NotifySettings(
        webhook_url=fake.webhook_url, bot_token=BOT_TOKEN, api_url=fake.api_url
    )
    notify("release_started", STARTED, runtime=rt, settings=settings)
    lines = output(rt).splitlines()
    assert lines[:3] == [
        f"::add-mask::{fake.webhook_url}",
        "::add-mask::T0TRIPTRIP/B0RELEASES/xyzSecretHookToken123",
        f"::add-mask::{BOT_TOKEN}",
    ]
    # Both set: the bot token wins, since it can address a channel per event.
    assert fake.messages[0].via == "chat.postMessage"


def test_settings_from_env() -> None:
    settings = NotifySettings.from_env(
        {
            "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/X",
            "SLACK_CHANNEL": "C0123456789",
            "RELEASE_ACTIONS_TEMPLATES_DIR": ".github/release-templates",
        }
    )
    assert settings.slack and settings.channel_for("rolled_back") == "C0123456789"
    assert settings.templates_dir == Path(".github/release-templates")
    assert not NotifySettings.from_env({}).slack
    assert NotifySettings().channel_for("rolled_back") == "#incidents"
