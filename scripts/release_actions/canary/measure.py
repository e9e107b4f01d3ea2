"""Measuring: a usable sample or why there is none, the cadence a provider can resolve, and how a sample reads."""

from __future__ import annotations

import math
from typing import Any

from release_actions.core.policy import AnalysisPolicy
from release_actions.errors import MetricsError, NoDataError, ReleaseActionsError
from release_actions.metrics.base import MetricsProvider, Track, TrafficSample


def check_sample(sample: TrafficSample, label: str) -> TrafficSample:
    """Refuse what a provider should never have returned: NaN, infinities, no requests.

    Adapters already raise ``NoDataError`` for these; checking again here means a faulty
    adapter cannot turn missing data into a healthy-looking zero.
    """
    numbers = {"requests": sample.requests, "errors": sample.errors}
    if sample.p99_ms is not None:
        numbers["p99_ms"] = sample.p99_ms
    for key, value in numbers.items():
        if value is None or not math.isfinite(value):
            raise NoDataError(f"The provider returned {value!r} for `{key}` of {label}: no data.")
    if sample.requests <= 0:
        raise NoDataError(f"No requests for {label} in the interval: probably no traffic.")
    if sample.errors < 0 or sample.errors > sample.requests:
        raise MetricsError(
            f"The provider returned {sample.errors:g} errors for {sample.requests:g} requests "
            f"of {label}: the response is inconsistent."
        )
    return sample


def measure(
    provider: MetricsProvider,
    track: Track | None,
    start: float,
    end: float,
    slow_ms: float | None = None,
) -> tuple[TrafficSample | None, str | None]:
    """A usable sample, or None and why: every failure is data missing, never health."""
    label = "the whole deployment" if track is None else f"the {track.value} track"
    try:
        sample = provider.query(track, start, end, slow_ms=slow_ms)
        return check_sample(sample, label), None
    except NoDataError as exc:
        return None, f"no data: {exc.message}"
    except ReleaseActionsError as exc:
        return None, f"provider error: {exc.message}"
    except Exception as exc:
        # An adapter bug is still an outage to the rollout: counted, and never health.
        return None, f"provider error: {type(exc).__name__}: {exc}"


def resolvable_cadence(cadence: int, provider: MetricsProvider) -> tuple[int, str | None]:
    """``cadence``, raised to the shortest window ``provider`` can count over, and why.

    A provider that knows its data's resolution says so with ``shortest_window_seconds``.
    Prometheus needs two scrapes in a window: measuring every 10 s against a 15 s scrape
    gets empty answers, which are no data, and a healthy release would be rolled back for
    an outage of the engine's own making.
    """
    shortest = provider.shortest_window_seconds()
    if shortest is None or shortest <= cadence:
        return cadence, None
    raised = math.ceil(shortest)
    return raised, (
        f"measuring every {raised} s, not every {cadence} s: {provider.name} cannot count "
        f"over a window shorter than {shortest:g} s"
    )


def error_limit_text(analysis: AnalysisPolicy, cadence: int) -> str:
    limit = analysis.error_limit(cadence)
    if limit == analysis.consecutive_error_limit:
        return f"consecutive_error_limit {limit}"
    return (
        f"{limit} at {cadence} s: consecutive_error_limit {analysis.consecutive_error_limit} "
        f"at interval_seconds {analysis.interval_seconds}"
    )


def brief(sample: TrafficSample | None) -> dict[str, Any] | None:
    if sample is None:
        return None
    return {
        "requests": sample.requests,
        "errors": sample.errors,
        "error_rate_percent": round(100 * sample.error_rate, 4),
        "p99_ms": None if sample.p99_ms is None else round(sample.p99_ms, 1),
    }


def pct(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}%"


def ms(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0f}ms"


def brief_line(sample: TrafficSample | None) -> str:
    if sample is None:
        return "n/a"
    p99 = "" if sample.p99_ms is None else f" p99 {sample.p99_ms:.0f}ms"
    return f"{sample.errors:.0f}/{sample.requests:.0f} ({100 * sample.error_rate:.2f}%){p99}"
