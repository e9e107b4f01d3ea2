"""`release-actions monitor`: watch a finished deploy and roll back on a trigger (source §6.1-6.3)."""

from __future__ import annotations

from pathlib import Path

import click

from release_actions.cli import State, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.cli.canary import TARGETS, provider_option
from release_actions.cli.rehearse import (
    ProgressPrinter,
    pick_scenario,
    report_run,
    scenario_options,
    seed_option,
)
from release_actions.core.policy import load_policy


@click.command("monitor")
@click.option(
    "--target",
    "target_name",
    type=click.Choice(TARGETS),
    required=True,
    help="The deploy to watch and roll back. `simulated` runs on the rehearsal simulator.",
)
@provider_option
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
@seed_option
@policy_option
@json_option
@pass_state
def command(
    state: State,
    target_name: str,
    provider_name: str,
    preset: str | None,
    duration: int | None,
    interval: int | None,
    error_rate_threshold: float | None,
    version: str,
    scenario_name: str | None,
    scenario_file: Path | None,
    seed: int,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Watch the deploy; roll back when a trigger holds, then check recovery.

    Provider errors are never skipped: `consecutive_error_limit` in a row go to the
    policy's on_error. Exit 0 when the watch ends stable, 1 when it rolled back or held.
    """
    from release_actions.canary.engine import DeployMonitor
    from release_actions.canary.report import RunReport
    from release_actions.canary.simulator import build

    if target_name == "simulated" and provider_name != "simulated":
        raise click.UsageError(
            "`--target simulated` measures its own simulated traffic: use `--provider simulated`."
        )
    policy = load_policy(policy_path)
    if preset is not None:
        release_type = policy.release_type(preset)
        duration = duration or release_type.monitor_seconds
        if error_rate_threshold is None:
            error_rate_threshold = release_type.alert_threshold_percent
    name, scenario = pick_scenario(scenario_name, scenario_file)
    world = build(scenario, name=name, seed=seed, live_version=version)
    printer = ProgressPrinter(state, quiet=as_json)
    monitor = DeployMonitor(
        world.target,
        world.provider,
        policy,
        world.clock,
        duration_seconds=duration,
        interval_seconds=interval,
        error_rate_percent=error_rate_threshold,
        on_event=printer,
    )
    try:
        outcome = monitor.run()
    finally:
        printer.close()
    report = RunReport(
        None,
        outcome,
        context={
            "scenario": name,
            "seed": seed,
            "target": target_name,
            "provider": provider_name,
            "version": version,
            "preset": preset,
            "duration_s": monitor.duration,
            "error_rate_threshold_percent": monitor.triggers.error_rate.threshold,
        },
    )
    report_run(state, report, as_json=as_json, title=f"Monitor of {version}")
