"""The release policy of a consuming repository: every default is the source document's number."""

from __future__ import annotations

import functools
import math
import re
import warnings
from datetime import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from release_actions.errors import PolicyError, PolicyIssue, PolicyWarning
from release_actions.mobile.policy import MobilePolicy

if TYPE_CHECKING:
    from release_actions.core.yamlpos import Located

DEFAULT_POLICY_PATH = Path(".github/release-policy.yml")

Strategy = Literal["canary", "blue-green", "shadow", "rolling"]
"""Source §4.1's four deployment strategies (targets/base.STRATEGIES)."""

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _month_day(value: str) -> str:
    m = re.fullmatch(r"(\d\d)-(\d\d)", value)
    days_in_month = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if m is None or not 1 <= int(m[1]) <= 12 or not 1 <= int(m[2]) <= days_in_month[int(m[1]) - 1]:
        raise ValueError(f"expected a day of the year as MM-DD, such as `12-28`, got {value!r}")
    return value


def _clock(value: str) -> str:
    if re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value) is None:
        raise ValueError(f"expected a 24-hour time as HH:MM, such as `10:00`, got {value!r}")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}: use an IANA name such as `Asia/Tokyo` or `UTC`"
        ) from None
    return value


MonthDay = Annotated[str, AfterValidator(_month_day)]
ClockTime = Annotated[str, AfterValidator(_clock)]
Regex = Annotated[str, AfterValidator(_regex)]
TimeZone = Annotated[str, AfterValidator(_zone)]


def src(section: str, text: str) -> Any:
    """A field description that cites the section of the source document it comes from."""
    return Field(description=f"{text} (source §{section})")


class _Model(BaseModel):
    # A typo in a key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True)


class PeriodRule(StrEnum):
    """What the calendar gate does when a release falls in a period."""

    BLOCK = "block"
    WARN = "warn"
    ALLOW = "allow"


class TrafficRule(StrEnum):
    STAGED = "staged"
    WARN = "warn"
    ALLOW = "allow"


class DatePeriod(_Model):
    """A yearly period from ``start`` to ``end`` inclusive; ``end`` before ``start`` wraps the year."""

    name: str
    start: MonthDay
    end: MonthDay
    reason: str = ""


class ClockWindow(_Model):
    day: Weekday
    start: ClockTime
    end: ClockTime
    purpose: str = ""

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: str, info: Any) -> str:
        start = info.data.get("start")
        if start is not None and end <= start:
            raise ValueError(f"must be after `start` ({start}); a window cannot cross midnight")
        return end


class ReleaseWindow(_Model):
    days: list[Weekday] = src("2.4", "Days of the regular release slot")
    start: ClockTime = src("2.4", "Earliest time of day of the regular release slot")


class HolidayCheck(_Model):
    country: str | None = Field(
        None,
        description="ISO 3166 country whose public holidays count as blocked days for types "
        "that block (beyond the source document; needs the `holidays` extra)",
    )
    subdivision: str | None = None


class CalendarPolicy(_Model):
    timezone: TimeZone = src("2.4", "IANA time zone every time in this section is read in (JST)")
    release_window: ReleaseWindow
    blocked_periods: list[DatePeriod] = src("2.4", "Periods with reduced support")
    high_traffic_periods: list[DatePeriod] = src(
        "2.4", "Travel seasons: important changes only, staged rollout mandatory"
    )
    maintenance_windows: list[ClockWindow] = src("2.4", "Scheduled maintenance")
    holidays: HolidayCheck = HolidayCheck(country=None)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class ReleaseTypePolicy(_Model):
    description: str
    approval: Literal["automatic", "manual"] = src("1.4", "How the release is approved")
    approvers: list[str] = src("3.3", "Who approves, in order")
    environment: str = Field(
        description="GitHub environment the production deploy runs in (source §3.4); a type "
        "whose §3.3 approval chain differs from production's has its own, so that "
        "`environments plan --from-policy` can give it its reviewers"
    )
    canary: Literal["required", "optional", "skip"] = src(
        "3.3", "Whether production goes out as a canary"
    )
    strategy: Strategy | None = Field(
        description="How this type is deployed (source §4.1: blue-green for important "
        "releases); null takes `deploy.strategy`. `required` canaries accept `canary` and "
        "`blue-green`, never `rolling`"
    )
    blocked_periods: PeriodRule = src("2.4", "In a blocked period")
    outside_release_window: PeriodRule = src("2.1, 2.4", "Outside the regular release slot")
    maintenance_windows: PeriodRule = src("2.4", "During a maintenance window")
    high_traffic_periods: TrafficRule = src("2.4", "In a high-traffic period")
    monitor_seconds: int = Field(
        gt=0, description="How long to watch after the deploy (source §6.3, §7)"
    )
    alert_threshold_percent: float | None = Field(
        None, gt=0, description="Error-rate alert threshold while watching (source §7.3)"
    )


class BranchPolicy(_Model):
    main: str = src("2.2", "The trunk of GitHub Flow")
    hotfix_pattern: Regex = src("7.3", "Regular expression every hotfix branch must match")
    release_pattern: Regex = src("2.2", "Regular expression of release branches; `version` group")


class TrainDay(_Model):
    day: Weekday
    time: ClockTime


class FreezePolicy(_Model):
    allowed_labels: list[str] = Field(
        description="Labels that let a pull request merge after the freeze (fixes only)"
    )
    allowed_title: Regex = Field(
        description="Regular expression of a conventional fix title that is allowed too"
    )
    exception_label: str = Field(description="Label of an approved freeze exception")
    exception_approvers: list[str] = Field(
        description="GitHub users or `org/team` slugs whose approval makes an exception"
    )
    freeze_main: bool = Field(
        description="Freeze pull requests into the main branch too, from the cut to production"
    )


class TrainPolicy(_Model):
    cadence: Literal["weekly", "biweekly"] = src(
        "2.1, 8.1", "Weekly for the API (§2.1); every other week for mobile (§8.1)"
    )
    offset_weeks: int = Field(
        ge=0,
        le=1,
        description="Biweekly: 0 runs in even ISO weeks, 1 in odd ones (the mobile cycle one "
        "week apart from the API, §8.1)",
    )
    timezone: TimeZone | None = Field(
        description="Time zone of the days; default: calendar.timezone"
    )
    freeze: TrainDay = src(
        "2.1", "Code freeze and branch cut: Wednesday; the source gives no hour (10:00, §2.4's)"
    )
    staging: TrainDay = src("2.1", "Staging deploy: Thursday, the day after the freeze")
    production: TrainDay = src("2.1, 2.4", "Production release: the next Tuesday, 10:00")
    branch: str = src("2.2", "Release branch name, with {major}, {minor} and {patch}")
    bump: Literal["auto", "minor", "major", "patch"] = Field(
        description="The next version: `auto` bumps minor, or major when the CHANGELOG's "
        "Unreleased section says BREAKING or has a `Removed` entry (source §2.3)"
    )
    freeze_rules: FreezePolicy = Field(description="What may merge after the freeze")

    @field_validator("branch")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        try:
            value.format(major=1, minor=2, patch=0)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"only {{major}}, {{minor}} and {{patch}} may appear in braces ({exc})"
            ) from None
        if "{major}" not in value or "{minor}" not in value:
            raise ValueError("the branch names the version: it needs {major} and {minor}")
        return value


