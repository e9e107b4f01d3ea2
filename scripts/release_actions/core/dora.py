"""DORA's four keys and the release quality metrics of source §11, from a deployment history."""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any, Literal

from release_actions.core.policy import DoraTargets, QualityTargets, ReportingPolicy
from release_actions.errors import PolicyError, PolicyIssue

KINDS = ("regular", "hotfix", "security", "config", "infrastructure")
STATUSES = ("success", "failure", "rolled_back")
CANARIES = ("passed", "failed")
Status = Literal["success", "failure", "rolled_back"]
Tier = Literal["elite", "high", "medium", "low"]

HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY
# "A month" in DORA's tiers is the longest calendar month, so that one deployment in any
# month (31 days too) is "once a month" and a lead time of 30 days is still under a month.
MONTH_DAYS = 31
MONTH = MONTH_DAYS * DAY
SLOWEST_CHANGES = 10
_SINCE = re.compile(r"^\s*(\d+)\s*d\s*$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class DoraInputError(PolicyError):
    """Raised when a deployment history is not JSON, or one of its fields is missing or
    malformed; each issue names the file, the JSON path (`deployments[3].finished_at`) and
    what is wrong."""

    title = "Invalid deployment history"


class PeriodError(PolicyError):
    """Raised when `--since`, `--from`/`--to` or `--month` do not name a period."""

    title = "Invalid period"


# -- the document ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Commit:
    sha: str
    committed_at: datetime


@dataclass(frozen=True)
class Rollback:
    """A rollback of a deployment; ``recovered_at`` None: the service was not seen recover."""

    record: str | None
    detected_at: datetime
    recovered_at: datetime | None
    trigger: str | None
    reason: str | None = None
    # The record's own rollback duration (`duration.rollback_seconds` of source §6.4), when
    # the gatherer carries it; the optional field `rollback.rollback_seconds`.
    rollback_seconds: float | None = None

    @property
    def restore_seconds(self) -> float | None:
        if self.recovered_at is None:
            return None
        return (self.recovered_at - self.detected_at).total_seconds()

    @property
    def duration_seconds(self) -> float | None:
        """The rollback's own duration: the record's, else detection to recovery."""
        if self.rollback_seconds is not None:
            return self.rollback_seconds
        return self.restore_seconds


@dataclass(frozen=True)
class Deployment:
    id: str
    version: str
    kind: str
    """One of `KINDS`, or a release type the policy adds."""
    sha: str | None
    started_at: datetime
    finished_at: datetime
    status: Status
    commits: tuple[Commit, ...] = ()
    canary: Literal["passed", "failed"] | None = None
    rollback: Rollback | None = None

    @property
    def duration_seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def failed_change(self) -> bool:
        """Counted by the change failure rate: rolled back, or a hotfix (once if both)."""
        return self.status == "rolled_back" or self.kind == "hotfix"

    @property
    def order(self) -> tuple[datetime, str]:
        # The id breaks a tie, so that the earliest deployment never depends on list order.
        return (self.finished_at, self.id)


@dataclass(frozen=True)
class Blocker:
    number: int
    opened_at: datetime
    version: str | None


@dataclass(frozen=True)
class History:
    deployments: tuple[Deployment, ...]
    blockers: tuple[Blocker, ...] = ()
    # Deployments without `finished_at` (still running when the history was read): they
    # belong to no period until they finish.
    unfinished: tuple[str, ...] = ()


def parse_time(value: Any) -> datetime:
    """An ISO 8601 time with an offset (`Z` or `+09:00`); a time without one is refused, as it
    would be read hours off."""
    if not isinstance(value, str):
        raise ValueError(
            f"expected an ISO 8601 time with an offset, got {_shown(value)}",
        )
    text = value.strip()
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{value!r} is not an ISO 8601 time, such as `2026-04-01T10:00:00+09:00`"
        ) from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{value!r} has no UTC offset; add one, such as `Z` or `+09:00`")
    return at


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


