"""`release-actions action`: what a composite action runs; its inputs become one CLI call."""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from release_actions.cli import Session, pass_state
from release_actions.core.settings import Overrides, Use
from release_actions.errors import PolicyWarning, ReleaseActionsError

if TYPE_CHECKING:
    from release_actions.core.policy import Policy

Kind = Literal["value", "flag", "lines", "words", "istio", "argument"]


@dataclass(frozen=True)
class Input:
    """How one action input reaches the command.

    ``value``: `--option VALUE` when not empty. ``flag``: `true` / `false`, `--option` when
    true. ``lines``: one `--option LINE` per non-blank line. ``words``: one `--option WORD`
    per word, split on white space and commas, never globbed. ``istio``: `auto`, or `false`
    for the `--no-istio` flag. ``argument``: the command's argument, after `--` so that it is
    never read as an option; when empty, ``option`` alone (if any): the flags gate's `flag`
    is `flags rollout --gate KEY`, or `--all` without one.
    """

    option: str
    kind: Kind = "value"


@dataclass(frozen=True)
class ActionSpec:
    """An action: the command it runs and how its inputs map to that command's options."""

    command: tuple[str, ...]
    use: Use | None
    inputs: Mapping[str, Input]
    # Inputs that the action.yml itself consumes (working directory, token into env:).
    yaml_only: frozenset[str] = frozenset({"github-token", "working-directory"})
    # Inputs whose presence adds an extra: `applied-migrations` needs the `db` extra.
    extra_if_set: Mapping[str, str] = field(default_factory=dict)
    # Inputs whose value picks an extra: `platform: android` needs `play`.
    extra_by_value: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Extras the command always needs, whatever the policy says.
    extras_always: tuple[str, ...] = ()
    # Extras that a key of the policy asks for (`reporting.datadog`: `datadog`).
    extras_from_policy: Callable[[Policy], Iterable[str]] | None = None
    fail_on_rollback: bool = False
    # Values of the `command` input that run another command, with their own inputs: the
    # mobile action's `propose-version` is `mobile version-config propose`.
    commands: Mapping[str, ActionSpec] = field(default_factory=dict)
    # Options the command always gets: the flags action's `rollout-gate` is `flags rollout
    # --gate` (then KEY, or `--all`).
    fixed: tuple[str, ...] = ()

    def for_env(self, env: Mapping[str, str]) -> ActionSpec:
        """The spec that this step's inputs select: the `command` input's, if it has one."""
        return self.commands.get(env.get(_env_name("command"), "").strip(), self)


def _same(*names: str, kind: Kind = "value") -> dict[str, Input]:
    return {name: Input(f"--{name}", kind) for name in names}


_TARGET_INPUTS = _same("namespace", "deployment", "rollout", "project", "region", "service")
_RECORD_INPUTS = _same("environment", "record-file")
_PROVIDER_INPUTS = {
    **_same("provider", "policy"),
    "provider-settings": Input("--provider-setting", "lines"),
}

_METRICS_INPUTS = ("input", "environment", "repo", "cache", "now", "report", "policy")


def _reporting_extras(policy: Policy) -> list[str]:
    return ["datadog"] if policy.reporting.datadog else []


_STATUSPAGE_COMMON = {**_same("page-id", "policy"), **_same("dry-run", kind="flag")}
# Component names have spaces ("TripTrip API"): one a line.
_COMPONENTS = {"components": Input("--component", "lines")}
_STATUSPAGE = {
    "maintenance-schedule": ActionSpec(
        ("statuspage", "maintenance", "schedule"),
        None,
        {
            **_same("start", "end", "impact"),
            **_COMPONENTS,
            **_same("auto", kind="flag"),
            **_STATUSPAGE_COMMON,
        },
    ),
    "maintenance-start": ActionSpec(
        ("statuspage", "maintenance", "start"),
        None,
        {**_same("incident-id", "end", "impact", "body"), **_COMPONENTS, **_STATUSPAGE_COMMON},
    ),
    "maintenance-complete": ActionSpec(
        ("statuspage", "maintenance", "complete"),
        None,
        {**_same("incident-id", "body", "outcome"), **_STATUSPAGE_COMMON},
    ),
    "incident-open": ActionSpec(
        ("statuspage", "incident", "open"),
        None,
        {**_same("service", "version", "impact", "reason"), **_COMPONENTS, **_STATUSPAGE_COMMON},
    ),
    "incident-resolve": ActionSpec(
        ("statuspage", "incident", "resolve"),
        None,
        {
            **_same("incident-id", "service", "version", "root-cause"),
            **_COMPONENTS,
            **_STATUSPAGE_COMMON,
        },
    ),
}


