"""`release-actions rollback`: back to the known-good version, flags off, and the record (source §6.2, §6.4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from release_actions.cli import Session, check_failed, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.cli.options import (
    TARGETS,
    provider_setting_option,
    record_options,
    target_options,
    world_request,
)
from release_actions.cli.rehearse import scenario_options, seed_option
from release_actions.core.policy import load_policy

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
    "revision), refused for a version that a recorded rollback left or that is newer than "
    "the known-good one. Without it, the known-good version recorded when the rollout began.",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --to-revision: go there on purpose even when it is refused; the version is "
    "then recorded as not known-good.",
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
    state: Session,
    /,
    target_name: str | None,
    to_revision: int | None,
    force: bool,
    flags: tuple[str, ...],
    no_flags: bool,
    flags_only: bool,
    reason: str,
    trigger_type: str,
    applied_migrations: str | None,
    to_ref: str | None,
    allow_contract: bool,
    environment: str | None,
    record_file: Path | None,
    repository: str | None,
    policy_path: Path | None,
    as_json: bool,
    **world: Any,
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
    from release_actions.app.rollback import ManualRollbackRequest, run_manual_rollback

    state.json = as_json
    request = ManualRollbackRequest(
        world=world_request(world),
        target=target_name,
        to_revision=to_revision,
        force=force,
        flags=flags,
        no_flags=no_flags,
        flags_only=flags_only,
        reason=reason,
        trigger=trigger_type,
        applied_migrations=applied_migrations,
        to_ref=to_ref,
        allow_contract=allow_contract,
        environment=environment,
        record_file=record_file,
        repository=repository,
    )
    result = run_manual_rollback(state, load_policy(policy_path), request)
    published = result.published
    if state.dry_run:
        return
    if as_json:
        final = published.record if published else None
        state.emit_json(
            {
                "changed": result.changed,
                "detail": result.detail,
                "record": final,
                **(
                    {
                        "record_file": str(published.path) if published.path else None,
                        "github_deployment": published.attached.deployment_id
                        if published.attached and published.attached.ok
                        else None,
                    }
                    if published
                    else {}
                ),
            }
        )
    elif published is None:
        state.note(result.message)
    else:
        final = published.record
        state.note(
            f"rollback record {final['id']}: {final.get('from_version') or '-'} -> "
            f"{final.get('to_version') or '-'}" + (f" ({published.path})" if published.path else "")
        )
    if result.flag_errors:
        if result.changed:
            state.runtime.annotate(
                "error",
                "Rolled back, but not every flag is off: " + "; ".join(result.flag_errors),
                title="Kill switch",
            )
        raise check_failed()


_repo_option = click.option(
    "--repo",
    "repository",
    default=None,
    metavar="OWNER/NAME",
    help="Repository (default: GITHUB_REPOSITORY).",
)


@group.group("records", invoke_without_command=True)
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
@_repo_option
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="Also deployments that are no record of their own (marked): claims of the earlier "
    "numbering that lost a race, retried writes.",
)
@policy_option
@json_option
@pass_state
def records(
    state: Session,
    environment: str | None,
    since: str | None,
    repository: str | None,
    show_all: bool,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """List the rollback records kept in GitHub (deployments with `task: rollback`), newest first.

    `records sync FILE...` files records that GitHub did not take at the time (their ids
    are provisional, RB-YYYY-P-...); `records annotate RB-YYYY-NNN` adds the root cause,
    follow-up actions and postmortem link.
    """
    if click.get_current_context().invoked_subcommand is not None:
        return
    from release_actions.gha import markdown_table
    from release_actions.integrations.records import (
        RecordStore,
        impact_text,
        parse_since,
        record_time,
    )

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
                (r.id if r.valid else f"{r.filed_as} (no record)"),
                str(rec.get("timestamp") or r.created_at),
                r.environment,
                str(rec.get("deployment") or ""),
                f"{rec.get('from_version') or '-'} → {rec.get('to_version') or '-'}",
                f"{trigger.get('type') or '-'}: {trigger.get('reason') or '-'}",
                impact_text(rec),
                str(rec.get("root_cause") or "–"),
                "; ".join(rec.get("follow_up_actions") or []) or "–",
                str(rec.get("postmortem_link") or "–"),
                str(rec.get("run_url") or ""),
            ]
        )
    headers = [
        "id", "timestamp", "environment", "deployment", "from → to", "trigger", "impact",
        "root cause", "follow-up actions", "postmortem", "run",
    ]  # fmt: skip
    if as_json:
        state.emit_json({"records": [r.to_dict() | {"valid": r.valid} for r in found]})
    elif rows:
        for row in rows:
            state.say(f"{row[0]}  {row[1]}  {row[2]}  {row[3]}  {row[4]}  {row[5]}")
    else:
        state.say("No rollback records" + (f" in `{environment}`" if environment else "") + ".")
    if rows:
        state.runtime.summary("### Rollback records\n\n" + markdown_table(headers, rows))


@records.command("sync")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@_repo_option
@json_option
@pass_state
def sync(state: Session, files: tuple[Path, ...], repository: str | None, as_json: bool) -> None:
    """File rollback records that GitHub did not take at the time, under their final numbers.

    FILE is a record as `--record-file` wrote it. Safe to run again: a record already filed
    (a deployment has its provisional id) is not filed twice. Each file gets its final id.
    Exit 0 when every record is filed, 2 otherwise.
    """
    from release_actions.app.records import sync_records

    state.json = as_json
    results = sync_records(state, list(files), repository=repository)
    failed = [(p, a) for p, a in results if not a.ok]
    state.runtime.set_output("record-ids", ",".join(a.record["id"] for _, a in results if a.ok))
    if as_json:
        state.emit_json(
            {
                "records": [
                    {
                        "file": str(p),
                        "id": a.record.get("id"),
                        "provisional_id": a.record.get("provisional_id"),
                        "filed": a.ok,
                        "already_filed": a.already,
                        "deployment_id": a.deployment_id,
                        "error": a.error,
                    }
                    for p, a in results
                ]
            }
        )
    for path, a in results:
        if not a.ok:
            continue
        how = "already filed as" if a.already else "filed as"
        state.note(f"{path}: {a.record.get('provisional_id')} {how} {a.record['id']}")
    for path, a in failed:
        state.runtime.annotate(
            "error", f"{path} was not filed: {a.error}", title="Rollback record sync"
        )
    if failed:
        from release_actions.errors import IntegrationError

        raise IntegrationError(
            f"{len(failed)} of {len(results)} rollback record(s) were not filed.",
            hint="Run `release-actions rollback records sync` with the same files again; "
            "a record already filed is not filed twice.",
        )


@records.command("annotate")
@click.argument("record_id", metavar="RB-YYYY-NNN")
@click.option("--root-cause", default=None, help="The root cause (replaces an earlier one).")
@click.option(
    "--follow-up",
    "follow_ups",
    multiple=True,
    metavar="TEXT",
    help="A follow-up action (repeatable; added to those already there).",
)
@click.option("--postmortem", default=None, metavar="URL", help="The postmortem's link.")
@_repo_option
@json_option
@pass_state
def annotate(
    state: Session,
    record_id: str,
    root_cause: str | None,
    follow_ups: tuple[str, ...],
    postmortem: str | None,
    repository: str | None,
    as_json: bool,
) -> None:
    """Add source §6.4's postmortem facts to a stored record: root cause, follow-ups, link.

    Safe to run twice: the same facts again change nothing. `rollback records` shows them.
    """
    from release_actions.app.records import annotate_record

    state.json = as_json
    stored, changed = annotate_record(
        state,
        record_id,
        repository=repository,
        root_cause=root_cause,
        follow_ups=follow_ups,
        postmortem=postmortem,
    )
    state.runtime.set_output("changed", changed)
    state.runtime.set_output("record-id", stored.id)
    if as_json:
        state.emit_json({"changed": changed, **stored.to_dict()})
    else:
        state.note(f"{stored.id}: " + ("annotated" if changed else "unchanged (already there)"))