class TagPolicy(_Model):
    prefix: str = src("2.3", "Prefix of release tags")
    allow_build_metadata: bool = src("2.3", "Whether `+BUILD` is allowed in release tags")


class AnalysisPolicy(_Model):
    judge: Literal["sequential", "threshold"] = Field(
        description="`threshold` is the source document's rule (§4.3); `sequential` is an "
        "anytime-valid test that looks every interval without inflating false rollbacks"
    )
    min_requests: int = Field(
        ge=1, description="Canary requests below this are inconclusive (source §4.3)"
    )
    max_error_rate_diff_points: float = Field(
        ge=0, description="Canary minus stable error rate, in percentage points (source §4.3)"
    )
    max_p99_diff_percent: float = Field(
        ge=0, description="Canary p99 over stable p99, in % (source §4.3)"
    )
    analysis_seconds: int = Field(gt=0, description="Length of one analysis (source §4.3)")
    interval_seconds: int = Field(
        gt=0,
        description="Measurement interval of the threshold judge and of the Argo AnalysisTemplate "
        "(source §4.4, 1m): that rule counts failed measurements, so its cadence is part of it",
    )
    sequential_interval_seconds: int = Field(
        gt=0,
        description="Measurement interval of the sequential judge (source §6.3, `checkInterval` "
        "10 s): an anytime-valid test may look as often as the metrics allow at no cost in false "
        "rollbacks, and each look it skips delays a rollback",
    )
    min_success_rate: float = Field(
        ge=0, le=1, description="Argo success-rate condition (source §4.4)"
    )
    max_p99_ms: float = Field(gt=0, description="Argo latency condition (source §4.4)")
    failure_limit: int = Field(ge=0, description="Argo failureLimit (source §4.4)")
    consecutive_error_limit: int = Field(
        ge=1,
        description="Provider errors in a row before the result is `error` (Argo Rollouts default). "
        "A canary analysis counts them at `interval_seconds`, so the sequential judge's faster "
        "cadence tolerates the same length of outage; `monitor` counts them at its own interval",
    )
    on_error: Literal["rollback", "hold", "fail"] = Field(
        description="What an `error` result does; a metrics outage never counts as healthy"
    )
    false_rollback_rate: float = Field(
        gt=0,
        lt=0.5,
        description="Sequential judge: bound on the chance of rolling back a good canary",
    )
    pass_error_ratio: float = Field(
        gt=1,
        description="Sequential judge: a step may pass early once the canary's error rate is shown "
        "below this multiple of stable's (beyond the source document: its 0.5 points at the 1 % "
        "error rate its 99 % success condition allows)",
    )
    practical_error_ratio: float = Field(
        ge=1,
        description="Sequential judge: a proven difference smaller than this ratio is not a rollback "
        "(the 10 % tolerance of source §4.3)",
    )

    def cadence(self, judge: str) -> int:
        """Seconds between measurements for ``judge`` (a judge's ``name``)."""
        return self.sequential_interval_seconds if judge == "sequential" else self.interval_seconds

    def error_limit(self, cadence: int) -> int:
        """Measurement errors in a row that make an `error` at ``cadence`` seconds.

        The limit is Argo's count at the §4.4 interval, so it stands for a length of
        outage (4 minutes by default); looking more often must not turn a 40-second
        provider hiccup into a rollback.
        """
        return max(
            self.consecutive_error_limit,
            math.ceil(self.consecutive_error_limit * self.interval_seconds / cadence),
        )


# Which `canary.analysis` keys each reader uses. A key that the policy file sets and that no
# reader in use reads changes nothing, so it is reported (tests/unit/canary check these sets
# against the judges' code). The sequential judge reads the p99 keys and `failure_limit` for
# its fallback when a provider has no histogram buckets.
ANALYSIS_KEYS_COMMON = frozenset(
    {"judge", "on_error", "consecutive_error_limit", "interval_seconds", "analysis_seconds"}
)
ANALYSIS_KEYS_READ: dict[str, frozenset[str]] = {
    "threshold": frozenset(
        {
            "min_requests",
            "max_error_rate_diff_points",
            "max_p99_diff_percent",
            "max_p99_ms",
            "min_success_rate",
            "failure_limit",
        }
    ),
    "sequential": frozenset(
        {
            "min_requests",
            "max_p99_diff_percent",
            "max_p99_ms",
            "failure_limit",
            "sequential_interval_seconds",
            "false_rollback_rate",
            "pass_error_ratio",
            "practical_error_ratio",
        }
    ),
    # The AnalysisTemplate of the Argo target and `argo render` (source §4.4).
    "argo": frozenset(
        {"interval_seconds", "failure_limit", "min_success_rate", "max_p99_ms", "analysis_seconds"}
    ),
}


def unused_analysis_keys(given: Any, judge: str, target: str) -> list[str]:
    """Keys of ``canary.analysis`` in the file's own data that neither the judge nor the target reads."""
    if not isinstance(given, dict):
        return []
    used = ANALYSIS_KEYS_COMMON | ANALYSIS_KEYS_READ.get(judge, frozenset())
    if target == "argo":
        used |= ANALYSIS_KEYS_READ["argo"]
    return [key for key in given if key in AnalysisPolicy.model_fields and key not in used]


StepOp = Literal["weight", "preview", "switch", "mirror"]


class RolloutStep(_Model):
    weight: int = Field(ge=0, le=100, description="Canary traffic in percent")
    pause_seconds: int = Field(0, ge=0)
    analysis: bool = True
    op: StepOp = Field(
        "weight",
        description="What the step does: `weight` moves a share of the traffic (canary, "
        "rolling); `preview`, `switch` and `mirror` are the blue-green and shadow steps, "
        "built from `deploy.blue_green` and `deploy.shadow`, never written in `canary.steps`",
    )


STEP_PRESETS: dict[str, list[dict[str, Any]]] = {
    # Source §4.4: Argo Rollouts 5 % 2m, 20 % 5m, 50 % 10m, 100 %.
    "argo": [
        {"weight": 5, "pause_seconds": 120},
        {"weight": 20, "pause_seconds": 300},
        {"weight": 50, "pause_seconds": 600},
        {"weight": 100, "pause_seconds": 0, "analysis": False},
    ],
    # Source §7.1 and §3.3: a hotfix may skip the canary ("直接ローリングアップデート",
    # straight to a rolling update); staging deploys go out this way too. The watch after
    # it is `monitor`, not a canary analysis.
    "direct": [{"weight": 100, "pause_seconds": 0, "analysis": False}],
    # Source §3.2: the release workflow's 10 % for 5 min, 50 % for 10 min, 100 %.
    "workflow": [
        {"weight": 10, "pause_seconds": 300},
        {"weight": 50, "pause_seconds": 600},
        {"weight": 100, "pause_seconds": 0, "analysis": False},
    ],
}