ACTIONS: dict[str, ActionSpec] = {
    "canary": ActionSpec(
        ("canary", "run"),
        "canary",
        {
            **_same("target", "version", "steps", "scenario", "judge", "image", "state-file"),
            **_same("release-type", "canary", "stage", "at", "strategy"),
            "istio": Input("--no-istio", "istio"),
            **_PROVIDER_INPUTS,
            **_TARGET_INPUTS,
            **_RECORD_INPUTS,
        },
        fail_on_rollback=True,
    ),
    "monitor": ActionSpec(
        ("monitor",),
        "monitor",
        {
            **_same("target", "preset", "duration", "interval", "error-rate-threshold"),
            **_same("version", "scenario", "state-file"),
            **_PROVIDER_INPUTS,
            **_TARGET_INPUTS,
            **_RECORD_INPUTS,
        },
        fail_on_rollback=True,
    ),
    "rollback": ActionSpec(
        ("rollback",),
        "rollback",
        {
            **_same("target", "to-revision", "reason", "trigger", "applied-migrations"),
            **_same("state-file"),
            "flags": Input("--flag", "words"),
            **_same("flags-only", "no-flags", "allow-contract", "force", kind="flag"),
            **_PROVIDER_INPUTS,
            **_TARGET_INPUTS,
            **_RECORD_INPUTS,
        },
        extra_if_set={"applied-migrations": "db"},
    ),
    "control": ActionSpec(
        ("control",),
        "rollback",
        {
            **_same("action", "reason", "target", "policy", "timeout", "state-file"),
            **_same("full", "no-flags", "watch", kind="flag"),
            **_TARGET_INPUTS,
            **_RECORD_INPUTS,
        },
    ),
    "mobile": ActionSpec(
        ("mobile", "rollout"),
        None,
        {
            **_same("command", "platform", "package", "app-id", "version", "version-code"),
            **_same("track", "from-track", "bundle", "changelog", "reason", "policy"),
            **_same("state-file", "state-branch", "record-file"),
            **_same("sentry-org", "sentry-project", "sentry-release"),
        },
        extra_by_value={"platform": {"android": "play", "ios": "appstore"}},
        # The state branch and the records (GitHub), a halt's notice (Slack).
        extras_always=("github", "slack"),
        commands={
            "propose-version": ActionSpec(
                ("mobile", "version-config", "propose"),
                None,
                {
                    **_same("platform", "package", "app-id", "version"),
                    **_same("state-file", "state-branch"),
                    "version-config": Input("--config"),
                },
                extras_always=("github",),
            )
        },
    ),
    "validate": ActionSpec(
        ("validate",),
        "validate",
        {
            **_same("tag", "changelog", "policy", "at", "ref"),
            "release-type": Input("--type"),
            "skip": Input("--skip", "words"),
        },
    ),
    # The stale-flag audit (source §5.5); PyGithub only when it opens issues. `command:
    # rollout-gate` is the guarded rollout's scheduled gate over every rollout in progress:
    # the records (GitHub) and the notices (Slack) of a rollback, Datadog's SDK when named.
    "flags": ActionSpec(
        ("flags", "audit"),
        None,
        {**_same("input", "now", "policy"), **_same("open-issues", kind="flag")},
        yaml_only=frozenset({"github-token", "working-directory", "command"}),
        extra_by_value={"open-issues": {"true": "github"}},
        commands={
            "rollout-gate": ActionSpec(
                ("flags", "rollout"),
                None,
                {
                    **_same("now", "policy", "provider", "project"),
                    **_PROVIDER_INPUTS,
                    "flag": Input("--all", "argument"),
                },
                fixed=("--gate",),
                extras_always=("github", "slack"),
                extra_by_value={"provider": {"datadog": "datadog"}},
            )
        },
    ),
    # The release metrics (source §11): `dora` for a period, `review` for a month. GitHub
    # is read without `input`, and the review's issue is written with `open-issue`.
    "metrics": ActionSpec(
        ("metrics", "dora"),
        None,
        _same("since", "from", "to", *_METRICS_INPUTS),
        yaml_only=frozenset({"github-token", "working-directory", "command"}),
        extras_always=("github",),
        extras_from_policy=_reporting_extras,
        commands={
            "review": ActionSpec(
                ("metrics", "review"),
                None,
                {**_same("month", *_METRICS_INPUTS), **_same("open-issue", kind="flag")},
                extras_always=("github",),
                extras_from_policy=_reporting_extras,
            )
        },
    ),
    # Statuspage (source §10.3): `command` picks one of `statuspage maintenance ...` and
    # `statuspage incident ...`; the action refuses other values. requests is a core
    # dependency: no extra.
    "statuspage": dataclasses.replace(
        _STATUSPAGE["maintenance-schedule"],
        yaml_only=frozenset({"working-directory", "command"}),
        commands=_STATUSPAGE,
    ),
    # `command` picks the train's step (`due` when empty); the action refuses other values.
    # "validate": the calendar's `holidays` extra when the policy names a country.
    "train": ActionSpec(
        ("train", "due"),
        "validate",
        _same("policy", "now", "window-minutes"),
        yaml_only=frozenset({"github-token", "working-directory", "command"}),
        commands={
            "freeze-check": ActionSpec(
                ("train", "freeze-check"),
                "validate",
                _same("policy", "now", "base", "labels", "title", "approved-by", "pull"),
            ),
            "cut": ActionSpec(
                ("train", "cut"),
                "validate",
                _same("policy", "now", "version", "changelog"),
                extras_always=("github", "slack"),
            ),
            **{
                step: ActionSpec(
                    ("train", step),
                    "validate",
                    _same("policy", "now", "version"),
                    # `ship` sends the release notice naming the freeze exceptions.
                    extras_always=("github", "slack") if step == "ship" else ("github",),
                )
                for step in ("stage", "ship")
            },
        },
    ),
}


