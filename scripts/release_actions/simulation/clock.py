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


class VirtualClock:
    """A clock whose sleep only moves the hands: twenty minutes of rollout take no time."""

    def __init__(self, start: float = DEFAULT_EPOCH) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot sleep a negative time ({seconds})")
        self._now += seconds
