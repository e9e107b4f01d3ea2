"""The manual rollback (source §6.2): back to the known-good version, flags off, the record (§6.4)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from release_actions.app.flags import turn_flags_off
from release_actions.app.records import publish_record, record_store, rolled_back_context
from release_actions.app.session import Session
from release_actions.app.world import WorldRequest, build_world, real_provider
from release_actions.core.policy import Policy
from release_actions.core.settings import Overrides, resolve
from release_actions.errors import ReleaseActionsError
from release_actions.targets.base import RollbackResult

if TYPE_CHECKING:
    from release_actions.canary.model import Clock, Recovery
    from release_actions.db.safety import ContractMigration
    from release_actions.integrations.launchdarkly import KillResult
    from release_actions.integrations.records import Published
    from release_actions.targets.base import DeployTarget


@dataclass(frozen=True)
class ManualRollbackRequest:
    """One `release-actions rollback`, as the user asked for it."""

    world: WorldRequest
    target: str | None = None
    to_revision: int | None = None
    force: bool = False
    """With `to_revision`: go there even when it is a version the known-good one replaced."""
    flags: tuple[str, ...] = ()
    no_flags: bool = False
    flags_only: bool = False
    reason: str = "manual rollback"
    trigger: str = "manual"
    applied_migrations: str | None = None
    to_ref: str | None = None
    allow_contract: bool = False
    environment: str | None = None
    record_file: Path | None = None
    repository: str | None = None
    by: str | None = None
    """Who asks, for the abort mark (default: GITHUB_ACTOR, else USER)."""


@dataclass
class ManualRollbackResult:
    """``changed`` False: nothing was done (already back, or a dry run); ``message`` says why."""

    changed: bool
    detail: str | None
    label: str
    message: str = ""
    published: Published | None = None
    recovery: Recovery | None = None
    flag_errors: list[str] = field(default_factory=list)


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
    session: Session, policy: Policy, check: SafetyCheck, *, allow_contract: bool
) -> None:
    if not check.crossed:
        return
    where = f" (to `{check.to_ref}`)" if check.to_ref else ""
    for hazard in check.crossed:
        session.runtime.annotate(
            "warning",
            f"Rolling the application back{where} crosses the contract migration "
            f"{hazard.describe()}: the older code may still use what it removed or tightened.",
            file=hazard.file or None,
            title="Rollback past a contract migration",
        )
    if check.note:
        session.runtime.annotate("warning", check.note, title="Rollback safety")
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


# -- the steps ------------------------------------------------------------------------------------------


def undo_to_revision(
    session: Session,
    target: DeployTarget,
    policy: Policy,
    revision: int,
    poll: float | None,
    *,
    force: bool = False,
) -> RollbackResult:
    """`kubectl rollout undo --to-revision=N`, with kubectl's result, errors and lines, but
    never to a version the known-good one replaced unless ``force``."""
    from release_actions.targets.kubernetes import KubernetesTarget

    assert isinstance(target, KubernetesTarget)
    return target.undo_to_revision(
        revision,
        timeout_seconds=policy.deploy.kubernetes.rollout_timeout_seconds,
        poll=poll,
        report=session.note,
        force=force,
    )


def recovery_provider(
    session: Session, policy: Policy, name: str | None, pairs: tuple[str, ...]
) -> Any:
    """The provider for the recovery check: the flag, else the policy's unless simulated."""
    chosen = name or policy.metrics.provider
    if chosen in ("none", "simulated"):
        return None
    return real_provider(session, chosen, pairs, policy)


# -- taking over from a rollout in progress ----------------------------------------------------------


