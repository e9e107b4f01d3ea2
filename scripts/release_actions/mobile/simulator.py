"""A simulated store, users and reviews on a virtual clock: a 6-day store rollout in a second."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from release_actions.errors import NoDataError, PolicyIssue, ScenarioError
from release_actions.mobile.base import (
    Change,
    Platform,
    Review,
    ReviewSource,
    StoreRelease,
    StoreState,
    StoreStatus,
    Vitals,
    VitalsSource,
)
from release_actions.mobile.metrics import NotSimulated
from release_actions.mobile.policy import APPLE_STAGES, STAGE_PRESETS, MobilePolicy, MobileStage
from release_actions.mobile.rollout import HOUR, Look, MemoryStateStore, MobileGate
from release_actions.simulation.clock import DEFAULT_EPOCH
from release_actions.simulation.draws import binomial, poisson

if TYPE_CHECKING:
    from release_actions.core.yamlpos import Located

NEW_CODE = "1052"
PREVIOUS_CODE = "1051"
REVIEWS_PER_USER_DAY = 0.002
"""About one daily user in 500 writes a review on a given day."""
BENIGN = ("Great app", "Works well", "Useful for trips", "使いやすい", "OK")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VersionProfile(_Model):
    crash_rate: float = Field(
        default=0.004, ge=0, le=1, description="Share of daily users who crash"
    )
    anr_rate: float = Field(
        default=0.0008, ge=0, le=1, description="Share of daily users with an ANR"
    )
    rating: float = Field(default=4.5, ge=1, le=5, description="Mean stars of its reviews")


class ReviewBurst(_Model):
    stars: int = Field(ge=1, le=5)
    count: int = Field(ge=1, le=100_000)
    text: str = ""


class MobileEvent(_Model):
    """At ``at_hours``: a version's rates change (``track``), or reviews of the new version arrive."""

    at_hours: float = Field(ge=0)
    track: Literal["new", "previous"] | None = None
    crash_rate: float | None = Field(default=None, ge=0, le=1)
    anr_rate: float | None = Field(default=None, ge=0, le=1)
    rating: float | None = Field(default=None, ge=1, le=5)
    reviews: ReviewBurst | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> MobileEvent:
        changes = [k for k in ("crash_rate", "anr_rate", "rating") if getattr(self, k) is not None]
        if self.reviews is not None:
            if self.track is not None or changes:
                raise ValueError("a `reviews` event takes only `at_hours` and `reviews`")
            return self
        if self.track is None:
            raise ValueError("an event needs `track` (new or previous) or `reviews`")
        if not changes:
            raise ValueError("a track event needs `crash_rate`, `anr_rate` or `rating`")
        return self


class MobileScenario(_Model):
    description: str = ""
    platform: Platform = Platform.ANDROID
    dau: int = Field(default=200_000, ge=1, description="Daily active users of the app")
    update_per_day: float = Field(
        default=0.35,
        gt=0,
        le=1,
        description="Share of users in the rollout who install the new version each day",
    )
    previous: VersionProfile = VersionProfile()
    new: VersionProfile = VersionProfile()
    stages: str | list[MobileStage] | None = Field(
        default=None, description="A preset (`play`, `apple`) or a list; null: the policy's"
    )
    events: list[MobileEvent] = Field(default_factory=list)
    hours: int | None = Field(
        default=None, ge=1, le=24 * 60, description="Hours to run; null: the stages' plus 3 days"
    )

    @model_validator(mode="after")
    def _stages(self) -> MobileScenario:
        if isinstance(self.stages, str) and self.stages not in STAGE_PRESETS:
            raise ValueError(
                f"unknown stage preset {self.stages!r}: use one of {', '.join(STAGE_PRESETS)}"
            )
        if isinstance(self.stages, list):
            fractions = [s.fraction for s in self.stages]
            if not fractions or fractions != sorted(set(fractions)) or fractions[-1] != 1:
                raise ValueError("`stages`: fractions must rise and end at 1")
        return self

    def resolved_stages(self, policy: MobilePolicy) -> list[MobileStage]:
        if self.platform is Platform.IOS:
            return [MobileStage(fraction=f, min_hours=h) for f, h in APPLE_STAGES]
        if isinstance(self.stages, str):
            return [MobileStage(fraction=f, min_hours=h) for f, h in STAGE_PRESETS[self.stages]]
        if isinstance(self.stages, list):
            return list(self.stages)
        return policy.stages_for(self.platform)


# -- built-in scenarios, kept as YAML texts so they ship inside the package -------------

