"""The release train (source §2.1, §2.2, §8.1): when each train freezes, stages and ships.

Pure dates from the policy and its release calendar: the same calendar the release gate
reads decides the production day, so a train never plans a day the gate would refuse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from release_actions.core.calendar import Decision, check
from release_actions.core.policy import WEEKDAYS, Policy, TrainPolicy, parse_clock
from release_actions.core.versions import Version

# Production moves within its own week, never to a Friday or a weekend (source §2.1: the
# Tuesday release leaves the rest of the week to watch it before the weekend).
LAST_PRODUCTION_WEEKDAY = WEEKDAYS.index("thursday")


@dataclass(frozen=True)
class Shift:
    """One day the calendar moved: what, from when, to when (None: dropped), and why."""

    what: str
    from_: datetime
    to: datetime | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "from": self.from_.isoformat(),
            "to": None if self.to is None else self.to.isoformat(),
            "reason": self.reason,
        }


@dataclass
class Train:
    """One train: its version, its cut, staging and production times, and what moved them."""

    version: Version | None
    cut_at: datetime
    staging_at: datetime | None
    production_at: datetime | None
    skipped: bool = False
    shifts: list[Shift] = field(default_factory=list)
    staged_rollout: bool = False
    """A high-traffic period on the production day: the release must go out in stages."""
    notes: list[str] = field(default_factory=list)

    @property
    def branch_version(self) -> str | None:
        return None if self.version is None else str(self.version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.branch_version,
            "cut_at": self.cut_at.isoformat(),
            "staging_at": None if self.staging_at is None else self.staging_at.isoformat(),
            "production_at": None if self.production_at is None else self.production_at.isoformat(),
            "skipped": self.skipped,
            "shifts": [s.to_dict() for s in self.shifts],
            "staged_rollout": self.staged_rollout,
            "notes": list(self.notes),
        }


def train_zone(policy: Policy) -> ZoneInfo:
    return ZoneInfo(policy.train.timezone or policy.calendar.timezone)


def branch_name(train: TrainPolicy, version: Version) -> str:
    return train.branch.format(major=version.major, minor=version.minor, patch=version.patch)


def branch_pattern(train: TrainPolicy) -> re.Pattern[str]:
    """A pattern of every branch the train cuts, for the freeze check's `release/*`."""
    parts = re.split(r"(\{major\}|\{minor\}|\{patch\})", train.branch)
    return re.compile(
        "".join(r"(0|[1-9]\d*)" if p.startswith("{") else re.escape(p) for p in parts) + r"\Z"
    )


def runs_in_week(train: TrainPolicy, day: date) -> bool:
    """Whether the train runs in the ISO week of ``day`` (every week, or every other one)."""
    if train.cadence == "weekly":
        return True
    return (day.isocalendar().week + train.offset_weeks) % 2 == 0


def _next(day: date, weekday: str, *, same_day: bool) -> date:
    """The first ``weekday`` on or after ``day`` (strictly after it unless ``same_day``)."""
    ahead = (WEEKDAYS.index(weekday) - day.weekday()) % 7
    if ahead == 0 and not same_day:
        ahead = 7
    return day + timedelta(days=ahead)


def _at(day: date, clock: str, zone: ZoneInfo) -> datetime:
    # A wall-clock time in the zone: across a daylight-saving change the offset is that
    # day's own (fold 0 for a time that happens twice, the later offset for one that is skipped).
    return datetime.combine(day, parse_clock(clock), zone)


def next_version(
    current: Version | None, bump: str, unreleased: str | None
) -> tuple[Version | None, str]:
    """The next train's version from the latest release and the CHANGELOG's Unreleased text.

    `auto` bumps the minor version (a weekly train carries features), or the major one when
    the Unreleased section says BREAKING or holds a `Removed` entry (source §2.3).
    """
    if current is None:
        return None, "no release tag to bump from"
    part = bump
    why = f"`train.bump: {bump}`"
    if bump == "auto":
        text = unreleased or ""
        breaking = re.search(r"\bBREAKING\b", text) is not None
        removed = re.search(r"^###\s+Removed\s*$", text, re.M) is not None
        part = "major" if breaking or removed else "minor"
        why = (
            "the Unreleased section says BREAKING"
            if breaking
            else "the Unreleased section removes something"
            if removed
            else "a minor bump (features)"
        )
    return current.core.bump(part), why  # type: ignore[arg-type]


def plan(
    policy: Policy,
    start: date,
    weeks: int,
    *,
    first_version: Version | None = None,
    release_type: str = "regular",
) -> list[Train]:
    """The trains whose cut falls in the ``weeks`` weeks from ``start`` (in the train's zone).

    Production goes to its day unless the calendar blocks it; then to the next allowed
    weekday of the same week, Thursday at the latest; with none, the train is skipped and
    its changes ride the next one, which keeps the version the skipped one would have had.
    """
    train = policy.train
    zone = train_zone(policy)
    cut_day = _next(start, train.freeze.day, same_day=True)
    out: list[Train] = []
    version = first_version
    for week in range(weeks):
        day = cut_day + timedelta(weeks=week)
        if day < start or not runs_in_week(train, day):
            continue
        cut_at = _at(day, train.freeze.time, zone)
        staging_day = _next(
            day,
            train.staging.day,
            same_day=parse_clock(train.staging.time) > parse_clock(train.freeze.time),
        )
        staging_at = _at(staging_day, train.staging.time, zone)
        production_day = _next(staging_day, train.production.day, same_day=False)
        planned = _at(production_day, train.production.time, zone)
        t = Train(version, cut_at, staging_at, planned)
        _settle_production(policy, t, release_type, zone)
        if t.skipped:
            t.staging_at = None
            t.version = None
            t.notes.append(
                "no branch is cut; the changes ride the next train"
                + (f" as {version}" if version is not None else "")
            )
        elif version is not None:
            version = version.bump("minor")
        out.append(t)
    return out


