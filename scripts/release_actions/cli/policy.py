"""`release-actions policy`: show, validate and describe the release policy."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import click

from release_actions.cli import Session, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.core.policy import (
    DEFAULT_POLICY_PATH,
    default_policy,
    load_policy,
    policy_file_schema,
)
from release_actions.core.settings import (
    CANARY_REQUESTS,
    STAGES,
    CanaryRequest,
    Overrides,
    Stage,
    resolve,
)


def dump_yaml(data: object) -> str:
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 100
    buf = io.StringIO()
    yaml.dump(data, buf)
    return buf.getvalue()


@click.group("policy")
def group() -> None:
    """The release policy: `.github/release-policy.yml` over the source document's defaults."""


@group.command("show")
@policy_option
@click.option(
    "--defaults", is_flag=True, help="Show the source document's defaults, ignoring any file."
)
@click.option(
    "--effective",
    is_flag=True,
    help="Show the settings one run resolves from the policy, a release type and overrides: "
    "the steps, cadence, error limit, watch and triggers that the engine and the monitor get.",
)
@click.option(
    "--type", "release_type", default=None, metavar="TYPE", help="With --effective: a release type."
)
@click.option(
    "--canary",
    type=click.Choice(CANARY_REQUESTS),
    default="policy",
    show_default=True,
    help="With --effective: how the type's canary rule is read.",
)
@click.option("--staged", is_flag=True, help="With --effective: in a high-traffic period.")
@click.option(
    "--stage",
    type=click.Choice(STAGES),
    default="production",
    show_default=True,
    help="With --effective: the stage whose deploy target applies.",
)
@click.option("--steps", default=None, help="With --effective: a step preset.")
@click.option("--judge", default=None, help="With --effective: a judge.")
@click.option("--target", default=None, help="With --effective: a deploy target.")
@click.option("--provider", default=None, help="With --effective: a metrics provider.")
@json_option
@pass_state
def show(
    state: Session,
    policy_path: Path | None,
    defaults: bool,
    effective: bool,
    release_type: str | None,
    canary: CanaryRequest,
    staged: bool,
    stage: Stage,
    steps: str | None,
    judge: str | None,
    target: str | None,
    provider: str | None,
    as_json: bool,
) -> None:
    """Print the policy: the file over the defaults, or with --effective one run's settings."""
    policy = default_policy() if defaults else load_policy(policy_path)
    data: dict[str, Any] = policy.model_dump(mode="json")
    what = "release policy"
    if effective:
        overrides = Overrides(
            release_type=release_type,
            canary=canary,
            staged=staged,
            stage=stage,
            steps=steps,
            judge=judge,
            target=target,
            provider=provider,
        )
        data = resolve(policy, overrides).to_dict()
        what = f"settings of a `{release_type or 'regular'}` release"
    if as_json:
        state.emit_json(data, document=True)  # the policy itself: it can be saved as one
        return
    origin = (
        "defaults (source document)"
        if defaults or (policy_path is None and not DEFAULT_POLICY_PATH.exists())
        else f"{policy_path or DEFAULT_POLICY_PATH} over the defaults"
    )
    click.echo(f"# Effective {what}: {origin}", file=state.runtime.out)
    click.echo(dump_yaml(data), file=state.runtime.out, nl=False)


@group.command("validate")
@click.argument("path", type=click.Path(path_type=Path), default=DEFAULT_POLICY_PATH)
@json_option
@pass_state
def validate(state: Session, path: Path, as_json: bool) -> None:
    """Check a policy file; errors name the file, line and key, and exit 2.

    Every metric query template is rendered once, in the sandbox a release renders it in;
    a flag guard's templates (`feature_flags.guard.queries`) must also use `{{ variation }}`.
    """
    from release_actions.core.yamlpos import load_yaml_file
    from release_actions.errors import PolicyError, PolicyIssue
    from release_actions.metrics.factory import guard_template_problems, template_problems

    policy = load_policy(path, required=True)
    m = policy.metrics
    problems = template_problems(
        {"prometheus": dict(m.prometheus.queries), "datadog": dict(m.datadog.queries)}
    )
    refused = strategy_problems(policy) + guard_template_problems(
        policy.feature_flags.guard.queries
    )
    if problems or refused:
        located = load_yaml_file(path)
        raise PolicyError(
            f"{path} is not a valid release policy",
            [
                PolicyIssue(
                    str(path),
                    located.line_of(("metrics", kind, "queries", name)),
                    f"metrics.{kind}.queries.{name}",
                    message,
                )
                for kind, name, message in problems
            ]
            + [
                PolicyIssue(str(path), located.line_of(where), ".".join(where), message)
                for where, message in refused
            ],
        )
    if as_json:
        state.emit_json({"file": str(path), "valid": True})
    else:
        state.say(f"{path}: valid release policy")


def strategy_problems(policy: Any) -> list[tuple[tuple[str, ...], str]]:
    """Each strategy the policy names that its deploy target cannot run (shadow on Cloud Run),
    for the service and each release type, in production and in each environment's target."""
    from release_actions.targets.factory import strategy_refusal

    named: list[tuple[tuple[str, ...], str]] = [(("deploy", "strategy"), policy.deploy.strategy)]
    named += [
        (("release_types", name, "strategy"), rules.strategy)
        for name, rules in policy.release_types.items()
        if rules.strategy is not None
    ]
    deploys = [policy]
    for env in policy.deploy.environments:
        own = policy.for_environment(env)
        if own is not None and env != "staging":  # staging is always rolling
            deploys.append(own)
    out: list[tuple[tuple[str, ...], str]] = []
    for where, strategy in named:
        for each in deploys:
            target = each.deploy.target
            why = strategy_refusal(target, strategy, each)
            text = f"`{strategy}` cannot run on the {target} target: {why}"
            if why is not None and (where, text) not in out:
                out.append((where, text))
    return out


@group.command("schema")
@pass_state
def schema(state: Session) -> None:
    """Print the JSON Schema of the policy file, for editors (yaml-language-server).

    The release's copy is at the URL of `$id`, which a policy file's first line can name:
    `# yaml-language-server: $schema=<that URL>`.
    """
    click.echo(json.dumps(policy_file_schema(), indent=2), file=state.runtime.out)


@group.command("get")
@click.argument("key")
@policy_option
@json_option
@pass_state
def get(state: Session, key: str, policy_path: Path | None, as_json: bool) -> None:
    """Print one value of the effective policy by its dotted KEY, such as `deploy.target`.

    Scalars print as they are, anything else as JSON, so a script can read one setting
    without parsing the whole policy.
    """
    from release_actions.errors import PolicyError

    value: object = load_policy(policy_path).model_dump(mode="json")
    for part in key.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise PolicyError(
                f"The policy has no `{key}`.",
                hint="`release-actions policy show` prints every key.",
            )
    if as_json:
        state.emit_json({"key": key, "value": value})
    elif isinstance(value, dict | list):
        state.say(json.dumps(value))
    elif value is None:
        state.say("")
    elif isinstance(value, bool):
        state.say("true" if value else "false")
    else:
        state.say(str(value))
