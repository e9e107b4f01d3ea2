"""`release-actions rehearse --mobile`: a whole store rollout on the simulator, in about a second."""

from __future__ import annotations

from pathlib import Path

from release_actions.cli import Session, check_failed


def rehearse_mobile_command(
    state: Session,
    *,
    scenario_name: str | None,
    scenario_file: Path | None,
    seed: int,
    judge: str | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Run the mobile gate every virtual hour; exit 0 only when the rollout completes."""
    from release_actions.app.mobile import rehearse_mobile
    from release_actions.core.policy import load_policy
    from release_actions.mobile.report import next_step, summary_markdown

    policy = load_policy(policy_path)
    name, description, report = rehearse_mobile(
        state,
        policy,
        scenario_name=scenario_name,
        scenario_file=scenario_file,
        seed=seed,
        judge=judge,
    )
    runtime = state.runtime
    data = report.to_dict()
    runtime.set_output("decision", report.decision)
    runtime.set_output("record-id", report.record["id"] if report.record else "")
    runtime.summary(summary_markdown(report, title=f"Mobile rehearsal `{name}`"))
    if as_json:
        state.emit_json(data)
    else:
        state.say(f"Mobile rehearsal `{name}` (seed {seed}): {description or 'custom scenario'}")
        for stage in data["stages"]:
            state.say(
                f"  {stage['fraction']:>5.0%} from +{stage['started_at_hours']:g} h for "
                f"{stage['hours']:g} h: {stage['result']}: {stage['reason']}"
            )
        state.say("")
        state.say(f"decision: {report.decision} ({data['reason']})")
        if report.exposed_users is not None:
            state.say(f"users who installed the new version: {report.exposed_users:,}")
        if report.record:
            state.say(f"rollback record {report.record['id']}")
        if report.decision == "halted":
            state.say(f"next step: {next_step(report.state.platform)}")
    if report.decision != "completed":
        if not as_json:
            runtime.annotate(
                "warning",
                f"{report.decision}: {data['reason']}",
                title=f"Mobile rehearsal `{name}`",
            )
        raise check_failed()
