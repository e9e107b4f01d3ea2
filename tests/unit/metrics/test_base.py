"""The MetricsProvider interface: what an adapter must answer and what it gets by default."""

from __future__ import annotations

import pytest

from release_actions.metrics.base import MetricsProvider, Track, TrafficSample


class TwoQuestions(MetricsProvider):
    """Flagger's two methods and nothing more."""

    name = "two-questions"

    def query(
        self, track: Track | None, start: float, end: float, *, slow_ms: float | None = None
    ) -> TrafficSample:
        return TrafficSample(track, start, end, 100, 1, 12.0)

    def is_online(self) -> bool:
        return True


def test_a_provider_that_cannot_tell_its_resolution_says_none() -> None:
    assert TwoQuestions().shortest_window_seconds() is None


def test_a_provider_without_query_or_is_online_cannot_be_built() -> None:
    class NoQuery(MetricsProvider):
        name = "no-query"

        def is_online(self) -> bool:
            return True

    with pytest.raises(TypeError, match="query"):
        NoQuery()  # type: ignore[abstract]
