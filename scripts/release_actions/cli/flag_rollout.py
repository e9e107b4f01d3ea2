"""`release-actions flags rollout KEY`: a flag's guarded gradual rollout on LaunchDarkly."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from release_actions.cli import Session, check_failed, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.cli.options import (
    progress_printer,
    provider_setting_option,
    report_with_record,
)
from release_actions.cli.rehearse import scenario_options, seed_option
from release_actions.errors import ReleaseActionsError

if TYPE_CHECKING:
    from release_actions.app.world import WorldRequest
    from release_actions.canary.gate_report import GateLook
    from release_actions.core.policy import Policy


FLAG_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""LaunchDarkly's flag keys: a letter or digit first, then letters, digits, `.`, `_`, `-`."""


@click.command("rollout")
@click.argument("key", required=False)
@click.option(
    "--gate",
    is_flag=True,
    default=False,
    help="One look per run, for steps longer than a job (a scheduled workflow runs it, hourly "
    "say): start the rollout if none is in progress, else judge the current step from the end "
    "of the last look to now and hold, advance or set it back. The step's start and the "
    "judge's evidence are kept in the state on the flag.",
)
@click.option(
    "--now",
    default=None,
    metavar="ISO",
    help="With --gate: look as at this time (ISO 8601 with offset), for a test over recorded "
    "metrics [default: $RELEASE_ACTIONS_NOW, else the clock].",
)
@click.option(
    "--all",
    "every_flag",
    is_flag=True,
    default=False,
    help="With --gate and no KEY: one look at every flag of the project whose custom property "
    "holds a rollout in progress (none: nothing to do). Never starts a rollout.",
)
@click.option(
    "--provider",
    "provider_name",
    type=click.Choice(["prometheus", "datadog", "simulated"]),
    default=None,
    help="Where the users' requests are counted, split by the variation they were served "
    "(`feature_flags.guard.queries.<provider>`) [default: the policy's metrics.provider]. "
    "`simulated` rehearses the real flag under simulated traffic (--scenario) on a virtual "
    "clock.",
)
@provider_setting_option
@scenario_options
@seed_option
@click.option(
    "--project",
    default=None,
    metavar="KEY",
    help="LaunchDarkly project key [default: $LAUNCHDARKLY_PROJECT, else the policy's].",
)
@click.option(
    "--record-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the rollback record here as JSON (default: in RUNNER_TEMP when set).",
)
@click.option(
    "--repo",
    "repository",
    default=None,
    metavar="OWNER/NAME",
    help="Repository whose deployments keep the records (default: GITHUB_REPOSITORY).",
)
@policy_option
@json_option
@pass_state
def rollout_command(
    state: Session,
    key: str | None,
    gate: bool,
    now: str | None,
    every_flag: bool,
    provider_name: str | None,
    provider_settings: tuple[str, ...],
    scenario_name: str | None,
    scenario_file: Path | None,
    seed: int,
    project: str | None,
    record_file: Path | None,
    repository: str | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Roll flag KEY out in production step by step, judged like a canary.

    The steps are `feature_flags.stages.gradual` (25 -> 50 -> 75 -> 100 % on), each judged
    for `feature_flags.guard.step_seconds` on the users served `on` (the canary track)
    against those served `off` (stable), with the templates of
    `feature_flags.guard.queries.<provider>`, which must use `{{ variation }}`. A regression
    sets the fallthrough back to the last safe percentage, or turns the flag off
    (`feature_flags.guard.on_regression`), and writes a rollback record. The rollout's state
    is kept on the flag (custom property `release-actions-rollout`): run it again to resume.
    With `--provider simulated` the default scenario is flag-healthy (flag-regression,
    flag-provider-down). Outputs: `decision` and `flag-percent`. Exit 0 when the flag is on for everyone, 1 when
    rolled back, aborted or failed.

    `--gate` makes one look per run instead, for steps of a day (docs/flags.md): `flags
    rollout KEY --gate` starts the rollout and looks at it; `flags rollout --gate --all`, from
    a schedule, looks at every rollout in progress. A look holds until the step's time is
    up, moves to the next percentage, or sets the rollout back; a person's change of the
    targeting since the last look stops the gate, which then changes nothing. Outputs:
    `rollouts` (JSON), and with KEY `decision` (what the run did) and `flag-percent`. Exit 0
    while each rollout goes on or reached 100 %, 1 when one was set back, held, stopped or
    lost a race with another run, 2 on an error.
    """
    from release_actions.app.flag_rollout import FlagRolloutRequest, run_flag_rollout
    from release_actions.app.world import WorldRequest
    from release_actions.canary.report import RunReport
    from release_actions.core.policy import load_policy

    state.json = as_json
    for given, name in ((every_flag, "--all"), (now is not None, "--now")):
        if given and not gate:
            raise click.UsageError(f"`{name}` belongs to `--gate`: add `--gate`.")
    if every_flag and key is not None:
        raise click.UsageError("Only one of KEY or `--all` can be set.")
    if key is not None and not FLAG_KEY.fullmatch(key):
        # A key can come from a workflow's input: it goes into LaunchDarkly's URLs with a
        # Writer token, so only what LaunchDarkly itself allows in a key gets that far.
        raise click.BadParameter(
            f"{key!r} is not a LaunchDarkly flag key: it starts with a letter or a digit and "
            "has only letters, digits, `.`, `_` and `-`.",
            param_hint="KEY",
        )
    if key is None and not every_flag:
        raise click.UsageError(
            "Missing argument KEY: name the flag, or look at every rollout in progress with "
            "`--gate --all`."
        )
    if every_flag and record_file is not None:
        raise click.UsageError(
            "`--record-file` names one file: with `--all` each rollback record goes to its "
            "own file under RUNNER_TEMP."
        )
    policy = load_policy(policy_path)
    world = WorldRequest(
        provider=provider_name,
        provider_settings=provider_settings,
        scenario_name=scenario_name,
        scenario_file=scenario_file,
        seed=seed,
    )
    if gate:
        report_gate(
            state,
            policy,
            [] if key is None else [key],
            world,
            project=project,
            record_file=record_file,
            repository=repository,
            now=now,
            as_json=as_json,
        )
        return
    assert key is not None
    request = FlagRolloutRequest(
        flag=key,
        world=world,
        project=project,
        record_file=record_file,
        repository=repository,
    )
    printer = progress_printer(state, policy, provider_name, as_json=as_json)
    try:
        result = run_flag_rollout(state, policy, request, on_event=printer)
    finally:
        printer.close()
    if result.outcome is None:
        state.say(
            f"Would roll flag `{key}` out: "
            + " → ".join(f"{s.weight}%" for s in result.settings.steps)
            + f" on ({result.settings.steps_source}; dry run, nothing changed)."
        )
        return
    facts = result.context.get("flag") or {}
    if "percent" in facts:
        state.runtime.set_output("flag-percent", str(facts["percent"]))
    report = RunReport(result.outcome, None, context=result.context)
    report_with_record(
        state, report, result.published, as_json=as_json, title=f"Flag rollout of `{key}`"
    )


def report_gate(
    state: Session,
    policy: Policy,
    keys: list[str],
    world: WorldRequest,
    *,
    project: str | None,
    record_file: Path | None,
    repository: str | None,
    now: str | None,
    as_json: bool,
) -> None:
    """`flags rollout --gate`: one look at each flag named, or at each rollout in progress."""
    from release_actions.app.flag_gate import gate_clock, run_flag_gates
    from release_actions.cli.rehearse import ProgressPrinter

    # No progress bar: a gate's step lasts a day, and a run makes one look at it.
    printer = ProgressPrinter(state, quiet=as_json)
    try:
        looks = run_flag_gates(
            state,
            policy,
            keys,
            world,
            project=project,
            record_file=record_file,
            repository=repository,
            on_event=printer,
            clock=gate_clock(now, state.env),
        )
    finally:
        printer.close()
    finish_gate(state, policy, looks, as_json=as_json, one=bool(keys))


def finish_gate(
    state: Session,
    policy: Policy,
    looks: list[GateLook],
    *,
    as_json: bool,
    one: bool,
    title: str = "Guarded flag rollouts",
    extra: dict[str, Any] | None = None,
) -> None:
    """Outputs, the job summary (table and charts), a line per flag, and the exit code:
    0 while every rollout goes on, 1 when one needs a person, 2 when one could not be read."""
    from release_actions.canary.gate_report import decision_text, gate_markdown

    tz = policy.calendar.tz
    runtime = state.runtime
    runtime.set_output("rollouts", json.dumps([g.to_dict() for g in looks], separators=(",", ":")))
    if one and looks:
        last = looks[-1]
        runtime.set_output("decision", last.action)
        runtime.set_output("flag-percent", "" if last.percent is None else str(last.percent))
    runtime.summary(gate_markdown(looks, tz, title=title))
    for g in looks:
        if not g.ok:
            text = f"`{g.flag}`: {g.action}: {g.reason}" + (f" {g.hint}" if g.hint else "")
            # Another run's look stands after a conflict: nothing is wrong with the rollout.
            runtime.annotate("warning" if g.action == "conflict" else "error", text, title=title)
    if as_json:
        state.emit_json({**(extra or {}), "rollouts": [g.to_dict() for g in looks]})
    elif not looks:
        state.say("No guarded flag rollout is in progress: nothing to look at.")
    else:
        for g in looks:
            step = "" if g.step is None else f" (step {g.step + 1}/{g.steps}"
            step += "" if not step else f", {g.looked} look{'s' if g.looked != 1 else ''})"
            state.say(f"`{g.flag}` {g.action}{step}: {decision_text(g, tz)}")
    code = max((g.exit_code for g in looks), default=0)
    if code > 1:
        failed = [g for g in looks if g.exit_code > 1]
        raise ReleaseActionsError(
            f"{len(failed)} of {len(looks)} flag rollouts could not be looked at: "
            + "; ".join(f"`{g.flag}`: {g.reason}" for g in failed),
            hint=next((g.hint for g in failed if g.hint), None),
        )
    if code == 1:
        raise check_failed()