def mark_abort(
    session: Session,
    target: DeployTarget,
    clock: Clock,
    policy: Policy,
    reason: str,
    by: str | None = None,
) -> dict[str, Any]:
    """Ask a rollout or watch in progress on ``target`` to stop: the abort mark on its saved state.

    Written before the rollback, so an engine that re-reads the state after this (at its next
    interval, or before its own rollback) stops and does not roll back a second time. A rollout
    still under way is closed here as rolled back, so a later `canary run` of the same version
    reports it ended instead of resuming it.
    """
    import uuid

    from release_actions.integrations.records import run_url

    now = clock.now()
    mark: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "by": by or session.env.get("GITHUB_ACTOR") or session.env.get("USER") or "unknown",
        "at": datetime.fromtimestamp(now, policy.calendar.tz).isoformat(timespec="seconds"),
        "at_s": now,
        "reason": reason,
        "run": run_url(session.env),
    }
    state = dict(target.status().state or {})
    state["abort"] = mark
    if state.get("version") and state.get("phase") != "done":
        state["phase"] = "done"
        state["decision"] = "rolled_back"
        state["reason"] = f"manual rollback by {mark['by']}: {reason}"
    target.save_state(state)
    return mark


def keep_abort(target: DeployTarget, mark: dict[str, Any]) -> None:
    """Write the mark again if a save of the rollout (read before the mark) replaced it."""
    state = dict(target.status().state or {})
    found = state.get("abort")
    if isinstance(found, dict) and found.get("id") == mark["id"]:
        return
    state["abort"] = mark
    target.save_state(state)


# -- the use case -------------------------------------------------------------------------------------