def _settle_production(policy: Policy, t: Train, release_type: str, zone: ZoneInfo) -> None:
    assert t.production_at is not None
    planned = t.production_at
    first = check(policy, release_type, planned)
    if first.decision is not Decision.BLOCKED:
        t.staged_rollout = first.require_staged_rollout
        if t.staged_rollout:
            t.notes.append("a high-traffic period: the production release goes out in stages")
        return
    # The calendar's first reason that blocked the day, up to its verdict.
    why = first.blocking[0].split(": ", 1)[0]
    day = planned.date() + timedelta(days=1)
    while day.weekday() <= LAST_PRODUCTION_WEEKDAY:
        candidate = _at(day, policy.train.production.time, zone)
        result = check(policy, release_type, candidate)
        if result.decision is not Decision.BLOCKED:
            t.production_at = candidate
            t.staged_rollout = result.require_staged_rollout
            t.shifts.append(Shift("production", planned, candidate, why))
            if t.staged_rollout:
                t.notes.append("a high-traffic period: the production release goes out in stages")
            return
        day += timedelta(days=1)
    t.production_at = None
    t.skipped = True
    t.shifts.append(
        Shift(
            "production",
            planned,
            None,
            f"{why}; no allowed weekday is left that week (never a Friday or a weekend)",
        )
    )


@dataclass(frozen=True)
class FreezeVerdict:
    """Whether a pull request may merge into ``base`` now, and why, in words for its author."""

    allowed: bool
    frozen: bool
    reason: str
    until: datetime | None = None
    exception: bool = False
    approved_by: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "frozen": self.frozen,
            "reason": self.reason,
            "until": None if self.until is None else self.until.isoformat(),
            "exception": self.exception,
            "approved_by": list(self.approved_by),
        }


def current_train(policy: Policy, now: datetime) -> Train | None:
    """The train whose cut is the latest at or before ``now`` (a skipped one included)."""
    zone = train_zone(policy)
    local = now.astimezone(zone)
    trains = plan(policy, local.date() - timedelta(days=14), 3)
    past = [t for t in trains if t.cut_at <= now]
    return past[-1] if past else None


def freeze_check(
    policy: Policy,
    *,
    base: str,
    labels: list[str],
    title: str,
    now: datetime,
    approved_by: list[str] | None = None,
) -> FreezeVerdict:
    """The freeze (source §2.1): after the cut only fixes merge into a release branch.

    Into main too while a train is between its cut and its production release, when the
    policy freezes main. A fix is a label of ``allowed_labels`` or a conventional `fix:`
    title; a ``freeze-exception`` passes once one of ``exception_approvers`` approved it.
    ``approved_by`` are the approvals the caller read (users, and `org/team` slugs of
    teams they belong to); None means nobody read them, which never passes an exception.
    """
    train = policy.train
    rules = train.freeze_rules
    is_release = branch_pattern(train).match(base) is not None
    is_main = base == policy.branches.main
    current = current_train(policy, now)
    until = current.production_at if current is not None else None
    if is_main and rules.freeze_main:
        in_window = (
            current is not None
            and not current.skipped
            and until is not None
            and current.cut_at <= now < until
        )
        if not in_window:
            return FreezeVerdict(True, False, f"`{base}` is not frozen now")
    elif not is_release:
        return FreezeVerdict(
            True, False, f"`{base}` is not a release branch (`{train.branch}`): no freeze applies"
        )
    if is_release and current is not None and current.version is not None:
        mine = branch_name(train, current.version) == base
        until = current.production_at if mine else None
    fix_labels = [label for label in labels if label in rules.allowed_labels]
    if fix_labels:
        return FreezeVerdict(
            True, True, f"a fix (label `{fix_labels[0]}`): allowed during the freeze", until
        )
    if re.search(rules.allowed_title, title):
        return FreezeVerdict(True, True, "a fix (its title): allowed during the freeze", until)
    allowed = ", ".join(f"`{label}`" for label in rules.allowed_labels)
    what = (
        f"only fixes merge into `{base}`"
        + (f" until {until:%Y-%m-%d %H:%M %Z}" if until is not None else "")
        + f": a label {allowed} or a `fix:` title, or a `{rules.exception_label}` approved by "
        + ", ".join(f"`{a}`" for a in rules.exception_approvers)
    )
    if rules.exception_label in labels:
        if approved_by is None:
            return FreezeVerdict(
                False,
                True,
                f"`{rules.exception_label}` needs an approval that was not read: {what}",
                until,
            )
        approvers = set(rules.exception_approvers)
        by = tuple(sorted(a for a in approved_by if a in approvers))
        if by:
            return FreezeVerdict(
                True,
                True,
                f"a freeze exception approved by {', '.join(by)}",
                until,
                exception=True,
                approved_by=by,
            )
        return FreezeVerdict(
            False, True, f"`{rules.exception_label}` is not approved yet: {what}", until
        )
    return FreezeVerdict(False, True, f"frozen: {what}", until)
