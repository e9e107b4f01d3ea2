"""A sleep for retry policies that records the waits instead of sleeping them."""

from __future__ import annotations


class Sleeps:
    """Records the waits instead of sleeping them, so retries cost no time."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
