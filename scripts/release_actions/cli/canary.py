"""`release-actions canary`: one canary analysis, or a whole rollout against a target (source §4.2-4.4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from release_actions.cli import State, check_failed, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.cli.rehearse import (
    ProgressPrinter,
    judge_option,
    pick_scenario,
    report_run,
    scenario_options,
    seed_option,
)
from release_actions.core.policy import load_policy
from release_actions.metrics.base import MetricsProvider

PROVIDERS = ("simulated", "prometheus", "datadog")
# Only the simulator so far; Kubernetes, Argo Rollouts and Cloud Run plug in here.
TARGETS = ("simulated",)

# Where a provider's settings come from when --provider-setting leaves them out; the
# secret ones are masked the moment they are read.
PROVIDER_ENV: dict[str, dict[str, tuple[tuple[str, ...], bool]]] = {
    "prometheus": {
        "url": (("PROMETHEUS_URL",), False),
        "bearer_token": (("PROMETHEUS_TOKEN",), True),
        "service": (("SERVICE_NAME",), False),
    },
    "datadog": {
        "api_key": (("DD_API_KEY", "DATADOG_API_KEY"), True),
        "app_key": (("DD_APP_KEY", "DD_APPLICATION_KEY", "DATADOG_APP_KEY"), True),
        "site": (("DD_SITE",), False),
        "service": (("SERVICE_NAME",), False),
    },
}

provider_option = click.option(
    "--provider",
    "provider_name",
    type=click.Choice(PROVIDERS),
    default="simulated",
    show_default=True,
    help="Metrics provider. `prometheus` and `datadog` take --provider-setting KEY=VALUE.",
)
provider_setting_option = click.option(
    "--provider-setting",
    "provider_settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="A provider setting, such as `url=http://prometheus:9090` or `service=api` "
    "(repeatable). Secrets come from the environment: DD_API_KEY, DD_APP_KEY, PROMETHEUS_TOKEN.",
)


def real_provider(state: State, kind: str, pairs: tuple[str, ...]) -> MetricsProvider:
    """A Prometheus or Datadog provider from flags and the environment, via the factory."""
    from release_actions.metrics.factory import make_provider

    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(
                f"{pair!r} is not KEY=VALUE, such as `url=http://prometheus:9090`.",
                param_hint="--provider-setting",
            )
        settings[key.strip()] = value
    for key, (names, secret) in PROVIDER_ENV.get(kind, {}).items():
        if key in settings:
            continue
        for name in names:
            found = state.env.get(name)
            if found:
                if secret:
                    state.runtime.mask(found)
                settings[key] = found
                break
    return make_provider(kind, **settings)


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
    state: State,
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
    from release_actions.canary.engine import RealClock, analyze_window
    from release_actions.canary.judge import make_judge

    policy = load_policy(policy_path)
    analysis = policy.canary.analysis
    the_judge = make_judge(analysis, judge)
    if provider_name == "simulated":
        from release_actions.canary.simulator import build

        name, scenario = pick_scenario(scenario_name, scenario_file)
        world = build(scenario, name=name, seed=seed)
        world.target.begin("v1.5.2")
        world.target.set_weight(weight)
        world.clock.sleep(at_s if at_s is not None else analysis.analysis_seconds)
        provider: MetricsProvider = world.provider
        end = world.clock.now()
        where = f"scenario `{name}` at +{end - world.simulation.origin:.0f}s, canary at {weight}%"
    else:
        if scenario_name or scenario_file or at_s is not None:
            raise click.UsageError(
                "`--scenario`, `--scenario-file` and `--at` belong to `--provider simulated`."
            )
        provider = real_provider(state, provider_name, provider_settings)
        end = RealClock().now()
        where = f"{provider_name}, the last {analysis.analysis_seconds}s"
    result = analyze_window(provider, the_judge, policy, end)
    state.runtime.set_output("verdict", result.verdict)
    state.runtime.set_output("reason", result.reason)
    if as_json:
        state.emit_json({"judge": the_judge.name, "where": where, **result.to_dict()})
    else:
        state.say(f"canary analysis ({the_judge.name} judge, {where}): {result.verdict}")
        state.say(f"  {result.reason}")
    if not result.ok:
        raise check_failed()


@group.command("run")
@click.option(
    "--target",
    "target_name",
    type=click.Choice(TARGETS),
    required=True,
    help="Where to roll out. `simulated` runs on the rehearsal simulator.",
)
@click.option(
    "--version", "version", required=True, help="The version to roll out, such as v1.5.2."
)
@provider_option
@scenario_options
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
    state: State,
    target_name: str,
    version: str,
    provider_name: str,
    scenario_name: str | None,
    scenario_file: Path | None,
    state_file: Path | None,
    seed: int,
    judge: str | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Roll VERSION out step by step; promote, hold or roll back.

    Run it again with the same version to resume a rollout that was interrupted. Exit 0
    when promoted, 1 when rolled back or held.
    """
    from release_actions.canary.engine import CanaryEngine
    from release_actions.canary.judge import make_judge
    from release_actions.canary.report import RunReport
    from release_actions.canary.simulator import build

    if target_name == "simulated" and provider_name != "simulated":
        raise click.UsageError(
            "`--target simulated` measures its own simulated traffic: use `--provider simulated`."
        )
    policy = load_policy(policy_path)
    name, scenario = pick_scenario(scenario_name, scenario_file)
    world = build(scenario, name=name, seed=seed, state_file=state_file)
    the_judge = make_judge(policy.canary.analysis, judge)
    if state.dry_run:
        steps = scenario.resolved_steps() or policy.canary.resolved_steps()
        state.say(
            f"Would roll {version} out on {target_name}: "
            + " → ".join(f"{s.weight}%" for s in steps)
            + " (dry run, nothing changed)."
        )
        return
    printer = ProgressPrinter(state, quiet=as_json)
    engine = CanaryEngine(
        world.target,
        world.provider,
        the_judge,
        policy,
        world.clock,
        steps=scenario.resolved_steps(),
        on_event=printer,
    )
    try:
        outcome = engine.run(version)
    finally:
        printer.close()
    report = RunReport(
        outcome,
        None,
        context={
            "scenario": name,
            "seed": seed,
            "judge": the_judge.name,
            "target": target_name,
            "provider": provider_name,
            "version": version,
        },
    )
    report_run(state, report, as_json=as_json, title=f"Canary rollout of {version}")
