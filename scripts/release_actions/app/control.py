"""Operator control of a rollout in progress: its status from the saved state, promote, abort."""

from __future__ import annotations

import time
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

from release_actions.app.session import Session
from release_actions.core.policy import Policy
from release_actions.errors import ReleaseActionsError

if TYPE_CHECKING:
    from release_actions.app.rollback import ManualRollbackRequest, ManualRollbackResult
    from release_actions.targets.base import DeployTarget, TargetStatus

REASON_LIMIT = 200
BY_LIMIT = 64
# Phases in which the engine is on its way out: nothing left to promote.
LEAVING = ("promoting", "rolling_back", "recovering")


def clean_text(text: str | None, limit: int) -> str:
    """Text from a person (a workflow input, a flag) fit for a record and a log line.

    Line breaks and tabs become spaces, other control and format characters (escape
    sequences, bidi overrides) go, runs of spaces shrink to one, and the text is cut to
    ``limit`` characters.
    """
    out = []
    for ch in text or "":
        if ch in "\t\n\r\v\f":
            out.append(" ")
        elif unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn"):
            out.append(ch)
    cleaned = " ".join("".join(out).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1].rstrip() + "…"


def operator(session: Session, by: str | None) -> str:
    """Who acts: ``--by``, else the workflow's actor, else the local user."""
    name = clean_text(
        by
        or session.env.get("GITHUB_ACTOR")
        or session.env.get("USER")
        or session.env.get("LOGNAME"),
        BY_LIMIT,
    )
    return name or "unknown"


def reason_of(session: Session, reason: str | None, option: str = "--reason") -> str:
    """The reason, cleaned and without any registered secret; empty is refused."""
    cleaned = clean_text(session.runtime.redact(reason or ""), REASON_LIMIT)
    if not cleaned:
        raise ReleaseActionsError(
            f"`{option}` is empty: say why, for the record (at most {REASON_LIMIT} characters)."
        )
    return cleaned


def in_progress(state: Mapping[str, Any] | None) -> bool:
    return bool((state or {}).get("version")) and (state or {}).get("phase") != "done"


def _clock_now(state: Mapping[str, Any], wall: float) -> float | None:
    """The engine's clock now, from what it said when it last saved (see RunState.clock)."""
    clock = state.get("clock")
    if not isinstance(clock, Mapping) or clock.get("at") is None:
        return None
    at = float(clock["at"])
    pace = clock.get("pace")
    if pace is None or clock.get("wall") is None:
        return at  # a virtual clock that jumps: it stands still between saves
    return at + max(0.0, wall - float(clock["wall"])) * float(pace)


def span(seconds: float | None) -> str:
    """``1m 40s``, ``45s``, ``2h 05m``."""
    if seconds is None:
        return "unknown"
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def _figures(block: Mapping[str, Any] | None) -> str:
    if not block:
        return "n/a"
    text = f"{float(block.get('error_rate_percent') or 0):.2f}% errors"
    text += f" ({float(block.get('errors') or 0):.0f}/{float(block.get('requests') or 0):.0f})"
    if block.get("p99_ms") is not None:
        text += f", p99 {float(block['p99_ms']):.0f}ms"
    return text