def run_manual_rollback(
    session: Session, policy: Policy, request: ManualRollbackRequest
) -> ManualRollbackResult:
    """Roll back, turn the kill-switch flags off, check recovery, record and announce it.

    Safe to run twice: the second run finds the known-good version in place and changes nothing.
    """
    from release_actions.canary.model import RealClock, RollbackRecord
    from release_actions.canary.rollback import check_recovery
    from release_actions.integrations.records import run_url
    from release_actions.targets.factory import check_kind, make_target, target_label

    r = request
    kind = check_kind(r.target or policy.deploy.target)
    to_revision, flags_only, no_flags = r.to_revision, r.flags_only, r.no_flags
    if r.force and to_revision is None:
        raise ReleaseActionsError("`--force` belongs to `--to-revision`.")
    if to_revision is not None and kind != "kubernetes":
        raise ReleaseActionsError("`--to-revision` belongs to `--target kubernetes`.")
    if flags_only and no_flags:
        raise ReleaseActionsError("Only one of `--flags-only` or `--no-flags` can be set.")
    if kind == "simulated" and r.world.options.state_file is None and not flags_only:
        raise ReleaseActionsError("`--target simulated` needs `--state-file`.")
    rehearsal = r.world.provider == "simulated"
    if rehearsal and kind != "simulated":
        raise ReleaseActionsError(
            "`--provider simulated` checks recovery on `--target simulated` only; a real "
            "target's recovery needs real metrics (`--provider prometheus` or `datadog`)."
        )
    if (r.world.scenario_name or r.world.scenario_file) and not rehearsal:
        raise ReleaseActionsError(
            "`--scenario` and `--scenario-file` belong to `--provider simulated`."
        )
    wanted_flags = (
        [] if no_flags else list(r.flags or policy.feature_flags.launchdarkly.kill_switch)
    )
    if flags_only and not wanted_flags:
        raise ReleaseActionsError(
            "`--flags-only` needs flags: `--flag KEY`, or feature_flags.launchdarkly.kill_switch."
        )
    settings = resolve(policy, Overrides(target=kind, environment=r.environment))
    env_name = settings.environment
    options = r.world.options

    target: DeployTarget | None = None
    label = policy.metrics.service
    known_good: str | None = None
    moving = False  # a rollout or a deploy not yet back on known-good: someone may be on it
    clock: Clock = RealClock()
    simulated_provider: Any = None
    if rehearsal and not flags_only:
        world = build_world(session, settings, r.world)
        target, clock, simulated_provider = world.target, world.clock, world.provider
    elif not flags_only:
        target = make_target(kind, policy, session.env, options=options)
    if target is not None:
        label = target_label(target)
        status = target.status()
        known_good = status.known_good
        saved = status.state or {}
        moving = (
            status.canary_version is not None
            or (known_good is not None and status.stable_version != known_good)
            or (bool(saved.get("version")) and saved.get("phase") != "done")
        )
        session.note(
            f"{label}: stable {status.stable_version}, canary {status.canary_version or 'none'}"
            f", known good {known_good or 'not recorded'}",
        )
        applied = parse_names(r.applied_migrations)
        if applied:
            ref = r.to_ref or known_good
            enforce_safety(
                session,
                policy,
                contract_check(policy, applied, ref),
                allow_contract=r.allow_contract,
            )
    if session.dry_run:
        what = []
        if target is not None:
            what.append(
                f"roll {label} back "
                + (f"to revision {to_revision}" if to_revision is not None else f"to {known_good}")
            )
        if wanted_flags:
            what.append("turn off " + ", ".join(f"`{f}`" for f in wanted_flags))
        session.note("Would " + " and ".join(what) + " (dry run, nothing changed).")
        return ManualRollbackResult(False, "dry run", label)

    mark: dict[str, Any] | None = None
    if target is not None and (moving or to_revision is not None):
        # First the mark, then the rollback: see CanaryEngine for the race.
        mark = mark_abort(session, target, clock, policy, r.reason, r.by)
        session.note(
            "marked the saved state: a rollout or watch in progress stops at its next interval"
        )
    began = clock.now()
    flag_results: list[KillResult] = []
    flag_errors: list[str] = []
    if wanted_flags:
        flag_results, flag_errors = turn_flags_off(session, policy, wanted_flags, r.reason)
    result = RollbackResult(False, None, known_good, "flags only")
    if target is not None:
        try:
            if to_revision is not None:
                result = undo_to_revision(
                    session, target, policy, to_revision, options.poll_interval, force=r.force
                )
            else:
                result = target.rollback()
                session.note(
                    result.detail or ("rolled back" if result.changed else "nothing to do")
                )
            if mark is not None:
                keep_abort(target, mark)
        except ReleaseActionsError:
            if flag_results:
                turned = [k.flag_key for k in flag_results if k.changed]
                if turned:
                    session.runtime.annotate(
                        "warning",
                        f"The flags {', '.join(turned)} were turned off before the rollback failed.",
                    )
            raise
    finished = clock.now()
    flags_changed = [k.flag_key for k in flag_results if k.changed]
    changed = result.changed or bool(flags_changed)
    runtime = session.runtime
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
        runtime.summary(f"### Rollback of {label}\n\n{message}\n")
        return ManualRollbackResult(False, result.detail, label, message, flag_errors=flag_errors)

    recovery: Recovery | None = None
    if target is not None and result.changed:
        provider = simulated_provider or recovery_provider(
            session, policy, r.world.provider, r.world.provider_settings
        )
        if provider is None:
            session.note("recovery check skipped: no metrics provider (--provider)")
        else:
            session.note("checking recovery (source §6.2 step 3) ...")
            recovery = check_recovery(target, provider, settings, clock, finished)
            session.note(recovery.reason)
    store, unavailable = record_store(
        session, environment=env_name, repository=r.repository, simulated=kind == "simulated"
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
        trigger_type=r.trigger,
        reason=r.reason,
        metrics={},
        detection_seconds=None,
        rollback_seconds=round(finished - began, 3),
        changed=True,
        detail=detail,
    ).to_dict()
    if recovery is not None:
        record = with_recovery(record, recovery)
    published = publish_record(
        session,
        policy,
        record,
        store=store,
        unavailable=unavailable,
        path=r.record_file,
        release=result.from_version,
        target_name=kind,
        environment=env_name,
        flags_turned_off=flags_changed,
    )
    final = published.record
    runtime.set_output("record-id", final["id"])
    from release_actions.app.notify import send
    from release_actions.integrations.records import record_markdown

    runtime.summary(record_markdown(final, attached=published.attached, path=published.path))
    send(
        session,
        policy,
        "rolled_back",
        rolled_back_context(
            policy,
            final,
            service=label,
            environment=env_name,
            run=run_url(session.env),
            flags=flags_changed,
        ),
    )
    from release_actions.app.status_page import after_rollback

    # Last, as after an automatic rollback: a status page that is down is only a warning.
    after_rollback(session, policy, final, service=label, target_name=kind)
    if recovery is not None and not recovery.recovered:
        runtime.annotate("warning", recovery.reason, title="Recovery not confirmed")
    return ManualRollbackResult(
        True, detail, label, published=published, recovery=recovery, flag_errors=flag_errors
    )
