"""The job summary's chart: pooled per minute when a 10 s cadence gives too many intervals."""

from __future__ import annotations

import re

from release_actions.canary.model import Event
from release_actions.canary.report import CHART_POINTS, _chart


def interval(at: float, canary: tuple[float, float], stable: tuple[float, float]) -> Event:
    def brief(errors: float, requests: float) -> dict[str, float]:
        return {
            "requests": requests,
            "errors": errors,
            "error_rate_percent": 100 * errors / requests if requests else 0.0,
        }

    return Event("interval", at, "", data={"canary": brief(*canary), "stable": brief(*stable)})


def series(chart: str) -> tuple[list[str], list[list[float]]]:
    labels = re.findall(r'"([^"]+)"', chart.split("x-axis [", 1)[1].split("]", 1)[0])
    lines = [[float(v) for v in m.split(", ")] for m in re.findall(r"    line \[([^\]]*)\]", chart)]
    return labels, lines


def test_few_intervals_are_drawn_one_by_one() -> None:
    chart = _chart([interval(60 * (i + 1), (i, 100), (1, 1000)) for i in range(5)])
    assert chart is not None and "per interval" in chart
    labels, (canary, stable) = series(chart)
    assert labels == ["1:00", "2:00", "3:00", "4:00", "5:00"]
    assert canary == [0, 1, 2, 3, 4] and stable == [0.1] * 5


def test_many_intervals_are_pooled_per_minute_by_counts() -> None:
    # 10 s intervals for 10 minutes; in minute 3 one quiet interval has a high rate.
    events = []
    for i in range(60):
        end = 10.0 * (i + 1)
        quiet = i == 12  # 120-130 s, in the minute that ends at 3:00
        events.append(interval(end, (1, 10) if quiet else (0, 200), (2, 2000)))
    events.append(Event("step", 600.0, "not an interval"))
    assert len(events) > CHART_POINTS
    chart = _chart(events)
    assert chart is not None and "per minute" in chart
    labels, (canary, stable) = series(chart)
    assert len(labels) == 10 and labels[0] == "1:00" and labels[-1] == "10:00"
    # 1 error in 5 x 200 + 10 requests, not the mean of six rates (1.67 %).
    assert canary[2] == round(100 * 1 / 1010, 3)
    assert canary[:2] == [0, 0] and stable == [0.1] * 10


def test_a_minute_without_requests_is_left_out_not_drawn_as_zero() -> None:
    events = [interval(10.0 * (i + 1), (0, 0 if i < 6 else 200), (1, 1000)) for i in range(48)]
    chart = _chart(events)
    assert chart is not None
    labels, (canary, _) = series(chart)
    assert "1:00" not in labels and labels[0] == "2:00" and len(canary) == 7