@dataclass
class RolloutView:
    """What `release-actions status` shows about the rollout saved on a target."""

    target: str
    stable_version: str | None
    canary_version: str | None
    canary_weight: int
    known_good: str | None
    version: str | None = None
    phase: str = "none"
    """running, analysing, promote-requested, held, promoting, rolling-back, recovering,
    promoted, rolled-back, failed, aborted; ``none`` when no rollout is saved."""
    summary: str = ""
    step: int | None = None  # 1-based
    steps: int | None = None
    weight: int | None = None
    plan: list[dict[str, Any]] = field(default_factory=list)
    next_step_in_s: float | None = None
    next_step_at: str | None = None
    clock_now: float | None = None
    look: dict[str, Any] | None = None
    look_age_s: float | None = None
    cadence_s: float | None = None
    promote: dict[str, Any] | None = None
    promotions: list[dict[str, Any]] = field(default_factory=list)
    abort: dict[str, Any] | None = None
    decision: str | None = None
    reason: str = ""
    ended: bool = False

    @property
    def ok(self) -> bool:
        # A blue-green that switched and a shadow that passed ended as they should.
        return not self.ended or self.decision in ("promoted", "switched", "passed")

    def signature(self) -> tuple[Any, ...]:
        """What changes when something happens (not the countdown): one line per change."""
        look = self.look or {}
        return (self.phase, self.step, self.weight, look.get("looks"), self.decision)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "version": self.version,
            "stable_version": self.stable_version,
            "canary_version": self.canary_version,
            "canary_weight": self.canary_weight,
            "known_good": self.known_good,
            "phase": self.phase,
            "summary": self.summary,
            "step": self.step,
            "steps": self.steps,
            "weight": self.weight,
            "plan": self.plan,
            "next_step_in_s": None
            if self.next_step_in_s is None
            else round(self.next_step_in_s, 1),
            "next_step_at": self.next_step_at,
            "cadence_s": self.cadence_s,
            "last_look": self.look,
            "last_look_age_s": None if self.look_age_s is None else round(self.look_age_s, 1),
            "promote_requested": self.promote,
            "promotions": self.promotions,
            "abort": self.abort,
            "decision": self.decision,
            "reason": self.reason,
            "ended": self.ended,
            "ok": self.ok,
        }

    # -- for a person -----------------------------------------------------------------

    def steps_line(self) -> str:
        parts = []
        for i, planned in enumerate(self.plan):
            op = planned.get("op") or "weight"
            w = {"preview": "preview", "switch": "switch"}.get(op) or (
                f"mirror {planned.get('weight')}%"
                if op == "mirror"
                else f"{planned.get('weight')}%"
            )
            if self.step is not None and i < self.step - 1:
                parts.append(f"{w} ✓")
            elif self.step is not None and i == self.step - 1 and not self.ended:
                parts.append(f"[{w}]")
            else:
                parts.append(w)
        return " → ".join(parts)

    def look_line(self) -> str | None:
        look = self.look
        if not look:
            return None
        age = "" if self.look_age_s is None else f", {span(self.look_age_s)} ago"
        head = (
            f"last look ({look.get('looks')} this step{age}): canary {_figures(look.get('canary'))}"
        )
        if look.get("judged"):
            head += f" | stable {_figures(look.get('stable'))}"
        if look.get("trigger"):
            tail = f"trigger {look['trigger']}"
        elif look.get("error"):
            tail = f"error: {look['error']}"
        elif look.get("verdict"):
            first = str(look.get("reason") or "").split(". ", 1)[0].rstrip(".")
            tail = f"judge: {look['verdict']}" + (f", {first}" if first else "")
        else:
            tail = "no trigger"
        return f"{head} | {tail}"

    def lines(self) -> list[str]:
        if self.phase == "none":
            return [f"{self.target}: no rollout saved ({self.summary})"]
        out = [
            f"{self.target}: {self.version} "
            f"(stable {self.stable_version or '-'}, known good {self.known_good or '-'})",
        ]
        where = f"step {self.step}/{self.steps} at {self.weight}%" if self.step else ""
        out.append(" ".join(p for p in (where, "—", self.summary) if p) if where else self.summary)
        if self.plan:
            out.append(f"steps: {self.steps_line()}")
        look = self.look_line()
        if look and not self.ended:
            out.append(look)
        if self.promote and self.phase == "promote-requested":
            p = self.promote
            what = "every remaining step" if p.get("full") else f"step {int(p['step']) + 1}'s pause"
            out.append(f"promote requested by {p.get('by')} ({what}): {p.get('reason')}")
        for p in self.promotions:
            what = "full" if p.get("full") else f"step {int(p['acted_step']) + 1}'s pause skipped"
            out.append(f"promoted by {p.get('by')} at {p.get('at')} ({what}): {p.get('reason')}")
        if self.ended and self.reason:
            out.append(f"reason: {self.reason}")
        return out

    def line(self, tz: tzinfo | None = None) -> str:
        """One line, for a log: the change since the line before."""
        stamp = datetime.now(tz).strftime("%H:%M:%S")
        if self.phase == "none":
            return f"{stamp} {self.lines()[0]}"
        where = f"step {self.step}/{self.steps} {self.weight}% " if self.step else ""
        text = f"{stamp} {self.version} {where}{self.summary}"
        look = self.look_line()
        if look and not self.ended:
            text += " | " + look.split(": ", 1)[1]
        return text

    def markdown(self) -> str:
        from release_actions.gha import markdown_table

        rows = [["target", self.target], ["phase", self.summary]]
        if self.version:
            rows += [
                ["version", str(self.version)],
                ["stable", str(self.stable_version or "-")],
                ["known good", str(self.known_good or "-")],
            ]
        if self.step:
            rows.append(["step", f"{self.step}/{self.steps} at {self.weight}%"])
        if self.plan:
            rows.append(["steps", self.steps_line()])
        look = self.look_line()
        if look and not self.ended:
            rows.append(["judge's evidence", look])
        for p in self.promotions:
            rows.append(["promoted", f"by {p.get('by')} at {p.get('at')}: {p.get('reason')}"])
        if self.promote and self.phase == "promote-requested":
            rows.append(
                ["promote requested", f"by {self.promote.get('by')}: {self.promote.get('reason')}"]
            )
        if self.abort:
            rows.append(
                [
                    "aborted",
                    f"by {self.abort.get('by')} at {self.abort.get('at')}: {self.abort.get('reason')}",
                ]
            )
        if self.ended and self.reason:
            rows.append(["reason", self.reason])
        return f"### Rollout status: {self.target}\n\n" + markdown_table(["", ""], rows)


