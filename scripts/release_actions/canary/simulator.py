"""Simulated traffic on a virtual clock, so a whole canary rollout rehearses in about a second."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from release_actions.core.policy import STEP_PRESETS, RolloutStep
from release_actions.core.yamlpos import validation_issues
from release_actions.errors import PolicyIssue, ScenarioError
from release_actions.metrics.base import Track, TrafficSample
from release_actions.targets.base import HealthSample

if TYPE_CHECKING:
    from release_actions.canary.engine import Event as Event_
    from release_actions.canary.report import RunReport
    from release_actions.core.policy import Policy
    from release_actions.core.yamlpos import Located

# A Tuesday at 10:00 JST, the source document's release slot (§2.4): rehearsals are
# reproducible to the second, and their records read like a real release's.
DEFAULT_EPOCH = datetime(2026, 1, 20, 1, 0, tzinfo=UTC).timestamp()
DEFAULT_SEED = 1
_Z99 = 2.3263478740408408  # standard normal quantile at 0.99


# -- clock -----------------------------------------------------------------------------


class VirtualClock:
    """A clock whose sleep only moves the hands: twenty minutes of rollout take no time."""

    def __init__(self, start: float = DEFAULT_EPOCH) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot sleep a negative time ({seconds})")
        self._now += seconds


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


# -- scenario file ---------------------------------------------------------------------


class _Model(BaseModel):
    # The scenario file is a public contract: a misspelt key is an error, never ignored.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Latency(_Model):
    p50: float = Field(gt=0, description="Median latency in ms")
    p99: float = Field(gt=0, description="99th percentile in ms; must exceed p50")

    @field_validator("p99")
    @classmethod
    def _above_median(cls, p99: float, info: Any) -> float:
        p50 = info.data.get("p50")
        if p50 is not None and p99 <= p50:
            raise ValueError(f"must be above `p50` ({p50}): latency is a lognormal per track")
        return p99


class Profile(_Model):
    error_rate: float = Field(
        default=0.0003, ge=0, le=1, description="Fraction of requests that fail"
    )
    latency_ms: Latency = Latency(p50=80, p99=300)


class Traffic(_Model):
    rps: float = Field(default=200, gt=0, description="Requests per second over both tracks")
    canary_weight_override: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Canary share in %; null takes the weight from the steps",
    )


class Event(_Model):
    """Something that happens ``at`` seconds after the rehearsal starts.

    A track event changes the version on that track (``canary`` is the new version wherever
    it runs, so a bad canary that was promoted stays bad); a provider event breaks the
    metrics provider for ``for`` seconds.
    """

    at: float = Field(ge=0)
    track: Literal["stable", "canary"] | None = None
    error_rate: float | None = Field(default=None, ge=0, le=1)
    latency_ms: Latency | None = None
    restarts: int | None = Field(default=None, ge=0)
    health_check_failures: int | None = Field(default=None, ge=0)
    ramp: float | None = Field(default=None, gt=0, description="Seconds of a linear slow burn")
    provider: Literal["down", "flaky"] | None = None
    for_: float | None = Field(default=None, alias="for", gt=0)
    probability: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _one_kind(self) -> Event:
        changes = [
            k
            for k in ("error_rate", "latency_ms", "restarts", "health_check_failures")
            if getattr(self, k) is not None
        ]
        if self.provider is not None:
            if self.track is not None or changes or self.ramp is not None:
                raise ValueError(
                    "a `provider` event takes only `at`, `for` and (when flaky) `probability`"
                )
            if self.for_ is None:
                raise ValueError("a `provider` event needs `for`: how many seconds it lasts")
            if self.provider == "flaky" and self.probability is None:
                raise ValueError("a `provider: flaky` event needs `probability` (0 to 1)")
            if self.provider == "down" and self.probability is not None:
                raise ValueError("`probability` belongs to `provider: flaky`, not `down`")
            return self
        if self.track is None:
            raise ValueError("an event needs `track` (stable or canary) or `provider`")
        if not changes:
            raise ValueError(
                "a track event needs one of `error_rate`, `latency_ms`, `restarts`, "
                "`health_check_failures`"
            )
        if self.for_ is not None or self.probability is not None:
            raise ValueError("`for` and `probability` belong to `provider` events")
        return self

    @property
    def until(self) -> float:
        return self.at + (self.for_ or 0.0)


class Scenario(_Model):
    description: str = ""
    traffic: Traffic = Traffic()
    steps: str | list[RolloutStep] | None = Field(
        default=None,
        description="A preset (`argo`, `workflow`) or a list of steps; null takes the policy's",
    )
    stable: Profile = Profile()
    canary: Profile = Profile()
    events: list[Event] = Field(default_factory=list)

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: str | list[RolloutStep] | None) -> str | list[RolloutStep] | None:
        if isinstance(value, str) and value not in STEP_PRESETS:
            raise ValueError(
                f"unknown preset {value!r}: use one of {', '.join(STEP_PRESETS)} or a list"
            )
        if isinstance(value, list):
            weights = [s.weight for s in value]
            if not weights or weights != sorted(weights) or weights[-1] != 100:
                raise ValueError("weights must rise and end at 100")
        return value

    def resolved_steps(self) -> list[RolloutStep] | None:
        if self.steps is None:
            return None
        if isinstance(self.steps, str):
            return [RolloutStep(**s) for s in STEP_PRESETS[self.steps]]
        return list(self.steps)


def builtin_scenarios() -> list[str]:
    folder = resources.files("release_actions.canary") / "scenarios"
    return sorted(p.name.removesuffix(".yml") for p in folder.iterdir() if p.name.endswith(".yml"))


def load_scenario(name: str | None = None, path: Path | None = None) -> tuple[str, Scenario]:
    """A built-in scenario by name, or a scenario file; errors name file, line and key."""
    from release_actions.core.yamlpos import load_yaml, load_yaml_file

    if path is not None:
        if not path.is_file():
            raise ScenarioError(
                f"The scenario file {path} does not exist.",
                hint=f"Check the path, or use a built-in: --scenario {' | '.join(builtin_scenarios())}.",
                file=str(path),
            )
        return path.stem, parse_scenario(load_yaml_file(path))
    name = name or "healthy"
    resource = resources.files("release_actions.canary") / "scenarios" / f"{name}.yml"
    if not resource.is_file():
        raise ScenarioError(
            f"There is no built-in scenario `{name}`.",
            hint=f"Use one of: {', '.join(builtin_scenarios())}, or --scenario-file PATH.",
        )
    return name, parse_scenario(load_yaml(resource.read_text("utf-8"), f"scenarios/{name}.yml"))


def parse_scenario(located: Located) -> Scenario:
    data = {} if located.data is None else located.data
    if not isinstance(data, dict):
        raise ScenarioError(
            f"{located.path} must be a mapping (traffic, steps, stable, canary, events)",
            [PolicyIssue(located.path, 1, "(document)", f"found {type(data).__name__}")],
        )
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        issues = validation_issues(exc, located, "check the spelling against the scenario format")
        raise ScenarioError(f"{located.path} is not a valid rehearsal scenario", issues) from None


# -- random counts without numpy ---------------------------------------------------------


def poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam < 30:
        # Knuth: exact, and cheap at the small means of a 1-second bucket.
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= rng.random()
            if p <= limit:
                return k
            k += 1
    return max(0, round(rng.gauss(lam, math.sqrt(lam))))


def binomial(rng: random.Random, n: int, p: float) -> int:
    if n <= 0 or p <= 0:
        return 0
    if p >= 1:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1 - p)
    if n < 64:
        return sum(rng.random() < p for _ in range(n))
    mean = n * p
    if mean * (1 - p) < 10:
        return min(n, poisson(rng, mean))
    return min(n, max(0, round(rng.gauss(mean, math.sqrt(mean * (1 - p))))))


# -- latency: a lognormal per track ------------------------------------------------------


def lognormal(p50: float, p99: float) -> tuple[float, float]:
    return math.log(p50), (math.log(p99) - math.log(p50)) / _Z99


def _mixture_cdf(x: float, parts: list[tuple[float, float, float]]) -> float:
    lx = math.log(x)
    return sum(w * 0.5 * (1 + math.erf((lx - mu) / (s * math.sqrt(2)))) for w, mu, s in parts)


def _mixture_pdf(x: float, parts: list[tuple[float, float, float]]) -> float:
    lx = math.log(x)
    return sum(
        w * math.exp(-((lx - mu) ** 2) / (2 * s * s)) / (x * s * math.sqrt(2 * math.pi))
        for w, mu, s in parts
    )


def mixture_quantile(q: float, parts: list[tuple[float, float, float]]) -> float:
    """Quantile of a weighted mixture of lognormals ``(weight, mu, sigma)``, by bisection."""
    lo = min(mu - 8 * s for _, mu, s in parts)
    hi = max(mu + 8 * s for _, mu, s in parts)
    for _ in range(60):
        mid = (lo + hi) / 2
        if _mixture_cdf(math.exp(mid), parts) < q:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2)


# -- the simulated world -----------------------------------------------------------------


class Deployment(Protocol):
    """What the world needs of the simulated target: which version ran where, when."""

    def at(self, t: float) -> tuple[str | None, str | None, int]: ...


@dataclass
class _Curve:
    """A value over time: a base, then steps and linear ramps at event times."""

    base: Any
    changes: list[tuple[float, float | None, Any]] = field(default_factory=list)

    def value(self, t: float, mix: Callable[[Any, Any, float], Any]) -> Any:
        current = self.base
        for at, ramp, target in self.changes:
            if t < at:
                break
            if ramp and t < at + ramp:
                return mix(current, target, (t - at) / ramp)
            current = target
        return current


def _lerp(a: float, b: float, f: float) -> float:
    return a + (b - a) * f


def _lerp_latency(a: Latency, b: Latency, f: float) -> Latency:
    return Latency(p50=_lerp(a.p50, b.p50, f), p99=_lerp(a.p99, b.p99, f))


@dataclass(frozen=True)
class _Bucket:
    requests: int
    errors: int
    mu: float
    sigma: float


class Simulation:
    """Traffic, latency, restarts and provider faults of one scenario, driven by a deployment.

    Counts are drawn per track per 1-second bucket from a random stream keyed by the seed,
    track and bucket, so the same past always reads the same however it is queried, as a
    real metrics store would. The ``good_version`` behaves as the scenario's ``stable``;
    every other version behaves as its ``canary``.
    """

    def __init__(
        self,
        scenario: Scenario,
        deployment: Deployment,
        clock: Clock,
        *,
        seed: int = DEFAULT_SEED,
        good_version: str,
        origin: float | None = None,
    ) -> None:
        self.scenario = scenario
        self.deployment = deployment
        self.clock = clock
        self.seed = seed
        self.good_version = good_version
        self.origin = clock.now() if origin is None else origin
        self._cache: dict[tuple[str, int], _Bucket] = {}
        events = sorted(scenario.events, key=lambda e: e.at)
        self._error: dict[str, _Curve] = {}
        self._latency: dict[str, _Curve] = {}
        self._counters: dict[tuple[str, str], list[Event]] = {}
        for kind in ("stable", "canary"):
            profile: Profile = getattr(scenario, kind)
            mine = [e for e in events if e.track == kind]
            self._error[kind] = _Curve(
                profile.error_rate,
                [(e.at, e.ramp, e.error_rate) for e in mine if e.error_rate is not None],
            )
            self._latency[kind] = _Curve(
                profile.latency_ms,
                [(e.at, e.ramp, e.latency_ms) for e in mine if e.latency_ms is not None],
            )
            for counter in ("restarts", "health_check_failures"):
                self._counters[kind, counter] = [e for e in mine if getattr(e, counter)]
        self.outages = [e for e in events if e.provider == "down"]
        self.flaky = [e for e in events if e.provider == "flaky"]

    # -- what runs where ---------------------------------------------------------------

    def kind_of(self, version: str | None) -> str:
        return "stable" if version == self.good_version else "canary"

    def _shares(self, t: float) -> dict[Track, tuple[str, float]]:
        stable, canary, weight = self.deployment.at(t)
        override = self.scenario.traffic.canary_weight_override
        if canary is None:
            return {Track.STABLE: (self.kind_of(stable), 1.0)}
        w = (override if override is not None else weight) / 100
        return {
            Track.STABLE: (self.kind_of(stable), 1 - w),
            Track.CANARY: (self.kind_of(canary), w),
        }

    def error_rate(self, kind: str, elapsed: float) -> float:
        return float(self._error[kind].value(elapsed, _lerp))

    def latency(self, kind: str, elapsed: float) -> Latency:
        value = self._latency[kind].value(elapsed, _lerp_latency)
        assert isinstance(value, Latency)
        return value

    # -- traffic -----------------------------------------------------------------------

    def _bucket(self, track: Track, b: int) -> _Bucket:
        key = (track.value, b)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        elapsed = b + 0.5
        share = self._shares(self.origin + elapsed).get(track)
        rng = random.Random(f"{self.seed}/{track.value}/{b}")  # noqa: S311 - simulated traffic, not secrets
        if share is None or share[1] <= 0:
            bucket = _Bucket(0, 0, 0.0, 1.0)
        else:
            kind, fraction = share
            requests = poisson(rng, self.scenario.traffic.rps * fraction)
            errors = binomial(rng, requests, self.error_rate(kind, elapsed))
            lat = self.latency(kind, elapsed)
            mu, sigma = lognormal(lat.p50, lat.p99)
            bucket = _Bucket(requests, errors, mu, sigma)
        self._cache[key] = bucket
        return bucket

    def sample(
        self, track: Track | None, start: float, end: float, *, slow_ms: float | None = None
    ) -> TrafficSample:
        """Counts over [start, end); zero requests come back as zero for the provider to judge."""
        tracks = [Track.STABLE, Track.CANARY] if track is None else [track]
        first = math.ceil(start - self.origin)
        last = math.ceil(end - self.origin)
        requests = errors = 0
        parts: dict[tuple[float, float], float] = {}
        for b in range(first, last):
            for tr in tracks:
                bucket = self._bucket(tr, b)
                requests += bucket.requests
                errors += bucket.errors
                if bucket.requests:
                    key = (bucket.mu, bucket.sigma)
                    parts[key] = parts.get(key, 0.0) + bucket.requests
        p99: float | None = None
        slow: float | None = None
        if requests:
            mixture = [(n / requests, mu, s) for (mu, s), n in parts.items()]
            rng = random.Random(f"{self.seed}/{track}/{start}/{end}/latency")  # noqa: S311
            exact = mixture_quantile(0.99, mixture)
            # A sample p99 wanders around the true one by sqrt(q(1-q)/n)/f(x_q).
            density = _mixture_pdf(exact, mixture)
            spread = math.sqrt(0.99 * 0.01 / requests) / density if density > 0 else 0.0
            p99 = max(1.0, rng.gauss(exact, spread))
            if slow_ms is not None:
                tail = 1 - _mixture_cdf(slow_ms, mixture) if slow_ms > 0 else 1.0
                slow = float(binomial(rng, requests, tail))
        label = "all" if track is None else track.value
        return TrafficSample(
            track=track,
            start=start,
            end=end,
            requests=float(requests),
            errors=float(errors),
            p99_ms=p99,
            slow=slow,
            queries={
                "requests": f"simulated: sum(requests{{track={label}}})[{start:.0f}, {end:.0f})",
                "errors": f"simulated: sum(requests{{track={label},status=5xx}})",
                "p99_ms": f"simulated: quantile(0.99, latency_ms{{track={label}}})",
            },
        )

    # -- provider faults ----------------------------------------------------------------

    def provider_fault(self, t: float) -> str | None:
        """Why the provider fails at ``t``, or None; flaky faults are drawn per moment."""
        elapsed = t - self.origin
        for e in self.outages:
            if e.at <= elapsed < e.until:
                return f"provider down from +{e.at:.0f}s for {e.for_:.0f}s (connection refused)"
        for e in self.flaky:
            if e.at <= elapsed < e.until:
                rng = random.Random(f"{self.seed}/flaky/{round(elapsed * 1000)}")  # noqa: S311
                if rng.random() < (e.probability or 0.0):
                    return "provider flaky: 503 Service Unavailable"
        return None

    # -- health -------------------------------------------------------------------------

    def _count(self, kind: str, counter: str, elapsed: float) -> int:
        total = 0
        for e in self._counters[kind, counter]:
            n = int(getattr(e, counter) or 0)
            if elapsed < e.at:
                continue
            if e.ramp and elapsed < e.at + e.ramp:
                total += math.floor(n * (elapsed - e.at) / e.ramp)
            else:
                total += n
        return total

    def health(self, track: Track | None) -> HealthSample:
        t = self.clock.now()
        elapsed = t - self.origin
        shares = self._shares(t)
        tracks = list(shares) if track is None else [track] if track in shares else []
        kinds = [shares[tr][0] for tr in tracks]
        restarts = sum(self._count(k, "restarts", elapsed) for k in kinds)
        failures = sum(self._count(k, "health_check_failures", elapsed) for k in kinds)
        return HealthSample(
            ready=bool(kinds),
            restarts=restarts,
            health_check_failures=failures,
            details={"tracks": [tr.value for tr in tracks], "kinds": kinds},
        )


# -- the whole rehearsal -----------------------------------------------------------------


@dataclass
class Rehearsal:
    """One rehearsal's world: use its target, provider and clock with the real engine."""

    scenario_name: str
    scenario: Scenario
    seed: int
    clock: VirtualClock
    simulation: Simulation
    target: Any  # targets.simulated.SimulatedTarget (imported lazily to keep layers apart)
    provider: Any  # metrics.simulated.SimulatedProvider


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
    from release_actions.metrics.simulated import SimulatedProvider
    from release_actions.targets.simulated import SimulatedTarget

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


