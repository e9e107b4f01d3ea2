"""A rehearsal: the real engine and the watch after it, on the simulator and a virtual clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from release_actions.app.session import Session
from release_actions.app.world import WorldRequest, build_world
from release_actions.core.settings import Settings, with_steps

if TYPE_CHECKING:
    from release_actions.canary.model import Event
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

    The scenario's own steps replace the settings' (a scenario is written for its steps).
    """
    from release_actions.canary.judge import make_judge
    from release_actions.canary.model import Decision
    from release_actions.canary.monitor import DeployMonitor
    from release_actions.canary.report import RunReport
    from release_actions.canary.rollout import CanaryEngine

    settings = replace(settings, target="simulated", provider="simulated")
    world = build_world(session, settings, replace(request, provider="simulated"))
    if world.steps is not None:
        settings = with_steps(settings, world.steps, "the scenario's steps")
    judge = make_judge(settings.analysis)
    engine = CanaryEngine(
        world.target, world.provider, judge, settings, world.clock, on_event=on_event
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
        "judge": judge.name,
        "target": world.target.name,
        "provider": world.provider.name,
    }
    return RunReport(outcome, watched, context=context)