def view_of(
    label: str, status: TargetStatus, tz: tzinfo | None = None, wall: float | None = None
) -> RolloutView:
    """The view of ``status`` (and its saved state) at wall time ``wall`` (default: now)."""
    from release_actions.canary.rollout import abort_mark, promote_mark

    wall = time.time() if wall is None else wall
    view = RolloutView(
        label,
        status.stable_version,
        status.canary_version,
        status.canary_weight,
        status.known_good,
    )
    state = dict(status.state or {})
    if not state.get("version"):
        view.summary = "no saved state: no rollout has run here, or it was cleared"
        return view
    view.version = str(state["version"])
    plan = [dict(p) for p in state.get("plan") or [] if isinstance(p, Mapping)]
    view.plan = plan
    index = int(state.get("step_index") or 0)
    view.steps = len(plan) or None
    view.step = min(index, len(plan) - 1) + 1 if plan else index + 1
    view.weight = int(state.get("weight") or 0)
    view.cadence_s = state.get("cadence_s")
    view.decision = state.get("decision")
    view.reason = str(state.get("reason") or "")
    view.promotions = [dict(p) for p in state.get("promotions") or []]
    view.abort = abort_mark(state)
    now = _clock_now(state, wall)
    view.clock_now = now
    look = state.get("look")
    view.look = dict(look) if isinstance(look, Mapping) else None
    if view.look and now is not None and view.look.get("at") is not None:
        view.look_age_s = max(0.0, now - float(view.look["at"]))
    phase = str(state.get("phase") or "running")

    def at_text(epoch: float) -> str:
        return datetime.fromtimestamp(epoch, tz).strftime("%H:%M:%S")

    if phase == "done":
        view.ended = True
        decision = view.decision or "done"
        if view.abort is not None:
            view.phase = "aborted"
            a = view.abort
            view.summary = f"aborted: rolled back by hand (by {a.get('by')} at {a.get('at')})"
        else:
            view.phase = decision.replace("_", "-")
            view.summary = decision.replace("_", " ")
        return view
    if phase == "held":
        view.ended = True
        view.phase = "held"
        view.summary = (
            f"held at {view.weight}% (on_error: hold); `canary run` of {view.version} resumes it"
        )
        return view
    if phase in LEAVING:
        view.phase = phase.replace("_", "-")
        view.summary = {
            "promoting": "promoting to 100%",
            "rolling_back": "rolling back",
            "recovering": "rolled back, checking recovery",
        }[phase]
        return view
    pending = promote_mark(state, view.version, float(state.get("started_at") or 0))
    acted = {p.get("id") for p in view.promotions}
    if (
        pending is not None
        and pending.get("id") not in acted
        and (pending.get("full") or pending.get("step") == index)
    ):
        view.promote = pending
        view.phase = "promote-requested"
        view.summary = (
            f"promote requested by {pending.get('by')}: the engine acts at its next look"
            + (f" (every {span(view.cadence_s)})" if view.cadence_s else "")
        )
        return view
    planned = plan[index] if index < len(plan) else {}
    started = state.get("step_started_at")
    judged = bool(planned.get("analysis")) and (
        int(planned.get("weight") or 0) < 100 or planned.get("op") == "mirror"
    )
    view.phase = "analysing" if judged else "running"
    if started is None or now is None or "pause_seconds" not in planned:
        view.summary = "analysing" if judged else "running"
        return view
    pause_end = float(started) + float(planned["pause_seconds"])
    left = pause_end - now
    if left > 0:
        view.next_step_in_s = left
        view.next_step_at = at_text(pause_end)
        what = "analysing, " if judged else ""
        view.summary = f"{what}paused until {at_text(pause_end)} (next step in {span(left)})"
    elif judged:
        limit = (view.look or {}).get("limit_s")
        extra = f"; on_error in {span(float(limit))}" if limit is not None else ""
        view.summary = f"pause over, waiting for the judge's verdict{extra}"
    else:
        view.summary = "pause over, the next step starts at the next look"
    return view


