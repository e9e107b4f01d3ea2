"""The effective settings of one run: policy, release type, step preset and overrides, resolved once."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from release_actions.core.policy import (
    STEP_PRESETS,
    AnalysisPolicy,
    Policy,
    RecoveryPolicy,
    RollbackTriggers,
    RolloutStep,
    Trigger,
)
from release_actions.errors import PolicyError

CanaryRequest = Literal["policy", "auto", "always"]
"""How the release type's `canary` rule is read.

``policy``: `required` and `optional` run the canary, `skip` goes straight to 100 %.
``auto``: only `required` runs it (a hotfix skips an optional canary, source §7.1).
``always``: the canary runs whatever the type says.
A high-traffic period makes the canary required in every case (source §2.4).
"""

CANARY_REQUESTS: tuple[str, ...] = ("policy", "auto", "always")

Stage = Literal["production", "staging"]
STAGES: tuple[str, ...] = ("production", "staging")

Use = Literal["canary", "monitor", "rollback", "validate", "rehearse"]
USES: tuple[str, ...] = ("canary", "monitor", "rollback", "validate", "rehearse")

# Which SDK extra a target or a provider needs (pyproject.toml's optional dependencies).
_TARGET_EXTRAS = {"kubernetes": "kubernetes", "argo": "kubernetes", "cloudrun": "cloudrun"}
_PROVIDER_EXTRAS = {"datadog": "datadog"}


@dataclass(frozen=True)
class Overrides:
    """What the user gave explicitly, by flag or action input; None means "the policy's"."""

    release_type: str | None = None
    """None: no type was named; the `regular` type's environment and canary rule, and the
    monitor section's own watch. A named type brings its watch length and alert threshold."""
    target: str | None = None
    provider: str | None = None
    stage: Stage = "production"
    """`staging` goes straight to 100 % in the `staging` environment (source §3.2: staging
    deploys, then smoke and E2E tests) on `deploy.environments.staging`; the canary belongs
    to production, on `deploy.environments.production` or else `deploy` itself."""
    steps: str | None = None
    canary: CanaryRequest = "policy"
    staged: bool = False
    judge: str | None = None
    environment: str | None = None
    monitor_seconds: int | None = None
    monitor_interval_seconds: int | None = None
    error_rate_threshold_percent: float | None = None


@dataclass(frozen=True)
class MonitorSettings:
    """The post-release watch (source §6.3): how long, how often, what fires, what recovers."""

    duration_seconds: int
    interval_seconds: int
    triggers: RollbackTriggers
    recovery: RecoveryPolicy


@dataclass(frozen=True)
class Settings:
    """The one effective configuration that the engine, the monitor and the triggers take whole.

    Nothing downstream re-reads the policy for a value that is here, and nothing here has a
    fallback left to resolve: every field is the answer.
    """

    policy: Policy = field(repr=False)
    release_type: str
    stage: str
    environment: str
    target: str
    provider: str
    canary: str
    steps: tuple[RolloutStep, ...]
    steps_source: str
    steps_fixed: bool
    """True when a preset or the release type's canary rule chose the steps, so that no
    rehearsal scenario's own steps may replace them."""
    judge: str
    cadence_seconds: int
    analysis: AnalysisPolicy
    monitor: MonitorSettings
    skipped: str | None = None
    """Why this stage deploys nowhere: a real target with no staging entry is never staging."""

    @property
    def error_limit_seconds(self) -> int:
        """The outage a rollout or a watch tolerates: Argo's count at the §4.4 interval."""
        return self.analysis.consecutive_error_limit * self.analysis.interval_seconds

    def error_limit(self, cadence: float) -> int:
        """Measurement errors in a row that make an `error` when looking every ``cadence`` s.

        The limit is a length of outage (Argo's count at the §4.4 interval, 4 minutes), so
        looking more often never turns a 40-second provider hiccup into a rollback.
        """
        return self.analysis.error_limit(int(cadence))

    def extras(self, use: Use) -> list[str]:
        """The package extras a step that does ``use`` needs, from these same settings.

        An action input left empty and the policy's value give the same install, because
        both arrive here as the resolved target and provider.
        """
        out: list[str] = []
        if use in ("canary", "monitor", "rollback"):
            out += ["github", "slack"]
            if self.target in _TARGET_EXTRAS:
                out.append(_TARGET_EXTRAS[self.target])
            if self.provider in _PROVIDER_EXTRAS:
                out.append(_PROVIDER_EXTRAS[self.provider])
        if use in ("validate", "rehearse") and self.policy.calendar.holidays.country:
            out.append("holidays")
        return sorted(set(out))

    def to_dict(self) -> dict[str, Any]:
        return {
            "release_type": self.release_type,
            "stage": self.stage,
            "environment": self.environment,
            "target": self.target,
            "provider": self.provider,
            "canary": self.canary,
            "steps": [step.model_dump() for step in self.steps],
            "steps_source": self.steps_source,
            "judge": self.judge,
            "cadence_seconds": self.cadence_seconds,
            "error_limit_seconds": self.error_limit_seconds,
            "error_limit_looks": self.error_limit(self.cadence_seconds),
            "skipped": self.skipped,
            "deploy": self.policy.deploy.model_dump(mode="json", exclude={"environments"}),
            "analysis": self.analysis.model_dump(mode="json"),
            "monitor": {
                "duration_seconds": self.monitor.duration_seconds,
                "interval_seconds": self.monitor.interval_seconds,
                "error_limit_looks": self.error_limit(self.monitor.interval_seconds),
                "triggers": self.monitor.triggers.model_dump(mode="json"),
                "recovery": self.monitor.recovery.model_dump(mode="json"),
            },
            "extras": {use: self.extras(use) for use in USES},  # type: ignore[arg-type]
        }


