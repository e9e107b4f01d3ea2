"""The post-release watch (source §6.3): monitor a finished deploy, record and announce a rollback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from release_actions.app.records import finish_record, record_store
from release_actions.app.session import Session
from release_actions.app.world import World, WorldRequest, build_world
from release_actions.core.policy import Policy
from release_actions.core.settings import Overrides, Settings, resolve

if TYPE_CHECKING:
    from release_actions.canary.model import Event, Outcome
    from release_actions.integrations.records import Published


@dataclass(frozen=True)
class WatchRequest:
    """One `monitor`: what the user named, and where the record goes."""

    overrides: Overrides
    world: WorldRequest
    version: str
    """The simulated target's live version; a real target says its own."""
    record_file: Path | None = None
    repository: str | None = None


@dataclass
class WatchResult:
    settings: Settings
    world: World
    outcome: Outcome
    version: str
    context: dict[str, Any] = field(default_factory=dict)
    published: Published | None = None


def run_watch(
    session: Session,
    policy: Policy,
    request: WatchRequest,
    *,
    on_event: Callable[[Event], None] | None = None,
) -> WatchResult:
    """Watch the deploy for the settings' length; roll back when a trigger holds."""
    from release_actions.app.status_page import production_opener
    from release_actions.canary.monitor import DeployMonitor

    settings = resolve(policy, request.overrides)
    world = build_world(session, settings, request.world)
    store, unavailable = record_store(
        session,
        environment=settings.environment,
        repository=request.repository,
        simulated=settings.target == "simulated",
    )
    production = settings.stage == "production"
    opener, listener = production_opener(
        session, policy, world, settings, request.version, on_event
    )
    monitor = DeployMonitor(
        world.target,
        world.provider,
        settings,
        world.clock,
        on_event=listener,
        record_id=store.next_id if store is not None else None,
        deployment=world.label,
    )
    outcome = monitor.run()
    live = outcome.version or request.version
    context: dict[str, Any] = {
        **world.context,
        "target": settings.target,
        "provider": settings.provider,
        "version": live,
        "preset": request.overrides.release_type,
        "duration_s": monitor.duration,
        "error_rate_threshold_percent": monitor.triggers.error_rate.threshold,
        "environment": settings.environment,
    }
    published = finish_record(
        session,
        policy,
        outcome,
        store=store,
        unavailable=unavailable,
        record_file=request.record_file,
        release=live,
        target_name=settings.target,
        environment=settings.environment,
        service=world.label,
        report_context=context,
        # A watch of staging throws no production kill switch and tells no customer.
        kill_switch=production,
        status_page=production,
        opener=opener,
    )
    return WatchResult(settings, world, outcome, live, context, published)