# -- promote ------------------------------------------------------------------------------------


@dataclass
class PromoteResult:
    changed: bool
    mark: dict[str, Any]
    message: str


def no_rollout(label: str, state: Mapping[str, Any] | None) -> ReleaseActionsError:
    saved = dict(state or {})
    if not saved.get("version"):
        why = "there is no saved rollout state"
    else:
        why = f"the rollout of {saved['version']} ended: {saved.get('decision')}"
    return ReleaseActionsError(
        f"No rollout is in progress on {label}: {why}.",
        hint="Check the target (`--target`, `--namespace`, `--deployment`, `--state-file`), or "
        "see what is there with `release-actions status`.",
    )


def request_promotion(
    session: Session,
    policy: Policy,
    target: DeployTarget,
    label: str,
    *,
    reason: str,
    by: str,
    full: bool,
) -> PromoteResult:
    """Leave the promote mark on the rollout saved on ``target``; the engine acts at its next look.

    Refused when no rollout is in progress there; a mark already waiting for the same step
    (or a full one) is left as it is.
    """
    from release_actions.canary.rollout import promote_mark
    from release_actions.integrations.records import run_url

    state = dict(target.status().state or {})
    if not in_progress(state):
        raise no_rollout(label, state)
    phase = state.get("phase")
    if phase in LEAVING:
        raise ReleaseActionsError(
            f"The rollout of {state['version']} on {label} is already {str(phase).replace('_', ' ')}: "
            "there is nothing left to promote.",
        )
    version, started = str(state["version"]), float(state.get("started_at") or 0)
    index = int(state.get("step_index") or 0)
    waiting = promote_mark(state, version, started)
    acted = {p.get("id") for p in state.get("promotions") or []}
    if (
        waiting is not None
        and waiting.get("id") not in acted
        and (waiting.get("full") or (not full and waiting.get("step") == index))
    ):
        return PromoteResult(
            False,
            waiting,
            f"a promote is already waiting (by {waiting.get('by')} at {waiting.get('at')}): "
            "nothing changed",
        )
    now = time.time()
    mark: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "by": by,
        "at": datetime.fromtimestamp(now, policy.calendar.tz).isoformat(timespec="seconds"),
        "at_s": now,
        "reason": reason,
        "run": run_url(session.env),
        "full": full,
        "step": index,
        "version": version,
        "started_at": state.get("started_at"),
    }
    state["promote"] = mark
    target.save_state(state)
    # A save of the running engine prepared before this write can replace it (on a target
    # without the simulator's lock): write it once more onto what is there now.
    again = dict(target.status().state or {})
    if in_progress(again) and (again.get("promote") or {}).get("id") != mark["id"]:
        again["promote"] = mark
        target.save_state(again)
    what = "every remaining step" if full else f"the pause of step {index + 1}"
    message = f"promote requested: the rollout skips {what} at its next look"
    if phase == "held":
        message += f" (it is held: `canary run` of {version} resumes it and acts on the mark)"
    return PromoteResult(True, mark, message)


# -- abort --------------------------------------------------------------------------------------


@dataclass
class AbortResult:
    rolled_back: ManualRollbackResult | None
    message: str


def abort_rollout(
    session: Session,
    policy: Policy,
    target: DeployTarget,
    label: str,
    request: ManualRollbackRequest,
) -> AbortResult:
    """Roll back now, recorded as manual: `release-actions rollback` behind a check.

    The rollback marks the saved state first, so a running engine stops at its next look
    without rolling back a second time; with no engine running (its job died) the rollback
    is done here all the same. Refused when nothing is in progress; a rollout already
    aborted by hand is left as it is.
    """
    from release_actions.app.rollback import run_manual_rollback
    from release_actions.canary.rollout import abort_mark

    status = target.status()
    state = status.state or {}
    moving = in_progress(state) or status.canary_version is not None
    if not moving:
        mark = abort_mark(state)
        back = status.known_good is None or status.stable_version == status.known_good
        if mark is not None and back:
            return AbortResult(
                None,
                f"already aborted by {mark.get('by')} at {mark.get('at')} "
                f"({mark.get('reason')}): nothing changed",
            )
        raise no_rollout(label, state)
    return AbortResult(run_manual_rollback(session, policy, request), "")
