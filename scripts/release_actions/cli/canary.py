"""`release-actions canary`: one canary analysis, or a whole rollout against a target (source §4.2-4.4)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from release_actions.app.world import WorldRequest
from release_actions.cli import Session, check_failed, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.cli.options import (
    TARGETS,
    VERSION,
    progress_printer,
    provider_option,
    provider_setting_option,
    record_options,
    report_with_record,
    target_options,
    target_provider_option,
    world_request,
)
from release_actions.cli.rehearse import (
    judge_option,
    scenario_options,
    seed_option,
    strategy_option,
)
from release_actions.core.policy import STEP_PRESETS, load_policy
from release_actions.core.settings import (
    CANARY_REQUESTS,
    STAGES,
    CanaryRequest,
    Overrides,
    Stage,
)

if TYPE_CHECKING:
    pass


@click.group("canary")
def group() -> None:
    """Analyse and run canary rollouts (source §4.2-4.4)."""


@group.command("analyze")
@provider_option
@provider_setting_option
@scenario_options
@click.option(
    "--weight",
    type=click.IntRange(1, 99),
    default=20,
    show_default=True,
    help="Simulated provider: the canary's share of the traffic.",
)
@click.option(
    "--at",
    "at_s",
    type=click.FloatRange(min=1),
    default=None,
    help="Simulated provider: analyse the window ending this many seconds into the scenario "
    "(default: one analysis_seconds).",
)
@seed_option
@judge_option
@policy_option
@json_option
@pass_state
def analyze(
    state: Session,
    provider_name: str,
    provider_settings: tuple[str, ...],
    scenario_name: str | None,
    scenario_file: Path | None,
    weight: int,
    at_s: float | None,
    seed: int,
    judge: str | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """One analysis of canary against stable over the last analysis window.

    Exit 0 when it passes, 1 when it fails, is inconclusive or cannot be measured.
    """
    from release_actions.app.analyze import AnalyzeRequest, run_analysis

    request = AnalyzeRequest(
        provider=provider_name,
        world=WorldRequest(
            provider_settings=provider_settings,
            scenario_name=scenario_name,
            scenario_file=scenario_file,
            seed=seed,
        ),
        judge=judge,
        weight=weight,
        at_s=at_s,
    )
    done = run_analysis(state, load_policy(policy_path), request)
    result, where = done.analysis, done.where
    state.runtime.set_output("verdict", result.verdict)
    state.runtime.set_output("reason", result.reason)
    if as_json:
        state.emit_json({"judge": done.judge, "where": where, **result.to_dict()})
    else:
        state.say(f"canary analysis ({done.judge} judge, {where}): {result.verdict}")
        state.say(f"  {result.reason}")
    if not result.ok:
        raise check_failed()


@group.command("run")
@click.option(
    "--target",
    "target_name",
    type=click.Choice(TARGETS),
    default=None,
    help="Where to roll out: `kubernetes` (+ Istio), `argo` (Argo Rollouts), `cloudrun`, or "
    "`simulated` (the rehearsal simulator) [default: the policy's deploy.target]. Settings "
    "come from `deploy.<target>` of the policy.",
)
@click.option(
    "--version",
    "version",
    type=VERSION,
    required=True,
    help="The version to roll out, such as v1.5.2.",
)
@click.option(
    "--release-type",
    default=None,
    metavar="TYPE",
    help="Release type of the policy (source §1.4, §3.3): its canary rule and environment "
    "[default: regular].",
)
@click.option(
    "--canary",
    "canary_request",
    type=click.Choice(CANARY_REQUESTS),
    default="policy",
    show_default=True,
    help="How the type's canary rule is read: `policy` runs it unless the type says `skip`, "
    "`auto` only when the type requires it (a hotfix may skip it, source §7.1), `always` "
    "runs it. A high-traffic period (source §2.4) requires it in every case.",
)
@click.option(
    "--stage",
    type=click.Choice(STAGES),
    default="production",
    show_default=True,
    help="`staging` deploys straight to 100 % in the `staging` environment (source §3.2); "
    "the canary belongs to production.",
)
@click.option(
    "--at",
    default=None,
    help="ISO 8601 time the calendar is read at, for its high-traffic periods (default: now).",
)
@click.option(
    "--steps",
    "steps_preset",
    type=click.Choice(sorted(STEP_PRESETS)),
    default=None,
    help="Use this step preset instead of the policy's (and a scenario's): `direct` goes "
    "straight to 100 % with no canary; refused where the type or the calendar requires one.",
)
@strategy_option
@target_provider_option
@provider_setting_option
@scenario_options
@target_options
@record_options
@click.option(
    "--state-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Simulated target: keep its state in this JSON file, so a killed run resumes.",
)
@seed_option
@judge_option
@policy_option
@json_option
@pass_state
def run(
    state: Session,
    /,
    target_name: str | None,
    version: str,
    release_type: str | None,
    canary_request: CanaryRequest,
    stage: Stage,
    at: str | None,
    steps_preset: str | None,
    strategy: str | None,
    environment: str | None,
    record_file: Path | None,
    repository: str | None,
    judge: str | None,
    policy_path: Path | None,
    as_json: bool,
    **world: Any,
) -> None:
    """Roll VERSION out step by step; promote, hold or roll back.

    Run it again with the same version to resume a rollout that was interrupted. A
    rollback writes its record (RB-YYYY-NNN) to the job summary, the record file and a
    GitHub deployment (`task: rollback`; needs GITHUB_TOKEN with `deployments: write`).
    Messages go to Slack (SLACK_WEBHOOK_URL or SLACK_BOT_TOKEN) or to the job summary.
    Exit 0 when promoted (blue-green: switched; a shadow alone: passed), 1 when rolled
    back, aborted, failed or held.
    """
    from release_actions.app.rollout import RolloutRequest, run_rollout
    from release_actions.canary.report import RunReport
    from release_actions.canary.rollout import step_label
    from release_actions.cli.calendar import parse_at

    state.json = as_json
    policy = load_policy(policy_path)
    request = RolloutRequest(
        version=version,
        overrides=Overrides(
            release_type=release_type,
            target=target_name,
            provider=world["provider_name"],
            steps=steps_preset,
            strategy=strategy,
            stage=stage,
            canary=canary_request,
            judge=judge,
            environment=environment,
        ),
        world=world_request(world),
        at=parse_at(at) if at else None,
        record_file=record_file,
        repository=repository,
    )
    printer = progress_printer(state, policy, world["provider_name"], as_json=as_json)
    try:
        result = run_rollout(state, policy, request, on_event=printer)
    finally:
        printer.close()
    if result.world is None:
        text = f"Staging deploy of {version} skipped: {result.settings.skipped}."
        state.runtime.annotate("notice", text, title="Staging")
        state.runtime.summary(f"### Staging deploy of {version}: skipped\n\n{text}\n")
        state.runtime.set_output("decision", "skipped")
        return
    if result.outcome is None:
        state.say(
            f"Would roll {version} out on {result.settings.target} ({result.world.label}): "
            + " → ".join(step_label(s, short=True) for s in result.settings.steps)
            + f" ({result.settings.strategy}: {result.settings.steps_source}; dry run, "
            "nothing changed)."
        )
        return
    report = RunReport(result.outcome, None, context=result.context)
    report_with_record(
        state, report, result.published, as_json=as_json, title=f"Canary rollout of {version}"
    )
