"""`release-actions canary`: one canary analysis, or a whole rollout against a target (source §4.2-4.4)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from release_actions.cli import State, check_failed, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.cli.notify import note
from release_actions.cli.rehearse import (
    ProgressPrinter,
    judge_option,
    pick_scenario,
    report_run,
    scenario_options,
    seed_option,
)
from release_actions.core.policy import STEP_PRESETS, Policy, RolloutStep, load_policy
from release_actions.metrics.base import MetricsProvider
from release_actions.targets.factory import TARGET_KINDS, TargetOptions

if TYPE_CHECKING:
    from release_actions.canary.model import Clock, Outcome
    from release_actions.canary.report import RunReport
    from release_actions.core.policy import RolloutStep
    from release_actions.integrations.records import Published, RecordStore
    from release_actions.targets.base import DeployTarget

F = TypeVar("F", bound=Callable[..., Any])

PROVIDERS = ("simulated", "prometheus", "datadog")
# Every target the factory builds; `simulated` is the rehearsal simulator.
TARGETS = TARGET_KINDS

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
# For commands that act on a target: no default, so that simulated traffic on a real
# target is always asked for by name (the policy's default provider is the simulator).
target_provider_option = click.option(
    "--provider",
    "provider_name",
    type=click.Choice(PROVIDERS),
    default=None,
    help="Metrics provider (default: the policy's metrics.provider). With a real target, "
    "`simulated` rehearses it under simulated traffic (--scenario) on a virtual clock.",
)
provider_setting_option = click.option(
    "--provider-setting",
    "provider_settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="A provider setting, such as `url=http://prometheus:9090` or `service=api` "
    "(repeatable). Secrets come from the environment: DD_API_KEY, DD_APP_KEY, PROMETHEUS_TOKEN.",
)


def target_options(func: F) -> F:
    """Overrides of `deploy.<target>` in the policy, shared by canary run, monitor and rollback."""
    options = [
        click.option(
            "--namespace", default=None, help="Kubernetes / Argo: namespace (policy default)."
        ),
        click.option(
            "--deployment", default=None, help="Kubernetes: the stable Deployment's name."
        ),
        click.option("--rollout", default=None, help="Argo Rollouts: the Rollout's name."),
        click.option("--project", default=None, help="Cloud Run: Google Cloud project."),
        click.option("--region", default=None, help="Cloud Run: region."),
        click.option("--service", default=None, help="Cloud Run: service."),
        click.option(
            "--image",
            default=None,
            help="Cloud Run: image with `{version}` in it (default: the current image, retagged).",
        ),
        click.option(
            "--no-istio",
            "no_istio",
            is_flag=True,
            help="Kubernetes: split traffic by replica counts even when the policy names Istio.",
        ),
        click.option("--context", default=None, help="Kubernetes / Argo: kubeconfig context."),
        click.option(
            "--cloudrun-endpoint",
            default=None,
            metavar="URL",
            help="Cloud Run API endpoint (default: CLOUDSDK_API_ENDPOINT_OVERRIDES_RUN, else "
            "Google's). A plain-http endpoint is an emulator and gets anonymous credentials.",
        ),
        click.option(
            "--poll-interval",
            type=click.FloatRange(min=0.001),
            default=None,
            help="Seconds between checks while a target settles (default: 2 for Kubernetes "
            "and Argo, 1 rising to 10 for Cloud Run).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def target_options_from(values: Mapping[str, Any]) -> TargetOptions:
    return TargetOptions(
        namespace=values.get("namespace"),
        deployment=values.get("deployment"),
        rollout=values.get("rollout"),
        project=values.get("project"),
        region=values.get("region"),
        service=values.get("service"),
        image=values.get("image"),
        istio=False if values.get("no_istio") else None,
        context=values.get("context"),
        cloudrun_endpoint=values.get("cloudrun_endpoint"),
        poll_interval=values.get("poll_interval"),
        state_file=values.get("state_file"),
    )


def record_options(func: F) -> F:
    """Where the rollback record goes besides the job summary."""
    options = [
        click.option(
            "--environment",
            default=None,
            help="GitHub environment of the deploy, for the record and messages "
            "(default: the policy's `regular` release type's, production).",
        ),
        click.option(
            "--record-file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="Write the rollback record here as JSON (default: in RUNNER_TEMP when set).",
        ),
        click.option(
            "--repo",
            "repository",
            default=None,
            metavar="OWNER/NAME",
            help="Repository whose deployments keep the records (default: GITHUB_REPOSITORY).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def policy_provider_settings(policy: Policy, kind: str) -> dict[str, Any]:
    """The policy's ``metrics`` settings for ``kind``, as the provider's constructor names them.

    Unset values are left out, so that the provider's own defaults apply.
    """
    metrics = policy.metrics
    section = getattr(metrics, kind, None)
    settings: dict[str, Any] = {"service": metrics.service, "timeout": metrics.timeout_seconds}
    if section is not None:
        settings |= {k: v for k, v in section.model_dump().items() if v is not None}
    return settings


def real_provider(
    state: State, kind: str, pairs: tuple[str, ...], policy: Policy
) -> MetricsProvider:
    """A Prometheus or Datadog provider via the factory.

    The policy's ``metrics`` section first, then the environment (``PROMETHEUS_URL``,
    ``DD_SITE``, keys), then ``--provider-setting`` flags, each over the one before.
    """
    from release_actions.metrics.factory import make_provider

    settings = policy_provider_settings(policy, kind)
    flags: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(
                f"{pair!r} is not KEY=VALUE, such as `url=http://prometheus:9090`.",
                param_hint="--provider-setting",
            )
        flags[key.strip()] = value
    for key, (names, secret) in PROVIDER_ENV.get(kind, {}).items():
        if key in flags:
            continue
        for name in names:
            found = state.env.get(name)
            if found:
                if secret:
                    state.runtime.mask(found)
                settings[key] = found
                break
    return make_provider(kind, **(settings | flags))


def resolve_provider(target_name: str, provider_name: str | None, policy: Policy) -> str:
    """The provider to use; simulated traffic on a real target must be asked for by name."""
    chosen = provider_name or policy.metrics.provider
    if target_name == "simulated" and chosen != "simulated":
        raise click.UsageError(
            "`--target simulated` measures its own simulated traffic: use `--provider simulated`."
        )
    if target_name != "simulated" and chosen == "simulated" and provider_name is None:
        raise click.UsageError(
            f"`--target {target_name}` needs a metrics provider: pass `--provider prometheus` "
            "or `--provider datadog` (or set metrics.provider in the policy), or "
            "`--provider simulated` to rehearse the target under simulated traffic."
        )
    return chosen


# -- the world a rollout or a watch runs in ----------------------------------------------------


@dataclass
class World:
    """Target, provider and clock for the engine, and what the report says about them."""

    target: DeployTarget
    provider: MetricsProvider
    clock: Clock
    label: str
    context: dict[str, Any] = field(default_factory=dict)
    steps: list[RolloutStep] | None = None


def build_world(
    state: State,
    policy: Policy,
    *,
    target_name: str,
    provider_name: str,
    provider_settings: tuple[str, ...],
    scenario_name: str | None,
    scenario_file: Path | None,
    seed: int,
    options: TargetOptions,
    live_version: str | None = None,
    watching: bool = False,
) -> World:
    """The simulator; a real target with simulated traffic; or a real target and provider.

    With ``--provider simulated`` the engine runs on the virtual clock: twenty minutes of
    steps pass at once while every weight really changes on the target, and the traffic
    follows the weights the target reports. With a real provider, the real clock.
    ``watching`` (the monitor): the live version is on trial, so the simulated traffic
    treats only the target's known-good version as good; ``live_version`` is what the
    simulated target runs.
    """
    from release_actions.canary.model import RealClock
    from release_actions.targets.factory import make_target, target_label

    if target_name == "simulated":
        from release_actions.canary.simulator import build

        name, scenario = pick_scenario(scenario_name, scenario_file)
        kwargs: dict[str, Any] = {"name": name, "seed": seed, "state_file": options.state_file}
        if live_version is not None:
            kwargs["live_version"] = live_version
        world = build(scenario, **kwargs)
        return World(
            world.target,
            world.provider,
            world.clock,
            world.target.deployment,
            {"scenario": name, "seed": seed},
            scenario.resolved_steps(),
        )
    if provider_name != "simulated":
        if scenario_name or scenario_file:
            raise click.UsageError(
                "`--scenario` and `--scenario-file` belong to `--provider simulated`."
            )
        provider = real_provider(state, provider_name, provider_settings, policy)
        target = make_target(target_name, policy, state.env, options=options)
        return World(target, provider, RealClock(), target_label(target))
    from release_actions.metrics.simulated import SimulatedProvider
    from release_actions.simulation.clock import VirtualClock
    from release_actions.simulation.traffic import Simulation
    from release_actions.targets.recording import RecordingTarget

    name, scenario = pick_scenario(scenario_name, scenario_file)
    clock = VirtualClock()
    real = make_target(target_name, policy, state.env, options=options)
    recording = RecordingTarget(real, clock, deployment=target_label(real), virtual_clock=True)
    status = real.status()
    # Whatever runs now is good unless a rollout recorded otherwise: the monitor watches a
    # live version whose known-good is the one before it.
    good = status.known_good if watching else status.stable_version
    simulation = Simulation(
        scenario, recording, clock, seed=seed, good_version=good or "(none recorded)"
    )
    recording.health_model = simulation.health
    state.runtime.annotate(
        "notice",
        f"Rehearsal: the {target_name} target really changes, under simulated traffic "
        f"(scenario `{name}`, seed {seed}) on a virtual clock.",
        title="Simulated metrics",
    )
    return World(
        recording,
        SimulatedProvider(simulation),
        clock,
        recording.deployment,
        {"scenario": name, "seed": seed},
        scenario.resolved_steps(),
    )


# -- records and messages ------------------------------------------------------------------------


def environment_of(policy: Policy, environment: str | None) -> str:
    if environment:
        return environment
    regular = policy.release_types.get("regular")
    return regular.environment if regular is not None else "production"


def local_time(policy: Policy, epoch: float) -> str:
    return datetime.fromtimestamp(epoch, policy.calendar.tz).strftime("%Y-%m-%d %H:%M %Z")


def record_store(
    state: State, *, environment: str, repository: str | None, simulated: bool
) -> tuple[RecordStore | None, str | None]:
    from release_actions.integrations.records import open_store

    store, why = open_store(state.env, environment=environment, repository=repository)
    if store is None and not simulated:
        note(state, f"rollback records stay in the job summary and the record file: {why}")
    return store, why


def publish_record(
    state: State,
    policy: Policy,
    record: Mapping[str, Any],
    *,
    store: RecordStore | None,
    unavailable: str | None,
    path: Path | None,
    release: str | None,
    target_name: str,
    environment: str,
    flags_turned_off: list[str] | None = None,
) -> Published:
    """The record completed (§6.4 plus run facts), written to its file and to GitHub."""
    from release_actions.integrations.records import complete_record, publish

    full = complete_record(
        record,
        state.env,
        release=release,
        target=target_name,
        environment=environment,
        flags_turned_off=flags_turned_off or [],
    )
    published = publish(
        state.runtime,
        full,
        store=store,
        unavailable=unavailable,
        path=path,
        warn_unattached=target_name != "simulated",
    )
    state.runtime.set_output("record-file", str(published.path) if published.path else "")
    return published


def rolled_back_context(
    policy: Policy,
    record: Mapping[str, Any],
    *,
    service: str,
    environment: str,
    run: str | None,
    flags: list[str] | None = None,
) -> dict[str, Any]:
    """The `rolled_back` message's variables from a record (source §10.2 "rolled back")."""
    duration = record.get("duration") or {}
    when = datetime.fromisoformat(str(record["timestamp"]))
    recovered_at = None
    if record.get("recovered") and duration.get("recovery_seconds") is not None:
        seconds = float(duration.get("rollback_seconds") or 0) + float(duration["recovery_seconds"])
        recovered_at = local_time(policy, when.timestamp() + seconds)
    return {
        "from_version": record.get("from_version") or "?",
        "to_version": record.get("to_version") or "?",
        "reason": (record.get("trigger") or {}).get("reason") or "rollback",
        "trigger": (record.get("trigger") or {}).get("type") or "automatic",
        "service": service,
        "environment": environment,
        "record_id": record.get("id"),
        "rolled_back_at": local_time(policy, when.timestamp()),
        "recovered_at": recovered_at,
        "flags_turned_off": list(flags or record.get("flags_turned_off") or []),
        "run_url": run,
        "repository": record.get("repository"),
    }


