"""A rehearsal: the real engine and the watch after it, on the simulator and a virtual clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from release_actions.app.session import Session
from release_actions.app.world import WorldRequest, build_world
from release_actions.core.settings import Settings, with_steps

if TYPE_CHECKING:
    from release_actions.app.world import World
    from release_actions.canary.model import Event, Outcome
    from release_actions.canary.report import RunReport


def rehearse(
    session: Session,
    settings: Settings,
    request: WorldRequest,
    *,
    version: str = "v1.5.2",
    monitor: bool = True,
    on_event: Callable[[Event], None] | None = None,
) -> RunReport:
    """Roll ``version`` out on the simulator and, once promoted, watch it as `monitor` does.

    The scenario's own steps replace the settings' (a scenario is written for its steps),
    except for blue-green and shadow, whose steps are the strategy's. Blue-green's hold is
    its watch, so no monitor follows it; a shadow releases nothing to watch.
    """
    from release_actions.canary.judge import make_judge
    from release_actions.canary.model import Decision
    from release_actions.canary.monitor import DeployMonitor
    from release_actions.canary.report import RunReport
    from release_actions.canary.rollout import CanaryEngine

    settings = replace(settings, target="simulated", provider="simulated")
    world = build_world(session, settings, replace(request, provider="simulated"))
    if world.steps is not None and settings.strategy not in ("blue-green", "shadow"):
        settings = with_steps(settings, world.steps, "the scenario's steps")
    judge = make_judge(settings.analysis)
    engine = CanaryEngine(
        world.target,
        world.provider,
        judge,
        settings,
        world.clock,
        on_event=on_event,
        prober=world.prober,
    )
    outcome = engine.run(version)
    watched = None
    if monitor and outcome.decision is Decision.PROMOTED and not outcome.resumed:
        watched = DeployMonitor(
            world.target,
            world.provider,
            settings,
            world.clock,
            on_event=on_event,
            origin=outcome.started_at,
        ).run()
    context = {
        **world.context,
        "strategy": settings.strategy,
        "judge": judge.name,
        "target": world.target.name,
        "provider": world.provider.name,
    }
    context.update(exposure(outcome, watched, world))
    return RunReport(outcome, watched, context=context)


def exposure(outcome: Outcome, watched: Outcome | None, world: World) -> dict[str, Any]:
    """When traffic switched (and back), and how many user requests the new version answered.

    From the simulated world itself, not from the engine's account of it: a shadow's
    mirrored copies and a preview's smoke checks are not user requests, and the count says
    whether that held.
    """
    origin = outcome.started_at
    switched = next(
        (s.started_at for s in outcome.steps if s.op == "switch"),
        None,
    )
    end = (watched or outcome).ended_at
    users = (
        world.simulation.user_requests_to_new(origin, end) if world.simulation is not None else None
    )
    return {
        "switched_at_s": None if switched is None else round(switched - origin, 3),
        "rolled_back_at_s": outcome.evidence.get("rolled_back_at_s"),
        "user_requests_to_new": users,
    }