def _steps(
    policy: Policy, type_name: str, rule: str, overrides: Overrides
) -> tuple[tuple[RolloutStep, ...], str, str]:
    """The rollout steps, where they came from, and the canary rule that applied."""
    canary = "required" if overrides.staged else rule
    if overrides.stage == "staging":
        steps = [RolloutStep(**s) for s in STEP_PRESETS["direct"]]
        return tuple(steps), "stage `staging` -> direct", canary
    if overrides.steps is not None:
        if overrides.steps not in STEP_PRESETS:
            from release_actions.core.yamlpos import did_you_mean

            near = did_you_mean(overrides.steps, STEP_PRESETS)
            raise PolicyError(
                f"Unknown step preset `{overrides.steps}`: "
                + (f"{near} " if near else "")
                + f"Use one of {', '.join(f'`{p}`' for p in sorted(STEP_PRESETS))}."
            )
        if overrides.steps == "direct" and canary == "required":
            raise PolicyError(
                f"Release type `{type_name}` requires a canary"
                + (" in a high-traffic period (source §2.4)" if overrides.staged else "")
                + ": the `direct` steps skip it.",
                hint="Leave `steps` empty, or release as a type whose canary is optional.",
            )
        steps = [RolloutStep(**s) for s in STEP_PRESETS[overrides.steps]]
        return tuple(steps), f"--steps {overrides.steps}", canary
    skip = canary == "skip" or (canary == "optional" and overrides.canary == "auto")
    if overrides.canary == "always":
        skip = False
    if skip:
        steps = [RolloutStep(**s) for s in STEP_PRESETS["direct"]]
        why = f"release type `{type_name}`: canary {canary}"
        return tuple(steps), f"{why} (canary: {overrides.canary}) -> direct", canary
    preset = policy.canary.steps
    source = f"canary.steps ({preset})" if isinstance(preset, str) else "canary.steps"
    return tuple(policy.canary.resolved_steps()), source, canary


def resolve(policy: Policy, overrides: Overrides | None = None) -> Settings:
    """Resolve the policy, the release type, a step preset and explicit overrides, once."""
    o = overrides or Overrides()
    skipped = None
    own = policy.for_environment(o.stage)
    if own is None and o.stage == "staging" and (o.target or policy.deploy.target) != "simulated":
        skipped = (
            "the policy names no staging target (`deploy.environments.staging`), and the "
            "staging deploy never goes to production's; add one to deploy staging"
        )
    policy = own or policy
    type_name = o.release_type or "regular"
    rules = policy.release_type(type_name)
    analysis = policy.canary.analysis
    judge = o.judge or analysis.judge
    if judge not in ("sequential", "threshold"):
        from release_actions.core.yamlpos import did_you_mean

        near = did_you_mean(judge, ("sequential", "threshold"))
        raise PolicyError(
            f"Unknown judge `{judge}`: "
            + (f"{near} " if near else "")
            + "Use `sequential` or `threshold`.",
            hint="Set `canary.analysis.judge` in the release policy, or pass a valid `--judge`.",
        )
    if judge != analysis.judge:
        analysis = analysis.model_copy(update={"judge": judge})
    steps, source, canary = _steps(policy, type_name, rules.canary, o)
    fixed = not source.startswith("canary.steps")
    target = o.target or policy.deploy.target
    provider = o.provider or policy.metrics.provider
    mon = policy.monitor
    triggers = mon.triggers
    named = o.release_type is not None
    threshold = o.error_rate_threshold_percent or (rules.alert_threshold_percent if named else None)
    if threshold is not None:
        error_rate = Trigger(
            threshold=threshold, window_seconds=triggers.error_rate_percent.window_seconds
        )
        triggers = triggers.model_copy(update={"error_rate_percent": error_rate})
    # A named type brings its own watch (hotfix: 30 minutes, source §7.3); else §6.3's.
    duration = o.monitor_seconds or (rules.monitor_seconds if named else mon.duration_seconds)
    return Settings(
        policy=policy,
        release_type=type_name,
        stage=o.stage,
        environment=o.environment or ("staging" if o.stage == "staging" else rules.environment),
        target=target,
        provider=provider,
        canary=canary,
        steps=steps,
        steps_source=source,
        steps_fixed=fixed,
        judge=judge,
        cadence_seconds=analysis.cadence(judge),
        analysis=analysis,
        monitor=MonitorSettings(
            duration_seconds=duration,
            interval_seconds=o.monitor_interval_seconds or mon.interval_seconds,
            triggers=triggers,
            recovery=mon.recovery,
        ),
        skipped=skipped,
    )


def with_steps(settings: Settings, steps: list[RolloutStep], source: str) -> Settings:
    """The same settings with a scenario's own steps (the rehearsal simulator's)."""
    return replace(settings, steps=tuple(steps), steps_source=source)
