"""The canary rollout: step by step, measure, judge, then promote, hold or roll back; resumable."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from release_actions.canary.judge import Judge, Judgement, ResumableJudge, Verdict
from release_actions.canary.measure import brief, error_limit_text, resolvable_cadence
from release_actions.canary.model import (
    Clock,
    Decision,
    Event,
    Outcome,
    Recovery,
    RunState,
    StepResult,
    StepStatus,
)
from release_actions.canary.rollback import watch_parts, with_recovery
from release_actions.canary.smoke import HttpProber, Prober, SmokeResult, preview_base, run_smoke
from release_actions.canary.step import Tally, interval_line, keep_looks, look_entry
from release_actions.canary.triggers import Firing, Triggers
from release_actions.core.policy import RolloutStep
from release_actions.core.settings import Settings
from release_actions.errors import ReleaseActionsError, TargetChangedError, TargetError
from release_actions.metrics.base import MetricsProvider, Track, TrafficSample
from release_actions.simulation.clock import pace_of
from release_actions.targets.base import DeployTarget


def abort_mark(
    saved: Mapping[str, Any] | None, *, ignore: str | None = None
) -> dict[str, Any] | None:
    """The abort request a manual rollback left on the target's saved state, if any.

    ``ignore`` is the id of a mark that was there before this run began (an earlier rollout's).
    """
    mark = (saved or {}).get("abort")
    if not isinstance(mark, Mapping) or (ignore is not None and mark.get("id") == ignore):
        return None
    return dict(mark)


def promote_mark(
    saved: Mapping[str, Any] | None, version: str, started_at: float
) -> dict[str, Any] | None:
    """The operator's promote request on the saved state, if it is for this very rollout."""
    mark = (saved or {}).get("promote")
    if not isinstance(mark, Mapping):
        return None
    if mark.get("version") != version or mark.get("started_at") != started_at:
        return None  # an earlier rollout's
    return dict(mark)


def promotion_text(mark: Mapping[str, Any]) -> str:
    """How a step's result and the decision name an operator's promote."""
    who = mark.get("by") or "someone"
    why = mark.get("reason") or "no reason given"
    return f"promoted by {who} at {mark.get('at') or 'an unknown time'}: {why}"


def takeover_reason(mark: Mapping[str, Any]) -> str:
    """What the decision says when a manual rollback stopped a rollout or a watch."""
    who = mark.get("by") or "someone"
    when = mark.get("at") or "an unknown time"
    why = mark.get("reason") or "no reason given"
    text = f"a manual rollback took over (by {who} at {when}: {why})"
    if mark.get("run"):
        text += f", run {mark['run']}"
    return text + "; stopped without rolling back a second time"


def step_label(step: RolloutStep, *, short: bool = False) -> str:
    """How the timeline names a step: its share of traffic and what it does with it."""
    if step.op == "preview":
        return "preview" if short else "preview (0% of users)"
    if step.op == "switch":
        return "switch" if short else "switch (100%, old kept)"
    if step.op == "mirror":
        return f"mirror {step.weight}%" + ("" if short else " (0% of users)")
    return f"{step.weight}%" if short else f"canary at {step.weight}%"


class TakenOver(Exception):
    """Raised inside the engine when the saved state carries a manual rollback's abort mark."""

    def __init__(self, mark: dict[str, Any]) -> None:
        super().__init__(takeover_reason(mark))
        self.mark = mark


class CanaryEngine:
    """Runs a canary rollout step by step against any DeployTarget and MetricsProvider.

    The steps, the cadence, the error limit and the triggers all come from ``settings``.
    Each step sets the weight, then at the judge's cadence (``analysis.cadence``) measures both
    tracks over the interval, feeds the judge and the rollback triggers, and ends when the
    pause has elapsed and the judge passed; a fail or a trigger rolls back; errors and
    missing evidence go to the policy's ``on_error``. Progress is saved through
    ``target.save_state`` before each action, so a killed run resumes where it was.

    An operator's `release-actions promote` leaves a promote mark that the engine reads at
    the same points: the current step ends as passed at the next look (its pause and any
    wait for the judge skipped), and with ``full`` the remaining steps are skipped too and
    the canary is promoted. Each promote it acts on is kept in ``promotions`` and named in
    the decision's reason.

    A manual rollback (`release-actions rollback`, possibly another process) first marks the
    saved state with an abort request, then rolls back. The engine re-reads the state at
    each interval, before each weight change, before promoting and before its own rollback,
    and never saves over the mark; when it finds one it stops, ends as rolled back with a
    reason naming the manual rollback, and does not roll back again. Whichever of the two
    acts second sees the other: a mark written first stops the engine's next action; a
    rollback the engine already made leaves the manual one nothing to change.

    The strategy (source §4.1) is in the steps: a `weight` step moves a share of the
    traffic; blue-green's `preview` step runs the smoke checks against the new version
    before any user reaches it (a failure aborts: the new version is taken away, no record,
    since nothing was released), and its `switch` step moves all traffic at once and holds
    with the §6.1 triggers (a regression switches back, as any rollback, with a record);
    shadow's `mirror` step judges the mirrored copy against stable on the same requests,
    and the run always ends by withdrawing the shadow: passed or failed, never promoted.

    With ``settings.gate`` (a flag's scheduled gate, for steps longer than a job) each run
    makes one look and returns: the run that begins a step only moves the traffic; each
    later run measures from where the last look ended to now, judges, and ends the step,
    rolls back, or returns with the step still running (a ``gate`` event says which). The
    step's start, its tally and last judgement, the judge's evidence (``ResumableJudge``),
    the triggers and the measurement errors in a row are saved in ``RunState.gate``, so the
    next run decides as one long run looking at that cadence would; the error limit is
    counted in looks of the schedule's length, and a step is never ended early (a day-long
    step is long for its own sake). A target whose weight is not the one saved was moved
    by someone else: the run stops (``TargetChangedError``) and changes nothing.
    """

    def __init__(
        self,
        target: DeployTarget,
        provider: MetricsProvider,
        judge: Judge,
        settings: Settings,
        clock: Clock,
        *,
        on_event: Callable[[Event], None] | None = None,
        record_id: Callable[[datetime, Iterable[str]], str] | None = None,
        move_on_early: bool = True,
        inconclusive_factor: float = 2.0,
        slow_ms: float | None = None,
        deployment: str | None = None,
        prober: Prober | None = None,
    ) -> None:
        self.target = target
        self.prober: Prober = prober or HttpProber()
        self.strategy = settings.strategy
        self.provider = provider
        self.settings = settings
        self.clock = clock
        self.timeline, self.watch, self.roller = watch_parts(
            target,
            provider,
            settings,
            clock,
            on_event=on_event,
            record_id=record_id,
            deployment=deployment,
        )
        if settings.gate and (
            settings.strategy != "canary" or not isinstance(judge, ResumableJudge)
        ):
            raise ReleaseActionsError(
                "A gate (one look per run) runs the canary strategy with a judge whose evidence "
                f"can be saved; got the `{settings.strategy}` strategy and the `{judge.name}` "
                "judge."
            )
        self.judge = judge
        self.interval = settings.analysis.cadence(judge.name)
        self._cadence_checked = False
        self.steps: list[RolloutStep] = list(settings.steps)
        # A step ends before its pause only on a pass the judge marks `early` (it showed
        # the canary is not worse); `move_on_early=False` makes every step run its pause.
        self.move_on_early = move_on_early
        self.inconclusive_factor = inconclusive_factor
        self.slow_ms = settings.analysis.max_p99_ms if slow_ms is None else slow_ms
        self.triggers = Triggers(settings.monitor.triggers)
        self.state: RunState | None = None
        # The id of an abort mark left by an earlier rollout's manual rollback: not ours.
        self._old_abort: str | None = None
        self._resumed = False
        self._restarting = False  # a gate beginning again the step a hold stopped

    # -- state ------------------------------------------------------------------------

    def _save(self) -> None:
        """Save progress, keeping the marks another process wrote since the last read."""
        st = self.state
        assert st is not None
        self._read_marks()
        st.clock = {"at": self.clock.now(), "wall": time.time(), "pace": pace_of(self.clock)}
        self.target.save_state(st.to_dict())

    def _read_marks(self) -> None:
        """Take the abort and promote marks from the saved state (one read of the target)."""
        st = self.state
        assert st is not None
        stored = self.target.status().state
        if st.abort is None:
            st.abort = abort_mark(stored, ignore=self._old_abort)
        # Only `promote` writes this mark; the engine writes back what it read, so the one
        # stored is never older than the one held here.
        mark = promote_mark(stored, st.version, st.started_at)
        if mark is not None:
            st.promote = mark

    def _check_abort(self) -> None:
        """Stop here if a manual rollback marked the saved state (see the class docstring)."""
        assert self.state is not None
        if self.state.abort is None:
            self._read_marks()
        if self.state.abort is not None:
            raise TakenOver(self.state.abort)

    def _promote_due(self, i: int) -> dict[str, Any] | None:
        """The promote mark to act on at step ``i`` (read by the last ``_check_abort``)."""
        st = self.state
        assert st is not None
        mark = st.promote
        if mark is None or any(p.get("id") == mark.get("id") for p in st.promotions):
            return None
        if mark.get("full") or mark.get("step") == i:
            return mark
        return None  # for a step that has ended: too late, as Argo's promote of a running step

    def _promoted(self, mark: dict[str, Any], i: int) -> None:
        st = self.state
        assert st is not None
        acted = {**mark, "acted_step": i, "acted_at": self.clock.now()}
        st.promotions.append(acted)
        what = "every remaining step" if mark.get("full") else f"the pause of step {i + 1}"
        self.timeline.emit("note", f"{promotion_text(mark)}; skipping {what}", step=i)

    def _taken_over(self, mark: dict[str, Any]) -> Outcome:
        st = self.state
        assert st is not None
        st.abort = mark
        st.phase = "done"
        st.decision = Decision.ROLLED_BACK.value
        st.reason = takeover_reason(mark)
        st.detected_at = st.detected_at or self.clock.now()
        st.evidence = {**st.evidence, "manual_rollback": mark}
        self._save()
        self.timeline.emit("decision", f"{Decision.ROLLED_BACK.value}: {st.reason}")
        return self._outcome(self._resumed)

    def _outcome(self, resumed: bool = False) -> Outcome:
        st = self.state
        assert st is not None
        recovery = None
        if st.recovery:
            recovery = Recovery(**st.recovery)
        return Outcome(
            decision=Decision(st.decision or Decision.HELD),
            version=st.version,
            reason=st.reason,
            started_at=st.started_at,
            ended_at=self.clock.now(),
            detected_at=st.detected_at,
            steps=[StepResult.from_dict(s) for s in st.steps],
            evidence=st.evidence,
            record=st.record,
            recovery=recovery,
            resumed=resumed,
            events=self.timeline.events,
        )

    # -- the rollout --------------------------------------------------------------------

    def run(self, version: str) -> Outcome:
        """Roll ``version`` out, or resume the saved rollout of it; see the class docstring."""
        try:
            return self._run(version)
        except TakenOver as taken:
            return self._taken_over(taken.mark)

    def _run(self, version: str) -> Outcome:
        saved = self.target.status().state
        if (
            saved
            and saved.get("version") == version
            and saved.get("phase") == "done"
            and saved.get("strategy") == "shadow"
            and self.strategy != "shadow"
        ):
            # A finished shadow of this version hands over to its release: a new rollout.
            saved = None
        mark = abort_mark(saved)
        ours = bool(saved) and (saved or {}).get("version") == version
        if mark is not None and not (ours and (saved or {}).get("phase") != "done"):
            self._old_abort = mark.get("id")
        if (
            saved
            and "version" in saved
            and saved["version"] != version
            and saved.get("phase") != "done"
        ):
            self._finish_abandoned(saved, version)
            saved = None
        if saved and "version" in saved and saved["version"] == version:
            self.state = RunState.from_dict(saved)
            self.timeline.origin = self.state.started_at
            phase = self.state.phase
            if phase != "done":
                self.target.use_strategy(self.state.strategy)
            if phase == "done":
                self.timeline.emit(
                    "resume", f"the rollout of {version} already ended: {self.state.decision}"
                )
                return self._outcome(resumed=True)
            self._resumed = True
            self.timeline.emit(
                "resume",
                f"resuming the rollout of {version} ({phase}) at step "
                f"{self.state.step_index + 1}/{len(self.steps)}",
            )
            self._check_abort()
            if phase in ("rolling_back", "recovering"):
                return self._finish_rollback(resumed=True)
            if phase == "promoting":
                return self._promote(resumed=True)
            if phase in ("aborting", "withdrawing"):
                return self._take_away(resumed=True)
            self.target.begin(version)  # the same version: the target resumes, not restarts
            return self._loop(resumed=True)
        earlier = self.roller.record_ids()
        self.target.use_strategy(self.strategy)
        self.target.begin(version)
        started = self.clock.now()
        self.timeline.origin = started
        self.state = RunState(version, self.target.status().known_good, started)
        self.state.strategy = self.strategy
        self.state.record_ids = earlier
        self.timeline.emit(
            "start",
            f"{self.strategy} rollout of {version} on {self.roller.deployment}: "
            + " → ".join(step_label(s, short=True) for s in self.steps)
            + f" (judge: {self.judge.name}, known good: {self.state.known_good})",
        )
        self._save()
        return self._loop(resumed=False)

    def _finish_abandoned(self, saved: Mapping[str, Any], version: str) -> None:
        """A dead run of another version left a canary behind: settle it before starting."""
        other = RunState.from_dict(saved)
        self.state = other
        self.timeline.origin = other.started_at
        self.target.use_strategy(other.strategy)
        if other.abort is not None:
            # A manual rollback stopped it and rolled it back: close it, do not roll back again.
            self.timeline.emit(
                "note", f"the rollout of {other.version}: {takeover_reason(other.abort)}"
            )
            other.phase, other.decision = "done", Decision.ROLLED_BACK.value
            other.reason = takeover_reason(other.abort)
            self._save()
        elif other.phase == "promoting":
            self.timeline.emit(
                "note", f"finishing the promotion of {other.version} left by an earlier run"
            )
            self._promote(resumed=True)
        elif other.phase in ("aborting", "withdrawing") or (
            other.strategy == "shadow" or self._unswitched(other)
        ):
            # Nothing of it reached a user (a preview, a shadow): take it away, no record.
            self.timeline.emit(
                "note",
                f"an earlier {other.strategy} run of {other.version} stopped in phase "
                f"`{other.phase}`; taking it away before {version} starts",
            )
            if other.phase not in ("aborting", "withdrawing"):
                other.phase = "withdrawing" if other.strategy == "shadow" else "aborting"
                other.decision = (
                    Decision.FAILED.value if other.strategy == "shadow" else Decision.ABORTED.value
                )
                other.reason = f"abandoned run superseded by {version}"
                self._save()
            self._take_away(resumed=True)
        else:
            self.timeline.emit(
                "note",
                f"an earlier rollout of {other.version} stopped in phase `{other.phase}`; "
                f"rolling it back before {version} starts",
            )
            if other.phase not in ("rolling_back", "recovering"):
                other.phase = "rolling_back"
                other.decision = Decision.ROLLED_BACK.value
                other.reason = f"abandoned rollout superseded by {version}"
                other.detected_at = self.clock.now()
                self._save()
            self._finish_rollback(resumed=True)
        self.target.use_strategy(self.strategy)
        self.state = None

    @staticmethod
    def _unswitched(state: RunState) -> bool:
        """A blue-green run still in its preview: no user request reached the new version."""
        return state.strategy == "blue-green" and state.step_index == 0

    def _loop(self, *, resumed: bool) -> Outcome:
        st = self.state
        assert st is not None
        st.plan = [
            {
                "weight": s.weight,
                "pause_seconds": s.pause_seconds,
                "analysis": s.analysis,
                "op": s.op,
            }
            for s in self.steps
        ]
        if self.settings.gate:
            self._take_up_gate()
        while st.step_index < len(self.steps):
            i = st.step_index
            step = self.steps[i]
            if self._continuing(i):
                # A gate's step that an earlier run began: one more look at it, no restart.
                self._check_unmoved(i, step)
                result = self._run_step(i, step, continuing=True)
            else:
                # A hold (on_error) left the traffic where it was: a gate begins the step
                # again, unless someone moved it meanwhile.
                self._restarting = self.settings.gate and st.phase == "held"
                if self._restarting:
                    self._check_unmoved(i, step)
                st.phase = "running"
                st.weight = step.weight
                st.step_started_at = self.clock.now()
                st.held = None
                st.look = None
                st.cadence_s = self._cadence()
                self._check_abort()
                full = self._promote_due(i)
                if full is not None and full.get("full"):
                    self._promoted(full, i)
                    break
                self._save()  # before acting: a kill after set_weight resumes this very step
                if st.abort is not None:  # the save found a mark written since the check
                    raise TakenOver(st.abort)
                try:
                    self._apply(step)
                except TargetError:
                    # A manual rollback may have removed the canary between the check and here.
                    self._check_abort()
                    raise
                result = self._run_step(i, step)
            if result is None:
                return self._outcome(resumed)  # a gate's step goes on at the next run
            if result.status is StepStatus.PASSED:
                st.steps.append(result.to_dict())
                st.step_index = i + 1
                self._save()
                if any(p.get("full") for p in st.promotions):
                    break
                continue
            return self._act(result, resumed=resumed)
        if self.strategy == "shadow":
            st.decision = Decision.PASSED.value
            st.reason = st.reason or (
                "the shadow passed: " + (st.steps[-1].get("reason", "") if st.steps else "")
            )
            st.phase = "withdrawing"
            self._save()
            self.timeline.emit("decision", f"passed: {st.reason}; never promoted")
            return self._take_away(resumed=resumed)
        return self._promote(resumed=resumed)

    def _apply(self, step: RolloutStep) -> None:
        """Move the traffic as the step says (its op); every call is idempotent on the target."""
        if step.op == "switch":
            self.target.switch()
        elif step.op == "mirror":
            self.target.mirror(step.weight)
        elif step.op == "preview":
            pass  # begin left the new version at full size with no user traffic
        else:
            self.target.set_weight(step.weight)

    def _take_away(self, *, resumed: bool) -> Outcome:
        """End a run that released nothing: an aborted preview or a shadow, passed or failed.

        The new version (and a mirror) goes; nothing is recorded as a rollback, since no
        user request reached it. Saved before and after, so a resumed run does it once.
        """
        st = self.state
        assert st is not None
        self._check_abort()
        result = self.target.withdraw()
        st.evidence = {
            **st.evidence,
            "taken_away": {"changed": result.changed, "detail": result.detail},
        }
        st.phase = "done"
        st.weight = 0
        self._save()
        return self._outcome(resumed)

    def _promote(self, *, resumed: bool) -> Outcome:
        st = self.state
        assert st is not None
        self._check_abort()
        st.phase = "promoting"
        self._save()
        if st.abort is not None:
            raise TakenOver(st.abort)
        self.target.promote()
        st.phase = "done"
        st.decision = (
            Decision.SWITCHED.value if st.strategy == "blue-green" else Decision.PROMOTED.value
        )
        st.reason = st.reason or self._promoted_reason()
        if st.promotions:
            st.evidence = {**st.evidence, "manual_promotions": st.promotions}
        st.weight = 100
        self._save()
        self.timeline.emit("decision", f"{st.decision} {st.version}: {st.reason}")
        return self._outcome(resumed)

    def _promoted_reason(self) -> str:
        st = self.state
        assert st is not None
        n = len(self.steps)
        full = next((p for p in st.promotions if p.get("full")), None)
        if full is not None:
            passed = sum(1 for s in st.steps if s.get("result") == StepStatus.PASSED.value)
            return f"{promotion_text(full)} (full: {passed} of {n} steps passed, the rest skipped)"
        text = f"all {n} steps passed"
        if st.promotions:
            text += "; " + "; ".join(
                f"step {int(p['acted_step']) + 1}'s pause skipped, {promotion_text(p)}"
                for p in st.promotions
            )
        return text

    def _act(self, result: StepResult, *, resumed: bool) -> Outcome:
        st = self.state
        assert st is not None
        on_error = self.settings.analysis.on_error
        st.evidence = {"step": result.index, "weight": result.weight, **result.evidence}
        if result.op in ("preview", "mirror"):
            # Nothing reached a user: a failed preview aborts, a failed shadow fails; neither
            # holds (a shadow left mirroring proves nothing more) nor rolls back.
            st.steps.append(result.to_dict())
            shadow = result.op == "mirror"
            st.decision = (Decision.FAILED if shadow else Decision.ABORTED).value
            st.reason = result.reason
            st.detected_at = result.ended_at
            st.phase = "withdrawing" if shadow else "aborting"
            self._save()
            self.timeline.emit(
                "decision",
                f"{st.decision}: {st.reason.rstrip('.')}; no user request reached {st.version}",
                step=result.index,
            )
            return self._take_away(resumed=resumed)
        if result.status in (StepStatus.ERROR, StepStatus.INCONCLUSIVE) and on_error == "hold":
            st.phase = "held"
            st.decision = Decision.HELD.value
            st.reason = f"{result.reason}; on_error is `hold`: the canary stays at {result.weight}%"
            st.held = result.to_dict()
            self._save()
            self.timeline.emit(
                "decision", f"held at {result.weight}%: {st.reason}", step=result.index
            )
            return self._outcome(resumed)
        st.steps.append(result.to_dict())
        if result.status in (StepStatus.ERROR, StepStatus.INCONCLUSIVE):
            decision = Decision.FAILED if on_error == "fail" else Decision.ROLLED_BACK
            st.reason = f"{result.reason}; on_error is `{on_error}`"
        else:
            decision = Decision.ROLLED_BACK
            st.reason = result.reason
        st.phase = "rolling_back"
        st.decision = decision.value
        st.detected_at = result.ended_at
        self._save()
        self.timeline.emit("decision", f"{decision.value}: {st.reason}", step=result.index)
        return self._finish_rollback(resumed=resumed)

    def _finish_rollback(self, *, resumed: bool) -> Outcome:
        """Roll back and check recovery, saving between the two: a resumed run never rolls back twice."""
        st = self.state
        assert st is not None
        if st.phase == "rolling_back":
            self._check_abort()  # a manual rollback already did it: never twice
            metrics = self.watch.record_metrics(st.evidence.get("record_metrics"))
            st.record, st.rolled_back_at = self.roller.rollback(
                detected_at=st.detected_at or self.clock.now(),
                reason=st.reason,
                metrics=metrics,
                version=st.version,
            )
            st.evidence = {
                **st.evidence,
                "rolled_back_at_s": round(st.rolled_back_at - st.started_at, 3),
            }
            st.phase = "recovering"
            self._save()
        if st.phase == "recovering":
            recovery = self.roller.check_recovery(st.rolled_back_at or self.clock.now())
            st.recovery = recovery.to_dict()
            if st.record is not None:
                st.record = with_recovery(st.record, recovery)
        st.phase = "done"
        self._save()
        return self._outcome(resumed)

    # -- one step ---------------------------------------------------------------------

    def _smoke(self) -> SmokeResult:
        """The preview's smoke checks (`deploy.blue_green`), through the prober."""
        bg = self.settings.blue_green
        try:
            base, headers = preview_base(self.target.preview(), bg.preview_url)
        except ReleaseActionsError as exc:
            hint = f" {exc.hint}" if getattr(exc, "hint", None) else ""
            return SmokeResult(False, f"the preview cannot be checked: {exc}{hint}")
        return run_smoke(
            bg.smoke,
            base=base,
            headers=headers,
            attempts=bg.attempts,
            timeout=bg.timeout_seconds,
            prober=self.prober,
        )

    def _cadence(self) -> int:
        """The judge's cadence, checked once against what the provider can resolve."""
        if not self._cadence_checked:
            self._cadence_checked = True
            self.interval, why = resolvable_cadence(self.interval, self.provider)
            if why:
                self.timeline.emit("note", why)
        return self.interval

    def _save_look(
        self, i: int, step: RolloutStep, judged: bool, tally: Tally, **look: Any
    ) -> None:
        """The last look, saved for `release-actions status`; a mark read meanwhile stops it."""
        st = self.state
        assert st is not None
        st.look = {
            "at": self.clock.now(),
            "step": i,
            "weight": step.weight,
            "judged": judged,
            "looks": tally.intervals,
            "verdicts": dict(tally.verdicts),
            "measurement_errors": tally.errors,
            **look,
        }
        self._save()
        if st.abort is not None:
            raise TakenOver(st.abort)

    def _run_step(
        self, i: int, step: RolloutStep, *, continuing: bool = False
    ) -> StepResult | None:
        """Run step ``i`` until it ends: at the judge's cadence, measure, judge, watch the
        triggers. In gate mode (``settings.gate``) a run makes one look (none on the run that
        begins the step) and returns None while the step goes on; ``continuing`` takes up a
        step an earlier run began, from the progress it saved."""
        st = self.state
        assert st is not None
        analysis = self.settings.analysis
        interval = self._cadence()
        gate = self.settings.gate
        # At 100 % there is no stable traffic left to compare with: triggers only. A mirror
        # copies requests, so stable still serves all of them and the comparison holds.
        judged = step.analysis and (step.weight < 100 or step.op == "mirror")
        carry = st.gate if continuing else None
        start = float(carry["start"]) if carry is not None else self.clock.now()
        pause_end = start + step.pause_seconds
        # Past the pause an inconclusive step keeps measuring, but not forever: up to twice
        # the pause, and never less than two whole analyses, since the threshold judge
        # needs `analysis_seconds` of good data even at a 2-minute step and intervals lost
        # to a flaky provider do not count towards it.
        limit = (
            start
            + max(self.inconclusive_factor * step.pause_seconds, 2 * analysis.analysis_seconds)
            if judged
            else pause_end
        )
        last: Judgement | None = None
        if carry is not None:
            tally = Tally.from_dict(carry.get("tally") or {})
            if carry.get("last"):
                last = Judgement.from_dict(carry["last"])
            prev = float(carry["prev"])
        else:
            self.judge.reset_step()
            health, _ = self.watch.health(Track.CANARY)
            self.triggers.baseline_health(health)
            tally = Tally()
            prev = start
            what = f"{step.pause_seconds}s pause" + (", analysis" if judged else "")
            self.timeline.emit(
                "step",
                f"step {i + 1}/{len(self.steps)}: {step_label(step)} ({what})",
                step=i,
                weight=step.weight,
                pause_seconds=step.pause_seconds,
                analysis=judged,
                op=step.op,
            )
        smoke: SmokeResult | None = None

        def done(status: StepStatus, reason: str, **extra: Any) -> StepResult:
            if smoke is not None:
                extra = {**extra, "smoke": smoke.to_dict()}
            result = StepResult(
                index=i,
                weight=step.weight,
                pause_seconds=step.pause_seconds,
                analysis=judged,
                status=status,
                reason=reason,
                started_at=start,
                ended_at=self.clock.now(),
                evidence=tally.summary(last, self.triggers, self.timeline.origin or start, extra),
                op=step.op,
            )
            self.timeline.emit(
                "step_end", f"step {i + 1}: {status.value}: {reason}", step=i, result=status.value
            )
            return result

        def quiet_pass() -> StepResult:
            """A step without analysis ends with its pause when nothing fired."""
            if smoke is not None and step.pause_seconds == 0:
                return done(StepStatus.PASSED, smoke.reason)
            return done(
                StepStatus.PASSED,
                f"{step_label(step)} for {step.pause_seconds}s, no trigger",
            )

        def look() -> StepResult | None:
            """Measure from ``prev`` to now, judge, watch; the step's result, or None."""
            nonlocal prev, last
            self._check_abort()
            mark = self._promote_due(i)
            if mark is not None:
                self._promoted(mark, i)
                return done(StepStatus.PASSED, promotion_text(mark), promoted=mark)
            end = self.clock.now()
            canary, error = self.watch.measure(Track.CANARY, prev, end, self.slow_ms)
            stable: TrafficSample | None = None
            if judged:
                stable, stable_error = self.watch.measure(Track.STABLE, prev, end, self.slow_ms)
                error = error or stable_error
            health, health_error = self.watch.health(Track.CANARY)
            error = error or health_error
            window_start, prev = prev, end
            if canary is not None:
                self.watch.last_canary = canary
            if stable is not None:
                self.watch.last_stable = stable
            tally.add(canary, stable)
            firing: Firing | None = self.triggers.observe_traffic(canary)
            firing = self.triggers.observe_health(health, end) or firing
            verdict: Verdict | None = None
            reason = ""
            if firing is None and error is None and judged:
                assert stable is not None
                assert canary is not None
                last = self.judge.observe(stable, canary)
                verdict = last.verdict
                reason = last.reason
                tally.count(verdict)
                if verdict is Verdict.ERROR:
                    error = f"judge: {last.reason}"
            self.watch.count_error(error)
            if error is not None:
                tally.errors += 1
            # A gate's look is as long as the schedule makes it: the error limit stands for
            # the same length of outage at that cadence as at the judge's.
            cadence = max(1, round(end - window_start)) if gate else interval
            self.timeline.emit(
                "interval",
                interval_line(
                    step,
                    canary,
                    stable,
                    verdict,
                    reason,
                    error,
                    firing,
                    pause_end - end,
                    limit - end,
                    judged,
                ),
                step=i,
                weight=step.weight,
                start=window_start - self.state.started_at if self.state else 0.0,
                canary=brief(canary),
                stable=brief(stable),
                verdict=None if verdict is None else str(verdict),
                reason=reason,
                error=error,
                trigger=firing.name if firing else None,
                remaining_s=max(0.0, pause_end - end),
            )
            if gate:
                outcome = (
                    "trigger"
                    if firing is not None
                    else "error"
                    if error is not None
                    else None
                    if verdict is None
                    else str(verdict)
                )
                entry = look_entry(window_start, end, i, step.weight, canary, stable, outcome)
                self._keep_gate(i, start, prev, tally, last, entry)
            self._save_look(
                i,
                step,
                judged,
                tally,
                canary=brief(canary),
                stable=brief(stable),
                verdict=None if verdict is None else str(verdict),
                reason=reason,
                error=error,
                trigger=firing.name if firing else None,
                remaining_s=round(max(0.0, pause_end - end), 3),
                limit_s=round(max(0.0, limit - end), 3) if judged else None,
            )
            if firing is not None:
                return done(
                    StepStatus.TRIGGERED,
                    f"rollback trigger: {firing.reason}",
                    trigger=firing.to_dict(),
                )
            if self.watch.error_streak >= analysis.error_limit(cadence):
                return done(
                    StepStatus.ERROR,
                    f"{self.watch.error_streak} measurement errors in a row "
                    f"({error_limit_text(analysis, cadence)}); last: {error}",
                    errors=list(self.watch.last_errors),
                )
            if verdict is Verdict.FAIL:
                assert last is not None
                return done(StepStatus.FAILED, f"analysis failed: {last.reason}")
            if not judged or verdict is not Verdict.PASS:
                if judged and end >= limit:
                    why = last.reason if last is not None else "no measurement succeeded"
                    return done(
                        StepStatus.INCONCLUSIVE,
                        f"no verdict after {end - start:.0f}s at {step.weight}% ({why}): "
                        "a canary is never promoted on no evidence",
                    )
                return None
            if end >= pause_end:
                assert last is not None
                return done(StepStatus.PASSED, f"analysis passed: {last.reason}")
            # A gate's step is as long as it is for its own sake (a day of users), not only
            # until the evidence suffices: it runs its whole pause.
            if self.move_on_early and not gate and getattr(last, "early", False):
                assert last is not None
                return done(
                    StepStatus.PASSED,
                    f"analysis passed early, {pause_end - end:.0f}s before the pause ended: {last.reason}",
                    early=True,
                )
            return None

        if step.op == "preview":
            smoke = self._smoke()
            self.timeline.emit("smoke", smoke.reason, step=i, passed=smoke.passed)
            if not smoke.passed:
                return done(StepStatus.FAILED, smoke.reason)

        if gate:
            return self._gate_look(
                i, step, continuing, start, pause_end, limit if judged else None, look, quiet_pass
            )
        while True:
            now = self.clock.now()
            if not judged and now >= pause_end and self.watch.error_streak == 0:
                return quiet_pass()
            remaining = pause_end - now
            self.clock.sleep(interval if remaining <= 0 else min(interval, remaining))
            result = look()
            if result is not None:
                return result

    # -- the gate: one look per run ----------------------------------------------------------

    def _continuing(self, i: int) -> bool:
        """Whether step ``i`` is a gate's step that an earlier run began and left running."""
        st = self.state
        assert st is not None
        carry = st.gate
        return (
            self.settings.gate
            and st.phase == "running"
            and isinstance(carry, dict)
            and carry.get("step") == i
            and st.step_started_at is not None
            and carry.get("step_started_at") == st.step_started_at
        )

    def _take_up_gate(self) -> None:
        """What an earlier run of the gate left: the judge's evidence, the triggers' windows,
        the measurement errors in a row (a new process starts with none of them)."""
        st = self.state
        assert st is not None
        carry = st.gate
        if not isinstance(carry, dict):
            return
        judge = self.judge
        assert isinstance(judge, ResumableJudge)
        if carry.get("judge"):
            judge.restore(carry["judge"])
        self.triggers.restore(carry.get("triggers") or {})
        self.watch.error_streak = int(carry.get("error_streak") or 0)
        self.watch.last_errors = [str(e) for e in carry.get("last_errors") or []]

    def _keep_gate(
        self,
        i: int,
        start: float,
        prev: float,
        tally: Tally,
        last: Judgement | None,
        entry: dict[str, Any] | None,
    ) -> None:
        """Put the step's progress in the state, for the next save to keep."""
        st = self.state
        assert st is not None
        judge = self.judge
        assert isinstance(judge, ResumableJudge)
        looks = list((st.gate or {}).get("looks") or [])
        st.gate = {
            "step": i,
            "step_started_at": st.step_started_at,
            "start": start,
            "prev": prev,
            "tally": tally.to_dict(),
            "last": None if last is None else last.to_dict(),
            "judge": judge.snapshot(),
            "triggers": self.triggers.snapshot(),
            "error_streak": self.watch.error_streak,
            "last_errors": list(self.watch.last_errors),
            "looks": looks if entry is None else keep_looks(looks, entry),
        }

    def _check_unmoved(self, i: int, step: RolloutStep) -> None:
        """Stop a gate whose target someone else moved since its last look.

        The gate saved the weight it set; a different one now is a person's change (a flag's
        targeting edited in the UI, a manual rollback's), and the gate neither overwrites it
        nor judges traffic it did not place.
        """
        st = self.state
        assert st is not None
        live = self.target.status().canary_weight
        if live == step.weight:
            return
        since = st.step_started_at or st.started_at
        raise TargetChangedError(
            f"{self.roller.deployment} is at {live}% now, but the rollout left it at "
            f"{step.weight}% (step {i + 1}/{len(self.steps)}, since {self._when(since)}): it was "
            "changed by someone else since the last look. The gate stops here and changes "
            "nothing.",
            hint=f"To let the gate go on, set it back to {step.weight}%; to end the rollout where "
            "it stands, clear the rollout's saved state.",
            live=live,
            expected=step.weight,
        )

    def _when(self, epoch: float) -> str:
        return datetime.fromtimestamp(epoch, self.settings.policy.calendar.tz).strftime(
            "%Y-%m-%d %H:%M %Z"
        )

    def _gate_look(
        self,
        i: int,
        step: RolloutStep,
        continuing: bool,
        start: float,
        pause_end: float,
        limit: float | None,
        look: Callable[[], StepResult | None],
        quiet_pass: Callable[[], StepResult],
    ) -> StepResult | None:
        """This run's part of a gate's step: begin it, or look once; None while it goes on."""
        st = self.state
        assert st is not None
        n = len(self.steps)
        if not continuing:
            self._keep_gate(i, start, start, Tally(), None, None)
            self._save()
            action = "restarted" if self._restarting else "advanced" if i > 0 else "started"
            self._gate_event(
                action,
                f"{action}: step {i + 1}/{n} at {step_label(step, short=True)}, holding until "
                f"{self._when(pause_end)}",
                i,
                step,
                start,
                pause_end,
                limit,
            )
            return None
        carry = st.gate or {}
        prev = float(carry.get("prev") or start)
        now = self.clock.now()
        if now - prev < self._cadence():
            # Nothing to measure yet (a run right after another): no look, nothing counted.
            self._gate_event(
                "skipped",
                f"no look: the last one ended {now - prev:.0f}s ago, less than the "
                f"{self._cadence()}s the metrics can resolve",
                i,
                step,
                start,
                pause_end,
                limit,
            )
            return None
        result = look()
        quiet = limit is None and self.watch.error_streak == 0
        if result is None and quiet and self.clock.now() >= pause_end:
            result = quiet_pass()
        if result is not None:
            return result
        now = self.clock.now()
        if now < pause_end:
            action, text = "holding", f"holding at {step.weight}% until {self._when(pause_end)}"
        else:
            until = limit if limit is not None else now
            action = "waiting"
            text = (
                f"the pause is over without a pass: waiting for evidence at {step.weight}% "
                f"until {self._when(until)}, when no verdict is an error (on_error)"
            )
        self._gate_event(action, text, i, step, start, pause_end, limit)
        return None

    def _gate_event(
        self,
        action: str,
        text: str,
        i: int,
        step: RolloutStep,
        start: float,
        pause_end: float,
        limit: float | None,
    ) -> None:
        st = self.state
        assert st is not None
        tally = (st.gate or {}).get("tally") or {}
        self.timeline.emit(
            "gate",
            text,
            step=i,
            action=action,
            steps=len(self.steps),
            weight=step.weight,
            since=start,
            until=pause_end,
            limit=limit,
            looks=int(tally.get("intervals") or 0),
        )
