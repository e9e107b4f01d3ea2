"""The release metrics of source §11: the history, the figures, the report and the monthly review."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from release_actions.app.session import Session
from release_actions.core import dora
from release_actions.core.policy import Policy
from release_actions.errors import ReleaseActionsError

REVIEW_LABEL = ("release-review", "0e8a16", "The monthly release review (source §11.3)")
REVIEW_MARKER = "<!-- release-actions:release-review {key} -->"
_REVIEW_MARKER = re.compile(r"<!-- release-actions:release-review (\S+) -->")
REVIEW_MONTHS = 4  # the month and the three before it (source §11.3: the trend)
# The rollbacks listed one by one in a report; an issue body holds at most 65,536 characters.
MAX_LISTED_ROLLBACKS = 50


class ReleaseMetricsError(ReleaseActionsError):
    """Raised when the release metrics cannot run: a history file that cannot be read or a
    report that cannot be written, or a `--now` without an offset."""


# -- the history -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """Where the history came from and, when GitHub was asked, what it cost."""

    description: str
    input_path: Path | None = None
    requests: int | None = None
    rate_remaining: int | None = None
    rate_limit: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "input": str(self.input_path) if self.input_path else None,
            "requests": self.requests,
            "rate_remaining": self.rate_remaining,
            "rate_limit": self.rate_limit,
        }

    @property
    def budget(self) -> str | None:
        """`GitHub: 12 requests; rate limit 988 of 1000 left`, or None for a file."""
        if self.requests is None:
            return None
        left = (
            f"; rate limit {self.rate_remaining} of {self.rate_limit} left"
            if self.rate_remaining is not None and self.rate_limit is not None
            else ""
        )
        return f"GitHub: {self.requests} request{'s' * (self.requests != 1)}{left}"


@dataclass(frozen=True)
class Scope:
    """What every metrics command reads: the file or GitHub, and for which environment."""

    input_path: Path | None
    environment: str
    repository: str | None = None
    cache: Path | None = None


def load_history(
    session: Session, policy: Policy, scope: Scope, since: datetime, until: datetime
) -> tuple[dora.History, Source]:
    """The history of ``scope``: its file (no request), or GitHub from ``since`` to ``until``."""
    if scope.input_path is not None:
        path = scope.input_path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ReleaseMetricsError(
                f"Cannot read the deployment history {path}: {exc.strerror or exc}.",
                hint="Write it with `release-actions metrics export > FILE`, or leave "
                "`--input` out to read GitHub.",
                file=str(path),
            ) from None
        except UnicodeDecodeError:
            raise ReleaseMetricsError(
                f"The deployment history {path} is not UTF-8 text.", file=str(path)
            ) from None
        return dora.parse_history_text(text, str(path), _kinds(policy)), Source(str(path), path)
    # The gathering is another module (and PyGithub); imported only when GitHub is asked.
    from release_actions.app.metrics_gather import gather

    # A deployment that started the evening before the period and finished in it belongs
    # to the period; the gatherer lists by start, so it is asked from a day earlier.
    gathered = gather(
        session,
        policy,
        since=since - timedelta(days=1),
        until=until,
        environment=scope.environment,
        repository=scope.repository,
        cache=scope.cache,
    )
    repo = gathered.document.get("repository") or scope.repository or "the repository"
    source = Source(
        f"GitHub deployments of `{repo}` (environment `{scope.environment}`)",
        None,
        gathered.requests,
        gathered.rate_remaining,
        gathered.rate_limit,
    )
    assert source.budget is not None
    session.note(source.budget)
    history = dora.parse_history(
        gathered.document, f"the history gathered from {repo}", _kinds(policy)
    )
    return history, source


def _kinds(policy: Policy) -> tuple[str, ...]:
    """The source's five release types and any the policy adds: the writer records the type."""
    return tuple(dict.fromkeys([*dora.KINDS, *policy.release_types]))


def parse_now(text: str | None, env: dict[str, str]) -> datetime:
    """`--now`, else `RELEASE_ACTIONS_NOW`, else the clock: a time without an offset is
    refused, as "today" would be read in the wrong zone."""
    raw = (text or env.get("RELEASE_ACTIONS_NOW") or "").strip()
    if not raw:
        return datetime.now(UTC)
    try:
        return dora.parse_time(raw)
    except ValueError as exc:
        raise ReleaseMetricsError(
            f"`--now` (or `RELEASE_ACTIONS_NOW`): {exc}.",
            hint="Such as `2026-05-01T10:00:00+09:00`.",
        ) from None


def period_of(
    policy: Policy, now: datetime, *, since: str | None, start: str | None, end: str | None
) -> dora.Period:
    """`--since Nd` (the N calendar days ending today in the policy's zone), or `--from` and
    `--to` (both included); `90d` when none is given."""
    zone, name = policy.calendar.tz, policy.calendar.timezone
    if start is not None or end is not None:
        if since is not None:
            raise dora.PeriodError("Give `--since` or `--from` and `--to`, not both.")
        if start is None or end is None:
            raise dora.PeriodError(
                "`--from` and `--to` go together.",
                hint="Such as `--from 2026-04-01 --to 2026-04-30` (both days included).",
            )
        return dora.date_period(start, end, zone, name)
    today = now.astimezone(zone).date()
    return dora.since_period(dora.parse_since(since or "90d"), today, zone, name)


