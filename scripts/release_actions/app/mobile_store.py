"""Store rollouts in production: start, the scheduled gate's look, and a person's halt, resume, complete."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from release_actions.app.session import Session
from release_actions.core.policy import Policy
from release_actions.errors import ReleaseActionsError

if TYPE_CHECKING:
    from release_actions.mobile.appstore import AppStoreRelease
    from release_actions.mobile.base import ReviewSource, StoreRelease, StoreStatus, VitalsSource
    from release_actions.mobile.metrics import VersionMetricsSource
    from release_actions.mobile.rollout import GateState, Look, MobileGate, StateStore

# Endpoints for a proxy, or the tests' fakes; unset, each client talks to the real service.
PLAY_ENDPOINT_VAR = "PLAY_API_ENDPOINT"
APP_STORE_ENDPOINT_VAR = "APP_STORE_CONNECT_API_URL"
SENTRY_URL_VAR = "SENTRY_URL"
# A look that lost the race to save its state reads again and looks again, this often.
CONFLICT_ATTEMPTS = 3


@dataclass
class StoreApp:
    """One app's release in one store, with what the gate reads: vitals and reviews."""

    platform: str
    app: str
    store: StoreRelease
    vitals: Callable[[], VitalsSource]
    reviews: Callable[[], ReviewSource | None]


def open_play(
    session: Session,
    *,
    package: str,
    version_code: str,
    version_name: str | None,
    track: str,
    bundle: Path | None,
    notes: Mapping[str, str] | None,
) -> StoreApp:
    """Play's publisher and reporting clients, with PLAY_API_ENDPOINT when it is set."""
    from release_actions.mobile.play import (
        PlayRelease,
        PlayReviews,
        PlayVitals,
        play_clients,
        play_credentials,
    )

    endpoint = session.env.get(PLAY_ENDPOINT_VAR, "").strip() or None
    credentials = play_credentials(session.env, mask=session.runtime.mask)
    publisher, reporting = play_clients(credentials, endpoint=endpoint)
    store = PlayRelease(
        publisher,
        package_name=package,
        version_code=version_code,
        track=track,
        release_name=version_name or None,
        release_notes=notes,
        bundle=str(bundle) if bundle else None,
    )
    return StoreApp(
        "android",
        package,
        store,
        lambda: PlayVitals(reporting, package_name=package),
        lambda: PlayReviews(publisher, package_name=package),
    )


@dataclass(frozen=True)
class SentrySettings:
    org: str | None
    project: str | None
    release: str | None
    environment: str | None = None


def appstore_release(
    session: Session, *, app_id: str, version: str, now: float | None = None
) -> AppStoreRelease:
    """The version's App Store Connect client, with APP_STORE_CONNECT_API_URL when it is set;
    ``now`` is the look's time, which a pause's length is counted to."""
    from release_actions.mobile.appstore import API, AppStoreRelease

    base = session.env.get(APP_STORE_ENDPOINT_VAR, "").strip() or API
    extra: dict[str, Any] = {} if now is None else {"clock": lambda: now}
    return AppStoreRelease.from_env(
        app_id=app_id,
        version_string=version,
        env=session.env,
        mask=session.runtime.mask,
        base_url=base,
        **extra,
    )


def open_appstore(
    session: Session,
    *,
    app_id: str,
    version: str,
    sentry: SentrySettings,
    now: float | None = None,
) -> StoreApp:
    """App Store Connect for the phased release, Sentry for the vitals (Apple has none per hour)."""
    from release_actions.mobile.sentry import API as SENTRY_API
    from release_actions.mobile.sentry import SentryVitals

    store = appstore_release(session, app_id=app_id, version=version, now=now)

    def vitals() -> VitalsSource:
        if not sentry.org or not sentry.project:
            raise ReleaseActionsError(
                "The iOS gate reads crashes from Sentry: give `--sentry-org` and "
                "`--sentry-project` (or SENTRY_ORG and SENTRY_PROJECT).",
                hint="`sentry-project` is the numeric project ID; SENTRY_AUTH_TOKEN goes in the "
                "step's `env:` from a secret.",
            )
        extra: dict[str, Any] = {}
        if sentry.release:
            extra["release"] = sentry.release
        return SentryVitals.from_env(
            org=sentry.org,
            project=sentry.project,
            env=session.env,
            mask=session.runtime.mask,
            environment=sentry.environment,
            base_url=session.env.get(SENTRY_URL_VAR, "").strip() or SENTRY_API,
            # Filled by each read of the store, which the gate makes before reading vitals:
            # `{version}` of the new build and of the previous one.
            versions=store.version_names,
            **extra,
        )

    return StoreApp("ios", app_id, store, vitals, lambda: None)


