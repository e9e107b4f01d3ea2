"""Release messages from a use case: Slack or the job summary, and never a failed release."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from release_actions.app.session import Session
from release_actions.core.policy import Policy
from release_actions.errors import ReleaseActionsError

if TYPE_CHECKING:
    from release_actions.integrations.notify import NotifyResult, NotifySettings


def settings_for(
    state: Session, policy: Policy, templates_dir: Path | None = None
) -> NotifySettings:
    """The policy's `notifications`, then the environment: ``SLACK_WEBHOOK_URL``,
    ``SLACK_BOT_TOKEN``, ``SLACK_CHANNEL``/``SLACK_ROLLBACK_CHANNEL``,
    ``RELEASE_ACTIONS_TEMPLATES_DIR`` and ``SLACK_API_URL`` (a Slack-compatible endpoint)."""
    from release_actions.integrations.notify import NotifySettings

    env = state.env
    n = policy.notifications
    settings = NotifySettings.from_env(env)
    changes: dict[str, Any] = {}
    if not env.get("SLACK_CHANNEL"):
        changes["channel"] = n.slack.channel
        if not env.get("SLACK_ROLLBACK_CHANNEL"):
            changes["channels"] = dict(n.slack.channels)
    if templates_dir is not None:
        changes["templates_dir"] = templates_dir
    elif settings.templates_dir is None and n.templates_dir:
        changes["templates_dir"] = Path(n.templates_dir)
    if env.get("SLACK_API_URL"):
        changes["api_url"] = env["SLACK_API_URL"]
    return replace(settings, **changes)


def send(state: Session, policy: Policy, event: str, context: dict[str, Any]) -> NotifyResult:
    """Send one message for a command (canary run, monitor, rollback); never raises.

    A notification never fails a release: every problem becomes a warning annotation.
    """
    from release_actions.integrations.notify import NotifyResult, notify

    try:
        settings = settings_for(state, policy)
        result = notify(event, context, runtime=state.runtime, settings=settings)
    except Exception as exc:
        message = exc.message if isinstance(exc, ReleaseActionsError) else f"{exc}"
        state.runtime.annotate(
            "warning",
            f"The `{event}` notification was not sent: {message}",
            title="Notification",
        )
        return NotifyResult(event, False, "none", "", error=message)
    if result.delivered and result.via != "summary":
        where = f" to {result.channel}" if result.channel else ""
        state.note(f"notification `{event}` sent{where} ({result.via})")
    return result
