"""Mobile releases: a halt's rollback record, kill switch and notice, and the rehearsal on the simulator."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from release_actions.app.session import Session
from release_actions.core.policy import Policy

if TYPE_CHECKING:
    from release_actions.mobile.report import MobileReport
    from release_actions.mobile.rollout import GateState


def mobile_policy(policy: Policy) -> Any:
    """The policy's `mobile` section, or the source's defaults where the policy has none yet."""
    from release_actions.mobile.policy import MobilePolicy

    section = getattr(policy, "mobile", None)
    return section if isinstance(section, MobilePolicy) else MobilePolicy()


def halt_record(
    session: Session,
    policy: Policy,
    state: GateState,
    *,
    app: str,
    exposed_users: int | None,
    simulated: bool,
    record_file: Path | None = None,
    repository: str | None = None,
    trigger: str = "automatic",
) -> dict[str, Any]:
    """On a halt, what the web rollback does after its rollback: the kill-switch flags off,
    the record RB-YYYY-NNN (source §6.4) in its file and on GitHub, the `rolled_back` notice.

    A store release cannot be uninstalled: the record's `to_version` is the version users
    not yet updated keep, and the next step says to ship a fix with a higher version code.
    """
    from release_actions.app.flags import turn_flags_off
    from release_actions.app.notify import send
    from release_actions.app.records import publish_record, record_store, rolled_back_context
    from release_actions.canary.model import RollbackRecord, next_record_id
    from release_actions.integrations.records import run_url
    from release_actions.mobile.report import next_step

    assert state.halted_at is not None
    store, unavailable = record_store(
        session, environment="production", repository=repository, simulated=simulated
    )
    when = datetime.fromtimestamp(state.halted_at, policy.calendar.tz)
    record_id = store.next_id(when, []) if store is not None else next_record_id(when)
    last = state.stages[-1] if state.stages else {}
    evidence = last.get("evidence") or {}
    measured = sum(h["new"][0] for h in state.hours)
    record = RollbackRecord(
        id=record_id,
        timestamp=when.isoformat(timespec="seconds"),
        deployment=app,
        from_version=state.version_code,
        to_version=state.previous_version_code,
        trigger_type=trigger,
        reason=state.reason,
        metrics={
            k: evidence.get(k)
            for k in (
                "new_crash_free",
                "prev_crash_free",
                "new_anr_rate",
                "prev_anr_rate",
                "crash_ratio",
                "anr_ratio",
                "e_value",
                "threshold",
            )
        },
        detection_seconds=round(state.halted_at - state.started_at, 3),
        rollback_seconds=0.0,
        detail=f"store rollout halted at {float(last.get('fraction') or 0):.0%}; "
        + next_step(state.platform),
        impact={
            "affected_users": exposed_users if exposed_users is not None else "not measured",
            "affected_users_note": "users who installed the new version (the store's count)"
            if exposed_users is not None
            else f"at least {measured:,} user-days of the new version in the vitals",
            "affected_requests": None,
            "failed_requests": None,
            "source": "mobile vitals: " + ("the simulator" if simulated else "the store"),
        },
    ).to_dict()
    flags = mobile_policy(policy).flags(list(policy.feature_flags.launchdarkly.kill_switch))
    flags_off: list[str] = []
    if flags and simulated:
        session.note(
            "kill switch: a rehearsal leaves " + ", ".join(f"`{f}`" for f in flags) + " as they are"
        )
    elif flags:
        results, errors = turn_flags_off(session, policy, flags, state.reason)
        flags_off = [r.flag_key for r in results if r.changed]
        if errors:
            session.runtime.annotate(
                "error",
                "Halted, but not every kill-switch flag is off: " + "; ".join(errors),
                title="Kill switch",
            )
    published = publish_record(
        session,
        policy,
        record,
        store=store,
        unavailable=unavailable,
        path=record_file,
        release=state.version_name,
        target_name="simulated" if simulated else "store",
        environment="production",
        flags_turned_off=flags_off,
    )
    context = rolled_back_context(
        policy,
        published.record,
        service=app,
        environment="production",
        run=run_url(session.env),
        flags=flags_off,
    )
    context["next_steps"] = [next_step(state.platform)]
    context["affected_users"] = (
        f"{exposed_users:,} installed the new version" if exposed_users is not None else None
    )
    send(session, policy, "rolled_back", context)
    return published.record


def rehearse_mobile(
    session: Session,
    policy: Policy,
    *,
    scenario_name: str | None,
    scenario_file: Path | None,
    seed: int,
    judge: str | None = None,
) -> tuple[str, str, MobileReport]:
    """The whole store rollout on the simulator: (scenario name, description, report)."""
    from release_actions.mobile.report import MobileReport
    from release_actions.mobile.simulator import load_mobile_scenario, simulate

    name, scenario = load_mobile_scenario(scenario_name, scenario_file)
    mp = mobile_policy(policy)
    run = simulate(scenario, mp, seed=seed, judge=judge)
    state = run.gate.state
    assert state is not None
    report = MobileReport(
        state,
        run.decision,
        seed=seed,
        exposed_users=run.exposed_users,
        context={
            "scenario": name,
            "judge": judge or mp.judge,
            "store": "simulated",
            "dau": scenario.dau,
            "virtual_hours": run.hours,
        },
    )
    if run.decision == "halted":
        report.record = halt_record(
            session,
            policy,
            state,
            app=f"simulated {scenario.platform.value} app",
            exposed_users=run.exposed_users,
            simulated=True,
        )
    return name, scenario.description, report
