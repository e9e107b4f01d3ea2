"""`release-actions status`, `promote` and `abort`: an operator's hands on a rollout in progress."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from release_actions.cli import Session, check_failed, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.cli.options import (
    TARGETS,
    provider_setting_option,
    record_options,
    target_options,
    target_options_from,
    world_request,
)
from release_actions.core.policy import Policy, load_policy
from release_actions.errors import ReleaseActionsError

if TYPE_CHECKING:
    from release_actions.app.control import RolloutView
    from release_actions.targets.base import DeployTarget

F = TypeVar("F", bound=Callable[..., Any])


def control_options(func: F) -> F:
    """Which rollout: the target as `canary run` names it, and the policy."""
    func = policy_option(func)
    func = click.option(
        "--state-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Simulated target: the state file of the rehearsal (`rehearse --state-file`) or "
        "`canary run --state-file`.",
    )(func)
    func = target_options(func)
    return click.option(
        "--target",
        "target_name",
        type=click.Choice(TARGETS),
        default=None,
        help="Where the rollout runs (default: deploy.target of the policy).",
    )(func)


reason_option = click.option(
    "--reason",
    required=True,
    help="Why, for the record (control characters removed, at most 200 characters).",
)
by_option = click.option(
    "--by",
    default=None,
    metavar="NAME",
    help="Who, for the record (default: GITHUB_ACTOR, else USER).",
)


def open_target(
    session: Session, policy: Policy, target_name: str | None, values: dict[str, Any]
) -> tuple[DeployTarget, str]:
    """The target as every command builds it; a simulated one only from an existing file."""
    from release_actions.targets.factory import check_kind, make_target, target_label

    kind = check_kind(target_name or policy.deploy.target)
    options = target_options_from(values)
    if kind == "simulated":
        if options.state_file is None:
            raise ReleaseActionsError(
                "`--target simulated` needs `--state-file`: the file that `rehearse "
                "--state-file` (or `canary run --state-file`) writes."
            )
        if not options.state_file.exists():
            raise ReleaseActionsError(
                f"No saved rollout: `{options.state_file}` does not exist.",
                hint="Start one with `release-actions rehearse --state-file FILE --speed 60`.",
            )
    target = make_target(kind, policy, session.env, options=options)
    return target, target_label(target)


# -- status ---------------------------------------------------------------------------------------


def _redraw(session: Session, lines: list[str], drawn: int) -> int:
    """Draw ``lines`` over the ``drawn`` lines drawn before: a live view in a terminal."""
    width = max(20, shutil.get_terminal_size((100, 24)).columns - 1)
    shown = [line if len(line) <= width else line[: width - 1] + "…" for line in lines]
    up = f"\x1b[{drawn}F" if drawn else ""
    out = session.runtime.out
    out.write(up + "\x1b[J" + "\n".join(shown) + "\n")
    out.flush()
    return len(shown)


def show_status(
    session: Session,
    policy: Policy,
    target: DeployTarget,
    label: str,
    *,
    watch: bool,
    interval: float,
    timeout: float | None,
    as_json: bool,
) -> RolloutView:
    """Print the rollout's status once, or until it ends (``watch``); return the last view."""
    from release_actions.app.control import view_of

    tz = policy.calendar.tz
    runtime = session.runtime
    tty = runtime.out.isatty() and not runtime.in_actions and not as_json

    def read() -> RolloutView:
        view = view_of(label, target.status(), tz)
        if view.phase == "none":
            raise ReleaseActionsError(
                f"No rollout saved on {label}: {view.summary}.",
                hint="Check the target (`--target`, `--namespace`, `--deployment`, "
                "`--state-file`); the state appears when `canary run` starts.",
            )
        return view

    view = read()
    if not watch:
        if as_json:
            session.emit_json(view.to_dict())
        else:
            for line in view.lines():
                session.say(line)
        return view
    deadline = None if timeout is None else time.monotonic() + timeout
    drawn, last = 0, None
    while True:
        if tty:
            footer = f"(every {interval:g}s; Ctrl-C to stop watching)"
            drawn = _redraw(session, [*view.lines(), "", footer], drawn)
        elif view.signature() != last:
            if as_json:
                click.echo(json.dumps(view.to_dict(), default=str), file=runtime.out)
            else:
                click.echo(view.line(tz), file=runtime.out)
            runtime.out.flush()
        last = view.signature()
        if view.ended or (deadline is not None and time.monotonic() >= deadline):
            return view
        time.sleep(interval)
        view = read()