class CanaryPolicy(_Model):
    steps: str | list[RolloutStep] = Field(
        description="A preset (`argo` source §4.4, `workflow` source §3.2, `direct` source §7.1) or a list of steps"
    )
    analysis: AnalysisPolicy

    @field_validator("steps")
    @classmethod
    def _known_preset(cls, value: str | list[RolloutStep]) -> str | list[RolloutStep]:
        if isinstance(value, str) and value not in STEP_PRESETS:
            from release_actions.core.yamlpos import did_you_mean

            near = did_you_mean(value, STEP_PRESETS)
            raise ValueError(
                f"unknown preset {value!r}: "
                + (f"{near} " if near else "")
                + f"Use one of {', '.join(STEP_PRESETS)} or a list"
            )
        if isinstance(value, list):
            weights = [s.weight for s in value]
            if not weights or weights != sorted(weights) or weights[-1] != 100:
                raise ValueError("weights must rise and end at 100")
            if any(s.op != "weight" for s in value):
                raise ValueError(
                    "canary steps move weights only (`op: weight`); blue-green and shadow are "
                    "`deploy.strategy`, with `deploy.blue_green` and `deploy.shadow`"
                )
        return value

    def resolved_steps(self) -> list[RolloutStep]:
        if isinstance(self.steps, str):
            return [RolloutStep(**s) for s in STEP_PRESETS[self.steps]]
        return list(self.steps)


class Trigger(_Model):
    threshold: float = Field(description="Value above which the trigger counts")
    window_seconds: int = Field(
        gt=0, description="How long the condition must hold, or the count window"
    )


class RollbackTriggers(_Model):
    error_rate_percent: Trigger = src("6.1", "Error rate > 5 % for 2 minutes")
    p99_latency_ms: Trigger = src("6.1", "p99 latency > 5000 ms for 5 minutes")
    health_check_failures: Trigger = src("6.1", "More than 3 health-check failures within 1 minute")
    pod_restarts: Trigger = src("6.1", "More than 5 restarts within 5 minutes")


class RecoveryPolicy(_Model):
    max_error_rate_percent: float = src("6.2", "Recovered when the error rate is below this")
    max_p99_ms: float = src("6.2", "Recovered when p99 is below this")
    min_success_rate_percent: float = src("6.2", "Recovered when the success rate is at least this")


class MonitorPolicy(_Model):
    duration_seconds: int = Field(
        gt=0, description="How long `monitor` watches (source §6.3, 5 min)"
    )
    interval_seconds: int = Field(gt=0, description="How often it measures (source §6.3, 10 s)")
    triggers: RollbackTriggers
    recovery: RecoveryPolicy


class PrometheusSettings(_Model):
    url: str | None = Field(
        description="Prometheus base URL (the `PROMETHEUS_URL` environment variable overrides)"
    )
    namespace: str | None = None
    service_label: str = "service"
    track_label: str = "track"
    namespace_label: str = "namespace"
    matchers: dict[str, str] = Field(description="Extra label matchers for every query")
    slow_buckets: list[str] | None = Field(
        description="Histogram `le` boundaries to count slow requests; default: read from the series"
    )
    queries: dict[str, str | None] = Field(
        description="PromQL templates that replace the defaults, by name"
    )
    scrape_interval_seconds: float | None = Field(
        gt=0,
        description="How often the queried series are scraped; a measurement window is at least "
        "two scrapes. Default: the server's `global.scrape_interval`",
    )


class DatadogSettings(_Model):
    site: str = Field(description="Datadog site (the `DD_SITE` environment variable overrides)")
    service_tag: str = "service"
    track_tag: str = "track"
    tags: dict[str, str] = Field(description="Extra tags for every query")
    latency_unit: str = "millisecond"
    queries: dict[str, str | None] = Field(
        description="Query templates that replace the defaults (metric names of source §4.3)"
    )
    min_window_seconds: float = Field(
        gt=0,
        description="Shortest window a query counts over, so the cadence is never finer "
        "(source §4.4, the 1m of the document's Datadog analysis): the newest points arrive "
        "late, and a window of only them is often empty",
    )


class MetricsPolicy(_Model):
    provider: Literal["simulated", "prometheus", "datadog"] = Field(
        description="Where canary and stable metrics come from (source §4.3 uses Datadog)"
    )
    service: str = src("4.4", "Service name in queries (`service-name` argument)")
    timeout_seconds: float = Field(gt=0, description="Timeout of one provider request")
    prometheus: PrometheusSettings
    datadog: DatadogSettings


class MigrationPolicy(_Model):
    dir: str | None = Field(
        description="Migrations folder; default: `prisma/migrations` (source §9.2) or `migrations`"
    )
    layout: Literal["prisma", "plain"] = src("9.2", "Prisma layout, or plain up/down files")
    table: str = Field(
        description="Tracking table, with the columns of Prisma's `_prisma_migrations`"
    )
    lock_timeout_seconds: float = Field(
        gt=0, description="How long a deploy waits for another's lock"
    )
    deploy_command: str | None = src("9.4", "Consumer command that applies migrations")
    status_command: str | None = src("9.4", "Consumer command that reports migration status")
    refuse_rollback_past_contract: bool = src(
        "9.1", "Refuse to roll the application back past a contract migration it cannot run with"
    )


class CanaryHeader(_Model):
    name: str
    value: str


class IstioSettings(_Model):
    virtual_service: str = src("4.2", "VirtualService whose weights split stable and canary")
    destination_rule: str | None = Field(
        description="DestinationRule; default: the VirtualService's name"
    )
    stable_subset: str = src("4.2", "Subset of the stable track")
    canary_subset: str = src("4.2", "Subset of the canary track")
    canary_header: CanaryHeader | None = src("4.2", "Header route that always reaches the canary")


class KubernetesSettings(_Model):
    context: str | None = Field(
        description="kubeconfig context of the cluster; default: the kubeconfig's current one "
        "(an environment's own cluster: `deploy.environments.staging.kubernetes.context`)"
    )
    namespace: str = src("4.2", "Namespace of the Deployments")
    deployment: str = src("4.2", "Stable Deployment; the canary is this name plus `canary_suffix`")
    container: str | None = Field(
        description="Container whose image is replaced; default: the first"
    )
    canary_suffix: str = src("4.2", "Suffix of the canary Deployment's name")
    track_label: str = src("4.2", "Label that tells stable and canary pods apart")
    replicas_total: int | None = Field(
        ge=1,
        description="Pods to share between the tracks; default: stable's replicas at the start",
    )
    rollout_timeout_seconds: int = src(
        "3.2", "How long to wait for a rollout (`kubectl rollout status --timeout`)"
    )
    istio: IstioSettings | None = src(
        "4.2", "Split traffic with Istio; null splits by replica counts"
    )
    service: str | None = Field(
        description="Service whose selector a blue-green release switches between the "
        "tracks when there is no Istio; default: the Deployment's name"
    )
    preview_service: str | None = Field(
        description="A Service that selects only the new version's pods: the blue-green "
        "preview without Istio, checked from inside the cluster; null: `blue_green.preview_url`"
    )


class ArgoSettings(_Model):
    context: str | None = Field(
        description="kubeconfig context of the cluster; default: the kubeconfig's current one"
    )
    namespace: str = src("4.4", "Namespace of the Rollout")
    rollout: str = src("4.4", "Name of the Argo Rollout")
    rollout_timeout_seconds: int = src("3.2", "How long to wait for the Rollout to settle")


class CloudRunSettings(_Model):
    project: str | None = Field(description="Google Cloud project; default: from the credentials")
    region: str = src("3.2", "Cloud Run region")
    service: str = src("3.2", "Cloud Run service")
    image: str | None = Field(
        description="Image for a version, with `{version}` in it; default: the current image with its tag replaced"
    )
    canary_tag: str = Field(description="Traffic tag of the new revision while it is a canary")
    timeout_seconds: int = Field(gt=0, description="How long to wait for an operation")