class _Reader:
    """Collects every problem of a document, each with its JSON path, then raises them all."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.issues: list[PolicyIssue] = []

    def bad(self, path: str, message: str) -> None:
        self.issues.append(PolicyIssue(self.source, None, path, message))

    def text(self, raw: Mapping[str, Any], key: str, at: str, *, null: bool = False) -> str | None:
        value = raw.get(key)
        if value is None and null:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
            self.bad(f"{at}.{key}", f"expected a non-empty string, got {_shown(value)}")
            return None
        return str(value).strip()

    def time(self, raw: Mapping[str, Any], key: str, at: str, *, null: bool = False) -> Any:
        value = raw.get(key)
        if value is None and null:
            return None
        if key not in raw:
            self.bad(f"{at}.{key}", "missing: expected an ISO 8601 time with an offset")
            return None
        try:
            return parse_time(value)
        except ValueError as exc:
            self.bad(f"{at}.{key}", str(exc))
            return None

    def choice(
        self, raw: Mapping[str, Any], key: str, at: str, allowed: Sequence[str], *, null: bool
    ) -> Any:
        value = raw.get(key)
        if value is None and null:
            return None
        if value not in allowed:
            listed = ", ".join(f"`{a}`" for a in allowed) + (" or null" if null else "")
            self.bad(f"{at}.{key}", f"{_shown(value)} is not one of {listed}")
            return None
        return value

    def seconds(self, raw: Mapping[str, Any], key: str, at: str) -> float | None:
        value = raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            self.bad(f"{at}.{key}", f"expected a number of seconds >= 0, got {_shown(value)}")
            return None
        if not math.isfinite(value):
            self.bad(f"{at}.{key}", f"expected a finite number of seconds, got {value}")
            return None
        return float(value)


def parse_history_text(text: str, source: str, kinds: Sequence[str] = KINDS) -> History:
    """The history in a JSON document given as text; see `parse_history`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DoraInputError(
            f"The deployment history {source} is not JSON: {exc.msg} at line {exc.lineno}, "
            f"column {exc.colno}.",
            [PolicyIssue(source, exc.lineno, "", f"not JSON: {exc.msg}")],
            hint="Write it with `release-actions metrics export > FILE`.",
        ) from None
    return parse_history(data, source, kinds)


def parse_history(data: Any, source: str, kinds: Sequence[str] = KINDS) -> History:
    """The deployments and blockers of a history `{"deployments": [...], "blockers": [...]}`.

    Every field is checked and every problem collected, each with its JSON path, then raised
    together: a report built on half a document would be wrong without saying so. Unknown
    keys (`generated_at`, `environment`, ...) are ignored. ``kinds`` are the release types
    a deployment may have: the source's five, and any a policy adds.
    """
    reader = _Reader(source)
    if not isinstance(data, dict) or not isinstance(data.get("deployments"), list):
        got = type(data).__name__ if not isinstance(data, dict) else "no `deployments` list"
        raise DoraInputError(
            f"The deployment history {source} is not an object with a `deployments` list ({got}).",
            [PolicyIssue(source, None, "deployments", "expected a list of deployments")],
            hint='Expected `{"deployments": [...], "blockers": [...]}` as '
            "`release-actions metrics export` writes it.",
        )
    deployments = []
    unfinished: list[str] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(data["deployments"]):
        at = f"deployments[{index}]"
        one = _deployment(reader, raw, at, kinds)
        # Checked on every entry, valid or not, so that each duplicate is named.
        given = raw.get("id") if isinstance(raw, dict) else None
        ident = str(given).strip() if isinstance(given, str | int) else ""
        if ident and ident in seen:
            reader.bad(f"{at}.id", f"`{ident}` is also the id of deployments[{seen[ident]}]")
            continue
        seen.setdefault(ident, index)
        if isinstance(one, str):
            unfinished.append(one)
        elif one is not None:
            deployments.append(one)
    blockers = []
    raw_blockers = data.get("blockers", [])
    if raw_blockers is None:
        raw_blockers = []
    if not isinstance(raw_blockers, list):
        reader.bad("blockers", f"expected a list of blockers, got {_shown(raw_blockers)}")
        raw_blockers = []
    for index, raw in enumerate(raw_blockers):
        blocker = _blocker(reader, raw, f"blockers[{index}]")
        if blocker is not None:
            blockers.append(blocker)
    if reader.issues:
        count = len(reader.issues)
        first = reader.issues[0]
        raise DoraInputError(
            f"The deployment history {source} has {count} problem{'s' * (count != 1)}; "
            f"the first: `{first.key}`: {first.message}.",
            reader.issues,
            hint="Each deployment has `id`, `version`, `kind`, `sha`, `started_at`, "
            "`finished_at` (ISO 8601 with an offset), `status`, `commits`, `canary` and "
            "`rollback` (docs/metrics.md).",
        )
    return History(tuple(deployments), tuple(blockers), tuple(unfinished))


