"""Time as the engine and the simulated world read it: the Clock protocol and a virtual clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

# A Tuesday at 10:00 JST, the source document's release slot (§2.4): rehearsals are
# reproducible to the second, and their records read like a real release's.
DEFAULT_EPOCH = datetime(2026, 1, 20, 1, 0, tzinfo=UTC).timestamp()


class Clock(Protocol):
    """Wall time in epoch seconds; the virtual clock and the real one both fit."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


def pace_of(clock: object) -> float | None:
    """Clock seconds per wall-clock second (1 for the real clock); None when time jumps.

    Saved with the rollout's progress, so `release-actions status` can tell how far the
    clock has moved since (a rehearsal's virtual clock with no pace does not move between
    saves).
    """
    pace = getattr(clock, "pace", 1.0)
    return None if pace is None else float(pace)


class VirtualClock:
    """A clock whose sleep only moves the hands: twenty minutes of rollout take no time."""

    pace: float | None = None

    def __init__(self, start: float = DEFAULT_EPOCH) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot sleep a negative time ({seconds})")
        self._now += seconds


class PacedClock(VirtualClock):
    """A virtual clock that really waits: ``speed`` virtual seconds pass per real second.

    A rehearsal on it can be watched, promoted and aborted from another process
    (`release-actions rehearse --speed 60`: a two-minute pause lasts two seconds).
    """

    def __init__(self, start: float = DEFAULT_EPOCH, *, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        super().__init__(start)
        self.pace = float(speed)

    def sleep(self, seconds: float) -> None:
        import time

        if seconds < 0:
            raise ValueError(f"cannot sleep a negative time ({seconds})")
        time.sleep(seconds / float(self.pace or 1.0))
        super().sleep(seconds)