class SmokeCheck(_Model):
    name: str = Field(description="What the report calls the check")
    path: str = Field(description="Path requested from the preview, such as `/health`")
    method: Literal["GET", "HEAD"] = "GET"
    status: int = Field(200, ge=100, le=599, description="The HTTP status it must answer")
    body: Regex | None = Field(
        None, description="A regular expression the answer's body must match"
    )
    max_latency_ms: float | None = Field(
        None, gt=0, description="The slowest answer that passes, in milliseconds"
    )

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"a path starts with `/`, such as `/health`, got {value!r}")
        return value


class BlueGreenPolicy(_Model):
    preview_url: str | None = Field(
        description="Base URL that reaches the preview; default: the target's own (Cloud "
        "Run's tag URL). Kubernetes with Istio sends the canary header route with it"
    )
    smoke: list[SmokeCheck] = Field(
        description="Checks made against the preview before the switch (source §3.2's smoke "
        "tests); the default `/health` is this project's, not the source's: set yours"
    )
    attempts: int = Field(
        ge=1, description="Each smoke check is made this many times; every answer must pass"
    )
    timeout_seconds: float = Field(gt=0, description="Timeout of one smoke request")
    preview_seconds: int = Field(
        ge=0,
        description="How long the preview's own metrics are watched by the §6.1 triggers "
        "before the switch (0: the smoke checks only)",
    )
    hold_seconds: int | None = Field(
        gt=0,
        description="How long the old version stays at full size after the switch, watched "
        "by the §6.1 triggers, before it is scaled down; default: the watch period of the "
        "release type (source §6.3, 5 minutes)",
    )


class ShadowPolicy(_Model):
    mirror_percent: int = Field(
        ge=1, le=100, description="Share of the requests copied to the new version"
    )
    duration_seconds: int = Field(
        gt=0,
        description="How long the shadow runs; the source gives no figure: 10 minutes, the "
        "longest step of source §4.4",
    )
    pod_env: CanaryHeader | None = Field(
        description="An environment variable set on the shadow's pods, so the app can skip "
        "side effects (its writes are the team's concern); null sets none"
    )
    then: Literal["canary", "blue-green", "none"] = Field(
        description="What a passed shadow run hands over to in the same run; `none` ends "
        "with the verdict"
    )


class DeployPolicy(_Model):
    target: Literal["simulated", "kubernetes", "argo", "cloudrun"] = Field(
        description="Where releases go (source §4.1-§4.4); `simulated` is the rehearsal simulator"
    )
    strategy: Strategy = src(
        "4.1",
        "How a release goes out: `canary` (new-feature validation), `blue-green` "
        "(important releases, instant rollback, twice the resources), `shadow` (a traffic "
        "test, no user exposure), `rolling` (straight to 100 %); a release type may name its own",
    )
    blue_green: BlueGreenPolicy = src("4.1", "Blue-green: the preview's checks and the hold")
    shadow: ShadowPolicy = src("4.1", "Shadow: the mirror and what follows a passed run")
    kubernetes: KubernetesSettings
    argo: ArgoSettings
    cloudrun: CloudRunSettings
    environments: dict[str, dict[str, Any]] = Field(
        description="Each environment's own deploy target (source §3.4: staging is not "
        "production): a `deploy` section without `environments`, merged over this one, such "
        "as `staging: {kubernetes: {context: staging}}`. A job deploys only to its own; with "
        "no `staging` entry a real target's staging deploy is skipped, never sent to production"
    )


class SlackSettings(_Model):
    channel: str = src("6.3", "Channel for release notices")
    channels: dict[str, str] = src(
        "6.3", "Channel per event, overriding `channel` (rollbacks go to #incidents)"
    )


StatusTemplateName = Literal["scheduled_maintenance", "degraded_performance", "incident_resolved"]
ComponentStatus = Literal[
    "operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"
]


class StatusComponent(_Model):
    name: str = src("10.3", "The component's name on the status page")
    description: str = Field(description="What it covers")
    group: str | None = Field(description="The component group it is shown in")


class StatusTemplate(_Model):
    title: str = src("10.3", "Incident title")
    body: str = src(
        "10.3",
        "Incident body, a Jinja template rendered strictly: an unknown variable is an error",
    )


class StatusPageSettings(_Model):
    page_id: str | None = Field(
        description="The Statuspage page id; null: no status page (the source names none). "
        "The API key comes from the environment, `STATUSPAGE_API_KEY`"
    )
    components: list[StatusComponent] = src("10.3", "The page's components")
    services: dict[str, list[str]] = Field(
        description="Which components a service's rollback degrades: service (the deployment) "
        "-> component names; a service not named here opens no incident"
    )
    rollback_status: ComponentStatus = src(
        "10.3", "Component status while a rollback's incident is open (`degraded_performance`)"
    )
    templates: dict[StatusTemplateName, StatusTemplate] = src(
        "10.3",
        "Incident texts: `scheduled_maintenance`, `degraded_performance`, `incident_resolved`",
    )

    @field_validator("templates")
    @classmethod
    def _renders(cls, value: dict[str, StatusTemplate]) -> dict[str, StatusTemplate]:
        # A typo in a template fails when the policy is read, not in the middle of a
        # rollback when the incident is opened.
        from release_actions.core.status_page import check_template

        for name, template in value.items():
            problem = check_template(name, template)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("services")
    @classmethod
    def _known_components(
        cls, value: dict[str, list[str]], info: ValidationInfo
    ) -> dict[str, list[str]]:
        names = {c.name for c in info.data.get("components") or []}
        for service, components in value.items():
            unknown = [c for c in components if c not in names]
            if unknown:
                raise ValueError(
                    f"service {service!r} names components not in `components`: "
                    + ", ".join(repr(c) for c in unknown)
                )
        return value


class NotificationPolicy(_Model):
    templates_dir: str | None = Field(
        description="Folder whose `<event>.slack.j2` / `<event>.md.j2` files replace the built-in messages (source §10.2)"
    )
    slack: SlackSettings
    status_page: StatusPageSettings = src("10.3", "Status page incidents and maintenance")


class LaunchDarklySettings(_Model):
    project: str = src("6.2", "LaunchDarkly project")
    environment: str = src("6.2", "Environment whose flags the kill switch turns off")
    kill_switch: list[str] = src("6.2", "Flags turned off on a rollback (option C)")


FlagKind = Literal["release", "ops", "experiment", "permission"]


class FlagEntry(_Model):
    key: str = Field(description="The flag's key in LaunchDarkly")
    kind: FlagKind = src("5.1", "Release, ops, experiment or permission flag")
    owner: str | None = Field(
        description="Who cleans it up: a GitHub user or `org/team`; null: nobody named yet"
    )
    experiment_ends: str | None = Field(
        description="An experiment flag's end date, YYYY-MM-DD in the calendar's time zone"
    )

    @field_validator("experiment_ends")
    @classmethod
    def _a_date(cls, value: str | None) -> str | None:
        if value is not None:
            from datetime import date

            try:
                date.fromisoformat(value)
            except ValueError:
                raise ValueError(f"expected a date YYYY-MM-DD, got {value!r}") from None
        return value


class FlagRetention(_Model):
    release_days: int = src("5.5", "A release flag is stale this many days after GA (90)")
    experiment_days: int = src(
        "5.5", "An experiment flag is stale this many days after its end (30)"
    )
    review_days: int = src("5.5", "Ops and permission flags are permanent, reviewed yearly (365)")