def completed_context(
    policy: Policy, outcome: Outcome, *, service: str, environment: str, run: str | None
) -> dict[str, Any]:
    """The `release_completed` message's variables: the canary's error rate over its steps."""
    requests = errors = 0.0
    for step in outcome.steps:
        canary = step.evidence.get("canary") or {}
        requests += float(canary.get("requests") or 0)
        errors += float(canary.get("errors") or 0)
    rate = 100 * errors / requests if requests else None
    return {
        "version": outcome.version,
        "service": service,
        "environment": environment,
        "completed_at": local_time(policy, outcome.ended_at),
        "duration_seconds": round(outcome.ended_at - outcome.started_at),
        "error_rate": None if rate is None else round(rate, 3),
        "canary_success_rate": None if rate is None else round(100 - rate, 3),
        "run_url": run,
    }


def finish_record(
    state: State,
    policy: Policy,
    outcome: Outcome,
    *,
    store: RecordStore | None,
    unavailable: str | None,
    record_file: Path | None,
    release: str | None,
    target_name: str,
    environment: str,
    service: str,
    report_context: dict[str, Any],
) -> Published | None:
    """After a rollback: the record everywhere, then the `rolled_back` message."""
    from release_actions.cli.notify import send
    from release_actions.integrations.records import run_url

    if outcome.record is None:
        state.runtime.set_output("record-file", "")
        return None
    published = publish_record(
        state,
        policy,
        outcome.record,
        store=store,
        unavailable=unavailable,
        path=record_file,
        release=release,
        target_name=target_name,
        environment=environment,
    )
    outcome.record = published.record
    report_context["record_file"] = str(published.path) if published.path else None
    if published.attached is not None and published.attached.ok:
        report_context["github_deployment"] = published.attached.deployment_id
    send(
        state,
        policy,
        "rolled_back",
        rolled_back_context(
            policy,
            published.record,
            service=service,
            environment=environment,
            run=run_url(state.env),
        ),
    )
    return published