def _deployment(
    reader: _Reader, raw: Any, at: str, kinds: Sequence[str] = KINDS
) -> Deployment | str | None:
    """The deployment; its id alone while it runs (`finished_at` null); None when invalid."""
    if not isinstance(raw, dict):
        reader.bad(at, f"expected an object, got {_shown(raw)}")
        return None
    before = len(reader.issues)
    ident = reader.text(raw, "id", at)
    version = reader.text(raw, "version", at)
    kind = reader.choice(raw, "kind", at, kinds, null=False)
    sha = reader.text(raw, "sha", at, null=True)
    started = reader.time(raw, "started_at", at)
    finished = reader.time(raw, "finished_at", at, null=True)
    if "finished_at" not in raw:
        reader.bad(
            f"{at}.finished_at", "missing: expected an ISO 8601 time with an offset, or null"
        )
    status = reader.choice(raw, "status", at, STATUSES, null=False)
    canary = reader.choice(raw, "canary", at, CANARIES, null=True)
    if started is not None and finished is not None and finished < started:
        reader.bad(f"{at}.finished_at", f"{raw['finished_at']} is before `started_at`")
    commits = _commits(reader, raw.get("commits"), f"{at}.commits", finished)
    rollback = _rollback(reader, raw.get("rollback"), f"{at}.rollback")
    if len(reader.issues) > before:
        return None
    assert ident is not None
    assert version is not None
    assert commits is not None
    if finished is None:
        return ident
    return Deployment(
        id=ident,
        version=version,
        kind=kind,
        sha=sha,
        started_at=started,
        finished_at=finished,
        status=status,
        commits=commits,
        canary=canary,
        rollback=rollback,
    )


def _commits(
    reader: _Reader, raw: Any, at: str, finished: datetime | None
) -> tuple[Commit, ...] | None:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        reader.bad(at, f"expected a list of commits, got {_shown(raw)}")
        return None
    out: list[Commit] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        where = f"{at}[{index}]"
        if not isinstance(item, dict):
            reader.bad(where, f"expected an object `{{sha, committed_at}}`, got {_shown(item)}")
            continue
        sha = reader.text(item, "sha", where)
        committed = reader.time(item, "committed_at", where)
        if sha is None or committed is None:
            continue
        if sha in seen:
            reader.bad(f"{where}.sha", f"`{sha}` is listed twice in this deployment")
            continue
        if finished is not None and committed > finished:
            reader.bad(
                f"{where}.committed_at",
                f"{item['committed_at']} is after the deployment's `finished_at`: a commit "
                "cannot reach production before it exists",
            )
            continue
        seen.add(sha)
        out.append(Commit(sha, committed))
    return tuple(out)


def _rollback(reader: _Reader, raw: Any, at: str) -> Rollback | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        reader.bad(at, f"expected null or an object, got {_shown(raw)}")
        return None
    before = len(reader.issues)
    record = reader.text(raw, "record", at, null=True)
    detected = reader.time(raw, "detected_at", at)
    recovered = reader.time(raw, "recovered_at", at, null=True)
    trigger, reason = _trigger(reader, raw, at)
    seconds = reader.seconds(raw, "rollback_seconds", at)
    if detected is not None and recovered is not None and recovered < detected:
        reader.bad(f"{at}.recovered_at", f"{raw['recovered_at']} is before `detected_at`")
    if len(reader.issues) > before:
        return None
    return Rollback(record, detected, recovered, trigger, reason, seconds)