class FlagRule(_Model):
    attribute: str = Field(description="The context attribute, such as `email` or `betaTester`")
    operator: Literal["endsWith", "in", "startsWith", "matches", "contains"] = Field(
        description="LaunchDarkly's clause operator"
    )
    values: list[str | bool | int] = Field(description="The clause's values")


class FlagStage(_Model):
    environment: str = Field(description="The LaunchDarkly environment the stage targets")
    rule: FlagRule | None = Field(description="The rule that serves the flag on; null: none")
    percent: int | None = Field(
        ge=0, le=100, description="Share of the rule's (or everyone's) contexts served on"
    )


class FlagStages(_Model):
    internal: FlagStage = src("5.5", "Internal Testing: staging, `email endsWith @triptrip.com`")
    beta: FlagStage = src("5.5", "Beta: production, `custom.betaTester == true`, 10 %")
    gradual: list[int] = src("5.5", "Gradual Rollout: 25 -> 50 -> 75 -> 100 % in production")
    environment: str = src("5.5", "The production environment of the gradual rollout and GA")


class FlagGuard(_Model):
    queries: dict[Literal["prometheus", "datadog"], dict[str, str]] = Field(
        description="Per provider (`prometheus`, `datadog`): `requests` and `errors` query "
        "templates with `{{ flag }}` and `{{ variation }}`, for apps that tag their request "
        "metrics with the variation they served"
    )
    step_seconds: int = Field(
        gt=0,
        description="How long each percentage step is judged; the source gives none: 10 "
        "minutes, the longest step of source §4.4",
    )
    on_regression: Literal["last_safe", "off"] = Field(
        description="A regression sets the rollout back to the last safe percentage, or "
        "turns the flag off"
    )


class FeatureFlagPolicy(_Model):
    launchdarkly: LaunchDarklySettings
    catalog: list[FlagEntry] = src(
        "5.1, 5.2", "Each flag's kind and owner; the defaults are the source's example flags"
    )
    retention: FlagRetention = src("5.5", "When a flag is stale or due for review")
    stages: FlagStages = src("5.5", "The lifecycle's targeting per stage")
    guard: FlagGuard = Field(description="The guarded gradual rollout (beyond the source)")


class DoraTargets(_Model):
    """One column of source §1.2's table of targets."""

    deployments_per_day: float = Field(
        gt=0, description="Deployment frequency at least this (daily: 1; on demand: 1 and more)"
    )
    lead_time_seconds: float = Field(gt=0, description="Median lead time for changes under this")
    change_failure_rate_percent: float = Field(
        gt=0, le=100, description="Change failure rate under this"
    )
    restore_seconds: float = Field(gt=0, description="Median time to restore (MTTR) at most this")
    rollback_seconds: float = Field(gt=0, description="Mean rollback time at most this")


class QualityTargets(_Model):
    deployment_success_rate_percent: float = src("11.2", "Deployment success rate above (95 %)")
    canary_success_rate_percent: float = src("11.2", "Canary success rate above (90 %)")
    rollback_rate_percent: float = src("11.2", "Rollback rate below (5 %)")
    mean_rollback_seconds: float = src("11.2", "Mean rollback time below (5 minutes)")
    blockers_per_release: float = src("11.2", "Release blockers per release below (1)")
    deployment_duration_seconds: float = src("11.2", "Deployment duration below (30 minutes)")


class ReportingPolicy(_Model):
    environment: str = Field(description="The environment whose deployments are counted")
    blocker_label: str = src(
        "11.2", "Issues with this label opened while a release was in staging are its blockers"
    )
    year1: DoraTargets = src("1.2", "Year 1 targets: daily, 1 day, < 10 %, 30 min, 5 min")
    year3: DoraTargets = src("1.2", "Year 3 targets: on demand, 1 hour, < 5 %, 15 min, 2 min")
    quality: QualityTargets = src("11.2", "Release quality targets")
    datadog: bool = Field(
        description="Also submit the figures to Datadog as `release_actions.dora.*` gauges"
    )


class ReadinessPolicy(_Model):
    min_coverage_percent: float = src("3.1", "Code coverage at least this")
    min_approvals: int = src("3.1", "Pull-request approvals at least this")
    required_checks: list[str] = Field(
        description="Check runs that must have passed on the tagged commit"
    )


class Policy(_Model):
    """The effective release policy."""

    version: Literal[1] = 1
    replace: list[str] = Field(
        description="Lists of named entries that replace the defaults instead of merging "
        "with them by `name`: dotted paths such as `calendar.blocked_periods`"
    )
    tag: TagPolicy
    release_types: dict[str, ReleaseTypePolicy] = src("1.4, 3.3", "Release types")
    calendar: CalendarPolicy
    branches: BranchPolicy
    canary: CanaryPolicy
    monitor: MonitorPolicy
    metrics: MetricsPolicy
    migrations: MigrationPolicy
    readiness: ReadinessPolicy
    deploy: DeployPolicy
    notifications: NotificationPolicy
    feature_flags: FeatureFlagPolicy
    train: TrainPolicy = src("2.1, 2.2, 8.1", "The release train: freeze, staging, production")
    reporting: ReportingPolicy = src("1.2, 11", "DORA and release quality metrics")
    mobile: MobilePolicy = Field(
        default_factory=MobilePolicy,
        description="Store staged rollouts: stages, criteria, halt conditions (source §8.3)",
    )

    def for_environment(self, name: str) -> Policy | None:
        """This policy with environment ``name``'s own deploy section; None when it names none."""
        entry = self.deploy.environments.get(name)
        if entry is None:
            return None
        base = self.deploy.model_dump(mode="python")
        base.pop("environments")
        deploy = DeployPolicy.model_validate({**merge(base, entry), "environments": {}})
        return self.model_copy(update={"deploy": deploy})

    def release_type(self, name: str) -> ReleaseTypePolicy:
        try:
            return self.release_types[name]
        except KeyError:
            from release_actions.core.yamlpos import did_you_mean

            near = did_you_mean(name, self.release_types)
            raise PolicyError(
                f"Unknown release type `{name}`: "
                + (f"{near} " if near else "")
                + f"The policy defines {', '.join(f'`{t}`' for t in self.release_types)}."
            ) from None


