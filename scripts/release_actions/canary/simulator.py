"""A whole rehearsal: the simulated world wired to a simulated target and provider, run by the real engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from release_actions.metrics.simulated import SimulatedProvider
from release_actions.simulation.clock import VirtualClock
from release_actions.simulation.scenario import Scenario
from release_actions.simulation.traffic import DEFAULT_SEED, Simulation
from release_actions.targets.simulated import SimulatedTarget

if TYPE_CHECKING:
    from release_actions.canary.model import Event
    from release_actions.canary.report import RunReport
    from release_actions.core.settings import Settings


@dataclass
class Rehearsal:
    """One rehearsal's world: use its target, provider and clock with the real engine."""

    scenario_name: str
    scenario: Scenario
    seed: int
    clock: VirtualClock
    simulation: Simulation
    target: SimulatedTarget
    provider: SimulatedProvider


def build(
    scenario: Scenario,
    *,
    name: str = "custom",
    seed: int = DEFAULT_SEED,
    stable_version: str = "v1.5.1",
    state_file: Path | None = None,
    live_version: str | None = None,
) -> Rehearsal:
    """A simulated target and provider on a virtual clock.

    With ``live_version`` the new version is already live at 100 % (``monitor``);
    otherwise ``stable_version`` is live and a rollout starts from it. With ``state_file``
    a previous run's deployment and clock are picked up, so a killed run can resume.
    """
    clock = VirtualClock()
    if live_version is not None:
        target = SimulatedTarget(
            clock, stable_version=live_version, known_good=stable_version, state_file=state_file
        )
    else:
        target = SimulatedTarget(clock, stable_version=stable_version, state_file=state_file)
    world = target.world or {}
    if "now" in world:
        clock = VirtualClock(float(world["now"]))
        target.clock = clock
    origin = float(world.get("origin", clock.now()))
    good = str(world.get("good_version", stable_version))
    target.remember_world(origin=origin, good_version=good)
    sim = Simulation(scenario, target, clock, seed=seed, good_version=good, origin=origin)
    target.health_model = sim.health
    return Rehearsal(name, scenario, seed, clock, sim, target, SimulatedProvider(sim))


def rehearse(
    scenario: Scenario,
    settings: Settings,
    *,
    name: str = "custom",
    seed: int = DEFAULT_SEED,
    version: str = "v1.5.2",
    monitor: bool = True,
    on_event: Callable[[Event], None] | None = None,
    state_file: Path | None = None,
) -> RunReport:
    """Run the real engine on the simulated target and provider, and the monitor after it.

    The scenario's own steps replace the settings' (a scenario is written for its steps).
    """
    from release_actions.canary.judge import make_judge
    from release_actions.canary.model import Decision
    from release_actions.canary.monitor import DeployMonitor
    from release_actions.canary.report import RunReport
    from release_actions.canary.rollout import CanaryEngine
    from release_actions.core.settings import with_steps

    world = build(scenario, name=name, seed=seed, state_file=state_file)
    steps = scenario.resolved_steps()
    if steps is not None:
        settings = with_steps(settings, steps, f"scenario `{name}`")
    the_judge = make_judge(settings.analysis)
    engine = CanaryEngine(
        world.target, world.provider, the_judge, settings, world.clock, on_event=on_event
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
    return RunReport(
        outcome,
        watched,
        context={
            "scenario": name,
            "seed": seed,
            "judge": the_judge.name,
            "target": world.target.name,
            "provider": world.provider.name,
        },
    )
