"""Retention and business metrics per version, new against previous (source §8.3 criteria)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from release_actions.errors import MetricsError, NoDataError, ReleaseActionsError
from release_actions.metrics.base import MetricsProvider
from release_actions.metrics.retry import QueryTemplates
from release_actions.mobile.policy import METRIC_VARIABLES, MetricCriterion, MobilePolicy

# A difference this small is rounding, not a drop: `>= previous` must hold for equal values
# that two queries computed in a different order.
_EPSILON = 1e-9


@dataclass(frozen=True)
class VersionRef:
    """One version as the queries name it: its store build number and, when known, its name."""

    code: str
    name: str | None = None


@dataclass
class MetricReading:
    """One criterion at one look. ``status``: passed, failed, not measured, waiting, not checked.

    ``new`` and ``previous`` are the two versions' values, ``drop`` how much worse the new
    one is in the criterion's unit (negative: better), ``queries`` the resolved queries.
    """

    name: str
    status: str
    detail: str
    new: float | None = None
    previous: float | None = None
    drop: float | None = None
    limit: float = 0.0
    unit: str = "points"
    halt: bool = False
    window_hours: float | None = None
    queries: dict[str, str] = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        return self.status in ("failed", "not measured", "waiting")

    @property
    def halts(self) -> bool:
        return self.halt and self.status == "failed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "new": _finite(self.new),
            "previous": _finite(self.previous),
            "drop": _finite(self.drop),
            "limit": self.limit,
            "unit": self.unit,
            "halt": self.halt,
            "window_hours": self.window_hours,
            "queries": dict(self.queries),
        }


class VersionMetricsSource(Protocol):
    """What the gate asks of the per-version criteria at one look."""

    def readings(
        self,
        *,
        fraction: float,
        start: float,
        end: float,
        platform: str,
        new: VersionRef,
        previous: VersionRef | None,
    ) -> list[MetricReading]: ...


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _unit(criterion: MetricCriterion, value: float) -> str:
    return f"{value:g} %" if criterion.compare == "percent" else f"{value:g} points"


class VersionMetrics:
    """The policy's `mobile.retention` and `mobile.business`, run on Prometheus or Datadog.

    ``providers`` maps `prometheus` and `datadog` to providers built from the policy's
    `metrics` section (their sessions, retries, error semantics); a criterion whose
    provider is missing there is "not measured", which holds the stage, as does any query
    fault: no number is never read as no drop.
    """

    def __init__(
        self,
        policy: MobilePolicy,
        providers: Mapping[str, MetricsProvider],
        *,
        unavailable: Mapping[str, str] | None = None,
    ) -> None:
        """``unavailable``: why a provider could not be built (no URL, no key), by kind."""
        self.criteria = policy.metric_criteria()
        self.providers = dict(providers)
        self.unavailable = dict(unavailable or {})
        self._templates = {
            name: QueryTemplates(
                "per-version metric", {"query": None}, {"query": c.query}, METRIC_VARIABLES
            )
            for name, c in self.criteria
        }

    def readings(
        self,
        *,
        fraction: float,
        start: float,
        end: float,
        platform: str,
        new: VersionRef,
        previous: VersionRef | None,
    ) -> list[MetricReading]:
        return [
            self._reading(name, c, fraction, start, end, platform, new, previous)
            for name, c in self.criteria
        ]

    def _reading(
        self,
        name: str,
        criterion: MetricCriterion,
        fraction: float,
        start: float,
        end: float,
        platform: str,
        new: VersionRef,
        previous: VersionRef | None,
    ) -> MetricReading:
        base = MetricReading(
            name,
            "not checked",
            "",
            limit=criterion.max_drop,
            unit=criterion.compare,
            halt=criterion.halt,
        )
        if fraction + 1e-9 < criterion.from_fraction:
            base.detail = f"checked from the {criterion.from_fraction:.0%} stage"
            return base
        if previous is None:
            base.detail = "no previous version to compare with"
            return base
        hours = (end - start) / 3600
        base.window_hours = round(hours, 2)
        if hours < 1 - 1e-9:
            base.status = "waiting"
            base.detail = "the stage has not run a whole hour yet"
            return base
        provider = self.providers.get(criterion.provider)
        if provider is None:
            base.status = "not measured"
            base.detail = self.unavailable.get(criterion.provider) or (
                f"no `{criterion.provider}` metrics provider in this run (set "
                f"`metrics.{criterion.provider}` in the release policy, or its URL or keys)"
            )
            return base
        values: dict[str, float] = {}
        for side, ref in (("new", new), ("previous", previous)):
            try:
                text = self._render(name, ref, platform, start, end)
                base.queries[side] = text
                values[side] = provider.scalar(
                    text, start, end, what=f"{name} of {ref.code}", reduce=criterion.reduce
                )
            except MetricsError as exc:
                why = "no data" if isinstance(exc, NoDataError) else "the query failed"
                base.status = "not measured"
                base.detail = f"{why} for the {side} version ({ref.code}): {exc.message}"
                return base
        new_value, prev_value = values["new"], values["previous"]
        base.new, base.previous = new_value, prev_value
        worse = prev_value - new_value if criterion.higher_is_better else new_value - prev_value
        if criterion.compare == "percent":
            if prev_value == 0:
                drop = 0.0 if abs(worse) <= _EPSILON else math.copysign(math.inf, worse)
            else:
                drop = 100 * worse / abs(prev_value)
        else:
            drop = worse
        base.drop = drop
        failed = drop > criterion.max_drop + _EPSILON
        base.status = "failed" if failed else "passed"
        direction = "higher" if criterion.higher_is_better else "lower"
        base.detail = (
            f"{_fmt(new_value)} for {new.code} vs {_fmt(prev_value)} for {previous.code} over "
            f"{hours:.0f} h ({'drop' if drop >= 0 else 'gain'} "
            f"{_unit(criterion, round(abs(drop), 4)) if math.isfinite(drop) else 'from 0'}; "
            f"{'halt' if criterion.halt else 'hold'} past {_unit(criterion, criterion.max_drop)}, "
            f"{direction} is better)"
        )
        return base

    def _render(self, name: str, ref: VersionRef, platform: str, start: float, end: float) -> str:
        context: dict[str, object] = {
            "version_code": ref.code,
            "platform": platform,
            "interval": f"{max(1, round(end - start))}s",
        }
        if ref.name:
            # Left undefined when the store does not say it: strict rendering then names it.
            context["version"] = ref.name
        try:
            return self._templates[name].render("query", **context)
        except ReleaseActionsError as exc:
            unnamed = (
                "" if ref.name else f" (the store does not name {ref.code}: use `version_code`)"
            )
            raise MetricsError(exc.message + unnamed) from None


class NotSimulated:
    """The rehearsal's stand-in: the simulator has no retention or revenue to query."""

    def __init__(self, policy: MobilePolicy) -> None:
        self.criteria = policy.metric_criteria()

    def readings(
        self,
        *,
        fraction: float,
        start: float,
        end: float,
        platform: str,
        new: VersionRef,
        previous: VersionRef | None,
    ) -> list[MetricReading]:
        return [
            MetricReading(
                name,
                "not checked",
                "the rehearsal simulates crashes, ANRs and reviews, not this metric",
                limit=c.max_drop,
                unit=c.compare,
                halt=c.halt,
            )
            for name, c in self.criteria
        ]
