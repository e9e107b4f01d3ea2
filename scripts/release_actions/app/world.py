"""The world a use case runs in: deploy target, metrics provider and clock, composed once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from release_actions.app.session import Session
from release_actions.core.policy import Policy, RolloutStep
from release_actions.core.settings import Settings
from release_actions.errors import ReleaseActionsError
from release_actions.metrics.base import MetricsProvider
from release_actions.simulation.scenario import Scenario, load_scenario
from release_actions.simulation.traffic import DEFAULT_SEED
from release_actions.targets.factory import TargetOptions

if TYPE_CHECKING:
    from release_actions.canary.model import Clock
    from release_actions.canary.smoke import Prober
    from release_actions.simulation.traffic import Simulation
    from release_actions.targets.base import DeployTarget


def pick_scenario(name: str | None, path: Path | None) -> tuple[str, Scenario]:
    if name is not None and path is not None:
        raise ReleaseActionsError("Only one of `--scenario` or `--scenario-file` can be set.")
    return load_scenario(name, path)


# Where a provider's settings come from when --provider-setting leaves them out; the
# secret ones are masked the moment they are read.
PROVIDER_ENV: dict[str, dict[str, tuple[tuple[str, ...], bool]]] = {
    "prometheus": {
        "url": (("PROMETHEUS_URL",), False),
        "bearer_token": (("PROMETHEUS_TOKEN",), True),
        "service": (("SERVICE_NAME",), False),
    },
    "datadog": {
        "api_key": (("DD_API_KEY", "DATADOG_API_KEY"), True),
        "app_key": (("DD_APP_KEY", "DD_APPLICATION_KEY", "DATADOG_APP_KEY"), True),
        "site": (("DD_SITE",), False),
        "service": (("SERVICE_NAME",), False),
    },
}


def policy_provider_settings(policy: Policy, kind: str) -> dict[str, Any]:
    """The policy's ``metrics`` settings for ``kind``, as the provider's constructor names them.

    Unset values are left out, so that the provider's own defaults apply.
    """
    metrics = policy.metrics
    section = getattr(metrics, kind, None)
    settings: dict[str, Any] = {"service": metrics.service, "timeout": metrics.timeout_seconds}
    if section is not None:
        settings |= {k: v for k, v in section.model_dump().items() if v is not None}
    return settings


def real_provider(
    session: Session,
    kind: str,
    pairs: tuple[str, ...],
    policy: Policy,
    *,
    flag: str | None = None,
) -> MetricsProvider:
    """A Prometheus or Datadog provider via the factory.

    The policy's ``metrics`` section first, then the environment (``PROMETHEUS_URL``,
    ``DD_SITE``, keys), then ``--provider-setting`` flags, each over the one before.
    With ``flag``, the users are split by the variation of that flag they were served:
    the queries are `feature_flags.guard.queries.<kind>`, with ``{{ flag }}`` and
    ``{{ variation }}`` (`on` for the canary track, `off` for stable).
    """
    from release_actions.gha import is_secret_name, url_password
    from release_actions.metrics.factory import make_provider

    runtime = session.runtime
    settings = policy_provider_settings(policy, kind)
    if flag is not None:
        from release_actions.metrics.variation import guard_queries

        guarded = guard_queries(policy.feature_flags.guard.queries, kind)
        settings |= {"queries": guarded, "flag": flag}
    flags: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            # Not repeated: it may be a secret whose `KEY=` was forgotten.
            raise ReleaseActionsError(
                "A `--provider-setting` is not KEY=VALUE, such as `url=http://prometheus:9090` "
                "or `bearer_token=...`."
            )
        flags[key.strip()] = value
    for key, (names, secret) in PROVIDER_ENV.get(kind, {}).items():
        if key in flags:
            continue
        for name in names:
            found = session.env.get(name)
            if found:
                if secret:
                    runtime.mask(found)
                settings[key] = found
                break
    merged = settings | flags
    for key, value in merged.items():
        if not isinstance(value, str) or not value:
            continue
        # Masked the moment they are read: a secret-named setting, and a URL's password.
        if is_secret_name(key):
            runtime.mask(value)
        password = url_password(value) if "://" in value else None
        if password:
            runtime.mask(password)
    return make_provider(kind, **merged)


def resolve_provider(target_name: str, provider_name: str | None, policy: Policy) -> str:
    """The provider to use; simulated traffic on a real target must be asked for by name."""
    chosen = provider_name or policy.metrics.provider
    if target_name == "simulated" and chosen != "simulated":
        raise ReleaseActionsError(
            "`--target simulated` measures its own simulated traffic: use `--provider simulated`."
        )
    if target_name != "simulated" and chosen == "simulated" and provider_name is None:
        raise ReleaseActionsError(
            f"`--target {target_name}` needs a metrics provider: pass `--provider prometheus` "
            "or `--provider datadog` (or set metrics.provider in the policy), or "
            "`--provider simulated` to rehearse the target under simulated traffic."
        )
    return chosen


@dataclass
class World:
    """Target, provider and clock for the engine, and what the report says about them."""

    target: DeployTarget
    provider: MetricsProvider
    clock: Clock
    label: str
    context: dict[str, Any] = field(default_factory=dict)
    steps: list[RolloutStep] | None = None
    prober: Prober | None = None
    """How smoke checks reach a blue-green preview: None is real HTTP; simulated traffic
    draws the answers too."""
    simulation: Simulation | None = None


@dataclass(frozen=True)
class WorldRequest:
    """Where a use case runs, as the user named it; the settings say the rest."""

    provider: str | None = None
    """The provider named explicitly (simulated traffic on a real target must be)."""
    provider_settings: tuple[str, ...] = ()
    scenario_name: str | None = None
    scenario_file: Path | None = None
    seed: int = DEFAULT_SEED
    options: TargetOptions = field(default_factory=TargetOptions)
    live_version: str | None = None
    watching: bool = False
    speed: float | None = None
    """The simulator only: virtual seconds per real second (None: no waiting at all)."""


def build_world(session: Session, settings: Settings, request: WorldRequest) -> World:
    """The simulator; a real target with simulated traffic; or a real target and provider.

    With ``--provider simulated`` the engine runs on the virtual clock: twenty minutes of
    steps pass at once while every weight really changes on the target, and the traffic
    follows the weights the target reports. With a real provider, the real clock.
    ``watching`` (the monitor): the live version is on trial, so the simulated traffic
    treats only the target's known-good version as good; ``live_version`` is what the
    simulated target runs.
    """
    from release_actions.canary.model import RealClock
    from release_actions.targets.factory import make_target, target_label

    policy = settings.policy
    target_name = settings.target
    provider_name = resolve_provider(target_name, request.provider, policy)
    options = request.options
    seed = request.seed
    scenario_name, scenario_file = request.scenario_name, request.scenario_file
    provider_settings = request.provider_settings
    live_version = request.live_version
    if target_name == "simulated":
        from release_actions.canary.simulator import build

        name, scenario = pick_scenario(scenario_name, scenario_file)
        kwargs: dict[str, Any] = {"name": name, "seed": seed, "state_file": options.state_file}
        if live_version is not None:
            kwargs["live_version"] = live_version
        if request.speed:
            kwargs["speed"] = request.speed
        rehearsal = build(scenario, **kwargs)
        from release_actions.canary.smoke import SimulatedProber

        return World(
            rehearsal.target,
            rehearsal.provider,
            rehearsal.clock,
            rehearsal.target.deployment,
            {"scenario": name, "seed": seed},
            scenario.resolved_steps(),
            SimulatedProber(rehearsal.simulation),
            rehearsal.simulation,
        )
    if provider_name != "simulated":
        if scenario_name or scenario_file:
            raise ReleaseActionsError(
                "`--scenario` and `--scenario-file` belong to `--provider simulated`."
            )
        provider = real_provider(session, provider_name, provider_settings, policy)
        target = make_target(target_name, policy, session.env, options=options)
        return World(target, provider, RealClock(), target_label(target))
    real = make_target(target_name, policy, session.env, options=options)
    return rehearsal_world(session, real, target_name, request)


def rehearsal_world(
    session: Session,
    real: DeployTarget,
    target_name: str,
    request: WorldRequest,
    *,
    label: str | None = None,
) -> World:
    """A real target under simulated traffic on a virtual clock (``--provider simulated``).

    Every weight really changes on ``real``; the scenario's traffic follows the weights it
    reports, its ``stable`` profile on the known-good version and ``canary`` on the new one.
    """
    from release_actions.metrics.simulated import SimulatedProvider
    from release_actions.simulation.clock import VirtualClock
    from release_actions.simulation.traffic import Simulation
    from release_actions.targets.factory import target_label
    from release_actions.targets.recording import RecordingTarget

    seed, watching = request.seed, request.watching
    name, scenario = pick_scenario(request.scenario_name, request.scenario_file)
    clock = VirtualClock()
    recording = RecordingTarget(
        real, clock, deployment=label or target_label(real), virtual_clock=True
    )
    status = real.status()
    # Whatever runs now is good unless a rollout recorded otherwise: the monitor watches a
    # live version whose known-good is the one before it.
    good = status.known_good if watching else status.stable_version
    simulation = Simulation(
        scenario, recording, clock, seed=seed, good_version=good or "(none recorded)"
    )
    recording.health_model = simulation.health
    session.runtime.annotate(
        "notice",
        f"Rehearsal: the {target_name} target really changes, under simulated traffic "
        f"(scenario `{name}`, seed {seed}) on a virtual clock.",
        title="Simulated metrics",
    )
    from release_actions.canary.smoke import SimulatedProber

    return World(
        recording,
        SimulatedProvider(simulation),
        clock,
        recording.deployment,
        {"scenario": name, "seed": seed},
        scenario.resolved_steps(),
        SimulatedProber(simulation),
        simulation,
    )