def report_status(session: Session, view: RolloutView) -> None:
    runtime = session.runtime
    runtime.set_output("phase", view.phase)
    runtime.set_output("version", view.version or "")
    runtime.set_output("step", view.step or "")
    runtime.set_output("weight", view.weight if view.weight is not None else "")
    runtime.set_output("decision", view.decision or "")
    runtime.summary(view.markdown())
    if not view.ok:
        raise check_failed()


@click.command("status")
@control_options
@click.option("--watch", is_flag=True, help="Keep showing it until the rollout ends.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=2.0,
    show_default=True,
    help="With --watch: seconds between reads of the target.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="With --watch: stop watching after this many seconds (default: when it ends).",
)
@json_option
@pass_state
def status(
    state: Session,
    /,
    target_name: str | None,
    watch: bool,
    interval: float,
    timeout: float | None,
    policy_path: Path | None,
    as_json: bool,
    **values: Any,
) -> None:
    """Show the rollout on a target: step, weight, the judge's evidence, time to the next step.

    Read from the target's saved state (Kubernetes and Argo: an annotation; Cloud Run: a
    service annotation; simulated: --state-file). --watch redraws it in a terminal, or
    prints a line per change (JSON lines with --json), until the rollout ends. Exit 0 while
    it runs or once promoted, 1 when it ended otherwise (rolled back, failed, held), 2 when
    there is no saved rollout.
    """
    state.json = as_json
    policy = load_policy(policy_path)
    target, label = open_target(state, policy, target_name, values)
    view = show_status(
        state,
        policy,
        target,
        label,
        watch=watch,
        interval=interval,
        timeout=timeout,
        as_json=as_json,
    )
    report_status(state, view)


# -- promote --------------------------------------------------------------------------------------


def do_promote(
    state: Session,
    policy: Policy,
    target: DeployTarget,
    label: str,
    *,
    reason: str | None,
    by: str | None,
    full: bool,
    as_json: bool,
) -> None:
    from release_actions.app.control import operator, reason_of, request_promotion

    done = request_promotion(
        state,
        policy,
        target,
        label,
        reason=reason_of(state, reason),
        by=operator(state, by),
        full=full,
    )
    runtime = state.runtime
    runtime.set_output("changed", done.changed)
    runtime.set_output("promote-id", done.mark["id"])
    mark = done.mark
    runtime.summary(
        f"### Promote of {mark.get('version')} on {label}\n\n{done.message}.\n\n"
        f"- **By**: {mark.get('by')}\n- **Reason**: {mark.get('reason')}\n"
    )
    if as_json:
        state.emit_json({"changed": done.changed, "message": done.message, "mark": mark})
    else:
        state.say(f"{label}: {done.message}")


@click.command("promote")
@control_options
@reason_option
@by_option
@click.option(
    "--full",
    is_flag=True,
    help="Skip every remaining step and its analysis: the canary goes to 100% at the next "
    "look. Without it only the current step's pause (and wait for the judge) is skipped.",
)
@json_option
@pass_state
def promote(
    state: Session,
    /,
    target_name: str | None,
    reason: str,
    by: str | None,
    full: bool,
    policy_path: Path | None,
    as_json: bool,
    **values: Any,
) -> None:
    """Skip the current step's pause of the rollout in progress (all remaining steps: --full).

    Leaves a promote mark on the target's saved state; the running `canary run` acts on it
    at its next look (within one analysis interval) and records who and why in the step,
    the decision and the release message. Safe to run twice. Exit 0 when the mark is there,
    2 when no rollout is in progress.
    """
    state.json = as_json
    policy = load_policy(policy_path)
    target, label = open_target(state, policy, target_name, values)
    do_promote(state, policy, target, label, reason=reason, by=by, full=full, as_json=as_json)


# -- abort ----------------------------------------------------------------------------------------


def do_abort(
    state: Session,
    policy: Policy,
    target: DeployTarget,
    label: str,
    *,
    target_name: str | None,
    reason: str | None,
    by: str | None,
    no_flags: bool,
    environment: str | None,
    record_file: Path | None,
    repository: str | None,
    values: dict[str, Any],
    as_json: bool,
) -> None:
    from release_actions.app.control import abort_rollout, operator, reason_of
    from release_actions.app.rollback import ManualRollbackRequest

    why = reason_of(state, reason)
    request = ManualRollbackRequest(
        world=world_request(values),
        target=target_name,
        no_flags=no_flags,
        reason=why,
        trigger="manual",
        environment=environment,
        record_file=record_file,
        repository=repository,
        by=operator(state, by),
    )
    done = abort_rollout(state, policy, target, label, request)
    result = done.rolled_back
    published = result.published if result else None
    if result is None:
        state.runtime.set_output("changed", False)
        state.runtime.set_output("record-id", "")
        state.runtime.summary(f"### Abort on {label}\n\n{done.message}.\n")
    if as_json:
        state.emit_json(
            {
                "changed": bool(result and result.changed),
                "message": done.message or (result.message if result else ""),
                "record": published.record if published else None,
            }
        )
    elif published is not None:
        final = published.record
        state.say(
            f"{label}: aborted, rolled back {final.get('from_version') or '-'} -> "
            f"{final.get('to_version') or '-'} (record {final['id']}, manual)"
        )
    else:
        state.say(f"{label}: {done.message or (result.message if result else '')}")
    if result is not None and result.flag_errors:
        raise check_failed()


