"""Rollback records and release messages after a rollout, a watch or a manual rollback."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from release_actions.app.session import Session
from release_actions.core.policy import Policy

if TYPE_CHECKING:
    from release_actions.app.status_page import IncidentOpener
    from release_actions.canary.model import Outcome
    from release_actions.integrations.records import (
        Attachment,
        Published,
        RecordStore,
        StoredRecord,
    )


def local_time(policy: Policy, epoch: float) -> str:
    return datetime.fromtimestamp(epoch, policy.calendar.tz).strftime("%Y-%m-%d %H:%M %Z")


def record_store(
    session: Session, *, environment: str, repository: str | None, simulated: bool
) -> tuple[RecordStore | None, str | None]:
    from release_actions.integrations.records import open_store

    store, why = open_store(session.env, environment=environment, repository=repository)
    if store is None and not simulated:
        session.note(f"rollback records stay in the job summary and the record file: {why}")
    return store, why


def _redacted(session: Session, value: Any) -> Any:
    if isinstance(value, str):
        return session.runtime.redact(value)
    if isinstance(value, Mapping):
        return {k: _redacted(session, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(session, v) for v in value]
    return value


def publish_record(
    session: Session,
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
        session.env,
        release=release,
        target=target_name,
        environment=environment,
        flags_turned_off=flags_turned_off or [],
    )
    # A record outlives the job (a file, a GitHub deployment): a reason quoting a provider's
    # error text must not carry a credential into it.
    published = publish(
        session.runtime,
        _redacted(session, full),
        store=store,
        unavailable=unavailable,
        path=path,
        warn_unattached=target_name != "simulated",
    )
    session.runtime.set_output("record-file", str(published.path) if published.path else "")
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
        # An operator's `release-actions promote`: who skipped which pause, and why.
        "promotions": [
            {
                "by": p.get("by"),
                "at": p.get("at"),
                "reason": p.get("reason"),
                "full": bool(p.get("full")),
                "step": int(p.get("acted_step") or 0) + 1,
            }
            for p in outcome.evidence.get("manual_promotions") or []
        ],
    }


def finish_record(
    session: Session,
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
    kill_switch: bool = True,
    status_page: bool = True,
    opener: IncidentOpener | None = None,
) -> Published | None:
    """After an automatic rollback: the kill-switch flags off, the record everywhere, the
    `rolled_back` message, then the status page's incident (source §10.3).

    The flags go off after the deploy is back (option C of §6.2 alongside A or B), so an
    outage of LaunchDarkly can leave a flag on, said in an error annotation, but never
    holds up the rollback itself. The status page comes last for the same reason: its
    failure is a warning, with the record already written; a rehearsal (the simulated
    target) only says what it would send. Only a production rollback (``status_page``)
    touches the status page; ``opener`` opened its incident as the rollback began.
    """
    from release_actions.app.flags import turn_flags_off
    from release_actions.app.notify import send
    from release_actions.app.status_page import after_rollback
    from release_actions.canary.rollback import impact_of
    from release_actions.integrations.records import run_url

    if outcome.record is None:
        session.runtime.set_output("record-file", "")
        return None
    flags = list(policy.feature_flags.launchdarkly.kill_switch) if kill_switch else []
    flags_off: list[str] = []
    if flags and target_name == "simulated":
        session.note(
            "kill switch: a rehearsal leaves " + ", ".join(f"`{f}`" for f in flags) + " as they are"
        )
    elif flags:
        results, errors = turn_flags_off(session, policy, flags, str(outcome.reason))
        flags_off = [r.flag_key for r in results if r.changed]
        if errors:
            session.runtime.annotate(
                "error",
                "Rolled back, but not every kill-switch flag is off: " + "; ".join(errors),
                title="Kill switch",
            )
    record = {**outcome.record, "impact": impact_of(outcome.steps, outcome.events)}
    published = publish_record(
        session,
        policy,
        record,
        store=store,
        unavailable=unavailable,
        path=record_file,
        release=release,
        target_name=target_name,
        environment=environment,
        flags_turned_off=flags_off,
    )
    outcome.record = published.record
    report_context["record_file"] = str(published.path) if published.path else None
    if published.attached is not None and published.attached.ok:
        report_context["github_deployment"] = published.attached.deployment_id
    send(
        session,
        policy,
        "rolled_back",
        rolled_back_context(
            policy,
            published.record,
            service=service,
            environment=environment,
            run=run_url(session.env),
            flags=flags_off,
        ),
    )
    if not status_page:
        # A staging rollback is not the customers' business (nor a flag's own set-back).
        return published
    page = after_rollback(
        session,
        policy,
        published.record,
        service=service,
        target_name=target_name,
        opener=opener,
    )
    if page is not None and page.action != "skipped":
        report_context["status_page"] = page.to_dict()
    return published


def sync_records(
    session: Session, files: list[Path], *, repository: str | None
) -> list[tuple[Path, Attachment]]:
    """`rollback records sync`: file records kept only in their files, once each, in the
    order they happened, and write each one's final id and deployment into its file."""
    import json

    from release_actions.errors import ReleaseActionsError
    from release_actions.integrations.records import RecordStore, write_record_file

    loaded = []
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ReleaseActionsError(
                f"`{path}` is not a rollback record file: {exc}.",
                hint="Pass the JSON files that `--record-file` (or the `record-file` output) named.",
            ) from None
        if not isinstance(data, dict) or "timestamp" not in data:
            raise ReleaseActionsError(f"`{path}` is not a rollback record file (no `timestamp`).")
        loaded.append((path, data))
    loaded.sort(key=lambda item: str(item[1]["timestamp"]))  # stable: ties keep their order
    store = RecordStore.from_env(session.env, environment="production", repository=repository)
    out = []
    for path, data in loaded:
        attached = store.sync({k: v for k, v in data.items() if k != "github"})
        if attached.ok:
            filed = dict(attached.record)
            filed["github"] = {
                "repository": store.repository,
                "deployment_id": attached.deployment_id,
                "environment": attached.environment,
            }
            if filed != data:
                write_record_file(path, filed)
        out.append((path, attached))
    return out


def annotate_record(
    session: Session,
    record_id: str,
    *,
    repository: str | None,
    root_cause: str | None,
    follow_ups: tuple[str, ...],
    postmortem: str | None,
) -> tuple[StoredRecord, bool]:
    """`rollback records annotate`: root cause, follow-ups and postmortem link, idempotently."""
    from release_actions.errors import ReleaseActionsError
    from release_actions.integrations.records import RecordStore

    if root_cause is None and not follow_ups and postmortem is None:
        raise ReleaseActionsError(
            "Nothing to add: give `--root-cause`, `--follow-up` or `--postmortem`."
        )
    store = RecordStore.from_env(session.env, environment="production", repository=repository)
    return store.annotate(
        record_id, root_cause=root_cause, follow_ups=follow_ups, postmortem=postmortem
    )
