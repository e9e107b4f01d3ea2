"""A flag's guarded gradual rollout on LaunchDarkly, judged on metrics split by variation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from release_actions.app.rehearse import FLAG_VERSION
from release_actions.app.rollout import RolloutRequest, RolloutResult, run_session
from release_actions.app.session import Session
from release_actions.app.world import World, WorldRequest, real_provider, rehearsal_world
from release_actions.core.policy import Policy
from release_actions.core.settings import Overrides, Settings, resolve
from release_actions.errors import ReleaseActionsError

if TYPE_CHECKING:
    from release_actions.canary.model import Clock, Event
    from release_actions.targets.flag import FlagApi, FlagTarget

TARGET = "launchdarkly"
"""The settings' and the records' name of a flag's rollout target."""
PROVIDERS = ("prometheus", "datadog", "simulated")


@dataclass(frozen=True)
class FlagRolloutRequest:
    """One `flags rollout KEY`: the flag, where it is measured, and where the record goes."""

    flag: str
    world: WorldRequest = field(default_factory=WorldRequest)
    project: str | None = None
    record_file: Path | None = None
    repository: str | None = None
    gate: bool = False
    """One look per run (`--gate`, for steps longer than a job): see app/flag_gate.py."""


def flag_rollout_settings(policy: Policy, provider: str) -> Settings:
    """The canary strategy on `feature_flags.stages.gradual`, each step judged for
    `feature_flags.guard.step_seconds`, in `feature_flags.stages.environment`."""
    from release_actions.canary.flag_simulator import flag_settings

    return flag_settings(
        resolve(
            policy,
            Overrides(
                target=TARGET,
                provider=provider,
                strategy="canary",
                stage="production",
                environment=policy.feature_flags.stages.environment,
            ),
        )
    )


def flag_target(
    session: Session,
    policy: Policy,
    key: str,
    project: str | None,
    *,
    api: FlagApi | None = None,
    guarded: bool = False,
) -> FlagTarget:
    """The flag's production fallthrough as a deploy target, reached as `flags export` reaches it.

    ``guarded``: every save of the state is a compare and swap (the gate, whose runs may overlap).
    """
    from release_actions.app.flag_lifecycle import flags_client
    from release_actions.targets.flag import FlagTarget, launchdarkly_api

    if api is None:
        # The project, token (masked) and base URL as the other `flags` commands read them.
        client = flags_client(session, policy, project)
        api = launchdarkly_api(session.env, project=client.project, base_url=client.base_url)
    guard = policy.feature_flags.guard
    return FlagTarget(
        api,
        key,
        environment=policy.feature_flags.stages.environment,
        on_regression=guard.on_regression,
        guarded=guarded,
    )


def flag_world(
    session: Session,
    settings: Settings,
    request: FlagRolloutRequest,
    target: FlagTarget,
    *,
    clock: Clock | None = None,
) -> World:
    """The flag under its real users' metrics, or under simulated traffic (a rehearsal)."""
    from release_actions.canary.model import RealClock

    world = request.world
    if settings.provider == "simulated":
        if world.scenario_name is None and world.scenario_file is None:
            world = replace(world, scenario_name="flag-healthy")  # as `rehearse --flag`
        return rehearsal_world(session, target, TARGET, world, label=request.flag)
    if world.scenario_name or world.scenario_file:
        raise ReleaseActionsError(
            "`--scenario` and `--scenario-file` belong to `--provider simulated`."
        )
    provider = real_provider(
        session, settings.provider, world.provider_settings, settings.policy, flag=request.flag
    )
    return World(target, provider, clock or RealClock(), request.flag)


def run_flag_rollout(
    session: Session,
    policy: Policy,
    request: FlagRolloutRequest,
    *,
    on_event: Callable[[Event], None] | None = None,
    clock: Clock | None = None,
    api: FlagApi | None = None,
) -> RolloutResult:
    """Roll flag KEY out step by step on LaunchDarkly, or resume its saved rollout.

    The engine's version is the flag's `on` variation; the users served it are the canary
    track, those served `off` the stable one. A regression sets the rollout back as
    `feature_flags.guard.on_regression` says, with a rollback record; the kill-switch flags
    are not thrown, as the flag's own percentage is the rollback. With ``request.gate`` the
    run makes one look (app/flag_gate.py reads what it did). ``clock`` and ``api`` are for
    tests (a virtual clock over backfilled metrics; a client aimed elsewhere).
    """
    provider = request.world.provider or policy.metrics.provider
    if provider not in PROVIDERS:
        raise ReleaseActionsError(
            f"Unknown metrics provider `{provider}` for a flag's rollout: use one of "
            + ", ".join(f"`{p}`" for p in PROVIDERS)
            + "."
        )
    if provider == "simulated" and request.world.provider is None:
        raise ReleaseActionsError(
            "A flag's rollout on LaunchDarkly needs a metrics provider: pass `--provider "
            "prometheus` or `--provider datadog` (or set metrics.provider in the policy), or "
            "`--provider simulated` to rehearse the real flag under simulated traffic."
        )
    settings = flag_rollout_settings(policy, provider)
    if request.gate:
        if provider == "simulated":
            raise ReleaseActionsError(
                "`--gate` looks once per run on the real clock, so it needs real metrics: "
                "`--provider prometheus` or `--provider datadog`.",
                hint="Rehearse the gate on the simulator with `release-actions rehearse --flag "
                "--gate`.",
            )
        settings = replace(settings, gate=True)
    target = flag_target(
        session, policy, request.flag, request.project, api=api, guarded=request.gate
    )
    world = flag_world(session, settings, request, target, clock=clock)
    world.context |= {
        "strategy": "flag",
        "flag": {
            "key": request.flag,
            "environment": settings.environment,
            "stages": list(policy.feature_flags.stages.gradual),
            "step_seconds": policy.feature_flags.guard.step_seconds,
            "on_regression": policy.feature_flags.guard.on_regression,
        },
    }
    rollout = RolloutRequest(
        version=FLAG_VERSION,
        overrides=Overrides(),
        world=request.world,
        record_file=request.record_file,
        repository=request.repository,
    )
    result = run_session(
        session, policy, rollout, settings, world, on_event=on_event, kill_switch=False
    )
    if result.outcome is not None:
        status = target.status()
        facts = result.context.setdefault("flag", {})
        facts["percent"] = target.exposure()
        facts["known_good"] = status.known_good
    return result