def _trigger(reader: _Reader, raw: Mapping[str, Any], at: str) -> tuple[str | None, str | None]:
    """`trigger` as a word (`error_rate`), or as the record has it: `{type, reason}`; a
    `reason` beside it is kept too."""
    given = raw.get("trigger")
    if isinstance(given, dict):
        kind = reader.text(given, "type", f"{at}.trigger", null=True)
        reason = reader.text(given, "reason", f"{at}.trigger", null=True)
        return kind, reason
    kind = reader.text(raw, "trigger", at, null=True)
    reason = reader.text(raw, "reason", at, null=True) if raw.get("reason") else None
    return kind, reason


def _blocker(reader: _Reader, raw: Any, at: str) -> Blocker | None:
    if not isinstance(raw, dict):
        reader.bad(at, f"expected an object `{{number, opened_at, version}}`, got {_shown(raw)}")
        return None
    number = raw.get("number")
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        reader.bad(f"{at}.number", f"expected the issue's number, got {_shown(number)}")
    opened = reader.time(raw, "opened_at", at)
    version = reader.text(raw, "version", at, null=True)
    if not isinstance(number, int) or isinstance(number, bool) or number < 1 or opened is None:
        return None
    return Blocker(number, opened, version)


# -- periods ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Calendar days ``start`` to ``end``, both included, in the time zone ``zone``."""

    start: date
    end: date
    zone: tzinfo
    zone_name: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def day_of(self, at: datetime) -> date:
        return at.astimezone(self.zone).date()

    def contains(self, at: datetime) -> bool:
        return self.start <= self.day_of(at) <= self.end

    @property
    def since(self) -> datetime:
        """The period's first instant: midnight of ``start`` in its zone."""
        return datetime.combine(self.start, datetime.min.time(), self.zone)

    @property
    def until(self) -> datetime:
        """The first instant after the period: midnight after ``end``."""
        return datetime.combine(self.end + timedelta(days=1), datetime.min.time(), self.zone)

    @property
    def label(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "timezone": self.zone_name,
            "days": self.days,
        }


def parse_since(text: str) -> int:
    """`90d` -> 90: a number of calendar days, at least one."""
    m = _SINCE.match(text or "")
    if not m or int(m[1]) < 1:
        raise PeriodError(
            f"`--since {text}` is not a number of days such as `90d`.",
            hint="Use `--since 90d` (the 90 days ending today), or `--from DATE --to DATE`.",
        )
    return int(m[1])


def since_period(days: int, today: date, zone: tzinfo, zone_name: str) -> Period:
    """The ``days`` calendar days ending with ``today`` (included): `90d` on 2026-04-30 is
    2026-01-31 to 2026-04-30."""
    if days < 1:
        raise PeriodError(f"A period of {days} days is empty.")
    return Period(today - timedelta(days=days - 1), today, zone, zone_name)


def date_period(start: str, end: str, zone: tzinfo, zone_name: str) -> Period:
    """`--from` and `--to`: calendar days, both included."""

    def day(option: str, text: str) -> date:
        try:
            return date.fromisoformat(text.strip())
        except ValueError:
            raise PeriodError(
                f"`{option} {text}` is not a date such as `2026-04-01`.",
                hint=f"Days are calendar days in {zone_name}, both included.",
            ) from None

    first, last = day("--from", start), day("--to", end)
    if last < first:
        raise PeriodError(f"`--to {end}` is before `--from {start}`.")
    return Period(first, last, zone, zone_name)


def parse_month(text: str) -> tuple[int, int]:
    m = _MONTH.match((text or "").strip())
    if not m or not 1 <= int(m[2]) <= 12:
        raise PeriodError(
            f"`--month {text}` is not a month such as `2026-11`.",
            hint="Use YYYY-MM; left out, the review is of the month before the current one.",
        )
    return int(m[1]), int(m[2])


