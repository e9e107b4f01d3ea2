"""`release-actions metrics`: DORA's four keys, release quality and the monthly review (source §11)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from release_actions.cli import Session, json_option, pass_state
from release_actions.cli.branch import policy_option

if TYPE_CHECKING:
    from release_actions.app.metrics import DoraResult, ReviewResult, Scope
    from release_actions.core.dora import Figures

F = TypeVar("F", bound=Callable[..., Any])


@click.group("metrics")
def group() -> None:
    """Release metrics (source §11): DORA's four keys, release quality, the monthly review.

    The history is read from GitHub (the release deployments, their rollback records, the
    commits each one first brought to production, the blocker issues), or from a file that
    `metrics export` wrote (`--input`, no request). Periods are calendar days in the
    policy's `calendar.timezone`; a deployment counts in the period in which it finished.
    docs/metrics.md has every definition.
    """


def _add_commands() -> None:
    # `metrics export` is its own module; added here so that `metrics --help` lists it.
    from release_actions.cli.metrics_export import export

    group.add_command(export)


_add_commands()


def _common(command: F) -> F:
    """The options every metrics command shares: where the history comes from, the time."""
    options = [
        click.option(
            "--input",
            "input_path",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            metavar="FILE",
            help="A history that `metrics export` wrote; no request is made. "
            "[default: read GitHub]",
        ),
        click.option(
            "--environment",
            default=None,
            metavar="NAME",
            help="The environment whose deployments count [default: the policy's "
            "`reporting.environment`, production].",
        ),
        click.option(
            "--repo",
            default=None,
            metavar="OWNER/NAME",
            help="The repository read (and of the review's issue) [default: $GITHUB_REPOSITORY].",
        ),
        click.option(
            "--cache",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            metavar="FILE",
            help="A cache of what GitHub answered, kept between runs (actions/cache), so that "
            "a rerun costs a request per list. Not read with `--input`.",
        ),
        click.option(
            "--now",
            default=None,
            metavar="TIME",
            help="Today, as an ISO 8601 time with an offset, such as `2026-05-01T10:00:00+09:00` "
            "[default: $RELEASE_ACTIONS_NOW, else the clock].",
        ),
        click.option(
            "--report",
            "report_path",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            metavar="FILE",
            help="Also write the Markdown report (the job summary's) to this file.",
        ),
        policy_option,
        json_option,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _scope(
    policy_environment: str,
    input_path: Path | None,
    environment: str | None,
    repo: str | None,
    cache: Path | None,
) -> Scope:
    from release_actions.app.metrics import Scope

    return Scope(input_path, environment or policy_environment, repo, cache)


def _write_report(path: Path | None, markdown: str) -> str:
    if path is None:
        return ""
    from release_actions.app.metrics import ReleaseMetricsError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(markdown, encoding="utf-8")
    except OSError as exc:
        raise ReleaseMetricsError(
            f"Cannot write the report to {path}: {exc.strerror or exc}.", file=str(path)
        ) from None
    return str(path)


# -- metrics dora ----------------------------------------------------------------------------


@group.command("dora")
@click.option(
    "--since",
    default=None,
    metavar="Nd",
    help="The N calendar days ending today (today included): `90d` on 2026-04-30 is "
    "2026-01-31 to 2026-04-30. [default: 90d]",
)
@click.option(
    "--from",
    "start",
    default=None,
    metavar="DATE",
    help="The first day of the period (YYYY-MM-DD, included); with `--to`.",
)
@click.option(
    "--to",
    "end",
    default=None,
    metavar="DATE",
    help="The last day of the period (YYYY-MM-DD, included); with `--from`.",
)
@_common
@pass_state
def dora_command(
    state: Session,
    since: str | None,
    start: str | None,
    end: str | None,
    input_path: Path | None,
    environment: str | None,
    repo: str | None,
    cache: Path | None,
    now: str | None,
    report_path: Path | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """DORA's four keys for a period, their tiers, the targets of source §1.2 and the release
    quality metrics of §11.2.

    Deployment frequency (deployments / days), lead time for changes (median and p90 over
    the commits each deployment first brought to production), change failure rate (rolled
    back and hotfix deployments / deployments), time to restore (median and mean of each
    rollback's detection to recovery; a rollback without recovery is counted apart). The
    report (job summary, `--report`) has weekly charts, the rollbacks by trigger and the
    slowest changes. With the policy's `reporting.datadog`, the figures also go to Datadog.

    Exit 0 with the figures, 2 on an error. Outputs: `figures` (one line of JSON, the
    `--json` figures without the lists) and `report` (the `--report` file; empty without it).
    """
    from release_actions.app import metrics as app
    from release_actions.core.policy import load_policy

    policy = load_policy(policy_path)
    request = app.DoraRequest(
        scope=_scope(policy.reporting.environment, input_path, environment, repo, cache),
        now=app.parse_now(now, state.env),
        since=since,
        start=start,
        end=end,
    )
    result = app.run_dora(state, policy, request)
    state.runtime.set_output("figures", app.compact(result.to_dict()))
    state.runtime.set_output("report", _write_report(report_path, result.markdown))
    state.runtime.summary(result.markdown)
    if as_json:
        state.emit_json(result.to_dict())
    else:
        for line in dora_lines(result):
            state.say(line)


_QUALITY = {
    "deployment_success_rate_percent": "deployment success rate",
    "canary_success_rate_percent": "canary success rate",
    "rollback_rate_percent": "rollback rate",
    "mean_rollback_s": "mean rollback time",
    "blockers_per_release": "blockers per release",
    "deployment_duration_median_s": "deployment duration",
}


def _figures_lines(figures: Figures) -> list[str]:
    from release_actions.app.metrics import shown

    keys, tiers, quality = figures.key_figures(), figures.tiers(), figures.quality()
    year1 = {t.name: t for t in figures.targets.get("year1", [])}

    def key(label: str, name: str, tier: str, extra: str = "") -> str:
        met = year1[name].met
        target = {True: "met", False: "not met", None: "no data"}[met]
        return (
            f"  {label:<24} {shown(name, keys[name]):<12} {tiers[tier] or 'no tier':<8} "
            f"Year 1 target {target}{extra}"
        )

    out = [
        key(
            "deployment frequency",
            "deployment_frequency_per_day",
            "frequency",
            f" ({keys['deployments']} deployments)",
        ),
        key(
            "lead time (median)",
            "lead_time_median_s",
            "lead_time",
            f" (p90 {shown('lead_time_p90_s', keys['lead_time_p90_s'])}, "
            f"{keys['lead_time_commits']} commits)",
        ),
        key("change failure rate", "change_failure_rate_percent", "change_failure_rate"),
        key(
            "time to restore (median)",
            "restore_median_s",
            "restore",
            f" ({keys['restored']} restored, {keys['unrecovered']} without recovery)",
        ),
    ]
    checks = {t.name: t.met for t in figures.quality_targets}
    for name, value in quality.items():
        met = {True: "met", False: "not met", None: "no data"}[checks[name]]
        out.append(f"  {_QUALITY[name]:<24} {shown(name, value):<12} {'':<8} target {met}")
    return out


def dora_lines(result: DoraResult) -> list[str]:
    """The figures for a person: one line each, with the tier and the Year 1 target."""
    period = result.figures.period
    out = [
        f"Release metrics of `{result.environment}`, {period.label} ({period.days} days, "
        f"{period.zone_name}), from {result.source.description}:"
    ]
    out += _figures_lines(result.figures)
    if result.unfinished:
        out.append(f"  still running, not counted: {', '.join(result.unfinished)}")
    if result.datadog:
        out.append(f"  Datadog: {result.datadog}")
    return out


# -- metrics review --------------------------------------------------------------------------


@group.command("review")
@click.option(
    "--month",
    default=None,
    metavar="YYYY-MM",
    help="The month reviewed [default: the month before the current one in the policy's "
    "time zone, for a run on the first of the month].",
)
@click.option(
    "--open-issue",
    is_flag=True,
    help="Open the month's issue `Release review YYYY-MM` (label `release-review`), or update "
    "it when a run opened it already (found by a marker in its body). Needs "
    "`permissions: issues: write`.",
)
@_common
@pass_state
def review_command(
    state: Session,
    month: str | None,
    open_issue: bool,
    input_path: Path | None,
    environment: str | None,
    repo: str | None,
    cache: Path | None,
    now: str | None,
    report_path: Path | None,
    policy_path: Path | None,
    as_json: bool,
) -> None:
    """The monthly review of source §11.3: the month's report and its trend against the three
    months before (each figure per month, with an arrow), and the review's agenda.

    With `--open-issue` the review is kept in one issue per month, opened by the first run
    and updated by the next. Exit 0, 2 on an error. Outputs: `figures` (the month's, one
    line of JSON), `report` (the `--report` file; empty without it), `issue` and `issue-url`
    (empty without `--open-issue`, and in a dry run that would open one).
    """
    from release_actions.app import metrics as app
    from release_actions.core.policy import load_policy

    policy = load_policy(policy_path)
    request = app.ReviewRequest(
        scope=_scope(policy.reporting.environment, input_path, environment, repo, cache),
        now=app.parse_now(now, state.env),
        month=month,
        open_issue=open_issue,
    )
    result = app.run_review(state, policy, request)
    out = state.runtime.set_output
    out("figures", app.compact(result.to_dict()))
    out("report", _write_report(report_path, result.markdown))
    issue = result.issue
    out("issue", "" if issue is None or issue.number is None else str(issue.number))
    out("issue-url", "" if issue is None or issue.url is None else issue.url)
    state.runtime.summary(result.markdown)
    if as_json:
        state.emit_json(result.to_dict())
    else:
        for line in review_lines(result):
            state.say(line)


def review_lines(result: ReviewResult) -> list[str]:
    """The month's figures, each figure's trend, and what happened to the issue."""
    from release_actions.app.metrics import shown
    from release_actions.core.dora import trend

    period = result.figures.period
    out = [
        f"Release review {result.month} of `{result.environment}` ({period.days} days, "
        f"{period.zone_name}), from {result.source.description}:"
    ]
    out += _figures_lines(result.figures)
    out.append("  trend (" + ", ".join(label for label, _ in result.months) + "):")
    for row in trend(result.months):
        cells = [
            shown(row["key"], c["value"]) + (f" {c['arrow']}" if c["arrow"] else "")
            for c in row["months"]
        ]
        out.append(f"    {row['label']:<32} {' | '.join(cells)}  ({row['last_month'] or '–'})")
    if result.issue is not None:
        number = f" #{result.issue.number}" if result.issue.number is not None else ""
        out.append(f"  issue{number}: {result.issue.action}: {result.issue.title}")
    return out
