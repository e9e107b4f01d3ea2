"""Rehearsal scenarios: the file format, the built-in ones, and loading with file, line and key errors."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from release_actions.core.policy import STEP_PRESETS, RolloutStep
from release_actions.core.yamlpos import validation_issues
from release_actions.errors import PolicyIssue, ScenarioError

if TYPE_CHECKING:
    from release_actions.core.yamlpos import Located


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
    folder = resources.files("release_actions.simulation") / "scenarios"
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
    resource = resources.files("release_actions.simulation") / "scenarios" / f"{name}.yml"
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
        issues = validation_issues(
            exc, located, "check the spelling against the scenario format", model=Scenario
        )
        raise ScenarioError(f"{located.path} is not a valid rehearsal scenario", issues) from None


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
