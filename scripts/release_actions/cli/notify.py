"""`release-actions notify`: one release message to Slack, or to the job summary without Slack (source §10.2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from release_actions.app.notify import settings_for
from release_actions.cli import Session, check_failed, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.core.policy import load_policy
from release_actions.errors import ReleaseActionsError

if TYPE_CHECKING:
    pass

EVENT_NAMES = ("release_scheduled", "release_started", "release_completed", "rolled_back")


def _value(text: str) -> Any:
    """JSON where the text is JSON (lists, numbers, booleans, null), else the text itself."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value


def parse_vars(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(
                f"{pair!r} is not KEY=VALUE, such as `version=v1.6.0`.", param_hint="--var"
            )
        out[key] = _value(value)
    return out


@click.command("notify")
@click.option(
    "--event",
    type=click.Choice(EVENT_NAMES),
    default=None,
    help="The message to send (source §10.2, §3.2, §6.3). Required unless --check-templates.",
)
@click.option(
    "--var",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A template variable (repeatable); JSON values are parsed (`steps=[5,20,50,100]`).",
)
@click.option(
    "--context-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A JSON object of template variables; --var entries override it.",
)
@click.option(
    "--templates-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of `<event>.slack.j2` / `<event>.md.j2` overrides "
    "(default: notifications.templates_dir of the policy).",
)
@click.option(
    "--check-templates",
    is_flag=True,
    help="Render every event's templates with sample values and report errors; send nothing.",
)
@policy_option
@json_option
@pass_state
def command(
    state: Session,
    event: str | None,
    pairs: tuple[str, ...],
    context_file: Path | None,
    templates_dir: Path | None,
    check_templates: bool,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Send one release message: Slack with SLACK_WEBHOOK_URL or SLACK_BOT_TOKEN, else the job summary.

    A message that cannot be delivered is a warning and lands in the job summary; the exit
    code is 0 either way (a notification never fails a release). `--check-templates` exits
    1 when a template does not render.
    """
    from release_actions.integrations.notify import validate_templates

    policy = load_policy(policy_path)
    settings = settings_for(state, policy, templates_dir)
    if check_templates:
        problems = validate_templates(settings.templates_dir)
        for problem in problems:
            state.runtime.annotate(
                "error", problem.message, file=problem.file, line=problem.line, title="Template"
            )
        state.runtime.set_output("valid", not problems)
        if as_json:
            state.emit_json(
                {"valid": not problems, "problems": [str(problem) for problem in problems]}
            )
        else:
            state.say(
                "templates: all render"
                if not problems
                else f"templates: {len(problems)} problem(s)"
            )
        if problems:
            raise check_failed()
        return
    if event is None:
        raise click.UsageError("Give `--event` (or `--check-templates`).")
    context: dict[str, Any] = {}
    if context_file is not None:
        try:
            loaded = json.loads(context_file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ReleaseActionsError(
                f"{context_file} is not JSON: {exc}.", file=str(context_file)
            ) from None
        if not isinstance(loaded, dict):
            raise ReleaseActionsError(
                f"{context_file} must hold a JSON object of template variables.",
                file=str(context_file),
            )
        context.update(loaded)
    context.update(parse_vars(pairs))
    from release_actions.integrations.records import run_url

    context.setdefault("run_url", run_url(state.env))
    context.setdefault("repository", state.env.get("GITHUB_REPOSITORY") or None)
    if state.dry_run:
        state.say(f"Would send `{event}` (dry run): nothing sent.")
        return
    from release_actions.integrations.notify import notify

    result = notify(event, context, runtime=state.runtime, settings=settings)
    state.runtime.set_output("delivered", result.delivered)
    state.runtime.set_output("via", result.via)
    if as_json:
        state.emit_json(
            {
                "event": result.event,
                "delivered": result.delivered,
                "via": result.via,
                "channel": result.channel,
                "in_summary": result.in_summary,
                "error": result.error,
                "text": result.text,
            }
        )
    elif result.delivered:
        where = f" to {result.channel}" if result.channel else ""
        state.say(f"`{event}` delivered{where} via {result.via}")
    else:
        state.say(f"`{event}` not delivered ({result.error}); see the warning above")
