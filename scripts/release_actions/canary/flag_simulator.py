"""A flag rehearsal's world: a simulated flag and simulated users per variation, for the real engine."""

from __future__ import annotations

from pathlib import Path

from release_actions.canary.simulator import Rehearsal
from release_actions.core.policy import RolloutStep
from release_actions.core.settings import Settings, with_steps
from release_actions.metrics.simulated import SimulatedProvider
from release_actions.simulation.clock import PacedClock, VirtualClock
from release_actions.simulation.scenario import Scenario
from release_actions.simulation.traffic import DEFAULT_SEED, Simulation
from release_actions.targets.simulated_flag import OFF, OnRegression, SimulatedFlagTarget


def flag_steps(settings: Settings) -> list[RolloutStep]:
    """`feature_flags.stages.gradual`, each step `feature_flags.guard.step_seconds` long.

    Every step is judged; at 100 % no user is served `off`, so there the engine has only
    the rollback triggers (source §6.1), as for a canary's last step.
    """
    flags = settings.policy.feature_flags
    seconds = flags.guard.step_seconds
    return [
        RolloutStep(weight=p, pause_seconds=seconds, analysis=True, op="weight")
        for p in flags.stages.gradual
    ]


def flag_settings(settings: Settings) -> Settings:
    """The settings of a guarded gradual rollout: the canary strategy on the flag's steps."""
    return with_steps(
        settings,
        flag_steps(settings),
        "feature_flags.stages.gradual, each feature_flags.guard.step_seconds",
    )


def build_flag(
    scenario: Scenario,
    *,
    name: str = "custom",
    flag: str = "new-booking-flow",
    on_regression: OnRegression = "last_safe",
    seed: int = DEFAULT_SEED,
    state_file: Path | None = None,
    speed: float | None = None,
) -> Rehearsal:
    """A simulated flag, its users and a provider on a virtual clock.

    The scenario's ``stable`` profile is the users served `off`, its ``canary`` profile
    those served `on`. With ``state_file`` a killed run's flag and clock are picked up.
    """

    def make_clock(start: float | None = None) -> VirtualClock:
        if speed:
            return PacedClock(speed=speed) if start is None else PacedClock(start, speed=speed)
        return VirtualClock() if start is None else VirtualClock(start)

    clock = make_clock()
    target = SimulatedFlagTarget(
        clock, flag=flag, on_regression=on_regression, state_file=state_file
    )
    world = target.world or {}
    if "now" in world:
        clock = make_clock(float(world["now"]))
        target.clock = clock
    origin = float(world.get("origin", clock.now()))
    target.remember_world(origin=origin, good_version=OFF)
    sim = Simulation(scenario, target, clock, seed=seed, good_version=OFF, origin=origin)
    target.health_model = sim.health
    return Rehearsal(name, scenario, seed, clock, sim, target, SimulatedProvider(sim))
