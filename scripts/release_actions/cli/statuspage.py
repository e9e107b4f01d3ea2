"""`release-actions statuspage`: Statuspage incidents and scheduled maintenance (source §10.3)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from release_actions.cli import Session, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.cli.options import VERSION
from release_actions.core.status_page import OUTCOMES

if TYPE_CHECKING:
    from release_actions.app.status_page import StatusPageResult

F = TypeVar("F", bound=Callable[..., Any])

COMPONENT_STATUSES = (
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
)


@click.group("statuspage")
def group() -> None:
    """Atlassian Statuspage incidents and scheduled maintenance (source §10.3).

    The page is `notifications.status_page.page_id` of the policy (or --page-id); the API
    key comes from STATUSPAGE_API_KEY, the API from STATUSPAGE_BASE_URL (default
    https://api.statuspage.io/v1). Texts are the policy's templates. An automatic rollback
    opens and resolves its incident by itself; these commands are for the rest.
    """


@group.group("incident")
def incident_group() -> None:
    """Open, update and resolve an incident; a rollback's is found by its service and version."""


@group.group("maintenance")
def maintenance_group() -> None:
    """Schedule, start and complete a maintenance, such as a database migration."""


def _common(func: F) -> F:
    func = json_option(func)
    func = policy_option(func)
    func = click.option(
        "--page-id",
        default=None,
        metavar="ID",
        help="The Statuspage page [default: notifications.status_page.page_id].",
    )(func)
    func = click.option(
        "--dry-run",
        "local_dry_run",
        is_flag=True,
        help="Print the exact requests (method, URL, JSON body; the key masked); send and "
        "read nothing, so ids the page would give show as placeholders.",
    )(func)
    return func


def _which_options(func: F) -> F:
    func = click.option(
        "--version",
        "version",
        type=VERSION,
        default=None,
        help="With --service: the version rolled back from (the incident's marker).",
    )(func)
    func = click.option(
        "--service",
        default=None,
        metavar="NAME",
        help="The rolled-back service (a key of notifications.status_page.services); with "
        "--version it finds the open incident release-actions opened for that rollback.",
    )(func)
    func = click.option(
        "--incident-id", default=None, metavar="ID", help="The incident's Statuspage id."
    )(func)
    return func


component_option = click.option(
    "--component",
    "components",
    multiple=True,
    metavar="NAME",
    help="A component by its name on the page (repeatable) [default: the service's, from "
    "notifications.status_page.services].",
)

maintenance_component_option = click.option(
    "--component",
    "components",
    multiple=True,
    metavar="NAME",
    help="A component under maintenance, by its name on the page (repeatable) [default: "
    "every one that notifications.status_page.services names].",
)


def _policy(path: Path | None) -> Any:
    from release_actions.core.policy import load_policy

    return load_policy(path)


def _report(state: Session, result: StatusPageResult, *, as_json: bool, title: str) -> None:
    """Outputs, the job summary, and the answer for a person or as JSON."""
    runtime = state.runtime
    runtime.set_output("incident-id", "" if result.dry_run else result.incident_id or "")
    runtime.set_output("action", result.action)
    runtime.set_output("changed", bool(result.requests) and not result.dry_run)
    lines = [_headline(result)]
    if result.detail:
        lines.append(result.detail)
    if result.incident and result.incident.get("shortlink") and not result.dry_run:
        lines.append(str(result.incident["shortlink"]))
    runtime.summary(
        f"### {title}"
        + (" (dry run)" if result.dry_run else "")
        + "\n\n"
        + "\n\n".join(lines)
        + "\n"
    )
    if as_json:
        state.emit_json(result.to_dict())
        return
    for line in lines:
        state.say(line)
    if result.dry_run:
        for request in result.requests:
            state.say("")
            state.say(f"{request['method']} {request['url']}")
            for name, value in request["headers"].items():
                state.say(f"{name}: {value}")
            if request["body"] is not None:
                state.say("")
                state.say(json.dumps(request["body"], indent=2, ensure_ascii=False))


def _headline(result: StatusPageResult) -> str:
    incident = result.incident or {}
    name = f"“{incident['name']}”" if incident.get("name") else ""
    ident = result.incident_id or ""
    page = f"page `{result.page_id}`"
    texts = {
        "opened": f"Opened incident {ident} {name} on {page}.",
        "already_open": f"Incident {ident} {name} is open already on {page}: nothing sent.",
        "updated": f"Updated incident {ident} on {page}: {incident.get('status')}.",
        "resolved": f"Resolved incident {ident} {name} on {page}.",
        "scheduled": f"Scheduled maintenance {ident} {name} on {page}.",
        "already_scheduled": f"Maintenance {ident} {name} is scheduled already on {page}: "
        "nothing sent.",
        "started": f"Maintenance {ident} is in progress on {page}.",
        "scheduled_and_started": f"Scheduled maintenance {ident} {name} from now and started "
        f"it on {page}.",
        "completed": f"Maintenance {ident} is completed on {page}.",
        "nothing": f"Nothing to send to {page}.",
        "would_send": f"Would send {len(result.requests)} request(s) to {page} (dry run, "
        "nothing sent):",
    }
    return " ".join(texts.get(result.action, result.action).split())


# -- statuspage incident ---------------------------------------------------------------------------


@incident_group.command("open")
@click.option("--service", required=True, metavar="NAME", help="The service rolled back.")
@click.option(
    "--version", "version", type=VERSION, required=True, help="The version rolled back from."
)
@component_option
@click.option(
    "--status",
    type=click.Choice(["investigating", "identified", "monitoring"]),
    default="investigating",
    show_default=True,
    help="The incident's status.",
)
@click.option(
    "--component-status",
    type=click.Choice(COMPONENT_STATUSES),
    default=None,
    help="The components' status [default: notifications.status_page.rollback_status].",
)
@click.option(
    "--impact", default=None, help="`impact_description` of the degraded_performance template."
)
@click.option(
    "--reason", default=None, help="Why, kept in the incident's metadata as its root cause."
)
@_common
@pass_state
def open_command(
    state: Session,
    service: str,
    version: str,
    components: tuple[str, ...],
    status: str,
    component_status: str | None,
    impact: str | None,
    reason: str | None,
    local_dry_run: bool,
    page_id: str | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Open the incident of a rollback of SERVICE from VERSION (the degraded_performance text).

    Marked with the service and version, so a rerun finds the open incident instead of
    opening a second. Outputs: `incident-id`, `action`, `changed`.
    """
    from release_actions.app.status_page import open_incident

    result = open_incident(
        state,
        _policy(policy_path),
        service=service,
        version=version,
        components=components,
        status=status,
        component_status=component_status,
        impact=impact,
        reason=reason,
        page_id=page_id,
        dry_run=local_dry_run or state.dry_run,
    )
    _report(state, result, as_json=as_json, title="Status page incident")


@incident_group.command("update")
@_which_options
@click.option(
    "--status",
    type=click.Choice(["investigating", "identified", "monitoring"]),
    required=True,
    help="The incident's new status (`statuspage incident resolve` resolves it).",
)
@click.option("--body", required=True, help="The update's message (Markdown).")
@click.option(
    "--component-status",
    type=click.Choice(COMPONENT_STATUSES),
    default=None,
    help="Set the components (--component, else the service's, else the incident's) to this.",
)
@component_option
@_common
@pass_state
def update_command(
    state: Session,
    incident_id: str | None,
    service: str | None,
    version: str | None,
    status: str,
    body: str,
    component_status: str | None,
    components: tuple[str, ...],
    local_dry_run: bool,
    page_id: str | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Post an update on an open incident: a new status and message."""
    from release_actions.app.status_page import Which, update_incident

    policy = _policy(policy_path)
    result = update_incident(
        state,
        policy,
        Which(incident_id, service, version),
        status=status,
        body=body,
        component_status=component_status,
        components=components,
        page_id=page_id,
        dry_run=local_dry_run or state.dry_run,
    )
    _report(state, result, as_json=as_json, title="Status page incident")


@incident_group.command("resolve")
@_which_options
@click.option(
    "--duration",
    default=None,
    help="`duration` of the incident_resolved template [default: since the incident opened].",
)
@click.option(
    "--root-cause",
    default=None,
    help="`root_cause` of the incident_resolved template [default: the rollback's reason, "
    "kept in the incident's metadata].",
)
@component_option
@_common
@pass_state
def resolve_command(
    state: Session,
    incident_id: str | None,
    service: str | None,
    version: str | None,
    duration: str | None,
    root_cause: str | None,
    components: tuple[str, ...],
    local_dry_run: bool,
    page_id: str | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Resolve an incident with the incident_resolved text; its components operational.

    A rollback's incident that is resolved already (or was never opened) is not an error:
    nothing is sent, so a rerun is safe.
    """
    from release_actions.app.status_page import Which, resolve_incident

    policy = _policy(policy_path)
    result = resolve_incident(
        state,
        policy,
        Which(incident_id, service, version),
        duration=duration,
        root_cause=root_cause,
        components=components,
        page_id=page_id,
        dry_run=local_dry_run or state.dry_run,
    )
    _report(state, result, as_json=as_json, title="Status page incident")


# -- statuspage maintenance ---------------------------------------------------------------------


@maintenance_group.command("schedule")
@click.option(
    "--start",
    default=None,
    metavar="TIME",
    help="ISO 8601; without an offset in calendar.timezone [default: the next of "
    "calendar.maintenance_windows, Sunday 02:00-06:00 JST]. Requires --end.",
)
@click.option("--end", default=None, metavar="TIME", help="ISO 8601, after --start.")
@maintenance_component_option
@click.option(
    "--impact",
    default=None,
    help="`impact_description` of the scheduled_maintenance template.",
)
@click.option(
    "--auto/--no-auto",
    default=False,
    show_default=True,
    help="Let Statuspage start and complete it on the clock, instead of `maintenance "
    "start` and `complete` around the work.",
)
@_common
@pass_state
def schedule_command(
    state: Session,
    start: str | None,
    end: str | None,
    components: tuple[str, ...],
    impact: str | None,
    auto: bool,
    local_dry_run: bool,
    page_id: str | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Announce a maintenance (a database migration) with the scheduled_maintenance text.

    Components default to every one that notifications.status_page.services names.
    Scheduling the same window twice finds the first. Outputs: `incident-id`, `action`.
    """
    from datetime import UTC, datetime

    from release_actions.app.status_page import (
        parse_time,
        schedule_maintenance,
        window_between,
    )
    from release_actions.core.status_page import next_window

    policy = _policy(policy_path)
    if (start is None) != (end is None):
        raise click.UsageError("`--start` and `--end` go together.")
    if start is not None and end is not None:
        window = window_between(
            policy, parse_time(start, policy, "--start"), parse_time(end, policy, "--end")
        )
    else:
        window = next_window(policy, datetime.now(UTC))
    result = schedule_maintenance(
        state,
        policy,
        window,
        components=components,
        impact=impact,
        auto=auto,
        page_id=page_id,
        dry_run=local_dry_run or state.dry_run,
    )
    _report(state, result, as_json=as_json, title="Scheduled maintenance")


@maintenance_group.command("start")
@click.option(
    "--incident-id",
    default=None,
    metavar="ID",
    help="The maintenance [default: the one release-actions scheduled that is upcoming; "
    "or see --end].",
)
@click.option(
    "--end",
    default=None,
    metavar="TIME",
    help="For work that begins now: start the maintenance release-actions scheduled that is "
    "in progress or whose window covers now (or begins within 15 minutes); with none, "
    "schedule one from now until TIME (ISO 8601, or a length of time such as `30m`, `2h`) "
    "and start it. Excludes --incident-id.",
)
@maintenance_component_option
@click.option(
    "--impact",
    default=None,
    help="With --end: `impact_description` of the maintenance it schedules.",
)
@click.option("--body", default=None, help="The update's message (Markdown).")
@_common
@pass_state
def start_command(
    state: Session,
    incident_id: str | None,
    end: str | None,
    components: tuple[str, ...],
    impact: str | None,
    body: str | None,
    local_dry_run: bool,
    page_id: str | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Mark the maintenance in progress; its components under maintenance.

    Already in progress: nothing is sent. With --end (what the db-migration workflow runs
    before the production migration), a maintenance announced for now is started, and work
    that nobody announced gets one from now until --end. Outputs: `incident-id`, `action`
    (`started`, `scheduled_and_started` or `nothing`), `changed`.
    """
    from datetime import UTC, datetime

    from release_actions.app.status_page import (
        move_maintenance,
        parse_end,
        start_maintenance_now,
    )

    policy = _policy(policy_path)
    dry_run = local_dry_run or state.dry_run
    if end is None:
        if components or impact is not None:
            raise click.UsageError("`--component` and `--impact` go with `--end`.")
        result = move_maintenance(
            state,
            policy,
            to="in_progress",
            incident_id=incident_id,
            body=body,
            page_id=page_id,
            dry_run=dry_run,
        )
    else:
        if incident_id is not None:
            raise click.UsageError("Only one of `--incident-id` or `--end` can be set.")
        now = datetime.now(UTC).replace(microsecond=0)
        result = start_maintenance_now(
            state,
            policy,
            now=now,
            end=parse_end(end, policy, now, "--end"),
            components=components,
            impact=impact,
            body=body,
            page_id=page_id,
            dry_run=dry_run,
        )
    _report(state, result, as_json=as_json, title="Scheduled maintenance")


@maintenance_group.command("complete")
@click.option(
    "--incident-id",
    default=None,
    metavar="ID",
    help="The maintenance [default: the one release-actions scheduled that is in progress].",
)
@click.option("--body", default=None, help="The update's message (Markdown).")
@click.option(
    "--outcome",
    type=click.Choice(OUTCOMES),
    default="success",
    show_default=True,
    help="How the work under the maintenance ended (GitHub's `job.status`). It is completed "
    "either way, so the page does not stay in progress; with `failure` or `cancelled` the "
    "job summary says the work did not succeed (the page's text stays the same).",
)
@_common
@pass_state
def complete_command(
    state: Session,
    incident_id: str | None,
    body: str | None,
    outcome: str,
    local_dry_run: bool,
    page_id: str | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Mark the maintenance completed; its components operational. Already completed:
    nothing is sent."""
    from release_actions.app.status_page import move_maintenance

    result = move_maintenance(
        state,
        _policy(policy_path),
        to="completed",
        incident_id=incident_id,
        body=body,
        page_id=page_id,
        dry_run=local_dry_run or state.dry_run,
        outcome=outcome,
    )
    _report(state, result, as_json=as_json, title="Scheduled maintenance")