BUILTIN: dict[str, str] = {
    "healthy": """\
description: The new version is as good as the previous one; the rollout completes in six days.
dau: 200000
previous: {crash_rate: 0.004, anr_rate: 0.0008, rating: 4.5}
new: {crash_rate: 0.004, anr_rate: 0.0008, rating: 4.5}
""",
    "crash-spike": """\
description: One user in twenty crashes on the new version from the first hour; halted at 1 %.
dau: 200000
previous: {crash_rate: 0.004, anr_rate: 0.0008, rating: 4.5}
new: {crash_rate: 0.05, anr_rate: 0.0008, rating: 4.5}
""",
    "anr-regression": """\
description: The new version freezes (ANR) four times as often; halted by the 20 % stage.
dau: 200000
previous: {crash_rate: 0.004, anr_rate: 0.0008, rating: 4.5}
new: {crash_rate: 0.004, anr_rate: 0.0032, rating: 4.5}
""",
    "subtle-crash-regression": """\
description: Crashes double inside the source's band (0.3 % to 0.6 %, crash-free 99.4 %); the
  source's absolute rule cannot tell it from noise; the comparison with the previous version
  halts it by the 20 % stage.
dau: 500000
previous: {crash_rate: 0.003, anr_rate: 0.0008, rating: 4.5}
new: {crash_rate: 0.006, anr_rate: 0.0008, rating: 4.5}
""",
    "bad-reviews": """\
description: Vitals are fine, but on day 2 twelve one-star reviews report crashes on launch.
dau: 200000
previous: {crash_rate: 0.004, anr_rate: 0.0008, rating: 4.5}
new: {crash_rate: 0.004, anr_rate: 0.0008, rating: 4.5}
events:
  - {at_hours: 30, reviews: {stars: 1, count: 12, text: "crashes on launch"}}
""",
    "small-app": """\
description: A healthy app of 3,000 daily users; at 1 % a single crash is a 95 % crash-free
  rate, and the rollout still completes.
dau: 3000
previous: {crash_rate: 0.005, anr_rate: 0.001, rating: 4.4}
new: {crash_rate: 0.005, anr_rate: 0.001, rating: 4.4}
""",
    "ios-healthy": """\
description: A healthy iOS release on Apple's 7-day phased release.
platform: ios
dau: 100000
previous: {crash_rate: 0.003, rating: 4.6}
new: {crash_rate: 0.003, rating: 4.6}
""",
    "ios-crash-spike": """\
description: An iOS release that crashes for 3 % of its users from day 2; the phased release is paused.
platform: ios
dau: 100000
previous: {crash_rate: 0.003, rating: 4.6}
new: {crash_rate: 0.003, rating: 4.6}
events:
  - {at_hours: 30, track: new, crash_rate: 0.03}
""",
}


def builtin_mobile_scenarios() -> list[str]:
    return list(BUILTIN)


def load_mobile_scenario(name: str | None = None, path: Any = None) -> tuple[str, MobileScenario]:
    """A built-in scenario by name, or a scenario file; errors name file, line and field."""
    from pathlib import Path

    from release_actions.core.yamlpos import did_you_mean, load_yaml, load_yaml_file

    if name is not None and path is not None:
        raise ScenarioError("Only one of `--scenario` or `--scenario-file` can be set.")
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ScenarioError(
                f"The scenario file {path} does not exist.",
                hint="Check the path, or use a built-in: --mobile --scenario "
                + " | ".join(BUILTIN),
                file=str(path),
            )
        return path.stem, parse_mobile_scenario(load_yaml_file(path))
    name = name or "healthy"
    if name not in BUILTIN:
        near = did_you_mean(name, list(BUILTIN))
        raise ScenarioError(
            f"There is no built-in mobile scenario `{name}`." + (f" {near}" if near else ""),
            hint=f"Use one of: {', '.join(BUILTIN)}, or --scenario-file PATH.",
        )
    return name, parse_mobile_scenario(load_yaml(BUILTIN[name], f"mobile-scenarios/{name}.yml"))


def parse_mobile_scenario(located: Located) -> MobileScenario:
    from release_actions.core.yamlpos import validation_issues

    data = {} if located.data is None else located.data
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{located.path} must be a mapping (platform, dau, previous, new, events)",
            [PolicyIssue(located.path, 1, "(document)", f"found {type(data).__name__}")],
        )
    try:
        return MobileScenario.model_validate(data)
    except ValidationError as exc:
        issues = validation_issues(
            exc,
            located,
            "check the spelling against the mobile scenario format",
            model=MobileScenario,
        )
        raise ScenarioError(
            f"{located.path} is not a valid mobile rehearsal scenario", issues
        ) from None


# -- the simulated world -----------------------------------------------------------------


@dataclass
class _Hour:
    users: int
    crashed: int
    anr: int