def default_policy_data() -> dict[str, Any]:
    """The source document's policy as plain data; a policy file is merged over this."""
    return {
        "version": 1,
        "replace": [],
        "tag": {"prefix": "v", "allow_build_metadata": True},
        "release_types": {
            "regular": {
                "description": "Regular feature release (daily to weekly)",
                "approval": "automatic",
                "approvers": [],
                "environment": "production",
                "canary": "required",
                "blocked_periods": "block",
                "outside_release_window": "warn",
                "maintenance_windows": "block",
                "high_traffic_periods": "staged",
                "strategy": None,
                "monitor_seconds": 300,
            },
            "hotfix": {
                "description": "Urgent fix of a P1/P2 incident",
                "approval": "manual",
                "approvers": ["tech-lead"],
                "environment": "production-hotfix",
                "canary": "optional",
                "blocked_periods": "warn",
                "outside_release_window": "allow",
                "maintenance_windows": "warn",
                "high_traffic_periods": "staged",
                "strategy": None,
                "monitor_seconds": 1800,
                "alert_threshold_percent": 0.5,
            },
            "security": {
                "description": "Security patch",
                "approval": "manual",
                "approvers": ["security-team", "tech-lead"],
                "environment": "production-security",
                "canary": "required",
                "blocked_periods": "warn",
                "outside_release_window": "allow",
                "maintenance_windows": "warn",
                "high_traffic_periods": "staged",
                "strategy": None,
                "monitor_seconds": 300,
            },
            "config": {
                "description": "Configuration change such as a feature flag",
                "approval": "automatic",
                "approvers": [],
                "environment": "production",
                "canary": "optional",
                "blocked_periods": "warn",
                "outside_release_window": "allow",
                "maintenance_windows": "warn",
                "high_traffic_periods": "staged",
                "strategy": None,
                "monitor_seconds": 300,
            },
            "infrastructure": {
                "description": "Infrastructure change: scaling, upgrades (weekly)",
                "approval": "manual",
                "approvers": ["platform-team", "affected-teams"],
                "environment": "production-infrastructure",
                "canary": "required",
                "blocked_periods": "block",
                "outside_release_window": "warn",
                "maintenance_windows": "block",
                "high_traffic_periods": "staged",
                "strategy": None,
                "monitor_seconds": 300,
            },
        },
        "calendar": {
            "timezone": "Asia/Tokyo",
            "release_window": {"days": ["tuesday"], "start": "10:00"},
            "blocked_periods": [
                {
                    "name": "New Year holidays",
                    "start": "12-28",
                    "end": "01-04",
                    "reason": "reduced support",
                },
                {
                    "name": "Golden Week",
                    "start": "04-29",
                    "end": "05-05",
                    "reason": "reduced support",
                },
                {"name": "Obon", "start": "08-13", "end": "08-16", "reason": "reduced support"},
            ],
            "high_traffic_periods": [
                {
                    "name": "Travel season: spring break",
                    "start": "03-15",
                    "end": "04-10",
                    "reason": "important changes only, staged rollout mandatory",
                },
                {
                    "name": "Travel season: summer holidays",
                    "start": "07-20",
                    "end": "08-31",
                    "reason": "important changes only, staged rollout mandatory",
                },
                {
                    "name": "Travel season: year end and New Year",
                    "start": "12-20",
                    "end": "01-10",
                    "reason": "important changes only, staged rollout mandatory",
                },
            ],
            "maintenance_windows": [
                {
                    "day": "sunday",
                    "start": "02:00",
                    "end": "06:00",
                    "purpose": "scheduled maintenance",
                },
            ],
            "holidays": {"country": None, "subdivision": None},
        },
        "train": {
            "cadence": "weekly",
            "offset_weeks": 0,
            "timezone": None,
            "freeze": {"day": "wednesday", "time": "10:00"},
            "staging": {"day": "thursday", "time": "10:00"},
            "production": {"day": "tuesday", "time": "10:00"},
            "branch": "release/v{major}.{minor}.0",
            "bump": "auto",
            "freeze_rules": {
                "allowed_labels": ["fix", "hotfix", "security"],
                "allowed_title": r"^fix(\([^)]*\))?!?: ",
                "exception_label": "freeze-exception",
                "exception_approvers": ["tech-lead"],
                "freeze_main": False,
            },
        },
        "branches": {
            "main": "main",
            "hotfix_pattern": r"^hotfix/[A-Z]+-[0-9]+-.+",
            "release_pattern": r"^release/v(?P<version>.+)$",
        },
        "canary": {
            "steps": "argo",
            "analysis": {
                "judge": "sequential",
                "min_requests": 100,
                "max_error_rate_diff_points": 0.5,
                "max_p99_diff_percent": 10.0,
                "analysis_seconds": 300,
                "interval_seconds": 60,
                "sequential_interval_seconds": 10,
                "min_success_rate": 0.99,
                "max_p99_ms": 500.0,
                "failure_limit": 3,
                "consecutive_error_limit": 4,
                "on_error": "rollback",
                "false_rollback_rate": 0.01,
                "pass_error_ratio": 1.5,
                "practical_error_ratio": 1.1,
            },
        },
        "monitor": {
            "duration_seconds": 300,
            "interval_seconds": 10,
            "triggers": {
                "error_rate_percent": {"threshold": 5.0, "window_seconds": 120},
                "p99_latency_ms": {"threshold": 5000.0, "window_seconds": 300},
                "health_check_failures": {"threshold": 3, "window_seconds": 60},
                "pod_restarts": {"threshold": 5, "window_seconds": 300},
            },
            "recovery": {
                "max_error_rate_percent": 0.1,
                "max_p99_ms": 500.0,
                "min_success_rate_percent": 99.0,
            },
        },
        "readiness": {"min_coverage_percent": 80.0, "min_approvals": 2, "required_checks": []},
        "deploy": {
            "target": "simulated",
            "strategy": "canary",
            "blue_green": {
                "preview_url": None,
                "smoke": [{"name": "health", "path": "/health", "status": 200}],
                "attempts": 3,
                "timeout_seconds": 10.0,
                "preview_seconds": 0,
                "hold_seconds": None,
            },
            "shadow": {
                "mirror_percent": 100,
                "duration_seconds": 600,
                "pod_env": {"name": "RELEASE_ACTIONS_SHADOW", "value": "true"},
                "then": "canary",
            },
            "environments": {},
            "kubernetes": {
                "context": None,
                "namespace": "triptrip",
                "deployment": "triptrip-api",
                "container": None,
                "canary_suffix": "-canary",
                "track_label": "track",
                "replicas_total": None,
                "rollout_timeout_seconds": 300,
                "service": None,
                "preview_service": None,
                "istio": {
                    "virtual_service": "triptrip-api",
                    "destination_rule": None,
                    "stable_subset": "stable",
                    "canary_subset": "canary",
                    "canary_header": {"name": "x-canary", "value": "true"},
                },
            },
            "argo": {
                "context": None,
                "namespace": "triptrip",
                "rollout": "triptrip-api",
                "rollout_timeout_seconds": 300,
            },
            "cloudrun": {
                "project": None,
                "region": "asia-northeast1",
                "service": "triptrip-api",
                "image": None,
                "canary_tag": "canary",
                "timeout_seconds": 600,
            },
        },
        "notifications": {
            "templates_dir": None,
            "slack": {"channel": "#releases", "channels": {"rolled_back": "#incidents"}},
            "status_page": {
                "page_id": None,
                "components": [
                    {
                        "name": "TripTrip API",
                        "description": "Core API services",
                        "group": "Backend Services",
                    },
                    {
                        "name": "TripTrip Web",
                        "description": "Web application",
                        "group": "Frontend",
                    },
                    {
                        "name": "TripTrip Mobile (iOS)",
                        "description": "iOS mobile application",
                        "group": "Mobile Apps",
                    },
                    {
                        "name": "TripTrip Mobile (Android)",
                        "description": "Android mobile application",
                        "group": "Mobile Apps",
                    },
                ],
                "services": {"triptrip-api": ["TripTrip API"], "triptrip-web": ["TripTrip Web"]},
                "rollback_status": "degraded_performance",
                "templates": {
                    "scheduled_maintenance": {
                        "title": "[Scheduled] System Maintenance",
                        "body": (
                            "We will be performing scheduled maintenance on our systems.\n\n"
                            "**Scheduled Time**: {{ start_time }} - {{ end_time }} JST\n"
                            "**Affected Services**: {{ affected_components }}\n"
                            "**Expected Impact**: {{ impact_description }}\n\n"
                            "We apologize for any inconvenience.\n"
                        ),
                    },
                    "degraded_performance": {
                        "title": "Performance Degradation",
                        "body": (
                            "We are currently experiencing degraded performance.\n\n"
                            "**Affected Services**: {{ affected_components }}\n"
                            "**Impact**: {{ impact_description }}\n\n"
                            "Our team is investigating the issue.\n"
                        ),
                    },
                    "incident_resolved": {
                        "title": "Incident Resolved",
                        "body": (
                            "The incident has been resolved.\n\n"
                            "**Duration**: {{ duration }}\n"
                            "**Root Cause**: {{ root_cause }}\n\n"
                            "We apologize for the inconvenience caused.\n"
                        ),
                    },
                },
            },
        },
        "reporting": {
            "environment": "production",
            "blocker_label": "release-blocker",
            "year1": {
                "deployments_per_day": 1.0,
                "lead_time_seconds": 86400.0,
                "change_failure_rate_percent": 10.0,
                "restore_seconds": 1800.0,
                "rollback_seconds": 300.0,
            },
            "year3": {
                "deployments_per_day": 1.0,
                "lead_time_seconds": 3600.0,
                "change_failure_rate_percent": 5.0,
                "restore_seconds": 900.0,
                "rollback_seconds": 120.0,
            },
            "quality": {
                "deployment_success_rate_percent": 95.0,
                "canary_success_rate_percent": 90.0,
                "rollback_rate_percent": 5.0,
                "mean_rollback_seconds": 300.0,
                "blockers_per_release": 1.0,
                "deployment_duration_seconds": 1800.0,
            },
            "datadog": False,
        },
        "feature_flags": {
            "launchdarkly": {"project": "triptrip", "environment": "production", "kill_switch": []},
            "catalog": [
                {
                    "key": "new-booking-flow",
                    "kind": "release",
                    "owner": None,
                    "experiment_ends": None,
                },
                {
                    "key": "ai-trip-suggestions",
                    "kind": "release",
                    "owner": None,
                    "experiment_ends": None,
                },
                {
                    "key": "real-time-pricing",
                    "kind": "release",
                    "owner": None,
                    "experiment_ends": None,
                },
                {
                    "key": "payment-gateway-enabled",
                    "kind": "ops",
                    "owner": None,
                    "experiment_ends": None,
                },
                {
                    "key": "external-map-api-enabled",
                    "kind": "ops",
                    "owner": None,
                    "experiment_ends": None,
                },
                {
                    "key": "rate-limiting-strict",
                    "kind": "ops",
                    "owner": None,
                    "experiment_ends": None,
                },
                {
                    "key": "search-algorithm-variant",
                    "kind": "experiment",
                    "owner": None,
                    "experiment_ends": None,
                },
                {
                    "key": "checkout-ui-variant",
                    "kind": "experiment",
                    "owner": None,
                    "experiment_ends": None,
                },
                {
                    "key": "premium-features",
                    "kind": "permission",
                    "owner": None,
                    "experiment_ends": None,
                },
                {
                    "key": "beta-tester-features",
                    "kind": "permission",
                    "owner": None,
                    "experiment_ends": None,
                },
            ],
            "retention": {"release_days": 90, "experiment_days": 30, "review_days": 365},
            "stages": {
                "internal": {
                    "environment": "staging",
                    "rule": {
                        "attribute": "email",
                        "operator": "endsWith",
                        "values": ["@triptrip.com"],
                    },
                    "percent": None,
                },
                "beta": {
                    "environment": "production",
                    "rule": {"attribute": "betaTester", "operator": "in", "values": [True]},
                    "percent": 10,
                },
                "gradual": [25, 50, 75, 100],
                "environment": "production",
            },
            "guard": {
                "queries": {},
                "step_seconds": 600,
                "on_regression": "last_safe",
            },
        },
        "migrations": {
            "dir": None,
            "layout": "prisma",
            "table": "_prisma_migrations",
            "lock_timeout_seconds": 60.0,
            "deploy_command": None,
            "status_command": None,
            "refuse_rollback_past_contract": True,
        },
        "metrics": {
            "provider": "simulated",
            "service": "triptrip-api",
            "timeout_seconds": 10.0,
            "prometheus": {
                "url": None,
                "namespace": None,
                "service_label": "service",
                "track_label": "track",
                "namespace_label": "namespace",
                "matchers": {},
                "slow_buckets": None,
                "queries": {},
                "scrape_interval_seconds": None,
            },
            "datadog": {
                "site": "datadoghq.com",
                "service_tag": "service",
                "track_tag": "track",
                "tags": {},
                "latency_unit": "millisecond",
                "queries": {},
                "min_window_seconds": 60.0,
            },
        },
    }


