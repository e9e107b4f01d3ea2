"""`release-actions rehearse`: a whole canary release on the built-in simulator, in about a second."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from release_actions.app.rehearse import rehearse
from release_actions.app.world import WorldRequest, pick_scenario
from release_actions.canary.model import Event
from release_actions.canary.report import RunReport, summary_markdown, timeline_line
from release_actions.cli import Session, check_failed, json_option, pass_state
from release_actions.cli.branch import policy_option
from release_actions.core.policy import load_policy
from release_actions.core.settings import Overrides, resolve
from release_actions.simulation.scenario import builtin_scenarios
from release_actions.simulation.traffic import DEFAULT_SEED

F = TypeVar("F", bound=Callable[..., Any])


def scenario_options(func: F) -> F:
    """--scenario NAME | --scenario-file PATH, shared by rehearse, canary and monitor."""
    func = click.option(
        "--scenario-file",
        type=click.Path(path_type=Path),
        default=None,
        help="A scenario YAML file (traffic, steps, stable, canary, events). Excludes --scenario.",
    )(func)
    func = click.option(
        "--scenario",
        "scenario_name",
        default=None,
        metavar="NAME",
        help=f"A built-in scenario: {', '.join(builtin_scenarios())} (default: healthy). "
        "Excludes --scenario-file.",
    )(func)
    return func


judge_option = click.option(
    "--judge",
    type=click.Choice(["sequential", "threshold"]),
    default=None,
    help="`sequential` (anytime-valid) or `threshold` (source §4.3); default: the policy's.",
)
strategy_option = click.option(
    "--strategy",
    type=click.Choice(["canary", "blue-green", "shadow", "rolling"]),
    default=None,
    help="Source §4.1's strategy: `canary` in steps; `blue-green` previews, switches all "
    "traffic at once and holds the old version; `shadow` mirrors traffic to the new version "
    "and judges it without releasing; `rolling` straight to 100 %. Default: the release "
    "type's `strategy`, else the policy's `deploy.strategy`.",
)
seed_option = click.option(
    "--seed",
    type=int,
    default=DEFAULT_SEED,
    show_default=True,
    help="Seed of the simulated traffic: the same seed gives the same rehearsal.",
)


class ProgressPrinter:
    """A line per interval; a ``::group::`` per step in Actions; a progress bar in a terminal.

    The bar is for real time only: a rehearsal's virtual twenty minutes pass in a second.
    """

    def __init__(self, state: Session, *, quiet: bool = False, real_time: bool = False) -> None:
        self.state = state
        self.quiet = quiet
        runtime = state.runtime
        isatty = getattr(runtime.out, "isatty", lambda: False)()
        self.bar_mode = real_time and isatty and not runtime.in_actions
        self._groups = contextlib.ExitStack()
        self._bar: Any = None
        self._bar_done = 0.0

    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        runtime = self.state.runtime
        if event.kind == "step":
            self.close()
            title = timeline_line(event).split("== ", 1)[-1]
            if self.bar_mode and event.data.get("pause_seconds"):
                self._bar = self._groups.enter_context(
                    click.progressbar(
                        length=int(event.data["pause_seconds"]),
                        label=title,
                        file=runtime.out,
                        show_eta=True,
                    )
                )
                self._bar_done = 0.0
                return
            if runtime.in_actions:
                self._groups.enter_context(runtime.group(title))
                return
        if self._bar is not None and event.kind == "interval":
            remaining = float(event.data.get("remaining_s", 0.0))
            total = float(self._bar.length or 0)
            self._bar.update(max(0, int(total - remaining - self._bar_done)))
            self._bar_done = total - remaining
            self._bar.label = event.message
            return
        click.echo(timeline_line(event), file=runtime.out)
        if event.kind == "step_end":
            self.close()

    def close(self) -> None:
        self._groups.close()
        self._groups = contextlib.ExitStack()
        self._bar = None


def report_run(
    state: Session, report: RunReport, *, as_json: bool, title: str, level: str = "error"
) -> None:
    """Outputs, job summary, the result for a person or as JSON, and exit 1 unless it went well."""
    record = report.record
    runtime = state.runtime
    runtime.set_output("decision", report.decision.value)
    runtime.set_output("detected-at-s", report.detected_at_s)
    runtime.set_output("record-id", record["id"] if record else "")
    runtime.summary(summary_markdown(report, title=title))
    if as_json:
        state.emit_json(report.to_dict())
    else:
        final = report.final
        state.say("")
        state.say(f"decision: {final.decision.value} ({final.reason})")
        if report.detected_at_s is not None:
            state.say(f"detected at: +{report.detected_at_s:.0f}s")
        if final.evidence.get("judge"):
            judge = final.evidence["judge"]
            state.say(f"evidence: {judge.get('check')}: {judge.get('reason')}")
        if record:
            dur = record["duration"]
            state.say(
                f"rollback record {record['id']}: {record['from_version']} -> {record['to_version']}, "
                f"detection {dur['detection_time']}, rollback {dur['rollback_time']}, "
                f"recovery {dur['recovery_time'] or 'not confirmed'}"
            )
    if not report.final.ok:
        if as_json:  # stdout is one JSON document; the decision is in it
            raise check_failed()
        runtime.annotate(level, f"{report.decision.value}: {report.final.reason}", title=title)
        if report.final.recovery is not None and not report.final.recovery.recovered:
            runtime.annotate(
                "warning", report.final.recovery.reason, title="Recovery not confirmed"
            )
        raise check_failed()


@click.command("rehearse")
@scenario_options
@judge_option
@seed_option
@click.option(
    "--monitor/--no-monitor",
    default=True,
    show_default=True,
    help="After a promotion, watch the deploy as `release-actions monitor` does (source §6.3).",
)
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Keep the simulated target's state in this file, which `status`, `promote` and "
    "`abort` (--target simulated --state-file) read and mark while the rehearsal runs; an "
    "unfinished rehearsal in it resumes. Default: in memory only.",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0.001),
    default=None,
    help="Run in real time, this many virtual seconds per second (60: a two-minute pause "
    "lasts two seconds), so the rehearsal can be watched. Default: no waiting at all.",
)
@strategy_option
@click.option(
    "--mobile",
    is_flag=True,
    default=False,
    help="Rehearse a store staged rollout (source §8.3) instead: the mobile gate every virtual "
    "hour on a simulated store and users. Scenarios: healthy, crash-spike, anr-regression, "
    "subtle-crash-regression, bad-reviews, small-app, ios-healthy, ios-crash-spike.",
)
@click.option(
    "--flag",
    is_flag=True,
    default=False,
    help="Rehearse a feature flag's guarded gradual rollout (source §5.5) instead: the canary "
    "engine on `feature_flags.stages.gradual`, each step `feature_flags.guard.step_seconds` "
    "long and judged on users served `on` against users served `off`; a regression sets the "
    "flag back as `feature_flags.guard.on_regression` says. Scenarios: flag-healthy "
    "(default), flag-regression, flag-provider-down. Excludes --strategy and --mobile; no "
    "watch follows.",
)
@click.option(
    "--gate",
    is_flag=True,
    default=False,
    help="With --flag: rehearse the scheduled gate (`flags rollout --gate`) instead of one job: "
    "a new engine and judge every --every virtual seconds, each making one look, with only the "
    "state saved on the flag between them, until the rollout ends. For day-long steps, a "
    "policy with `feature_flags.guard.step_seconds: 86400`.",
)
@click.option(
    "--every",
    type=click.FloatRange(min=1),
    default=3600,
    show_default=True,
    metavar="SECONDS",
    help="With --gate: the schedule, in virtual seconds between two runs.",
)
@click.option(
    "--status-page",
    is_flag=True,
    default=False,
    help="Let a rollback open (and, once recovered, resolve) its incident on the configured "
    "status page (notifications.status_page, STATUSPAGE_API_KEY), as a real rollback does. "
    "Without it a rehearsal only says what it would send. Excludes --mobile and --flag.",
)
@policy_option
@json_option
@pass_state
def command(
    state: Session,
    mobile: bool,
    flag: bool,
    gate: bool,
    every: float,
    status_page: bool,
    scenario_name: str | None,
    scenario_file: Path | None,
    judge: str | None,
    seed: int,
    monitor: bool,
    state_file: Path | None,
    speed: float | None,
    strategy: str | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """Rehearse a canary release with the real engine on simulated traffic and a virtual clock.

    With --state-file and --speed a rehearsal in progress can be watched (`release-actions
    status --target simulated --state-file FILE --watch`), promoted and aborted.
    Exit 0 when the release is promoted (blue-green: switched; shadow: passed; --flag: on
    for 100 %), 1 when it is rolled back, aborted, failed or held.
    """
    from release_actions.targets.factory import TargetOptions

    if status_page and (mobile or flag):
        raise click.UsageError(
            f"`--status-page` belongs to a deploy's rehearsal: it excludes "
            f"`{'--mobile' if mobile else '--flag'}`."
        )
    if gate and not flag:
        raise click.UsageError("`--gate` rehearses a flag's scheduled gate: add `--flag`.")
    if gate and (state_file is not None or speed is not None):
        raise click.UsageError(
            "`--gate` keeps the flag's state between its runs itself: it excludes "
            f"`{'--state-file' if state_file is not None else '--speed'}`."
        )
    if flag and (mobile or strategy is not None):
        raise click.UsageError(
            "`--flag` rehearses a flag's gradual rollout: it excludes "
            f"`{'--mobile' if mobile else '--strategy'}`."
        )
    if flag and gate:
        rehearse_flag_gate_command(
            state,
            scenario_name=scenario_name,
            scenario_file=scenario_file,
            seed=seed,
            judge=judge,
            every=every,
            policy_path=policy_path,
            as_json=as_json,
        )
        return
    if flag:
        rehearse_flag_command(
            state,
            scenario_name=scenario_name,
            scenario_file=scenario_file,
            seed=seed,
            judge=judge,
            state_file=state_file,
            speed=speed,
            policy_path=policy_path,
            as_json=as_json,
        )
        return
    if mobile:
        from release_actions.cli.mobile_rehearse import rehearse_mobile_command

        rehearse_mobile_command(
            state,
            scenario_name=scenario_name,
            scenario_file=scenario_file,
            seed=seed,
            judge=judge,
            policy_path=policy_path,
            as_json=as_json,
        )
        return
    name, scenario = pick_scenario(scenario_name, scenario_file)
    settings = resolve(load_policy(policy_path), Overrides(judge=judge, strategy=strategy))
    if not as_json:
        state.say(f"Rehearsal `{name}` (seed {seed}): {scenario.description or 'custom scenario'}")
    if state_file is not None:
        state.note(
            f"state file: {state_file} (watch: release-actions status --target simulated "
            f"--state-file {state_file} --watch)"
        )
    printer = ProgressPrinter(state, quiet=as_json, real_time=speed is not None)
    try:
        report = rehearse(
            state,
            settings,
            WorldRequest(
                scenario_name=scenario_name,
                scenario_file=scenario_file,
                seed=seed,
                options=TargetOptions(state_file=state_file),
                speed=speed,
            ),
            monitor=monitor,
            on_event=printer,
            status_page=status_page,
        )
    finally:
        printer.close()
    report_run(state, report, as_json=as_json, title=f"Rehearsal `{name}`", level="warning")


def rehearse_flag_command(
    state: Session,
    *,
    scenario_name: str | None,
    scenario_file: Path | None,
    seed: int,
    judge: str | None,
    state_file: Path | None,
    speed: float | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """`rehearse --flag`: the guarded gradual rollout, reported as any rehearsal, plus the flag."""
    from release_actions.app.rehearse import rehearse_flag
    from release_actions.targets.factory import TargetOptions

    settings = resolve(load_policy(policy_path), Overrides(judge=judge, strategy="canary"))
    if not as_json:
        gradual = settings.policy.feature_flags.stages.gradual
        shown = scenario_name or (scenario_file.stem if scenario_file else "flag-healthy")
        state.say(
            f"Flag rehearsal `{shown}` (seed {seed}): "
            + " → ".join(f"{p}%" for p in gradual)
            + f" on, each step {settings.policy.feature_flags.guard.step_seconds}s, "
            "judged on users served `on` against users served `off`"
        )
    printer = ProgressPrinter(state, quiet=as_json, real_time=speed is not None)
    try:
        report = rehearse_flag(
            settings,
            WorldRequest(
                scenario_name=scenario_name,
                scenario_file=scenario_file,
                seed=seed,
                options=TargetOptions(state_file=state_file),
                speed=speed,
            ),
            on_event=printer,
        )
    finally:
        printer.close()
    facts = report.context["flag"]
    name = report.context["scenario"]
    if not as_json:
        history = " → ".join(f"{p}%" for p in facts["percent_history"]) or "none"
        state.say(f"flag `{facts['key']}` on: {history}; last safe {facts['last_safe_percent']}%")
        if facts["rolled_back_to_percent"] is not None:
            state.say(f"set back to {facts['rolled_back_to_percent']}% ({facts['on_regression']})")
    state.runtime.set_output("flag-percent", str(facts["percent"]))
    report_run(state, report, as_json=as_json, title=f"Flag rehearsal `{name}`", level="warning")


def rehearse_flag_gate_command(
    state: Session,
    *,
    scenario_name: str | None,
    scenario_file: Path | None,
    seed: int,
    judge: str | None,
    every: float,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """`rehearse --flag --gate`: the gate run after run on the virtual clock, a line a run."""
    from release_actions.app.flag_gate import rehearse_flag_gate
    from release_actions.canary.gate_report import decision_text
    from release_actions.cli.flag_rollout import finish_gate

    settings = resolve(load_policy(policy_path), Overrides(judge=judge, strategy="canary"))
    policy = settings.policy
    if not as_json:
        shown = scenario_name or (scenario_file.stem if scenario_file else "flag-healthy")
        state.say(
            f"Flag gate rehearsal `{shown}` (seed {seed}): a run every {every:g}s, "
            + " → ".join(f"{p}%" for p in policy.feature_flags.stages.gradual)
            + f" on, each step {policy.feature_flags.guard.step_seconds}s"
        )
    gate = rehearse_flag_gate(
        settings,
        WorldRequest(scenario_name=scenario_name, scenario_file=scenario_file, seed=seed),
        every=every,
    )
    tz = policy.calendar.tz
    if not as_json:
        for n, look in enumerate(gate.looks):
            looks = f"{look.looked} look" + ("" if look.looked == 1 else "s")
            state.say(
                f"run {n + 1:>3} (+{n * every / 3600:.4g}h, {looks}): {look.action}, "
                f"{look.percent}% on: {decision_text(look, tz)}"
            )
    final = gate.looks[-1]
    facts = gate.context["flag"]
    if not as_json:
        history = " → ".join(f"{p}%" for p in facts["percent_history"]) or "none"
        state.say(f"flag `{facts['key']}` on: {history}; last safe {facts['last_safe_percent']}%")
    outcome = gate.outcome
    runtime = state.runtime
    runtime.set_output("record-id", outcome.record["id"] if outcome.record else "")
    finish_gate(
        state,
        policy,
        [final],
        as_json=as_json,
        one=True,
        title=f"Flag gate rehearsal `{gate.name}`",
        extra={
            **gate.context,
            "decision": outcome.decision.value,
            "reason": outcome.reason,
            "steps": [s.to_dict() for s in outcome.steps],
            "rollback": outcome.record,
            "runs": [g.to_dict() for g in gate.looks],
        },
    )