# -- the report ------------------------------------------------------------------------------


def _duration(seconds: float | None) -> str:
    """`3h 30m`, `1d 40m`, `45s`: the two largest units that are not zero, for a person."""
    if seconds is None:
        return "–"
    total = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, total = divmod(total, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return " ".join(parts[:2]) or "0s"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} %"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}/day"


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


# How each figure reads, by the suffix of its key.
def shown(key: str, value: float | None) -> str:
    if key.endswith("_s"):
        return _duration(value)
    if key.endswith("_percent"):
        return _percent(value)
    if key.endswith("_per_day"):
        return _rate(value)
    return _number(value)


def _cell(value: Any) -> str:
    """Text from the history (a trigger, a version) made safe inside a table cell."""
    text = "–" if value is None or value == "" else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", "").replace("\n", " ")


def _target(target: dict[str, Any], key: str) -> str:
    rule = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}[target["rule"]]
    met = {True: "met", False: "**not met**", None: "no data"}[target["met"]]
    return f"{rule} {shown(key, target['target'])}: {met}"


def _series(values: list[float | None], scale: float = 1.0) -> str:
    # Mermaid's xychart has no gaps: a week without data is drawn at 0 (the table says –).
    return ", ".join(_number(round((v or 0) / scale, 2)) for v in values)


def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    from release_actions.integrations.notify import BUILTIN_TEMPLATES

    env = Environment(
        loader=FileSystemLoader(str(BUILTIN_TEMPLATES)),
        undefined=StrictUndefined,
        autoescape=False,  # noqa: S701 - Markdown, not HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        cell=_cell,
        duration=_duration,
        percent=_percent,
        rate=_rate,
        number=_number,
        target=_target,
        series=_series,
    )
    env.globals["shown"] = shown
    return env


def render(template: str, context: dict[str, Any]) -> str:
    """A built-in template rendered strictly: a name it lacks is an error, not a blank."""
    text: str = _environment().get_template(template).render(**context)
    return text


def report_context(
    figures: dora.Figures, environment: str, source: Source, *, level: int = 2
) -> dict[str, Any]:
    """Every variable of templates/dora_report.md.j2, each defined."""
    data = figures.to_dict()
    weekly = data["weekly"]
    zone = figures.period.zone

    def local(text: str | None) -> str:
        # The report is read where the policy's calendar is: its times are local there.
        if text is None:
            return "–"
        return f"{dora.parse_time(text).astimezone(zone):%Y-%m-%d %H:%M}"

    rollbacks = [{**r, "detected_local": local(r["detected_at"])} for r in data["rollbacks"]]
    slowest = [
        {
            **c,
            "committed_local": local(c["committed_at"]),
            "deployed_local": local(c["deployed_at"]),
        }
        for c in data["slowest_changes"]
    ]
    return {
        "level": level,
        "environment": environment,
        "period": data["period"],
        "source": source.description,
        "budget": source.budget,
        "keys": {k: data[k] for k in figures.key_figures()},
        "tiers": data["tiers"],
        "targets": data["targets"],
        "quality": data["quality"],
        "quality_targets": data["quality_targets"],
        "weeks": [w["week"] for w in weekly],
        "weekly": weekly,
        "weekly_deployments": [w["deployments"] for w in weekly],
        "weekly_lead_time": [w["lead_time_median_s"] for w in weekly],
        "weekly_failure_rate": [w["change_failure_rate_percent"] for w in weekly],
        "by_trigger": data["rollbacks_by_trigger"],
        "rollbacks": rollbacks[:MAX_LISTED_ROLLBACKS],
        "more_rollbacks": max(len(rollbacks) - MAX_LISTED_ROLLBACKS, 0),
        "unrecovered": [r for r in rollbacks if r["recovered_at"] is None],
        "slowest": slowest,
        "blockers": data["blockers"],
    }


def report_markdown(
    figures: dora.Figures, environment: str, source: Source, *, level: int = 2
) -> str:
    return render("dora_report.md.j2", report_context(figures, environment, source, level=level))


# -- metrics dora ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DoraRequest:
    scope: Scope
    now: datetime
    since: str | None = None
    start: str | None = None
    end: str | None = None


@dataclass
class DoraResult:
    figures: dora.Figures
    environment: str
    source: Source
    markdown: str
    unfinished: tuple[str, ...] = ()
    datadog: str | None = None  # submitted, would submit, or None when not asked

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.figures.to_dict(),
            "environment": self.environment,
            "source": self.source.to_dict(),
            "unfinished": list(self.unfinished),
            "datadog": self.datadog,
        }


