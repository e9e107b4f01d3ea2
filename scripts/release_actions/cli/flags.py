"""`release-actions flags`: the feature-flag lifecycle (source §5): export, stage, advance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from release_actions.cli import Session, json_option, pass_state
from release_actions.cli.branch import policy_option

if TYPE_CHECKING:
    from release_actions.app.flag_lifecycle import AdvanceResult


@click.group("flags")
def group() -> None:
    """Feature flags in LaunchDarkly (source §5): export, stage, advance, audit.

    Every command reads the API access token from LD_API_KEY (or LAUNCHDARKLY_API_TOKEN)
    and the project from --project, else LAUNCHDARKLY_PROJECT, else the policy's
    `feature_flags.launchdarkly.project`.
    """


def _add_commands() -> None:
    # In its own module; imported here so that `flags --help` lists it.
    from release_actions.cli.flag_audit import audit_command
    from release_actions.cli.flag_rollout import rollout_command

    group.add_command(audit_command)
    group.add_command(rollout_command)


_add_commands()


project_option = click.option(
    "--project",
    default=None,
    metavar="KEY",
    help="LaunchDarkly project key [default: $LAUNCHDARKLY_PROJECT, else the policy's].",
)


# -- flags export ----------------------------------------------------------------------------------


@group.command("export")
@project_option
@click.option(
    "--output",
    "output_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help='Also write the document `{"flags": [...]}` to this file.',
)
@policy_option
@json_option
@pass_state
def export_command(
    state: Session,
    project: str | None,
    output_path: Path | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Export every flag of the project: kind, owner, dates, stage and targeting.

    Each flag has `key`, `kind` (the policy's `feature_flags.catalog` wins; else a
    LaunchDarkly tag release/ops/experiment/permission; else `release` for a temporary
    flag), `owner`, `archived`, `created_at`, `ga_at` (when production's default rule last
    reached 100 % on, from the audit log), `experiment_ended_at`, `last_reviewed_at` (the
    custom property `lastReviewedAt`), `code_references` (empty) and `environments` (`on`,
    `rollout_percent`, `status`, `last_requested`). A catalog that disagrees with the tags
    is listed in `warnings`. Archived flags are included.
    """
    from release_actions.app.flag_lifecycle import export_flags
    from release_actions.core.policy import load_policy

    policy = load_policy(policy_path)
    document = export_flags(state, policy, project)
    for warning in document["warnings"]:
        state.runtime.annotate("warning", warning, title="Feature flags")
    if output_path is not None:
        output_path.write_text(
            json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        state.runtime.set_output("file", str(output_path))
    state.runtime.set_output("count", len(document["flags"]))
    if as_json:
        state.emit_json(document)
        return
    state.say(f"{len(document['flags'])} flag(s) in LaunchDarkly project `{document['project']}`")
    for flag in document["flags"]:
        archived = " (archived)" if flag["archived"] else ""
        state.say(
            f"  {flag['key']:<32} {flag['kind'] or '?':<11} {flag['stage']:<14} "
            f"GA {flag['ga_at'] or '-'}{archived}"
        )


# -- flags stage -----------------------------------------------------------------------------------


@group.command("stage")
@click.argument("key")
@project_option
@policy_option
@json_option
@pass_state
def stage_command(
    state: Session, key: str, project: str | None, policy_path: Path | None, as_json: bool
) -> None:
    """Name the lifecycle stage flag KEY is in, from its targeting in each environment.

    development, internal (the internal rule in `feature_flags.stages.internal.environment`),
    beta (the beta rule), gradual NN % (production's default rule rolled out), or ga
    (production's default rule on). Output: `stage` (such as `gradual 25 %`).
    """
    from release_actions.app import flag_lifecycle as app
    from release_actions.core.policy import load_policy

    policy = load_policy(policy_path)
    client = app.flags_client(state, policy, project)
    flag = client.get_flag(key)
    stage = app.stage_of(flag, policy)
    kind, source = app.kind_of(policy, key, flag)
    environments: dict[str, dict[str, Any]] = {
        env: {
            "on": bool(data.get("on")),
            "rollout_percent": app.rollout_percent(flag, env),
            "targeting": app.describe(flag, env),
        }
        for env, data in sorted((flag.get("environments") or {}).items())
    }
    state.runtime.set_output("stage", stage.label)
    if as_json:
        state.emit_json(
            {
                "flag": key,
                "project": client.project,
                "kind": kind,
                "kind_source": source,
                "stage": stage.to_dict(),
                "environments": environments,
            }
        )
        return
    state.say(f"{key}: {stage.label}")
    for data in environments.values():
        for line in data["targeting"]:
            state.say(f"  {line}")


# -- flags advance ---------------------------------------------------------------------------------


@group.command("advance")
@click.argument("key")
@click.option(
    "--to",
    "to",
    type=click.Choice(["internal", "beta", "gradual", "ga"]),
    required=True,
    help="The stage to take the flag to, with `feature_flags.stages` of the policy.",
)
@click.option(
    "--percent",
    type=click.IntRange(1, 100),
    default=None,
    help="With `--to gradual`: the rollout's percentage [default: the next step of "
    "`feature_flags.stages.gradual`; give it in workflows that may be rerun]. With "
    "`--to beta`: the beta rule's percentage [default: the policy's].",
)
@click.option("--dry-run", "local_dry_run", is_flag=True, help="Show the change; send nothing.")
@click.option(
    "--force",
    is_flag=True,
    help="Roll an ops or permission flag out by percentage, or move a flag back to an "
    "earlier stage; both are refused without it.",
)
@click.option("--reason", default=None, help="Why, for LaunchDarkly's audit-log comment.")
@project_option
@policy_option
@json_option
@pass_state
def advance_command(
    state: Session,
    key: str,
    to: str,
    percent: int | None,
    local_dry_run: bool,
    force: bool,
    reason: str | None,
    project: str | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Take flag KEY to a lifecycle stage with LaunchDarkly semantic patches.

    internal: on in the internal environment, the internal rule serving on, everyone else
    off. beta: the beta rule at its percentage in its environment. gradual: production's
    default rule rolled out to the percentage (the beta rule removed). ga: production's
    default rule on. One patch per environment that differs, with a comment naming the
    workflow run; at the stage already, nothing is sent. Outputs: `stage` and `changed`.
    """
    from release_actions.app.flag_lifecycle import advance
    from release_actions.core.policy import load_policy

    policy = load_policy(policy_path)
    result = advance(
        state,
        policy,
        key,
        to,
        percent=percent,
        force=force,
        reason=reason,
        project=project,
        dry_run=local_dry_run or state.dry_run,
    )
    state.runtime.set_output("stage", result.after.label)
    state.runtime.set_output("changed", "true" if result.changed else "false")
    state.runtime.summary(_summary(result))
    if as_json:
        state.emit_json(result.to_dict())
        return
    for line in _lines(result):
        state.say(line)


def _headline(result: AdvanceResult) -> str:
    pending = any(c.instructions for c in result.changes)
    if not pending:
        return f"{result.flag} is at {result.before.label} already: nothing to change."
    if result.dry_run:
        return (
            f"{result.flag}: {result.before.label} -> {result.target.label} (dry run, nothing sent)"
        )
    return f"{result.flag}: {result.before.label} -> {result.after.label}"


def _lines(result: AdvanceResult) -> list[str]:
    lines = [_headline(result)]
    for change in result.changes:
        if change.instructions:
            kinds = ", ".join(i["kind"] for i in change.instructions)
            version = f" (version {change.version})" if change.version is not None else ""
            lines.append(f"  {change.environment}: {kinds}{version}")
    if result.diff:
        lines.extend(result.diff.splitlines())
    return lines


def _summary(result: AdvanceResult) -> str:
    from release_actions.gha import markdown_table

    title = f"### Feature flag `{result.flag}`" + (" (dry run)" if result.dry_run else "")
    rows = [
        ["Project", result.project],
        ["Kind", f"{result.kind or 'unknown'} ({result.kind_source})"],
        ["From", result.before.label],
        ["To", result.target.label],
        ["Now", result.after.label],
        ["Comment", result.comment],
    ]
    for change in result.changes:
        if change.instructions:
            kinds = ", ".join(i["kind"] for i in change.instructions)
            rows.append([f"Change in {change.environment}", kinds])
    text = f"{title}\n\n{_headline(result)}\n\n" + markdown_table(["", ""], rows)
    if result.diff:
        text += f"\n```diff\n{result.diff}\n```\n"
    return text