def month_period(year: int, month: int, zone: tzinfo, zone_name: str) -> Period:
    first = date(year, month, 1)
    following = date(year + (month == 12), month % 12 + 1, 1)
    return Period(first, following - timedelta(days=1), zone, zone_name)


def previous_month(year: int, month: int, back: int = 1) -> tuple[int, int]:
    index = year * 12 + (month - 1) - back
    return index // 12, index % 12 + 1


# -- figures ---------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def mean(values: Sequence[float]) -> float | None:
    return float(statistics.fmean(values)) if values else None


def p90(values: Sequence[float]) -> float | None:
    """The nearest-rank 90th percentile: the smallest value with 90 % of values at or below."""
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[max(math.ceil(0.9 * len(ordered)), 1) - 1])


def percent(part: int, whole: int) -> float | None:
    return 100.0 * part / whole if whole else None


def frequency_tier(per_day: float | None) -> Tier | None:
    if per_day is None:
        return None
    if per_day > 1:
        return "elite"
    if per_day >= 1 / 7:
        return "high"
    if per_day >= 1 / MONTH_DAYS:
        return "medium"
    return "low"


def lead_time_tier(seconds: float | None) -> Tier | None:
    if seconds is None:
        return None
    if seconds < HOUR:
        return "elite"
    if seconds < WEEK:
        return "high"
    if seconds < MONTH:
        return "medium"
    return "low"


def failure_rate_tier(rate: float | None) -> Tier | None:
    if rate is None:
        return None
    if rate < 15:
        return "elite"
    if rate <= 30:
        return "high"
    if rate <= 45:
        return "medium"
    return "low"


def restore_tier(seconds: float | None) -> Tier | None:
    if seconds is None:
        return None
    if seconds < HOUR:
        return "elite"
    if seconds < DAY:
        return "high"
    if seconds < WEEK:
        return "medium"
    return "low"


@dataclass(frozen=True)
class Change:
    """A commit where it first reached production."""

    sha: str
    committed_at: datetime
    deployment: Deployment

    @property
    def lead_time_seconds(self) -> float:
        return (self.deployment.finished_at - self.committed_at).total_seconds()


def first_reach(deployments: Iterable[Deployment]) -> dict[str, Change]:
    """Each commit at the earliest-finished deployment that lists it (ties: the lower id)."""
    out: dict[str, Change] = {}
    for deployment in sorted(deployments, key=lambda d: d.order):
        for commit in deployment.commits:
            if commit.sha not in out:
                out[commit.sha] = Change(commit.sha, commit.committed_at, deployment)
    return out


def _normalized(version: str) -> str:
    """The release a version belongs to: `v1.4.0-rc.2+b7` is `1.4.0`, so a blocker found
    while the release candidate was in staging counts for the release it blocked."""
    bare = version[1:] if version[:1] in ("v", "V") and version[1:2].isdigit() else version
    core = bare.split("+", 1)[0].split("-", 1)[0]
    parts = core.split(".")
    return core if len(parts) == 3 and all(p.isdigit() for p in parts) else bare


@dataclass(frozen=True)
class Target:
    """One figure against one target: `rule` is `>=`, `>`, `<` or `<=`."""

    name: str
    value: float | None
    target: float
    rule: str

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return {
            ">=": self.value >= self.target,
            ">": self.value > self.target,
            "<": self.value < self.target,
            "<=": self.value <= self.target,
        }[self.rule]

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "target": self.target, "rule": self.rule, "met": self.met}


def dora_targets(figures: Mapping[str, float | None], targets: DoraTargets) -> list[Target]:
    """Source §1.2's column against the figures, each rule as the policy's key says."""
    return [
        Target(
            "deployment_frequency_per_day",
            figures["deployment_frequency_per_day"],
            targets.deployments_per_day,
            ">=",
        ),
        Target("lead_time_median_s", figures["lead_time_median_s"], targets.lead_time_seconds, "<"),
        Target(
            "change_failure_rate_percent",
            figures["change_failure_rate_percent"],
            targets.change_failure_rate_percent,
            "<",
        ),
        Target("restore_median_s", figures["restore_median_s"], targets.restore_seconds, "<="),
        Target("mean_rollback_s", figures["mean_rollback_s"], targets.rollback_seconds, "<="),
    ]