@dataclass
class StoreOutcome:
    """What one command did to a store rollout: the look, the state after it, the record."""

    command: str
    platform: str
    app: str
    look: Look
    state: GateState | None
    status: StoreStatus | None = None
    record: dict[str, Any] | None = None
    state_where: str = ""
    attempts: int = 1
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def decision(self) -> str:
        """The look's action; a look that changed nothing reports where the rollout stands."""
        if self.look.action != "none":
            return self.look.action
        if self.state is not None and self.state.decision in ("halted", "completed"):
            return self.state.decision
        return "held"

    def to_dict(self) -> dict[str, Any]:
        look = self.look
        state = self.state
        return {
            "command": self.command,
            "decision": self.decision,
            "changed": look.changed_state or any(c.changed for c in look.changes),
            "platform": self.platform,
            "app": self.app,
            "version_code": state.version_code if state else None,
            "version_name": state.version_name if state else None,
            "previous_version_code": state.previous_version_code if state else None,
            "stage": look.stage_index,
            "fraction": look.fraction,
            "reason": look.reason,
            "changes": [{"changed": c.changed, "message": c.message} for c in look.changes],
            "warnings": list(look.warnings),
            "judgement": None
            if look.judgement is None
            else {
                "verdict": look.judgement.verdict.value,
                "check": look.judgement.check,
                "reason": look.judgement.reason,
            },
            "hours_judged": len(state.hours) if state else 0,
            "store": None
            if self.status is None
            else {
                "state": self.status.state.value,
                "fraction": self.status.fraction,
                "track": self.status.track,
                "previous_version_code": self.status.previous_version_code,
            },
            "release_notes": self.notes or None,
            "state_store": self.state_where,
            "attempts": self.attempts,
            "record": self.record,
        }


def actor(env: Mapping[str, str]) -> str:
    """Who acts: the workflow's actor in Actions, else the local user."""
    return env.get("GITHUB_ACTOR") or env.get("USER") or os.environ.get("USER") or "someone"


def make_gate(
    policy: Policy,
    app: StoreApp,
    states: StateStore,
    *,
    reviews: bool,
    metrics: VersionMetricsSource | None = None,
) -> MobileGate:
    from release_actions.app.mobile import mobile_policy
    from release_actions.mobile.rollout import MobileGate

    class _NoVitals:
        """A gate that only starts, halts or completes never reads vitals."""

    vitals: Any = app.vitals() if reviews else _NoVitals()
    return MobileGate(
        app.store,
        vitals,
        app.reviews() if reviews else None,
        mobile_policy(policy),
        states,
        metrics=metrics,
    )


def start(
    session: Session,
    policy: Policy,
    app: StoreApp,
    states: StateStore,
    *,
    from_track: str | None,
    now: float,
) -> StoreOutcome:
    """The staged rollout at the first stage's fraction; a second run changes nothing."""
    from release_actions.mobile.base import Change, StoreState
    from release_actions.mobile.play import PlayRelease
    from release_actions.mobile.rollout import GateState, Look

    gate = make_gate(policy, app, states, reviews=False)
    first = gate.stages[0].fraction
    status = app.store.status()
    changes: list[Change] = []
    if status.state is StoreState.DRAFT:
        if from_track:
            assert isinstance(app.store, PlayRelease)
            changes.append(app.store.promote(from_track, first))
        else:
            changes.append(app.store.set_fraction(first))
    elif isinstance(app.store, PlayRelease) and app.store.release_notes:
        changes.append(app.store.set_release_notes(app.store.release_notes))
    saved = states.load()
    state: GateState | None
    if saved is not None and saved.get("version_code") == status.version_code:
        state = GateState.from_dict(saved)
        look = Look(
            now,
            "none",
            state.stage_index,
            gate.stages[state.stage_index].fraction,
            f"The gate has followed it since {_utc(state.started_at)}: {state.decision}.",
            changes=changes,
        )
    else:
        look = gate.advance(now)  # no state yet: the gate's own start, saved
        look.changes[:0] = changes
        state = gate.state
    if look.action == "none" and not any(c.changed for c in look.changes):
        look.reason = f"Already started; nothing changed. {look.reason}"
    return StoreOutcome("start", app.platform, app.app, look, state, app.store.status())


