"""`release-actions flags rollout KEY`: a flag's guarded gradual rollout on LaunchDarkly."""

from __future__ import annotations

from pathlib import Path

import click

from release_actions.cli import Session, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.cli.options import (
    progress_printer,
    provider_setting_option,
    report_with_record,
)
from release_actions.cli.rehearse import scenario_options, seed_option


@click.command("rollout")
@click.argument("key")
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
    key: str,
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
    """
    from release_actions.app.flag_rollout import FlagRolloutRequest, run_flag_rollout
    from release_actions.app.world import WorldRequest
    from release_actions.canary.report import RunReport
    from release_actions.core.policy import load_policy

    state.json = as_json
    policy = load_policy(policy_path)
    request = FlagRolloutRequest(
        flag=key,
        world=WorldRequest(
            provider=provider_name,
            provider_settings=provider_settings,
            scenario_name=scenario_name,
            scenario_file=scenario_file,
            seed=seed,
        ),
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
