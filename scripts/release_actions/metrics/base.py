"""The metrics-provider interface: what the canary engine may ask of Datadog, Prometheus or the simulator."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum

from release_actions.errors import ReleaseActionsError


class Track(StrEnum):
    STABLE = "stable"
    CANARY = "canary"


REDUCERS = ("avg", "sum", "last", "min", "max")


@dataclass(frozen=True)
class TrafficSample:
    """Counts for one track over [start, end), in epoch seconds.

    ``slow`` is the number of requests slower than the ``slow_ms`` the caller asked
    about; it is None where the provider has no latency histogram. ``queries`` keeps the
    resolved queries as evidence, as Argo Rollouts keeps them in a measurement's metadata.
    """

    track: Track | None
    start: float
    end: float
    requests: float
    errors: float
    p99_ms: float | None
    slow: float | None = None
    queries: dict[str, str] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests > 0 else 0.0


class MetricsProvider(ABC):
    """Two questions, as Flagger's providers answer: a query, and whether the provider is up.

    ``query`` raises ``NoDataError`` when the provider answered but has no values (probably
    no traffic), and ``MetricsError`` when it could not answer; it never returns zeros in
    place of either. ``track=None`` asks for the whole deployment (the monitor's triggers).
    """

    name: str

    @abstractmethod
    def query(
        self, track: Track | None, start: float, end: float, *, slow_ms: float | None = None
    ) -> TrafficSample: ...

    @abstractmethod
    def is_online(self) -> bool: ...

    def scalar(
        self, query: str, start: float, end: float, *, what: str, reduce: str = "avg"
    ) -> float:
        """One number from a resolved ``query`` over [start, end): a per-version business metric.

        The same error semantics as ``query``: ``NoDataError`` when the provider answered
        without a value (or NaN/Inf), ``MetricsError`` when it could not answer; never a
        zero in place of either. ``reduce`` (avg, sum, last, min, max) folds a provider's
        points over the window where it returns a series (Datadog); an instant query
        (Prometheus) aggregates in the query itself and ignores it.
        """
        raise ReleaseActionsError(
            f"The `{self.name}` metrics provider cannot answer a single-value query: use "
            "`prometheus` or `datadog`."
        )

    def address(self) -> str:
        """Where the provider is asked, for a message that has to say which one did not answer."""
        return self.name

    def shortest_window_seconds(self) -> float | None:
        """The shortest window the provider can count over, in seconds; None when it cannot tell.

        Prometheus needs two scrapes in a window, Datadog a minute of flushed points; the
        engine raises its measuring cadence to this, so a window too short to hold data is
        never read as an outage.
        """
        return None