def advance(
    session: Session,
    policy: Policy,
    app: StoreApp,
    states: Callable[[], StateStore],
    *,
    now: float,
    record_file: Path | None,
    repository: str | None,
) -> StoreOutcome:
    """The scheduled gate's one look; a halt writes the record, turns flags off, sends the notice."""
    from release_actions.app.mobile_metrics import version_metrics
    from release_actions.mobile.state import GateStateConflict

    metrics = version_metrics(session, policy)
    attempt = 0
    while True:
        attempt += 1
        gate = make_gate(policy, app, states(), reviews=True, metrics=metrics)
        try:
            look = gate.advance(now)
            break
        except GateStateConflict as exc:
            if attempt >= CONFLICT_ATTEMPTS:
                raise
            session.note(f"{exc.message} Reading it again (attempt {attempt + 1}).")
    # A look that saved nothing (already halted or completed) reports the state it read.
    state = gate.state if gate.state is not None else gate._load()
    outcome = StoreOutcome("advance", app.platform, app.app, look, state, attempts=attempt)
    if look.action == "halted" and state is not None:
        outcome.record = _halted(session, policy, app, state, record_file, repository)
    return outcome


def by_hand(
    session: Session,
    policy: Policy,
    app: StoreApp,
    states: StateStore,
    *,
    what: str,
    reason: str,
    now: float,
    record_file: Path | None,
    repository: str | None,
) -> StoreOutcome:
    """``halt``, ``resume`` or ``complete`` by a person, who and why kept in the gate's state."""
    gate = make_gate(policy, app, states, reviews=False)
    by = actor(session.env)
    if what == "halt":
        look = gate.halt(now, by=by, reason=reason)
    elif what == "resume":
        look = gate.resume(now, by=by, reason=reason)
    elif what == "complete":
        look = gate.complete(now, by=by, reason=reason)
    else:  # pragma: no cover - click's choice
        raise ReleaseActionsError(f"Unknown command `{what}`.")
    outcome = StoreOutcome(what, app.platform, app.app, look, gate.state or gate._load())
    if what == "halt" and look.action == "halted" and outcome.state is not None:
        outcome.record = _halted(
            session, policy, app, outcome.state, record_file, repository, trigger="manual"
        )
    return outcome


def status(session: Session, policy: Policy, app: StoreApp, states: StateStore) -> StoreOutcome:
    """Where the rollout stands, in the store and in the gate's state; changes nothing."""
    from release_actions.mobile.rollout import GateState, Look

    gate = make_gate(policy, app, states, reviews=False)
    store_status = app.store.status()
    saved = states.load()
    state = (
        GateState.from_dict(saved)
        if saved is not None and saved.get("version_code") == store_status.version_code
        else None
    )
    index = state.stage_index if state else gate._stage_at(store_status.fraction)
    reason = (
        (state.reason or (state.last_look or {}).get("reason") or "running")
        if state
        else "The gate has no state for this version yet: `start` or `advance` makes it."
    )
    look = Look(0.0, "none", index, store_status.fraction or 0.0, reason)
    return StoreOutcome("status", app.platform, app.app, look, state, store_status)


def _halted(
    session: Session,
    policy: Policy,
    app: StoreApp,
    state: GateState,
    record_file: Path | None,
    repository: str | None,
    *,
    trigger: str = "automatic",
) -> dict[str, Any]:
    from release_actions.app.mobile import halt_record

    return halt_record(
        session,
        policy,
        state,
        app=app.app,
        exposed_users=None,
        simulated=False,
        record_file=record_file,
        repository=repository,
        trigger=trigger,
    )


def _utc(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")
