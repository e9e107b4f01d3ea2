"""`release-actions rollback`: back to the known-good version, flags off, and the record (source §6.2, §6.4)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from release_actions.cli import State, check_failed, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.cli.canary import (
    TARGETS,
    environment_of,
    provider_setting_option,
    publish_record,
    real_provider,
    record_options,
    record_store,
    rolled_back_context,
    target_options,
    target_options_from,
)
from release_actions.cli.notify import note
from release_actions.cli.rehearse import pick_scenario, scenario_options, seed_option
from release_actions.core.policy import Policy, load_policy
from release_actions.errors import ReleaseActionsError
from release_actions.targets.base import RollbackResult

if TYPE_CHECKING:
    from release_actions.canary.model import Clock, Recovery
    from release_actions.db.safety import ContractMigration
    from release_actions.integrations.launchdarkly import KillResult
    from release_actions.targets.base import DeployTarget

LAUNCHDARKLY_BASE_URL_ENV = "LAUNCHDARKLY_BASE_URL"


# -- rollback safety across code and schema ------------------------------------------------------


def parse_names(text: str | None) -> list[str]:
    """A JSON list (the `applied` output of `db deploy`), or names separated by commas or spaces."""
    if not text or not text.strip():
        return []
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            data = json.loads(stripped)
        except ValueError:
            raise ReleaseActionsError(
                f"`--applied-migrations` is not a JSON list: {stripped[:80]}"
            ) from None
        if not isinstance(data, list):
            raise ReleaseActionsError("`--applied-migrations` must be a JSON list of names.")
        return [str(n) for n in data if str(n).strip()]
    return [n for n in re.split(r"[\s,]+", stripped) if n]


@dataclass
class SafetyCheck:
    crossed: list[ContractMigration]
    to_ref: str | None
    note: str | None = None


def contract_check(policy: Policy, applied: list[str], to_ref: str | None) -> SafetyCheck:
    """The contract migrations of ``applied`` that the release at ``to_ref`` does not have.

    Fail safe: when the migrations folder or the release's tree cannot be read, every
    applied migration counts as one the target release lacks, and as a contract unless
    its file shows otherwise.
    """
    from release_actions.db.errors import MigrationError
    from release_actions.db.layout import MigrationSettings, discover, migrations_at_ref
    from release_actions.db.safety import contract_migrations_between

    m = policy.migrations
    settings = MigrationSettings(dir=Path(m.dir) if m.dir else None, layout=m.layout, table=m.table)
    notes = []
    try:
        catalog = discover(settings)
    except MigrationError as exc:
        catalog = []
        notes.append(f"{exc.message} Every applied migration counts as a contract.")
    keep: set[str] = set()
    if to_ref:
        try:
            keep = migrations_at_ref(to_ref, settings)
        except MigrationError as exc:
            notes.append(
                f"the migrations of `{to_ref}` cannot be read ({exc.message}); every applied "
                "migration counts as one it lacks"
            )
    crossed = contract_migrations_between(applied, keep, migrations=catalog)
    return SafetyCheck(crossed, to_ref, "; ".join(notes) or None)


def enforce_safety(
    state: State, policy: Policy, check: SafetyCheck, *, allow_contract: bool
) -> None:
    if not check.crossed:
        return
    where = f" (to `{check.to_ref}`)" if check.to_ref else ""
    for hazard in check.crossed:
        state.runtime.annotate(
            "warning",
            f"Rolling the application back{where} crosses the contract migration "
            f"{hazard.describe()}: the older code may still use what it removed or tightened.",
            file=hazard.file or None,
            title="Rollback past a contract migration",
        )
    if check.note:
        state.runtime.annotate("warning", check.note, title="Rollback safety")
    if policy.migrations.refuse_rollback_past_contract and not allow_contract:
        names = ", ".join(f"`{h.name}`" for h in check.crossed)
        raise ReleaseActionsError(
            f"Refusing to roll the application back{where}: the database has the contract "
            f"migration(s) {names}, which the older release was not written for "
            "(migrations.refuse_rollback_past_contract). Nothing was changed.",
            hint="Roll forward with a fix instead, or restore the schema first "
            "(`release-actions db rollback --to NAME`, which brings columns back but not their "
            "data), then rerun with `--allow-contract` if the older code is known to cope.",
        )


# -- steps ------------------------------------------------------------------------------------------


def turn_flags_off(
    state: State, policy: Policy, flags: list[str], reason: str
) -> tuple[list[KillResult], list[str]]:
    """Option C of source §6.2: each flag off in the policy's LaunchDarkly environment."""
    from release_actions.integrations.launchdarkly import TOKEN_ENV, LaunchDarklyKillSwitch

    ld = policy.feature_flags.launchdarkly
    for name in TOKEN_ENV:
        if state.env.get(name):
            state.runtime.mask(state.env[name])
    extra: dict[str, Any] = {}
    if state.env.get(LAUNCHDARKLY_BASE_URL_ENV):
        extra["base_url"] = state.env[LAUNCHDARKLY_BASE_URL_ENV]
    results: list[KillResult] = []
    errors: list[str] = []
    try:
        switch = LaunchDarklyKillSwitch.from_env(
            state.env, project=state.env.get("LAUNCHDARKLY_PROJECT") or ld.project, **extra
        )
    except ReleaseActionsError as exc:
        return [], [f"{exc.message} {exc.hint or ''}".strip()]
    for flag in flags:
        try:
            result = switch.turn_off(flag, ld.environment, comment=f"release-actions: {reason}")
        except ReleaseActionsError as exc:
            errors.append(f"flag `{flag}`: {exc.message}")
            state.runtime.annotate("error", f"Flag `{flag}` is still on: {exc.message}")
            continue
        results.append(result)
        note(state, f"flag {flag}: {result.detail}")
    return results, errors