def _env_name(name: str) -> str:
    return "INPUT_" + name.upper().replace("-", "_")


def _spec(name: str) -> ActionSpec:
    try:
        return ACTIONS[name]
    except KeyError:
        raise ReleaseActionsError(
            f"Unknown action `{name}`: use one of {', '.join(f'`{n}`' for n in ACTIONS)}."
        ) from None


def _bool(action: str, name: str, value: str) -> bool:
    if value not in ("true", "false"):
        raise ReleaseActionsError(
            f"Input `{name}` of `{action}` must be `true` or `false`, got `{value}`.",
            hint=f"Set `{name}: true` or `{name}: false` under `with:`.",
        )
    return value == "true"


def arguments(action: str, env: Mapping[str, str]) -> list[str]:
    """The command line that the action's inputs (``INPUT_*`` in ``env``) stand for.

    Click validates every value afterwards, so this only maps; an empty input is "not given".
    """
    spec = _spec(action).for_env(env)
    args = [*spec.command, *spec.fixed]
    positional: list[str] = []
    for name, how in spec.inputs.items():
        value = env.get(_env_name(name), "")
        if how.kind == "argument":
            if value.strip():
                positional.append(value.strip())
            elif how.option:
                args.append(how.option)
        elif how.kind == "lines":
            args += [a for line in value.splitlines() if line.strip() for a in (how.option, line)]
        elif how.kind == "words":
            args += [a for word in re.split(r"[\s,]+", value) if word for a in (how.option, word)]
        elif how.kind == "flag":
            if value and _bool(action, name, value):
                args.append(how.option)
        elif how.kind == "istio":
            if value not in ("", "auto", "false"):
                raise ReleaseActionsError(
                    f"Input `{name}` of `{action}` must be `auto` or `false`, got `{value}`."
                )
            if value == "false":
                args.append(how.option)
        elif value.strip():
            args += [how.option, value]
    return [*args, "--", *positional] if positional else args


def overrides(action: str, env: Mapping[str, str]) -> tuple[Path | None, Overrides]:
    """The policy file and the overrides that the action's inputs give, for the extras."""

    def get(name: str) -> str | None:
        return env.get(_env_name(name), "").strip() or None

    policy = get("policy")
    return Path(policy) if policy else None, Overrides(
        release_type=get("release-type") or get("preset"),
        target=get("target"),
        provider=get("provider"),
    )


def extras(action: str, env: Mapping[str, str]) -> list[str]:
    """The package extras the action's step needs, decided from the effective settings."""
    from release_actions.core.policy import load_policy
    from release_actions.core.settings import resolve

    spec = _spec(action).for_env(env)
    out = set(spec.extras_always)
    if spec.use is not None:
        path, given = overrides(action, env)
        out |= set(resolve(load_policy(path), given).extras(spec.use))
    if spec.extras_from_policy is not None:
        path, _ = overrides(action, env)
        out |= set(spec.extras_from_policy(load_policy(path)))
    out |= {extra for name, extra in spec.extra_if_set.items() if env.get(_env_name(name))}
    for name, by_value in spec.extra_by_value.items():
        value = env.get(_env_name(name), "").strip()
        if value in by_value:
            out.add(by_value[value])
    return sorted(out)


@click.group("action", hidden=True)
def group() -> None:
    """What the composite actions in actions/ run (reads their INPUT_* variables)."""


@group.command("extras")
@click.argument("name")
@pass_state
def extras_command(state: Session, name: str) -> None:
    """Print the extras that action NAME needs, comma-separated, for actions/_lib/run.sh.

    Policy warnings wait for the run itself, so that this output is only the list.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PolicyWarning)
        state.say(",".join(extras(name, state.env)))


@group.command("run")
@click.argument("name")
@click.pass_context
def run_command(ctx: click.Context, name: str) -> None:
    """Run action NAME: its inputs as one call of the command it wraps."""
    from release_actions.cli import cli

    state: Session = ctx.find_object(Session)  # type: ignore[assignment]
    spec = _spec(name)
    args = arguments(name, state.env)
    # `fail-on-rollback: false` only reports a rollback; every other exit 1 still fails.
    report_only = spec.fail_on_rollback and not _bool(
        name, "fail-on-rollback", state.env.get("INPUT_FAIL_ON_ROLLBACK", "") or "true"
    )
    root = ctx.find_root()
    extra = (["-v"] * state.verbose) + (["--dry-run"] if state.dry_run else [])
    code = cli.main(
        args=[*extra, *args],
        prog_name=root.info_name,
        standalone_mode=False,
        obj=state,
    )
    code = 0 if code is None else int(code)
    # Exit 1 is "rolled back or held": a step that only reports it must not fail the job.
    if code == 1 and report_only:
        code = 0
    if code:
        raise click.exceptions.Exit(code)
