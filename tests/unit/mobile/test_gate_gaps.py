"""Hours the vitals source never fills: passed once the source is complete past them, never health."""

from __future__ import annotations

from release_actions.errors import MetricsError, NoDataError
from release_actions.mobile.base import Vitals
from release_actions.mobile.policy import MobilePolicy, MobileStage
from release_actions.mobile.rollout import HOUR, MemoryStateStore, MobileGate
from release_actions.mobile.simulator import (
    NEW_CODE,
    MobileWorld,
    SimulatedReviews,
    SimulatedStore,
    SimulatedVitals,
    load_mobile_scenario,
)

# Two-hour stages, so a gap is a large part of one.
POLICY = MobilePolicy(
    stages={
        "android": [
            MobileStage(fraction=0.01, min_hours=2),
            MobileStage(fraction=0.05, min_hours=2),
            MobileStage(fraction=1.0),
        ]
    }
)


class GappyVitals(SimulatedVitals):
    """The simulated world's vitals with holes: no rows of the new version in ``gaps``
    (hours since the start), a fault in ``faults``, and data complete ``lag`` hours late."""

    def __init__(
        self, world: MobileWorld, *, gaps: set[int], faults: set[int] = frozenset(), lag: float = 0
    ) -> None:
        super().__init__(world)
        self.gaps, self.faults, self.lag = set(gaps), set(faults), lag
        self.fault_reads = 0

    def vitals(self, version_code: str, start: float, end: float) -> Vitals:
        hour = round((start - self.world.start) / HOUR)
        if hour in self.faults:
            self.fault_reads += 1
            raise MetricsError("simulated outage")
        if version_code == NEW_CODE and hour in self.gaps:
            raise NoDataError(f"no rows for {version_code} in hour {hour}")
        return super().vitals(version_code, start, end)

    def freshness(self, now: float) -> float:
        return now - self.lag * HOUR


def _gate(
    policy: MobilePolicy = POLICY, **kw: object
) -> tuple[MobileWorld, MobileGate, GappyVitals]:
    _, scenario = load_mobile_scenario("healthy")
    world = MobileWorld(scenario, 3)
    vitals = GappyVitals(world, **kw)  # type: ignore[arg-type]
    gate = MobileGate(
        SimulatedStore(world), vitals, SimulatedReviews(world), policy, MemoryStateStore()
    )
    assert gate.advance(world.now).action == "started"
    return world, gate, vitals


def _step(world: MobileWorld, gate: MobileGate, hours: int = 1) -> list[str]:
    out = []
    for _ in range(hours):
        world.step()
        out.append(gate.advance(world.now).action)
    return out


def test_a_gap_past_the_horizon_is_kept_as_unobserved_and_passed() -> None:
    world, gate, _ = _gate(gaps={0})
    assert _step(world, gate, 2) == ["held", "advanced"]
    state = gate.state
    assert state is not None
    assert state.hours[0]["missing"] == ["new"] and state.hours[0]["new"][0] == 0
    assert state.hours[0]["prev"][0] > 0  # the previous version's hour is kept as it came
    assert state.stages[0]["unobserved_hours"] == 1
    assert state.stages[0]["new_users"] == state.hours[1]["new"][0] > 0


def test_a_gap_inside_the_horizon_is_waited_for_and_read_again() -> None:
    world, gate, _ = _gate(gaps={0}, lag=3)
    looks = []
    for _ in range(4):
        world.step()
        looks.append(gate.advance(world.now))
    # Until the source is complete three hours later, hour 0 may still come: each look
    # asks for it again and takes in nothing after it.
    assert [look.action for look in looks[:3]] == ["held"] * 3
    assert all("cannot read vitals from simulated" in look.reason for look in looks[:3])
    assert looks[0].warnings and "no rows" in looks[0].warnings[0]
    # Then it is passed, and the hours behind it are read in the same look.
    state = gate.state
    assert state is not None
    assert [h.get("missing", []) for h in state.hours] == [["new"], [], [], []]


def test_hours_without_data_alone_never_advance_a_stage() -> None:
    world, gate, _ = _gate(gaps=set(range(10)))
    looks = []
    for _ in range(6):
        world.step()
        looks.append(gate.advance(world.now))
    assert [look.action for look in looks] == ["held"] * 6
    assert world.fraction == 0.01
    last = looks[-1]
    assert "waiting for users" in last.reason
    assert last.judgement is not None
    check = next(c for c in last.judgement.checks if c.name == "new-version users")
    assert check.status == "waiting"
    assert "0 of 1 users" in check.detail and "6 hours without data" in check.detail
    assert last.judgement.evidence["unobserved_hours"] == 6
    # Users come back: the stage advances on them.
    gate.vitals.gaps.clear()  # type: ignore[attr-defined]
    assert _step(world, gate, 1) == ["advanced"]


def test_the_minimum_of_users_is_the_policy_s() -> None:
    policy = POLICY.model_copy(update={"min_stage_users": 10**9})
    world, gate, _ = _gate(policy, gaps=set())
    looks = [gate.advance(world.now)]
    for _ in range(4):
        world.step()
        looks.append(gate.advance(world.now))
    assert all(look.action == "held" for look in looks[1:])
    # Inside the stage's time the hold says both; after it, the users alone hold it.
    assert looks[1].reason.startswith("1% for 1 of 2 hours; Held: waiting for users")
    assert looks[-1].reason.startswith("Held: waiting for users")
    assert world.fraction == 0.01


def test_a_fault_still_holds_and_is_read_again() -> None:
    world, gate, vitals = _gate(gaps=set(), faults={0})
    assert _step(world, gate, 3) == ["held", "held", "held"]
    assert gate.state is not None and gate.state.hours == []  # never skipped, however old
    assert vitals.fault_reads == 3
