"""The release calendar gate: allowed, caution or blocked, with the reason (source section 2.4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from release_actions.core.policy import (
    WEEKDAYS,
    DatePeriod,
    PeriodRule,
    Policy,
    TrafficRule,
    parse_clock,
)
from release_actions.errors import PolicyError


class Decision(StrEnum):
    ALLOWED = "allowed"
    CAUTION = "caution"
    BLOCKED = "blocked"


_RANK = {Decision.ALLOWED: 0, Decision.CAUTION: 1, Decision.BLOCKED: 2}
_EFFECT = {PeriodRule.BLOCK: Decision.BLOCKED, PeriodRule.WARN: Decision.CAUTION}


@dataclass
class CalendarResult:
    decision: Decision
    reasons: list[str]
    require_staged_rollout: bool
    release_type: str
    at: datetime
    periods: list[str] = field(default_factory=list)
    blocking: list[str] = field(default_factory=list)
    """The reasons that blocked it, among ``reasons`` (empty unless blocked)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision.value,
            "reasons": self.reasons,
            "require_staged_rollout": self.require_staged_rollout,
            "release_type": self.release_type,
            "at": self.at.isoformat(),
            "periods": self.periods,
        }


def in_period(day: date, period: DatePeriod) -> bool:
    """Whether ``day`` falls in a yearly period; one whose end precedes its start wraps the year."""
    md = (day.month, day.day)
    start = tuple(int(x) for x in period.start.split("-"))
    end = tuple(int(x) for x in period.end.split("-"))
    if start <= end:
        return start <= md <= end
    return md >= start or md <= end


def check(policy: Policy, release_type: str, at: datetime) -> CalendarResult:
    """Decide whether a release of ``release_type`` may go out at ``at``."""
    rules = policy.release_type(release_type)
    cal = policy.calendar
    if at.tzinfo is None:
        at = at.replace(tzinfo=cal.tz)  # a time without a zone is read in the policy's zone
    local = at.astimezone(cal.tz)
    when = f"{local:%Y-%m-%d} ({local:%a}) {local:%H:%M} {cal.timezone}"
    decision = Decision.ALLOWED
    reasons: list[str] = []
    periods: list[str] = []
    staged = False
    blocking: list[str] = []

    def escalate(to: Decision, reason: str) -> None:
        nonlocal decision
        if _RANK[to] > _RANK[decision]:
            decision = to
        if to is Decision.BLOCKED:
            blocking.append(reason)
        reasons.append(reason)

    def verdict(rule: PeriodRule) -> str:
        if rule is PeriodRule.BLOCK:
            return f"{release_type} releases are blocked then"
        if rule is PeriodRule.WARN:
            return f"{release_type} releases are allowed with caution"
        return f"{release_type} releases are allowed"

    for period in cal.blocked_periods:
        if in_period(local.date(), period):
            periods.append(period.name)
            why = f" ({period.reason})" if period.reason else ""
            text = (
                f"{when} is in the blocked period {period.name} {period.start}..{period.end}"
                f"{why}: {verdict(rules.blocked_periods)} (policy calendar.blocked_periods, §2.4)"
            )
            if rules.blocked_periods in _EFFECT:
                escalate(_EFFECT[rules.blocked_periods], text)
            else:
                reasons.append(text)

    holiday = _public_holiday(policy, local.date())
    if holiday:
        periods.append(holiday)
        text = (
            f"{local:%Y-%m-%d} is a public holiday in {cal.holidays.country} ({holiday}): "
            f"{verdict(rules.blocked_periods)} (policy calendar.holidays)"
        )
        if rules.blocked_periods in _EFFECT:
            escalate(_EFFECT[rules.blocked_periods], text)
        else:
            reasons.append(text)

    for window in cal.maintenance_windows:
        if WEEKDAYS[local.weekday()] == window.day and (
            parse_clock(window.start) <= local.time().replace(tzinfo=None) < parse_clock(window.end)
        ):
            periods.append(f"maintenance {window.day} {window.start}-{window.end}")
            why = f" ({window.purpose})" if window.purpose else ""
            text = (
                f"{when} is in the maintenance window {window.day.capitalize()} "
                f"{window.start}-{window.end}{why}: {verdict(rules.maintenance_windows)} "
                "(policy calendar.maintenance_windows, §2.4)"
            )
            if rules.maintenance_windows in _EFFECT:
                escalate(_EFFECT[rules.maintenance_windows], text)
            else:
                reasons.append(text)

    for period in cal.high_traffic_periods:
        if in_period(local.date(), period):
            periods.append(period.name)
            why = f" ({period.reason})" if period.reason else ""
            base = f"{when} is in the high-traffic period {period.name} {period.start}..{period.end}{why}"
            if rules.high_traffic_periods is TrafficRule.STAGED:
                staged = True
                escalate(
                    Decision.CAUTION,
                    f"{base}: a staged rollout is required (policy calendar.high_traffic_periods, §2.4)",
                )
            elif rules.high_traffic_periods is TrafficRule.WARN:
                escalate(Decision.CAUTION, f"{base}: release with caution")
            else:
                reasons.append(f"{base}: {release_type} releases are not restricted")

    slot_rule = cal.release_window
    in_slot = WEEKDAYS[local.weekday()] in slot_rule.days and local.time().replace(
        tzinfo=None
    ) >= parse_clock(slot_rule.start)
    slot = (
        f"{'/'.join(d.capitalize() for d in slot_rule.days)} from {slot_rule.start} {cal.timezone}"
    )
    if in_slot:
        reasons.append(f"{when} is in the regular release slot ({slot}, §2.4)")
    elif rules.outside_release_window in _EFFECT:
        escalate(
            _EFFECT[rules.outside_release_window],
            f"{when} is outside the regular release slot ({slot}): "
            f"{verdict(rules.outside_release_window)} (policy "
            f"release_types.{release_type}.outside_release_window, §2.1)",
        )
    else:
        reasons.append(
            f"{when} is outside the regular release slot ({slot}); "
            f"{release_type} releases may go out at any time (§1.4)"
        )

    if decision is Decision.BLOCKED:
        reasons.append(
            "Wait for the period to end, or ship it as a hotfix or security release if it "
            "cannot wait."
        )
    return CalendarResult(decision, reasons, staged, release_type, local, periods, blocking)


def _public_holiday(policy: Policy, day: date) -> str | None:
    country = policy.calendar.holidays.country
    if not country:
        return None
    from release_actions.errors import require

    holidays_mod: Any = require("holidays", "holidays")
    try:
        table = holidays_mod.country_holidays(
            country, subdiv=policy.calendar.holidays.subdivision, years=day.year
        )
    except NotImplementedError as exc:
        raise PolicyError(
            f"The `holidays` package does not know the country `{country}` "
            "(policy calendar.holidays.country).",
            hint="Use an ISO 3166-1 alpha-2 code such as `JP`.",
        ) from exc
    name = table.get(day)
    return str(name) if name else None