def undo_to_revision(
    state: State, target: DeployTarget, policy: Policy, revision: int, poll: float | None
) -> RollbackResult:
    """`kubectl rollout undo --to-revision=N`, with kubectl's result, errors and lines."""
    from release_actions.targets.kubernetes import KubernetesTarget

    assert isinstance(target, KubernetesTarget)
    return target.undo_to_revision(
        revision,
        timeout_seconds=policy.deploy.kubernetes.rollout_timeout_seconds,
        poll=poll,
        report=lambda line: note(state, line),
    )


def recovery_provider(
    state: State, policy: Policy, name: str | None, pairs: tuple[str, ...]
) -> Any:
    """The provider for the recovery check: the flag, else the policy's unless simulated."""
    chosen = name or policy.metrics.provider
    if chosen in ("none", "simulated"):
        return None
    return real_provider(state, chosen, pairs, policy)


# -- the command --------------------------------------------------------------------------------------


@click.group("rollback", invoke_without_command=True)
@click.option(
    "--target",
    "target_name",
    type=click.Choice(TARGETS),
    default=None,
    help="What to roll back (default: deploy.target of the policy). `kubernetes` restores the "
    "known-good pod template (option A), `argo` aborts and restores it (option B), "
    "`cloudrun` sends 100 % to the known-good revision, `simulated` needs --state-file.",
)
@target_options
@click.option(
    "--to-revision",
    type=click.IntRange(min=0),
    default=None,
    help="Kubernetes: `kubectl rollout undo --to-revision=N` instead (0: the previous "
    "revision). Without it, the known-good version recorded when the rollout began.",
)
@click.option(
    "--flag",
    "flags",
    multiple=True,
    metavar="KEY",
    help="LaunchDarkly flag to turn off (option C; repeatable). Default: "
    "feature_flags.launchdarkly.kill_switch of the policy. Needs LD_API_KEY.",
)
@click.option("--no-flags", is_flag=True, help="Leave every flag as it is.")
@click.option("--flags-only", is_flag=True, help="Only turn the flags off; leave the deploy.")
@click.option("--reason", default="manual rollback", show_default=True, help="Why, for the record.")
@click.option(
    "--trigger",
    "trigger_type",
    type=click.Choice(["manual", "automatic"]),
    default="manual",
    show_default=True,
    help="The record's trigger type: `automatic` when a workflow decided it.",
)
@click.option(
    "--applied-migrations",
    default=None,
    metavar="NAMES",
    help="Migrations the deploy applied (the `applied` output of `db deploy`, JSON or "
    "comma-separated): a contract among them stops the rollback (see --allow-contract).",
)
@click.option(
    "--to-ref",
    default=None,
    metavar="REF",
    help="Git ref of the release rolled back to, whose migrations are safe "
    "(default: the known-good version as a tag).",
)
@click.option(
    "--allow-contract",
    is_flag=True,
    help="Roll back even past a contract migration (migrations.refuse_rollback_past_contract).",
)
@click.option(
    "--provider",
    "provider_name",
    type=click.Choice(["prometheus", "datadog", "simulated", "none"]),
    default=None,
    help="Metrics for the recovery check (source §6.2 step 3); default: the policy's "
    "metrics.provider, none when that is the simulator. `simulated` rehearses it on "
    "`--target simulated` (with --scenario), on the simulator's virtual clock.",
)
@provider_setting_option
@scenario_options
@seed_option
@record_options
@click.option(
    "--state-file",
    type=click.Path(path_type=Path),
    default=None,
    help="Simulated target: its state file (as `canary run --state-file` wrote it).",
)
@policy_option
@json_option
@pass_state
def group(
    state: State,
    /,
    target_name: str | None,
    to_revision: int | None,
    flags: tuple[str, ...],
    no_flags: bool,
    flags_only: bool,
    reason: str,
    trigger_type: str,
    applied_migrations: str | None,
    to_ref: str | None,
    allow_contract: bool,
    provider_name: str | None,
    provider_settings: tuple[str, ...],
    scenario_name: str | None,
    scenario_file: Path | None,
    seed: int,
    environment: str | None,
    record_file: Path | None,
    repository: str | None,
    state_file: Path | None,
    policy_path: Path | None,
    as_json: bool,
    **target_values: Any,
) -> None:
    """Roll the deploy back to its known-good version; `rollback records` lists past ones.

    Safe to run twice: the second run finds the known-good version in place, changes
    nothing and says so. Afterwards the recovery check (error rate, p99, success rate of
    monitor.recovery) runs when a metrics provider is configured, and the record
    RB-YYYY-NNN goes to the job summary, the record file and a GitHub deployment
    (`task: rollback`). Exit 0 when rolled back (or nothing to do), 1 when a flag stayed
    on, 2 on an error or a refusal.
    """
    if click.get_current_context().invoked_subcommand is not None:
        return
    from release_actions.canary.model import RealClock, RollbackRecord
    from release_actions.canary.rollback import check_recovery
    from release_actions.integrations.records import run_url
    from release_actions.targets.factory import check_kind, make_target, target_label

    state.extra["json"] = as_json
    policy = load_policy(policy_path)
    kind = check_kind(target_name or policy.deploy.target)
    if to_revision is not None and kind != "kubernetes":
        raise click.UsageError("`--to-revision` belongs to `--target kubernetes`.")
    if flags_only and no_flags:
        raise click.UsageError("Only one of `--flags-only` or `--no-flags` can be set.")
    if kind == "simulated" and state_file is None and not flags_only:
        raise click.UsageError("`--target simulated` needs `--state-file`.")
    rehearsal = provider_name == "simulated"
    if rehearsal and kind != "simulated":
        raise click.UsageError(
            "`--provider simulated` checks recovery on `--target simulated` only; a real "
            "target's recovery needs real metrics (`--provider prometheus` or `datadog`)."
        )
    if (scenario_name or scenario_file) and not rehearsal:
        raise click.UsageError(
            "`--scenario` and `--scenario-file` belong to `--provider simulated`."
        )
    wanted_flags = [] if no_flags else list(flags or policy.feature_flags.launchdarkly.kill_switch)
    if flags_only and not wanted_flags:
        raise click.UsageError(
            "`--flags-only` needs flags: `--flag KEY`, or feature_flags.launchdarkly.kill_switch."
        )
    env_name = environment_of(policy, environment)
    options = target_options_from({**target_values, "state_file": state_file})

    target: DeployTarget | None = None
    label = policy.metrics.service
    known_good: str | None = None
    clock: Clock = RealClock()
    simulated_provider: Any = None
    if rehearsal and not flags_only:
        from release_actions.canary.simulator import build

        name, scenario = pick_scenario(scenario_name, scenario_file)
        world = build(scenario, name=name, seed=seed, state_file=state_file)
        target, clock, simulated_provider = world.target, world.clock, world.provider
    elif not flags_only:
        target = make_target(kind, policy, state.env, options=options)
    if target is not None:
        label = target_label(target)
        status = target.status()
        known_good = status.known_good
        note(
            state,
            f"{label}: stable {status.stable_version}, canary {status.canary_version or 'none'}"
            f", known good {known_good or 'not recorded'}",
        )
        applied = parse_names(applied_migrations)
        if applied:
            ref = to_ref or known_good
            enforce_safety(
                state, policy, contract_check(policy, applied, ref), allow_contract=allow_contract
            )
    if state.dry_run:
        what = []
        if target is not None:
            what.append(
                f"roll {label} back "
                + (f"to revision {to_revision}" if to_revision is not None else f"to {known_good}")
            )
        if wanted_flags:
            what.append("turn off " + ", ".join(f"`{f}`" for f in wanted_flags))
        note(state, "Would " + " and ".join(what) + " (dry run, nothing changed).")
        return

    began = clock.now()
    flag_results: list[KillResult] = []
    flag_errors: list[str] = []
    if wanted_flags:
        flag_results, flag_errors = turn_flags_off(state, policy, wanted_flags, reason)
    result = RollbackResult(False, None, known_good, "flags only")
    if target is not None:
        try:
            if to_revision is not None:
                result = undo_to_revision(state, target, policy, to_revision, options.poll_interval)
            else:
                result = target.rollback()
                note(state, result.detail or ("rolled back" if result.changed else "nothing to do"))
        except ReleaseActionsError:
            if flag_results:
                turned = [r.flag_key for r in flag_results if r.changed]
                if turned:
                    state.runtime.annotate(
                        "warning",
                        f"The flags {', '.join(turned)} were turned off before the rollback failed.",
                    )
            raise
    finished = clock.now()
    flags_changed = [r.flag_key for r in flag_results if r.changed]
    changed = result.changed or bool(flags_changed)
    runtime = state.runtime
    runtime.set_output("changed", changed)
    runtime.set_output("from-version", result.from_version if result.changed else "")
    runtime.set_output("to-version", result.to_version or "")
    runtime.set_output("flags-turned-off", ",".join(flags_changed))
    if not changed:
        message = (
            f"Nothing to roll back: {result.detail or 'already on the known-good version'}; "
            "nothing was changed."
        )
        runtime.set_output("record-id", "")
        runtime.set_output("record-file", "")
        if as_json:
            state.emit_json({"changed": False, "detail": result.detail, "record": None})
        else:
            note(state, message)
        runtime.summary(f"### Rollback of {label}\n\n{message}\n")
        if flag_errors:
            raise check_failed()
        return

    recovery: Recovery | None = None
    if target is not None and result.changed:
        provider = simulated_provider or recovery_provider(
            state, policy, provider_name, provider_settings
        )
        if provider is None:
            note(state, "recovery check skipped: no metrics provider (--provider)")
        else:
            note(state, "checking recovery (source §6.2 step 3) ...")
            recovery = check_recovery(target, provider, policy, clock, finished)
            note(state, recovery.reason)
    store, unavailable = record_store(
        state, environment=env_name, repository=repository, simulated=kind == "simulated"
    )
    when = datetime.fromtimestamp(began, policy.calendar.tz)
    from release_actions.canary.model import next_record_id
    from release_actions.canary.rollback import with_recovery

    record_id = store.next_id(when) if store is not None else next_record_id(when)
    detail = result.detail if result.changed else ""
    if flags_changed:
        detail = (detail + "; " if detail else "") + "flags off: " + ", ".join(flags_changed)
    record = RollbackRecord(
        id=record_id,
        timestamp=when.isoformat(timespec="seconds"),
        deployment=label,
        from_version=result.from_version if result.changed else None,
        to_version=result.to_version if result.changed else None,
        trigger_type=trigger_type,
        reason=reason,
        metrics={},
        detection_seconds=None,
        rollback_seconds=round(finished - began, 3),
        changed=True,
        detail=detail,
    ).to_dict()
    if recovery is not None:
        record = with_recovery(record, recovery)
    published = publish_record(
        state,
        policy,
        record,
        store=store,
        unavailable=unavailable,
        path=record_file,
        release=result.from_version,
        target_name=kind,
        environment=env_name,
        flags_turned_off=flags_changed,
    )
    final = published.record
    runtime.set_output("record-id", final["id"])
    from release_actions.cli.notify import send
    from release_actions.integrations.records import record_markdown

    runtime.summary(record_markdown(final, attached=published.attached, path=published.path))
    send(
        state,
        policy,
        "rolled_back",
        rolled_back_context(
            policy,
            final,
            service=label,
            environment=env_name,
            run=run_url(state.env),
            flags=flags_changed,
        ),
    )
    if recovery is not None and not recovery.recovered:
        runtime.annotate("warning", recovery.reason, title="Recovery not confirmed")
    if as_json:
        state.emit_json(
            {
                "changed": True,
                "detail": detail,
                "record": final,
                "record_file": str(published.path) if published.path else None,
                "github_deployment": published.attached.deployment_id
                if published.attached and published.attached.ok
                else None,
            }
        )
    else:
        note(
            state,
            f"rollback record {final['id']}: {final.get('from_version') or '-'} -> "
            f"{final.get('to_version') or '-'}"
            + (f" ({published.path})" if published.path else ""),
        )
    if flag_errors:
        runtime.annotate(
            "error",
            "Rolled back, but not every flag is off: " + "; ".join(flag_errors),
            title="Kill switch",
        )
        raise check_failed()


