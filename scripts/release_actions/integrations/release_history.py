"""Each finished production rollout as one GitHub deployment (`task: release`) whose payload is the whole fact.

Why a deployment of its own, written at the end: the history that DORA's figures need
(``metrics export``) must be readable for a year of daily releases within a GITHUB_TOKEN's
1,000 requests an hour. A listing of deployments returns their payloads, so when every
fact is in the payload, reading the history costs its pages and nothing per deployment
(no status request, no commit request to learn which version it was).

``task: release`` keeps these apart from the deployments Actions makes for an
``environment:`` job (``deploy``) and from the rollback records (``rollback``,
integrations/records.py). The payload::

    {"version": "v1.5.2", "kind": "regular", "sha": "<40 hex>|null", "stage": "production",
     "started_at": "2026-03-03T10:00:00+00:00", "finished_at": "...",
     "status": "success|failure|rolled_back", "canary": "passed|failed|null",
     "record": "RB-2026-004|null", "rollback": null | {"record", "detected_at",
     "recovered_at", "trigger": {"type", "reason"}, "rollback_seconds"},
     "run_url": "...|null"}

``rollback`` repeats the record's times so that a release whose record never reached
GitHub still says when it was rolled back. Writing is never allowed to fail a release:
every refusal becomes a warning annotation.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from release_actions.errors import ReleaseActionsError

if TYPE_CHECKING:
    from github.Repository import Repository

    from release_actions.canary.model import Outcome
    from release_actions.core.settings import Settings
    from release_actions.gha import Runtime

RELEASE_TASK = "release"
STATUSES = ("success", "failure", "rolled_back")
# The deployment status each outcome gets: a rolled-back release failed in production.
STATE_OF = {"success": "success", "failure": "failure", "rolled_back": "failure"}
# What a flag's guarded rollout deploys is a percentage of a flag, not a release: it has
# no version of its own (its "version" is the `on` variation), so it writes no release.
NOT_RELEASES = frozenset({"simulated", "launchdarkly"})
PERMISSIONS_YAML = "permissions:\n  deployments: write"
DESCRIPTION_LIMIT = 140


def iso(epoch: float) -> str:
    """An instant as ISO 8601 with its offset (UTC), to the second."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def release_status(outcome: Outcome) -> str | None:
    """``success``, ``failure`` or ``rolled_back``; None when nothing was released.

    A held rollout is not finished (the next run resumes it) and a shadow that passed with
    no hand-over sent no user to the new version: neither is a deployment.
    """
    from release_actions.canary.model import RELEASED, Decision

    if outcome.decision in RELEASED:
        return "success"
    if outcome.record is not None or outcome.decision is Decision.ROLLED_BACK:
        return "rolled_back"
    if outcome.decision in (Decision.FAILED, Decision.ABORTED):
        return "failure"
    return None


def canary_result(outcome: Outcome) -> str | None:
    """``passed`` or ``failed`` when a step was judged; None when no analysis ran (a
    rolling update, a type whose canary rule skipped it, the staging deploy)."""
    from release_actions.canary.model import StepStatus

    judged = [step for step in outcome.steps if step.analysis]
    if not judged:
        return None
    return "passed" if all(step.status is StepStatus.PASSED for step in judged) else "failed"


def rollback_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """A rollback record as the history keeps it: detected when the rollback began (its
    ``timestamp``), recovered after the rollback and the recovery checks, if it was."""
    trigger = record.get("trigger") or {}
    duration = record.get("duration") or {}
    recovered_at = None
    detected = str(record.get("timestamp") or "")
    if record.get("recovered") and detected:
        seconds = float(duration.get("rollback_seconds") or 0) + float(
            duration.get("recovery_seconds") or 0
        )
        when = datetime.fromisoformat(detected) + timedelta(seconds=seconds)
        recovered_at = when.isoformat(timespec="seconds")
    seconds_taken = duration.get("rollback_seconds")
    return {
        "record": record.get("id"),
        "detected_at": detected or None,
        "recovered_at": recovered_at,
        "trigger": {"type": trigger.get("type"), "reason": trigger.get("reason")},
        # The rollback's own duration (§11.2's mean rollback time), beside detection to recovery.
        "rollback_seconds": None if seconds_taken is None else float(seconds_taken),
    }


def release_payload(
    settings: Settings,
    outcome: Outcome,
    *,
    version: str,
    sha: str | None,
    finished: float,
    run_url: str | None,
) -> dict[str, Any] | None:
    """The payload of the release deployment; None when the outcome released nothing."""
    status = release_status(outcome)
    if status is None:
        return None
    record = outcome.record
    return {
        "version": version,
        "kind": settings.release_type,
        "sha": sha,
        "stage": settings.stage,
        "started_at": iso(outcome.started_at),
        "finished_at": iso(finished),
        "status": status,
        "canary": canary_result(outcome),
        "record": record.get("id") if record else None,
        "rollback": rollback_summary(record) if record else None,
        "run_url": run_url,
    }


