"""The canary rollout session: announce, run the engine, record a rollback, announce the end."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from release_actions.app.preflight import preflight
from release_actions.app.records import completed_context, finish_record, record_store
from release_actions.app.session import Session
from release_actions.app.world import World, WorldRequest, build_world
from release_actions.core.calendar import check as check_calendar
from release_actions.core.policy import Policy
from release_actions.core.settings import Overrides, Settings, resolve, with_steps
from release_actions.integrations.release_history import record_release

if TYPE_CHECKING:
    from release_actions.canary.model import Event, Outcome
    from release_actions.integrations.records import Published


@dataclass(frozen=True)
class RolloutRequest:
    """One `canary run`: the version, what the user named, and where the record goes."""

    version: str
    overrides: Overrides
    world: WorldRequest
    at: datetime | None = None
    """When the calendar is read for a high-traffic period (source §2.4); None: now."""
    record_file: Path | None = None
    repository: str | None = None


@dataclass
class RolloutResult:
    """What happened, and what the report says about it."""

    settings: Settings
    world: World | None
    """None when the stage deploys nowhere (``settings.skipped``)."""
    outcome: Outcome | None
    context: dict[str, Any] = field(default_factory=dict)
    published: Published | None = None
    already_done: bool = False


def rollout_settings(policy: Policy, request: RolloutRequest) -> Settings:
    """The settings of this rollout: the calendar decides whether the canary is required."""
    overrides = request.overrides
    if not overrides.staged:
        at = request.at or datetime.now(UTC)
        if check_calendar(policy, overrides.release_type or "regular", at).require_staged_rollout:
            overrides = replace(overrides, staged=True)
    return resolve(policy, overrides)


def run_rollout(
    session: Session,
    policy: Policy,
    request: RolloutRequest,
    *,
    on_event: Callable[[Event], None] | None = None,
) -> RolloutResult:
    """Roll the version out step by step, or resume the saved rollout of it.

    A dry run returns after resolving the settings and reading the world, with no outcome.
    """
    settings = rollout_settings(policy, request)
    if settings.skipped:
        return RolloutResult(settings, None, None)
    # Building reads the target (its status, the known-good record) and changes nothing.
    world = build_world(session, settings, request.world)
    if world.steps is not None and not settings.steps_fixed:
        # A rehearsal scenario is written for its own steps, unless a preset or the release
        # type's canary rule chose them.
        settings = with_steps(settings, world.steps, "the scenario's steps")
    return run_session(session, policy, request, settings, world, on_event=on_event)


def run_session(
    session: Session,
    policy: Policy,
    request: RolloutRequest,
    settings: Settings,
    world: World,
    *,
    on_event: Callable[[Event], None] | None = None,
    kill_switch: bool | None = None,
) -> RolloutResult:
    """The session of a rollout whose settings and world are built: preflight, notices, the
    engine, the record.

    ``kill_switch`` says whether a rollback also turns the policy's kill-switch flags off
    (source §6.2 option C); None: in production. A flag's own rollout sets it False: its
    rollback is the flag's percentage set back, not every kill switch thrown.
    """
    from release_actions.app.notify import send
    from release_actions.app.status_page import production_opener
    from release_actions.canary.judge import make_judge
    from release_actions.canary.model import RELEASED, Decision
    from release_actions.canary.rollout import CanaryEngine
    from release_actions.integrations.records import run_url

    result = RolloutResult(settings, world, None)
    saved = world.target.status().state or {}
    resuming = saved.get("version") == request.version
    if not resuming:
        # Before any traffic moves. A resumed rollout goes on, and on_error decides.
        preflight(session, settings, world, request.version, kill_switch=kill_switch is not False)
    if session.dry_run:
        return result
    store, unavailable = record_store(
        session,
        environment=settings.environment,
        repository=request.repository,
        simulated=settings.target == "simulated",
    )
    run_link = run_url(session.env)
    if not resuming:
        send(
            session,
            policy,
            "release_started",
            {
                "version": request.version,
                "service": world.label,
                "environment": settings.environment,
                "commit": session.env.get("GITHUB_SHA") or None,
                "actor": session.env.get("GITHUB_ACTOR") or None,
                "steps": [s.weight for s in settings.steps],
                "run_url": run_link,
                "repository": session.env.get("GITHUB_REPOSITORY") or None,
            },
        )

    # Customers hear of a production rollback as it begins (source §10.3); a flag's own
    # rollout sets its percentage back, which is no incident.
    opener, listener = production_opener(
        session, policy, world, settings, request.version, on_event, public=kill_switch is not False
    )

    def engine_for(settings: Settings) -> CanaryEngine:
        return CanaryEngine(
            world.target,
            world.provider,
            make_judge(settings.analysis),
            settings,
            world.clock,
            on_event=listener,
            record_id=store.next_id if store is not None else None,
            deployment=world.label,
            prober=world.prober,
        )

    engine = engine_for(settings)
    outcome = engine.run(request.version)
    shadow = None
    if settings.strategy == "shadow" and outcome.decision is Decision.PASSED:
        then = settings.shadow.then
        if then != "none":
            # A passed shadow hands over to the release itself, in the same run (source
            # §4.1: a traffic test first); its verdict stays in the context.
            shadow = outcome
            handover = replace(request.overrides, strategy=then)
            settings = rollout_settings(policy, replace(request, overrides=handover))
            result.settings = settings
            engine = engine_for(settings)
            outcome = engine.run(request.version)
    result.outcome = outcome
    result.context = {
        **world.context,
        "judge": engine.judge.name,
        "target": settings.target,
        "provider": settings.provider,
        "version": request.version,
        "environment": settings.environment,
        "release_type": settings.release_type,
        "strategy": settings.strategy,
        "steps": settings.steps_source,
    }
    if shadow is not None:
        result.context["shadow"] = {"decision": shadow.decision.value, "reason": shadow.reason}
    result.already_done = resuming and saved.get("phase") == "done"
    if result.already_done:
        session.runtime.set_output("record-file", "")
        return result
    result.published = finish_record(
        session,
        policy,
        outcome,
        store=store,
        unavailable=unavailable,
        record_file=request.record_file,
        release=request.version,
        target_name=settings.target,
        environment=settings.environment,
        service=world.label,
        report_context=result.context,
        kill_switch=settings.stage == "production" if kill_switch is None else kill_switch,
        status_page=opener is not None,
        opener=opener,
    )
    record_release(
        session.runtime,
        settings,
        outcome,
        version=request.version,
        finished=world.clock.now(),
        repository=request.repository,
    )
    if outcome.decision in RELEASED:
        send(
            session,
            policy,
            "release_completed",
            completed_context(
                policy,
                outcome,
                service=world.label,
                environment=settings.environment,
                run=run_link,
            ),
        )
    return result