@click.command("abort")
@control_options
@reason_option
@by_option
@click.option("--no-flags", is_flag=True, help="Leave the kill-switch flags as they are.")
@click.option(
    "--provider",
    "provider_name",
    type=click.Choice(["prometheus", "datadog", "none"]),
    default=None,
    help="Metrics for the recovery check after the rollback (default: the policy's, none "
    "for the simulator).",
)
@provider_setting_option
@record_options
@json_option
@pass_state
def abort(
    state: Session,
    /,
    target_name: str | None,
    reason: str,
    by: str | None,
    no_flags: bool,
    environment: str | None,
    record_file: Path | None,
    repository: str | None,
    policy_path: Path | None,
    as_json: bool,
    **values: Any,
) -> None:
    """Roll the rollout in progress back now, recorded as a manual rollback.

    This is `release-actions rollback` for a rollout under way: it marks the saved state,
    so the running `canary run` stops at its next look without rolling back twice, then
    rolls back itself (also when the job running the canary is gone), turns the policy's
    kill-switch flags off (unless --no-flags) and writes the record (trigger: manual). Safe
    to run twice. Exit 0 when rolled back (or already aborted), 1 when a flag stayed on, 2
    when no rollout is in progress.
    """
    state.json = as_json
    policy = load_policy(policy_path)
    target, label = open_target(state, policy, target_name, values)
    do_abort(
        state,
        policy,
        target,
        label,
        target_name=target_name,
        reason=reason,
        by=by,
        no_flags=no_flags,
        environment=environment,
        record_file=record_file,
        repository=repository,
        values=values,
        as_json=as_json,
    )


# -- one command for the workflow_dispatch action -------------------------------------------------


@click.command("control")
@click.option(
    "--action",
    "what",
    type=click.Choice(["status", "promote", "abort"]),
    required=True,
    help="`status`, `promote` or `abort`, as the commands of those names.",
)
@control_options
@click.option("--reason", default=None, help="promote and abort: why (required for them).")
@click.option("--full", is_flag=True, help="promote: skip every remaining step.")
@click.option("--no-flags", is_flag=True, help="abort: leave the kill-switch flags as they are.")
@click.option("--watch", is_flag=True, help="status: until the rollout ends.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="status --watch: stop watching after this many seconds.",
)
@record_options
@json_option
@pass_state
def control(
    state: Session,
    /,
    what: str,
    target_name: str | None,
    reason: str | None,
    full: bool,
    no_flags: bool,
    watch: bool,
    timeout: float | None,
    environment: str | None,
    record_file: Path | None,
    repository: str | None,
    policy_path: Path | None,
    as_json: bool,
    **values: Any,
) -> None:
    """`status`, `promote` or `abort` by name, for the control action (workflow_dispatch).

    Who acts is GITHUB_ACTOR. Exit codes as the command named.
    """
    state.json = as_json
    if what != "promote" and full:
        raise ReleaseActionsError("`--full` belongs to `--action promote`.")
    if what != "status" and (watch or timeout is not None):
        raise ReleaseActionsError("`--watch` and `--timeout` belong to `--action status`.")
    if what != "abort" and no_flags:
        raise ReleaseActionsError("`--no-flags` belongs to `--action abort`.")
    policy = load_policy(policy_path)
    target, label = open_target(state, policy, target_name, values)
    if what == "status":
        view = show_status(
            state,
            policy,
            target,
            label,
            watch=watch,
            interval=5.0,
            timeout=timeout,
            as_json=as_json,
        )
        report_status(state, view)
    elif what == "promote":
        do_promote(state, policy, target, label, reason=reason, by=None, full=full, as_json=as_json)
    else:
        do_abort(
            state,
            policy,
            target,
            label,
            target_name=target_name,
            reason=reason,
            by=None,
            no_flags=no_flags,
            environment=environment,
            record_file=record_file,
            repository=repository,
            values=values,
            as_json=as_json,
        )