@dataclass
class MobileWorld:
    """Users, the store and reviews, one virtual hour at a time.

    Each daily user counts once a day, at a random hour: an hour's users are user-days,
    so a day's crash-free rate is the share of daily users who did not crash, as the
    stores report it. A user in the rollout's fraction installs the new version with
    probability ``update_per_day`` per day, and keeps it.
    """

    scenario: MobileScenario
    seed: int
    start: float = DEFAULT_EPOCH
    rng: random.Random = field(init=False)
    hour: int = 0
    installed: int = 0
    fraction: float = 0.0
    state: StoreState = StoreState.DRAFT
    paused_since: float | None = None
    apple_hours: int = 0
    log: dict[tuple[str, int], _Hour] = field(default_factory=dict)
    review_log: list[Review] = field(default_factory=list)
    installs_by_hour: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # noqa: S311 - simulated users, not secrets
        self.profiles = {"new": self.scenario.new, "previous": self.scenario.previous}
        self.rates = {
            side: [p.crash_rate, p.anr_rate, p.rating] for side, p in self.profiles.items()
        }
        self.events = sorted(self.scenario.events, key=lambda e: e.at_hours)
        self._next_event = 0
        self.ios = self.scenario.platform is Platform.IOS

    @property
    def now(self) -> float:
        return self.start + self.hour * HOUR

    def eligible(self) -> int:
        if self.state is StoreState.COMPLETED:
            return self.scenario.dau
        if self.state is StoreState.IN_PROGRESS:
            return math.floor(self.scenario.dau * self.fraction)
        return self.installed  # draft or halted: no new installs

    def step(self) -> None:
        """Simulate the hour [now, now + 1 h) and move the clock to its end."""
        rng = self.rng
        h = self.hour
        pending: list[MobileEvent] = []
        while self._next_event < len(self.events) and self.events[self._next_event].at_hours <= h:
            pending.append(self.events[self._next_event])
            self._next_event += 1
        for e in pending:
            if e.track is not None:
                changed = self.rates[e.track]
                for i, key in enumerate(("crash_rate", "anr_rate", "rating")):
                    value = getattr(e, key)
                    if value is not None:
                        changed[i] = value
        if self.ios and self.state is StoreState.IN_PROGRESS:
            self.apple_hours += 1
            day = self.apple_hours // 24
            if day >= len(APPLE_STAGES) - 1:
                self.state, self.fraction = StoreState.COMPLETED, 1.0
            else:
                self.fraction = APPLE_STAGES[day][0]
        waiting = max(0, self.eligible() - self.installed)
        q = 1 - (1 - self.scenario.update_per_day) ** (1 / 24)
        self.installed += binomial(rng, waiting, q)
        self.installs_by_hour.append(self.installed)
        counts = {"new": self.installed, "previous": self.scenario.dau - self.installed}
        for side, population in counts.items():
            crash, anr, rating = self.rates[side]
            users = binomial(rng, population, 1 / 24)
            crashed = binomial(rng, users, crash)
            anrs = 0 if self.ios else binomial(rng, users - crashed, anr)
            self.log[(side, h)] = _Hour(users, crashed, anrs)
            for _ in range(poisson(rng, users * REVIEWS_PER_USER_DAY)):
                self.review_log.append(
                    Review(
                        NEW_CODE if side == "new" else PREVIOUS_CODE,
                        self._stars(rating),
                        rng.choice(BENIGN),
                        self.now + rng.random() * HOUR,
                    )
                )
        for e in pending:
            if e.reviews is not None:
                for i in range(e.reviews.count):
                    self.review_log.append(
                        Review(
                            NEW_CODE,
                            e.reviews.stars,
                            e.reviews.text,
                            self.now + (i + 0.5) * HOUR / (e.reviews.count + 1),
                        )
                    )
        self.hour += 1

    def _stars(self, rating: float) -> int:
        # A fifth of reviewers rate at random (mean 3); the rest around the version's rating,
        # two neighbouring star counts mixed to give its mean exactly.
        if self.rng.random() < 0.2:
            return self.rng.randint(1, 5)
        mean = min(5.0, max(1.0, (rating - 0.6) / 0.8))
        low = math.floor(mean)
        return min(5, low + (1 if self.rng.random() < mean - low else 0))

    def version_hours(self, side: str, start: float, end: float) -> list[_Hour]:
        first = round((start - self.start) / HOUR)
        last = round((end - self.start) / HOUR)
        return [self.log[(side, h)] for h in range(first, last) if (side, h) in self.log]