@group.command("records")
@click.option(
    "--environment",
    default=None,
    help="Only this environment's records (default: every environment).",
)
@click.option(
    "--since",
    default=None,
    metavar="DATE",
    help="Only records from this date (YYYY-MM-DD in the policy's time zone, or ISO 8601) on.",
)
@click.option(
    "--repo",
    "repository",
    default=None,
    metavar="OWNER/NAME",
    help="Repository (default: GITHUB_REPOSITORY).",
)
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Also claims superseded in a race (marked), which are not records of their own.",
)
@policy_option
@json_option
@pass_state
def records(
    state: State,
    environment: str | None,
    since: str | None,
    repository: str | None,
    show_all: bool,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """List the rollback records kept in GitHub (deployments with `task: rollback`), newest first."""
    from release_actions.gha import markdown_table
    from release_actions.integrations.records import RecordStore, parse_since, record_time

    policy = load_policy(policy_path)
    store = RecordStore.from_env(
        state.env, environment=environment or "production", repository=repository
    )
    found = store.records()
    if not show_all:
        found = [r for r in found if r.valid]
    if environment:
        found = [r for r in found if r.environment == environment]
    if since:
        start = parse_since(since, policy.calendar.tz)
        found = [r for r in found if (t := record_time(r)) is not None and t >= start]
    state.runtime.set_output("count", len(found))
    state.runtime.set_output("latest-id", found[0].id if found else "")
    rows = []
    for r in found:
        rec = r.record
        trigger = rec.get("trigger") or {}
        rows.append(
            [
                r.id + ("" if r.valid else " (superseded)"),
                str(rec.get("timestamp") or r.created_at),
                r.environment,
                str(rec.get("deployment") or ""),
                f"{rec.get('from_version') or '-'} → {rec.get('to_version') or '-'}",
                f"{trigger.get('type') or '-'}: {trigger.get('reason') or '-'}",
                str(rec.get("run_url") or ""),
            ]
        )
    headers = ["id", "timestamp", "environment", "deployment", "from → to", "trigger", "run"]
    if as_json:
        state.emit_json([r.to_dict() | {"valid": r.valid} for r in found])
    elif rows:
        for row in rows:
            state.say(f"{row[0]}  {row[1]}  {row[2]}  {row[3]}  {row[4]}  {row[5]}")
    else:
        state.say("No rollback records" + (f" in `{environment}`" if environment else "") + ".")
    if rows:
        state.runtime.summary("### Rollback records\n\n" + markdown_table(headers, rows))
