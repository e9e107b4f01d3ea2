"""The guarded flag rollout as a scheduled gate: each run one look at each flag's rollout in progress.

A step of `feature_flags.guard.step_seconds` that lasts a day cannot run inside one job. The
gate runs the same canary engine, judge and triggers as `flags rollout` with
``Settings.gate``: each run takes up the rollout from the state on the flag (the custom
property `release-actions-rollout`), makes one look at the current step from where the last
look ended to now, and either holds, moves on to the next percentage, reaches 100 %, or sets
the rollout back with a record. The step's start, the judge's evidence, the triggers and the
measurement errors in a row are in that state (canary/rollout.py), so the decisions are the
ones one long job would have made, looking as often as the schedule does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from release_actions.app.flag_rollout import FlagRolloutRequest, run_flag_rollout
from release_actions.app.session import Session
from release_actions.canary.gate_report import GateLook
from release_actions.core.policy import Policy
from release_actions.errors import ReleaseActionsError, StateConflictError, TargetChangedError

if TYPE_CHECKING:
    from release_actions.app.rollout import RolloutResult
    from release_actions.app.world import WorldRequest
    from release_actions.canary.model import Clock, Event, Outcome
    from release_actions.core.settings import Settings
    from release_actions.targets.flag import FlagApi

MOVED_HINT = (
    "To let the gate go on, set the production fallthrough back to {expected}% on in "
    "LaunchDarkly; to end the rollout where it stands, remove the flag's custom property "
    "`release-actions-rollout` (the next `flags rollout KEY --gate` then starts afresh)."
)


def gate_clock(text: str | None, env: Mapping[str, str]) -> Clock | None:
    """`--now`, else `RELEASE_ACTIONS_NOW`: a clock standing at that time (a wait moves it),
    for a test over recorded metrics; None, the real clock, when neither is set."""
    from release_actions.core.flag_audit import parse_time
    from release_actions.simulation.clock import VirtualClock

    raw = (text or env.get("RELEASE_ACTIONS_NOW") or "").strip()
    if not raw:
        return None
    try:
        at = parse_time(raw)
    except ValueError as exc:
        raise ReleaseActionsError(
            f"`--now` (or `RELEASE_ACTIONS_NOW`): {exc}.",
            hint="Such as `2026-04-01T09:00:00+09:00` or `2026-04-01T00:00:00Z`.",
        ) from None
    assert at is not None
    return VirtualClock(at.timestamp())


def flags_in_progress(session: Session, policy: Policy, project: str | None) -> list[str]:
    """The keys of the project's flags whose custom property holds a rollout not yet ended."""
    from release_actions.app.flag_lifecycle import flags_client
    from release_actions.targets.flag import rollout_in_progress

    client = flags_client(session, policy, project)
    return sorted(str(f["key"]) for f in client.list_flags() if rollout_in_progress(f))


def run_flag_gate(
    session: Session,
    policy: Policy,
    request: FlagRolloutRequest,
    *,
    on_event: Callable[[Event], None] | None = None,
    clock: Clock | None = None,
    api: FlagApi | None = None,
) -> GateLook:
    """One look of the gate at flag ``request.flag``: start its rollout if none is in
    progress, else judge the step since the last look and hold, advance or set it back.

    A person's change of the targeting since the last look stops the gate (``stopped``), and
    a run that lost a race with another one writes nothing (``conflict``); either exits 1.
    Other errors propagate. ``clock`` and ``api`` are for tests.
    """
    key = request.flag
    try:
        result = run_flag_rollout(
            session, policy, replace(request, gate=True), on_event=on_event, clock=clock, api=api
        )
    except TargetChangedError as exc:
        return GateLook(
            key,
            "stopped",
            exc.message,
            exit_code=1,
            percent=exc.live,
            hint=MOVED_HINT.format(expected=exc.expected),
        )
    except StateConflictError as exc:
        return GateLook(key, "conflict", exc.message, exit_code=1, hint=exc.hint)
    return gate_look(key, result)


def run_flag_gates(
    session: Session,
    policy: Policy,
    keys: list[str],
    world: WorldRequest,
    *,
    project: str | None = None,
    record_file: Any = None,
    repository: str | None = None,
    on_event: Callable[[Event], None] | None = None,
    clock: Clock | None = None,
) -> list[GateLook]:
    """One look at each flag of ``keys``, or at every flag with a rollout in progress when
    ``keys`` is empty; a flag that fails is a row of its own, the others still get theirs."""
    keys = keys or flags_in_progress(session, policy, project)
    looks: list[GateLook] = []
    for key in keys:
        request = FlagRolloutRequest(
            key,
            world,
            project=project,
            record_file=record_file,
            repository=repository,
            gate=True,
        )
        try:
            looks.append(run_flag_gate(session, policy, request, on_event=on_event, clock=clock))
        except ReleaseActionsError as exc:
            looks.append(
                GateLook(key, "error", exc.message, exit_code=exc.exit_code, hint=exc.hint)
            )
    return looks


