"""`release-actions environments`: GitHub environments as code (source §3.4)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from release_actions.cli import Session, check_failed, json_option, pass_state
from release_actions.errors import ReleaseActionsError

if TYPE_CHECKING:
    from github.Repository import Repository

    from release_actions.core.policy import Policy
    from release_actions.integrations.environments import EnvironmentsConfig, Plan

file_option = click.option(
    "--file",
    "path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path(".github/environments.yml"),
    show_default=True,
    help="The environments file, in source §3.4's format (examples/environments.yml).",
)
repo_option = click.option("--repo", default=None, help="OWNER/NAME [default: $GITHUB_REPOSITORY].")


def _policy_options(fn: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--from-policy",
                is_flag=True,
                help="Also make one environment per release type's `environment` in the policy "
                "(source §3.3), with the type's `approvers` as required reviewers when its "
                "`approval` is `manual`. GitHub lets any one of them approve: it has no order.",
            ),
            click.option(
                "--policy",
                "policy_path",
                type=click.Path(path_type=Path, dir_okay=False),
                default=None,
                help="Release policy file (default: .github/release-policy.yml, else the "
                "source document's).",
            ),
            click.option(
                "--reviewer",
                "reviewers",
                multiple=True,
                metavar="NAME=team:SLUG|user:LOGIN",
                help="Who an approver name of the policy is on GitHub (repeatable; several "
                "for one name add up). Overrides the file's `approvers:` entry of that name.",
            ),
            click.option(
                "--workflows",
                "workflows",
                type=click.Path(path_type=Path, file_okay=False),
                default=Path(".github/workflows"),
                show_default=True,
                help="Warn about jobs in these workflows whose trigger (tag or branch pushes "
                "only) their environment's deployment branch policy refuses.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


@click.group("environments")
def group() -> None:
    """GitHub environments as code (source §3.4: staging, production, production-hotfix).

    `plan` shows how the repository differs from the file; `apply` makes it match. Writing
    environments needs a token with `administration: write` (a GitHub App or fine-grained
    token: GITHUB_TOKEN cannot have it).
    """


def _load(state: Session, path: Path) -> EnvironmentsConfig:
    from release_actions.integrations.environments import load_environments

    config = load_environments(path)
    for w in config.warnings:
        state.runtime.annotate(
            "warning", f"`{w.key}`: {w.message}", file=w.path, line=w.line, title="Environments"
        )
    return config


def _config(
    state: Session,
    path: Path,
    *,
    from_policy: bool,
    policy_path: Path | None,
    reviewers: tuple[str, ...],
    workflows: Path,
) -> tuple[EnvironmentsConfig, list[Any]]:
    """The file (plus the release types' environments), and the workflow trigger warnings."""
    from release_actions.core.policy import load_policy
    from release_actions.integrations.environments import (
        check_workflows,
        parse_reviewer_flags,
    )
    from release_actions.integrations.environments import (
        from_policy as generate,
    )

    config = _load(state, path)
    loaded: list[Policy] = []

    def policy() -> Policy:
        if not loaded:
            loaded.append(load_policy(policy_path))
        return loaded[0]

    if from_policy:
        config = generate(config, policy(), parse_reviewer_flags(reviewers))
    elif reviewers:
        raise ReleaseActionsError(
            "`--reviewer` maps the policy's approvers, which only `--from-policy` uses.",
            hint="Add --from-policy, or drop --reviewer.",
        )
    issues = check_workflows(config, workflows, policy)
    for w in issues:
        state.runtime.annotate("warning", w.message, file=w.path, line=w.line, title="Environments")
    return config, issues


def _plan(state: Session, config: EnvironmentsConfig, repo: str | None) -> tuple[Plan, Repository]:
    from release_actions.integrations import github as gh
    from release_actions.integrations.environments import plan_environments

    client, repository = gh.open_repo(state.env, repo, state.runtime.mask)
    return plan_environments(client, repository, config), repository


@group.command("validate")
@file_option
@json_option
@pass_state
def validate(state: Session, path: Path, as_json: bool) -> None:
    """Check the file only (no API calls); errors name file, line and key, and exit 2."""
    config = _load(state, path)
    if as_json:
        state.emit_json(
            {"file": str(path), "valid": True, "environments": list(config.spec.environments)}
        )
        return
    names = ", ".join(config.spec.environments) or "none"
    state.say(f"{path}: valid environments file ({names})")


@group.command("plan")
@file_option
@repo_option
@click.option(
    "--exit-code",
    is_flag=True,
    help="Exit 1 when the repository differs from the file (a drift check).",
)
@_policy_options
@json_option
@pass_state
def plan(
    state: Session,
    path: Path,
    repo: str | None,
    exit_code: bool,
    as_json: bool,
    from_policy: bool,
    policy_path: Path | None,
    reviewers: tuple[str, ...],
    workflows: Path,
) -> None:
    """Show how the repository's environments differ from the file; change nothing.

    Also warns (file and line) about workflow jobs whose trigger their environment's
    deployment branch policy refuses, such as a tag push against a branch-only environment.
    Output: `changes`, the number of API writes `apply` would make (0: they match).
    """
    config, issues = _config(
        state,
        path,
        from_policy=from_policy,
        policy_path=policy_path,
        reviewers=reviewers,
        workflows=workflows,
    )
    result, _ = _plan(state, config, repo)
    result.warnings += tuple(issues)
    _report(state, result, applied=False, as_json=as_json)
    if exit_code and result.changes:
        raise check_failed()


@group.command("apply")
@file_option
@repo_option
@_policy_options
@json_option
@pass_state
def apply(
    state: Session,
    path: Path,
    repo: str | None,
    as_json: bool,
    from_policy: bool,
    policy_path: Path | None,
    reviewers: tuple[str, ...],
    workflows: Path,
) -> None:
    """Create or update the file's environments: reviewers, wait timer, branch policies.

    Idempotent: a second run finds nothing to change and writes nothing. Environments not
    in the file are left alone. Output: `changes`, the number of writes made.
    """
    from release_actions.integrations.environments import apply_plan

    config, issues = _config(
        state,
        path,
        from_policy=from_policy,
        policy_path=policy_path,
        reviewers=reviewers,
        workflows=workflows,
    )
    result, repository = _plan(state, config, repo)
    result.warnings += tuple(issues)
    if state.dry_run:
        _report(state, result, applied=False, as_json=as_json)
        if not as_json:
            state.say("(dry run: nothing written)")
        return
    apply_plan(repository, result)
    _report(state, result, applied=True, as_json=as_json)


def _report(state: Session, result: Plan, *, applied: bool, as_json: bool) -> None:
    from release_actions.integrations.environments import render_markdown, render_text

    state.runtime.set_output("changes", result.changes)
    state.runtime.summary(render_markdown(result, applied=applied))
    if as_json:
        state.emit_json({**result.to_dict(), "applied": applied})
        return
    state.say(render_text(result, applied=applied))
