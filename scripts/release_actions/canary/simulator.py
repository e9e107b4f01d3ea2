"""A whole rehearsal: the simulated world wired to a simulated target and provider, run by the real engine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from release_actions.metrics.simulated import SimulatedProvider
from release_actions.simulation.clock import PacedClock, VirtualClock
from release_actions.simulation.scenario import Scenario
from release_actions.simulation.traffic import DEFAULT_SEED, Simulation
from release_actions.targets.simulated import SimulatedTarget


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
    speed: float | None = None,
) -> Rehearsal:
    """A simulated target and provider on a virtual clock.

    With ``live_version`` the new version is already live at 100 % (``monitor``);
    otherwise ``stable_version`` is live and a rollout starts from it. With ``state_file``
    a previous run's deployment and clock are picked up, so a killed run can resume. With
    ``speed`` the virtual clock really waits, ``speed`` virtual seconds per real second.
    """

    def make_clock(start: float | None = None) -> VirtualClock:
        if speed:
            return PacedClock(speed=speed) if start is None else PacedClock(start, speed=speed)
        return VirtualClock() if start is None else VirtualClock(start)

    clock = make_clock()
    if live_version is not None:
        target = SimulatedTarget(
            clock, stable_version=live_version, known_good=stable_version, state_file=state_file
        )
    else:
        target = SimulatedTarget(clock, stable_version=stable_version, state_file=state_file)
    world = target.world or {}
    if "now" in world:
        clock = make_clock(float(world["now"]))
        target.clock = clock
    origin = float(world.get("origin", clock.now()))
    good = str(world.get("good_version", stable_version))
    target.remember_world(origin=origin, good_version=good)
    sim = Simulation(scenario, target, clock, seed=seed, good_version=good, origin=origin)
    target.health_model = sim.health
    return Rehearsal(name, scenario, seed, clock, sim, target, SimulatedProvider(sim))