def quality_targets(quality: Mapping[str, float | None], targets: QualityTargets) -> list[Target]:
    """Source §11.2: each figure above (`>`) or below (`<`) its target, as the source writes."""
    return [
        Target(
            "deployment_success_rate_percent",
            quality["deployment_success_rate_percent"],
            targets.deployment_success_rate_percent,
            ">",
        ),
        Target(
            "canary_success_rate_percent",
            quality["canary_success_rate_percent"],
            targets.canary_success_rate_percent,
            ">",
        ),
        Target(
            "rollback_rate_percent",
            quality["rollback_rate_percent"],
            targets.rollback_rate_percent,
            "<",
        ),
        Target("mean_rollback_s", quality["mean_rollback_s"], targets.mean_rollback_seconds, "<"),
        Target(
            "blockers_per_release",
            quality["blockers_per_release"],
            targets.blockers_per_release,
            "<",
        ),
        Target(
            "deployment_duration_median_s",
            quality["deployment_duration_median_s"],
            targets.deployment_duration_seconds,
            "<",
        ),
    ]


@dataclass(frozen=True)
class Week:
    label: str
    deployments: int
    lead_time_median_s: float | None
    change_failure_rate_percent: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "week": self.label,
            "deployments": self.deployments,
            "lead_time_median_s": self.lead_time_median_s,
            "change_failure_rate_percent": self.change_failure_rate_percent,
        }