def gate_look(key: str, result: RolloutResult) -> GateLook:
    """What one run of the engine in gate mode did to flag ``key``, from its outcome and the
    state it left on the flag."""
    outcome = result.outcome
    if outcome is None:
        return GateLook(key, "dry-run", "dry run: nothing was read from the metrics or changed")
    world = result.world
    assert world is not None
    facts = result.context.get("flag") or {}
    state = world.target.status().state or {}
    look = look_of(key, outcome, state, _int(facts.get("percent")))
    if result.already_done:
        look.action = "ended"
        look.reason = f"ended before this run: {outcome.decision.value}: {outcome.reason}"
        look.exit_code = 0 if outcome.ok else 1
    return look


def look_of(flag: str, outcome: Outcome, state: Mapping[str, Any], percent: int | None) -> GateLook:
    """A run's account: the decision when the rollout ended (or was held by `on_error`), else
    what the gate did (its last `gate` event: started, advanced, holding, waiting, skipped)."""
    from release_actions.canary.model import Decision

    carry = state.get("gate") or {}
    steps = len(state.get("plan") or []) or None
    step = _int(state.get("step_index"))
    if step is not None and steps and step >= steps:
        step = steps - 1  # past the last step: the rollout ended at it
    look = GateLook(
        flag,
        outcome.decision.value,
        outcome.reason,
        exit_code=0 if outcome.ok else 1,
        step=step,
        steps=steps,
        percent=percent,
        started_at=outcome.started_at,
        looks=list(carry.get("looks") or []),
        looked=sum(1 for e in outcome.events if e.kind == "interval"),
        record=outcome.record,
    )
    event = next((e for e in reversed(outcome.events) if e.kind == "gate"), None)
    if outcome.decision is Decision.HELD and state.get("phase") == "running" and event:
        look.action, look.reason, look.exit_code = str(event.data.get("action")), event.message, 0
        look.since, look.until = event.data.get("since"), event.data.get("until")
    return look


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


# -- the rehearsal ------------------------------------------------------------------------------


@dataclass
class GateRehearsal:
    """The gate on a simulated flag, run after run on a virtual clock."""

    name: str
    looks: list[GateLook]
    """What each run did, in order (the first one started the rollout)."""
    outcome: Outcome
    """The last run's outcome: the rollout's end, once it ended."""
    context: dict[str, Any]


def rehearse_flag_gate(
    settings: Settings,
    request: WorldRequest,
    *,
    every: float = 3600.0,
    max_runs: int | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> GateRehearsal:
    """The scheduled gate rehearsed: a simulated flag under simulated users, and the engine in
    gate mode run every ``every`` virtual seconds until the rollout ends.

    Each run is a new engine and a new judge, as a new job's would be: all that passes from
    one run to the next is the state saved on the flag (through JSON). ``max_runs`` bounds
    the runs; by default enough for every step to take twice its time.
    """
    from release_actions.app.rehearse import FLAG_VERSION, flag_facts, rehearsed_flag
    from release_actions.app.world import pick_scenario
    from release_actions.canary.flag_simulator import build_flag, flag_settings
    from release_actions.canary.judge import make_judge
    from release_actions.canary.rollout import CanaryEngine
    from release_actions.targets.simulated_flag import SimulatedFlagTarget

    if every <= 0:
        raise ReleaseActionsError(f"`--every` must be a positive number of seconds, got {every}.")
    name, scenario = pick_scenario(
        request.scenario_name or (None if request.scenario_file else "flag-healthy"),
        request.scenario_file,
    )
    if scenario.steps is not None:
        raise ReleaseActionsError(
            f"Scenario `{name}` has its own `steps`, but a flag's steps are the policy's "
            "`feature_flags.stages.gradual`.",
            hint="Remove `steps` from the scenario, or rehearse it without `--flag`.",
        )
    settings = flag_settings(
        replace(settings, target="simulated", provider="simulated", strategy="canary", gate=True)
    )
    guard = settings.policy.feature_flags.guard
    flag = rehearsed_flag(settings)
    rehearsal = build_flag(
        scenario, name=name, flag=flag, on_regression=guard.on_regression, seed=request.seed
    )
    target = rehearsal.target
    assert isinstance(target, SimulatedFlagTarget)
    total = sum(s.pause_seconds for s in settings.steps)
    runs = max_runs if max_runs is not None else int(2 * total / every) + len(settings.steps) + 2
    looks: list[GateLook] = []
    outcome: Outcome | None = None
    for n in range(runs):
        if n:
            rehearsal.clock.sleep(every)
        engine = CanaryEngine(
            target,
            rehearsal.provider,
            make_judge(settings.analysis),
            settings,
            rehearsal.clock,
            on_event=on_event,
        )
        outcome = engine.run(FLAG_VERSION)
        looks.append(look_of(flag, outcome, target.state or {}, target.exposure()))
        if (target.state or {}).get("phase") == "done":
            break
    assert outcome is not None
    context: dict[str, Any] = {
        "scenario": name,
        "seed": request.seed,
        "strategy": "flag",
        "gate": {"every_seconds": every, "runs": len(looks)},
        "judge": settings.judge,
        "target": target.name,
        "provider": rehearsal.provider.name,
        "flag": flag_facts(settings, flag, target, outcome),
    }
    return GateRehearsal(name, looks, outcome, context)
