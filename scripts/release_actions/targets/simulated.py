"""A deploy target that exists only in memory (and optionally a JSON file), for rehearsals and tests."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from release_actions.errors import TargetError
from release_actions.metrics.base import Track
from release_actions.simulation.clock import Clock
from release_actions.targets.base import (
    STRATEGIES,
    DeployTarget,
    HealthSample,
    Preview,
    RollbackResult,
    TargetStatus,
    keep_unread_marks,
    mark_ids,
)

_SCHEMA = 1


class SimulatedTarget(DeployTarget):
    """Stable and canary versions with a traffic weight, and the history of both over time.

    Every change is written to ``state_file`` (when given) before the method returns, so
    a process killed at any point leaves a file the next process can resume from. The
    history is what the simulated traffic reads to know which version served when.

    The file is shared as a Kubernetes object is: ``status`` and every change read it
    first, so a rollback or a mark written by another process (`release-actions rollback`,
    `promote`, `abort` beside a running rehearsal) is seen at the next look; a write keeps
    a mark that appeared in the file since this process last read it instead of writing
    over it; and each read-change-write holds a lock on ``<state_file>.lock``.
    """

    name = "simulated"
    strategies = frozenset(STRATEGIES)
    PREVIEW_URL = "http://preview.simulated"

    def __init__(
        self,
        clock: Clock,
        *,
        stable_version: str = "v1.5.1",
        known_good: str | None = None,
        state_file: Path | None = None,
        rollback_seconds: float = 30.0,
        deployment: str = "triptrip-api",
    ) -> None:
        self.clock = clock
        self.state_file = state_file
        self.rollback_seconds = rollback_seconds
        self.deployment = deployment
        self.health_model: Callable[[Track | None], HealthSample] | None = None
        self.stable_version: str | None = stable_version
        self.canary_version: str | None = None
        self.canary_weight = 0
        self.known_good: str | None = known_good
        self.state: dict[str, Any] | None = None
        self.rollbacks = 0
        self.world: dict[str, Any] = {}
        self.history: list[tuple[float, str | None, str | None, int]] = []
        # Shadow: the share of requests copied to the canary, and when it changed.
        self.mirrors: list[tuple[float, int]] = [(clock.now(), 0)]
        self._seen: set[str] = set()  # ids of the marks this process has read or written
        self._changing = False
        self._dirty = False
        if state_file is not None and state_file.exists():
            self._load(state_file)
        else:
            self._record()

    # -- persistence ----------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the state file's lock (advisory, between processes of this tool) while inside."""
        assert self.state_file is not None
        lock = self.state_file.with_name(self.state_file.name + ".lock")
        with lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _change(self) -> Iterator[None]:
        """Read the file, change, write it if anything changed: one step under the lock.

        A mark another process wrote since this one last read the file is kept even when
        the change replaces the whole saved state (a save prepared from an older read).
        """
        if self.state_file is None or self._changing:
            yield
            return
        with self._locked():
            self._changing, self._dirty = True, False
            try:
                stored, before = self._stored_state(), set(self._seen)
                self._refresh()
                yield
                # The marks of the file this process had not read, unless the change wrote
                # one of its own there: the rule every target's save keeps.
                merged = keep_unread_marks(stored, self.state or {}, before)
                if merged != (self.state or {}):
                    self.state = merged
                    self._dirty = True
                if self._dirty:
                    self._write_file()
            finally:
                self._changing = False

    def _refresh(self) -> None:
        if self.state_file is not None and self.state_file.exists():
            self._load(self.state_file)

    def _stored_state(self) -> dict[str, Any] | None:
        """The saved state as the file holds it now, without loading the rest."""
        assert self.state_file is not None
        try:
            state = json.loads(self.state_file.read_text("utf-8")).get("state")
        except (OSError, ValueError, AttributeError):
            return None
        return state if isinstance(state, dict) else None

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise TargetError(
                f"Cannot read the simulated target's state file: {exc}.",
                hint="Delete the file to start a fresh rehearsal.",
                file=str(path),
            ) from exc
        if not isinstance(data, dict) or data.get("schema") != _SCHEMA:
            raise TargetError(
                f"This is not a simulated target state file (schema {_SCHEMA}).",
                hint="Delete the file to start a fresh rehearsal.",
                file=str(path),
            )
        self.deployment = data["deployment"]
        self.stable_version = data["stable_version"]
        self.canary_version = data["canary_version"]
        self.canary_weight = int(data["canary_weight"])
        self.known_good = data["known_good"]
        self.state = data["state"]
        self.rollbacks = int(data["rollbacks"])
        self.world = dict(data.get("world") or {})
        self.history = [(float(t), s, c, int(w)) for t, s, c, w in data["history"]]
        self.mirrors = [(float(t), int(m)) for t, m in data.get("mirrors") or [(0.0, 0)]]
        self._seen |= mark_ids(self.state)

    def _write(self) -> None:
        if self.state_file is None:
            return
        if self._changing:
            self._dirty = True
            return
        with self._change():
            self._dirty = True

    def _write_file(self) -> None:
        assert self.state_file is not None
        # Never back in time: a process that only reads and marks (`promote`) has a clock
        # of its own, behind the rehearsal's.
        self.world["now"] = max(self.clock.now(), float(self.world.get("now") or 0.0))
        data = {
            "schema": _SCHEMA,
            "deployment": self.deployment,
            "stable_version": self.stable_version,
            "canary_version": self.canary_version,
            "canary_weight": self.canary_weight,
            "known_good": self.known_good,
            "state": self.state,
            "rollbacks": self.rollbacks,
            "world": self.world,
            "history": [list(h) for h in self.history],
            "mirrors": [list(m) for m in self.mirrors],
        }
        # Write then rename: a kill mid-write leaves the previous file, never half of one.
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1), "utf-8")
        os.replace(tmp, self.state_file)
        self._seen |= mark_ids(self.state)

    def _record(self) -> None:
        entry = (self.clock.now(), self.stable_version, self.canary_version, self.canary_weight)
        if self.history and self.history[-1][1:] == entry[1:]:
            return
        self.history.append(entry)
        self._write()

    @property
    def mirror_percent(self) -> int:
        """The share copied to the canary now: the last entry of the mirror history."""
        return self.mirrors[-1][1] if self.mirrors else 0

    def _record_mirror(self, percent: int) -> None:
        if self.mirrors and self.mirrors[-1][1] == percent:
            return
        self.mirrors.append((self.clock.now(), percent))
        self._write()

    def remember_world(self, **values: Any) -> None:
        """Keep the simulated world's facts (origin, good version) next to the deployment."""
        with self._change():
            self.world.update(values)
            self._write()

    # -- what the simulated traffic reads ---------------------------------------------

    def at(self, t: float) -> tuple[str | None, str | None, int]:
        """Stable version, canary version and weight at time ``t``."""
        times = [h[0] for h in self.history]
        i = max(0, bisect_right(times, t) - 1)
        _, stable, canary, weight = self.history[i]
        return stable, canary, weight

    def mirror_at(self, t: float) -> int:
        """The share of requests copied to the canary at time ``t`` (shadow), in percent."""
        times = [m[0] for m in self.mirrors]
        return self.mirrors[max(0, bisect_right(times, t) - 1)][1]

    # -- DeployTarget ------------------------------------------------------------------

    def status(self) -> TargetStatus:
        if self.state_file is not None and self.state_file.exists():
            with self._locked():
                self._refresh()
        return TargetStatus(
            stable_version=self.stable_version,
            canary_version=self.canary_version,
            canary_weight=self.canary_weight,
            known_good=self.known_good,
            state=self.state,
            mirror_percent=self.mirror_percent,
        )

    def begin(self, version: str) -> None:
        with self._change():
            self._begin(version)

    def _begin(self, version: str) -> None:
        if self.canary_version == version:
            return  # resuming the same rollout
        if self.canary_version is not None:
            raise TargetError(
                f"Canary {self.canary_version} is still in progress on {self.deployment}; "
                f"cannot start {version}.",
                hint="Roll it back (`release-actions canary run` does so for an abandoned "
                "rollout) or promote it first.",
            )
        if self.stable_version == version:
            raise TargetError(
                f"{version} is already the stable version of {self.deployment}.",
                hint="Deploy a new version, or roll back first to rehearse it again.",
            )
        self.known_good = self.stable_version
        self.canary_version = version
        self.canary_weight = 0
        self._record()

    def set_weight(self, percent: int) -> None:
        with self._change():
            self._set_weight(percent)

    def _set_weight(self, percent: int) -> None:
        if not 0 <= percent <= 100:
            raise TargetError(f"Canary weight must be 0 to 100, got {percent}.")
        if self.canary_version is None:
            raise TargetError(
                f"No canary is in progress on {self.deployment}, so there is no weight to set.",
                hint="Call begin(version) first.",
            )
        self.canary_weight = percent
        self._record()

    def promote(self) -> None:
        with self._change():
            self._promote()

    def _promote(self) -> None:
        if self.canary_version is None:
            return  # already promoted (or rolled back): nothing to do, twice is harmless
        self.stable_version = self.canary_version
        self.canary_version = None
        self.canary_weight = 0
        self._record()

    def rollback(self) -> RollbackResult:
        with self._change():
            done = self._rollback()
        # Blue-green keeps the old version at full size: switching back waits for nothing.
        if done.changed and self.strategy != "blue-green":
            self.clock.sleep(self.rollback_seconds)
            self._write()
        return done

    def preview(self) -> Preview | None:
        if self.canary_version is None:
            return None
        return Preview(
            url=self.PREVIEW_URL,
            headers={"x-canary": "true"},
            detail=f"the simulated preview of {self.canary_version}",
        )

    def switch(self) -> None:
        with self._change():
            if self.canary_version is None:
                raise TargetError(
                    f"No new version is up on {self.deployment}, so there is nothing to switch to.",
                    hint="Call begin(version) first.",
                )
            self.canary_weight = 100  # one update; the old version keeps running
            self._record()

    def mirror(self, percent: int) -> None:
        if not 0 <= percent <= 100:
            raise TargetError(f"Mirror share must be 0 to 100, got {percent}.")
        with self._change():
            if self.canary_version is None:
                raise TargetError(
                    f"No shadow is up on {self.deployment}, so there is nothing to mirror to.",
                    hint="Call begin(version) first.",
                )
            self._record_mirror(percent)

    def withdraw(self) -> RollbackResult:
        with self._change():
            bad = self.canary_version
            self._record_mirror(0)
            if bad is None:
                return RollbackResult(
                    changed=False,
                    from_version=None,
                    to_version=self.stable_version,
                    detail="no shadow or preview to take away",
                )
            self.canary_version = None
            self.canary_weight = 0
            self._record()
        return RollbackResult(
            changed=True,
            from_version=bad,
            to_version=self.stable_version,
            detail=f"{bad} taken away from {self.deployment}; users never reached it",
        )

    def _rollback(self) -> RollbackResult:
        bad: str | None
        if self.canary_version is not None:
            bad = self.canary_version
        elif self.known_good is not None and self.stable_version != self.known_good:
            bad = self.stable_version
        else:
            return RollbackResult(
                changed=False,
                from_version=None,
                to_version=self.stable_version,
                detail=f"already on the known-good version {self.stable_version}",
            )
        good = self.known_good or self.stable_version
        self._record_mirror(0)
        # Traffic leaves the bad version at once (as an Argo abort sets the weight to 0);
        # the wait is the old version's pods becoming ready at full size.
        self.stable_version = good
        self.canary_version = None
        self.canary_weight = 0
        self.rollbacks += 1
        self._record()
        return RollbackResult(
            changed=True,
            from_version=bad,
            to_version=good,
            detail=f"traffic moved from {bad} to {good} on {self.deployment}",
        )

    def save_state(self, state: Mapping[str, Any] | None) -> None:
        # Through JSON even in memory, so a state that could not be saved to a file fails
        # here in every test, not only in the run that uses --state-file.
        with self._change():
            self.state = None if state is None else json.loads(json.dumps(dict(state)))
            self._write()

    def health(self, track: Track | None = None) -> HealthSample:
        if self.health_model is not None:
            return self.health_model(track)
        return HealthSample(ready=True, restarts=0, health_check_failures=0)
