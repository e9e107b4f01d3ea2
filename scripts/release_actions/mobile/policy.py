"""The release policy's `mobile` section: stages, criteria, halt conditions (source §8.3)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from release_actions.mobile.base import Platform


class _Model(BaseModel):
    # As every policy section: a typo in a key is an error, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", frozen=True)


def _src(text: str) -> str:
    return f"{text} (source §8.3)"


class MobileStage(_Model):
    fraction: float = Field(gt=0, le=1, description="User fraction of the stage: 0.01 for 1 %")
    min_hours: float = Field(
        default=0, ge=0, description="Hours the stage runs at least before it may advance"
    )


# Source §8.3: 1 % for 24 h, 5 % for 24 h, 20 % for 48 h, 50 % for 48 h (days 0, 1, 2, 4),
# then 100 % on day 6.
PLAY_STAGES: tuple[tuple[float, float], ...] = (
    (0.01, 24),
    (0.05, 24),
    (0.20, 48),
    (0.50, 48),
    (1.0, 0),
)
# Apple's phased release: its own 7-day schedule, one step a day; the gate cannot change it,
# only pause it (source §8.2 `phased_release: true`).
APPLE_STAGES: tuple[tuple[float, float], ...] = (
    (0.01, 24),
    (0.02, 24),
    (0.05, 24),
    (0.10, 24),
    (0.20, 24),
    (0.50, 24),
    (1.0, 0),
)
STAGE_PRESETS: dict[str, tuple[tuple[float, float], ...]] = {
    "play": PLAY_STAGES,
    "apple": APPLE_STAGES,
}


def preset_stages(name: str) -> list[MobileStage]:
    return [MobileStage(fraction=f, min_hours=h) for f, h in STAGE_PRESETS[name]]


class AdvanceCriteria(_Model):
    """What every stage needs to advance, besides its time (source §8.3 `criteria`)."""

    min_crash_free_percent: float = Field(
        default=99.5, gt=0, le=100, description=_src("Crash-free users at least this")
    )
    max_anr_percent: float = Field(
        default=0.1, gt=0, le=100, description=_src("ANR rate below this (Android)")
    )


class HaltConditions(_Model):
    """Any of these stops the rollout (source §8.3 `halt_conditions`)."""

    crash_free_below_percent: float = Field(
        default=99.0, gt=0, le=100, description=_src("Halt when crash-free users fall below this")
    )
    anr_above_percent: float = Field(
        default=0.5, gt=0, le=100, description=_src("Halt when the ANR rate exceeds this")
    )
    rating_drop_above: float = Field(
        default=0.5,
        gt=0,
        le=4,
        description=_src("Halt when the rating is this many stars below the previous version's"),
    )
    critical_reviews_above: int = Field(
        default=10,
        ge=0,
        description=_src("Halt when more reviews of the new version than this are critical"),
    )


# Texts of "critical" reports: the app does not start, crashes, loses data or money. A
# review matching any is counted against `critical_reviews_above`. English and Japanese,
# as the source's users write (§8.3 `user_reviews: no_critical_issues`).
DEFAULT_CRITICAL_PATTERNS: tuple[str, ...] = (
    r"\bcrash",
    r"\bfreez",
    r"won'?t (open|start|launch|load)",
    r"(does ?n[o']t|can'?not|can'?t) (open|start|launch|log ?in|sign ?in)",
    r"black screen|white screen|blank screen",
    r"lost (all )?(my )?data|data (was )?(lost|gone|deleted)",
    r"charged twice|payment (failed|fails)",
    "クラッシュ",
    "落ち(る|ます|た)",
    "強制終了",
    "起動しない|起動できない|開かない",
    "フリーズ|固まる|固まり",
    "ログインできない",
    "データが(消え|消失|なくな)",
    "二重(課金|請求)",
)


# What a per-version query may name: the version as users see it, its store build number,
# the platform, and the stage's window as a duration (`172800s`), as the providers' own
# queries call it.
METRIC_VARIABLES = ("version", "version_code", "platform", "interval")


class MetricCriterion(_Model):
    """A per-version metric, the new version against the previous one over the stage's window.

    Each look runs the query once per version; a worse value than ``max_drop`` allows holds
    the stage (``halt: true`` halts instead), and a query that cannot be answered holds it
    as "not measured": it never passes.
    """

    name: str | None = Field(default=None, description="Name in the evidence and job summary")
    provider: Literal["prometheus", "datadog"] = Field(
        description="Where the query runs, with the connection of `metrics.<provider>`"
    )
    query: str = Field(
        min_length=1,
        description="The query of one version's value; variables `{{ version }}`, "
        "`{{ version_code }}`, `{{ platform }}`, `{{ interval }}` (the stage's window, such as "
        "`172800s`), rendered strictly. Prometheus: an instant query at the window's end; "
        "Datadog: one series over the window, folded by `reduce`",
    )
    compare: Literal["points", "percent"] = Field(
        description="`points`: the drop as a difference of the values (percentage points of "
        "a rate); `percent`: the drop relative to the previous version's value"
    )
    max_drop: float = Field(
        default=0.0,
        ge=0,
        description="Tolerated drop against the previous version, in `compare`'s unit; "
        "0: at least the previous version's value",
    )
    higher_is_better: bool = Field(
        default=True, description="False for a metric where lower is better (a churn rate)"
    )
    from_fraction: float = Field(
        gt=0, le=1, description="Checked in every stage from this user fraction on"
    )
    reduce: Literal["avg", "sum", "last", "min", "max"] = Field(
        default="avg", description="How Datadog's points over the window become one value"
    )
    halt: bool = Field(
        default=False,
        description="Halt the rollout when the new version is worse; default: hold the stage",
    )

    @field_validator("query")
    @classmethod
    def _renders(cls, value: str) -> str:
        from release_actions.errors import ReleaseActionsError
        from release_actions.metrics.retry import QueryTemplates

        try:
            QueryTemplates(
                "per-version metric", {"query": None}, {"query": value}, METRIC_VARIABLES
            ).check()
        except ReleaseActionsError as exc:
            raise ValueError(exc.message) from None
        return value


class RetentionCriterion(MetricCriterion):
    """Retention per version: source §8.3 `retention_rate: ">= previous_version"` at 20 %."""

    compare: Literal["points", "percent"] = Field(
        default="points",
        description="`points`: the drop as a difference of the values (percentage points of "
        "a rate); `percent`: the drop relative to the previous version's value",
    )
    from_fraction: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description=_src("Checked in every stage from this user fraction on (the 20 % stage)"),
    )


class BusinessCriterion(MetricCriterion):
    """A business metric per version: source §8.3 `business_metrics: "no_degradation"` at 50 %."""

    compare: Literal["points", "percent"] = Field(
        default="percent",
        description="`points`: the drop as a difference of the values (percentage points of "
        "a rate); `percent`: the drop relative to the previous version's value",
    )
    from_fraction: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description=_src("Checked in every stage from this user fraction on (the 50 % stage)"),
    )


class MobilePolicy(_Model):
    """Store staged rollouts gated on crash and ANR rates, reviews and ratings (source §8.3).

    Every default is the source's number. Beyond the source, the default `sequential` judge
    compares the new version with the previous one over the same hours (docs/canary-judge.md).
    """

    judge: Literal["sequential", "threshold"] = Field(
        default="sequential",
        description="`sequential`: halt on evidence, new vs previous version, absolute limits on "
        "a confidence bound; `threshold`: the source's rule on the stage's rates as they are",
    )
    stages: dict[Platform, list[MobileStage]] = Field(
        default_factory=lambda: {
            Platform.ANDROID: preset_stages("play"),
            Platform.IOS: preset_stages("apple"),
        },
        description=_src(
            "Stages per platform; iOS follows Apple's phased release, which the gate can only pause"
        ),
    )
    advance: AdvanceCriteria = AdvanceCriteria()
    halt: HaltConditions = HaltConditions()
    critical_patterns: list[str] = Field(
        default_factory=lambda: list(DEFAULT_CRITICAL_PATTERNS),
        description="Regular expressions (case-insensitive) of a critical review",
    )
    false_halt_rate: float = Field(
        default=0.01,
        gt=0,
        lt=0.5,
        description="The sequential judge's chance of ever halting a version that is no worse",
    )
    practical_ratio: float = Field(
        default=1.1,
        ge=1,
        description="A crash or ANR ratio below this is not halted even when proven",
    )
    # 1, as the threshold judge already holds a stage with no users: a stage never advances
    # on hours nobody was seen in. Not more by default: the source's point is that a small
    # healthy app completes its rollout (the `small-app` rehearsal sees 5 or 6 user-hours in
    # its day at 1 %), and a larger minimum holds it there for weeks. An app large enough
    # can ask for more: about 100 expects one crashed user at the halt limit (99 %).
    min_stage_users: int = Field(
        default=1,
        ge=1,
        description="Users of the new version a stage must observe before it may advance "
        "(summed per hour, as Play and the judge count them); hours the source never "
        "reported add none, so no data never advances a stage",
    )
    min_rating_reviews: int = Field(
        default=20, ge=1, description="Reviews of each version before the rating is compared"
    )
    retention: RetentionCriterion | None = Field(
        default=None,
        description=_src("Retention per version, from the 20 % stage; unset: not checked"),
    )
    business: BusinessCriterion | None = Field(
        default=None,
        description=_src("A business metric per version, from the 50 % stage; unset: not checked"),
    )
    kill_switch: list[str] | None = Field(
        default=None,
        description="Flags turned off on a halt; unset: `feature_flags.launchdarkly.kill_switch`",
    )
    pause_warning_days: float = Field(
        default=25,
        gt=0,
        lt=30,
        description="Warn when an App Store phased release has been paused this long (limit 30)",
    )

    @field_validator("stages")
    @classmethod
    def _rising(cls, value: dict[Platform, list[MobileStage]]) -> dict[Platform, list[MobileStage]]:
        for platform, stages in value.items():
            fractions = [s.fraction for s in stages]
            if not fractions or fractions != sorted(set(fractions)) or fractions[-1] != 1:
                raise ValueError(f"`{platform.value}`: fractions must rise and end at 1 (everyone)")
        return value

    @field_validator("critical_patterns")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _limits(self) -> MobilePolicy:
        if self.halt.crash_free_below_percent > self.advance.min_crash_free_percent:
            raise ValueError(
                "`halt.crash_free_below_percent` must not be above "
                "`advance.min_crash_free_percent`: a version would halt while it may advance"
            )
        return self

    def stages_for(self, platform: Platform) -> list[MobileStage]:
        if platform in self.stages:
            return list(self.stages[platform])
        return preset_stages("play" if platform is Platform.ANDROID else "apple")

    def metric_criteria(self) -> list[tuple[str, MetricCriterion]]:
        """The configured per-version criteria, each with its display name."""
        out: list[tuple[str, MetricCriterion]] = []
        for default, criterion in (
            ("retention", self.retention),
            ("business metrics", self.business),
        ):
            if criterion is not None:
                out.append((criterion.name or default, criterion))
        return out

    def flags(self, launchdarkly_kill_switch: list[str]) -> list[str]:
        return list(launchdarkly_kill_switch if self.kill_switch is None else self.kill_switch)

    def critical(self) -> re.Pattern[str]:
        return re.compile("|".join(f"(?:{p})" for p in self.critical_patterns) or r"(?!x)x", re.I)
