"""What a mobile rollout needs from a store and from its crash data, as the canary has targets.

A store release cannot be taken back: the gate can only hold a stage, advance it, or halt it
(no new installs). The store and the vitals sources are separate because they are on iOS:
App Store Connect runs the rollout, Sentry (or Datadog, Prometheus) reports the crashes; on
Android, Play runs the rollout and its Reporting API reports crashes and ANRs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Platform(StrEnum):
    ANDROID = "android"
    IOS = "ios"


class StoreState(StrEnum):
    """A release's state in the store, in the words of Play's track API where both have one."""

    DRAFT = "draft"  # uploaded, not rolling out
    IN_PROGRESS = "inProgress"  # a staged/phased rollout at some user fraction
    HALTED = "halted"  # Play: halted; App Store: phased release paused
    COMPLETED = "completed"  # everyone gets it


@dataclass(frozen=True)
class StoreStatus:
    """Where one version's release stands in the store, as the store says it."""

    version_code: str
    """Play's versionCode; on iOS the build number. The store's key for the version."""
    version_name: str
    state: StoreState
    fraction: float | None
    """The user fraction (0.01 for 1 %) of a staged rollout; None when not staged."""
    track: str = "production"
    previous_version_code: str | None = None
    """The version that users not in the rollout still get: the comparison baseline."""
    previous_version_name: str | None = None
    """That version's name (`1.6.0`), where the store says it."""
    day: int | None = None
    """App Store phased release: Apple's day of its 7-day schedule; None on Play."""
    paused_since: float | None = None
    """Epoch seconds of an App Store pause (30 days at most), else None."""
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """What one store call did. ``changed`` is False when the store already was so (idempotent)."""

    changed: bool
    message: str


class StoreRelease(ABC):
    """One app's production release in one store. Every method is idempotent."""

    platform: Platform
    name: str

    @abstractmethod
    def status(self) -> StoreStatus: ...

    @abstractmethod
    def set_fraction(self, fraction: float) -> Change:
        """Roll out to this user fraction (Play: ``inProgress`` with ``userFraction``)."""

    @abstractmethod
    def halt(self) -> Change:
        """Stop new installs (Play: ``halted``; App Store: pause the phased release)."""

    @abstractmethod
    def resume(self) -> Change: ...

    @abstractmethod
    def complete(self) -> Change:
        """Release to everyone (Play: ``completed``; App Store: release to all users)."""


@dataclass(frozen=True)
class Vitals:
    """One version's users and the users among them who crashed or hit an ANR, over a window.

    Counts of distinct users, not rates: the judge compares counts, and a rate without its
    denominator cannot tell 1 crash in 20 users from 500 in 10,000.
    """

    version_code: str
    start: float
    end: float
    users: int
    crashed_users: int
    anr_users: int | None = None
    """None where the platform has no ANR (iOS) or the source does not report it."""

    @property
    def crash_free_rate(self) -> float | None:
        return None if self.users == 0 else 1.0 - self.crashed_users / self.users

    @property
    def anr_rate(self) -> float | None:
        if self.anr_users is None or self.users == 0:
            return None
        return self.anr_users / self.users


# How long after an hour a source without a freshness signal is taken to have all of it.
# Sentry ingests sessions within minutes; six hours leaves room for devices that send their
# sessions late (offline, app in the background), and is short enough that a quiet hour of
# a small app does not hold a stage for a day.
DEFAULT_DATA_LAG_SECONDS = 6 * 3600.0


class VitalsSource(ABC):
    """Crash and ANR counts per version. Raises NoDataError or MetricsError; never zeros."""

    name: str
    data_lag_seconds: float = DEFAULT_DATA_LAG_SECONDS

    @abstractmethod
    def vitals(self, version_code: str, start: float, end: float) -> Vitals: ...

    @abstractmethod
    def is_online(self) -> bool: ...

    def finest_window_seconds(self) -> float:
        """Play's Reporting API is hourly at best; daily where hourly is not offered."""
        return 3600.0

    def freshness(self, now: float) -> float:
        """The end (epoch seconds) of the data the source has complete at ``now``.

        A window that ends by then and still has no rows never will: the gate records it as
        observed by no one and moves on. A window that ends later is waited for. Sources
        that say how fresh they are (Play's ``freshnessInfo``) override this; the default
        is ``data_lag_seconds`` before ``now``. May raise MetricsError.
        """
        return now - self.data_lag_seconds


@dataclass(frozen=True)
class Review:
    version_code: str | None
    stars: int
    text: str
    at: float
    language: str | None = None


class ReviewSource(ABC):
    name: str

    @abstractmethod
    def reviews(self, since: float) -> list[Review]:
        """Reviews posted or edited since ``since`` (epoch seconds), newest first."""
