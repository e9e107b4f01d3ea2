"""The simulated world: traffic, latency, restarts and provider faults of one scenario over time."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from release_actions.metrics.base import Track, TrafficSample
from release_actions.simulation.clock import Clock
from release_actions.simulation.draws import (
    binomial,
    lognormal,
    mixture_cdf,
    mixture_pdf,
    mixture_quantile,
    poisson,
)
from release_actions.simulation.scenario import Event, Latency, Profile, Scenario
from release_actions.targets.base import HealthSample

DEFAULT_SEED = 1


class Deployment(Protocol):
    """What the world needs of the simulated target: which version ran where, when."""

    def at(self, t: float) -> tuple[str | None, str | None, int]: ...


def mirror_share(deployment: Deployment, t: float) -> int:
    """The share of requests copied to the canary at ``t`` (shadow); 0 for targets that never mirror."""
    mirror_at = getattr(deployment, "mirror_at", None)
    return int(mirror_at(t)) if mirror_at is not None else 0


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
        mirrored = mirror_share(self.deployment, t)
        if mirrored:
            # Stable answers every request; the canary gets a copy of a share of them.
            return {
                Track.STABLE: (self.kind_of(stable), 1.0),
                Track.CANARY: (self.kind_of(canary), mirrored / 100),
            }
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
            density = mixture_pdf(exact, mixture)
            spread = math.sqrt(0.99 * 0.01 / requests) / density if density > 0 else 0.0
            p99 = max(1.0, rng.gauss(exact, spread))
            if slow_ms is not None:
                tail = 1 - mixture_cdf(slow_ms, mixture) if slow_ms > 0 else 1.0
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

    def user_requests_to_new(self, start: float, end: float) -> int:
        """Requests of real users answered by a version other than the good one, in [start, end).

        A mirrored copy is not a user's request (its answer is discarded), and a preview's
        smoke checks are not traffic at all: both count zero here.
        """
        total = 0
        for b in range(math.ceil(start - self.origin), math.ceil(end - self.origin)):
            t = self.origin + b + 0.5
            shares = self._shares(t)
            mirrored = mirror_share(self.deployment, t) > 0
            for track, (kind, _) in shares.items():
                if kind != "canary" or (mirrored and track is Track.CANARY):
                    continue
                total += self._bucket(track, b).requests
        return total

    def answer(self, url: str, attempt: int) -> tuple[int, float]:
        """A smoke request to the preview now: status and latency drawn from the new version."""
        elapsed = self.clock.now() - self.origin
        rng = random.Random(f"{self.seed}/smoke/{url}/{round(elapsed * 1000)}/{attempt}")  # noqa: S311
        failed = rng.random() < self.error_rate("canary", elapsed)
        lat = self.latency("canary", elapsed)
        mu, sigma = lognormal(lat.p50, lat.p99)
        return (503 if failed else 200), math.exp(rng.gauss(mu, sigma))

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