def description(payload: Mapping[str, Any]) -> str:
    """``v1.5.2 released (canary passed)``, ``v1.5.2 rolled back (RB-2026-004)``."""
    version, status = payload["version"], payload["status"]
    if status == "success":
        canary = payload.get("canary")
        text = f"{version} released" + (f" (canary {canary})" if canary else "")
    elif status == "rolled_back":
        text = f"{version} rolled back" + (f" ({payload['record']})" if payload["record"] else "")
    else:
        text = f"{version} failed"
    return text[:DESCRIPTION_LIMIT]


def commit_of(repo: Repository, version: str, env: Mapping[str, str]) -> str | None:
    """The commit that was released: the run's own when it runs for the version's tag,
    else the tag's (a dispatched run's GITHUB_SHA is the branch head, not the release),
    else GITHUB_SHA (a version that is no git tag, such as an image tag), else None."""
    from github import GithubException

    from release_actions.integrations.github import github_errors

    run_sha = env.get("GITHUB_SHA") or None
    if run_sha and env.get("GITHUB_REF") == f"refs/tags/{version}":
        return run_sha
    with github_errors(f"Reading the commit of {version}", repo=repo.full_name):
        try:
            return str(repo.get_commit(version).sha)
        except GithubException as exc:
            # 404 or 422 "No commit found for SHA": the version names no commit.
            if exc.status not in (404, 422):
                raise
    return run_sha


def write_release(
    repo: Repository,
    payload: Mapping[str, Any],
    *,
    environment: str,
    log_url: str | None,
) -> int:
    """Create the release deployment and its one status; its id. IntegrationError on refusal."""
    from github.GithubObject import NotSet

    from release_actions.integrations.github import github_errors

    ref = str(payload.get("sha") or repo.default_branch)
    text = description(payload)
    with github_errors(f"Recording the release {payload['version']}", repo=repo.full_name):
        # No status checks and no merge: the fact is written whatever state the commit is
        # in; not transient, and a production environment whatever the type calls it.
        dep = repo.create_deployment(
            ref,
            task=RELEASE_TASK,
            auto_merge=False,
            required_contexts=[],
            payload=dict(payload),
            environment=environment,
            description=text,
            transient_environment=False,
            production_environment=payload.get("stage") == "production",
        )
    with github_errors(f"Writing the status of deployment {dep.id}", repo=repo.full_name):
        # auto_inactive off: this fact must not mark the environment's real deployments
        # (Actions' own `deploy` ones) inactive.
        dep.create_status(
            STATE_OF[str(payload["status"])],
            target_url=log_url or NotSet,
            description=text,
            environment=environment,
            auto_inactive=False,
        )
    return int(dep.id)


def record_release(
    runtime: Runtime,
    settings: Settings,
    outcome: Outcome,
    *,
    version: str,
    finished: float,
    repository: str | None = None,
) -> int | None:
    """After a production or staging rollout (not a dry run: its session returns before
    this), write its release deployment; the deployment's id, or None when none was written.
    A staging one is no deployment in DORA's sense: it dates the release candidate's time in
    staging, to which the blockers found there belong (source §11.2).

    Nothing is written for the simulator, a rehearsal of a real target under simulated
    traffic (its times are a virtual clock's, its users imaginary), a flag's rollout or an
    outcome that released nothing. A failure to write is a warning annotation, never a
    failed release.
    """
    from release_actions.integrations.github import open_repo
    from release_actions.integrations.records import run_url

    env = runtime.env
    if settings.stage not in ("production", "staging") or settings.target in NOT_RELEASES:
        return None
    if settings.provider == "simulated":
        return None
    if release_status(outcome) is None:
        return None
    if not (env.get("GITHUB_TOKEN") or env.get("GH_TOKEN")) or not (
        repository or env.get("GITHUB_REPOSITORY")
    ):
        runtime.annotate(
            "notice",
            f"The release {version} is not in the release history (`metrics export`): no "
            "`GITHUB_TOKEN` or no repository (`GITHUB_REPOSITORY`).",
            title="Release history",
        )
        return None
    try:
        _, repo = open_repo(env, repository, runtime.mask)
        payload = release_payload(
            settings,
            outcome,
            version=version,
            sha=commit_of(repo, version, env),
            finished=finished,
            run_url=run_url(env),
        )
        if payload is None:
            return None
        return write_release(repo, payload, environment=settings.environment, log_url=run_url(env))
    except ReleaseActionsError as exc:
        hint = f" Give the job:\n{PERMISSIONS_YAML}" if "403" in exc.message else ""
        runtime.annotate(
            "warning",
            f"The release {version} was not written to the release history: {exc.message}" + hint,
            title="Release history",
        )
        return None