class SimulatedStore(StoreRelease):
    name = "simulated"

    def __init__(self, world: MobileWorld) -> None:
        self.world = world
        self.platform = world.scenario.platform

    def status(self) -> StoreStatus:
        w = self.world
        return StoreStatus(
            version_code=NEW_CODE,
            version_name="1.5.2",
            state=w.state,
            fraction=None if w.state is StoreState.COMPLETED else w.fraction,
            previous_version_code=PREVIOUS_CODE,
            previous_version_name="1.5.1",
            day=(w.apple_hours // 24 + 1) if self.platform is Platform.IOS else None,
            paused_since=w.paused_since,
            detail={"installs": w.installed},
        )

    def set_fraction(self, fraction: float) -> Change:
        w = self.world
        if self.platform is Platform.IOS:
            # App Store Connect has no user fraction to set: starting is all it takes.
            if w.state is StoreState.DRAFT:
                w.state, w.fraction = StoreState.IN_PROGRESS, APPLE_STAGES[0][0]
                return Change(True, "phased release started")
            return Change(False, "Apple runs the phased release's schedule")
        if w.state is StoreState.IN_PROGRESS and w.fraction == fraction:
            return Change(False, f"already rolling out to {fraction:.0%}")
        w.state, w.fraction = StoreState.IN_PROGRESS, fraction
        return Change(True, f"rolling out to {fraction:.0%}")

    def halt(self) -> Change:
        w = self.world
        if w.state is StoreState.HALTED:
            return Change(False, "already halted")
        w.state = StoreState.HALTED
        w.paused_since = w.now if self.platform is Platform.IOS else None
        return Change(
            True,
            "halted: no new installs"
            if self.platform is Platform.ANDROID
            else "phased release paused",
        )

    def resume(self) -> Change:
        w = self.world
        if w.state is not StoreState.HALTED:
            return Change(False, "not halted")
        w.state, w.paused_since = StoreState.IN_PROGRESS, None
        return Change(True, "resumed")

    def complete(self) -> Change:
        w = self.world
        if w.state is StoreState.COMPLETED:
            return Change(False, "already released to everyone")
        w.state, w.fraction = StoreState.COMPLETED, 1.0
        return Change(True, "released to everyone")


class SimulatedVitals(VitalsSource):
    name = "simulated"

    def __init__(self, world: MobileWorld) -> None:
        self.world = world

    def vitals(self, version_code: str, start: float, end: float) -> Vitals:
        side = {NEW_CODE: "new", PREVIOUS_CODE: "previous"}.get(version_code)
        if side is None:
            raise NoDataError(f"no version {version_code} in the simulated store")
        hours = self.world.version_hours(side, start, end)
        return Vitals(
            version_code,
            start,
            end,
            sum(h.users for h in hours),
            sum(h.crashed for h in hours),
            None if self.world.ios else sum(h.anr for h in hours),
        )

    def is_online(self) -> bool:
        return True

    def freshness(self, now: float) -> float:
        # The simulated world counts each hour as it passes: nothing arrives late.
        return now


class SimulatedReviews(ReviewSource):
    name = "simulated"

    def __init__(self, world: MobileWorld) -> None:
        self.world = world

    def reviews(self, since: float) -> list[Review]:
        return sorted(
            (r for r in self.world.review_log if r.at >= since), key=lambda r: r.at, reverse=True
        )


@dataclass
class SimulatedRollout:
    """A rollout's end on the simulator, with the world's own figures."""

    decision: str  # completed, halted, held
    gate: MobileGate
    world: MobileWorld
    looks: list[Look]
    halted_at_hours: float | None
    halted_at_fraction: float | None
    exposed_users: int
    hours: int


def planned_hours(stages: list[MobileStage]) -> float:
    return sum(s.min_hours for s in stages)


def simulate(
    scenario: MobileScenario,
    policy: MobilePolicy,
    *,
    seed: int,
    judge: str | None = None,
    on_look: Callable[[Look], None] | None = None,
    world: MobileWorld | None = None,
) -> SimulatedRollout:
    """Run the gate every virtual hour until the rollout completes or halts, or time is up."""
    stages = scenario.resolved_stages(policy)
    if stages != policy.stages_for(scenario.platform):
        policy = policy.model_copy(update={"stages": {**policy.stages, scenario.platform: stages}})
    world = world or MobileWorld(scenario, seed)
    gate = MobileGate(
        SimulatedStore(world),
        SimulatedVitals(world),
        SimulatedReviews(world),
        policy,
        MemoryStateStore(),
        judge=judge,
        on_look=on_look,
        metrics=NotSimulated(policy),
    )
    horizon = scenario.hours or int(planned_hours(stages)) + 72
    looks = [gate.advance(world.now)]
    decision = "held"
    while world.hour < horizon:
        world.step()
        look = gate.advance(world.now)
        looks.append(look)
        if look.action in ("halted", "completed"):
            decision = look.action
            break
    state = gate.state
    assert state is not None
    halted = decision == "halted"
    return SimulatedRollout(
        decision,
        gate,
        world,
        looks,
        (state.halted_at - world.start) / HOUR if halted and state.halted_at else None,
        gate.stages[state.stage_index].fraction if halted else None,
        world.installed,
        world.hour,
    )
