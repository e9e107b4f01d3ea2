"""`release-actions monitor`: watch a finished deploy and roll back on a trigger (source §6.1-6.3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from release_actions.cli import State, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.cli.canary import (
    TARGETS,
    build_world,
    environment_of,
    finish_record,
    provider_setting_option,
    record_options,
    record_store,
    report_with_record,
    resolve_provider,
    target_options,
    target_options_from,
    target_provider_option,
)
from release_actions.cli.rehearse import ProgressPrinter, scenario_options, seed_option
from release_actions.core.policy import load_policy


@click.command("monitor")
@click.option(
    "--target",
    "target_name",
    type=click.Choice(TARGETS),
    default=None,
    help="The deploy to watch and roll back: `kubernetes`, `argo`, `cloudrun`, or `simulated` "
    "(the rehearsal simulator).",
)
@target_provider_option
@provider_setting_option
@click.option(
    "--preset",
    "preset",
    default=None,
    metavar="TYPE",
    help="A release type of the policy: its monitor_seconds and alert threshold "
    "(`hotfix`: 30 minutes at 0.5 %, source §7.3).",
)
@click.option(
    "--duration",
    type=click.IntRange(min=1),
    default=None,
    help="Seconds to watch (default: the preset's, else monitor.duration_seconds, 300).",
)
@click.option(
    "--interval",
    type=click.IntRange(min=1),
    default=None,
    help="Seconds between measurements (default: monitor.interval_seconds, 10).",
)
@click.option(
    "--error-rate-threshold",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Error rate in % that triggers a rollback when sustained (default: the preset's, else 5).",
)
@click.option(
    "--version",
    "version",
    default="v1.5.2",
    show_default=True,
    help="Simulated target: the version that is live and being watched.",
)
@scenario_options
@target_options
@record_options
@seed_option
@policy_option
@json_option
@pass_state
def command(
    state: State,
    /,
    target_name: str | None,
    provider_name: str | None,
    provider_settings: tuple[str, ...],
    preset: str | None,
    duration: int | None,
    interval: int | None,
    error_rate_threshold: float | None,
    version: str,
    scenario_name: str | None,
    scenario_file: Path | None,
    environment: str | None,
    record_file: Path | None,
    repository: str | None,
    seed: int,
    policy_path: Path | None,
    as_json: bool,
    **target_values: Any,
) -> None:
    """Watch the deploy; roll back when a trigger holds, then check recovery.

    Provider errors are never skipped: `consecutive_error_limit` in a row go to the
    policy's on_error. A rollback is recorded (job summary, record file, GitHub deployment)
    and announced as `canary run` does. Exit 0 when the watch ends stable, 1 when it
    rolled back or held.
    """
    from release_actions.canary.monitor import DeployMonitor
    from release_actions.canary.report import RunReport

    state.extra["json"] = as_json
    policy = load_policy(policy_path)
    target_name = target_name or policy.deploy.target
    provider_kind = resolve_provider(target_name, provider_name, policy)
    if preset is not None:
        release_type = policy.release_type(preset)
        duration = duration or release_type.monitor_seconds
        if error_rate_threshold is None:
            error_rate_threshold = release_type.alert_threshold_percent
    env_name = environment_of(policy, environment)
    simulated = target_name == "simulated"
    world = build_world(
        state,
        policy,
        target_name=target_name,
        provider_name=provider_kind,
        provider_settings=provider_settings,
        scenario_name=scenario_name,
        scenario_file=scenario_file,
        seed=seed,
        options=target_options_from(target_values),
        live_version=version if simulated else None,
        watching=True,
    )
    store, unavailable = record_store(
        state, environment=env_name, repository=repository, simulated=simulated
    )
    printer = ProgressPrinter(state, quiet=as_json, real_time=provider_kind != "simulated")
    monitor = DeployMonitor(
        world.target,
        world.provider,
        policy,
        world.clock,
        duration_seconds=duration,
        interval_seconds=interval,
        error_rate_percent=error_rate_threshold,
        on_event=printer,
        record_id=store.next_id if store is not None else None,
        deployment=world.label,
    )
    try:
        outcome = monitor.run()
    finally:
        printer.close()
    live = outcome.version or version
    context: dict[str, Any] = {
        **world.context,
        "target": target_name,
        "provider": provider_kind,
        "version": live,
        "preset": preset,
        "duration_s": monitor.duration,
        "error_rate_threshold_percent": monitor.triggers.error_rate.threshold,
        "environment": env_name,
    }
    published = finish_record(
        state,
        policy,
        outcome,
        store=store,
        unavailable=unavailable,
        record_file=record_file,
        release=live,
        target_name=target_name,
        environment=env_name,
        service=world.label,
        report_context=context,
    )
    report = RunReport(None, outcome, context=context)
    report_with_record(state, report, published, as_json=as_json, title=f"Monitor of {live}")
