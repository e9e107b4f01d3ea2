"""`release-actions monitor`: watch a finished deploy and roll back on a trigger (source §6.1-6.3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from release_actions.cli import Session, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.cli.options import (
    TARGETS,
    VERSION,
    progress_printer,
    provider_setting_option,
    record_options,
    report_with_record,
    target_options,
    target_provider_option,
    world_request,
)
from release_actions.cli.rehearse import scenario_options, seed_option
from release_actions.core.policy import load_policy
from release_actions.core.settings import Overrides


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
    type=VERSION,
    default="v1.5.2",
    show_default=True,
    help="Simulated target: the version that is live and being watched.",
)
@scenario_options
@target_options
@record_options
@click.option(
    "--state-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Simulated target: the state file that `canary run` kept, so the watch continues the "
    "same simulated deploy.",
)
@seed_option
@policy_option
@json_option
@pass_state
def command(
    state: Session,
    /,
    target_name: str | None,
    preset: str | None,
    duration: int | None,
    interval: int | None,
    error_rate_threshold: float | None,
    version: str,
    environment: str | None,
    record_file: Path | None,
    repository: str | None,
    policy_path: Path | None,
    as_json: bool,
    **world: Any,
) -> None:
    """Watch the deploy; roll back when a trigger holds, then check recovery.

    Provider errors are never skipped: `consecutive_error_limit` in a row go to the
    policy's on_error. A rollback is recorded (job summary, record file, GitHub deployment)
    and announced as `canary run` does. Exit 0 when the watch ends stable, 1 when it
    rolled back or held.
    """
    from release_actions.app.watch import WatchRequest, run_watch
    from release_actions.canary.report import RunReport

    state.json = as_json
    policy = load_policy(policy_path)
    request = WatchRequest(
        overrides=Overrides(
            release_type=preset,
            target=target_name,
            provider=world["provider_name"],
            environment=environment,
            monitor_seconds=duration,
            monitor_interval_seconds=interval,
            error_rate_threshold_percent=error_rate_threshold,
        ),
        world=world_request(
            world,
            live_version=version if (target_name or policy.deploy.target) == "simulated" else None,
            watching=True,
        ),
        version=version,
        record_file=record_file,
        repository=repository,
    )
    printer = progress_printer(state, policy, world["provider_name"], as_json=as_json)
    try:
        result = run_watch(state, policy, request, on_event=printer)
    finally:
        printer.close()
    report = RunReport(None, result.outcome, context=result.context)
    report_with_record(
        state, report, result.published, as_json=as_json, title=f"Monitor of {result.version}"
    )
