"""Release notifications: strict templates rendered for Slack, or for the job summary without it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from release_actions.errors import ReleaseActionsError
from release_actions.gha import Runtime
from release_actions.integrations.slack import SlackDelivery, SlackNotifier

BUILTIN_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
Format = Literal["slack", "md"]
SUFFIX: dict[str, str] = {"slack": ".slack.j2", "md": ".md.j2"}


@dataclass(frozen=True)
class EventSpec:
    """The variables an event's templates may use: required ones, and optional ones with defaults.

    Optional variables are always defined (None unless a default says otherwise), so a
    template can write ``{% if commit %}``; any other name is a typo and an error.
    """

    required: tuple[str, ...]
    optional: Mapping[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [*self.required, *self.optional]


_COMMON = {"service": None, "environment": None, "run_url": None, "repository": None}
# The source document's §10.2 notices (scheduled, completed, rolled back), §3.2's start and
# completion messages, and §6.3's automatic-rollback messages.
EVENTS: dict[str, EventSpec] = {
    "release_scheduled": EventSpec(
        ("version", "scheduled_at"),
        {
            **_COMMON,
            "release_type": None,
            "changes": [],
            "notices": [],
            "release_manager": None,
            "oncall": None,
            "links": [],
        },
    ),
    "release_started": EventSpec(
        ("version",),
        {**_COMMON, "commit": None, "actor": None, "release_type": None, "steps": []},
    ),
    "release_completed": EventSpec(
        ("version",),
        {
            **_COMMON,
            "completed_at": None,
            "duration_seconds": None,
            "error_rate": None,
            "p99_ms": None,
            "canary_success_rate": None,
            "promotions": [],
            "watch_minutes": 30,
            "report_channel": "#releases",
        },
    ),
    "rolled_back": EventSpec(
        ("from_version", "to_version", "reason"),
        {
            **_COMMON,
            "trigger": "automatic",
            "record_id": None,
            "rolled_back_at": None,
            "affected_users": None,
            "recovered_at": None,
            "postmortem_at": None,
            "flags_turned_off": [],
            "next_steps": ["Investigating the root cause"],
        },
    ),
}

# Sample contexts from the source document's examples, for `validate_templates`.
SAMPLES: dict[str, dict[str, Any]] = {
    "release_scheduled": {
        "version": "v1.6.0",
        "scheduled_at": "2026-01-20 (Tue) 10:00 JST",
        "release_type": "regular",
        "changes": ["AI trip suggestions", "Real-time pricing", "Performance improvements"],
        "notices": ["`ai-trip-suggestions` is enabled gradually"],
        "release_manager": "@release-manager",
        "oncall": "@oncall-primary",
        "links": [{"title": "Release notes", "url": "https://example.com/notes?v=1.6.0&x=1"}],
    },
    "release_started": {
        "version": "v1.6.0",
        "service": "triptrip-api",
        "commit": "0123456789abcdef0123456789abcdef01234567",
        "actor": "octocat",
        "steps": [5, 20, 50, 100],
        "run_url": "https://github.com/triptrip/api/actions/runs/1",
    },
    "release_completed": {
        "version": "v1.6.0",
        "completed_at": "2026-01-20 10:45 JST",
        "duration_seconds": 2700,
        "error_rate": 0.02,
        "p99_ms": 180,
        "canary_success_rate": 100,
    },
    "rolled_back": {
        "from_version": "v1.6.0",
        "to_version": "v1.5.2",
        "reason": "error rate 5.2% > 5% for 2 min",
        "service": "triptrip-api",
        "record_id": "RB-2026-001",
        "rolled_back_at": "2026-01-20 11:15 JST",
        "affected_users": "about 500",
        "recovered_at": "11:20 JST",
        "postmortem_at": "2026-01-21 14:00",
    },
}


@dataclass(frozen=True)
class NotifySettings:
    """Where messages go. Without a webhook or a bot token they go to the job summary.

    Defaults follow the source document: release messages to ``#releases``, rollbacks to
    ``#incidents`` (§6.3); ``channel``/``channels`` matter only with a bot token, since an
    incoming webhook is bound to its channel.
    """

    webhook_url: str | None = None
    bot_token: str | None = None
    channel: str = "#releases"
    channels: Mapping[str, str] = field(default_factory=lambda: {"rolled_back": "#incidents"})
    templates_dir: Path | None = None
    api_url: str = "https://slack.com/api/"
    timeout: int = 10
    retries: int = 2
    max_wait: float = 10.0

    @property
    def slack(self) -> bool:
        return bool(self.webhook_url or self.bot_token)

    def channel_for(self, event: str) -> str:
        return self.channels.get(event) or self.channel

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: Any) -> NotifySettings:
        """``SLACK_WEBHOOK_URL``, ``SLACK_BOT_TOKEN``, ``SLACK_CHANNEL`` (then every event goes
        there unless ``SLACK_ROLLBACK_CHANNEL`` says otherwise), ``RELEASE_ACTIONS_TEMPLATES_DIR``."""
        values: dict[str, Any] = {
            "webhook_url": env.get("SLACK_WEBHOOK_URL") or None,
            "bot_token": env.get("SLACK_BOT_TOKEN") or None,
        }
        if env.get("SLACK_CHANNEL"):
            values["channel"] = env["SLACK_CHANNEL"]
            values["channels"] = {}
        if env.get("SLACK_ROLLBACK_CHANNEL"):
            values["channels"] = {"rolled_back": env["SLACK_ROLLBACK_CHANNEL"]}
        if env.get("RELEASE_ACTIONS_TEMPLATES_DIR"):
            values["templates_dir"] = Path(env["RELEASE_ACTIONS_TEMPLATES_DIR"])
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class NotifyResult:
    """``via`` is ``webhook``, ``chat.postMessage``, ``summary`` or ``none`` (nothing rendered)."""

    event: str
    delivered: bool
    via: str
    text: str
    channel: str | None = None
    ts: str | None = None
    error: str | None = None
    in_summary: bool = False


# -- rendering ---------------------------------------------------------------------------------


def _slack_escape(value: Any) -> str:
    """Slack's three control characters, so a reason or a title cannot ping `<!channel>`."""
    if value is None:
        return ""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _plain(value: Any) -> str:
    return "" if value is None else str(value)