def describe_events(events: Iterable[Event]) -> list[str]:
    out = []
    for e in events:
        if e.provider == "down":
            out.append(f"+{e.at:.0f}s provider down for {e.for_:.0f}s")
        elif e.provider == "flaky":
            out.append(f"+{e.at:.0f}s provider flaky (p={e.probability}) for {e.for_:.0f}s")
        else:
            bits = []
            if e.error_rate is not None:
                bits.append(f"error rate {e.error_rate:.2%}")
            if e.latency_ms is not None:
                bits.append(
                    f"latency p50 {e.latency_ms.p50:.0f} ms / p99 {e.latency_ms.p99:.0f} ms"
                )
            if e.restarts:
                bits.append(f"{e.restarts} restarts")
            if e.health_check_failures:
                bits.append(f"{e.health_check_failures} health-check failures")
            how = f" over {e.ramp:.0f}s" if e.ramp else ""
            out.append(f"+{e.at:.0f}s {e.track}: {', '.join(bits)}{how}")
    return out


def rehearse(
    scenario: Scenario,
    policy: Policy,
    *,
    name: str = "custom",
    judge: str | None = None,
    seed: int = DEFAULT_SEED,
    version: str = "v1.5.2",
    monitor: bool = True,
    on_event: Callable[[Event_], None] | None = None,
    state_file: Path | None = None,
) -> RunReport:
    """Run the real engine on the simulated target and provider, and the monitor after it."""
    from release_actions.canary.engine import CanaryEngine, Decision, DeployMonitor
    from release_actions.canary.judge import make_judge
    from release_actions.canary.report import RunReport

    world = build(scenario, name=name, seed=seed, state_file=state_file)
    the_judge = make_judge(policy.canary.analysis, judge)
    engine = CanaryEngine(
        world.target,
        world.provider,
        the_judge,
        policy,
        world.clock,
        steps=scenario.resolved_steps(),
        on_event=on_event,
    )
    outcome = engine.run(version)
    watched = None
    if monitor and outcome.decision is Decision.PROMOTED and not outcome.resumed:
        watched = DeployMonitor(
            world.target,
            world.provider,
            policy,
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