def _iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass
class Figures:
    """Everything the report says about one period."""

    period: Period
    deployments: list[Deployment]
    changes: list[Change]
    blockers: list[Blocker]
    targets: dict[str, list[Target]] = field(default_factory=dict)
    quality_targets: list[Target] = field(default_factory=list)

    # The four keys --------------------------------------------------------------------

    @property
    def count(self) -> int:
        return len(self.deployments)

    @property
    def frequency(self) -> float:
        return self.count / self.period.days

    @property
    def lead_times(self) -> list[float]:
        return [c.lead_time_seconds for c in self.changes]

    @property
    def failed_changes(self) -> list[Deployment]:
        return [d for d in self.deployments if d.failed_change]

    @property
    def failure_rate(self) -> float | None:
        return percent(len(self.failed_changes), self.count)

    @property
    def rollbacks(self) -> list[tuple[Deployment, Rollback]]:
        return [(d, d.rollback) for d in self.deployments if d.rollback is not None]

    @property
    def restore_times(self) -> list[float]:
        return [s for _, r in self.rollbacks if (s := r.restore_seconds) is not None]

    @property
    def unrecovered(self) -> list[tuple[Deployment, Rollback]]:
        return [(d, r) for d, r in self.rollbacks if r.recovered_at is None]

    # Quality ---------------------------------------------------------------------------

    @property
    def rollback_durations(self) -> list[float]:
        return [s for _, r in self.rollbacks if (s := r.duration_seconds) is not None]

    def quality(self) -> dict[str, float | None]:
        canaries = [d.canary for d in self.deployments if d.canary is not None]
        n = self.count
        return {
            "deployment_success_rate_percent": percent(
                sum(d.status == "success" for d in self.deployments), n
            ),
            "canary_success_rate_percent": percent(canaries.count("passed"), len(canaries)),
            "rollback_rate_percent": percent(
                sum(d.status == "rolled_back" for d in self.deployments), n
            ),
            "mean_rollback_s": mean(self.rollback_durations),
            "blockers_per_release": len(self.blockers) / n if n else None,
            "deployment_duration_median_s": median([d.duration_seconds for d in self.deployments]),
        }

    def key_figures(self) -> dict[str, Any]:
        restore = self.restore_times
        return {
            "deployments": self.count,
            "days": self.period.days,
            "deployment_frequency_per_day": self.frequency,
            "lead_time_median_s": median(self.lead_times),
            "lead_time_p90_s": p90(self.lead_times),
            "lead_time_commits": len(self.changes),
            "change_failure_rate_percent": self.failure_rate,
            "failed_changes": len(self.failed_changes),
            "restore_median_s": median(restore),
            "restore_mean_s": mean(restore),
            "restored": len(restore),
            "unrecovered": len(self.unrecovered),
        }

    def tiers(self) -> dict[str, Tier | None]:
        keys = self.key_figures()
        return {
            "frequency": frequency_tier(keys["deployment_frequency_per_day"]),
            "lead_time": lead_time_tier(keys["lead_time_median_s"]),
            "change_failure_rate": failure_rate_tier(keys["change_failure_rate_percent"]),
            "restore": restore_tier(keys["restore_median_s"]),
        }

    # Series and lists ------------------------------------------------------------------

    def weekly(self) -> list[Week]:
        """Each ISO week (in the period's zone) that the period touches, in order."""
        weeks: dict[str, list[Deployment]] = {}
        day = self.period.start
        while day <= self.period.end:
            weeks.setdefault(_iso_week(day), [])
            day += timedelta(days=1)
        for d in self.deployments:
            weeks[_iso_week(self.period.day_of(d.finished_at))].append(d)
        out = []
        for label, members in weeks.items():
            ids = {d.id for d in members}
            leads = [c.lead_time_seconds for c in self.changes if c.deployment.id in ids]
            failed = sum(d.failed_change for d in members)
            out.append(Week(label, len(members), median(leads), percent(failed, len(members))))
        return out

    def by_trigger(self) -> list[dict[str, Any]]:
        """Rollbacks grouped by their trigger: the most frequent first."""
        groups: dict[str, list[Rollback]] = {}
        for _, r in self.rollbacks:
            groups.setdefault(r.trigger or "unknown", []).append(r)
        rows = []
        for trigger, members in groups.items():
            restore = [s for r in members if (s := r.restore_seconds) is not None]
            rows.append(
                {
                    "trigger": trigger,
                    "rollbacks": len(members),
                    "restored": len(restore),
                    "restore_median_s": median(restore),
                }
            )
        return sorted(rows, key=lambda r: (-r["rollbacks"], r["trigger"]))

    def rollback_list(self) -> list[dict[str, Any]]:
        rows = []
        for d, r in sorted(self.rollbacks, key=lambda p: (p[1].detected_at, p[0].id)):
            rows.append(
                {
                    "record": r.record,
                    "deployment": d.id,
                    "version": d.version,
                    "kind": d.kind,
                    "trigger": r.trigger,
                    "reason": r.reason,
                    "detected_at": iso(r.detected_at),
                    "recovered_at": iso(r.recovered_at),
                    "restore_s": r.restore_seconds,
                    "rollback_s": r.duration_seconds,
                }
            )
        return rows

    def slowest(self, limit: int = SLOWEST_CHANGES) -> list[dict[str, Any]]:
        ordered = sorted(self.changes, key=lambda c: (-c.lead_time_seconds, c.sha))
        return [
            {
                "sha": c.sha,
                "version": c.deployment.version,
                "deployment": c.deployment.id,
                "lead_time_s": c.lead_time_seconds,
                "committed_at": iso(c.committed_at),
                "deployed_at": iso(c.deployment.finished_at),
            }
            for c in ordered[:limit]
        ]

    def to_dict(self) -> dict[str, Any]:
        """The `--json` result: flat figures first, then the detail."""
        keys = self.key_figures()
        return {
            **keys,
            "tiers": self.tiers(),
            "targets": {
                year: {t.name: t.to_dict() for t in targets}
                for year, targets in self.targets.items()
            },
            "quality": self.quality(),
            "quality_targets": {t.name: t.to_dict() for t in self.quality_targets},
            "period": self.period.to_dict(),
            "weekly": [w.to_dict() for w in self.weekly()],
            "rollbacks_by_trigger": self.by_trigger(),
            "rollbacks": self.rollback_list(),
            "slowest_changes": self.slowest(),
            "blockers": [b.number for b in self.blockers],
        }

    def flat(self) -> dict[str, float]:
        """The numbers that have a value, as gauges: keys and quality, without nulls."""
        merged: dict[str, Any] = {**self.key_figures(), **self.quality()}
        return {k: float(v) for k, v in merged.items() if v is not None and k != "days"}


