"""The effective settings of one run: policy, release type, step preset and overrides, resolved once."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from release_actions.core.policy import (
    STEP_PRESETS,
    AnalysisPolicy,
    BlueGreenPolicy,
    Policy,
    RecoveryPolicy,
    RollbackTriggers,
    RolloutStep,
    ShadowPolicy,
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
    strategy: str | None = None
    """`canary`, `blue-green`, `shadow` or `rolling`; None: the release type's, else
    `deploy.strategy` (source §4.1)."""
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
    strategy: str
    """What the steps do (source §4.1): `canary` and `rolling` move weights, `blue-green`
    previews then switches, `shadow` mirrors."""
    strategy_source: str
    steps: tuple[RolloutStep, ...]
    steps_source: str
    steps_fixed: bool
    """True when a preset or the release type's canary rule chose the steps, so that no
    rehearsal scenario's own steps may replace them."""
    judge: str
    cadence_seconds: int
    analysis: AnalysisPolicy
    monitor: MonitorSettings
    blue_green: BlueGreenPolicy = field(repr=False, default_factory=lambda: _defaults().blue_green)
    shadow: ShadowPolicy = field(repr=False, default_factory=lambda: _defaults().shadow)
    skipped: str | None = None
    """Why this stage deploys nowhere: a real target with no staging entry is never staging."""
    gate: bool = False
    """One look per run, for steps longer than a job (a flag's scheduled gate): each run of the
    engine measures the current step once, from where the saved last look ended to now, then
    stops; the step's start, the judge's evidence, the triggers and the error streak are kept
    in the saved state, so the next run goes on with the step instead of restarting it.
    False: every step runs to its end within the run."""

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
            "strategy": self.strategy,
            "strategy_source": self.strategy_source,
            "steps": [step.model_dump() for step in self.steps],
            "steps_source": self.steps_source,
            "judge": self.judge,
            "cadence_seconds": self.cadence_seconds,
            "error_limit_seconds": self.error_limit_seconds,
            "error_limit_looks": self.error_limit(self.cadence_seconds),
            "skipped": self.skipped,
            "deploy": self.policy.deploy.model_dump(mode="json", exclude={"environments"}),
            "blue_green": self.blue_green.model_dump(mode="json"),
            "shadow": self.shadow.model_dump(mode="json"),
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


def _defaults() -> Any:
    from release_actions.core.policy import default_policy

    return default_policy().deploy


STRATEGY_NAMES = ("canary", "blue-green", "shadow", "rolling")


def _strategy(
    policy: Policy, type_name: str, overrides: Overrides, canary_rule: str
) -> tuple[str, str]:
    """The strategy and where it came from: the flag, the release type, else `deploy.strategy`.

    A high-traffic period wants a staged rollout (source §2.4): a blue-green switch is not
    one, so a strategy the policy chose falls back to the canary there, while one named
    explicitly is refused. `rolling` skips the canary, so a type that requires one refuses it.
    """
    rules = policy.release_type(type_name)
    if overrides.strategy is not None:
        name, source = overrides.strategy, f"--strategy {overrides.strategy}"
    elif rules.strategy is not None:
        name, source = rules.strategy, f"release type `{type_name}`: strategy {rules.strategy}"
    else:
        name, source = policy.deploy.strategy, f"deploy.strategy ({policy.deploy.strategy})"
    if name not in STRATEGY_NAMES:
        from release_actions.core.yamlpos import did_you_mean

        near = did_you_mean(name, STRATEGY_NAMES)
        raise PolicyError(
            f"Unknown strategy `{name}`: "
            + (f"{near} " if near else "")
            + f"Use one of {', '.join(f'`{n}`' for n in STRATEGY_NAMES)}."
        )
    if overrides.stage == "staging":
        return "rolling", "stage `staging` -> rolling"
    if overrides.staged and name == "blue-green":
        if overrides.strategy is not None:
            raise PolicyError(
                "A high-traffic period requires a staged rollout (source §2.4): a blue-green "
                "switch moves all traffic at once.",
                hint="Release as `canary`, or outside the period.",
            )
        return "canary", f"{source}; a high-traffic period requires a staged rollout -> canary"
    if name == "rolling" and ("required" if overrides.staged else canary_rule) == "required":
        raise PolicyError(
            f"Release type `{type_name}` requires a canary"
            + (" in a high-traffic period (source §2.4)" if overrides.staged else "")
            + ": the `rolling` strategy skips it.",
            hint="Use `canary` or `blue-green`, or release as a type whose canary is optional.",
        )
    return name, source


def strategy_steps(
    strategy: str, settings_bg: BlueGreenPolicy, shadow: ShadowPolicy, hold: int
) -> tuple[RolloutStep, ...]:
    """The steps of a blue-green or shadow release, from their policy sections.

    Blue-green: the preview (smoke checks, then its own metrics for `preview_seconds`), then
    the switch, held for `hold_seconds` (default: the watch period) with the §6.1 triggers.
    Shadow: one mirror step of `duration_seconds`, judged against stable on the same requests.
    """
    if strategy == "blue-green":
        return (
            RolloutStep(
                op="preview",
                weight=0,
                pause_seconds=settings_bg.preview_seconds,
                analysis=False,
            ),
            RolloutStep(
                op="switch",
                weight=100,
                pause_seconds=settings_bg.hold_seconds or hold,
                analysis=False,
            ),
        )
    return (
        RolloutStep(
            op="mirror",
            weight=shadow.mirror_percent,
            pause_seconds=shadow.duration_seconds,
            analysis=True,
        ),
    )


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
    strategy, strategy_source = _strategy(policy, type_name, o, rules.canary)
    steps, source, canary = _steps(policy, type_name, rules.canary, o)
    fixed = not source.startswith("canary.steps")
    target = o.target or policy.deploy.target
    from release_actions.targets.factory import strategy_refusal

    why = strategy_refusal(target, strategy, policy)
    if why is not None:
        raise PolicyError(
            f"The `{strategy}` strategy cannot run on the {target} target: {why}.",
            hint="Choose another strategy for this target (`deploy.strategy`, the release "
            "type's `strategy`, or `--strategy`).",
        )
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
    deploy = policy.deploy
    if strategy in ("blue-green", "shadow"):
        steps = strategy_steps(strategy, deploy.blue_green, deploy.shadow, duration)
        source, fixed = f"strategy {strategy}", True
    elif strategy == "rolling" and any(s.weight < 100 for s in steps):
        steps = tuple(RolloutStep(**s) for s in STEP_PRESETS["direct"])
        source, fixed = f"strategy rolling ({strategy_source}) -> direct", True
    elif strategy == "canary" and all(s.weight >= 100 for s in steps):
        strategy = "rolling"  # the type's canary rule skipped it: what runs is a rolling update
        strategy_source = source
    return Settings(
        policy=policy,
        release_type=type_name,
        stage=o.stage,
        environment=o.environment or ("staging" if o.stage == "staging" else rules.environment),
        target=target,
        provider=provider,
        canary=canary,
        strategy=strategy,
        strategy_source=strategy_source,
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
        blue_green=deploy.blue_green,
        shadow=deploy.shadow,
        skipped=skipped,
    )


def with_steps(settings: Settings, steps: list[RolloutStep], source: str) -> Settings:
    """The same settings with a scenario's own steps (the rehearsal simulator's)."""
    return replace(settings, steps=tuple(steps), steps_source=source)
