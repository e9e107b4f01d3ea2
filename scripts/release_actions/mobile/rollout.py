"""The mobile gate: one idempotent look at a store rollout that holds, advances or halts it."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from release_actions.errors import MetricsError, NoDataError
from release_actions.mobile.base import (
    Change,
    Platform,
    ReviewSource,
    StoreRelease,
    StoreState,
    StoreStatus,
    Vitals,
    VitalsSource,
)
from release_actions.mobile.judge import (
    Check,
    HourCounts,
    Judgement,
    MobileJudge,
    ReviewTally,
    Verdict,
    make_mobile_judge,
)
from release_actions.mobile.metrics import (
    MetricReading,
    VersionMetrics,
    VersionMetricsSource,
    VersionRef,
)
from release_actions.mobile.policy import MobilePolicy, MobileStage

GATE_SCHEMA = 1
HOUR = 3600.0
DAY = 24 * HOUR
APP_STORE_PAUSE_LIMIT_DAYS = 30


class StateStore(Protocol):
    """Where the gate keeps its state between looks: a file, memory, a GitHub deployment."""

    def load(self) -> dict[str, Any] | None: ...

    def save(self, data: dict[str, Any]) -> None: ...


class MemoryStateStore:
    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data = None if data is None else json.loads(json.dumps(data))

    def load(self) -> dict[str, Any] | None:
        return None if self.data is None else json.loads(json.dumps(self.data))

    def save(self, data: dict[str, Any]) -> None:
        self.data = json.loads(json.dumps(data))


class FileStateStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        data = json.loads(self.path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None

    def save(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        tmp.replace(self.path)


@dataclass
class GateState:
    """The rollout as the gate saw it: where it stands, and every hour's counts it judged.

    The counts, not the e-values, are kept: the evidence is recomputed from them when the
    gate starts in a new process, so it can neither be lost nor counted twice.
    """

    platform: str
    version_code: str
    version_name: str
    previous_version_code: str | None
    started_at: float
    previous_version_name: str | None = None
    stage_index: int = 0
    stage_started_at: float = 0.0
    decision: str = "running"  # running, halted, completed
    reason: str = ""
    hours: list[dict[str, Any]] = field(default_factory=list)
    reviews_until: float = 0.0
    reviews: dict[str, Any] = field(default_factory=dict)
    stages: list[dict[str, Any]] = field(default_factory=list)
    halted_at: float | None = None
    resumed: list[dict[str, Any]] = field(default_factory=list)
    last_look: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"schema": GATE_SCHEMA, **vars(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateState:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @property
    def cutoff(self) -> float:
        """The end of the last hour judged: every count and review before it is in."""
        return self.started_at + len(self.hours) * HOUR


@dataclass
class Look:
    """What one `advance` did. ``action``: started, held, advanced, halted, completed, none."""

    at: float
    action: str
    stage_index: int
    fraction: float
    reason: str
    judgement: Judgement | None = None
    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed_state(self) -> bool:
        return self.action in ("started", "advanced", "halted", "completed")


def _tally(data: dict[str, Any]) -> ReviewTally:
    return ReviewTally(
        new_count=int(data.get("new_count", 0)),
        new_stars=int(data.get("new_stars", 0)),
        new_critical=int(data.get("new_critical", 0)),
        prev_count=int(data.get("prev_count", 0)),
        prev_stars=int(data.get("prev_stars", 0)),
        examples=tuple(data.get("examples") or ()),
    )


class MobileGate:
    """One look at a store rollout, safe to run at any time and any number of times.

    Production runs it from an hourly schedule; the simulator runs it every virtual hour.
    Each look reads the store, takes in the whole hours since the last look (both
    versions' vitals, the reviews), asks the judge, and acts through the store, whose
    calls are idempotent. Two looks in the same hour take in nothing new and change nothing.

    On Play the gate moves the stages. On the App Store Apple moves them (1, 2, 5, 10, 20,
    50, 100 % a day); the gate follows, pauses on a halt, and warns as a pause nears
    Apple's 30-day limit. A halted rollout stays halted until a person resumes it.
    """

    def __init__(
        self,
        store: StoreRelease,
        vitals: VitalsSource,
        reviews: ReviewSource | None,
        policy: MobilePolicy,
        state_store: StateStore,
        *,
        judge: str | None = None,
        on_look: Callable[[Look], None] | None = None,
        metrics: VersionMetricsSource | None = None,
    ) -> None:
        """``metrics`` answers the policy's retention and business criteria; without it a
        configured criterion is "not measured" and holds its stages."""
        self.store = store
        self.vitals = vitals
        self.reviews = reviews
        self.policy = policy
        self.state_store = state_store
        self.judge_name = judge or policy.judge
        self.on_look = on_look
        self.metrics: VersionMetricsSource = metrics or VersionMetrics(policy, {})
        self.stages: list[MobileStage] = policy.stages_for(store.platform)
        self._judge: MobileJudge | None = None
        self._critical = policy.critical()
        self.state: GateState | None = None

    # -- state -----------------------------------------------------------------------------

    def _load(self) -> GateState | None:
        data = self.state_store.load()
        return None if data is None else GateState.from_dict(data)

    def _save(self, state: GateState) -> None:
        self.state_store.save(state.to_dict())
        self.state = state

    def judge_for(self, state: GateState) -> MobileJudge:
        """The judge with every saved hour in it, built again only where it lacks some."""
        judge = self._judge
        if judge is None or len(getattr(judge, "hours", [])) > len(state.hours):
            judge = make_mobile_judge(self.policy, self.judge_name)
        seen = len(getattr(judge, "hours", []))
        for data in state.hours[seen:]:
            judge.observe(HourCounts.from_dict(data))
        self._judge = judge
        return judge

    # -- the look ---------------------------------------------------------------------------

    def advance(self, now: float) -> Look:
        status = self.store.status()
        state = self._load()
        if state is None or state.version_code != status.version_code:
            look = self._start(status, now)
        else:
            look = self._look(state, status, now)
        if self.on_look is not None:
            self.on_look(look)
        return look

    def _stage_at(self, fraction: float | None) -> int:
        if fraction is None:
            return 0
        index = 0
        for i, stage in enumerate(self.stages):
            if stage.fraction <= fraction + 1e-9:
                index = i
        return index

    def _new_state(self, status: StoreStatus, now: float) -> GateState:
        ios = self.store.platform is Platform.IOS
        index = self._stage_at(status.fraction) if ios else 0
        return GateState(
            platform=self.store.platform.value,
            version_code=status.version_code,
            version_name=status.version_name,
            previous_version_code=status.previous_version_code,
            previous_version_name=status.previous_version_name,
            started_at=now,
            stage_index=index,
            stage_started_at=now,
            reviews_until=now,
        )

    def _current(self, now: float) -> GateState:
        """The saved state of the store's version; a new one (nothing changed) when none is."""
        state = self._load()
        status = self.store.status()
        if state is None or state.version_code != status.version_code:
            state = self._new_state(status, now)
            if status.fraction is not None and self.store.platform is Platform.ANDROID:
                state.stage_index = self._stage_at(status.fraction)
        return state

    def _start(self, status: StoreStatus, now: float) -> Look:
        ios = self.store.platform is Platform.IOS
        state = self._new_state(status, now)
        index = state.stage_index
        changes = []
        if status.state is StoreState.DRAFT or (not ios and status.state is StoreState.IN_PROGRESS):
            changes.append(self.store.set_fraction(self.stages[0].fraction))
        self._judge = None
        self._save(state)
        fraction = self.stages[index].fraction
        return Look(
            now,
            "started",
            index,
            fraction,
            f"Rollout of {status.version_name} ({status.version_code}) at {fraction:.0%}, "
            f"compared with {status.previous_version_code or 'no previous version'}.",
            changes=changes,
        )

    def _ingest(self, state: GateState, now: float) -> str | None:
        """Whole hours since the last look; None, or why an hour could not be read.

        An hour the source has no rows for is waited for while the source may still fill
        it (inside its freshness horizon); once the source's data is complete past it, the
        hour is kept as one nobody was seen in, and the next hour is read.
        """
        horizon: float | None = None
        while state.cutoff + HOUR <= now + 1e-6:
            start, end = state.cutoff, state.cutoff + HOUR
            sides: dict[str, Vitals | None] = {"new": None, "prev": None}
            missing: list[str] = []
            codes = {"new": state.version_code, "prev": state.previous_version_code}
            try:
                for side, code in codes.items():
                    if code is None:
                        continue
                    try:
                        sides[side] = self.vitals.vitals(code, start, end)
                    except NoDataError as exc:
                        if horizon is None:
                            horizon = self.vitals.freshness(now)
                        if end > horizon + 1e-6:
                            # The source may still fill the hour: read again at the next look.
                            return f"cannot read vitals from {self.vitals.name}: {exc.message}"
                        missing.append(side)
            except MetricsError as exc:
                # Never judged as healthy: the hour is read again at the next look.
                return f"cannot read vitals from {self.vitals.name}: {exc.message}"
            new, prev = sides["new"], sides["prev"]
            # A side never reported: no users, and ANRs known (0 of 0) when the other side's are.
            new_anr = new.anr_users if new else None
            prev_anr = prev.anr_users if prev else None
            if "new" in missing and prev is not None and prev_anr is not None:
                new_anr = 0
            if "prev" in missing and new is not None and new_anr is not None:
                prev_anr = 0
            hour = HourCounts(
                start,
                new.users if new else 0,
                new.crashed_users if new else 0,
                new_anr,
                prev.users if prev else 0,
                prev.crashed_users if prev else 0,
                prev_anr,
                tuple(missing),
            )
            state.hours.append(hour.to_dict())
        if self.reviews is not None and state.cutoff > state.reviews_until:
            tally = dict(state.reviews)
            examples = list(tally.get("examples") or [])
            for review in self.reviews.reviews(state.reviews_until):
                if not state.reviews_until <= review.at < state.cutoff:
                    continue
                if review.version_code == state.version_code:
                    tally["new_count"] = tally.get("new_count", 0) + 1
                    tally["new_stars"] = tally.get("new_stars", 0) + review.stars
                    if self._critical.search(review.text):
                        tally["new_critical"] = tally.get("new_critical", 0) + 1
                        if len(examples) < 3:
                            examples.append(review.text[:200])
                elif review.version_code == state.previous_version_code:
                    tally["prev_count"] = tally.get("prev_count", 0) + 1
                    tally["prev_stars"] = tally.get("prev_stars", 0) + review.stars
            tally["examples"] = examples
            state.reviews = tally
            state.reviews_until = state.cutoff
        return None

    def _close_stage(
        self, state: GateState, now: float, result: str, look: Judgement | None, reason: str
    ) -> None:
        stage = self.stages[state.stage_index]
        stage_hours = [h for h in state.hours if h["start"] >= state.stage_started_at]
        evidence = _compact(look)
        state.stages.append(
            {
                "index": state.stage_index,
                "fraction": stage.fraction,
                "min_hours": stage.min_hours,
                "started_at": state.stage_started_at,
                "ended_at": now,
                "hours": round((now - state.stage_started_at) / HOUR, 2),
                "result": result,
                "reason": reason,
                "new_users": sum(h["new"][0] for h in stage_hours),
                "new_crashed": sum(h["new"][1] for h in stage_hours),
                "unobserved_hours": sum(1 for h in stage_hours if "new" in h.get("missing", ())),
                "evidence": evidence,
            }
        )

    def _look(self, state: GateState, status: StoreStatus, now: float) -> Look:
        ios = self.store.platform is Platform.IOS
        warnings: list[str] = []
        if state.decision != "running":
            if ios and status.paused_since is not None:
                warnings += self._pause_warning(status, now)
            return Look(
                now,
                "none",
                state.stage_index,
                self.stages[state.stage_index].fraction,
                f"Already {state.decision}: {state.reason}",
                warnings=warnings,
            )
        if status.state is StoreState.COMPLETED and state.stage_index < len(self.stages) - 1:
            # Completed outside the gate (by a person, or by Apple's last day).
            self._close_stage(state, now, "passed", None, "the store completed the rollout")
            state.stage_index = len(self.stages) - 1
            state.stage_started_at = now
        if ios:
            apple = self._stage_at(status.fraction)
            if status.state is StoreState.COMPLETED:
                apple = len(self.stages) - 1
            while state.stage_index < apple:
                self._close_stage(state, now, "passed", None, "Apple's phased release moved on")
                state.stage_index += 1
                state.stage_started_at = now
        unread = self._ingest(state, now)
        judge = self.judge_for(state)
        stage = self.stages[state.stage_index]
        stage_hours = [
            HourCounts.from_dict(h) for h in state.hours if h["start"] >= state.stage_started_at
        ]
        judgement = judge.judge(stage_hours, _tally(state.reviews))
        judgement = _with_users(judgement, stage_hours, self.policy.min_stage_users)
        readings = self._readings(state, stage, now)
        judgement = _with_metrics(judgement, readings)
        state.last_look = {
            "at": now,
            "verdict": judgement.verdict.value,
            "reason": judgement.reason,
        }
        if readings:
            state.last_look["metrics"] = [r.to_dict() for r in readings]
        changes: list[Change] = []
        if judgement.verdict is Verdict.HALT:
            changes.append(self.store.halt())
            state.decision = "halted"
            state.reason = judgement.reason
            state.halted_at = now
            self._close_stage(state, now, "halted", judgement, judgement.reason)
            self._save(state)
            return Look(
                now,
                "halted",
                state.stage_index,
                stage.fraction,
                judgement.reason,
                judgement,
                changes,
            )
        if state.stage_index == len(self.stages) - 1 or status.state is StoreState.COMPLETED:
            state.decision = "completed"
            state.reason = f"Released to everyone: {judgement.reason}"
            if status.state is not StoreState.COMPLETED and not ios:
                changes.append(self.store.complete())
            self._close_stage(state, now, "completed", judgement, state.reason)
            self._save(state)
            return Look(now, "completed", state.stage_index, 1.0, state.reason, judgement, changes)
        elapsed = now - state.stage_started_at
        if unread is not None:
            self._save(state)
            return Look(
                now,
                "held",
                state.stage_index,
                stage.fraction,
                f"Held: {unread}.",
                judgement,
                warnings=[unread],
            )
        if ios or elapsed + 1e-6 < stage.min_hours * HOUR or judgement.verdict is Verdict.HOLD:
            self._save(state)
            why = judgement.reason
            early = elapsed + 1e-6 < stage.min_hours * HOUR
            waiting = judgement.check == USERS_CHECK and early
            if (judgement.verdict is Verdict.OK or waiting) and not ios:
                why = (
                    f"{stage.fraction:.0%} for {elapsed / HOUR:.0f} of "
                    f"{stage.min_hours:g} hours; {judgement.reason}"
                )
            return Look(now, "held", state.stage_index, stage.fraction, why, judgement)
        # The stage's time has passed and nothing holds it.
        self._close_stage(state, now, "passed", judgement, judgement.reason)
        state.stage_index += 1
        state.stage_started_at = now
        nxt = self.stages[state.stage_index]
        if nxt.fraction >= 1:
            changes.append(self.store.complete())
            state.decision = "completed"
            state.reason = f"Released to everyone after {len(state.stages)} stages."
            self._close_stage(state, now, "completed", judgement, state.reason)
            self._save(state)
            return Look(now, "completed", state.stage_index, 1.0, state.reason, judgement, changes)
        changes.append(self.store.set_fraction(nxt.fraction))
        self._save(state)
        return Look(
            now,
            "advanced",
            state.stage_index,
            nxt.fraction,
            f"Advanced to {nxt.fraction:.0%}: {judgement.reason}",
            judgement,
            changes,
        )

    def _readings(self, state: GateState, stage: MobileStage, now: float) -> list[MetricReading]:
        """The retention and business criteria over the stage so far, both versions alike."""
        previous = (
            None
            if state.previous_version_code is None
            else VersionRef(state.previous_version_code, state.previous_version_name)
        )
        return self.metrics.readings(
            fraction=stage.fraction,
            start=state.stage_started_at,
            end=now,
            platform=state.platform,
            new=VersionRef(state.version_code, state.version_name or None),
            previous=previous,
        )

    def _pause_warning(self, status: StoreStatus, now: float) -> list[str]:
        assert status.paused_since is not None
        days = (now - status.paused_since) / DAY
        if days < self.policy.pause_warning_days:
            return []
        left = APP_STORE_PAUSE_LIMIT_DAYS - days
        return [
            f"The App Store phased release has been paused for {days:.0f} days; Apple resumes "
            f"it after {APP_STORE_PAUSE_LIMIT_DAYS} ({max(left, 0):.0f} days left). Ship a fix "
            "with a higher build number, or remove this version from sale."
        ]

    def halt(self, now: float, *, by: str, reason: str) -> Look:
        """A person halts the rollout: the store stops new installs, the state says who and why."""
        state = self._current(now)
        if state.decision == "halted":
            change = self.store.halt()  # idempotent: says so when Play already is halted
            return Look(
                now,
                "none",
                state.stage_index,
                self.stages[state.stage_index].fraction,
                f"Already halted: {state.reason}",
                changes=[change],
            )
        change = self.store.halt()
        state.decision = "halted"
        state.reason = f"Halted by {by}: {reason}"
        state.halted_at = now
        self._close_stage(state, now, "halted", None, state.reason)
        self._save(state)
        return Look(
            now,
            "halted",
            state.stage_index,
            self.stages[state.stage_index].fraction,
            state.reason,
            changes=[change],
        )

    def complete(self, now: float, *, by: str, reason: str) -> Look:
        """A person releases to everyone, whatever the stage; the state says who and why."""
        state = self._current(now)
        change = self.store.complete()
        if state.decision == "completed" and not change.changed:
            return Look(now, "none", state.stage_index, 1.0, f"Already completed: {state.reason}")
        state.decision = "completed"
        state.reason = f"Completed by {by}: {reason}"
        self._close_stage(state, now, "completed", None, state.reason)
        state.stage_index = len(self.stages) - 1
        state.stage_started_at = now
        self._save(state)
        return Look(now, "completed", state.stage_index, 1.0, state.reason, changes=[change])

    def resume(self, now: float, *, by: str, reason: str) -> Look:
        """A person clears a halt: the store resumes and the gate judges from here on."""
        state = self._load()
        if state is None or state.decision != "halted":
            status = self.store.status()
            return Look(
                now,
                "none",
                0 if state is None else state.stage_index,
                status.fraction or 0.0,
                "Nothing to resume: the rollout is not halted.",
            )
        change = self.store.resume()
        state.decision = "running"
        state.resumed.append({"at": now, "by": by, "reason": reason})
        state.stage_started_at = now
        self._save(state)
        return Look(
            now,
            "advanced",
            state.stage_index,
            self.stages[state.stage_index].fraction,
            f"Resumed by {by}: {reason}",
            changes=[change],
        )


USERS_CHECK = "new-version users"


def _with_users(judgement: Judgement, hours: list[HourCounts], need: int) -> Judgement:
    """The stage's observed users of the new version against `mobile.min_stage_users`: fewer
    hold the stage ("waiting for users"), so hours nobody was seen in never advance it."""
    seen = sum(h.new_users for h in hours)
    gaps = sum(1 for h in hours if "new" in h.missing)
    detail = f"{seen:,} of {need:,} users of the new version observed in this stage"
    if gaps:
        detail += f"; {gaps} hour{'s' if gaps != 1 else ''} without data from the source"
    waiting = seen < need
    checks = [*judgement.checks, Check(USERS_CHECK, "waiting" if waiting else "passed", detail)]
    evidence = {**judgement.evidence, "stage_users": seen, "min_stage_users": need}
    if gaps:
        evidence["unobserved_hours"] = gaps
    if waiting and judgement.verdict is Verdict.OK:
        return Judgement(
            Verdict.HOLD, f"Held: waiting for users: {detail}.", USERS_CHECK, checks, evidence
        )
    reason = judgement.reason
    if waiting and judgement.verdict is Verdict.HOLD:
        reason += f" Also waiting for users: {detail}."
    return Judgement(judgement.verdict, reason, judgement.check, checks, evidence)


def _with_metrics(judgement: Judgement, readings: list[MetricReading]) -> Judgement:
    """The judge's verdict with the per-version criteria: they hold a stage, and halt it
    only where the policy says `halt: true`; a halt from the vitals stands as it is."""
    if not readings:
        return judgement
    checks = [*judgement.checks, *(Check(r.name, r.status, r.detail) for r in readings)]
    evidence = {**judgement.evidence, "metrics": [r.to_dict() for r in readings]}
    verdict, reason, check = judgement.verdict, judgement.reason, judgement.check
    halting = [r for r in readings if r.halts]
    holding = [r for r in readings if r.holds]
    if verdict is not Verdict.HALT and halting:
        first = halting[0]
        verdict, check = Verdict.HALT, first.name
        reason = f"The new version is worse on {first.name}: {first.detail}."
    elif verdict is Verdict.OK and holding:
        verdict, check = Verdict.HOLD, holding[0].name
        reason = "Held: " + "; ".join(f"{r.name} {r.status}: {r.detail}" for r in holding) + "."
    elif verdict is Verdict.HOLD and holding:
        reason += " Also " + "; ".join(f"{r.name} {r.status}: {r.detail}" for r in holding) + "."
    return Judgement(verdict, reason, check, checks, evidence)


def _compact(judgement: Judgement | None) -> dict[str, Any]:
    if judgement is None:
        return {}
    ev = judgement.evidence
    keep = (
        "judge",
        "hours",
        "new_users",
        "new_crashed",
        "new_crash_free",
        "prev_users",
        "prev_crashed",
        "prev_crash_free",
        "new_anr_rate",
        "prev_anr_rate",
        "crash_ratio",
        "anr_ratio",
        "e_value",
        "threshold",
        "stage",
        "stage_users",
        "min_stage_users",
        "unobserved_hours",
        "metrics",
    )
    out: dict[str, Any] = {k: _finite(ev[k]) for k in keep if k in ev}
    out["verdict"] = judgement.verdict.value
    out["check"] = judgement.check
    out["checks"] = [c.to_dict() for c in judgement.checks]
    return out


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value