def _named(items: Any) -> bool:
    return (
        isinstance(items, list)
        and bool(items)
        and all(isinstance(i, dict) and "name" in i for i in items)
    )


def merge(base: Any, override: Any, replace: frozenset[str] = frozenset(), path: str = "") -> Any:
    """Deep-merge ``override`` over ``base``.

    Mappings merge key by key. A list of named entries (the calendar's periods) merges by
    `name`: an entry of the file replaces the default of that name, a new name is added, so
    adding a company period never drops New Year, Golden Week or Obon. Such a list replaces
    the defaults only when its dotted path is in ``replace``. Any other list, and any
    scalar, replaces: a union of allow-lists (release days) would widen them unasked.
    """
    if isinstance(base, dict) and isinstance(override, dict):
        out = dict(base)
        for key, value in override.items():
            where = f"{path}.{key}" if path else str(key)
            out[key] = merge(base[key], value, replace, where) if key in base else value
        return out
    if _named(base) and isinstance(override, list) and path not in replace:
        merged = list(base)
        index = {item["name"]: i for i, item in enumerate(base)}
        for item in override:
            name = item.get("name") if isinstance(item, dict) else None
            if name in index:
                merged[index[name]] = merge(base[index[name]], item, replace, path)
            else:
                merged.append(item)
        return merged
    return override


def _file_loc(
    loc: tuple[str | int, ...], defaults: Any, data: Any, replace: frozenset[str]
) -> tuple[str | int, ...]:
    """Where an entry of the merged data stands in the file: merging by name moves entries."""
    base, given = defaults, data
    for depth, part in enumerate(loc):
        path = ".".join(str(p) for p in loc[:depth])
        if isinstance(part, int) and _named(base) and isinstance(given, list):
            if path in replace:
                base = None
            else:
                names = [item["name"] for item in base]
                added = [
                    i
                    for i, item in enumerate(given)
                    if not (isinstance(item, dict) and item.get("name") in names)
                ]
                if part < len(base):
                    name = base[part]["name"]
                    mine = [
                        i
                        for i, item in enumerate(given)
                        if isinstance(item, dict) and item.get("name") == name
                    ]
                    if not mine:
                        return loc[:depth]  # a default entry: the file has only the list
                    part = mine[-1]
                else:
                    part = added[part - len(base)]
                return (
                    *loc[:depth],
                    part,
                    *_file_loc(loc[depth + 1 :], None, given[part], replace),
                )
        base = base.get(part) if isinstance(base, dict) else None
        given = (
            given.get(part)
            if isinstance(given, dict)
            else (
                given[part]
                if isinstance(given, list) and isinstance(part, int) and part < len(given)
                else None
            )
        )
    return loc