def report_with_record(
    state: State,
    report: RunReport,
    published: Published | None,
    *,
    as_json: bool,
    title: str,
) -> None:
    """The run's report; the record's own facts and where it is kept follow it in the summary."""
    from release_actions.integrations.records import record_rows, where_kept

    try:
        report_run(state, report, as_json=as_json, title=title)
    finally:
        if published is not None:
            from release_actions.gha import markdown_table

            extra = [
                row
                for row in record_rows(published.record)
                if row[0] in ("release", "target", "environment", "actor", "run url")
            ]
            state.runtime.summary(
                f"\n#### Record {published.record['id']}: run\n\n"
                + markdown_table(["Field", "Value"], extra)
                + "\n"
                + where_kept(published.attached, published.path)
            )


# -- commands ---------------------------------------------------------------------------------------


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
    from release_actions.canary.analysis import analyze_window
    from release_actions.canary.judge import make_judge
    from release_actions.canary.model import RealClock

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
        provider = real_provider(state, provider_name, provider_settings, policy)
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
    default=None,
    help="Where to roll out: `kubernetes` (+ Istio), `argo` (Argo Rollouts), `cloudrun`, or "
    "`simulated` (the rehearsal simulator) [default: the policy's deploy.target]. Settings "
    "come from `deploy.<target>` of the policy.",
)
@click.option(
    "--version", "version", required=True, help="The version to roll out, such as v1.5.2."
)
@click.option(
    "--steps",
    "steps_preset",
    type=click.Choice(sorted(STEP_PRESETS)),
    default=None,
    help="Use this step preset instead of the policy's (and a scenario's): `direct` goes "
    "straight to 100 % with no canary, as a hotfix may (source §7.1) and a staging deploy does.",
)
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
    state: State,
    /,
    target_name: str | None,
    version: str,
    steps_preset: str | None,
    provider_name: str | None,
    provider_settings: tuple[str, ...],
    scenario_name: str | None,
    scenario_file: Path | None,
    environment: str | None,
    record_file: Path | None,
    repository: str | None,
    state_file: Path | None,
    seed: int,
    judge: str | None,
    policy_path: Path | None,
    as_json: bool,
    **target_values: Any,
) -> None:
    """Roll VERSION out step by step; promote, hold or roll back.

    Run it again with the same version to resume a rollout that was interrupted. A
    rollback writes its record (RB-YYYY-NNN) to the job summary, the record file and a
    GitHub deployment (`task: rollback`; needs GITHUB_TOKEN with `deployments: write`).
    Messages go to Slack (SLACK_WEBHOOK_URL or SLACK_BOT_TOKEN) or to the job summary.
    Exit 0 when promoted, 1 when rolled back or held.
    """
    from release_actions.canary.judge import make_judge
    from release_actions.canary.report import RunReport
    from release_actions.canary.rollout import CanaryEngine
    from release_actions.cli.notify import send
    from release_actions.integrations.records import run_url

    state.extra["json"] = as_json
    policy = load_policy(policy_path)
    target_name = target_name or policy.deploy.target
    provider_kind = resolve_provider(target_name, provider_name, policy)
    env_name = environment_of(policy, environment)
    options = target_options_from({**target_values, "state_file": state_file})
    the_judge = make_judge(policy.canary.analysis, judge)
    # Building reads the target (its status, the known-good record) and changes nothing.
    world = build_world(
        state,
        policy,
        target_name=target_name,
        provider_name=provider_kind,
        provider_settings=provider_settings,
        scenario_name=scenario_name,
        scenario_file=scenario_file,
        seed=seed,
        options=options,
    )
    if steps_preset is not None:
        world.steps = [RolloutStep(**step) for step in STEP_PRESETS[steps_preset]]
    steps = world.steps or policy.canary.resolved_steps()
    if state.dry_run:
        state.say(
            f"Would roll {version} out on {target_name} ({world.label}): "
            + " → ".join(f"{s.weight}%" for s in steps)
            + " (dry run, nothing changed)."
        )
        return
    store, unavailable = record_store(
        state, environment=env_name, repository=repository, simulated=target_name == "simulated"
    )
    saved = world.target.status().state or {}
    resuming = saved.get("version") == version
    run_link = run_url(state.env)
    if not resuming:
        send(
            state,
            policy,
            "release_started",
            {
                "version": version,
                "service": world.label,
                "environment": env_name,
                "commit": state.env.get("GITHUB_SHA") or None,
                "actor": state.env.get("GITHUB_ACTOR") or None,
                "steps": [s.weight for s in steps],
                "run_url": run_link,
                "repository": state.env.get("GITHUB_REPOSITORY") or None,
            },
        )
    printer = ProgressPrinter(state, quiet=as_json, real_time=provider_kind != "simulated")
    engine = CanaryEngine(
        world.target,
        world.provider,
        the_judge,
        policy,
        world.clock,
        steps=world.steps,
        on_event=printer,
        record_id=store.next_id if store is not None else None,
        deployment=world.label,
    )
    try:
        outcome = engine.run(version)
    finally:
        printer.close()
    context: dict[str, Any] = {
        **world.context,
        "judge": the_judge.name,
        "target": target_name,
        "provider": provider_kind,
        "version": version,
        "environment": env_name,
    }
    already_done = resuming and saved.get("phase") == "done"
    published = None
    if not already_done:
        published = finish_record(
            state,
            policy,
            outcome,
            store=store,
            unavailable=unavailable,
            record_file=record_file,
            release=version,
            target_name=target_name,
            environment=env_name,
            service=world.label,
            report_context=context,
        )
        if outcome.decision.value == "promoted":
            send(
                state,
                policy,
                "release_completed",
                completed_context(
                    policy, outcome, service=world.label, environment=env_name, run=run_link
                ),
            )
    else:
        state.runtime.set_output("record-file", "")
    report = RunReport(outcome, None, context=context)
    report_with_record(
        state, report, published, as_json=as_json, title=f"Canary rollout of {version}"
    )