def _percent(value: Any, digits: int = 2) -> str:
    return f"{float(value):.{digits}f}%".replace(".00%", "%") if value is not None else "n/a"


def _ms(value: Any) -> str:
    return f"{float(value):.0f} ms" if value is not None else "n/a"


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "n/a"
    total = round(float(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min" + (f" {secs} s" if secs else "")
    return f"{secs} s"


class MessageTemplates:
    """The package's message templates, each shadowed by a same-named file in ``templates_dir``.

    Rendering is strict (jinja2 ``StrictUndefined``), as Flagger renders with
    ``missingkey=error``: a misspelt variable is an error that names it and the template
    line, never an empty line in a message sent to a whole company.
    """

    def __init__(self, templates_dir: Path | None = None) -> None:
        if templates_dir is not None and not templates_dir.is_dir():
            raise ReleaseActionsError(
                f"The templates directory {templates_dir} does not exist.",
                hint="Pass an existing folder to `--templates-dir`; its files replace the "
                "built-in templates of the same name (for example `rolled_back.slack.j2`).",
            )
        self.templates_dir = templates_dir
        dirs = [templates_dir, BUILTIN_TEMPLATES] if templates_dir else [BUILTIN_TEMPLATES]
        loader = ChoiceLoader([FileSystemLoader(str(d)) for d in dirs])
        self._envs = {
            fmt: self._environment(loader, _slack_escape if fmt == "slack" else _plain)
            for fmt in SUFFIX
        }

    @staticmethod
    def _environment(loader: ChoiceLoader, finalize: Any) -> ImmutableSandboxedEnvironment:
        # Slack mrkdwn and Markdown are not HTML: Slack gets its own escaping via `finalize`.
        # A team's templates (policy `notifications.templates_dir`) run sandboxed: they format
        # the message's values and never reach Python objects.
        env = ImmutableSandboxedEnvironment(
            loader=loader,
            undefined=StrictUndefined,
            autoescape=False,
            finalize=finalize,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        env.filters.update(percent=_percent, ms=_ms, duration=_duration)
        return env

    def context(self, event: str, values: Mapping[str, Any]) -> dict[str, Any]:
        spec = EVENTS.get(event)
        if spec is None:
            raise ReleaseActionsError(
                f"Unknown notification event `{event}`: the events are "
                + ", ".join(f"`{e}`" for e in EVENTS)
                + "."
            )
        missing = [name for name in spec.required if values.get(name) is None]
        if missing:
            raise ReleaseActionsError(
                f"The `{event}` message needs {', '.join(f'`{m}`' for m in missing)}.",
                hint="Variables of the event: " + ", ".join(f"`{n}`" for n in spec.names),
            )
        return {**spec.optional, **{k: v for k, v in values.items() if v is not None}}

    def render(self, event: str, values: Mapping[str, Any], fmt: Format = "slack") -> str:
        context = self.context(event, values)
        name = event + SUFFIX[fmt]
        env = self._envs[fmt]
        try:
            template = env.get_template(name)
        except TemplateNotFound:
            raise ReleaseActionsError(
                f"No template `{name}` for the `{event}` message.",
                hint=f"The built-in templates are in {BUILTIN_TEMPLATES}.",
            ) from None
        except TemplateSyntaxError as exc:
            raise ReleaseActionsError(
                f"The template `{name}` is not valid jinja2: {exc.message}.",
                file=exc.filename or name,
                line=exc.lineno,
            ) from None
        try:
            return template.render(context).strip() + "\n"
        except SecurityError as exc:
            raise ReleaseActionsError(
                f"The template `{name}` does something unsafe, which the template sandbox "
                f"refuses: {str(exc).rstrip('.')}.",
                file=template.filename or name,
            ) from None
        except UndefinedError as exc:
            filename = template.filename or name
            line = _template_line(exc.__traceback__, filename)
            variable = _undefined_name(exc.message or "")
            raise ReleaseActionsError(
                f"The template `{name}` uses `{variable}`, which is not defined for the "
                f"`{event}` message ({exc.message}); its variables are "
                + ", ".join(f"`{n}`" for n in EVENTS[event].names)
                + ".",
                hint="Check the spelling; templates are rendered strictly, so a misspelt "
                "variable is an error rather than an empty string.",
                file=filename,
                line=line,
            ) from None

    def source(self, event: str, fmt: Format = "slack") -> str:
        """Where the template comes from: the override folder, or the package."""
        name = event + SUFFIX[fmt]
        if self.templates_dir is not None and (self.templates_dir / name).is_file():
            return str(self.templates_dir / name)
        return str(BUILTIN_TEMPLATES / name)


def _undefined_name(message: str) -> str:
    m = re.search(r"'([^']+)' is undefined", message) or re.search(
        r"has no attribute '([^']+)'", message
    )
    return m[1] if m else message


def _template_line(tb: TracebackType | None, filename: str) -> int | None:
    """The line in the template: jinja2 rewrites tracebacks so template frames carry it."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def render_message(
    event: str, context: Mapping[str, Any], fmt: Format = "slack", templates_dir: Path | None = None
) -> str:
    return MessageTemplates(templates_dir).render(event, context, fmt)


def validate_templates(templates_dir: Path | None = None) -> list[ReleaseActionsError]:
    """Every event rendered in every format with the document's sample values.

    For a check before the release (a typo in an override would otherwise surface only
    as a warning when the message is due).
    """
    templates = MessageTemplates(templates_dir)
    problems = []
    formats: tuple[Format, ...] = ("slack", "md")
    for event in EVENTS:
        for fmt in formats:
            try:
                templates.render(event, SAMPLES[event], fmt)
            except ReleaseActionsError as exc:
                problems.append(exc)
    return problems


# -- sending ---------------------------------------------------------------------------------


def notify(
    event: str,
    context: Mapping[str, Any],
    *,
    runtime: Runtime,
    settings: NotifySettings,
    notifier: SlackNotifier | None = None,
) -> NotifyResult:
    """Send the ``event`` message; whatever goes wrong is a warning, never a failed release.

    Without Slack settings the Markdown variant goes to the job summary. When Slack fails
    (or a template does), the job gets a warning annotation and, where the Markdown
    variant renders, the message lands in the job summary instead, so nothing is lost.
    """
    secrets = _secrets(settings)
    for secret in secrets:
        runtime.mask(secret)
    try:
        templates = MessageTemplates(settings.templates_dir)
    except ReleaseActionsError as exc:
        return _warn(runtime, event, exc, secrets)

    if not settings.slack:
        try:
            markdown = templates.render(event, context, "md")
        except ReleaseActionsError as exc:
            return _warn(runtime, event, exc, secrets)
        runtime.summary(markdown)
        return NotifyResult(event, True, "summary", markdown, in_summary=True)

    try:
        text = templates.render(event, context, "slack")
    except ReleaseActionsError as exc:
        return _fallback(runtime, templates, event, context, _warn(runtime, event, exc, secrets))

    sender = notifier or SlackNotifier(
        webhook_url=settings.webhook_url,
        bot_token=settings.bot_token,
        api_url=settings.api_url,
        timeout=settings.timeout,
        retries=settings.retries,
        max_wait=settings.max_wait,
    )
    channel = settings.channel_for(event) if settings.bot_token else None
    try:
        delivery = sender.send(text, channel=channel)
    except Exception as exc:  # a notification never fails a release
        delivery = SlackDelivery(False, sender.via, channel, error=f"{type(exc).__name__}: {exc}")
    if delivery.ok:
        return NotifyResult(event, True, delivery.via, text, delivery.channel, delivery.ts)

    error = _scrub(delivery.error or "unknown error", secrets)
    where = f" to {delivery.channel}" if delivery.channel else ""
    runtime.annotate(
        "warning",
        f"The Slack message `{event}`{where} was not delivered ({delivery.via}: {error}"
        f"{_advice(error)}). The release goes on; the message is in the job summary.",
        title="Slack notification failed",
    )
    failed = NotifyResult(event, False, delivery.via, text, delivery.channel, error=error)
    return _fallback(runtime, templates, event, context, failed)


def _fallback(
    runtime: Runtime,
    templates: MessageTemplates,
    event: str,
    context: Mapping[str, Any],
    result: NotifyResult,
) -> NotifyResult:
    try:
        markdown = templates.render(event, context, "md")
    except ReleaseActionsError:
        return result
    runtime.summary(markdown)
    return NotifyResult(
        result.event, False, result.via, result.text, result.channel, None, result.error, True
    )


def _warn(
    runtime: Runtime, event: str, exc: ReleaseActionsError, secrets: list[str]
) -> NotifyResult:
    message = _scrub(exc.message, secrets)
    runtime.annotate(
        "warning",
        f"The `{event}` notification was not sent: {message}"
        + (f" {exc.hint}" if exc.hint else ""),
        file=exc.file,
        line=exc.line,
        title="Notification template",
    )
    return NotifyResult(event, False, "none", "", error=message)


_ADVICE = {
    "invalid_payload": "; the message is not valid for Slack",
    "no_service": "; the webhook was removed or its URL is wrong: create a new one",
    "channel_is_archived": "; the webhook's channel is archived",
    "action_prohibited": "; a workspace admin restricted this webhook",
    "channel_not_found": "; invite the bot to the channel, or fix `channel`",
    "not_in_channel": "; invite the bot to the channel (/invite @bot)",
    "invalid_auth": "; the bot token is wrong or revoked",
    "not_authed": "; no bot token reached Slack",
}


def _advice(error: str) -> str:
    return next((text for code, text in _ADVICE.items() if code in error), "")


def _secrets(settings: NotifySettings) -> list[str]:
    out = []
    if settings.webhook_url:
        out.append(settings.webhook_url)
        # The path is the secret part; a message that shows only it must not leak it either.
        path = settings.webhook_url.split("/services/", 1)
        if len(path) == 2 and path[1]:
            out.append(path[1])
    if settings.bot_token:
        out.append(settings.bot_token)
    return out


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