def _under(prefix: tuple[str | int, ...], loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    return (*prefix, *loc)


def _named_paths(data: Any, path: str = "") -> list[str]:
    if _named(data):
        return [path]
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in _named_paths(v, f"{path}.{k}" if path else k)]
    return []


def parse_policy(
    data: Any, path: str, lines: dict[tuple[str | int, ...], int] | None = None
) -> Policy:
    from release_actions.core.yamlpos import Located, validation_issues

    located = Located(data, path, lines or {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(
            f"{path} must be a mapping of policy sections",
            [PolicyIssue(path, 1, "(document)", f"found {type(data).__name__}")],
        )
    replace = data.get("replace") or []
    if not isinstance(replace, list) or not all(isinstance(p, str) for p in replace):
        raise PolicyError(
            f"{path} is not a valid release policy",
            [
                PolicyIssue(
                    path,
                    located.line_of(("replace",)),
                    "replace",
                    "must be a list of dotted paths, such as `calendar.blocked_periods`",
                )
            ],
        )
    defaults = default_policy_data()
    for i, where in enumerate(replace):
        value: Any = defaults
        for part in where.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not _named(value):
            raise PolicyError(
                f"{path} is not a valid release policy",
                [
                    PolicyIssue(
                        path,
                        located.line_of(("replace", i)),
                        f"replace.{i}",
                        f"`{where}` is not a list that merges by name; those are "
                        + ", ".join(f"`{p}`" for p in _named_paths(defaults)),
                    )
                ],
            )
    merged = merge(defaults, data, frozenset(replace))
    # A release type the file adds starts from `regular`, so it needs only what differs.
    added = data.get("release_types")
    for name, value in added.items() if isinstance(added, dict) else ():
        if isinstance(value, dict) and name not in default_policy_data()["release_types"]:
            merged["release_types"][name] = merge(
                default_policy_data()["release_types"]["regular"], value
            )
    try:
        policy = Policy.model_validate(merged)
    except ValidationError as exc:
        issues = validation_issues(
            exc,
            located,
            "check the spelling; `release-actions policy schema` lists them",
            where=lambda loc: _file_loc(loc, defaults, data, frozenset(replace)),
            model=Policy,
        )
        raise PolicyError(f"{path} is not a valid release policy", issues) from None
    for name, entry in policy.deploy.environments.items():
        try:
            if "environments" in entry:
                raise PolicyError(
                    f"{path} is not a valid release policy",
                    [
                        PolicyIssue(
                            path,
                            located.line_of(("deploy", "environments", name, "environments")),
                            f"deploy.environments.{name}.environments",
                            "an environment's deploy section cannot name environments",
                        )
                    ],
                )
            policy.for_environment(name)
        except ValidationError as exc:
            issues = validation_issues(
                exc,
                located,
                "check the spelling; `release-actions policy schema` lists them",
                where=functools.partial(_under, ("deploy", "environments", name)),
                model=DeployPolicy,
            )
            raise PolicyError(f"{path} is not a valid release policy", issues) from None
    for issue in policy_warnings(data, policy, located):
        warnings.warn(PolicyWarning(issue), stacklevel=2)
    return policy


def policy_warnings(data: dict[str, Any], policy: Policy, located: Located) -> list[PolicyIssue]:
    """Keys the file sets that do nothing with this policy: a setting that is silently ignored
    is a safety setting that someone believes is in force."""
    canary = data.get("canary")
    given = canary.get("analysis") if isinstance(canary, dict) else None
    judge = policy.canary.analysis.judge
    issues = []
    for key in unused_analysis_keys(given, judge, policy.deploy.target):
        loc = ("canary", "analysis", key)
        readers = [
            f"the `{name}` " + ("target and `argo render`" if name == "argo" else "judge")
            for name, keys in ANALYSIS_KEYS_READ.items()
            if key in keys
        ]
        issues.append(
            PolicyIssue(
                located.path,
                located.line_of(loc),
                ".".join(loc),
                f"has no effect on the canary analysis: the judge in use is `{judge}`, and only "
                + " or ".join(readers)
                + " reads it. Remove it, or set `canary.analysis.judge` to the judge it "
                "belongs to.",
            )
        )
    return issues


def load_policy(path: Path | None = None, *, required: bool = False) -> Policy:
    """The policy at ``path``, else ``.github/release-policy.yml`` if present, else the defaults."""
    from release_actions.core.yamlpos import load_yaml_file

    if path is None:
        if not DEFAULT_POLICY_PATH.exists():
            return Policy.model_validate(default_policy_data())
        path = DEFAULT_POLICY_PATH
    elif not path.exists() and not required:
        raise PolicyError(
            f"The policy file {path} does not exist.",
            hint="Check the path, or leave --policy out to use the source document's defaults.",
            file=str(path),
        )
    located = load_yaml_file(path)
    return parse_policy(located.data, str(path), located.lines)


def default_policy() -> Policy:
    return Policy.model_validate(default_policy_data())


SCHEMA_PATH = "schema/policy.schema.json"
SCHEMA_URL = f"https://raw.githubusercontent.com/triptrip/release-actions/v1/{SCHEMA_PATH}"

# Models whose entries a list holds: a list replaces the defaults (or, for named periods,
# merges by `name`), so an entry needs its own required keys.
_LIST_ENTRIES: dict[str, list[str] | None] = {
    "RolloutStep": None,  # as the model says
    "ClockWindow": None,
    "DatePeriod": ["name"],  # the rest may come from the default period of that name
}


def policy_file_schema() -> dict[str, Any]:
    """The JSON Schema of a policy *file*: every section is merged over the defaults, so no
    key is required, and, as the loader does, an unknown key is refused at every level."""
    data = Policy.model_json_schema()
    defs: dict[str, Any] = data["$defs"]
    for name, schema in [("", data), *defs.items()]:
        if name in _LIST_ENTRIES:
            if _LIST_ENTRIES[name] is not None:
                schema["required"] = _LIST_ENTRIES[name]
        else:
            schema.pop("required", None)
    # `canary.steps`: a preset by name, or the list.
    steps = defs["CanaryPolicy"]["properties"]["steps"]
    for branch in steps["anyOf"]:
        if branch.get("type") == "string":
            branch["enum"] = list(STEP_PRESETS)
    # `deploy.environments.NAME`: a deploy section of its own, without `environments`.
    override = {
        key: value
        for key, value in defs["DeployPolicy"].items()
        if key not in ("properties", "title", "description")
    }
    override["properties"] = {
        k: v for k, v in defs["DeployPolicy"]["properties"].items() if k != "environments"
    }
    override["title"] = "DeployOverride"
    defs["DeployOverride"] = override
    environments = defs["DeployPolicy"]["properties"]["environments"]
    environments["additionalProperties"] = {"$ref": "#/$defs/DeployOverride"}
    environments.pop("default", None)
    # `replace`: the lists that merge by name.
    replace = data["properties"]["replace"]
    replace["items"] = {"type": "string", "enum": _named_paths(default_policy_data())}
    out: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_URL,
        "title": "release-actions release policy (.github/release-policy.yml)",
        "description": "Every key is optional: the file is merged over the source document's "
        "defaults (`release-actions policy show --defaults`). Generated by `release-actions "
        f"policy schema`; committed as {SCHEMA_PATH}.",
    }
    out.update({k: v for k, v in data.items() if k not in ("title", "description")})
    return out


def parse_clock(text: str) -> time:
    hour, minute = text.split(":")
    return time(int(hour), int(minute))