def run_dora(session: Session, policy: Policy, request: DoraRequest) -> DoraResult:
    """The figures of the period: the report for a person and, when the policy says so, the
    gauges in Datadog."""
    period = period_of(
        policy, request.now, since=request.since, start=request.start, end=request.end
    )
    history, source = load_history(session, policy, request.scope, period.since, period.until)
    figures = dora.compute(history, period, policy.reporting)
    result = DoraResult(
        figures,
        request.scope.environment,
        source,
        report_markdown(figures, request.scope.environment, source),
        history.unfinished,
    )
    if policy.reporting.datadog:
        result.datadog = submit_to_datadog(session, figures, request.scope)
    return result


def submit_to_datadog(session: Session, figures: dora.Figures, scope: Scope) -> str:
    """The figures as `release_actions.dora.*` gauges (policy `reporting.datadog`)."""
    tags = [f"environment:{scope.environment}"]
    repository = scope.repository or session.env.get("GITHUB_REPOSITORY")
    if repository:
        tags.append(f"repository:{repository}")
    if session.dry_run:
        session.note(f"Datadog: would submit {len(figures.flat())} gauges ({', '.join(tags)})")
        return "would submit"
    # The Datadog client is imported only when the policy asks for the submission.
    from release_actions.integrations.dora_datadog import submit

    sent = submit(figures.flat(), tags, session.env)
    session.note(f"Datadog: submitted {len(sent)} gauges ({', '.join(tags)})")
    return "submitted"


# -- metrics review --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewRequest:
    scope: Scope
    now: datetime
    month: str | None = None
    open_issue: bool = False


@dataclass
class ReviewResult:
    month: str
    environment: str
    months: list[tuple[str, dora.Figures]]
    source: Source
    markdown: str
    issue_body: str
    issue_title: str
    issue: Any = None  # integrations.issues.MarkedIssue when --open-issue ran
    unfinished: tuple[str, ...] = field(default_factory=tuple)

    @property
    def figures(self) -> dora.Figures:
        return self.months[-1][1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "environment": self.environment,
            **self.figures.to_dict(),
            "months": {label: {**f.key_figures(), **f.quality()} for label, f in self.months},
            "trend": dora.trend(self.months),
            "source": self.source.to_dict(),
            "issue": None if self.issue is None else self.issue.to_dict(),
            "unfinished": list(self.unfinished),
        }


def review_month(text: str | None, now: datetime, policy: Policy) -> tuple[int, int]:
    """`--month`, else the month before the current one in the policy's zone: a review
    scheduled on the first of the month reviews the month that just ended."""
    if text:
        return dora.parse_month(text)
    today: date = now.astimezone(policy.calendar.tz).date()
    return dora.previous_month(today.year, today.month)


def run_review(session: Session, policy: Policy, request: ReviewRequest) -> ReviewResult:
    """The month's report, its trend over the three months before, and its issue."""
    year, month = review_month(request.month, request.now, policy)
    zone, name = policy.calendar.tz, policy.calendar.timezone
    periods = []
    for back in range(REVIEW_MONTHS - 1, -1, -1):
        y, m = dora.previous_month(year, month, back)
        periods.append((f"{y:04d}-{m:02d}", dora.month_period(y, m, zone, name)))
    history, source = load_history(
        session, policy, request.scope, periods[0][1].since, periods[-1][1].until
    )
    months = [(label, dora.compute(history, p, policy.reporting)) for label, p in periods]
    label = periods[-1][0]
    environment = request.scope.environment
    default_env = environment == policy.reporting.environment
    key = label if default_env else f"{label}/{environment}"
    title = f"Release review {label}" + ("" if default_env else f" ({environment})")
    context = {
        "title": title,
        "month": label,
        "environment": environment,
        "months": [m for m, _ in months],
        "trend": dora.trend(months),
        "report": report_markdown(months[-1][1], environment, source, level=3),
    }
    markdown = render("release_review.md.j2", {**context, "marker": ""})
    body = render("release_review.md.j2", {**context, "marker": REVIEW_MARKER.format(key=key)})
    result = ReviewResult(
        label, environment, months, source, markdown, body, title, None, history.unfinished
    )
    if request.open_issue:
        from release_actions.integrations import github as gh
        from release_actions.integrations.issues import keep_ticks, upsert_marked

        _, repository = gh.open_repo(session.env, request.scope.repository, session.runtime.mask)
        result.issue = upsert_marked(
            repository,
            label=REVIEW_LABEL,
            marker=_REVIEW_MARKER,
            key=key,
            title=title,
            body=body,
            dry_run=session.dry_run,
            keep=keep_ticks,  # the agenda items ticked in the review meeting stay ticked
        )
        session.note(f"review issue: {result.issue.action}: {title}")
    return result


def compact(data: dict[str, Any]) -> str:
    """The figures for a step output: one line of JSON, the lists left out."""
    keep = {k: v for k, v in data.items() if not isinstance(v, list)}
    return json.dumps(keep, ensure_ascii=False, separators=(",", ":"), default=str)
