"""Pre-flight before a rollout moves traffic: every check that a canary depends on, named."""

from __future__ import annotations

from dataclasses import dataclass

from release_actions.app.flags import kill_switch
from release_actions.app.session import Session
from release_actions.app.world import World
from release_actions.core.settings import Settings
from release_actions.errors import IntegrationError, ReleaseActionsError
from release_actions.metrics.base import Track

# How far back the stable track must have traffic: a judge with no stable traffic has
# nothing to compare the canary with.
STABLE_LOOKBACK_SECONDS = 300


@dataclass(frozen=True)
class Failed:
    check: str
    reason: str
    hint: str


def preflight(
    session: Session,
    settings: Settings,
    world: World,
    version: str,
    *,
    kill_switch: bool = True,
) -> None:
    """Raise before the first weight change when the rollout could not be judged or undone.

    A wrong metrics URL or key, a service with no stable traffic, or a kill-switch flag that
    does not exist would otherwise surface only after production traffic moved: minutes of
    errors, then a rollback of a release nobody judged.
    """
    failed = (
        _strategy(settings, world)
        or _metrics(settings, world)
        # A rollout whose rollback throws no kill switch (a flag's own) needs none to exist.
        or (_flags(session, settings) if kill_switch else None)
    )
    if failed is None:
        return
    raise IntegrationError(
        f"Pre-flight check `{failed.check}` failed: {failed.reason}; the rollout of {version} "
        "did not start and nothing was changed.",
        hint=failed.hint,
    )


def _strategy(settings: Settings, world: World) -> Failed | None:
    """The target can run the strategy as it stands (a Service to switch, a mesh to mirror)."""
    why = world.target.refusal(settings.strategy)
    if why is None:
        return None
    return Failed(
        "strategy",
        f"the {settings.target} target cannot run `{settings.strategy}`: {why}",
        "Fix the target (or the policy's `deploy` section), or choose another strategy.",
    )


def _metrics(settings: Settings, world: World) -> Failed | None:
    provider = world.provider
    if not provider.is_online():
        return Failed(
            "metrics",
            f"the metrics provider `{provider.name}` does not answer its health check",
            "Check the provider's URL or site and its credentials (PROMETHEUS_URL, "
            "DD_API_KEY, DD_APP_KEY), then rerun.",
        )
    if settings.provider == "simulated":
        return None  # simulated traffic starts with the rollout
    if not any(step.analysis for step in settings.steps):
        return None  # no judge runs (staging, a direct hotfix): nothing to compare with
    now = world.clock.now()
    window = max(float(STABLE_LOOKBACK_SECONDS), provider.shortest_window_seconds() or 0.0)
    try:
        sample = provider.query(Track.STABLE, now - window, now)
    except ReleaseActionsError as exc:
        return Failed(
            "stable traffic",
            f"the stable track's last {window:.0f} s cannot be read ({exc.message})",
            "Check the queries and labels in `metrics` of the policy against what the "
            "service exports; `release-actions canary analyze` shows the resolved queries.",
        )
    if sample.requests <= 0:
        return Failed(
            "stable traffic",
            f"the stable track served no requests in the last {window:.0f} s",
            "The judge compares the canary with stable traffic: deploy when the service has "
            "traffic, or check the service and track labels of the queries.",
        )
    return None


def _flags(session: Session, settings: Settings) -> Failed | None:
    flags = list(settings.policy.feature_flags.launchdarkly.kill_switch)
    # The kill switch acts on production's flags: staging neither needs nor touches them.
    if not flags or settings.target == "simulated" or settings.stage != "production":
        return None
    ld = settings.policy.feature_flags.launchdarkly
    try:
        switch = kill_switch(session, settings.policy)
        for flag in flags:
            switch.is_on(flag, ld.environment)
    except ReleaseActionsError as exc:
        return Failed(
            "kill switch",
            f"the policy's kill-switch flags cannot be turned off on a rollback: {exc.message}",
            "Set LD_API_KEY in the step's `env:` and check "
            "`feature_flags.launchdarkly.kill_switch`, or empty it.",
        )
    return None
