"""A rehearsal: the real engine and the watch after it, on the simulator and a virtual clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from release_actions.app.session import Session
from release_actions.app.world import WorldRequest, build_world, pick_scenario
from release_actions.core.settings import Settings, with_steps
from release_actions.errors import ReleaseActionsError

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
    status_page: bool = False,
) -> RunReport:
    """Roll ``version`` out on the simulator and, once promoted, watch it as `monitor` does.

    The scenario's own steps replace the settings' (a scenario is written for its steps),
    except for blue-green and shadow, whose steps are the strategy's. Blue-green's hold is
    its watch, so no monitor follows it; a shadow releases nothing to watch. A rollback
    says what it would send to the status page; ``status_page`` sends it to the
    configured page (source §10.3), as a rollback of a real target does.
    """
    from release_actions.app.status_page import IncidentOpener, after_rollback
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
    opener = IncidentOpener(
        session,
        settings.policy,
        service=world.label,
        version=version,
        target_name="simulated",
        opt_in=status_page,
    )
    on_event = opener.listener(on_event)
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
    report = RunReport(outcome, watched, context=context)
    page = after_rollback(
        session,
        settings.policy,
        report.record,
        service=world.label,
        target_name="simulated",
        opt_in=status_page,
        opener=opener,
    )
    if status_page and page is not None:
        context["status_page"] = page.to_dict()
    return report


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


FLAG_VERSION = "on"
"""What a flag rehearsal rolls out: the flag's `on` variation (the engine's version)."""


def rehearsed_flag(settings: Settings) -> str:
    """The flag a rehearsal names: the catalog's first release flag (source §5.1)."""
    catalog = settings.policy.feature_flags.catalog
    return next((f.key for f in catalog if f.kind == "release"), "simulated-flag")


def flag_facts(settings: Settings, flag: str, target: Any, outcome: Outcome) -> dict[str, Any]:
    """The report's `flag` facts of a rehearsed flag rollout, in one job or gate runs:
    ``target`` is the SimulatedFlagTarget it ran on."""
    from release_actions.targets.simulated_flag import last_passed_percent

    guard = settings.policy.feature_flags.guard
    steps = [s.to_dict() for s in outcome.steps]
    rolled_back = outcome.record is not None or target.rolled_back_to is not None
    return {
        "key": flag,
        "environment": settings.policy.feature_flags.stages.environment,
        "stages": list(settings.policy.feature_flags.stages.gradual),
        "step_seconds": guard.step_seconds,
        "on_regression": guard.on_regression,
        "last_safe_percent": last_passed_percent({"steps": steps}),
        "rolled_back_to_percent": target.rolled_back_to if rolled_back else None,
        "percent": target.exposure(),
        "percent_history": target.percent_history(),
    }


def rehearse_flag(
    settings: Settings,
    request: WorldRequest,
    *,
    on_event: Callable[[Event], None] | None = None,
) -> RunReport:
    """A guarded gradual rollout (source §5.5) on a simulated flag: the canary engine itself.

    The steps are `feature_flags.stages.gradual`, each `feature_flags.guard.step_seconds`
    long and judged on the users served `on` (the canary track) against those served `off`
    (stable). A regression sets the flag back as `feature_flags.guard.on_regression` says
    (the last safe percentage, or off), with a record and notice as any rollback. No watch
    follows: the 100 % step is the flag's last, guarded by the rollback triggers.
    """
    from release_actions.canary.flag_simulator import build_flag, flag_settings
    from release_actions.canary.judge import make_judge
    from release_actions.canary.report import RunReport
    from release_actions.canary.rollout import CanaryEngine
    from release_actions.targets.simulated_flag import SimulatedFlagTarget

    name, scenario = pick_scenario(
        request.scenario_name or (None if request.scenario_file else "flag-healthy"),
        request.scenario_file,
    )
    if scenario.steps is not None:
        raise ReleaseActionsError(
            f"Scenario `{name}` has its own `steps`, but a flag's steps are the policy's "
            "`feature_flags.stages.gradual`.",
            hint="Remove `steps` from the scenario, or rehearse it without `--flag`.",
        )
    settings = flag_settings(
        replace(settings, target="simulated", provider="simulated", strategy="canary")
    )
    guard = settings.policy.feature_flags.guard
    flag = rehearsed_flag(settings)
    rehearsal = build_flag(
        scenario,
        name=name,
        flag=flag,
        on_regression=guard.on_regression,
        seed=request.seed,
        state_file=request.options.state_file,
        speed=request.speed,
    )
    target = rehearsal.target
    assert isinstance(target, SimulatedFlagTarget)
    judge = make_judge(settings.analysis)
    engine = CanaryEngine(
        target, rehearsal.provider, judge, settings, rehearsal.clock, on_event=on_event
    )
    outcome = engine.run(FLAG_VERSION)
    context: dict[str, Any] = {
        "scenario": name,
        "seed": request.seed,
        "strategy": "flag",
        "judge": judge.name,
        "target": target.name,
        "provider": rehearsal.provider.name,
        "flag": flag_facts(settings, flag, target, outcome),
        "rolled_back_at_s": outcome.evidence.get("rolled_back_at_s"),
        "user_requests_to_new": rehearsal.simulation.user_requests_to_new(
            outcome.started_at, outcome.ended_at
        ),
    }
    return RunReport(outcome, None, context=context)