def compute(history: History, period: Period, reporting: ReportingPolicy) -> Figures:
    """The figures of ``period``: a deployment belongs to the period in which it finished.

    A commit counts once, at the earliest-finished deployment of the whole history that
    lists it, and only when that deployment is in the period; a rollback counts with the
    deployment it rolled back.
    """
    inside = sorted(
        (d for d in history.deployments if period.contains(d.finished_at)), key=lambda d: d.order
    )
    ids = {d.id for d in inside}
    changes = [c for c in first_reach(history.deployments).values() if c.deployment.id in ids]
    versions = {_normalized(d.version) for d in inside}
    blockers = sorted(
        (
            b
            for b in history.blockers
            if b.version is not None and _normalized(b.version) in versions
        ),
        key=lambda b: b.number,
    )
    unique = list({b.number: b for b in blockers}.values())
    figures = Figures(period, inside, sorted(changes, key=lambda c: c.sha), unique)
    merged: dict[str, float | None] = {**figures.key_figures(), **figures.quality()}
    figures.targets = {
        "year1": dora_targets(merged, reporting.year1),
        "year3": dora_targets(merged, reporting.year3),
    }
    figures.quality_targets = quality_targets(merged, reporting.quality)
    return figures


def iso(at: datetime | None) -> str | None:
    """An instant in UTC, ISO 8601 with `Z`: the same text whatever zone it came in."""
    if at is None:
        return None
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- the monthly review ----------------------------------------------------------------------

# (key, label, higher is better); the trend table's rows, in the report's order.
TREND_ROWS: tuple[tuple[str, str, bool], ...] = (
    ("deployments", "Deployments", True),
    ("deployment_frequency_per_day", "Deployment frequency (/day)", True),
    ("lead_time_median_s", "Lead time for changes (median)", False),
    ("change_failure_rate_percent", "Change failure rate", False),
    ("restore_median_s", "Time to restore (median)", False),
    ("deployment_success_rate_percent", "Deployment success rate", True),
    ("canary_success_rate_percent", "Canary success rate", True),
    ("rollback_rate_percent", "Rollback rate", False),
    ("mean_rollback_s", "Mean rollback time", False),
    ("blockers_per_release", "Blockers per release", False),
    ("deployment_duration_median_s", "Deployment duration (median)", False),
)


def arrow(before: float | None, after: float | None) -> str:
    """`↑`, `↓` or `→` from ``before`` to ``after``; empty when either has no data."""
    if before is None or after is None:
        return ""
    if math.isclose(before, after, rel_tol=1e-9, abs_tol=1e-9):
        return "→"
    return "↑" if after > before else "↓"


def verdict(before: float | None, after: float | None, higher_is_better: bool) -> str | None:
    """`better`, `worse` or `same`; None when either month has no data."""
    if before is None or after is None:
        return None
    if math.isclose(before, after, rel_tol=1e-9, abs_tol=1e-9):
        return "same"
    return "better" if (after > before) == higher_is_better else "worse"


def trend(months: Sequence[tuple[str, Figures]]) -> list[dict[str, Any]]:
    """Each figure of each month (oldest first), its arrow against the month before, and
    whether the last month is better or worse than the one before it."""
    values = [(label, {**f.key_figures(), **f.quality()}) for label, f in months]
    rows = []
    for key, label, higher in TREND_ROWS:
        cells = []
        previous: float | None = None
        for index, (month, figures) in enumerate(values):
            value = figures[key]
            cells.append(
                {
                    "month": month,
                    "value": value,
                    "arrow": arrow(previous, value) if index else "",
                }
            )
            previous = value
        last = cells[-1]["value"]
        before = cells[-2]["value"] if len(cells) > 1 else None
        rows.append(
            {
                "key": key,
                "label": label,
                "higher_is_better": higher,
                "months": cells,
                "last_month": verdict(before, last, higher),
            }
        )
    return rows
